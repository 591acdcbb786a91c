"""The frame store serves exactly what direct decoding would, and is built once, atomically."""

from __future__ import annotations

import pickle
import shutil
import threading
import time
import warnings

import numpy as np
import pytest

from medscope_gym.errors import VideoError
from medscope_gym.store import (
    FrameStore,
    StoredVideo,
    StoreSettings,
    content_fingerprint,
    ensure_store,
    grid_indices,
    open_tool_video,
    store_key,
    store_path,
)
from medscope_gym.store import builder as builder_mod
from medscope_gym.synthetic import read_frame_index
from medscope_gym.tools import ToolConfig, crop_video, get_frame, preview, sample_times
from medscope_gym.video import DecodeTimeout, DecordVideo, PyAVVideo, resize_frames
from medscope_gym.video.pyav_backend import index_packets
from tests.medscope_gym.store.conftest import ENCODINGS

CFG = ToolConfig()
CROPS = [(0.0, 20.0), (3.3, 17.9), (0.0, 1.0), (12.2, 12.4), (18.0, 99.0), (0.49, 0.51), (5.0, 6.0)]


def _idx(frames):
    return [read_frame_index(f) for f in frames]


@pytest.mark.parametrize("name", sorted(ENCODINGS))
def test_store_path_equals_direct_path(store_videos, name, tmp_path):
    path = store_videos[name]
    stored = open_tool_video(path, frame_store=tmp_path, settings=StoreSettings())
    assert isinstance(stored, StoredVideo)
    thin = ToolConfig(crop_max_frames=7)  # thinned grids are still served from the store
    for backend in ("pyav", "decord"):
        direct = PyAVVideo(path) if backend == "pyav" else DecordVideo(path)
        np.testing.assert_allclose(
            stored.timestamps, direct.timestamps, rtol=0, atol=1e-5 if name == "vfr" else 0
        )
        for cfg in (CFG, thin):
            for start, end in CROPS:
                args = {"start_time": start, "end_time": end}
                a, b = crop_video(stored, args, cfg), crop_video(direct, args, cfg)
                np.testing.assert_array_equal(a.frames, b.frames, err_msg=f"{name} {backend} {args}")
                np.testing.assert_allclose(a.timestamps, b.timestamps, rtol=0, atol=1e-5)
            a, b = preview(stored, cfg), preview(direct, cfg)
            np.testing.assert_array_equal(a.frames, b.frames)
        a, b = get_frame(stored, {"timestamp": 7.77}, CFG), get_frame(direct, {"timestamp": 7.77}, CFG)
        np.testing.assert_array_equal(a.frames, b.frames)
        assert a.frames.shape[1:3] == direct.size  # native resolution
    # The returned frames are the ones claimed: the burned index matches each timestamp.
    out = crop_video(stored, {"start_time": 0.0, "end_time": 20.0}, CFG)
    assert _idx(out.frames) == stored.index_at(out.timestamps).tolist()


def test_store_holds_exactly_the_grid_frames(store_videos, tmp_path):
    path = store_videos["vfr"]
    store = FrameStore.load(ensure_store(path, tmp_path, StoreSettings(fps=2.0)))
    video = PyAVVideo(path)
    expected = np.unique(video.index_at(sample_times(0.0, video.duration, 2.0, 10**9)))
    assert (
        store.indices.tolist()
        == expected.tolist()
        == grid_indices(video.timestamps, video.duration, store.settings).tolist()
    )
    assert _idx(store.frames) == store.indices.tolist()  # 160×120 fits 224²: stored unresized
    assert store.index.num_frames == video.num_frames


