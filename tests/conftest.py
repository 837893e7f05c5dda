"""Test setup: one Keras backend per test process, chosen before anything imports keras; the two tiers.

Each nox environment runs the suite with its own ``KERAS_BACKEND``; the implementations that live in
that environment (``twinbench.backends.environments.ENVIRONMENTS``) are tested there.

Tests come in two tiers, as in keras-hub: the fast tier (``nox -s tests``) covers every implementation and mode,
the twins at small sizes; tests marked ``@pytest.mark.large`` (the biggest twins with their float64 copies, full-size
builds, child processes that start a framework) run only with ``--run-large`` (``nox -s tests_large`` runs just them).
Framework-free tests marked ``one_environment`` run in one environment only (``ONE_ENVIRONMENT``); docs/testing.md
lists what was trimmed to keep the fast tier within its budget and where each check went.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

# The twin checks compare definitions, so TensorFlow runs its reference CPU kernels: where TensorFlow turns on
# its oneDNN kernels by itself (CPUs with AVX512-VNNI/BF16 or AMX), their training-mode BatchNorm gradient of a
# near-degenerate channel is far from float64 (ResNet50 at 32x32: 0.043 where PyTorch's float32 error in that
# tensor is 0.006; bench/twins/parity.py, "the noise floor"), which would make the tests depend on the CPU.
# Benchmarks keep TensorFlow's default. Set before anything imports TensorFlow; subprocesses inherit it.
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")

from twinbench.backends import BACKENDS, select_keras_backend  # noqa: E402
from twinbench.backends.environments import ENVIRONMENTS, implementation_label  # noqa: E402

BACKEND = os.environ.get("KERAS_BACKEND") or next(
    (b for b in BACKENDS if importlib.util.find_spec(b) is not None), None
)
if BACKEND is not None:
    select_keras_backend(BACKEND)

# The implementations this process can run, as (implementation, backend) pairs: its environment's cells
# (twinbench.backends.environments.ENVIRONMENTS), tf_keras only where the tf-keras package is installed.
IMPLEMENTATIONS_HERE = [
    (implementation, backend) for implementation, backend in ENVIRONMENTS.get(BACKEND, ())
    if implementation != "tf_keras" or importlib.util.find_spec("tf_keras") is not None
]


def impl_id(pair):
    return implementation_label(*pair)


requires_backend = pytest.mark.skipif(BACKEND is None, reason="no Keras backend installed in this environment")


# The tiers (as keras-hub's `--run_large`): tests marked ``large`` run only with --run-large.
RUN_LARGE = "--run-large"


def pytest_addoption(parser):
    parser.addoption(RUN_LARGE, action="store_true", default=False,
                     help="also run the large tier (tests marked large: the biggest twins, child processes)")


# Tests marked ``one_environment`` import no framework and read or make up records (statistics, tables, reports): their
# result is the same in every environment, so one environment's fast tier runs them (the three would run them thrice).
ONE_ENVIRONMENT = "torch"


def pytest_collection_modifyitems(config, items):
    if BACKEND != ONE_ENVIRONMENT:
        elsewhere = pytest.mark.skip(reason=f"framework-free: the {ONE_ENVIRONMENT} environment runs it")
        for item in items:
            if item.get_closest_marker("one_environment") is not None:
                item.add_marker(elsewhere)
    if config.getoption(RUN_LARGE):
        return
    skip_large = pytest.mark.skip(reason=f"large tier: run with {RUN_LARGE} (nox -s tests_large)")
    for item in items:
        if item.get_closest_marker("large") is not None:
            item.add_marker(skip_large)
