"""Every exact backend returns the frames it claims, with exact timestamps, on awkward encodings.

Burned-index videos (the frame number painted into the pixels) with long and short GOPs,
B-frames, a variable frame rate and a size that is not a multiple of the macroblock.
"""

from __future__ import annotations

import pickle
import time

import numpy as np
import pytest

from medscope_gym.errors import ConfigError, VideoError
from medscope_gym.synthetic import frame_timestamps, generate_procedure, read_frame_index, render_video
from medscope_gym.video import (
    BACKENDS,
    DEFAULT_BACKEND,
    DecodeGuard,
    DecodeTimeout,
    DecordVideo,
    FrameIndex,
    PyAVVideo,
    open_video,
)
from medscope_gym.video.pyav_backend import index_packets

SEED, SECONDS, FPS, JITTER = 5, 12.0, 25.0, 0.6
ENCODINGS = {
    "gop250": {"keyframe_interval": 250},
    "gop25-bframes": {"keyframe_interval": 25, "bframes": 2},
    "vfr": {"keyframe_interval": 50, "vfr_jitter": JITTER},
    "odd-size-bframes": {"keyframe_interval": 30, "bframes": 3, "width": 202, "height": 114},
}


@pytest.fixture(scope="module")
def encoded(tmp_path_factory):
    """name -> path of a 12 s, 300-frame burned-index video."""
    root = tmp_path_factory.mktemp("encodings")
    proc = generate_procedure(seed=SEED, duration_s=SECONDS, fps=FPS)
    out = {}
    for name, kw in ENCODINGS.items():
        out[name] = root / f"{name}.mp4"
        render_video(proc, out[name], **{"width": 160, "height": 120, "burn_index": True, **kw})
    return out


def _indices(frames: np.ndarray) -> list[int]:
    return [read_frame_index(f) for f in frames]


@pytest.mark.parametrize("backend", sorted(BACKENDS))
@pytest.mark.parametrize("name", sorted(ENCODINGS))
def test_every_frame_is_the_one_claimed(encoded, backend, name):
    with open_video(encoded[name], backend=backend) as video:
        n = int(SECONDS * FPS)
        assert video.num_frames == n
        assert _indices(video.read(np.arange(n))) == list(range(n))
        rng = np.random.default_rng(0)
        scattered = rng.choice(n, size=25, replace=True)  # unsorted, duplicates, backward jumps
        assert _indices(video.read(scattered)) == scattered.tolist()
        assert _indices(video.read([n - 1, 0, n - 1, 1])) == [n - 1, 0, n - 1, 1]
        if "width" in ENCODINGS[name]:
            assert video.size == (ENCODINGS[name]["height"], ENCODINGS[name]["width"])


@pytest.mark.parametrize("name", sorted(ENCODINGS))
def test_backends_agree_to_the_pixel_and_on_timestamps(encoded, name):
    d, a = DecordVideo(encoded[name]), PyAVVideo(encoded[name])
    idx = np.array([0, 7, 99, 100, 101, 249, 250, 299])
    np.testing.assert_array_equal(d.read(idx), a.read(idx))
    tolerance = 1e-5 if name == "vfr" else 0.0  # decord reports float32 times for a VFR file
    np.testing.assert_allclose(d.timestamps, a.timestamps, rtol=0, atol=tolerance)
    assert d.duration == pytest.approx(a.duration, abs=1e-4)


def test_timestamps_are_exact(encoded):
    n = int(SECONDS * FPS)
    cfr = PyAVVideo(encoded["gop25-bframes"])
    assert cfr.timestamps.tolist() == (np.arange(n) / FPS).tolist()
    assert cfr.duration == SECONDS
    vfr = PyAVVideo(encoded["vfr"])
    expected = np.round(frame_timestamps(n, FPS, JITTER, SEED) * 90000) / 90000
    np.testing.assert_allclose(vfr.timestamps, expected, rtol=0, atol=1e-9)
    # index_at finds the frame on screen: just before a frame's start is still the previous frame
    assert vfr.index_at(vfr.timestamps[10] - 1e-6)[0] == 9 and vfr.index_at(vfr.timestamps[10])[0] == 10


