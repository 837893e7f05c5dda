"""Running a study's plan: every run a child process of its environment's python, into the study's directory.

- **Which python**: the nox environment's (``.nox/<session>-<env>/bin/python``, from the directory the study runs
  in, the repository's root), or one given per environment (``--python torch=PATH``) or for all (``--python PATH``).
- **Resume**: ``DIR/study-log.jsonl`` is the study's ledger. A run that ended well is logged with the files it wrote;
  run again with the same directory, the study skips every run whose files are all still there, and says so. A run
  that failed, or was interrupted, runs again.
- **The machine's load**, per run: the load average before and after, and the share of CPU time the whole machine
  was busy (and stolen by the hypervisor) while it ran (``/proc/stat``), so a run on a busy machine can be told
  from the others afterwards. Each log line is appended whole and flushed to disk before the next run starts.
- **A failed run never sinks the study**: it is logged (its record says why, where the command writes one) and the
  rest goes on; the study ends with exit code 1.

Imports no framework: the children do.
"""

from __future__ import annotations

import glob
import json
import os
import shlex
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path

from twinbench.backends.environments import ENVIRONMENTS, NATIVES, RUN_ENVIRONMENTS
from twinbench.records import now_iso
from twinbench.studies.plan import COMMANDS, PYTHON_OF, RUN_ENV, Run, Study, StudyError

LOG_NAME = "study-log.jsonl"


def python_paths(study: Study, given: list[str]) -> dict[str, str]:
    """``{environment: python}`` from ``--python`` values: ``ENV=PATH`` for one environment, ``PATH`` for all;
    the others: the study's own interpreter, or the nox environment of the study's session."""
    chosen: dict[str, str] = {}
    for value in given:
        env, sep, path = value.partition("=")
        if not sep:
            chosen.update(dict.fromkeys(ENVIRONMENTS, value))
        elif env not in RUN_ENVIRONMENTS:
            raise StudyError(f"Unknown environment {env!r} in --python {value}. "
                             f"Valid choices: {', '.join(RUN_ENVIRONMENTS)}.")
        else:
            chosen[env] = path
    default = {env: study.python or f".nox/{study.session}-{env}/bin/python" for env in ENVIRONMENTS}
    default[NATIVES] = study.python or f".nox/{NATIVES}/bin/python"  # nox -s natives
    return {**default, **chosen}


def named_pythons(args, pythons: Mapping[str, str]) -> list[str]:
    """``args`` with each ``--python=ENV`` (an alternate step's, ``plan.PYTHON_OF``) as ``--python=ENV=PATH``."""
    out = []
    for arg in args:
        env = arg[len(PYTHON_OF):] if arg.startswith(PYTHON_OF) else None
        out.append(f"{PYTHON_OF}{env}={pythons[env]}" if env in RUN_ENVIRONMENTS else arg)
    return out


def check_can_run(study: Study, plan: list[Run], pythons: Mapping[str, str]) -> None:
    """``StudyError`` (one line) for an environment's python or a script that is not there, before any run."""
    named = [arg[len(PYTHON_OF):] for run in plan for arg in run.args
             if arg.startswith(PYTHON_OF) and arg[len(PYTHON_OF):] in RUN_ENVIRONMENTS]
    for env in dict.fromkeys([*(run.env for run in plan), *named]):
        python = pythons[env]
        if os.sep not in python:  # a name looked up on PATH (python3)
            continue
        if not Path(python).is_file():
            raise StudyError(f"no python for the {env} environment: {python} does not exist "
                             f"(nox -s {NATIVES if env == NATIVES else study.session} --install-only creates it; "
                             f"or --python {env}=PATH, or only the others: --env)")
    for command in dict.fromkeys(run.command for run in plan):
        script = COMMANDS[command]["argv"][0]
        if script.endswith(".py") and not Path(script).is_file():
            raise StudyError(f"{script} not found: run studies from the repository's root")


