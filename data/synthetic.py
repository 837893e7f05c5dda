"""``synthetic``: random images of any shape, for throughput runs where the values do not matter.

Images are uniform in [0, 1) and labels uniform over the classes, drawn from ``np.random.default_rng(seed)``
in a fixed order (train images, train labels, test images, test labels), so a seed always gives the same data.
"""

from __future__ import annotations

import numpy as np

from twinbench.data.base import Dataset, check_int
from twinbench.data.tasks import DEFAULT_TASK, random_batch

DEFAULT_TRAIN = 2048
DEFAULT_TEST = 512
DEFAULT_CLASSES = 10


def load(
    *,
    input_shape: tuple[int, int, int],
    num_classes: int = DEFAULT_CLASSES,
    seed: int = 0,
    train_size: int = DEFAULT_TRAIN,
    test_size: int = DEFAULT_TEST,
) -> Dataset:
    """Random images of ``input_shape`` and random labels.

    Args:
        input_shape: ``(H, W, C)`` of each image.
        num_classes: labels are drawn from ``0 .. num_classes - 1``.
        seed: seed of ``np.random.default_rng``.
        train_size: number of training samples.
        test_size: number of test samples.

    Returns:
        A ``Dataset`` whose images are float32 in [0, 1) and labels int64.
    """
    num_classes = check_int("num_classes", num_classes, 1)
    train_size = check_int("synthetic_train", train_size, 1)
    test_size = check_int("synthetic_test", test_size, 1)
    rng = np.random.default_rng(seed)
    x_train = rng.random((train_size, *input_shape), dtype=np.float32)
    y_train = rng.integers(0, num_classes, size=train_size, dtype=np.int64)
    x_test = rng.random((test_size, *input_shape), dtype=np.float32)
    y_test = rng.integers(0, num_classes, size=test_size, dtype=np.int64)
    return Dataset(
        name="synthetic",
        x_train=x_train,
        y_train=y_train,
        x_test=x_test,
        y_test=y_test,
        num_classes=num_classes,
        meta={
            "source": f"np.random.default_rng({seed}): uniform images in [0, 1), uniform labels",
            "original_shape": tuple(input_shape),
        },
    )


def load_task(task: str, *, input_shape, num_classes: int, seed: int = 0, train_size: int = DEFAULT_TRAIN,
              test_size: int = DEFAULT_TEST) -> Dataset:
    """Random data of any task's kind (``twinbench.data.tasks.random_batch``), for throughput runs of non-image models.

    Images go through ``load``; token and recommendation data are random ids of ``input_shape``'s sizes.
    """
    if task == DEFAULT_TASK:
        return load(input_shape=input_shape, num_classes=num_classes, seed=seed, train_size=train_size,
                    test_size=test_size)
    train_size = check_int("synthetic_train", train_size, 1)
    test_size = check_int("synthetic_test", test_size, 1)
    x_train, y_train = random_batch(task, input_shape, num_classes, batch=train_size, seed=seed)
    x_test, y_test = random_batch(task, input_shape, num_classes, batch=test_size, seed=seed + 1)
    return Dataset(name="synthetic", x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test,
                   num_classes=num_classes, task=task, input_shape=tuple(input_shape),
                   meta={"source": f"twinbench.data.tasks.random_batch({task!r}, seed {seed}): random ids",
                         "original_shape": tuple(input_shape)})
