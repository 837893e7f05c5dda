"""Bad input, the command that provokes it, and the one-line message it must get.

This table drives ``tests/test_errors.py`` and generates the error table of docs/errors.md
(``python -m tests.error_cases`` prints it, ``--write`` puts it on that page between its markers), so every row of
that table is a tested behaviour.
``{tmp}`` is a scratch directory that ``prepare`` fills for the row.
"""

from __future__ import annotations

import gzip
import importlib.util
import io
import json
import os
import re
import subprocess
import sys
import tarfile
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Case:
    id: str
    what: str  # the error table's words for the mistake (docs/errors.md)
    argv: tuple[str, ...]  # arguments to `python -m twinbench`
    expect: str  # a regular expression the one-line message must match
    env: dict = field(default_factory=dict)
    prepare: str | None = None  # name of a function below that sets up {tmp}
    exit_code: int = 2


def _run_args(*extra):
    # {impl}/{backend}: an implementation this environment can run (shown as torch in the table).
    return ("train", "--model", "cifar_cnn", "--impl", "{impl}", "--backend", "{backend}", "--out", "{tmp}/out", *extra)


CASES = [
    Case("unknown-model", "Unknown model", ("train", "--model", "resnet5", "--impl", "torch"),
         r"Unknown model 'resnet5'\. Valid choices: alexnet, cifar_cnn, gnmt, "),
    Case("unknown-impl", "Unknown implementation", ("train", "--model", "cifar_cnn", "--impl", "pytorch"),
         r"Unknown implementation 'pytorch'\. Valid choices: torch, tf_keras, keras"),
    Case("unknown-backend", "Unknown backend", ("train", "--model", "cifar_cnn", "--impl", "keras", "--backend", "mxnet"),
         r"Unknown backend 'mxnet'\. Valid choices: torch, tensorflow, jax"),
    Case("native-wrong-backend", "A native twin asked to run on another backend",
         ("train", "--model", "cifar_cnn", "--impl", "torch", "--backend", "jax"),
         r"Implementation 'torch' runs on the torch backend only\. Received: backend='jax'"),
    Case("impl-not-for-model", "An implementation a model does not have",
         ("train", "--model", "resnet50_kerasapps", "--impl", "torch"),
         r"Model 'resnet50_kerasapps' has no 'torch' implementation\. Valid choices: keras, tf_keras"),
    Case("unknown-dataset", "Unknown dataset", _run_args("--dataset", "imagenet"),
         r"Unknown dataset 'imagenet'\. Valid choices: digits, synthetic, cifar10, mnist"),
    Case("batch-size-zero", "Batch size 0", _run_args("--batch-size", "0"),
         r"argument --batch-size: must be a positive integer, got '0'"),
    Case("epochs-negative", "Negative epochs", _run_args("--epochs", "-1"),
         r"argument --epochs: must be 0 or more, got '-1'"),
    Case("not-a-number", "A number that is not a number", _run_args("--batch-size", "abc"),
         r"argument --batch-size: must be an integer, got 'abc'"),
    Case("input-too-small", "An input shape the model cannot take", _run_args("--input-shape", "8x8x3"),
         r"Model 'cifar_cnn' needs inputs of at least 10x10 pixels\. Received: input_shape=\(8, 8, 3\)"),
    Case("input-too-small-resnet", "8x8 images into ResNet50",
         ("train", "--model", "resnet50", "--impl", "{impl}", "--backend", "{backend}", "--input-shape", "8x8x3"),
         r"Model 'resnet50' needs inputs of at least 32x32 pixels\. Received: input_shape=\(8, 8, 3\)"),
    Case("input-too-small-alexnet", "32x32 images into AlexNet (its pools leave nothing below 63x63)",
         ("train", "--model", "alexnet", "--impl", "{impl}", "--backend", "{backend}", "--input-shape", "32x32x3"),
         r"Model 'alexnet' needs inputs of at least 63x63 pixels\. Received: input_shape=\(32, 32, 3\)"),
    Case("dataset-wrong-kind", "A dataset of another kind than the model takes",
         ("train", "--model", "ncf", "--impl", "{impl}", "--backend", "{backend}", "--dataset", "digits"),
         r"Dataset 'digits' is image_classification data, but model 'ncf' takes recommendation data\. "
         r"Valid choices: implicit, movielens"),
    Case("movielens-missing", "MovieLens files missing",
         ("train", "--model", "ncf", "--impl", "{impl}", "--backend", "{backend}", "--dataset", "movielens",
          "--data-dir", "{tmp}", "--out", "{tmp}/out"),
         r"Dataset 'movielens' needs the MovieLens ratings file ml-1m/ratings\.dat or ml-latest-small/ratings\.csv, "
         r"not found in", prepare="empty_dir"),
    Case("vit-input-not-patches", "An image a ViT cannot cut into patches",
         ("train", "--model", "vit_tiny", "--impl", "{impl}", "--backend", "{backend}", "--input-shape", "30x30x3"),
         r"Model 'vit_tiny' takes square images whose side is a multiple of its patch size 4\. "
         r"Received: input_shape=\(30, 30, 3\)"),
    Case("unknown-jit", "A compilation mode that does not exist", _run_args("--jit", "xla"),
         r"argument --jit: invalid choice: 'xla' \(choose from '?default'?, '?off'?, '?on'?\)"),
    Case("mode-axis-not-for-impl", "A layout axis of another implementation",
         ("train", "--model", "cifar_cnn", "--impl", "tf_keras", "--data-format", "channels_first"),
         r"--data-format applies to keras only, not to tf_keras\. Received: data_format='channels_first'"),
    Case("data-format-not-for-model", "A layout a model has no definition in",
         ("train", "--model", "vgg19", "--impl", "keras", "--backend", "{backend}", "--data-format", "channels_first"),
         r"Model 'vgg19' has no channels_first Keras definition\. Valid choices: channels_last"),
    Case("tf32-on-cpu", "TF32 on a machine without a GPU", _run_args("--precision", "tf32", "--epochs", "1"),
         r"--precision tf32 cannot run here: TF32 is a GPU tensor-core format and no GPU runs .* here\. Available "
         r"here: float32, mixed_bfloat16, mixed_float16"),
    Case("replicas-no-engine", "Data-parallel replicas for an implementation without an engine",
         ("train", "--model", "cifar_cnn", "--impl", "keras", "--backend", "torch", "--replicas", "2", "--out",
          "{tmp}/out"), r"--replicas 2 cannot run keras\[torch\]: Keras 3\.15 has no distribution API for the torch "
                        r"backend .*Implementations that can: torch, tf_keras, keras\[tensorflow\], keras\[jax\]"),
    Case("sync-batchnorm-one-replica", "Synchronised BatchNorm on one replica", _run_args("--sync-batchnorm"),
         r"--sync-batchnorm needs --replicas 2 or more"),
    Case("unknown-cpu", "A CPU the machine lacks", _run_args("--cpus", "0,4096"),
         r"--cpus 0,4096: this machine has no CPU 4096 for this process\. Available here: 0"),
    Case("unknown-allocator", "An allocator setting twinbench does not know", _run_args("--allocator", "jemalloc"),
         r"argument --allocator: invalid choice: 'jemalloc' \(choose from '?system'?, '?tuned'?\)"),
    Case("repeats-zero", "Zero repeats", ("throughput", "--model", "cifar_cnn", "--impl", "{impl}", "--repeats", "0"),
         r"argument --repeats: must be a positive integer, got '0'"),
    Case("latency-batch-zero", "A latency batch size of 0",
         ("latency", "--model", "cifar_cnn", "--impl", "{impl}", "--batch-sizes", "0,4", "--out", "{tmp}/out"),
         r"argument --batch-sizes: must be comma-separated positive integers, e\.g\. 1,4,16,64, got '0,4'"),
    Case("latency-style", "A call style the implementation lacks",
         ("latency", "--model", "cifar_cnn", "--impl", "torch", "--style", "predict", "--out", "{tmp}/out"),
         r"--style applies to keras and tf_keras only, not to torch\. Received: style='predict'\. Valid for torch: "
         r"call\."),
    Case("latency-style-jit", "Compiling a call style that runs eagerly",
         ("latency", "--model", "cifar_cnn", "--impl", "tf_keras", "--jit", "on", "--out", "{tmp}/out"),
         r"--jit on compiles predict_on_batch and predict for tf_keras; --style call runs the model eagerly\. Valid "
         r"styles with --jit on: predict_on_batch, predict\."),
    Case("generate-batch-zero", "A generation batch of 0",
         ("generate", "--model", "gpt_tiny", "--impl", "{impl}", "--batch-size", "0", "--out", "{tmp}/out"),
         r"--batch-size must be a positive integer \(prompts decoded together\)\. Received: batch_size=0\."),
    Case("generate-no-tokens", "No new tokens",
         ("generate", "--model", "gpt_tiny", "--impl", "{impl}", "--new-tokens", "0", "--out", "{tmp}/out"),
         r"generate takes 1 <= max_new_tokens <= 63 \(n_positions - 1\)\. Received: max_new_tokens=0\."),
    Case("generate-long-prompt", "A prompt longer than the context",
         ("generate", "--model", "gpt_tiny", "--impl", "{impl}", "--prompt-length", "80", "--out", "{tmp}/out"),
         r"A prompt of 1 to 32 tokens fits the 64 positions with max_new_tokens=32\. Received: a prompt of 80 tokens\."),
    Case("compile-mode-eager", "A compile mode without --jit on",
         ("latency", "--model", "cifar_cnn", "--impl", "torch", "--compile-mode", "max-autotune", "--out", "{tmp}/out"),
         r"--compile-mode max-autotune is a torch\.compile mode: it needs --jit on\. Received: jit='default'\. Valid "
         r"without --jit on: --compile-mode default\."),
    Case("unknown-layer", "A layer type twinbench calls does not time",
         ("calls", "--impl", "{impl}", "--layers", "Dense,Nope", "--out", "{tmp}/out"),
         r"argument --layers: unknown Nope\. Valid choices: Conv2D, Dense, BatchNormalization, .*ReLU\."),
    Case("calls-unknown-impl", "An implementation twinbench does not know, for calls",
         ("calls", "--impl", "flax", "--out", "{tmp}/out"), r"Unknown implementation 'flax'\. Valid choices: "),
    Case("interleave-alone", "Interleaving an environment with one cell",
         ("throughput", "--env", "jax", "--interleave", "--out", "{tmp}/out"),
         r"--interleave needs two cells in one environment; this one runs keras\[jax\] in this mode: run it with "
         r"--no-interleave\."),
    Case("cell-processes-this", "An environment's cells in this process where they need their own",
         ("train", "--env", "{backend}", "--models", "cifar_cnn", "--launcher", "submitit", "--cell-processes", "this",
          "--out", "{tmp}/out"),
         r"--cell-processes this cannot run these cells in one process: --launcher submitit starts one job per "
         r"cell\."),
    Case("bad-intervals", "Sampling intervals that are not positive seconds",
         ("profiler-cost", "--impl", "{impl}", "--intervals", "0.15,0"),
         r"argument --intervals: must be comma-separated positive seconds, e\.g\. 0\.15,0\.015, got '0\.15,0'"),
    Case("no-cost-records", "Showing profiler-cost results where there are none",
         ("profiler-cost", "--show", "{tmp}"),
         r"no profiler-cost records in '.*'; write them with twinbench profiler-cost --impl \.\.\.",
         prepare="empty_dir"),
    Case("checkpoint-mismatch", "A checkpoint that does not fit the model",
         ("train", "--model", "resnet50", "--impl", "{impl}", "--backend", "{backend}", "--weights", "{tmp}/ckpt.npz",
          "--epochs", "0", "--input-shape", "32x32x3", "--dataset", "synthetic", "--synthetic-train", "8",
          "--synthetic-test", "8", "--out", "{tmp}/out"),
         r"Checkpoint tensor 'conv1/kernel' has shape \(3, 3, 3, 64\), the model needs \(7, 7, 3, 64\)",
         prepare="bad_checkpoint"),
    Case("save-weights-format", "--save-weights to a file that is not a neutral .npz",
         _run_args("--save-weights", "{tmp}/w.pth"),
         r"--save-weights writes a neutral \.npz\. Received: '.*w\.pth'"),
    Case("export-format", "A format an implementation cannot export",
         ("export", "--model", "cifar_cnn", "--impl", "tf_keras", "--format", "onnx"),
         r"tf_keras cannot export 'onnx'\. Valid choices for tf_keras: tf_saved_model\."),
    Case("keras-backend-env", "KERAS_BACKEND disagreeing with the backend", _run_args(),
         r"KERAS_BACKEND=\w+ in the environment disagrees with backend '\w+'", env={"KERAS_BACKEND": "{other}"}),
    Case("data-dir-missing", "Dataset directory missing", _run_args("--dataset", "cifar10", "--data-dir", "{tmp}/nope"),
         r"Dataset 'cifar10' needs cifar-10-python\.tar\.gz or cifar-10-batches-py/.* does not exist"),
    Case("data-files-missing", "Dataset files missing", _run_args("--dataset", "mnist", "--data-dir", "{tmp}"),
         r"mnist\.npz.*train-images-idx3-ubyte", prepare="empty_dir"),
    Case("truncated-archive", "Truncated archive", _run_args("--dataset", "cifar10", "--data-dir", "{tmp}"),
         r"cifar-10-python\.tar\.gz", prepare="truncated_cifar"),
    Case("corrupt-npz", "Corrupt archive", _run_args("--dataset", "mnist", "--data-dir", "{tmp}"),
         r"mnist\.npz", prepare="corrupt_npz"),
    Case("unwritable-results", "Results directory not writable",
         ("train", "--model", "cifar_cnn", "--impl", "{impl}", "--backend", "{backend}", "--out", "{tmp}/file/results"),
         r"results directory '.*file/results' is not writable", prepare="plain_file"),
    Case("unknown-schema", "A results directory with records of an unknown schema version",
         ("compare", "{tmp}"), r"skipped future\.json: schema version 99, this twinbench reads \d+",
         prepare="future_record", exit_code=0),
    Case("no-records", "A results directory without records", ("compare", "{tmp}"),
         r"no twinbench records in '.*'", prepare="empty_dir"),
    Case("report-no-directory", "A report of a results directory that does not exist", ("report", "{tmp}/nope"),
         r"results directory '.*nope' does not exist; run the matrix first \(nox -s compare\)"),
    Case("model-file-syntax-error", "A model file in TWINBENCH_MODELS that Python cannot import", ("list",),
         r"Model file '.*my_models\.py' could not be imported: SyntaxError: .*\(listed in TWINBENCH_MODELS\)",
         env={"TWINBENCH_MODELS": "{tmp}/my_models.py"}, prepare="bad_model_file"),
    Case("show-unknown-model", "A teaching page of an unknown model", ("show", "resnet5", "--offline"),
         r"Unknown model 'resnet5'\. Valid choices: alexnet, cifar_cnn, gnmt, "),
    Case("study-unknown", "Unknown study", ("study", "show", "overhead"),
         r"Unknown study 'overhead'\. Valid choices: causes, cpu, crosscheck, crosscheck-alternated, definition-effect, "),
    Case("study-unknown-parameter", "A parameter the study does not have", ("study", "show", "malloc", "--set",
                                                                             "budget_min=5"),
         r"Unknown parameter 'budget_min' of study 'malloc'\. Valid choices: windows, steps, warmup\."),
    Case("study-missing-python", "A study whose environment has no python",
         ("study", "run", "trace", "--out", "{tmp}/study", "--python", "torch={tmp}/nope"),
         r"no python for the torch environment: .*nope does not exist \(nox -s throughput --install-only creates "
         r"it; or --python torch=PATH, or only the others: --env\)"),
]


