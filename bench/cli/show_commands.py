"""The commands that show: ``list``, ``cells``, ``compare``, ``report``, ``show`` and ``docs``."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from twinbench.backends.environments import ENVIRONMENTS, implementation_label
from twinbench.cell import environment_cells
from twinbench.cli.checks import USER_ERRORS, check_writable
from twinbench.cli.options import CliError
from twinbench.models import get_model_spec, list_models
from twinbench.records import load_records
from twinbench.results.breakdown import breakdown_section, calls_section
from twinbench.results.generation import generation_section
from twinbench.results.latency import latency_section
from twinbench.results.measured_tables import VIEWS
from twinbench.results.ops import ops_section
from twinbench.results.report import build_report
from twinbench.results.table import agreement_summary, results_table
from twinbench.results.text import throughput_section, training_timing_section
from twinbench.studies.profiler_cost import profiler_cost_section
from twinbench.twins.env_data import current_env, write_env_data
from twinbench.twins.sources import DocsError
from twinbench.twins.teaching import show, write_pages


def cmd_list(args) -> int:
    for name in list_models():
        spec = get_model_spec(name)
        print(f"{name:24s} {', '.join(spec.builders):24s} {spec.summary}")
    return 0


def cmd_cells(args) -> int:
    """The cells of each environment, for scripts: ``ENVIRONMENT IMPLEMENTATION BACKEND LABEL`` a line."""
    try:
        for env in (env for env in ENVIRONMENTS if not args.env or env in args.env):
            pairs = ([cell.pair for cell in environment_cells(env, args.model)] if args.model
                     else ENVIRONMENTS[env])
            for implementation, backend in pairs:
                print(env, implementation, backend, implementation_label(implementation, backend))
    except USER_ERRORS as err:
        raise CliError(str(err)) from None
    return 0


def cmd_compare(args) -> int:
    directories = [args.results] if isinstance(args.results, str) else args.results
    for directory in directories:
        if not Path(directory).is_dir():
            raise CliError(f"results directory {directory!r} does not exist; run the matrix first (nox -s compare)")
    records, skipped = load_records(*directories)
    for line in skipped:
        print(f"skipped {line}", file=sys.stderr)
    if not records:
        raise CliError(f"no twinbench records in {', '.join(map(repr, directories))}")
    if getattr(args, "view", None):
        rows_of, table_of, lacking = VIEWS[args.view]
        rows = rows_of(records)
        if not rows:
            raise CliError(f"{lacking} in {', '.join(map(repr, directories))}")
        print(table_of(rows))
        return 0
    trained = [r for r in records if r.get("kind", "train") == "train"]
    if trained:
        print(results_table(trained))
        print()
        for line in agreement_summary(trained):
            print(line)
    throughput = [r for r in records if r.get("kind") == "throughput"]
    if throughput:
        print(throughput_section(throughput, breakdowns=records))
    if trained:
        print(training_timing_section(trained))
    traces = ops_section(records)
    if traces:
        print(traces)
    latency = latency_section(records)
    if latency:
        print(latency)
    generation = generation_section(records)
    if generation:
        print(generation)
    for section in (breakdown_section(records), calls_section(records)):
        if section:
            print(section)
    costs = [r for r in records if r.get("kind") == "profiler_cost"]
    if costs:
        print("\nThe profiler's own cost (twinbench profiler-cost):")
        print(profiler_cost_section(costs))
    return 0


def cmd_report(args) -> int:
    directories = [args.results] if isinstance(args.results, str) else args.results
    for directory in directories:
        if not Path(directory).is_dir():
            raise CliError(f"results directory {directory!r} does not exist; run the matrix first (nox -s compare)")
    try:  # several directories: the one that holds them all
        out = args.out or os.path.commonpath(directories)
    except ValueError:  # relative and absolute paths mixed
        out = os.path.commonpath([str(Path(d).resolve()) for d in directories])
    check_writable(out)  # report.md and figures/ go next to the records
    path = build_report(*directories, out_dir=out, figures=not args.no_figures)
    print(f"wrote {path}")
    return 0


def cmd_show(args) -> int:
    try:
        get_model_spec(args.model)
        print(show(args.model, live=not args.offline), end="")
    except (*USER_ERRORS, DocsError) as err:
        raise CliError(str(err)) from None
    return 0


def cmd_docs(args) -> int:
    try:
        models = [m for m in (args.models or "").split(",") if m] or None
        for model in models or []:
            get_model_spec(model)
        if args.collect:
            env = current_env()
            if env is None:
                raise CliError("--collect needs a framework environment (KERAS_BACKEND=torch|tensorflow|jax); "
                               "nox -s docs runs it in each")
            paths = write_env_data(env, models)
        else:
            paths = write_pages(models)
    except (*USER_ERRORS, DocsError) as err:
        raise CliError(str(err)) from None
    for path in paths:
        print(f"wrote {path}")
    return 0
