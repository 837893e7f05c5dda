"""Checksums of the official dataset files, and the check against them.

A file is checked only when it has an official name *and* the official size: a smaller file of that name (for
example the tiny archives the tests write) is not the official one, and its parser will say what is wrong
with it. A file of the official size whose digest differs is corrupt or was altered, and is rejected.

Sources of the table:

- ``cifar-10-python.tar.gz`` and its extracted batches: the MD5s published with the dataset
  (https://www.cs.toronto.edu/~kriz/cifar.html) and used by ``torchvision.datasets.CIFAR10``.
- MNIST ``*-ubyte.gz``: the MD5s in ``torchvision.datasets.MNIST.resources``.
- ``mnist.npz``: the SHA-256 ``file_hash`` in ``keras.datasets.mnist.load_data``.

The uncompressed IDX files have no published digest; their headers and lengths are checked when parsed.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from twinbench.data.base import DatasetError


@dataclass(frozen=True)
class OfficialFile:
    """Size in bytes and digest of one official file."""

    size: int
    algorithm: str  # "md5" or "sha256"
    digest: str


OFFICIAL_FILES: dict[str, OfficialFile] = {
    # CIFAR-10, python version
    "cifar-10-python.tar.gz": OfficialFile(170_498_071, "md5", "c58f30108f718f92721af3b95e74349a"),
    "data_batch_1": OfficialFile(31_035_704, "md5", "c99cafc152244af753f735de768cd75f"),
    "data_batch_2": OfficialFile(31_035_320, "md5", "d4bba439e000b95fd0a9bffe97cbabec"),
    "data_batch_3": OfficialFile(31_035_999, "md5", "54ebc095f3ab1f0389bbae665268c751"),
    "data_batch_4": OfficialFile(31_035_696, "md5", "634d18415352ddfa80567beed471001a"),
    "data_batch_5": OfficialFile(31_035_623, "md5", "482c414d41f54cd18b22e5b47cb7c3cb"),
    "test_batch": OfficialFile(31_035_526, "md5", "40351d587109b95175f43aff81a1287e"),
    # MNIST, as keras.datasets ships it
    "mnist.npz": OfficialFile(
        11_490_434, "sha256", "731c5ac602752760c8e48fbffcf8c3b850d9dc2a2aedcf2cc48468fc17b673d1"
    ),
    # MNIST, the original gzipped IDX files
    "train-images-idx3-ubyte.gz": OfficialFile(9_912_422, "md5", "f68b3c2dcbeaaa9fbdd348bbdeb94873"),
    "train-labels-idx1-ubyte.gz": OfficialFile(28_881, "md5", "d53e105ee54ea40749a09fcbcd1e9432"),
    "t10k-images-idx3-ubyte.gz": OfficialFile(1_648_877, "md5", "9fb629c4189551a2d022fa330f9573f3"),
    "t10k-labels-idx1-ubyte.gz": OfficialFile(4_542, "md5", "ec29112dd5afa0611ce80d1b7f02629c"),
}

_CHUNK = 1 << 20  # hash files 1 MiB at a time


def file_digest(path: Path, algorithm: str) -> str:
    """Hex digest of the file at ``path`` with ``algorithm`` (any name ``hashlib.new`` accepts)."""
    digest = hashlib.new(algorithm)
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def verify_file(path: Path, *, verify: bool = True) -> str:
    """Check ``path`` against the official table and say what was checked.

    Args:
        path: the file to check.
        verify: ``False`` skips the check.

    Returns:
        A short description for ``Dataset.meta["checksum"]``, e.g. ``"md5 verified"``.

    Raises:
        DatasetError: the file has the official name and size but a different digest.
    """
    official = OFFICIAL_FILES.get(path.name)
    if official is None:
        return "no official checksum"
    if not verify:
        return "not verified (verify_checksums=False)"
    if path.stat().st_size != official.size:
        return f"not verified (size differs from the official {official.size} bytes)"
    actual = file_digest(path, official.algorithm)
    if actual != official.digest:
        raise DatasetError(
            f"checksum mismatch for {path} (expected {official.algorithm} {official.digest}, got {actual}): "
            "the file is corrupt or not the official one."
        )
    return f"{official.algorithm} verified"
