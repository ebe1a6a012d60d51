"""The subpackages of trm import each other in one direction only (no package cycles)."""

import ast
from pathlib import Path

TRM = Path(__file__).resolve().parents[1] / "trm"


def imported_modules(file: Path) -> list[str]:
    """Absolute module names the file imports, anywhere in it (function-level imports too)."""
    modules = []
    for node in ast.walk(ast.parse(file.read_text(encoding="utf-8"))):
        modules += [node.module or ""] if isinstance(node, ast.ImportFrom) and node.level == 0 else \
            [alias.name for alias in node.names] if isinstance(node, ast.Import) else []
    return modules


def package_graph() -> dict[str, set[str]]:
    packages = {p.name for p in TRM.iterdir() if (p / "__init__.py").exists()}
    graph: dict[str, set[str]] = {name: set() for name in packages}
    for name in packages:
        for file in (TRM / name).rglob("*.py"):
            for module in imported_modules(file):
                parts = module.split(".")
                if len(parts) > 1 and parts[0] == "trm" and parts[1] in packages and parts[1] != name:
                    graph[name].add(parts[1])
    return graph


def test_no_package_import_cycles():
    graph = package_graph()
    state: dict[str, str] = {}

    def visit(node: str, path: list[str]) -> None:
        state[node] = "open"
        for nxt in sorted(graph[node]):
            assert state.get(nxt) != "open", f"import cycle: {' -> '.join(path + [nxt])}"
            if nxt not in state:
                visit(nxt, path + [nxt])
        state[node] = "done"

    for start in sorted(graph):
        if start not in state:
            visit(start, [start])


def test_the_graph_sees_imports():
    assert "llm" in package_graph()["preference"]  # the check would pass vacuously if it read nothing


def test_trm_never_imports_its_test_support():
    """trm_testing (fault servers, scripted judge) is for tests and benchmarks; the product must not depend on it."""
    offenders = [f"{file.relative_to(TRM)}: {module}" for file in TRM.rglob("*.py") for module in imported_modules(file)
                 if module.split(".")[0] == "trm_testing"]
    assert offenders == []
    assert "trm_testing.serving" in imported_modules(Path(__file__).parent / "conftest.py")  # the scan sees them
