"""PyTorch's adaptive average pooling, written as a matrix (NumPy only, shared by the tf.keras layer and tests).

``torch.nn.AdaptiveAvgPool2d(out)`` averages, for output index ``i`` of ``out`` along an axis of length ``n``,
the input positions ``start(i) <= j < end(i)`` with

    start(i) = floor(i * n / out)
    end(i)   = ceil((i + 1) * n / out)

(``aten/src/ATen/native/AdaptiveAveragePooling.cpp``). Windows may overlap and, when ``n < out``, an input
position is repeated: a 1x1 feature map becomes a 7x7 map of copies, which is what VGG's
``AdaptiveAvgPool2d((7, 7))`` does to a 32x32 CIFAR image.

Written as an ``(out, n)`` matrix ``P`` with ``P[i, start(i):end(i)] = 1 / (end(i) - start(i))``, the 2-D
pooling of a channels-last map ``x`` is ``einsum("ih,bhwc,jw->bijc", P_h, x, P_w)``.
"""

from __future__ import annotations

import numpy as np


def adaptive_pool_windows(n: int, out: int) -> list[tuple[int, int]]:
    """The ``(start, end)`` input window of each of the ``out`` outputs along an axis of length ``n``."""
    if n < 1 or out < 1:
        raise ValueError(f"Adaptive pooling needs positive sizes. Received: n={n}, out={out}.")
    return [((i * n) // out, -(-((i + 1) * n) // out)) for i in range(out)]


def adaptive_pool_matrix(n: int, out: int) -> np.ndarray:
    """The ``(out, n)`` float32 averaging matrix of PyTorch's adaptive average pooling along one axis."""
    matrix = np.zeros((out, n), dtype=np.float32)
    for i, (start, end) in enumerate(adaptive_pool_windows(n, out)):
        matrix[i, start:end] = 1.0 / (end - start)
    return matrix


def adaptive_average_pool_2d(x: np.ndarray, output_size: tuple[int, int]) -> np.ndarray:
    """Reference implementation on a channels-last ``(N, H, W, C)`` array (float64, for tests)."""
    p_h = adaptive_pool_matrix(x.shape[1], output_size[0]).astype(np.float64)
    p_w = adaptive_pool_matrix(x.shape[2], output_size[1]).astype(np.float64)
    return np.einsum("ih,bhwc,jw->bijc", p_h, np.asarray(x, np.float64), p_w)
