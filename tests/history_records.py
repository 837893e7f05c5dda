"""Synthetic records for the history tests: throughput records of keras[torch] and torch at several stacks."""

from __future__ import annotations

import numpy as np

from twinbench.cell import Cell
from twinbench.records import SCHEMA, SCHEMA_VERSION


def throughput_record(implementation, *, keras, step_s, run, commit="a" * 40, spread=0.01, seed=0, repeats=4):
    """One run (process) of a cifar_cnn throughput cell on the torch backend with Keras ``keras`` installed."""
    rng = np.random.default_rng([seed, run, implementation == "keras", *map(int, keras.split(".")), int(commit[:6], 16)])
    level = step_s * (1 + spread * rng.standard_normal())  # processes differ from each other
    times = level * (1 + spread / 4 * rng.standard_normal(repeats))
    return {"schema": SCHEMA, "schema_version": SCHEMA_VERSION, "kind": "throughput", "status": "ok",
            "run_id": f"{implementation}-{keras}-{commit[:4]}-{run}",
            "started": f"2026-01-01T00:{run:02d}:00", "finished": f"2026-01-01T00:{run:02d}:30",
            "cell": Cell("cifar_cnn", implementation, "torch", "synthetic").as_dict(),
            "config": {"batch_size": 64}, "model": {"input_shape": [32, 32, 3], "params": 1},
            "timing": {"first_step_s": 1.0,
                       "repeats": [{"repeat": i, "profiler": True, "step_s": float(t)} for i, t in enumerate(times)]},
            "environment": {"versions": {"keras": keras, "torch": "2.14.1"}, "git": {"commit": commit, "dirty": False},
                            "machine": {"cpu_model": "Synthetic CPU", "cpu_count_logical": 2}, "gpu": None}}


def series_records(ratios, *, versions=None, runs=5, spread=0.01, seed=0, torch_step_s=0.01):
    """keras[torch] and torch records of one stack per ratio in ``ratios`` (keras[torch] / torch step time)."""
    versions = versions or [f"3.{minor}.0" for minor in range(len(ratios))]
    records = []
    for version, ratio in zip(versions, ratios, strict=True):
        for run in range(runs):
            records.append(throughput_record("torch", keras=version, step_s=torch_step_s, run=run, spread=spread,
                                             seed=seed))
            records.append(throughput_record("keras", keras=version, step_s=torch_step_s * ratio, run=run,
                                             spread=spread, seed=seed))
    return records
