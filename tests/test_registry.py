"""The model registry's metadata: fixed, typed fields that every registered model fills with valid values.

Modelled on torchvision's test of its weights' meta keys: a new piece of metadata is a new field of
``ModelSpec`` (and a line here), never a free key. Needs no framework: it runs in every environment. That the
values are right is asserted where they are used: parameter counts in test_parity.py, FLOPs in test_flops.py,
the twin case by the twin tests, a head by loading checkpoints (test_checkpoints.py).
"""

from __future__ import annotations

import dataclasses

import pytest

from twinbench.backends.environments import ENVIRONMENTS
from twinbench.backends.modes import MODE_CHOICES
from twinbench.data.tasks import TASKS
from twinbench.models import (
    IMPLEMENTATIONS,
    ModelSpec,
    TwinCase,
    UnknownChoiceError,
    check_input_shape,
    get_model_spec,
    list_models,
)

MODELS = list_models()

# Every field of ModelSpec and of its twin case: a field added or renamed must be checked below too.
SPEC_FIELDS = {"name", "builders", "input_shape", "num_classes", "paper", "summary", "params", "forward_flops",
               "torch_keys", "min_input_size", "head", "twin_case", "data_formats", "input_check", "task",
               "environments"}
TWIN_CASE_FIELDS = {"input_shape", "num_classes", "batch", "options"}


def _is_target(value) -> bool:
    """A ``"module:function"`` string."""
    module, sep, attr = value.partition(":") if isinstance(value, str) else ("", "", "")
    return bool(sep and module and attr.isidentifier())


def _is_shape(value, task="image_classification") -> bool:
    """``(H, W, C)`` for images; the other tasks' shapes (``twinbench.data.tasks``) have 1 to 3 sizes."""
    return (isinstance(value, tuple) and (len(value) == 3 if task == "image_classification" else 1 <= len(value) <= 3)
            and all(isinstance(d, int) and not isinstance(d, bool) and d > 0 for d in value))


def _is_positive_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


def test_the_fields_are_the_checked_ones():
    assert {f.name for f in dataclasses.fields(ModelSpec)} == SPEC_FIELDS
    assert {f.name for f in dataclasses.fields(TwinCase)} == TWIN_CASE_FIELDS


def test_unknown_metadata_is_refused():
    spec = get_model_spec("cifar_cnn")
    with pytest.raises(TypeError, match="extra"):
        dataclasses.replace(spec, extra={"params": 1})
    with pytest.raises(TypeError, match="dropuot"):
        TwinCase(dropuot=0.0)
    with pytest.raises(dataclasses.FrozenInstanceError):
        spec.params = 1


def test_required_metadata_has_no_default():
    required = {f.name for f in dataclasses.fields(ModelSpec)
                if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING}
    assert {"params", "forward_flops"} <= required
    with pytest.raises(TypeError, match="params"):
        ModelSpec(name="x", builders={}, input_shape=(8, 8, 1), num_classes=2, paper="p", summary="s",
                  forward_flops={"8x8x1": 1})


@pytest.mark.parametrize("model_name", MODELS)
def test_every_model_has_valid_metadata(model_name):
    spec = get_model_spec(model_name)
    assert spec.name == model_name
    assert isinstance(spec.builders, dict) and spec.builders
    assert set(spec.builders) <= set(IMPLEMENTATIONS)
    assert all(_is_target(target) for target in spec.builders.values()), spec.builders
    assert spec.task in TASKS
    assert _is_shape(spec.input_shape, spec.task)
    assert _is_positive_int(spec.num_classes)
    assert isinstance(spec.paper, str) and spec.paper
    assert isinstance(spec.summary, str) and spec.summary
    assert _is_positive_int(spec.params)
    assert _is_positive_int(spec.min_input_size)
    if spec.task == "image_classification":
        assert spec.min_input_size <= min(spec.input_shape[:2])
    assert isinstance(spec.data_formats, tuple) and "channels_last" in spec.data_formats
    assert set(spec.data_formats) <= set(MODE_CHOICES["data_format"])

    assert isinstance(spec.forward_flops, dict) and spec.forward_flops
    for size, flops in spec.forward_flops.items():
        assert isinstance(size, str) and _is_shape(tuple(int(d) for d in size.split("x")), spec.task), size
        assert _is_positive_int(flops), size
    assert "x".join(map(str, spec.input_shape)) in spec.forward_flops

    assert spec.torch_keys is None or (_is_target(spec.torch_keys) and "torch" in spec.builders)
    assert spec.input_check is None or _is_target(spec.input_check)
    assert spec.head is None or (isinstance(spec.head, str) and spec.head)
    assert spec.environments is None or (spec.environments and set(spec.environments) <= set(ENVIRONMENTS))


@pytest.mark.parametrize("model_name", MODELS)
def test_every_twin_case_is_valid(model_name):
    spec = get_model_spec(model_name)
    case = spec.twin_case
    assert isinstance(case, TwinCase)
    assert case.input_shape is None or _is_shape(case.input_shape, spec.task)
    input_shape = case.input_shape or spec.input_shape
    if spec.task == "image_classification":
        assert min(input_shape[:2]) >= spec.min_input_size
        check_input_shape(spec, input_shape)  # and the model's own input_check
        assert input_shape[-1] == spec.input_shape[-1]  # the same images, only smaller
        assert case.num_classes is None or (_is_positive_int(case.num_classes) and case.num_classes >= 2)
    else:
        assert case.num_classes is None or _is_positive_int(case.num_classes)
    assert _is_positive_int(case.batch)
    assert isinstance(case.options, dict) and all(isinstance(k, str) and k.isidentifier() for k in case.options)


def test_unknown_names_list_the_choices():
    with pytest.raises(UnknownChoiceError, match="Valid choices: " + ", ".join(list_models())):
        get_model_spec("resnet5")
    with pytest.raises(UnknownChoiceError, match="no 'torch' implementation"):
        get_model_spec("resnet50_kerasapps").check_implementation("torch")


def test_a_model_of_one_environment_says_so_elsewhere(monkeypatch):
    """keras-hub's variants build in the tensorflow environment only: elsewhere a one-line error names it, and the
    other environments run none of their cells."""
    from twinbench.cell import environment_cells
    from twinbench.models import UnknownChoiceError

    spec = get_model_spec("gpt_tiny_kerashub")
    assert spec.environments == ("tensorflow",)
    assert environment_cells("torch", "gpt_tiny_kerashub") == []
    assert environment_cells("jax", "gpt_tiny_kerashub") == []
    assert [cell.label for cell in environment_cells("tensorflow", "gpt_tiny_kerashub")] == ["keras[tensorflow]"]
    monkeypatch.setitem(spec.builders, "keras", "twinbench_no_such_module:gpt_tiny_kerashub")
    with pytest.raises(UnknownChoiceError, match="tensorflow environment only"):
        spec.builder("keras")
