"""twinbench.measuring.environment: the record of where a result came from."""

import importlib.metadata
import json
import os
import platform
import subprocess
import sys
from pathlib import Path

import pytest

import twinbench.measuring.environment as environment
from conftest import BACKEND
from twinbench.measuring.environment import (
    ENV_VARS,
    PACKAGES,
    SIMD_FLAGS,
    collect_environment,
    package_version,
)

REPO_DIR = Path(__file__).resolve().parent.parent


def test_keys_present_and_json_serialisable():
    env = collect_environment()
    assert set(env) == {"timestamp_utc", "machine", "gpu", "versions", "env", "git"}
    assert set(env["machine"]) == {
        "hostname",
        "platform",
        "machine",
        "cpu_model",
        "cpu_simd",
        "cpu_count_logical",
        "cpu_count_physical",
        "cpu_affinity",
        "ram_bytes",
    }
    assert env["machine"]["cpu_count_logical"] >= 1 and env["machine"]["ram_bytes"] > 0
    simd = env["machine"]["cpu_simd"]
    if platform.system() == "Linux":  # read from /proc/cpuinfo: a subset of SIMD_FLAGS, in their order
        assert isinstance(simd, list) and simd == [flag for flag in SIMD_FLAGS if flag in simd]
        if platform.machine() == "x86_64":
            assert "sse4_2" in simd  # every x86-64 CPU these frameworks' wheels run on has it
    assert set(env["versions"]) == {"python", *PACKAGES}
    assert env["versions"]["python"] == ".".join(map(str, sys.version_info[:3]))
    assert env["versions"]["numpy"] is not None
    assert set(env["env"]) == set(ENV_VARS)
    assert env["timestamp_utc"].endswith("+00:00")
    json.dumps(env)


def test_versions_come_from_metadata_and_missing_packages_are_none(monkeypatch):
    assert package_version("twinbench-no-such-distribution") is None
    real_version = importlib.metadata.version

    def pretend_tensorflow_is_missing(name):
        if name == "tensorflow":
            raise importlib.metadata.PackageNotFoundError(name)
        return real_version(name)

    monkeypatch.setattr(environment.importlib.metadata, "version", pretend_tensorflow_is_missing)
    versions = collect_environment()["versions"]
    assert versions["tensorflow"] is None
    for name in PACKAGES:
        if name != "tensorflow":
            try:
                expected = real_version(name)
            except importlib.metadata.PackageNotFoundError:
                expected = None
            assert versions[name] == expected


def test_env_vars_are_read(monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    monkeypatch.delenv("XLA_FLAGS", raising=False)
    env = collect_environment()["env"]
    assert env["OMP_NUM_THREADS"] == "3" and env["XLA_FLAGS"] is None


def test_git_state_in_and_outside_a_checkout(tmp_path):
    git = collect_environment()["git"]
    if git is not None:  # None only where git is not installed
        assert len(git["commit"]) == 40 and isinstance(git["dirty"], bool)
    assert environment.git_state(tmp_path) is None  # not a checkout


def test_no_framework_is_imported():
    code = (
        "import sys; from twinbench.measuring.environment import collect_environment; collect_environment(); "
        "import twinbench.measuring.profiler, twinbench.stats; "
        "print(sorted(m for m in ('torch', 'tensorflow', 'jax', 'keras', 'tf_keras') if m in sys.modules))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO_DIR, capture_output=True, text=True, check=True, timeout=60
    )
    assert done.stdout.strip() == "[]"


@pytest.mark.skipif(BACKEND != "jax", reason="XLA reads XLA_FLAGS (jax environment)")
# A child process each: 2 (the count that made XLA abort) in the fast tier, 1 in the large tier.
@pytest.mark.parametrize("threads", [pytest.param(1, marks=pytest.mark.large), 2])
def test_limit_threads_leaves_xla_flags_that_xla_can_read(threads):
    """``--threads N`` before JAX starts: XLA_FLAGS holds only real flags (a bare ``intra_op_parallelism_threads=2``
    made XLA abort, taking it for a file name)."""
    code = (f"from twinbench.backends import limit_threads; import os; limit_threads({threads}); import jax.numpy as jnp; "
            "print(float(jnp.ones(3).sum()), os.environ.get('XLA_FLAGS', ''))")
    env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120,
                          cwd=Path(__file__).resolve().parent.parent)
    assert done.returncode == 0, done.stderr[-500:]
    total, *flags = done.stdout.split()
    assert float(total) == 3.0 and all(flag.startswith("--") for flag in flags)


def test_the_machine_in_words_names_its_widest_vector_extension():
    from twinbench.results.views import machine

    def record(simd):
        return {"environment": {"machine": {"cpu_model": "AMD EPYC", "cpu_affinity": 2, "cpu_simd": simd}}}

    assert machine(record(["sse4_2", "avx", "avx2", "fma"])) == "CPU: AMD EPYC (2 cores, AVX2)"
    assert machine(record(["avx2", "avx512f", "avx512_bf16"])) == "CPU: AMD EPYC (2 cores, AVX-512)"
    assert machine(record(None)) == "CPU: AMD EPYC (2 cores)"  # records from before cpu_simd
