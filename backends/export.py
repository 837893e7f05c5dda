"""Export a model for inference in a framework's own format, reload it in that format's runtime, check its logits.

What each implementation can produce (``EXPORT_FORMATS``), in Keras' own names for the formats:

| implementation | formats | how |
|---|---|---|
| torch (the PyTorch twin) | ``torch``, ``onnx`` | ``torch.export.export`` saved as ``.pt2``; ``torch.onnx.export`` (its ``torch.export`` path) |
| keras[torch] | ``torch``, ``onnx`` | Keras 3 ``model.export(format="torch")`` / ``format="onnx"`` (through torch's exporter) |
| keras[tensorflow] | ``tf_saved_model``, ``onnx`` | Keras 3 ``model.export``; ONNX through ``tf2onnx`` |
| keras[jax] | ``jax`` | ``jax.export`` of the model's ``stateless_call``: serialized StableHLO (Keras' SavedModel and ONNX exports on JAX need TensorFlow or jax2onnx, which the jax environment does not install) |
| tf_keras | ``tf_saved_model`` | tf.keras ``model.export`` (a SavedModel with a ``serve`` endpoint) |

Every artifact is reloaded in its own runtime — ``torch.export.load``, ``onnxruntime``, ``tf.saved_model.load``,
``jax.export.deserialize`` — run on a batch of images, and its logits are compared with the model's own
(``runner.predict``) within the twin check's float32 tolerance (``twinbench.backends.tolerances.logits_tolerance``).
The batch dimension is left dynamic. Images go in as the model takes them: channels last (N, H, W, C) for the Keras
models, channels first (N, C, H, W) for the PyTorch twin.
"""

from __future__ import annotations

import importlib.util
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from twinbench.backends.environments import implementation_label
from twinbench.backends.tolerances import logits_tolerance

# (implementation, backend) -> the formats it can produce, the first the default.
EXPORT_FORMATS = {
    ("torch", "torch"): ("torch", "onnx"),
    ("keras", "torch"): ("torch", "onnx"),
    ("keras", "tensorflow"): ("tf_saved_model", "onnx"),
    ("keras", "jax"): ("jax",),
    ("tf_keras", "tensorflow"): ("tf_saved_model",),
}
FORMATS = {  # format -> (what it is, where it is reloaded, file name suffix; "" for a directory)
    "tf_saved_model": ("TensorFlow SavedModel", "tf.saved_model.load", ""),
    "onnx": ("ONNX", "onnxruntime", ".onnx"),
    "torch": ("torch.export ExportedProgram", "torch.export.load", ".pt2"),
    "jax": ("jax.export StableHLO", "jax.export.deserialize", ".jax_export"),
}
# Packages a format needs beyond the environment's framework, per backend (``pip install 'twinbench[ENV]'``).
_NEEDS = {("onnx", "torch"): ("onnx", "onnxscript", "onnxruntime"), ("onnx", "tensorflow"): ("tf2onnx", "onnxruntime")}


class ExportError(ValueError):
    """An export this implementation cannot make here; one line naming what it can."""


def check_format(implementation: str, backend: str, fmt: str, *, packages: bool = True) -> None:
    """Raise ``ExportError`` (one line) unless ``implementation`` on ``backend`` can produce ``fmt`` (and, with
    ``packages``, unless this environment has the packages that format needs)."""
    label = implementation_label(implementation, backend)
    formats = EXPORT_FORMATS[(implementation, backend)]
    if fmt not in formats:
        raise ExportError(f"{label} cannot export {fmt!r}. Valid choices for {label}: {', '.join(formats)}.")
    if not packages:
        return
    missing = [p for p in _NEEDS.get((fmt, backend), ()) if importlib.util.find_spec(p) is None]
    if missing:
        raise ExportError(f"Exporting {fmt} from {label} needs the package(s) {', '.join(missing)}, which this "
                          f"environment lacks: pip install -e '.[{backend}]'.")


@dataclass
class ExportResult:
    """One exported artifact and its check against the model it came from."""

    format: str
    path: str
    bytes: int
    runtime: str
    max_abs_logits: float
    tolerance: float

    @property
    def passed(self) -> bool:
        return self.max_abs_logits <= self.tolerance


