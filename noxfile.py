"""twinbench's task runner: one virtualenv per backend (their pins conflict), one process per backend.

    nox -s compare      # train the default cells on the embedded digits data, then one comparison table + report,
                        # then timing verdicts: the environments' short processes alternated A,B,B,A (~60 s)
    nox -s tests        # the equivalence and correctness tests at small sizes (the fast tier), in every environment
    nox -s tests_large  # the large tier: the biggest twins, full-size builds, child processes (CI runs both)
    nox -s compare_throughput   # the throughput benchmark (synthetic CIFAR-shaped data), then the decomposition
    nox -s compare_latency      # inference latency at batch sizes 1, 4, 16, 64, then the table and the ratios
    nox -s compare_generation   # GPT-2 greedy decoding (gpt_tiny, 32 new tokens), then the table and the ratios
    nox -s report       # report.md + figures for results/train (also the last step of compare)
    nox -s docs         # regenerate docs/models/: each model in three styles, layer table, twin check
    nox -s compare_definition_effect   # stock keras.applications vs matched definitions vs native twins
    nox -s history      # the ratios over Keras versions and commits, their steps: results/history/index.html
    nox -s natives      # the two native twins (PyTorch, tf.keras) interleaved in one process: both frameworks installed
    nox -s "sweep(torch)" -- --stacks keras==3.8.0,keras==3.10.0   # across versions: each stack its own virtualenv
    nox -s "ab(torch)" -- keras==3.14.1 keras@/path/to/keras        # A/B of two stacks, with a null calibration
    nox -l              # everything else

A run of each kind has one name everywhere: ``train`` (command ``python -m twinbench train``, session
``train(ENV)``, records of kind ``train``, ``results/train``) and ``throughput`` (``python -m twinbench throughput``,
``throughput(ENV)``, kind ``throughput``, ``results/throughput``) and ``latency`` (``python -m twinbench latency``,
``latency(ENV)``, kind ``latency``, ``results/latency``) and ``generate`` (``python -m twinbench generate``,
``generate(ENV)``, kind ``generate``, ``results/generate``); the ``compare*`` sessions print the tables.

Arguments after ``--`` go to the command a session runs, e.g. ``nox -s compare -- --epochs 3`` or
``nox -s compare_throughput -- --model mnist_cnn --batch-size 128 --steps 100 --repeats 20 --threads 1``.
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import nox

# virtualenv + pip: pip reads this machine's local wheel cache (uv would download several GB).
nox.options.default_venv_backend = "virtualenv"
nox.options.reuse_venv = "yes"
nox.options.sessions = ["tests", "lint"]

# The nox environments: the extra each installs and the Keras backend its processes use. Which cells each one
# runs is backends/environments.py's ENVIRONMENTS (python -m twinbench cells); tests/test_cell.py asserts the names agree.
ENVIRONMENTS = {"torch": "torch", "tensorflow": "tensorflow", "jax": "jax"}
ENV_PARAMS = [nox.param(name, id=name, tags=[name]) for name in ENVIRONMENTS]


def _each_env(session_name: str) -> list[str]:
    """``["NAME(torch)", "NAME(tensorflow)", "NAME(jax)"]``: a parametrized session in every environment."""
    return [f"{session_name}({env})" for env in ENVIRONMENTS]


# The results directory of each kind of run (bench/records.py's RESULTS; tests/test_cell.py asserts they agree).
RESULTS = {"train": "results/train", "throughput": "results/throughput", "latency": "results/latency",
           "generate": "results/generate", "definition_effect": "results/definition_effect", "timing": "results/timing",
           "history": "results/history", "sweep": "results/sweep", "ab": "results/ab"}


def _install(session: nox.Session, env: str, *extras: str) -> None:
    """``pip install -e .[ENV,EXTRAS]``: the environment's framework and ``extras`` (``_install_project``)."""
    _install_project(session, f".[{','.join((ENVIRONMENTS[env], *extras))}]")


# The stamp a session's virtualenv keeps of its editable install: what it was installed from (``_install_key``).
INSTALL_STAMP = "twinbench-install.json"


