"""The model registry: every model twinbench knows, and how to build each implementation of it.

Modelled on timm's registry (``register_model`` / ``create_model`` / ``list_models``): registering a
name twice is an error, and asking for an unknown name raises an error that lists the valid choices.

An *implementation* is one way of running a model:

- ``keras``    the single Keras 3 definition (runs on whichever ``KERAS_BACKEND`` the process chose),
- ``torch``    the native PyTorch twin (an ``nn.Module``; torchvision's builder where it has the model),
- ``tf_keras`` the native tf.keras twin (Keras 2, package ``tf-keras``).

Builders are imported lazily, so listing models never imports a framework.

Models from outside the repository join the registry the same way (``load_model_file``, ``external_models``): a
Python file that calls ``register_model`` (``python -m twinbench train --model FILE.py:NAME``, or the files listed in
``TWINBENCH_MODELS``), or an installed package's entry point in the group ``twinbench.models``, which names a module
that registers its models or a ``ModelSpec``. Their builders may be the functions themselves instead of
``"module:function"``.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import importlib.util
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from twinbench.models.choices import UnknownChoiceError, check_choice

IMPLEMENTATIONS = ("torch", "tf_keras", "keras")


@dataclass(frozen=True, kw_only=True)
class TwinCase:
    """The small case the twin tests run a model on (``twinbench.twins.parity``): small enough for a CPU.

    Attributes:
        input_shape: input shape ``(H, W, C)`` (other tasks: as ``twinbench.data.tasks`` defines it); ``None`` means the
            model's default.
        num_classes: number of classes; ``None`` means the model's default.
        batch: samples in the fixed batch (``twinbench.data.tasks.random_batch``).
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
        builders: implementation -> ``"module:function"`` (or, for a model from outside, the function); each function is keyword-only,
            ``build(*, input_shape, num_classes)``, and returns a model that outputs logits.
        input_shape: default input shape, channels last ``(H, W, C)``; for the other tasks what ``twinbench.data.tasks``
            says (e.g. ``(num_users, num_items)`` for recommendation).
        num_classes: default number of classes (the vocabulary of token tasks, 1 for recommendation).
        paper: where the architecture comes from.
        summary: one line for listings.
        params: parameter count at the default input shape and classes, BatchNorm statistics excluded
            (every implementation must have exactly this many).
        forward_flops: ``{"HxWxC": FLOPs per image}`` at the default classes (``twinbench.models.flops`` counts them);
            the default input shape is always one of the sizes.
        torch_keys: optional ``"module:function"`` returning ``{keras_weight_path: torch_state_key}``
            for a given list of Keras weight paths; by default ``conv1/kernel`` -> ``conv1.weight``.
        min_input_size: smallest spatial size the model accepts.
        head: Keras name of the classifier layer, whose weights keep their initial values when a
            checkpoint has another class count; ``None``: a checkpoint must fit the model exactly.
        twin_case: the twin tests' small case.
        data_formats: the image layouts the Keras definition can be built in (``--data-format``); inputs and
            weights stay channels last, the runner transposes them (``twinbench.backends.keras_runner``).
        task: what the model takes and is trained for, one of ``twinbench.data.tasks.TASKS``: the meaning of
            ``input_shape`` and ``num_classes``, the inputs (one array or a tuple), the loss, the metrics and the
            datasets it accepts (the first is its default).
        input_check: optional ``"module:function"`` called as ``function(name, input_shape)`` that raises a one-line
            ``ValueError`` for an input shape the model cannot take beyond ``min_input_size`` (the ViT: square, a
            multiple of the patch size), so that a run is refused before it starts.
        environments: the nox environments (named after their Keras backend) that install what the builders
            import; ``None``: every one. keras-hub's models build in the tensorflow environment only.
    """

    name: str
    builders: dict[str, str | Callable[..., Any]]
    input_shape: tuple[int, int, int]
    num_classes: int
    paper: str
    summary: str
    params: int
    forward_flops: dict[str, int]
    torch_keys: str | Callable[..., Any] | None = None
    min_input_size: int = 1
    head: str | None = None
    twin_case: TwinCase = field(default_factory=TwinCase)
    data_formats: tuple[str, ...] = ("channels_last",)
    task: str = "image_classification"
    input_check: str | Callable[..., Any] | None = None
    environments: tuple[str, ...] | None = None

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

    def builds_in(self, environment: str) -> bool:
        """Whether the environment named ``environment`` (a Keras backend) installs what the builders import."""
        return self.environments is None or environment in self.environments

    def builder(self, implementation: str) -> Callable[..., Any]:
        self.check_implementation(implementation)
        try:
            return _resolve(self.builders[implementation])
        except ModuleNotFoundError as error:
            if self.environments is None:
                raise
            raise UnknownChoiceError(
                f"Model {self.name!r} needs {error.name}, which twinbench installs in the "
                f"{' and '.join(self.environments)} environment only. Valid choices: KERAS_BACKEND="
                f"{' or '.join(self.environments)} (nox -s \"tests({self.environments[0]})\").") from None


_MODELS: dict[str, ModelSpec] = {}


def _resolve(target) -> Callable[..., Any]:
    if callable(target):  # a model from outside the repository may give the function itself
        return target
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
    """Names of all registered models, sorted (models from outside included: ``external_models``)."""
    external_models()
    return sorted(_MODELS)


def get_model_spec(name: str) -> ModelSpec:
    """The registered ``ModelSpec`` for ``name`` (or ``FILE.py:NAME``, which loads FILE first); unknown names list
    the valid ones."""
    if _is_file_reference(name):
        name = load_model_file(name)
    if name not in _MODELS:  # a built-in name never loads the user's files (the families ask while importing)
        check_choice("model", name, list_models())
    return _MODELS[name]


# -- models from outside the repository -------------------------------------------------------------------------
MODELS_VARIABLE = "TWINBENCH_MODELS"  # model files to load, separated by os.pathsep; child processes inherit it
ENTRY_POINT_GROUP = "twinbench.models"
_LOADED_FILES: dict[Path, set[str]] = {}  # each file is imported once: {file: the names it registered}
_LOADED_ENTRY_POINTS: list[bool] = []


def _is_file_reference(name: str) -> bool:
    return ":" in name and name.partition(":")[0].endswith(".py")


def load_model_file(reference: str) -> str:
    """Load ``FILE.py:NAME`` (a file that calls ``register_model``) and return NAME, the model's registry name.

    The file is added to ``TWINBENCH_MODELS``, so that the child processes of ``--env`` runs find the model too.
    """
    path_text, _, name = reference.partition(":")
    path = Path(path_text).resolve()
    if not path.is_file():
        raise UnknownChoiceError(f"Model file {path_text!r} does not exist (--model FILE.py:NAME).")
    registered = _load_file(path)
    if name not in registered:
        raise UnknownChoiceError(f"Model file {path_text!r} registers no model {name!r}. Valid choices: "
                                 f"{', '.join(sorted(registered)) or '(none: it must call twinbench.models.register_model)'}.")
    listed = [p for p in os.environ.get(MODELS_VARIABLE, "").split(os.pathsep) if p]
    if str(path) not in listed:
        os.environ[MODELS_VARIABLE] = os.pathsep.join([*listed, str(path)])
    return name


def _load_file(path: Path) -> set[str]:
    if path in _LOADED_FILES:
        return _LOADED_FILES[path]
    before = set(_MODELS)
    module_name = f"twinbench_models_{path.stem}"
    spec = importlib.util.spec_from_file_location(module_name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module  # "twinbench_models_<stem>:function" builders resolve
    try:
        spec.loader.exec_module(module)
    except Exception as err:  # the user's code: reported in one line
        del sys.modules[module_name]
        raise UnknownChoiceError(f"Model file {str(path)!r} could not be imported: {type(err).__name__}: "
                                 f"{' '.join(str(err).split())[:300]}") from None
    _LOADED_FILES[path] = set(_MODELS) - before
    return _LOADED_FILES[path]


def external_models() -> None:
    """Register the models of ``TWINBENCH_MODELS`` files and of ``twinbench.models`` entry points (once)."""
    for path_text in filter(None, os.environ.get(MODELS_VARIABLE, "").split(os.pathsep)):
        path = Path(path_text).resolve()
        if path.is_file():
            try:
                _load_file(path)
            except UnknownChoiceError as err:  # say where the file was named: the user did not type it here
                raise UnknownChoiceError(f"{err} (listed in {MODELS_VARIABLE})") from None
    if not _LOADED_ENTRY_POINTS:
        _LOADED_ENTRY_POINTS.append(True)
        for entry_point in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
            loaded = entry_point.load()  # a module that registers its models, or a ModelSpec
            if isinstance(loaded, ModelSpec) and loaded.name not in _MODELS:
                register_model(loaded)


def build_model(name: str, implementation: str, *, input_shape=None, num_classes=None, **options):
    """Build ``implementation`` of model ``name`` (defaults: the model's own input shape and classes).

    ``options`` are extra keyword arguments of the model's builders, the same for every implementation
    (e.g. ``dropout=0.0`` for VGG19 and MobileNetV2, as the twin tests use).
    The ``keras`` implementation needs the Keras backend chosen first (``twinbench.backends.select_keras_backend``).
    """
    spec = get_model_spec(name)
    input_shape = tuple(input_shape or spec.input_shape)
    num_classes = int(num_classes or spec.num_classes)
    check_input_shape(spec, input_shape)
    return spec.builder(implementation)(input_shape=input_shape, num_classes=num_classes, **options)


def check_input_shape(spec: ModelSpec, input_shape) -> None:
    """Raise ``ValueError`` (one line) if ``input_shape`` is not ``(H, W, C)`` or too small for the model."""
    if spec.task != "image_classification":
        if not input_shape or min(input_shape) < 1:
            raise ValueError(f"Model {spec.name!r} takes input_shape as its task {spec.task!r} defines it "
                             f"(twinbench.data.tasks). Received: input_shape={tuple(input_shape)}.")
        return
    if len(input_shape) != 3 or min(input_shape) < 1:
        raise ValueError(
            f"Model {spec.name!r} takes input_shape=(height, width, channels). Received: input_shape={tuple(input_shape)}."
        )
    if min(input_shape[:2]) < spec.min_input_size:
        raise ValueError(
            f"Model {spec.name!r} needs inputs of at least {spec.min_input_size}x{spec.min_input_size} pixels. "
            f"Received: input_shape={tuple(input_shape)}."
        )
    if spec.input_check is not None:
        _resolve(spec.input_check)(spec.name, tuple(input_shape))
