"""The twins are the same network: parameter counts, logits, loss, gradients and one training step.

Parametrized over the registry, so every registered model is covered, and over the implementations
this test process can run (see conftest.py). In-process pairs (torch vs keras[torch], tf_keras vs
keras[tensorflow]) are compared tensor by tensor; every implementation is also compared with the
committed fingerprint of the PyTorch twin (tests/parity/), which ties keras[jax] in as well.
"""

from __future__ import annotations

import numpy as np
import pytest

from backends import get_runner
from bench.parity import compare_fingerprints, compare_twins, fingerprint
from conftest import BACKEND, IMPLEMENTATIONS_HERE, impl_id, requires_backend
from models import get_model_spec, list_models
from parity_fixtures import FIXTURE_SEED, fixture_path, parity_case, torch_fingerprint

pytestmark = requires_backend
MODELS = list_models()
NATIVE_HERE = [pair for pair in IMPLEMENTATIONS_HERE if pair[0] != "keras"]


def _prepared(implementation, backend, model_name):
    runner = get_runner(implementation, backend)
    runner.setup(seed=0)
    input_shape, num_classes, x, y = parity_case(model_name)
    model = runner.prepare(model_name, input_shape=input_shape, num_classes=num_classes, seed=FIXTURE_SEED)
    return runner, model, x, y


@pytest.mark.parametrize("pair", IMPLEMENTATIONS_HERE, ids=impl_id)
@pytest.mark.parametrize("model_name", MODELS)
def test_parameter_count_matches_registry(model_name, pair):
    spec = get_model_spec(model_name)
    runner = get_runner(*pair)
    model = runner.build(model_name, input_shape=spec.input_shape, num_classes=spec.num_classes)
    assert runner.count_params(model) == spec.extra["params"]


@pytest.mark.parametrize("pair", IMPLEMENTATIONS_HERE, ids=impl_id)
@pytest.mark.parametrize("model_name", MODELS)
def test_weights_round_trip_exactly(model_name, pair):
    runner, model, _, _ = _prepared(*pair, model_name)
    canonical = runner.canonical_weights(model_name, input_shape=parity_case(model_name)[0],
                                         num_classes=parity_case(model_name)[1], seed=FIXTURE_SEED)
    exported = runner.get_weights(model)
    assert set(exported) == set(canonical)
    for name, value in canonical.items():
        np.testing.assert_array_equal(exported[name], value, err_msg=name)


@pytest.mark.parametrize("pair", NATIVE_HERE, ids=impl_id)
@pytest.mark.parametrize("model_name", MODELS)
def test_native_twin_equals_keras_definition(model_name, pair):
    reference, ref_model, x, y = _prepared("keras", BACKEND, model_name)
    other, other_model, _, _ = _prepared(*pair, model_name)
    report = compare_twins(reference, ref_model, other, other_model, x=x, y=y)
    assert report.params["reference"] == report.params["other"]
    assert np.isfinite(report.loss[0]) and report.loss[0] == pytest.approx(report.loss[1], rel=1e-5)


@pytest.mark.parametrize("pair", IMPLEMENTATIONS_HERE, ids=impl_id)
@pytest.mark.parametrize("model_name", MODELS)
def test_matches_pytorch_twin_fingerprint(model_name, pair):
    path = fixture_path(model_name)
    assert path.exists(), f"no PyTorch fingerprint for {model_name}: run `nox -s parity_fixtures`"
    with np.load(path) as archive:
        expected = {k: archive[k] for k in archive.files}
    runner, model, x, y = _prepared(*pair, model_name)
    np.testing.assert_array_equal(expected["x"], x)  # the fixed batch itself has not changed
    compare_fingerprints(fingerprint(runner, model, x=x, y=y), expected, lr=1e-3)


@pytest.mark.skipif(BACKEND != "torch", reason="the PyTorch twin lives in the torch environment")
@pytest.mark.parametrize("model_name", MODELS)
def test_committed_fingerprint_is_current(model_name):
    """The fixture is regenerated from the PyTorch twin and compared with the committed file."""
    with np.load(fixture_path(model_name)) as archive:
        committed = {k: archive[k] for k in archive.files}
    compare_fingerprints(torch_fingerprint(model_name), committed, lr=1e-3)
