"""Result records: one JSON file per run, of every kind; the one module that creates, writes and loads them.

A **record** is one run's result: one process that ran one cell (``twinbench.cell.Cell``). Kinds (``KINDS``):

- ``train``: ``python -m twinbench train`` (``twinbench.measuring.train``): accuracy before/after, per-epoch loss,
  accuracy and times, timing windows during the epochs;
- ``throughput``: ``python -m twinbench throughput`` (``twinbench.measuring.throughput``): the first step, warm-up,
  repeats of timed windows with the profiler on and off, throughput, FLOP/s;
- ``profiler_cost``: ``python -m twinbench profiler-cost`` (``twinbench.studies.profiler_cost``): windows with the profiler's
  sampler on, each between two with it off, at several sampling intervals;
- ``trace``: ``python -m twinbench trace`` (``twinbench.measuring.trace``): steady-state steps under the framework's own
  profiler, and ``ops``, the time per step of each kind of op (``twinbench.ops``);
- ``latency``: ``python -m twinbench latency`` (``twinbench.measuring.latency``): inference calls at each batch size,
  the first call apart, every call's seconds, p50/p90/p99 with CIs, throughput, peak memory.
- ``breakdown``: ``python -m twinbench breakdown`` (``twinbench.measuring.breakdown``): steady-state steps under a
  Python profiler, their time per step by cause (``twinbench.causes``) and the layer calls and ops per step;
- ``generate``: ``python -m twinbench generate`` (``twinbench.measuring.generate``): GPT-2 greedy decoding, every
  token of every timed call timed as it arrives: time to first token, per-token latency p50/p90/p99 with CIs, tokens
  per second, the first (compiling) call apart, peak memory;
- ``calls``: ``python -m twinbench calls`` (``twinbench.measuring.calls``): one call of each layer type, µs per call
  over a sweep of sizes, and the fixed and per-element cost fitted to it.

Every record starts the same way (``new_record``): ``schema``, ``schema_version``, ``kind``, ``cell``,
``run_id``, ``config`` (the run's settings, verbatim) and ``started``; then ``status`` (``ok`` or ``failed``,
with ``error``: ``failed_record``) and what its kind measured.

Written atomically: a record goes to a temporary file in the same directory and is then moved into place, so an
interrupted run leaves either no record or a whole one. Never overwritten: a record is named after its cell
(``<cell file id>.json``, ``<cell file id>__profiler_cost.json``); a later run of the same cell in the same
directory adds its run id to the name (``<cell file id>.<run id>.json``), so both are kept.

Runs of one cell are pooled (``compare``, ``report``, ``definition-effect``), wherever they lie: the timing
samples of every successful run are concatenated and the bootstrap resamples the runs as well as the samples
within them (``twinbench.results.decompose.pooled``); a table that shows one figure per cell (accuracy, loss, epoch
time) shows the cell's latest successful run (``latest_runs``) and a failed run only when the cell has no
successful one. ``--resume`` counts a cell as done when it has any successful record.

Schema history (``schema_version``): 1 had no ``kind``, ``timing``, ``settings`` or profiler; 2 (read here) adds
``kind``, ``timing`` (median/IQR/CI from ``twinbench.stats.summarize``), ``settings`` (Keras backend, resolved
``jit_compile``, precision, TF32, threads, device), ``memory`` (framework allocator, NVML, host RSS), ``profile``,
``profiler_overhead`` (throughput), ``host_load`` and ``timeline_file``: the profiler's samples in a sidecar
``<record name>.timeline.json.gz``. ``run_id`` came later within version 2; records without one still read.
Records of another version are listed as skipped with the reason, never half-read.

Timelines are most of a results directory's bytes (thousands of samples a run; the record itself is a few KB), so
their sidecars are gzip-compressed JSON; records stay plain, indented JSON to read and diff. Sidecars written before
that (plain ``<record name>.timeline.json``) still read, and ``compress_timelines`` converts them without losing a
byte of what they hold (``python tools/compress_timelines.py DIR``).
"""

from __future__ import annotations

import datetime as _dt
import gzip
import itertools
import json
import os
import secrets
import tempfile
import traceback
from pathlib import Path

from twinbench.cell import Cell

SCHEMA = "twinbench.run"
SCHEMA_VERSION = 2
TIMELINE_SCHEMA = "twinbench.timeline"
TIMELINE_SUFFIX = ".timeline.json.gz"
PLAIN_TIMELINE_SUFFIX = ".timeline.json"  # sidecars from before they were compressed: read, and converted

