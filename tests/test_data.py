"""Tests of the framework-neutral ``data`` package: loaders, conversion to the input shape, and sample order.

CIFAR-10 and MNIST are tested on tiny files written here in the real formats (pickled batches in a
``cifar-10-python.tar.gz`` laid out like the official one, its extracted folder, a keras-style ``mnist.npz``,
raw and gzipped IDX files), so nothing is downloaded and the whole module runs in seconds.
"""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import io
import pickle
import struct
import tarfile

import numpy as np
import pytest

from twinbench import data
from twinbench.data import (
    DATASETS,
    IMAGE_DATASETS,
    Dataset,
    DatasetError,
    batch_indices,
    checksums,
    convert_channels,
    epoch_permutation,
    eval_batches,
    load_dataset,
    resize_bilinear,
)
from twinbench.data.transforms import interpolation_matrix
from twinbench.models.choices import UnknownChoiceError

CIFAR_PER_BATCH = 10  # images per tiny CIFAR batch: 50 train, 10 test
CIFAR_BATCHES = ("data_batch_1", "data_batch_2", "data_batch_3", "data_batch_4", "data_batch_5", "test_batch")


@pytest.fixture(autouse=True)
def _no_data_dir_env(monkeypatch):
    """Tests start without TWINBENCH_DATA_DIR, whatever the shell that runs them has set."""
    monkeypatch.delenv(data.DATA_DIR_ENV, raising=False)


def assert_one_line_error(excinfo, *fragments: str) -> None:
    """The error message is one line and contains every fragment."""
    message = str(excinfo.value)
    assert "\n" not in message, message
    for fragment in fragments:
        assert fragment in message, f"{fragment!r} not in {message!r}"


# --- tiny CIFAR-10 files, in the official layout ------------------------------------------------------------


def make_cifar_images(seed: int = 0) -> dict[str, tuple[np.ndarray, list[int]]]:
    """For each batch: HWC uint8 images (32, 32, 3) and labels.

    The very first image encodes its coordinates, so a CHW/HWC mix-up shows: red = row, green = column,
    blue = 200. The others are random.
    """
    rng = np.random.default_rng(seed)
    batches = {}
    for name in CIFAR_BATCHES:
        images = rng.integers(0, 256, size=(CIFAR_PER_BATCH, 32, 32, 3), dtype=np.uint8)
        labels = rng.integers(0, 10, size=CIFAR_PER_BATCH).tolist()
        batches[name] = (images, labels)
    first = batches["data_batch_1"][0][0]
    first[..., 0] = np.arange(32)[:, None]
    first[..., 1] = np.arange(32)[None, :]
    first[..., 2] = 200
    return batches


def cifar_pickle(name: str, images: np.ndarray, labels: list[int]) -> bytes:
    """One batch pickled as the official files are: rows of 1,024 R, then G, then B values (channels first)."""
    rows = images.transpose(0, 3, 1, 2).reshape(len(images), 3 * 32 * 32)
    batch = {
        b"batch_label": f"{name} (tiny test copy)".encode(),
        b"labels": labels,
        b"data": np.ascontiguousarray(rows),
        b"filenames": [f"image_{i}.png".encode() for i in range(len(images))],
    }
    return pickle.dumps(batch, protocol=2)


def cifar_members(batches) -> dict[str, bytes]:
    """Member name -> bytes of a ``cifar-10-batches-py`` folder (with the non-batch files it also holds)."""
    members = {f"cifar-10-batches-py/{name}": cifar_pickle(name, *batch) for name, batch in batches.items()}
    members["cifar-10-batches-py/batches.meta"] = pickle.dumps(
        {b"label_names": [b"airplane"] * 10}, protocol=2
    )
    members["cifar-10-batches-py/readme.html"] = b"<html>tiny</html>"
    return members


def write_cifar_tar(directory, batches) -> object:
    path = directory / "cifar-10-python.tar.gz"
    with tarfile.open(path, "w:gz") as tar:
        folder = tarfile.TarInfo("cifar-10-batches-py")
        folder.type = tarfile.DIRTYPE
        tar.addfile(folder)
        for name, payload in cifar_members(batches).items():
            info = tarfile.TarInfo(name)
            info.size = len(payload)
            tar.addfile(info, io.BytesIO(payload))
    return path


def write_cifar_folder(directory, batches) -> object:
    for name, payload in cifar_members(batches).items():
        (directory / name).parent.mkdir(exist_ok=True)
        (directory / name).write_bytes(payload)
    return directory / "cifar-10-batches-py"


@pytest.fixture
def cifar_batches():
    return make_cifar_images()


