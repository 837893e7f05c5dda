"""twinbench: one Keras 3 model definition, its native PyTorch and tf.keras twins, proven identical, benchmarked
fairly. Run it as ``twinbench`` or ``python -m twinbench``.

The public API, importable from here (each name loads its module on first use, so ``import twinbench`` imports
no framework and no model):

>>> import twinbench
>>> twinbench.list_models()                                   # doctest: +SKIP
['alexnet', 'cifar_cnn', ...]
>>> report = twinbench.check(my_keras_builder, my_torch_builder, input_shape=(32, 32, 3), num_classes=10)  # doctest: +SKIP
>>> records, skipped = twinbench.load_records("results/train")  # doctest: +SKIP

The package's parts, one job each, in layers: a part imports its own layer and those below it, never one above,
and nothing imports in a circle (tests/test_structure.py proves it over every module, and holds the table):

0. ``models``: each model's Keras 3 definition, its twins and the registry;
1. ``data``: the datasets and the shared batch order;
2. ``backends``: everything framework-specific at run time: the runners and what they share (the process's
   backend and threads, the modes, the replicas, the float32 tolerances, the profilers' op intervals); a runner
   imports the shared modules, never another runner;
3. ``cell``, ``records``: what a run is (its cell) and what it leaves (its record); with them ``ops`` (a record's op
   table: which op is which kind of work), ``causes`` (a profile's functions by cause: the one group table) and
   ``stats`` (medians, spreads and intervals: a record's figures);
4. ``measuring``: runs a cell in this process and measures it (timing, profiler, environment, FLOP/s); beside it
   ``twins``: the twin checks (``parity``), the check of your own pair (``own_pair``) and the teaching pages, which
   run twins through the runners as measuring runs cells;
5. ``results``: decomposition, tables, report and figures from records; imports no framework;
6. ``studies``: one-off questions that measure and then analyse (the definition effect, the profiler's own cost);
7. ``cli``: ``python -m twinbench``: parses, checks the input, delegates, sets the exit code.
"""

from __future__ import annotations

import importlib

# The public API: name -> the module that defines it.
_PUBLIC = {
    "check": "twinbench.twins.own_pair",              # is your Keras model the same network as your PyTorch one?
    "ModelSpec": "twinbench.models",                  # a model's entry in the registry
    "TwinCase": "twinbench.models",
    "register_model": "twinbench.models",
    "list_models": "twinbench.models",
    "get_model_spec": "twinbench.models",
    "build_model": "twinbench.models",                # build a registered model in one implementation
    "load_model_file": "twinbench.models",
    "load_records": "twinbench.records",              # read a results directory: (records, skipped files)
    "read_record": "twinbench.records",
    "UnknownChoiceError": "twinbench.models",
}

__all__ = sorted(_PUBLIC)


def __getattr__(name: str):
    if name not in _PUBLIC:
        raise AttributeError(f"module 'twinbench' has no attribute {name!r}")
    return getattr(importlib.import_module(_PUBLIC[name]), name)


def __dir__() -> list[str]:
    return sorted([*globals(), *_PUBLIC])
