"""GNMT's twin check at the model level: each implementation observed on one fixed batch of token sequences.

GNMT is not in the registry yet (the runners take images until the non-image data path lands), so this module
does for GNMT what ``backends`` + ``twinbench.twins.parity.observe`` do for the image models: build an implementation,
load the neutral weights (``twinbench.models.weights``), and observe inference-mode logits, the per-token loss, every
gradient and the weight change of one plain SGD step, each in that framework's own idiom. The comparisons are
``twinbench.twins.parity``'s.

Why SGD and not Adam: an SGD step is ``-lr * gradient`` of *each parameter*, so it shows what a gradient
comparison cannot, that PyTorch's two LSTM biases, both trained, move their sum twice as far as Keras' one bias.

The PyTorch twin's fingerprint (``tests/parity/gnmt_twin.npz``) ties keras[jax] and the tensorflow environment to
PyTorch. Regenerate it (torch environment):  KERAS_BACKEND=torch python -m tests.gnmt_twins
"""

from __future__ import annotations

import functools
import sys

import numpy as np

from twinbench.backends.tolerances import GRAD_ATOL, GRAD_RTOL, ZERO_GRAD_REL
from twinbench.models.gnmt.config import EOS, PAD, gnmt_config, param_count, shift_right, torch_key
from twinbench.twins.parity import FINGERPRINT_DIR, Observation, _check_close

# The twin case: the small size without dropout (masks cannot match across frameworks).
SOURCE_LENGTH, TARGET_LENGTH, VOCABULARY = 7, 6, 40
OPTIONS = {"size": "small", "dropout": 0.0}
BUILD = {"input_shape": (SOURCE_LENGTH, TARGET_LENGTH), "num_classes": VOCABULARY, **OPTIONS}
SGD_LR = 0.1
SEED = 0
FINGERPRINT = FINGERPRINT_DIR / "gnmt_twin.npz"


def params() -> int:
    return param_count(gnmt_config(OPTIONS["size"]), VOCABULARY)


def twin_batch(*, batch=4, seed=1234):
    """``(source, decoder_input, labels)``: right-padded sources and targets of different lengths, each target ending
    in EOS, the decoder input the targets shifted right (teacher forcing). Real tokens are ``3 .. VOCABULARY - 1``."""
    rng = np.random.default_rng(seed)
    source = np.full((batch, SOURCE_LENGTH), PAD, np.int32)
    labels = np.full((batch, TARGET_LENGTH), PAD, np.int64)
    source_lengths = [SOURCE_LENGTH, 3, 5, 1][:batch]  # a full row, a one-token row, two in between
    target_lengths = [3, TARGET_LENGTH - 1, 2, 4][:batch]  # real tokens; EOS follows
    for row, (s, t) in enumerate(zip(source_lengths, target_lengths, strict=True)):
        source[row, :s] = rng.integers(EOS + 1, VOCABULARY, s)
        labels[row, :t] = rng.integers(EOS + 1, VOCABULARY, t)
        labels[row, t] = EOS
    return source, shift_right(labels).astype(np.int32), labels


@functools.lru_cache(maxsize=1)
def canonical() -> dict[str, np.ndarray]:
    """The canonical weights, drawn from the Keras definition's initializers in NumPy (the same on every backend)."""
    from twinbench.models.gnmt.keras_model import gnmt
    from twinbench.models.weights import canonical_weights

    return canonical_weights(gnmt(**BUILD), seed=SEED)


# -- Keras 3 (any backend) ---------------------------------------------------------------------------------------
def keras_model(weights=None):
    from twinbench.models.gnmt.keras_model import gnmt

    model = gnmt(**BUILD)
    weights = canonical() if weights is None else weights
    for variable in model.weights:
        variable.assign(weights[variable.path])
    return model


def keras_weights(model) -> dict[str, np.ndarray]:
    import keras

    return {v.path: np.array(keras.ops.convert_to_numpy(v.value)) for v in model.weights}


