"""Open a video for the tools: through its frame store when one is configured, else directly."""

from __future__ import annotations

import os
import warnings
from pathlib import Path

from medscope_gym.errors import ConfigError, VideoError
from medscope_gym.store.builder import ensure_store
from medscope_gym.store.key import StoreSettings
from medscope_gym.store.stored_video import StoredVideo
from medscope_gym.video import DEFAULT_BACKEND, Video, open_video

__all__ = ["FrameStoreSpec", "default_store_root", "open_tool_video", "resolve_store_root", "store_settings"]

FrameStoreSpec = str | os.PathLike[str] | None
"""``"auto"`` (the cache folder), a folder of stores, or None (no store: decode every call)."""


def default_store_root() -> Path:
    """``$MEDSCOPE_CACHE/frame_stores`` (default ``~/.cache/medscope_gym/frame_stores``)."""
    # Imported here, not at module level: the synthetic package pulls in the renderer and the suite
    # pipeline, which the env (importing this module) does not otherwise need.
    from medscope_gym.synthetic import default_cache_dir

    return default_cache_dir() / "frame_stores"


def resolve_store_root(frame_store: FrameStoreSpec) -> Path | None:
    """The folder stores live in for a ``frame_store`` argument (None: stores are off)."""
    if frame_store is None or frame_store is False:
        return None
    if isinstance(frame_store, str) and frame_store == "auto":
        return default_store_root()
    if isinstance(frame_store, (str, os.PathLike)):
        return Path(frame_store)
    raise ConfigError(f"frame_store must be 'auto', a folder or None, got {frame_store!r}")


def store_settings(tools) -> StoreSettings:
    """The store grid for a :class:`~medscope_gym.tools.ToolConfig`: its crop rate and pixel cap."""
    return StoreSettings(fps=float(tools.crop_fps), max_pixels=int(tools.crop_max_pixels))


def open_tool_video(
    path: str | os.PathLike[str],
    *,
    backend: str = DEFAULT_BACKEND,
    frame_store: FrameStoreSpec = "auto",
    settings: StoreSettings | None = None,
    threads: int = 1,
) -> Video:
    """The video at ``path``, served from its frame store (built on first use) when ``frame_store`` is set.

    If the store folder cannot be written (read-only cache, full disk), a warning is issued and
    the video is decoded directly: slower tool calls, identical results.
    """
    root = resolve_store_root(frame_store)
    if root is None:
        return open_video(path, backend=backend)
    settings = settings or StoreSettings()
    try:
        store = ensure_store(path, root, settings, threads=threads)
    except VideoError:
        raise
    except OSError as exc:
        warnings.warn(
            f"frame store under {str(root)!r} unavailable ({exc}); decoding {path} directly",
            RuntimeWarning,
            stacklevel=2,
        )
        return open_video(path, backend=backend)
    return StoredVideo(path, store, backend=backend)
