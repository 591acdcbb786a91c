"""Features extractor for the numeric env: a small CNN over thumbnails, conditioned on the question.

What a policy needs from :class:`~envs.numeric.NumericClinVideoEnv` observations is (1) *where*
the asked-about event is on the preview timeline and (2) *which option* the inspected frames
support. The extractor builds exactly those, with shared, translation-free parts so that PPO
learns them from few episodes:

- a thumbnail CNN (2×2 patches, then a 1×1 convolution, max- and mean-pooled over space): the
  max-pool finds small coloured marks anywhere in a frame, the mean-pool keeps the scene colour;
- transients: brief events are changes that appear and vanish within seconds, so for each
  preview bin a fixed (not learned) detector takes, per pixel, the smaller of its differences to
  the bins 2 and 3 before and after it, and keeps the largest such change in each image row (the
  network learns which rows matter: a tool tray flickers, the scene's marks do not);
- a timeline map ``(channels, bins)``: bilinear scores between each preview bin's CNN and
  transient features and the question's word embedding ("where does what the question names
  appear");
- option scores ``(options,)``: bilinear scores between the pooled features of the last tool
  call's frames and each option's word embedding ("which option do these frames show");
- a global vector from the budget, the last tool, the question and the pooled frame features.

The output is the flat concatenation ``[global, timeline map, option scores]``; :attr:`layout`
tells a policy head where each part is (see :mod:`agents.sb3.policy`), and a plain
``MultiInputPolicy`` can use it as an ordinary feature vector.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from gymnasium import spaces
from stable_baselines3.common.torch_layers import BaseFeaturesExtractor
from torch import nn

__all__ = ["FeatureLayout", "ThumbnailCNN", "TimelineExtractor", "transients"]

_TRANSIENT_GAPS = (2, 3)  # bins: an event of up to 2·3 - 1 = 5 bins leaves both sides of its middle bin


def transients(preview: torch.Tensor) -> torch.Tensor:
    """``(b, bins, h, w, 3)`` thumbnails in 0–255 → ``(b, bins, h)``: the largest transient of each row.

    A pixel's transient at bin ``k`` is ``min(|x_k - x_{k-g}|, |x_k - x_{k+g}|)`` (summed over RGB,
    maximised over the gaps ``g``, 0–3): large for a mark shown only around ``k``, small for slow
    drift and for one-sided changes such as a phase boundary.
    """
    with torch.no_grad():
        x = preview / 255.0
        k = x.shape[1]
        idx = torch.arange(k, device=x.device)
        best = torch.zeros(x.shape[:4], device=x.device)
        for gap in _TRANSIENT_GAPS:
            left = x[:, (idx - gap).clamp(min=0)]
            right = x[:, (idx + gap).clamp(max=k - 1)]
            change = torch.minimum((x - left).abs().sum(-1), (x - right).abs().sum(-1))
            best = torch.maximum(best, change)
        return best.amax(-1)


@dataclass(frozen=True)
class FeatureLayout:
    """Sizes of the parts of the extractor's flat output, in order."""

    global_dim: int
    map_channels: int
    bins: int
    options: int

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
    """Question-conditioned thumbnail features for :class:`~envs.numeric.NumericClinVideoEnv`.

    Args:
        observation_space: the numeric env's Dict space.
        cnn_channels: channels of the thumbnail CNN (its output is twice this).
        embed_dim: word-embedding size (questions and options share the table).
        map_channels: channels of the timeline map.
        global_dim: size of the global part of the output.
    """

    def __init__(
        self,
        observation_space: spaces.Dict,
        cnn_channels: int = 16,
        embed_dim: int = 32,
        map_channels: int = 4,
        global_dim: int = 64,
    ) -> None:
        bins = int(observation_space["preview"].shape[0])
        options = int(observation_space["options"].shape[0])
        layout = FeatureLayout(global_dim, map_channels, bins, options)
        super().__init__(observation_space, features_dim=layout.total)
        self.layout = layout
        vocab = int(observation_space["question"].high.max()) + 1
        self.cnn = ThumbnailCNN(cnn_channels)
        d = self.cnn.out_dim
        self.words = nn.EmbeddingBag(vocab, embed_dim, mode="mean", padding_idx=0)
        self.key = 16
        rows = int(observation_space["preview"].shape[1])
        self.bin_proj = nn.Linear(d + rows, map_channels * self.key)
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

    def forward(self, obs: dict[str, torch.Tensor]) -> torch.Tensor:
        preview, frames = obs["preview"], obs["frames"]
        b, k = preview.shape[:2]
        c, key = self.layout.map_channels, self.key

        question = self._embed(obs["question"])  # (b, e)
        bins = self.cnn(preview.reshape(b * k, *preview.shape[2:])).reshape(b, k, -1)
        keys = self.bin_proj(torch.cat([bins, transients(preview)], dim=-1)).reshape(b, k, c, key)
        query = self.query_proj(question).reshape(b, 1, c, key)
        timeline = (keys * query).sum(-1).permute(0, 2, 1) / key**0.5  # (b, c, k)

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
