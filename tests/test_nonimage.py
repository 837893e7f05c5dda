"""Tasks other than image classification: their data, loss and metrics (``twinbench.data.tasks``), and NCF's wrong twin.

The data tests write small files in the real formats (MovieLens ``ratings.dat`` / ``ratings.csv``, parallel text)
and need no framework. The loss tests check each framework's spelling of a task's loss against the float64 NumPy
reference; the wrong-twin test shows that NeuMF with its towers concatenated in the other order fails the twin check.
"""

from __future__ import annotations

import numpy as np
import pytest
from test_data import assert_one_line_error

from conftest import BACKEND, IMPLEMENTATIONS_HERE, impl_id, requires_backend
from twinbench import data
from twinbench.backends import get_runner
from twinbench.backends.base import TrainConfig
from twinbench.data import recommendation, seq2seq, tasks
from twinbench.data.base import DatasetError
from twinbench.data.tasks import get_task
from twinbench.models import UnknownChoiceError, get_model_spec


# --- tasks ----------------------------------------------------------------------------------------------------
def test_every_model_declares_a_task_and_a_default_dataset_of_its_kind():
    assert get_model_spec("ncf").task == "recommendation"
    assert get_model_spec("alexnet").task == "image_classification"
    for task in tasks.TASKS.values():
        assert tasks.task_of_dataset(task.default_dataset) is task
    assert data.DATASETS == tasks.all_datasets() and len(set(data.DATASETS)) == len(data.DATASETS)


def test_a_dataset_of_the_wrong_kind_is_a_one_line_error():
    with pytest.raises(UnknownChoiceError) as excinfo:
        tasks.check_dataset_for_task("digits", "recommendation", model="ncf")
    assert_one_line_error(excinfo, "'digits' is image_classification data", "model 'ncf' takes recommendation",
                          "Valid choices: implicit, movielens.")


def test_token_metrics_and_loss_ignore_padding():
    labels = np.array([[5, 2, 0, 0]])
    logits = np.zeros((1, 4, 8))
    logits[0, 0, 5] = logits[0, 1, 7] = logits[0, 2, 3] = 10.0  # right, wrong, and a PAD position
    got = tasks.metrics("seq2seq", logits, labels)
    assert got["token_accuracy"] == pytest.approx(0.5)
    assert got["loss_per_token"] == pytest.approx(tasks.reference_loss("seq2seq", logits, labels))
    changed = logits.copy()
    changed[0, 3] = np.random.default_rng(0).normal(size=8) * 100  # what the model says at PAD does not count
    assert tasks.reference_loss("seq2seq", changed, labels) == tasks.reference_loss("seq2seq", logits, labels)


def test_hit_ratio_counts_the_candidates_that_outrank_the_held_out_item():
    scores = np.zeros((2, 100))
    scores[0, 0] = 1.0  # first user: held-out item ranked first -> hit
    scores[1, 1:11] = 1.0  # second user: ten candidates outrank it -> miss
    labels = np.tile(np.r_[1.0, np.zeros(99)], 2).reshape(-1, 1)
    assert tasks.metrics("recommendation", scores.reshape(-1, 1), labels)["hr@10"] == 0.5


# --- recommendation data --------------------------------------------------------------------------------------
def test_implicit_default_has_leave_one_out_and_fresh_negatives_every_epoch():
    ds = data.load_dataset("implicit")
    users, items = ds.x_train
    assert ds.task == "recommendation" and ds.input_shape == (128, 256) and ds.y_train.shape == (len(users), 1)
    assert ds.y_train.mean() == pytest.approx(1 / (1 + recommendation.NEGATIVES))
    (users1, items1), y1 = ds.train_arrays(1)
    assert len(users1) == len(users) and not np.array_equal(items1, items)  # new negatives, same positives
    np.testing.assert_array_equal(ds.train_arrays(1)[0][1], items1)  # a function of (seed, epoch) only
    positives = set(zip(users[ds.y_train[:, 0] == 1], items[ds.y_train[:, 0] == 1], strict=True))
    negatives = set(zip(users1[y1[:, 0] == 0], items1[y1[:, 0] == 0], strict=True))
    held_out = set(zip(ds.x_test[0][:: recommendation.CANDIDATES], ds.x_test[1][:: recommendation.CANDIDATES],
                       strict=True))
    assert not positives & negatives and not held_out & negatives and not held_out & positives


