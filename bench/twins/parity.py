"""The twin check: two implementations of one model, same weights, same batch -> same numbers.

Compared, in float32 with TF32 off, each against an asserted tolerance:

1. parameter counts (exactly);
2. logits in inference mode (relative to their own scale);
3. the mean cross-entropy and every gradient in training mode;
4. the weights after one optimizer step through each implementation's real training path, the
   non-trainable state after it (BatchNorm moving statistics).

A mismatch raises ``ParityError`` naming the first tensor that differs and by how much. The same
functions produce the small "fingerprints" stored in ``tests/parity/`` so that implementations that
cannot share a process (keras[jax] and the PyTorch twin) are still compared.

**The noise floor: how far float32 may honestly be from the exact answer.** Fixed float32 tolerances
suit a small network. A deep network with BatchNorm in training mode amplifies float32 rounding enormously at
initialisation: for ResNet50, PyTorch's own float32 gradients differ from its float64 gradients by a few percent
of a tensor's largest value in the median tensor and up to a third in the worst (``tools/investigations/float64_reference.py``),
so no two frameworks can agree more closely, and *how* close two float32 runs land depends on the CPU's kernels
and summation orders. twinbench therefore takes the tolerances from **float64 references of the same
computation** (``float64_noise``: quantity by quantity, how far a float32 result is from the float64 one):

- the model's *envelope* is the PyTorch twin's float32 error against its float64 copy. It travels in the committed
  fingerprint (``tests/parity/``), so every environment and every machine uses the same numbers. A model without a
  PyTorch twin takes the Keras definition's, measured in float64 on TensorFlow where the test runs.
- an implementation that can compute in float64 itself (Keras 3 on TensorFlow, on JAX with x64) also measures its
  *own* float32 error against its own float64 copy, and that copy must be the reference's network: its float64
  gradients land within the envelope of the PyTorch twin's committed float32 ones (``compare_exact``), which no
  kernel's rounding can blur. XLA on CPU, for one, computes VGG19's first-convolution gradients three orders of
  magnitude further from float64 than PyTorch does; its own envelope says so, and its float64 copy proves that
  this is rounding, not a different network.
- twins must agree within the fixed tolerance, or a few times the larger envelope, whichever is larger:
  ``NOISE_FACTOR`` when one side is the twin the envelope was measured on, ``NOISE_FACTOR_NEITHER`` between two
  others, since an implementation without a float64 copy of its own may be ``OTHER_ERROR`` times further from
  float64 than the reference (measured). A twin that is a different network misses by far more: inference-mode
  logits are well conditioned even in ResNet50 (``tests/test_mismatched_twin.py``).

**In other execution modes** (``twinbench.backends.modes.Mode``) the same check runs with the mode applied to every implementation
(``observe_twin(..., mode=...)``; ``tests/test_modes.py``). Compiling and another layout change kernels, not the
arithmetic's precision: they are held to the float32 envelope. Mixed precision is held to its own envelope, measured
the same way: the PyTorch twin's bfloat16 error (``torch.autocast``) against its float64 copy, committed in
``tests/parity/cifar_cnn__precision-mixed_bfloat16.npz`` (``fingerprint_path(model, mode)``); an implementation's
own error is measured against its float64 copy run in the default mode.

The twin case must be well conditioned for that to hold: at 32x32, ResNet50's last stage normalises a handful of
values per channel, and tf.keras' fused BatchNorm kernel then lands up to 18 times further from float64 than
Keras 3 does on the same backend, so ResNet50 is checked at 64x64. A gradient norm is allowed the L2 norm of the
envelope's error vector (``| |a| - |b| | <= |a - b|``). A gradient that is zero up to rounding (below
``ZERO_GRAD_REL`` of the model's largest gradient norm) is pure noise, different in every run, so it only has to
stay below that floor. (Not every implementation has a float64 copy: Keras 3 computes some reductions, e.g.
``ops.mean`` on the torch backend, in float32 even for float64 inputs, and tf.keras' fused BatchNorm kernel is
float32-only.)
"""

from __future__ import annotations

