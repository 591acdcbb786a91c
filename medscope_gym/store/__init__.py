"""Prepared frame stores: each video decoded once at the tools' grid, then crops are memory reads.

``open_tool_video`` is what the env uses; ``ensure_store`` / ``prepare_videos`` build stores
ahead of time (``medscope prepare SUITE``); ``StoredVideo`` serves a store plus exact decoding.
"""

from medscope_gym.store.builder import StoreLockTimeout, build_store, ensure_store, grid_indices, store_path
from medscope_gym.store.frame_store import FrameStore
from medscope_gym.store.key import STORE_FORMAT, StoreSettings, content_fingerprint, store_key
from medscope_gym.store.open import default_store_root, open_tool_video, resolve_store_root, store_settings
from medscope_gym.store.stored_video import StoredVideo

__all__ = [
    "STORE_FORMAT",
    "FrameStore",
    "StoreLockTimeout",
    "StoreSettings",
    "StoredVideo",
    "build_store",
    "content_fingerprint",
    "default_store_root",
    "ensure_store",
    "grid_indices",
    "open_tool_video",
    "resolve_store_root",
    "store_key",
    "store_path",
    "store_settings",
]
