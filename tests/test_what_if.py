"""What-ifs (``twinbench.backends.what_if``): the patch table, the fast binder against ``inspect``'s own, the proof
that a patch leaves a Keras model's outputs, loss and gradients identical (large tier: it builds a model), and the
one-line errors naming the choices."""

from __future__ import annotations

import inspect

import pytest

from conftest import BACKEND
from twinbench.backends.what_if import (
    CHOICES,
    NONE,
    WHAT_IFS,
    apply_what_if,
    check_what_if,
    check_what_if_applies,
    fast_bind_patch,
)
from twinbench.causes import GROUPS
from twinbench.models.choices import UnknownChoiceError


def test_every_what_if_targets_a_group_of_the_table_and_says_what_it_short_circuits():
    names = {group.name for group in GROUPS}
    for name, what in WHAT_IFS.items():
        assert what.name == name and what.group in names and what.short_circuits
    assert CHOICES[0] == NONE and set(CHOICES[1:]) == set(WHAT_IFS)


def test_an_unknown_what_if_is_one_line_naming_the_choices():
    with pytest.raises(UnknownChoiceError, match=r"^Unknown what-if 'fast'. Valid choices: none, fast-bind, "):
        check_what_if("fast")
    assert check_what_if("fast-bind") == "fast-bind"


def _call(x, y=2, *, training=None, mask=None):
    return x


def _varargs(x, *rest, **extra):
    return x


CASES = [(_call, (1,), {}), (_call, (1, 3), {}), (_call, (1,), {"training": True}), (_call, (), {"x": 1, "mask": 0}),
         (_call, (1,), {"y": 5, "training": False}), (_varargs, (1, 2, 3), {"k": 4})]
WRONG = [(_call, (), {}), (_call, (1, 2, 3), {}), (_call, (1,), {"x": 2}), (_call, (1,), {"unknown": 1})]


def _bound(signature, args, kwargs):
    bound = signature.bind(*args, **kwargs)
    passed = dict(bound.arguments), bound.args, bound.kwargs  # what CallSpec reads, and what jax.jit reads
    bound.apply_defaults()
    return list(passed[0].items()), passed[1:], list(bound.arguments.items()), (bound.args, bound.kwargs)


def test_the_fast_binder_binds_as_inspect_does_and_raises_where_it_raises():
    signatures = {function: inspect.signature(function) for function, _, _ in CASES + WRONG}
    expected = [_bound(signatures[f], args, kwargs) for f, args, kwargs in CASES]
    original = inspect.Signature.bind
    undo = fast_bind_patch()
    try:
        assert inspect.Signature.bind is not original
        for _ in range(2):  # the first call makes the plan, the second uses it
            assert [_bound(signatures[f], args, kwargs) for f, args, kwargs in CASES] == expected
        for function, args, kwargs in WRONG:
            with pytest.raises(TypeError):
                signatures[function].bind(*args, **kwargs)
    finally:
        undo()
    assert inspect.Signature.bind is original


def test_no_what_if_patches_nothing():
    original = inspect.Signature.bind
    apply_what_if(NONE)()
    assert inspect.Signature.bind is original


def test_a_what_if_of_one_backends_code_refuses_the_others_in_one_line_naming_those_that_apply():
    from twinbench.cell import Cell

    check_what_if_applies("no-layout-copy", "torch")
    check_what_if_applies("fast-bind", "jax")
    with pytest.raises(UnknownChoiceError, match=r"^--what-if no-layout-copy applies to the torch backend only, not "
                                                 r"to jax. Valid for jax: none, fast-bind, no-traceback-filtering\.$"):
        Cell("cifar_cnn", "keras", "jax", "synthetic", what_if="no-layout-copy").check_applies()
    Cell("cifar_cnn", "keras", "torch", "synthetic", what_if="no-layout-copy").check_applies()


@pytest.mark.skipif(BACKEND != "torch", reason="patches Keras' torch backend")
def test_no_layout_copy_passes_the_permuted_view_as_keras_3_14_did_and_its_undo_restores_3_15s_copy():
    import torch
    from keras.src.backend.torch import nn

    x = torch.arange(2 * 3 * 4 * 5, dtype=torch.float32).reshape(2, 3, 4, 5)  # NHWC
    original = nn._transpose_spatial_inputs
    assert original(x).data_ptr() != x.data_ptr()  # 3.15: an NCHW copy
    undo = apply_what_if("no-layout-copy")
    try:
        view = nn._transpose_spatial_inputs(x)
        assert view.data_ptr() == x.data_ptr() and view.is_contiguous(memory_format=torch.channels_last)
        assert torch.equal(view, original(x))
        with pytest.raises(ValueError, match="Inputs must have ndim=3, 4 or 5"):
            nn._transpose_spatial_inputs(x[0, 0])
    finally:
        undo()
    assert nn._transpose_spatial_inputs is original