def observe_keras(model, batch) -> Observation:
    """Logits, per-token loss, gradients and one ``keras.optimizers.SGD`` step of the Keras 3 definition."""
    import keras

    from twinbench.models.gnmt.keras_model import token_loss

    source, decoder_input, labels = batch
    inputs = [keras.ops.convert_to_tensor(source), keras.ops.convert_to_tensor(decoder_input)]
    variables = model.trainable_variables
    backend = keras.backend.backend()
    if backend != "jax":
        logits = np.asarray(keras.ops.convert_to_numpy(model(inputs, training=False)))
    if backend == "torch":
        for v in variables:
            v.value.grad = None
        loss = token_loss()(keras.ops.convert_to_tensor(labels), model(inputs, training=True))
        loss.backward()
        grads = [v.value.grad.detach().cpu().numpy() for v in variables]
    elif backend == "tensorflow":
        import tensorflow as tf

        with tf.GradientTape() as tape:
            loss = token_loss()(labels, model(inputs, training=True))
        # The embedding's gradient arrives sparse (tf.IndexedSlices: the rows of the tokens used); made dense here.
        grads = [tf.convert_to_tensor(g).numpy() for g in tape.gradient(loss, variables)]
    else:  # compiled, as the runner's train step is (op by op, JAX takes ~10 s per pass over the LSTM loops here)
        import jax

        def forward(trainable, training):
            return model.stateless_call(trainable, [v.value for v in model.non_trainable_variables], inputs,
                                        training=training)[0]

        trainable = [v.value for v in variables]
        logits = np.asarray(jax.jit(forward, static_argnums=1)(trainable, False))
        loss, grads = jax.jit(jax.value_and_grad(lambda t: token_loss()(labels, forward(t, True))))(trainable)
        grads = [np.asarray(g) for g in grads]
    before = keras_weights(model)
    keras.optimizers.SGD(learning_rate=SGD_LR).apply([keras.ops.convert_to_tensor(g) for g in grads], variables)
    after = keras_weights(model)
    named = {v.path: np.asarray(g) for v, g in zip(variables, grads, strict=True)}
    return Observation(logits=logits, loss=float(keras.ops.convert_to_numpy(loss)), grads=named,
                       steps={name: after[name] - before[name] for name in named}, state={}, forward_state={})


# -- tf.keras ----------------------------------------------------------------------------------------------------
def tf_keras_model(weights=None):
    from twinbench.backends.tf_keras_runner import neutral_variables
    from twinbench.models.gnmt.tf_keras_model import gnmt

    model = gnmt(**BUILD)
    weights = canonical() if weights is None else weights
    for name, variable in neutral_variables(model).items():
        variable.assign(weights[name])
    return model


def observe_tf_keras(model, batch) -> Observation:
    """The same observation of the tf.keras twin (``tf.GradientTape``, ``tf_keras.optimizers.SGD``)."""
    import tensorflow as tf
    import tf_keras

    from twinbench.backends.tf_keras_runner import neutral_variables
    from twinbench.models.gnmt.tf_keras_model import token_loss

    source, decoder_input, labels = batch
    logits = model([source, decoder_input], training=False).numpy()
    names = {id(v): n for n, v in neutral_variables(model).items()}
    with tf.GradientTape() as tape:
        loss = token_loss()(labels, model([source, decoder_input], training=True))
    grads = tape.gradient(loss, model.trainable_variables)
    before = {n: v.numpy() for n, v in neutral_variables(model).items()}
    tf_keras.optimizers.SGD(learning_rate=SGD_LR).apply_gradients(zip(grads, model.trainable_variables, strict=True))
    after = {n: v.numpy() for n, v in neutral_variables(model).items()}
    named = {names[id(v)]: tf.convert_to_tensor(g).numpy()  # the embedding's gradient is sparse (tf.IndexedSlices)
             for v, g in zip(model.trainable_variables, grads, strict=True)}
    return Observation(logits=logits, loss=float(loss), grads=named,
                       steps={n: after[n] - before[n] for n in named}, state={}, forward_state={})


# -- PyTorch -----------------------------------------------------------------------------------------------------
@functools.lru_cache(maxsize=1)
def torch_layout():
    """How the neutral names line up with the PyTorch twin's ``state_dict`` (``twinbench.models.weights.torch_layout``)."""
    from twinbench.models.gnmt.keras_model import gnmt
    from twinbench.models.weights import torch_layout as layout_of

    reference = gnmt(**BUILD)
    return layout_of(reference, key_fn=torch_key), {v.path: tuple(v.shape) for v in reference.weights}