def expected_cifar(batches):
    """The arrays ``load_dataset("cifar10", input_shape=(32, 32, 3))`` must return."""
    train = [batches[name] for name in CIFAR_BATCHES[:5]]
    x_train = np.concatenate([images for images, _ in train]).astype(np.float32) / np.float32(255)
    y_train = np.concatenate([labels for _, labels in train]).astype(np.int64)
    images, labels = batches["test_batch"]
    return x_train, y_train, images.astype(np.float32) / np.float32(255), np.asarray(labels, dtype=np.int64)


# --- tiny MNIST files ----------------------------------------------------------------------------------------


@pytest.fixture
def mnist_arrays():
    rng = np.random.default_rng(1)
    return {
        "x_train": rng.integers(0, 256, size=(12, 28, 28), dtype=np.uint8),
        "y_train": rng.integers(0, 10, size=12, dtype=np.uint8),
        "x_test": rng.integers(0, 256, size=(5, 28, 28), dtype=np.uint8),
        "y_test": rng.integers(0, 10, size=5, dtype=np.uint8),
    }


IDX_NAMES = {
    "x_train": "train-images-idx3-ubyte",
    "y_train": "train-labels-idx1-ubyte",
    "x_test": "t10k-images-idx3-ubyte",
    "y_test": "t10k-labels-idx1-ubyte",
}


def idx_bytes(array: np.ndarray) -> bytes:
    """An IDX file: magic (0x0000 08 ndim), one big-endian uint32 per dimension, then the uint8 values."""
    magic = 0x0800 | array.ndim  # 2051 for images, 2049 for labels
    return struct.pack(f">I{array.ndim}I", magic, *array.shape) + array.astype(np.uint8).tobytes()


def write_idx_files(directory, arrays, *, gzipped: bool) -> None:
    for split, name in IDX_NAMES.items():
        payload = idx_bytes(arrays[split])
        if gzipped:
            (directory / f"{name}.gz").write_bytes(gzip.compress(payload))
        else:
            (directory / name).write_bytes(payload)


def assert_mnist_matches(ds: Dataset, arrays) -> None:
    assert ds.x_train.shape == (12, 28, 28, 1) and ds.x_test.shape == (5, 28, 28, 1)
    np.testing.assert_array_equal(ds.x_train[..., 0], arrays["x_train"].astype(np.float32) / np.float32(255))
    np.testing.assert_array_equal(ds.x_test[..., 0], arrays["x_test"].astype(np.float32) / np.float32(255))
    np.testing.assert_array_equal(ds.y_train, arrays["y_train"].astype(np.int64))
    np.testing.assert_array_equal(ds.y_test, arrays["y_test"].astype(np.int64))


def assert_well_formed(ds: Dataset, input_shape, num_classes: int = 10) -> None:
    """The contract of every Dataset: float32 NHWC in [0, 1], C-contiguous, int64 labels in range."""
    for x, y in ((ds.x_train, ds.y_train), (ds.x_test, ds.y_test)):
        assert x.shape[1:] == tuple(input_shape)
        assert x.dtype == np.float32 and x.flags.c_contiguous
        assert 0.0 <= x.min() and x.max() <= 1.0
        assert y.dtype == np.int64 and y.shape == (len(x),)
        assert 0 <= y.min() and y.max() < num_classes
    assert ds.num_classes == num_classes


# --- the public surface --------------------------------------------------------------------------------------


def test_dataset_names():
    assert DATASETS[:4] == IMAGE_DATASETS == ("digits", "synthetic", "cifar10", "mnist")


def test_unknown_dataset_lists_the_valid_choices():
    with pytest.raises(UnknownChoiceError) as excinfo:
        load_dataset("imagenet", input_shape=(32, 32, 3))
    assert isinstance(excinfo.value, ValueError)
    assert_one_line_error(
        excinfo, "Unknown dataset 'imagenet'", "Valid choices: digits, synthetic, cifar10, mnist, reverse,"
    )


@pytest.mark.parametrize("input_shape", [(28, 28), (0, 28, 1), (28, 28, 1.5)])
def test_malformed_input_shape(input_shape):
    with pytest.raises(ValueError, match="input_shape"):
        load_dataset("synthetic", input_shape=input_shape)


def test_dataset_is_frozen():
    ds = load_dataset("synthetic", input_shape=(4, 4, 1), synthetic_train=2, synthetic_test=1)
    with pytest.raises(dataclasses.FrozenInstanceError):
        ds.num_classes = 3
    assert "synthetic" in repr(ds) and "(2, 4, 4, 1)" in repr(ds)


# --- digits --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("input_shape", [(28, 28, 1), (32, 32, 3), (8, 8, 1)])
def test_digits_shapes(input_shape):
    ds = load_dataset("digits", input_shape=input_shape)
    assert ds.name == "digits"
    assert len(ds.x_train) == 1437 and len(ds.x_test) == 360
    assert_well_formed(ds, input_shape)


