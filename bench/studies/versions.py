"""Across versions: a sweep of stacks, and an A/B of two with a null calibration (``twinbench sweep``, ``twinbench ab``).

Both run one environment's cells (``torch``: keras[torch] and torch, interleaved in each process) in several
virtualenvs, one per stack (``twinbench.studies.stacks``), and let the virtualenvs take turns in short throughput
processes, ABBA order (``twinbench.measuring.alternate``: blocks of one process per stack, every other block reversed:
A B C, C B A, ...), so a drift of the machine reaches every stack alike. Every process writes its records with its
slot (``record["alternation"]``), its cells naming their stack (``cell["stack"]``, ``config["stack"]``), and checks at
start that what it has installed is that stack (``twinbench.backends.stacks.check_installed``).

- **sweep**: every stack is made, then *tried* (one process of one tiny window: can it import and train?), then the
  stacks that passed run ``blocks`` blocks. A stack that cannot be made or fails its try is a failed cell: a failed
  record per cell in the results directory with the reason, and the others go on. ``sweep-log.jsonl`` in the
  results directory gets one line per sweep: every stack, its status, reason, Python and the packages of its own. Slot names are the specs
  (``default`` for the project's pins).
- **ab**: A, B and A' (a second environment of A's stack); the slots are named ``A``, ``B``, ``A'``;
  ``twinbench.results.ab`` compares them.

Every process runs with glibc's allocator told to keep its memory (the cells' ``allocator`` axis, ``tuned`` unless
asked otherwise), as the six-ratios study does: separate processes then differ far less (docs/versions.md).

Imports no framework: the children do.
"""

from __future__ import annotations

import json
import os
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

from twinbench.backends.allocator import TUNED
from twinbench.backends.stacks import DEFAULT, canonical_stack, parse_stack
from twinbench.cell import Cell, environment_cells
from twinbench.measuring.alternate import run_alternated
from twinbench.measuring.throughput import ThroughputConfig
from twinbench.records import failed_record, load_records, now_iso, write_record
from twinbench.results import ab
from twinbench.studies.stacks import StackEnvError, check_stack, ensure_stack_env, releases

LOG = "sweep-log.jsonl"  # in the results directory: one line per sweep, its stacks (a .jsonl: not read as a record)
TRY_ARGS = ["--steps", "1", "--warmup", "1", "--repeats", "1", "--overhead-repeats", "0", "--compute-repeats", "0",
            "--batch-size", "8"]
RUN_ENV = {"TF_CPP_MIN_LOG_LEVEL": "2", "XLA_PYTHON_CLIENT_PREALLOCATE": "false", "TF_FORCE_GPU_ALLOW_GROWTH": "true",
           "PYTHONUNBUFFERED": "1"}


class VersionsError(ValueError):
    """Bad input to a sweep or an A/B (a stack list, a stack named twice); one line."""


def last_patches(versions: list[str], major: str = "3") -> list[str]:
    """The last patch of every minor release of ``major`` (pre-releases left out), oldest first.

    >>> last_patches(["3.1.1", "3.1.0", "3.0.5", "3.2.0rc1", "2.15.0"])
    ['3.0.5', '3.1.1']
    """
    best: dict[int, tuple[int, ...]] = {}
    for version in versions:
        if not re.fullmatch(r"\d+(\.\d+)*", version) or version.split(".")[0] != major:
            continue
        numbers = tuple(int(x) for x in version.split("."))
        minor = numbers[1] if len(numbers) > 1 else 0
        best[minor] = max(best.get(minor, numbers), numbers)
    return [".".join(map(str, best[minor])) for minor in sorted(best)]


def default_stacks(python: str) -> list[str]:
    """``keras==X.Y.Z`` for the last patch of every Keras 3 minor release the index has."""
    found = last_patches(releases(python, "keras"))
    if not found:
        raise VersionsError("the package index listed no Keras 3 release (pip index versions keras): give --stacks")
    return [f"keras=={version}" for version in found]