@pytest.mark.skipif(BACKEND != "torch", reason="patches Keras' torch backend")
def test_no_layout_copy_refuses_a_keras_whose_permute_copies_nothing(monkeypatch):
    import torch
    from keras.src.backend.torch import nn

    def permuted(inputs):  # Keras 3.14's code, for 2D inputs
        return torch.permute(inputs, (0, 3, 1, 2))

    monkeypatch.setattr(nn, "_transpose_spatial_inputs", permuted)
    with pytest.raises(ValueError, match="copies nothing"):
        apply_what_if("no-layout-copy")
    assert nn._transpose_spatial_inputs is permuted


@pytest.mark.skipif(BACKEND != "torch", reason="patches Keras' torch backend")
def test_kernel_layout_cache_keeps_a_kernels_copy_until_the_weight_changes_and_gradients_still_reach_it(monkeypatch):
    import keras
    import torch
    from keras.src.backend.torch import nn

    made = []  # the copies Keras' own function makes of a weight's view

    def counted(tensor, original=nn._maybe_convert_to_channels_last):
        copy = original(tensor)
        if isinstance(tensor._base, torch.nn.Parameter) and copy is not tensor:
            made.append(copy)
        return copy

    monkeypatch.setattr(nn, "_maybe_convert_to_channels_last", counted)
    layer = keras.layers.Conv2D(4, 3)
    x = torch.arange(2 * 6 * 6 * 3, dtype=torch.float32).reshape(2, 6, 6, 3) / 100.0
    layer.build(x.shape)
    kernel = layer.kernel.value

    def run():
        out = layer(x)
        return out.detach().clone(), torch.autograd.grad(out.square().sum(), kernel)[0]

    expected = run()
    made.clear()
    undo = apply_what_if("kernel-layout-cache")
    try:
        assert nn._maybe_convert_to_channels_last is not counted
        for _ in range(3):  # the first call makes the copy, the others hand it on again
            out, grad = run()
            assert torch.equal(out, expected[0]) and torch.equal(grad, expected[1])
        assert len(made) == 1
        with torch.no_grad():
            assert torch.equal(layer(x), expected[0]) and len(made) == 1
            kernel.add_(0.5)  # an in-place update, as the optimizers make: the kept copy is stale now
        updated = run()
        assert len(made) == 2 and not torch.equal(updated[0], expected[0])
    finally:
        undo()
    assert nn._maybe_convert_to_channels_last is counted
    unpatched = run()
    assert torch.equal(updated[0], unpatched[0]) and torch.equal(updated[1], unpatched[1])


@pytest.mark.skipif(BACKEND != "torch", reason="patches Keras' tree on torch")
def test_tree_type_cache_answers_as_keras_tree_does_and_sees_a_node_type_registered_later():
    from collections import OrderedDict, namedtuple

    import torch
    from keras import tree
    from keras.src.tree import torchtree_impl
    from torch.utils import _pytree

    point = namedtuple("Point", "x y")
    x = torch.ones(2)
    structures = [x, None, 3, [x, (x, None)], {"b": x, "a": [1, 2]}, OrderedDict(b=1, a=2), point(x, 2), (), [[]]]

    def answers():
        return [(tree.is_nested(s), repr(tree.flatten(s)), repr(tree.map_structure(lambda v: v, s)),
                 _pytree._get_node_type(s)) for s in structures for _ in range(2)]  # the second from the cache

    class Box:
        def __init__(self, value):
            self.value = value

    expected, originals = answers(), (_pytree._get_node_type, torchtree_impl._tree_is_leaf, torchtree_impl.is_nested)
    undo = apply_what_if("tree-type-cache")
    try:
        assert torchtree_impl.is_nested is not originals[2]
        assert answers() == expected and _pytree._get_node_type(point(1, 2)) is namedtuple
        assert not tree.is_nested(Box(x))  # a leaf, kept in the cache ...
        _pytree.register_pytree_node(Box, lambda b: ([b.value], None), lambda values, _: Box(values[0]))
        try:
            assert tree.is_nested(Box(x)) and tree.flatten(Box(x)) == [x]  # ... until Box is a node
        finally:
            _pytree._deregister_pytree_node(Box)
        assert not tree.is_nested(Box(x))
    finally:
        undo()
    assert (_pytree._get_node_type, torchtree_impl._tree_is_leaf, torchtree_impl.is_nested) == originals


