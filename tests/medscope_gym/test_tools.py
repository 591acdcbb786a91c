import math

import numpy as np
import pytest

from medscope_gym.errors import ConfigError
from medscope_gym.tools import ToolConfig, ToolError, crop_video, get_frame, preview, run_tool, sample_times
from medscope_gym.video import DecordVideo
from tests.helpers import frame_index, indexed_video

CFG = ToolConfig()


def test_sample_times_one_per_second_at_bin_centres():
    t = sample_times(60.0, 90.0, 1.0, 128)
    assert len(t) == 30 and t[0] == pytest.approx(60.5) and t[-1] == pytest.approx(89.5)


def test_sample_times_are_grid_aligned_whatever_the_interval():
    assert sample_times(60.3, 63.0, 1.0, 128).tolist() == [60.5, 61.5, 62.5]
    assert sample_times(60.5, 62.5, 1.0, 128).tolist() == [60.5, 61.5, 62.5]
    assert sample_times(0.0, 2.0, 4.0, 128).tolist() == [(k + 0.5) / 4 for k in range(8)]


def test_sample_times_thins_long_intervals_evenly_on_the_grid():
    t = sample_times(0.0, 1000.0, 1.0, 128)
    assert len(t) == 128 and t[0] == 0.5 and t[-1] == 999.5
    assert np.all(np.mod(t - 0.5, 1.0) == 0) and np.ptp(np.diff(t)) <= 1.0


def test_sample_times_short_interval_gives_its_midpoint():
    assert sample_times(5.6, 5.9, 1.0, 128).tolist() == [5.75]


def test_crop_returns_frames_matching_their_timestamps():
    video = indexed_video(25 * 40)  # 40 s at 25 fps
    out = crop_video(video, {"start_time": 10, "end_time": 20}, CFG)
    assert out.interval == (10.0, 20.0) and len(out.timestamps) == 10
    for frame, t in zip(out.frames, out.timestamps):
        assert frame_index(frame) == round(t * 25)
        assert 10.0 <= t <= 20.0


def test_crop_end_is_clamped_to_duration():
    video = indexed_video(250)  # 10 s
    out = crop_video(video, {"start_time": 8, "end_time": 1e6}, CFG)
    assert out.interval == (8.0, 10.0)


def test_crop_resizes_to_pixel_cap():
    video = indexed_video(50, height=480, width=640)
    out = crop_video(video, {"start_time": 0, "end_time": 2}, ToolConfig(crop_max_pixels=100 * 100))
    assert out.frames.shape[1] * out.frames.shape[2] <= 100 * 100


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ({"start_time": -1, "end_time": 5}, ">= 0"),
        ({"start_time": 5, "end_time": 5}, "smaller than end_time"),
        ({"start_time": 6, "end_time": 2}, "smaller than end_time"),
        ({"start_time": 11, "end_time": 12}, "past the end"),
        ({"start_time": "soon", "end_time": 2}, "number of seconds"),
        ({"start_time": "nan", "end_time": 2}, "finite"),
        ({"start_time": True, "end_time": 2}, "number of seconds"),
        ({"end_time": 2}, "missing argument 'start_time'"),
        ({"start_time": 1, "end_time": 2, "fps": 30}, "unknown argument"),
        ({"start_time": 1, "end_time": 2, "video_path": "/etc/passwd"}, "only name this episode's video"),
        ({"start_time": 1, "end_time": 2, "video_path": 7}, "only name this episode's video"),
    ],
)
def test_crop_rejects_bad_arguments(args, message):
    with pytest.raises(ToolError, match=message):
        crop_video(indexed_video(250), args, CFG, video_names=("videos/v.mp4",))


def test_video_path_may_name_the_own_video():
    video = indexed_video(250)
    for name in ("videos/v.mp4", "v.mp4", "/abs/suite/videos/v.mp4"):
        out = crop_video(
            video,
            {"start_time": 1, "end_time": 2, "video_path": name},
            CFG,
            video_names=("videos/v.mp4", "/abs/suite/videos/v.mp4"),
        )
        assert len(out.timestamps) == 1


def test_clock_and_numeric_string_times():
    video = indexed_video(25 * 100)
    out = crop_video(video, {"start_time": "01:05", "end_time": "66.5"}, CFG)
    assert out.interval == (65.0, 66.5)


def test_get_frame_returns_target_and_neighbours():
    video = indexed_video(250)
    out = get_frame(video, {"timestamp": 4.0}, CFG)
    assert [frame_index(f) for f in out.frames] == [99, 100, 101]
    assert out.timestamps.tolist() == pytest.approx([99 / 25, 100 / 25, 101 / 25])


@pytest.mark.parametrize(("t", "expected"), [(0.0, [0, 1, 2]), (10.0, [247, 248, 249])])
def test_get_frame_at_edges_stays_inside(t, expected):
    out = get_frame(indexed_video(250), {"timestamp": t}, CFG)
    assert [frame_index(f) for f in out.frames] == expected


