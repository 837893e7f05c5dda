"""The twin check: two implementations of one model, same weights, same batch -> same numbers.

Compared, in float32 with TF32 off, each against an asserted tolerance:

1. parameter counts (exactly);
2. logits in inference mode;
3. the mean cross-entropy and every gradient in training mode;
4. the weights after one optimizer step through each implementation's real training path.

A mismatch raises ``ParityError`` naming the first tensor that differs and by how much. The same
functions produce the small "fingerprints" stored in ``tests/parity/`` so that implementations that
cannot share a process (keras[jax] and the PyTorch twin) are still compared.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field

import numpy as np

from backends.base import TrainConfig

# Tolerances (float32 arithmetic, different kernels and summation orders).
LOGITS_ATOL = 1e-4  # times max(1, max |logit|)
GRAD_RTOL, GRAD_ATOL = 1e-3, 1e-4  # atol times max |gradient| of the tensor
# Adam divides by sqrt(v) + eps, and Keras puts eps *outside* the bias correction ("epsilon hat") while
# PyTorch puts it inside: for gradients much larger than eps the first step is lr * sign(g) in both.
# With eps = 1e-8 the first Keras step is lr * g / (|g| + 3.2e-7), the PyTorch one lr * g / (|g| + 1e-8):
# above |g| = 5e-5 they agree within 0.7% of lr; below it only |Δw| <= lr is asserted.
STEP_ATOL = 2e-2  # times the learning rate, where |g| > STEP_GRAD_FLOOR
STEP_GRAD_FLOOR = 5e-5


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


def parity_batch(input_shape, num_classes, *, batch=4, seed=1234):
    """The fixed batch every twin check uses."""
    rng = np.random.default_rng(seed)
    x = rng.uniform(0.0, 1.0, (batch, *input_shape)).astype(np.float32)
    y = rng.integers(0, num_classes, batch).astype(np.int64)
    return x, y


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


def check_step(name, before, after, after_ref, grad_ref, lr):
    """One optimizer step: weight changes agree where the gradient is well above Adam's epsilon."""
    delta, delta_ref = np.asarray(after, np.float64) - before, np.asarray(after_ref, np.float64) - before
    g = np.abs(np.asarray(grad_ref, np.float64))
    strong = g > STEP_GRAD_FLOOR
    worst = _check_close("step of", name, delta[strong], delta_ref[strong], atol=STEP_ATOL * lr)
    if np.abs(delta).max(initial=0) > lr * 1.001 + 1e-12:
        raise ParityError(f"step of {name!r} moved a weight by {np.abs(delta).max():.3g} > lr = {lr}")
    return worst


def compare_twins(reference, ref_model, other, other_model, *, x, y, config=None) -> ParityReport:
    """Assert that ``other_model`` (run by ``other``) equals ``ref_model`` (run by ``reference``).

    Both models must already hold the same weights. Raises ``ParityError`` on the first difference.
    """
    config = config or TrainConfig()
    report = ParityReport()
    report.params = {"reference": reference.count_params(ref_model), "other": other.count_params(other_model)}
    if report.params["reference"] != report.params["other"]:
        raise ParityError(f"parameter counts differ: {report.params['other']:,} vs {report.params['reference']:,}")

    logits_ref, logits = reference.predict(ref_model, x), other.predict(other_model, x)
    scale = max(1.0, float(np.abs(logits_ref).max()))
    report.max_abs_logits = _check_close("logits", "output", logits, logits_ref, atol=LOGITS_ATOL * scale)

    loss_ref, grads_ref = reference.loss_and_grads(ref_model, x, y)
    loss, grads = other.loss_and_grads(other_model, x, y)
    report.loss = (loss, loss_ref)
    _check_close("loss", "cross-entropy", loss, loss_ref, atol=1e-5, rtol=1e-5)
    if set(grads) != set(grads_ref):
        missing = sorted(set(grads_ref) ^ set(grads))[0]
        raise ParityError(f"gradient {missing!r} exists in only one implementation")
    for name in grads_ref:
        tensor_scale = float(np.abs(grads_ref[name]).max()) or 1.0
        diff = _check_close("gradient", name, grads[name], grads_ref[name],
                            atol=GRAD_ATOL * tensor_scale, rtol=GRAD_RTOL)
        report.max_rel_grad = max(report.max_rel_grad, diff / tensor_scale)

    before = reference.get_weights(ref_model)
    reference.train_step(ref_model, x, y, config)
    other.train_step(other_model, x, y, config)
    after_ref, after = reference.get_weights(ref_model), other.get_weights(other_model)
    for name in before:
        if name in grads_ref:
            report.max_step = max(report.max_step, check_step(name, before[name], after[name], after_ref[name],
                                                              grads_ref[name], config.learning_rate))
        else:  # non-trainable state, e.g. BatchNorm moving statistics
            _check_close("state after one step", name, after[name], after_ref[name], atol=1e-4, rtol=1e-3)
    return report


