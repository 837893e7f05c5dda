"""A step's Python time, by cause: the one table that names what each function of a profile is for, and the folding
of a profile's functions into those groups.

A profile (``twinbench.measuring.breakdown`` takes it with cProfile) lists functions, each with its own time
("self time", excluding what it called), its call count and, per caller, the part of both that came from that caller.
Every function is named here by where it lives and what it is called:

- ``module``: its file, as the import path shows it (``keras/src/layers/layer.py``, ``torch/nn/modules/module.py``,
  ``inspect.py`` for the standard library, ``twinbench/measuring/breakdown.py``), or ``~`` for a built-in (C) function;
- ``function``: its qualified name (``CallSpec.__init__``, ``Layer.__call__``), or for a built-in the profiler's label
  (``<built-in method torch.conv2d>``, ``<method 'run_backward' of 'torch._C._EngineBase' objects>``).

``GROUPS`` matches both with regular expressions, first row first. A function no row matches (the standard library's
``contextlib``, a test's wrapper, ``isinstance``) is no cause of its own: its self time goes to the groups of its
callers, in the shares its callers' calls took (``fold``). What no grouped caller claims ends in ``OTHER``, so nothing
is dropped: the groups add up to the profiled time.

A framework's C functions (its kernels and their C++ dispatch, matched by ``NATIVE``) are the work itself, not its
Python overhead: they are the group ``NATIVE_GROUP`` unless the caller's group *owns* them (layout transposes: the
permute and the copy that a transpose runs are the transpose's cost).

``COUNTERS`` names the calls counted per step: layer calls and backend ops.

Framework-free (this module reads profiles, it never takes one): it sits beside ``twinbench.ops`` below measuring and
results, which both use it.
"""

from __future__ import annotations

import ast
import functools
import re
from dataclasses import dataclass
from pathlib import Path

OTHER = "other"
NATIVE_GROUP = "native ops (kernels, C++)"
BUILTIN = "~"  # cProfile's file name for a built-in function


@dataclass(frozen=True)
class Group:
    """One row of ``GROUPS``: the functions whose ``module`` and ``function`` match are ``name``; ``family`` is the
    broader cause the report sums over (``layer-call machinery``); ``owns_native``: the native ops it calls are its
    cost too."""

    name: str
    family: str
    module: str
    function: str = r".*"
    owns_native: bool = False

    def matches(self, module: str, function: str) -> bool:
        return re.search(self.module, module) is not None and re.search(self.function, function) is not None


_K = r"^keras/src/"
_TORCH_BACKEND = r"^keras/src/backend/(torch|tensorflow|jax|numpy)/"
LAYER_CALL = "layer-call machinery"

