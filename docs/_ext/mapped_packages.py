"""Griffe extension: find the subpackages that ``package-dir`` maps into ``medscope_gym``.

``agents/`` and ``envs/`` install as ``medscope_gym.agents`` and ``medscope_gym.envs``
(``[tool.setuptools] package-dir`` in pyproject.toml). Griffe finds modules by walking folders,
so it would never look for ``medscope_gym.envs`` outside ``medscope_gym/``. This extension loads
each mapped folder statically and attaches it under its installed name, so API pages can say
``::: medscope_gym.envs.clinvideo.ClinVideoEnv``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import griffe

ROOT = Path(__file__).resolve().parents[2]


def _mapping() -> dict[str, str]:
    """``{"medscope_gym.envs": "envs", ...}`` from pyproject.toml (the mapped folders only)."""
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        return {"medscope_gym.agents": "agents", "medscope_gym.envs": "envs"}
    with open(ROOT / "pyproject.toml", "rb") as f:
        package_dir = tomllib.load(f)["tool"]["setuptools"]["package-dir"]
    return {name: folder for name, folder in package_dir.items() if name.count(".") == 1 and name != folder}


class MappedPackages(griffe.Extension):
    def on_package(self, *, pkg: griffe.Module, loader: griffe.GriffeLoader, **kwargs: Any) -> None:
        for name, folder in _mapping().items():
            parent, leaf = name.split(".")
            if pkg.name != parent or leaf in pkg.members:
                continue
            sub = griffe.load(
                ROOT / folder,
                docstring_parser=loader.docstring_parser,
                docstring_options=loader.docstring_options,
                allow_inspection=False,
            )
            sub.name = leaf
            pkg.set_member(leaf, sub)
