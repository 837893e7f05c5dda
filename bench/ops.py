"""The op-level breakdown of a training step, the same for every framework: which op is which kind of work.

``python -m twinbench trace`` runs a cell's steps under its framework's own profiler (``twinbench.backends.trace`` reads each
profiler's output into its ``OpInterval`` s); this module sorts the ops into ``CATEGORIES`` by the name patterns of
``RULES`` (the one place the classification is written) and turns the intervals into the record's ``ops`` table:
milliseconds per step for each category, and the **remainder**, the step's wall time that no op covers (Python,
dispatch, framework bookkeeping, waiting).

Each op counts with its exclusive (self) time: its interval minus those of the ops it calls (``twinbench.backends.trace``
cuts them so), so no time is counted twice; time outside every op (Python, the framework's own bookkeeping between
ops) is the remainder. With more than one thread, ops overlap in time: the time **covered** is
the union of the op intervals of every executing thread within the traced window, and an instant covered by ``k``
ops counts ``1/k`` to each of them. So the categories add up to the covered time, and categories plus remainder
add up to the wall time per step.

No framework is imported here.
"""

from __future__ import annotations

import re
from collections import defaultdict

# The categories of an op, in the order tables show them; the table adds "remainder".
CATEGORIES = ("conv_matmul", "layout", "optimizer", "other")
CATEGORY_LABELS = {"conv_matmul": "conv/matmul", "layout": "layout", "optimizer": "optimizer", "other": "other ops",
                   "remainder": "remainder"}
TOP_OPS = 15  # op names listed with their time and category, so a reader can check the classification

# (category, pattern): the first pattern found in an op's lower-cased name decides. An op inside an optimizer's
# range (its ``scope``: torch's ``Optimizer.step#Adam.step``, TensorFlow's ``Adam/...`` name scope) or inside a
# ``torch._foreach_*`` op (Keras' torch optimizers update every variable at once with them) is "optimizer", whatever
# its name (``SCOPE_RULES``).
RULES = (
    ("optimizer", r"_foreach_|adam|applygradient|apply_gradient"),  # Adam's elementwise updates (torch._foreach_*)
    ("conv_matmul", r"convolution|conv[123]d|conv_|depthwiseconv"  # torch, TF, XLA convolutions and their gradients
                    r"|matmul|gemm|einsum|dot_general|(^|[^a-z])dot([^a-z]|$)"  # matrix products
                    r"|(^|::)(mm|addmm|bmm|baddbmm|addmv|mv|_addmm_activation)$"  # aten's matrix products
                    r"|ynn_fusion|xnn_fusion"),  # XLA:CPU's dots and convolutions handed to YNNPACK/XNNPACK
    ("layout", r"transpose|permute|copy|contiguous|clone|reshape|nchw|nhwc|layout|(^|::)t$"),
)
# Keras names its optimizer's name scope after it (adam, summed_rows_adam); torch's optimizers open Optimizer.step.
SCOPE_RULES = r"optimizer|adam|apply_?gradients|_foreach_"
NOTE = ("exclusive op time; covered = the union of op intervals over all threads; an instant covered by k ops counts 1/k "
        "to each; remainder = wall - covered (Python, dispatch, bookkeeping, idle)")
_RULES = tuple((category, re.compile(pattern)) for category, pattern in RULES)
_SCOPE = re.compile(SCOPE_RULES)


def classify(name: str, *, scope: str = "") -> str:
    """The category of an op called ``name`` inside ranges ``scope``.

    >>> classify("aten::mkldnn_convolution"), classify("aten::copy_"), classify("aten::_foreach_add_")
    ('conv_matmul', 'layout', 'optimizer')
    >>> classify("Mul", scope="Adam/sub_7"), classify("Mul"), classify("convert_element_type.3")
    ('optimizer', 'other', 'other')
    """
    if scope and _SCOPE.search(scope.lower()):
        return "optimizer"
    lowered = name.lower()
    for category, pattern in _RULES:
        if pattern.search(lowered):
            return category
    return "other"


def op_table(ops, *, wall_s: float, steps: int, profiler: str, note: str = "") -> dict:
    """The record's ``ops`` table of ``steps`` steps that took ``wall_s`` seconds, from their ``ops`` intervals.

    Returns ``ms_per_step`` for every category and ``remainder`` (wall minus covered time), ``covered`` and
    ``wall`` ms per step, ``busy`` (the sum of op durations, which exceeds ``covered`` where threads overlap),
    the threads that ran ops, and the ``TOP_OPS`` op names by time with their category.
    """
    ops = [op for op in ops if op.end_s > op.start_s]
    share = defaultdict(float)  # op name -> seconds (its shares of the covered time)
    category_of = {}
    points = []
    for index, op in enumerate(ops):
        category_of.setdefault(op.name, {})[op.scope] = None
        points += [(op.start_s, 1, index), (op.end_s, 0, index)]
    points.sort()
    active: set[int] = set()
    by_category = dict.fromkeys(CATEGORIES, 0.0)
    covered = 0.0
    previous = None
    for time_s, starts, index in points:
        if active and previous is not None and time_s > previous:
            piece = (time_s - previous) / len(active)
            covered += time_s - previous
            for member in active:
                op = ops[member]
                share[op.name] += piece
                by_category[classify(op.name, scope=op.scope)] += piece
        previous = time_s
        (active.add if starts else active.discard)(index)
    ms = {category: 1e3 * seconds / steps for category, seconds in by_category.items()}
    ms["remainder"] = 1e3 * (wall_s - covered) / steps
    top = sorted(share.items(), key=lambda item: -item[1])[:TOP_OPS]
    return {
        "profiler": profiler,
        "steps": steps,
        "wall_ms_per_step": 1e3 * wall_s / steps,
        "covered_ms_per_step": 1e3 * covered / steps,
        "busy_ms_per_step": 1e3 * sum(op.end_s - op.start_s for op in ops) / steps,
        "ms_per_step": ms,
        "op_count": len(ops),
        "threads": len({op.thread for op in ops}),
        "top_ops": [{"name": name, "category": _category_of(name, category_of[name]), "ms_per_step": 1e3 * s / steps}
                    for name, s in top],
        "note": "; ".join(filter(None, [NOTE, note])),
    }


def _category_of(name: str, scopes: dict) -> str:
    """One op name's category; ``mixed`` when the same name falls into more than one (e.g. inside and outside the
    optimizer)."""
    categories = {classify(name, scope=scope) for scope in scopes}
    return categories.pop() if len(categories) == 1 else "mixed"