def test_digits_native_size_is_the_raw_data():
    from sklearn.datasets import load_digits

    ds = load_dataset("digits", input_shape=(8, 8, 1))
    assert ds.meta["resize"] == "none" and ds.meta["original_shape"] == (8, 8, 1)
    raw = load_digits()
    # Every image of the split is one of the raw images /16, with its label.
    lookup = {
        image.tobytes(): label
        for image, label in zip((raw.images / 16).astype(np.float32), raw.target, strict=True)
    }
    for image, label in zip(ds.x_test[..., 0], ds.y_test, strict=True):
        assert lookup[image.tobytes()] == label


def test_digits_split_is_fixed_whatever_the_seed():
    a = load_dataset("digits", input_shape=(28, 28, 1), seed=0)
    b = load_dataset("digits", input_shape=(28, 28, 1), seed=123)
    for name in ("x_train", "y_train", "x_test", "y_test"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))


def test_digits_split_is_stratified():
    ds = load_dataset("digits", input_shape=(8, 8, 1))
    train, test = np.bincount(ds.y_train, minlength=10), np.bincount(ds.y_test, minlength=10)
    # Each class keeps its share: 20% of its images (to one image) go to the test set.
    assert np.all(np.abs(test - 0.2 * (train + test)) <= 1)
    assert train.min() / train.max() > 0.9 and test.min() / test.max() > 0.9


def test_digits_rejects_other_class_counts():
    with pytest.raises(DatasetError) as excinfo:
        load_dataset("digits", input_shape=(28, 28, 1), num_classes=100)
    assert_one_line_error(excinfo, "'digits' has 10 classes", "num_classes=100")
    assert load_dataset("digits", input_shape=(8, 8, 1), num_classes=10).num_classes == 10


# --- synthetic -----------------------------------------------------------------------------------------------


def test_synthetic_defaults():
    ds = load_dataset("synthetic", input_shape=(16, 16, 3))
    assert ds.x_train.shape == (2048, 16, 16, 3) and ds.x_test.shape == (512, 16, 16, 3)
    assert_well_formed(ds, (16, 16, 3))
    assert ds.x_train.max() < 1.0


def test_synthetic_sizes_classes_and_seed():
    kwargs = dict(input_shape=(5, 7, 2), num_classes=3, synthetic_train=30, synthetic_test=4)
    a = load_dataset("synthetic", seed=1, **kwargs)
    b = load_dataset("synthetic", seed=1, **kwargs)
    c = load_dataset("synthetic", seed=2, **kwargs)
    assert a.x_train.shape == (30, 5, 7, 2) and a.x_test.shape == (4, 5, 7, 2)
    assert_well_formed(a, (5, 7, 2), num_classes=3)
    np.testing.assert_array_equal(a.x_train, b.x_train)
    np.testing.assert_array_equal(a.y_test, b.y_test)
    assert not np.array_equal(a.x_train, c.x_train)


@pytest.mark.parametrize("size", [0, -1, 2.5])
def test_synthetic_rejects_bad_sizes(size):
    with pytest.raises(ValueError, match="synthetic_train"):
        load_dataset("synthetic", input_shape=(4, 4, 1), synthetic_train=size)


# --- resize and channels -------------------------------------------------------------------------------------


def test_interpolation_matrix_rows_sum_to_one():
    for in_size, out_size in [(8, 28), (32, 28), (28, 32), (5, 5), (1, 4), (7, 3)]:
        matrix = interpolation_matrix(in_size, out_size)
        assert matrix.shape == (out_size, in_size)
        np.testing.assert_allclose(matrix.sum(axis=1), 1.0, rtol=0, atol=1e-12)


def test_resize_known_values():
    """Half-pixel centres, like torch ``align_corners=False``: [0, 1] doubled is [0, .25, .75, 1]."""
    x = np.array([0.0, 1.0], dtype=np.float32).reshape(1, 1, 2, 1)
    np.testing.assert_allclose(resize_bilinear(x, 1, 4)[0, 0, :, 0], [0.0, 0.25, 0.75, 1.0], atol=1e-7)


def test_resize_constant_stays_constant():
    x = np.full((2, 8, 8, 3), 0.375, dtype=np.float32)
    for height, width in [(28, 28), (32, 20), (5, 3)]:
        y = resize_bilinear(x, height, width)
        assert y.shape == (2, height, width, 3) and y.dtype == np.float32
        np.testing.assert_allclose(y, 0.375, rtol=0, atol=1e-6)


def test_resize_to_same_size_is_identity():
    x = np.random.default_rng(0).random((3, 8, 8, 1), dtype=np.float32)
    np.testing.assert_array_equal(resize_bilinear(x, 8, 8), x)
    np.testing.assert_array_equal(interpolation_matrix(8, 8), np.eye(8))


