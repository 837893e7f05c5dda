"""AlexNet: a Keras 3 definition matching torchvision's, its tf.keras twin, and torchvision itself."""

from twinbench.models._registry import ModelSpec, TwinCase, register_model
from twinbench.models.alexnet.config import MIN_INPUT_SIZE, PARAMS_IMAGENET

register_model(
    ModelSpec(
        name="alexnet",
        builders={
            "keras": "twinbench.models.alexnet.keras_model:alexnet",
            "torch": "twinbench.models.alexnet.torch_model:alexnet",
            "tf_keras": "twinbench.models.alexnet.tf_keras_model:alexnet",
        },
        input_shape=(224, 224, 3),
        num_classes=1000,
        paper="Krizhevsky, Sutskever & Hinton, ImageNet Classification with Deep Convolutional Neural Networks, "
              "NeurIPS 2012; torchvision's one-GPU variant (Krizhevsky, arXiv:1404.5997)",
        summary="AlexNet as torchvision defines it (adaptive 6x6 pool, dropout 0.5)",
        params=PARAMS_IMAGENET,
        forward_flops={"224x224x3": 1_428_376_960, "63x63x3": 196_289_920},  # at 1000 classes; models/flops.py
        torch_keys="twinbench.models.alexnet.config:torch_key",
        min_input_size=MIN_INPUT_SIZE,
        head="predictions",
        # no dropout: dropout masks cannot match across frameworks
        twin_case=TwinCase(input_shape=(63, 63, 3), num_classes=10, batch=2, options={"dropout": 0.0}),
    )
)
