"""Train on ClinVideoEnv with TRL's ``GRPOTrainer`` (``environment_factory``).

- :mod:`medscope_gym.agents.trl.environment`: :class:`ClinVideoToolEnv` (one env episode per rollout,
  ``crop_video`` /
  ``get_frame`` as tools) and :func:`clinvideo_environment_factory`.
- :mod:`medscope_gym.agents.trl.dataset`: the suite's questions as TRL prompts (:func:`build_dataset`).
- :mod:`medscope_gym.agents.trl.rewards`: reward functions reading the env's reward parts
  (:func:`env_reward_funcs`).
- :mod:`medscope_gym.agents.trl.chat_template`: a tool-calling chat template and response parser in the env's
  protocol
  (:func:`prepare_processing_class`).
- TRL's GRPO step time on a model and suite is measurement code: ``benchmarks/trl_throughput.py`` of the
  source checkout (docs/benchmarks.md).

Needs the ``trl`` extra (``pip install medscope-gym[trl]``); importing this package does not import
torch, transformers or trl.
"""

from medscope_gym.agents.trl.chat_template import (
    RESPONSE_TEMPLATE,
    TOOL_CHAT_TEMPLATE,
    TURN_TEXT_KEY,
    prepare_processing_class,
)
from medscope_gym.agents.trl.dataset import build_dataset, dataset_rows
from medscope_gym.agents.trl.environment import (
    ClinVideoToolEnv,
    RolloutResult,
    clinvideo_environment_factory,
    score_rollout,
)
from medscope_gym.agents.trl.rewards import REWARD_PARTS, env_reward_funcs

__all__ = [
    "REWARD_PARTS",
    "RESPONSE_TEMPLATE",
    "TOOL_CHAT_TEMPLATE",
    "TURN_TEXT_KEY",
    "ClinVideoToolEnv",
    "RolloutResult",
    "build_dataset",
    "clinvideo_environment_factory",
    "dataset_rows",
    "env_reward_funcs",
    "prepare_processing_class",
    "score_rollout",
]
