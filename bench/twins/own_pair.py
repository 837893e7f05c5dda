"""Your own twins: check any Keras 3 model against your PyTorch module, and say which layer differs.

``check(keras_builder, torch_builder, input_shape=..., num_classes=...)`` builds both models, pairs their weights
(``twinbench.twins.pairing``), loads the same weights into both (the Keras model's initializers drawn with NumPy, as for
the registered models) and runs the twin check of ``twinbench.twins.parity``: parameter counts, logits in inference
mode, loss and gradients in training mode, one Adam step and the BatchNorm statistics after it, within the float32
floor (the fixed tolerances, or ``NOISE_FACTOR`` times the PyTorch model's own float32 error against a float64 copy
of it). When the two differ, ``twinbench.twins.localise`` names the first layer whose activations differ and the first
whose gradients differ.

A pair file (``python -m twinbench check FILE.py``) defines::

    def keras_model(*, input_shape, num_classes): ...   # a Keras 3 model returning logits
    def torch_model(*, input_shape, num_classes): ...   # an nn.Module returning logits, images NCHW
    INPUT_SHAPE = (32, 32, 3)   # optional: (H, W, C), channels last as everywhere in twinbench
    NUM_CLASSES = 10            # optional
    torch_keys = {...}          # optional: {keras_weight_path: torch_state_key}, or a function of the path
"""

from __future__ import annotations

import copy
import importlib.util
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from twinbench.backends.base import TrainConfig
from twinbench.backends.tolerances import NOISE_FACTOR, logits_tolerance
from twinbench.models.weights import WeightMismatchError, canonical_weights, leaf_layers
from twinbench.twins import localise
from twinbench.twins.pairing import (
    check_layout,
    keras_groups,
    keys_by_name,
    keys_from_mapping,
    layout_for,
    pair_in_order,
    torch_groups,
)
from twinbench.twins.parity import ParityError, compare_observations, float64_noise, observe, parity_batch
from twinbench.twins.trajectory import Trajectory, run_trajectory


class PairError(ValueError):
    """A pair file or builder that cannot be checked; the message says why, on one line."""


@dataclass
class PairFile:
    """What a pair file defines (see the module docstring)."""

    path: str
    keras_model: object
    torch_model: object
    input_shape: tuple[int, int, int] | None = None
    num_classes: int | None = None
    torch_keys: object = None
    tf_keras_model: object = None


