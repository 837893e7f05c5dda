"""Tasks: what a model declares about its inputs, its labels, its loss and its metrics.

Every registered model names one task (``ModelSpec.task``). The task fixes, for every implementation alike:

- what the two build arguments mean (every builder is ``build(*, input_shape, num_classes)``);
- what an input ``x`` is (one array, or a tuple of arrays in a fixed order) and what a label ``y`` is;
- the loss, defined once here in words and as a float64 NumPy reference (``reference_loss``); each runner spells
  the same formula in its framework (``backends``), and the twin tests prove the spellings agree;
- the metrics after each epoch, computed here in NumPy from the model's outputs on the test set (``metrics``);
  the first one is the task's *primary* metric (recorded as ``test_accuracy`` for every task);
- the datasets of that kind; the first is the model's default dataset.

=====================  ============================  ==============================  ================================
task                   input_shape / num_classes     x (inputs)                      y (labels) and loss
=====================  ============================  ==============================  ================================
image_classification   (H, W, C) / classes           float32 (N, H, W, C) in [0, 1]  int64 (N,); softmax cross-entropy,
                                                                                     mean over samples
seq2seq                (source_len, target_len) /    (source int32 (N, S),           int64 (N, T) next target tokens,
                       vocabulary (shared)           decoder_input int32 (N, T))     PAD = 0 masked; softmax cross-
                                                                                     entropy, mean over labelled tokens
language_model         (context_len,) / vocabulary   tokens int32 (N, L)             int64 (N, L) next tokens, PAD = 0
                                                                                     masked; as seq2seq
recommendation         (num_users, num_items) / 1    (user int32 (N,),               float32 (N, 1) in {0, 1}; sigmoid
                                                     item int32 (N,))                binary cross-entropy, mean
=====================  ============================  ==============================  ================================

Models output logits: ``(N, classes)`` for images, ``(N, T, vocabulary)`` for token tasks, ``(N, 1)`` for
recommendation (the sigmoid is in the loss, as the softmax is). Token models take a tuple in the order above:
a Keras functional model with two ``Input`` layers in that order, a PyTorch ``forward(source, decoder_input)``.

Token conventions: ``PAD = 0`` (never a label: masked out of loss and metrics), ``BOS = 1`` (first decoder input),
``EOS = 2`` (last label of every target); real tokens are ``3 .. vocabulary - 1``.

This module imports NumPy only.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from twinbench.models.choices import UnknownChoiceError

PAD, BOS, EOS = 0, 1, 2  # token conventions of every token task
FIRST_TOKEN = 3  # the first real token
HIT_RANK = 10  # HR@10 (He et al. 2017)


@dataclass(frozen=True)
class Task:
    """One kind of problem a model solves (see the module docstring's table).

    Attributes:
        name: the task's name, e.g. ``"seq2seq"``.
        inputs: the names of the input arrays, in the order the model takes them; one name: ``x`` is one array.
        input_shape: what the build argument ``input_shape`` means, in words.
        num_classes: what the build argument ``num_classes`` means, in words.
        loss: the loss, in words (one formula for every implementation).
        metrics: the metrics after each epoch; the first is the primary one.
        datasets: the datasets of this kind; the first is the default.
    """

    name: str
    inputs: tuple[str, ...]
    input_shape: str
    num_classes: str
    loss: str
    metrics: tuple[str, ...]
    datasets: tuple[str, ...]

    @property
    def default_dataset(self) -> str:
        return self.datasets[0]


TOKEN_LOSS = "softmax cross-entropy, mean over the labelled (non-PAD) tokens of the batch"

TASKS = {task.name: task for task in (
    Task(name="image_classification", inputs=("images",), input_shape="(height, width, channels)",
         num_classes="classes", loss="softmax cross-entropy, mean over the batch", metrics=("accuracy",),
         datasets=("digits", "synthetic", "cifar10", "mnist")),
    Task(name="seq2seq", inputs=("source", "decoder_input"), input_shape="(source_length, target_length)",
         num_classes="vocabulary size (shared by source and target)", loss=TOKEN_LOSS,
         metrics=("token_accuracy", "loss_per_token"), datasets=("reverse", "parallel_text")),
    Task(name="language_model", inputs=("tokens",), input_shape="(context_length,)", num_classes="vocabulary size",
         loss=TOKEN_LOSS, metrics=("token_accuracy", "loss_per_token"),
         datasets=("pydoc", "reverse_lm", "synthetic_tokens", "text_file")),
    Task(name="recommendation", inputs=("user", "item"), input_shape="(num_users, num_items)",
         num_classes="1 (one logit: the user interacts with the item)",
         loss="sigmoid binary cross-entropy, mean over the batch (positives and sampled negatives)",
         metrics=(f"hr@{HIT_RANK}", "loss"), datasets=("implicit", "movielens")),
)}
DEFAULT_TASK = "image_classification"


def get_task(name: str) -> Task:
    """The ``Task`` called ``name``; an unknown name is a one-line error listing the tasks."""
    if name not in TASKS:
        raise UnknownChoiceError(f"Unknown task {name!r}. Valid choices: {', '.join(TASKS)}.")
    return TASKS[name]


def task_of_dataset(dataset: str) -> Task:
    """The task whose data ``dataset`` is."""
    for task in TASKS.values():
        if dataset in task.datasets:
            return task
    raise UnknownChoiceError(f"Unknown dataset {dataset!r}. Valid choices: {', '.join(all_datasets())}.")


def all_datasets() -> tuple[str, ...]:
    return tuple(name for task in TASKS.values() for name in task.datasets)


def check_dataset_for_task(dataset: str, task_name: str, *, model: str) -> None:
    """One-line ``UnknownChoiceError`` when ``dataset`` is not data of the kind model ``model`` takes.

    ``synthetic`` (random data for throughput runs) exists for every task (``twinbench.data.synthetic.load_task``).
    """
    task, given = get_task(task_name), task_of_dataset(dataset)
    if given.name != task.name and dataset != "synthetic":
        raise UnknownChoiceError(
            f"Dataset {dataset!r} is {given.name} data, but model {model!r} takes {task.name} data. "
            f"Valid choices: {', '.join(task.datasets)}.")


# -- inputs: one array or a tuple of arrays -------------------------------------------------------------------
def num_samples(x) -> int:
    """Number of samples in ``x`` (one array or a tuple of arrays that share their first axis)."""
    return len(x[0]) if isinstance(x, tuple) else len(x)


def take(x, idx):
    """The samples ``idx`` of ``x`` (one array or a tuple of arrays)."""
    return tuple(a[idx] for a in x) if isinstance(x, tuple) else x[idx]


def random_batch(task_name: str, input_shape, num_classes: int, *, batch: int, seed: int):
    """``(x, y)``: a fixed random batch of the task's kind (the twin tests' batch), from ``default_rng(seed)``.

    Token batches end in PAD on some rows, so the masking is exercised; recommendation labels mix 0 and 1.
    """
    rng = np.random.default_rng(seed)
    if task_name == "image_classification":
        x = rng.uniform(0.0, 1.0, (batch, *input_shape)).astype(np.float32)
        return x, rng.integers(0, num_classes, batch).astype(np.int64)
    if task_name == "recommendation":
        num_users, num_items = input_shape
        x = (rng.integers(0, num_users, batch).astype(np.int32), rng.integers(0, num_items, batch).astype(np.int32))
        return x, (np.arange(batch) % 2 == 0).astype(np.float32).reshape(batch, 1)
    lengths = tuple(input_shape)
    tokens = [rng.integers(FIRST_TOKEN, num_classes, (batch, n)) for n in lengths]
    target_len = lengths[-1]
    keep = target_len - (np.arange(batch) % max(1, target_len // 2))  # row i: the last i % (T/2) positions are PAD
    mask = np.arange(target_len)[None, :] < keep[:, None]
    labels = np.where(mask, tokens[-1], PAD).astype(np.int64)
    if task_name == "language_model":
        return np.where(mask, tokens[0], PAD).astype(np.int32), labels
    decoder_input = np.concatenate([np.full((batch, 1), BOS), labels[:, :-1]], axis=1).astype(np.int32)
    return (tokens[0].astype(np.int32), decoder_input), labels


# -- the loss, as a float64 reference, and the metrics ---------------------------------------------------------
def _log_softmax(logits):
    logits = np.asarray(logits, dtype=np.float64)
    shifted = logits - logits.max(axis=-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


def _token_losses(logits, labels):
    """Per-token cross-entropy and the mask of labelled tokens."""
    log_probs = _log_softmax(logits)
    labels = np.asarray(labels)
    picked = np.take_along_axis(log_probs, labels[..., None].astype(np.int64), axis=-1)[..., 0]
    return -picked, labels != PAD


def _bce(logits, labels):
    z = np.asarray(logits, dtype=np.float64).reshape(-1)
    y = np.asarray(labels, dtype=np.float64).reshape(-1)
    return np.maximum(z, 0) - z * y + np.log1p(np.exp(-np.abs(z)))  # stable sigmoid cross-entropy on logits


def reference_loss(task_name: str, logits, labels) -> float:
    """The task's loss of one batch, in float64 (what every implementation's loss must equal)."""
    if task_name == "image_classification":
        log_probs = _log_softmax(logits)
        return float(-log_probs[np.arange(len(labels)), labels].mean())
    if task_name == "recommendation":
        return float(_bce(logits, labels).mean())
    losses, mask = _token_losses(logits, labels)
    return float(losses[mask].sum() / max(1, mask.sum()))


def metrics(task_name: str, outputs, labels, *, groups: int | None = None) -> dict[str, float]:
    """The task's metrics of ``outputs`` (the model's logits on the whole test set) against ``labels``.

    Args:
        task_name: the task.
        outputs: logits, as the model returns them.
        labels: the test labels.
        groups: recommendation only: the test set's candidates per user (the held-out positive first, then the
            sampled negatives); HR@10 is the share of users whose positive ranks among the 10 best scores.
            ``None``: one positive per group, so ``len(labels) / labels.sum()``.

    Returns:
        ``{metric: value}`` in the order of ``Task.metrics`` (the first is the primary one).
    """
    if task_name == "image_classification":
        return {"accuracy": float(np.mean(np.argmax(outputs, axis=-1) == labels))}
    if task_name == "recommendation":
        groups = groups or len(labels) // max(1, int(np.sum(labels)))
        scores = np.asarray(outputs, dtype=np.float64).reshape(-1, groups)
        better = (scores[:, 1:] > scores[:, :1]).sum(axis=1)  # candidates that outrank the held-out item
        return {f"hr@{HIT_RANK}": float(np.mean(better < HIT_RANK)), "loss": float(_bce(outputs, labels).mean())}
    losses, mask = _token_losses(outputs, labels)
    correct = (np.argmax(outputs, axis=-1) == labels) & mask
    return {"token_accuracy": float(correct.sum() / max(1, mask.sum())),
            "loss_per_token": float(losses[mask].sum() / max(1, mask.sum()))}
