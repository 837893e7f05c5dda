"""The framework side of a teaching page: layer tables and twin checks, computed in each environment (no
environment has all three frameworks) and committed as ``docs/models/_data/<model>.<env>.json``."""

from __future__ import annotations

import importlib.util
import inspect
import json
import os
from pathlib import Path

import numpy as np

from twinbench.backends import get_runner
from twinbench.backends.environments import BACKENDS, ENVIRONMENTS, implementation_label
from twinbench.backends.introspect import keras_layer_rows, torch_layer_rows
from twinbench.backends.tolerances import logits_tolerance
from twinbench.data.tasks import DEFAULT_TASK, random_batch
from twinbench.measuring.environment import package_version
from twinbench.models import get_model_spec, list_models
from twinbench.records import write_json_atomic
from twinbench.twins.parity import (
    ParityError,
    check_against_fingerprint,
    check_in_process,
    committed_noise,
    fingerprint_path,
    load_fingerprint,
    observe_twin,
    parity_case,
    parity_options,
)
from twinbench.twins.sources import ROOT, model_sources, relative

DATA_DIR = ROOT / "docs" / "models" / "_data"
ENVS = BACKENDS  # one environment per Keras backend (twinbench.backends.environments.ENVIRONMENTS)
REGENERATE = "run `nox -s docs` (or, for source changes only, `twinbench docs`)"


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
    names = {"torch": ["keras", "torch", "torchvision"], "tensorflow": ["keras", "tensorflow", "tf-keras"],
             "jax": ["keras", "jax", "jaxlib"]}[env]
    return {name: package_version(name) for name in names}


def _batch_shape(x) -> list:
    """The parity batch's shape (a list of shapes for a tuple of inputs, ``twinbench.data.tasks``)."""
    return [list(a.shape) for a in x] if isinstance(x, tuple) else list(x.shape)


def collect(model_name: str, env: str, *, checks: bool = True) -> dict:
    """This environment's share of a model page: layer rows per style here, and the twin checks here.

    Args:
        model_name: a registered model.
        env: the environment this process is (``torch``, ``tensorflow`` or ``jax``).
        checks: also run the twin checks (a few forward/backward passes; off in the staleness test).
    """

    spec = get_model_spec(model_name)
    pairs = env_implementations(env)
    layers = {}
    keras_runner = get_runner("keras", env)
    # Every model at full size, its weights' shapes only (Runner.build_shapes): the rows read names, output shapes and
    # parameter counts, and no weight needs drawing (the PyTorch twin is built and runs one sample: some twins, GNMT's
    # packed sequences, need data).
    keras_model = keras_runner.build_shapes(model_name, input_shape=spec.input_shape, num_classes=spec.num_classes)
    keras_rows = keras_layer_rows(keras_model)
    layers["keras"] = [_public(r) for r in keras_rows]
    device = keras_runner.describe().get("device")
    if ("torch", "torch") in pairs and "torch" in spec.builders:
        runner = get_runner("torch")
        module = runner.build(model_name, input_shape=spec.input_shape, num_classes=spec.num_classes)  # runs a sample
        inputs = None
        if spec.task != DEFAULT_TASK:  # one sample of the task's inputs (token or id arrays)
            from twinbench.backends.torch_runner import to_torch_inputs

            x, _ = random_batch(spec.task, spec.input_shape, spec.num_classes, batch=1, seed=0)
            inputs = to_torch_inputs(x if isinstance(x, tuple) else (x,))
        rows = torch_layer_rows(module, input_shape=spec.input_shape, inputs=inputs)
        layers["torch"] = _align_torch(rows, keras_rows, module.twinbench_layout.keys)
    if ("tf_keras", "tensorflow") in pairs and "tf_keras" in spec.builders:
        runner = get_runner("tf_keras")
        model = runner.build_shapes(model_name, input_shape=spec.input_shape, num_classes=spec.num_classes)
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

    Each implementation is run at the model's parity case with the canonical weights
    (``twinbench.twins.parity.observe_twin``), its tolerances widened by the reference twin's float32 error against
    float64 where that is larger (``twinbench.twins.parity``, the noise floor). In-process pairs (the native twin
    against the Keras definition on the same framework) are compared tensor by tensor; every
    implementation is also compared with the PyTorch twin's committed fingerprint
    (``tests/parity/<model>.npz``), which is how keras[jax] is tied to the others.
    """

    spec = get_model_spec(model_name)
    input_shape, num_classes, x, _ = parity_case(model_name)
    keras_backend = {"torch": "torch", "tensorflow": "tensorflow", "jax": "jax"}[env]
    weights = get_runner("keras", keras_backend).canonical_weights(
        model_name, input_shape=input_shape, num_classes=num_classes, seed=0, options=parity_options(model_name))
    observed = {}

    def twin(implementation, backend):
        if (implementation, backend) not in observed:
            noise = committed_noise(model_name)  # without a PyTorch twin: the Keras definition in float64
            if noise is None and implementation != "keras":
                noise = twin("keras", backend).noise
            observed[(implementation, backend)] = observe_twin(implementation, backend, model_name, weights=weights,
                                                               noise=noise, float64=implementation != "torch")
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
        ref = twin("keras", backend)
        here = twin(implementation, backend)
        check = {"a": implementation_label(implementation, backend), "b": implementation_label("keras", backend),
                 "how": "same process",
                 "batch": _batch_shape(x),
                 "max_abs_logits": float(np.abs(here.observation.logits - ref.observation.logits).max()),
                 "tolerance": logits_tolerance(ref.observation.logits, ref.noise),
                 "abs_loss": abs(here.observation.loss - ref.observation.loss)}

        def in_process(here=here, ref=ref, implementation=implementation):
            if here.round_trip_error:
                raise ParityError(here.round_trip_error)
            # The envelope is the PyTorch twin's float32 error, or the Keras definition's for a model without one.
            report = check_in_process(here, ref, lr=1e-3,
                                      with_reference=implementation == "torch" or "torch" not in spec.builders)
            return {"max_rel_grad": report.max_rel_grad}

        checks.append(outcome(check, in_process))

    path = fingerprint_path(model_name)
    for implementation, backend in pairs:
        if implementation == "torch" or "torch" not in spec.builders:
            continue  # the fingerprint is the PyTorch twin itself (a model without one has none)
        check = {"a": implementation_label(implementation, backend), "b": "torch", "how": "PyTorch fingerprint"}
        if not path.exists():
            checks.append({**check, "passed": False, "error": f"no fingerprint {relative(path)}"})
            continue
        expected, here = load_fingerprint(path), twin(implementation, backend)
        check.update(batch=_batch_shape(here.x),
                     max_abs_logits=float(np.abs(here.observation.logits - expected["logits"]).max()),
                     tolerance=logits_tolerance(expected["logits"], here.noise),
                     abs_loss=float(abs(here.observation.loss - expected["loss"])))

        def against_fingerprint(here=here, expected=expected):
            check_against_fingerprint(here, expected, lr=1e-3)
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
    """Collect and write this environment's share for every model (or ``models``) that builds here."""
    written = []
    for name in models or list_models():
        if not get_model_spec(name).builds_in(env):
            continue
        written.append(write_json_atomic(data_path(name, env), collect(name, env)))
    return written
