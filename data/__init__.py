"""Framework-neutral datasets for twinbench: NumPy arrays and one sample order, shared by every implementation.

Every implementation of a model (PyTorch, tf.keras, Keras 3 on any backend) is fed the same arrays (images:
float32 NHWC in [0, 1], converted deterministically to the model's input shape; other tasks: integer arrays,
``twinbench.data.tasks``), and visits them in the same order (``twinbench.data.order``). This package imports NumPy and
scikit-learn only, never a deep-learning framework.

>>> from twinbench.data import load_dataset, batch_indices
>>> ds = load_dataset("digits", input_shape=(28, 28, 1))
>>> ds.x_train.shape, ds.x_train.dtype, ds.y_train.dtype
((1437, 28, 28, 1), dtype('float32'), dtype('int64'))
>>> [len(b) for b in batch_indices(10, 4, epoch=0, seed=0)]
[4, 4, 2]

Datasets:

- ``digits``     scikit-learn's bundled 8x8 digits (1,797 images), fixed 80/20 stratified split; no files needed.
- ``synthetic``  random images of any shape and random labels, for throughput runs.
- ``cifar10``    CIFAR-10 from ``cifar-10-python.tar.gz`` or ``cifar-10-batches-py/`` in the data directory.
- ``mnist``      MNIST from ``mnist.npz`` or the four IDX files (optionally ``.gz``) in the data directory.

Other tasks (``twinbench.data.tasks``; a model trains on its task's first dataset unless told otherwise):

- ``reverse``        seq2seq: reverse digit strings; embedded, fixed split (``twinbench.data.seq2seq``).
- ``parallel_text``  seq2seq: ``source.txt`` and ``target.txt`` in the data directory, one sentence per line.
- ``pydoc``          language_model: Python's own topic help as byte tokens; embedded (``twinbench.data.text``).
- ``reverse_lm``     language_model: the reversal task as next-token prediction; embedded.
- ``synthetic_tokens`` language_model: random tokens of any vocabulary and length, for throughput runs.
- ``text_file``      language_model: your UTF-8 ``.txt`` file(s) via the data directory.
- ``implicit``       recommendation: synthetic implicit feedback with a planted low-rank structure; embedded.
- ``movielens``      recommendation: ``ml-1m/ratings.dat`` or ``ml-latest-small/ratings.csv`` in the data directory.

The data directory is ``data_dir`` (``--data-dir DIR`` on the command line), else ``$TWINBENCH_DATA_DIR``.
Nothing is ever downloaded.
"""

from __future__ import annotations

import dataclasses
import numbers
import os

from twinbench.data import cifar10, digits, mnist, recommendation, seq2seq, synthetic, text
from twinbench.data.base import DATA_DIR_ENV, Dataset, DatasetError, check_int
from twinbench.data.order import batch_indices, epoch_permutation, eval_batches
from twinbench.data.tasks import (
    DEFAULT_TASK,
    TASKS,
    all_datasets,
    check_dataset_for_task,
    get_task,
    task_of_dataset,
)
from twinbench.data.transforms import (
    check_channel_conversion,
    convert_channels,
    describe_conversion,
    resize_bilinear,
    to_input_shape,
)
from twinbench.models.choices import UnknownChoiceError, check_choice

DATASETS = all_datasets()  # every task's, images first
IMAGE_DATASETS = TASKS[DEFAULT_TASK].datasets

__all__ = [
    "DATASETS",
    "DATA_DIR_ENV",
    "IMAGE_DATASETS",
    "TASKS",
    "Dataset",
    "DatasetError",
    "check_dataset_for_task",
    "get_task",
    "task_of_dataset",
    "UnknownChoiceError",
    "batch_indices",
    "convert_channels",
    "epoch_permutation",
    "eval_batches",
    "load_dataset",
    "resize_bilinear",
    "to_input_shape",
]


