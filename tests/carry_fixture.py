"""The cross-framework fixture: a model trained one epoch by the PyTorch twin, as a user would carry it.

``twinbench train --model cifar_cnn --impl torch --dataset digits --input-shape 16x16x3 --epochs 1
--save-weights W.npz`` in the torch environment: the trained weights (the neutral ``.npz``, exactly what
``--save-weights`` wrote) go to ``tests/carry/cifar_cnn.torch-epoch1.npz``, and the PyTorch twin's test-set logits
and accuracy with those weights to ``tests/carry/cifar_cnn.torch-epoch1.logits.npz``. Every environment loads
the weights into each of its implementations (``tests/test_carry.py``): keras[jax], keras[tensorflow], tf_keras and
keras[torch] must reproduce the logits within the float32 floor and the same test accuracy. The torch environment
also trains the epoch again and checks that the committed files still match, so they cannot go stale silently.
The input is 16x16 (not 32x32) to keep the committed weights small (36,490 parameters, 148 kB).

Regenerate (torch environment):  KERAS_BACKEND=torch python -m tests.carry_fixture
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

MODEL, IMPLEMENTATION, DATASET, INPUT_SHAPE, EPOCHS = "cifar_cnn", "torch", "digits", (16, 16, 3), 1
DIR = Path(__file__).resolve().parent / "carry"
WEIGHTS = DIR / f"{MODEL}.torch-epoch{EPOCHS}.npz"
LOGITS = DIR / f"{MODEL}.torch-epoch{EPOCHS}.logits.npz"


def train_and_save(weights_path) -> dict:
    """Train the epoch in the PyTorch twin through ``twinbench train``'s own code path, saving to ``weights_path``."""
    from twinbench.cell import Cell
    from twinbench.measuring.train import RunConfig, execute

    config = RunConfig(Cell(MODEL, IMPLEMENTATION, "torch", DATASET), epochs=EPOCHS, input_shape=INPUT_SHAPE,
                       profile=False, save_weights=str(weights_path))
    return execute(config)


def test_logits(implementation, backend, weights_path) -> tuple[np.ndarray, float]:
    """The test-set logits and accuracy of one implementation started from the weights in ``weights_path``."""
    from twinbench import data as datasets
    from twinbench.backends import get_runner
    from twinbench.backends.checkpoints import read_checkpoint

    dataset = datasets.load_dataset(DATASET, input_shape=INPUT_SHAPE, num_classes=10)
    runner = get_runner(implementation, backend)
    runner.setup(seed=0)
    weights, _ = read_checkpoint(weights_path, MODEL, input_shape=INPUT_SHAPE)
    model = runner.prepare(MODEL, input_shape=INPUT_SHAPE, num_classes=dataset.num_classes, weights=weights)
    logits = runner.predict(model, dataset.x_test)
    return logits, runner.evaluate(model, dataset.x_test, dataset.y_test)


test_logits.__test__ = False  # a helper, not a pytest test


def main() -> None:
    from twinbench.models.weights import save_weights

    DIR.mkdir(parents=True, exist_ok=True)
    record = train_and_save(WEIGHTS)
    logits, accuracy = test_logits("torch", "torch", WEIGHTS)
    assert abs(accuracy - record["results"]["accuracy_after"]) < 1e-12, (accuracy, record["results"])
    save_weights(LOGITS, {"logits": logits, "accuracy": np.float64(accuracy)})  # atomic, like every write
    print(f"wrote {WEIGHTS.name} and {LOGITS.name}: test accuracy {accuracy:.4f}, "
          f"final loss {record['results']['final_loss']:.4f}")


if __name__ == "__main__":
    main()
