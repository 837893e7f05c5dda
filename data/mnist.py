"""``mnist``: the MNIST handwritten digits, read from a local copy (never downloaded).

Accepted layouts in the data directory (the first one found is used):

1. ``mnist.npz`` as ``keras.datasets.mnist`` ships it: arrays ``x_train (60000, 28, 28)``, ``y_train``,
   ``x_test (10000, 28, 28)``, ``y_test``, all uint8;
2. the four original IDX files ``train-images-idx3-ubyte``, ``train-labels-idx1-ubyte``,
   ``t10k-images-idx3-ubyte``, ``t10k-labels-idx1-ubyte``, each raw or gzipped (``.gz``).

An IDX file is a big-endian header, magic number then one uint32 per dimension, followed by the uint8 values.
The magic number's last byte is the number of dimensions: 2051 (0x00000803) for images ``(N, rows, cols)`` and
2049 (0x00000801) for labels ``(N,)``. Headers and lengths are checked, so a truncated or swapped file is named.
"""

from __future__ import annotations

import gzip
import os
import struct
import zlib
from pathlib import Path

import numpy as np

from twinbench.data.base import (
    HOW_TO_POINT,
    Dataset,
    DatasetError,
    check_labels,
    describe_error,
    resolve_data_dir,
    to_unit_float32,
)
from twinbench.data.checksums import verify_file

NPZ = "mnist.npz"
SPLITS = ("x_train", "y_train", "x_test", "y_test")
IDX_FILES = {  # split -> IDX file name (each may also be gzipped, with ".gz" appended)
    "x_train": "train-images-idx3-ubyte",
    "y_train": "train-labels-idx1-ubyte",
    "x_test": "t10k-images-idx3-ubyte",
    "y_test": "t10k-labels-idx1-ubyte",
}
IMAGES_MAGIC = 2051
LABELS_MAGIC = 2049
EXPECTED = f"{NPZ} or the IDX files {', '.join(IDX_FILES.values())} (each optionally .gz)"
URL = "https://storage.googleapis.com/tensorflow/tf-keras-datasets/mnist.npz"
NUM_CLASSES = 10


# --- mnist.npz ----------------------------------------------------------------------------------------------


def read_npz(path: Path) -> dict[str, np.ndarray]:
    """The four arrays of a keras-style ``mnist.npz``; ``DatasetError`` naming ``path`` if it is unreadable."""
    try:
        archive = np.load(path, allow_pickle=False)
    except Exception as exc:  # np.load raises many types on a corrupt file: say so, and name the file
        raise DatasetError(
            f"{path} is not a readable .npz file ({describe_error(exc)}): it is truncated or corrupt."
        ) from exc
    if not isinstance(archive, np.lib.npyio.NpzFile):
        raise DatasetError(f"{path} is a single .npy array, not an .npz archive with {', '.join(SPLITS)}.")
    with archive:
        missing = [key for key in SPLITS if key not in archive.files]
        if missing:
            raise DatasetError(
                f"{path} lacks the arrays {', '.join(missing)} (expected {', '.join(SPLITS)})."
            )
        try:
            return {key: archive[key] for key in SPLITS}
        except Exception as exc:  # a damaged member shows only when it is read
            raise DatasetError(
                f"{path} has a damaged array ({describe_error(exc)}): it is truncated or corrupt."
            ) from exc


# --- IDX files -----------------------------------------------------------------------------------------------


def parse_idx(payload: bytes, *, magic: int, source: str) -> np.ndarray:
    """The uint8 array stored in the bytes of one IDX file.

    Args:
        payload: the (decompressed) file contents.
        magic: the expected magic number, ``IMAGES_MAGIC`` or ``LABELS_MAGIC``.
        source: the file's name, for error messages.

    Raises:
        DatasetError: wrong magic number, or a length that does not match the header.
    """
    kind = "images" if magic == IMAGES_MAGIC else "labels"
    found = int.from_bytes(payload[:4], "big") if len(payload) >= 4 else None
    if found != magic:
        raise DatasetError(
            f"{source}: bad IDX magic number {found} (expected {magic} for MNIST {kind}); "
            "the file is corrupt or not an MNIST IDX file."
        )
    ndim = magic & 0xFF
    header_length = 4 + 4 * ndim
    if len(payload) < header_length:
        raise DatasetError(f"{source}: the IDX header is truncated ({len(payload)} bytes).")
    shape = struct.unpack(f">{ndim}I", payload[4:header_length])
    expected_length = header_length + int(np.prod(shape))
    if len(payload) != expected_length:
        raise DatasetError(
            f"{source}: the IDX header announces shape {shape} ({expected_length} bytes) but the file holds "
            f"{len(payload)} bytes; it is truncated or corrupt."
        )
    return np.frombuffer(payload, dtype=np.uint8, offset=header_length).reshape(shape)


