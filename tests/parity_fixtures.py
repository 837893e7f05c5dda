"""Fingerprints of the PyTorch twin, the reference that every other environment is compared with.

keras[jax] and keras[tensorflow] cannot share a process (or an environment) with PyTorch, so the torch
environment writes a small fingerprint per model (logits, loss, sampled gradients and one-step weight
changes for a fixed batch and the canonical weights) to ``tests/parity/<model>.npz``. The torch tests
check that the committed file still matches the PyTorch twin, so it cannot go stale silently.

Regenerate (torch environment):  nox -s parity_fixtures   or   KERAS_BACKEND=torch python -m tests.parity_fixtures
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

FIXTURE_DIR = Path(__file__).resolve().parent / "parity"
FIXTURE_SEED = 0


def parity_case(model_name):
    """(input_shape, num_classes, x, y) of the fixed parity batch of a model."""
    from bench.parity import parity_batch
    from models import get_model_spec

    spec = get_model_spec(model_name)
    input_shape = tuple(spec.extra.get("test_input_shape", spec.input_shape))
    num_classes = spec.extra.get("test_num_classes", spec.num_classes)
    x, y = parity_batch(input_shape, num_classes, batch=spec.extra.get("test_batch", 4))
    return input_shape, num_classes, x, y


def fixture_path(model_name) -> Path:
    return FIXTURE_DIR / f"{model_name}.npz"


def torch_fingerprint(model_name):
    from backends import get_runner
    from bench.parity import fingerprint

    runner = get_runner("torch")
    runner.setup(seed=0)
    input_shape, num_classes, x, y = parity_case(model_name)
    model = runner.prepare(model_name, input_shape=input_shape, num_classes=num_classes, seed=FIXTURE_SEED)
    return fingerprint(runner, model, x=x, y=y)


def main(names=None) -> int:
    from models import list_models

    FIXTURE_DIR.mkdir(exist_ok=True)
    for name in names or list_models():
        np.savez_compressed(fixture_path(name), **torch_fingerprint(name))
        print(f"wrote {fixture_path(name)}")
    return 0


if __name__ == "__main__":
    from backends import select_keras_backend

    select_keras_backend("torch")
    sys.exit(main(sys.argv[1:]))