def test_resize_keeps_a_ramp_monotonic():
    ramp = np.linspace(0, 1, 8, dtype=np.float32)
    x = np.broadcast_to(ramp[None, None, :, None], (1, 8, 8, 1)).copy()
    for width in (28, 5):
        y = resize_bilinear(x, 8, width)[0, :, :, 0]
        # Increasing left to right, except that clamping at the edges may repeat the first and last value.
        assert np.all(np.diff(y, axis=1) >= 0) and np.all(np.diff(y[:, 2:-2], axis=1) > 0)
        np.testing.assert_allclose(y, np.broadcast_to(y[:1], y.shape), atol=1e-7)  # all rows stay equal
    upsampled = resize_bilinear(x, 8, 28)[0, :, :, 0]
    np.testing.assert_allclose(upsampled[:, [0, -1]], np.tile([0.0, 1.0], (8, 1)), atol=1e-6)  # ends kept


@pytest.mark.parametrize("framework", ["torch", "tensorflow"])
def test_resize_matches_the_frameworks(framework):
    """Our NumPy resize is the frameworks' bilinear resize (half-pixel centres, no antialias), to float rounding."""
    pytest.importorskip(framework)
    x = np.random.default_rng(0).random((2, 8, 8, 3), dtype=np.float32)
    for height, width in [(28, 28), (32, 20), (5, 3)]:
        if framework == "torch":
            import torch

            nchw = torch.from_numpy(x).permute(0, 3, 1, 2)
            resized = torch.nn.functional.interpolate(
                nchw, size=(height, width), mode="bilinear", align_corners=False
            )
            reference = resized.permute(0, 2, 3, 1).numpy()
        else:
            import tensorflow as tf

            reference = tf.image.resize(x, (height, width), method="bilinear", antialias=False).numpy()
        np.testing.assert_allclose(resize_bilinear(x, height, width), reference, rtol=0, atol=1e-5)


def test_channels_repeat_and_luma():
    grey = np.random.default_rng(0).random((2, 4, 4, 1), dtype=np.float32)
    rgb = convert_channels(grey, 3)
    assert rgb.shape == (2, 4, 4, 3)
    for c in range(3):
        np.testing.assert_array_equal(rgb[..., c], grey[..., 0])

    primaries = np.eye(3, dtype=np.float32).reshape(1, 1, 3, 3)  # one red, one green, one blue pixel
    np.testing.assert_allclose(convert_channels(primaries, 1)[0, 0, :, 0], [0.299, 0.587, 0.114], rtol=1e-6)


@pytest.mark.parametrize(("have", "want"), [(2, 1), (3, 4), (4, 3), (3, 2)])
def test_channels_unsupported(have, want):
    with pytest.raises(DatasetError) as excinfo:
        convert_channels(np.zeros((1, 2, 2, have), dtype=np.float32), want)
    assert_one_line_error(excinfo, f"{have} channels to {want}")


# --- CIFAR-10 ------------------------------------------------------------------------------------------------


def test_cifar10_from_archive_exact_pixels(tmp_path, cifar_batches):
    archive = write_cifar_tar(tmp_path, cifar_batches)
    ds = load_dataset("cifar10", input_shape=(32, 32, 3), data_dir=tmp_path)
    assert_well_formed(ds, (32, 32, 3))
    assert ds.x_train.shape == (50, 32, 32, 3) and ds.x_test.shape == (10, 32, 32, 3)
    x_train, y_train, x_test, y_test = expected_cifar(cifar_batches)
    np.testing.assert_array_equal(ds.x_train, x_train)
    np.testing.assert_array_equal(ds.y_train, y_train)
    np.testing.assert_array_equal(ds.x_test, x_test)
    np.testing.assert_array_equal(ds.y_test, y_test)
    # CHW -> HWC: red is the row, green the column, blue constant.
    first = ds.x_train[0] * 255
    np.testing.assert_array_equal(first[5, 9], [5, 9, 200])
    np.testing.assert_array_equal(first[31, 0], [31, 0, 200])
    assert ds.meta["source"] == str(archive)
    assert ds.meta["checksum"].startswith("not verified (size differs")


def test_cifar10_from_extracted_folder_matches_archive(tmp_path, cifar_batches):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    write_cifar_tar(tmp_path / "a", cifar_batches)
    folder = write_cifar_folder(tmp_path / "b", cifar_batches)
    from_tar = load_dataset("cifar10", input_shape=(32, 32, 3), data_dir=tmp_path / "a")
    from_dir = load_dataset("cifar10", input_shape=(32, 32, 3), data_dir=tmp_path / "b")
    assert from_dir.meta["source"] == str(folder)
    for name in ("x_train", "y_train", "x_test", "y_test"):
        np.testing.assert_array_equal(getattr(from_tar, name), getattr(from_dir, name))


