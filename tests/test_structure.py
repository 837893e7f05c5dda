"""bench/'s shape: its modules import each other without a cycle, results import no framework, and every module
can be read in one sitting. Framework-free: runs in every environment."""

from __future__ import annotations

import ast
import subprocess
import sys

from conftest import ROOT

BENCH = ROOT / "bench"
FRAMEWORKS = ("torch", "tensorflow", "jax", "keras", "tf_keras")
MAX_LINES = 600


def _module_name(path) -> str:
    parts = ("twinbench", *path.relative_to(BENCH).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _bench_imports() -> dict[str, set[str]]:
    """``{module: the bench modules it imports}``, at any depth of the file (function-local imports too)."""
    modules = {_module_name(path): path for path in BENCH.rglob("*.py")}
    graph = {}
    for name, path in modules.items():
        imported = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                imported |= {alias.name for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                # `from twinbench.results import report` imports the module twinbench.results.report
                imported |= {node.module} | {f"{node.module}.{alias.name}" for alias in node.names}
        graph[name] = {module for module in imported if module in modules and module != name}
    return graph


def _cycle(graph) -> list[str] | None:
    """One import cycle of ``graph``, or None."""
    state: dict[str, str] = {}  # module -> "open" while on the path, "done" after

    def visit(module, path):
        state[module] = "open"
        for other in sorted(graph[module]):
            if state.get(other) == "open":
                return [*path[path.index(other):], other]
            if other not in state and (found := visit(other, [*path, other])):
                return found
        state[module] = "done"
        return None

    for module in sorted(graph):
        if module not in state and (found := visit(module, [module])):
            return found
    return None


def test_bench_modules_import_each_other_without_a_cycle():
    graph = _bench_imports()
    assert "twinbench.results.report" in graph and "twinbench.cli.run_commands" in graph
    assert _cycle(graph) is None, " -> ".join(_cycle(graph))


def test_the_cycle_finder_finds_one():
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None


def test_results_import_no_framework():
    code = ("import pkgutil, importlib, sys, twinbench.results as r\n"
            "for m in pkgutil.iter_modules(r.__path__): importlib.import_module(f'twinbench.results.{m.name}')\n"
            f"print([name for name in {FRAMEWORKS!r} if name in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_no_bench_module_imports_a_framework_at_import_time():
    code = ("import pkgutil, importlib, sys, twinbench\n"
            "for m in pkgutil.walk_packages(twinbench.__path__, 'twinbench.'):\n"
            "    if m.name != 'twinbench.__main__': importlib.import_module(m.name)\n"
            f"print([name for name in {FRAMEWORKS!r} if name in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_every_bench_module_reads_in_one_sitting():
    long = {path.relative_to(ROOT).as_posix(): n for path in BENCH.rglob("*.py")
            if (n := len(path.read_text().splitlines())) > MAX_LINES}
    assert long == {}