def cpu_times() -> tuple[int, int, int] | None:
    """``(busy, steal, total)`` jiffies of the whole machine since boot (``/proc/stat``), or None off Linux."""
    try:
        with open("/proc/stat") as handle:
            fields = [int(x) for x in handle.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    # user nice system idle iowait irq softirq steal guest guest_nice; guest time is counted in user already.
    total = sum(fields[:8])
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
    steal = fields[7] if len(fields) > 7 else 0
    return total - idle, steal, total


def _share(before, after, which: int) -> float | None:
    if before is None or after is None or after[2] == before[2]:
        return None
    return round((after[which] - before[which]) / (after[2] - before[2]), 4)


def append_log(directory: Path, entry: dict) -> None:
    """Append one JSON line to the study's log: one write of the whole line, flushed to disk."""
    directory.mkdir(parents=True, exist_ok=True)
    line = (json.dumps(entry, sort_keys=False) + "\n").encode()
    fd = os.open(directory / LOG_NAME, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line)
        os.fsync(fd)
    finally:
        os.close(fd)


def read_log(directory: Path) -> list[dict]:
    """The log's entries; a line cut short (the machine stopped while writing it) is left out."""
    path = directory / LOG_NAME
    entries = []
    if path.is_file():
        for line in path.read_text().splitlines():
            try:
                entries.append(json.loads(line))
            except json.JSONDecodeError:
                continue
    return entries


def done_runs(directory: Path) -> set[str]:
    """The keys of the runs that ended well and whose files are all still there."""
    return {entry["key"] for entry in read_log(directory)
            if entry.get("event") == "run" and entry.get("status") == "ok"
            and all(Path(path).exists() for path in entry.get("wrote", []))}


def _files(run: Run) -> set[str]:
    found: set[str] = set()
    if run.out and Path(run.out).is_dir():
        found |= {str(path) for path in Path(run.out).rglob("*") if path.is_file()}
    if run.stdout and Path(run.stdout).is_file():
        found.add(run.stdout)
    return found


def execute(run: Run, python: str, pythons: Mapping[str, str] | None = None) -> tuple[int, float, list[str]]:
    """Run one child process; returns its exit code, its wall time and the files it wrote. ``pythons``: every
    environment's python, for a run that names them (``named_pythons``)."""
    before = _files(run)
    env = {**os.environ, **RUN_ENV, **run.env_vars}
    argv = [python, *named_pythons(run.args, pythons or {})]
    start = time.perf_counter()
    try:
        if run.stdout:  # a command that writes no record: its output is the record, its wall time the last line
            Path(run.stdout).parent.mkdir(parents=True, exist_ok=True)
            with open(run.stdout, "w") as handle:
                code = subprocess.run(argv, env=env, stdout=handle, stderr=subprocess.STDOUT).returncode
                handle.write(f"{run.label}: {time.perf_counter() - start:.0f} s wall\n")
        else:
            code = subprocess.run(argv, env=env).returncode
    except OSError as err:  # the python vanished or is not executable
        print(f"   cannot start {python}: {err}", flush=True)
        code = 127
    return code, time.perf_counter() - start, sorted(_files(run) - before)


def run_study(study: Study, plan: list[Run], directory: Path, pythons: Mapping[str, str], *,
              params: Mapping[str, object], afterwards: bool = True) -> int:
    """Run ``plan`` into ``directory`` (resuming), log every run, then the study's ``afterwards`` commands.

    Returns 0 when every run ended well, 1 otherwise (the afterwards commands are views: they print, their exit
    codes are shown and change nothing).
    """
    directory = Path(directory)
    done = done_runs(directory)
    append_log(directory, {"event": "study", "study": study.name, "runs": len(plan), "started": now_iso(),
                           "params": {k: str(v) for k, v in params.items()}, "pythons": dict(pythons)})
    failed = skipped = 0
    for number, run in enumerate(plan, 1):
        where = f"[{number}/{len(plan)}] {run.part + ' ' if run.part else ''}round {run.round}: {run.label}" \
                f"{' ' + run.model if run.model else ''}{' ' + run.variant if run.variant else ''} {run.command}"
        if run.key in done:
            print(f"== {where}: done already (its record is in {run.out or run.stdout}), skipped", flush=True)
            skipped += 1
            continue
        load_before, cpu_before = os.getloadavg(), cpu_times()
        print(f"== {where}, load average {' '.join(f'{x:.2f}' for x in load_before)}", flush=True)
        started = now_iso()
        code, wall, wrote = execute(run, pythons[run.env], pythons)
        cpu_after = cpu_times()
        status = "ok" if code == 0 else "failed"
        if code:
            failed += 1
            print(f"   (failed with exit code {code}: logged; the study goes on)", flush=True)
        append_log(directory, {
            "event": "run", "key": run.key, "status": status, "exit_code": code, "part": run.part,
            "round": run.round, "label": run.label, "model": run.model, "variant": run.variant,
            "command": shlex.join([pythons[run.env], *named_pythons(run.args, pythons)]), "env": dict(run.env_vars),
            "started": started, "wall_s": round(wall, 3), "load_before": list(load_before),
            "load_after": list(os.getloadavg()), "cpu_busy_share": _share(cpu_before, cpu_after, 0),
            "cpu_steal_share": _share(cpu_before, cpu_after, 1), "wrote": wrote})
    if afterwards:
        _afterwards(study, directory, params)
    print(f"== study {study.name}: {len(plan)} runs, {skipped} of them done already, {failed} failed; "
          f"log: {directory / LOG_NAME}", flush=True)
    return 1 if failed else 0


def afterwards_commands(study: Study, directory: Path, params: Mapping[str, object]) -> list[list[str]]:
    """The study's closing commands with their globs expanded; those that name a path of the study's directory that
    is not there (a part left out, a glob that matches nothing) are left out."""
    commands = []
    for template in study.afterwards:
        words, complete = [], True
        for word in shlex.split(template.format(**params, out=directory)):
            if "*" in word:
                matches = sorted(glob.glob(word))
                complete = complete and bool(matches)
                words += matches
            else:
                complete = complete and (not word.startswith(str(directory)) or Path(word).exists())
                words.append(word)
        if complete:
            head = [words[0]] if words[0].endswith(".py") else ["-m", "twinbench", words[0]]
            commands.append([sys.executable, *head, *words[1:]])
    return commands


def _afterwards(study: Study, directory: Path, params: Mapping[str, object]) -> None:
    for argv in afterwards_commands(study, directory, params):
        print(f"\n== {shlex.join(argv[1:])}", flush=True)
        code = subprocess.run(argv, env={**os.environ, **RUN_ENV}).returncode
        if code:
            print(f"   (exit code {code})", flush=True)
