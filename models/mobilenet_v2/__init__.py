"""MobileNetV2: a Keras 3 definition matching torchvision's, its tf.keras twin, and torchvision itself."""

from twinbench.models._registry import ModelSpec, TwinCase, register_model
from twinbench.models.mobilenet_v2.config import PARAMS_IMAGENET

register_model(
    ModelSpec(
        name="mobilenet_v2",
        builders={
            "keras": "twinbench.models.mobilenet_v2.keras_model:mobilenet_v2",
            "torch": "twinbench.models.mobilenet_v2.torch_model:mobilenet_v2",
            "tf_keras": "twinbench.models.mobilenet_v2.tf_keras_model:mobilenet_v2",
        },
        input_shape=(224, 224, 3),
        num_classes=1000,
        paper="Sandler, Howard, Zhu, Zhmoginov & Chen, MobileNetV2: Inverted Residuals and Linear Bottlenecks, "
              "CVPR 2018 (arXiv:1801.04381), width 1.0",
        summary="MobileNetV2 as torchvision defines it (symmetric padding, BN eps 1e-5, dropout 0.2)",
        params=PARAMS_IMAGENET,
        forward_flops={"224x224x3": 601_548_544, "32x32x3": 14_784_256},  # at 1000 classes; models/flops.py
        torch_keys="twinbench.models.mobilenet_v2.config:torch_key",
        min_input_size=32,
        head="classifier",
        # 8 images: with 2, training-mode BatchNorm over a 1x1 map is a sign function of the difference
        # of two numbers, and float32 rounding flips it (bench/twins/parity.py, "the noise floor");
        # no dropout: dropout masks cannot match across frameworks
        twin_case=TwinCase(input_shape=(32, 32, 3), num_classes=10, batch=8, options={"dropout": 0.0}),
        data_formats=("channels_last", "channels_first"),
    )
)
