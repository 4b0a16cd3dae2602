"""The shape of grace/'s imports: no cycle between its modules, and `grace query` without plotting or statistics.

The cycle rule (what counts as "module A imports module B"), read from the source with `ast`:

- an `import` / `from ... import` statement that runs when A is imported: at module level, in a class body, or
  under a module-level `if`/`try`/`with`; not one inside a function (it runs when called), nor one under
  `if TYPE_CHECKING:` (never runs) or `if __name__ == "__main__":` (runs only as a script);
- importing `a.b.c` also runs the packages `a` and `a.b` (their `__init__`), so A depends on them too, except
  on the packages A itself sits in (they are imported before A starts); `from a.b import c` depends on `a.b.c`
  when `c` is a module;
- a module that loads modules by name (`importlib.import_module`) depends on every grace module it names in a
  string literal: a lazy load postpones the import, it does not remove the dependency (the study registry and
  the command line load their plug-ins so).

A cycle is a strongly connected component of more than one module (Tarjan's algorithm); the test fails naming
the modules of each, in an order that closes the loop.
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "grace"
HEAVY = ("matplotlib", "scipy")  # what `grace query` must not import: plotting and statistics


def module_names(package: Path = PACKAGE) -> dict[str, Path]:
    """Every module of the package by dotted name (a package by its own name, for its __init__)."""
    out = {}
    for path in sorted(package.rglob("*.py")):
        parts = list(path.relative_to(package.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _is_main_guard(test: ast.expr) -> bool:
    return (isinstance(test, ast.Compare) and isinstance(test.left, ast.Name) and test.left.id == "__name__"
            and any(isinstance(c, ast.Constant) and c.value == "__main__" for c in test.comparators))


def _runtime_statements(body: list[ast.stmt]) -> Iterator[ast.stmt]:
    """The statements that run when the module is imported (functions' bodies and the guards above left out)."""
    for node in body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            continue
        yield node
        if isinstance(node, ast.If):
            if _is_type_checking(node.test) or _is_main_guard(node.test):
                yield from _runtime_statements(node.orelse)
                continue
            yield from _runtime_statements(node.body)
            yield from _runtime_statements(node.orelse)
        elif isinstance(node, ast.ClassDef | ast.With):
            yield from _runtime_statements(node.body)
        elif isinstance(node, ast.Try):
            for block in (node.body, *(h.body for h in node.handlers), node.orelse, node.finalbody):
                yield from _runtime_statements(block)


def _resolve(module: str, is_package: bool, level: int, name: str | None) -> str:
    """The absolute name of a relative import's target."""
    if level == 0:
        return name or ""
    base = module.split(".") if is_package else module.split(".")[:-1]
    base = base[: len(base) - (level - 1)]
    return ".".join([*base, name] if name else base)


def imports_of(module: str, path: Path, known: set[str]) -> set[str]:
    """The grace modules `module` imports when it is imported (the rule in this file's docstring)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    is_package = path.name == "__init__.py"
    targets: set[str] = set()
    for node in _runtime_statements(tree.body):
        if isinstance(node, ast.Import):
            targets |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = _resolve(module, is_package, node.level, node.module)
            targets.add(base)
            targets |= {f"{base}.{alias.name}" for alias in node.names if f"{base}.{alias.name}" in known}
    if any(isinstance(n, ast.Attribute | ast.Name) and getattr(n, "attr", getattr(n, "id", None)) == "import_module"
           for n in ast.walk(tree)):
        targets |= {n.value for n in ast.walk(tree) if isinstance(n, ast.Constant) and n.value in known}
    own_packages = {".".join(module.split(".")[:i]) for i in range(1, module.count(".") + 1)}
    out: set[str] = set()
    for target in targets:
        parts = target.split(".")
        for i in range(1, len(parts) + 1):  # the target and every package above it
            name = ".".join(parts[:i])
            if name in known and name not in own_packages and name != module:
                out.add(name)
    return out


def import_graph(package: Path = PACKAGE) -> dict[str, set[str]]:
    modules = module_names(package)
    known = set(modules)
    return {m: imports_of(m, p, known) for m, p in modules.items()}


def cycles(graph: dict[str, set[str]]) -> list[set[str]]:
    """The strongly connected components of more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[set[str]] = []

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
                found.append(set(component))

    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10 * len(graph) + 100))
    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def loop(graph: dict[str, set[str]], component: set[str]) -> list[str]:
    """One path through the component from its first module back to it (breadth-first: a shortest loop)."""
    start = min(component)
    previous: dict[str, str] = {}
    frontier = [start]
    while frontier:
        nxt = []
        for v in frontier:
            for w in sorted(graph[v] & component):
                if w == start:
                    path = [v]
                    while path[-1] != start:
                        path.append(previous[path[-1]])
                    return [*reversed(path), start]
                if w not in previous:
                    previous[w] = v
                    nxt.append(w)
        frontier = nxt
    return sorted(component)