# -- fingerprints: compare across processes/environments --------------------------------------------------

def sketch(name: str, tensor, *, k: int = 64) -> np.ndarray:
    """A small fingerprint of a tensor: k fixed elements (chosen by name), its L2 norm and its sum."""
    flat = np.asarray(tensor, np.float64).ravel()
    rng = np.random.default_rng(zlib.crc32(name.encode()))
    idx = rng.choice(flat.size, size=min(k, flat.size), replace=False)
    return np.concatenate([flat[idx], [np.linalg.norm(flat), flat.sum()]])


def fingerprint(runner, model, *, x, y, config=None) -> dict[str, np.ndarray]:
    """Logits, loss, gradient sketches and one-step weight sketches of one implementation."""
    config = config or TrainConfig()
    out = {"x": x, "y": y, "logits": runner.predict(model, x)}
    loss, grads = runner.loss_and_grads(model, x, y)
    out["loss"] = np.array(loss)
    before = runner.get_weights(model)
    runner.train_step(model, x, y, config)
    after = runner.get_weights(model)
    for name, g in grads.items():
        out[f"grad:{name}"] = sketch(name, g)
        out[f"step:{name}"] = sketch(name, after[name] - before[name])
        out[f"gradabs:{name}"] = sketch(name, np.abs(g))
    return out


def compare_fingerprints(actual: dict, expected: dict, *, lr: float) -> None:
    """Assert two fingerprints (from ``fingerprint``) agree within the twin-check tolerances."""
    scale = max(1.0, float(np.abs(expected["logits"]).max()))
    _check_close("logits", "output", actual["logits"], expected["logits"], atol=LOGITS_ATOL * scale)
    _check_close("loss", "cross-entropy", actual["loss"], expected["loss"], atol=1e-5, rtol=1e-5)
    grad_names = sorted(k[5:] for k in expected if k.startswith("grad:"))
    actual_names = sorted(k[5:] for k in actual if k.startswith("grad:"))
    if grad_names != actual_names:
        raise ParityError(f"gradient names differ: {sorted(set(grad_names) ^ set(actual_names))[:3]}")
    for name in grad_names:
        g_ref = expected[f"grad:{name}"]
        tensor_scale = float(np.abs(g_ref[:-2]).max(initial=0)) or 1.0
        _check_close("gradient", name, actual[f"grad:{name}"][:-2], g_ref[:-2],
                     atol=GRAD_ATOL * tensor_scale, rtol=GRAD_RTOL)
        _check_close("gradient norm", name, actual[f"grad:{name}"][-2], g_ref[-2], atol=1e-7, rtol=1e-3)
        # The sampled weight changes, where the sampled gradient is clearly above Adam's epsilon.
        g_abs = expected[f"gradabs:{name}"][:-2]
        strong = g_abs > STEP_GRAD_FLOOR
        _check_close("step of", name, actual[f"step:{name}"][:-2][strong], expected[f"step:{name}"][:-2][strong],
                     atol=STEP_ATOL * lr)