import dataclasses
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from twinbench.backends.base import TrainConfig
from twinbench.backends.modes import DEFAULT_MODE, Mode
from twinbench.backends.tolerances import (
    GRAD_ATOL,
    GRAD_RTOL,
    LOSS_ATOL,
    LOSS_RTOL,
    NOISE_FACTOR,
    NOISE_FACTOR_NEITHER,
    STATE_ATOL,
    STATE_RTOL,
    STEP_ATOL,
    STEP_GRAD_FLOOR,
    ZERO_GRAD_REL,
    logits_tolerance,
    tolerance,
)
from twinbench.cell import Cell
from twinbench.data.tasks import DEFAULT_TASK, random_batch


class ParityError(AssertionError):
    """Two implementations are not the same network; the message names what differs."""


@dataclass
class ParityReport:
    """What a twin check measured (all differences are maxima over elements)."""

    params: dict[str, int] = field(default_factory=dict)
    max_abs_logits: float = 0.0
    loss: tuple[float, float] = (0.0, 0.0)
    max_rel_grad: float = 0.0
    max_step: float = 0.0
    noise_widened: list[str] = field(default_factory=list)  # quantities whose tolerance the noise floor set


@dataclass
class Observation:
    """Everything the twin check compares, from one implementation (neutral names, Keras layouts).

    Attributes:
        logits: inference-mode logits with the initial weights.
        loss: mean cross-entropy in training mode.
        grads: gradient of every trainable weight.
        steps: change of every trainable weight in one optimizer step (empty if no step was taken).
        state: every non-trainable weight (BatchNorm moving statistics) after that step.
        forward_state: the non-trainable weights after the training-mode pass of the gradient computation
            (BatchNorm updates its statistics there too), before the step.
    """

    logits: np.ndarray
    loss: float
    grads: dict[str, np.ndarray]
    steps: dict[str, np.ndarray]
    state: dict[str, np.ndarray]
    forward_state: dict[str, np.ndarray]


def parity_batch(input_shape, num_classes, *, batch=4, seed=1234, task=DEFAULT_TASK):
    """The fixed batch every twin check uses: ``twinbench.data.tasks.random_batch`` of the model's task."""
    return random_batch(task, input_shape, num_classes, batch=batch, seed=seed)


def parity_case(model_name):
    """(input_shape, num_classes, x, y) of a model's twin check: its small test case from the registry."""
    from twinbench.models import get_model_spec

    spec = get_model_spec(model_name)
    input_shape = tuple(spec.twin_case.input_shape or spec.input_shape)
    num_classes = spec.twin_case.num_classes or spec.num_classes
    x, y = parity_batch(input_shape, num_classes, batch=spec.twin_case.batch, task=spec.task)
    return input_shape, num_classes, x, y


def parity_options(model_name) -> dict:
    """Builder options of a model's twin check (``{"dropout": 0.0}``: dropout masks cannot match across
    frameworks, so training-mode outputs would be random)."""
    from twinbench.models import get_model_spec

    return dict(get_model_spec(model_name).twin_case.options)


def combine_noise(*floors: dict) -> dict[str, float]:
    """The larger of several noise envelopes, quantity by quantity."""
    combined: dict[str, float] = {}
    for floor in floors:
        for key, value in (floor or {}).items():
            combined[key] = max(combined.get(key, 0.0), float(value))
    return combined


def observe(runner, model, *, x, y, config=None, step=True) -> Observation:
    """Logits (inference), loss and gradients (training mode), then one optimizer step (unless ``step=False``).

    Changes ``model``.
    """
    config = config or TrainConfig()
    logits = runner.predict(model, x)
    loss, grads = runner.loss_and_grads(model, x, y)
    before = runner.get_weights(model)
    forward_state = {name: value for name, value in before.items() if name not in grads}
    if not step:
        return Observation(logits=logits, loss=loss, grads=grads, steps={}, state={}, forward_state=forward_state)
    runner.train_step(model, x, y, config)
    after = runner.get_weights(model)
    # float32 differences (half the memory): exact while a weight changes by less than half its value
    steps = {name: np.asarray(after[name], np.float32) - np.asarray(before[name], np.float32) for name in grads}
    state = {name: value for name, value in after.items() if name not in grads}
    return Observation(logits=logits, loss=loss, grads=grads, steps=steps, state=state, forward_state=forward_state)


def _max_abs(a, b) -> float:
    diff = np.abs(np.asarray(a, np.float64) - np.asarray(b, np.float64))
    return float(diff.max()) if diff.size else 0.0


