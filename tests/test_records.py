"""The record API (twinbench.records): a record is never overwritten, runs of a cell are pooled, directories are
read with their subdirectories, timelines are stored compressed (older plain ones read and convert losslessly), and
every record committed under docs/measurements reads. Framework-free except the one real run at the end."""

from __future__ import annotations

import gzip
import json

import pytest

from conftest import IMPLEMENTATIONS_HERE, ROOT, requires_backend
from twinbench.cell import Cell
from twinbench.cli import main
from twinbench.measuring.children import completed
from twinbench.measuring.train import RunConfig
from twinbench.records import (
    KINDS,
    PLAIN_TIMELINE_SUFFIX,
    SCHEMA,
    SCHEMA_VERSION,
    TIMELINE_SCHEMA,
    TIMELINE_SUFFIX,
    RecordError,
    compress_timelines,
    failed_record,
    latest_runs,
    load_records,
    new_record,
    read_record,
    read_timeline,
    read_timeline_file,
    timeline_path,
    write_json_atomic,
    write_record,
)

MEASUREMENTS = ROOT / "docs" / "measurements"
MEASURED = MEASUREMENTS / "cpu-2026-12-01" / "bench"
# Studies whose records name a timeline that was never committed (left out to keep the repository small).
TIMELINES_LEFT_OUT = ("cpu-2026-12-01", "definition-effect-2026-12-01", "overhead-cpu-2026-12-02/session3")
# A committed record with its (converted) timeline: the sample the losslessness test turns back into the old form.
SAMPLE = MEASUREMENTS / "modes-cpu-2026-12-02" / "round-1" / "resnet50__keras__torch__synthetic__jit-on.json"


def throughput_record(implementation, backend, step_times, *, started="2026-01-01T00:00:00"):
    repeats = [{"repeat": i, "profiler": True, "step_s": s} for i, s in enumerate(step_times)]
    return {"schema": SCHEMA, "schema_version": SCHEMA_VERSION, "kind": "throughput", "status": "ok",
            "started": started, "cell": Cell("cifar_cnn", implementation, backend, "synthetic").as_dict(),
            "config": {"batch_size": 64}, "model": {"input_shape": [32, 32, 3], "params": 1},
            "timing": {"repeats": repeats, "first_step_s": 1.0}}


def test_new_and_failed_records_share_one_header():
    config = RunConfig(Cell("cifar_cnn", "keras", "jax"))
    record = new_record("train", config)
    assert {"schema", "schema_version", "kind", "cell", "run_id", "config", "started"} <= set(record)
    assert record["cell"] == Cell("cifar_cnn", "keras", "jax").as_dict() and record["config"]["epochs"] == 5
    failed = failed_record("train", config, RuntimeError("out of luck\nsecond line"), batch_size=32)
    assert failed["status"] == "failed" and failed["error"]["message"] == "out of luck"
    assert failed["error"]["batch_size"] == 32 and "RuntimeError" in failed["error"]["traceback"]
    assert set(KINDS) == {"train", "throughput", "profiler_cost", "trace", "latency", "breakdown", "calls", "generate"}
    with pytest.raises(ValueError, match="Unknown record kind"):
        new_record("training", config)


def test_a_second_run_of_a_cell_gets_its_own_file_and_timeline(tmp_path):
    first, second = (throughput_record("torch", "torch", [1.0, 1.1]) for _ in range(2))
    for record in (first, second):
        record["timeline"] = [{"name": "run", "samples": [], "windows": [], "markers": []}]
    path_1, path_2 = write_record(first, tmp_path), write_record(second, tmp_path)
    assert path_1.name == "cifar_cnn__torch__torch__synthetic.json"  # the first run: the cell's own name
    assert path_2.name == f"cifar_cnn__torch__torch__synthetic.{second['run_id']}.json"
    assert read_timeline(path_1)["cell"] == read_timeline(path_2)["cell"]
    assert path_1.with_name(first["timeline_file"]) != path_2.with_name(second["timeline_file"])
    records, skipped = load_records(tmp_path)
    assert len(records) == 2 and skipped == []
    with pytest.raises(FileExistsError):
        write_json_atomic(path_1, {"overwritten": True}, overwrite=False)
    assert json.loads(path_1.read_text())["run_id"] == first["run_id"]
    assert not list(tmp_path.glob(".*.tmp"))


def test_timelines_are_written_compressed_and_the_same_payload_gives_the_same_bytes(tmp_path):
    record = throughput_record("torch", "torch", [1.0])
    segments = [{"name": "run", "samples": [{"t_s": 0.1, "cpu_percent": 99.5}], "windows": [], "markers": []}]
    path = write_record({**record, "timeline": segments}, tmp_path / "a")
    sidecar = path.with_name(read_record(path)["timeline_file"])
    assert sidecar.name == "cifar_cnn__torch__torch__synthetic" + TIMELINE_SUFFIX == timeline_path(path).name
    assert json.loads(gzip.decompress(sidecar.read_bytes()))["segments"] == segments  # plain gzip: zcat reads it
    assert read_timeline(path)["segments"] == segments
    again = write_record({**record, "timeline": segments}, tmp_path / "b")
    assert timeline_path(again).read_bytes() == sidecar.read_bytes()  # no time stamp inside: git sees no change


