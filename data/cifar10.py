"""``cifar10``: the CIFAR-10 "python version", read from a local copy (never downloaded).

Accepted layouts in the data directory (the first one found is used):

1. ``cifar-10-batches-py/`` with ``data_batch_1`` .. ``data_batch_5`` and ``test_batch`` (what
   ``keras.datasets.cifar10`` and ``torchvision.datasets.CIFAR10`` extract);
2. ``cifar-10-python.tar.gz``, the official archive, read directly with ``tarfile`` (nothing is extracted).

Each batch is a pickled dict: ``b"data"`` is a ``(N, 3072)`` uint8 array whose rows hold the 1,024 red, then
1,024 green, then 1,024 blue values of a 32x32 image, row by row (channels first); ``b"labels"`` is a list of N
ints 0..9. Images are returned channels last, ``(N, 32, 32, 3)``, scaled to [0, 1].

The pickles are read with an unpickler that only rebuilds NumPy arrays, so a tampered file cannot run code.
"""

from __future__ import annotations

import io
import os
import pickle
import tarfile
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

ARCHIVE = "cifar-10-python.tar.gz"
FOLDER = "cifar-10-batches-py"
TRAIN_BATCHES = ("data_batch_1", "data_batch_2", "data_batch_3", "data_batch_4", "data_batch_5")
TEST_BATCH = "test_batch"
BATCHES = (*TRAIN_BATCHES, TEST_BATCH)
EXPECTED = f"{ARCHIVE} or {FOLDER}/{{data_batch_1..5,test_batch}}"
URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"

NUM_CLASSES = 10
STORED_SHAPE = (3, 32, 32)  # channels first, as stored in each row of b"data"
ROW_LENGTH = 3 * 32 * 32


class _ArrayUnpickler(pickle.Unpickler):
    """An unpickler that rebuilds only what a CIFAR batch holds: dicts, lists, bytes and NumPy arrays."""

    ALLOWED = {
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("numpy.core.multiarray", "_reconstruct"),  # NumPy 1 pickles, like the official files
        ("numpy._core.multiarray", "_reconstruct"),  # NumPy 2 pickles
        ("numpy.core.numeric", "_frombuffer"),  # protocol 5
        ("numpy._core.numeric", "_frombuffer"),
        ("_codecs", "encode"),  # how Python 3 writes bytes with protocol 2
    }

    def find_class(self, module: str, name: str):
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(
                f"refusing to load {module}.{name}: a CIFAR-10 batch holds only arrays"
            )
        return super().find_class(module, name)


def parse_batch(payload: bytes, *, source: str) -> tuple[np.ndarray, np.ndarray]:
    """Images ``(N, 32, 32, 3)`` uint8 and labels ``(N,)`` int64 from the bytes of one pickled batch.

    Args:
        payload: the file's bytes.
        source: the file's name, for error messages.

    Raises:
        DatasetError: the bytes are not a CIFAR-10 batch.
    """
    try:
        batch = _ArrayUnpickler(io.BytesIO(payload), encoding="bytes").load()
    except Exception as exc:  # a corrupt pickle can raise almost anything: say so, and name the file
        raise DatasetError(
            f"{source} is not a readable CIFAR-10 batch ({describe_error(exc)}): it is truncated or corrupt."
        ) from exc
    if not isinstance(batch, dict) or b"data" not in batch or b"labels" not in batch:
        raise DatasetError(
            f"{source} is not a CIFAR-10 batch: expected a dict with keys b'data' and b'labels'."
        )

    data = batch[b"data"]
    if (
        not isinstance(data, np.ndarray)
        or data.dtype != np.uint8
        or data.ndim != 2
        or data.shape[1] != ROW_LENGTH
    ):
        shape = getattr(data, "shape", type(data).__name__)
        raise DatasetError(
            f"{source}: b'data' must be a uint8 array of shape (N, {ROW_LENGTH}), got {shape}."
        )
    labels = check_labels(np.asarray(batch[b"labels"]), NUM_CLASSES, source=source)
    if len(labels) != len(data):
        raise DatasetError(f"{source}: {len(data)} images but {len(labels)} labels.")

    images = data.reshape(-1, *STORED_SHAPE).transpose(0, 2, 3, 1)  # CHW -> HWC
    return images, labels


