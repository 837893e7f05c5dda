"""VGG19: a Keras 3 definition matching torchvision's, its tf.keras twin, and torchvision itself."""

from twinbench.models._registry import ModelSpec, TwinCase, register_model
from twinbench.models.vgg.config import PARAMS_IMAGENET

register_model(
    ModelSpec(
        name="vgg19",
        builders={
            "keras": "twinbench.models.vgg.keras_model:vgg19",
            "torch": "twinbench.models.vgg.torch_model:vgg19",
            "tf_keras": "twinbench.models.vgg.tf_keras_model:vgg19",
        },
        input_shape=(224, 224, 3),
        num_classes=1000,
        paper="Simonyan & Zisserman, Very Deep Convolutional Networks for Large-Scale Image Recognition, "
              "ICLR 2015 (arXiv:1409.1556), configuration E",
        summary="VGG19 as torchvision defines it (adaptive 7x7 pool, dropout 0.5)",
        params=PARAMS_IMAGENET,
        forward_flops={"224x224x3": 39_264_124_928, "32x32x3": 1_043_529_728},  # at 1000 classes; models/flops.py
        torch_keys="twinbench.models.vgg.config:torch_key",
        min_input_size=32,
        head="predictions",
        # no dropout: dropout masks cannot match across frameworks
        twin_case=TwinCase(input_shape=(32, 32, 3), num_classes=10, batch=2, options={"dropout": 0.0}),
    )
)
