"""Result records: one JSON file per run, written atomically, with a versioned schema.

A record is never half-written: it goes to a temporary file in the same directory and is moved into
place with ``os.replace`` (atomic on POSIX), so an interrupted run leaves either the old record or the
new one, never a broken file.

Schema history (``schema_version``):

- 1: cell, config, model, dataset, results (accuracy, per-epoch times), device, memory, environment.
- 2: adds ``kind`` (``"train"``: ``bench run``; ``"throughput"``: ``bench bench``), ``timing`` (first
  step, steady-state step time, epoch time, gap between epochs, evaluation time, throughput, each with
  median/IQR/CI from ``bench.stats.summarize``), ``settings`` (Keras backend, resolved ``jit_compile``,
  precision policy, TF32, thread counts, device; replaces v1's ``device``), ``memory`` (framework allocator next to NVML and host
  RSS), ``profile`` (the shared profiler's summary), ``profiler_overhead`` (throughput runs),
  ``host_load`` and ``timeline_file``: the profiler's samples in a sidecar ``<cell>.timeline.json``.

Records of another version are skipped with a reason, never half-read.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

SCHEMA = "twinbench.run"
SCHEMA_VERSION = 2
TIMELINE_SCHEMA = "twinbench.timeline"
TIMELINE_SUFFIX = ".timeline.json"


def cell_id(model: str, implementation: str, backend: str, dataset: str) -> str:
    """The file stem of one matrix cell, e.g. ``cifar_cnn__keras__jax__digits``."""
    return f"{model}__{implementation}__{backend}__{dataset}"


def write_json_atomic(path, payload: dict) -> Path:
    """Write ``payload`` as JSON to ``path`` atomically (temp file + fsync + ``os.replace``)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as handle:
            json.dump(payload, handle, indent=2, sort_keys=False, default=_jsonable)
            handle.write("\n")
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
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


def read_record(path) -> dict:
    """Load one record; ``RecordError`` for unreadable JSON or an unknown schema/version."""
    path = Path(path)
    try:
        record = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise RecordError(f"{path.name}: not readable JSON ({err.__class__.__name__})") from None
    if not isinstance(record, dict) or record.get("schema") != SCHEMA:
        raise RecordError(f"{path.name}: not a twinbench run record")
    if record.get("schema_version") != SCHEMA_VERSION:
        raise RecordError(
            f"{path.name}: schema version {record.get('schema_version')!r}, this twinbench reads {SCHEMA_VERSION}"
        )
    return record


def timeline_path(record_path) -> Path:
    """The sidecar of ``OUT/<cell>.json``: ``OUT/<cell>.timeline.json``."""
    record_path = Path(record_path)
    return record_path.with_name(record_path.name[: -len(".json")] + TIMELINE_SUFFIX)


def write_timeline(record_path, record: dict, segments: list[dict]) -> Path:
    """Atomically write the profiler timeline of ``record`` next to it; returns the sidecar's path.

    ``segments``: one entry per profiler that ran (a training run has one, a throughput run one per
    repeat), each ``{"name", "profiler_enabled", "offset_s", "samples", "windows", "markers"}`` with times
    in seconds since that profiler started and ``offset_s`` its start relative to the first one.
    """
    payload = {"schema": TIMELINE_SCHEMA, "schema_version": 1, "cell": record["cell"], "segments": segments}
    return write_json_atomic(timeline_path(record_path), payload)


def read_timeline(record_path) -> dict:
    """The sidecar timeline of the record at ``record_path`` (``RecordError`` if missing or unreadable)."""
    path = timeline_path(record_path)
    try:
        payload = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise RecordError(f"{path.name}: not readable JSON ({err.__class__.__name__})") from None
    if payload.get("schema") != TIMELINE_SCHEMA:
        raise RecordError(f"{path.name}: not a twinbench timeline")
    return payload


def load_records(directory) -> tuple[list[dict], list[str]]:
    """All readable records in ``directory`` (sorted by file name) and a list of 'file: why skipped' lines.

    Timeline sidecars (``*.timeline.json``) belong to their records and are not listed as skipped.
    """
    records, skipped = [], []
    for path in sorted(Path(directory).glob("*.json")):
        if path.name.endswith(TIMELINE_SUFFIX):
            continue
        try:
            records.append(read_record(path))
        except RecordError as err:
            skipped.append(str(err))
    return records, skipped