def parse_stacks(text: str) -> list[str]:
    """``--stacks keras==3.8.0,keras==3.10.0,default``: canonical specs, each once (``default``: the pins)."""
    specs = []
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        spec = DEFAULT if part == "default" else canonical_stack(part)
        if spec in specs:
            raise VersionsError(f"--stacks names {part!r} twice.")
        specs.append(spec)
    if not specs:
        raise VersionsError("--stacks is empty: give stacks, e.g. keras==3.8.0,keras==3.10.0 (or leave it out for "
                            "every Keras 3 minor release)")
    return specs


def slot_name(spec: str) -> str:
    return spec or "default"


@dataclass
class StackRun:
    """One stack of a sweep: its spec, status (``ok``, ``failed``), reason, Python and packages of its own."""

    spec: str
    status: str = "ok"
    reason: str | None = None
    python: str | None = None
    own_packages: dict = field(default_factory=dict)
    stage: str | None = None  # where it failed: make (the virtualenv), try (the first process)


def _cells(env: str, model: str, spec: str, allocator: str = TUNED) -> list[Cell]:
    return environment_cells(env, model, dataset="synthetic", stack=spec, allocator=allocator)


def _record_failure(cells: list[Cell], reason: str, out) -> None:
    """A failed record per cell of a stack that could not run, so tables and pages show it with its reason."""
    for cell in cells:
        write_record(failed_record("throughput", ThroughputConfig(cell), RuntimeError(reason)), out)


def _try_reason(out_dir: Path, sequence: str, code) -> str:
    """Why a stack's try (alternated sequence ``sequence``) failed: its failed record's message, or the exit code."""
    records = [r for r in load_records(out_dir)[0] if r.get("status") == "failed"
               and (r.get("alternation") or {}).get("sequence") == sequence]
    if records:
        error = records[-1]["error"]
        return f"{error['type']}: {error['message']}"
    return f"the try process ended with exit code {code} before it wrote a record"


def make_and_try(specs: list[str], env: str, model: str, *, base_python: str, out, root=".nox",
                 allocator: str = TUNED, log=print) -> list[StackRun]:
    """Make every stack's environment and try it (one process, one tiny window, into ``OUT-try/<slot>``); a stack that
    fails either is recorded as failed cells in ``out`` with its reason, and the others go on."""
    runs = []
    for spec in specs:
        run, cells = StackRun(spec), _cells(env, model, spec, allocator)
        try:
            made = ensure_stack_env(spec, env, base_python=base_python, root=root, log=log)
            run.python, run.own_packages = made.python, made.marker["own_packages"]
        except StackEnvError as err:
            run.status, run.reason, run.stage = "failed", str(err), "make"
        if run.status == "ok":
            try_dir = try_directory(out) / re_slug(slot_name(spec))
            sequence = run_alternated({slot_name(spec): cells}, {slot_name(spec): run.python}, out_dir=try_dir,
                                      blocks=1, child_args=TRY_ARGS, env=_child_env(), process_timeout_s=600,
                                      log=log)
            if sequence.failures:
                run.status, run.stage = "failed", "try"
                run.reason = _try_reason(try_dir, sequence.sequence, sequence.slots[0]["code"])
        if run.status == "failed":
            log(f"[sweep] {slot_name(spec)}: FAILED ({run.stage}): {run.reason}; the others go on")
            _record_failure(cells, f"stack {slot_name(spec)} ({run.stage}): {run.reason}", out)
        runs.append(run)
    return runs


def re_slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._=-]+", "_", text)


def _child_env() -> dict:
    return {**os.environ, **RUN_ENV}


def try_directory(out) -> Path:
    """Where the tries' records go: ``OUT-try`` beside the results directory, so that no view of ``OUT`` pools a
    one-step try with the measured windows."""
    out = Path(out)
    return out.with_name(out.name + "-try")


def append_log(out, entry: dict) -> None:
    """One line appended to ``OUT/sweep-log.jsonl``, written whole and flushed to disk."""
    Path(out).mkdir(parents=True, exist_ok=True)
    fd = os.open(Path(out) / LOG, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, (json.dumps(entry) + "\n").encode())
        os.fsync(fd)
    finally:
        os.close(fd)


