"""Print (or write into README.md) the main job's output: what ``nox -s compare`` printed, from its records.

After ``nox -s compare`` (records in results/train and results/timing)::

    python tools/readme_main_job.py                # print the README block
    python tools/readme_main_job.py --write        # replace README.md's block with it (that block only)

The block says which commit and machine made the records (``record["environment"]``), then shows the accuracy table
and the timing verdicts of the latest alternated sequence, formatted as the main job prints them
(``twinbench.results.timing_verdicts.main_job_text``); tests/test_alternate.py checks the README's block keeps that
format. Imports no framework.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from twinbench.records import RESULTS, load_records  # noqa: E402
from twinbench.results.timing_verdicts import latest_sequence, main_job_text, run_text  # noqa: E402

BEGIN, END = "<!-- main-job output: begin -->", "<!-- main-job output: end -->"


def provenance(records: list[dict]) -> str:
    """``commit 1a2b3c4 (clean), 2 CPUs (Intel ...), no GPU, Python 3.11.7, torch 2.14.1, ...``."""
    environment = next((r["environment"] for r in records if r.get("environment")), {})
    git = environment.get("git") or {}
    commit = f"commit {git['commit'][:7]}{' with uncommitted changes' if git.get('dirty') else ''}" if git else \
        "an unknown commit"
    machine = environment.get("machine") or {}
    versions = {}  # each environment's records name its own frameworks
    for record in records:
        versions.update({k: v for k, v in ((record.get("environment") or {}).get("versions") or {}).items() if v})
    gpu = (environment.get("gpu") or {}).get("name") or "no GPU"
    packages = ", ".join(f"{name} {versions[name]}" for name in ("torch", "tensorflow", "tf-keras", "jax", "keras")
                         if versions.get(name))
    return (f"{commit}; {machine.get('cpu_affinity') or machine.get('cpu_count_logical')} CPU cores "
            f"({machine.get('cpu_model') or machine.get('processor') or 'CPU'}), {gpu}; Python "
            f"{versions.get('python', '?')}, {packages}")


def block(train_dir: Path, timing_dir: Path, *, note: str | None = None) -> str:
    """The README block, markers included; ``note``: a sentence on how this run differs from a plain
    ``nox -s compare`` (options, a shared machine), said under the intro."""
    train = [r for r in load_records(train_dir)[0] if r.get("kind", "train") == "train"]
    timing = latest_sequence(load_records(timing_dir)[0])
    text = main_job_text(train, timing, run=run_text(timing))
    return "\n".join([
        BEGIN,
        "What `nox -s compare` prints: the accuracy table, then timing verdicts for the six ratios of the overhead "
        "decomposition (each environment's cells interleaved in short processes, the environments' processes "
        "alternated A,B,B,A within a budget; a verdict only from a quiet machine and a resolved ratio, otherwise the "
        "row says why). Made at " + provenance(train + timing) + "; written into this block by "
        "`python tools/readme_main_job.py --write`." + (f" {note}" if note else ""), "", "```", text, "```", END])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--train", type=Path, default=ROOT / RESULTS["train"], help="the training records")
    parser.add_argument("--timing", type=Path, default=ROOT / RESULTS["timing"], help="the alternated records")
    parser.add_argument("--write", action="store_true", help="replace README.md's block instead of printing it")
    parser.add_argument("--note", default=None, help="a sentence on how the run differed from plain nox -s compare")
    args = parser.parse_args(argv)
    for directory in (args.train, args.timing):
        if not directory.is_dir():
            print(f"readme_main_job: no directory {directory}; run nox -s compare first", file=sys.stderr)
            return 2
    text = block(args.train, args.timing, note=args.note)
    if not args.write:
        print(text)
        return 0
    readme = ROOT / "README.md"
    current = readme.read_text()
    if BEGIN not in current or END not in current:
        print(f"readme_main_job: README.md has no block between {BEGIN} and {END}", file=sys.stderr)
        return 2
    before, rest = current.split(BEGIN, 1)
    after = rest.split(END, 1)[1]
    readme.write_text(before + text + after)
    print(f"wrote the main-job block of {readme}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
