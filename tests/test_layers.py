"""The import graph of the package: no cycles between modules and no import from a lower layer to a higher one.

Layers, lowest first: {format, devices, errors, safe_pickle, progress} < tokenizer < {data, codec, lyrics, models}
< {config, generation, evaluation} < training < {cli, api} < {data_prep, inference}: the command-line folders wrap the
library, and no ``yue_train`` module imports them (:func:`test_the_library_imports_no_cli_folder`). The package's own ``__init__`` imports nothing
of the project (it runs on every import) and so sits below them all. Every ``import`` counts, at
module level and inside functions; imports under ``if TYPE_CHECKING:`` do not run and are skipped, as are
``importlib.import_module`` calls (the package's lazy ``__getattr__``)."""

from __future__ import annotations

import ast
import subprocess
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path

import pytest

from tests.conftest import REPO

TOPS = ("yue_train", "data_prep", "inference")
LAYERS = {  # module prefix -> rank; the longest matching prefix wins
    "yue_train.format": 0,
    "yue_train.devices": 0,
    "yue_train.errors": 0,
    "yue_train.safe_pickle": 0,
    "yue_train.progress": 0,
    "yue_train.tokenizer": 1,
    "yue_train.data": 2,
    "yue_train.codec": 2,
    "yue_train.lyrics": 2,
    "yue_train.models": 2,
    "yue_train.config": 3,
    "yue_train.generation": 3,
    "yue_train.evaluation": 3,
    "yue_train.training": 4,
    "yue_train.cli": 5,
    "yue_train.api": 5,
    "data_prep": 6,
    "inference": 6,
}
# yue_train/__init__.py runs first on every import of the package, so it imports nothing of the project
# (``__version__`` and the lazy ``__getattr__`` only): it sits below every layer.
ROOT_LAYER = -1


def module_files() -> dict[str, Path]:
    found = {}
    for top in TOPS:
        for path in sorted((REPO / top).rglob("*.py")):
            parts = path.relative_to(REPO).with_suffix("").parts
            found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


MODULES = module_files()


def rank(module: str) -> int:
    if module == "yue_train":
        return ROOT_LAYER
    prefixes = [p for p in LAYERS if module == p or module.startswith(p + ".")]
    assert prefixes, f"{module} belongs to no layer: give its package a rank in LAYERS"
    return LAYERS[max(prefixes, key=len)]


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _import_nodes(nodes: Iterable[ast.AST]) -> Iterator[ast.Import | ast.ImportFrom]:
    for node in nodes:
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            yield from _import_nodes(node.orelse)  # only the else branch runs
            continue
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node
        yield from _import_nodes(ast.iter_child_nodes(node))


def _resolve(name: str) -> str | None:
    """The project module that importing ``name`` runs last (``a.b.c`` if a module, else the package ``a.b``)."""
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


def imports_of(module: str) -> set[str]:
    """The project modules ``module`` imports (statically), each resolved to its module file."""
    path = MODULES[module]
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    targets = set()
    for node in _import_nodes([ast.parse(path.read_text(encoding="utf-8"), filename=str(path))]):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        else:
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            names = [f"{base}.{a.name}" if f"{base}.{a.name}" in MODULES else base for a in node.names]
        targets |= {t for t in map(_resolve, names) if t and t != module}
    return targets


GRAPH = {m: imports_of(m) for m in MODULES}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan)."""
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


def test_the_walker_sees_imports():
    """The graph is not empty by accident: known edges, function-level ones included, are found."""
    assert "yue_train.format.vocab" in GRAPH["yue_train.format.sequences"]
    assert "yue_train.config.compose" in GRAPH["yue_train.cli.train"]
    assert "yue_train.cli.chain" in GRAPH["yue_train.cli.train"]  # imported inside main()
    assert len(MODULES) > 40 and sum(map(len, GRAPH.values())) > 100


def test_the_walker_finds_a_cycle_and_skips_type_checking():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    tree = ast.parse("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import torch\nelse:\n    import numpy\n")
    assert [a.name for n in _import_nodes([tree]) for a in getattr(n, "names", [])] == ["TYPE_CHECKING", "numpy"]


def test_every_module_has_a_layer():
    for module in MODULES:
        rank(module)


def test_no_import_cycles():
    assert cycles(GRAPH) == []


def test_no_upward_imports():
    upward = sorted(
        f"{m} (layer {rank(m)}) imports {t} (layer {rank(t)})"
        for m, ts in GRAPH.items()
        for t in ts
        if rank(t) > rank(m)
    )
    assert upward == []


def test_the_library_imports_no_cli_folder():
    """``data_prep`` and ``inference`` hold argument parsing and printing only; the library owns the rest."""
    found = sorted(
        f"{m} imports {t}"
        for m, ts in GRAPH.items()
        if m.split(".")[0] == "yue_train"
        for t in ts
        if t.split(".")[0] in ("data_prep", "inference")
    )
    assert found == []


@pytest.mark.parametrize("module", ["yue_train.format.sequences", "yue_train.format"])
def test_the_format_loads_neither_torch_nor_webdataset(module):
    code = f"import sys, {module}; print(' '.join(m for m in ('torch', 'webdataset') if m in sys.modules))"
    res = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    assert res.stdout.strip() == ""


def test_checkpoint_folder_names_are_written_once():
    """``model_config``, the folder by which generation recognises a training checkpoint, is spelled out only
    in the low module both training and generation import (no bare copy a rename would miss)."""
    owner = "yue_train.format.checkpoint_names"
    spelled = sorted(
        m
        for m, path in MODULES.items()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
        if isinstance(node, ast.Constant) and node.value == "model_config"
    )
    assert spelled == [owner]
