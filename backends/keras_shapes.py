"""The Keras 3 definition with the shapes of its weights and none of their values: what the Keras 3 runner counts
parameters on (``KerasRunner.build_shapes``), what the PyTorch runner reads its twin's weight layout from
(``TorchRunner.build``) and what the canonical weights are drawn for (``Runner.canonical_weights``). Keras is
imported when the context is entered: the backend is chosen by then.
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


def keras_definition_shapes(model_name, *, input_shape, num_classes, **options):
    """The Keras 3 definition of ``model_name`` built inside ``shapes_only``: its weights' paths, shapes and
    initializers, none drawn (on JAX a full MobileNetV2 build draws for seconds). Built in full where the definition
    creates a variable that Keras cannot defer (keras-hub's ViT makes one outside ``add_weight``)."""
    from twinbench.models import build_model

    try:
        with shapes_only():
            return build_model(model_name, "keras", input_shape=input_shape, num_classes=num_classes, **options)
    except ValueError as error:
        if "while in a stateless scope" not in str(error):
            raise
    return build_model(model_name, "keras", input_shape=input_shape, num_classes=num_classes, **options)
