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
and the ops; ``keras.config.disable_traceback_filtering()`` turns it off). The framework is imported inside the
patches only: this module is a table the CLI and the studies read without starting one.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass

from twinbench.models import check_choice

NONE = "none"  # no what-if: the cell as twinbench runs it


@dataclass(frozen=True)
class WhatIf:
    """One row of ``WHAT_IFS``: ``apply()`` patches this process and returns the undo; ``group`` is the group of
    ``twinbench.causes.GROUPS`` whose cause it short-circuits; ``short_circuits``: what, in words."""

    name: str
    group: str
    short_circuits: str
    apply: Callable[[], Callable[[], None]]


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


WHAT_IFS: dict[str, WhatIf] = {what.name: what for what in (
    WhatIf("fast-bind", "argument binding",
           "inspect.Signature.bind in Keras' CallSpec (one per layer call): a plan per signature instead of inspect's "
           "general binding (any caller's bind in the process takes the fast path where it applies)",
           fast_bind_patch),
    WhatIf("no-traceback-filtering", "traceback filtering",
           "Keras' traceback filtering around Layer.__call__ and the ops (keras.config.disable_traceback_filtering)",
           no_traceback_filtering_patch),
)}
CHOICES = (NONE, *WHAT_IFS)


def check_what_if(name: str) -> str:
    """``name`` if it is a what-if (or ``none``); else ``UnknownChoiceError``, one line naming the choices."""
    check_choice("what-if", name, CHOICES)
    return name


def apply_what_if(name: str) -> Callable[[], None]:
    """Apply what-if ``name`` in this process (Keras imported) and return its undo; ``none`` does nothing."""
    check_what_if(name)
    return (lambda: None) if name == NONE else WHAT_IFS[name].apply()
