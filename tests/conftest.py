"""Test setup: one Keras backend per test process, chosen before anything imports keras.

Each nox environment runs the suite with its own ``KERAS_BACKEND``; the implementations that live in
that environment (``bench.cell.ENVIRONMENTS``) are tested there.
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

from backends import BACKENDS, select_keras_backend  # noqa: E402
from bench.cell import ENVIRONMENTS, implementation_label  # noqa: E402

BACKEND = os.environ.get("KERAS_BACKEND") or next(
    (b for b in BACKENDS if importlib.util.find_spec(b) is not None), None
)
if BACKEND is not None:
    select_keras_backend(BACKEND)

# The implementations this process can run, as (implementation, backend) pairs: its environment's cells
# (bench.cell.ENVIRONMENTS), tf_keras only where the tf-keras package is installed.
IMPLEMENTATIONS_HERE = [
    (implementation, backend) for implementation, backend in ENVIRONMENTS.get(BACKEND, ())
    if implementation != "tf_keras" or importlib.util.find_spec("tf_keras") is not None
]


def impl_id(pair):
    return implementation_label(*pair)


requires_backend = pytest.mark.skipif(BACKEND is None, reason="no Keras backend installed in this environment")