def read_idx_file(path: Path, *, magic: int) -> np.ndarray:
    """Read one IDX file, raw or gzipped (by its ``.gz`` suffix)."""
    payload = path.read_bytes()
    if path.suffix == ".gz":
        try:
            payload = gzip.decompress(payload)
        except (OSError, EOFError, zlib.error) as exc:
            raise DatasetError(
                f"{path} is not a readable gzip file ({describe_error(exc)}): it is truncated or corrupt."
            ) from exc
    return parse_idx(payload, magic=magic, source=str(path))


def find_idx_files(directory: Path) -> tuple[dict[str, Path], list[str]]:
    """``(split -> path, missing)``: each IDX file, raw preferred over ``.gz``, and the names not found."""
    found, missing = {}, []
    for split, name in IDX_FILES.items():
        candidates = [directory / name, directory / f"{name}.gz"]
        path = next((candidate for candidate in candidates if candidate.is_file()), None)
        if path is None:
            missing.append(f"{name}[.gz]")
        else:
            found[split] = path
    return found, missing


# --- both layouts ----------------------------------------------------------------------------------------------


def _check_split(arrays: dict, sources: dict, split: str) -> tuple[np.ndarray, np.ndarray]:
    """Validate ``split`` ("train" or "test"); return images ``(N, H, W, 1)`` float32 in [0, 1] and int64 labels."""
    images, labels = arrays[f"x_{split}"], arrays[f"y_{split}"]
    image_source, label_source = sources[f"x_{split}"], sources[f"y_{split}"]
    if images.dtype != np.uint8 or images.ndim != 3:
        raise DatasetError(
            f"{image_source}: images must be uint8 of shape (N, H, W), got {images.dtype} {images.shape}."
        )
    labels = check_labels(labels, NUM_CLASSES, source=label_source)
    if len(images) != len(labels):
        raise DatasetError(
            f"{image_source} holds {len(images)} images but {label_source} {len(labels)} labels."
        )
    return to_unit_float32(images, 255)[..., np.newaxis], labels


def load(data_dir: str | os.PathLike | None = None, *, verify_checksums: bool = True) -> Dataset:
    """MNIST at its native 28x28x1: 60,000 training and 10,000 test images, scaled to [0, 1].

    Args:
        data_dir: directory holding ``mnist.npz`` or the IDX files; ``None`` uses ``TWINBENCH_DATA_DIR``.
        verify_checksums: check files of the official size against the official digests.

    Raises:
        DatasetError: the files are missing, truncated, corrupt or fail their checksum.
    """
    directory, origin = resolve_data_dir(data_dir, dataset="mnist", expected=EXPECTED)
    npz = directory / NPZ
    if npz.is_file():
        checksum = verify_file(npz, verify=verify_checksums)
        arrays, sources = read_npz(npz), {split: f"{npz}[{split}]" for split in SPLITS}
        source = str(npz)
    else:
        paths, missing = find_idx_files(directory)
        if missing:
            verb = "is" if len(missing) == 1 else "are"
            found = (
                "neither is in"
                if len(missing) == len(IDX_FILES)
                else f"{', '.join(missing)} {verb} missing from"
            )
            raise DatasetError(
                f"Dataset 'mnist' needs {EXPECTED}, but {found} {directory} (from {origin}); "
                f"download {URL} there, or {HOW_TO_POINT}."
            )
        checksum = "; ".join(
            f"{path.name}: {verify_file(path, verify=verify_checksums)}" for path in paths.values()
        )
        arrays = {
            split: read_idx_file(path, magic=IMAGES_MAGIC if split.startswith("x") else LABELS_MAGIC)
            for split, path in paths.items()
        }
        sources = {split: str(path) for split, path in paths.items()}
        source = str(directory)

    x_train, y_train = _check_split(arrays, sources, "train")
    x_test, y_test = _check_split(arrays, sources, "test")
    return Dataset(
        name="mnist",
        x_train=x_train,
        y_train=y_train,
        x_test=x_test,
        y_test=y_test,
        num_classes=NUM_CLASSES,
        meta={"source": source, "original_shape": x_train.shape[1:], "checksum": checksum},
    )
