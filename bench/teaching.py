"""Teaching pages: one model, read in three styles, with the proof that they are one network.

``docs/models/<model>.md`` (and ``python -m bench show MODEL``) puts side by side

1. the Keras 3 definition, the PyTorch twin and the tf.keras twin, **taken from the source files**;
2. the training code each style needs, taken from ``backends/`` (what twinbench really runs);
3. lines of code per style (not counting blank lines, comments or docstrings);
4. a layer-by-layer table (name, output shape, parameters) lined up across the three twins;
5. the twin check: the largest difference in logits for the same weights (``bench.parity``).

Parts 1-3 are read from the source with ``ast``, so they work in any environment and never drift from
the code. Parts 4-5 need the frameworks, and no environment has all three (their pins conflict), so each
environment computes its share and commits it as ``docs/models/_data/<model>.<env>.json``::

    nox -s docs            # docs_data(torch|tensorflow|jax) collect, then the pages are rendered
    python -m bench docs --collect    # (inside one environment) this environment's share only
    python -m bench docs              # render the pages from the sources and the committed data

Nothing here imports a framework at module level; ``collect`` goes through ``backends``.
"""

from __future__ import annotations

import ast
import importlib
import importlib.util
import io
import json
import os
import textwrap
import tokenize
from dataclasses import dataclass, field
from pathlib import Path

from bench.cell import BACKENDS, ENVIRONMENTS, implementation_label

ROOT = Path(__file__).resolve().parent.parent
DOCS_DIR = ROOT / "docs" / "models"
DATA_DIR = DOCS_DIR / "_data"
FIXTURE_DIR = ROOT / "tests" / "parity"  # the PyTorch twin's fingerprints (tests/parity_fixtures.py)

STYLES = ("keras", "torch", "tf_keras")
STYLE_TITLES = {"keras": "Keras 3", "torch": "PyTorch", "tf_keras": "tf.keras"}
ENVS = BACKENDS  # one environment per Keras backend (bench.cell.ENVIRONMENTS)
REGENERATE = "run `nox -s docs` (or, for source changes only, `python -m bench docs`)"

# The training code each style needs, as twinbench runs it: "module:qualified.name", read from the source.
TRAINING_CODE = {
    "keras": ["backends.keras_runner:compile_model", "backends.keras_runner:KerasRunner.fit"],
    "torch": ["backends.torch_runner:train_step", "backends.torch_runner:TorchRunner.fit"],
    "tf_keras": ["backends.keras_runner:compile_model", "backends.tf_keras_runner:TfKerasRunner.fit"],
}
# Helpers the training code above calls that exist only to make the comparison fair (shared batch order,
# synchronised timing); named on the page, not shown.
TRAINING_HELPERS = {
    "keras": "`EpochBatches` (a `PyDataset` in the shared batch order) and `_EpochTimer` (timing callback)",
    "torch": "`EpochBatchSampler` (the shared batch order) and `ProgressBar` (Keras-style progress)",
    "tf_keras": "`EpochBatches` (a `Sequence` in the shared batch order) and `_EpochTimer` (timing callback)",
}


class DocsError(RuntimeError):
    """The pages cannot be generated (a builder that is not in the source, missing data); one line."""


# ----------------------------------------------------------------------------------------------------------
# Source: excerpts and lines of code (framework-free).
# ----------------------------------------------------------------------------------------------------------

def module_path(module_name: str) -> Path:
    """The ``.py`` file of a module, found without importing it (no framework gets imported)."""
    spec = importlib.util.find_spec(module_name)
    if spec is None or not spec.origin or not spec.origin.endswith(".py"):
        raise DocsError(f"cannot find the source of module {module_name!r}")
    return Path(spec.origin)


def relative(path: Path) -> str:
    try:
        return path.resolve().relative_to(ROOT).as_posix()
    except ValueError:
        return path.as_posix()


def _bound_names(node) -> list[str]:
    """Names a top-level statement binds (``def f``, ``X = ...``, ``from m import a as b``)."""
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        return [node.name]
    if isinstance(node, ast.Assign):
        return [n.id for t in node.targets for n in ast.walk(t) if isinstance(n, ast.Name)]
    if isinstance(node, (ast.AnnAssign, ast.AugAssign)) and isinstance(node.target, ast.Name):
        return [node.target.id]
    if isinstance(node, ast.Import):
        return [(a.asname or a.name).split(".")[0] for a in node.names]
    if isinstance(node, ast.ImportFrom):
        return [a.asname or a.name for a in node.names]
    return []


def _used_names(node) -> set[str]:
    return {n.id for n in ast.walk(node) if isinstance(n, ast.Name)}


@dataclass
class Excerpt:
    """The part of one module that a set of names needs: their definitions, what they use, the imports."""

    module: str
    path: Path
    text: str
    nodes: list = field(repr=False, default_factory=list)
    imports: list[tuple[str, str]] = field(default_factory=list)  # (module, name) of every from-import used


