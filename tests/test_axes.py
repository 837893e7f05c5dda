"""An axis is one declaration (``twinbench.cell.CELL_AXES``): every command's option for it, its checks, the command
line a child process gets and the ``config`` of a record all come from there. Framework-free: runs in every
environment."""

from __future__ import annotations

import dataclasses
import json

import pytest

from conftest import ROOT
from twinbench.backends.modes import Mode, Replication, axes_of
from twinbench.cell import AXES, CELL_AXES, Cell, cell_argv, command_axes
from twinbench.cli import build_parser
from twinbench.cli.options import axis_values, child_args
from twinbench.measuring.generate import GenerateConfig
from twinbench.measuring.latency import LatencyConfig
from twinbench.measuring.throughput import ThroughputConfig
from twinbench.measuring.trace import TraceConfig
from twinbench.measuring.train import RunConfig
from twinbench.models import UnknownChoiceError
from twinbench.studies.profiler_cost import CostConfig

CONFIGS = {"train": RunConfig, "throughput": ThroughputConfig, "trace": TraceConfig, "profiler_cost": CostConfig,
           "latency": LatencyConfig, "generate": GenerateConfig}
COMMANDS = ("train", "throughput", "trace", "profiler-cost", "latency", "generate")


def _other_value(declared):
    """A value of the axis that is not its default, as a user would give it."""
    if isinstance(declared.default, bool):
        return not declared.default
    if declared.choices:
        return next(choice for choice in declared.choices if choice != declared.default)
    return {"replicas": 2, "cpus": "0", "stack": "keras==3.10.0"}[declared.name]


def _parser_actions(command):
    sub = next(a for a in build_parser()._actions if a.dest == "command")
    return {action.dest: action for action in sub.choices[command]._actions}


def test_axes_and_their_defaults_are_read_from_the_declarations():
    assert AXES == {name: declared.default for name, declared in CELL_AXES.items()}
    assert list(AXES)[:10] == ["jit", "precision", "data_format", "memory_format", "replicas", "sync_batchnorm",
                               "feed", "cpus", "process", "allocator"]  # the order of labels and file names
    # Mode and Replication, the types the runners receive, declare their axes; the cell takes them over unchanged.
    for runtime in (Mode, Replication):
        for name, declared in axes_of(runtime).items():
            assert CELL_AXES[name] == declared and getattr(runtime(), name) == declared.default
    assert CELL_AXES["process"].record_only and not command_axes("train").keys() & {"process", "feed"}


@pytest.mark.parametrize("command", COMMANDS)
def test_every_axis_a_command_takes_is_an_option_made_from_its_declaration(command):
    actions = _parser_actions(command)
    for name, declared in CELL_AXES.items():
        if command not in declared.commands:
            assert name not in actions, f"{command} has {declared.flag}, which its declaration does not give it"
            continue
        action = actions[name]
        assert action.option_strings == [declared.flag] and action.default == declared.default
        assert action.choices == (list(declared.choices) if isinstance(action.choices, list) else declared.choices)
        assert declared.help in action.help


@pytest.mark.parametrize("command", ("train", "throughput", "trace", "latency", "generate"))
def test_each_axis_off_its_default_goes_through_a_child_command_line_and_back(command):
    for name, declared in command_axes(command).items():
        cell = Cell("cifar_cnn", "torch", "torch", "digits" if command == "train" else "synthetic",
                    **{name: _other_value(declared)}, **({"replicas": 2} if name == "sync_batchnorm" else {}))
        argv = cell_argv(cell, command)
        assert declared.flag in argv
        args = build_parser().parse_args([command, *argv])
        parsed = Cell(args.model, args.impl, args.backend, args.dataset if command == "train" else "synthetic",
                      **axis_values(args, command))
        assert parsed == cell, (name, argv)
        # The parent's other options reach the child without the axes: the child's cell names them.
        assert not set(child_args(args)) & {axis.flag for axis in CELL_AXES.values()}


def test_an_axis_a_command_does_not_take_never_reaches_its_command_line():
    assert "--process" not in cell_argv(Cell("m", "torch", "torch", "synthetic", process="shared"), "throughput")
    with pytest.raises(ValueError, match="train has no option --feed"):
        cell_argv(Cell("m", "torch", "torch", feed="arrays"), "train")


def test_the_checks_name_the_choices_and_the_implementations_from_the_declarations():
    with pytest.raises(UnknownChoiceError, match="Unknown allocator 'jemalloc'. Valid choices: system, tuned"):
        Cell("cifar_cnn", "torch", "torch", allocator="jemalloc").check_values()
    with pytest.raises(UnknownChoiceError, match="Unknown feed 'x'. Valid choices: native, arrays"):
        Cell("cifar_cnn", "torch", "torch", feed="x").check_values()
    with pytest.raises(UnknownChoiceError, match="--replicas must be a positive integer"):
        Cell("cifar_cnn", "torch", "torch", replicas=0).check_values()
    for name, declared in CELL_AXES.items():
        others = [i for i in ("torch", "tf_keras", "keras") if i not in declared.implementations]
        for implementation in others:
            cell = Cell("cifar_cnn", implementation, "tensorflow", **{name: _other_value(declared)})
            with pytest.raises(UnknownChoiceError, match=f"{declared.flag} applies to .* not to {implementation}"):
                cell.check_applies()


@pytest.mark.parametrize("kind", CONFIGS)
def test_a_config_records_the_axes_its_command_records(kind):
    config_class = CONFIGS[kind]
    cell = Cell("cifar_cnn", "torch", "torch", "synthetic", jit="on", cpus="0")
    recorded = config_class(cell).as_dict()
    assert recorded["model"] == "cifar_cnn" and ("dataset" in recorded) == (config_class.dataset is None)
    for name, declared in CELL_AXES.items():
        group = "mode" if name in axes_of(Mode) else "replication" if name in axes_of(Replication) else name
        assert (group in recorded) == declared.records(config_class.command), (kind, name)
    if "mode" in recorded:
        assert recorded["mode"] == dataclasses.asdict(cell.mode)


def test_committed_records_read_back_into_the_same_config():
    """A record's ``config`` is what it was before configs held a cell: each committed record comes back from its
    cell and its own fields unchanged (those written before an axis or a field existed: in the keys they have)."""
    compared = 0
    for path in sorted((ROOT / "docs" / "measurements").rglob("*.json")):
        if path.name.endswith(".timeline.json"):
            continue
        record = json.loads(path.read_text())
        config_class = CONFIGS.get(record.get("kind", "train")) if isinstance(record, dict) else None
        if config_class is None or "config" not in record:
            continue
        own = {f.name: record["config"][f.name] for f in dataclasses.fields(config_class)
               if f.name in record["config"]}
        own = {key: tuple(value) if isinstance(value, list) else value for key, value in own.items()}
        config = config_class(Cell.of(record), **own)
        rebuilt = json.loads(json.dumps(config.as_dict()))
        assert set(record["config"]) <= set(rebuilt), path
        assert {key: rebuilt[key] for key in record["config"]} == record["config"], path
        compared += 1
    assert compared >= 400
