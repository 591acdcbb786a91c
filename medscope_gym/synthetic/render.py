"""Render a :class:`Procedure` to an H.264 mp4 whose pixels carry its ground truth.

Layout (top to bottom): an optional frame-index band, the moving "tissue" field (phase →
colour and texture, events → a small mark) and an instrument tray (one glyph slot per
Cholec80 tool). Every layer is precomputed directly in YUV 4:2:0, so a frame costs a few
array copies and the encoder dominates the run time.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator
from contextlib import contextmanager
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from medscope_gym.errors import ConfigError
from medscope_gym.synthetic.procedure import CHOLEC80_PHASES, CHOLEC80_TOOLS, EVENT_KINDS, Procedure

__all__ = [
    "h264_writer",
    "EVENT_MARK_COLORS",
    "INDEX_BITS",
    "PHASE_COLORS",
    "TOOL_COLORS",
    "VFR_TIME_BASE",
    "event_mark_box",
    "event_mark_mask",
    "frame_timestamps",
    "read_frame_index",
    "render_video",
]

INDEX_BITS = 20  # frame indices up to 2**20 - 1 (11.6 h at 25 fps)
VFR_TIME_BASE = Fraction(1, 90000)

PHASE_COLORS: dict[str, tuple[int, int, int]] = {
    "Preparation": (120, 90, 110),
    "CalotTriangleDissection": (150, 100, 70),
    "ClippingCutting": (90, 110, 140),
    "GallbladderDissection": (110, 130, 80),
    "GallbladderPackaging": (140, 120, 150),
    "CleaningCoagulation": (70, 120, 120),
    "GallbladderRetraction": (150, 140, 90),
}
TOOL_COLORS: dict[str, tuple[int, int, int]] = {
    "Grasper": (60, 200, 60),
    "Bipolar": (50, 90, 230),
    "Hook": (230, 210, 40),
    "Scissors": (220, 50, 200),
    "Clipper": (40, 210, 220),
    "Irrigator": (235, 235, 235),
    "SpecimenBag": (240, 140, 30),
}
EVENT_MARK_COLORS: dict[str, tuple[int, int, int]] = {
    "bleeding": (200, 15, 15),
    "clip_applied": (215, 215, 225),
    "duct_cut": (15, 15, 15),
    "gallbladder_perforation": (140, 210, 20),
    "irrigation_flush": (120, 200, 255),
    "coagulation": (255, 245, 140),
    "specimen_bagged": (250, 120, 0),
}
_TRAY_RGB = (28, 28, 28)
_SLOT_RGB = (48, 48, 48)
_MARGIN = 6  # background overscan for the motion, pixels
_DRIFT = 5.0  # camera drift amplitude, pixels (< _MARGIN)
_NOISE_AMP = 4  # per-frame luma noise is uniform in [-_NOISE_AMP, _NOISE_AMP]
_NOISE_BANK = 17
# Diamond motion search, subpel level 1: 1.25× faster encode than veryfast's default for +50% bytes.
_FAST_MOTION_SEARCH = "me=dia:subme=1"


def render_video(
    procedure: Procedure,
    path: str | os.PathLike[str],
    *,
    width: int = 160,
    height: int = 120,
    keyframe_interval: int = 250,
    bframes: int = 0,
    burn_index: bool = False,
    crf: int = 23,
    vfr_jitter: float = 0.0,
    preset: str = "veryfast",
) -> None:
    """Write ``procedure`` as an H.264 (yuv420p) mp4 of exactly ``procedure.num_frames`` frames.

    GOPs are fixed (``keyframe_interval``, no scene-cut keyframes) so decode-exactness tests
    know where the keyframes are. ``burn_index`` paints the frame index as a binary code in a
    top band (see :func:`read_frame_index`). ``vfr_jitter`` > 0 writes a variable-frame-rate
    file: frame ``i`` is stamped at :func:`frame_timestamps` (time base 1/90000) while its
    content stays that of frame ``i``. The file is written beside ``path`` and renamed into place.
    """
    _check_geometry(width, height, burn_index)
    if not 0.0 <= vfr_jitter < 1.0:
        raise ConfigError(f"vfr_jitter must be in [0, 1), got {vfr_jitter!r}")
    if keyframe_interval < 1 or bframes < 0:
        raise ConfigError(f"need keyframe_interval >= 1 and bframes >= 0, got {keyframe_interval}, {bframes}")
    if burn_index and procedure.num_frames > 2**INDEX_BITS:
        raise ConfigError(
            f"burn_index holds {INDEX_BITS} bits: at most {2**INDEX_BITS} frames, got {procedure.num_frames}"
        )
    layers = _Layers(procedure, width, height)
    n, fps = procedure.num_frames, procedure.fps
    rate = Fraction(fps).limit_denominator(1001)
    options = {
        "crf": str(crf),
        "preset": preset,
        "x264-params": f"keyint={keyframe_interval}:min-keyint={keyframe_interval}:scenecut=0:"
        f"bframes={bframes}:threads={_encoder_threads(width, height)}:" + _FAST_MOTION_SEARCH,
    }
    with h264_writer(path, width, height, rate, options) as (container, stream):
        if vfr_jitter > 0:
            stream.codec_context.time_base = VFR_TIME_BASE
            stream.time_base = VFR_TIME_BASE
            ticks = frame_timestamps(n, fps, vfr_jitter, procedure.seed) * VFR_TIME_BASE.denominator
            pts = np.round(ticks).astype(np.int64)
            time_base = VFR_TIME_BASE
        else:
            pts = np.arange(n, dtype=np.int64)
            time_base = 1 / rate
        for i in range(n):
            frame = av.VideoFrame(width, height, "yuv420p")
            layers.compose(i, _plane_views(frame, width, height), burn_index)
            frame.pts = int(pts[i])
            frame.time_base = time_base
            container.mux(stream.encode(frame))


@contextmanager
def h264_writer(
    path: str | Path, width: int, height: int, rate: Fraction, options: dict[str, str]
) -> Iterator[tuple[av.container.OutputContainer, av.video.stream.VideoStream]]:
    """An H.264 (yuv420p) stream written atomically: a private temporary file, renamed once complete.

    Yields ``(container, stream)``; mux each encoded frame into ``container``. On leaving, the encoder is
    flushed and the file renamed to ``path``; on an error the temporary file is removed.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp{path.suffix}")
    try:
        with av.open(str(tmp), mode="w") as container:
            stream = container.add_stream("libx264", rate=rate)
            stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
            stream.options = options
            yield container, stream
            container.mux(stream.encode(None))
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def frame_timestamps(num_frames: int, fps: float, vfr_jitter: float, seed: int) -> np.ndarray:
    """Presentation times (s) of a VFR render: ``(i + u_i) / fps`` with ``u_i ~ U(-j/2, j/2)``, ``u_0 = 0``.

    Strictly increasing for ``vfr_jitter < 1``; :func:`render_video` rounds them to 1/90000 s.
    """
    rng = np.random.default_rng([int(seed), 90000])
    u = rng.uniform(-vfr_jitter / 2, vfr_jitter / 2, size=num_frames)
    u[0] = 0.0
    return (np.arange(num_frames) + u) / fps


