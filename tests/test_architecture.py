"""The layout rules of docs/architecture.md, checked on the source: small files and no import cycle between the
package's parts (tests/commands/test_boundaries.py checks that only the CLI reaches the commands)."""

from __future__ import annotations

import ast
import itertools
from collections import defaultdict
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "rsseg_cli"
MAX_LINES = 450


def _modules() -> dict[str, Path]:
    out = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = path
    return out


def _imports(path: Path) -> set[str]:
    """Every rsseg_cli module a file imports, at module level or inside functions."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("rsseg_cli.")}
        elif (
            isinstance(node, ast.ImportFrom)
            and node.level == 0
            and (node.module or "").startswith("rsseg_cli.")
        ):
            found.add(node.module)  # type: ignore[arg-type]
    return found


def _part(module: str) -> str:
    """rsseg_cli.engine.trainer -> engine; rsseg_cli.config -> config."""
    return module.split(".")[1]


def test_no_file_is_longer_than_the_limit():
    long = {
        str(p.relative_to(PACKAGE)): n
        for p in PACKAGE.rglob("*.py")
        if (n := len(p.read_text().splitlines())) > MAX_LINES
    }
    assert not long, f"files over {MAX_LINES} lines: {long}"


def test_no_import_cycle_between_the_package_parts():
    graph: dict[str, set[str]] = defaultdict(set)
    where: dict[tuple[str, str], str] = {}
    for module, path in _modules().items():
        if module == "rsseg_cli":
            continue
        for target in _imports(path):
            a, b = _part(module), _part(target)
            if a != b:
                graph[a].add(b)
                where.setdefault((a, b), module)
    # Depth-first search for a back edge; report the cycle with one importing module per edge.
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return [*stack[stack.index(nxt) :], nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            edges = [f"{a} -> {b} ({where[a, b]})" for a, b in itertools.pairwise(cycle)]
            raise AssertionError("import cycle: " + "; ".join(edges))