def float64_noise(observation: Observation, exact: Observation) -> dict[str, float]:
    """How far each compared quantity of a float32 ``observation`` is from ``exact``, the same computation in
    float64 (``observe(..., step=False)`` on the runner's float64 copy): the float32 error of that framework.

    Steps are compared only where the gradient is clearly above its error, and the state's error is read
    after the training-mode pass, so neither needs a float64 optimizer step.
    """
    noise = {"logits": _max_abs(observation.logits, exact.logits),
             "loss": abs(float(observation.loss) - float(exact.loss))}
    for name, grad in observation.grads.items():
        error = np.asarray(grad, np.float64) - np.asarray(exact.grads[name], np.float64)
        noise[f"grad:{name}"] = float(np.abs(error).max()) if error.size else 0.0
        noise[f"gradnorm:{name}"] = float(np.linalg.norm(error))  # bounds the error of the norm
    for name, value in observation.forward_state.items():
        noise[f"state:{name}"] = _max_abs(value, exact.forward_state[name])
    return noise


@dataclass
class TwinObservation:
    """One implementation at a model's parity case: what it computed and the float32 error envelopes.

    Attributes:
        noise: the model's envelope: the reference twin's float32 error against float64.
        own_noise: this implementation's own float32 error against its float64 copy, where it has one.
        exact: that float64 copy's observation (no step), which must be the same network as the reference.
    """

    observation: Observation
    noise: dict[str, float]
    x: np.ndarray
    y: np.ndarray
    params: int
    round_trip_error: str | None  # the first weight that did not come back exactly as loaded, if any
    own_noise: dict[str, float] | None = None
    exact: Observation | None = None


def observe_twin(implementation, backend, model_name, *, weights, config=None, noise=None,
                 float64=True, mode=DEFAULT_MODE) -> TwinObservation:
    """Run ``implementation`` of ``model_name`` at its parity case with ``weights``, and in float64 where it can.

    Args:
        implementation, backend: which twin (``twinbench.backends.get_runner``).
        model_name: a registered model.
        weights: the neutral weights to load (the canonical initial weights of the parity case).
        config: training settings of the one optimizer step (default ``TrainConfig()``).
        noise: the model's float32 error envelope (e.g. from its committed fingerprint); ``None`` makes this
            implementation's own float32 error the envelope, which only one that computes in float64 has.
        float64: also run the float64 copy where the implementation has one (``own_noise``, ``exact``).
        mode: the execution mode (``twinbench.backends.modes.Mode``) the implementation runs in; its float64 copy runs in the
            default mode (no compilation, no mixed policy), so ``own_noise`` is this mode's error against exact.
    """
    from twinbench.backends import get_runner

    input_shape, num_classes, x, y = parity_case(model_name)
    runner = get_runner(implementation, backend, mode=mode)
    runner.setup(seed=0)
    build = {"input_shape": input_shape, "num_classes": num_classes, "options": parity_options(model_name)}
    model = runner.prepare(model_name, weights=weights, **build)
    exported = runner.get_weights(model)
    round_trip_error = next((f"weight {name!r} did not round-trip exactly" for name in weights
                             if name not in exported or not np.array_equal(exported[name], weights[name])), None)
    if set(exported) != set(weights):
        round_trip_error = f"exported weights {sorted(set(exported) ^ set(weights))[:3]} differ from the loaded ones"
    del exported
    params = runner.count_params(model)
    observation = observe(runner, model, x=x, y=y, config=config)
    del model  # VGG19 holds ~0.5 GB per copy
    exact = own_noise = None
    if float64 or noise is None:
        if mode != DEFAULT_MODE:
            runner = get_runner(implementation, backend)
            runner.setup(seed=0)
        exact = observe_float64(runner, model_name, weights=weights, x=x, y=y, config=config, build=build,
                                required=noise is None)
        own_noise = None if exact is None else float64_noise(observation, exact)
    return TwinObservation(observation, dict(own_noise if noise is None else noise), x, y, params, round_trip_error,
                           own_noise=own_noise, exact=exact)