# The groups, first match wins. Keras first (its layer call, then ops, then training), then the native twins'.
GROUPS: tuple[Group, ...] = (
    # Keras: the machinery of one layer call, Layer.__call__ and what it runs before and after the layer's own call.
    Group("argument binding", LAYER_CALL, r"^keras/src/layers/layer\.py$", r"^CallSpec\."),
    Group("argument binding", LAYER_CALL, r"^inspect\.py$", r"^(Signature\.(bind|_bind)|BoundArguments\.)"),
    # The what-if that short-circuits it (backends/what_if.py, fast-bind): what is left of the binding stays here.
    Group("argument binding", LAYER_CALL, r"^twinbench/backends/what_if\.py$",
          r"^(fast_bind_patch\.<locals>|_Bound\.)"),
    Group("masking", LAYER_CALL, r"^keras/src/backend/common/masking\.py$"),
    Group("dtype policy, autocast", LAYER_CALL, r"^keras/src/(dtype_policies/|mixed_precision/)"),
    Group("dtype policy, autocast", LAYER_CALL, r"^keras/src/backend/common/variables\.py$",
          r"(?i)autocast|standardize_dtype"),
    Group("dtype policy, autocast", LAYER_CALL, r"^keras/src/backend/common/dtypes\.py$"),
    Group("name scopes", LAYER_CALL, r"^keras/src/backend/(common|torch|tensorflow|jax)/(name_scope|core)\.py$",
          r"name_scope|current_path"),
    Group("name scopes", LAYER_CALL, r"^keras/src/layers/layer\.py$", r"name_scope"),
    Group("training flag, call context", LAYER_CALL, r"^keras/src/layers/layer\.py$",
          r"^(CallContext\.|Layer\._(get_call_context|resolve_and_populate_arg|maybe_reset_call_context))"),
    Group("training flag, call context", LAYER_CALL, r"^keras/src/backend/common/(global_state|stateless_scope|"
                                                     r"symbolic_scope)\.py$"),
    # Keras' tree on the torch backend is torch's pytree (keras/src/tree/torchtree_impl.py): its functions are Keras'
    # structure handling there, not "torch, elsewhere".
    Group("nested structures (tree)", LAYER_CALL, r"^(keras/src/tree/|optree/|torch/utils/_pytree\.py$)"),
    # The what-if that caches its type tests (backends/what_if.py, tree-type-cache): what is left stays here.
    Group("nested structures (tree)", LAYER_CALL, r"^twinbench/backends/what_if\.py$",
          r"^tree_type_cache_patch\.<locals>"),
    Group("traceback filtering", LAYER_CALL, r"^keras/src/utils/traceback_utils\.py$"),
    Group("rest of Layer.__call__", LAYER_CALL, r"^keras/src/(layers/layer\.py|ops/operation\.py|"
                                               r"backend/(torch|tensorflow|jax)/layer\.py)$"),
    # Keras: the optimizer and the trainer, whose backend files sit beside the backend's ops.
    Group("optimizer apply", "optimizer", r"^keras/src/(optimizers/|backend/\w+/optimizers/)"),
    Group("train step (trainer)", "train step", r"^keras/src/(trainers/trainer\.py|backend/\w+/trainer\.py)$"),
    # Keras: from keras.ops to the backend's functions. A layout transpose is the permute and any copy into another
    # memory layout (torch's conv: _maybe_convert_to_channels_last's .contiguous(memory_format=...)).
    Group("layout transposes", "layout transposes", _TORCH_BACKEND, r"transpose|permute|channels_last",
          owns_native=True),
    # The what-ifs that short-circuit its copies (backends/what_if.py, no-layout-copy, kernel-layout-cache): what
    # is left of them stays here.
    Group("layout transposes", "layout transposes", r"^twinbench/backends/what_if\.py$",
          r"^(no_layout_copy_patch|kernel_layout_cache_patch)\.<locals>", owns_native=True),
    Group("tensor conversion", "tensor conversion", _K,
          r"(^|\.)(convert_to_tensor|convert_to_numpy|is_tensor|cast|get_device|to_torch_dtype|_get_keras_tensor)$"),
    Group("tensor conversion", "tensor conversion", r"^keras/src/backend/common/keras_tensor\.py$"),
    Group("variable access", "op dispatch", r"^keras/src/backend/(common|torch|tensorflow|jax)/(variables|core)\.py$",
          r"Variable\.|KerasVariable\."),
    Group("keras.ops", "op dispatch", r"^keras/src/ops/"),
    Group("backend functions", "op dispatch", _TORCH_BACKEND),
    Group("activations", "op dispatch", r"^keras/src/activations/"),
    # Keras: training.
    Group("loss and metrics", "loss and metrics", r"^keras/src/(losses/|metrics/|trainers/compile_utils\.py$)"),
    Group("callbacks", "callbacks", r"^keras/src/callbacks/"),
    Group("data adapter", "data adapter", r"^keras/src/trainers/(data_adapters/|epoch_iterator\.py$)"),
    Group("layer bodies (call)", "layer bodies", r"^keras/src/(layers|models)/"),
    Group("keras, elsewhere", OTHER, r"^keras/"),
    # The native twins: PyTorch.
    Group("nn.Module __call__ and hooks", "module call", r"^torch/nn/modules/module\.py$"),
    Group("module forward (Python)", "layer bodies", r"^torch/nn/(modules/|functional\.py$)"),
    Group("autograd (Python)", "autograd", r"^torch/(autograd/|_tensor\.py$)"),
    Group("optimizer (Python)", "optimizer", r"^torch/optim/"),
    Group("torch, elsewhere", OTHER, r"^torch/"),
    # The native twins: tf.keras (and TensorFlow's own Python under Keras 3 on TensorFlow).
    Group("tf.keras layer call", LAYER_CALL, r"^tf_keras/src/engine/(base_layer|node|input_spec)"),
    Group("tf.keras training", "train step", r"^tf_keras/src/engine/(training|data_adapter)"),
    Group("tf.keras optimizer", "optimizer", r"^tf_keras/src/optimizers/"),
    Group("tf.keras, elsewhere", OTHER, r"^tf_keras/"),
    Group("TensorFlow op dispatch", "op dispatch", r"^tensorflow/python/(eager|framework|ops|util)/"),
    Group("TensorFlow, elsewhere", OTHER, r"^tensorflow/"),
    # JAX dispatches asynchronously: a step's kernels run while Python goes on, and the time they take is spent in
    # the wait for the result (the harness's sync); that wait is the kernels' time, not dispatch.
    Group("waiting for JAX's computation", NATIVE_GROUP, r"^jax/_src/api\.py$", r"^block_until_ready$"),
    Group("JAX dispatch and tracing", "op dispatch", r"^(jax|jaxlib)/"),
    # The benchmark's own loop (the runners' training loops, the clock): the same in every implementation.
    Group("models (twinbench)", "layer bodies", r"^twinbench/models/"),
    Group("harness (twinbench)", "harness", r"^twinbench/"),
    # The frameworks' C functions (see NATIVE).
    Group(NATIVE_GROUP, NATIVE_GROUP, r"^~$", r"torch\.|torch\._C|tensorflow|_pywrap|TFE_|jaxlib|xla_extension"),
)
NATIVE = GROUPS[-1]
FAMILIES = tuple(dict.fromkeys([*(group.family for group in GROUPS), OTHER]))  # in the order the table names them

