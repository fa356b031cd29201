"""The layout's one rule (docs/development.md, "Layout"): a module of chalicelib imports only from its own folder or
from folders below it, so arrows point one way and no import circle can form; plumbing imports nothing of the domain.
Every import counts: at the top, inside a function, or for type checking only."""

from __future__ import annotations

import ast
from pathlib import Path

from tests.conftest import ROOT

CHALICELIB = ROOT / "chalicelib"
# From the top floor down, as the tree of docs/development.md lists them.
FLOORS = [
    "entrypoints",
    "repair",
    "launch",
    "checks",
    "task_definitions",
    "container_instances",
    "mount",
    "plumbing",
]


def room(module: str) -> str:
    """The folder (or top-level module) of `chalicelib.<room>...`."""
    return module.split(".")[1]


def imports_of(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("chalicelib."):
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names if alias.name.startswith("chalicelib.")}
    return found


def modules() -> dict[str, Path]:
    found = {}
    for path in sorted(CHALICELIB.rglob("*.py")):
        parts = path.relative_to(ROOT).with_suffix("").parts
        found[".".join(parts).removesuffix(".__init__")] = path
    return found


def test_every_folder_of_chalicelib_has_a_floor():
    rooms = {room(name) for name in modules() if name != "chalicelib"}
    assert rooms == set(FLOORS)


def test_every_import_points_to_the_same_folder_or_one_below():
    upward = [
        f"{name} imports {target}"
        for name, path in modules().items()
        if name != "chalicelib"
        for target in imports_of(path)
        if FLOORS.index(room(target)) < FLOORS.index(room(name))
    ]
    assert upward == []


def test_plumbing_imports_nothing_of_the_domain():
    domain = [
        f"{name} imports {target}"
        for name, path in modules().items()
        if name.startswith("chalicelib.plumbing")
        for target in imports_of(path)
        if room(target) != "plumbing"
    ]
    assert domain == []


def test_no_two_modules_import_each_other_however_far_round():
    graph = {name: {t for t in imports_of(path) if t in modules()} for name, path in modules().items()}
    circles: list[list[str]] = []
    finished: set[str] = set()

    def visit(name: str, trail: list[str]) -> None:
        for target in sorted(graph.get(name, ())):
            if target in trail:
                circles.append(trail[trail.index(target) :] + [target])
            elif target not in finished:
                visit(target, [*trail, target])
        finished.add(name)

    for start in sorted(graph):
        if start not in finished:
            visit(start, [start])
    assert circles == []