def _install_project(session: nox.Session, target: str) -> None:
    """``pip install -e TARGET`` (``.`` or ``.[extras]``), skipped where this virtualenv already holds that install from
    the same pyproject.toml, extras, Python and project folder (the stamp ``INSTALL_STAMP`` in the virtualenv, written
    after pip succeeded). An editable install needs no reinstall for source edits; a new virtualenv always installs.
    To reinstall anyway: ``nox --reuse-venv=no`` (new virtualenvs), or delete ``.nox/SESSION/twinbench-install.json``."""
    location = getattr(session.virtualenv, "location", None)
    if not location:  # no virtualenv of its own (--no-venv): nox decides
        session.install("-e", target)
        return
    stamp = Path(location) / INSTALL_STAMP
    key = _install_key(Path(location), target)
    if stamp.is_file() and _read_json(stamp) == key:
        session.log(f"pip install -e {target} skipped: this virtualenv has it from the same pyproject.toml, extras "
                    f"and Python ({stamp})")
        return
    stamp.unlink(missing_ok=True)  # a failed install leaves no stamp
    session.install("-e", target)
    if not _installs_skipped_by_nox(session):
        stamp.write_text(json.dumps(key, indent=1) + "\n")


def _install_key(venv: Path, target: str) -> dict:
    """What an editable install depends on: pyproject.toml's content (dependencies, extras, packages), the target
    with its extras, the virtualenv's Python (its pyvenv.cfg) and the project folder the install points at."""
    pyvenv = venv / "pyvenv.cfg"
    return {"target": target, "project": str(Path.cwd().resolve()),
            "pyproject_sha256": hashlib.sha256(Path("pyproject.toml").read_bytes()).hexdigest(),
            "pyvenv_cfg_sha256": hashlib.sha256(pyvenv.read_bytes()).hexdigest() if pyvenv.is_file() else None}


def _read_json(path: Path):
    try:
        return json.loads(path.read_text())
    except ValueError:
        return None


def _installs_skipped_by_nox(session: nox.Session) -> bool:
    """``nox --no-install`` (``-R``) on a reused virtualenv: ``session.install`` did nothing, so no stamp is written."""
    config = getattr(getattr(session, "_runner", None), "global_config", None)
    return bool(getattr(config, "no_install", False)) and bool(getattr(session.virtualenv, "_reused", False))


def _env_vars(env: str) -> dict[str, str]:
    return {"KERAS_BACKEND": ENVIRONMENTS[env], "TF_CPP_MIN_LOG_LEVEL": "2",
            "XLA_PYTHON_CLIENT_PREALLOCATE": "false", "TF_FORCE_GPU_ALLOW_GROWTH": "true"}


@nox.session
@nox.parametrize("env", ENV_PARAMS)
def tests(session: nox.Session, env: str) -> None:
    """Run the fast tier in one backend environment: every implementation and mode, the twins at small sizes."""
    _install(session, env, "test", "history")
    # `nox -s tests -- --run-large` runs both tiers in one go (tests/conftest.py).
    # Two pytest-xdist workers. The budget is 8 minutes for the three environments together, warm, on a 2-core VM;
    # measured 2026-12-07 on one: 311 s in all (pytest torch 131 s, tensorflow 70 s, jax 95 s; docs/testing.md: what
    # was trimmed to meet it, and where each check went).
    session.run("python", "-m", "pytest", *(session.posargs or ["-q", "-n", "2"]), env=_env_vars(env))


@nox.session(default=False)
@nox.parametrize("env", ENV_PARAMS)
def tests_large(session: nox.Session, env: str) -> None:
    """Run the large tier in one environment: the biggest twins, full-size builds, multi-process start-ups."""
    _install(session, env, "test", "history")
    session.run("python", "-m", "pytest", "-m", "large", "--run-large", *(session.posargs or ["-q"]),
                env=_env_vars(env))


@nox.session
@nox.parametrize("env", ENV_PARAMS)
def train(session: nox.Session, env: str) -> None:
    """Train every model with this environment's implementations; one JSON record per cell."""
    _install(session, env)
    # A failed cell is recorded and the others go on; exit code 1 only says some cell failed. The environment's cells
    # run one after another in one child process (its framework imported once, not once per cell; each cell's record
    # says so in shared_process); `nox -s compare -- --cell-processes each` gives each cell its own process.
    session.run("python", "-m", "twinbench", "train", "--env", env, "--out", RESULTS["train"], "--cell-processes", "one",
                *session.posargs, env=_env_vars(env), success_codes=[0, 1])


@nox.session(requires=_each_env("train"), venv_backend="none")
def compare(session: nox.Session) -> None:
    """Train the default cells (both CNNs, every implementation, digits), print the table, write the report; then
    time them for the verdicts (``twinbench alternate``)."""
    # No virtualenv of its own: compare, report and alternate import no framework, so the torch train session's Python
    # runs them (a fresh clone creates and installs one virtualenv fewer).
    python = _env_python(session, "train", "torch")
    session.run(python, "-m", "twinbench", "compare", RESULTS["train"], external=True)
    session.run(python, "-m", "twinbench", "report", RESULTS["train"], external=True)
    # Timing verdicts from the train sessions' environments (no new virtualenv): each environment's cells interleaved
    # in short processes, the processes alternated A,B,B,A within a budget; a failed process does not stop the rest.
    # (session.posargs are the train sessions' options: not passed on.)
    pythons = [f"--python={env}={_env_python(session, 'train', env)}" for env in ENVIRONMENTS]
    session.run(python, "-m", "twinbench", "alternate", *pythons, "--out", RESULTS["timing"],
                env={"TF_CPP_MIN_LOG_LEVEL": "2", "XLA_PYTHON_CLIENT_PREALLOCATE": "false",
                     "TF_FORCE_GPU_ALLOW_GROWTH": "true"}, success_codes=[0, 1], external=True)