# What is counted per step: function patterns (module, function) whose calls add up to the count.
COUNTERS = {
    "layer calls": ((r"^keras/src/layers/layer\.py$", r"^Layer\.__call__$"),
                    (r"^torch/nn/modules/module\.py$", r"^Module\._call_impl$"),
                    (r"^tf_keras/src/engine/base_layer\.py$", r"^Layer\.__call__$")),
    "backend ops": ((NATIVE.module, NATIVE.function),),
}


def group_of(module: str, function: str) -> Group | None:
    """The first row of ``GROUPS`` that names this function, or None (its time goes to its callers)."""
    return next((group for group in GROUPS if group.matches(module, function)), None)


def family_of(name: str) -> str:
    """The family of group ``name`` (``OTHER`` for ``OTHER``)."""
    return next((group.family for group in GROUPS if group.name == name), OTHER)


# --- naming a profile's functions -------------------------------------------------------------------------------------

def module_name(filename: str, roots: dict[str, str] | None = None) -> str:
    """``filename`` as the table names it: the path after the last ``site-packages/`` (or the standard library's
    ``pythonX.Y/``), or, under one of ``roots`` (``{folder: import prefix}``, e.g. this package's folders), the prefix
    and the rest; ``~`` stays ``~``."""
    if filename == BUILTIN:
        return BUILTIN
    path = filename.replace("\\", "/")
    for folder, prefix in sorted((roots or {}).items(), key=lambda item: -len(item[0])):
        folder = folder.replace("\\", "/").rstrip("/") + "/"
        if path.startswith(folder):
            return prefix.rstrip("/") + "/" + path[len(folder):]
    if "site-packages/" in path:
        return path.rsplit("site-packages/", 1)[1]
    match = re.search(r"/python3\.\d+/(.*)$", path)
    return match.group(1) if match else path


@functools.cache
def _definitions(filename: str) -> dict[int, str]:
    """``{first line: qualified name}`` of every function defined in ``filename`` (a decorated function's first line
    is its first decorator's, as in its code object)."""
    try:
        tree = ast.parse(Path(filename).read_text())
    except (OSError, SyntaxError, ValueError):
        return {}
    names: dict[int, str] = {}

    def visit(node, prefix):
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                qualname = f"{prefix}{child.name}"
                if not isinstance(child, ast.ClassDef):
                    first = min([child.lineno, *(d.lineno for d in child.decorator_list)])
                    names.setdefault(first, qualname)
                    names.setdefault(child.lineno, qualname)
                visit(child, qualname + ("." if isinstance(child, ast.ClassDef) else ".<locals>."))
            else:
                visit(child, prefix)

    visit(tree, "")
    return names