def artifact_path(out_dir, model_name, implementation, backend, fmt) -> Path:
    """``OUT/cifar_cnn__keras__jax.jax_export``: one artifact per cell and format."""
    return Path(out_dir) / f"{model_name}__{implementation}__{backend}{FORMATS[fmt][2] or '.' + fmt}"


def export_and_check(runner, model, fmt: str, path, *, x: np.ndarray) -> ExportResult:
    """Export ``model`` (built and loaded by ``runner``) as ``fmt`` to ``path``, reload it and compare its logits
    on the channels-last images ``x`` with ``runner.predict``. A previous artifact at ``path`` is replaced."""
    check_format(runner.implementation, runner.backend, fmt)
    path = Path(path)
    # Written into a staging directory under its final name (an exporter may add sidecar files named after it),
    # then moved into place: a reader never sees half an artifact.
    staging = path.parent / f".{path.name}.partial"
    _remove(staging)
    staging.mkdir(parents=True)
    expected = runner.predict(model, x)
    try:
        exporter, loader = _HANDLERS[(runner.implementation, fmt)]
        exporter(runner, model, staging / path.name, x)
        for item in staging.iterdir():
            _remove(path.parent / item.name)
            item.replace(path.parent / item.name)
    finally:
        _remove(staging)
    actual = np.asarray(loader(path)(_inputs(runner, x)), dtype=np.float64)
    if actual.shape != expected.shape:
        raise ExportError(f"The reloaded {fmt} artifact returned shape {actual.shape}, the model {expected.shape}.")
    return ExportResult(format=fmt, path=str(path), bytes=_size(path), runtime=FORMATS[fmt][1],
                        max_abs_logits=float(np.abs(actual - expected).max()),
                        tolerance=logits_tolerance(expected))


def exported_model(runner, model, fmt: str, x: np.ndarray, *, directory):
    """``model`` exported as ``fmt`` and loaded into the format's own runtime: a function of a batch in the artifact's
    layout (``artifact_inputs``) that returns the logits as numpy (the latency benchmark's ``artifact`` cells: many
    users serve with these).

    The artifact is written to ``directory`` and checked first (``export_and_check``: its logits against the model's on
    8 rows of ``x``), then loaded once. Numpy in, numpy out, as a server calls it: the result on the host means the
    runtime has finished.
    """
    path = artifact_path(directory, "model", runner.implementation, runner.backend, fmt)
    export_and_check(runner, model, fmt, path, x=x[np.arange(8) % len(x)])  # 8 rows: a batch of 1 would fix the size
    return _HANDLERS[(runner.implementation, fmt)][1](path)


def artifact_inputs(runner, x: np.ndarray) -> np.ndarray:
    """Channels-last images as the exported model takes them (NCHW for the PyTorch twin)."""
    return _inputs(runner, x)


def export_cell(model_name, implementation, backend, formats, *, out_dir, weights=None, input_shape=None,
                num_classes=None, batch=8, seed=0) -> list[ExportResult]:
    """Build ``model_name`` for one cell with its initial weights or those in the file ``weights`` (any format
    ``twinbench.backends.checkpoints`` reads), export it in each of ``formats`` into ``out_dir`` and check every artifact
    on ``batch`` random images (drawn with NumPy from ``seed``)."""
    from twinbench.backends import get_runner
    from twinbench.backends.checkpoints import pretrained_weights
    from twinbench.models import get_model_spec

    for fmt in formats:
        check_format(implementation, backend, fmt)
    spec = get_model_spec(model_name)
    input_shape = tuple(input_shape or spec.input_shape)
    num_classes = num_classes or spec.num_classes
    runner = get_runner(implementation, backend)
    runner.setup(seed=seed)
    start = None
    if weights is not None:
        initial = runner.canonical_weights(model_name, input_shape=input_shape, num_classes=num_classes, seed=seed)
        start, _ = pretrained_weights(model_name, weights, canonical=initial, input_shape=input_shape)
    model = runner.prepare(model_name, input_shape=input_shape, num_classes=num_classes, seed=seed, weights=start)
    x = np.random.default_rng(seed).standard_normal((batch, *input_shape)).astype(np.float32)
    return [export_and_check(runner, model, fmt, artifact_path(out_dir, model_name, implementation, backend, fmt), x=x)
            for fmt in formats]


