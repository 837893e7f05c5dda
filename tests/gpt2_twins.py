"""The GPT-2 twin harness: each implementation observed at one small case (``twinbench.twins.parity.Observation``).

Model level and self-contained: the Hugging Face ``GPT2LMHeadModel`` (torch environment), the Keras 3 definition on
the process' backend, and the tf.keras twin (tensorflow environment) each load the same canonical weights
(``twinbench.models.gpt2.weights``), then report inference logits, the next-token loss and every gradient in training mode,
and the weight change of one Adam step through their real training path. ``twinbench.twins.parity`` compares them.
Greedy generation (``tests/test_gpt2_generation.py``) has its case, its Hugging Face fingerprint and its check here too.

The loss, one definition for every implementation: softmax cross-entropy of the next token, the mean over the
labelled tokens of the batch (``PAD = 0`` labels excluded): ``F.cross_entropy(ignore_index=0)`` in PyTorch,
``SparseCategoricalCrossentropy(from_logits=True, ignore_class=0)`` in Keras 3 and tf.keras.
"""

from __future__ import annotations

import numpy as np

from twinbench.data.text import FIRST_BYTE_TOKEN, PAD
from twinbench.models.gpt2.config import GPT2_SIZES, parameter_shapes, sizes_for
from twinbench.models.gpt2.weights import hf_key
from twinbench.twins.parity import Observation

MODEL = "gpt_tiny"
CONTEXT = 16  # tokens per sequence in the twin case
BATCH = 4
LR = 1e-3
ADAM_EPSILON = 1e-8  # PyTorch's default, set explicitly in Keras (whose default is 1e-7)


def twin_weights(sizes, *, seed=0) -> dict[str, np.ndarray]:
    """Weights that make every parity detail visible: every tensor random, activations of order one.

    GPT-2's own initialisation (the Keras definition's initializers) hides mistakes: its biases are 0 and its
    LayerNorm scales 1 (a bias or gamma loaded into the wrong place changes nothing), and its N(0, 0.02) kernels keep
    the MLP's inputs near 0, where exact and tanh-approximate GELU agree to 1e-6. Here kernels are N(0, 1/fan_in),
    the MLP's N(0, 4/fan_in) (the two GELUs differ by at most 4.7e-4, near |x| = 2: with these gains a twin with the
    exact GELU misses the logits tolerance by 2.2x, with N(0, 1/fan_in) it would pass), embeddings N(0, 1), biases
    N(0, 0.1^2) and LayerNorm scales 1 + N(0, 0.1^2).
    """
    rng = np.random.default_rng(seed)
    out = {}
    for path, shape in parameter_shapes(sizes).items():
        if path.endswith("/kernel"):
            gain = 2.0 if "_mlp_" in path else 1.0
            value = rng.normal(0.0, gain / np.sqrt(shape[0]), shape)
        elif path.endswith("/embeddings"):
            value = rng.normal(0.0, 1.0, shape)
        elif path.endswith("/gamma"):
            value = 1.0 + rng.normal(0.0, 0.1, shape)
        else:
            value = rng.normal(0.0, 0.1, shape)
        out[path] = value.astype(np.float32)
    return out


def twin_case(seed=1234):
    """(sizes, weights, x, y): gpt_tiny's twin weights and a fixed batch whose last rows end in PAD labels."""
    sizes = sizes_for(MODEL, input_shape=(CONTEXT,), num_classes=GPT2_SIZES[MODEL].vocab_size)
    rng = np.random.default_rng(seed)
    x = rng.integers(FIRST_BYTE_TOKEN, sizes.vocab_size, (BATCH, CONTEXT)).astype(np.int32)
    y = np.concatenate([x[:, 1:], rng.integers(FIRST_BYTE_TOKEN, sizes.vocab_size, (BATCH, 1))], axis=1)
    y = y.astype(np.int64)
    for row in range(BATCH):  # row i: its last 2i labels are PAD (masked out of the loss)
        y[row, CONTEXT - 2 * row:] = PAD
    return sizes, twin_weights(sizes, seed=0), x, y