def function_name(filename: str, line: int, name: str) -> str:
    """The qualified name of the function cProfile lists as ``(filename, line, name)`` (``CallSpec.__init__`` for
    ``__init__``), read from its source; ``name`` itself where the source cannot say."""
    if filename == BUILTIN:
        return name
    return _definitions(filename).get(line, name)


# --- folding -----------------------------------------------------------------------------------------------------------

@dataclass
class Function:
    """One function of a profile, named as the table names it: its self time (s), its calls, and per caller (an
    index into the profile's list) the self time and the calls that came from that caller."""

    module: str
    function: str
    self_s: float
    calls: int
    callers: dict[int, tuple[float, int]]


def fold(functions: list[Function]) -> dict[str, dict]:
    """The profile's self time by group: ``{group: {"s": seconds, "calls": calls, "top": [(label, seconds), ...]}}``.

    A matched function's self time is its group's; an unmatched one's goes to its callers' groups in the shares of
    self time each caller's calls took (``callers``), through unmatched callers too; a native op's goes to
    ``NATIVE_GROUP`` except the share its callers in groups that own native ops took. What reaches no group (no
    callers, or callers in a cycle of unmatched functions) is ``OTHER``. The groups add up to the total self time.
    """
    groups = [group_of(f.module, f.function) for f in functions]
    shares: dict[int, dict[str, float]] = {}  # index -> {group name: share of its time}

    def share_of(index: int, seen: frozenset) -> dict[str, float]:
        if index in shares:
            return shares[index]
        group = groups[index]
        if group is not None and group is not NATIVE:
            result = {group.name: 1.0}
        else:
            result = _inherited(functions[index], seen | {index}, share_of, native=group is NATIVE, groups=groups)
        if not seen:  # only a share computed from the top is final (a cycle's is partial)
            shares[index] = result
        return result

    folded: dict[str, dict] = {}
    for index, function in enumerate(functions):
        for name, share in share_of(index, frozenset()).items():
            entry = folded.setdefault(name, {"s": 0.0, "calls": 0, "top": {}})
            entry["s"] += function.self_s * share
            entry["calls"] += round(function.calls * share)
            label = f"{function.module}:{function.function}"
            entry["top"][label] = entry["top"].get(label, 0.0) + function.self_s * share
    for entry in folded.values():
        entry["top"] = sorted(entry["top"].items(), key=lambda item: -item[1])[:5]
    return folded


def _inherited(function: Function, seen, share_of, *, native: bool, groups) -> dict[str, float]:
    """The shares of an unmatched (or native) function: its callers', weighted by the self time each caller's calls
    took (by their call counts where no time was measured)."""
    weights = {caller: (s if s > 0 else 0.0, calls) for caller, (s, calls) in function.callers.items()}
    total_s = sum(s for s, _ in weights.values())
    total_calls = sum(calls for _, calls in weights.values())
    if not weights or (total_s <= 0 and total_calls <= 0):
        return {NATIVE_GROUP if native else OTHER: 1.0}
    result: dict[str, float] = {}
    for caller, (s, calls) in weights.items():
        weight = s / total_s if total_s > 0 else calls / total_calls
        if native:
            group = groups[caller]
            owner = group.name if group is not None and group.owns_native else None
            if owner is None and caller not in seen and group is None:
                owner = next((name for name in share_of(caller, seen) if _owns(name)), None)
            result[owner or NATIVE_GROUP] = result.get(owner or NATIVE_GROUP, 0.0) + weight
            continue
        caller_shares = {OTHER: 1.0} if caller in seen else share_of(caller, seen)
        for name, share in caller_shares.items():
            result[name] = result.get(name, 0.0) + weight * share
    return result


def _owns(name: str) -> bool:
    return any(group.owns_native for group in GROUPS if group.name == name)


def count(functions: list[Function]) -> dict[str, int]:
    """``{counter: calls}`` over the profile (``COUNTERS``)."""
    return {name: sum(f.calls for f in functions
                      if any(re.search(m, f.module) and re.search(fn, f.function) for m, fn in patterns))
            for name, patterns in COUNTERS.items()}