def _write_ml1m(directory, rows):
    (directory / "ml-1m").mkdir()
    (directory / "ml-1m" / "ratings.dat").write_text("".join(f"{u}::{i}::{r}::{t}\n" for u, i, r, t in rows),
                                                     encoding="latin-1")


def _ratings(users=3, per_user=5):
    """Rows (user, movie, rating, timestamp) with MovieLens' sparse ids: a few users with 5 ratings, and two who
    share 200 movies between them (so every user has 99 movies left to be test negatives)."""
    rows = [(u * 7 + 1, 1000 + ((u * 13 + k * 31) % 200), 4, 978300000 + u * 100 + k)
            for u in range(users) for k in range(per_user)]
    return rows + [(98 + m % 2, 1000 + m, 1, 970000000 + m) for m in range(200)]


def test_movielens_ml1m_file_leave_one_out_by_timestamp(tmp_path):
    rows = _ratings()
    _write_ml1m(tmp_path, rows)
    ds = data.load_dataset("movielens", data_dir=tmp_path)
    num_users, num_items = ds.input_shape
    assert num_users == 5 and num_items == len({r[1] for r in rows})
    assert ds.meta["ratings"] == len(rows)
    assert data.tasks.num_samples(ds.x_test) == num_users * recommendation.CANDIDATES
    # user 0 (MovieLens id 1): its latest rating is held out
    latest = max((r for r in rows if r[0] == 1), key=lambda r: r[3])[1]
    item_ids = sorted({r[1] for r in rows})
    assert ds.x_test[1][0] == item_ids.index(latest)


def test_movielens_latest_small_csv(tmp_path):
    (tmp_path / "ml-latest-small").mkdir()
    rows = _ratings()
    (tmp_path / "ml-latest-small" / "ratings.csv").write_text(
        "userId,movieId,rating,timestamp\n" + "".join(f"{u},{i},{r}.5,{t}\n" for u, i, r, t in rows))
    assert data.load_dataset("movielens", data_dir=tmp_path).input_shape == (5, 200)


def test_movielens_errors_are_one_line(tmp_path):
    with pytest.raises(DatasetError) as excinfo:
        data.load_dataset("movielens", data_dir=tmp_path)
    assert_one_line_error(excinfo, "ml-1m/ratings.dat or ml-latest-small/ratings.csv", str(tmp_path))
    _write_ml1m(tmp_path, _ratings())
    with open(tmp_path / "ml-1m" / "ratings.dat", "a", encoding="latin-1") as f:
        f.write("1::2::3\n")
    with pytest.raises(DatasetError) as excinfo:
        data.load_dataset("movielens", data_dir=tmp_path)
    assert_one_line_error(excinfo, "ratings.dat, line", "expected 4 fields")


# --- seq2seq data ---------------------------------------------------------------------------------------------
def test_reverse_is_fixed_and_teacher_forced():
    ds = data.load_dataset("reverse", seed=5)
    (source, decoder_input), labels = ds.x_train, ds.y_train
    np.testing.assert_array_equal(source, data.load_dataset("reverse", seed=0).x_train[0])  # a fixed split
    row = source[0][source[0] != tasks.PAD]
    np.testing.assert_array_equal(labels[0][: len(row)], row[::-1])
    assert labels[0][len(row)] == tasks.EOS and decoder_input[0][0] == tasks.BOS
    np.testing.assert_array_equal(decoder_input[0][1: len(row) + 1], labels[0][: len(row)])


def _write_parallel(directory, source, target):
    (directory / "source.txt").write_text("\n".join(source) + "\n", encoding="utf-8")
    (directory / "target.txt").write_text("\n".join(target) + "\n", encoding="utf-8")


def test_parallel_text_reads_the_user_files(tmp_path):
    source = [f"ich sehe {n} katzen" for n in range(20)]
    target = [f"i see {n} cats" for n in range(20)]
    _write_parallel(tmp_path, source, target)
    ds = data.load_dataset("parallel_text", data_dir=tmp_path)
    assert ds.task == "seq2seq" and ds.input_shape == (4, 5)
    assert data.tasks.num_samples(ds.x_train) == 18 and data.tasks.num_samples(ds.x_test) == 2
    assert (ds.y_test[:, -1] == tasks.EOS).all()
    assert (ds.x_test[0] == seq2seq.UNK).sum() == 2  # "18" and "19" occur only in the test split