def _inputs(runner, x):
    """The images as the exported model takes them: NCHW for the PyTorch twin, else as the Keras model does."""
    if runner.implementation == "torch":
        return np.ascontiguousarray(x.transpose(0, 3, 1, 2))
    return runner.model_inputs(x) if hasattr(runner, "model_inputs") else x


def _size(path: Path) -> int:
    if path.is_dir():
        return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())
    # torch's ONNX exporter may put large weights in a sidecar file next to the model
    sidecar = path.with_name(path.name + ".data")
    return path.stat().st_size + (sidecar.stat().st_size if sidecar.exists() else 0)


def _remove(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)


# ----------------------------------------------------------------------------------------------------------
# Exporters (each writes ``path``) and loaders (each loads ``path`` into its runtime once and returns a function of
# ``inputs`` that gives the logits as numpy), one pair per format.
# ----------------------------------------------------------------------------------------------------------

def _torch_export(runner, model, path, x):
    import torch

    model.eval()
    sample = torch.from_numpy(_inputs(runner, x)).to(runner.device)
    batch = torch.export.Dim("batch")
    program = torch.export.export(model, (sample,), dynamic_shapes=({0: batch},))
    torch.export.save(program, str(path))


def _torch_onnx(runner, model, path, x):
    import torch

    model.eval()
    sample = torch.from_numpy(_inputs(runner, x)).to(runner.device)
    torch.onnx.export(model, (sample,), str(path), input_names=["image"], output_names=["logits"],
                      dynamic_shapes=({0: torch.export.Dim("batch")},), dynamo=True, external_data=False,
                      verbose=False)


def _keras_export(fmt):
    def export(runner, model, path, x):
        import keras

        signature = [keras.InputSpec(shape=(None, *_inputs(runner, x).shape[1:]), dtype="float32")]  # any batch
        kwargs = {}
        if fmt == "torch":
            import torch

            kwargs["dynamic_shapes"] = ({0: torch.export.Dim("batch")},)
        model.export(str(path), format=fmt, verbose=False, input_signature=signature, **kwargs)
    return export


def _tf_keras_export(runner, model, path, x):
    model.export(str(path))  # tf.keras: a SavedModel whose `serve` endpoint runs the model in inference mode


def _jax_export(runner, model, path, x):
    """``jax.export`` of the Keras model's pure function, its weights baked in as constants."""
    import jax
    import keras

    trainable = [v.value for v in model.trainable_variables]
    non_trainable = [v.value for v in model.non_trainable_variables]

    def logits(images):
        return model.stateless_call(trainable, non_trainable, images, training=False)[0]

    shape = jax.export.symbolic_shape("batch, " + ", ".join(map(str, _inputs(runner, x).shape[1:])))
    exported = jax.export.export(jax.jit(logits))(jax.ShapeDtypeStruct(shape, keras.config.floatx()))
    path.write_bytes(exported.serialize())


def _load_torch(path):
    import torch

    module = torch.export.load(str(path)).module()
    device = next(iter([*module.parameters(), *module.buffers()]), torch.empty(0)).device  # where it was exported

    def run(inputs):
        with torch.no_grad():
            return module(torch.from_numpy(inputs).to(device)).cpu().numpy()
    return run


def _load_onnx(path):
    import onnxruntime

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    return lambda inputs: session.run(None, {name: inputs.astype(np.float32)})[0]


def _load_saved_model(path):
    import tensorflow as tf

    loaded = tf.saved_model.load(str(path))  # kept in the closure: its variables die with it
    return lambda inputs: loaded.serve(tf.constant(inputs)).numpy()


def _load_jax(path):
    import jax

    exported = jax.export.deserialize(bytearray(path.read_bytes()))
    return lambda inputs: np.asarray(exported.call(inputs))


_HANDLERS = {
    ("torch", "torch"): (_torch_export, _load_torch),
    ("torch", "onnx"): (_torch_onnx, _load_onnx),
    ("keras", "torch"): (_keras_export("torch"), _load_torch),
    ("keras", "onnx"): (_keras_export("onnx"), _load_onnx),
    ("keras", "tf_saved_model"): (_keras_export("tf_saved_model"), _load_saved_model),
    ("keras", "jax"): (_jax_export, _load_jax),
    ("tf_keras", "tf_saved_model"): (_tf_keras_export, _load_saved_model),
}