def test_cifar10_converted_to_mnist_shape(tmp_path, cifar_batches):
    write_cifar_folder(tmp_path, cifar_batches)
    ds = load_dataset("cifar10", input_shape=(28, 28, 1), data_dir=tmp_path)
    assert_well_formed(ds, (28, 28, 1))
    assert ds.meta["channels"] == "BT.601 luma 3 -> 1" and ds.meta["resize"].startswith(
        "bilinear 32x32 -> 28x28"
    )


def test_cifar10_impossible_channel_conversion(tmp_path, cifar_batches):
    write_cifar_folder(tmp_path, cifar_batches)
    with pytest.raises(DatasetError) as excinfo:
        load_dataset("cifar10", input_shape=(32, 32, 2), data_dir=tmp_path)
    assert_one_line_error(excinfo, "dataset 'cifar10' with 3 channels to 2")


def test_cifar10_without_a_data_dir():
    with pytest.raises(DatasetError) as excinfo:
        load_dataset("cifar10", input_shape=(32, 32, 3))
    assert_one_line_error(
        excinfo,
        "cifar-10-python.tar.gz",
        "cifar-10-batches-py/{data_batch_1..5,test_batch}",
        "--data-dir DIR",
        "TWINBENCH_DATA_DIR",
    )


def test_cifar10_missing_directory(tmp_path):
    missing = tmp_path / "nowhere"
    with pytest.raises(DatasetError) as excinfo:
        load_dataset("cifar10", input_shape=(32, 32, 3), data_dir=missing)
    assert_one_line_error(excinfo, str(missing), "does not exist", "cifar-10-python.tar.gz")


def test_cifar10_missing_files(tmp_path):
    with pytest.raises(DatasetError) as excinfo:
        load_dataset("cifar10", input_shape=(32, 32, 3), data_dir=tmp_path)
    assert_one_line_error(
        excinfo, str(tmp_path), "cifar-10-python.tar.gz", "cifar-10-batches-py/", "--data-dir DIR"
    )


def test_cifar10_incomplete_folder(tmp_path, cifar_batches):
    folder = write_cifar_folder(tmp_path, cifar_batches)
    (folder / "data_batch_3").unlink()
    with pytest.raises(DatasetError) as excinfo:
        load_dataset("cifar10", input_shape=(32, 32, 3), data_dir=tmp_path)
    assert_one_line_error(excinfo, str(folder), "data_batch_3")


