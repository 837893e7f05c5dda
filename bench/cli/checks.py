"""Checks of the user's input before any framework is imported: a bad name, number, file or environment
is one line and exit code 2, never a traceback."""

from __future__ import annotations

import dataclasses
import os
import tempfile
from pathlib import Path

import twinbench.backends
from twinbench import data
from twinbench.backends import BackendError, missing_packages, resolve_backend
from twinbench.backends.checkpoints import NEUTRAL_SUFFIXES, CheckpointError, checkpoint_format
from twinbench.backends.modes import DEFAULT_MODE, Mode
from twinbench.cell import CELL_AXES, Cell
from twinbench.cli.options import CliError
from twinbench.data import DatasetError
from twinbench.models import UnknownChoiceError, check_choice, check_input_shape, get_model_spec
from twinbench.models.weights import WeightMismatchError

# Exception types that mean 'bad input', reported as one line.
USER_ERRORS = (UnknownChoiceError, BackendError, WeightMismatchError, CheckpointError, DatasetError)


def validate_cell(model, implementation, backend, dataset, input_shape=None, mode: Mode = DEFAULT_MODE, *,
                  keras_backend: str | None = None) -> str:
    """Check names, numbers, the mode and the environment before any framework is imported; returns the backend.

    ``keras_backend``: the backend Keras 3 runs on in this process, which ``KERAS_BACKEND`` must agree with (default:
    the cell's; the natives environment's process runs Keras on torch for both native twins' canonical weights).

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
    if env_backend and env_backend != (keras_backend or backend):
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


def resolve_axes(cell: Cell) -> Cell:
    """``cell`` with each axis checked on this machine and named as the cell names it (``Axis.resolve``: ``--cpus 1,0``
    -> ``0,1``; an ``--allocator`` this process can apply); one line naming the choices where it cannot."""
    try:
        return dataclasses.replace(cell, **{name: declared.resolve(getattr(cell, name))
                                            for name, declared in CELL_AXES.items() if declared.resolve})
    except (*USER_ERRORS, ValueError) as err:
        raise CliError(str(err)) from None


def apply_axes(cell: Cell) -> None:
    """Set up this process as ``cell``'s axes say, before any framework is imported (``Axis.apply``: pin its CPUs, tune
    its C allocator); one line if the machine refuses."""
    try:
        for name, declared in CELL_AXES.items():
            if declared.apply:
                declared.apply(getattr(cell, name))
    except (*USER_ERRORS, ValueError) as err:
        raise CliError(str(err)) from None
