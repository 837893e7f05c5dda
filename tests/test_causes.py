"""The cause table (``twinbench.causes``): every row names what it claims, what no row names ends in a caller's
group or in "other", and the folding adds up; and the straight-line fit that splits a layer call's fixed cost from
its per-element cost (``twinbench.stats.linear_fit``). Framework-free: runs in every environment."""

from __future__ import annotations

import cProfile

import numpy as np
import pytest

from twinbench.causes import (
    GROUPS,
    NATIVE_GROUP,
    OTHER,
    Function,
    count,
    family_of,
    fold,
    function_name,
    group_of,
    module_name,
)
from twinbench.measuring.breakdown import functions_of
from twinbench.stats import linear_fit

# (module, function) -> the group each row of the table claims for it: one example per row at least.
CLAIMS = {
    ("keras/src/layers/layer.py", "CallSpec.__init__"): "argument binding",
    ("inspect.py", "Signature._bind"): "argument binding",
    ("inspect.py", "Signature.bind"): "argument binding",
    ("twinbench/backends/what_if.py", "fast_bind_patch.<locals>.bind"): "argument binding",
    ("keras/src/backend/common/masking.py", "get_keras_mask"): "masking",
    ("keras/src/dtype_policies/dtype_policy.py", "DTypePolicy.convert_input"): "dtype policy, autocast",
    ("keras/src/backend/common/variables.py", "standardize_dtype"): "dtype policy, autocast",
    ("keras/src/backend/common/variables.py", "get_autocast_scope"): "dtype policy, autocast",
    ("keras/src/backend/common/dtypes.py", "result_type"): "dtype policy, autocast",
    ("keras/src/backend/common/name_scope.py", "name_scope.__enter__"): "name scopes",
    ("keras/src/layers/layer.py", "Layer._open_name_scope"): "name scopes",
    ("keras/src/layers/layer.py", "Layer._get_call_context"): "training flag, call context",
    ("keras/src/backend/common/global_state.py", "get_global_attribute"): "training flag, call context",
    ("keras/src/tree/tree_api.py", "map_structure"): "nested structures (tree)",
    ("torch/utils/_pytree.py", "is_namedtuple_class"): "nested structures (tree)",  # Keras' tree on torch
    ("twinbench/backends/what_if.py", "tree_type_cache_patch.<locals>.is_leaf_by_type"): "nested structures (tree)",
    ("keras/src/utils/traceback_utils.py", "inject_argument_info_in_traceback"): "traceback filtering",
    ("keras/src/layers/layer.py", "Layer.__call__"): "rest of Layer.__call__",
    ("keras/src/ops/operation.py", "Operation.__call__"): "rest of Layer.__call__",
    ("keras/src/backend/torch/nn.py", "_transpose_spatial_inputs"): "layout transposes",
    ("keras/src/backend/torch/nn.py", "_maybe_convert_to_channels_last"): "layout transposes",  # its copy too
    ("twinbench/backends/what_if.py", "no_layout_copy_patch.<locals>.permuted_view"): "layout transposes",  # no-layout-copy's permute
    ("twinbench/backends/what_if.py", "kernel_layout_cache_patch.<locals>.channels_last_kept"): "layout transposes",
    ("keras/src/backend/torch/core.py", "convert_to_tensor"): "tensor conversion",
    ("keras/src/backend/common/keras_tensor.py", "any_symbolic_tensors"): "tensor conversion",
    ("keras/src/backend/torch/core.py", "Variable.value"): "variable access",
    ("keras/src/ops/nn.py", "conv"): "keras.ops",
    ("keras/src/backend/torch/nn.py", "conv"): "backend functions",
    ("keras/src/activations/activations.py", "relu"): "activations",
    ("keras/src/optimizers/base_optimizer.py", "BaseOptimizer.apply"): "optimizer apply",
    ("keras/src/backend/torch/optimizers/torch_adam.py", "Adam._parallel_update"): "optimizer apply",
    ("keras/src/losses/loss.py", "Loss.__call__"): "loss and metrics",
    ("keras/src/trainers/compile_utils.py", "CompileLoss.call"): "loss and metrics",
    ("keras/src/callbacks/callback_list.py", "CallbackList.on_train_batch_end"): "callbacks",
    ("keras/src/trainers/epoch_iterator.py", "EpochIterator.__next__"): "data adapter",
    ("keras/src/trainers/trainer.py", "Trainer.metrics"): "train step (trainer)",
    ("keras/src/backend/torch/trainer.py", "TorchTrainer.train_step"): "train step (trainer)",
    ("keras/src/layers/convolutional/base_conv.py", "BaseConv.call"): "layer bodies (call)",
    ("keras/src/utils/tracking.py", "Tracker.track"): "keras, elsewhere",
    ("torch/nn/modules/module.py", "Module._call_impl"): "nn.Module __call__ and hooks",
    ("torch/nn/modules/conv.py", "Conv2d.forward"): "module forward (Python)",
    ("torch/nn/functional.py", "relu"): "module forward (Python)",
    ("torch/autograd/graph.py", "_engine_run_backward"): "autograd (Python)",
    ("torch/_tensor.py", "Tensor.backward"): "autograd (Python)",
    ("torch/optim/adam.py", "Adam.step"): "optimizer (Python)",
    ("torch/serialization.py", "load"): "torch, elsewhere",
    ("tf_keras/src/engine/base_layer.py", "Layer.__call__"): "tf.keras layer call",
    ("tf_keras/src/engine/training.py", "Model.train_step"): "tf.keras training",
    ("tf_keras/src/optimizers/adam.py", "Adam.update_step"): "tf.keras optimizer",
    ("tf_keras/src/utils/tf_utils.py", "sync_to_numpy_or_python_type"): "tf.keras, elsewhere",
    ("tensorflow/python/eager/execute.py", "quick_execute"): "TensorFlow op dispatch",
    ("tensorflow/core/function/polymorphism/function_type.py", "bind"): "TensorFlow, elsewhere",
    ("jax/_src/api.py", "block_until_ready"): "waiting for JAX's computation",
    ("jax/_src/core.py", "Primitive.bind"): "JAX dispatch and tracing",
    ("twinbench/models/small_cnn/keras_model.py", "build"): "models (twinbench)",
    ("twinbench/backends/base.py", "StepClock.before_step"): "harness (twinbench)",
    ("~", "<built-in method torch.conv2d>"): NATIVE_GROUP,
    ("~", "<method 'run_backward' of 'torch._C._EngineBase' objects>"): NATIVE_GROUP,
    ("~", "<built-in method tensorflow.python._pywrap_tfe.TFE_Py_FastPathExecute>"): NATIVE_GROUP,
}


