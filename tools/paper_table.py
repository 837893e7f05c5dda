"""The PyTorch paper's throughput table (Paszke et al., NeurIPS 2019, Table 1) as twinbench measures it.

Reads throughput records (``tools/measure_paper_table.sh`` writes them) and prints, for each of the six models, every
implementation's step time as a ratio to the native PyTorch twin's with its 95% bootstrap CI (the same ``ratio_ci``
and run pooling as ``twinbench compare``'s decomposition), and its throughput relative to the PyTorch twin
(1 / ratio). Next to it: the paper's published PyTorch / TensorFlow throughput ratio on a GPU (``PAPER``), for
orientation only — other hardware (NVIDIA GPUs, 2019), other versions, other model sizes and TensorFlow 1 graphs.

    python tools/paper_table.py docs/measurements/paper-table-cpu-2026-12-02/round-*

Imports no framework.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from twinbench.records import load_records  # noqa: E402
from twinbench.results.decompose import label, pooled, pooled_samples, run_labels  # noqa: E402
from twinbench.stats import ratio_ci  # noqa: E402

MODELS = ("alexnet", "vgg19", "resnet50", "mobilenet_v2", "gnmt", "ncf")
REFERENCE = ("torch", "torch")
# Table 1 of arXiv:1912.01703: (PyTorch, TensorFlow) training throughput on a GPU, float32 (images/s; tokens/s for
# GNMTv2; samples/s for NCF), as transcribed from the paper; check them against it before quoting them.
PAPER = {"alexnet": (1547, 1422), "vgg19": (119, 66), "resnet50": (212, 200), "mobilenet_v2": (463, 216),
         "gnmt": (15512, 9631), "ncf": (5.4e6, 4.8e6)}


def ratio_rows(records: list[dict]) -> list[dict]:
    """One row per (model, implementation) that has records next to the PyTorch twin's in the same group."""
    rows = []
    for (_, model, _, batch_size, input_shape, axes), cells in pooled(records).items():
        if model not in MODELS or REFERENCE not in cells:
            continue
        b, _ = pooled_samples(cells[REFERENCE])
        for cell, runs in cells.items():
            a, _ = pooled_samples(runs)
            if len(a) < 2 or len(b) < 2:
                continue
            result = ratio_ci(a, b, runs_a=run_labels(runs), runs_b=run_labels(cells[REFERENCE]))
            rows.append({"model": model, "batch_size": batch_size, "input_shape": input_shape,
                         "implementation": label(cell, axes), **result})
    order = {name: i for i, name in enumerate(MODELS)}
    return sorted(rows, key=lambda r: (order[r["model"]], r["implementation"] != "torch", r["implementation"]))


def table(rows: list[dict]) -> str:
    lines = ["| model | batch, input | implementation | step time / torch's [95% CI] | throughput vs torch | "
             "paper (GPU, 2019): PyTorch / TensorFlow throughput |", "|---|---|---|---|---|---|"]
    for row in rows:
        pt, tf = PAPER[row["model"]]
        shape = "x".join(map(str, row["input_shape"]))
        lines.append(f"| {row['model']} | {row['batch_size']}, {shape} | {row['implementation']} | "
                     f"{row['ratio']:.2f} [{row['ci_low']:.2f}-{row['ci_high']:.2f}] | {1 / row['ratio']:.2f}x | "
                     f"{pt / tf:.2f} ({pt:g} / {tf:g}) |")
    return "\n".join(lines)


def main(argv=None) -> int:
    paths = list(argv if argv is not None else sys.argv[1:])
    if not paths:
        print("usage: python tools/paper_table.py RESULTS_DIR [...]", file=sys.stderr)
        return 2
    records, _ = load_records(*paths)
    rows = ratio_rows(records)
    if not rows:
        print(f"no throughput records of {', '.join(MODELS)} with a torch cell in {', '.join(paths)}", file=sys.stderr)
        return 2
    print(table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
