"""``python -m twinbench check`` / ``twinbench.check``: a user's own Keras/PyTorch pair is checked like the registered
twins, and a broken pair is named at the right layer.

The broken twins are classic porting mistakes in a small ResNet-style network (tests/pairs/tiny_resnet.py): a
padding mismatch in the middle, a wrong BatchNorm epsilon, ReLU6 vs ReLU, a Flatten order bug. Comparing Keras
with PyTorch needs both in one process: the torch environment. The other environments check the one-line errors.
"""

from __future__ import annotations

import functools
import subprocess
import sys

import pytest

from conftest import BACKEND, ROOT

EXAMPLE = ROOT / "docs" / "examples" / "tiny_resnet_pair.py"
PAIRS = ROOT / "tests" / "pairs"


def _bench(*args):
    return subprocess.run([sys.executable, "-m", "twinbench", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=300)


def _bench_here(capsys, monkeypatch, *args):
    """``python -m twinbench ARGS`` in this process (no second framework start-up): (exit code, stdout, stderr)."""
    from twinbench.cli import main

    monkeypatch.chdir(ROOT)
    code = main(list(args))
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.fixture(scope="module")
def tiny_resnet():
    pytest.importorskip("torch")
    if BACKEND != "torch":
        pytest.skip("the check runs Keras next to PyTorch: the torch environment")
    sys.path.insert(0, str(PAIRS))
    import tiny_resnet

    return tiny_resnet


def _check(tiny_resnet, *, keras=None, torch=None, **kwargs):
    from twinbench import check

    return check(functools.partial(tiny_resnet.keras_model, **(keras or {})),
                 functools.partial(tiny_resnet.torch_model, **(torch or {})),
                 input_shape=tiny_resnet.INPUT_SHAPE, num_classes=tiny_resnet.NUM_CLASSES, **kwargs)


def test_the_intact_pair_is_identical(tiny_resnet):
    report = _check(tiny_resnet)
    assert report.identical, str(report)
    assert "22 tensors paired in the order the layers run" in str(report)
    assert report.divergence is None


# (what is broken, Keras/PyTorch builder options, the layers that must be named, where, Keras layers in between)
BROKEN = [
    ("padding", {"padding": "same"}, {}, ("block_conv1", "a_conv"), "output", []),
    ("bn-epsilon", {"proj_bn_epsilon": 1e-3}, {}, ("block_proj_bn", "skip_norm"), "output", []),
    ("relu6", {"bn1_gamma": 8.0}, {"activation": "relu6"}, ("block_conv2", "b_conv"), "input", ["block_relu1"]),
    ("flatten-order", {}, {"flatten": "nhwc"}, ("logits", "head"), "input", ["block_add", "block_out", "pool",
                                                                          "flatten"]),
]


@pytest.mark.parametrize(("keras", "torch", "layers", "where", "between"), [b[1:] for b in BROKEN],
                         ids=[b[0] for b in BROKEN])
def test_a_broken_twin_is_named_at_the_right_layer(tiny_resnet, keras, torch, layers, where, between):
    report = _check(tiny_resnet, keras=keras, torch=torch)
    assert not report.identical and report.localised
    assert "NOT identical" in report.verdict
    found = report.divergence
    assert found is not None, str(report)
    assert (found.keras_layer, found.torch_module, found.where) == (*layers, where), str(report)
    assert found.between == between
    assert found.max_diff > found.tolerance > 0
    assert f"Keras layer {layers[0]!r} / PyTorch module {layers[1]!r}" in str(report)


def test_a_mapping_pairs_by_name(tiny_resnet):
    keys = {"stem_conv/kernel": "conv0.weight", "block_conv1/kernel": "a_conv.weight",
            "block_conv2/kernel": "b_conv.weight", "block_proj/kernel": "skip_conv.weight",
            "logits/kernel": "head.weight", "logits/bias": "head.bias"}
    norms = {"stem_bn": "norm0", "block_bn1": "a_norm", "block_bn2": "b_norm", "block_proj_bn": "skip_norm"}
    for keras_name, torch_name in norms.items():
        for keras_var, torch_var in (("gamma", "weight"), ("beta", "bias"), ("moving_mean", "running_mean"),
                                     ("moving_variance", "running_var")):
            keys[f"{keras_name}/{keras_var}"] = f"{torch_name}.{torch_var}"
    report = _check(tiny_resnet, torch_keys=keys)
    assert report.identical, str(report)
    assert "paired by the torch_keys mapping" in str(report)


def test_a_pairing_that_cannot_work_lists_both_sides(tiny_resnet):
    from torch import nn

    from twinbench.models.weights import WeightMismatchError

    def swapped_torch_model(*, input_shape, num_classes):  # same parameter count, the skip conv 3x3 -> 1x1 swapped
        module = tiny_resnet.torch_model(input_shape=input_shape, num_classes=num_classes)
        module.skip_conv = nn.Conv2d(8, 16, 1, stride=2, bias=False)
        module.b_conv = nn.Conv2d(16, 16, (1, 9), padding=(0, 4), bias=False)  # 2,304 weights as 3x3 has
        return module

    from twinbench import check

    with pytest.raises(WeightMismatchError, match=r"Keras layer 'block_conv2' .* no PyTorch module left fits it\. "
                                                  r"Keras from there: \[block_conv2/kernel \(3, 3, 16, 16\).*"
                                                  r"PyTorch unpaired: \[b_conv.weight \(16, 16, 1, 9\)"):
        check(tiny_resnet.keras_model, swapped_torch_model, input_shape=tiny_resnet.INPUT_SHAPE,
              num_classes=tiny_resnet.NUM_CLASSES)


def test_different_parameter_counts_are_not_identical(tiny_resnet):
    from torch import nn

    def torch_model_with_a_bias(*, input_shape, num_classes):
        module = tiny_resnet.torch_model(input_shape=input_shape, num_classes=num_classes)
        module.b_conv = nn.Conv2d(16, 16, 3, padding=1, bias=True)  # 16 more parameters
        return module

    from twinbench import check

    report = check(tiny_resnet.keras_model, torch_model_with_a_bias, input_shape=tiny_resnet.INPUT_SHAPE,
                   num_classes=tiny_resnet.NUM_CLASSES)
    assert not report.identical
    assert report.verdict.endswith("NOT identical: parameter counts differ: Keras 6,482 vs PyTorch 6,498")
    assert "does not fit" in str(report) or "no PyTorch module left fits" in str(report)
    # Nothing was paired, so nothing is said of paired layers or their gradients.
    assert not report.localised and report.divergence is None and report.gradient_divergence is None
    assert "paired layer" not in str(report) and "gradients" not in str(report), str(report)


def test_a_pair_without_weights_is_not_called_identical(tiny_resnet):
    import keras
    from torch import nn

    from twinbench import check
    from twinbench.twins.own_pair import PairError

    def keras_pool(*, input_shape, num_classes):  # every name given: Keras' automatic names count up per process
        inputs = keras.Input(input_shape, name="images")
        return keras.Model(inputs, keras.layers.GlobalAveragePooling2D(name="pool")(inputs), name="pool_only")

    class TorchPool(nn.Module):
        def forward(self, x):
            return x.mean(dim=(2, 3))

    with pytest.raises(PairError, match=r"neither model has weights to pair \(Keras 0, PyTorch 0 tensors\)"):
        check(keras_pool, lambda **_: TorchPool(), input_shape=(8, 8, 3), num_classes=3)


def test_a_registered_model_is_checked_by_name(tiny_resnet):
    from twinbench.twins.own_pair import check_registered

    report = check_registered("cifar_cnn")
    assert report.identical, str(report)
    assert "paired by name" in str(report)


@pytest.mark.large  # a child process that starts PyTorch and Keras; the pair is checked in-process above
def test_cli_example_pair_exits_0(tiny_resnet):
    done = _bench("check", str(EXAMPLE))
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[0] == "tiny_resnet_pair.py: identical (float32, within the float32 floor)"


@pytest.mark.large  # likewise: the broken pairs are named in-process above
def test_cli_broken_pair_exits_1_and_names_the_layer(tiny_resnet):
    done = _bench("check", str(PAIRS / "bn_epsilon_pair.py"))
    assert done.returncode == 1, done.stderr
    assert "NOT identical" in done.stdout.splitlines()[0]
    assert "output of Keras layer 'block_proj_bn' / PyTorch module 'skip_norm'" in done.stdout
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize(("args", "expect"), [
    (("check", "no_such_pair.py"), r"Pair file 'no_such_pair.py' does not exist\."),
    (("check", "README.md"), r"A pair file is a Python file \(FILE.py\)\. Received: 'README.md'\."),
    (("check",), r"one of the arguments FILE.py --model is required"),
], ids=["missing-file", "not-python", "nothing-to-check"])
def test_cli_bad_input_is_one_line(args, expect, capsys, monkeypatch):
    import re

    code, _, err = _bench_here(capsys, monkeypatch, *args)
    assert code == 2
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.startswith("twinbench: error: ")]
    assert len(lines) == 1 and re.search(expect, lines[0]), err


def test_cli_without_pytorch_says_where_to_run(capsys, monkeypatch):
    import importlib.util

    if importlib.util.find_spec("torch") is not None:
        pytest.skip("PyTorch is installed here")
    code, _, err = _bench_here(capsys, monkeypatch, "check", str(EXAMPLE))
    assert code == 2 and "Traceback" not in err
    assert "twinbench: error: " in err
    assert "bench check compares with PyTorch, which this environment lacks" in err