def _env_python(session: nox.Session, name: str, env: str) -> str:
    """The Python of session ``name(env)``'s virtualenv (``.nox/train-torch/bin/python``), next to this session's."""
    folder = Path(session.env_dir).parent / f"{name}-{env}"
    return str(folder / ("Scripts/python.exe" if sys.platform == "win32" else "bin/python"))


@nox.session
def report(session: nox.Session) -> None:
    """Write report.md and its figures for results directories (default results/train; cells may be missing)."""
    _install_project(session, ".")
    session.run("python", "-m", "twinbench", "report", *(session.posargs or [RESULTS["train"]]))


@nox.session(default=False)
def history(session: nox.Session) -> None:
    """Build the history page (docs/history.md) of results directories (default: results/throughput and results/latency
    where they exist, written to results/history); posargs replace both: `nox -s history -- DIR... --out OUT`."""
    _install_project(session, ".[history]")
    found = [d for d in (RESULTS["throughput"], RESULTS["latency"]) if Path(d).is_dir()] or [RESULTS["throughput"]]
    session.run("python", "-m", "twinbench", "history", *(session.posargs or [*found, "--out", RESULTS["history"]]))


@nox.session(default=False)
@nox.parametrize("env", ENV_PARAMS)
def docs_data(session: nox.Session, env: str) -> None:
    """Compute this environment's share of the model pages: layer tables and twin checks (docs/models/_data)."""
    _install(session, env)
    # The twin checks compare definitions: TensorFlow's reference CPU kernels, as in the tests (tests/conftest.py).
    session.run("python", "-m", "twinbench", "docs", "--collect", *session.posargs,
                env={**_env_vars(env), "TF_ENABLE_ONEDNN_OPTS": "0"})


@nox.session(default=False, requires=_each_env("docs_data"))
def docs(session: nox.Session) -> None:
    """Regenerate docs/models/: a page per registered model (three styles, layers, twin check) and the index."""
    _install_project(session, ".")
    session.run("python", "-m", "twinbench", "docs", *session.posargs)


@nox.session(default=False)
def parity_fixtures(session: nox.Session) -> None:
    """Rewrite the PyTorch twin's fingerprints (tests/parity/*.npz) that every environment's twin tests compare with."""
    # The fingerprints are the PyTorch twin's, so the torch environment alone writes them. Arguments: model names
    # (default: every model with a PyTorch twin), --dry-run to list the files (python -m tests.parity_fixtures --help).
    _install(session, "torch")
    session.run("python", "-m", "tests.parity_fixtures", *session.posargs, env=_env_vars("torch"))


@nox.session(default=False)
@nox.parametrize("env", ENV_PARAMS)
def throughput(session: nox.Session, env: str) -> None:
    """Throughput benchmark of this environment's implementations, interleaved in one process where two share it."""
    _install(session, env)
    # Timings live here, never in pass/fail tests. Options: --model, --batch-size, --steps, --warmup,
    # --repeats, --overhead-repeats, --threads, --input-shape, --no-interleave (each cell in its own process;
    # python -m twinbench throughput --help).
    session.run("python", "-m", "twinbench", "throughput", "--env", env, "--out", RESULTS["throughput"],
                *session.posargs, env=_env_vars(env), success_codes=[0, 1])


# The natives environment (backends/environments.py NATIVES): PyTorch, TensorFlow and tf.keras in one virtualenv, so
# that the two native twins can take turns window by window in one process. Its Python for twinbench alternate and
# the studies: .nox/natives/bin/python (nox -s natives --install-only builds it).
NATIVES = "natives"


@nox.session(default=False)
def natives(session: nox.Session) -> None:
    """Throughput of the two native twins interleaved in one process (torch / tf_keras from paired windows)."""
    _install_project(session, ".[natives,test]")
    # Options as for throughput, e.g. nox -s natives -- --model mnist_cnn --repeats 40 --threads 1 --allocator tuned
    session.run("python", "-m", "twinbench", "throughput", "--env", NATIVES, "--interleave", "--out",
                RESULTS["throughput"], *session.posargs, env=_env_vars("torch"), success_codes=[0, 1])