def _read_folder(folder: Path, *, verify: bool) -> tuple[dict, str]:
    """Every batch of the extracted folder, parsed, and what the checksum check found."""
    batches, statuses = {}, {}
    for name in BATCHES:
        path = folder / name
        statuses[name] = verify_file(path, verify=verify)
        batches[name] = parse_batch(path.read_bytes(), source=str(path))
    return batches, _summarise(statuses)


def _read_archive(archive: Path, *, verify: bool) -> tuple[dict, str]:
    """Every batch of the ``.tar.gz`` archive, parsed (one pass, nothing written to disk), and its checksum."""
    status = verify_file(archive, verify=verify)
    wanted = {f"{FOLDER}/{name}": name for name in BATCHES}
    payloads = {}
    try:
        with tarfile.open(archive, "r:gz") as tar:
            for member in tar:
                name = member.name.removeprefix("./")
                if name in wanted and member.isfile():
                    payloads[name] = tar.extractfile(member).read()
    except (tarfile.TarError, EOFError, OSError, zlib.error) as exc:
        raise DatasetError(
            f"{archive} is not a readable tar.gz archive ({describe_error(exc)}): it is truncated or corrupt."
        ) from exc
    missing = [member for member in wanted if member not in payloads]
    if missing:
        raise DatasetError(
            f"{archive} lacks {', '.join(missing)}: it is incomplete or not the official CIFAR-10 archive."
        )
    batches = {
        name: parse_batch(payloads.pop(member), source=f"{archive}:{member}")
        for member, name in wanted.items()
    }
    return batches, status


def _summarise(statuses: dict[str, str]) -> str:
    """One status when every file got the same one, else ``"file: status; ..."``."""
    if len(set(statuses.values())) == 1:
        return next(iter(statuses.values()))
    return "; ".join(f"{name}: {status}" for name, status in statuses.items())


def find_source(directory: Path, origin: str) -> Path:
    """The extracted folder if it is complete, else the archive; ``DatasetError`` when neither is there."""
    folder, archive = directory / FOLDER, directory / ARCHIVE
    if folder.is_dir():
        missing = [name for name in BATCHES if not (folder / name).is_file()]
        if not missing:
            return folder
        if not archive.is_file():
            raise DatasetError(
                f"Dataset 'cifar10' needs {EXPECTED}: {folder} lacks {', '.join(missing)} and there is no "
                f"{ARCHIVE} in {directory} (from {origin}); {HOW_TO_POINT}."
            )
    if archive.is_file():
        return archive
    raise DatasetError(
        f"Dataset 'cifar10' needs {EXPECTED}, but neither is in {directory} (from {origin}); "
        f"download {URL} there, or {HOW_TO_POINT}."
    )


def load(data_dir: str | os.PathLike | None = None, *, verify_checksums: bool = True) -> Dataset:
    """CIFAR-10 at its native 32x32x3: 50,000 training and 10,000 test images, scaled to [0, 1].

    Args:
        data_dir: directory holding the archive or the extracted folder; ``None`` uses ``TWINBENCH_DATA_DIR``.
        verify_checksums: check files of the official size against the official MD5s.

    Raises:
        DatasetError: the files are missing, truncated, corrupt or fail their checksum.
    """
    directory, origin = resolve_data_dir(data_dir, dataset="cifar10", expected=EXPECTED)
    source = find_source(directory, origin)
    read = _read_folder if source.is_dir() else _read_archive
    parsed, checksum = read(source, verify=verify_checksums)
    x_train = np.concatenate([parsed[name][0] for name in TRAIN_BATCHES])
    y_train = np.concatenate([parsed[name][1] for name in TRAIN_BATCHES])
    x_test, y_test = parsed[TEST_BATCH]
    return Dataset(
        name="cifar10",
        x_train=to_unit_float32(x_train, 255),
        y_train=y_train,
        x_test=to_unit_float32(x_test, 255),
        y_test=y_test,
        num_classes=NUM_CLASSES,
        meta={"source": str(source), "original_shape": (32, 32, 3), "checksum": checksum},
    )
