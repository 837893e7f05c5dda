"""Two tables of measured ratios, as ``twinbench compare DIR... --view NAME`` prints them (``VIEWS``).

- ``paper-table``: the PyTorch paper's throughput table (Paszke et al., NeurIPS 2019, Table 1) as twinbench measures
  it (``twinbench study run paper-table``): for each of the six models, every implementation's step time as a ratio
  to the native PyTorch twin's with its 95% bootstrap CI (the same ``ratio_ci`` and run pooling as ``compare``'s
  decomposition), and its throughput relative to the PyTorch twin (1 / ratio). Next to it the paper's published
  PyTorch / TensorFlow throughput ratio on a GPU (``PAPER``), for orientation only: other hardware (NVIDIA GPUs,
  2019), other versions, other model sizes and TensorFlow 1 graphs.
- ``replica-scaling``: data-parallel scaling on one machine (``twinbench study run replicas``): per model and
  implementation, the step time at 2 replicas of T threads each over the step time at 1 replica of T threads and of
  2T threads, each a ratio of medians with its 95% bootstrap CI. The global batch is the same in every run, so the
  scaling efficiency against one replica of T threads is ``1 / ratio / 2`` (1.0: two replicas do the work twice as
  fast).

Imports no framework.
"""

from __future__ import annotations

from twinbench.backends.environments import implementation_label
from twinbench.results.decompose import label, pooled, pooled_samples, run_labels
from twinbench.stats import ratio_ci

PAPER_MODELS = ("alexnet", "vgg19", "resnet50", "mobilenet_v2", "gnmt", "ncf")
REFERENCE = ("torch", "torch")
# Table 1 of arXiv:1912.01703: (PyTorch, TensorFlow) training throughput on a GPU, float32 (images/s; tokens/s for
# GNMTv2; samples/s for NCF), as transcribed from the paper; check them against it before quoting them.
PAPER = {"alexnet": (1547, 1422), "vgg19": (119, 66), "resnet50": (212, 200), "mobilenet_v2": (463, 216),
         "gnmt": (15512, 9631), "ncf": (5.4e6, 4.8e6)}


def paper_rows(records: list[dict]) -> list[dict]:
    """One row per (model, implementation) that has records next to the PyTorch twin's in the same group."""
    rows = []
    for (_, model, _, batch_size, input_shape, axes), cells in pooled(records).items():
        if model not in PAPER_MODELS or REFERENCE not in cells:
            continue
        b, _ = pooled_samples(cells[REFERENCE])
        for cell, runs in cells.items():
            a, _ = pooled_samples(runs)
            if len(a) < 2 or len(b) < 2:
                continue
            result = ratio_ci(a, b, runs_a=run_labels(runs), runs_b=run_labels(cells[REFERENCE]))
            rows.append({"model": model, "batch_size": batch_size, "input_shape": input_shape,
                         "implementation": label(cell, axes), **result})
    order = {name: i for i, name in enumerate(PAPER_MODELS)}
    return sorted(rows, key=lambda r: (order[r["model"]], r["implementation"] != "torch", r["implementation"]))


def paper_table(rows: list[dict]) -> str:
    lines = ["| model | batch, input | implementation | step time / torch's [95% CI] | throughput vs torch | "
             "paper (GPU, 2019): PyTorch / TensorFlow throughput |", "|---|---|---|---|---|---|"]
    for row in rows:
        pt, tf = PAPER[row["model"]]
        shape = "x".join(map(str, row["input_shape"]))
        lines.append(f"| {row['model']} | {row['batch_size']}, {shape} | {row['implementation']} | "
                     f"{row['ratio']:.2f} [{row['ci_low']:.2f}-{row['ci_high']:.2f}] | {1 / row['ratio']:.2f}x | "
                     f"{pt / tf:.2f} ({pt:g} / {tf:g}) |")
    return "\n".join(lines)


def _replica_cells(records: list[dict]) -> dict[tuple, list[dict]]:
    """Successful throughput records by (model, implementation label, replicas, threads per replica)."""
    cells: dict[tuple, list[dict]] = {}
    for record in records:
        if record.get("status") != "ok" or record.get("kind") != "throughput":
            continue
        cell, config = record["cell"], record.get("config") or {}
        replicas = ((record.get("settings") or {}).get("replicas") or {}).get("world_size") or 1
        key = (cell["model"], implementation_label(cell["implementation"], cell["backend"]), replicas,
               config.get("threads"))
        cells.setdefault(key, []).append(record)
    return cells


def scaling_rows(records: list[dict]) -> list[dict]:
    """Per model and implementation with 2-replica records: their step time over one replica's, on as many threads
    (``vs_one_core``) and on twice as many (``vs_two_cores``)."""
    cells = _replica_cells(records)
    rows = []
    for (model, impl, replicas, threads), runs in sorted(cells.items(), key=lambda item: str(item[0])):
        if replicas != 2:
            continue
        a, _ = pooled_samples(runs)
        row = {"model": model, "implementation": impl, "threads": threads}
        for name, base_threads in (("vs_one_core", threads), ("vs_two_cores", 2 * threads if threads else None)):
            base = cells.get((model, impl, 1, base_threads))
            if base:
                b, _ = pooled_samples(base)
                row[name] = ratio_ci(a, b, runs_a=run_labels(runs), runs_b=run_labels(base))
        rows.append(row)
    return rows


def scaling_table(rows: list[dict]) -> str:
    lines = ["| model | implementation | 2 replicas / 1 replica, 1 core [95% CI] | efficiency vs 1 core | "
             "2 replicas / 1 replica, 2 cores [95% CI] |", "|---|---|---|---|---|"]

    def cell(result):
        return f"{result['ratio']:.2f} [{result['ci_low']:.2f}-{result['ci_high']:.2f}]" if result else "—"

    for row in rows:
        one, two = row.get("vs_one_core"), row.get("vs_two_cores")
        efficiency = f"{1 / one['ratio'] / 2:.2f}" if one else "—"
        lines.append(f"| {row['model']} | {row['implementation']} | {cell(one)} | {efficiency} | {cell(two)} |")
    return "\n".join(lines)


# name -> (rows from records, the table of the rows, what the records lacked when there are no rows)
VIEWS = {
    "paper-table": (paper_rows, paper_table, f"no throughput records of {', '.join(PAPER_MODELS)} with a torch cell"),
    "replica-scaling": (scaling_rows, scaling_table, "no throughput records at 2 replicas"),
}
