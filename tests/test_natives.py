"""The two native twins in one process (the natives environment: ``throughput --env natives``, process=natives), the
pairing of their windows, and the rule that chooses between two sources of one ratio (``choose_sources``). Fake
records: nothing here times anything; one large test starts a real natives process where the environment has both
frameworks."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys

import numpy as np
import pytest

from twinbench.backends.environments import NATIVE_PAIR, NATIVES
from twinbench.cell import Cell, environment_cells
from twinbench.measuring.alternate import process_argv
from twinbench.measuring.interleave import abba_order, interleaved_configs
from twinbench.measuring.throughput import ThroughputConfig
from twinbench.records import SCHEMA, SCHEMA_VERSION, load_records
from twinbench.results.decompose import NOT_CHOSEN, choose_sources, decomposition
from twinbench.results.timing_verdicts import resolution_text


def test_the_natives_environment_holds_the_two_native_twins_on_their_own_process_axis(tmp_path):
    cells = environment_cells(NATIVES, "mnist_cnn", dataset="synthetic")
    assert [cell.pair for cell in cells] == list(NATIVE_PAIR)
    configs = interleaved_configs(ThroughputConfig(cells[0]), cells)
    assert {config.cell.process for config in configs} == {"natives"}
    assert [config.cell.label for config in configs] == ["torch process=natives", "tf_keras process=natives"]
    argv = process_argv("/venv/natives/bin/python", NATIVES, cells, out_dir=tmp_path)
    assert argv[argv.index("--env") + 1] == NATIVES and "--interleave" in argv
    # One environment's cells keep process=shared.
    torch_cells = environment_cells("torch", "mnist_cnn", dataset="synthetic")
    assert {c.cell.process for c in interleaved_configs(ThroughputConfig(torch_cells[0]), torch_cells)} == {"shared"}


def _row(half, status, process):
    return {"model": "m", "kind": "throughput", "dataset": "synthetic", "batch_size": 32,
            "meaning": "native gap: PyTorch vs tf.keras", "numerator": f"torch process={process}",
            "denominator": f"tf_keras process={process}", "half_width_pct": half, "verdict_status": status,
            "verdict": f"{status} {half}"}


def test_the_choice_rule_prefers_a_called_row_then_the_narrowest_ci():
    rows = choose_sources([_row(1.0, "unresolved", "shared"), _row(2.0, "called", "natives")])
    assert [row["chosen"] for row in rows] == [False, True]  # a verdict beats a narrower unresolved CI
    assert rows[0]["verdict_status"] == NOT_CHOSEN and rows[0]["own_verdict"] == "unresolved 1.0"
    assert "torch process=natives / tf_keras process=natives is sharper" in rows[0]["verdict"]
    rows = choose_sources([_row(3.0, "called", "shared"), _row(2.0, "called", "natives")])
    assert [row["chosen"] for row in rows] == [False, True]
    rows = choose_sources([_row(1.0, "busy", "shared"), _row(6.0, "unresolved", "natives")])
    assert [row["chosen"] for row in rows] == [False, True]  # never a busy row while a quiet one exists
    [alone] = choose_sources([_row(9.0, "unresolved", "shared")])
    assert alone["chosen"] and alone["verdict"] == "unresolved 9.0"


def _record(implementation, backend, steps, *, process_axis, process=None, window_index=None, alternation=None,
            run_id="r"):
    repeats = [{"repeat": i, "window": "whole", "profiler": True, "steps": 10, "step_s": s} for i, s in enumerate(steps)]
    for repeat, index in zip(repeats, window_index or [], strict=False):
        repeat["window_index"] = index
    record = {"schema": SCHEMA, "schema_version": SCHEMA_VERSION, "kind": "throughput", "status": "ok",
              "run_id": run_id, "started": "2026-01-01T00:00:00", "finished": "2026-01-01T00:00:10",
              "cell": Cell("mnist_cnn", implementation, backend, "synthetic", process=process_axis).as_dict(),
              "config": {"batch_size": 32}, "model": {"input_shape": [28, 28, 1], "params": 1},
              "timing": {"repeats": repeats, "first_step_s": 0.5}}
    if process:
        record["interleaved"] = {"with": ["other"], "process": process, "order": "ABBA",
                                 "window_index": list(window_index)}
    if alternation:
        record["alternation"] = alternation
    return record


def test_both_sources_of_torch_over_tf_keras_are_kept_and_the_paired_windows_chosen_when_sharper():
    rng = np.random.default_rng(0)
    # The natives process: 12 windows each, a drift both twins share, 1% window noise; true ratio 0.8.
    drift = np.linspace(1.0, 1.5, 12)
    order = abba_order(2, 12)
    natives = [_record(impl, backend, [0.010 * speed * d * (1 + 0.01 * rng.standard_normal()) for d in drift],
                       process_axis="natives", process="n1", run_id="n1",
                       window_index=[i for i, cell in enumerate(order) if cell == which])
               for which, ((impl, backend), speed) in enumerate(zip(NATIVE_PAIR, (0.8, 1.0), strict=True))]
    # Alternated processes of the torch and tensorflow environments: 5 blocks, 15% between processes.
    alternated = []
    for block in range(5):
        for slot, ((impl, backend), speed) in enumerate(zip(NATIVE_PAIR, (0.8, 1.0), strict=True)):
            factor = 1 + 0.15 * rng.standard_normal()
            info = {"sequence": "s", "slot": 2 * block + slot, "block": block, "environment": backend}
            alternated.append(_record(impl, backend, [0.010 * speed * factor] * 6, process_axis="shared",
                                      process=f"p{block}{slot}", window_index=list(range(0, 12, 2)),
                                      alternation=info, run_id=f"p{block}{slot}"))
    rows = [row for row in decomposition(natives + alternated) if row["meaning"].startswith("native gap")]
    assert len(rows) == 2
    by_source = {row["numerator"]: row for row in rows}
    paired, across = by_source["torch process=natives"], by_source["torch process=shared"]
    assert paired["samples"].endswith("paired by ABBA block") and paired["n_a"] == 12
    assert "alternated" in across["samples"] and across["n_a"] == 5
    assert paired["ratio"] == pytest.approx(0.8, rel=0.02)
    assert paired["half_width_pct"] < across["half_width_pct"]
    assert paired["chosen"] and not across["chosen"] and across["verdict_status"] == NOT_CHOSEN
    # The resolution line counts one row per ratio: the chosen one.
    assert resolution_text(rows).startswith("resolution reached: 1 of 1 ratios called")


def _both_frameworks() -> bool:
    return all(importlib.util.find_spec(name) is not None for name in ("torch", "tensorflow", "tf_keras"))


@pytest.mark.large
@pytest.mark.skipif(not _both_frameworks(), reason="needs the natives environment (PyTorch, TensorFlow and tf.keras "
                                                   "in one virtualenv: nox -s natives --install-only)")
def test_a_real_natives_process_interleaves_the_two_native_twins(tmp_path):
    env = {**os.environ, "KERAS_BACKEND": "torch", "TF_CPP_MIN_LOG_LEVEL": "2"}
    done = subprocess.run([sys.executable, "-m", "twinbench", "throughput", "--env", NATIVES, "--model", "mnist_cnn",
                           "--batch-size", "8", "--steps", "2", "--warmup", "1", "--repeats", "2", "--threads", "1",
                           "--out", str(tmp_path)], env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    records = load_records(tmp_path)[0]
    assert sorted(Cell.of(r).label for r in records) == ["tf_keras process=natives", "torch process=natives"]
    assert len({r["interleaved"]["process"] for r in records}) == 1
    for record in records:
        assert set(record["interleaved"]["pools"]) == {"torch process=natives", "tf_keras process=natives"}
        assert record["interleaved"]["side_by_side"]
    rows = [row for row in decomposition(records) if row["meaning"].startswith("native gap")]
    assert len(rows) == 1 and rows[0]["samples"].endswith("paired by ABBA block")


def test_the_alternated_studies_hand_every_named_environment_its_python(tmp_path, monkeypatch):
    from twinbench.studies.declared import STUDIES
    from twinbench.studies.plan import StudyError, make_plan
    from twinbench.studies.runner import check_can_run, named_pythons, python_paths

    study = STUDIES["natives-pair"]
    [run] = make_plan(study, "OUT")
    assert run.command == "alternate" and "--env" not in run.args
    assert "--budget-s" in run.args and run.args[run.args.index("--budget-s") + 1] == "180"
    pythons = python_paths(study, [f"{env}={tmp_path / env}" for env in ("torch", "tensorflow")])
    assert pythons[NATIVES] == f".nox/{NATIVES}/bin/python"  # nox -s natives
    argv = named_pythons(run.args, pythons)
    assert f"--python=torch={tmp_path / 'torch'}" in argv and f"--python={NATIVES}=.nox/{NATIVES}/bin/python" in argv
    (tmp_path / "torch").touch()
    (tmp_path / "tensorflow").touch()
    monkeypatch.chdir(tmp_path)  # no .nox/natives here, whatever the checkout has built
    with pytest.raises(StudyError, match=f"nox -s {NATIVES} --install-only"):
        check_can_run(study, [run], pythons)
    [six] = make_plan(STUDIES["six-ratios"], "OUT")
    assert [arg for arg in six.args if arg.startswith("--python=")] == [
        "--python=torch", "--python=tensorflow", "--python=jax"]
    assert six.args[six.args.index("--budget-s") + 1] == "600"
    assert six.args[six.args.index("--allocator") + 1] == "tuned" and six.args[six.args.index("--threads") + 1] == "1"


def test_alternate_takes_the_natives_python_and_names_the_environments_when_one_is_unknown():
    import argparse

    from twinbench.cli.options import env_python

    assert env_python(f"{NATIVES}=/venv/bin/python") == (NATIVES, "/venv/bin/python")
    with pytest.raises(argparse.ArgumentTypeError, match="torch, tensorflow, jax, natives"):
        env_python("both=/venv/bin/python")
