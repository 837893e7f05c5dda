"""Checks of the user's input before any framework is imported: a bad name, number, file or environment
is one line and exit code 2, never a traceback."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import twinbench.backends.allocator
from twinbench import backends, data
from twinbench.backends import BackendError, missing_packages, resolve_backend
from twinbench.backends.checkpoints import NEUTRAL_SUFFIXES, CheckpointError, checkpoint_format
from twinbench.backends.modes import DEFAULT_MODE, Mode
from twinbench.cli.options import CliError
from twinbench.data import DatasetError
from twinbench.models import UnknownChoiceError, check_choice, check_input_shape, get_model_spec
from twinbench.models.weights import WeightMismatchError

# Exception types that mean 'bad input', reported as one line.
USER_ERRORS = (UnknownChoiceError, BackendError, WeightMismatchError, CheckpointError, DatasetError)


def validate_cell(model, implementation, backend, dataset, input_shape=None, mode: Mode = DEFAULT_MODE) -> str:
    """Check names, numbers, the mode and the environment before any framework is imported; returns the backend.

    (Whether this machine can run the mode, e.g. TF32 without a GPU, is checked by the runner's ``setup``, which
    needs the framework.)
    """
    spec = get_model_spec(model)
    spec.check_implementation(implementation)
    mode.check(implementation)
    if implementation == "keras":
        spec.check_data_format(mode.data_format)
    backend = resolve_backend(implementation, backend)
    if dataset is not None:  # None: the model's own (twinbench.data.tasks)
        check_choice("dataset", dataset, data.DATASETS)
        data.check_dataset_for_task(dataset, spec.task, model=spec.name)
    check_input_shape(spec, input_shape if input_shape is not None else spec.input_shape)
    if spec.task == "image_classification" and input_shape is not None and len(input_shape) != 3:
        raise ValueError(f"Model {spec.name!r} takes input_shape=(height, width, channels). "
                         f"Received: input_shape={tuple(input_shape)}.")
    env_backend = os.environ.get("KERAS_BACKEND")
    if env_backend and env_backend != backend:
        raise BackendError(
            f"KERAS_BACKEND={env_backend} in the environment disagrees with backend {backend!r} "
            f"({implementation} runs on {backend}): unset KERAS_BACKEND or make them agree."
        )
    missing = missing_packages(backend)
    if missing:
        raise BackendError(
            f"The {backend} backend needs the package(s) {', '.join(missing)}, which this environment lacks: "
            f"pip install -e '.[{backend}]', or use its nox environment (nox -s 'train({backend})')."
        )
    return backend


def validate_weights(path, model, backend) -> None:
    """A ``--weights`` file that exists, has a known format and can be read in this environment."""
    if path is None:
        return
    kind = checkpoint_format(path)
    if not Path(path).is_file():
        raise CheckpointError(f"Checkpoint {path!r} does not exist.")
    if kind == "torch" and backend != "torch":
        raise CheckpointError(
            f"A torchvision checkpoint is read with PyTorch (torch environment); for the {backend} backend "
            f"convert it there first: twinbench convert-weights {path} OUT.npz --model {model}"
        )


def validate_save_weights(path) -> None:
    """A ``--save-weights`` path: a neutral ``.npz`` in a directory that can be written."""
    if path is None:
        return
    if Path(path).suffix.lower() not in NEUTRAL_SUFFIXES:
        raise CheckpointError(f"--save-weights writes a neutral .npz. Received: {str(path)!r}.")
    check_writable(Path(path).parent)


def check_writable(directory) -> None:
    """Fail before any work is done if results cannot be written to ``directory``."""
    try:
        Path(directory).mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=directory):
            pass
    except OSError as err:
        raise CliError(f"results directory {str(directory)!r} is not writable ({err.strerror or err})") from None


def limit_threads(threads) -> None:
    """``--threads``: cap the frameworks' thread pools before any of them is imported."""
    if threads is not None:
        twinbench.backends.limit_threads(threads)


def check_cpus(cpus) -> str:
    """``--cpus``: the CPUs as the cell names them (``"0,1"``, sorted) or ``"free"``; one line on a CPU this machine
    lacks."""
    try:
        wanted = backends.cpu_list(cpus)
    except BackendError as err:
        raise CliError(str(err)) from None
    return ",".join(map(str, wanted)) if wanted else backends.FREE


def check_allocator(allocator) -> str:
    """``--allocator``: one this process can apply (``twinbench.backends.allocator``), else one line naming the choices."""
    try:
        return twinbench.backends.allocator.check_allocator(allocator)
    except twinbench.backends.allocator.AllocatorError as err:
        raise CliError(str(err)) from None


def apply_allocator(allocator) -> None:
    """``--allocator``: set the C allocator before any framework is imported (``twinbench.backends.allocator``); one line if
    glibc refuses a setting."""
    try:
        twinbench.backends.allocator.apply_allocator(allocator)
    except twinbench.backends.allocator.AllocatorError as err:
        raise CliError(str(err)) from None


def pin_cpus(cpus) -> None:
    """``--cpus``: pin this process to those CPUs before any framework is imported (``twinbench.backends.pin_cpus``)."""
    twinbench.backends.pin_cpus(cpus)