def test_resized_store_matches_the_tools_resize_to_the_pixel(store_videos, tmp_path):
    path = store_videos["gop25-bframes"]
    settings = StoreSettings(max_pixels=80 * 60)
    store = FrameStore.load(ensure_store(path, tmp_path, settings))
    direct = PyAVVideo(path)
    np.testing.assert_array_equal(store.frames, resize_frames(direct.read(store.indices), 80 * 60))
    stored = StoredVideo(path, store)
    cfg = ToolConfig(crop_max_pixels=80 * 60)
    a = crop_video(stored, {"start_time": 2, "end_time": 9}, cfg)
    b = crop_video(direct, {"start_time": 2, "end_time": 9}, cfg)
    np.testing.assert_array_equal(a.frames, b.frames)


def test_off_grid_and_off_size_requests_decode_exactly(store_videos, tmp_path):
    path = store_videos["gop250"]
    stored = StoredVideo(path, ensure_store(path, tmp_path, StoreSettings()))
    assert stored._exact is None  # grid crops never open a decoder
    crop_video(stored, {"start_time": 2, "end_time": 15}, CFG)
    assert stored._exact is None
    out = crop_video(stored, {"start_time": 12.2, "end_time": 12.4}, CFG)  # midpoint 12.3 s: off the grid
    assert _idx(out.frames) == [307] and out.timestamps.tolist() == [307 / 25]
    assert stored._exact is not None
    frames, times = stored.frames([25, 26, 37], max_pixels=None)  # native size: not what the store holds
    assert _idx(frames) == [25, 26, 37] and times.tolist() == [1.0, 1.04, 1.48]


def test_get_frame_is_native_exact_and_cached(store_videos, tmp_path, monkeypatch):
    path = store_videos["odd-size"]
    stored = StoredVideo(path, ensure_store(path, tmp_path, StoreSettings()))
    out = get_frame(stored, {"timestamp": 10.0}, CFG)
    assert out.frames.shape == (3, 114, 202, 3) and _idx(out.frames) == [249, 250, 251]
    calls = []
    exact = stored._exact_video()
    real = exact._read
    monkeypatch.setattr(exact, "_read", lambda idx: calls.append(idx.tolist()) or real(idx))
    again = get_frame(stored, {"timestamp": 10.04}, CFG)  # 250, 251 cached; only 252 decodes
    assert _idx(again.frames) == [250, 251, 252] and calls == [[252]]


def test_store_is_built_once_and_keyed_by_content_and_settings(store_videos, tmp_path, monkeypatch):
    path = store_videos["gop250"]
    builds = []
    real = builder_mod.build_store
    monkeypatch.setattr(builder_mod, "build_store", lambda *a, **k: builds.append(1) or real(*a, **k))
    first = ensure_store(path, tmp_path / "s", StoreSettings())
    assert ensure_store(path, tmp_path / "s", StoreSettings()) == first and len(builds) == 1
    copy = tmp_path / "copy.mp4"
    shutil.copy(path, copy)  # same content elsewhere: same key, the store is reused
    assert store_key(copy, StoreSettings()) == first.name
    assert ensure_store(copy, tmp_path / "s", StoreSettings()) == first and len(builds) == 1
    assert store_key(path, StoreSettings(fps=2.0)) != first.name
    assert store_key(store_videos["vfr"], StoreSettings()) != first.name
    assert content_fingerprint(path) != content_fingerprint(store_videos["gop25-bframes"])


def test_concurrent_builders_share_one_build(store_videos, tmp_path, monkeypatch):
    path = store_videos["gop25-bframes"]
    builds = []
    real = builder_mod.build_store

    def slow_build(*a, **k):
        builds.append(1)
        time.sleep(0.3)
        return real(*a, **k)

    monkeypatch.setattr(builder_mod, "build_store", slow_build)
    results = []
    threads = [
        threading.Thread(target=lambda: results.append(ensure_store(path, tmp_path, StoreSettings())))
        for _ in range(3)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(results)) == 1 and len(results) == 3 and len(builds) == 1


