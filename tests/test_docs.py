"""The teaching pages (docs/models/) are current: a model or runner change without regenerating fails here.

The source excerpts, lines of code and the rendering are checked in every environment (they need no
framework); the layer tables are recomputed in each framework environment and compared with the committed
data of that environment. The twin checks themselves are asserted by test_parity.py; here only that the
committed results say "same network".
"""

from __future__ import annotations

import difflib

import pytest

from conftest import BACKEND, ROOT
from twinbench.models import get_model_spec, list_models
from twinbench.twins import env_data, sources, teaching

MODELS = list_models()
HOW = "run `nox -s docs` (or, after source changes only, `twinbench docs`)"


def _first_difference(expected: str, actual: str) -> str:
    diff = difflib.unified_diff(actual.splitlines(), expected.splitlines(), "committed", "regenerated", n=0,
                                lineterm="")
    return "\n".join(list(diff)[:12])


@pytest.mark.parametrize("model_name", MODELS)
def test_every_model_has_a_complete_page(model_name):
    page = teaching.page_path(model_name)
    assert page.exists(), f"no page {page.relative_to(ROOT)} for registered model {model_name!r}: {HOW}"
    spec = get_model_spec(model_name)
    missing = [env for env in teaching.ENVS if spec.builds_in(env) and not env_data.data_path(model_name, env).exists()]
    assert not missing, f"{model_name}: no layer/twin data from the {', '.join(missing)} environment(s): {HOW}"


@pytest.mark.parametrize("model_name", MODELS)
def test_committed_page_is_current(model_name):
    """Regenerated from today's source and the committed data, the page must equal the committed one."""
    page = teaching.page_path(model_name)
    if not page.exists():
        pytest.fail(f"no page {page.relative_to(ROOT)}: {HOW}")
    expected = teaching.render_page(model_name, env_data.load_data(model_name))
    committed = page.read_text()
    assert committed == expected, f"{page.relative_to(ROOT)} is stale: {HOW}\n{_first_difference(expected, committed)}"


def test_index_lists_every_model_and_is_current():
    index = teaching.DOCS_DIR / "index.md"
    assert index.exists(), f"no {index.relative_to(ROOT)}: {HOW}"
    text = index.read_text()
    for name in MODELS:
        assert f"]({name}.md)" in text, f"{name} is missing from the index: {HOW}"
    assert text == teaching.render_index(), f"{index.relative_to(ROOT)} is stale: {HOW}"


@pytest.mark.parametrize("model_name", MODELS)
def test_committed_twin_checks_passed(model_name):
    for env, data in env_data.load_data(model_name).items():
        for check in data.get("checks", []):
            assert check["passed"], f"{model_name} ({env}): {check['a']} vs {check['b']}: {check.get('error')}"
            assert check["max_abs_logits"] <= check["tolerance"]


@pytest.mark.large  # every model at full size in every style (tf.keras builds in full): seconds to a minute each
@pytest.mark.skipif(BACKEND is None, reason="needs a framework environment")
@pytest.mark.parametrize("model_name", MODELS)
def test_layer_tables_match_this_environment(model_name):
    """Recompute this environment's layer rows (no twin checks) and compare with its committed data."""
    if not get_model_spec(model_name).builds_in(BACKEND):
        pytest.skip(f"{model_name} does not build in the {BACKEND} environment")
    path = env_data.data_path(model_name, BACKEND)
    if not path.exists():
        pytest.fail(f"no {path.relative_to(ROOT)}: {HOW}")
    fresh = env_data.collect(model_name, BACKEND, checks=False)
    committed = env_data.load_data(model_name)[BACKEND]
    for style, rows in fresh["layers"].items():
        assert committed["layers"].get(style) == rows, f"{model_name}: the {style} layer table changed: {HOW}"


# -- the generator itself ----------------------------------------------------------------------------------

def test_a_changed_definition_makes_the_page_stale(monkeypatch, tmp_path):
    """Edit a copy of the Keras definition (one filter count) and point the generator at it: the page differs."""
    original = sources.module_path("twinbench.models.small_cnn.keras_model")
    edited = tmp_path / "keras_model.py"
    edited.write_text(original.read_text().replace('name="conv1"', 'name="conv1", use_bias=False'))
    real = sources.module_path
    monkeypatch.setattr(sources, "module_path",
                        lambda name: edited if name == "twinbench.models.small_cnn.keras_model" else real(name))
    page = teaching.render_page("cifar_cnn", env_data.load_data("cifar_cnn"))
    assert "use_bias=False" in page
    assert page != teaching.page_path("cifar_cnn").read_text()


def test_excerpt_keeps_what_the_builder_needs_and_nothing_else():
    part = sources.excerpt("twinbench.models.small_cnn.keras_model", ["cifar_cnn"])
    assert "def cifar_cnn(" in part.text and "def _small_cnn(" in part.text
    assert "def mnist_cnn(" not in part.text  # the other model of the family
    assert "from twinbench.models.small_cnn.config import" in part.text
    assert ("twinbench.models.small_cnn.config", "SMALL_CNNS") in part.imports


def test_count_code_lines_skips_blanks_comments_and_docstrings():
    source = '''
def f(x):
    """Docstring,
    two lines."""
    # a comment
    y = x + 1  # trailing comment: still code

    return (y +
            1)
'''
    assert sources.count_code_lines(source) == 4  # def, y = ..., and the two lines of the return


def test_torchvision_builders_are_found_and_linked(tmp_path, monkeypatch):
    module = tmp_path / "tv_twin.py"
    module.write_text("import torchvision\nfrom torchvision.models import vgg19 as _vgg19\n\n\n"
                      "def resnet50(*, input_shape, num_classes):\n"
                      "    return torchvision.models.resnet50(weights=None, num_classes=num_classes)\n\n\n"
                      "def vgg(*, input_shape, num_classes):\n    return _vgg19(num_classes=num_classes)\n")
    monkeypatch.setattr(sources, "module_path", lambda name: module)
    part = sources.excerpt("tv_twin", ["resnet50", "vgg"])
    assert sorted(sources._torchvision_names(part)) == ["torchvision.models.resnet50", "torchvision.models.vgg19"]
    note = "\n".join(teaching._torchvision_note(["torchvision.models.resnet50"],
                                                 {"version": "0.29.2", "files": {"torchvision.models.resnet50":
                                                                                 "torchvision/models/resnet.py"}}))
    assert "blob/v0.29.2/torchvision/models/resnet.py" in note


def test_missing_environment_data_is_said_not_crashed():
    data = env_data.load_data("cifar_cnn")
    data.pop("tensorflow", None)
    page = teaching.render_page("cifar_cnn", data)
    assert "The tf.keras column is missing" in page
    assert "not computed: needs the tensorflow environment" in page
    assert "| n/a |" in page


def test_show_prints_the_page_and_rejects_unknown_models(capsys):
    """In this process (``python -m twinbench`` in a child process is tests/test_namespace.py's)."""
    from twinbench.cli import main

    assert main(["show", "cifar_cnn", "--offline"]) == 0
    assert capsys.readouterr().out == teaching.page_path("cifar_cnn").read_text()
    assert main(["show", "no_such_model"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("twinbench: error: Unknown model 'no_such_model'. Valid choices:")
    assert len(err.strip().splitlines()) == 1
