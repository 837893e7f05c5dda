"""What-ifs: one Keras internal short-circuited for one run, to measure how much of a gap its cause is.

A *what-if* is the number a Keras contributor needs before writing a fix: take the group of causes at the top of a
breakdown (``twinbench.causes.GROUPS``: argument binding, traceback filtering, ...), make its cost (nearly) vanish
with a monkeypatch that leaves every output unchanged, and run the same cell again. ``twinbench breakdown
--what-if NAME`` applies one; the study ``what-if`` (``twinbench study run what-if``) runs it beside the plain cell
and the native twin. It is never applied by default: a cell names it (``keras[torch] what_if=fast-bind``), so its
records never mix with the plain cell's.

``WHAT_IFS`` is the one table: name -> the patch, what it short-circuits, the group (``twinbench.causes``) it
targets. ``apply_what_if`` applies one after Keras is imported and returns the function that undoes it. The run
proves the outputs unchanged itself (``twinbench.measuring.breakdown``: the model's outputs, loss and gradients on
one batch, before and after the patch, identical to the bit).

The patches read Keras 3.15's source: ``keras/src/layers/layer.py`` (``Layer.__call__`` builds a ``CallSpec``, whose
``__init__`` calls ``inspect.Signature.bind(*args, **kwargs)`` on the layer's ``call`` signature, then
``apply_defaults()``), and ``keras/src/utils/traceback_utils.py`` (``filter_traceback`` wraps ``Layer.__call__``
and the ops; ``keras.config.disable_traceback_filtering()`` turns it off), and ``keras/src/backend/torch/nn.py``
against 3.14.1's (``_transpose_spatial_inputs``: 3.15 copies the permuted input with ``.contiguous()``) and
``keras/src/tree/torchtree_impl.py`` (Keras' tree on torch is torch's pytree), and ``conv`` in the torch backend
(it copies each permuted kernel into channels-last memory at every call, 3.14 and 3.15 alike). A what-if
that patches one backend's code names it (``WhatIf.backends``); a cell of another backend is refused with one line
(``check_what_if_applies``). The framework is imported inside the patches only: this module is a table the CLI and
the studies read without starting one.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass

from twinbench.models import check_choice
from twinbench.models.choices import UnknownChoiceError

NONE = "none"  # no what-if: the cell as twinbench runs it


@dataclass(frozen=True)
class WhatIf:
    """One row of ``WHAT_IFS``: ``apply()`` patches this process and returns the undo; ``group`` is the group of
    ``twinbench.causes.GROUPS`` whose cause it short-circuits; ``short_circuits``: what, in words; ``backends``: the
    Keras backends whose code it patches (empty: every backend)."""

    name: str
    group: str
    short_circuits: str
    apply: Callable[[], Callable[[], None]]
    backends: tuple[str, ...] = ()


# --- fast-bind: inspect.Signature.bind without inspect's general machinery ------------------------------------------

_SIMPLE = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)


class _Bound:
    """A ``BoundArguments`` made cheaply: ``arguments`` (those passed, in the signature's order) and
    ``apply_defaults()`` (every parameter, in order, the defaults filled in) are what Keras' ``CallSpec`` reads, done
    here from the plan; ``args``, ``kwargs`` and ``signature`` (read by other callers in the process, e.g. ``jax.jit``
    resolving keyword arguments) are inspect's own, computed when asked."""

    __slots__ = ("arguments", "signature", "_plan")

    def __init__(self, signature: inspect.Signature, arguments: dict, plan):
        self.signature, self.arguments, self._plan = signature, arguments, plan

    @property
    def args(self) -> tuple:
        return inspect.BoundArguments(self.signature, self.arguments).args

    @property
    def kwargs(self) -> dict:
        return inspect.BoundArguments(self.signature, self.arguments).kwargs

    def apply_defaults(self) -> None:
        names, defaults = self._plan[1], self._plan[2]
        arguments = self.arguments
        self.arguments = {name: arguments[name] if name in arguments else defaults[name] for name in names}


def _plan_of(signature: inspect.Signature):
    """``(positional names, names, defaults, name set, required)`` for a signature of plain parameters (positional or
    keyword, keyword-only), else None (``*args``, ``**kwargs``, positional-only: the original ``bind`` handles it)."""
    parameters = list(signature.parameters.values())
    if any(p.kind not in _SIMPLE for p in parameters):
        return None
    names = tuple(p.name for p in parameters)
    return (tuple(p.name for p in parameters if p.kind is inspect.Parameter.POSITIONAL_OR_KEYWORD), names,
            {p.name: p.default for p in parameters if p.default is not p.empty}, frozenset(names),
            tuple(p.name for p in parameters if p.default is p.empty))


def fast_bind_patch() -> Callable[[], None]:
    """Replace ``inspect.Signature.bind`` with a binder that, for a signature of plain parameters, maps the arguments
    to names from a plan made once per signature (Keras keeps one signature per layer); anything else (var-args, an
    unknown or doubled argument, a missing one) goes to the original, which binds or raises as before."""
    original = inspect.Signature.bind
    plans: dict[int, tuple] = {}  # id(signature) -> (signature, plan): the signature kept alive, its id not reused

    def bind(self, /, *args, **kwargs):
        entry = plans.get(id(self))
        if entry is None:
            entry = plans[id(self)] = (self, _plan_of(self))
        plan = entry[1]
        if plan is None or len(args) > len(plan[0]):
            return original(self, *args, **kwargs)
        positional, names, _, known, required = plan
        arguments = dict(zip(positional, args, strict=False))  # args may be fewer than the positional names
        if kwargs:
            if not known.issuperset(kwargs) or not arguments.keys().isdisjoint(kwargs):
                return original(self, *args, **kwargs)
            arguments = {name: arguments[name] if name in arguments else kwargs[name]
                         for name in names if name in arguments or name in kwargs}
        if any(name not in arguments for name in required):
            return original(self, *args, **kwargs)
        return _Bound(self, arguments, plan)

    inspect.Signature.bind = bind

    def undo() -> None:
        inspect.Signature.bind = original

    return undo


# --- no-traceback-filtering: Keras' own switch ----------------------------------------------------------------------

def no_traceback_filtering_patch() -> Callable[[], None]:
    """``keras.config.disable_traceback_filtering()``: ``filter_traceback``'s wrappers call straight through."""
    import keras

    was = keras.config.is_traceback_filtering_enabled()
    keras.config.disable_traceback_filtering()

    def undo() -> None:
        if was:
            keras.config.enable_traceback_filtering()

    return undo


# --- no-layout-copy: the NHWC -> NCHW permute before a conv or a pool, as a view (Keras 3.14's code) ----------------

def no_layout_copy_patch() -> Callable[[], None]:
    """Replace ``_transpose_spatial_inputs`` in Keras' torch backend (``conv``, ``conv_transpose``, the pools and the
    adaptive pools call it by its module name) with 3.14.1's. Keras 3.15 appended ``.contiguous()`` to its permute:
    an NCHW copy of every channels-last input, which ``conv`` then copies back to channels-last
    (``_maybe_convert_to_channels_last``): two copies per conv where 3.14 made none."""
    import keras

    if keras.backend.backend() != "torch":
        raise ValueError(f"what-if no-layout-copy patches Keras' torch backend; this process runs "
                         f"{keras.backend.backend()}.")
    import torch
    from keras.src.backend.torch import nn

    original = nn._transpose_spatial_inputs
    if "contiguous" not in original.__code__.co_names:
        raise ValueError(f"what-if no-layout-copy: Keras {keras.__version__}'s _transpose_spatial_inputs copies "
                         "nothing (no .contiguous()); there is nothing to short-circuit.")

    def permuted_view(inputs):
        """Keras 3.14.1's ``_transpose_spatial_inputs``, line for line: the channels-last input permuted to
        channels-first as a view of the same memory (channels-last contiguous, the layout ``conv`` asks for next)."""
        ndim = inputs.ndim - 2
        if ndim == 1:  # 1D case
            return torch.permute(inputs, (0, 2, 1))
        elif ndim == 2:  # 2D case
            return torch.permute(inputs, (0, 3, 1, 2))
        elif ndim == 3:  # 3D case
            return torch.permute(inputs, (0, 4, 1, 2, 3))
        raise ValueError(
            "Inputs must have ndim=3, 4 or 5, "
            "corresponding to 1D, 2D and 3D inputs. "
            f"Received input shape: {inputs.shape}."
        )

    nn._transpose_spatial_inputs = permuted_view

    def undo() -> None:
        nn._transpose_spatial_inputs = original

    return undo


# --- tree-type-cache: the type tests of Keras' tree on torch, once per type ------------------------------------------

def tree_type_cache_patch() -> Callable[[], None]:
    """On the torch backend Keras' tree is torch's pytree (``keras/src/tree/torchtree_impl.py``): ``is_nested`` asks
    ``_tree_is_leaf``, which asks ``torch.utils._pytree._get_node_type`` (``is_namedtuple_class``: six attribute tests
    on the type) and looks the answer up in ``SUPPORTED_NODES``, for every argument of every layer call and op. Both
    answers depend on the type alone: here each is computed once per type and kept (the leaf answers dropped whenever
    ``SUPPORTED_NODES`` changes size, i.e. a node type is registered or removed); ``is_leaf`` callbacks still run."""
    import keras

    if keras.backend.backend() != "torch":
        raise ValueError(f"what-if tree-type-cache patches Keras' torch tree; this process runs "
                         f"{keras.backend.backend()}.")
    from keras.src.tree import torchtree_impl
    from torch.utils import _pytree

    originals = (_pytree._get_node_type, torchtree_impl._tree_is_leaf, torchtree_impl.is_nested)
    get_node_type, supported = originals[0], _pytree.SUPPORTED_NODES
    node_types: dict[type, object] = {}
    leaves: dict[type, bool] = {}
    registered = [len(supported)]

    def cached_node_type(tree):
        cls = type(tree)
        found = node_types.get(cls)
        if found is None:
            found = node_types[cls] = get_node_type(tree)
        return found

    def is_leaf_by_type(tree, is_leaf=None):
        if is_leaf is not None and is_leaf(tree):
            return True
        if len(supported) != registered[0]:
            leaves.clear()
            registered[0] = len(supported)
        cls = type(tree)
        leaf = leaves.get(cls)
        if leaf is None:
            leaf = leaves[cls] = cached_node_type(tree) not in supported
        return leaf

    def is_nested(structure):
        return not is_leaf_by_type(structure)

    _pytree._get_node_type, torchtree_impl._tree_is_leaf, torchtree_impl.is_nested = (
        cached_node_type, is_leaf_by_type, is_nested)

    def undo() -> None:
        _pytree._get_node_type, torchtree_impl._tree_is_leaf, torchtree_impl.is_nested = originals

    return undo


# --- kernel-layout-cache: each conv kernel's channels-last copy kept until its weight changes --------------------------

def kernel_layout_cache_patch() -> Callable[[], None]:
    """Keras' torch ``conv`` (3.14 and 3.15 alike) permutes each ``(h, w, in, out)`` kernel to an ``(out, in, h, w)``
    view and hands it to ``_maybe_convert_to_channels_last``, which copies it into channels-last memory: every call
    copies every kernel. Here a weight's copy is kept and handed on again until the weight changes (its version
    counter, which every in-place update bumps, or its memory, shape or strides), through an autograd function whose
    backward passes the gradient to the weight's view unchanged, as the copy's own backward does: outputs and
    gradients are those of a fresh copy. Anything that is not a view of a weight (``torch.nn.Parameter``), inputs
    included, takes the original path. Kept copies hold one more copy of the convolutions' weights in memory."""
    import keras

    if keras.backend.backend() != "torch":
        raise ValueError(f"what-if kernel-layout-cache patches Keras' torch backend; this process runs "
                         f"{keras.backend.backend()}.")
    import weakref

    import torch
    from keras.src.backend.torch import nn

    original = nn._maybe_convert_to_channels_last
    if "_maybe_convert_to_channels_last" not in nn.conv.__code__.co_names:
        raise ValueError(f"what-if kernel-layout-cache: Keras {keras.__version__}'s torch conv does not copy its "
                         "kernel into channels-last memory; there is nothing to keep.")
    # id(weight) -> (the weight, weakly; what the copy was made from; the copy). By id: tensors compare elementwise,
    # so no dictionary can take them as keys; the weak reference tells a dead weight's reused id apart.
    kept: dict[int, tuple] = {}

    class KeptCopy(torch.autograd.Function):
        """The kept copy as the kernel: forward hands it on, backward passes the gradient through to the view."""

        @staticmethod
        def forward(ctx, view, copy):
            return copy.detach()

        @staticmethod
        def backward(ctx, grad):
            return grad, None

    def channels_last_kept(tensor):
        weight = tensor._base
        if not isinstance(weight, torch.nn.Parameter):
            return original(tensor)
        made_from = (tensor.data_ptr(), tensor._version, tuple(tensor.shape), tensor.stride(), tensor.dtype,
                     torch.is_inference_mode_enabled())
        entry = kept.get(id(weight))
        if entry is None or entry[0]() is not weight or entry[1] != made_from:
            copy = original(tensor)
            if copy is tensor:  # already channels-last: nothing was copied, nothing to keep
                return tensor
            entry = kept[id(weight)] = (weakref.ref(weight), made_from, copy.detach())
        return KeptCopy.apply(tensor, entry[2])

    nn._maybe_convert_to_channels_last = channels_last_kept

    def undo() -> None:
        nn._maybe_convert_to_channels_last = original
        kept.clear()

    return undo


WHAT_IFS: dict[str, WhatIf] = {what.name: what for what in (
    WhatIf("fast-bind", "argument binding",
           "inspect.Signature.bind in Keras' CallSpec (one per layer call): a plan per signature instead of inspect's "
           "general binding (any caller's bind in the process takes the fast path where it applies)",
           fast_bind_patch),
    WhatIf("no-traceback-filtering", "traceback filtering",
           "Keras' traceback filtering around Layer.__call__ and the ops (keras.config.disable_traceback_filtering)",
           no_traceback_filtering_patch),
    WhatIf("no-layout-copy", "layout transposes",
           "the .contiguous() copy Keras 3.15 added after the NHWC->NCHW permute before each conv and pool "
           "(keras.src.backend.torch.nn._transpose_spatial_inputs as in 3.14.1: the permuted view)",
           no_layout_copy_patch, backends=("torch",)),
    WhatIf("kernel-layout-cache", "layout transposes",
           "the channels-last copy of every conv kernel that Keras' torch conv makes at each call "
           "(_maybe_convert_to_channels_last of the permuted kernel): made once and kept until the weight changes",
           kernel_layout_cache_patch, backends=("torch",)),
    WhatIf("tree-type-cache", "nested structures (tree)",
           "the per-call type tests of Keras' tree on torch (torchtree_impl.is_nested and _tree_is_leaf, "
           "torch.utils._pytree._get_node_type with is_namedtuple_class): answered once per type from a cache",
           tree_type_cache_patch, backends=("torch",)),
)}
CHOICES = (NONE, *WHAT_IFS)


def check_what_if(name: str) -> str:
    """``name`` if it is a what-if (or ``none``); else ``UnknownChoiceError``, one line naming the choices."""
    check_choice("what-if", name, CHOICES)
    return name


def check_what_if_applies(name: str, backend: str) -> None:
    """Raise ``UnknownChoiceError`` (one line, naming the what-ifs that do apply) where what-if ``name`` patches
    another Keras backend's code than ``backend``'s."""
    what = WHAT_IFS.get(name)
    if what is not None and what.backends and backend not in what.backends:
        valid = [NONE, *(other.name for other in WHAT_IFS.values() if not other.backends or backend in other.backends)]
        raise UnknownChoiceError(f"--what-if {name} applies to the {' and '.join(what.backends)} backend only, not "
                                 f"to {backend}. Valid for {backend}: {', '.join(valid)}.")


def apply_what_if(name: str) -> Callable[[], None]:
    """Apply what-if ``name`` in this process (Keras imported) and return its undo; ``none`` does nothing."""
    check_what_if(name)
    return (lambda: None) if name == NONE else WHAT_IFS[name].apply()
