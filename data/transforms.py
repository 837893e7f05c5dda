"""Deterministic conversion of images to a model's input shape: bilinear resize and channel conversion.

Everything is plain NumPy, so every implementation (PyTorch, tf.keras, Keras 3 on any backend) is fed exactly
the same arrays.

Resizing is bilinear with half-pixel centres and edge clamping, without antialiasing: the convention of
``torch.nn.functional.interpolate(mode="bilinear", align_corners=False)`` and of
``tf.image.resize(method="bilinear", antialias=False)``. It is separable: one interpolation matrix for the
rows and one for the columns, so resizing is two (batched) matrix products.

Channels: one channel becomes C by repetition; three (RGB) become one by the ITU-R BT.601 luma weights.
"""

from __future__ import annotations

import numpy as np

from twinbench.data.base import DatasetError

BT601_LUMA = (0.299, 0.587, 0.114)  # weights of R, G, B in Y' (ITU-R BT.601)


def interpolation_matrix(in_size: int, out_size: int) -> np.ndarray:
    """The ``(out_size, in_size)`` matrix of 1-D linear interpolation with half-pixel centres.

    Output pixel ``i`` samples the input at ``(i + 0.5) * in_size / out_size - 0.5``, clamped to the image;
    its row holds the weights of the two nearest input pixels, and every row sums to 1.
    """
    position = (np.arange(out_size, dtype=np.float64) + 0.5) * (in_size / out_size) - 0.5
    position = np.clip(position, 0, in_size - 1)
    left = np.floor(position).astype(np.int64)
    right = np.minimum(left + 1, in_size - 1)
    frac = position - left

    matrix = np.zeros((out_size, in_size), dtype=np.float64)
    rows = np.arange(out_size)
    np.add.at(matrix, (rows, left), 1.0 - frac)
    np.add.at(matrix, (rows, right), frac)
    return matrix


def resize_bilinear(images: np.ndarray, height: int, width: int) -> np.ndarray:
    """Resize a batch of NHWC images to ``height`` x ``width`` (float32; no copy when already that size).

    Args:
        images: float array ``(N, H, W, C)``.
        height: output height.
        width: output width.

    Returns:
        float32 array ``(N, height, width, C)``, C-contiguous.
    """
    n, in_height, in_width, channels = images.shape
    if (in_height, in_width) == (height, width):
        return images
    images = np.ascontiguousarray(images, dtype=np.float32)
    rows = interpolation_matrix(in_height, height).astype(np.float32)  # (height, in_height)
    cols = interpolation_matrix(in_width, width).astype(np.float32)  # (width, in_width)
    # Rows first: each image is an (in_height, in_width * C) matrix, and rows @ image is (height, in_width * C).
    tall = np.matmul(rows, images.reshape(n, in_height, in_width * channels))
    # Then columns: each output row is an (in_width, C) matrix, and cols @ row is (width, C).
    resized = np.matmul(cols, tall.reshape(n * height, in_width, channels))
    return resized.reshape(n, height, width, channels)


def convert_channels(images: np.ndarray, channels: int) -> np.ndarray:
    """Give a batch of NHWC images ``channels`` channels.

    Args:
        images: float array ``(N, H, W, C)``.
        channels: wanted number of channels.

    Returns:
        float32 array ``(N, H, W, channels)``: unchanged when C already matches, C=1 repeated, or C=3 reduced to
        BT.601 luma.

    Raises:
        DatasetError: any other conversion (e.g. 3 -> 4, 2 -> 1).
    """
    have = images.shape[-1]
    check_channel_conversion(have, channels)
    if have == channels:
        return images
    if have == 1:
        return np.ascontiguousarray(np.repeat(images, channels, axis=-1), dtype=np.float32)
    luma = images @ np.asarray(BT601_LUMA, dtype=np.float32)  # 3 -> 1
    return np.ascontiguousarray(luma[..., np.newaxis], dtype=np.float32)


def check_channel_conversion(have: int, want: int, *, what: str = "images") -> None:
    """Raise ``DatasetError`` (naming ``what``) unless ``have`` channels can become ``want``: same, 1 -> C, 3 -> 1."""
    if have == want or have == 1 or (have == 3 and want == 1):
        return
    raise DatasetError(
        f"Cannot convert {what} with {have} channels to {want} channels: only 1 -> C (repeat) and 3 -> 1 "
        "(BT.601 luma) are supported."
    )


def describe_conversion(from_shape: tuple[int, int, int], to_shape: tuple[int, int, int]) -> dict:
    """What ``to_input_shape`` does between two ``(H, W, C)`` shapes, for ``Dataset.meta``."""
    (h0, w0, c0), (h1, w1, c1) = from_shape, to_shape
    resize = (
        "none"
        if (h0, w0) == (h1, w1)
        else f"bilinear {h0}x{w0} -> {h1}x{w1} (half-pixel centres, no antialias)"
    )
    if c0 == c1:
        channels = "none"
    elif c0 == 1:
        channels = f"repeat 1 -> {c1}"
    else:
        channels = f"BT.601 luma {c0} -> {c1}"
    return {"resize": resize, "channels": channels}


def to_input_shape(images: np.ndarray, input_shape: tuple[int, int, int]) -> np.ndarray:
    """Convert NHWC images in [0, 1] to ``input_shape`` = ``(H, W, C)``: float32, [0, 1], C-contiguous.

    Fewer channels are made before resizing and more after, so the resize works on as few channels as possible
    (both orders give the same result: the two operations are linear and act on different axes).
    """
    height, width, channels = input_shape
    if images.shape[1:] == tuple(input_shape):
        return np.ascontiguousarray(images, dtype=np.float32)  # already there: no copy, no rounding
    if channels < images.shape[-1]:
        images = convert_channels(images, channels)
    images = resize_bilinear(images, height, width)
    images = convert_channels(images, channels)
    # Interpolation weights sum to 1 up to float rounding; clip so values stay exactly within [0, 1].
    images = np.clip(images, 0.0, 1.0)
    return np.ascontiguousarray(images, dtype=np.float32)
