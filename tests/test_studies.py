"""Studies as data (twinbench.studies): every declared study makes a valid plan at its full and its smallest size,
rounds alternate their order, the runner logs the machine's load per run, resumes and survives a failed run; one
study runs for real at its smallest size on one cell of this environment."""

from __future__ import annotations

import json
import stat
import sys

import pytest

from conftest import BACKEND, IMPLEMENTATIONS_HERE, ROOT, impl_id
from twinbench.backends.environments import ENVIRONMENTS
from twinbench.cli import main
from twinbench.records import load_records
from twinbench.studies.declared import STUDIES
from twinbench.studies.plan import COMMANDS, make_plan
from twinbench.studies.runner import LOG_NAME, read_log


@pytest.mark.parametrize("name", list(STUDIES))
def test_every_study_makes_a_valid_plan(name, capsys):
    study = STUDIES[name]
    full, smallest = make_plan(study, "OUT"), make_plan(study, "OUT", smallest=True)
    for plan in (full, smallest):
        assert plan and len({run.key for run in plan}) == len(plan)
        for run in plan:
            assert run.command in COMMANDS and run.env in ENVIRONMENTS
            assert run.out is None or run.out.startswith("OUT/")
            assert "{" not in " ".join(run.args)  # every parameter filled in
    assert {run.round for run in smallest} == {1}
    assert len({run.model for run in smallest if run.part == smallest[0].part}) == 1
    assert len(smallest) <= len(full)
    assert main(["study", "show", name, "--smallest"]) == 0
    shown = capsys.readouterr().out
    assert f"# {len(smallest)} runs" in shown and shown.count("\n") == len(smallest) + 3


def test_study_list_names_every_study(capsys):
    assert main(["study", "list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in lines] == list(STUDIES)


def test_rounds_alternate_their_order_and_cover_every_cell():
    plan = make_plan(STUDIES["malloc"], "OUT", rounds=2)
    first = [(run.label, run.variant) for run in plan if run.round == 1]
    second = [(run.label, run.variant) for run in plan if run.round == 2]
    assert second == first[::-1]
    assert {label for label, _ in first} == {"torch", "keras[torch]", "tf_keras", "keras[tensorflow]", "keras[jax]"}


def test_parameters_and_filters_change_the_plan():
    plan = make_plan(STUDIES["crosscheck"], "OUT", rounds=1, cells=("torch",), params={"paired_rounds": "0"})
    assert [run.command for run in plan] == ["throughput", "crosscheck"] * 2  # free, then pinned
    assert plan[2].args[plan[2].args.index("--cpus") + 1] == "0"
    interleave = make_plan(STUDIES["interleave"], "OUT", params={"budget_min": "20"})
    assert "--repeats" in interleave[0].args and int(interleave[0].args[interleave[0].args.index("--repeats") + 1]) > 29


FAKE_PYTHON = """#!{python}
import json, sys, pathlib
args = sys.argv[1:]
if "tf_keras" in args:
    sys.exit(3)
out = pathlib.Path(args[args.index("--out") + 1])
out.mkdir(parents=True, exist_ok=True)
(out / (args[args.index("--impl") + 1] + "-" + args[args.index("--backend") + 1] + ".json")).write_text("{{}}")
"""


def test_a_failed_run_is_logged_the_rest_go_on_and_a_rerun_resumes(tmp_path, capsys):
    fake = tmp_path / "python"
    fake.write_text(FAKE_PYTHON.format(python=sys.executable))
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    argv = ["study", "run", "trace", "--out", str(tmp_path / "study"), "--python", str(fake), "--no-afterwards"]
    assert main(argv) == 1  # tf_keras failed
    runs = [entry for entry in read_log(tmp_path / "study") if entry["event"] == "run"]
    assert [entry["status"] for entry in runs] == ["ok", "ok", "failed", "ok", "ok"]
    for entry in runs:
        assert len(entry["load_before"]) == 3 and len(entry["load_after"]) == 3
        assert entry["cpu_busy_share"] is None or 0 <= entry["cpu_busy_share"] <= 1
    assert runs[0]["wrote"] == [str(tmp_path / "study" / "round-1" / "torch-torch.json")]
    capsys.readouterr()

    assert main(argv) == 1  # again: the four done are skipped, the failed one runs again
    out = capsys.readouterr().out
    assert out.count(": done already") == 4
    again = [entry for entry in read_log(tmp_path / "study") if entry["event"] == "run"][len(runs):]
    assert [entry["label"] for entry in again] == ["tf_keras"]

    (tmp_path / "study" / "round-1" / "torch-torch.json").unlink()  # a record gone: its run is made again
    main(argv)
    assert capsys.readouterr().out.count(": done already") == 3
    assert (tmp_path / "study" / LOG_NAME).read_text().endswith("\n")
    assert all(json.loads(line) for line in (tmp_path / "study" / LOG_NAME).read_text().splitlines())


@pytest.mark.large  # a child process that starts a framework: the runner's plan, log, resume and failures are the
# fake-python test above, the trace itself is tests/test_trace.py's test_trace_of_a_tiny_cnn_adds_up (in-process)
@pytest.mark.skipif(not IMPLEMENTATIONS_HERE, reason="no Keras backend installed in this environment")
def test_the_trace_study_runs_at_its_smallest_size(tmp_path, monkeypatch, capsys):
    """One real child process: the trace study, smallest size, the first cell of this environment."""
    monkeypatch.chdir(ROOT)
    label = impl_id(IMPLEMENTATIONS_HERE[0])
    out = tmp_path / "trace"
    assert main(["study", "run", "trace", "--smallest", "--cell", label, "--out", str(out),
                 "--python", f"{BACKEND}={sys.executable}"]) == 0
    records, _ = load_records(out)
    assert [(r["kind"], r["status"]) for r in records] == [("trace", "ok")]
    assert "round-1" in records[0]["record_dir"]