def test_the_rule_finds_a_cycle(tmp_path: Path) -> None:
    """The walker itself: a cycle through a package's __init__ and a lazy load by name is found; imports in a
    function, under TYPE_CHECKING or a __main__ guard are not imports at import time."""
    pkg = tmp_path / "pkg"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "sub" / "__init__.py").write_text("from pkg.sub.b import B\n")
    (pkg / "sub" / "b.py").write_text("from pkg import c\nB = 1\n")
    (pkg / "c.py").write_text(
        "import importlib\nNAMES = ('pkg.d',)\ndef load():\n    importlib.import_module(NAMES[0])\n")
    (pkg / "d.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import pkg.e\n"
        "def f():\n    import pkg.e\nif __name__ == '__main__':\n    import pkg.e\nimport pkg.sub.b\n")
    (pkg / "e.py").write_text("import pkg.d\n")
    graph = import_graph(pkg)
    assert graph["pkg.d"] == {"pkg.sub", "pkg.sub.b"}  # the package above the target too
    assert graph["pkg.sub.b"] == {"pkg.c"}  # not its own package pkg.sub
    assert cycles(graph) == [{"pkg.c", "pkg.d", "pkg.sub", "pkg.sub.b"}]
    assert loop(graph, cycles(graph)[0]) == ["pkg.c", "pkg.d", "pkg.sub.b", "pkg.c"]


def test_no_import_cycle_in_grace() -> None:
    graph = import_graph()
    found = cycles(graph)
    assert not found, "import cycles in grace/:\n" + "\n".join(
        f"{' -> '.join(loop(graph, c))}  (one loop of {len(c)} modules that import each other: {', '.join(sorted(c))})"
        for c in found)


def _imported_after(argv: list[str], env: dict[str, str] | None = None) -> tuple[int, set[str], str]:
    """Run `grace ARGV` in a fresh interpreter; its exit code, the heavy top-level modules it imported, stderr."""
    code = ("import sys\nfrom grace.cli import main\n"
            "try:\n    rc = main(sys.argv[1:])\nexcept SystemExit as e:\n    rc = e.code\n"
            f"print('LOADED', ' '.join(sorted({{m.split('.')[0] for m in sys.modules}} & {set(HEAVY)!r})))\n"
            "sys.exit(rc)")
    proc = subprocess.run([sys.executable, "-c", code, *argv], capture_output=True, text=True, timeout=120,
                          cwd=ROOT, env={**os.environ, **(env or {})})
    line = [x for x in proc.stdout.splitlines() if x.startswith("LOADED")][-1]
    return proc.returncode, set(line.split()[1:]), proc.stderr


def test_query_help_imports_no_plotting_or_statistics() -> None:
    rc, loaded, err = _imported_after(["query", "--help"])
    assert rc == 0, err
    assert not loaded, f"grace query --help imported {sorted(loaded)}"


def test_query_run_imports_no_plotting_or_statistics(tmp_path: Path) -> None:
    """A `grace query` run up to the server (its input read and checked, every study looked up): a stimulus file
    with a bad row stops it with exit code 2 before any server is started."""
    bad = tmp_path / "bad.csv"
    bad.write_text((ROOT / "data" / "study1_sample.csv").read_text(encoding="utf-8").replace(",3,", ",9,", 1))
    rc, loaded, err = _imported_after(["query", "--model", "toy", "--study", "study1", "--input", str(bad),
                                       "--out", str(tmp_path / "out")])
    assert rc == 2 and "row" in err, err
    assert not loaded, f"grace query imported {sorted(loaded)}"


@pytest.mark.server
def test_query_against_a_server_imports_no_plotting_or_statistics(toy_server: object, tmp_path: Path) -> None:
    """A whole `grace query` run on the toy server: two trials asked and written, nothing heavy imported."""
    url = toy_server.base_url  # type: ignore[attr-defined]
    rc, loaded, err = _imported_after(["query", "--model", "toy", "--study", "study2", "--sample", "--limit", "2",
                                       "--endpoint", url, "--out", str(tmp_path / "out")])
    assert rc == 0, err
    assert len((tmp_path / "out" / "toy" / "study2" / "exp1.jsonl").read_text().splitlines()) == 2
    assert not loaded, f"grace query imported {sorted(loaded)}"


def _closure(graph: dict[str, set[str]], start: str) -> set[str]:
    seen, todo = {start}, [start]
    while todo:
        for w in graph[todo.pop()] - seen:
            seen.add(w)
            todo.append(w)
    return seen


def test_the_report_reads_server_waits_without_the_serving_layer() -> None:
    """server-waits.jsonl is a record file (grace.server_waits): the report reads it as it reads a checkpoint."""
    graph = import_graph()
    for module in (m for m in graph if m.startswith("grace.report.")):
        serving = sorted(m for m in _closure(graph, module) if m.split(".")[:2] == ["grace", "serving"])
        assert not serving, f"{module} imports {serving}"
    assert not {m for m in _closure(graph, "grace.serving.base") if m.startswith("grace.serving.gate")}
