"""A model from outside the repository (``--model FILE.py:NAME``, ``TWINBENCH_MODELS``, the ``twinbench.models``
entry points) runs through train, throughput, compare and report like a built-in one (models/_registry.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from conftest import BACKEND, ROOT

MODEL_FILE = '''
"""A tiny external model: conv -> ReLU -> global average pool -> logits, in Keras 3 and in PyTorch."""
from twinbench.models import ModelSpec, register_model


def keras_model(*, input_shape, num_classes):
    import keras

    inputs = keras.Input(input_shape)
    x = keras.layers.Conv2D(4, 3, activation="relu", name="conv1")(inputs)
    x = keras.layers.GlobalAveragePooling2D(name="pool")(x)
    return keras.Model(inputs, keras.layers.Dense(num_classes, name="logits")(x), name="ext_tiny")


def torch_model(*, input_shape, num_classes):
    from torch import nn

    class Tiny(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv1 = nn.Conv2d(input_shape[-1], 4, 3)
            self.logits = nn.Linear(4, num_classes)

        def forward(self, x):
            return self.logits(nn.functional.relu(self.conv1(x)).mean(dim=(2, 3)))

    return Tiny()


register_model(ModelSpec(name="ext_tiny", builders={"keras": keras_model, "torch": torch_model},
                         input_shape=(8, 8, 3), num_classes=10, paper="a test", summary="an external test model",
                         params=3 * 3 * 3 * 4 + 4 + 4 * 10 + 10, forward_flops={"8x8x3": 2 * (6 * 6 * 4 * 27 + 40)}))
'''


@pytest.fixture()
def model_file(tmp_path):
    path = tmp_path / "my_models.py"
    path.write_text(MODEL_FILE)
    return path


def _bench(*args, env=None):
    environment = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
    return subprocess.run([sys.executable, "-m", "twinbench", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=300, env=environment)


def test_a_model_file_registers_its_models_once(model_file, monkeypatch):
    from twinbench.models import _registry, get_model_spec, list_models, load_model_file

    monkeypatch.setattr(_registry, "_MODELS", dict(_registry._MODELS))  # leave the real registry as it was
    monkeypatch.setattr(_registry, "_LOADED_FILES", {})
    monkeypatch.setenv(_registry.MODELS_VARIABLE, "")  # restored (removed) afterwards
    assert load_model_file(f"{model_file}:ext_tiny") == "ext_tiny"
    assert get_model_spec(f"{model_file}:ext_tiny").params == 162  # loading again is no duplicate registration
    assert "ext_tiny" in list_models()
    assert os.environ[_registry.MODELS_VARIABLE] == str(model_file.resolve())  # child processes load it too
    from twinbench.twins.sources import (
        model_sources,  # `bench show`'s excerpts: the builders are functions here
    )

    sources = model_sources("ext_tiny")
    assert "def torch_model" in "\n".join(part.text for part in sources.definitions["torch"])


@pytest.mark.parametrize(("reference", "message"), [
    ("missing.py:ext_tiny", "does not exist"),
    ("{file}:other", "registers no model 'other'. Valid choices: ext_tiny"),
])
def test_a_bad_model_reference_is_one_line(model_file, reference, message):
    done = _bench("train", "--model", reference.format(file=model_file), "--impl", "keras", "--epochs", "0")
    assert done.returncode == 2
    assert message in done.stderr and len(done.stderr.strip().splitlines()) == 1


def test_a_model_file_that_cannot_be_imported_is_one_line_however_it_is_named(tmp_path):
    bad = tmp_path / "my_models.py"
    bad.write_text("def build(*, input_shape:\n")
    by_option = _bench("train", "--model", f"{bad}:ext_tiny", "--impl", "keras", "--epochs", "0")
    by_variable = _bench("cells", env={"TWINBENCH_MODELS": str(bad)})
    for done in (by_option, by_variable):
        assert done.returncode == 2 and len(done.stderr.strip().splitlines()) == 1, done.stderr
        assert f"Model file '{bad}' could not be imported: SyntaxError: " in done.stderr
    assert "(listed in TWINBENCH_MODELS)" in by_variable.stderr
    # Importing the package loads no user file: only the commands do, inside their one-line error handling.
    imported = subprocess.run([sys.executable, "-c", "import twinbench.models"], cwd=ROOT, capture_output=True,
                              text=True, timeout=300, env={**os.environ, "TWINBENCH_MODELS": str(bad)})
    assert imported.returncode == 0, imported.stderr


@pytest.mark.large  # four child processes, two of them start PyTorch and Keras and train
def test_an_external_model_runs_in_train_throughput_compare_and_report(model_file, tmp_path):
    if BACKEND != "torch":
        pytest.skip("one environment suffices: the torch environment runs both the PyTorch twin and Keras 3")
    out = tmp_path / "train"
    done = _bench("train", "--env", "torch", "--models", f"{model_file}:ext_tiny", "--dataset", "synthetic",
                  "--synthetic-train", "64", "--synthetic-test", "32", "--epochs", "1", "--no-profiler", "--out", str(out))
    assert done.returncode == 0, done.stdout + done.stderr
    records = [json.loads(p.read_text()) for p in sorted(out.glob("*.json")) if not p.name.endswith(".timeline.json")]
    assert sorted((r["cell"]["model"], r["cell"]["implementation"], r["status"]) for r in records) == [
        ("ext_tiny", "keras", "ok"), ("ext_tiny", "torch", "ok")]
    assert {r["model"]["params"] for r in records} == {162}

    done = _bench("throughput", "--model", f"{model_file}:ext_tiny", "--impl", "torch", "--batch-size", "8",
                  "--steps", "2", "--warmup", "1", "--repeats", "2", "--out", str(out))
    assert done.returncode == 0, done.stdout + done.stderr

    known = {"TWINBENCH_MODELS": str(model_file)}  # reading the records later: the model file is named once
    done = _bench("compare", str(out), env=known)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "ext_tiny" in done.stdout
    done = _bench("report", str(out), "--no-figures", "--out", str(tmp_path / "report"), env=known)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "ext_tiny" in (tmp_path / "report" / "report.md").read_text()


def test_an_entry_point_can_give_a_model_spec(monkeypatch):
    from twinbench.models import ModelSpec, _registry, get_model_spec

    spec = ModelSpec(name="ep_model", builders={"keras": "nowhere:build"}, input_shape=(8, 8, 3), num_classes=10,
                     paper="a test", summary="from an entry point", params=1, forward_flops={"8x8x3": 1})

    class EntryPoint:
        def load(self):
            return spec

    groups = []
    monkeypatch.setattr(_registry, "_MODELS", dict(_registry._MODELS))
    monkeypatch.setattr(_registry, "_LOADED_ENTRY_POINTS", [])
    monkeypatch.setattr(_registry.importlib.metadata, "entry_points",
                        lambda *, group: groups.append(group) or [EntryPoint()])
    assert get_model_spec("ep_model") is spec
    assert groups == ["twinbench.models"]
