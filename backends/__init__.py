"""Everything framework-specific at run time lives in this package.

- choosing the Keras backend *before* ``keras`` is imported (one backend per process), thread pools and CPUs
  (``twinbench.backends.process``);
- one ``Runner`` per implementation (``torch``, ``tf_keras``, ``keras``): device, seeding, TF32, sync,
  memory counters, weight loading and the training loop written the way that framework's users write it.

``bench/`` talks to frameworks only through ``get_runner`` and the ``Runner`` interface in ``twinbench.backends.base``.
Each runner imports the shared modules below it (``base``, ``process``, ``distributed``; ``keras_fit`` for the two
Keras runners), never another runner; ``get_runner`` is the one place that imports a runner, when it is asked for
one (a runner imports its framework).
"""

from __future__ import annotations

import sys

from twinbench.backends import distributed
from twinbench.backends.environments import BACKENDS
from twinbench.backends.modes import DEFAULT_MODE, SINGLE, Mode, Replication
from twinbench.backends.process import (
    FREE,
    BackendError,
    allow_native_frameworks_side_by_side,
    check_mode_here,
    cpu_list,
    framework_threads,
    keras_callback_threads,
    limit_threads,
    missing_packages,
    pin_cpus,
    resolve_backend,
    select_keras_backend,
)

# The package's face: what bench/ and the tests import from here (defined in the modules named above).
__all__ = ["BACKENDS", "FREE", "BackendError", "allow_native_frameworks_side_by_side", "check_mode_here", "cpu_list", "framework_threads", "get_runner",
           "keras_callback_threads", "limit_threads", "missing_packages", "pin_cpus", "resolve_backend",
           "select_keras_backend"]


def get_runner(implementation: str, backend: str | None = None, *, mode: Mode = DEFAULT_MODE,
               replication: Replication = SINGLE):
    """The ``Runner`` for ``implementation`` (on ``backend`` for the Keras 3 definition), running in ``mode``
    (``twinbench.backends.modes.Mode``: compilation, precision, layout; ``runner.setup`` checks that this machine can) on
    ``replication``'s replicas (``twinbench.backends.distributed``)."""
    backend = resolve_backend(implementation, backend)
    mode.check(implementation)
    replication.check(implementation, backend)
    distributed.prepare_process(backend, replication)
    # Every runner builds the Keras definition for the canonical weights, drawn with NumPy: the same on every Keras
    # backend. A native twin takes Keras as this process already has it (the natives environment's interleaved
    # process: keras on torch for both twins); Keras 3 itself runs on the backend it names.
    if implementation == "keras" or "keras" not in sys.modules:
        select_keras_backend(backend)
    replicas = distributed.start(implementation, backend, replication)
    if implementation == "torch":
        from twinbench.backends.torch_runner import TorchRunner

        runner = TorchRunner()
    elif implementation == "tf_keras":
        from twinbench.backends.tf_keras_runner import TfKerasRunner

        runner = TfKerasRunner()
    else:
        from twinbench.backends.keras_runner import KerasRunner

        runner = KerasRunner(backend)
    runner.mode = mode
    runner.replicas = replicas
    return runner
