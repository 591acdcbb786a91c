"""Feature extraction of the numeric wrapper: word ids, thumbnails, brief changes, the binned preview.

Pure functions of frames and text (no env state), used by
:class:`~medscope_gym.envs.numeric.NumericClinVideoEnv` to build its observations; see
docs/classic-rl.md for what each observation key means.
"""

from __future__ import annotations

import hashlib
import re

import numpy as np
from PIL import Image

from medscope_gym.errors import ConfigError

__all__ = ["binned_preview", "brief_changes", "hash_words", "thumbnails"]

_WORD_RE = re.compile(r"[a-z0-9]+")
_CHANGE_GAPS_S = (2.0, 3.0, 4.0, 5.0, 6.0)  # brief-change look-back/ahead: every frame of a <= 5 s event
_CHANGE_COLOUR_MIN = 10  # brief-change strength from which its colour is shown


def hash_words(text: str, length: int, vocab_size: int) -> np.ndarray:
    """Word ids of ``text``: lower-cased alphanumeric words hashed (blake2b) into ``1 … vocab_size - 1``.

    A fixed hash rather than a vocabulary built from the suite, so a policy trained on one suite
    reads another suite's questions with the same ids. Padded with 0 / truncated to ``length``.
    """
    out = np.zeros(length, dtype=np.int64)
    for i, word in enumerate(_WORD_RE.findall(text.lower())[:length]):
        digest = hashlib.blake2b(word.encode(), digest_size=8).digest()
        out[i] = 1 + int.from_bytes(digest, "little") % (vocab_size - 1)
    return out


def thumbnails(frames: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """``(n, H, W, 3)`` uint8 frames → ``(n, h, w, 3)`` area-averaged thumbnails.

    PIL's block reduce when the sizes divide (the default sizes at 160×120), else its box filter.
    """
    th, tw = size
    n, h, w, _ = frames.shape
    out = np.empty((n, th, tw, 3), dtype=np.uint8)
    for i, frame in enumerate(frames):
        image = Image.fromarray(np.ascontiguousarray(frame))
        if h % th == 0 and w % tw == 0:
            out[i] = np.asarray(image.reduce((w // tw, h // th)))
        else:
            out[i] = np.asarray(image.resize((tw, th), Image.Resampling.BOX))
    return out


def brief_changes(frames: np.ndarray, times: np.ndarray, cells: tuple[int, int]) -> np.ndarray:
    """What appears in a frame for a few seconds only: ``(n, ch, cw, 4)`` uint8 (R, G, B, strength).

    Brief events (a bleeding, a clip) are small marks that come and go, while the scene drifts,
    changes slowly or switches once (a phase boundary). Per frame, each pixel's *outlierness* is
    its distance (|ΔR| + |ΔG| + |ΔB|) to the frame's median colour; each image cell keeps its most
    outlying pixel. A cell's brief change at frame k is the largest, over look-back/ahead gaps of
    2–6 s, of ``min(o_k - o_{k-g}, o_k - o_{k+g})``: high only if the cell stands out at k but not
    ``g`` seconds before *and* after (so one-sided changes and drift score low). Strength is that
    value / 3 (0–255), colour the RGB of the cell's most outlying pixel at k (black below strength
    10, where the "change" is mostly texture noise).
    Max-pooling the cells first makes it tolerant of camera motion within a cell.
    """
    n, h, w, _ = frames.shape
    ch, cw = cells
    if h < ch or w < cw:
        raise ConfigError(f"frames of {h}×{w} pixels cannot be split into {ch}×{cw} change cells")
    x = frames.astype(np.float32)
    median = np.median(x[:, ::4, ::4].reshape(n, -1, 3), axis=1)  # the scene colour of each frame
    outlier = np.abs(x - median[:, None, None, :]).sum(axis=-1)
    sh, sw = h // ch, w // cw
    grid = outlier[:, : ch * sh, : cw * sw].reshape(n, ch, sh, cw, sw).transpose(0, 1, 3, 2, 4)
    grid = grid.reshape(n, ch, cw, sh * sw)
    where = grid.argmax(axis=-1)  # (n, ch, cw) most outlying pixel of each cell
    peak = np.take_along_axis(grid, where[..., None], axis=-1)[..., 0]
    dt = float(np.median(np.diff(times))) if n > 1 else 1.0
    gaps = sorted({max(1, int(round(g / max(dt, 1e-6)))) for g in _CHANGE_GAPS_S})
    idx = np.arange(n)
    strength = np.zeros_like(peak)
    for g in gaps:
        before, after = peak[np.clip(idx - g, 0, n - 1)], peak[np.clip(idx + g, 0, n - 1)]
        strength = np.maximum(strength, np.minimum(peak - before, peak - after))
    # pixel coordinates of each cell's most outlying pixel
    ys = (np.arange(ch) * sh)[None, :, None] + where // sw
    xs = (np.arange(cw) * sw)[None, None, :] + where % sw
    colour = frames[idx[:, None, None], ys, xs]  # (n, ch, cw, 3)
    out = np.zeros((n, ch, cw, 4), dtype=np.uint8)
    out[..., 3] = np.clip(np.round(strength / 3.0), 0, 255).astype(np.uint8)
    out[..., :3] = np.where(out[..., 3:] >= _CHANGE_COLOUR_MIN, colour, 0)
    return out


def binned_preview(
    frames: np.ndarray,
    times: np.ndarray,
    duration: float,
    bins: int,
    preview_size: tuple[int, int],
    change_cells: tuple[int, int],
) -> tuple[np.ndarray, np.ndarray]:
    """The preview as ``bins`` thumbnails ``(bins, ph, pw, 3)`` and brief changes ``(bins, ch, cw, 4)``.

    Thumbnails: the mean of the preview frames inside a bin, else the nearest frame. Changes: per
    cell, the strongest change among the bin's frames, else the nearest frame's. Both arrays are
    returned read-only (the wrapper caches them per video).
    """
    thumbs = thumbnails(frames, preview_size).astype(np.float32)
    changes = brief_changes(frames, times, change_cells)
    which = np.clip((times / duration * bins).astype(np.int64), 0, bins - 1)
    centres = (np.arange(bins) + 0.5) * duration / bins
    nearest = np.abs(times[None, :] - centres[:, None]).argmin(axis=1)
    preview, binned = thumbs[nearest], changes[nearest]
    for b in np.unique(which):
        inside = which == b
        preview[b] = thumbs[inside].mean(axis=0)
        strongest = changes[inside][..., 3].argmax(axis=0)  # (ch, cw): which frame of the bin, per cell
        binned[b] = np.take_along_axis(changes[inside], strongest[None, ..., None], axis=0)[0]
    value = (np.round(preview).astype(np.uint8), binned)
    for array in value:
        array.flags.writeable = False
    return value
