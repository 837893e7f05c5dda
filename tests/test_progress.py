"""The PyTorch loop's progress bar reads like Keras' and does not sync the device at every step."""

from __future__ import annotations

import io
import re

import pytest

from conftest import BACKEND

pytestmark = pytest.mark.skipif(BACKEND != "torch", reason="the PyTorch loop lives in the torch environment")


class _Terminal(io.StringIO):
    def isatty(self):
        return True


class _CountingLoss:
    """Stands in for the device tensor; counts how often the bar reads it (each read is a sync on a GPU)."""

    def __init__(self):
        self.value, self.reads = 0.0, 0

    def __float__(self):
        self.reads += 1
        return self.value


def _run(stream, steps=45, interval_s=0.1):
    from twinbench.backends.torch_runner import ProgressBar

    bar = ProgressBar(epoch=0, epochs=5, steps=steps, samples=1437, batch_size=32, interval_s=interval_s, stream=stream)
    loss = _CountingLoss()
    for step in range(1, steps + 1):
        loss.value += 0.5 * 32
        bar.update(step, loss)
    return loss


def test_log_output_is_one_keras_style_line_per_epoch():
    stream = io.StringIO()
    loss = _run(stream)
    lines = stream.getvalue().splitlines()
    assert lines[0] == "Epoch 1/5"
    assert len(lines) == 2
    assert re.fullmatch(r"45/45 \[={30}\] - \d+s \d+(us|ms|s)/step - loss: \d\.\d{4}", lines[1]), lines[1]
    assert loss.reads == 1  # only the final line reads the loss


def test_terminal_redraws_in_place_and_is_throttled():
    stream = _Terminal()
    loss = _run(stream, steps=1000, interval_s=60.0)
    text = stream.getvalue()
    assert text.startswith("Epoch 1/5\n\r   1/1000 [>")
    assert "ETA:" in text
    assert text.endswith("\n") and text.count("\n") == 2
    assert loss.reads == 2  # the first step, then nothing for 60 s, then the final line