def test_a_failed_build_leaves_nothing_behind_and_the_next_one_succeeds(store_videos, tmp_path, monkeypatch):
    path = store_videos["gop250"]
    final = store_path(path, tmp_path, StoreSettings())
    stale = tmp_path / f".{final.name}.99999.tmp"  # left by a killed build
    stale.mkdir()
    (stale / "frames.npy").write_bytes(b"partial")

    def hang(self):
        time.sleep(2)
        return True

    monkeypatch.setattr(builder_mod._DecodePass, "chunk", hang)
    with pytest.raises(DecodeTimeout):
        ensure_store(path, tmp_path, StoreSettings(), decode_limit_s=0.2)
    assert not final.exists() and not stale.exists()
    assert not list(tmp_path.glob(f".{final.name}.*.tmp"))
    monkeypatch.undo()
    assert FrameStore.load(ensure_store(path, tmp_path, StoreSettings())).index.num_frames == 500


def test_stored_video_pickles_without_frames(store_videos, tmp_path):
    path = store_videos["gop250"]
    stored = StoredVideo(path, ensure_store(path, tmp_path, StoreSettings()))
    blob = pickle.dumps(stored)
    assert len(blob) < 50_000
    clone = pickle.loads(blob)
    a, b = (
        crop_video(clone, {"start_time": 1, "end_time": 9}, CFG),
        crop_video(stored, {"start_time": 1, "end_time": 9}, CFG),
    )
    np.testing.assert_array_equal(a.frames, b.frames)


def test_broken_store_is_a_video_error(store_videos, tmp_path):
    root = ensure_store(store_videos["gop250"], tmp_path, StoreSettings())
    (root / "indices.npy").unlink()
    with pytest.raises(VideoError, match="cannot be read"):
        FrameStore.load(root)


def test_unwritable_store_folder_falls_back_to_direct_decoding(store_videos, tmp_path):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("x")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        video = open_tool_video(store_videos["gop250"], frame_store=blocker / "stores")
    assert isinstance(video, PyAVVideo) and any("decoding" in str(w.message) for w in caught)
    assert open_tool_video(store_videos["gop250"], frame_store=None).__class__ is PyAVVideo


def _same_store(a: FrameStore, b: FrameStore) -> None:
    np.testing.assert_array_equal(a.indices, b.indices)
    np.testing.assert_array_equal(a.index.pts, b.index.pts)
    np.testing.assert_array_equal(a.index.keyframe, b.index.keyframe)
    np.testing.assert_array_equal(a.frames, b.frames)
    assert a.manifest["num_frames"] == b.manifest["num_frames"]


@pytest.mark.parametrize("name", sorted(ENCODINGS))
def test_one_pass_build_indexes_like_the_packet_index_and_stores_the_grid(store_videos, name, tmp_path):
    path = store_videos[name]
    settings = StoreSettings(fps=3.0, max_pixels=90 * 50)  # a resize, and grid times close to frame edges
    done = []
    threaded = builder_mod.build_store(path, tmp_path / "a", settings, progress=done.append)
    serial = builder_mod.build_store(path, tmp_path / "b", settings, overlap=False)
    _same_store(threaded, serial)
    direct = PyAVVideo(path)
    np.testing.assert_array_equal(threaded.index.pts, index_packets(path).pts)
    np.testing.assert_array_equal(threaded.index.keyframe, direct.index.keyframe)
    assert threaded.index.num_frames == direct.num_frames == sum(done)
    assert threaded.indices.tolist() == grid_indices(direct.timestamps, direct.duration, settings).tolist()
    np.testing.assert_array_equal(threaded.frames, resize_frames(direct.read(threaded.indices), 90 * 50))


