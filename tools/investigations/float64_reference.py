"""How far PyTorch's own float32 gradients are from float64 ones: the floor under any twin comparison.

The twin check (``bench/twins/parity.py``) compares two frameworks in float32. How closely can they agree at
best? This script runs the PyTorch twin of a model once in float32 and once in float64 (the same weights,
the same batch, training mode, so BatchNorm uses batch statistics) and reports, per parameter tensor,
``max |g32 - g64| / max |g64|``: the error of float32 arithmetic alone, in one framework, relative to the
tensor's largest gradient. No two frameworks can be expected to agree more closely than that.

    KERAS_BACKEND=torch python tools/investigations/float64_reference.py --model resnet50 --batch-size 8 --input-size 32
    KERAS_BACKEND=torch python tools/investigations/float64_reference.py --model cifar_cnn

Runs in the torch environment (torchvision builds the big models); CPU only, a few seconds per model.

``--compare`` asks the question behind the twin check's tolerances, in any environment: at each model's twin
case, how far is every implementation of this environment from the exact (float64) answer, measured in units of
the PyTorch twin's own float32 error (the envelope in the committed fingerprint, ``tests/parity/``)? The exact
answer is computed here: the PyTorch twin in float64 (torch environment), the Keras definition under the float64
policy on TensorFlow or on JAX (``jax_enable_x64``). It also compares that float64 result with the PyTorch
twin's committed float32 values: for the same network they lie within about one envelope of each other.

    KERAS_BACKEND=jax python tools/investigations/float64_reference.py --compare --model resnet50
"""

from __future__ import annotations

import argparse
import copy
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))


# A tensor whose float64 gradient is this small against the model's largest is zero up to rounding: e.g. the bias
# of a BatchNorm whose output feeds a linear conv and a training-mode BatchNorm, which subtracts any constant
# shift again. Its relative error is rounding divided by rounding; such tensors are counted, not compared.
ZERO_GRADIENT = 1e-9
FIXED_DECIDES = 1e-6  # --compare: an envelope below this share of a tensor's largest gradient is floored here


def gradient_errors(model_name: str, *, batch_size: int, input_size: int, seed: int):
    """``(parameter name, max |g32 - g64| / max |g64|)`` per parameter, largest first, and the names of the
    parameters whose float64 gradient is zero up to rounding (left out of the list)."""
    import torch
    import torch.nn.functional as F

    from twinbench.models import build_model, get_model_spec

    torch.manual_seed(seed)
    spec = get_model_spec(model_name)
    channels = spec.input_shape[-1]
    # The twin tests' builder options: e.g. no dropout, whose random masks would differ between the two runs.
    model32 = build_model(model_name, "torch", input_shape=(input_size, input_size, channels), num_classes=10,
                          **spec.twin_case.options)
    model64 = copy.deepcopy(model32).double()
    x = torch.rand(batch_size, channels, input_size, input_size)
    y = torch.randint(0, 10, (batch_size,))
    for model, inputs in ((model32, x), (model64, x.double())):
        model.train()
        F.cross_entropy(model(inputs), y).backward()
    pairs = list(zip(model32.named_parameters(), model64.named_parameters(), strict=True))
    largest = max(p64.grad.abs().max().item() for _, (_, p64) in pairs)
    errors, zero = [], []
    for (name, p32), (_, p64) in pairs:
        scale = p64.grad.abs().max().item()
        if scale <= ZERO_GRADIENT * largest:
            zero.append(name)
            continue
        errors.append((name, (p32.grad.double() - p64.grad).abs().max().item() / scale))
    return sorted(errors, key=lambda item: -item[1]), zero


