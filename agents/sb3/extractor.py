"""Features extractor for the numeric env: question-conditioned timeline features and a small CNN.

What a policy needs from :class:`~medscope_gym.envs.numeric.NumericClinVideoEnv` observations is (1) *where*
the asked-about event is on the preview timeline and (2) *which option* the inspected frames
support. The extractor builds exactly those, with shared, translation-free parts so that PPO
learns them from few episodes:

- per time bin, features of the env's brief-change map (``changes``: per image cell the colour
  and strength of what showed only for a few seconds) — a cell-wise layer max-pooled over the
  cells ("a red mark appeared") and a linear map of the strength grid ("where in the image") —
  and of the bin's preview thumbnail averaged along each row (scene colour, tray);
- a timeline map ``(channels, bins)``: bilinear scores between each bin's features and the
  question's word embedding ("where does what the question names appear"), plus one fixed
  *saliency* channel: each bin's strongest brief change relative to the video's strongest
  ("something happened here"), which the policy head starts out following;
- a thumbnail CNN (2×2 patches, then a 1×1 convolution, max- and mean-pooled over space) over
  the frames of the last tool call: the max-pool finds small coloured marks and instrument
  glyphs, the mean-pool keeps the scene colour;
- option scores ``(options,)``: bilinear scores between the pooled frame features and each
  option's word embedding ("which option do these frames show");
- a global vector from the budget, the last tool, the question and the pooled frame features.

The output is the flat concatenation ``[global, timeline map, option scores]``; :attr:`layout`
tells a policy head where each part is (see :mod:`medscope_gym.agents.sb3.policy`), and a plain
``MultiInputPolicy`` can use it as an ordinary feature vector. Nothing runs a CNN over the
``bins`` preview thumbnails of every observation, which keeps an update cheap on one CPU core.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from gymnasium import spaces
from stable_baselines3.common.torch_layers import BaseFeaturesExtractor
from torch import nn

__all__ = ["FeatureLayout", "ThumbnailCNN", "TimelineExtractor"]


@dataclass(frozen=True)
class FeatureLayout:
    """Sizes of the parts of the extractor's flat output, in order."""

    global_dim: int
    map_channels: int
    bins: int
    options: int
    saliency_channel: int | None = None
    """Map channel that holds a question-free "something happened here" score, if any: the
    timeline head starts out looking there (see
    :class:`~medscope_gym.agents.sb3.policy.TimelineActionHead`)."""

    @property
    def total(self) -> int:
        return self.global_dim + self.map_channels * self.bins + self.options

    def split(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(global, map (batch, channels, bins), option scores)`` views of ``features``."""
        g, m = self.global_dim, self.map_channels * self.bins
        return (
            features[:, :g],
            features[:, g : g + m].reshape(-1, self.map_channels, self.bins),
            features[:, g + m :],
        )


class ThumbnailCNN(nn.Module):
    """``(N, H, W, 3)`` thumbnails in 0–255 → ``(N, 2·channels)`` max- and mean-pooled features."""

    def __init__(self, channels: int = 16) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(3, channels // 2, kernel_size=2, stride=2),
            nn.ReLU(),
            nn.Conv2d(channels // 2, channels, kernel_size=1),
            nn.ReLU(),
        )
        self.out_dim = 2 * channels

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = self.net(images.permute(0, 3, 1, 2) / 255.0)
        return torch.cat([x.amax(dim=(2, 3)), x.mean(dim=(2, 3))], dim=1)


class TimelineExtractor(BaseFeaturesExtractor):
    """Question-conditioned features for :class:`~medscope_gym.envs.numeric.NumericClinVideoEnv`.

    Args:
        observation_space: the numeric env's Dict space.
        cnn_channels: channels of the tool-frame CNN (its output is twice this).
        embed_dim: word-embedding size (questions and options share the table).
        map_channels: channels of the timeline map.
        global_dim: size of the global part of the output.
        change_channels: channels of the cell-wise brief-change layer.
    """

    def __init__(
        self,
        observation_space: spaces.Dict,
        cnn_channels: int = 16,
        embed_dim: int = 32,
        map_channels: int = 4,
        global_dim: int = 64,
        change_channels: int = 16,
    ) -> None:
        bins = int(observation_space["preview"].shape[0])
        options = int(observation_space["options"].shape[0])
        layout = FeatureLayout(global_dim, map_channels + 1, bins, options, saliency_channel=map_channels)
        super().__init__(observation_space, features_dim=layout.total)
        self.layout = layout
        vocab = int(observation_space["question"].high.max()) + 1
        self.cnn = ThumbnailCNN(cnn_channels)
        d = self.cnn.out_dim
        self.words = nn.EmbeddingBag(vocab, embed_dim, mode="mean", padding_idx=0)
        self.key = 16
        self.query_channels = map_channels
        _, ch, cw, depth = (int(n) for n in observation_space["changes"].shape)
        rows = int(observation_space["preview"].shape[1])
        self.change_cell = nn.Sequential(nn.Linear(depth, change_channels), nn.ReLU())
        self.change_where = nn.Linear(ch * cw, 8)
        self.bin_proj = nn.Linear(change_channels + 8 + 3 * rows, map_channels * self.key)
        self.query_proj = nn.Linear(embed_dim, map_channels * self.key)
        self.frame_proj = nn.Linear(2 * d + embed_dim, embed_dim)
        self.option_proj = nn.Linear(embed_dim, embed_dim)
        small = sum(
            int(observation_space[k].shape[0]) for k in ("last_tool", "budget", "last_span", "duration")
        )
        self.global_net = nn.Sequential(nn.Linear(small + 1 + embed_dim + 2 * d, global_dim), nn.ReLU())

    def _embed(self, ids: torch.Tensor) -> torch.Tensor:
        """Mean word embedding of rows of (float-cast) ids; all-padding rows give zeros."""
        ids = ids.round().long()
        return self.words(ids.reshape(-1, ids.shape[-1])).reshape(*ids.shape[:-1], -1)

    def bin_features(self, obs: dict[str, torch.Tensor]) -> torch.Tensor:
        """``(b, bins, f)`` features of each time bin: brief changes and row colours of the preview."""
        changes = obs["changes"] / 255.0  # (b, k, ch, cw, 4)
        b, k = changes.shape[:2]
        cells = changes.reshape(b, k, -1, changes.shape[-1])
        what = self.change_cell(cells).amax(dim=2)  # (b, k, change_channels)
        where = self.change_where(cells[..., -1])  # strength grid → (b, k, 8)
        rows = (obs["preview"] / 255.0).mean(dim=3).reshape(b, k, -1)  # (b, k, 3 · rows)
        return torch.cat([what, where, rows], dim=-1)

    @staticmethod
    def saliency(obs: dict[str, torch.Tensor]) -> torch.Tensor:
        """``(b, bins)``: each bin's strongest brief change over the video's strongest (0–1)."""
        strength = obs["changes"][..., -1].flatten(2).amax(dim=2)  # (b, k)
        return strength / strength.amax(dim=1, keepdim=True).clamp(min=1.0)

    def forward(self, obs: dict[str, torch.Tensor]) -> torch.Tensor:
        frames = obs["frames"]
        b, k = obs["preview"].shape[:2]
        c, key = self.query_channels, self.key

        question = self._embed(obs["question"])  # (b, e)
        keys = self.bin_proj(self.bin_features(obs)).reshape(b, k, c, key)
        query = self.query_proj(question).reshape(b, 1, c, key)
        timeline = (keys * query).sum(-1).permute(0, 2, 1) / key**0.5  # (b, c, k)
        timeline = torch.cat([timeline, self.saliency(obs).unsqueeze(1)], dim=1)  # (b, c + 1, k)

        f = frames.shape[1]
        mask = obs["frame_mask"].unsqueeze(-1)  # (b, f, 1)
        feats = self.cnn(frames.reshape(b * f, *frames.shape[2:])).reshape(b, f, -1)
        count = mask.sum(1)
        pooled = torch.cat(
            [(feats * mask).sum(1) / count.clamp(min=1.0), (feats - (1 - mask) * 1e4).amax(1)], dim=1
        )
        pooled = pooled * (count > 0)  # no frames → zeros
        seen = self.frame_proj(torch.cat([pooled, question], dim=1))  # (b, e)
        options = self.option_proj(self._embed(obs["options"]))  # (b, o, e)
        scores = (options * seen.unsqueeze(1)).sum(-1) / seen.shape[-1] ** 0.5 * obs["option_mask"]

        small = torch.cat(
            [
                obs["last_tool"],
                obs["budget"],
                obs["last_span"],
                obs["duration"],
                obs["frame_mask"].mean(1, keepdim=True),
            ],
            dim=1,
        )
        glob = self.global_net(torch.cat([small, question, pooled], dim=1))
        return torch.cat([glob, timeline.reshape(b, -1), scores], dim=1)