# -- Hugging Face transformers (the PyTorch twin) -----------------------------------------------------------------
def hf_model(sizes, weights, *, activation="gelu_new", swap_qk=False, float64=False):
    """``GPT2LMHeadModel`` holding ``weights``; ``activation``/``swap_qk`` make deliberately wrong twins."""
    import torch

    from twinbench.models.gpt2.torch_model import build_gpt2
    from twinbench.models.gpt2.weights import to_hf_state

    model = build_gpt2(sizes, dropout=0.0, activation=activation)
    state = to_hf_state(weights)
    if swap_qk:  # q and k exchanged in the fused c_attn projection
        d = sizes.n_embd
        for key in [k for k in state if k.endswith("attn.c_attn.weight") or k.endswith("attn.c_attn.bias")]:
            w = state[key]
            state[key] = np.concatenate([w[..., d:2 * d], w[..., :d], w[..., 2 * d:]], axis=-1)
    model.load_state_dict({k: torch.from_numpy(np.array(v)) for k, v in state.items()}, strict=True)
    model.twinbench_names = {hf_key(path): path for path in weights}  # state key -> neutral name
    return model.double() if float64 else model


def observe_hf(model, x, y, *, step=True) -> Observation:
    import torch
    import torch.nn.functional as F

    dtype = next(model.parameters()).dtype
    names = model.twinbench_names
    ids, labels = torch.from_numpy(x).long(), torch.from_numpy(y)
    model.eval()  # dropout is 0.0; eval/train only differ there
    with torch.no_grad():
        logits = model(ids).logits.numpy().astype(np.float64 if dtype == torch.float64 else np.float32)
    model.train()
    model.zero_grad()
    out = model(ids).logits
    loss = F.cross_entropy(out.reshape(-1, out.shape[-1]), labels.reshape(-1), ignore_index=PAD)
    loss.backward()
    params = dict(model.named_parameters())  # the tied lm_head.weight is listed once, as transformer.wte.weight
    grads = {names[key]: p.grad.detach().numpy().copy() for key, p in params.items()}
    before = {names[key]: p.detach().numpy().copy() for key, p in params.items()}
    steps = {}
    if step:
        optimizer = torch.optim.Adam(model.parameters(), lr=LR, eps=ADAM_EPSILON)
        optimizer.zero_grad()
        out = model(ids).logits
        F.cross_entropy(out.reshape(-1, out.shape[-1]), labels.reshape(-1), ignore_index=PAD).backward()
        optimizer.step()
        steps = {names[key]: (p.detach().numpy() - before[names[key]]).astype(np.float32) for key, p in params.items()}
    return Observation(logits=logits, loss=float(loss.detach()), grads=grads, steps=steps, state={},
                       forward_state={})


# -- Keras 3 (any backend) and tf.keras ----------------------------------------------------------------------------
def _path(variable):
    return getattr(variable, "path", None) or variable.name.removesuffix(":0")


def keras_model(module_name, sizes, weights):
    """The Keras 3 definition (``module_name="keras"``) or the tf.keras twin (``"tf_keras"``) holding ``weights``."""
    import importlib

    build = importlib.import_module(f"twinbench.models.gpt2.{module_name}_model").build_gpt2
    model = build(sizes, context_length=CONTEXT, dropout=0.0, name=MODEL)
    for variable in model.weights:
        variable.assign(np.asarray(weights[_path(variable)], dtype=np.float32))
    return model