def excerpt(module_name: str, names) -> Excerpt:
    """Cut from ``module_name`` the top-level statements that ``names`` need, transitively, in file order.

    The module docstring comes first; comment lines directly above a kept statement are kept with it.
    Other definitions in the same file (another model of the family) are left out.
    """
    path = module_path(module_name)
    source = path.read_text()
    tree = ast.parse(source)
    lines = source.splitlines()
    bound = {}
    for node in tree.body:
        for name in _bound_names(node):
            bound.setdefault(name, node)
    keep, queue = [], list(names)
    while queue:
        name = queue.pop()
        node = bound.get(name)
        if node is None:
            continue
        if not any(node is kept for kept in keep):
            keep.append(node)
            queue.extend(_used_names(node))
    missing = [n for n in names if n not in bound]
    if missing:
        raise DocsError(f"{relative(path)} defines no {missing[0]!r}")
    keep.sort(key=lambda n: n.lineno)

    parts = []
    docstring = ast.get_docstring(tree, clean=False)
    if docstring is not None:
        first = tree.body[0]
        parts.append("\n".join(lines[first.lineno - 1:first.end_lineno]))
    position = {id(node): i for i, node in enumerate(tree.body)}
    previous = None
    for node in keep:
        start = min([node.lineno] + [d.lineno for d in getattr(node, "decorator_list", [])])
        while start > 1 and lines[start - 2].lstrip().startswith("#"):
            start -= 1
        text = "\n".join(lines[start - 1:node.end_lineno])
        if previous is None:
            separator = "\n\n" if parts else ""
        elif position[id(node)] == position[id(previous)] + 1:  # neighbours in the file: keep its spacing
            separator = "\n" + "".join(line + "\n" for line in lines[previous.end_lineno:start - 1])
        elif isinstance(node, (ast.FunctionDef, ast.ClassDef)) or isinstance(previous, (ast.FunctionDef, ast.ClassDef)):
            separator = "\n\n\n"  # something was left out in between: PEP 8 spacing
        else:
            separator = "\n\n"
        parts.append(separator + text)
        previous = node
    imports = [(node.module, alias.name) for node in keep if isinstance(node, ast.ImportFrom) and node.module
               for alias in node.names]
    return Excerpt(module=module_name, path=path, text="".join(parts) + "\n", nodes=keep, imports=imports)


def member_source(target: str) -> tuple[str, Path]:
    """Source of ``"module:function"`` or ``"module:Class.method"`` (dedented), read with ``ast``."""
    module_name, _, qualname = target.partition(":")
    path = module_path(module_name)
    source = path.read_text()
    scope = ast.parse(source).body
    node = None
    for part in qualname.split("."):
        node = next((n for n in scope if isinstance(n, (ast.FunctionDef, ast.ClassDef)) and n.name == part), None)
        if node is None:
            raise DocsError(f"{relative(path)} defines no {qualname!r} (listed in bench.teaching.TRAINING_CODE)")
        scope = node.body
    lines = source.splitlines()
    start = min([node.lineno] + [d.lineno for d in node.decorator_list])
    return textwrap.dedent("\n".join(lines[start - 1:node.end_lineno])) + "\n", path


