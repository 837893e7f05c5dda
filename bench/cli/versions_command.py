"""``twinbench sweep`` and ``twinbench ab``: stacks across versions (``twinbench.studies.versions``)."""

from __future__ import annotations

import sys
from pathlib import Path

from twinbench.backends.allocator import ALLOCATORS, TUNED
from twinbench.backends.environments import ENVIRONMENTS
from twinbench.backends.stacks import StackError, canonical_stack
from twinbench.cell import environment_cells
from twinbench.cli.checks import USER_ERRORS, check_writable
from twinbench.cli.options import EXIT_FAILED, CliError, positive_float, positive_int
from twinbench.models import check_choice
from twinbench.records import RESULTS, load_records
from twinbench.results import ab, verdict
from twinbench.results.timing_verdicts import verdict_section
from twinbench.studies import versions
from twinbench.studies.stacks import StackEnvError


def _common(parser, *, out: str, blocks: int) -> None:
    parser.add_argument("--env", default="torch", help=f"the environment whose cells run: {', '.join(ENVIRONMENTS)} "
                                                       "(default torch: keras[torch] and torch)")
    parser.add_argument("--model", default="cifar_cnn")
    parser.add_argument("--base-python", default=sys.executable,
                        help="the Python of the environment's nox virtualenv that every stack's virtualenv is made "
                             "over (default: this one)")
    parser.add_argument("--stacks-dir", default=".nox", help="where the stacks' virtualenvs go (stack-ENV-SLUG)")
    parser.add_argument("--blocks", type=positive_int, default=blocks,
                        help="blocks of one process per stack, ABBA order")
    parser.add_argument("--budget-s", type=positive_float, default=None,
                        help="no block is started that would end past this many seconds")
    parser.add_argument("--batch-size", type=positive_int, default=32)
    parser.add_argument("--steps", type=positive_int, default=20, help="steps per timed window")
    parser.add_argument("--warmup", type=positive_int, default=3, help="steps before timing, the first included")
    parser.add_argument("--repeats", type=positive_int, default=8, help="timed windows per cell and process")
    parser.add_argument("--threads", type=positive_int, default=None,
                        help="CPU threads per framework thread pool (default: each framework's own choice)")
    # tuned by default: with glibc's own settings the same process differed by up to ±27% from one run to the next
    # here, with tuned by ±8% (docs/versions.md); a stack's cells say allocator=tuned in their labels.
    parser.add_argument("--allocator", choices=ALLOCATORS, default=TUNED,
                        help="the C allocator of every process, the cells' allocator axis (default tuned: glibc keeps "
                             "the memory it took, as the six-ratios study runs; system: glibc's own settings; "
                             "backends/allocator.py)")
    parser.add_argument("--out", default=out, help="directory for the records")


def add_versions_parsers(sub) -> None:
    sweep = sub.add_parser("sweep", help="a list of stacks (e.g. every Keras 3 minor release), each in its own "
                                         "virtualenv over the environment's: made, tried, then alternated in ABBA "
                                         "blocks of short throughput processes; a stack that fails is a failed cell")
    sweep.add_argument("--stacks", default=None, metavar="SPEC,SPEC",
                       help="comma-separated stack specs (NAME==VERSION or NAME@PATH joined by '+'; 'default' for "
                            "the project's pins); default: the last patch of every Keras 3 minor release")
    sweep.add_argument("--try-only", action="store_true",
                       help="make and try every stack (can it import and train?), time nothing")
    _common(sweep, out=RESULTS["sweep"], blocks=6)
    compare = sub.add_parser("ab", help="A/B of two stacks (a release against a checkout or a wheel) with a null "
                                        "calibration: A, B and A' (A's stack in a second virtualenv) alternated; "
                                        "faster, slower or no difference per cell and ratio")
    compare.add_argument("a", metavar="A", help="the baseline stack ('default': the project's pins)")
    compare.add_argument("b", metavar="B", help="the changed stack, e.g. keras@/path/to/keras or keras==3.15.1")
    _common(compare, out=RESULTS["ab"], blocks=8)


def _sizes(args) -> list[str]:
    return ["--batch-size", str(args.batch_size), "--steps", str(args.steps), "--warmup", str(args.warmup),
            "--repeats", str(args.repeats), "--overhead-repeats", "0", "--compute-repeats", "0",
            *(["--threads", str(args.threads)] if args.threads else [])]


def _check(args) -> None:
    try:
        check_choice("environment", args.env, ENVIRONMENTS)
        if not environment_cells(args.env, args.model, dataset="synthetic"):
            raise CliError(f"model {args.model!r} has no implementation in the {args.env} environment")
    except USER_ERRORS as err:
        raise CliError(str(err)) from None
    if not Path(args.base_python).exists():
        raise CliError(f"the base environment's Python does not exist: {args.base_python!r}")
    check_writable(args.out)


def cmd_sweep(args) -> int:
    _check(args)
    try:
        specs = (versions.parse_stacks(args.stacks) if args.stacks is not None
                 else versions.default_stacks(args.base_python))
        summary = versions.run_sweep(specs, args.env, args.model, base_python=args.base_python, out=args.out,
                                     blocks=args.blocks, child_args=_sizes(args), root=args.stacks_dir,
                                     budget_s=args.budget_s, try_only=args.try_only, allocator=args.allocator)
    except (StackError, versions.VersionsError) as err:
        raise CliError(str(err)) from None
    print(versions.summary_text(summary))
    if summary["sequence"]:
        records = [r for r in load_records(args.out)[0]
                   if (r.get("alternation") or {}).get("sequence") == summary["sequence"]["id"]]
        print(verdict_section(records, run=f"sweep of {len(summary['stacks'])} stacks, {summary['sequence']['blocks']}"
                                           f" blocks, sequence {summary['sequence']['id']} in {args.out}"))
    failed = any(stack["status"] != "ok" for stack in summary["stacks"]) or \
        (summary["sequence"] or {}).get("failures")
    return EXIT_FAILED if failed else 0


def cmd_ab(args) -> int:
    _check(args)
    try:
        spec_a = "" if args.a == "default" else canonical_stack(args.a)
        spec_b = "" if args.b == "default" else canonical_stack(args.b)
        sequence, slots = versions.run_ab(spec_a, spec_b, args.env, args.model, base_python=args.base_python,
                                          out=args.out, blocks=args.blocks, child_args=_sizes(args),
                                          root=args.stacks_dir, budget_s=args.budget_s, allocator=args.allocator)
    except (StackError, StackEnvError, versions.VersionsError) as err:
        raise CliError(str(err)) from None
    print(f"A = {versions.slot_name(spec_a)}, B = {versions.slot_name(spec_b)}, A' = A's stack in a second "
          f"virtualenv; {args.env} environment, {args.model}; sequence {sequence} in {args.out}")
    print(ab.ab_table(ab.ab_rows(slots, args.env)))
    print(f"B / A above 1: B is slower. 'smallest change seen': how far the null's CI (A' / A, nothing changed) "
          f"reaches from 1. {verdict.RULES}")
    return 0