# The kinds of record: the command that writes them, its default results directory (nox's too), and what the
# file name adds to the cell's file id.
KINDS = {
    "train": {"command": "twinbench train", "results": "results/train", "suffix": ""},
    "throughput": {"command": "twinbench throughput", "results": "results/throughput", "suffix": ""},
    "profiler_cost": {"command": "twinbench profiler-cost", "results": "results/profiler_cost",
                      "suffix": "__profiler_cost"},
    "trace": {"command": "twinbench trace", "results": "results/trace", "suffix": "__trace"},
    "latency": {"command": "twinbench latency", "results": "results/latency", "suffix": "__latency"},
    "breakdown": {"command": "twinbench breakdown", "results": "results/breakdown", "suffix": "__breakdown"},
    "calls": {"command": "twinbench calls", "results": "results/calls", "suffix": "__calls"},
    "generate": {"command": "twinbench generate", "results": "results/generate", "suffix": "__generate"},
}
# Results directories: one per kind, the definition-effect study's (throughput records of its cells) and the exported
# models' (twinbench export: artifacts, not records) and the history page's (twinbench history: a page, not records).
RESULTS = {**{kind: info["results"] for kind, info in KINDS.items()}, "definition_effect": "results/definition_effect",
           "export": "results/export", "timing": "results/timing",  # timing: the main job's alternated processes
           "history": "results/history",
           "sweep": "results/sweep", "ab": "results/ab"}  # across versions: twinbench sweep, twinbench ab


def now_iso() -> str:
    """The time now, UTC, to the second: what ``started`` and ``finished`` hold."""
    return _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")


def new_run_id() -> str:
    """``20261202T001800Z-3f2a9c``: when the run started, and six random hex digits."""
    return f"{_dt.datetime.now(_dt.UTC).strftime('%Y%m%dT%H%M%SZ')}-{secrets.token_hex(3)}"


def new_record(kind: str, config, *, started: str | None = None) -> dict:
    """What every record starts with, a failed one too. ``config``: the run's settings (``twinbench.cell.CellConfig``:
    its cell and the command's own fields); ``started``: the run's start time (now when not given)."""
    if kind not in KINDS:
        raise ValueError(f"Unknown record kind {kind!r}. Valid choices: {', '.join(KINDS)}.")
    return {"schema": SCHEMA, "schema_version": SCHEMA_VERSION, "kind": kind, "cell": config.cell.as_dict(),
            "run_id": new_run_id(), "config": config.as_dict(), "started": started or now_iso()}


def failed_record(kind: str, config, err: BaseException, **error_fields) -> dict:
    """The record of a run that failed with ``err``: its first line as the message, the traceback kept."""
    text = str(err).strip()
    message = text.splitlines()[0] if text else type(err).__name__
    return {**new_record(kind, config), "status": "failed",
            "error": {"type": type(err).__name__, "message": message, **error_fields,
                      "traceback": "".join(traceback.format_exception(err))}}


def write_record(record: dict, out_dir) -> Path:
    """Write ``record`` into ``out_dir`` under a name no other record there has, and return its path.

    Its timeline, if it has one (``record["timeline"]``), goes first into the sidecar ``<name>.timeline.json.gz``,
    so a record that names a sidecar always has it.
    """
    stem = Cell.of(record).file_id + KINDS[record.get("kind", "train")]["suffix"]
    segments = record.pop("timeline", None)
    record.setdefault("run_id", new_run_id())
    for attempt in itertools.count():
        if attempt > 1:  # the name with this run id is taken too (another process, the same second)
            record["run_id"] = new_run_id()
        path = Path(out_dir) / (f"{stem}.json" if attempt == 0 else f"{stem}.{record['run_id']}.json")
        if path.exists():  # an earlier run of this cell: this one adds its run id to the name
            continue
        if segments is not None:
            record["timeline_file"] = write_timeline(path, record, segments).name
        try:
            return write_json_atomic(path, record, overwrite=False)
        except FileExistsError:  # taken between the check and the write
            continue


