"""The episode viewer: a self-contained HTML report of one or two run folders (docs/viewer.md)."""

from medscope_gym.agents.viewer.recording import RecordingPolicy, trajectory_from_result
from medscope_gym.agents.viewer.report import (
    ViewConfig,
    build_report,
    find_trajectories,
    load_run,
    write_report,
)

__all__ = [
    "RecordingPolicy",
    "ViewConfig",
    "build_report",
    "find_trajectories",
    "load_run",
    "trajectory_from_result",
    "write_report",
]