def kerashub_model(sizes, weights):
    """keras-hub's GPT-2 (``gpt_tiny_kerashub``, tensorflow environment) holding ``weights``: the fused ``c_attn``
    split into its query, key and value ``EinsumDense`` kernels ``(width, heads, head_dim)``, the output projection
    ``(heads, head_dim, width)``, the other layers renamed (keras-hub's own Hugging Face converter does the same)."""
    from twinbench.models.kerashub.keras_model import gpt_tiny_kerashub

    model = gpt_tiny_kerashub(input_shape=(CONTEXT,), num_classes=sizes.vocab_size, dropout=0.0)
    d, heads = sizes.n_embd, sizes.n_head
    names = {"self_attention_layer_norm": "ln_1", "feedforward_intermediate_dense": "mlp_c_fc",
             "feedforward_output_dense": "mlp_c_proj", "feedforward_layer_norm": "ln_2"}
    for variable in model.weights:
        path = variable.path.split("/")
        if path[0] in ("token_embedding", "position_embedding"):
            value = weights[f"{'wte' if path[0] == 'token_embedding' else 'wpe'}/embeddings"]
        elif path[0] == "layer_norm":
            value = weights[f"ln_f/{path[1]}"]
        else:  # transformer_layer_<i>/<layer>[/<projection>]/<array>
            p = f"h_{path[0].rpartition('_')[2]}_"
            if path[1] != "self_attention":
                value = weights[f"{p}{names[path[1]]}/{path[2]}"]
            elif path[2] == "attention_output":
                value = weights[f"{p}attn_c_proj/{path[3]}"]
                value = value.reshape(heads, d // heads, d) if path[3] == "kernel" else value
            else:
                which = ("query", "key", "value").index(path[2])
                value = weights[f"{p}attn_c_attn/{path[3]}"][..., which * d:(which + 1) * d]
                value = value.reshape(*value.shape[:-1], heads, d // heads)
        variable.assign(np.asarray(value, dtype=np.float32))
    return model


def _loss_fn(module):
    return module.losses.SparseCategoricalCrossentropy(from_logits=True, ignore_class=PAD)


def _keras_loss_and_grads(module_name, model, x, y):
    import importlib

    module = importlib.import_module(module_name)
    loss_fn = _loss_fn(module)
    variables = model.trainable_variables
    backend = "tensorflow" if module_name == "tf_keras" else module.backend.backend()
    if backend == "torch":
        for v in variables:
            v.value.grad = None
        loss = loss_fn(module.ops.convert_to_tensor(y), model(module.ops.convert_to_tensor(x), training=True))
        loss.backward()
        return float(loss.detach()), [v.value.grad.detach().numpy() for v in variables]
    if backend == "tensorflow":
        import tensorflow as tf

        with tf.GradientTape() as tape:
            loss = loss_fn(y, model(x, training=True))
        # an embedding's gradient comes back as IndexedSlices (rows of a gather): densified
        return float(loss), [tf.convert_to_tensor(g).numpy() for g in tape.gradient(loss, variables)]
    import jax

    def compute(trainable_values):
        logits, _ = model.stateless_call(trainable_values, [], x, training=True)
        return loss_fn(y, logits)

    # compiled, as a train step is: op by op, JAX dispatches every small operation separately (several times slower)
    loss, grads = jax.jit(jax.value_and_grad(compute))([v.value for v in variables])
    return float(loss), [np.asarray(g) for g in grads]


def observe_keras(module_name, model, x, y, *, step=True) -> Observation:
    """``module_name``: ``"keras"`` (the Keras 3 definition on this process' backend) or ``"tf_keras"``."""
    import importlib

    module = importlib.import_module(module_name)
    if module_name == "tf_keras":
        logits = model(x, training=False).numpy()
    elif module.backend.backend() == "jax":  # compiled: see _keras_loss_and_grads
        logits = np.asarray(model.predict_on_batch(x))
    else:
        logits = module.ops.convert_to_numpy(model(x, training=False))
    loss, grad_list = _keras_loss_and_grads(module_name, model, x, y)
    grads = {_path(v): np.asarray(g) for v, g in zip(model.trainable_variables, grad_list, strict=True)}
    steps = {}
    if step:  # the real training path: compile + train_on_batch
        before = {_path(v): np.array(v.numpy()) for v in model.trainable_variables}
        model.compile(optimizer=module.optimizers.Adam(learning_rate=LR, epsilon=ADAM_EPSILON), loss=_loss_fn(module))
        model.train_on_batch(x, y)
        steps = {_path(v): (np.array(v.numpy()) - before[_path(v)]).astype(np.float32)
                 for v in model.trainable_variables}
    return Observation(logits=logits, loss=loss, grads=grads, steps=steps, state={}, forward_state={})


# -- the committed fingerprint of the Hugging Face twin ------------------------------------------------------------
def fingerprint_file():
    from twinbench.twins.parity import FINGERPRINT_DIR

    return FINGERPRINT_DIR / f"{MODEL}-hf.npz"  # model level (tests/test_gpt2.py), apart from the registry's fixtures


def hf_reference():
    """(observation, noise): the Hugging Face twin at the twin case, and its float32 error against its float64 copy."""
    from twinbench.twins.parity import float64_noise

    sizes, weights, x, y = twin_case()
    observation = observe_hf(hf_model(sizes, weights), x, y)
    exact = observe_hf(hf_model(sizes, weights, float64=True), x, y, step=False)
    return observation, float64_noise(observation, exact)


# -- greedy generation: the Hugging Face twin's tokens and per-step logits -------------------------------------------
PROMPT_BATCH, PROMPT_LENGTH = 2, 5
NEW_TOKENS = 12


def generation_case(seed=4321):
    """(sizes, weights, prompt): the twin weights and a fixed batch of byte-token prompts."""
    sizes = sizes_for(MODEL, input_shape=(CONTEXT,), num_classes=GPT2_SIZES[MODEL].vocab_size)
    prompt = np.random.default_rng(seed).integers(FIRST_BYTE_TOKEN, sizes.vocab_size, (PROMPT_BATCH, PROMPT_LENGTH))
    return sizes, twin_weights(sizes, seed=0), prompt.astype(np.int64)


def generation_fingerprint_file():
    from twinbench.twins.parity import FINGERPRINT_DIR

    return FINGERPRINT_DIR / f"{MODEL}-generate.npz"


def hf_generation_reference() -> dict[str, np.ndarray]:
    """Hugging Face's greedy ``generate`` at the generation case: its sequences and per-step logits, the logits'
    float32 error against the float64 model (``noise``, the envelope) and the smallest gap between the best and the
    second-best logit of any step (``margin``: the greedy choice is decided far above float32 rounding)."""
    from twinbench.models.gpt2.torch_generate import generate

    sizes, weights, prompt = generation_case()
    result = generate(hf_model(sizes, weights).eval(), prompt, max_new_tokens=NEW_TOKENS)
    exact = generate(hf_model(sizes, weights, float64=True).eval(), prompt, max_new_tokens=NEW_TOKENS)
    assert np.array_equal(result.sequences, exact.sequences), "float32 and float64 choose different tokens"
    top2 = np.sort(result.logits, axis=-1)[..., -2:]
    return {"prompt": prompt, "sequences": result.sequences, "logits": result.logits,
            "noise": np.array(np.abs(result.logits - exact.logits).max()),
            "margin": np.array((top2[..., 1] - top2[..., 0]).min())}


def check_generation(generation, reference) -> None:
    """Raise AssertionError unless ``generation`` (a ``Generation``) has ``reference``'s tokens and every step's logits
    (where it has them) within the float32 envelope (``logits_tolerance``: LOGITS_ATOL of the largest logit, or NOISE_FACTOR times the
    Hugging Face twin's own float32 error where larger)."""
    from twinbench.backends.tolerances import logits_tolerance

    expected = reference["sequences"]
    assert generation.sequences.shape == expected.shape, f"sequences {generation.sequences.shape} != {expected.shape}"
    different = np.argwhere(generation.sequences != expected)
    if len(different):
        row, position = different[0]
        raise AssertionError(f"token {position} of prompt {row} differs: {generation.sequences[row, position]} "
                             f"instead of Hugging Face's {expected[row, position]}")
    if generation.logits is None:  # keras-hub's generate returns the tokens alone
        return
    tolerance = logits_tolerance(reference["logits"], {"logits": float(reference["noise"])})
    error = np.abs(generation.logits.astype(np.float64) - reference["logits"]).max(axis=(0, 2))  # per step
    if (error > tolerance).any():
        step = int(np.argmax(error > tolerance))
        raise AssertionError(f"logits of step {step} differ by {error[step]:.3g} > tolerance {tolerance:.3g}")


def write_generation_fingerprint() -> None:
    import os

    path = generation_fingerprint_file()
    tmp = path.with_name(path.stem + ".tmp.npz")
    np.savez(tmp, **hf_generation_reference())
    os.replace(tmp, path)  # atomic
    print(f"wrote {path} ({path.stat().st_size:,} bytes)")


def main(argv=None) -> int:
    """Write the Hugging Face twin's fingerprints (torch environment): ``python -m tests.gpt2_twins [twin|generation]``
    (default: both)."""
    import argparse
    import os

    from twinbench.twins.parity import fingerprint_of, save_fingerprint

    parser = argparse.ArgumentParser(prog="python -m tests.gpt2_twins",
                                     description="Write the Hugging Face twin's fingerprints to tests/parity/.")
    parser.add_argument("which", nargs="*", choices=["twin", "generation"], default=["twin", "generation"],
                        help=f"{fingerprint_file().name} (twin), {generation_fingerprint_file().name} (generation)")
    args = parser.parse_args(argv)
    if "generation" in args.which:
        write_generation_fingerprint()
    if "twin" not in args.which:
        return 0
    _, _, x, y = twin_case()
    observation, noise = hf_reference()
    path = fingerprint_file()
    tmp = path.with_name(path.stem + ".tmp.npz")
    save_fingerprint(tmp, fingerprint_of(observation, x=x, y=y, noise=noise))
    os.replace(tmp, path)  # atomic
    print(f"wrote {path} ({path.stat().st_size:,} bytes)")
    return 0


if __name__ == "__main__":
    import sys

    from twinbench.backends import select_keras_backend

    select_keras_backend("torch")
    sys.exit(main())