@pytest.mark.parametrize(("files", "fragment"), [
    (None, "source.txt is missing"),
    ((["a b"], []), "target.txt is empty"),
    ((["a b", "c"], ["x"]), "misaligned: source.txt has 2 lines, target.txt has 1"),
    ((["a b", "", "c"], ["x", "y", "z"]), "source.txt, line 2: empty sentence"),
])
def test_parallel_text_errors_are_one_line(tmp_path, files, fragment):
    if files is not None:
        (tmp_path / "source.txt").write_text("\n".join(files[0]), encoding="utf-8")
        (tmp_path / "target.txt").write_text("\n".join(files[1]), encoding="utf-8")
    with pytest.raises(DatasetError) as excinfo:
        data.load_dataset("parallel_text", data_dir=tmp_path)
    assert_one_line_error(excinfo, fragment)


# --- each framework's loss is the reference -------------------------------------------------------------------
def _loss_cases():
    rng = np.random.default_rng(3)
    x_tokens, y_tokens = tasks.random_batch("seq2seq", (3, 5), 11, batch=4, seed=1)
    _, y_rec = tasks.random_batch("recommendation", (5, 6), 1, batch=6, seed=1)
    return [("seq2seq", rng.normal(size=(4, 5, 11)).astype(np.float32), y_tokens),
            ("recommendation", rng.normal(size=(6, 1)).astype(np.float32), y_rec)]


@requires_backend
@pytest.mark.parametrize(("task", "logits", "labels"), _loss_cases(), ids=["tokens", "bce"])
def test_keras_task_loss_is_the_reference(task, logits, labels):
    import keras

    from twinbench.backends.keras_runner import task_loss

    loss = keras.ops.convert_to_numpy(task_loss(task)(labels, logits))
    assert float(loss) == pytest.approx(tasks.reference_loss(task, logits, labels), rel=1e-5)


@pytest.mark.skipif(BACKEND != "torch", reason="PyTorch's loss (torch environment)")
@pytest.mark.parametrize(("task", "logits", "labels"), _loss_cases(), ids=["tokens", "bce"])
def test_torch_task_loss_is_the_reference(task, logits, labels):
    import torch

    from twinbench.backends.torch_runner import task_loss

    loss = task_loss(task)(torch.from_numpy(logits), torch.from_numpy(labels))
    assert float(loss) == pytest.approx(tasks.reference_loss(task, logits, labels), rel=1e-5)


@pytest.mark.skipif(BACKEND != "tensorflow", reason="tf.keras' loss (tensorflow environment)")
@pytest.mark.parametrize(("task", "logits", "labels"), _loss_cases(), ids=["tokens", "bce"])
def test_tf_keras_task_loss_is_the_reference(task, logits, labels):
    from twinbench.backends.tf_keras_runner import task_loss

    loss = task_loss(task)(labels, logits)
    assert float(loss) == pytest.approx(tasks.reference_loss(task, logits, labels), rel=1e-5)


# --- a wrong NeuMF twin fails ---------------------------------------------------------------------------------
@pytest.mark.skipif(BACKEND != "torch", reason="needs the PyTorch twin (torch environment)")
def test_neumf_with_its_towers_concatenated_the_other_way_is_caught():
    import torch

    from parity_fixtures import parity_case, parity_options
    from twinbench.backends import get_runner
    from twinbench.backends.torch_runner import TorchRunner
    from twinbench.models.ncf.torch_model import NeuMF
    from twinbench.twins.parity import ParityError, compare_twins

    class SwappedConcat(NeuMF):
        def forward(self, user, item):
            mf = self.mf_user_embed(user) * self.mf_item_embed(item)
            x = torch.cat([self.mlp_user_embed(user), self.mlp_item_embed(item)], dim=1)
            for layer in self.mlp:
                x = torch.relu(layer(x))
            return self.final(torch.cat([x, mf], dim=1))  # MLP first: same shapes, other network

    class WrongRunner(TorchRunner):
        def build(self, model_name, *, input_shape, num_classes, **options):
            module = super().build(model_name, input_shape=input_shape, num_classes=num_classes, **options)
            wrong = SwappedConcat(*input_shape, **options)
            wrong.twinbench_layout, wrong.twinbench_shapes = module.twinbench_layout, module.twinbench_shapes
            return wrong.to(self.device)

    input_shape, num_classes, x, y = parity_case("ncf")
    build = {"input_shape": input_shape, "num_classes": num_classes, "options": parity_options("ncf")}
    reference, wrong = get_runner("torch"), WrongRunner()
    for runner in (reference, wrong):
        runner.setup(seed=0)
    ref_model = reference.prepare("ncf", **build)
    compare_twins(reference, ref_model, reference, reference.prepare("ncf", **build), x=x, y=y)  # the right twin
    with pytest.raises(ParityError, match="logits"):
        compare_twins(reference, reference.prepare("ncf", **build), wrong, wrong.prepare("ncf", **build), x=x, y=y)