@pytest.mark.large
@pytest.mark.parametrize("name", sorted(WHAT_IFS))
def test_a_what_if_leaves_a_keras_models_outputs_loss_and_gradients_identical(name):
    pytest.importorskip("keras")
    if WHAT_IFS[name].backends and _backend() not in WHAT_IFS[name].backends:
        pytest.skip(f"{name} patches the {' and '.join(WHAT_IFS[name].backends)} backend's code")
    from twinbench.measuring.breakdown import prove_unchanged
    from twinbench.measuring.throughput import prepare_synthetic

    runner, model, dataset, _ = prepare_synthetic("cifar_cnn", "keras", _backend(), batch_size=4, seed=0)
    original = inspect.Signature.bind
    undo, proof = prove_unchanged(runner, model, dataset, name, samples=4)
    try:
        assert proof["identical"] and proof["max_abs_diff"] == 0.0
        assert {"outputs", "loss"} <= set(proof["compared"]) and any(k.startswith("grad ") for k in proof["compared"])
        if name == "fast-bind":
            assert inspect.Signature.bind is not original
    finally:
        undo()
    assert inspect.Signature.bind is original


def _backend() -> str:
    import keras

    return keras.backend.backend()


def test_the_what_if_study_runs_the_patched_cell_beside_the_plain_one_and_the_twin():
    from twinbench.studies.declared import STUDIES
    from twinbench.studies.plan import StudyError, make_plan

    plan = make_plan(STUDIES["what-if"], "OUT", rounds=1, params={"what_if": "no-traceback-filtering"})
    patched = [run for run in plan if "--what-if" in run.args]
    assert {run.label for run in plan} == {"torch", "keras[torch]"}
    assert [run.label for run in patched] == ["keras[torch]"] * 2  # a training run and a batch-1 inference run
    assert all(run.args[run.args.index("--what-if") + 1] == "no-traceback-filtering" for run in patched)
    with pytest.raises(StudyError, match=r"^Unknown what-if 'x'. Valid choices: fast-bind, no-traceback-filtering"):
        make_plan(STUDIES["what-if"], "OUT", params={"what_if": "x"})


def test_the_breakdown_option_names_the_what_ifs_and_keras_alone_has_them():
    from twinbench.cell import Cell
    from twinbench.cli import build_parser
    from twinbench.cli.options import CliError

    with pytest.raises(CliError, match=r"--what-if: invalid choice: 'x' \(choose from 'none', 'fast-bind', "):
        build_parser().parse_args(["breakdown", "--impl", "keras", "--backend", "torch", "--what-if", "x"])
    args = build_parser().parse_args(["breakdown", "--impl", "keras", "--backend", "torch", "--what-if", "fast-bind",
                                      "--phase", "infer"])
    assert (args.what_if, args.phase) == ("fast-bind", "infer")
    with pytest.raises(UnknownChoiceError, match="--what-if applies to keras only, not to torch"):
        Cell("cifar_cnn", "torch", "torch", "synthetic", what_if="fast-bind").check_applies()


@pytest.mark.large
def test_an_inference_breakdown_under_a_what_if_records_its_proof_and_its_calls():
    pytest.importorskip("keras")
    from twinbench.cell import Cell
    from twinbench.measuring.breakdown import BreakdownConfig, execute_breakdown

    cell = Cell("cifar_cnn", "keras", _backend(), "synthetic", phase="infer", what_if="fast-bind")
    record = execute_breakdown(BreakdownConfig(cell, batch_size=1, steps=3, repeats=2, warmup=2))
    assert record["timing"]["phase"] == "infer" and record["cell"]["what_if"] == "fast-bind"
    assert record["what_if"]["identical"] and record["what_if"]["group"] == "argument binding"
    assert record["breakdown"]["counts_per_step"]["layer calls"] >= 5  # every layer of the model, once per call
    binding = record["breakdown"]["groups"]["argument binding"]["top"]
    if _backend() == "torch":  # the patched binder ran in Keras' layer calls, and its time stayed in its group
        assert any("what_if.py" in top["function"] for top in binding)
    assert inspect.Signature.bind.__module__ == "inspect"  # undone after the run