def read_frame_index(frame: np.ndarray) -> int:
    """Decode the index burned in by ``render_video(..., burn_index=True)`` from an RGB or grey frame.

    The frame must be at the written resolution. Bits are ``INDEX_BITS`` square blocks (side
    ``_index_block(width)``) along the top-left edge, most significant first, white = 1.
    """
    arr = np.asarray(frame)
    if arr.ndim == 3:
        arr = arr.mean(axis=2)
    b = _index_block(arr.shape[1])
    q = max(1, b // 4)
    band = arr[q : b - q, : INDEX_BITS * b].astype(np.float32)
    cells = band.reshape(band.shape[0], INDEX_BITS, b)[:, :, q : b - q].mean(axis=(0, 2))
    value = 0
    for bit in cells > 128:
        value = (value << 1) | int(bit)
    return value


def event_mark_box(procedure: Procedure, index: int, width: int, height: int) -> tuple[int, int, int, int]:
    """``(x0, y0, x1, y1)`` of the mark of ``procedure.events[index]`` in a ``width``×``height`` render."""
    geo = _Geometry(width, height)
    rng = np.random.default_rng([procedure.seed, 7919, index])
    m = geo.mark
    x = 2 * int(rng.integers(int(0.1 * width) // 2, (int(0.9 * width) - m) // 2 + 1))
    y = 2 * int(rng.integers((geo.field_top + 2) // 2, (geo.field_bottom - m - 2) // 2 + 1))
    return x, y, x + m, y + m


def event_mark_mask(kind: str, width: int, height: int) -> np.ndarray:
    """Boolean ``(m, m)`` shape of an event kind's mark (``m`` = the mark's side for this size)."""
    m = _Geometry(width, height).mark
    c = (np.arange(m) + 0.5) / m - 0.5  # cell centres in [-0.5, 0.5)
    yy, xx = np.meshgrid(c, c, indexing="ij")
    rr = np.hypot(xx, yy)
    shapes = {
        "bleeding": rr <= 0.5,
        "clip_applied": np.abs(yy) <= 0.25,
        "duct_cut": (np.abs(yy) <= 0.25) & (np.abs(xx) >= 0.15),
        "gallbladder_perforation": (rr <= 0.5) & (rr >= 0.22),
        "irrigation_flush": np.abs(xx) <= (yy + 0.5) * 0.5,
        "coagulation": (np.abs(xx) <= 0.15) | (np.abs(yy) <= 0.15),
        "specimen_bagged": np.ones((m, m), dtype=bool),
    }
    if kind not in shapes:
        raise ConfigError(f"unknown event kind {kind!r}; expected one of {', '.join(EVENT_KINDS)}")
    return shapes[kind]


# --------------------------------------------------------------------------------------- internals


def _check_geometry(width: int, height: int, burn_index: bool) -> None:
    if width % 2 or height % 2 or width < 64 or height < 48:
        raise ConfigError(f"width and height must be even and at least 64×48, got {width}×{height}")
    if burn_index and _index_block(width) < 4:
        raise ConfigError(f"burn_index needs width >= {INDEX_BITS * 4}, got {width}")


def _encoder_threads(width: int, height: int) -> int:
    """x264 threads: on small frames threading costs more than it saves (measured 1.2× faster single)."""
    return 1 if width * height <= 640 * 360 else 0  # 0 = x264's automatic choice


def _index_block(width: int) -> int:
    """Side of one index bit's block: even, so it lines up with the chroma grid."""
    return (width // INDEX_BITS) // 2 * 2


class _Geometry:
    """Pixel layout shared by the renderer and :func:`event_mark_box`."""

    def __init__(self, width: int, height: int) -> None:
        self.width, self.height = width, height
        self.band = max(4, _index_block(width))
        self.slot = max(6, min(width // 8, height // 5)) // 2 * 2
        self.tray = self.slot + 4
        self.field_top = self.band
        self.field_bottom = height - self.tray  # the background covers rows [0, field_bottom)
        self.mark = max(4, int(round(min(width, height) * 0.07)) // 2 * 2)
        gap = (width - len(CHOLEC80_TOOLS) * self.slot) // (len(CHOLEC80_TOOLS) + 1)
        self.slot_x = [(gap + k * (self.slot + gap)) // 2 * 2 for k in range(len(CHOLEC80_TOOLS))]


def _rgb_to_yuv(rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """BT.601 limited-range Y (full res) and U, V (2×2 averaged) of a float RGB image with even sides."""
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    y = 16 + (65.481 * r + 128.553 * g + 24.966 * b) / 255
    u = 128 + (-37.797 * r - 74.203 * g + 112.0 * b) / 255
    v = 128 + (112.0 * r - 93.786 * g - 18.214 * b) / 255

    def half(p: np.ndarray) -> np.ndarray:
        return p.reshape(p.shape[0] // 2, 2, p.shape[1] // 2, 2).mean(axis=(1, 3))

    def u8(p: np.ndarray) -> np.ndarray:
        return np.clip(np.round(p), 0, 255).astype(np.uint8)

    return u8(y), u8(half(u)), u8(half(v))


def _glyph(tool: str, s: int) -> np.ndarray:
    """Boolean ``(s, s)`` glyph of a tool: a distinct shape per tool, on top of its colour."""
    c = (np.arange(s) + 0.5) / s
    yy, xx = np.meshgrid(c, c, indexing="ij")
    t = 0.14
    shapes = {
        "Grasper": np.abs(np.abs(xx - 0.5) - 0.35 * (1 - yy)) <= t / 1.5,  # open jaws, a V
        "Bipolar": (np.abs(xx - 0.3) <= t / 1.5) | (np.abs(xx - 0.7) <= t / 1.5),  # two tines
        "Hook": ((np.abs(xx - 0.35) <= t) & (yy <= 0.8)) | ((yy >= 0.65) & (yy <= 0.85) & (xx >= 0.35)),
        "Scissors": (np.abs(xx - yy) <= t) | (np.abs(xx + yy - 1) <= t),  # an X
        "Clipper": ((xx <= 0.3) | (yy <= 0.25) | (yy >= 0.75)) & (xx >= 0.1),  # a bracket
        "Irrigator": (np.abs(xx - 0.5) <= 0.2) & (yy >= 0.1),  # a thick tube
        "SpecimenBag": np.hypot(xx - 0.5, yy - 0.5) <= 0.42,  # a round bag
    }
    return shapes[tool]


class _Layers:
    """Precomputed YUV layers of one procedure at one size; :meth:`compose` paints one frame."""

    def __init__(self, procedure: Procedure, width: int, height: int) -> None:
        self.p = procedure
        self.geo = geo = _Geometry(width, height)
        w, hf = width, geo.field_bottom
        # Phase backgrounds with overscan, drawn ``sub`` times finer than the frame so the camera
        # can drift by sub-pixel steps (every frame moves); luma lowered so that adding noise in
        # [0, 2A] cannot overflow.
        self.sub = sub = 4 if width * height <= 320 * 240 else 2 if width * height <= 960 * 540 else 1
        self.bg: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        for i, name in enumerate(CHOLEC80_PHASES):
            rgb = _texture(i, PHASE_COLORS[name], sub * (hf + 2 * _MARGIN), sub * (w + 2 * _MARGIN), sub)
            y, u, v = _rgb_to_yuv(rgb)
            y = (np.clip(y.astype(np.int16), _NOISE_AMP, 255 - _NOISE_AMP) - _NOISE_AMP).astype(np.uint8)
            self.bg.append((y, u, v))
        rng = np.random.default_rng([procedure.seed, 31337])
        self.noise = rng.integers(0, 2 * _NOISE_AMP + 1, size=(_NOISE_BANK, hf, w), dtype=np.uint8)
        # Smooth camera drift, as offsets into the overscan in 1/sub pixel units.
        t = np.arange(procedure.num_frames) / procedure.fps
        ph = rng.uniform(0, 2 * np.pi, size=2)
        self.off_x = np.round(sub * (_MARGIN + _DRIFT * np.sin(2 * np.pi * t / 3.1 + ph[0]))).astype(np.int64)
        self.off_y = np.round(sub * (_MARGIN + _DRIFT * np.sin(2 * np.pi * t / 4.3 + ph[1]))).astype(np.int64)
        self.glyphs = {tool: _rgb_to_yuv(_solid(TOOL_COLORS[tool], geo.slot)) for tool in CHOLEC80_TOOLS}
        self.glyph_masks = {tool: _masks(_glyph(tool, geo.slot)) for tool in CHOLEC80_TOOLS}
        self.trays: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
        self.marks = []
        for i, ev in enumerate(procedure.events):
            mask = event_mark_mask(ev.kind, width, height)
            self.marks.append(
                (
                    event_mark_box(procedure, i, width, height),
                    _rgb_to_yuv(_solid(EVENT_MARK_COLORS[ev.kind], geo.mark)),
                    _masks(mask),
                )
            )
        # Per-frame lookups: phase index, tool-presence bit code, event index (-1 = none).
        p = procedure
        self.phase = p.phase_index_per_frame()
        sec = np.minimum((np.arange(p.num_frames) / p.fps + 1e-9).astype(np.int64), p.num_seconds - 1)
        bits = p.presence_array().astype(np.int64) << np.arange(len(CHOLEC80_TOOLS))
        self.codes = bits.sum(axis=1)[sec]
        self.event_of = np.full(p.num_frames, -1, dtype=np.int64)
        for i, ev in enumerate(p.events):
            self.event_of[ev.start_frame : ev.end_frame] = i
        self.shifts = np.arange(INDEX_BITS - 1, -1, -1)

    def tray(self, code: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Tray planes for a presence bit code (bit k = CHOLEC80_TOOLS[k]); built once per code."""
        if code not in self.trays:
            g = self.geo
            rgb = np.empty((g.tray, g.width, 3))
            rgb[:] = _TRAY_RGB
            for x in g.slot_x:
                rgb[2 : 2 + g.slot, x : x + g.slot] = _SLOT_RGB
            y, u, v = _rgb_to_yuv(rgb)
            for k, tool in enumerate(CHOLEC80_TOOLS):
                if code >> k & 1:
                    x = g.slot_x[k]
                    _paste((y, u, v), self.glyphs[tool], self.glyph_masks[tool], x, 2)
            self.trays[code] = (y, u, v)
        return self.trays[code]

    def compose(self, f: int, planes: tuple[np.ndarray, np.ndarray, np.ndarray], burn_index: bool) -> None:
        """Write frame ``f`` into the Y, U, V plane arrays (full and half resolution)."""
        g, (y_pl, u_pl, v_pl) = self.geo, planes
        w, hf, b = g.width, g.field_bottom, g.band
        by, bu, bv = self.bg[self.phase[f]]
        s, oy, ox = self.sub, self.off_y[f], self.off_x[f]
        np.add(by[oy::s, ox::s][:hf, :w], self.noise[f % _NOISE_BANK], out=y_pl[:hf])
        # Chroma sample j sits at luma 2j + 0.5, i.e. fine chroma row (o + s // 2) // 2 + s * j.
        cy, cx = (oy + s // 2) // 2, (ox + s // 2) // 2
        u_pl[: hf // 2] = bu[cy::s, cx::s][: hf // 2, : w // 2]
        v_pl[: hf // 2] = bv[cy::s, cx::s][: hf // 2, : w // 2]
        ty, tu, tv = self.tray(int(self.codes[f]))
        y_pl[hf:], u_pl[hf // 2 :], v_pl[hf // 2 :] = ty, tu, tv
        if self.event_of[f] >= 0:
            (x0, y0, _, _), mark, masks = self.marks[self.event_of[f]]
            _paste(planes, mark, masks, x0, y0)
        if burn_index:
            bits = (f >> self.shifts) & 1
            y_pl[:b, : INDEX_BITS * b] = np.repeat(bits * 219 + 16, b).astype(np.uint8)
            u_pl[: b // 2, : INDEX_BITS * b // 2] = 128
            v_pl[: b // 2, : INDEX_BITS * b // 2] = 128


def _plane_views(frame: av.VideoFrame, width: int, height: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Writable arrays over a yuv420p frame's planes (rows may be padded to ``line_size``)."""
    sizes = ((height, width), (height // 2, width // 2), (height // 2, width // 2))
    return tuple(  # type: ignore[return-value]
        np.frombuffer(pl, dtype=np.uint8).reshape(-1, pl.line_size)[:rows, :cols]
        for pl, (rows, cols) in zip(frame.planes, sizes)
    )


def _solid(rgb: tuple[int, int, int], s: int) -> np.ndarray:
    out = np.empty((s, s, 3))
    out[:] = rgb
    return out


def _masks(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Luma mask and its chroma mask (a 2×2 cell is coloured when at least half of it is)."""
    m2 = mask.reshape(mask.shape[0] // 2, 2, mask.shape[1] // 2, 2).mean(axis=(1, 3)) >= 0.5
    return mask, m2


def _paste(planes, patch, masks, x: int, y: int) -> None:
    """Copy a YUV patch into planes at even ``(x, y)`` where its masks are set."""
    (py, pu, pv), (my, mc) = patch, masks
    s = py.shape[0]
    np.copyto(planes[0][y : y + s, x : x + s], py, where=my)
    np.copyto(planes[1][y // 2 : (y + s) // 2, x // 2 : (x + s) // 2], pu, where=mc)
    np.copyto(planes[2][y // 2 : (y + s) // 2, x // 2 : (x + s) // 2], pv, where=mc)


def _texture(phase_index: int, rgb: tuple[int, int, int], h: int, w: int, sub: int) -> np.ndarray:
    """Float RGB tissue texture of a phase: stripes plus soft blobs, fixed per phase.

    ``h`` × ``w`` samples, ``sub`` of them per frame pixel.
    """
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64) / sub
    h, w = h / sub, w / sub
    angle = math.pi * phase_index / len(CHOLEC80_PHASES)
    freq = 2 * math.pi / (9.0 + 2.5 * phase_index)
    stripes = np.sin(freq * (xx * math.cos(angle) + yy * math.sin(angle)))
    rng = np.random.default_rng([phase_index, 4242])
    blobs = np.zeros(yy.shape)
    for _ in range(6):
        cy, cx = rng.uniform(0, h), rng.uniform(0, w)
        r = rng.uniform(0.1, 0.25) * min(h, w)
        blobs += rng.choice([-1.0, 1.0]) * np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * r * r))
    mod = 0.12 * stripes + 0.12 * np.clip(blobs, -1, 1)
    return np.clip(np.asarray(rgb, dtype=np.float64) * (1 + mod[..., None]), 0, 255)
