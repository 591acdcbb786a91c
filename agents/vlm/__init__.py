"""The vision-language-model policy: one user of the rollout engine, next to the scripted policies.

Importing this package does not import torch or transformers.

- :mod:`medscope_gym.agents.vlm.tiny`: an offline tiny Qwen2.5-VL checkpoint (``medscope model tiny``).
- :mod:`medscope_gym.agents.vlm.vocabulary`: the tiny tokenizer's protocol-aware BPE vocabulary.
- :mod:`medscope_gym.agents.vlm.encoding`: observations to token chunks (chat-template deltas + processor).
- :mod:`medscope_gym.agents.vlm.policy`: :class:`HFVLMPolicy`, :class:`ReferencePolicy`.
- :mod:`medscope_gym.agents.vlm.generation`: turn generation, KV cache reused across turns or full recompute.
- :mod:`medscope_gym.agents.vlm.sampling`: sampling settings and token log-probs for learners.
"""

from medscope_gym.agents.vlm.encoding import ChatEncoder, FrameConfig
from medscope_gym.agents.vlm.policy import HFVLMPolicy, ReferencePolicy, VLMPolicyConfig
from medscope_gym.agents.vlm.sampling import SamplingConfig, token_logprobs

__all__ = [
    "ChatEncoder",
    "FrameConfig",
    "HFVLMPolicy",
    "ReferencePolicy",
    "SamplingConfig",
    "VLMPolicyConfig",
    "token_logprobs",
]