def observe_float64(runner, model_name, *, weights, x, y, config, build, required) -> Observation | None:
    """The runner's float64 copy observed (no step); ``None`` where it has none, unless ``required``."""
    with runner.float64():
        try:
            model = runner.prepare_float64(model_name, weights=weights, **build)
        except NotImplementedError:
            if required:
                raise
            return None
        return observe(runner, model, x=_float64_inputs(x), y=y, config=config, step=False)


def _float64_inputs(x):
    """The batch for a float64 copy: float arrays in float64, integer ones (token and item ids) as they are."""
    if isinstance(x, tuple):
        return tuple(_float64_inputs(a) for a in x)
    return x.astype(np.float64) if np.issubdtype(x.dtype, np.floating) else x


def compare_exact(exact: Observation, expected: dict) -> None:
    """Assert that a float64 observation (``TwinObservation.exact``) is the network of the fingerprint ``expected``.

    The fingerprint's float32 values lie within the reference's own float32 error of the exact answer, so a float64
    run of the same network lands within ``NOISE_FACTOR`` of those errors (or the fixed tolerances): a check of
    the definition that no kernel's float32 rounding can blur.
    """
    noise = fingerprint_noise(expected)
    _check_logits("float64 logits", exact.logits, expected["logits"], noise, "logits")
    loss_ref = float(expected["loss"])
    _check_close("float64 loss", "cross-entropy", exact.loss, loss_ref,
                 atol=tolerance(LOSS_ATOL + LOSS_RTOL * abs(loss_ref), noise, "loss"))
    names = sorted(k[len("grad:"):] for k in expected if k.startswith("grad:"))
    if names != sorted(exact.grads):
        raise ParityError(f"gradient names differ: {sorted(set(names) ^ set(exact.grads))[:3]}")
    zero_floor = ZERO_GRAD_REL * max((abs(float(expected[f"grad:{name}"][-2])) for name in names), default=0.0)
    for name in names:
        g_ref = expected[f"grad:{name}"][:-2]
        tensor_scale = float(np.abs(g_ref).max(initial=0)) or 1.0
        _check_close("float64 gradient", name, sketch(name, exact.grads[name])[:-2], g_ref,
                     atol=tolerance(max(GRAD_ATOL * tensor_scale, zero_floor), noise, f"grad:{name}"), rtol=GRAD_RTOL)


def _check_close(what, name, actual, expected, *, atol, rtol=0.0):
    actual, expected = np.asarray(actual, np.float64), np.asarray(expected, np.float64)
    if actual.shape != expected.shape:
        raise ParityError(f"{what} {name!r}: shape {actual.shape} != {expected.shape}")
    diff = np.abs(actual - expected)
    bad = diff > atol + rtol * np.abs(expected)
    if bad.any():
        i = np.unravel_index(np.argmax(diff - atol - rtol * np.abs(expected)), diff.shape)
        raise ParityError(
            f"{what} {name!r} differs: {int(bad.sum())} of {diff.size} elements, worst at {tuple(map(int, i))}: "
            f"{actual[i]:.6g} vs {expected[i]:.6g} (tolerance {atol:.2g} + {rtol:.2g}*|ref|)"
        )
    return float(diff.max()) if diff.size else 0.0


def _check_logits(what, actual, expected, noise, key, report=None):
    return _check_close(what, "output", actual, expected, atol=logits_tolerance(expected, noise, key=key,
                                                                                 report=report))


def check_step(name, delta, delta_ref, grad_ref, lr, *, grad_noise=0.0, factor=NOISE_FACTOR):
    """One optimizer step: weight changes agree where the gradient is well above Adam's epsilon and the noise."""
    delta, delta_ref = np.asarray(delta, np.float64), np.asarray(delta_ref, np.float64)
    strong = np.abs(np.asarray(grad_ref, np.float64)) > STEP_GRAD_FLOOR + factor * grad_noise
    worst = _check_close("step of", name, delta[strong], delta_ref[strong], atol=STEP_ATOL * lr)
    if np.abs(delta).max(initial=0) > lr * 1.001 + 1e-12:
        raise ParityError(f"step of {name!r} moved a weight by {np.abs(delta).max():.3g} > lr = {lr}")
    return worst


