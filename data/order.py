"""The order in which samples are visited: the same for every implementation.

Each framework's own shuffling (``DataLoader(shuffle=True)``, ``model.fit(shuffle=True)``, ``tf.data``) draws a
different order, and different orders give different training curves. twinbench therefore draws the order once,
in NumPy, and every implementation feeds its batches by these indices (with its own shuffling switched off).

The permutation of epoch ``e`` comes from ``np.random.default_rng([seed, epoch])``: it depends only on the seed
and the epoch, so any epoch can be reproduced on its own, and runs that share a seed share every epoch's order.
"""

from __future__ import annotations

import numpy as np

from twinbench.data.base import check_int


def epoch_permutation(n: int, *, epoch: int, seed: int) -> np.ndarray:
    """The order of the ``n`` training samples in ``epoch``: ``default_rng([seed, epoch]).permutation(n)``.

    Args:
        n: number of samples (at least 1).
        epoch: epoch number (0 or more).
        seed: run seed (0 or more).

    Returns:
        int64 array holding each of ``0 .. n - 1`` once.
    """
    n = check_int("n", n, 1)
    epoch = check_int("epoch", epoch, 0)
    seed = check_int("seed", seed, 0)
    return np.random.default_rng([seed, epoch]).permutation(n).astype(np.int64)


def _split(indices: np.ndarray, batch_size: int) -> list[np.ndarray]:
    """Cut ``indices`` into consecutive batches of ``batch_size``; the last one may be smaller."""
    return [indices[start : start + batch_size] for start in range(0, len(indices), batch_size)]


def batch_indices(n: int, batch_size: int, *, epoch: int, seed: int, drop_last: bool = False) -> list[np.ndarray]:
    """The training batches of ``epoch``: ``epoch_permutation`` cut into consecutive batches.

    Every sample is used once per epoch; the last batch is partial when ``batch_size`` does not divide ``n``
    (nothing is dropped).

    Args:
        n: number of training samples (at least 1).
        batch_size: samples per batch (at least 1).
        epoch: epoch number (0 or more).
        seed: run seed (0 or more).
        drop_last: leave out a partial last batch (data-parallel runs: every batch splits evenly over replicas).

    Returns:
        ``ceil(n / batch_size)`` int64 arrays of sample indices (``n // batch_size`` with ``drop_last``).
    """
    batch_size = check_int("batch_size", batch_size, 1)
    batches = _split(epoch_permutation(n, epoch=epoch, seed=seed), batch_size)
    return [b for b in batches if len(b) == batch_size] if drop_last else batches


def eval_batches(n: int, batch_size: int) -> list[np.ndarray]:
    """The evaluation batches: ``0 .. n - 1`` in order, cut into consecutive batches (the last may be partial).

    Args:
        n: number of samples (at least 1).
        batch_size: samples per batch (at least 1).

    Returns:
        ``ceil(n / batch_size)`` int64 arrays of sample indices.
    """
    n = check_int("n", n, 1)
    batch_size = check_int("batch_size", batch_size, 1)
    return _split(np.arange(n, dtype=np.int64), batch_size)
