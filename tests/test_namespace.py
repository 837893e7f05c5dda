"""One namespace: everything twinbench installs is ``twinbench.*``, so a user's project with its own ``models.py``,
``data/``, ``bench.py`` and ``backends.py`` (most ML repositories have some of these) runs the CLI, its own
registration file and the public API from its own directory, and none of the user's modules is ever imported."""

from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from test_external_model import MODEL_FILE

from conftest import BACKEND, ROOT

PACKAGE_FOLDERS = {"twinbench": "bench", "twinbench.models": "models", "twinbench.data": "data",
                   "twinbench.backends": "backends"}
# What a user's own project may well have; each raises if anything imports it.
USER_FILES = {"models.py": "IMPLEMENTATIONS = ()\n", "data/__init__.py": "", "bench.py": "", "backends.py": "",
              "cell.py": ""}


@pytest.fixture()
def user_project(tmp_path):
    for name, body in USER_FILES.items():
        path = tmp_path / name
        path.parent.mkdir(exist_ok=True)
        path.write_text(f"{body}raise RuntimeError('the user\\'s own {name} was imported')\n")
    (tmp_path / "my_models.py").write_text(MODEL_FILE)
    return tmp_path


def _run(argv, cwd, **env):
    environment = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}  # the installed package only
    return subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=300, env={**environment, **env})


def test_the_cli_and_a_registration_file_run_from_a_project_with_its_own_models_and_data(user_project):
    for command in ([sys.executable, "-m", "twinbench"], [str(Path(sys.executable).with_name("twinbench"))]):
        done = _run([*command, "list"], user_project, TWINBENCH_MODELS="my_models.py")
        assert done.returncode == 0, done.stderr
        listed = [line.split()[0] for line in done.stdout.splitlines() if line.strip()]
        assert "cifar_cnn" in listed and "ext_tiny" in listed
        assert "was imported" not in done.stderr


def test_the_public_api_from_a_project_with_its_own_models_and_data(user_project):
    code = ("import sys, twinbench\n"
            "assert 'twinbench.models' not in sys.modules  # importing twinbench loads nothing yet\n"
            "from twinbench import ModelSpec, register_model, load_model_file, list_models, get_model_spec, check\n"
            "assert load_model_file('my_models.py:ext_tiny') == 'ext_tiny'\n"
            "assert get_model_spec('ext_tiny').params == 162 and 'ext_tiny' in list_models()\n"
            "records, skipped = twinbench.load_records('.')\n"
            "assert records == [] and skipped == []\n"
            "print(sorted(name for name in ('torch', 'tensorflow', 'jax', 'keras') if name in sys.modules))\n")
    done = _run([sys.executable, "-c", code], user_project)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"  # the public API imports no framework until a model is built


@pytest.mark.large  # a child process that starts PyTorch and Keras: the CLI and the API from such a project are the
# fast tests above, the pair's check is tests/test_check.py's test_the_intact_pair_is_identical (in-process)
def test_check_runs_a_users_pair_from_that_project(user_project):
    if BACKEND != "torch":
        pytest.skip("the check compares Keras 3 with PyTorch: the torch environment")
    shutil.copy(ROOT / "docs" / "examples" / "tiny_resnet_pair.py", user_project / "pair.py")
    done = _run([sys.executable, "-m", "twinbench", "check", "pair.py"], user_project)
    assert done.returncode == 0, done.stderr
    assert "identical" in done.stdout


def test_an_unknown_public_name_is_an_attribute_error():
    import twinbench

    with pytest.raises(AttributeError, match="no attribute 'nonsense'"):
        twinbench.nonsense  # noqa: B018
    assert {"check", "register_model", "ModelSpec", "build_model", "load_records"} <= set(twinbench.__all__)


def test_every_package_folder_is_installed_under_the_namespace():
    """pyproject.toml lists each package by its installed name: a new folder with an ``__init__.py`` must be there."""
    setuptools = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    assert setuptools["package-dir"] == PACKAGE_FOLDERS
    found = set()
    for package, folder in PACKAGE_FOLDERS.items():
        for init in (ROOT / folder).rglob("__init__.py"):
            parts = init.parent.relative_to(ROOT / folder).parts
            found.add(".".join((package, *parts)))
    assert sorted(found) == setuptools["packages"]


def test_no_module_imports_a_top_level_models_data_backends_or_bench():
    """Inside the repository those folders are importable by their bare names too; nothing may rely on it."""
    bare = {"models", "data", "backends", "bench"}
    offenders = []
    for folder in (*PACKAGE_FOLDERS.values(), "tests", "tools"):
        for path in (ROOT / folder).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text())):
                names = ([alias.name for alias in node.names] if isinstance(node, ast.Import)
                         else [node.module] if isinstance(node, ast.ImportFrom) and node.module and node.level == 0
                         else [])
                offenders += [f"{path.relative_to(ROOT)}: {n}" for n in names if n.split(".")[0] in bare]
    assert offenders == []