def compare_observations(actual: Observation, expected: Observation, *, lr: float, noise=None,
                         report: ParityReport | None = None, factor: float = NOISE_FACTOR) -> ParityReport:
    """Assert two observations agree; ``noise`` from ``float64_noise``, ``factor`` times it allowed (``NOISE_FACTOR``
    when one of the two is the twin whose float32 error ``noise`` is, ``NOISE_FACTOR_NEITHER`` when not)."""
    report = report or ParityReport()
    report.max_abs_logits = _check_logits("logits", actual.logits, expected.logits, noise, "logits", report)
    report.loss = (actual.loss, expected.loss)
    _check_close("loss", "cross-entropy", actual.loss, expected.loss,
                 atol=tolerance(LOSS_ATOL + LOSS_RTOL * abs(expected.loss), noise, "loss", report, factor=factor))
    if set(actual.grads) != set(expected.grads):
        missing = sorted(set(expected.grads) ^ set(actual.grads))[0]
        raise ParityError(f"gradient {missing!r} exists in only one implementation")
    zero_floor = ZERO_GRAD_REL * max((float(np.linalg.norm(np.asarray(g, np.float64))) for g in expected.grads.values()),
                                     default=0.0)
    for name, grad_ref in expected.grads.items():
        tensor_scale = float(np.abs(grad_ref).max()) or 1.0
        atol = tolerance(max(GRAD_ATOL * tensor_scale, zero_floor), noise, f"grad:{name}", report, factor=factor)
        diff = _check_close("gradient", name, actual.grads[name], grad_ref, atol=atol, rtol=GRAD_RTOL)
        report.max_rel_grad = max(report.max_rel_grad, diff / tensor_scale)
    for name, step_ref in expected.steps.items():
        grad_noise = float((noise or {}).get(f"grad:{name}", 0.0))
        report.max_step = max(report.max_step, check_step(name, actual.steps[name], step_ref, expected.grads[name],
                                                          lr, grad_noise=grad_noise, factor=factor))
    if set(actual.state) != set(expected.state):
        raise ParityError(f"state {sorted(set(expected.state) ^ set(actual.state))[0]!r} exists in only one implementation")
    for name, value_ref in expected.state.items():  # non-trainable state, e.g. BatchNorm moving statistics
        _check_close("state after one step", name, actual.state[name], value_ref,
                     atol=tolerance(STATE_ATOL, noise, f"state:{name}", report, factor=factor), rtol=STATE_RTOL)
    return report


def check_in_process(here: TwinObservation, ref: TwinObservation, *, lr: float,
                     with_reference: bool) -> ParityReport:
    """Assert a native twin (``here``) equals the Keras definition (``ref``) observed in the same process.

    Tolerances: the model's envelope, or either side's own measured float32 error where larger; ``with_reference``
    says that one of the two is the twin whose float32 error the envelope is (``NOISE_FACTOR``, else
    ``NOISE_FACTOR_NEITHER``).
    """
    if here.params != ref.params:
        raise ParityError(f"parameter counts differ: {here.params:,} vs {ref.params:,}")
    return compare_observations(here.observation, ref.observation, lr=lr,
                                noise=combine_noise(ref.noise, ref.own_noise, here.own_noise),
                                factor=NOISE_FACTOR if with_reference else NOISE_FACTOR_NEITHER)


def check_against_fingerprint(here: TwinObservation, expected: dict, *, lr: float) -> None:
    """Assert an implementation equals the PyTorch twin's committed fingerprint ``expected``.

    Tolerances: the fingerprint's envelope, or this implementation's own float32 error where larger and measured;
    its float64 copy, which measured that error, must itself be the fingerprint's network (``compare_exact``).
    """
    if here.exact is not None:
        compare_exact(here.exact, expected)
    compare_fingerprints(fingerprint_of(here.observation, x=here.x, y=here.y, noise=here.own_noise), expected, lr=lr)


def compare_twins(reference, ref_model, other, other_model, *, x, y, config=None, noise=None) -> ParityReport:
    """Assert that ``other_model`` (run by ``other``) equals ``ref_model`` (run by ``reference``).

    Both models must already hold the same weights. ``noise`` is the model's float32 error envelope
    (``float64_noise``); without it only the fixed tolerances apply. Raises ``ParityError`` on the first
    difference.
    """
    config = config or TrainConfig()
    report = ParityReport()
    report.params = {"reference": reference.count_params(ref_model), "other": other.count_params(other_model)}
    if report.params["reference"] != report.params["other"]:
        raise ParityError(f"parameter counts differ: {report.params['other']:,} vs {report.params['reference']:,}")
    expected = observe(reference, ref_model, x=x, y=y, config=config)
    actual = observe(other, other_model, x=x, y=y, config=config)
    return compare_observations(actual, expected, lr=config.learning_rate, noise=noise, report=report)


