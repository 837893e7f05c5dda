"""Teaching pages: one model, read in three styles, with the proof that they are one network.

``docs/models/<model>.md`` (and ``python -m twinbench show MODEL``) puts side by side

1. the Keras 3 definition, the PyTorch twin and the tf.keras twin, **taken from the source files**;
2. the training code each style needs, taken from ``backends/`` (what twinbench really runs);
3. lines of code per style (not counting blank lines, comments or docstrings);
4. a layer-by-layer table (name, output shape, parameters) lined up across the three twins;
5. the twin check: the largest difference in logits for the same weights (``twinbench.twins.parity``).

Parts 1-3 are read from the source with ``ast``, so they work in any environment and never drift from
the code. Parts 4-5 need the frameworks, and no environment has all three (their pins conflict), so each
environment computes its share and commits it as ``docs/models/_data/<model>.<env>.json``::

    nox -s docs            # docs_data(torch|tensorflow|jax) collect, then the pages are rendered
    python -m twinbench docs --collect    # (inside one environment) this environment's share only
    python -m twinbench docs              # render the pages from the sources and the committed data

This module renders the pages; ``twinbench.twins.sources`` reads parts 1-3 from the source, and
``twinbench.twins.env_data`` computes parts 4-5 in each environment. Nothing here imports a framework at module
level; ``collect`` goes through ``backends``.
"""

from __future__ import annotations

from pathlib import Path

from twinbench.backends.environments import implementation_label
from twinbench.backends.tolerances import NOISE_FACTOR
from twinbench.data.tasks import DEFAULT_TASK, get_task
from twinbench.models import get_model_spec, list_models
from twinbench.twins.env_data import ENVS, REGENERATE, collect, current_env, data_path, load_data
from twinbench.twins.sources import (
    MEASUREMENT_NAMES,
    ROOT,
    STYLES,
    TRAINING_HELPERS,
    count_code_lines,
    count_lines_naming,
    model_sources,
    relative,
    training_code,
)

DOCS_DIR = ROOT / "docs" / "models"
STYLE_TITLES = {"keras": "Keras 3", "torch": "PyTorch", "tf_keras": "tf.keras"}


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
    spec = get_model_spec(model_name)
    sources = model_sources(model_name)
    impls = [i for i in ("torch", "keras", "tf_keras") if i in spec.builders]
    out = [f"# {model_name}", "",
           "<!-- Generated by `python -m twinbench docs` from the source and docs/models/_data/; do not edit. -->", "",
           f"{spec.summary}.", "",
           f"- Paper: {spec.paper}",
           f"- Defaults: {_defaults_text(spec)}, {spec.params:,} parameters",
           f"- Try it: `twinbench show {model_name}`; "
           f"`twinbench train --model {model_name} --impl {impls[0]} --progress`"
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
    attach_loc = {s: sum(count_lines_naming(src, MEASUREMENT_NAMES[s]) for _, src, _ in training_code(s))
                  if s in spec.builders else "—" for s in STYLES}
    out.append("| of which attach the measurement | " + " | ".join(
        f"{attach_loc[s]} (`{MEASUREMENT_NAMES[s]}`)" if s in spec.builders else "—" for s in STYLES) + " |")
    out += ["", "The training code is what twinbench runs, counted the same way in every style: the functions "
            "shown below, whole. Every style's measurement (step clock, epoch timing, profiler markers, progress) is "
            "attached from outside and not counted: Keras and tf.keras pass the `_EpochTimer` callback to `fit`, the "
            "PyTorch loop calls `LoopHooks` around each step and epoch. Counted in every style: the lines that "
            "attach it (making the callback or the hooks, `callbacks=[timer]`, the `hooks.on_...` calls: the lines "
            "that name `timer` or `hooks`, in the row below the total) and "
            "the code that serves twinbench's shared batch order (not counted: the order's own classes, named "
            "under each listing). The PyTorch count includes what `fit` does for you in Keras: moving batches to "
            "the device and the evaluation loop. Keras 3 and tf.keras share `compile_model` (the Keras runners' "
            "common module).", ""]

    # -- equivalence --
    out += ["## Same network? The twin check", "",
            "Every twin is loaded with the same weights (the Keras definition's initial values, drawn once in NumPy "
            "and converted to each layout) and given the same batch, in float32 with TF32 off. "
            "`twinbench.twins.parity` then asserts equal parameter counts, logits, loss, every gradient, one Adam step and "
            "the BatchNorm statistics after it, within fixed float32 tolerances or "
            f"{NOISE_FACTOR:g}× the reference twin's float32 error measured against a float64 run of the same "
            "computation (the PyTorch twin where there is one), whichever is larger; "
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
    missing_envs = [env for env in ENVS if env not in data_by_env and spec.builds_in(env)]
    if spec.environments is not None:
        out.append(f"- builds in the {' and '.join(spec.environments)} environment only (it needs a library installed "
                   "there alone)")
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


def _defaults_text(spec) -> str:
    """The default input and classes in words: images as before, other tasks as ``twinbench.data.tasks`` names them."""
    if spec.task == DEFAULT_TASK:
        h, w, c = spec.input_shape
        return f"input {h}×{w}×{c} (height × width × channels), {spec.num_classes} classes"
    task = get_task(spec.task)
    shape = "×".join(map(str, spec.input_shape))
    return (f"task {spec.task} (`twinbench.data.tasks`): input {shape} ({task.input_shape}), {spec.num_classes} "
            f"({task.num_classes}), inputs {', '.join(task.inputs)}, loss: {task.loss}, metrics: "
            f"{', '.join(task.metrics)}, default dataset `{task.default_dataset}`")


def render_index() -> str:
    out = ["# Models", "",
           "<!-- Generated by `python -m twinbench docs`; do not edit. -->", "",
           "Each page shows one model in three styles (Keras 3, PyTorch, tf.keras) taken from the source, the "
           "training code each style needs, a layer-by-layer table lined up across the twins, and the twin check "
           "that proves they are the same network.", "",
           "| model | input | classes | parameters | PyTorch twin | summary |", "|---|---|--:|--:|---|---|"]
    for name in list_models():
        spec = get_model_spec(name)
        params = f"{spec.params:,}"
        twin = "torchvision" if model_sources(name).torchvision else "hand-written"
        shape = "×".join(map(str, spec.input_shape))
        out.append(f"| [{name}]({name}.md) | {shape} | {spec.num_classes} | {params} | {twin} | {spec.summary} |")
    out += ["", f"Regenerate: {REGENERATE}."]
    return "\n".join(out) + "\n"


def page_path(model_name: str) -> Path:
    return DOCS_DIR / f"{model_name}.md"


def write_pages(models=None) -> list[Path]:
    """Render every model's page (from the committed data) and the index."""
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
    if env is not None and get_model_spec(model_name).builds_in(env):
        data[env] = {**collect(model_name, env), "live": True}
    return render_page(model_name, data)
