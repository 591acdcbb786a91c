"""Gymnasium environment classes of MedScope-Gym (registered by ``import medscope_gym``)."""

from medscope_gym.envs.clinvideo import ClinVideoEnv, question_text

__all__ = ["ClinVideoEnv", "question_text"]
