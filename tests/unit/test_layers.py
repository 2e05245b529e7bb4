"""The package's folders are its layers: each module imports only from its own layer or the ones below,
and no two modules import each other, directly or around a loop."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

import helpers

PACKAGE = Path(helpers.__file__).parent
LAYERS = ("core", "infra", "pipeline", "classroom", "cli")     # lowest first


def module_name(path: Path) -> str:
    """helpers/pipeline/route.py -> helpers.pipeline.route (a package's __init__ -> the package)."""
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def layer_of(module: str) -> int:
    """The layer's rank of a module of the package (helpers.cli is the top)."""
    return LAYERS.index(module.split(".")[1])


def imports_of(path: Path, here: str | None = None) -> list[tuple[str, int, bool]]:
    """(name imported from the package, line, only for type checking) for every import in a file."""
    tree = ast.parse(path.read_text())
    typing_only: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and ast.unparse(node.test) == "TYPE_CHECKING":
            typing_only |= {id(inner) for inner in ast.walk(node)}
    found = []
    here = here or module_name(path)
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level:           # relative: resolved against this module's package
                base = here.split(".")[: -node.level] if path.name != "__init__.py" else here.split(".")
                target = ".".join([*base, *([node.module] if node.module else [])])
            else:
                target = node.module or ""
            names = [f"{target}.{a.name}" for a in node.names]
            found += [(name, node.lineno, id(node) in typing_only) for name in names]
        elif isinstance(node, ast.Import):
            found += [(a.name, node.lineno, id(node) in typing_only) for a in node.names]
    return [(name, line, typing) for name, line, typing in found if name.startswith("helpers.")]


def package_modules() -> dict[str, Path]:
    """Every module of the package but its lazy facade (helpers/__init__.py), by name."""
    return {module_name(p): p for p in sorted(PACKAGE.rglob("*.py")) if p != PACKAGE / "__init__.py"}


def resolve(name: str, modules: dict[str, Path]) -> str:
    """The module an import names ('helpers.core.schemas.TopicNames' -> 'helpers.core.schemas')."""
    while name and name not in modules:
        name = name.rpartition(".")[0]
    return name


def test_every_module_lives_in_a_layer():
    strays = [name for name in package_modules() if name.split(".")[1] not in LAYERS]
    assert strays == []


def test_no_module_imports_from_a_layer_above_its_own():
    modules = package_modules()
    upward = []
    for name, path in modules.items():
        for target, line, _ in imports_of(path):
            target = resolve(target, modules)
            if target and layer_of(target) > layer_of(name):
                upward.append(f"{path.relative_to(PACKAGE)}:{line} imports {target}")
    assert upward == []


def test_no_import_cycle():
    modules = package_modules()
    graph = {name: {resolve(t, modules) for t, _, typing in imports_of(path) if not typing} - {"", name}
             for name, path in modules.items()}
    graph = {name: {t for t in targets if not name.startswith(t + ".")}   # a package's own __init__
             for name, targets in graph.items()}
    cycles, state = [], {}

    def visit(node: str, trail: list[str]) -> None:
        state[node] = "open"
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == "open":
                cycles.append(" -> ".join(trail[trail.index(nxt):] + [nxt]))
            elif nxt not in state:
                visit(nxt, [*trail, nxt])
        state[node] = "done"

    for start in sorted(graph):
        if start not in state:
            visit(start, [start])
    assert cycles == []


@pytest.mark.parametrize("source, expected", [
    ("from helpers.pipeline.route import Router\n", ["helpers.pipeline.route.Router"]),
    ("def f():\n    from helpers.cli import main\n", ["helpers.cli.main"]),
    ("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from helpers.cli import main\n",
     ["helpers.cli.main"]),
])
def test_the_scan_sees_module_level_lazy_and_typing_imports(tmp_path, source, expected):
    """The checks above can fail: an upward import in any of these forms is found."""
    probe = tmp_path / "probe.py"
    probe.write_text(source)
    assert [name for name, _, _ in imports_of(probe, "helpers.core.probe")] == expected
    assert layer_of(resolve(expected[0], package_modules())) > layer_of("helpers.core.probe")
