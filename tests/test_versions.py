"""Across versions: the stack axis (spec grammar, labels, the installed check), stacks never pooled, the sweep's and
the A/B's input errors, and the A/B's verdicts on synthetic records. Framework-free and fast; what makes a virtualenv
or runs a process is in the large tier."""

from __future__ import annotations

import json
import sys

import pytest

from twinbench.backends import stacks
from twinbench.backends.stacks import StackError, canonical_stack, check_installed, parse_stack
from twinbench.cell import Cell
from twinbench.records import latest_runs, runs_of
from twinbench.results import ab, verdict
from twinbench.results.decompose import group_key, pooled
from twinbench.studies import versions
from twinbench.studies.stacks import StackEnvError, check_stack, env_dir, slug


def test_a_spec_is_written_one_way():
    assert canonical_stack("") == canonical_stack("default") == ""
    assert canonical_stack(" torch==2.14.1+cpu + Keras==3.10.0") == "keras==3.10.0+torch==2.14.1+cpu"
    assert canonical_stack("tf_keras==2.20.0") == "tf-keras==2.20.0"
    item = parse_stack("keras@relative/keras")[0]
    assert item.path.startswith("/") and item.path.endswith("relative/keras") and item.version is None


@pytest.mark.parametrize("spec, words", [
    ("keras=3.10", "each item is NAME==VERSION or NAME@PATH"),
    ("numpy==2.0", "Valid choices: keras, torch"),
    ("keras==3.1+keras==3.2", "names keras twice"),
    ("keras==three", "not a version"),
])
def test_a_bad_spec_is_one_line(spec, words):
    with pytest.raises(StackError) as err:
        parse_stack(spec)
    assert words in str(err.value) and "\n" not in str(err.value)


def test_the_stack_shows_in_identity_and_label_only_off_the_default_pins():
    default = Cell("cifar_cnn", "keras", "torch", "synthetic")
    assert default.stack == "" and "stack" not in default.as_dict() and default.label == "keras[torch]"
    other = Cell("cifar_cnn", "keras", "torch", "synthetic", stack="keras==3.10.0")
    assert other.label == "keras[torch] keras=3.10.0" and other.as_dict()["stack"] == "keras==3.10.0"
    assert other.file_id.endswith("__stack-keras==3.10.0") and other != default
    path = Cell("cifar_cnn", "keras", "torch", "synthetic", stack=canonical_stack("keras@/tmp/my keras/keras"))
    assert "/" not in path.file_id and " " not in path.file_id and path.label == "keras[torch] keras@/tmp/my keras/keras"
    assert Cell.of({"cell": other.as_dict()}) == other


def _record(stack: str, step: float, *, block=0, slot="A", implementation="keras", busy=False) -> dict:
    cell = Cell("cifar_cnn", implementation, "torch", "synthetic", stack=stack)
    contention = {"busy": busy, "reasons": ["others"] if busy else [], "others_share": 0.5 if busy else 0.01}
    return {"kind": "throughput", "status": "ok", "cell": cell.as_dict(), "config": {"batch_size": 32, "stack": stack},
            "model": {"input_shape": [32, 32, 3]}, "started": f"2026-12-07T05:00:{block:02d}+00:00",
            "alternation": {"sequence": "s1", "block": block, "slot": block, "environment": slot},
            "timing": {"repeats": [{"step_s": step * f, "profiler": True, "contention": contention}
                                   for f in (0.99, 1.0, 1.01)]}}


def test_records_of_two_stacks_never_pool():
    a, b = _record("", 0.010), _record("keras==3.10.0", 0.020)
    assert group_key(a) != group_key(b)
    assert len(runs_of([a, b])) == 2 and len(latest_runs([a, b])) == 2
    groups = pooled([a, b])
    assert len(groups) == 2 and all(len(runs) == 1 for cells in groups.values() for runs in cells.values())


def test_a_process_checks_its_stack_against_what_is_installed(tmp_path, monkeypatch):
    check_installed("")  # the project's pins: nothing claimed, nothing to check
    with pytest.raises(StackError, match="says keras 0.0.1, but this environment has keras") as err:
        check_installed("keras==0.0.1")
    assert "\n" not in str(err.value)
    with pytest.raises(StackError, match="from /nowhere/keras"):
        check_installed("keras@/nowhere/keras")
    (tmp_path / stacks.MARKER).write_text(json.dumps({"spec": "keras==3.10.0"}))
    monkeypatch.setattr(sys, "prefix", str(tmp_path))  # inside the environment of another stack
    with pytest.raises(StackError, match="environment of --stack 'keras==3.10.0'"):
        check_installed("")


