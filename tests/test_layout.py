"""The house rules of the source tree, checked on the code itself (ast, nothing imported).

- Layers: a package imports only from lower layers (and from inside itself); the facade
  ``optimlab/__init__.py`` may name any of them.
- No import cycle among modules, counting imports inside functions, ``TYPE_CHECKING``
  imports and ``"optimlab.x"`` strings handed to ``importlib`` (lazy loading).
- Modules of at most 400 lines and functions of at most 60 (docstrings not counted),
  except the ones listed here with the reason.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "optimlab"

# data flows down: each package may import from packages of a lower number only
LAYERS = {
    "core": 0,
    "rules": 1,
    "schedules": 1,
    "functional": 2,
    "optim": 2,
    "train": 3,
    "problems": 4,
    "lab": 5,
    "cli": 6,
}
FACADES = {"optimlab", "optimlab.__main__"}

MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 60
LONG_MODULES: dict[str, str] = {}
LONG_FUNCTIONS: dict[str, str] = {}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES = {_module_name(p): p for p in sorted(SRC.rglob("*.py"))}


def _resolve(module: str, is_package: bool, node: ast.ImportFrom) -> list[str]:
    if node.level:
        base = module.split(".")
        if not is_package:
            base = base[:-1]
        base = base[: len(base) - (node.level - 1)]
        target = ".".join([*base, node.module] if node.module else base)
    else:
        target = node.module or ""
    names = [f"{target}.{a.name}" for a in node.names]
    return [n for n in names if n in MODULES] or [target]


def imports(module: str) -> set[str]:
    """Every optimlab module ``module`` imports, however (see the module docstring)."""
    path = MODULES[module]
    tree = ast.parse(path.read_text())
    out: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            out.update(_resolve(module, path.name == "__init__.py", node))
        elif (
            isinstance(node, ast.Constant)
            and isinstance(node.value, str)
            and node.value.startswith("optimlab.")
            and node.value in MODULES
        ):
            out.add(node.value)
    found = set()
    for name in out:
        while name and name not in MODULES:
            name = name.rpartition(".")[0]
        if name and name != module and name.startswith("optimlab"):
            found.add(name)
    return found


def _package(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[1] in LAYERS else None


def test_every_package_has_a_layer():
    packages = {p.name for p in SRC.iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    assert packages == set(LAYERS)
    loose = {p.name for p in SRC.glob("*.py")} - {"__init__.py", "__main__.py"}
    assert not loose, f"modules loose at the package top: {sorted(loose)}"


@pytest.mark.parametrize("module", sorted(MODULES))
def test_imports_flow_down(module):
    if module in FACADES:
        return
    own = _package(module)
    for target in sorted(imports(module)):
        other = _package(target)
        if target in ("optimlab",):
            pytest.fail(f"{module} imports the facade optimlab/__init__.py")
        if other is None or other == own:
            continue
        assert LAYERS[other] < LAYERS[own], (
            f"{module} (layer {LAYERS[own]}, {own}) imports {target} "
            f"(layer {LAYERS[other]}, {other}): imports must flow down"
        )


def test_no_import_cycle():
    graph = {m: imports(m) - FACADES for m in MODULES if m not in FACADES}
    # a package's __init__ importing its own modules, which import siblings, is no cycle;
    # a cycle is a path back to the start through imports of modules (not faces)
    color: dict[str, int] = {}
    stack: list[str] = []
    cycles: list[list[str]] = []

    def visit(m: str) -> None:
        color[m] = 1
        stack.append(m)
        for n in sorted(graph.get(m, ())):
            if MODULES[n].name == "__init__.py" and n in m:  # a module naming its own package
                continue
            if color.get(n) == 1:
                cycles.append([*stack[stack.index(n) :], n])
            elif color.get(n) is None:
                visit(n)
        stack.pop()
        color[m] = 2

    for m in sorted(graph):
        if color.get(m) is None:
            visit(m)
    assert not cycles, "import cycles:\n" + "\n".join(" -> ".join(c) for c in cycles)


def test_module_sizes():
    long = {
        m: n
        for m, p in MODULES.items()
        if (n := len(p.read_text().splitlines())) > MAX_MODULE_LINES and m not in LONG_MODULES
    }
    assert not long, f"modules over {MAX_MODULE_LINES} lines: {long}"


def test_function_sizes():
    long = {}
    for m, p in MODULES.items():
        for node in ast.walk(ast.parse(p.read_text())):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                n = node.end_lineno - node.lineno + 1
                doc = node.body[0]
                if isinstance(doc, ast.Expr) and isinstance(doc.value, ast.Constant):
                    n -= doc.end_lineno - doc.lineno + 1  # the docstring (a rule's math)
                key = f"{m}.{node.name}"
                if n > MAX_FUNCTION_LINES and key not in LONG_FUNCTIONS:
                    long[key] = n
    assert not long, f"functions over {MAX_FUNCTION_LINES} lines: {long}"