def test_get_frame_native_resolution_unless_capped():
    video = indexed_video(30, height=480, width=640)
    assert get_frame(video, {"timestamp": 0.5}, CFG).frames.shape[1:3] == (480, 640)
    capped = get_frame(video, {"timestamp": 0.5}, ToolConfig(frame_max_pixels=10_000)).frames
    assert capped.shape[1] * capped.shape[2] <= 10_000


@pytest.mark.parametrize("t", [-0.1, 10.5, float("inf")])
def test_get_frame_rejects_out_of_range(t):
    with pytest.raises(ToolError):
        get_frame(indexed_video(250), {"timestamp": t}, CFG)


def test_preview_caps_frames_and_pixels():
    video = indexed_video(2000, fps=1.0, height=300, width=400)  # 2000 s at 1 fps
    out = preview(video, CFG)
    assert len(out.timestamps) == 512
    assert out.frames.shape[1] * out.frames.shape[2] <= 224 * 224
    assert np.all(np.diff(out.timestamps) > 0)


def test_run_tool_unknown_name():
    with pytest.raises(ToolError, match="unknown tool"):
        run_tool("zoom", {}, indexed_video(10), CFG)


@pytest.mark.parametrize(
    "bad",
    [
        {"crop_fps": 0},
        {"crop_max_frames": 0},
        {"frame_max_pixels": -1},
        {"preview_fps": float("nan")},
        {"crop_fsp": 1.0},
    ],
)
def test_tool_config_validation(bad):
    with pytest.raises(ConfigError):
        ToolConfig.from_any(bad)


def test_tools_exact_on_burned_index_files(burned_videos):
    from medscope_gym.synthetic import read_frame_index

    for path, fps, _ in burned_videos:
        with DecordVideo(path) as video:
            for out in (
                crop_video(video, {"start_time": 3.3, "end_time": 17.9}, CFG),
                get_frame(video, {"timestamp": 12.34}, CFG),
                get_frame(video, {"timestamp": video.duration}, CFG),
                preview(video, CFG),
            ):
                got = [read_frame_index(f) for f in out.frames]
                assert got == [round(t * fps) for t in out.timestamps], (path, out.name)


# Numbers an agent can write, direct (as parsed JSON values): every one must give a finite time or a
# ToolError, never another exception (an OverflowError used to escape for integers past 1e308).
_HUGE_INT_ARGS = [
    10**309,
    -(10**309),
    10**400 + 1,
    10**5000,  # past Python's int-string limit: even str() of it raises
    2**1024,
]
_BAD_TIME_ARGS = [
    *_HUGE_INT_ARGS,
    "1" + "0" * 309,
    "9" * 5000,
    "1e309",
    "-1e309",
    "nan",
    "NaN",
    "inf",
    "-inf",
    "Infinity",
    float("nan"),
    float("inf"),
    True,
    False,
    None,
    [[1]],
    [[[[[[[[[[2]]]]]]]]]],
    [1, 2],
    {"seconds": 3},
    "",
    "1_0",
    "٣",
    "10:61",
    "1:60:00",
    "12:34:56:78",
    "0x10",
]


@pytest.mark.parametrize("value", _BAD_TIME_ARGS, ids=range(len(_BAD_TIME_ARGS)))
@pytest.mark.parametrize("tool", ["get_frame", "crop_video start", "crop_video end"])
def test_numeric_edge_cases_give_tool_errors(tool, value):
    name, _, which = tool.partition(" ")
    args = {"timestamp": value} if name == "get_frame" else {"start_time": 1, "end_time": 5}
    if which:
        args[f"{which}_time"] = value
    with pytest.raises(ToolError) as err:
        run_tool(name, args, indexed_video(250), CFG)
    assert len(str(err.value)) < 300


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        (-0, 0.0),
        (-0.0, 0.0),
        ("-0", 0.0),
        ("-0.0", 0.0),
        (1e-400, 0.0),
        ("3.5 s", 3.5),
        ("1e0", 1.0),
        ("01:02", 62.0),
        ("1:00:01.5", 3601.5),
        (" 7 ", 7.0),
        (10**2, 100.0),
    ],
)
def test_numeric_edge_cases_that_are_valid_times(value, seconds):
    out = get_frame(indexed_video(25 * 4000, height=4, width=4), {"timestamp": value}, CFG)
    assert out.timestamp == seconds and math.copysign(1.0, out.timestamp) == 1.0
    assert "-0" not in out.text


def test_huge_integer_message_is_short_and_readable():
    with pytest.raises(ToolError, match=r"'timestamp' is too large: got an integer of about 5001 digits"):
        get_frame(indexed_video(250), {"timestamp": 10**5000}, CFG)


def test_run_tool_never_raises_other_exceptions_on_odd_names_and_arguments():
    for name in (None, 3, ["get_frame"], "get_frame"):
        for arguments in ({"timestamp": 10**309}, [1], {"x" * 10_000: 1, **{str(i): i for i in range(20)}}):
            with pytest.raises(ToolError):
                run_tool(name, arguments, indexed_video(250), CFG)