def load_pair_file(path) -> PairFile:
    """Import a pair file (run the Keras backend choice first: the file imports keras)."""
    path = _pair_path(path)
    spec = importlib.util.spec_from_file_location(f"twinbench_pair_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    sys.path.insert(0, str(path.resolve().parent))  # its folder is importable from it, as for a script
    try:
        spec.loader.exec_module(module)
    except Exception as err:  # the user's code: any error is theirs to fix, reported in one line
        raise PairError(f"Pair file {str(path)!r} could not be imported: {_one_line(err)}") from None
    finally:
        sys.path.remove(str(path.resolve().parent))
    missing = [name for name in ("keras_model", "torch_model") if not callable(getattr(module, name, None))]
    if missing:
        raise PairError(f"Pair file {str(path)!r} must define {' and '.join(missing)}(*, input_shape, num_classes).")
    return PairFile(str(path), module.keras_model, module.torch_model,
                    input_shape=getattr(module, "INPUT_SHAPE", None), num_classes=getattr(module, "NUM_CLASSES", None),
                    torch_keys=getattr(module, "torch_keys", None),
                    tf_keras_model=getattr(module, "tf_keras_model", None))


def _pair_path(path) -> Path:
    path = Path(path)
    if path.suffix != ".py":
        raise PairError(f"A pair file is a Python file (FILE.py). Received: {str(path)!r}.")
    if not path.is_file():
        raise PairError(f"Pair file {str(path)!r} does not exist.")
    return path


def _one_line(err: BaseException) -> str:
    text = " ".join(str(err).split())
    return f"{type(err).__name__}: {text[:300]}" if text else type(err).__name__


@dataclass
class CheckReport:
    """The outcome of ``check``: a one-line verdict, then the details and, if they differ, where.

    ``localised`` says whether the paired layers' activations and gradients were compared: only then does the report
    speak of them (a pair whose weights do not pair has no paired layers to speak of).
    """

    name: str
    identical: bool
    verdict: str
    details: list[str] = field(default_factory=list)
    divergence: localise.Divergence | None = None
    gradient_divergence: localise.GradientDivergence | None = None
    trajectory: Trajectory | None = None
    localised: bool = False

    def __str__(self) -> str:
        lines = [self.verdict, *(f"  {line}" for line in self.details)]
        if self.trajectory is not None:
            lines += [f"  {self.trajectory.verdict()}", *(f"    {line}" for line in self.trajectory.curve())]
        if not self.identical and self.localised:
            lines.append("  " + (self.divergence.describe() if self.divergence is not None else
                                 "activations: every paired layer's input and output agree, in both modes"))
            lines.append("  " + (self.gradient_divergence.describe() if self.gradient_divergence is not None else
                                 "gradients (training mode): every paired layer's within tolerance"))
        return "\n".join(lines)


def check(keras_builder, torch_builder, *, input_shape, num_classes, torch_keys=None, name="your pair", batch=4,
          config=None, steps=0) -> CheckReport:
    """Check that ``keras_builder``'s model and ``torch_builder``'s module are the same network.

    Args:
        keras_builder, torch_builder: ``build(*, input_shape, num_classes)`` returning a Keras 3 model / an
            ``nn.Module``, both returning logits (the module takes images NCHW).
        input_shape: ``(H, W, C)`` of one image, channels last.
        num_classes: number of logits.
        torch_keys: optional weight mapping, ``{keras_path: torch_key}`` or a function of the Keras path.
        name: what the verdict calls the pair.
        batch: images in the checked batch.
        config: the optimizer step's settings (default ``TrainConfig()``: Adam, lr 1e-3).
        steps: if above 0, also train both ``steps`` SGD steps and check that they stay within the float64
            envelope (``twinbench.twins.trajectory``); the report then carries the curve.

    Returns:
        A ``CheckReport``; ``str(report)`` is the verdict and its details.

    Raises:
        PairError, WeightMismatchError, BackendError: a pair that cannot be checked (one-line messages).
    """
    from twinbench.backends import get_runner, resolve_backend

    config = config or TrainConfig()
    keras_runner = get_runner("keras", resolve_backend("keras"))
    torch_runner = _torch_runner()
    keras_model = _build("keras_model", keras_builder, input_shape, num_classes)
    module = _build("torch_model", torch_builder, input_shape, num_classes)
    _check_types(keras_model, module)
    module.to(torch_runner.device)
    params = (keras_runner.count_params(keras_model), torch_runner.count_params(module))
    if params[0] != params[1]:
        return CheckReport(name, False, f"{name}: NOT identical: parameter counts differ: Keras {params[0]:,} vs "
                                        f"PyTorch {params[1]:,}", details=_pairing_hint(keras_model, module))
    x, y = parity_batch(tuple(input_shape), num_classes, batch=batch)
    keras_calls = _run("keras_model", lambda: localise.keras_trace(keras_model, x, training=False), x)
    torch_calls = _run("torch_model", lambda: localise.torch_trace(module, _nchw(x, torch_runner), training=False), x)
    keys, how = pair_weights(keras_model, module, torch_keys=torch_keys, keras_calls=keras_calls,
                             torch_calls=torch_calls)
    if not keys:
        raise PairError(f"{name}: neither model has weights to pair (Keras {len(keras_model.weights)}, PyTorch "
                        f"{len(module.state_dict())} tensors): the check loads the same weights into both and "
                        "compares them, so it has nothing to check.")
    weights = _initial_weights(keras_model, keras_runner)
    state_shapes = {key: tuple(value.shape) for key, value in module.state_dict().items()}
    layout = layout_for(keras_model, keys)
    check_layout(weights, layout, state_shapes)
    module.twinbench_layout = layout  # what TorchRunner reads to convert weights and gradients
    module.twinbench_shapes = {v.path: tuple(v.shape) for v in keras_model.weights}

    from twinbench.backends.keras_fit import compile_model
    from twinbench.backends.keras_runner import adam_class, task_loss

    # the shared optimizer and loss, whatever the user compiled
    compile_model(keras_model, config, module=keras_runner.keras_module,
                  loss=task_loss(keras_runner.task_of(keras_model)), adam=adam_class())
    keras_runner.set_weights(keras_model, weights)
    torch_runner.set_weights(module, weights)
    exact_module = copy.deepcopy(module).double()  # the float64 copy: how far float32 may honestly be off
    reference = observe(torch_runner, module, x=x, y=y, config=config)
    exact = observe(torch_runner, exact_module, x=x.astype(np.float64), y=y, config=config, step=False)
    noise = float64_noise(reference, exact)
    actual = observe(keras_runner, keras_model, x=x, y=y, config=config)

    details = [f"weights: {len(keys)} tensors paired {how}; parameters: {params[0]:,} in both",
               _logits_line(actual.logits, reference.logits, noise),
               f"loss (training mode): Keras {actual.loss:.6g}, PyTorch {reference.loss:.6g}"]
    try:
        compare_observations(actual, reference, lr=config.learning_rate, noise=noise, factor=NOISE_FACTOR)
    except ParityError as err:
        report = CheckReport(name, False, f"{name}: NOT identical: {err}", details)
        _localise(report, keras_model, module, weights, x, (keras_runner, torch_runner), keys,
                  grads=(actual.grads, reference.grads), noise=noise)
    else:
        details.append("gradients, one Adam step and the BatchNorm statistics after it: within tolerance")
        report = CheckReport(name, True, f"{name}: identical (float32, within the float32 floor)", details)
    if steps:
        report.trajectory = run_trajectory((keras_runner, torch_runner), keras_model, module, weights,
                                           input_shape=input_shape, num_classes=num_classes, steps=steps,
                                           batch=batch)
        if report.identical and not report.trajectory.inside:
            report.identical = False
            report.verdict = f"{name}: NOT identical after {steps} steps: {report.trajectory.verdict()}"
    return report


def check_file(path, *, input_shape=None, num_classes=None, steps=0) -> CheckReport:
    """``check`` of a pair file; ``input_shape`` / ``num_classes`` override its ``INPUT_SHAPE`` / ``NUM_CLASSES``."""
    _pair_path(path)  # a missing file is reported first, in any environment
    require_torch()
    pair = load_pair_file(path)
    input_shape = tuple(input_shape or pair.input_shape or ())
    num_classes = num_classes or pair.num_classes
    if len(input_shape) != 3 or not num_classes:
        raise PairError(f"Pair file {pair.path!r} sets no INPUT_SHAPE = (H, W, C) and NUM_CLASSES: define them there "
                        "or pass --input-shape HxWxC --num-classes N.")
    report = check(pair.keras_model, pair.torch_model, input_shape=input_shape, num_classes=int(num_classes),
                   torch_keys=pair.torch_keys, name=Path(pair.path).name, steps=steps)
    if pair.tf_keras_model is not None:
        report.details.append("tf_keras_model: defined, not checked (this check compares Keras 3 with PyTorch)")
    return report


def check_registered(model_name, *, steps=0) -> CheckReport:
    """``check`` of a registered model's Keras definition against its PyTorch twin, at its twin-test case."""
    import functools

    from twinbench.models import get_model_spec
    from twinbench.models._registry import _resolve
    from twinbench.twins.parity import parity_case, parity_options

    spec = get_model_spec(model_name)
    spec.check_implementation("torch")
    input_shape, num_classes, _, _ = parity_case(model_name)
    options = parity_options(model_name)
    return check(functools.partial(spec.builder("keras"), **options), functools.partial(spec.builder("torch"), **options),
                 input_shape=input_shape, num_classes=num_classes, name=model_name, batch=spec.twin_case.batch,
                 torch_keys=_resolve(spec.torch_keys) if spec.torch_keys else None, steps=steps)


def pair_weights(keras_model, module, *, torch_keys, keras_calls, torch_calls) -> tuple[dict[str, str], str]:
    """``({keras_path: torch_key}, how they were paired)``: by the mapping, by name, or in order by shape."""
    state_shapes = {key: tuple(value.shape) for key, value in module.state_dict().items()}
    paths = [v.path for v in keras_model.weights]
    if torch_keys is not None:
        return keys_from_mapping(torch_keys, paths, state_shapes), "by the torch_keys mapping"
    by_name = keys_by_name(paths, state_shapes)
    if by_name is not None:
        return by_name, "by name"
    ran = [call.owner for call in keras_calls]
    keras_run = keras_groups(ran + [layer for layer in leaf_layers(keras_model) if layer not in ran])
    ran_names = [call.name for call in torch_calls]
    rest = [(n, m) for n, m in module.named_modules() if n not in ran_names]
    torch_run = torch_groups([(call.name, call.owner) for call in torch_calls] + rest, state_shapes)
    try:
        return pair_in_order(keras_run, torch_run), "in the order the layers run, by shape"
    except WeightMismatchError as in_run_order:
        try:
            return (pair_in_order(keras_groups(leaf_layers(keras_model)), torch_groups(module.named_modules(),
                                                                                       state_shapes)),
                    "in the order the layers are defined, by shape")
        except WeightMismatchError:
            raise in_run_order from None


def _localise(report, keras_model, module, weights, x, runners, keys, *, grads, noise):
    """Fill ``report.divergence`` / ``gradient_divergence``: traces of both models from the same weights."""
    keras_runner, torch_runner = runners
    pairs = {}
    layer_order = {}
    for layer in leaf_layers(keras_model):
        paths = [v.path for v in layer.weights if v.path in keys]
        if paths:
            pairs[layer.name] = keys[paths[0]].rpartition(".")[0]
            layer_order[layer.name] = paths
    if not pairs:  # the weights paired, but not as layers of the two models: nothing to compare layer by layer
        report.details.append("layers: no Keras layer's weights paired with one PyTorch module's, so no layer "
                              "was compared")
        return
    flattened = {layer.name: module.twinbench_layout.flatten_inputs[layer.kernel.path]
                 for layer in leaf_layers(keras_model)
                 if getattr(layer, "kernel", None) is not None
                 and layer.kernel.path in module.twinbench_layout.flatten_inputs}
    for mode in ("inference", "training"):
        keras_runner.set_weights(keras_model, weights)  # undo the optimizer step and the BatchNorm updates
        torch_runner.set_weights(module, weights)
        exact_module = copy.deepcopy(module).double()
        training = mode == "training"
        keras_calls = localise.keras_trace(keras_model, x, training=training)
        torch_calls = localise.torch_trace(module, _nchw(x, torch_runner), training=training)
        exact_calls = localise.torch_trace(exact_module, _nchw(x.astype(np.float64), torch_runner), training=training)
        report.divergence = localise.first_divergence(keras_calls, torch_calls, pairs, mode=mode,
                                                      flatten_inputs=flattened, noise_calls=exact_calls)
        if report.divergence is not None:
            break
    if keras_calls:  # the order the Keras layers ran in, for walking back from the loss
        ran = [call.name for call in keras_calls if call.name in layer_order]
        layer_order = {name: layer_order[name] for name in ran}
    report.gradient_divergence = localise.first_gradient_divergence(*grads, layer_order=layer_order, pairs=pairs,
                                                                    noise=noise)
    report.localised = True


def require_torch() -> None:
    """Raise ``BackendError`` (one line, what to do) where PyTorch is not installed."""
    from twinbench.backends import BackendError

    if importlib.util.find_spec("torch") is None:
        raise BackendError("twinbench check compares with PyTorch, which this environment lacks: run it in the torch "
                           "environment (pip install 'twinbench[torch]').")


def _torch_runner():
    require_torch()
    from twinbench.backends.torch_runner import TorchRunner

    runner = TorchRunner()
    runner.setup(seed=0)
    return runner


def _build(what, builder, input_shape, num_classes):
    try:
        return builder(input_shape=tuple(input_shape), num_classes=int(num_classes))
    except Exception as err:  # the user's builder
        raise PairError(f"{what}(input_shape={tuple(input_shape)}, num_classes={num_classes}) raised "
                        f"{_one_line(err)}") from None


def _run(what, forward, x):
    try:
        return forward()
    except Exception as err:  # the user's forward pass
        raise PairError(f"{what} failed on a batch of shape {x.shape} (channels last; PyTorch gets it NCHW): "
                        f"{_one_line(err)}") from None


def _check_types(keras_model, module):
    import keras
    import torch

    if not isinstance(keras_model, keras.Model):
        raise PairError(f"keras_model must return a keras.Model. Received: {type(keras_model).__name__}.")
    if not isinstance(module, torch.nn.Module):
        raise PairError(f"torch_model must return a torch.nn.Module. Received: {type(module).__name__}.")


def _nchw(x, torch_runner):
    from twinbench.backends.torch_runner import to_nchw

    return to_nchw(x).to(torch_runner.device)


def _initial_weights(keras_model, keras_runner):
    """The Keras model's initializers drawn with NumPy (as for the registered models), or, for an initializer that
    has no NumPy version, the values the Keras model was built with."""
    try:
        return canonical_weights(keras_model, seed=0)
    except NotImplementedError:
        return keras_runner.get_weights(keras_model)


def _logits_line(actual, expected, noise) -> str:
    diff = float(np.abs(np.asarray(actual, np.float64) - np.asarray(expected, np.float64)).max())
    return (f"logits (inference mode): max |difference| {diff:.3g} (tolerance {logits_tolerance(expected, noise):.2g}, "
            f"largest |logit| {float(np.abs(expected).max()):.3g})")


def _pairing_hint(keras_model, module) -> list[str]:
    """Where the two models' tensors stop lining up, for a pair whose parameter counts differ."""
    state_shapes = {key: tuple(value.shape) for key, value in module.state_dict().items()}
    try:
        pair_in_order(keras_groups(leaf_layers(keras_model)), torch_groups(module.named_modules(), state_shapes))
    except WeightMismatchError as err:
        return [f"in definition order: {err}"]
    return []
