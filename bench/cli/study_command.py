"""``twinbench study``: list the declared studies, show one's plan, run it (``twinbench.studies``)."""

from __future__ import annotations

import shlex
from pathlib import Path

from twinbench.backends.environments import ENVIRONMENTS, implementation_label
from twinbench.cli.options import CliError, positive_int
from twinbench.models import UnknownChoiceError, check_choice, get_model_spec, list_models
from twinbench.studies.declared import STUDIES
from twinbench.studies.plan import StudyError, make_plan, resolve_params
from twinbench.studies.runner import check_can_run, python_paths, run_study


def add_study_parser(sub) -> None:
    study = sub.add_parser("study", help="the declared studies (rounds of many runs): list them, show one's plan, "
                                         "run it")
    actions = study.add_subparsers(dest="study_action", required=True, parser_class=type(study))
    actions.add_parser("list", help="the declared studies, one a line, with what each measures")
    show = actions.add_parser("show", help="the plan of a study: every run it would make, in order")
    run = actions.add_parser("run", help="run a study into --out, every run its own process; a rerun with the same "
                                         "--out skips the runs already done")
    for parser in (show, run):
        parser.add_argument("name", help="the study (twinbench study list)")
        parser.add_argument("--out", required=parser is run, default="DIR",
                            help="the study's directory: records by round, study-log.jsonl")
        parser.add_argument("--rounds", type=positive_int, default=None, help="rounds (default: the study's)")
        parser.add_argument("--smallest", "--smoke", action="store_true",
                            help="its smallest size: 1 round, one model, fewest steps (does every run start?)")
        parser.add_argument("--env", action="append", choices=list(ENVIRONMENTS), default=[],
                            help="only this environment's cells (repeatable; default: all)")
        parser.add_argument("--cell", action="append", default=[], metavar="LABEL",
                            help="only this cell, e.g. keras[jax] (repeatable; default: the study's)")
        parser.add_argument("--part", action="append", default=[], help="only this part of the study (repeatable)")
        parser.add_argument("--models", default=None, help="comma-separated models instead of the study's own")
        parser.add_argument("--set", action="append", default=[], metavar="NAME=VALUE", dest="params",
                            help="a parameter of the study (study show lists them)")
        parser.add_argument("--extra", default="", metavar="'OPTIONS'",
                            help="options for every twinbench command of the study, one string after an equals "
                                 "sign: --extra='--batch-size 8'")
    run.add_argument("--python", action="append", default=[], metavar="[ENV=]PATH",
                     help="the python of an environment (torch=PATH), or of all (PATH); default: the nox "
                          "environment's, .nox/<session>-<env>/bin/python")
    run.add_argument("--no-afterwards", action="store_true", help="skip the study's closing compare commands")


def _registered(model: str, label: str) -> bool:
    """Whether ``model`` is registered and has a builder for the cell ``label`` (or for the environment named so)."""
    if model not in list_models():
        return False
    spec = get_model_spec(model)
    for env, pairs in ENVIRONMENTS.items():
        for implementation, backend in pairs:
            if label in (env, implementation_label(implementation, backend)):
                return spec.builds_in(env) and (label == env or implementation in spec.builders)
    return False


def _plan(args):
    try:
        check_choice("study", args.name, STUDIES)
        study = STUDIES[args.name]
        models = tuple(m for m in (args.models or "").split(",") if m)
        for model in models:
            get_model_spec(model)
        overrides = {}
        for item in args.params:
            name, sep, value = item.partition("=")
            if not sep:
                raise CliError(f"--set takes NAME=VALUE. Received: {item!r}")
            overrides[name] = value
        extra = tuple(shlex.split(getattr(args, "extra", "")))
        plan = make_plan(study, args.out, rounds=args.rounds, smallest=args.smallest, envs=tuple(args.env),
                         cells=tuple(args.cell), parts=tuple(args.part), models=models, params=overrides,
                         extra=extra, registered=_registered)
        params = resolve_params(study, overrides, 1 if args.smallest else args.rounds)
    except (StudyError, UnknownChoiceError) as err:
        raise CliError(str(err)) from None
    return study, plan, params


def cmd_study(args) -> int:
    if args.study_action == "list":
        for name, study in STUDIES.items():
            print(f"{name:18s} {study.summary} ({study.rounds} round{'s' if study.rounds > 1 else ''})")
        return 0
    study, plan, params = _plan(args)
    if args.study_action == "show":
        print(f"# study {study.name}: {study.summary}; reported in {study.doc}")
        print(f"# parameters (--set NAME=VALUE): {', '.join(f'{k}={v}' for k, v in params.items()) or '(none)'}")
        print(f"# {len(plan)} runs, each its own process, in this order:")
        for number, run in enumerate(plan, 1):
            print(f"{number:4d} {run.describe()}")
        return 0
    try:
        pythons = python_paths(study, args.python)
        check_can_run(study, plan, pythons)
    except StudyError as err:
        raise CliError(str(err)) from None
    return run_study(study, plan, Path(args.out), pythons, params=params, afterwards=not args.no_afterwards)
