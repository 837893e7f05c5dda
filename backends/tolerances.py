"""How far two implementations' float32 numbers may honestly differ: the fixed tolerances, the noise floor's
factors and the two functions that apply them.

The twin check (``twinbench.twins.parity``, which explains the noise floor) holds twins to them, and the export check
(``twinbench.backends.export``) holds a reloaded artifact to the same logits tolerance: one table, below both.
Framework-free (NumPy only).
"""

from __future__ import annotations

import numpy as np

# Tolerances (float32 arithmetic, different kernels and summation orders).
LOGITS_ATOL = 1e-4  # times max |logit| of the reference
LOSS_ATOL, LOSS_RTOL = 1e-5, 1e-5
GRAD_RTOL, GRAD_ATOL = 1e-3, 1e-4  # atol times max |gradient| of the tensor
STATE_ATOL, STATE_RTOL = 1e-4, 1e-3  # non-trainable state after one step (BatchNorm statistics)
# Adam divides by sqrt(v) + eps, and Keras puts eps *outside* the bias correction ("epsilon hat") while
# PyTorch puts it inside: for gradients much larger than eps the first step is lr * sign(g) in both.
# With eps = 1e-8 the first Keras step is lr * g / (|g| + 3.2e-7), the PyTorch one lr * g / (|g| + 1e-8):
# above |g| = 5e-5 they agree within 0.7% of lr; below it only |Δw| <= lr is asserted.
STEP_ATOL = 2e-2  # times the learning rate, where |g| > STEP_GRAD_FLOOR (+ the tolerance factor x gradient noise)
STEP_GRAD_FLOOR = 5e-5

# How many times the reference twin's float32 error (against float64) another implementation's own may reach: other
# kernels and summation orders. Measured by `tools/investigations/float64_reference.py --compare` at the twin cases (docs/definition_effect.md):
# up to 8.9x (keras[tensorflow], ResNet50's layer4_1_conv1) and 7.2x for the implementations that have no float64
# copy to measure their own (keras[torch], tf_keras), so 15 leaves a margin of 1.7 for other CPUs.
OTHER_ERROR = 15.0
# Twins a and b must agree within |a - exact| + |b - exact|, where that exceeds the fixed tolerance: NOISE_FACTOR
# times the reference's error when one of them is the reference twin, NOISE_FACTOR_NEITHER when not.
NOISE_FACTOR = 1.0 + OTHER_ERROR
NOISE_FACTOR_NEITHER = 2 * OTHER_ERROR
# A gradient below this share of the model's largest gradient norm is zero up to float32 rounding: e.g. the shift
# (beta) of MobileNetV2's project BatchNorms, whose output reaches the next training-mode BatchNorm only through a
# linear convolution, so that BatchNorm subtracts any constant shift again (tools/investigations/float64_reference.py counts 17 such
# tensors). Its value is rounding noise that changes with the order of multi-threaded sums, run to run; it is
# compared against this floor instead of its own (meaningless) scale.
ZERO_GRAD_REL = 1e-8


def tolerance(fixed: float, noise: dict | None, key: str, report=None, *, factor: float = NOISE_FACTOR) -> float:
    """The tolerance of quantity ``key``: ``fixed``, or ``factor`` times its float32 error in ``noise`` (the noise
    floor, ``twinbench.twins.parity.float64_noise``) where that is larger; then ``report.noise_widened`` (a
    ``ParityReport``) names ``key``."""
    floor = factor * float((noise or {}).get(key, 0.0))
    if floor > fixed and report is not None:
        report.noise_widened.append(key)
    return max(fixed, floor)


def logits_tolerance(expected, noise=None, *, key="logits", report=None) -> float:
    """How far logits may differ: LOGITS_ATOL of their own largest value, or the noise floor if larger."""
    scale = float(np.abs(expected).max()) or 1.0
    return tolerance(LOGITS_ATOL * scale, noise, key, report)