def test_cifar10_truncated_archive(tmp_path, cifar_batches):
    archive = write_cifar_tar(tmp_path, cifar_batches)
    archive.write_bytes(archive.read_bytes()[: archive.stat().st_size // 2])
    with pytest.raises(DatasetError) as excinfo:
        load_dataset("cifar10", input_shape=(32, 32, 3), data_dir=tmp_path)
    assert_one_line_error(excinfo, str(archive), "truncated or corrupt")


def test_cifar10_archive_that_is_not_a_tar(tmp_path):
    archive = tmp_path / "cifar-10-python.tar.gz"
    archive.write_bytes(b"<html>404 Not Found</html>")
    with pytest.raises(DatasetError) as excinfo:
        load_dataset("cifar10", input_shape=(32, 32, 3), data_dir=tmp_path)
    assert_one_line_error(excinfo, str(archive))


def test_cifar10_archive_missing_a_batch(tmp_path, cifar_batches):
    del cifar_batches["test_batch"]
    archive = write_cifar_tar(tmp_path, cifar_batches)
    with pytest.raises(DatasetError) as excinfo:
        load_dataset("cifar10", input_shape=(32, 32, 3), data_dir=tmp_path)
    assert_one_line_error(excinfo, str(archive), "cifar-10-batches-py/test_batch")


def python2_cifar_pickle(rows: np.ndarray, labels: list[int]) -> bytes:
    """A batch pickled the way the official files were: by Python 2's cPickle (protocol 2) with NumPy 1.

    Python 3 cannot write this (its ``str`` is not Python 2's), so the opcodes are spelled out: ``U``/``T`` are
    Python 2 byte strings, ``c`` imports a global, ``R`` calls it, ``b`` sets an object's state.
    """

    def string(b: bytes) -> bytes:
        return b"U" + bytes([len(b)]) + b if len(b) < 256 else b"T" + struct.pack("<I", len(b)) + b

    def integer(i: int) -> bytes:
        return b"K" + bytes([i]) if 0 <= i < 256 else b"J" + struct.pack("<i", i)

    # fmt: off
    uint8 = b"".join([
        b"cnumpy\ndtype\n", string(b"u1"), integer(0), integer(1), b"\x87R",  # dtype("u1", 0, 1)
        b"(", integer(3), string(b"|"), b"NNN", integer(-1), integer(-1), integer(0), b"tb",  # its state
    ])
    array = b"".join([
        b"cnumpy.core.multiarray\n_reconstruct\n", b"cnumpy\nndarray\n",  # _reconstruct(ndarray, (0,), b"b")
        integer(0), b"\x85", string(b"b"), b"\x87R",
        b"(", integer(1),  # state: (1, shape, dtype, False, raw bytes)
        b"M", struct.pack("<H", rows.shape[0]), b"M", struct.pack("<H", rows.shape[1]), b"\x86",
        uint8, b"\x89", string(rows.tobytes()), b"tb",
    ])
    return b"".join([
        b"\x80\x02}(",  # protocol 2, a dict, and the mark of its items
        string(b"batch_label"), string(b"training batch 1 of 5"),
        string(b"data"), array,
        string(b"labels"), b"](", *[integer(label) for label in labels], b"e",
        b"u.",  # set the items, stop
    ])
    # fmt: on


def test_cifar10_reads_python2_pickles(tmp_path, cifar_batches):
    folder = write_cifar_folder(tmp_path, cifar_batches)
    images, labels = cifar_batches["data_batch_1"]
    rows = images.transpose(0, 3, 1, 2).reshape(len(images), -1)
    (folder / "data_batch_1").write_bytes(python2_cifar_pickle(np.ascontiguousarray(rows), labels))
    ds = load_dataset("cifar10", input_shape=(32, 32, 3), data_dir=tmp_path)
    x_train, y_train, _, _ = expected_cifar(cifar_batches)
    np.testing.assert_array_equal(ds.x_train, x_train)
    np.testing.assert_array_equal(ds.y_train, y_train)


def test_cifar10_corrupt_batch(tmp_path, cifar_batches):
    folder = write_cifar_folder(tmp_path, cifar_batches)
    batch = folder / "data_batch_2"
    batch.write_bytes(batch.read_bytes()[:1000])
    with pytest.raises(DatasetError) as excinfo:
        load_dataset("cifar10", input_shape=(32, 32, 3), data_dir=tmp_path)
    assert_one_line_error(excinfo, str(batch), "truncated or corrupt")


def test_cifar10_pickle_cannot_run_code(tmp_path, cifar_batches):
    folder = write_cifar_folder(tmp_path, cifar_batches)

    class Evil:
        def __reduce__(self):
            return (print, ("this must never run",))

    (folder / "test_batch").write_bytes(pickle.dumps({b"data": Evil(), b"labels": []}))
    with pytest.raises(DatasetError) as excinfo:
        load_dataset("cifar10", input_shape=(32, 32, 3), data_dir=tmp_path)
    assert_one_line_error(excinfo, "test_batch", "builtins.print")


def test_cifar10_rejects_other_class_counts(tmp_path, cifar_batches):
    write_cifar_folder(tmp_path, cifar_batches)
    with pytest.raises(DatasetError, match="'cifar10' has 10 classes"):
        load_dataset("cifar10", input_shape=(32, 32, 3), num_classes=100, data_dir=tmp_path)


# --- checksums -----------------------------------------------------------------------------------------------


def test_checksum_mismatch_of_an_official_size_file(tmp_path, cifar_batches, monkeypatch):
    archive = write_cifar_tar(tmp_path, cifar_batches)
    actual = hashlib.md5(archive.read_bytes()).hexdigest()
    size = archive.stat().st_size
    monkeypatch.setitem(checksums.OFFICIAL_FILES, archive.name, checksums.OfficialFile(size, "md5", "0" * 32))
    with pytest.raises(DatasetError) as excinfo:
        load_dataset("cifar10", input_shape=(32, 32, 3), data_dir=tmp_path)
    assert_one_line_error(
        excinfo,
        f"checksum mismatch for {archive}",
        f"expected md5 {'0' * 32}",
        f"got {actual}",
        "corrupt or not the official one",
    )
    # Opting out loads it anyway.
    ds = load_dataset("cifar10", input_shape=(32, 32, 3), data_dir=tmp_path, verify_checksums=False)
    assert ds.meta["checksum"] == "not verified (verify_checksums=False)"


def test_checksum_match_is_recorded(tmp_path, mnist_arrays, monkeypatch):
    npz = tmp_path / "mnist.npz"
    np.savez(npz, **mnist_arrays)
    digest = hashlib.sha256(npz.read_bytes()).hexdigest()
    monkeypatch.setitem(
        checksums.OFFICIAL_FILES, "mnist.npz", checksums.OfficialFile(npz.stat().st_size, "sha256", digest)
    )
    ds = load_dataset("mnist", input_shape=(28, 28, 1), data_dir=tmp_path)
    assert ds.meta["checksum"] == "sha256 verified"


def test_official_table_names_every_archive():
    assert checksums.OFFICIAL_FILES["cifar-10-python.tar.gz"].digest == "c58f30108f718f92721af3b95e74349a"
    assert checksums.OFFICIAL_FILES["mnist.npz"].algorithm == "sha256"
    for name in IDX_NAMES.values():
        assert checksums.OFFICIAL_FILES[f"{name}.gz"].algorithm == "md5"


# --- MNIST ---------------------------------------------------------------------------------------------------


def test_mnist_from_npz(tmp_path, mnist_arrays):
    np.savez_compressed(tmp_path / "mnist.npz", **mnist_arrays)
    ds = load_dataset("mnist", input_shape=(28, 28, 1), data_dir=tmp_path)
    assert_well_formed(ds, (28, 28, 1))
    assert_mnist_matches(ds, mnist_arrays)
    assert ds.meta["source"] == str(tmp_path / "mnist.npz")


@pytest.mark.parametrize("gzipped", [False, True], ids=["raw", "gz"])
def test_mnist_from_idx_files(tmp_path, mnist_arrays, gzipped):
    write_idx_files(tmp_path, mnist_arrays, gzipped=gzipped)
    ds = load_dataset("mnist", input_shape=(28, 28, 1), data_dir=tmp_path)
    assert_mnist_matches(ds, mnist_arrays)


def test_mnist_resized_for_a_cifar_model(tmp_path, mnist_arrays):
    np.savez(tmp_path / "mnist.npz", **mnist_arrays)
    ds = load_dataset("mnist", input_shape=(32, 32, 3), data_dir=tmp_path)
    assert_well_formed(ds, (32, 32, 3))
    np.testing.assert_array_equal(ds.x_train[..., 0], ds.x_train[..., 2])


def test_mnist_missing_files(tmp_path, mnist_arrays):
    write_idx_files(tmp_path, mnist_arrays, gzipped=True)
    (tmp_path / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(DatasetError) as excinfo:
        load_dataset("mnist", input_shape=(28, 28, 1), data_dir=tmp_path)
    assert_one_line_error(excinfo, "mnist.npz", "t10k-labels-idx1-ubyte[.gz] is missing", str(tmp_path))


@pytest.mark.parametrize("damage", ["garbage", "truncated"])
def test_mnist_corrupt_npz(tmp_path, mnist_arrays, damage):
    npz = tmp_path / "mnist.npz"
    np.savez(npz, **mnist_arrays)
    if damage == "garbage":
        npz.write_bytes(b"this is not a zip file at all")
    else:
        npz.write_bytes(npz.read_bytes()[:3000])
    with pytest.raises(DatasetError) as excinfo:
        load_dataset("mnist", input_shape=(28, 28, 1), data_dir=tmp_path)
    assert_one_line_error(excinfo, str(npz), "corrupt")


def test_mnist_npz_missing_an_array(tmp_path, mnist_arrays):
    del mnist_arrays["y_test"]
    np.savez(tmp_path / "mnist.npz", **mnist_arrays)
    with pytest.raises(DatasetError) as excinfo:
        load_dataset("mnist", input_shape=(28, 28, 1), data_dir=tmp_path)
    assert_one_line_error(excinfo, "mnist.npz lacks the arrays y_test")


@pytest.mark.parametrize("gzipped", [False, True], ids=["raw", "gz"])
def test_mnist_bad_idx_magic(tmp_path, mnist_arrays, gzipped):
    write_idx_files(tmp_path, mnist_arrays, gzipped=False)
    # Labels where images belong: the header says 2049 instead of 2051.
    payload = idx_bytes(mnist_arrays["y_train"])
    bad = tmp_path / "train-images-idx3-ubyte"
    if gzipped:
        bad.unlink()
        bad = bad.with_name(bad.name + ".gz")
        payload = gzip.compress(payload)
    bad.write_bytes(payload)
    with pytest.raises(DatasetError) as excinfo:
        load_dataset("mnist", input_shape=(28, 28, 1), data_dir=tmp_path)
    assert_one_line_error(excinfo, str(bad), "bad IDX magic number 2049 (expected 2051")


def test_mnist_truncated_idx(tmp_path, mnist_arrays):
    write_idx_files(tmp_path, mnist_arrays, gzipped=False)
    bad = tmp_path / "t10k-images-idx3-ubyte"
    bad.write_bytes(bad.read_bytes()[:-7])
    with pytest.raises(DatasetError) as excinfo:
        load_dataset("mnist", input_shape=(28, 28, 1), data_dir=tmp_path)
    assert_one_line_error(excinfo, str(bad), "(5, 28, 28)", "truncated")


def test_mnist_truncated_gzip(tmp_path, mnist_arrays):
    write_idx_files(tmp_path, mnist_arrays, gzipped=True)
    bad = tmp_path / "train-labels-idx1-ubyte.gz"
    bad.write_bytes(bad.read_bytes()[:-10])
    with pytest.raises(DatasetError) as excinfo:
        load_dataset("mnist", input_shape=(28, 28, 1), data_dir=tmp_path)
    assert_one_line_error(excinfo, str(bad), "gzip")


def test_mnist_label_count_mismatch(tmp_path, mnist_arrays):
    mnist_arrays["y_test"] = mnist_arrays["y_test"][:4]
    write_idx_files(tmp_path, mnist_arrays, gzipped=False)
    with pytest.raises(DatasetError, match="5 images but .* 4 labels"):
        load_dataset("mnist", input_shape=(28, 28, 1), data_dir=tmp_path)


def test_mnist_labels_out_of_range(tmp_path, mnist_arrays):
    mnist_arrays["y_train"][3] = 10
    np.savez(tmp_path / "mnist.npz", **mnist_arrays)
    with pytest.raises(DatasetError, match=r"labels must lie in 0\.\.9"):
        load_dataset("mnist", input_shape=(28, 28, 1), data_dir=tmp_path)


# --- where the data directory comes from ---------------------------------------------------------------------


def test_environment_variable_is_honoured(tmp_path, mnist_arrays, monkeypatch):
    np.savez(tmp_path / "mnist.npz", **mnist_arrays)
    monkeypatch.setenv("TWINBENCH_DATA_DIR", str(tmp_path))
    assert_mnist_matches(load_dataset("mnist", input_shape=(28, 28, 1)), mnist_arrays)


def test_data_dir_wins_over_environment_variable(tmp_path, mnist_arrays, monkeypatch):
    (tmp_path / "here").mkdir()
    np.savez(tmp_path / "here" / "mnist.npz", **mnist_arrays)
    monkeypatch.setenv("TWINBENCH_DATA_DIR", str(tmp_path / "elsewhere"))
    assert_mnist_matches(
        load_dataset("mnist", input_shape=(28, 28, 1), data_dir=tmp_path / "here"), mnist_arrays
    )


def test_environment_variable_pointing_nowhere(tmp_path, monkeypatch):
    monkeypatch.setenv("TWINBENCH_DATA_DIR", str(tmp_path / "nowhere"))
    with pytest.raises(DatasetError) as excinfo:
        load_dataset("mnist", input_shape=(28, 28, 1))
    assert_one_line_error(excinfo, str(tmp_path / "nowhere"), "from TWINBENCH_DATA_DIR", "does not exist")


# --- sample order --------------------------------------------------------------------------------------------


def test_epoch_permutation_is_the_documented_one():
    perm = epoch_permutation(100, epoch=3, seed=7)
    assert perm.dtype == np.int64
    np.testing.assert_array_equal(perm, np.random.default_rng([7, 3]).permutation(100))
    np.testing.assert_array_equal(perm, epoch_permutation(100, epoch=3, seed=7))
    np.testing.assert_array_equal(np.sort(perm), np.arange(100))


def test_epoch_permutation_changes_with_epoch_and_seed():
    base = epoch_permutation(1000, epoch=0, seed=0)
    assert not np.array_equal(base, epoch_permutation(1000, epoch=1, seed=0))
    assert not np.array_equal(base, epoch_permutation(1000, epoch=0, seed=1))


@pytest.mark.parametrize(("n", "batch_size"), [(10, 3), (10, 5), (10, 10), (10, 64), (1, 1), (1437, 128)])
def test_batch_indices_cover_every_sample_once(n, batch_size):
    batches = batch_indices(n, batch_size, epoch=2, seed=5)
    sizes = [len(b) for b in batches]
    assert len(batches) == -(-n // batch_size)
    assert all(size == batch_size for size in sizes[:-1]) and 1 <= sizes[-1] <= batch_size
    assert sizes[-1] == (n % batch_size or batch_size)
    everything = np.concatenate(batches)
    np.testing.assert_array_equal(everything, epoch_permutation(n, epoch=2, seed=5))
    np.testing.assert_array_equal(np.sort(everything), np.arange(n))


def test_eval_batches_are_in_order():
    batches = eval_batches(10, 4)
    assert [b.tolist() for b in batches] == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]
    assert all(b.dtype == np.int64 for b in batches)


@pytest.mark.parametrize(
    "call",
    [
        lambda: batch_indices(10, 0, epoch=0, seed=0),
        lambda: batch_indices(0, 4, epoch=0, seed=0),
        lambda: eval_batches(10, 0),
        lambda: eval_batches(0, 4),
        lambda: epoch_permutation(10, epoch=-1, seed=0),
        lambda: epoch_permutation(10, epoch=0, seed=-1),
        lambda: batch_indices(10, 2.5, epoch=0, seed=0),
    ],
)
def test_order_rejects_bad_arguments(call):
    with pytest.raises(ValueError) as excinfo:
        call()
    assert_one_line_error(excinfo, "must be an integer >=")
