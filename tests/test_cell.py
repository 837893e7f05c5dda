"""The cell: one type, one label, one file id, one sort order, one table of environments (twinbench.cell).

Framework-free: runs in every environment.
"""

from __future__ import annotations

import ast
import dataclasses
import re

import pytest

from conftest import ROOT
from twinbench.backends.environments import BACKENDS, ENVIRONMENTS, NATIVE_BACKEND, ORDER, order
from twinbench.backends.modes import DEFAULT_MODE, Mode
from twinbench.cell import AXES, Cell, environment_cells
from twinbench.models import UnknownChoiceError
from twinbench.records import RESULTS
from twinbench.results.table import sorted_records


def test_label_file_id_and_record_round_trip():
    cell = Cell("cifar_cnn", "keras", "torch")
    assert cell.label == "keras[torch]" and Cell("cifar_cnn", "tf_keras", "tensorflow").label == "tf_keras"
    assert cell.file_id == "cifar_cnn__keras__torch__digits"
    assert cell.as_dict() == {"model": "cifar_cnn", "implementation": "keras", "backend": "torch", "dataset": "digits"}
    assert Cell.of({"cell": cell.as_dict()}) == cell == Cell.of(cell.as_dict())
    assert cell.environment == "torch"


def test_an_axis_off_its_default_is_named_everywhere_and_read_back():
    cell = Cell("cifar_cnn", "keras", "jax", "synthetic", jit="on", precision="mixed_bfloat16")
    assert cell.label == "keras[jax] jit=on precision=mixed_bfloat16"
    assert cell.file_id == "cifar_cnn__keras__jax__synthetic__jit-on__precision-mixed_bfloat16"
    assert cell.as_dict()["jit"] == "on" and Cell.of(cell.as_dict()) == cell
    assert cell.mode == Mode(jit="on", precision="mixed_bfloat16")
    assert set(AXES) <= {field for field in Cell.__dataclass_fields__}
    with pytest.raises(dataclasses.FrozenInstanceError):
        cell.jit = None
    # A record written before modes existed names no axis: it ran in the default mode.
    assert Cell.of({"cell": {"model": "cifar_cnn", "implementation": "torch", "backend": "torch",
                             "dataset": "digits"}}).mode == DEFAULT_MODE


def test_a_mode_checks_its_values_and_which_implementations_have_each_axis():
    with pytest.raises(UnknownChoiceError, match="Unknown jit 'xla'. Valid choices: default, off, on"):
        Mode(jit="xla")
    with pytest.raises(UnknownChoiceError, match="--data-format applies to keras only, not to torch"):
        Mode(data_format="channels_first").check("torch")
    with pytest.raises(UnknownChoiceError, match="--memory-format applies to torch only, not to tf_keras"):
        Mode(memory_format="channels_last").check("tf_keras")
    Mode(jit="on", precision="mixed_float16").check("tf_keras")  # every implementation has these
    # An environment's cells in a mode: only those that have every axis it sets.
    cells = environment_cells("torch", "cifar_cnn", data_format="channels_first")
    assert [c.label for c in cells] == ["keras[torch] data_format=channels_first"]
    assert [c.label for c in environment_cells("torch", "cifar_cnn", jit="on")] == \
        ["torch jit=on", "keras[torch] jit=on"]


def test_one_sort_order_for_every_table():
    records = [{"cell": Cell("cifar_cnn", implementation, backend).as_dict()} for implementation, backend in ORDER]
    labels = [Cell.of(r).label for r in sorted_records(list(reversed(records)))]
    assert labels == ["torch", "keras[torch]", "tf_keras", "keras[tensorflow]", "keras[jax]"]
    assert order("keras", "mxnet") == len(ORDER)


def test_environment_table_and_what_is_derived_from_it():
    assert BACKENDS == ("torch", "tensorflow", "jax")
    assert NATIVE_BACKEND == {"torch": "torch", "tf_keras": "tensorflow"}
    assert [c.label for c in environment_cells("torch", "cifar_cnn")] == ["torch", "keras[torch]"]
    assert [c.label for c in environment_cells("torch", "vgg19_kerasapps")] == ["keras[torch]"]  # no torch twin


def _noxfile_constant(name: str):
    tree = ast.parse((ROOT / "noxfile.py").read_text())
    (value,) = [node.value for node in tree.body if isinstance(node, ast.Assign)
                and any(getattr(t, "id", None) == name for t in node.targets)]
    return ast.literal_eval(value)


def test_noxfile_environments_and_results_directories_agree_with_bench():
    assert list(_noxfile_constant("ENVIRONMENTS")) == list(ENVIRONMENTS)
    assert all(RESULTS[kind] == path for kind, path in _noxfile_constant("RESULTS").items())


def test_cells_command_lists_the_table_for_scripts(capsys):
    from twinbench.cli import main

    assert main(["cells", "--env", "jax", "--env", "torch"]) == 0
    assert capsys.readouterr().out.splitlines() == ["torch torch torch torch", "torch keras torch keras[torch]", "jax keras jax keras[jax]"]


def _literal_tables(tree) -> list[str]:
    """Module-level names bound to a written-out dict/list/tuple whose name says environment or order."""
    named = re.compile(r"ENV\w*CELLS|ENVIRONMENTS|ORDER")
    return [target.id for node in tree.body
            if isinstance(node, ast.Assign) and isinstance(node.value, (ast.Dict, ast.List, ast.Tuple))
            for target in node.targets if isinstance(target, ast.Name) and named.search(target.id)]


def test_label_order_and_table_are_defined_in_one_module_only():
    """The label ("keras[" + backend) is built, and the environment table and the order are written out, in
    backends/environments.py alone; everything else derives from them."""
    label = re.compile(r"keras\[\{|keras\[' \+|keras\[\" \+")
    found = {"label": [], "table": []}
    for package in ("models", "backends", "data", "bench"):
        for path in sorted((ROOT / package).rglob("*.py")):
            text, name = path.read_text(), path.relative_to(ROOT).as_posix()
            if label.search(text):
                found["label"].append(name)
            if _literal_tables(ast.parse(text)):
                found["table"].append(name)
    assert found == {"label": ["backends/environments.py"], "table": ["backends/environments.py"]}
    assert _literal_tables(ast.parse((ROOT / "backends" / "environments.py").read_text())) == ["ENVIRONMENTS"]


@pytest.mark.parametrize("old", ["run", "matrix", "bench"])
def test_earlier_command_spellings_are_one_line_naming_the_commands(old, capsys):
    from twinbench.cli import main

    assert main([old, "--model", "cifar_cnn", "--impl", "torch"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"twinbench: error: argument command: invalid choice: '{old}' "), err
    assert all(f"'{command}'" in err for command in ("train", "throughput", "compare", "check")), err