def compare(names, backend: str) -> None:
    """Print, per model and implementation here, the worst ``|g32 - g64| / envelope`` over gradient tensors."""
    import numpy as np

    from twinbench.backends import get_runner
    from twinbench.models import build_model, get_model_spec
    from twinbench.models.weights import canonical_weights
    from twinbench.twins.parity import (
        committed_noise,
        fingerprint_path,
        float64_noise,
        load_fingerprint,
        observe,
        observe_twin,
        parity_case,
        parity_options,
        sketch,
    )

    if backend == "jax":
        import jax

        jax.config.update("jax_enable_x64", True)  # before any array exists; Keras keeps float32 where asked
    exact_by = ("torch", "torch") if backend == "torch" else ("keras", backend)
    here = [("torch", "torch"), ("keras", "torch")] if backend == "torch" else (
        [("tf_keras", "tensorflow"), ("keras", "tensorflow")] if backend == "tensorflow" else [("keras", "jax")])
    print(f"{'model':14s} {'implementation':18s} worst |g32 - g64| / envelope (tensor)      "
          "float64 vs PyTorch's committed float32, in envelopes")
    for name in names:
        noise = committed_noise(name)
        if noise is None:
            continue
        input_shape, num_classes, x, y = parity_case(name)
        reference = build_model(name, "keras", input_shape=input_shape, num_classes=num_classes, **parity_options(name))
        weights = canonical_weights(reference, seed=0)
        runner = get_runner(*exact_by)
        runner.setup(seed=0)
        exact = observe(runner, runner.prepare_float64(name, input_shape=input_shape, num_classes=num_classes,
                                                       weights=weights, options=parity_options(name)),
                        x=x.astype(np.float64), y=y, step=False)
        fixture = load_fingerprint(fingerprint_path(name))
        # The fingerprint samples elements of each gradient (twinbench.twins.parity.sketch): compare the float64 ones.
        vs_torch = max((np.abs(sketch(k, g)[:-2].astype(np.float64) - fixture[f"grad:{k}"][:-2]).max()
                        / max(noise[f"grad:{k}"], 1e-30), k) for k, g in exact.grads.items())
        for pair in here:
            if pair[0] not in get_model_spec(name).builders:
                continue
            twin = observe_twin(*pair, name, weights=weights, noise=noise)
            errors = float64_noise(twin.observation, exact)
            # Below a millionth of the tensor's largest gradient the fixed tolerances decide, not the envelope.
            worst = max((errors[f"grad:{k}"] / max(noise[f"grad:{k}"], FIXED_DECIDES * np.abs(g).max(), 1e-30), k)
                        for k, g in exact.grads.items())
            label = pair[0] if pair[0] != "keras" else f"keras[{pair[1]}]"
            print(f"{name:14s} {label:18s} {worst[0]:8.2f} ({worst[1]}){'':10s} {vs_torch[0]:6.2f} ({vs_torch[1]})")
            tensor = "layer1_0_bn1/gamma"  # the tensor of the keras[jax] question (docs: the noise floor)
            if tensor in exact.grads:
                norms = (np.linalg.norm(twin.observation.grads[tensor]), np.linalg.norm(exact.grads[tensor]))
                print(f"{'':33s}|gradient| of {tensor}: {norms[0]:.4f} here, {norms[1]:.4f} in float64, "
                      f"{float(fixture['grad:' + tensor][-2]):.4f} PyTorch float32")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--compare", action="store_true",
                        help="this environment's implementations against float64, in units of the committed envelope")
    parser.add_argument("--model", action="append", help="registered model (repeatable; default: all with a torch twin)")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--input-size", type=int, default=32)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.compare:
        import os

        from twinbench.backends import select_keras_backend
        from twinbench.models import list_models

        backend = os.environ.get("KERAS_BACKEND", "torch")
        select_keras_backend(backend)
        compare(args.model or list_models(), backend)
        return 0

    import statistics

    import torch

    from twinbench.backends import select_keras_backend
    from twinbench.models import get_model_spec, list_models

    select_keras_backend("torch")  # the registry's builders need the Keras backend chosen first
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    names = args.model or [m for m in list_models() if "torch" in get_model_spec(m).builders]
    print(f"torch {torch.__version__}, batch {args.batch_size}, {args.input_size}x{args.input_size} inputs, "
          f"training mode, seed {args.seed}: max |g32 - g64| / max |g64| per parameter tensor")
    print(f"{'model':14s} {'tensors':>7s} {'zero':>5s} {'median':>9s} {'largest':>9s}  largest at")
    for name in names:
        errors, zero = gradient_errors(name, batch_size=args.batch_size, input_size=args.input_size, seed=args.seed)
        median = statistics.median(e for _, e in errors)
        print(f"{name:14s} {len(errors):7d} {len(zero):5d} {median:9.2e} {errors[0][1]:9.2e}  {errors[0][0]}")
    print(f"zero: tensors whose float64 gradient is below {ZERO_GRADIENT:g} of the model's largest (zero up to "
          "rounding, e.g. a BatchNorm bias that the next training-mode BatchNorm cancels); not compared")
    return 0


if __name__ == "__main__":
    sys.exit(main())