# -- fingerprints: compare across processes/environments --------------------------------------------------

SKETCH_SIZE = 32  # elements sampled per tensor; fixtures stay small (tens of kB) even for ResNet50


def sketch(name: str, tensor, *, k: int = SKETCH_SIZE) -> np.ndarray:
    """A small fingerprint of a tensor: k fixed elements (chosen by name), its L2 norm and its sum.

    Stored as float32: every tolerance it is compared with is far above float32 resolution.
    """
    flat = np.asarray(tensor, np.float64).ravel()
    rng = np.random.default_rng(zlib.crc32(name.encode()))
    idx = rng.choice(flat.size, size=min(k, flat.size), replace=False)
    return np.concatenate([flat[idx], [np.linalg.norm(flat), flat.sum()]]).astype(np.float32)


def fingerprint_of(obs: Observation, *, x, y, noise=None) -> dict[str, np.ndarray]:
    """Logits, loss, and sketches of the gradients, one-step weight changes and state of one observation.

    ``noise`` (from ``float64_noise``) is stored with it as ``noise:<quantity>`` scalars.
    """
    out = {"x": x, "y": y, "logits": obs.logits, "loss": np.array(obs.loss)}
    for name, g in obs.grads.items():
        out[f"grad:{name}"] = sketch(name, g)
        if name in obs.steps:  # an observation without an optimizer step (plain SGD read-backs) has none
            out[f"step:{name}"] = sketch(name, obs.steps[name])
    for name, value in obs.state.items():
        out[f"state:{name}"] = sketch(name, value)
    for key, value in (noise or {}).items():
        out[f"noise:{key}"] = np.array(value)
    return out


_SKETCH_KINDS = ("grad", "step", "state")


def batch_checksum(x) -> int:
    """CRC32 of the parity batch's bytes: fixtures store it instead of the batch itself (a tuple: its arrays
    one after another, integer arrays as int32)."""
    if isinstance(x, tuple):
        return zlib.crc32(b"".join(np.ascontiguousarray(a, np.int32 if np.issubdtype(a.dtype, np.integer)
                                                        else np.float32).tobytes() for a in x))
    return zlib.crc32(np.ascontiguousarray(x, np.float32).tobytes())


def save_fingerprint(path, fp: dict) -> None:
    """Write a fingerprint compactly: sketches and noise scalars packed into a few arrays.

    (``np.savez`` costs a few hundred bytes per array; ResNet50 has ~500 sketches and ~800 noise scalars.)
    """
    sketches = {k: np.asarray(v, np.float32) for k, v in fp.items() if k.split(":", 1)[0] in _SKETCH_KINDS}
    noise = {k: float(v) for k, v in fp.items() if k.startswith("noise:")}
    width = max((len(v) for v in sketches.values()), default=0)
    table = np.zeros((len(sketches), width), np.float32)
    for row, value in enumerate(sketches.values()):
        table[row, :len(value)] = value
    np.savez_compressed(
        path,
        x_crc32=np.array(batch_checksum(fp["x"]), np.int64), y=fp["y"], logits=fp["logits"], loss=fp["loss"],
        sketch_keys=np.array(list(sketches), dtype=str), sketch_lengths=np.array([len(v) for v in sketches.values()]),
        sketches=table, noise_keys=np.array(list(noise), dtype=str), noise_values=np.array(list(noise.values())),
    )


def load_fingerprint(path) -> dict:
    """Read a fingerprint written by ``save_fingerprint`` (``x`` is replaced by its checksum ``x_crc32``)."""
    with np.load(path) as archive:
        data = {k: archive[k] for k in archive.files}
    fp = {"x_crc32": int(data["x_crc32"]), "y": data["y"], "logits": data["logits"], "loss": data["loss"]}
    for key, length, row in zip(data["sketch_keys"], data["sketch_lengths"], data["sketches"], strict=True):
        fp[str(key)] = row[:length]
    for key, value in zip(data["noise_keys"], data["noise_values"], strict=True):
        fp[str(key)] = np.array(value)
    return fp


