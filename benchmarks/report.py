"""``python -m benchmarks.report [medscope bench options]``: the README's benchmark table.

The same code as ``medscope bench`` (it lives in :mod:`medscope_gym.store.bench` so the
installed command works outside a checkout); this entry point is here for discoverability.
"""

from __future__ import annotations

import sys

from medscope_gym.cli import main

if __name__ == "__main__":
    sys.exit(main(["bench", *sys.argv[1:]]))
