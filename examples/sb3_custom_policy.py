"""Swap in your own features extractor or policy for PPO on the numeric ClinVideo env.

    python examples/sb3_custom_policy.py --steps 2000

Three variants, from the least to the most structure:

1. ``MultiInputPolicy`` with your own ``BaseFeaturesExtractor`` (here: a CNN over the preview seen as
   a 2-D "timeline image", a linear layer over the brief-change strengths, plus the last tool
   frames and the question's word ids);
2. :class:`~medscope_gym.agents.sb3.policy.TimelinePolicy` with the default extractor's sizes changed;
3. :class:`~medscope_gym.agents.sb3.policy.TimelinePolicy` with your own extractor, which then has to expose a
   :class:`~medscope_gym.agents.sb3.extractor.FeatureLayout` as ``layout`` (global vector, timeline map,
   option scores).

Each is trained briefly and evaluated on held-out questions with the same metrics as
``medscope train sb3``.
"""

from __future__ import annotations

import argparse

import gymnasium as gym
import torch
from gymnasium import spaces
from stable_baselines3 import PPO
from stable_baselines3.common.torch_layers import BaseFeaturesExtractor
from torch import nn

import medscope_gym  # noqa: F401 - registers MedScope/SynthSurg-Numeric-v0
from medscope_gym.agents.sb3.evaluate import evaluate_model, summarise_with_evidence
from medscope_gym.agents.sb3.extractor import TimelineExtractor
from medscope_gym.agents.sb3.policy import TimelinePolicy
from medscope_gym.metrics import format_table


class TimelineImageExtractor(BaseFeaturesExtractor):
    """The preview as one image (bins side by side along x), a strided CNN, then an MLP with the rest."""

    def __init__(self, observation_space: spaces.Dict, features_dim: int = 128) -> None:
        super().__init__(observation_space, features_dim)
        bins, h, w, _ = observation_space["preview"].shape
        _, ch, cw, _ = observation_space["changes"].shape
        vocab = int(observation_space["question"].high.max()) + 1
        self.preview_cnn = nn.Sequential(
            nn.Conv2d(3, 16, kernel_size=(h // 3, w), stride=(h // 3, w)),
            nn.ReLU(),  # one column per bin
            nn.Flatten(),
        )
        self.change_net = nn.Sequential(nn.Flatten(), nn.Linear(bins * ch * cw, 32), nn.ReLU())
        self.frame_cnn = nn.Sequential(
            nn.Conv2d(3, 16, 4, stride=4), nn.ReLU(), nn.AdaptiveMaxPool2d(1), nn.Flatten()
        )
        self.words = nn.EmbeddingBag(vocab, 16, mode="mean", padding_idx=0)
        with torch.no_grad():
            n_preview = self.preview_cnn(torch.zeros(1, 3, h, bins * w)).shape[1]
        n_options = observation_space["options"].shape[0]
        n_small = observation_space["last_tool"].shape[0] + observation_space["budget"].shape[0]
        self.head = nn.Sequential(
            nn.Linear(n_preview + 32 + 16 + 16 + 16 * n_options + n_small, features_dim), nn.ReLU()
        )

    def forward(self, obs: dict[str, torch.Tensor]) -> torch.Tensor:
        preview = obs["preview"] / 255.0  # (b, bins, h, w, 3)
        b, bins, h, w, _ = preview.shape
        strip = preview.permute(0, 4, 2, 1, 3).reshape(b, 3, h, bins * w)  # bins side by side
        changes = self.change_net(obs["changes"][..., 3] / 255.0)  # brief-change strengths
        frames = obs["frames"] / 255.0  # (b, f, fh, fw, 3): tool frames have their own thumbnail size
        f = frames.shape[1]
        seen = self.frame_cnn(frames.flatten(0, 1).permute(0, 3, 1, 2)).reshape(b, f, -1)
        seen = (seen * obs["frame_mask"].unsqueeze(-1)).amax(1)
        words = self.words(torch.cat([obs["question"], obs["options"].flatten(1)], 1).round().long())
        options = self.words(obs["options"].flatten(0, 1).round().long()).reshape(b, -1)
        return self.head(
            torch.cat(
                [self.preview_cnn(strip), changes, seen, words, options, obs["last_tool"], obs["budget"]],
                dim=1,
            )
        )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--suite", default=None, help="suite folder (default: the numeric benchmark suite)")
    args = parser.parse_args()
    kwargs = {"suite": args.suite} if args.suite else {}
    env = gym.make("MedScope/SynthSurg-Numeric-v0", split="train", **kwargs)
    held_out = gym.make("MedScope/SynthSurg-Numeric-v0", split="test", **kwargs)

    variants = {
        # 1. SB3's MultiInputPolicy, your extractor, SB3's MLP heads.
        "custom extractor + MultiInputPolicy": (
            "MultiInputPolicy",
            {
                "features_extractor_class": TimelineImageExtractor,
                "features_extractor_kwargs": {"features_dim": 128},
                "net_arch": {"pi": [64], "vf": [64]},
            },
        ),
        # 2. The timeline policy with a wider extractor.
        "TimelinePolicy, wider extractor": (
            TimelinePolicy,
            {
                "features_extractor_kwargs": {"cnn_channels": 32, "map_channels": 8},
            },
        ),
        # 3. The timeline policy with any extractor that exposes a FeatureLayout (here the stock one).
        "TimelinePolicy, explicit extractor": (
            TimelinePolicy,
            {"features_extractor_class": TimelineExtractor},
        ),
    }
    table = {}
    for name, (policy, policy_kwargs) in variants.items():
        model = PPO(
            policy,
            env,
            n_steps=128,
            batch_size=64,
            n_epochs=3,
            learning_rate=1e-3,
            policy_kwargs=policy_kwargs,
            seed=0,
            device="cpu",
        )
        model.learn(args.steps)
        records, _ = evaluate_model(model, held_out)
        table[name] = summarise_with_evidence(records)
    print(format_table(table, ["episodes", "accuracy", "evidence_R@0.5", "reward", "tool_calls"]))
    env.close()
    held_out.close()


if __name__ == "__main__":
    main()