def test_a_stack_that_cannot_be_made_says_why_in_one_line(tmp_path):
    with pytest.raises(StackEnvError, match="the torch environment has no jax"):
        check_stack("jax==0.4.30", "torch")
    with pytest.raises(StackEnvError, match="not a keras checkout"):
        check_stack(f"keras@{tmp_path}", "torch")
    wheel = tmp_path / "torch-2.0.0-py3-none-any.whl"
    wheel.write_bytes(b"")
    with pytest.raises(StackEnvError, match="a wheel of another package"):
        check_stack(f"keras@{wheel}", "torch")
    (tmp_path / "pyproject.toml").write_text("")
    (tmp_path / "keras").mkdir()
    assert check_stack(f"keras@{tmp_path}", "torch")[0].path == str(tmp_path)
    assert slug("") == "default" and slug("keras==3.10.0") == "keras-3.10.0"
    assert env_dir("keras==3.10.0", "torch", root="R", copy="null").as_posix() == "R/stack-torch-keras-3.10.0-null"


def test_the_sweeps_list_of_stacks():
    assert versions.last_patches(["3.1.1", "3.1.0", "3.0.5", "3.10.0", "3.2.0rc1", "2.15.0"]) == ["3.0.5", "3.1.1",
                                                                                                  "3.10.0"]
    assert versions.parse_stacks("keras==3.8.0, default,keras==3.10.0") == ["keras==3.8.0", "", "keras==3.10.0"]
    for text, words in (("keras==3.8.0,Keras==3.8.0", "twice"), (" , ", "empty")):
        with pytest.raises(versions.VersionsError, match=words):
            versions.parse_stacks(text)


def test_a_sweep_logs_its_stacks_beside_its_records_and_tries_apart(tmp_path):
    out = tmp_path / "sweep"
    assert versions.try_directory(out) == tmp_path / "sweep-try"  # a try never pools with the measured windows
    runs = [versions.StackRun("keras==3.0.5"), versions.StackRun("keras==3.99.0", status="failed", stage="make",
                                                                 reason="no such release")]
    summary = {"env": "torch", "model": "cifar_cnn", "stacks": [{**run.__dict__, "slot": run.spec} for run in runs]}
    versions.append_log(out, summary)
    versions.append_log(out, summary)
    lines = (out / versions.LOG).read_text().splitlines()
    assert len(lines) == 2 and json.loads(lines[1]) == summary
    text = versions.summary_text(summary)
    assert "keras==3.0.5             ok" in text and "failed (make): no such release" in text


def _ab_records(*, blocks: int, keras_b: float, null: float = 1.0, busy=False) -> list[dict]:
    """keras[torch] and torch in A, B and A' for ``blocks`` blocks; B changes keras[torch]'s step by ``keras_b``, A' all
    by ``null``; a drift of the machine moves every slot of a block alike."""
    records = []
    for block in range(blocks):
        drift = 1.0 + 0.05 * ((block * 7) % 5) / 5  # up to 5% between blocks: the pairing cancels it
        for slot, stack, keras_factor, torch_factor in (("A", "", 1.0, 1.0), ("B", "keras==3.10.0", keras_b, 1.0),
                                                        ("A'", "", null, null)):
            wobble = 1.0 + 0.002 * ((block + len(slot)) % 3)
            records.append(_record(stack, 0.020 * drift * keras_factor * wobble, block=block, slot=slot, busy=busy))
            records.append(_record(stack, 0.010 * drift * torch_factor * wobble, block=block, slot=slot,
                                   implementation="torch"))
    return records


def _rows(records):
    return {row["what"]: row for row in ab.ab_rows(ab.slot_records(records), "torch", n_boot=100)}


def test_ab_calls_a_change_beyond_the_null_and_no_difference_within_it():
    rows = _rows(_ab_records(blocks=8, keras_b=1.10))
    assert set(rows) == {"torch", "keras[torch]", "keras[torch] / torch"}
    keras, torch, ratio = rows["keras[torch]"], rows["torch"], rows["keras[torch] / torch"]
    assert keras["verdict_status"] == verdict.CALLED and "slower" in keras["verdict"]
    assert keras["b_over_a"]["ratio"] == pytest.approx(1.10, rel=0.01)
    assert ratio["verdict_status"] == verdict.CALLED and ratio["b_over_a"]["ratio"] == pytest.approx(1.10, rel=0.01)
    assert torch["verdict_status"] == ab.NO_DIFFERENCE and torch["mde_pct"] is not None and torch["mde_pct"] < 2
    assert "smallest change seen" in ab.ab_table(list(rows.values()))


def test_ab_gives_no_verdict_from_too_few_blocks_a_busy_machine_or_a_null_that_differs():
    few = _rows(_ab_records(blocks=3, keras_b=1.10))["keras[torch]"]
    assert few["verdict_status"] == verdict.UNRESOLVED and "3 independent samples" in few["verdict"]
    busy = _rows(_ab_records(blocks=8, keras_b=1.10, busy=True))["keras[torch]"]
    assert busy["verdict_status"] == verdict.BUSY and "machine busy" in busy["verdict"]
    drifting = _rows(_ab_records(blocks=8, keras_b=1.10, null=1.04))["keras[torch]"]
    assert drifting["verdict_status"] == ab.NULL_DIFFERS and "two environments of A alone differ" in drifting["verdict"]


