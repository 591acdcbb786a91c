"""The data stream and the metrics log shared by SFT and GA-GRPO."""

from __future__ import annotations

import json

import numpy as np

from medscope_gym.agents.training.metrics import MetricsLog, read_metrics
from medscope_gym.agents.training.streaming import IndexStream, stream_indices


def test_the_stream_is_seeded_per_epoch_shuffles_and_resumes_anywhere():
    n, seed = 5, 3
    first = stream_indices(n, seed, 0, 12)
    for epoch in range(2):  # every epoch is a permutation of all examples
        assert sorted(first[epoch * n : (epoch + 1) * n]) == list(range(n))
    assert first[:n] == [int(i) for i in np.random.default_rng([seed, 0]).permutation(n)]
    stream = IndexStream(n, seed)
    taken = stream.take(4) + stream.take(3)
    resumed = IndexStream(n, seed, position=stream.position)
    assert taken + resumed.take(5) == first and stream.position == 7
    assert stream_indices(n, seed + 1, 0, 12) != first


def test_the_metrics_log_drops_rows_after_the_resumed_step(tmp_path):
    log = MetricsLog(tmp_path, tensorboard=False)
    for step in (1, 2, 3):
        log.log(step, {"train/loss": 1.0 / step, "train/kl": None, "train/bad": float("nan")})
    log.close()
    rows = read_metrics(tmp_path)
    assert [r["step"] for r in rows] == [1, 2, 3]
    assert rows[0] == {"step": 1, "train/loss": 1.0, "train/bad": None}
    resumed = MetricsLog(tmp_path, resume_step=2, tensorboard=False)
    resumed.log(3, {"train/loss": 0.25})
    lines = (tmp_path / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["train/loss"] for line in lines] == [1.0, 0.5, 0.25]
