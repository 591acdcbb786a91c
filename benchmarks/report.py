"""``python -m benchmarks.report [medscope bench options]``: the benchmark table of docs/results.md.

The same code as ``medscope bench`` (:mod:`benchmarks.retrieval`); this entry point runs it from the
repository root without the installed ``medscope`` script.
"""

from __future__ import annotations

import sys

from medscope_gym.cli import main

if __name__ == "__main__":
    sys.exit(main(["bench", *sys.argv[1:]]))