@nox.session(default=False, requires=_each_env("throughput"))
def compare_throughput(session: nox.Session) -> None:
    """Benchmark all five implementations on synthetic data; print the table and the overhead decomposition."""
    _install_project(session, ".")
    session.run("python", "-m", "twinbench", "compare", RESULTS["throughput"])


@nox.session(default=False)
@nox.parametrize("env", ENV_PARAMS)
def latency(session: nox.Session, env: str) -> None:
    """Inference latency of this environment's implementations at a sweep of batch sizes, each cell in its process."""
    _install(session, env)
    # Options: --model, --batch-sizes, --style (call, predict_on_batch, predict), --jit, --calls, --repeats, --warmup,
    # --threads, --input-shape (python -m twinbench latency --help).
    session.run("python", "-m", "twinbench", "latency", "--env", env, "--out", RESULTS["latency"],
                *session.posargs, env=_env_vars(env), success_codes=[0, 1])


@nox.session(default=False, requires=_each_env("latency"))
def compare_latency(session: nox.Session) -> None:
    """Inference latency of all five implementations; print the table per model and the ratios per batch size."""
    _install_project(session, ".")
    session.run("python", "-m", "twinbench", "compare", RESULTS["latency"])


@nox.session(default=False)
@nox.parametrize("env", ENV_PARAMS)
def generate(session: nox.Session, env: str) -> None:
    """GPT-2 greedy decoding with a key/value cache, each token timed, this environment's cells each in its process."""
    _install(session, env)
    # Options: --model (gpt_tiny, gpt2, gpt2_kerashub in tensorflow), --prompt-length, --new-tokens, --batch-size,
    # --repeats, --warmup, --jit on (compiled decoding), --compile-mode, --threads (python -m twinbench generate --help).
    session.run("python", "-m", "twinbench", "generate", "--env", env, "--out", RESULTS["generate"],
                *session.posargs, env=_env_vars(env), success_codes=[0, 1])


@nox.session(default=False, requires=_each_env("generate"))
def compare_generation(session: nox.Session) -> None:
    """GPT-2 generation in all five implementations; print the table and the ratios of tokens/s and per-token p50."""
    _install_project(session, ".")
    session.run("python", "-m", "twinbench", "compare", RESULTS["generate"])


@nox.session(default=False)
@nox.parametrize("env", ENV_PARAMS)
def definition_effect(session: nox.Session, env: str) -> None:
    """Time stock keras.applications, matched Keras and native twins of ResNet50/VGG19/MobileNetV2 here."""
    _install(session, env)
    # Options: --families, --input-shape (default 32x32x3), --batch-size, --steps, --warmup, --repeats, --threads.
    session.run("python", "-m", "twinbench", "definition-effect", "--env", env, "--out", RESULTS["definition_effect"],
                *session.posargs, env=_env_vars(env), success_codes=[0, 1])


@nox.session(default=False, requires=_each_env("definition_effect"))
def compare_definition_effect(session: nox.Session) -> None:
    """The definition-effect table: stock vs matched definition per backend, matched vs native twin (a benchmark)."""
    _install_project(session, ".")
    session.run("python", "-m", "twinbench", "definition-effect", "--out", RESULTS["definition_effect"], "--markdown")


@nox.session(default=False)
@nox.parametrize("env", ENV_PARAMS)
def sweep(session: nox.Session, env: str) -> None:
    """Sweep stacks (default: every Keras 3 minor release's last patch): each made, tried, then alternated ABBA."""
    _install(session, env)
    # Each stack's virtualenv (.nox/stack-ENV-SLUG) lies over this session's, which holds the project's pins; options:
    # --stacks, --try-only, --model, --blocks, --steps, --repeats, --out (python -m twinbench sweep --help).
    session.run("python", "-m", "twinbench", "sweep", "--env", env, "--stacks-dir", ".nox",
                "--out", RESULTS["sweep"], *session.posargs,
                env=_env_vars(env), success_codes=[0, 1])


@nox.session(default=False)
@nox.parametrize("env", ENV_PARAMS)
def ab(session: nox.Session, env: str) -> None:
    """A/B two stacks (``-- A B``, e.g. a release and a Keras checkout) with a null calibration (A in a second env)."""
    _install(session, env)
    session.run("python", "-m", "twinbench", "ab", "--env", env, "--stacks-dir", ".nox", "--out", RESULTS["ab"],
                *session.posargs,
                env=_env_vars(env))


@nox.session
def lint(session: nox.Session) -> None:
    """Static checks with ruff."""
    session.install("ruff")
    session.run("ruff", "check", "models", "backends", "data", "bench", "tests", "tools", "noxfile.py")
