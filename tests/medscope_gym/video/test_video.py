import numpy as np
import pytest

from medscope_gym.errors import VideoError
from medscope_gym.video import ArrayVideo, DecordVideo, fit_pixels, open_video, resize_frames
from tests.helpers import frame_index, indexed_frames, indexed_video


@pytest.mark.parametrize(
    ("h", "w", "cap"), [(1080, 1920, 224 * 224), (480, 640, 50_000), (7, 1000, 100), (333, 333, 1)]
)
def test_fit_pixels_respects_budget_and_aspect(h, w, cap):
    fh, fw = fit_pixels(h, w, cap)
    assert fh * fw <= cap and fh >= 1 and fw >= 1
    if min(fh, fw) >= 20:
        assert abs(fw / fh - w / h) / (w / h) < 0.05


def test_fit_pixels_never_upscales():
    assert fit_pixels(120, 160, 224 * 224) == (120, 160)
    assert fit_pixels(120, 160, None) == (120, 160)


def test_resize_frames_shape():
    out = resize_frames(indexed_frames(3, 100, 200), 50 * 100)
    assert out.shape[0] == 3 and out.shape[1] * out.shape[2] <= 5000 and out.dtype == np.uint8


def test_array_video_times_and_index_at():
    video = indexed_video(100, fps=10.0)
    assert (
        video.num_frames == 100 and video.duration == pytest.approx(10.0) and video.fps == pytest.approx(10.0)
    )
    assert video.index_at([0.0, 0.05, 0.1, 0.19, 9.99, 50.0, -3.0]).tolist() == [0, 0, 1, 1, 99, 99, 0]


def test_read_keeps_request_order_and_duplicates():
    video = indexed_video(40)
    frames = video.read([30, 2, 30, 7])
    assert [frame_index(f) for f in frames] == [30, 2, 30, 7]
    with pytest.raises(IndexError):
        video.read([40])


def test_frames_returns_exact_timestamps():
    video = indexed_video(50, fps=25.0)
    frames, times = video.frames([3, 10])
    assert times.tolist() == pytest.approx([3 / 25, 10 / 25])
    assert [frame_index(f) for f in frames] == [3, 10]


def test_array_video_rejects_bad_input():
    with pytest.raises(ValueError, match="uint8"):
        ArrayVideo(np.zeros((2, 4, 4, 3), dtype=np.float32), fps=1)
    with pytest.raises(ValueError, match="fps"):
        ArrayVideo(indexed_frames(2), fps=0)


def test_decord_missing_and_unreadable_files(tmp_path):
    with pytest.raises(VideoError, match="not found"):
        open_video(tmp_path / "nope.mp4")
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"this is not a video" * 100)
    with pytest.raises(VideoError, match="bad.mp4"):
        open_video(bad)


class _OverReportingReader:
    """A reader that claims more frames than it can decode, like decord on some containers."""

    def __init__(self, real: int) -> None:
        self.real = real

    def get_batch(self, indices):
        if max(indices) >= self.real:
            raise RuntimeError("cannot decode")
        return self

    def asnumpy(self):
        return np.zeros((1, 2, 2, 3), np.uint8)

    def seek(self, _):
        pass


@pytest.mark.parametrize(("claimed", "real"), [(100, 100), (100, 97), (1000, 1), (1000, 999), (5, 2)])
def test_frame_count_is_verified(claimed, real):
    video = DecordVideo.__new__(DecordVideo)
    video.path = "x.mp4"
    assert video._verified_count(_OverReportingReader(real), claimed) == real


def test_decord_exact_frames_on_burned_index_video(burned_videos):
    from medscope_gym.synthetic import read_frame_index

    for path, fps, n in burned_videos:
        with DecordVideo(path) as video:
            assert video.num_frames == n
            rng = np.random.default_rng(0)
            idx = rng.choice(n, size=min(n, 40), replace=False)
            frames = video.read(idx)
            assert [read_frame_index(f) for f in frames] == idx.tolist()
            assert video.timestamps[idx].tolist() == (idx / fps).tolist()  # exact float64, not float32
            assert video.duration == n / fps
