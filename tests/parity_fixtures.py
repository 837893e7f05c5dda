"""Fingerprints of the PyTorch twin, the reference that every other environment is compared with.

keras[jax] and keras[tensorflow] cannot share a process (or an environment) with PyTorch, so the torch
environment writes a small fingerprint per model (logits, loss, sampled gradients, one-step weight changes
and BatchNorm state for a fixed batch and the canonical weights, plus its float32 error against a float64 run
of the same computation, the envelope every environment's tolerances come from, see ``twinbench.twins.parity``) to
``tests/parity/<model>.npz``. The torch tests check that the committed file still
matches the PyTorch twin, so it cannot go stale silently. Models without a PyTorch twin (the
keras.applications variants) have no fixture.

Regenerate (torch environment):  nox -s parity_fixtures   or   KERAS_BACKEND=torch python -m tests.parity_fixtures
(model names to write only those; --dry-run lists the files).
"""

from __future__ import annotations

import argparse
import functools
import sys

from twinbench.backends.modes import DEFAULT_MODE, Mode
from twinbench.twins.parity import (  # noqa: F401  (parity_case is re-exported for the other tests)
    FINGERPRINT_DIR,
    TwinObservation,
    committed_noise,
    fingerprint_of,
    fingerprint_path,
    observe_twin,
    parity_case,
    parity_options,
    save_fingerprint,
)

FIXTURE_SEED = 0
# Fingerprints in other execution modes: the PyTorch twin under torch.autocast, its error against float64 the envelope
# that the twins' mixed-precision checks are measured against (tests/test_modes.py).
MODE_FIXTURES = {"cifar_cnn": (Mode(precision="mixed_bfloat16"),)}


def has_torch_twin(model_name) -> bool:
    from twinbench.models import get_model_spec

    return "torch" in get_model_spec(model_name).builders


fixture_path = fingerprint_path


@functools.lru_cache(maxsize=1)
def canonical(model_name):
    """The canonical weights of the parity case, drawn once per process (VGG19's take seconds to draw)."""
    from twinbench.backends import get_runner

    input_shape, num_classes, _, _ = parity_case(model_name)
    return get_runner("keras").canonical_weights(model_name, input_shape=input_shape, num_classes=num_classes,
                                                 seed=FIXTURE_SEED, options=parity_options(model_name))


def prepared(implementation, backend, model_name, *, weights=None):
    """(runner, model, x, y): ``implementation`` of ``model_name`` at its parity case, canonical weights."""
    from twinbench.backends import get_runner

    runner = get_runner(implementation, backend)
    runner.setup(seed=0)
    input_shape, num_classes, x, y = parity_case(model_name)
    model = runner.prepare(model_name, input_shape=input_shape, num_classes=num_classes, seed=FIXTURE_SEED,
                           weights=canonical(model_name) if weights is None else weights,
                           options=parity_options(model_name))
    return runner, model, x, y


@functools.lru_cache(maxsize=2)  # a native twin and the Keras definition of the model under test
def observed(implementation, backend, model_name) -> TwinObservation:
    """``twinbench.twins.parity.observe_twin`` with the canonical weights, once per process and implementation.

    The tolerances come from the committed fingerprint's float64 envelope; a model without a PyTorch twin
    takes them from its Keras definition run in float64 here (TensorFlow computes it; the native twin is then
    observed after the Keras definition). An implementation with a float64 copy (the PyTorch twin, Keras on every
    backend; not tf.keras) also brings its own float32 error and that copy's result (``TwinObservation.own_noise``,
    ``exact``).
    """
    noise = committed_noise(model_name)
    if noise is None and implementation != "keras":
        noise = observed("keras", backend, model_name).noise
    # Every implementation brings its own float32 error (its float64 copy), the PyTorch twin too: the committed envelope
    # is the reference's error on the machine that wrote it, and another CPU's kernels (AVX2 instead of AVX-512: other
    # convolution algorithms) land further from float64 (vgg19's first bias gradient: 30x), so each machine's own error
    # widens the tolerance where it is larger, and the float64 copy must itself be the fingerprint's network.
    return observe_twin(implementation, backend, model_name, weights=canonical(model_name), noise=noise,
                        float64=True)


def torch_fingerprint(model_name, mode=DEFAULT_MODE):
    """The PyTorch twin's fingerprint in ``mode`` with its error (float32's, or the mode's), measured here against
    its float64 copy."""
    result = observe_twin("torch", "torch", model_name, weights=canonical(model_name), mode=mode)
    return fingerprint_of(result.observation, x=result.x, y=result.y, noise=result.noise)


def main(argv=None) -> int:
    from twinbench.models import UnknownChoiceError, check_choice, list_models

    parser = argparse.ArgumentParser(prog="python -m tests.parity_fixtures",
                                     description="Write the PyTorch twin's fingerprints to tests/parity/ "
                                                 "(torch environment; nox -s parity_fixtures).")
    parser.add_argument("models", nargs="*", metavar="MODEL",
                        help="the models to write (default: every model with a PyTorch twin)")
    parser.add_argument("--dry-run", action="store_true", help="list the files it would write; compute nothing")
    args = parser.parse_args(argv)
    try:
        for name in args.models:
            check_choice("model", name, list_models())
    except UnknownChoiceError as err:
        parser.error(str(err))
    for name in args.models or [m for m in list_models() if has_torch_twin(m)]:
        if not has_torch_twin(name):
            print(f"skipped {name}: no PyTorch twin")
            continue
        for mode in (DEFAULT_MODE, *MODE_FIXTURES.get(name, ())):
            path = fixture_path(name, mode)
            if args.dry_run:
                print(f"would write {path}")
                continue
            FINGERPRINT_DIR.mkdir(exist_ok=True)
            save_fingerprint(path, torch_fingerprint(name, mode))
            print(f"wrote {path} ({path.stat().st_size:,} bytes)")
    return 0


if __name__ == "__main__":
    from twinbench.backends import select_keras_backend

    select_keras_backend("torch")
    sys.exit(main())