def old_form(record_path, directory):
    """A copy of a committed record and its timeline as they were written before timelines were compressed: the
    record naming ``<name>.timeline.json``, the sidecar indented JSON (the old ``write_timeline``)."""
    sidecar = timeline_path(record_path)
    plain_name = sidecar.name[: -len(".gz")]
    text = record_path.read_text().replace(f'"timeline_file": "{sidecar.name}"', f'"timeline_file": "{plain_name}"')
    (directory / record_path.name).write_text(text)
    payload = json.loads(gzip.decompress(sidecar.read_bytes()))
    (directory / plain_name).write_text(json.dumps(payload, indent=2) + "\n")
    return directory / record_path.name, payload


def test_compressing_an_old_timeline_loses_nothing_and_changes_one_line_of_its_record(tmp_path):
    path, payload = old_form(SAMPLE, tmp_path)
    old_text = path.read_text()
    assert timeline_path(path).name.endswith(PLAIN_TIMELINE_SUFFIX) and read_timeline(path) == payload  # old form reads
    assert load_records(tmp_path) == ([{**json.loads(old_text), "record_dir": str(tmp_path)}], [])

    (compressed,) = compress_timelines(tmp_path)
    assert compressed == tmp_path / (path.name[: -len(".json")] + TIMELINE_SUFFIX)
    assert not list(tmp_path.glob("*" + PLAIN_TIMELINE_SUFFIX)) and not list(tmp_path.glob(".*.tmp"))
    assert read_timeline(path) == payload  # old form -> new form -> read back: equal
    assert path.read_text() == SAMPLE.read_text()  # the record: only its timeline_file line changed
    (changed,) = [line for line in old_text.splitlines() if line not in path.read_text().splitlines()]
    assert changed.strip().startswith(f'"timeline_file": "{compressed.name[: -len(".gz")]}"')
    assert compressed.read_bytes() == timeline_path(SAMPLE).read_bytes()  # the conversion of docs/, reproduced
    assert compress_timelines(tmp_path) == []  # a converted directory is left as it is


def test_an_interrupted_or_hand_made_conversion_still_reads_and_a_mismatch_keeps_both(tmp_path):
    path, payload = old_form(SAMPLE, tmp_path)
    plain = tmp_path / json.loads(path.read_text())["timeline_file"]
    compressed = plain.with_name(plain.name + ".gz")
    # `gzip x.timeline.json` by hand: the record still names the plain file, which is gone; the reader finds it.
    compressed.write_bytes(gzip.compress(plain.read_bytes()))
    plain_bytes = plain.read_bytes()
    plain.unlink()
    assert read_timeline(path) == payload == read_timeline_file(plain)
    # Interrupted after the compressed copy was written: both there; converting again finishes the job.
    plain.write_bytes(plain_bytes)
    assert compress_timelines(tmp_path) == [compressed] and not plain.exists()
    assert json.loads(path.read_text())["timeline_file"] == compressed.name and read_timeline(path) == payload
    # A compressed file that holds something else: nothing is touched, the error names it.
    plain.write_bytes(plain_bytes.replace(b'"segments"', b'"segments_"'))
    with pytest.raises(RecordError, match="differs from"):
        compress_timelines(tmp_path)
    assert plain.exists() and read_timeline_file(compressed) == payload
    with pytest.raises(RecordError, match="not readable JSON"):
        read_timeline_file(tmp_path / "missing.timeline.json.gz")


@pytest.mark.one_environment  # framework-free: one environment runs it (conftest.py)
def test_every_committed_record_and_timeline_reads():
    """Everything measured under docs/measurements: every twinbench record reads (the skipped files are other
    tools' results, tools/crosscheck/crosscheck.py's), every committed timeline reads, is compressed and belongs to its
    record, and only the studies that left their timelines out name one that is not there."""
    records, skipped = load_records(MEASUREMENTS)
    assert len(records) >= 449
    for line in skipped:
        name, why = line.rsplit(": ", 1)
        assert why == "not a twinbench run record", line
        assert "schema" not in json.loads((MEASUREMENTS / name).read_text()), line
    assert not list(MEASUREMENTS.rglob("*" + PLAIN_TIMELINE_SUFFIX)), "run: python tools/compress_timelines.py docs"
    named = set()
    for record in records:
        if not record.get("timeline_file"):
            continue
        sidecar = ROOT / record["record_dir"] / record["timeline_file"]
        if not sidecar.exists():
            assert sidecar.relative_to(MEASUREMENTS).as_posix().startswith(TIMELINES_LEFT_OUT), sidecar
            continue
        timeline = read_timeline_file(sidecar)
        assert timeline["schema"] == TIMELINE_SCHEMA and timeline["cell"] == record["cell"], sidecar
        assert sidecar.name.endswith(TIMELINE_SUFFIX) and timeline["segments"], sidecar
        named.add(sidecar)
    assert named == set(MEASUREMENTS.rglob("*" + TIMELINE_SUFFIX)) and len(named) >= 289  # no orphans