def load_dataset(
    name: str,
    *,
    input_shape: tuple[int, int, int] | None = None,
    num_classes: int | None = None,
    data_dir: str | os.PathLike | None = None,
    seed: int = 0,
    synthetic_train: int | None = None,
    synthetic_test: int | None = None,
    verify_checksums: bool = True,
    task: str = DEFAULT_TASK,
) -> Dataset:
    """Load dataset ``name`` converted to ``input_shape``.

    Args:
        name: one of ``DATASETS``.
        input_shape: the model's ``(height, width, channels)``; images are resized (bilinear) and their channels
            converted (1 -> C by repetition, 3 -> 1 by BT.601 luma) to it. Required for images; the other
            tasks' datasets ignore it and set ``Dataset.input_shape`` themselves.
        num_classes: the model's number of classes. For ``synthetic`` it sets the label range (default 10); for
            the real datasets it must match theirs (10) when given.
        data_dir: directory holding the files of ``cifar10`` / ``mnist``; ``None`` uses ``TWINBENCH_DATA_DIR``.
        seed: seed of the ``synthetic`` data. The real datasets have fixed splits and ignore it.
        synthetic_train: number of ``synthetic`` training samples (default 2,048); ignored by the others.
        synthetic_test: number of ``synthetic`` test samples (default 512); ignored by the others.
        verify_checksums: check files of the official size against the official digests (``twinbench.data.checksums``).
        task: the model's task (``twinbench.data.tasks``): ``synthetic`` data are random data of that kind.

    Returns:
        A ``Dataset`` with float32 NHWC images in [0, 1] of shape ``(N, *input_shape)`` and int64 labels.

    Raises:
        UnknownChoiceError: ``name`` is not one of ``DATASETS`` (a ``ValueError``; the message lists them).
        DatasetError: missing or bad files, a class count that does not match, or an impossible channel
            conversion (a ``ValueError``; the message is one line).
        ValueError: a malformed ``input_shape``, ``num_classes``, ``seed`` or sample count.
    """
    check_choice("dataset", name, DATASETS)
    seed = check_int("seed", seed, 0)
    if name not in IMAGE_DATASETS:
        return _load_other(name, data_dir=data_dir, seed=seed, input_shape=input_shape, num_classes=num_classes)
    if name == "synthetic" and task != DEFAULT_TASK:  # random ids of the task's kind, at the model's shape
        return synthetic.load_task(task, input_shape=tuple(input_shape), num_classes=num_classes or 1, seed=seed,
                                   train_size=synthetic.DEFAULT_TRAIN if synthetic_train is None else synthetic_train,
                                   test_size=synthetic.DEFAULT_TEST if synthetic_test is None else synthetic_test)
    input_shape = _check_input_shape(input_shape)
    if num_classes is not None:
        num_classes = check_int("num_classes", num_classes, 1)

    if name == "synthetic":
        native = synthetic.load(
            input_shape=input_shape,
            num_classes=synthetic.DEFAULT_CLASSES if num_classes is None else num_classes,
            seed=seed,
            train_size=synthetic.DEFAULT_TRAIN if synthetic_train is None else synthetic_train,
            test_size=synthetic.DEFAULT_TEST if synthetic_test is None else synthetic_test,
        )
    elif name == "digits":
        native = digits.load()
    elif name == "cifar10":
        native = cifar10.load(data_dir, verify_checksums=verify_checksums)
    else:
        native = mnist.load(data_dir, verify_checksums=verify_checksums)

    _check_num_classes(native, num_classes)
    return _convert(native, input_shape)


def _load_other(name: str, *, data_dir, seed: int, input_shape=None, num_classes=None) -> Dataset:
    """A dataset of a task other than image classification (``twinbench.data.tasks``); text datasets cut their windows to
    the model's ``input_shape = (context_length,)``."""
    context = {"input_shape": tuple(input_shape)} if input_shape is not None and len(input_shape) == 1 else {}
    if name == "pydoc":
        return text.load_pydoc(**context)
    if name == "text_file":
        return text.load_text_file(data_dir=data_dir, **context)
    if name == "synthetic_tokens":
        return text.load_synthetic_tokens(seed=seed, **context, **({"num_classes": num_classes} if num_classes else {}))
    if name == "reverse":
        return seq2seq.load_reverse()
    if name == "reverse_lm":
        return seq2seq.load_reverse_lm()
    if name == "parallel_text":
        return seq2seq.load_parallel_text(data_dir)
    if name == "implicit":
        return recommendation.load_implicit(seed=seed)
    return recommendation.load_movielens(data_dir, seed=seed)


def _check_input_shape(input_shape) -> tuple[int, int, int]:
    """``input_shape`` as a tuple of three positive ints, else a one-line ``ValueError``."""
    shape = tuple(input_shape)
    if len(shape) != 3 or not all(isinstance(size, numbers.Integral) and size >= 1 for size in shape):
        raise ValueError(
            f"input_shape must be (height, width, channels) of positive integers. Received: input_shape={shape}."
        )
    return tuple(int(size) for size in shape)


def _check_num_classes(dataset: Dataset, num_classes: int | None) -> None:
    """Raise ``DatasetError`` when the caller asked for a class count the dataset does not have."""
    if num_classes is not None and num_classes != dataset.num_classes:
        raise DatasetError(
            f"Dataset {dataset.name!r} has {dataset.num_classes} classes, but num_classes={num_classes} was "
            f"requested; build the model with num_classes={dataset.num_classes}, or use 'synthetic' for any count."
        )


def _convert(native: Dataset, input_shape: tuple[int, int, int]) -> Dataset:
    """``native`` with both image arrays converted to ``input_shape``; ``meta`` says what was done."""
    original = tuple(native.x_train.shape[1:])
    check_channel_conversion(original[-1], input_shape[-1], what=f"dataset {native.name!r}")
    return dataclasses.replace(
        native,
        x_train=to_input_shape(native.x_train, input_shape),
        x_test=to_input_shape(native.x_test, input_shape),
        meta={**native.meta, "input_shape": input_shape, **describe_conversion(original, input_shape)},
        input_shape=input_shape,
    )