def run_sweep(specs: list[str], env: str, model: str, *, base_python: str, out, blocks: int,
              child_args: list[str], root=".nox", budget_s: float | None = None, try_only: bool = False,
              allocator: str = TUNED, log=print) -> dict:
    """Make, try, then (unless ``try_only``) alternate the stacks that run (module docstring); returns the summary
    appended to ``OUT/sweep-log.jsonl``: ``env``, ``model``, ``stacks`` (``StackRun``'s fields and ``label``), ``sequence``,
    ``blocks`` run, ``started``, ``finished``."""
    for spec in specs:
        check_spec(spec, env)
    started = now_iso()
    runs = make_and_try(specs, env, model, base_python=base_python, out=out, root=root, allocator=allocator,
                        log=log)
    ok = [run for run in runs if run.status == "ok"]
    sequence = None
    if ok and not try_only:
        cells = {slot_name(run.spec): _cells(env, model, run.spec, allocator) for run in ok}
        pythons = {slot_name(run.spec): run.python for run in ok}
        done = run_alternated(cells, pythons, out_dir=out, blocks=blocks, budget_s=budget_s, child_args=child_args,
                              env=_child_env(), process_timeout_s=600, log=log)
        sequence = {"id": done.sequence, "blocks": done.blocks, "stopped": done.stopped,
                    "failures": done.failures, "seconds": round(done.seconds, 1)}
    summary = {"env": env, "model": model, "started": started, "finished": now_iso(), "base_python": base_python,
               "sequence": sequence,
               "stacks": [{**run.__dict__, "slot": slot_name(run.spec),
                           "label": " ".join(item.label for item in parse_stack(run.spec)) or "default pins"}
                          for run in runs]}
    append_log(out, summary)
    return summary


def check_spec(spec: str, env: str) -> None:
    try:
        check_stack(spec, env)
    except StackEnvError as err:
        raise VersionsError(str(err)) from None


def run_ab(spec_a: str, spec_b: str, env: str, model: str, *, base_python: str, out, blocks: int,
           child_args: list[str], root=".nox", budget_s: float | None = None, allocator: str = TUNED,
           log=print) -> tuple[str, dict]:
    """A, B and A' (A's stack in a second environment) alternated for ``blocks`` blocks; returns the sequence id and
    ``twinbench.results.ab.slot_records``'s records. ``VersionsError`` (one line) where A and B are one stack;
    ``StackEnvError`` where one cannot be made."""
    spec_a, spec_b = canonical_stack(spec_a), canonical_stack(spec_b)
    if spec_a == spec_b:
        raise VersionsError(f"A and B are the same stack ({slot_name(spec_a)}): the null calibration (A' / A) runs "
                            f"anyway; give B another stack")
    check_spec(spec_a, env)
    check_spec(spec_b, env)
    made = {ab.A: ensure_stack_env(spec_a, env, base_python=base_python, root=root, log=log),
            ab.B: ensure_stack_env(spec_b, env, base_python=base_python, root=root, log=log),
            ab.NULL: ensure_stack_env(spec_a, env, base_python=base_python, root=root, copy="null", log=log)}
    cells = {slot: _cells(env, model, stack.spec, allocator) for slot, stack in made.items()}
    pythons = {slot: stack.python for slot, stack in made.items()}
    done = run_alternated(cells, pythons, out_dir=out, blocks=blocks, budget_s=budget_s, child_args=child_args,
                          env=_child_env(), process_timeout_s=600, log=log)
    records = ab.slot_records(load_records(out)[0], done.sequence)
    if done.failures:
        print(f"twinbench: {done.failures} of {len(done.slots)} processes failed (their records say why)",
              file=sys.stderr)
    return done.sequence, records


def summary_text(summary: dict) -> str:
    """One line per stack of a sweep: ``keras==3.0.5  failed (try): ImportError: ...``."""
    lines = [f"stacks of the sweep ({summary['env']}, {summary['model']}):"]
    for stack in summary["stacks"]:
        status = "ok" if stack["status"] == "ok" else f"failed ({stack['stage']}): {stack['reason']}"
        lines.append(f"  {stack['slot']:24s} {status}")
    return "\n".join(lines)
