"""twinbench models: one Keras 3 definition per model, its PyTorch and tf.keras twins, and a registry.

>>> from twinbench.models import list_models, build_model
>>> list_models()                                   # doctest: +SKIP
['cifar_cnn', 'mnist_cnn', ...]
>>> build_model("cifar_cnn", "torch")               # doctest: +SKIP
"""

from twinbench.models._registry import (
    IMPLEMENTATIONS,
    ModelSpec,
    TwinCase,
    build_model,
    check_input_shape,
    external_models,
    get_model_spec,
    list_models,
    load_model_file,
    register_model,
)
from twinbench.models.choices import UnknownChoiceError, check_choice

# Importing a family registers its models (the families import no framework at module level).
from twinbench.models import small_cnn  # noqa: E402,F401  isort: skip
from twinbench.models import resnet, vgg, mobilenet_v2, kerasapps, vit  # noqa: E402,F401  isort: skip
from twinbench.models import alexnet, ncf, gnmt  # noqa: E402,F401  isort: skip
from twinbench.models import gpt2, kerashub  # noqa: E402,F401  isort: skip

__all__ = [
    "IMPLEMENTATIONS",
    "ModelSpec",
    "TwinCase",
    "UnknownChoiceError",
    "build_model",
    "check_choice",
    "check_input_shape",
    "external_models",
    "get_model_spec",
    "list_models",
    "load_model_file",
    "register_model",
]
