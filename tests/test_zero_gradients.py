"""Gradients that are zero up to float32 rounding are compared against the model's scale, real ones are not.

MobileNetV2's project BatchNorm shifts have an exactly-zero gradient (the next training-mode BatchNorm cancels
any constant shift through the linear convolution in between), so their computed values are rounding noise that
differs between two runs of the *same* implementation. No framework is needed here: fingerprints are built from
arrays.
"""

import numpy as np
import pytest

from twinbench.backends.tolerances import ZERO_GRAD_REL
from twinbench.twins.parity import ParityError, compare_fingerprints, sketch


def _fingerprint(grads):
    fp = {"logits": np.zeros((2, 3), np.float32), "loss": np.array(1.0, np.float32)}
    for name, grad in grads.items():
        fp[f"grad:{name}"] = sketch(name, grad)
        fp[f"step:{name}"] = sketch(name, np.zeros_like(grad))
    return fp


@pytest.fixture
def reference():
    rng = np.random.default_rng(0)
    return {"conv/kernel": rng.normal(0.0, 5.0, size=400), "project_bn/beta": rng.normal(0.0, 1e-7, size=16)}


def test_rounding_noise_in_a_zero_gradient_passes(reference):
    # Another run: the real gradient agrees to float32, the zero one is fresh rounding noise (norms ~4e-7 apart).
    rng = np.random.default_rng(1)
    other = {"conv/kernel": reference["conv/kernel"] * (1 + 1e-7),
             "project_bn/beta": rng.normal(0.0, 1e-7, size=16)}
    largest = np.linalg.norm(reference["conv/kernel"])
    assert np.abs(other["project_bn/beta"] - reference["project_bn/beta"]).max() < ZERO_GRAD_REL * largest
    compare_fingerprints(_fingerprint(other), _fingerprint(reference), lr=1e-3)


def test_a_real_difference_still_fails(reference):
    wrong_kernel = {**reference, "conv/kernel": reference["conv/kernel"] * 1.01}
    with pytest.raises(ParityError, match="conv/kernel"):
        compare_fingerprints(_fingerprint(wrong_kernel), _fingerprint(reference), lr=1e-3)
    # A shift gradient that is really there (1e-4, far above the floor) is not mistaken for noise.
    wrong_shift = {**reference, "project_bn/beta": reference["project_bn/beta"] + 1e-4}
    with pytest.raises(ParityError, match="project_bn/beta"):
        compare_fingerprints(_fingerprint(wrong_shift), _fingerprint(reference), lr=1e-3)
