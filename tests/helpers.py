"""Small builders shared by the tests (not fixtures: plain functions)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from medscope_gym.video import ArrayVideo


def indexed_frames(n: int, height: int = 24, width: int = 32) -> np.ndarray:
    """Frames whose pixels encode their own index: red = index % 256, green = index // 256."""
    frames = np.zeros((n, height, width, 3), dtype=np.uint8)
    idx = np.arange(n)
    frames[..., 0] = (idx % 256)[:, None, None]
    frames[..., 1] = (idx // 256)[:, None, None]
    return frames


def frame_index(frame: np.ndarray) -> int:
    """Inverse of :func:`indexed_frames` (read at the centre pixel, robust to resizing)."""
    h, w = frame.shape[:2]
    return int(frame[h // 2, w // 2, 0]) + 256 * int(frame[h // 2, w // 2, 1])


def indexed_video(n: int = 250, fps: float = 25.0, **kw) -> ArrayVideo:
    return ArrayVideo(indexed_frames(n, **kw), fps=fps)


def write_suite_rows(root: Path, rows: list[dict]) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "suite.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    return root


def sample_row(**overrides) -> dict:
    row = {
        "id": "s1",
        "video": "videos/v.mp4",
        "duration": 10.0,
        "fps": 25.0,
        "question": "Which tool?",
        "options": ["Grasper", "Hook", "Clipper", "Bipolar"],
        "answer": "B",
        "answer_type": "choice",
        "task": "event_instrument",
        "evidence": [[2.0, 4.0]],
        "source": "test",
        "split": "test",
    }
    row.update(overrides)
    return row
