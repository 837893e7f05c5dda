"""The model registry: every model twinbench knows, and how to build each implementation of it.

Modelled on timm's registry (``register_model`` / ``create_model`` / ``list_models``): registering a
name twice is an error, and asking for an unknown name raises an error that lists the valid choices.

An *implementation* is one way of running a model:

- ``keras``    the single Keras 3 definition (runs on whichever ``KERAS_BACKEND`` the process chose),
- ``torch``    the native PyTorch twin (an ``nn.Module``; torchvision's builder where it has the model),
- ``tf_keras`` the native tf.keras twin (Keras 2, package ``tf-keras``).

Builders are imported lazily, so listing models never imports a framework.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from models.choices import UnknownChoiceError, check_choice

IMPLEMENTATIONS = ("torch", "tf_keras", "keras")


@dataclass(frozen=True, kw_only=True)
class TwinCase:
    """The small case the twin tests run a model on (``bench.twins.parity``): small enough for a CPU.

    Attributes:
        input_shape: input shape ``(H, W, C)``; ``None`` means the model's default.
        num_classes: number of classes; ``None`` means the model's default.
        batch: images in the fixed batch.
        options: builder options the twin tests use, the same for every implementation, e.g.
            ``{"dropout": 0.0}`` (dropout masks cannot match across frameworks).
    """

    input_shape: tuple[int, int, int] | None = None
    num_classes: int | None = None
    batch: int = 4
    options: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, kw_only=True)
class ModelSpec:
    """Everything the rest of twinbench needs to know about one registered model.

    Every field is typed and fixed: an unknown keyword is a ``TypeError``, so metadata cannot hide under a
    misspelt key, and ``tests/test_registry.py`` checks that every registered model fills the fields with
    valid values.

    Attributes:
        name: registry name, e.g. ``"cifar_cnn"``.
        builders: implementation -> ``"module:function"``; each function is keyword-only,
            ``build(*, input_shape, num_classes)``, and returns a model that outputs logits.
        input_shape: default input shape, channels last ``(H, W, C)``.
        num_classes: default number of classes.
        paper: where the architecture comes from.
        summary: one line for listings.
        params: parameter count at the default input shape and classes, BatchNorm statistics excluded
            (every implementation must have exactly this many).
        forward_flops: ``{"HxWxC": FLOPs per image}`` at the default classes (``models.flops`` counts them);
            the default input shape is always one of the sizes.
        torch_keys: optional ``"module:function"`` returning ``{keras_weight_path: torch_state_key}``
            for a given list of Keras weight paths; by default ``conv1/kernel`` -> ``conv1.weight``.
        min_input_size: smallest spatial size the model accepts.
        head: Keras name of the classifier layer, whose weights keep their initial values when a
            checkpoint has another class count; ``None``: the model cannot load checkpoints.
        twin_case: the twin tests' small case.
        data_formats: the image layouts the Keras definition can be built in (``--data-format``); inputs and
            weights stay channels last, the runner transposes them (``backends.keras_runner``).
    """

    name: str
    builders: dict[str, str]
    input_shape: tuple[int, int, int]
    num_classes: int
    paper: str
    summary: str
    params: int
    forward_flops: dict[str, int]
    torch_keys: str | None = None
    min_input_size: int = 1
    head: str | None = None
    twin_case: TwinCase = field(default_factory=TwinCase)
    data_formats: tuple[str, ...] = ("channels_last",)

    def check_data_format(self, data_format: str) -> None:
        """Raise ``UnknownChoiceError`` unless the Keras definition can be built in ``data_format``."""
        if data_format not in self.data_formats:
            raise UnknownChoiceError(
                f"Model {self.name!r} has no {data_format} Keras definition. Valid choices: "
                f"{', '.join(self.data_formats)}.")

    def check_implementation(self, implementation: str) -> None:
        """Raise ``UnknownChoiceError`` unless this model has ``implementation``."""
        check_choice("implementation", implementation, IMPLEMENTATIONS)
        if implementation not in self.builders:
            raise UnknownChoiceError(
                f"Model {self.name!r} has no {implementation!r} implementation. "
                f"Valid choices: {', '.join(self.builders)}."
            )

    def builder(self, implementation: str) -> Callable[..., Any]:
        self.check_implementation(implementation)
        return _resolve(self.builders[implementation])


_MODELS: dict[str, ModelSpec] = {}


def _resolve(target: str) -> Callable[..., Any]:
    module_name, _, attr = target.partition(":")
    return getattr(importlib.import_module(module_name), attr)


def register_model(spec: ModelSpec) -> ModelSpec:
    """Add ``spec`` to the registry; a name can be registered only once."""
    if spec.name in _MODELS:
        raise ValueError(f"Model {spec.name!r} is already registered.")
    for implementation in spec.builders:
        check_choice("implementation", implementation, IMPLEMENTATIONS)
    _MODELS[spec.name] = spec
    return spec


def list_models() -> list[str]:
    """Names of all registered models, sorted."""
    return sorted(_MODELS)


def get_model_spec(name: str) -> ModelSpec:
    """The registered ``ModelSpec`` for ``name``; unknown names list the valid ones."""
    check_choice("model", name, list_models())
    return _MODELS[name]


def build_model(name: str, implementation: str, *, input_shape=None, num_classes=None, **options):
    """Build ``implementation`` of model ``name`` (defaults: the model's own input shape and classes).

    ``options`` are extra keyword arguments of the model's builders, the same for every implementation
    (e.g. ``dropout=0.0`` for VGG19 and MobileNetV2, as the twin tests use).
    The ``keras`` implementation needs the Keras backend chosen first (``backends.select_keras_backend``).
    """
    spec = get_model_spec(name)
    input_shape = tuple(input_shape or spec.input_shape)
    num_classes = int(num_classes or spec.num_classes)
    check_input_shape(spec, input_shape)
    return spec.builder(implementation)(input_shape=input_shape, num_classes=num_classes, **options)


def check_input_shape(spec: ModelSpec, input_shape) -> None:
    """Raise ``ValueError`` (one line) if ``input_shape`` is not ``(H, W, C)`` or too small for the model."""
    if len(input_shape) != 3 or min(input_shape) < 1:
        raise ValueError(
            f"Model {spec.name!r} takes input_shape=(height, width, channels). Received: input_shape={tuple(input_shape)}."
        )
    if min(input_shape[:2]) < spec.min_input_size:
        raise ValueError(
            f"Model {spec.name!r} needs inputs of at least {spec.min_input_size}x{spec.min_input_size} pixels. "
            f"Received: input_shape={tuple(input_shape)}."
        )
