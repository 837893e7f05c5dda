"""The stock keras.applications ResNet50, VGG19 and MobileNetV2 (Keras 3 and tf.keras only, no PyTorch twin).

They exist to measure the *definition effect*: how much of a "Keras vs PyTorch" difference comes from
keras.applications defining a different network than torchvision. Each builder's docstring lists how.
"""

from twinbench.models._registry import ModelSpec, TwinCase, register_model

_VARIANTS = {
    # name: (paper, summary, parameters at 224x224x3 and 1000 classes, forward FLOPs per image at 1000 classes)
    "resnet50_kerasapps": (
        "He, Zhang, Ren & Sun, Deep Residual Learning for Image Recognition, CVPR 2016 (arXiv:1512.03385)",
        "keras.applications.ResNet50 (v1: stride on 1x1, conv bias, BN eps 1.001e-5, momentum 0.99)",
        25_583_592,
        {"224x224x3": 7_715_946_496, "32x32x3": 161_480_704},
    ),
    "vgg19_kerasapps": (
        "Simonyan & Zisserman, Very Deep Convolutional Networks for Large-Scale Image Recognition, ICLR 2015 "
        "(arXiv:1409.1556)",
        "keras.applications.VGG19 (no adaptive pool: 512 features at 32x32; no dropout)",
        143_667_240,
        {"224x224x3": 39_264_124_928, "32x32x3": 842_203_136},
    ),
    "mobilenet_v2_kerasapps": (
        "Sandler, Howard, Zhu, Zhmoginov & Chen, MobileNetV2: Inverted Residuals and Linear Bottlenecks, "
        "CVPR 2018 (arXiv:1801.04381)",
        "keras.applications.MobileNetV2 (asymmetric padding, BN eps 1e-3, momentum 0.999, no dropout)",
        3_504_872,
        {"224x224x3": 601_548_544, "32x32x3": 14_784_256},
    ),
}

for _name, (_paper, _summary, _params, _flops) in _VARIANTS.items():
    register_model(
        ModelSpec(
            name=_name,
            builders={
                "keras": f"twinbench.models.kerasapps.keras_model:{_name}",
                "tf_keras": f"twinbench.models.kerasapps.tf_keras_model:{_name}",
            },
            input_shape=(224, 224, 3),
            num_classes=1000,
            paper=_paper,
            summary=_summary,
            params=_params,
            forward_flops=_flops,
            min_input_size=32,
            head="predictions",
            twin_case=TwinCase(input_shape=(32, 32, 3), num_classes=10,
                               batch=2 if _name.startswith("vgg") else 8),  # BatchNorm nets: see models/resnet
        )
    )
