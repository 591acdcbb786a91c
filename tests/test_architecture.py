"""The package's import layering, checked on the source (no import runs): dependencies point one way.

Layers, lowest first (a module may import its own layer and the layers below it, never above):

0. core: every module of ``medscope_gym/`` (video, store, tools, protocol, rewards, judges, metrics, suite,
   synthetic, chat, ...) except the three layers below;
1. envs: ``medscope_gym.envs`` (the ``envs/`` folder);
2. agents: ``medscope_gym.agents`` (the ``agents/`` folder);
3. commands: ``medscope_gym.cli`` and every module named ``cli`` (``medscope_gym.suite.cli``,
   ``medscope_gym.agents.sb3.cli``, ...: the ``medscope`` commands, which run whatever layer they need),
   and the measurement code in ``benchmarks/`` (a package of the source checkout, not installed).

Every import statement counts: at module level, inside a function, under ``if TYPE_CHECKING``. The
project's modules must not import each other in a cycle (over the imports that run: module level and
function-local). ``benchmarks/`` imports public names only. Entry-point strings (``registration.py``'s
env ids, the ``builtin:`` suite scheme) are not imports: that is how the core names the envs.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
#: Installed package (or checkout package) name -> folder: the package-dir mapping of pyproject.toml.
FOLDERS = {
    "medscope_gym": ROOT / "medscope_gym",
    "medscope_gym.envs": ROOT / "envs",
    "medscope_gym.agents": ROOT / "agents",
    "benchmarks": ROOT / "benchmarks",
}
LAYERS = ("core", "envs", "agents", "commands")
#: Imported lazily by the package and never by ``import medscope_gym`` / ``.envs`` / ``.agents`` / ``.cli``.
HEAVY = ("torch", "transformers", "peft", "accelerate", "stable_baselines3", "trl", "matplotlib")


def layer(module: str) -> int:
    """The layer index of a project module (see the module docstring)."""
    if module == "benchmarks" or module.startswith("benchmarks.") or module.rpartition(".")[2] == "cli":
        return 3
    if module == "medscope_gym.agents" or module.startswith("medscope_gym.agents."):
        return 2
    if module == "medscope_gym.envs" or module.startswith("medscope_gym.envs."):
        return 1
    return 0


def project_modules() -> dict[str, Path]:
    """Every project module: dotted name -> file."""
    out: dict[str, Path] = {}
    for package, folder in FOLDERS.items():
        for path in sorted(folder.rglob("*.py")):
            parts = list(path.relative_to(folder).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            out[".".join([package, *parts])] = path
    return out


@dataclass(frozen=True)
class Import:
    source: str
    target: str
    names: tuple[str, ...]  # the names of a ``from target import ...`` (empty for ``import target``)
    line: int
    local: bool  # inside a function
    type_only: bool  # under ``if TYPE_CHECKING``

    def where(self) -> str:
        kind = "function-local " if self.local else ("TYPE_CHECKING " if self.type_only else "")
        return f"{self.source}:{self.line} {kind}import of {self.target}"


def _known(name: str, modules: dict[str, Path] | set[str]) -> str | None:
    """The longest prefix of ``name`` that is a project module."""
    while name and name not in modules:
        name = name.rpartition(".")[0]
    return name or None


def imports_of(
    module: str, source: str, is_package: bool, modules: dict[str, Path] | set[str]
) -> Iterator[Import]:
    """The project modules ``module`` imports; ``from pkg import sub`` is an import of ``pkg.sub`` when
    ``sub`` is a module (as import-linter's graph counts it), else of ``pkg``."""
    tree = ast.parse(source)
    parents: dict[ast.AST, ast.AST] = {}
    for node in ast.walk(tree):
        for child in ast.iter_child_nodes(node):
            parents[child] = node
    for node in ast.walk(tree):
        if not isinstance(node, (ast.Import, ast.ImportFrom)):
            continue
        local = type_only = False
        up: ast.AST = node
        while up in parents:
            up = parents[up]
            local |= isinstance(up, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
            type_only |= isinstance(up, ast.If) and "TYPE_CHECKING" in ast.unparse(up.test)
        found: list[tuple[str | None, tuple[str, ...]]] = []
        if isinstance(node, ast.Import):
            found = [(_known(alias.name, modules), ()) for alias in node.names]
        else:
            base = node.module or ""
            if node.level:
                anchor = module if is_package else module.rpartition(".")[0]
                for _ in range(node.level - 1):
                    anchor = anchor.rpartition(".")[0]
                base = f"{anchor}.{base}" if base else anchor
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                found.append((sub, ()) if sub in modules else (_known(base, modules), (alias.name,)))
        for target, names in found:
            if target and target != module:
                yield Import(module, target, names, node.lineno, local, type_only)


def all_imports(modules: dict[str, Path]) -> list[Import]:
    return [
        imp
        for name, path in modules.items()
        for imp in imports_of(name, path.read_text(encoding="utf-8"), path.name == "__init__.py", modules)
    ]


def upward(imports: list[Import]) -> list[str]:
    return [
        f"{imp.where()}: {LAYERS[layer(imp.source)]} may not import {LAYERS[layer(imp.target)]}"
        for imp in imports
        if layer(imp.target) > layer(imp.source)
    ]


def cycles(imports: list[Import]) -> list[list[str]]:
    """Strongly connected components of more than one module over the runtime imports (Tarjan)."""
    graph: dict[str, set[str]] = {}
    for imp in imports:
        if not imp.type_only:
            graph.setdefault(imp.source, set()).add(imp.target)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


@pytest.fixture(scope="module")
def imports() -> list[Import]:
    return all_imports(project_modules())


def test_the_layers_cover_the_package():
    modules = project_modules()
    assert {layer(m) for m in modules} == {0, 1, 2, 3}
    assert layer("medscope_gym.store.bench") == 0 and layer("medscope_gym.suite.cli") == 3
    assert layer("medscope_gym.envs.numeric") == 1 and layer("medscope_gym.agents.sb3.train") == 2
    assert layer("medscope_gym.cli") == 3 and layer("benchmarks.retrieval") == 3
    assert len(modules) > 100


def test_no_module_imports_a_layer_above_its_own(imports):
    found = upward(imports)
    assert not found, "imports against the layering (core -> envs -> agents -> commands):\n" + "\n".join(
        found
    )


def test_the_project_modules_import_each_other_in_no_cycle(imports):
    found = cycles(imports)
    detail = []
    for component in found:
        members = set(component)
        detail += [f"  {i.where()}" for i in imports if i.source in members and i.target in members]
    assert not found, f"import cycles: {found}\n" + "\n".join(detail)


def test_benchmarks_import_public_names_only(imports):
    private = [
        f"{imp.where()}: {name}"
        for imp in imports
        if imp.source.startswith("benchmarks")
        for name in (*imp.names, *imp.target.split("."))
        if name.startswith("_") and not name.startswith("__")
    ]
    assert not private, "benchmarks/ imports private names:\n" + "\n".join(private)


def test_importing_the_package_layers_loads_no_heavy_library():
    code = (
        "import sys, medscope_gym, medscope_gym.envs, medscope_gym.agents, medscope_gym.agents.vlm, "
        f"medscope_gym.cli; print([m for m in {HEAVY!r} if m in sys.modules])"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert done.stdout.strip() == "[]", done.stdout + done.stderr[-2000:]


# ---------------------------------------------------------------------------------- the checker itself
FAKE = {
    "medscope_gym",
    "medscope_gym.tools",
    "medscope_gym.suite",
    "medscope_gym.suite.suite",
    "medscope_gym.envs",
    "medscope_gym.envs.clinvideo",
    "medscope_gym.agents",
    "medscope_gym.agents.runner",
    "medscope_gym.cli",
}


def _imports(sources: dict[str, str]) -> list[Import]:
    return [imp for name, src in sources.items() for imp in imports_of(name, src, name.count(".") < 1, FAKE)]


@pytest.mark.parametrize(
    "source",
    [
        "from medscope_gym.agents.runner import run_episode\n",
        "import medscope_gym.envs.clinvideo\n",
        "def f():\n    from medscope_gym.envs import clinvideo\n",
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from medscope_gym.agents import runner\n",
    ],
    ids=["module-level", "import-statement", "function-local", "type-checking"],
)
def test_the_checker_catches_an_upward_import(source):
    found = upward(_imports({"medscope_gym.tools": source}))
    assert len(found) == 1 and "core may not import" in found[0]


def test_the_checker_allows_downward_imports_and_commands_importing_anything():
    sources = {
        "medscope_gym.envs.clinvideo": "from medscope_gym.tools import x\nimport medscope_gym.suite\n",
        "medscope_gym.agents.runner": "from medscope_gym.envs.clinvideo import ClinVideoEnv\n",
        "medscope_gym.cli": "from medscope_gym.agents import runner\nimport medscope_gym.envs\n",
    }
    imports = _imports(sources)
    assert len(imports) == 5 and upward(imports) == []


def test_the_checker_finds_a_cycle_through_a_function_local_import_but_not_a_type_only_one():
    hidden = {
        "medscope_gym.suite.suite": "def from_spec():\n    from medscope_gym.tools import build\n",
        "medscope_gym.tools": "from medscope_gym.suite.suite import Suite\n",
    }
    assert cycles(_imports(hidden)) == [["medscope_gym.suite.suite", "medscope_gym.tools"]]
    typed = dict(hidden)
    typed["medscope_gym.suite.suite"] = (
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import medscope_gym.tools\n"
    )
    assert cycles(_imports(typed)) == []
