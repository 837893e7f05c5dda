"""ResNet50: a Keras 3 definition matching torchvision's, its tf.keras twin, and torchvision itself."""

from twinbench.models._registry import ModelSpec, TwinCase, register_model
from twinbench.models.resnet.config import PARAMS_IMAGENET

register_model(
    ModelSpec(
        name="resnet50",
        builders={
            "keras": "twinbench.models.resnet.keras_model:resnet50",
            "torch": "twinbench.models.resnet.torch_model:resnet50",
            "tf_keras": "twinbench.models.resnet.tf_keras_model:resnet50",
        },
        input_shape=(224, 224, 3),
        num_classes=1000,
        paper="He, Zhang, Ren & Sun, Deep Residual Learning for Image Recognition, CVPR 2016 "
              "(arXiv:1512.03385); torchvision's v1.5 variant",
        summary="ResNet50 as torchvision defines it (v1.5, no conv bias, BN eps 1e-5)",
        params=PARAMS_IMAGENET,
        forward_flops={"224x224x3": 8_178_368_512, "32x32x3": 170_917_888},  # at 1000 classes; models/flops.py
        torch_keys="twinbench.models.resnet.config:torch_key",
        min_input_size=32,
        head="fc",
        # 64x64, 8 images: at 32x32 the last stage's training-mode BatchNorms see 8-32 values per channel, and
        # float32 kernels (tf.keras' fused one most) land up to 18x further from float64 than PyTorch does
        # (bench/twins/parity.py, "the noise floor"); with 2 images, BatchNorm over a 1x1 map is a sign function.
        # One bottleneck block per stage (the first, with its downsampling shortcut) at full width: every stage and
        # every kind of layer, a third of the work (the twin tests' time budget); the other blocks of a stage are
        # the same code, and the registry's parameter-count test builds all 16 in every implementation.
        twin_case=TwinCase(input_shape=(64, 64, 3), num_classes=10, batch=8, options={"blocks": (1, 1, 1, 1)}),
        data_formats=("channels_last", "channels_first"),
    )
)
