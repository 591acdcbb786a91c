from __future__ import annotations

import dataclasses

import av
import decord
import numpy as np
import pytest

from medscope_gym.errors import ConfigError
from medscope_gym.synthetic import (
    EVENT_KINDS,
    EVENT_MARK_COLORS,
    Event,
    Procedure,
    event_mark_box,
    event_mark_mask,
    frame_timestamps,
    generate_procedure,
    read_frame_index,
    render_video,
)

# Mean absolute RGB distance to the mark's colour over its shape: measured ≤ 27 on event frames
# and ≥ 50 elsewhere (crf 23, 160×120), so the midpoint separates them with margin.
MARK_THRESHOLD = 38.0


def _decode_all(path) -> np.ndarray:
    """Decode every frame sequentially with decord."""
    vr = decord.VideoReader(str(path))
    return np.stack([vr.next().asnumpy() for _ in range(len(vr))])


def _mark_distance(frames: np.ndarray, proc: Procedure, index: int) -> np.ndarray:
    ev = proc.events[index]
    h, w = frames.shape[1:3]
    x0, y0, x1, y1 = event_mark_box(proc, index, w, h)
    mask = event_mark_mask(ev.kind, w, h)
    patch = frames[:, y0:y1, x0:x1][:, mask].astype(np.int16)
    return np.abs(patch - np.array(EVENT_MARK_COLORS[ev.kind])).mean(axis=(1, 2))


@pytest.mark.parametrize("gop", ["gop250", "gop25"])
def test_burned_index_reads_back_for_every_frame(indexed_videos, short_procedure, gop):
    vr = decord.VideoReader(str(indexed_videos[gop]))
    assert len(vr) == short_procedure.num_frames
    got = [read_frame_index(vr.next().asnumpy()) for _ in range(len(vr))]
    assert got == list(range(short_procedure.num_frames))


def test_decodes_to_exact_frame_count_and_size(tmp_path):
    proc = generate_procedure(2, 13.3)
    path = tmp_path / "v.mp4"
    render_video(proc, path, width=96, height=64)
    vr = decord.VideoReader(str(path))
    assert len(vr) == proc.num_frames
    assert vr[len(vr) - 1].shape == (64, 96, 3)
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        assert stream.codec_context.name == "h264" and stream.format.name == "yuv420p"
        assert stream.average_rate == 25
    frames = _decode_all(path)
    assert len(frames) == proc.num_frames
    # Mild sub-pixel camera drift and noise: consecutive frames differ (the drift turns round rarely).
    same = sum(np.array_equal(a, b) for a, b in zip(frames, frames[1:]))
    assert same <= 0.05 * len(frames)


def test_event_marks_exactly_in_event_frames(indexed_videos, short_procedure):
    frames = _decode_all(indexed_videos["gop250"])
    active = np.zeros(len(frames), dtype=bool)
    for ev in short_procedure.events:
        active[ev.start_frame : ev.end_frame] = True
    for i, ev in enumerate(short_procedure.events):
        d = _mark_distance(frames, short_procedure, i)
        assert d[ev.start_frame : ev.end_frame].max() < MARK_THRESHOLD, ev
        assert d[~active].min() > MARK_THRESHOLD, ev


def test_every_event_kind_has_a_visible_mark(tmp_path):
    base = generate_procedure(3, 40.0)
    events = tuple(
        Event(kind, 100 + 125 * k, 150 + 125 * k, base.fps, "Grasper", "Preparation")
        for k, kind in enumerate(EVENT_KINDS)
    )
    proc = dataclasses.replace(base, events=events)
    path = tmp_path / "kinds.mp4"
    render_video(proc, path)
    frames = _decode_all(path)
    active = np.zeros(len(frames), dtype=bool)
    for ev in events:
        active[ev.start_frame : ev.end_frame] = True
    for i, ev in enumerate(events):
        d = _mark_distance(frames, proc, i)
        assert d[ev.start_frame : ev.end_frame].max() < MARK_THRESHOLD, ev.kind
        assert d[~active].min() > MARK_THRESHOLD, ev.kind
        x0, y0, x1, y1 = event_mark_box(proc, i, 160, 120)
        assert (x1 - x0) * (y1 - y0) <= 0.01 * 160 * 120  # small: easy to miss in a coarse preview


def test_variable_frame_rate_file(tmp_path):
    proc = generate_procedure(5, 8.0)
    path = tmp_path / "vfr.mp4"
    render_video(proc, path, vfr_jitter=0.4, bframes=2, burn_index=True)
    expected = np.round(frame_timestamps(proc.num_frames, proc.fps, 0.4, proc.seed) * 90000) / 90000
    with av.open(str(path)) as container:
        decoded = [
            (f.time, read_frame_index(f.to_ndarray(format="rgb24"))) for f in container.decode(video=0)
        ]
    times = np.array([t for t, _ in decoded])
    assert [i for _, i in decoded] == list(range(proc.num_frames))
    assert np.allclose(times, expected, atol=1e-6)
    gaps = np.diff(times)
    assert gaps.min() > 0 and gaps.max() - gaps.min() > 0.01  # really variable


def test_bad_geometry_is_rejected(tmp_path):
    proc = generate_procedure(5, 4.0)
    with pytest.raises(ConfigError):
        render_video(proc, tmp_path / "odd.mp4", width=161)
    with pytest.raises(ConfigError):
        render_video(proc, tmp_path / "narrow.mp4", width=64, height=48, burn_index=True)
    with pytest.raises(ConfigError):
        render_video(proc, tmp_path / "j.mp4", vfr_jitter=1.0)
    assert not list(tmp_path.iterdir())