def write_json_atomic(path, payload: dict, *, overwrite: bool = True) -> Path:
    """Write ``payload`` as JSON to ``path`` atomically (temp file + fsync + rename into place).

    A path ending in ``.gz`` gets gzip-compressed JSON (a timeline sidecar), any other indented JSON (a record).
    ``overwrite=False``: ``FileExistsError`` if ``path`` exists (the move is a hard link, which never replaces).
    """
    path = Path(path)
    if path.name.endswith(".gz"):
        # Compact inside (nobody reads it unpacked); mtime=0, so the same payload always gives the same bytes and
        # converting a directory again changes nothing git can see.
        text = json.dumps(payload, separators=(",", ":"), default=_jsonable)
        data = gzip.compress(text.encode(), compresslevel=9, mtime=0)
    else:
        data = (json.dumps(payload, indent=2, sort_keys=False, default=_jsonable) + "\n").encode()
    return _write_atomic(path, data, overwrite=overwrite)


def _write_atomic(path: Path, data: bytes, *, overwrite: bool) -> Path:
    """``data`` into ``path``: a temporary file beside it, fsync, then renamed (or hard-linked) into place, so a
    reader never sees half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        if overwrite:
            os.replace(tmp, path)
        else:
            os.link(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)
    return path


def _jsonable(value):
    """numpy scalars/arrays and tuples -> plain JSON types."""
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, (set, tuple)):
        return list(value)
    return str(value)


class RecordError(ValueError):
    """A file in a results directory that is not a record twinbench can read."""


def read_record(path, *, name: str | None = None) -> dict:
    """Load one record; ``RecordError`` for unreadable JSON or an unknown schema/version.

    ``name``: how the file is called in the error (default: its file name).
    """
    path = Path(path)
    name = name or path.name
    record = _read_json(path, name)
    if not isinstance(record, dict) or record.get("schema") != SCHEMA:
        raise RecordError(f"{name}: not a twinbench run record")
    if record.get("schema_version") != SCHEMA_VERSION:
        raise RecordError(
            f"{name}: schema version {record.get('schema_version')!r}, this twinbench reads {SCHEMA_VERSION}"
        )
    return record


def _read_json(path: Path, name: str | None = None):
    """The JSON in ``path``, gzip-compressed if its name ends in ``.gz``; ``RecordError`` if it cannot be read."""
    try:
        data = path.read_bytes()
        return json.loads(gzip.decompress(data) if path.name.endswith(".gz") else data)
    except (OSError, EOFError, UnicodeDecodeError, json.JSONDecodeError) as err:  # gzip.BadGzipFile is an OSError
        raise RecordError(f"{name or path.name}: not readable JSON ({err.__class__.__name__})") from None


def timeline_path(record_path) -> Path:
    """The sidecar of ``OUT/<cell>.json``: ``OUT/<cell>.timeline.json.gz``, or, for a record from before sidecars
    were compressed, its ``OUT/<cell>.timeline.json`` where only that one exists."""
    compressed = _sidecar(record_path, TIMELINE_SUFFIX)
    plain = _sidecar(record_path, PLAIN_TIMELINE_SUFFIX)
    return plain if plain.exists() and not compressed.exists() else compressed


def _sidecar(record_path, suffix: str) -> Path:
    record_path = Path(record_path)
    return record_path.with_name(record_path.name[: -len(".json")] + suffix)


def write_timeline(record_path, record: dict, segments: list[dict]) -> Path:
    """Atomically write the profiler timeline of ``record`` next to it, compressed; returns the sidecar's path.

    ``segments``: one entry per profiler that ran (a training run has one, a throughput run one per
    repeat), each ``{"name", "profiler_enabled", "offset_s", "samples", "windows", "markers"}`` with times
    in seconds since that profiler started and ``offset_s`` its start relative to the first one.
    """
    payload = {"schema": TIMELINE_SCHEMA, "schema_version": 1, "cell": record["cell"], "segments": segments}
    return write_json_atomic(_sidecar(record_path, TIMELINE_SUFFIX), payload)


def read_timeline(record_path) -> dict:
    """The sidecar timeline of the record at ``record_path`` (``RecordError`` if missing or unreadable)."""
    return read_timeline_file(timeline_path(record_path))


def read_timeline_file(path) -> dict:
    """A timeline sidecar by its own name (a record's ``timeline_file``), compressed or plain.

    Where the named file is missing, the same sidecar in the other form is read: a record whose sidecar was
    compressed later (by hand with ``gzip``, or a copy of the record older than its converted directory).
    ``RecordError`` if neither is there or readable.
    """
    path = Path(path)
    if not path.exists():
        other = path.with_name(path.name[: -len(".gz")] if path.name.endswith(".gz") else path.name + ".gz")
        path = other if other.exists() else path
    payload = _read_json(path)
    if not isinstance(payload, dict) or payload.get("schema") != TIMELINE_SCHEMA:
        raise RecordError(f"{path.name}: not a twinbench timeline")
    return payload


def compress_timelines(*paths) -> list[Path]:
    """Compress every plain ``*.timeline.json`` sidecar under ``paths`` (directories, with their subdirectories) into
    ``*.timeline.json.gz``, point its record at it and remove the plain file; returns the compressed files.

    Nothing is lost, and an interruption leaves every timeline readable: the compressed copy is written atomically
    and read back, and only when it holds exactly the plain file's JSON (same values, same key order) is the record's
    ``timeline_file`` line changed (that line only; every other byte of the record stays) and then the plain file
    removed. Running it again finishes an interrupted conversion and changes nothing in a converted directory.
    ``RecordError`` (the plain file kept) where a copy would not be exact.
    """
    compressed_files = []
    for root in map(Path, paths):
        for plain in sorted(root.rglob("*" + PLAIN_TIMELINE_SUFFIX)):
            compressed = plain.with_name(plain.name + ".gz")
            payload = _read_json(plain)
            text = json.dumps(payload)  # what it holds, compared as text: key order counts, and NaN equals NaN
            if compressed.exists() and json.dumps(_read_json(compressed)) != text:
                raise RecordError(f"{compressed}: differs from {plain.name} beside it; both kept, compare them")
            write_json_atomic(compressed, payload)
            if json.dumps(_read_json(compressed)) != text:
                raise RecordError(f"{compressed}: does not read back as {plain.name}; the plain file kept")
            _point_record_at(plain, compressed)
            plain.unlink()
            compressed_files.append(compressed)
    return compressed_files


def _point_record_at(plain: Path, compressed: Path) -> None:
    """Change the ``timeline_file`` of the record beside ``plain`` (``<name>.json``) from it to ``compressed``,
    as a one-line edit of the record's text. A sidecar without its record is compressed all the same."""
    record_path = plain.with_name(plain.name[: -len(PLAIN_TIMELINE_SUFFIX)] + ".json")
    if not record_path.exists():
        return
    text = record_path.read_text()
    record = json.loads(text)
    if record.get("timeline_file") != plain.name:
        return
    line = f'"timeline_file": {json.dumps(plain.name)}'
    changed = text.replace(line, f'"timeline_file": {json.dumps(compressed.name)}', 1)
    if json.dumps(json.loads(changed)) != json.dumps({**record, "timeline_file": compressed.name}):
        raise RecordError(f"{record_path}: its timeline_file line not found; the plain {plain.name} kept")
    _write_atomic(record_path, changed.encode(), overwrite=True)


def load_records(*paths) -> tuple[list[dict], list[str]]:
    """Every readable record in ``paths`` (record files, or directories searched with their subdirectories,
    e.g. one per round) and a list of 'file: why skipped' lines, directory by directory in name order.

    Timeline sidecars (``*.timeline.json.gz``, and the plain ``*.timeline.json`` of older runs) belong to their
    records and are not listed as skipped; a directory's ``report.md`` figures are no JSON. Each record gets ``record_dir``, the directory it lies in
    (not written back: where its sidecar is).
    """
    records, skipped = [], []
    for root in map(Path, paths):
        files = [root] if root.is_file() else sorted(root.rglob("*.json"), key=lambda p: (p.parent, p.name))
        for path in files:
            if path.name.endswith(PLAIN_TIMELINE_SUFFIX):
                continue
            name = path.name if root.is_file() else path.relative_to(root).as_posix()
            try:
                records.append({**read_record(path, name=name), "record_dir": str(path.parent)})
            except RecordError as err:
                skipped.append(str(err))
    return records, skipped


def latest_runs(records: list[dict]) -> list[dict]:
    """One record per (kind, cell): its latest successful run, or its latest run if none succeeded.

    For tables that show one figure per cell; pooled statistics use every run (module docstring).
    """
    def rank(record):
        return record.get("status") == "ok", record.get("started") or "", record.get("run_id") or ""

    chosen = {id(max(runs, key=rank)) for runs in runs_of(records).values()}
    return [record for record in records if id(record) in chosen]


def runs_of(records: list[dict]) -> dict[tuple, list[dict]]:
    """``{(kind, cell): [its records]}``: every run of each cell, in the order given."""
    runs: dict[tuple, list[dict]] = {}
    for record in records:
        runs.setdefault((record.get("kind", "train"), Cell.of(record)), []).append(record)
    return runs
