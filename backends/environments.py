"""The one table of which environment runs which (implementation, backend), their order in every table, and
their label ("keras[torch]"). Everything that names, orders or selects implementations asks this module.

It imports no framework: the runners, the cell (``twinbench.cell``) and the command line all read it.
"""

from __future__ import annotations

# The nox environments (one virtualenv each: the frameworks' pins conflict) and the cells each one runs, as
# (implementation, backend) in the order of every table. An environment is named after its Keras backend.
ENVIRONMENTS = {
    "torch": (("torch", "torch"), ("keras", "torch")),
    "tensorflow": (("tf_keras", "tensorflow"), ("keras", "tensorflow")),
    "jax": (("keras", "jax"),),
}
BACKENDS = tuple(ENVIRONMENTS)
# Every (implementation, backend) twinbench runs, in table order: torch, keras[torch], tf_keras, ...
ORDER = tuple(pair for pairs in ENVIRONMENTS.values() for pair in pairs)
# The backend each native twin shares its process (and its environment) with.
NATIVE_BACKEND = {implementation: backend for implementation, backend in ORDER if implementation != "keras"}

# An environment beside the three that installs both native frameworks (``nox -s natives``: PyTorch, TensorFlow and
# tf.keras side by side), so that the two native twins can be interleaved window by window in one process
# (``twinbench.measuring.interleave``) instead of alternated across processes. It runs only that: its cells are the
# two native twins, on the ``process="natives"`` axis (``twinbench.cell``), and they never pool with the others.
NATIVES = "natives"
NATIVE_PAIR = (("torch", "torch"), ("tf_keras", "tensorflow"))
# Every environment a run may name: the three above, and the native pair's.
RUN_ENVIRONMENTS = dict(ENVIRONMENTS, **{NATIVES: NATIVE_PAIR})


def implementation_label(implementation: str, backend: str) -> str:
    """``keras[jax]`` for the Keras 3 definition, the plain name for a native twin."""
    return f"keras[{backend}]" if implementation == "keras" else implementation


def order(implementation: str, backend: str) -> int:
    """The place of an (implementation, backend) in every table; unknown pairs go last."""
    pair = (implementation, backend)
    return ORDER.index(pair) if pair in ORDER else len(ORDER)


LABELS = tuple(implementation_label(*pair) for pair in ORDER)
