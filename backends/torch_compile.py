"""What ``torch.compile`` did in this process: the PyTorch runner and Keras 3 on the torch backend (whose
``jit_compile=True`` is ``torch.compile``) both report it in ``describe()["torch_compile"]``. PyTorch is imported only
when it is asked.
"""

from __future__ import annotations


def compile_stats() -> dict:
    """What torch.compile did in this process (``torch._dynamo``'s counters): frames compiled (every compilation
    after a frame's first is a recompilation, e.g. for a new batch shape or train/eval mode), graphs and graph
    breaks with their most frequent reasons."""
    from torch._dynamo.utils import counters

    breaks = counters.get("graph_break", {})
    return {"frames_compiled": int(counters.get("frames", {}).get("ok", 0)),
            "unique_graphs": int(counters.get("stats", {}).get("unique_graphs", 0)),
            "graph_breaks": int(sum(breaks.values())),
            "graph_break_reasons": [reason[:160] for reason, _ in sorted(breaks.items(), key=lambda kv: -kv[1])[:5]]}
