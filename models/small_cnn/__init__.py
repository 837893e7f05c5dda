"""The two seed CNNs: ``cifar_cnn`` and ``mnist_cnn`` (Keras 3 definition + PyTorch and tf.keras twins)."""

from twinbench.models._registry import ModelSpec, register_model
from twinbench.models.small_cnn.config import MIN_INPUT_SIZE, SMALL_CNNS

_PAPER = "LeCun et al., Gradient-based learning applied to document recognition, Proc. IEEE 1998 (LeNet-style CNN)"
_SUMMARY = {
    "cifar_cnn": "CIFAR-10 comparison CNN: conv32-pool-conv64-pool-dense64-logits, 32x32x3",
    "mnist_cnn": "MNIST CNN: conv32-pool-conv64-pool-dense128-logits, 28x28x1",
}

for _name, _cfg in SMALL_CNNS.items():
    register_model(
        ModelSpec(
            name=_name,
            builders={
                "keras": f"twinbench.models.small_cnn.keras_model:{_name}",
                "torch": f"twinbench.models.small_cnn.torch_model:{_name}",
                "tf_keras": f"twinbench.models.small_cnn.tf_keras_model:{_name}",
            },
            input_shape=_cfg["input_shape"],
            num_classes=_cfg["num_classes"],
            paper=_PAPER,
            summary=_SUMMARY[_name],
            params=_cfg["params"],
            forward_flops={"x".join(map(str, _cfg["input_shape"])): _cfg["forward_flops"]},
            min_input_size=MIN_INPUT_SIZE,
            head="logits",
            data_formats=("channels_last", "channels_first"),
        )
    )