def fingerprint_noise(fp: dict) -> dict[str, float]:
    """The float32 error envelope stored in a fingerprint (empty for fixtures written without one)."""
    return {key[len("noise:"):]: float(value) for key, value in fp.items() if key.startswith("noise:")}


FINGERPRINT_DIR = Path(__file__).resolve().parents[2] / "tests" / "parity"  # written by tests/parity_fixtures.py


def fingerprint_path(model_name, mode: Mode = DEFAULT_MODE) -> Path:
    """Where the PyTorch twin's committed fingerprint of ``model_name`` in ``mode`` lives (models without one have
    none): ``cifar_cnn.npz``, ``cifar_cnn__precision-mixed_bfloat16.npz`` (the mode's axes as in a cell's file id)."""
    axes = Cell(model_name, "torch", "torch", **dataclasses.asdict(mode)).axes
    return FINGERPRINT_DIR / ("__".join([model_name, *(f"{name}-{value}" for name, value in axes.items())]) + ".npz")


def committed_noise(model_name, mode: Mode = DEFAULT_MODE) -> dict[str, float] | None:
    """The model's error envelope in ``mode`` (float32's by default) from its committed PyTorch fingerprint (``None``
    without one): the same tolerances on every machine and in every environment."""
    path = fingerprint_path(model_name, mode)
    return fingerprint_noise(load_fingerprint(path)) if path.exists() else None


def compare_fingerprints(actual: dict, expected: dict, *, lr: float) -> None:
    """Assert two fingerprints (from ``fingerprint``) agree within the twin-check tolerances.

    The envelopes stored in either fingerprint (if any) widen the tolerances as in ``compare_twins``.
    """
    noise = combine_noise(fingerprint_noise(expected), fingerprint_noise(actual))
    _check_logits("logits", actual["logits"], expected["logits"], noise, "logits")
    loss_ref = float(expected["loss"])
    _check_close("loss", "cross-entropy", actual["loss"], loss_ref,
                 atol=tolerance(LOSS_ATOL + LOSS_RTOL * abs(loss_ref), noise, "loss"))
    for prefix in ("grad:", "state:"):
        names = sorted(k[len(prefix):] for k in expected if k.startswith(prefix))
        actual_names = sorted(k[len(prefix):] for k in actual if k.startswith(prefix))
        if names != actual_names:
            raise ParityError(f"{prefix[:-1]} names differ: {sorted(set(names) ^ set(actual_names))[:3]}")
    grad_names = sorted(k[5:] for k in expected if k.startswith("grad:"))
    zero_floor = ZERO_GRAD_REL * max((abs(float(expected[f"grad:{name}"][-2])) for name in grad_names), default=0.0)
    for name in grad_names:
        g_ref = expected[f"grad:{name}"]
        tensor_scale = float(np.abs(g_ref[:-2]).max(initial=0)) or 1.0
        _check_close("gradient", name, actual[f"grad:{name}"][:-2], g_ref[:-2],
                     atol=tolerance(max(GRAD_ATOL * tensor_scale, zero_floor), noise, f"grad:{name}"), rtol=GRAD_RTOL)
        _check_close("gradient norm", name, actual[f"grad:{name}"][-2], g_ref[-2],
                     atol=tolerance(max(1e-7, zero_floor), noise, f"gradnorm:{name}"), rtol=1e-3)
        if f"step:{name}" not in actual:  # no Adam step observed (tests/test_replicas.py: SGD read-backs)
            continue
        # The sampled weight changes, where the sampled gradient is clearly above Adam's epsilon and the noise.
        strong = np.abs(g_ref[:-2]) > STEP_GRAD_FLOOR + NOISE_FACTOR * noise.get(f"grad:{name}", 0.0)
        _check_close("step of", name, actual[f"step:{name}"][:-2][strong], expected[f"step:{name}"][:-2][strong],
                     atol=STEP_ATOL * lr)
    for name in sorted(k[6:] for k in expected if k.startswith("state:")):
        _check_close("state after one step", name, actual[f"state:{name}"][:-2], expected[f"state:{name}"][:-2],
                     atol=tolerance(STATE_ATOL, noise, f"state:{name}"), rtol=STATE_RTOL)
