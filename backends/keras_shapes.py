"""The Keras 3 definition with the shapes of its weights and none of their values: what the Keras 3 runner counts
parameters on (``KerasRunner.build_shapes``) and what the PyTorch runner reads its twin's weight layout from
(``TorchRunner.build``). Keras is imported when the context is entered: the backend is chosen by then.
"""

from __future__ import annotations

import contextlib


@contextlib.contextmanager
def shapes_only():
    """Keras variables created inside are deferred and stay so: a shape and an initializer that never runs (a
    ``keras.StatelessScope`` that does not initialise them on exit), for a model of which only the weights' shapes
    and the graph are read: counting parameters, the PyTorch twin's weight layout (``TorchRunner.build``)."""
    import keras
    from keras.src.backend.common import global_state  # where Keras lists deferred variables (no public API)

    pending = list(global_state.get_global_attribute("uninitialized_variables") or [])
    try:
        with keras.StatelessScope(initialize_variables=False):
            yield
    finally:  # these variables are never initialised: a later scope's exit must not draw them after all
        global_state.set_global_attribute("uninitialized_variables", pending)
