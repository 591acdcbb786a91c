"""Rendering a few testbed frames: each frame's own noise stream vs a whole video's noise.

    python -m benchmarks.testbed_render            # 240 s video, 3 / 16 / 16 frames (Stage I's examples)

Stage I of the recipe renders ~34,000 examples per seed, each a few frames of a fresh video.
:func:`medscope_gym.synthetic.testbed.render_frames` seeds each frame's noise by the frame, so showing
three frames costs three frames. The baseline, kept here, is the earlier way: draw the whole video's
noise from one stream and keep the frames asked for (the same frame whichever others are rendered,
too, at the cost of the whole video). Both run in this process on the same video; the ratio is printed.
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import numpy as np

from medscope_gym.synthetic.testbed import generate_testbed_video, render_frames

#: (what, how many frames, spread over the video) of Stage I's example kinds
CASES = (("3 frames at a symbol", 3), ("16 preview frames", 16), ("16 crop frames", 16))


def whole_video_noise(video: Any, which: np.ndarray) -> np.ndarray:
    """The baseline's noise: one stream for the whole video, the asked frames kept."""
    rng = np.random.default_rng([video.seed, 991])
    rng.uniform(0, 2 * np.pi, size=2)
    return rng.normal(0, 3, size=(video.num_frames, 64, 64, 1))[which]


def compare_render(duration: float = 240.0, repeats: int = 20, seed: int = 0) -> list[dict[str, Any]]:
    """Median seconds per call of ``render_frames`` and of the baseline's noise draw alone, per case."""
    video = generate_testbed_video(seed, duration)
    rows = []
    for label, count in CASES:
        which = np.linspace(0, video.num_frames - 1, count).round().astype(int)
        ours, base = [], []
        for _ in range(repeats):
            t0 = time.perf_counter()
            render_frames(video, which)
            ours.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            whole_video_noise(video, which)
            base.append(time.perf_counter() - t0)
        rows.append(
            {
                "case": label,
                "per_frame_s": float(np.median(ours)),
                "whole_video_noise_s": float(np.median(base)),
                "ratio": float(np.median(base) / np.median(ours)),
            }
        )
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=240.0, help="video length, seconds")
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args(argv)
    print("| frames rendered | render_frames (ms) | baseline: whole video's noise alone (ms) | ratio |")
    print("|---|---:|---:|---:|")
    for row in compare_render(args.duration, args.repeats):
        print(
            f"| {row['case']} | {1e3 * row['per_frame_s']:.2f} | "
            f"{1e3 * row['whole_video_noise_s']:.2f} | {row['ratio']:.1f}x |"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
