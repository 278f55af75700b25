"""The package's floors (CONTRIBUTING.md): no import circles, the core imports no UI or plotting library, and only
the anatomy and the hook engine know where timm keeps an HRNet's fuse layers. Read from the source with ``ast``,
function-level imports included, so a lazy import cannot hide a circle."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from repo import ROOT

PACKAGE = ROOT / "hrnet_explorer"
# Modules that may import plotly / gradio (the figures, the HTML pages, the app); everything else is core.
PLOTTING = ("hrnet_explorer.figures", "hrnet_explorer.report", "hrnet_explorer.microscope.html")
UI = ("hrnet_explorer.ui", "hrnet_explorer.app", "hrnet_explorer.cli", "hrnet_explorer.__main__")


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in PACKAGE.rglob("*.py") if "assets" not in p.parts}


def _imports(name: str, path: Path) -> set[str]:
    """Every module ``name`` imports (absolute names), at any depth of the file."""
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                prefix = ".".join(base + ([node.module] if node.module else []))
            else:
                prefix = node.module or ""
            out.add(prefix)
            out.update(f"{prefix}.{a.name}" for a in node.names)  # `from . import x` imports module x
    return out


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    return {n: {m for m in _imports(n, p) if m in modules and m != n} for n, p in modules.items()}


def _within(name: str, prefixes: tuple[str, ...]) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


def test_no_import_circles():
    graph = _graph()
    # A package's __init__ re-exporting its own modules is not a circle of ideas: drop package → child edges.
    edges = {n: {m for m in deps if not m.startswith(n + ".")} for n, deps in graph.items()}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    circles: list[list[str]] = []

    def visit(v: str) -> None:  # Tarjan's strongly connected components
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in edges[v]:
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
                circles.append(sorted(component))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    assert circles == [], f"import circles: {circles}"


@pytest.mark.parametrize("library", ["gradio", "plotly"])
def test_the_core_imports_no_ui_or_plotting_library(library):
    allowed = UI if library == "gradio" else UI + PLOTTING
    offenders = sorted(
        n
        for n, p in _modules().items()
        if not _within(n, allowed) and any(m == library or m.startswith(library + ".") for m in _imports(n, p))
    )
    assert offenders == []


def test_one_place_draws_progress():
    """Work reports progress through a callback (hrnet_explorer.progress); only that module draws a bar."""
    offenders = sorted(
        n
        for n, p in _modules().items()
        if n != "hrnet_explorer.progress" and any(m == "tqdm" or m.startswith("tqdm.") for m in _imports(n, p))
    )
    assert offenders == []


def test_the_core_never_imports_the_ui():
    offenders = sorted(
        f"{n} → {m}" for n, deps in _graph().items() if not _within(n, UI) for m in deps if _within(m, UI)
    )
    assert offenders == []


def test_only_the_anatomy_and_the_hook_engine_know_where_the_fuse_layers_are():
    """No other module reaches for ``.fuse_layers`` / ``.fuse_act`` (attributes or getattr names); prose about them,
    or a checkpoint's key names that contain the words, is fine."""
    knowing = {"hrnet_explorer.anatomy", "hrnet_explorer.hooks"}
    names = {"fuse_layers", "fuse_act"}

    def reaches(path: Path) -> bool:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Attribute) and node.attr in names:
                return True
            lookup = isinstance(node, ast.Call) and getattr(node.func, "id", None) in ("getattr", "hasattr", "setattr")
            if lookup and any(isinstance(a, ast.Constant) and a.value in names for a in node.args):
                return True
        return False

    offenders = sorted(n for n, p in _modules().items() if n not in knowing and reaches(p))
    assert offenders == []


def test_no_module_is_a_room_for_everything():
    sizes = {n: len(p.read_text().splitlines()) for n, p in _modules().items()}
    assert {n: s for n, s in sizes.items() if s > 650} == {}


def test_the_tests_show_the_floors():
    """Every test is a unit test in a folder mirroring the package, or a system test; none is loose in tests/."""
    tests = ROOT / "tests"
    assert not list(tests.glob("test_*.py")), "a test file belongs in tests/unit/ or tests/system/"
    for path in (tests / "unit").rglob("test_*.py"):
        folder = path.parent.relative_to(tests / "unit")
        assert (PACKAGE / folder).is_dir(), f"{path.relative_to(ROOT)} mirrors no package folder of hrnet_explorer"
    names = [p.name for p in tests.rglob("test_*.py")]
    assert len(names) == len(set(names)), "test files need unique names (pytest imports them by name)"
