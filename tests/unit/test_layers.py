"""The shape of `core`: the import-linter contracts hold, and no import forms a cycle.

grimp reads every import statement in `core`, those inside functions and those under
`if TYPE_CHECKING:` included: a lazy import is still a dependency, and a cycle through
one is still a cycle (it only moves the failure to whichever import runs first).
"""

from __future__ import annotations

import subprocess
import sys
import tomllib
from collections import deque
from pathlib import Path

import grimp
import pytest

ROOT = Path(__file__).resolve().parents[2]


def cycles(graph: grimp.ImportGraph) -> list[list[str]]:
    """One shortest cycle, as modules [a, b, ..., a], through each group of modules that
    import one another in a circle (Tarjan's strongly connected components). A package's
    __init__ importing its own submodules is no cycle; a submodule importing its package
    back (`from core.explain import ...` inside core.explain) while the __init__ imports
    it, directly or not, is one."""
    imports = {m: sorted(graph.find_modules_directly_imported_by(m)) for m in graph.modules}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[set[str]] = []
    for root in sorted(imports):
        if root in index:
            continue
        # Depth first without recursion: (module, its next import to look at).
        work = [(root, 0)]
        while work:
            module, i = work.pop()
            if i == 0:
                index[module] = low[module] = len(index)
                stack.append(module)
                on_stack.add(module)
            if i < len(imports[module]):
                work.append((module, i + 1))
                nxt = imports[module][i]
                if nxt not in index:
                    work.append((nxt, 0))
                elif nxt in on_stack:
                    low[module] = min(low[module], index[nxt])
                continue
            if work:  # back in the module that imported this one
                parent = work[-1][0]
                low[parent] = min(low[parent], low[module])
            if low[module] == index[module]:
                group = set()
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    group.add(member)
                    if member == module:
                        break
                if len(group) > 1 or module in imports[module]:
                    groups.append(group)
    return [_shortest_cycle(min(group), group, imports) for group in groups]


def _shortest_cycle(start: str, group: set[str], imports: dict[str, list[str]]) -> list[str]:
    came_from: dict[str, str] = {}
    queue = deque([start])
    while queue:
        module = queue.popleft()
        for nxt in imports[module]:
            if nxt == start:
                path = [module]
                while path[-1] != start:
                    path.append(came_from[path[-1]])
                return [*reversed(path), start]
            if nxt in group and nxt not in came_from:
                came_from[nxt] = module
                queue.append(nxt)
    raise AssertionError(f"{start} is in a cycle but none was found")  # pragma: no cover


def described(graph: grimp.ImportGraph, cycle: list[str]) -> str:
    """'a -> b (a.py:12 `from b import x`) -> a (...)': where each import is written."""
    steps = [cycle[0]]
    for importer, imported in zip(cycle, cycle[1:], strict=False):
        details = graph.get_import_details(importer=importer, imported=imported)
        where = ", ".join(f"l.{d['line_number']} `{d['line_contents']}`" for d in details)
        steps.append(f"{imported} ({importer} {where})")
    return " -> ".join(steps)


def test_no_import_cycles_in_core():
    # cache_dir=None: no cache folder left in the tree.
    graph = grimp.build_graph("core", cache_dir=None)
    found = [described(graph, c) for c in cycles(graph)]
    assert not found, "import cycles in core:\n" + "\n".join(found)


def test_the_cycle_finder_finds_cycles():
    graph = grimp.ImportGraph()
    for module in ("pkg", "pkg.a", "pkg.b", "pkg.c", "pkg.d"):
        graph.add_module(module)
    graph.add_import(importer="pkg", imported="pkg.a")  # an __init__ importing its own
    graph.add_import(importer="pkg.a", imported="pkg.b")
    assert cycles(graph) == []
    graph.add_import(importer="pkg.b", imported="pkg")  # a submodule importing it back
    graph.add_import(importer="pkg.c", imported="pkg.d")
    graph.add_import(importer="pkg.d", imported="pkg.c")
    assert sorted(cycles(graph)) == [["pkg", "pkg.a", "pkg.b", "pkg"],
                                     ["pkg.c", "pkg.d", "pkg.c"]]


def test_import_contracts_are_kept():
    contracts = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
    lint = Path(sys.executable).parent / "lint-imports"
    if not lint.exists():
        pytest.fail(f"{lint} is missing: install the test extra (pip install -e '.[test]')")
    run = subprocess.run([str(lint), "--no-cache", "--no-logo"], cwd=ROOT, capture_output=True,
                         text=True, timeout=120)
    assert run.returncode == 0, run.stdout + run.stderr
    # Every contract was checked, none skipped.
    assert f"Contracts: {len(contracts['contracts'])} kept, 0 broken." in run.stdout
    # TYPE_CHECKING imports are counted (the contracts' stated reading).
    assert contracts.get("exclude_type_checking_imports") is False
