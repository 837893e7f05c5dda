"""``twinbench breakdown`` and ``twinbench calls`` run, and the breakdown is held to a known cause: a delay injected into
Keras' argument binding (``inspect.Signature.bind``, which ``keras/src/layers/layer.py``'s ``CallSpec`` runs on every
layer call) shows up as that delay x its calls in the group "argument binding", within its CI. The runs of whole
cells are ``large`` (tens of seconds on a shared CPU: ``pytest --run-large``, ``nox -s tests_large``)."""

from __future__ import annotations

import inspect
import sys
import time

import pytest

from conftest import BACKEND, IMPLEMENTATIONS_HERE
from twinbench.backends.layer_calls import LAYERS
from twinbench.cell import Cell
from twinbench.measuring.breakdown import BreakdownConfig, execute_breakdown
from twinbench.measuring.calls import MODEL, CallsConfig, execute_calls
from twinbench.results.breakdown import breakdown_section, calls_section, difference_line

DELAY_S = 200e-6
SMALL = {"batch_size": 2, "steps": 2, "repeats": 6, "warmup": 2}


class _Delayed:
    """``Signature.bind`` with a busy wait of ``DELAY_S`` first; counts the calls made while a profiler runs and
    the seconds they waited."""

    def __init__(self):
        self.original = inspect.Signature.bind
        self.profiled_calls, self.waited_s = 0, 0.0

    def __call__(self, signature, *args, **kwargs):
        started = time.perf_counter()
        while time.perf_counter() - started < DELAY_S:
            pass
        if sys.getprofile() is not None:
            self.profiled_calls += 1
            self.waited_s += time.perf_counter() - started
        return self.original(signature, *args, **kwargs)


def _run(impl: str, backend: str) -> dict:
    return execute_breakdown(BreakdownConfig(Cell("cifar_cnn", impl, backend, "synthetic"), **SMALL))


@pytest.mark.large
@pytest.mark.skipif(BACKEND != "torch", reason="keras[torch]: the torch environment")
def test_an_injected_delay_lands_in_its_group(monkeypatch):
    plain = _run("keras", "torch")
    delayed = _Delayed()

    def bind(signature, *args, **kwargs):
        return delayed(signature, *args, **kwargs)

    monkeypatch.setattr(inspect.Signature, "bind", bind)
    slow = _run("keras", "torch")
    monkeypatch.undo()

    steps = SMALL["repeats"] * SMALL["steps"]
    expected_ms = 1e3 * delayed.waited_s / steps
    assert delayed.profiled_calls / steps >= 5  # a layer call each: cifar_cnn's layers, every step
    with_delay = slow["breakdown"]["groups"]["argument binding"]["ms_per_step"]
    without = plain["breakdown"]["groups"]["argument binding"]["ms_per_step"]
    # The profiler's own cost of the wrapper's calls (the wrapper, its waits' perf_counter calls are wall time).
    slack = 1e-3 * slow["profiler"]["cost_per_call_us"]["ci_high"] * 4 * delayed.profiled_calls / steps
    # The CIs are of the windows' medians, the expected wait is the mean over every window: 2% more either way (on
    # one run of the large tier the expectation fell 0.05% below the interval).
    margin = 0.02 * expected_ms
    low = with_delay["ci_low"] - without["ci_high"] - slack - margin
    high = with_delay["ci_high"] - without["ci_low"] + slack + margin
    assert low <= expected_ms <= high, (expected_ms, low, high)
    other = slow["breakdown"]["groups"].get("other", {"ms_per_step": {"median": 0.0}})["ms_per_step"]["median"]
    assert other < 0.1 * expected_ms
    assert slow["breakdown"]["counts_per_step"]["layer calls"] == plain["breakdown"]["counts_per_step"]["layer calls"]
    assert "layer-call machinery" in difference_line(slow, plain)
    assert "argument binding" not in breakdown_section([slow])  # families there; groups in the record


@pytest.mark.large
@pytest.mark.skipif(BACKEND != "torch", reason="the torch environment")
def test_the_native_twin_has_its_own_groups():
    record = _run("torch", "torch")
    groups = record["breakdown"]["groups"]
    assert "nn.Module __call__ and hooks" in groups and "native ops (kernels, C++)" in groups
    assert record["breakdown"]["counts_per_step"]["layer calls"] >= 5
    assert record["profiler"]["cost_per_call_us"]["median"] > 0


def _calls(impl, backend, layers):
    return execute_calls(CallsConfig(Cell(MODEL, impl, backend, "synthetic"), layers=layers, batches=(1, 2),
                                     repeats=2, warmup=1, sample_s=1e-4, max_calls=3, compiled=True))


@pytest.mark.skipif(BACKEND != "torch", reason="the torch environment")
@pytest.mark.parametrize("impl", ["torch", "keras"])
def test_calls_runs_every_layer_in_torch(impl):
    record = _calls(impl, "torch", tuple(LAYERS))
    assert {row["layer"] for row in record["rows"]} == set(LAYERS)
    assert len(record["fits"]) == 2 * len(LAYERS)
    assert all(row["us_per_call"]["median"] > 0 for row in record["rows"])
    assert "compiled: not run" in record["note"]
    assert "Conv2D" in calls_section([record])


@pytest.mark.skipif(BACKEND not in ("tensorflow", "jax"), reason="the tensorflow and jax environments")
@pytest.mark.parametrize("impl", ["keras", "tf_keras"])
def test_calls_runs_one_layer_in_this_backend(impl):
    if impl == "tf_keras" and (impl, BACKEND) not in IMPLEMENTATIONS_HERE:
        pytest.skip("tf_keras: the tensorflow environment")
    # jax: Conv2D too, whose call takes no `training` (stateless_call would pass it on, where Layer.__call__ drops it)
    record = _calls(impl, BACKEND, ("Dense", "Conv2D") if BACKEND == "jax" else ("Dense",))
    assert {row["compiled"] for row in record["rows"]} == {False, True}
    assert {fit["pass"] for fit in record["fits"]} == {"forward", "backward"}
