"""``python -m twinbench equivalence``: do the implementations reach the same accuracy? Each of an environment's cells
is trained over several seeds (``twinbench train``'s own runs, one child process each); ``--show`` pools the records of
several environments and prints the TOST table (``twinbench.results.equivalence``)."""

from __future__ import annotations

from pathlib import Path

from twinbench.backends.environments import ENVIRONMENTS
from twinbench.cell import environment_cells
from twinbench.cli.checks import USER_ERRORS
from twinbench.cli.options import EXIT_FAILED, CliError, non_negative_int, positive_float, positive_int
from twinbench.measuring import children
from twinbench.records import load_records
from twinbench.results.equivalence import equivalence_table

DEFAULT_OUT = "results/equivalence"


def add_equivalence_parser(sub):
    equivalence = sub.add_parser("equivalence", help="train an environment's cells over several seeds, or print the "
                                                     "TOST table (equivalent / different / inconclusive) of records")
    which = equivalence.add_mutually_exclusive_group(required=True)
    which.add_argument("--env", choices=list(ENVIRONMENTS), help="train this environment's cells")
    which.add_argument("--show", nargs="+", metavar="DIR", help="pool the training records of these directories "
                                                                "and print the TOST table")
    equivalence.add_argument("--model", default=",".join(children.DEFAULT_MODELS), help="comma-separated model names")
    equivalence.add_argument("--seeds", type=positive_int, default=5, help="seeds 0..N-1 per cell")
    equivalence.add_argument("--epochs", type=non_negative_int, default=5)
    equivalence.add_argument("--dataset", default="digits", help="digits (default), synthetic, cifar10, mnist")
    equivalence.add_argument("--threads", type=positive_int, default=None, help="CPU threads per framework pool")
    equivalence.add_argument("--out", default=DEFAULT_OUT, help="directory for the training records")
    equivalence.add_argument("--margin", type=positive_float, default=1.0,
                             help="--show: the equivalence margin in accuracy points (default 1)")
    equivalence.add_argument("--alpha", type=positive_float, default=0.05,
                             help="--show: the level of each one-sided test (default 0.05)")


def cmd_equivalence(args) -> int:
    if args.show:
        if not 0 < args.alpha < 0.5:
            raise CliError(f"--alpha must lie between 0 and 0.5. Received: {args.alpha}")
        missing = [path for path in args.show if not Path(path).exists()]
        if missing:
            raise CliError(f"no such file or directory: {', '.join(missing)}")
        records, problems = load_records(*args.show)
        for problem in problems:
            print(f"skipped: {problem}")
        print(equivalence_table(records, margin=args.margin / 100, alpha=args.alpha))
        return 0
    try:
        models = [m for m in args.model.split(",") if m]
        cells = [cell for model in models for cell in environment_cells(args.env, model, dataset=args.dataset)]
    except USER_ERRORS as err:
        raise CliError(str(err)) from None
    threads = ["--threads", str(args.threads)] if args.threads else []
    failures = 0
    for seed in range(args.seeds):
        failures += children.run_cells("train", cells, out_dir=args.out,
                                       child_args=["--seed", str(seed), "--epochs", str(args.epochs),
                                                   "--no-profiler", *threads])
    print(f"records in {args.out}; the table: twinbench equivalence --show {args.out} [more directories]")
    return EXIT_FAILED if failures else 0
