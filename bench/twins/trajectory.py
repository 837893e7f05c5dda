"""Equal for longer than one step: do the twins still agree after K optimizer steps?

The one-step twin check (``twinbench.twins.parity``) compares a single Adam step. Rounding differences then grow with
every step, so after K steps two honest twins are further apart than after one; how far is honest? The answer
comes from the PyTorch model itself, trained the same K steps in float64: its float32 run drifts away from that
exact run by the **envelope** (float32 noise alone, step by step). The Keras model is then compared with the
PyTorch float32 run, step by step:

- the loss: ``|loss_keras - loss_torch|`` against ``|loss_torch32 - loss_torch64|``;
- the trainable weights (in Keras layout; BatchNorm's moving statistics do not enter a training-mode pass, and the
  one-step check compares them): ``||w_keras - w_torch|| / ||w64||``
  against ``||w_torch32 - w_torch64|| / ||w64||`` (Euclidean norms over all tensors together).

The allowed distance at step k is ``NOISE_FACTOR`` times the largest envelope up to step k (rounding differences
of another framework may be that many times the reference's own; ``twinbench.twins.parity``), and never below a few
float32 rounding units. A real difference leaves the envelope, usually within the first steps; float32 noise
stays inside. The batches are fixed random images with random labels (``parity_batch``, one seed per step), so the
run needs no dataset; the optimizer is plain SGD (``LEARNING_RATE``).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field

import numpy as np

from twinbench.backends.tolerances import NOISE_FACTOR
from twinbench.twins.parity import parity_batch

FIRST_BATCH_SEED = 5000  # step k trains on parity_batch(..., seed=FIRST_BATCH_SEED + k)
FLOAT32_FLOOR = 8 * 2.0 ** -24  # the smallest envelope, relative: a few float32 rounding units
# The trajectory trains with plain SGD written out here, the same arithmetic for every run, so that it measures the
# models and not the optimizers: Keras' and PyTorch's Adam differ by design (the epsilon inside or outside the bias
# correction, ``twinbench.twins.parity``) and in float32 detail (Keras computes beta ** t in float32), and either drifts
# the twins apart step after step however identical the networks are. The one-step check covers the real Adam step.
LEARNING_RATE = 0.05


@dataclass
class Step:
    """One step of the trajectory: the loss of each run (before its update) and the distances after it."""

    loss_keras: float
    loss_torch: float
    loss_exact: float
    weight_distance: float  # ||w_keras - w_torch|| / ||w64||
    weight_envelope: float  # ||w_torch32 - w_torch64|| / ||w64||

    @property
    def loss_distance(self) -> float:
        return abs(self.loss_keras - self.loss_torch)

    @property
    def loss_envelope(self) -> float:
        return abs(self.loss_torch - self.loss_exact)


@dataclass
class Trajectory:
    """K steps of both twins and of the float64 reference; ``inside`` says whether they stayed in the envelope."""

    steps: list[Step] = field(default_factory=list)
    factor: float = NOISE_FACTOR

    def envelopes(self) -> list[tuple[float, float]]:
        """Per step: the loss and weight envelopes, the largest float32 drift from float64 up to that step (never
        below ``FLOAT32_FLOOR``); a distance may reach ``factor`` times them."""
        envelopes, loss_env, weight_env = [], 0.0, 0.0
        for step in self.steps:
            loss_env = max(loss_env, step.loss_envelope, FLOAT32_FLOOR * abs(step.loss_exact))
            weight_env = max(weight_env, step.weight_envelope, FLOAT32_FLOOR)
            envelopes.append((loss_env, weight_env))
        return envelopes

    def _outside(self, step: Step, envelope: tuple[float, float]) -> bool:
        return step.loss_distance > self.factor * envelope[0] or step.weight_distance > self.factor * envelope[1]

    def first_outside(self) -> int | None:
        """The first step (counted from 1) whose loss or weight distance exceeds ``factor`` times its envelope."""
        for k, (step, envelope) in enumerate(zip(self.steps, self.envelopes(), strict=True), start=1):
            if self._outside(step, envelope):
                return k
        return None

    @property
    def inside(self) -> bool:
        return self.first_outside() is None

    def verdict(self) -> str:
        k, n = self.first_outside(), len(self.steps)
        where = ("inside the float64 envelope at every step" if k is None
                 else f"leaves the float64 envelope at step {k}")
        return (f"trajectory over {n} SGD steps: {where} (allowed: {self.factor:g} x the envelope, the PyTorch "
                "model's own float32 drift from float64)")

    def curve(self, *, rows: int = 10) -> list[str]:
        """The curve as a table: about ``rows`` steps evenly spread, the first step outside included."""
        n, first = len(self.steps), self.first_outside()
        shown = sorted({round(i * (n - 1) / max(rows - 1, 1)) for i in range(rows)} | ({first - 1} if first else set()))
        envelopes = self.envelopes()
        lines = [f"{'step':>5} {'|loss K - loss T|':>17} {'envelope':>9} {'weight distance':>15} {'envelope':>9}"]
        for i in shown:
            step, envelope = self.steps[i], envelopes[i]
            mark = "  <- outside" if self._outside(step, envelope) else ""
            lines.append(f"{i + 1:>5} {step.loss_distance:17.3g} {envelope[0]:9.3g} {step.weight_distance:15.3g} "
                         f"{envelope[1]:9.3g}{mark}")
        return lines


def run_trajectory(runners, keras_model, module, weights, *, input_shape, num_classes, steps, batch,
                   learning_rate=LEARNING_RATE) -> Trajectory:
    """Train the Keras model, the PyTorch module and a float64 copy of the module ``steps`` SGD steps from
    ``weights`` on the same batches, and measure how far apart they drift.

    Args:
        runners: ``(keras_runner, torch_runner)``.
        keras_model, module: the paired twins (the module already carries the weight layout, as ``check`` sets it).
        weights: the neutral initial weights (Keras paths).
        input_shape, num_classes, batch: the batches' shape.
        steps: K, the number of optimizer steps.
        learning_rate: of the plain SGD step ``w - learning_rate * gradient``.
    """
    keras_runner, torch_runner = runners
    exact = copy.deepcopy(module).double()
    runs = [(keras_runner, keras_model, np.float32), (torch_runner, module, np.float32),
            (torch_runner, exact, np.float64)]
    for runner, model, _ in runs:
        runner.set_weights(model, weights)
    trajectory = Trajectory()
    for k in range(steps):
        x, y = parity_batch(tuple(input_shape), num_classes, batch=batch, seed=FIRST_BATCH_SEED + k)
        losses, after = [], []
        for runner, model, dtype in runs:
            loss, weights_after = _sgd_step(runner, model, x.astype(dtype), y, dtype(learning_rate))
            losses.append(loss)
            after.append(weights_after)
        w_keras, w_torch, w_exact = after
        scale = _norm(w_exact, None)
        trajectory.steps.append(Step(*losses, weight_distance=_norm(w_keras, w_torch) / scale,
                                     weight_envelope=_norm(w_torch, w_exact) / scale))
    return trajectory


def _sgd_step(runner, model, x, y, learning_rate):
    """One plain SGD step, the update written out in NumPy in the model's own precision: the same arithmetic for
    every run. Returns the loss before the step and the trainable weights after it."""
    loss, grads = runner.loss_and_grads(model, x, y)
    weights = runner.get_weights(model)
    for name, grad in grads.items():
        weights[name] = weights[name] - learning_rate * np.asarray(grad, weights[name].dtype)
    runner.set_weights(model, weights)
    return loss, {name: weights[name] for name in grads}


def _norm(a: dict, b: dict | None) -> float:
    """The Euclidean norm of all tensors of ``a`` (minus ``b``'s) together, in float64."""
    total = 0.0
    for name, value in a.items():
        diff = np.asarray(value, np.float64) - (0.0 if b is None else np.asarray(b[name], np.float64))
        total += float(np.sum(diff * diff))
    return float(np.sqrt(total))
