"""``digits``: the handwritten digits bundled with scikit-learn, a real dataset that needs no download.

``sklearn.datasets.load_digits()`` holds 1,797 grey 8x8 images of the digits 0-9 with values 0..16 (the UCI
"Optical Recognition of Handwritten Digits" test set). The train/test split is fixed (80/20, stratified,
``random_state=0``) and does not depend on the run's seed, so every implementation and every run sees the same
1,437 training and 360 test images.
"""

from __future__ import annotations

import numpy as np

from twinbench.data.base import Dataset, to_unit_float32

NUM_CLASSES = 10
MAX_VALUE = 16  # pixel values are 0..16
TEST_SIZE = 0.2
SPLIT_SEED = 0  # fixed: the split is part of the dataset, not of the run


def load() -> Dataset:
    """The digits at their native 8x8x1 size, scaled to [0, 1], split 1,437 / 360."""
    import sklearn  # imported here: scikit-learn takes about a second to import, and only digits needs it
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    bunch = load_digits()
    images = to_unit_float32(bunch.images, MAX_VALUE)[..., np.newaxis]  # (1797, 8, 8, 1)
    labels = bunch.target.astype(np.int64)
    x_train, x_test, y_train, y_test = train_test_split(
        images, labels, test_size=TEST_SIZE, stratify=labels, random_state=SPLIT_SEED
    )
    return Dataset(
        name="digits",
        x_train=np.ascontiguousarray(x_train),
        y_train=np.ascontiguousarray(y_train),
        x_test=np.ascontiguousarray(x_test),
        y_test=np.ascontiguousarray(y_test),
        num_classes=NUM_CLASSES,
        meta={
            "source": f"sklearn.datasets.load_digits (scikit-learn {sklearn.__version__})",
            "original_shape": images.shape[1:],
            "split": f"train_test_split(test_size={TEST_SIZE}, stratify=y, random_state={SPLIT_SEED})",
        },
    )