# -- preparing {tmp} -------------------------------------------------------------------------------------

def empty_dir(tmp: Path):
    tmp.mkdir(parents=True, exist_ok=True)


def truncated_cifar(tmp: Path):
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        payload = os.urandom(4096)
        info = tarfile.TarInfo("cifar-10-batches-py/data_batch_1")
        info.size = len(payload)
        archive.addfile(info, io.BytesIO(payload))
    tmp.mkdir(parents=True, exist_ok=True)
    (tmp / "cifar-10-python.tar.gz").write_bytes(buffer.getvalue()[: len(buffer.getvalue()) // 2])


def corrupt_npz(tmp: Path):
    tmp.mkdir(parents=True, exist_ok=True)
    (tmp / "mnist.npz").write_bytes(b"PK\x03\x04 this is not a zip archive" + gzip.compress(b"x" * 100))


def plain_file(tmp: Path):
    tmp.mkdir(parents=True, exist_ok=True)
    (tmp / "file").write_text("a file where a directory should be\n")


def bad_checkpoint(tmp: Path):
    import numpy as np

    tmp.mkdir(parents=True, exist_ok=True)
    np.savez(tmp / "ckpt.npz", **{"conv1/kernel": np.zeros((3, 3, 3, 64), np.float32)})


def bad_model_file(tmp: Path):
    tmp.mkdir(parents=True, exist_ok=True)
    (tmp / "my_models.py").write_text("from twinbench.models import register_model\n\ndef build(*, input_shape:\n")


def future_record(tmp: Path):
    from twinbench.cell import Cell
    from twinbench.measuring.train import RunConfig
    from twinbench.records import new_record

    tmp.mkdir(parents=True, exist_ok=True)
    record = new_record("train", RunConfig(Cell("cifar_cnn", "torch", "torch")))
    record.update(status="failed", error={"type": "Example", "message": "kept for the table"})
    (tmp / "cifar_cnn__torch__torch__digits.json").write_text(json.dumps(record))
    (tmp / "future.json").write_text(json.dumps({**record, "schema_version": 99}))


# -- running a case ------------------------------------------------------------------------------------------

def here():
    """{impl}, {backend} and {other}: a cell this environment runs, and a backend that is not its own."""
    backend = os.environ.get("KERAS_BACKEND") or next(
        b for b in ("torch", "tensorflow", "jax") if importlib.util.find_spec(b) is not None)
    implementation = {"torch": "torch", "tensorflow": "tf_keras", "jax": "keras"}[backend]
    other = "jax" if backend != "jax" else "torch"
    return {"{impl}": implementation, "{backend}": backend, "{other}": other}


TABLE_VALUES = {"{impl}": "torch", "{backend}": "torch", "{other}": "jax", "{tmp}": "DIR"}


def _fill(text, values):
    for key, value in values.items():
        text = text.replace(key, value)
    return text


def run_case(case: Case, tmp: Path):
    """Run ``python -m twinbench`` for a case; returns (exit code, stdout, stderr)."""
    if case.prepare:
        globals()[case.prepare](tmp)
    values = {**here(), "{tmp}": str(tmp)}
    argv = [_fill(a, values) for a in case.argv]
    env = {k: v for k, v in os.environ.items() if k != "KERAS_BACKEND"}
    env.update({k: _fill(v, values) for k, v in case.env.items()})
    done = subprocess.run([sys.executable, "-m", "twinbench", *argv], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=300)
    return done.returncode, done.stdout, done.stderr


def message_line(stderr: str, case: Case) -> str:
    """The line of stderr that the case is about."""
    lines = [line for line in stderr.splitlines() if line.strip()]
    matching = [line for line in lines if re.search(case.expect, line)]
    return matching[0] if matching else (lines[-1] if lines else "")


def markdown_table() -> str:
    """The error table of docs/errors.md, from real runs of every case."""
    import tempfile

    rows = ["| you did | command | you get (exit code) |", "|---|---|---|"]
    for case in CASES:
        with tempfile.TemporaryDirectory() as tmp:
            code, _, stderr = run_case(case, Path(tmp) / case.id)
            line = message_line(stderr, case).replace(tmp, "/tmp").replace("|", "\\|")
        command = _fill(" ".join(["twinbench", *case.argv]), TABLE_VALUES)
        env = " ".join(f"{k}={_fill(v, TABLE_VALUES)}" for k, v in case.env.items())
        rows.append(f"| {case.what} | `{(env + ' ') if env else ''}{command}` | `{line}` ({code}) |")
    return "\n".join(rows)


def missing_backend():
    """A backend whose package this environment lacks (None if all are installed)."""
    for backend, package in (("jax", "jax"), ("tensorflow", "tensorflow"), ("torch", "torch")):
        if importlib.util.find_spec(package) is None:
            return backend
    return None


PAGE = ROOT / "docs" / "errors.md"
BEGIN, END = "<!-- error table: begin -->", "<!-- error table: end -->"


def page_table(text: str) -> str:
    """The table between the markers of docs/errors.md's text."""
    return text.split(BEGIN, 1)[1].split(END, 1)[0].strip("\n")


def write_page(table: str) -> None:
    """Replace the table between docs/errors.md's markers (the rest of the page stays as it is)."""
    text = PAGE.read_text()
    PAGE.write_text(text.split(BEGIN, 1)[0] + BEGIN + "\n" + table + "\n" + END + text.split(END, 1)[1])


if __name__ == "__main__":
    table = markdown_table()
    if sys.argv[1:] == ["--write"]:
        write_page(table)
        print(f"wrote {len(CASES)} rows into {PAGE.relative_to(ROOT)}")
    else:
        print(table)
