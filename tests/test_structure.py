"""twinbench's shape, over the whole package (models/, data/, backends/ and bench/, every ``twinbench.*`` module):
its modules import each other one way, layer by layer (``LAYERS``), without a cycle, and a runner never imports
another runner; results import no framework, and importing any module imports none either, except the modules that
are a framework's own (``FRAMEWORK_FILES``); and every bench/ module can be read in one sitting. Framework-free: runs
in every environment."""

from __future__ import annotations

import ast
import subprocess
import sys
import tomllib

from conftest import ROOT

BENCH = ROOT / "bench"
FRAMEWORKS = ("torch", "tensorflow", "jax", "keras", "tf_keras")
MAX_LINES = 600

# The layers, bottom up: a module imports modules of its own layer and of the layers below, never of one above.
# A module is in the layer of the longest prefix here that names it or a package around it ("twinbench" itself:
# only the package's own __init__).
LAYERS = {
    "twinbench.models": 0,      # each model's Keras 3 definition, its twins, the registry
    "twinbench.data": 1,        # the datasets and the shared batch order
    "twinbench.backends": 2,    # run time: the runners and what they share (settings, tolerances, op intervals)
    "twinbench.cell": 3,        # what a run is ...
    "twinbench.records": 3,     # ... and what it leaves
    "twinbench.ops": 3,         # a record's op table: the ops' categories
    "twinbench.stats": 3,
    "twinbench.causes": 3,      # a profile's functions by cause: the one group table and the folding       # the statistics a record's figures are, and every comparison draws on
    "twinbench.measuring": 4,   # runs a cell in this process and measures it
    "twinbench.twins": 4,       # the twin checks: run twins through the runners, as measuring runs cells
    "twinbench.results": 5,     # decomposition, tables, report, figures, from records
    "twinbench.studies": 6,     # questions that measure and then analyse
    "twinbench.cli": 7,         # python -m twinbench: parses, checks the input, delegates
    "twinbench.__main__": 7,
    "twinbench": 7,             # the public API: names from every layer, loaded on first use
}
# Modules that are a framework's own (the runners, the twins, their layers): importing them imports it.
FRAMEWORK_FILES = ("torch_runner", "keras_runner", "tf_keras_runner", "torch_model", "keras_model", "tf_keras_model",
                   "keras_layers", "tf_keras_layers", "torch_generate", "keras_generate", "tf_keras_generate")


def _package_dirs() -> dict[str, object]:
    """``{package: its folder}`` as pyproject.toml maps them (``twinbench``: bench/, ``twinbench.models``: models/...)."""
    table = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-dir"]
    return {package: ROOT / folder for package, folder in table.items()}


def _modules() -> dict[str, object]:
    """``{module name: its file}`` for every module of the package."""
    modules = {}
    for package, folder in _package_dirs().items():
        for path in folder.rglob("*.py"):
            parts = (package, *path.relative_to(folder).with_suffix("").parts)
            modules[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return modules


def _imports(source: str, modules, *, name: str, package: str) -> set[str]:
    """The twinbench modules that module ``name`` (of ``package``) imports in ``source``, at any depth of it
    (function-local imports too).

    ``from twinbench.results import report`` imports the module twinbench.results.report; ``from twinbench.data import
    tasks, DatasetError`` the module twinbench.data.tasks and the package twinbench.data (for ``DatasetError``).
    """
    imported = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            imported |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: from the package, up level - 1
                base = ".".join(filter(None, [package.rsplit(".", node.level - 1)[0], base]))
            for alias in node.names:
                imported.add(f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base)
    return {module for module in imported if module in modules and module != name}


def _graph() -> dict[str, set[str]]:
    """``{module: the twinbench modules it imports}`` over the whole package."""
    modules = _modules()
    return {name: _imports(path.read_text(), modules, name=name,
                           package=name if path.name == "__init__.py" else name.rpartition(".")[0])
            for name, path in modules.items()}


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


def _layer(module: str) -> int | None:
    """The layer of ``module`` (``LAYERS``), or None where the table names none."""
    if module in LAYERS:
        return LAYERS[module]
    around = [prefix for prefix in LAYERS if prefix != "twinbench" and module.startswith(prefix + ".")]
    return LAYERS[max(around, key=len)] if around else None


def _upward(graph) -> list[str]:
    """``'a -> b'`` for every import of ``graph`` from a lower layer into a higher one."""
    return [f"{module} -> {other}" for module in sorted(graph) for other in sorted(graph[module])
            if _layer(other) > _layer(module)]


def _framework_own(module: str) -> bool:
    return module.rpartition(".")[2] in FRAMEWORK_FILES


def test_the_package_imports_without_a_cycle():
    graph = _graph()
    assert {"twinbench.results.report", "twinbench.cli.run_commands", "twinbench.backends.base",
            "twinbench.models._registry", "twinbench.data.tasks"} <= set(graph)
    assert _cycle(graph) is None, " -> ".join(_cycle(graph))


def test_every_module_has_a_layer():
    assert [module for module in sorted(_graph()) if _layer(module) is None] == []


def test_no_module_imports_a_higher_layer():
    upward = _upward(_graph())
    assert upward == [], "imports into a higher layer:\n" + "\n".join(upward)


def test_a_runner_imports_no_other_runner():
    graph = _graph()
    runners = {module for module in graph if module.startswith("twinbench.backends.") and module.endswith("_runner")}
    assert runners == {f"twinbench.backends.{name}" for name in ("torch_runner", "keras_runner", "tf_keras_runner")}
    assert [f"{runner} -> {other}" for runner in sorted(runners) for other in sorted(graph[runner] & runners)] == []


def test_the_checks_find_what_they_look_for():
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None
    made_up = {"twinbench.models.weights": {"twinbench.cell"}, "twinbench.cli.checks": {"twinbench.models"},
               "twinbench.measuring.timing": {"twinbench.twins.parity", "twinbench.results.stats"},
               "twinbench.cell": {"twinbench"}}
    assert _upward(made_up) == ["twinbench.cell -> twinbench", "twinbench.measuring.timing -> twinbench.results.stats",
                                "twinbench.models.weights -> twinbench.cell"]
    source = ("from twinbench.data import tasks, DatasetError\nimport twinbench.models\n"
              "def f():\n    from twinbench import data\n    from . import options\n")
    modules = {"twinbench.data", "twinbench.data.tasks", "twinbench.models", "twinbench.cli.options", "twinbench.cli.x"}
    assert _imports(source, modules, name="twinbench.cli.x", package="twinbench.cli") == {
        "twinbench.data", "twinbench.data.tasks", "twinbench.models", "twinbench.cli.options"}


def _frameworks_after_importing(modules) -> list[str]:
    code = ("import importlib, sys\n"
            f"for name in {sorted(modules)!r}: importlib.import_module(name)\n"
            f"print([name for name in {FRAMEWORKS!r} if name in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    return ast.literal_eval(out)


def test_results_import_no_framework():
    assert _frameworks_after_importing([m for m in _modules() if m.startswith("twinbench.results")]) == []


def test_importing_the_package_imports_no_framework():
    """Every module but a framework's own: a framework is imported inside the functions that need it."""
    modules = [m for m in _modules() if m != "twinbench.__main__" and not _framework_own(m)]
    assert len(modules) > 100
    assert _frameworks_after_importing(modules) == []


def test_every_bench_module_reads_in_one_sitting():
    long = {path.relative_to(ROOT).as_posix(): n for path in BENCH.rglob("*.py")
            if (n := len(path.read_text().splitlines())) > MAX_LINES}
    assert long == {}
