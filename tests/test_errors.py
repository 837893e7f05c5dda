"""Every bad input gets one clear line naming the valid choices, a non-zero exit code, no traceback."""

from __future__ import annotations

import re

import pytest
from error_cases import CASES, PAGE, TABLE_VALUES, _fill, message_line, missing_backend, page_table, run_case

_FRAMEWORK_LOG = re.compile(r"^([IWEF]\d{4} |WARNING: All log messages before absl::InitializeLog)")
# The cases whose child process starts its framework before the error (and builds ResNet50 for the checkpoint that
# does not fit it): 15-35 s each on the busy 2-core machine, the large tier; every other case stays in the fast tier.
LARGE_CASES = {"checkpoint-mismatch", "tf32-on-cpu"}


@pytest.mark.parametrize("case", [pytest.param(c, id=c.id, marks=[pytest.mark.large] if c.id in LARGE_CASES else [])
                                  for c in CASES])
def test_bad_input_gets_one_clear_line(case, tmp_path):
    code, stdout, stderr = run_case(case, tmp_path / case.id)
    assert "Traceback" not in stderr + stdout
    line = message_line(stderr, case)
    assert re.search(case.expect, line), f"expected /{case.expect}/, got: {stderr!r}"
    assert code == case.exit_code
    if case.exit_code:
        # Framework C++ loggers (absl/TensorFlow) may write their own lines; ours must be the only other one.
        errors = [ln for ln in stderr.splitlines() if ln.strip() and not _FRAMEWORK_LOG.match(ln)]
        assert errors == [line] and line.startswith("twinbench: error: "), stderr


def test_missing_backend_package_says_what_to_install(tmp_path):
    backend = missing_backend()
    if backend is None:
        pytest.skip("every backend is installed in this environment")
    from error_cases import Case

    implementation = {"torch": "torch", "tensorflow": "tf_keras", "jax": "keras"}[backend]
    case = Case("missing", "", ("train", "--model", "cifar_cnn", "--impl", implementation, "--backend", backend,
                                "--out", "{tmp}"), rf"The {backend} backend needs the package\(s\) .*pip install")
    code, stdout, stderr = run_case(case, tmp_path)
    assert code == 2 and "Traceback" not in stderr
    assert re.search(case.expect, stderr), stderr


_ROW = re.compile(r"^\| (?P<what>.+?) \| `(?P<command>.+?)` \| `(?P<message>.*)` \((?P<code>\d+)\) \|$")


def test_the_error_table_is_every_case_and_what_it_got():
    """docs/errors.md's generated table (python -m tests.error_cases --write): one row per case, in order, with the
    case's command, a message its pattern matches and its exit code; no row without a case."""
    text = PAGE.read_text()
    rows = [_ROW.match(line) for line in page_table(text).splitlines()[2:]]
    assert all(rows), "a row of docs/errors.md's table is not | what | `command` | `message` (code) |"
    assert [row["what"] for row in rows] == [case.what for case in CASES], \
        "docs/errors.md's table is not the cases': regenerate it with python -m tests.error_cases --write"
    for row, case in zip(rows, CASES, strict=True):
        env = " ".join(f"{k}={_fill(v, TABLE_VALUES)}" for k, v in case.env.items())
        command = _fill(" ".join(["twinbench", *case.argv]), TABLE_VALUES)
        assert row["command"] == f"{(env + ' ') if env else ''}{command}", case.id
        assert re.search(case.expect, row["message"].replace("\\|", "|")), (case.id, row["message"])
        assert int(row["code"]) == case.exit_code, case.id


def test_keras_imported_with_another_backend_is_refused():
    from conftest import BACKEND
    from twinbench.backends import BACKENDS, BackendError, select_keras_backend

    if BACKEND is None:
        pytest.skip("no Keras backend installed")
    other = next(b for b in BACKENDS if b != BACKEND)
    with pytest.raises(BackendError, match=rf"keras was already imported with the '{BACKEND}' backend.*"
                                           rf"Start a new process with KERAS_BACKEND={other}"):
        select_keras_backend(other)