def test_load_reads_files_and_directories_recursively_and_lists_what_it_skips(tmp_path):
    write_record(throughput_record("torch", "torch", [1.0, 1.0]), tmp_path / "round-1")
    write_record(throughput_record("torch", "torch", [1.0, 1.0]), tmp_path / "round-2")
    future = tmp_path / "round-2" / "future.json"
    future.write_text(json.dumps({"schema": SCHEMA, "schema_version": 99}))
    (tmp_path / "round-2" / "x.timeline.json").write_text("{}")
    records, skipped = load_records(tmp_path)
    assert [r["record_dir"] for r in records] == [str(tmp_path / "round-1"), str(tmp_path / "round-2")]
    assert skipped == ["round-2/future.json: schema version 99, this twinbench reads 2"]
    assert len(load_records(tmp_path / "round-1", future)[0]) == 1
    assert load_records(future)[1] == ["future.json: schema version 99, this twinbench reads 2"]


def test_latest_successful_run_stands_for_the_cell_and_a_failure_only_without_one():
    early = throughput_record("torch", "torch", [1.0], started="2026-01-01T00:00:00")
    late = throughput_record("torch", "torch", [2.0], started="2026-01-02T00:00:00")
    failed_later = {**throughput_record("torch", "torch", [], started="2026-01-03T00:00:00"), "status": "failed"}
    only_failed = {**throughput_record("keras", "jax", []), "status": "failed"}
    assert latest_runs([early, failed_later, late, only_failed]) == [late, only_failed]


def test_running_one_cell_twice_keeps_both_and_compare_pools_them(tmp_path, capsys):
    for step in (1.0, 1.2):
        write_record(throughput_record("torch", "torch", [step, step]), tmp_path)
        write_record(throughput_record("keras", "torch", [2 * step, 2 * step]), tmp_path)
    assert len(list(tmp_path.glob("*.json"))) == 4
    assert main(["compare", str(tmp_path)]) == 0
    lines = [line.split() for line in capsys.readouterr().out.splitlines() if line.startswith("cifar_cnn")]
    assert [(row[1], row[3]) for row in lines[:2]] == [("torch", "2"), ("keras[torch]", "2")]  # once, 2 runs
    ratio = lines[2]
    assert ratio[2:5] == ["keras[torch]", "/", "torch"] and ratio[7:9] == ["4/4", "2/2"]  # samples, runs pooled


def test_resume_counts_any_successful_record_of_the_cell(tmp_path):
    cell = Cell("cifar_cnn", "torch", "torch")
    config = RunConfig(cell)
    write_record(failed_record("train", config, RuntimeError("first try")), tmp_path)
    assert not completed(tmp_path, cell)
    write_record({**new_record("train", config), "status": "ok"}, tmp_path)  # the second run: a run id name
    assert completed(tmp_path, cell) and not completed(tmp_path, Cell("cifar_cnn", "keras", "torch"))


@pytest.mark.one_environment  # framework-free: one environment runs it (conftest.py)
def test_report_of_several_directories_renders_the_committed_rounds(tmp_path, capsys):
    rounds = sorted(str(path) for path in MEASURED.glob("round-*"))
    assert main(["report", *rounds, "--out", str(tmp_path), "--no-figures"]) == 0
    text = (tmp_path / "report.md").read_text()
    assert "30 records (30 ok, 0 failed) in 1 group(s)" in text
    assert "| keras[torch] / torch | Keras 3 overhead on PyTorch | 1.482 (1.387–1.670) |" in text


@requires_backend
def test_a_real_cell_run_twice_into_one_directory_keeps_both_records(tmp_path, capsys):
    implementation, backend = IMPLEMENTATIONS_HERE[0]
    run = ["train", "--impl", implementation, "--backend", backend, "--model", "mnist_cnn", "--input-shape", "12x12x1",
           "--batch-size", "16", "--dataset", "synthetic", "--synthetic-train", "64", "--synthetic-test", "16",
           "--epochs", "3", "--no-profiler", "--out", str(tmp_path)]
    assert main(run) == 0 and main(run) == 0
    records, skipped = load_records(tmp_path)
    assert len(records) == 2 and skipped == [] and records[0]["run_id"] != records[1]["run_id"]
    capsys.readouterr()
    assert main(["compare", str(tmp_path)]) == 0
    table = capsys.readouterr().out.split("\n\n")[0].splitlines()
    assert len(table) == 3  # the header, its rule and the cell once