def _env_name() -> str:
    import os
    return os.environ.get("KERAS_BACKEND", "torch")


@pytest.mark.large
def test_a_stack_environment_is_made_over_the_base_and_runs_only_as_its_stack(tmp_path):
    """Makes a real stack (pip, the package index), then runs a cell in it: as its stack it trains, as another it
    refuses in one line; a release the index lacks is one line naming the releases it has."""
    import subprocess

    from twinbench.studies.stacks import ensure_stack_env
    env = _env_name()
    made = ensure_stack_env("keras==3.14.1", env, base_python=sys.executable, root=tmp_path, log=lambda _: None)
    assert made.marker["own_packages"]["keras"] == "3.14.1" and "torch" not in made.marker["own_packages"]
    version = subprocess.run([made.python, "-c", "import importlib.metadata as m; print(m.version('keras'))"],
                             capture_output=True, text=True, check=True).stdout.strip()
    assert version == "3.14.1"
    again = ensure_stack_env("keras==3.14.1", env, base_python=sys.executable, root=tmp_path, log=lambda _: None)
    assert again.marker["created"] == made.marker["created"]  # reused
    impl = {"torch": "torch", "tensorflow": "tf_keras", "jax": "keras"}[env]
    run = [made.python, "-m", "twinbench", "throughput", "--model", "cifar_cnn", "--impl", impl, "--backend", env,
           "--steps", "1", "--warmup", "1", "--repeats", "1", "--overhead-repeats", "0", "--compute-repeats", "0",
           "--batch-size", "8", "--out", str(tmp_path / "out")]
    ok = subprocess.run([*run, "--stack", "keras==3.14.1"], capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr[-2000:]
    record = json.loads(next((tmp_path / "out").glob("*stack-keras==3.14.1.json")).read_text())
    assert record["config"]["stack"] == "keras==3.14.1" and record["environment"]["versions"]["keras"] == "3.14.1"
    wrong = subprocess.run(run, capture_output=True, text=True)
    assert wrong.returncode == 2 and "environment of --stack 'keras==3.14.1'" in wrong.stderr
    assert len(wrong.stderr.strip().splitlines()) == 1
    with pytest.raises(StackEnvError, match=r"keras==3\.99\.0: no such release of keras; the index has .*3\.14\.1"):
        ensure_stack_env("keras==3.99.0", env, base_python=sys.executable, root=tmp_path, log=lambda _: None)


def test_a_stack_that_cannot_be_made_is_a_failed_cell_with_its_reason_and_the_sweep_goes_on(tmp_path):
    runs = versions.make_and_try([f"keras@{tmp_path / 'nowhere'}"], "torch", "cifar_cnn", base_python=sys.executable,
                                 out=tmp_path / "out", root=tmp_path, log=lambda _: None)
    assert runs[0].status == "failed" and runs[0].stage == "make" and "no such folder" in runs[0].reason
    records = [json.loads(path.read_text()) for path in (tmp_path / "out").glob("*.json")]
    assert sorted(Cell.of(r).label.split()[0] for r in records) == ["keras[torch]", "torch"]
    assert all(r["status"] == "failed" and "no such folder" in r["error"]["message"]
               and r["config"]["stack"] == runs[0].spec for r in records)


@pytest.mark.parametrize("argv, words", [
    (["ab", "keras==3.14.1", "Keras==3.14.1"], "A and B are the same stack (keras==3.14.1)"),
    (["ab", "default", "keras=3"], "each item is NAME==VERSION or NAME@PATH"),
    (["sweep", "--stacks", "keras==3.8.0,jax==0.4.30"], "the torch environment has no jax"),
    (["sweep", "--stacks", "keras==3.8.0", "--env", "tpu"], "Valid choices: torch, tensorflow, jax"),
])
def test_sweep_and_ab_errors_are_one_line(argv, words, tmp_path, capsys):
    from twinbench.cli import main
    assert main([*argv, "--out", str(tmp_path / "out"), "--stacks-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert words in err and len(err.strip().splitlines()) == 1


def test_sweep_and_ab_processes_keep_their_memory_unless_told_otherwise():
    from twinbench.cli import build_parser
    from twinbench.measuring.alternate import process_argv

    args = build_parser().parse_args(["ab", "keras==3.14.1", "keras==3.15.1"])
    assert args.allocator == "tuned" and build_parser().parse_args(["sweep"]).allocator == "tuned"
    assert build_parser().parse_args(["sweep", "--allocator", "system"]).allocator == "system"
    cells = versions._cells("torch", "cifar_cnn", "keras==3.14.1", args.allocator)
    argv = process_argv("python", "torch", cells, out_dir="OUT")
    assert all(cell.allocator == "tuned" for cell in cells) and argv[argv.index("--allocator") + 1] == "tuned"
    system = process_argv("python", "torch", versions._cells("torch", "cifar_cnn", "keras==3.14.1", "system"),
                          out_dir="OUT")
    assert "--allocator" not in system  # glibc's own settings: the axis' default, named by no option