@pytest.mark.parametrize("where", sorted(CLAIMS), ids=lambda w: f"{w[0]}:{w[1]}")
def test_every_pattern_matches_what_it_claims(where):
    group = group_of(*where)
    assert group is not None and group.name == CLAIMS[where]


def test_every_row_is_exercised_by_a_claim():
    used = {id(group_of(*where)) for where in CLAIMS}
    assert [f"{g.name}: {g.module} {g.function}" for g in GROUPS if id(g) not in used] == []


@pytest.mark.parametrize("where", [("contextlib.py", "_GeneratorContextManager.__enter__"), ("~", "<built-in method "
                                   "builtins.isinstance>"), ("tests/test_breakdown.py", "slow_bind"),
                                   ("numpy/core/fromnumeric.py", "sum")])
def test_no_row_claims_what_is_no_cause_of_its_own(where):
    assert group_of(*where) is None


def _profile(*rows):
    """Functions from ``(module, function, self_s, calls, {caller index: (s, calls)})``."""
    return [Function(module, function, self_s, calls, callers) for module, function, self_s, calls, callers in rows]


def test_unmatched_time_goes_to_the_callers_groups_and_the_rest_to_other():
    functions = _profile(
        ("keras/src/layers/layer.py", "CallSpec.__init__", 1.0, 10, {}),          # 0: argument binding
        ("keras/src/ops/nn.py", "conv", 2.0, 10, {}),                             # 1: keras.ops
        ("contextlib.py", "helper", 3.0, 20, {0: (1.0, 10), 1: (2.0, 10)}),       # 2: 1/3 binding, 2/3 ops
        ("tests/fake.py", "deeper", 0.6, 5, {2: (0.6, 5)}),                       # 3: through 2
        ("tests/fake.py", "orphan", 0.5, 1, {}),                                  # 4: no caller: other
        ("~", "<built-in method torch.conv2d>", 4.0, 10, {1: (4.0, 10)}),         # 5: native
        ("keras/src/backend/torch/nn.py", "_transpose_spatial_inputs", 0.1, 10, {}),  # 6: layout
        ("~", "<method 'contiguous' of 'torch._C.TensorBase' objects>", 0.9, 10, {6: (0.9, 10)}),  # 7: layout owns it
    )
    folded = fold(functions)
    assert folded["argument binding"]["s"] == pytest.approx(1.0 + 1.0 + 0.2)
    assert folded["keras.ops"]["s"] == pytest.approx(2.0 + 2.0 + 0.4)
    assert folded[OTHER]["s"] == pytest.approx(0.5)
    assert folded[NATIVE_GROUP]["s"] == pytest.approx(4.0)
    assert folded["layout transposes"]["s"] == pytest.approx(1.0)
    assert sum(entry["s"] for entry in folded.values()) == pytest.approx(sum(f.self_s for f in functions))
    assert family_of("argument binding") == "layer-call machinery" and family_of(OTHER) == OTHER