def test_pyav_forward_reads_do_not_seek_inside_a_gop(encoded, monkeypatch):
    video = PyAVVideo(encoded["gop250"])
    seeks = []
    real = video._seek_to
    monkeypatch.setattr(video, "_seek_to", lambda reader, k: seeks.append(k) or real(reader, k))
    video.read([10, 20, 30, 240, 260, 280])  # the decoder sits at frame 0 after the open probe
    assert seeks == [250]  # forward decoding inside a GOP, one seek to skip to the next one
    video.read([5])  # behind the decoder: must seek back
    assert seeks[-1] == 0


def test_pyav_verifies_an_over_reported_frame_count(encoded):
    video = PyAVVideo(encoded["gop25-bframes"])
    real = index_packets(encoded["gop25-bframes"])
    step = int(real.pts[1] - real.pts[0])
    fake = FrameIndex(
        np.concatenate([real.pts, real.pts[-1] + step * np.arange(1, 11)]),
        np.concatenate([real.keyframe, np.zeros(10, dtype=bool)]),
        real.time_base,
        real.avg_fps,
    )
    assert video._verified(fake).num_frames == real.num_frames


def test_pyav_pickles_without_its_decoder_and_reopens(encoded):
    video = PyAVVideo(encoded["gop250"])
    video.read([3])
    clone = pickle.loads(pickle.dumps(video))
    assert clone._container is None and _indices(clone.read([42])) == [42]


def test_default_backend_and_unknown_backend(encoded):
    assert DEFAULT_BACKEND == "pyav"
    assert isinstance(open_video(encoded["gop250"]), PyAVVideo)
    with pytest.raises(ConfigError, match="backend"):
        open_video(encoded["gop250"], backend="magic")


def test_pyav_unreadable_file_is_a_video_error(tmp_path):
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"not a video" * 50)
    with pytest.raises(VideoError, match="bad.mp4"):
        PyAVVideo(bad)


def test_guard_turns_a_hang_into_a_clear_error_and_recovers():
    guard = DecodeGuard(0.2, what="video 'x.mp4'")
    started = time.perf_counter()
    with pytest.raises(DecodeTimeout, match=r"x\.mp4.*did not finish within 0.2 s"):
        guard(time.sleep, 5.0, action="decoding frame 7")
    assert time.perf_counter() - started < 2.0
    assert guard(lambda x: x + 1, 41) == 42  # a fresh decode thread serves the next call
    with pytest.raises(ZeroDivisionError):  # ordinary errors pass through unchanged
        guard(lambda: 1 / 0)


@pytest.mark.parametrize("backend", sorted(BACKENDS))
def test_a_hanging_decoder_raises_video_error_and_the_reader_is_replaced(encoded, backend, monkeypatch):
    cls = BACKENDS[backend]
    video = cls(encoded["gop250"], decode_limit_s=0.3)
    method = "_batch" if backend == "decord" else "_decode_sorted"
    real = getattr(video, method)
    monkeypatch.setattr(video, method, lambda idx: time.sleep(3))
    with pytest.raises(VideoError, match="did not finish"):
        video.read([5])
    monkeypatch.setattr(video, method, real)
    # the replaced reader reopens the file and seeks: on a loaded machine that alone can take over
    # 0.3 s, so the read after the hang is timed generously (it is the replacement under test)
    video._guard.limit_s = 30.0
    assert _indices(video.read([5])) == [5]


@pytest.mark.parametrize("name", sorted(ENCODINGS))
def test_rgb_image_and_resized_bytes_match_the_array_path(encoded, name):
    import av
    from av.video.reformatter import VideoReformatter

    from medscope_gym.video.pyav_backend import to_rgb, to_rgb_image
    from medscope_gym.video.resize import resize_frames, resized_bytes

    a, b = VideoReformatter(), VideoReformatter()
    with av.open(str(encoded[name])) as container:
        for k, frame in enumerate(container.decode(video=0)):
            if k % 37:
                continue
            rgb = to_rgb(frame, a)
            image = to_rgb_image(frame, b)
            np.testing.assert_array_equal(np.asarray(image), rgb)
            for cap in (None, 90 * 50, 33 * 17):
                expected = resize_frames(rgb[None], cap)[0]
                assert resized_bytes(image, cap) == expected.tobytes()