def count_code_lines(text: str) -> int:
    """Lines of code: not blank, not only a comment, not part of a docstring."""
    text = textwrap.dedent(text)
    skip = set()
    for node in ast.walk(ast.parse(text)):
        body = getattr(node, "body", None)
        if isinstance(node, (ast.Module, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and body:
            first = body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) and isinstance(first.value.value, str):
                skip.update(range(first.lineno, first.end_lineno + 1))
    code_lines = set()
    for token in tokenize.generate_tokens(io.StringIO(text).readline):
        if token.type not in (tokenize.COMMENT, tokenize.NL, tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT,
                              tokenize.ENDMARKER):
            code_lines.update(range(token.start[0], token.end[0] + 1))
    return len(code_lines - skip)


def _project_module(name: str | None) -> bool:
    return bool(name) and name.split(".")[0] == "models"


def _is_package(name: str) -> bool:
    return module_path(name).name == "__init__.py"


@dataclass
class ModelSources:
    """The source excerpts of one model: one per style, plus the project modules more than one style imports."""

    definitions: dict[str, list[Excerpt]]  # style -> the builder's module excerpt, then its own helpers
    shared: list[Excerpt]  # project modules (architecture tables) imported by two or more styles
    shared_by: dict[str, list[str]]  # shared module -> the styles that import it
    torchvision: list[str]  # torchvision names the PyTorch twin calls, e.g. "torchvision.models.resnet50"


def model_sources(model_name: str) -> ModelSources:
    """Excerpts of the three twins of ``model_name`` and of the project modules they import."""
    from models import get_model_spec

    spec = get_model_spec(model_name)
    wanted: dict[str, dict[str, set[str]]] = {}  # style -> module -> names
    for style in STYLES:
        if style not in spec.builders:
            continue
        module_name, _, function = spec.builders[style].partition(":")
        wanted[style] = {module_name: {function}}
        # Follow imports into project modules (architecture tables, shared blocks) until nothing new appears.
        changed = True
        while changed:
            changed = False
            for module, names in list(wanted[style].items()):
                for imported_from, name in excerpt(module, sorted(names)).imports:
                    if not _project_module(imported_from) or _is_package(imported_from):
                        continue  # a framework, or a package's registry: not code of this model
                    if name not in wanted[style].setdefault(imported_from, set()):
                        wanted[style][imported_from].add(name)
                        changed = True
    users: dict[str, list[str]] = {}
    for style, modules in wanted.items():
        for module in modules:
            users.setdefault(module, []).append(style)
    shared_modules = [m for m, styles in users.items() if len(styles) > 1]
    definitions = {}
    for style, modules in wanted.items():
        builder_module = spec.builders[style].partition(":")[0]
        order = [builder_module] + sorted(m for m in modules if m != builder_module and m not in shared_modules)
        definitions[style] = [excerpt(m, sorted(modules[m])) for m in order if modules[m]]
    shared = [excerpt(m, sorted(set().union(*(wanted[s][m] for s in users[m])))) for m in sorted(shared_modules)]
    torchvision = []
    for part in definitions.get("torch", []):
        torchvision += _torchvision_names(part)
    return ModelSources(definitions=definitions, shared=shared, shared_by={m: users[m] for m in shared_modules},
                        torchvision=sorted(set(torchvision)))


def _torchvision_names(part: Excerpt) -> list[str]:
    """Dotted torchvision names the excerpt uses (``torchvision.models.resnet50``)."""
    aliases = {}  # local name -> dotted torchvision name
    for node in part.nodes:
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == "torchvision":
                    aliases[alias.asname or alias.name.split(".")[0]] = alias.asname and alias.name or "torchvision"
        elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "torchvision":
            for alias in node.names:
                aliases[alias.asname or alias.name] = f"{node.module}.{alias.name}"
    found = set()
    for node in part.nodes:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            continue
        for sub in ast.walk(node):
            if isinstance(sub, ast.Attribute):
                chain, base = [], sub
                while isinstance(base, ast.Attribute):
                    chain.append(base.attr)
                    base = base.value
                if isinstance(base, ast.Name) and base.id in aliases:
                    found.add(".".join([aliases[base.id], *reversed(chain)]))
            elif isinstance(sub, ast.Name) and sub.id in aliases and "." in aliases[sub.id]:
                found.add(aliases[sub.id])
    # keep the longest names only: "torchvision.models.resnet50", not also "torchvision.models"
    return [n for n in found if not any(other.startswith(n + ".") for other in found)]


def training_code(style: str) -> list[tuple[str, str, Path]]:
    """(qualified name, source, file) of each piece of training code ``style`` needs."""
    return [(target.partition(":")[2], *member_source(target)) for target in TRAINING_CODE[style]]


# ----------------------------------------------------------------------------------------------------------
# Data that needs the frameworks: layer tables and twin checks, one share per environment.
# ----------------------------------------------------------------------------------------------------------

def current_env() -> str | None:
    """The environment this process is: its Keras backend (``KERAS_BACKEND``, else the first installed)."""
    backend = os.environ.get("KERAS_BACKEND") or next(
        (b for b in ENVS if importlib.util.find_spec(b) is not None), None)
    return backend if backend in ENVS and importlib.util.find_spec(backend) is not None else None


def env_implementations(env: str) -> list[tuple[str, str]]:
    """The (implementation, backend) pairs an environment runs (as in the matrix)."""
    pairs = list(ENVIRONMENTS[env])
    if ("tf_keras", "tensorflow") in pairs and importlib.util.find_spec("tf_keras") is None:
        pairs.remove(("tf_keras", "tensorflow"))
    return pairs


def _versions(env):
    from bench.environment import package_version

    names = {"torch": ["keras", "torch", "torchvision"], "tensorflow": ["keras", "tensorflow", "tf-keras"],
             "jax": ["keras", "jax", "jaxlib"]}[env]
    return {name: package_version(name) for name in names}


def collect(model_name: str, env: str, *, checks: bool = True) -> dict:
    """This environment's share of a model page: layer rows per style here, and the twin checks here.

    Args:
        model_name: a registered model.
        env: the environment this process is (``torch``, ``tensorflow`` or ``jax``).
        checks: also run the twin checks (a few forward/backward passes; off in the staleness test).
    """
    from backends import get_runner
    from backends.introspect import keras_layer_rows, torch_layer_rows
    from models import get_model_spec

    spec = get_model_spec(model_name)
    pairs = env_implementations(env)
    layers = {}
    keras_runner = get_runner("keras", env)
    keras_model = keras_runner.build(model_name, input_shape=spec.input_shape, num_classes=spec.num_classes)
    keras_rows = keras_layer_rows(keras_model)
    layers["keras"] = [_public(r) for r in keras_rows]
    device = keras_runner.describe().get("device")
    if ("torch", "torch") in pairs and "torch" in spec.builders:
        runner = get_runner("torch")
        module = runner.build(model_name, input_shape=spec.input_shape, num_classes=spec.num_classes)
        rows = torch_layer_rows(module, input_shape=spec.input_shape)
        layers["torch"] = _align_torch(rows, keras_rows, module.twinbench_layout.keys)
    if ("tf_keras", "tensorflow") in pairs and "tf_keras" in spec.builders:
        runner = get_runner("tf_keras")
        model = runner.build(model_name, input_shape=spec.input_shape, num_classes=spec.num_classes)
        layers["tf_keras"] = [{**_public(r), "keras_name": r["name"]} for r in keras_layer_rows(model)]
    data = {"model": model_name, "env": env, "device": device, "versions": _versions(env),
            "input_shape": list(spec.input_shape), "num_classes": spec.num_classes, "layers": layers}
    if checks:
        data["checks"] = twin_checks(model_name, env)
    if env == "torch":
        data["torchvision_sources"] = _torchvision_sources(model_name)
    return data


def _public(row):
    return {k: v for k, v in row.items() if k != "weights"}


def _align_torch(torch_rows, keras_rows, keys):
    """Name each PyTorch module's Keras counterpart: through the weight mapping, else by equal name."""
    module_of_key = {key.rsplit(".", 1)[0]: key for key in keys.values()}
    keras_of_module = {}
    for row in keras_rows:
        for path in row["weights"]:
            key = keys.get(path)
            if key is not None:
                keras_of_module[key.rsplit(".", 1)[0]] = row["name"]
    keras_names = {row["name"] for row in keras_rows}
    aligned = []
    for row in torch_rows:
        name = keras_of_module.get(row["name"])
        if name is None and row["name"] not in module_of_key and row["name"] in keras_names:
            name = row["name"]
        aligned.append({**_public(row), "keras_name": name})
    return aligned


def _torchvision_sources(model_name):
    """Where torchvision keeps the builders the PyTorch twin calls (file inside the package)."""
    names = model_sources(model_name).torchvision
    if not names:
        return {}
    import inspect

    import torchvision

    found = {}
    root = Path(torchvision.__file__).parent.parent
    for dotted in names:
        obj = importlib.import_module(dotted.split(".")[0])
        try:
            for part in dotted.split(".")[1:]:
                obj = getattr(obj, part)
            # unwrap: torchvision's builders are decorated, and the decorators live in another file
            found[dotted] = Path(inspect.getsourcefile(inspect.unwrap(obj))).relative_to(root).as_posix()
        except (AttributeError, TypeError, ValueError):
            continue
    return {"version": torchvision.__version__.split("+")[0], "files": found}


def twin_checks(model_name: str, env: str) -> list[dict]:
    """The twin checks this environment can run, as plain dicts (see ``render_page`` for the columns).

    Each implementation is run at the model's parity case with the canonical weights and once more with
    nudged ones (``bench.parity.observe_twin``: its float32 noise floor). In-process pairs (the native twin
    against the Keras definition on the same framework) are compared tensor by tensor; every
    implementation is also compared with the PyTorch twin's committed fingerprint
    (``tests/parity/<model>.npz``), which is how keras[jax] is tied to the others.
    """
    import numpy as np

    from backends import get_runner
    from bench.parity import (
        ParityError,
        combine_noise,
        compare_fingerprints,
        compare_observations,
        fingerprint_noise,
        fingerprint_of,
        load_fingerprint,
        logits_tolerance,
        observe_twin,
        parity_case,
        parity_options,
    )
    from models import get_model_spec

    spec = get_model_spec(model_name)
    input_shape, num_classes, x, _ = parity_case(model_name)
    keras_backend = {"torch": "torch", "tensorflow": "tensorflow", "jax": "jax"}[env]
    weights = get_runner("keras", keras_backend).canonical_weights(
        model_name, input_shape=input_shape, num_classes=num_classes, seed=0, options=parity_options(model_name))
    observed = {}

    def twin(implementation, backend):
        if (implementation, backend) not in observed:
            observed[(implementation, backend)] = observe_twin(implementation, backend, model_name, weights=weights)
        return observed[(implementation, backend)]

    def outcome(check, run):
        try:
            check.update(run(), passed=True)
        except ParityError as err:
            check.update(passed=False, error=str(err))
        return check

    checks = []
    pairs = [pair for pair in env_implementations(env) if pair[0] in spec.builders]
    for implementation, backend in pairs:
        if implementation == "keras":
            continue
        here, ref = twin(implementation, backend), twin("keras", backend)
        noise = combine_noise(here.noise, ref.noise)
        check = {"a": implementation_label(implementation, backend), "b": implementation_label("keras", backend),
                 "how": "same process",
                 "batch": [len(x), *input_shape],
                 "max_abs_logits": float(np.abs(here.observation.logits - ref.observation.logits).max()),
                 "tolerance": logits_tolerance(ref.observation.logits, noise),
                 "abs_loss": abs(here.observation.loss - ref.observation.loss)}

        def in_process(here=here, ref=ref, noise=noise):
            if here.round_trip_error or here.params != ref.params:
                raise ParityError(here.round_trip_error or f"parameter counts differ: {here.params} vs {ref.params}")
            report = compare_observations(here.observation, ref.observation, lr=1e-3, noise=noise)
            return {"max_rel_grad": report.max_rel_grad}

        checks.append(outcome(check, in_process))

    path = FIXTURE_DIR / f"{model_name}.npz"
    for implementation, backend in pairs:
        if implementation == "torch" or "torch" not in spec.builders:
            continue  # the fingerprint is the PyTorch twin itself (a model without one has none)
        check = {"a": implementation_label(implementation, backend), "b": "torch", "how": "PyTorch fingerprint"}
        if not path.exists():
            checks.append({**check, "passed": False, "error": f"no fingerprint {relative(path)}"})
            continue
        expected, here = load_fingerprint(path), twin(implementation, backend)
        actual = fingerprint_of(here.observation, x=here.x, y=here.y, noise=here.noise)
        noise = combine_noise(here.noise, fingerprint_noise(expected))
        check.update(batch=list(here.x.shape),
                     max_abs_logits=float(np.abs(actual["logits"] - expected["logits"]).max()),
                     tolerance=logits_tolerance(expected["logits"], noise),
                     abs_loss=float(abs(actual["loss"] - expected["loss"])))

        def against_fingerprint(actual=actual, expected=expected):
            compare_fingerprints(actual, expected, lr=1e-3)
            return {}

        checks.append(outcome(check, against_fingerprint))
    return checks


def data_path(model_name: str, env: str) -> Path:
    return DATA_DIR / f"{model_name}.{env}.json"


def load_data(model_name: str) -> dict[str, dict]:
    """The committed environment shares of a model page: ``{env: data}`` (missing ones absent)."""
    found = {}
    for env in ENVS:
        path = data_path(model_name, env)
        if path.exists():
            found[env] = json.loads(path.read_text())
    return found


def write_env_data(env: str, models=None) -> list[Path]:
    """Collect and write this environment's share for every model (or ``models``)."""
    from bench.records import write_json_atomic
    from models import list_models

    written = []
    for name in models or list_models():
        written.append(write_json_atomic(data_path(name, env), collect(name, env)))
    return written


# ----------------------------------------------------------------------------------------------------------
# Rendering (framework-free): the page of one model, and the index.
# ----------------------------------------------------------------------------------------------------------

def _shape_text(shape):
    if shape is None:
        return "?"
    if shape and isinstance(shape[0], list):
        return ", ".join(_shape_text(s) for s in shape)
    return "×".join("?" if d is None else str(d) for d in shape) or "scalar"


def _same_shape(keras_shape, other_shape, *, channels_first):
    if keras_shape is None or other_shape is None:
        return False
    if channels_first and len(keras_shape) == 3:
        return list(other_shape) == [keras_shape[2], keras_shape[0], keras_shape[1]]
    return list(other_shape) == list(keras_shape)


def layer_table(data_by_env: dict[str, dict], styles=STYLES) -> tuple[list[str], list[str]]:
    """Markdown rows of the aligned layer table, and notes (unmatched layers, missing columns).

    ``styles``: the implementations the model has; a twin it does not have is a column of "n/a".
    """
    keras_rows = next((d["layers"]["keras"] for env in ENVS if (d := data_by_env.get(env)) and "keras" in d["layers"]),
                      None)
    torch_rows = (data_by_env.get("torch") or {}).get("layers", {}).get("torch")
    tf_rows = (data_by_env.get("tensorflow") or {}).get("layers", {}).get("tf_keras")
    notes = []
    if keras_rows is None:
        return [], [f"No layer table yet: {REGENERATE}."]
    for style, rows, env in (("torch", torch_rows, "torch"), ("tf_keras", tf_rows, "tensorflow")):
        if style not in styles:
            notes.append(f"This model has no {STYLE_TITLES[style]} twin.")
        elif rows is None:
            notes.append(f"The {STYLE_TITLES[style]} column is missing: it is computed in the {env} environment; "
                         f"{REGENERATE}.")
    by_keras = {}
    for style, rows in (("torch", torch_rows), ("tf_keras", tf_rows)):
        by_keras[style] = {}
        for row in rows or []:
            if row.get("keras_name"):
                by_keras[style].setdefault(row["keras_name"], row)

    def cell(row, *, missing):
        if row is None:
            return [missing, "", ""]
        return [f"`{row['name']}` {row['kind']}", _shape_text(row["output_shape"]), f"{row['params']:,}"]

    lines = []
    totals = {"keras": 0, "torch": 0, "tf_keras": 0}
    for row in keras_rows:
        torch_row = by_keras["torch"].get(row["name"])
        tf_row = by_keras["tf_keras"].get(row["name"])
        totals["keras"] += row["params"]
        verdicts = []
        for style, other, rows in (("torch", torch_row, torch_rows), ("tf_keras", tf_row, tf_rows)):
            if rows is None:
                continue
            if other is None:
                verdicts.append(row["params"] == 0)  # a parameter-free Keras layer may be a function in the twin
                continue
            totals[style] += other["params"]
            verdicts.append(other["params"] == row["params"] and _same_shape(
                row["output_shape"], other["output_shape"], channels_first=style == "torch"))
        match = "✓" if verdicts and all(verdicts) else ("✗" if verdicts else "")
        absent = "(input)" if row["kind"] == "InputLayer" else "—"
        lines.append("| " + " | ".join([*cell(row, missing="—"),
                                        *cell(torch_row, missing=absent if torch_rows is not None else "n/a"),
                                        *cell(tf_row, missing=absent if tf_rows is not None else "n/a"),
                                        match]) + " |")
    for style, rows in (("torch", torch_rows), ("tf_keras", tf_rows)):
        if rows is None:
            continue
        orphans = [r for r in rows if not r.get("keras_name")]
        with_params = [r for r in orphans if r["params"]]
        for r in with_params:
            totals[style] += r["params"]
            other = cell(r, missing="")
            columns = ["—", "", "", *(other if style == "torch" else ["", "", ""]),
                       *(other if style == "tf_keras" else ["", "", ""]), "✗"]
            lines.append("| " + " | ".join(columns) + " |")
        free = [r["name"] for r in orphans if not r["params"]]
        if free:
            shown = ", ".join(f"`{n}`" for n in free[:8]) + (f" and {len(free) - 8} more" if len(free) > 8 else "")
            notes.append(f"{STYLE_TITLES[style]} modules with no parameters and no Keras layer of the same name "
                         f"(activations applied as modules): {shown}.")
    total_cells = [f"**{totals['keras']:,}**",
                   f"**{totals['torch']:,}**" if torch_rows is not None else "",
                   f"**{totals['tf_keras']:,}**" if tf_rows is not None else ""]
    lines.append(f"| **total** | | {total_cells[0]} | | | {total_cells[1]} | | | {total_cells[2]} | |")
    return lines, notes


def _env_line(env, data):
    versions = ", ".join(f"{k} {v}" for k, v in data.get("versions", {}).items() if v)
    where = "computed by this command" if data.get("live") else f"`{relative(data_path(data['model'], env))}`"
    return f"- {env} environment ({versions}; device {data.get('device') or '?'}): {where}"


def expected_checks(styles) -> dict[str, list[tuple[str, str]]]:
    """The twin checks each environment runs for a model with these implementations: (twin, against)."""
    keras = {env: implementation_label("keras", env) for env in ENVS}
    native = {"torch": [("torch", keras["torch"])] if "torch" in styles else [],
              "tensorflow": [("tf_keras", keras["tensorflow"])] if "tf_keras" in styles else [], "jax": []}
    if "torch" in styles:  # the PyTorch twin's fingerprint ties the environments together
        native["tensorflow"] += [("tf_keras", "torch")] if "tf_keras" in styles else []
        native["tensorflow"].append((keras["tensorflow"], "torch"))
        native["jax"].append((keras["jax"], "torch"))
    return native


def render_checks(data_by_env: dict[str, dict], styles=STYLES) -> list[str]:
    lines = ["| twin | against | how | batch | max \\|Δ logits\\| | tolerance | \\|Δ loss\\| | result |",
             "|---|---|---|---|---|---|---|---|"]
    expected = expected_checks(styles)
    for env in ENVS:
        data = data_by_env.get(env)
        if data is None or "checks" not in data:
            for a, b in expected[env]:
                lines.append(f"| {a} | {b} | | | missing | | | not computed: needs the {env} environment |")
            continue
        if not expected[env]:
            label = implementation_label("keras", env)
            lines.append(f"| {label} | — | | | | | | no check: this model has no PyTorch twin to compare with |")
        for check in data["checks"]:
            result = "same network ✓" if check.get("passed") else f"**DIFFERENT**: {check.get('error', '?')}"
            lines.append("| " + " | ".join([
                check["a"], check["b"], check["how"], _shape_text(check.get("batch")),
                f"{check['max_abs_logits']:.1e}" if "max_abs_logits" in check else "—",
                f"{check['tolerance']:.0e}" if "tolerance" in check else "—",
                f"{check['abs_loss']:.1e}" if "abs_loss" in check else "—",
                result]) + " |")
    return lines


def _code_block(text):
    return ["```python", text.rstrip("\n"), "```"]


def render_page(model_name: str, data_by_env: dict[str, dict]) -> str:
    """The Markdown page of one model, from its source and the environments' data (missing data said so)."""
    from models import get_model_spec

    spec = get_model_spec(model_name)
    sources = model_sources(model_name)
    impls = [i for i in ("torch", "keras", "tf_keras") if i in spec.builders]
    h, w, c = spec.input_shape
    out = [f"# {model_name}", "",
           "<!-- Generated by `python -m bench docs` from the source and docs/models/_data/; do not edit. -->", "",
           f"{spec.summary}.", "",
           f"- Paper: {spec.paper}",
           f"- Defaults: input {h}×{w}×{c} (height × width × channels), {spec.num_classes} classes"
           + (f", {spec.extra['params']:,} parameters" if "params" in spec.extra else ""),
           f"- Try it: `python -m bench show {model_name}`; "
           f"`python -m bench run --model {model_name} --impl {impls[0]} --progress`"
           + (f" (or {', '.join(f'`--impl {i}`' for i in impls[1:])})" if impls[1:] else ""),
           ""]

    # -- at a glance: lines of code per style --
    out += ["## Lines of code per style", "",
            "Counted in the excerpts below: lines that are not blank, not only a comment and not a docstring.", "",
            "| | " + " | ".join(STYLE_TITLES[s] for s in STYLES) + " |", "|---|---|---|---|"]
    definition_loc = {s: sum(count_code_lines(e.text) for e in sources.definitions[s]) if s in sources.definitions
                      else "—" for s in STYLES}
    training_loc = {s: sum(count_code_lines(src) for _, src, _ in training_code(s)) if s in spec.builders else "—"
                    for s in STYLES}
    extra = {s: "" for s in STYLES}
    if sources.torchvision:
        extra["torch"] = " + torchvision"
    out.append("| model definition | " + " | ".join(f"{definition_loc[s]}{extra[s]}" for s in STYLES) + " |")
    if sources.shared:
        shared_loc = {s: sum(count_code_lines(e.text) for e in sources.shared if s in sources.shared_by[e.module])
                      for s in STYLES}
        out.append("| shared architecture table | " + " | ".join(
            f"{shared_loc[s]} (shared)" if shared_loc[s] else "—" for s in STYLES) + " |")
    out.append("| training code | " + " | ".join(str(training_loc[s]) for s in STYLES) + " |")
    out += ["", "The training code is what twinbench runs. The PyTorch loop includes twinbench's timing and "
            "profiler hooks, which the Keras styles keep in a callback (not counted); tf.keras reuses "
            "`compile_model` from the Keras 3 runner.", ""]

    # -- equivalence --
    out += ["## Same network? The twin check", "",
            "Every twin is loaded with the same weights (the Keras definition's initial values, drawn once in NumPy "
            "and converted to each layout) and given the same batch, in float32 with TF32 off. "
            "`bench.parity` then asserts equal parameter counts, logits, loss, every gradient, one Adam step and "
            "the BatchNorm statistics after it, within fixed float32 tolerances or 10× the model's own measured "
            "float32 noise floor (the run repeated with every weight nudged by 1e-6), whichever is larger; "
            "the table shows the largest difference in logits and the tolerance it had. Pairs that cannot share "
            "a process are compared with the PyTorch twin's committed fingerprint (`tests/parity/`).", ""]
    out += render_checks(data_by_env, spec.builders)
    out.append("")

    # -- layers --
    out += ["## Layer by layer", "",
            "Output shapes are for one image, in each framework's own layout: Keras is channels last (H×W×C), "
            "PyTorch channels first (C×H×W). Parameters exclude BatchNorm's moving statistics (PyTorch buffers). "
            "✓: same parameters and the same shape up to the layout.", "",
            "| Keras 3 layer | output | params | PyTorch module | output | params | tf.keras layer | output | params "
            "| match |",
            "|---|---|--:|---|---|--:|---|---|--:|:-:|"]
    rows, notes = layer_table(data_by_env, spec.builders)
    out += rows
    if notes:
        out += [""] + [f"- {n}" for n in notes]
    out += ["", "Computed with:"] + [_env_line(env, data_by_env[env]) for env in ENVS if env in data_by_env]
    missing_envs = [env for env in ENVS if env not in data_by_env]
    if missing_envs:
        out.append(f"- missing: {', '.join(missing_envs)} environment(s); {REGENERATE}")
    out.append("")

    # -- the definitions --
    out += ["## The definitions", ""]
    for part in sources.shared:
        names = [STYLE_TITLES[s] for s in STYLES if s in sources.shared_by[part.module]]
        users = ", ".join(names[:-1]) + " and " + names[-1]
        out += [f"### Shared by the twins: `{relative(part.path)}`", "",
                f"Imported by {users}: one table, so the twins cannot disagree on it.", ""]
        out += _code_block(part.text) + [""]
    for style in STYLES:
        parts = sources.definitions.get(style)
        if not parts:
            continue
        title = {"keras": "The Keras 3 definition (runs on torch, tensorflow and jax)",
                 "torch": "The PyTorch twin", "tf_keras": "The tf.keras twin (Keras 2, package `tf-keras`)"}[style]
        out += [f"### {title}: `{relative(parts[0].path)}`", ""]
        if style == "torch" and sources.torchvision:
            out += _torchvision_note(sources.torchvision, (data_by_env.get("torch") or {}).get("torchvision_sources"))
        for i, part in enumerate(parts):
            if i:
                out += [f"Helpers it imports, from `{relative(part.path)}`:", ""]
            out += _code_block(part.text) + [""]

    # -- training --
    out += ["## The training code each style needs", "",
            "Taken from `backends/`, the code twinbench runs for every model: the same optimizer (Adam, "
            "lr 1e-3, eps 1e-8), the same loss (mean cross-entropy on logits), the same batches in the same order.",
            ""]
    for style in (s for s in STYLES if s in spec.builders):
        pieces = training_code(style)
        files = sorted({relative(p) for _, _, p in pieces})
        out += [f"### {STYLE_TITLES[style]}: {', '.join(f'`{f}`' for f in files)}", "",
                f"Not shown: {TRAINING_HELPERS[style]}.", ""]
        for qualname, source, _ in pieces:
            out += [f"`{qualname}`:", ""] + _code_block(source) + [""]
    return "\n".join(out).rstrip("\n") + "\n"


def _torchvision_note(names, located):
    lines = ["This twin *is* torchvision's builder (a well-kept library already has the model), so the Keras "
             "definition is what must match it:", ""]
    files = (located or {}).get("files", {})
    version = (located or {}).get("version")
    for dotted in names:
        link = f"[`{dotted}`](https://pytorch.org/vision/stable/models/generated/{dotted}.html)"
        if dotted in files and version:
            source = f"https://github.com/pytorch/vision/blob/v{version}/{files[dotted]}"
            link += f", source: [`{files[dotted]}`]({source}) (torchvision {version})"
        lines.append(f"- {link}")
    return lines + [""]


def render_index() -> str:
    from models import get_model_spec, list_models

    out = ["# Models", "",
           "<!-- Generated by `python -m bench docs`; do not edit. -->", "",
           "Each page shows one model in three styles (Keras 3, PyTorch, tf.keras) taken from the source, the "
           "training code each style needs, a layer-by-layer table lined up across the twins, and the twin check "
           "that proves they are the same network.", "",
           "| model | input | classes | parameters | PyTorch twin | summary |", "|---|---|--:|--:|---|---|"]
    for name in list_models():
        spec = get_model_spec(name)
        h, w, c = spec.input_shape
        params = f"{spec.extra['params']:,}" if "params" in spec.extra else "?"
        twin = "torchvision" if model_sources(name).torchvision else "hand-written"
        out.append(f"| [{name}]({name}.md) | {h}×{w}×{c} | {spec.num_classes} | {params} | {twin} | {spec.summary} |")
    out += ["", f"Regenerate: {REGENERATE}."]
    return "\n".join(out) + "\n"


def page_path(model_name: str) -> Path:
    return DOCS_DIR / f"{model_name}.md"


def write_pages(models=None) -> list[Path]:
    """Render every model's page (from the committed data) and the index."""
    from models import list_models

    DOCS_DIR.mkdir(parents=True, exist_ok=True)
    written = []
    for name in models or list_models():
        path = page_path(name)
        path.write_text(render_page(name, load_data(name)))
        written.append(path)
    index = DOCS_DIR / "index.md"
    index.write_text(render_index())
    return [*written, index]


def show(model_name: str, *, live: bool = True) -> str:
    """The page of one model; this environment's share computed now (``live``), the rest from committed data."""
    data = load_data(model_name)
    env = current_env() if live else None
    if env is not None:
        data[env] = {**collect(model_name, env), "live": True}
    return render_page(model_name, data)
