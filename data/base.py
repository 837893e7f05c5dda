"""What every loader shares: the ``Dataset`` record, the ``DatasetError`` and where data files are looked for.

Files are never downloaded. A dataset that needs files (``cifar10``, ``mnist``) reads them from the directory
given as ``data_dir`` (the ``--data-dir DIR`` option of the command line), else from the directory named by the
environment variable ``TWINBENCH_DATA_DIR``.
"""

from __future__ import annotations

import operator
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

DATA_DIR_ENV = "TWINBENCH_DATA_DIR"
HOW_TO_POINT = f"point --data-dir DIR or {DATA_DIR_ENV}=DIR at the directory that holds them"


class DatasetError(ValueError):
    """Any problem with a dataset's files: missing, truncated, corrupt or not the official ones.

    The message is one line; it names the files expected, where they were looked for and, when a file is bad,
    which one.
    """


@dataclass(frozen=True, eq=False)  # eq=False: arrays do not compare with ``==``; records compare by identity
class Dataset:
    """A dataset ready for any framework: NumPy arrays in the layout its task defines (``twinbench.data.tasks``).

    Attributes:
        name: the dataset's name, one of ``data.DATASETS``.
        x_train: training inputs. Images: float32 ``(N, H, W, C)`` (channels last), values in [0, 1],
            C-contiguous. Other tasks: a tuple of int32 arrays in the order the model takes them (``twinbench.data.tasks``).
        y_train: training labels, ``(N,)`` int64 for images (values ``0 .. num_classes - 1``); see ``twinbench.data.tasks``.
        x_test: test inputs, same layout as ``x_train``.
        y_test: test labels, same layout as ``y_train``.
        num_classes: number of classes (the vocabulary of token tasks; 1 for recommendation).
        meta: where the data came from and what was done to it (source, original shape, resize, channels,
            checksum, split).
        task: the task whose data this is (``twinbench.data.tasks.TASKS``).
        input_shape: the build argument ``input_shape`` the data fits (``None``: images, the caller's shape).
        resample: ``None`` when every epoch trains on ``(x_train, y_train)``; else ``resample(epoch)`` returns
            that epoch's ``(x, y)`` (same length every epoch: recommendation's freshly sampled negatives). It
            depends only on the dataset's seed and the epoch, so every implementation trains on the same arrays.
    """

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    num_classes: int
    meta: dict
    task: str = "image_classification"
    input_shape: tuple[int, ...] | None = None
    resample: Callable[[int], tuple] | None = None

    def train_arrays(self, epoch: int) -> tuple:
        """``(x, y)`` of training epoch ``epoch`` (``x_train, y_train`` unless the dataset resamples)."""
        if self.resample is None or epoch == 0:
            return self.x_train, self.y_train
        return self.resample(epoch)

    def __repr__(self) -> str:
        return (
            f"Dataset(name={self.name!r}, x_train={_shapes(self.x_train)}, x_test={_shapes(self.x_test)}, "
            f"num_classes={self.num_classes})"
        )


def _shapes(x):
    return tuple(a.shape for a in x) if isinstance(x, tuple) else x.shape


def resolve_data_dir(data_dir: str | os.PathLike | None, *, dataset: str, expected: str) -> tuple[Path, str]:
    """The directory to read ``dataset`` from, and where that choice came from.

    Args:
        data_dir: the directory passed by the caller, or ``None`` to use ``TWINBENCH_DATA_DIR``.
        dataset: the dataset's name, for the error message.
        expected: the files the dataset needs, in words, for the error message.

    Returns:
        ``(directory, origin)`` where ``origin`` is ``"--data-dir"`` or ``"TWINBENCH_DATA_DIR"``.

    Raises:
        DatasetError: no directory was given, or it does not exist.
    """
    if data_dir is not None:
        directory, origin = Path(data_dir), "--data-dir"
    elif os.environ.get(DATA_DIR_ENV):
        directory, origin = Path(os.environ[DATA_DIR_ENV]), DATA_DIR_ENV
    else:
        raise DatasetError(
            f"Dataset {dataset!r} needs {expected}, but no data directory was given: {HOW_TO_POINT} "
            "(nothing is downloaded)."
        )
    directory = directory.expanduser().resolve()
    if not directory.is_dir():
        raise DatasetError(
            f"Dataset {dataset!r} needs {expected}, but the data directory {directory} (from {origin}) "
            f"does not exist; {HOW_TO_POINT}."
        )
    return directory, origin


def to_unit_float32(images: np.ndarray, max_value: float) -> np.ndarray:
    """Scale integer pixel values ``0 .. max_value`` to float32 in [0, 1]."""
    return np.asarray(images, dtype=np.float32) / np.float32(max_value)


def check_labels(labels: np.ndarray, num_classes: int, *, source: str) -> np.ndarray:
    """Return ``labels`` as int64 after checking they are a 1-D array of ``0 .. num_classes - 1``.

    Raises:
        DatasetError: naming ``source`` when the labels are out of range or not 1-D.
    """
    labels = np.asarray(labels)
    if labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer):
        raise DatasetError(
            f"{source}: labels must be a 1-D integer array, got shape {labels.shape} {labels.dtype}."
        )
    if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
        raise DatasetError(
            f"{source}: labels must lie in 0..{num_classes - 1}, got {labels.min()}..{labels.max()}; "
            "the file is corrupt or not the official one."
        )
    return labels.astype(np.int64)


def check_int(name: str, value, minimum: int) -> int:
    """Return ``value`` as an int after checking it is an integer ``>= minimum`` (one-line ``ValueError``)."""
    try:
        value = operator.index(value)
    except TypeError:
        raise ValueError(f"{name} must be an integer >= {minimum}. Received: {name}={value!r}.") from None
    if value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}. Received: {name}={value}.")
    return value


def describe_error(exc: BaseException) -> str:
    """``"TypeName: message"`` on one line, for wrapping a low-level error into a ``DatasetError``."""
    return " ".join(f"{type(exc).__name__}: {exc}".split())
