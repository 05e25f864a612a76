"""The package's layering (ARCHITECTURE.md), checked from the source.

Every ``import`` in ``src/enformer`` — module-level or inside a function — must go from a
layer to one it may use: no layer imports a layer above it, no package imports ``cli``,
no module imports another module's ``_private`` name, and the module-level imports form
no cycle. ``KNOWN`` lists the violations that predate the rule and are being removed; it
may only shrink: a listed violation that no longer exists fails the test too, so that the
list stays true.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"
PKG = "enformer"

# Which top-level parts of the package each part may import (besides itself).
# "enformer" is the package's own __init__ (the curated public API); no part imports it.
BASE = {"runtime", "version"}
ALLOWED: dict[str, set[str]] = {
    "runtime": set(),
    "version": set(),
    "io": set(BASE),
    "model": set(BASE),
    "data": BASE | {"io"},
    "weights": BASE | {"model", "io"},
    "inference": BASE | {"model", "weights", "data", "io"},
    "variants": BASE | {"model", "weights", "data", "io", "inference"},
    "interpret": BASE | {"model", "weights", "data", "io", "inference"},
    "train": BASE | {"model", "weights", "data", "io", "inference"},
    "demo": BASE | {"model", "weights", "data", "io", "inference", "variants", "interpret"},
    "cli": BASE
    | {"model", "weights", "data", "io", "inference", "variants", "interpret", "train", "demo"},
    "__main__": {"cli"},
    "enformer": BASE | {"model", "inference", "weights", "data"},
}

# Imports that break the layering on purpose, with the reason.
EXCEPTIONS = {
    # Enformer.from_pretrained / save_pretrained delegate to weights/ lazily, inside the
    # methods, so that model/ imports nothing of the package at import time.
    ("enformer.model.enformer", "enformer.weights"),
    ("enformer.model.borzoi", "enformer.weights"),  # Borzoi's, the same way
}

# Violations that predate the rule (issue 11 removes them). May only shrink.
KNOWN: set[str] = set()


def _modules() -> dict[str, Path]:
    mods = {}
    for f in (SRC / PKG).rglob("*.py"):
        rel = f.relative_to(SRC).with_suffix("")
        parts = rel.parts[:-1] if rel.name == "__init__" else rel.parts
        mods[".".join(parts)] = f
    return mods


MODULES = _modules()


def _target(module: str, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    base = module.split(".")
    if MODULES[module].name == "__init__.py":
        base = base + ["__init__"]
    base = base[: len(base) - node.level]
    return ".".join(base + ([node.module] if node.module else []))


def _imports(module: str):
    """Yield ``(imported module, imported names, module_level)`` for every import."""
    tree = ast.parse(MODULES[module].read_text())
    top = set()
    for node in tree.body:
        for sub in ast.walk(node) if isinstance(node, (ast.If, ast.Try)) else [node]:
            top.add(id(sub))
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            target = _target(module, node)
            names = [a.name for a in node.names]
            # ``from . import sub`` imports the module ``target.sub``
            subs = [f"{target}.{n}" for n in names if f"{target}.{n}" in MODULES]
            yield (subs or [target]), names, id(node) in top
        elif isinstance(node, ast.Import):
            for alias in node.names:
                yield [alias.name], [], id(node) in top


def _part(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else PKG


def _violations() -> set[str]:
    found = set()
    for module in MODULES:
        own = _part(module)
        for targets, names, _ in _imports(module):
            for target in targets:
                if not (target == PKG or target.startswith(PKG + ".")):
                    continue
                other = _part(target)
                layer_ok = other == own or other in ALLOWED.get(own, set())
                if not layer_ok and (module, target) not in EXCEPTIONS:
                    if not any(target.startswith(e[1]) for e in EXCEPTIONS if e[0] == module):
                        found.add(f"{module} -> {PKG if other == PKG else PKG + '.' + other} (layer)")
                if target != module:
                    for n in names:
                        if n.startswith("_") and not n.startswith("__"):
                            found.add(f"{module} <- {target}.{n} (private)")
    return found


def _cycles() -> list[list[str]]:
    graph = {m: set() for m in MODULES}
    for module in MODULES:
        for targets, _, top in _imports(module):
            for t in targets:
                if top and t in MODULES and t != module and not module.startswith(t + "."):
                    graph[module].add(t)
    # Tarjan's strongly connected components.
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in graph:
        if v not in index:
            visit(v)
    return out


def test_every_part_has_a_layer():
    parts = {_part(m) for m in MODULES}
    assert parts <= set(ALLOWED), f"parts without a layer in ALLOWED: {parts - set(ALLOWED)}"


def test_no_new_layering_or_private_import_violations():
    new = _violations() - KNOWN
    assert not new, "imports that break ARCHITECTURE.md's layering:\n" + "\n".join(sorted(new))


def test_known_violations_list_is_current():
    gone = KNOWN - _violations()
    assert not gone, "fixed; remove from KNOWN in this test:\n" + "\n".join(sorted(gone))


def test_no_import_cycles():
    assert _cycles() == []


def test_nothing_imports_cli():
    bad = [
        (m, t)
        for m in MODULES
        if _part(m) not in ("cli", "__main__")
        for targets, _, _ in _imports(m)
        for t in targets
        if t.startswith(f"{PKG}.cli")
    ]
    assert bad == []


def test_cli_commands_import_only_the_shared_options():
    """A command module never imports another command (ARCHITECTURE.md: cli/ is thin);
    what commands share lives in ``cli/options/``, and ``cli/main.py`` finds the commands
    by name at run time."""
    options = f"{PKG}.cli.options"
    bad = [
        (m, t)
        for m in MODULES
        if m.startswith(f"{PKG}.cli.") and not m.startswith(options)
        for targets, _, _ in _imports(m)
        for t in targets
        if t.startswith(f"{PKG}.cli") and not (t == options or t.startswith(options + "."))
    ]
    assert bad == []


@pytest.mark.parametrize(
    "source, expected",
    [
        ("from ..inference import predict", "enformer.data.x -> enformer.inference (layer)"),
        ("from ..model.attention import _gamma", "enformer.data.x <- enformer.model.attention._gamma (private)"),
        ("from .. import cli", "enformer.data.x -> enformer.cli (layer)"),
    ],
)
def test_checker_catches_a_planted_violation(monkeypatch, tmp_path, source, expected):
    planted = tmp_path / "x.py"
    planted.write_text(source + "\n")
    monkeypatch.setitem(MODULES, "enformer.data.x", planted)
    assert expected in _violations()


def test_checker_catches_a_planted_cycle(monkeypatch, tmp_path):
    a, b = tmp_path / "a.py", tmp_path / "b.py"
    a.write_text("from .b import f\n")
    b.write_text("from .a import g\n")
    monkeypatch.setitem(MODULES, "enformer.data.a", a)
    monkeypatch.setitem(MODULES, "enformer.data.b", b)
    assert ["enformer.data.a", "enformer.data.b"] in _cycles()