@pytest.mark.skipif(BACKEND != "tensorflow", reason="TensorFlow's sparse gradients (tensorflow environment)")
def test_keras_adam_on_repeated_embedding_rows_is_summed_first():
    """A batch that looks up row 1 twice: dense Adam's first step is lr * sign(g1 + g2) on that row. Keras 3's Adam
    given the tf.IndexedSlices as they come steps differently (the trap); ``SummedRowsAdam`` steps like dense Adam."""
    import keras
    import tensorflow as tf

    from twinbench.backends.base import TrainConfig
    from twinbench.backends.keras_runner import adam_class

    def first_step(optimizer, sparse):
        variable = keras.Variable(np.zeros((3, 2), np.float32))
        grad = tf.IndexedSlices(tf.constant([[1.0, 2.0], [3.0, -1.0]]), tf.constant([1, 1]), tf.constant([3, 2]))
        optimizer.apply([grad if sparse else tf.convert_to_tensor(grad)], [variable])
        return keras.ops.convert_to_numpy(variable.value)[1]

    config = TrainConfig()
    dense = first_step(keras.optimizers.Adam(learning_rate=1e-3, epsilon=1e-8), sparse=False)
    np.testing.assert_allclose(dense, [-1e-3, -1e-3], rtol=1e-4)
    assert not np.allclose(first_step(keras.optimizers.Adam(learning_rate=1e-3, epsilon=1e-8), sparse=True), dense,
                           rtol=1e-2)
    adam = adam_class()(learning_rate=config.learning_rate, epsilon=config.adam_epsilon)  # SummedRowsAdam here
    np.testing.assert_allclose(first_step(adam, sparse=True), dense, rtol=1e-5)


# GNMT's LSTMs in TensorFlow's fit take a minute or more (tracing, not size): the large tier there; ncf's id tuples and
# gpt_tiny's tokens go through the same loops in the fast tier, and GNMT trains in the fast tier of torch and jax.
GNMT = pytest.param("gnmt", marks=pytest.mark.large) if BACKEND == "tensorflow" else "gnmt"


@pytest.mark.parametrize("model_name", ["ncf", GNMT, "gpt_tiny"])
@pytest.mark.parametrize("pair", IMPLEMENTATIONS_HERE, ids=impl_id)
@requires_backend
def test_every_implementation_trains_the_token_and_id_models_through_fit_and_train_steps(pair, model_name):
    """``fit`` (the training loop, with its task metrics and NCF's fresh negatives) and ``train_steps`` (the
    throughput loop) take the models of the other tasks — a tuple of id arrays (ncf, gnmt), one token array (gpt_tiny) — in
    every implementation here."""
    from twinbench.backends.base import StepClock
    from twinbench.data import load_dataset

    spec = get_model_spec(model_name)
    dataset = load_dataset("synthetic", input_shape=spec.input_shape, num_classes=spec.num_classes, task=spec.task,
                           synthetic_train=16, synthetic_test=8)  # one batch an epoch: the loops, not the data
    runner = get_runner(*pair)
    runner.setup(seed=0)
    model = runner.prepare(model_name, input_shape=spec.input_shape, num_classes=spec.num_classes)
    epochs = runner.fit(model, dataset, TrainConfig(epochs=2, batch_size=16))
    assert len(epochs) == 2 and all(np.isfinite(e.loss) for e in epochs)
    assert set(epochs[-1].test_metrics) == set(get_task(spec.task).metrics)
    runner.train_steps(model, dataset, TrainConfig(batch_size=16), steps=3, clock=StepClock([0, 3], sync=runner.sync))
