"""Data-parallel scaling on one machine, from the records of ``tools/measure_replicas.sh``.

For each model and implementation: the step time at 2 replicas (one core each, ``threads-1/``) over the step time
at 1 replica on one core (``threads-1/``) and on two cores (``threads-2/``), each a ratio of medians with its 95%
bootstrap CI (``twinbench.stats.ratio_ci``). The global batch is the same in every run, so the scaling
efficiency against one core is ``1 / ratio / 2`` (1.0: two replicas do the work twice as fast).

    python tools/replica_scaling.py docs/measurements/replicas-cpu-2026-12-02/round-1

Imports no framework.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from twinbench.records import load_records  # noqa: E402
from twinbench.results.decompose import pooled_samples, run_labels  # noqa: E402
from twinbench.stats import ratio_ci  # noqa: E402


def _cells(directory) -> dict[tuple, list[dict]]:
    """Successful records by (model, implementation label without replicas, replicas)."""
    records, _ = load_records(directory)
    cells: dict[tuple, list[dict]] = {}
    for record in records:
        if record.get("status") != "ok":
            continue
        cell = record["cell"]
        impl = cell["implementation"] if cell["implementation"] != "keras" else f"keras[{cell['backend']}]"
        replicas = ((record.get("settings") or {}).get("replicas") or {}).get("world_size") or 1
        cells.setdefault((cell["model"], impl, replicas), []).append(record)
    return cells


def scaling_rows(round_dir) -> list[dict]:
    one_core, two_cores = _cells(Path(round_dir) / "threads-1"), _cells(Path(round_dir) / "threads-2")
    rows = []
    for (model, impl, replicas), runs in sorted(one_core.items()):
        if replicas != 2:
            continue
        a, _ = pooled_samples(runs)
        row = {"model": model, "implementation": impl}
        for name, cells in (("vs_one_core", one_core), ("vs_two_cores", two_cores)):
            base = cells.get((model, impl, 1))
            if base:
                b, _ = pooled_samples(base)
                row[name] = ratio_ci(a, b, runs_a=run_labels(runs), runs_b=run_labels(base))
        rows.append(row)
    return rows


def table(rows: list[dict]) -> str:
    lines = ["| model | implementation | 2 replicas / 1 replica, 1 core [95% CI] | efficiency vs 1 core | "
             "2 replicas / 1 replica, 2 cores [95% CI] |", "|---|---|---|---|---|"]

    def cell(result):
        return f"{result['ratio']:.2f} [{result['ci_low']:.2f}-{result['ci_high']:.2f}]" if result else "—"

    for row in rows:
        one, two = row.get("vs_one_core"), row.get("vs_two_cores")
        efficiency = f"{1 / one['ratio'] / 2:.2f}" if one else "—"
        lines.append(f"| {row['model']} | {row['implementation']} | {cell(one)} | {efficiency} | {cell(two)} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    args = list(argv if argv is not None else sys.argv[1:])
    if len(args) != 1:
        print("usage: python tools/replica_scaling.py ROUND_DIR (holding threads-1/ and threads-2/)", file=sys.stderr)
        return 2
    rows = scaling_rows(args[0])
    if not rows:
        print(f"no 2-replica records in {args[0]}/threads-1", file=sys.stderr)
        return 2
    print(table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
