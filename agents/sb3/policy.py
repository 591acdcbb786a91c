"""TimelinePolicy: an SB3 actor-critic whose action head respects the time axis of the numeric env.

SB3's default head is one linear layer from the features to all action logits, so it would have
to learn separately, for each of the 60 time bins, that "the question's event shows in bin k"
means "crop at bin k". This policy keeps :class:`~medscope_gym.agents.sb3.extractor.TimelineExtractor`'s
timeline map aligned with the bins and scores the start bin with a small 1-D convolution over
it (the same weights at every position), scores answer options from the extractor's
option scores, and picks the tool from the global features. The value function is an MLP over
all features.

Its action distribution, :class:`ToolConditionedDistribution`, scores only the components the
chosen tool uses: an answer's log-probability leaves out the time bin and span, a crop's leaves
out the option, a frame's the span and option. SB3's plain MultiDiscrete distribution sums all
four, so every answer's advantage (driven by accuracy) also pushes the unused time bin up or
down at random, drowning the small signal that tells the policy where to look. Everything else
(PPO, rollout buffers, saving, loading) is stock SB3.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from stable_baselines3.common.distributions import MultiCategoricalDistribution
from stable_baselines3.common.policies import MultiInputActorCriticPolicy
from torch import nn

from medscope_gym.agents.sb3.extractor import FeatureLayout, TimelineExtractor

__all__ = [
    "TOOL_COMPONENTS",
    "TimelineActionHead",
    "TimelinePolicy",
    "TimelineValueSplit",
    "ToolConditionedDistribution",
]

#: Per tool (answer, crop_video, get_frame): which of (tool, time bin, span, option) it uses.
TOOL_COMPONENTS: tuple[tuple[int, int, int, int], ...] = ((1, 0, 0, 1), (1, 1, 1, 0), (1, 1, 0, 0))


class ToolConditionedDistribution(MultiCategoricalDistribution):
    """MultiDiscrete ``[tool, time bin, span, option]`` whose log-probability counts only the parts
    the sampled tool uses (see :data:`TOOL_COMPONENTS`); sampling and entropy are SB3's."""

    def __init__(self, action_dims: list[int]) -> None:
        if len(action_dims) != 4 or int(action_dims[0]) != len(TOOL_COMPONENTS):
            raise ValueError(f"expected MultiDiscrete([3, bins, spans, options]), got {list(action_dims)}")
        super().__init__(action_dims)
        self._used = torch.tensor(TOOL_COMPONENTS, dtype=torch.float32)

    def log_prob(self, actions: torch.Tensor) -> torch.Tensor:
        parts = torch.stack(
            [d.log_prob(a) for d, a in zip(self.distribution, torch.unbind(actions, dim=1), strict=True)],
            dim=1,
        )
        used = self._used.to(parts.device)[actions[:, 0].long()]
        return (parts * used).sum(dim=1)


class TimelineValueSplit(nn.Module):
    """Stands in for SB3's ``mlp_extractor``: the actor gets the features as they are, the critic an MLP."""

    def __init__(self, features_dim: int, value_hidden: int = 64) -> None:
        super().__init__()
        self.latent_dim_pi = features_dim
        self.latent_dim_vf = value_hidden
        self.value_net = nn.Sequential(
            nn.Linear(features_dim, value_hidden), nn.Tanh(), nn.Linear(value_hidden, value_hidden), nn.Tanh()
        )

    def forward(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return features, self.value_net(features)

    def forward_actor(self, features: torch.Tensor) -> torch.Tensor:
        return features

    def forward_critic(self, features: torch.Tensor) -> torch.Tensor:
        return self.value_net(features)


class TimelineActionHead(nn.Module):
    """Logits of ``MultiDiscrete([tools, bins, spans, options])`` from the extractor's parts.

    Tool and span come from the global features; the start bin from a 1-D convolution over the
    timeline map (so "the event shows here" means "start here" at every position alike); the
    answer from the option scores plus a global bias.

    Every weight starts near zero (a near-uniform policy over every bin and option), except that
    when the layout names a saliency channel, the time-bin convolution starts with weight
    ``saliency_gain`` on it: before any training, tool calls go mostly to bins where something
    briefly happened (about e^gain times likelier than a quiet bin). That is a prior, not a rule:
    PPO trains the weight like any other, and has to learn from the question which event to pick,
    how wide to crop, when to answer and what.

    Args:
        layout: where the global vector, timeline map and option scores sit in the features.
        nvec: the action space's ``nvec``; its bins and options must match ``layout``.
        kernel: width (in bins) of the time-bin convolution.
        saliency_gain: initial weight of the saliency channel (0 for a uniform start).
    """

    def __init__(
        self, layout: FeatureLayout, nvec: Sequence[int], kernel: int = 5, saliency_gain: float = 4.0
    ) -> None:
        super().__init__()
        tools, bins, spans, options = (int(n) for n in nvec)
        if (bins, options) != (layout.bins, layout.options):
            raise ValueError(f"action nvec {list(nvec)} does not match the features layout {layout}")
        self.layout = layout
        self.tool = nn.Linear(layout.global_dim, tools)
        self.start = nn.Conv1d(layout.map_channels, 1, kernel, padding=kernel // 2)
        self.span = nn.Linear(layout.global_dim, spans)
        self.answer_bias = nn.Linear(layout.global_dim, options)
        self.answer_scale = nn.Parameter(torch.ones(1))
        for module in (self.tool, self.start, self.span, self.answer_bias):
            nn.init.normal_(module.weight, std=0.01)
            nn.init.zeros_(module.bias)  # a near-uniform policy at the start: explore every bin and option
        if layout.saliency_channel is not None:
            with torch.no_grad():
                self.start.weight[0, layout.saliency_channel, kernel // 2] = saliency_gain

    def forward(self, latent: torch.Tensor) -> torch.Tensor:
        glob, timeline, scores = self.layout.split(latent)
        return torch.cat(
            [
                self.tool(glob),
                self.start(timeline).squeeze(1),
                self.span(glob),
                self.answer_scale * scores + self.answer_bias(glob),
            ],
            dim=1,
        )


class TimelinePolicy(MultiInputActorCriticPolicy):
    """``MultiInputActorCriticPolicy`` with :class:`TimelineExtractor` and :class:`TimelineActionHead`.

    Accepts the usual SB3 policy kwargs; ``features_extractor_kwargs`` go to the extractor, and
    ``net_arch`` is ignored (the heads are fixed by the timeline layout).
    """

    def __init__(self, *args, **kwargs) -> None:
        kwargs.setdefault("features_extractor_class", TimelineExtractor)
        super().__init__(*args, **kwargs)

    def _build_mlp_extractor(self) -> None:
        self.mlp_extractor = TimelineValueSplit(self.features_dim)

    def _build(self, lr_schedule) -> None:
        self.action_dist = ToolConditionedDistribution([int(n) for n in self.action_space.nvec])
        super()._build(lr_schedule)
        layout = getattr(self.features_extractor, "layout", None)
        if not isinstance(layout, FeatureLayout):
            raise TypeError(
                "TimelinePolicy needs a features extractor with a FeatureLayout `layout` "
                "(e.g. TimelineExtractor)"
            )
        self.action_net = TimelineActionHead(layout, self.action_space.nvec)
        # The optimizer built by SB3 holds the replaced head's parameters: build it again.
        self.optimizer = self.optimizer_class(self.parameters(), lr=lr_schedule(1), **self.optimizer_kwargs)