def test_a_cycle_of_unmatched_functions_is_other_not_lost():
    functions = _profile(("a.py", "f", 1.0, 1, {1: (1.0, 1)}), ("b.py", "g", 2.0, 1, {0: (2.0, 1)}))
    folded = fold(functions)
    assert sum(entry["s"] for entry in folded.values()) == pytest.approx(3.0)
    assert set(folded) == {OTHER}


def test_counts_of_layer_calls_and_backend_ops():
    functions = _profile(("keras/src/layers/layer.py", "Layer.__call__", 0.1, 7, {}),
                         ("torch/nn/modules/module.py", "Module._call_impl", 0.1, 3, {}),
                         ("~", "<built-in method torch.relu>", 0.1, 11, {}),
                         ("~", "<built-in method builtins.len>", 0.1, 50, {}))
    assert count(functions) == {"layer calls": 10, "backend ops": 11}


def test_names_as_the_table_names_them(tmp_path):
    assert module_name("/x/lib/python3.11/site-packages/keras/src/layers/layer.py") == "keras/src/layers/layer.py"
    assert module_name("/usr/lib/python3.11/inspect.py") == "inspect.py"
    assert module_name("/work/repo/bench/measuring/x.py", {"/work/repo/bench": "twinbench"}) == \
        "twinbench/measuring/x.py"
    assert module_name("~") == "~"
    source = tmp_path / "m.py"
    source.write_text("class CallSpec:\n    def __init__(self):\n        pass\n\n@staticmethod\ndef f():\n    pass\n")
    assert function_name(str(source), 2, "__init__") == "CallSpec.__init__"
    assert function_name(str(source), 5, "f") == "f"
    assert function_name(str(source), 99, "g") == "g"


def _inner():
    return sum(range(10))


def _outer():
    for _ in range(5):
        _inner()


def test_a_real_profile_is_read_with_its_callers():
    profile = cProfile.Profile()
    profile.enable()
    _outer()
    profile.disable()
    functions = functions_of(profile)
    names = {f.function: f for f in functions}
    inner, outer = names["_inner"], names["_outer"]
    assert inner.calls == 5 and inner.module.endswith("tests/test_causes.py")
    assert list(inner.callers) == [functions.index(outer)] and inner.callers[functions.index(outer)][1] == 5


def test_the_line_fit_recovers_a_known_fixed_and_per_element_cost():
    rng = np.random.default_rng(0)
    points = [(x, 50.0 + 0.01 * x + rng.normal(0, 0.5, size=9)) for x in (8, 1000, 4000, 16000)]
    fit = linear_fit(points)
    assert fit["intercept"]["ci_low"] <= 50.0 <= fit["intercept"]["ci_high"]
    assert fit["slope"]["ci_low"] <= 0.01 <= fit["slope"]["ci_high"]
    assert fit["intercept"]["value"] == pytest.approx(50.0, abs=1.0)
    with pytest.raises(ValueError, match="two distinct"):
        linear_fit([(1, [1.0, 2.0]), (1, [3.0])])