def torch_model(weights=None, *, module=None, layout=None):
    """The PyTorch twin (or ``module``) loaded with the neutral weights through ``layout`` (default: the right one)."""
    import torch

    from twinbench.models.gnmt.torch_model import gnmt
    from twinbench.models.weights import to_torch_state

    module = gnmt(**BUILD) if module is None else module
    layout = torch_layout()[0] if layout is None else layout
    shapes = {k: tuple(v.shape) for k, v in module.state_dict().items()}
    state = to_torch_state(canonical() if weights is None else weights, layout, shapes)
    module.load_state_dict({k: torch.from_numpy(v) for k, v in state.items()})
    return module


def torch_weights(module) -> dict[str, np.ndarray]:
    from twinbench.models.weights import from_torch_state

    layout, shapes = torch_layout()
    return from_torch_state({k: v.detach().numpy().copy() for k, v in module.state_dict().items()}, layout, shapes)


def torch_params(module) -> int:
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


def observe_torch(module, batch) -> Observation:
    """The same observation of the PyTorch twin: the tutorial loop's ``backward`` and ``torch.optim.SGD``."""
    import torch

    from twinbench.models.gnmt.torch_model import token_loss
    from twinbench.models.weights import from_torch_state

    source, decoder_input, labels = (torch.from_numpy(a) for a in batch)
    module.eval()
    with torch.no_grad():
        logits = module(source, decoder_input).numpy()
    module.train()
    optimizer = torch.optim.SGD(module.parameters(), lr=SGD_LR)
    optimizer.zero_grad()
    loss = token_loss()(module(source, decoder_input).flatten(0, 1), labels.flatten())
    loss.backward()
    grads = {k: p.grad.numpy().copy() for k, p in module.named_parameters() if p.grad is not None}
    before = torch_weights(module)
    optimizer.step()
    after = torch_weights(module)
    layout, shapes = torch_layout()
    trainable = {path: key for path, key in layout.keys.items() if key in grads}
    sub_layout = type(layout)(keys=trainable, same_layout=layout.same_layout)  # a bias's gradient is bias_ih's
    named = from_torch_state(grads, sub_layout, {path: shapes[path] for path in trainable})
    return Observation(logits=logits, loss=float(loss.detach()), grads=named,
                       steps={n: after[n] - before[n] for n in named}, state={}, forward_state={})


# -- comparisons -------------------------------------------------------------------------------------------------
def check_sgd_steps(actual: Observation, expected: Observation) -> None:
    """One SGD step is ``-lr * gradient`` per parameter: the neutral weights' changes divided by ``lr`` are held to
    the gradient tolerances (``twinbench.twins.parity``), plus the float32 rounding of the updated weight (a change is
    the difference of two float32 numbers near the weight). Two PyTorch biases both trained move twice as far."""
    # A gradient below ZERO_GRAD_REL of the largest gradient norm is zero up to rounding, as in the gradient check:
    # at initialisation, the attention's b (its gradient is a sum of softmax derivatives, which sum to zero).
    zero_floor = ZERO_GRAD_REL * max(float(np.linalg.norm(g)) for g in expected.grads.values())
    for name, step_ref in expected.steps.items():
        ref = np.asarray(step_ref, np.float64) / SGD_LR
        scale = float(np.abs(ref).max()) or 1.0
        rounding = 2 * float(np.spacing(np.float32(np.abs(canonical()[name]).max()))) / SGD_LR
        _check_close("SGD step of", name, np.asarray(actual.steps[name], np.float64) / SGD_LR, ref,
                     atol=max(GRAD_ATOL * scale, zero_floor) + rounding, rtol=GRAD_RTOL)


def main() -> int:
    from twinbench.twins.parity import fingerprint_of, save_fingerprint

    source, decoder_input, labels = batch = twin_batch()
    observation = observe_torch(torch_model(), batch)
    FINGERPRINT.parent.mkdir(exist_ok=True)
    save_fingerprint(FINGERPRINT, fingerprint_of(observation, x=source, y=labels))
    print(f"wrote {FINGERPRINT} ({FINGERPRINT.stat().st_size:,} bytes)")
    return 0


if __name__ == "__main__":
    from twinbench.backends import select_keras_backend

    select_keras_backend("torch")
    sys.exit(main())
