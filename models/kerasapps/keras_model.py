"""The stock ``keras.applications`` ResNet50, VGG19 and MobileNetV2: the *definition effect* variants.

Popular framework comparisons train these next to torchvision's models and credit every difference to the
framework. They are not the same networks. Each builder below returns the keras.applications model
untouched (``weights=None``, ``include_top=True``, ``classifier_activation=None`` so that it outputs logits),
and its docstring lists every structural difference from torchvision's definition, which the matched
definitions in ``models/resnet``, ``models/vgg`` and ``models/mobilenet_v2`` remove.

These variants have builders for ``keras`` and ``tf_keras`` only: there is no PyTorch network with these
definitions in torchvision.
"""

import keras


def _image(input_shape):
    """A named input, so layer names do not depend on how many models the process built before."""
    return keras.Input(shape=tuple(input_shape), name="image")


def resnet50_kerasapps(*, input_shape=(224, 224, 3), num_classes=1000):
    """``keras.applications.ResNet50`` (He et al., CVPR 2016, https://arxiv.org/abs/1512.03385), logits out.

    Parameters: 25,583,592 at 1000 classes, 26,560 more than torchvision's 25,557,032.

    Differences from ``torchvision.models.resnet50``:

    - every convolution has a bias (the 26,560 extra parameters), although BatchNorm follows each one;
    - ResNet **v1**: a downsampling block strides its first 1x1 convolution, torchvision (v1.5) its 3x3
      convolution, so the 3x3 convolution sees a map 4 times smaller (fewer FLOPs, different features);
    - BatchNorm epsilon 1.001e-5 (torchvision 1e-5) and Keras' default momentum 0.99 (torch terms 0.01;
      torchvision 0.1), with the biased batch variance in the moving average;
    - Glorot-uniform kernels and zero biases everywhere (torchvision: ``kaiming_normal_(mode="fan_out")``
      for convolutions, ``nn.Linear``'s uniform default for the classifier);
    - the padding is the same (explicit 3 and 1 pixels before the stem convolution and max-pool).
    """
    return keras.applications.ResNet50(weights=None, include_top=True, input_tensor=_image(input_shape),
                                       classes=num_classes, classifier_activation=None)


def vgg19_kerasapps(*, input_shape=(224, 224, 3), num_classes=1000):
    """``keras.applications.VGG19`` (Simonyan & Zisserman, ICLR 2015, https://arxiv.org/abs/1409.1556), logits out.

    Parameters: 143,667,240 at 224x224 and 1000 classes, the same as torchvision; but 38,947,914 at
    32x32 and 10 classes, where the matched definition has 139,611,210.

    Differences from ``torchvision.models.vgg19``:

    - no adaptive average pooling: the classifier flattens whatever the convolutions leave (7x7x512 =
      25,088 features at 224x224, but 1x1x512 = 512 at 32x32), so at CIFAR size ``fc1`` has 49 times
      fewer weights and the network is a different one;
    - no Dropout in the classifier (torchvision: Dropout(0.5) after each hidden layer);
    - Glorot-uniform kernels (torchvision: ``kaiming_normal_(mode="fan_out")`` for convolutions,
      ``normal_(0, 0.01)`` for the Dense layers);
    - the convolutions themselves are identical (3x3, padding 1, with bias, ReLU; 2x2 max-pools).
    """
    return keras.applications.VGG19(weights=None, include_top=True, input_tensor=_image(input_shape),
                                    classes=num_classes, classifier_activation=None)


def mobilenet_v2_kerasapps(*, input_shape=(224, 224, 3), num_classes=1000):
    """``keras.applications.MobileNetV2`` (Sandler et al., CVPR 2018, https://arxiv.org/abs/1801.04381), logits out.

    Parameters: 3,504,872 at 1000 classes, the same as torchvision (BatchNorm statistics not counted).

    Differences from ``torchvision.models.mobilenet_v2``:

    - stride-2 convolutions pad asymmetrically on even-sized inputs: the stem uses ``padding="same"`` and the
      depthwise convolutions ``correct_pad`` = 0 pixels top/left and 1 bottom/right (torchvision: 1 on every
      side), so every downsampled map is shifted by one pixel;
    - BatchNorm epsilon 1e-3 and momentum 0.999 (torch terms 0.001; torchvision: 1e-5 and 0.1), with the
      biased batch variance in the moving average;
    - no Dropout before the classifier (torchvision: Dropout(0.2));
    - Glorot-uniform kernels (torchvision: ``kaiming_normal_(mode="fan_out")``, classifier ``normal_(0, 0.01)``).
    """
    return keras.applications.MobileNetV2(weights=None, include_top=True, input_tensor=_image(input_shape),
                                          classes=num_classes, classifier_activation=None)
