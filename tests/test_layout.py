"""The code's layout rules: each module says what it is in its first line, stays small, and imports form no cycle."""

import ast
from pathlib import Path
from typing import Dict, Set

from conftest import REPO

PACKAGES = ("mlexp", "hydra_plugins")
MAX_LINES = 320  # "no module over ~300 lines"


def _modules() -> Dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in sorted((REPO / package).rglob("*.py")):
            parts = path.relative_to(REPO).with_suffix("").parts
            found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


MODULES = _modules()


def _imports_at_module_level(name: str, path: Path) -> Set[str]:
    """mlexp modules imported when ``name`` is imported (module scope, not inside functions)."""
    tree = ast.parse(path.read_text())
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: Set[str] = set()
    for node in tree.body:  # module scope, including if/try blocks at that level (not `if TYPE_CHECKING:`)
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            continue
        for child in ast.walk(node) if isinstance(node, (ast.If, ast.Try)) else [node]:
            if isinstance(child, ast.Import):
                found |= {alias.name for alias in child.names}
            elif isinstance(child, ast.ImportFrom):
                base = child.module or ""
                if child.level:
                    base = ".".join(package.split(".")[: len(package.split(".")) - child.level + 1] + ([base] if base else []))
                found.add(base)
                found |= {f"{base}.{alias.name}" for alias in child.names}
    return {m for m in found if m in MODULES and m != name}


def test_every_module_says_what_it_is_in_its_first_line():
    missing = [str(p.relative_to(REPO)) for p in MODULES.values()
               if not (ast.get_docstring(ast.parse(p.read_text())) or "").strip()]
    assert not missing, f"modules without a docstring: {missing}"


def test_no_module_is_over_about_300_lines():
    long = {str(p.relative_to(REPO)): n for p in MODULES.values() if (n := len(p.read_text().splitlines())) > MAX_LINES}
    assert not long, f"split these modules: {long}"


def test_module_imports_form_no_cycle():
    graph = {name: _imports_at_module_level(name, path) for name, path in MODULES.items()}
    assert graph["mlexp.experiment"], "the scan finds imports"  # a scan that finds nothing would always pass
    state: Dict[str, int] = {}

    def visit(node: str, stack: list) -> None:
        state[node] = 1
        for target in sorted(graph[node]):
            if state.get(target) == 1:
                raise AssertionError("import cycle: " + " -> ".join(stack[stack.index(target):] + [node, target]))
            if target not in state:
                visit(target, stack + [node])
        state[node] = 2

    for name in sorted(graph):
        if name not in state:
            visit(name, [])


def test_subpackages_form_no_cycle():
    """models <-> ensembles and reporting <-> tuning were cycles once: packages depend one way, at module scope."""
    def package(module: str) -> str:
        return ".".join(module.split(".")[:2])

    edges: Dict[str, Set[str]] = {}
    for name, path in MODULES.items():
        for target in _imports_at_module_level(name, path):
            if package(target) != package(name):
                edges.setdefault(package(name), set()).add(package(target))
    cycles = sorted(f"{a} <-> {b}" for a in edges for b in edges[a] if a < b and a in edges.get(b, set()))
    assert not cycles, f"packages importing each other at module scope: {cycles}"
