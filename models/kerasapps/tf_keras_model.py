"""The stock ``tf_keras.applications`` ResNet50, VGG19 and MobileNetV2: twins of ``keras_model.py``.

tf.keras' applications are the same definitions as Keras 3's (same layers, names and initializers) with
one difference in behaviour: tf.keras' BatchNormalization defaults to its *fused* kernel, which puts the
unbiased batch variance into the moving average (like PyTorch), while Keras 3 puts the biased one. To be a
twin of the Keras 3 model, every BatchNormalization here is rebuilt with ``fused=False`` (same weights and
forward pass, Keras 3's moving-average rule). That is the only change to the stock builders.
"""

import tf_keras


def _unfused_batch_norm(model):
    """A copy of ``model`` whose BatchNormalization layers use the unfused (biased moving variance) path."""

    def clone(layer):
        config = layer.get_config()
        if isinstance(layer, tf_keras.layers.BatchNormalization):
            config["fused"] = False
        return layer.__class__.from_config(config)

    return tf_keras.models.clone_model(model, clone_function=clone)


def _image(input_shape):
    """A named input, so layer names do not depend on how many models the process built before."""
    return tf_keras.Input(shape=tuple(input_shape), name="image")


def resnet50_kerasapps(*, input_shape=(224, 224, 3), num_classes=1000):
    """``tf_keras.applications.ResNet50`` with unfused BatchNorm; 25,583,592 parameters at 1000 classes."""
    return _unfused_batch_norm(tf_keras.applications.ResNet50(
        weights=None, include_top=True, input_tensor=_image(input_shape), classes=num_classes,
        classifier_activation=None))


def vgg19_kerasapps(*, input_shape=(224, 224, 3), num_classes=1000):
    """``tf_keras.applications.VGG19`` (no BatchNorm); 143,667,240 parameters at 224x224 and 1000 classes."""
    return tf_keras.applications.VGG19(weights=None, include_top=True, input_tensor=_image(input_shape),
                                       classes=num_classes, classifier_activation=None)


def mobilenet_v2_kerasapps(*, input_shape=(224, 224, 3), num_classes=1000):
    """``tf_keras.applications.MobileNetV2`` with unfused BatchNorm; 3,504,872 parameters at 1000 classes."""
    return _unfused_batch_norm(tf_keras.applications.MobileNetV2(
        weights=None, include_top=True, input_tensor=_image(input_shape), classes=num_classes,
        classifier_activation=None))