def test_frames_picked_off_the_grid_or_missed_during_the_pass_are_fixed_exactly(
    store_videos, tmp_path, monkeypatch
):
    path = store_videos["vfr"]
    settings = StoreSettings(fps=2.0, max_pixels=80 * 60)
    reference = builder_mod.build_store(path, tmp_path / "ref", settings)
    assembled = []
    real_assemble = builder_mod._assemble
    monkeypatch.setattr(builder_mod, "_assemble", lambda *a: assembled.append(1) or real_assemble(*a))
    # Extra picks: the constant-rate rule is never dropped on this variable-rate file.
    monkeypatch.setattr(builder_mod, "_duration_guess", lambda container, stream: 1e9)
    _same_store(builder_mod.build_store(path, tmp_path / "extra", settings), reference)
    assert assembled == [1]
    # Missed picks: every third grid frame is never handed to the writer, so it is decoded exactly.
    real_pick = builder_mod._DecodePass._pick
    count = iter(range(10**6))
    monkeypatch.setattr(
        builder_mod._DecodePass,
        "_pick",
        lambda self, frame, pts: next(count) % 3 == 1 or real_pick(self, frame, pts),
    )
    for overlap in (True, False):
        _same_store(
            builder_mod.build_store(path, tmp_path / f"missed-{overlap}", settings, overlap=overlap),
            reference,
        )
    assert assembled == [1, 1, 1]


@pytest.mark.parametrize("overlap", [True, False])
def test_a_failing_writer_fails_the_build_and_leaves_nothing(store_videos, tmp_path, monkeypatch, overlap):
    path = store_videos["gop250"]

    def broken(image, max_pixels):
        raise OSError("disk full")

    monkeypatch.setattr(builder_mod, "resized_bytes", broken)
    with pytest.raises(OSError, match="disk full"):  # an OSError: the env then decodes directly
        builder_mod.build_store(path, tmp_path / "s", StoreSettings(), overlap=overlap)
    with pytest.raises(OSError, match="disk full"):
        ensure_store(path, tmp_path / "stores", StoreSettings())
    assert [p.name for p in (tmp_path / "stores").iterdir() if not p.name.endswith(".lock")] == []
    monkeypatch.undo()
    assert FrameStore.load(ensure_store(path, tmp_path / "stores", StoreSettings())).index.num_frames == 500


def _record_passes(monkeypatch) -> list:
    passes = []
    real_finish = builder_mod._DecodePass.finish
    monkeypatch.setattr(
        builder_mod._DecodePass, "finish", lambda self, video: passes.append(self) or real_finish(self, video)
    )
    return passes


@pytest.mark.parametrize(("keyint", "fps"), [(7, 1.0), (25, 1.0), (25, 3.0), (100, 2.0)])
def test_gop_tails_no_grid_frame_needs_are_left_out_exactly(tmp_path, monkeypatch, keyint, fps):
    from medscope_gym.synthetic import generate_procedure, render_video

    path = tmp_path / f"p-only-k{keyint}.mp4"  # H.264 without B-frames: every keyframe an IDR
    render_video(
        generate_procedure(seed=4, duration_s=12.0, fps=30.0),
        path,
        width=160,
        height=120,
        keyframe_interval=keyint,
        burn_index=True,
    )
    settings = StoreSettings(fps=fps, max_pixels=80 * 60)
    passes = _record_passes(monkeypatch)
    leaner = builder_mod.build_store(path, tmp_path / "lean", settings)
    monkeypatch.setattr(builder_mod._DecodePass, "_tail_to_leave_out", lambda self, group, ideal: 0)
    full = builder_mod.build_store(path, tmp_path / "full", settings)
    assert passes[0].left_out > 0 and passes[1].left_out == 0
    _same_store(leaner, full)
    direct = PyAVVideo(path)
    assert leaner.indices.tolist() == grid_indices(direct.timestamps, direct.duration, settings).tolist()
    assert _idx(resize_frames(direct.read(leaner.indices), None)) == leaner.indices.tolist()
    np.testing.assert_array_equal(leaner.frames, resize_frames(direct.read(leaner.indices), 80 * 60))


def test_nothing_is_left_out_with_b_frames(store_videos, tmp_path, monkeypatch):
    passes = _record_passes(monkeypatch)
    builder_mod.build_store(store_videos["gop25-bframes"], tmp_path / "s", StoreSettings())
    assert passes[0].left_out == 0
