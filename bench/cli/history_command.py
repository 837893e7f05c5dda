"""``twinbench history``: the history page of results directories (``twinbench.results.history``): the ratios over
software stacks and twinbench commits, their steps, ``index.html`` and ``history.json`` in ``--out``."""

from __future__ import annotations

import sys
from pathlib import Path

from twinbench.cli.checks import check_writable
from twinbench.cli.options import CliError
from twinbench.records import load_records


def add_history_parser(sub):
    history = sub.add_parser("history", help="the ratios (keras[torch] / torch, ...) over Keras versions and twinbench "
                                             "commits, with their CIs and called steps: a static page, index.html "
                                             "and history.json (docs/history.md)")
    history.add_argument("results", nargs="+", help="directories of records (every stack, every commit)")
    history.add_argument("--out", required=True, help="directory for index.html and history.json")
    history.add_argument("--seed", type=int, default=0, help="the bootstrap's seed")


def cmd_history(args) -> int:
    try:  # the history extra (asv); a missing one is the user's to install, not a traceback
        from twinbench.results.history import history
        from twinbench.results.history_page import write_page
    except ImportError as err:
        raise CliError(f"twinbench history needs the history extra ({err.name} is missing): "
                       "pip install -e '.[history]'") from None
    for directory in args.results:
        if not Path(directory).is_dir():
            raise CliError(f"results directory {directory!r} does not exist")
    records, skipped = load_records(*args.results)
    for line in skipped:
        print(f"skipped {line}", file=sys.stderr)
    if not any(r.get("status") == "ok" for r in records):
        raise CliError(f"no successful twinbench records in {', '.join(map(repr, args.results))}")
    check_writable(args.out)
    data = history(records, sources=list(args.results), seed=args.seed)
    if not data["series"]:
        raise CliError("no ratio in these records: the history needs both cells of a ratio (e.g. keras[torch] and "
                       "torch) with at least 2 samples each")
    page = write_page(data, args.out)
    steps = [step for series in data["series"] for step in series["steps"]]
    print(f"wrote {page} and its data ({len(data['series'])} series, "
          f"{sum(len(s['points']) for s in data['series'])} points, {sum(s['called'] for s in steps)} steps called, "
          f"{sum(not s['called'] for s in steps)} candidates not called); serve it: python -m http.server -d {args.out}")
    for series in data["series"]:
        for step in series["steps"]:
            print(f"  {series['numerator']} / {series['denominator']} {series['model']} {series['kind']}: "
                  f"{step['before']} -> {step['after']}: {'called' if step['called'] else 'candidate'}: {step['why']}")
    return 0
