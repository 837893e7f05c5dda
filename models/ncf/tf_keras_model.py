"""NeuMF in tf.keras (Keras 2): the line-by-line twin of ``keras_model.py``."""

import tf_keras
from tf_keras import layers

from twinbench.models.ncf.config import EMBEDDING_STD, MF_DIM, MLP_LAYERS, check_arguments


def neumf(*, input_shape=(128, 256), num_classes=1, mf_dim=MF_DIM, mlp_layers=MLP_LAYERS):
    """NeuMF in tf.keras (Keras 2).

    Args:
        input_shape: ``(num_users, num_items)``: the sizes of the two embedding tables (``twinbench.data.tasks``).
        num_classes: must be 1 (one logit).
        mf_dim: GMF factors.
        mlp_layers: the MLP's sizes; the first is the concatenated user and item embeddings (half each).

    Returns:
        A ``tf_keras.Model`` taking ``(user, item)`` int32 arrays of shape ``(N,)`` and returning ``(N, 1)`` logits.
    """
    num_users, num_items = check_arguments(input_shape, num_classes, mlp_layers)
    user = tf_keras.Input(shape=(), dtype="int32", name="user")
    item = tf_keras.Input(shape=(), dtype="int32", name="item")

    def embedding(count, dim, name):
        return layers.Embedding(count, dim, embeddings_initializer=tf_keras.initializers.RandomNormal(0.0, EMBEDDING_STD),
                                name=name)

    mf = layers.Multiply(name="mf")([embedding(num_users, mf_dim, "mf_user_embed")(user),
                                     embedding(num_items, mf_dim, "mf_item_embed")(item)])
    x = layers.Concatenate(name="mlp_concat")([embedding(num_users, mlp_layers[0] // 2, "mlp_user_embed")(user),
                                               embedding(num_items, mlp_layers[0] // 2, "mlp_item_embed")(item)])
    for index, units in enumerate(mlp_layers[1:]):
        x = layers.Dense(units, activation="relu", kernel_initializer="glorot_uniform", name=f"mlp_{index}")(x)
    x = layers.Concatenate(name="neumf_concat")([mf, x])  # GMF first, then MLP
    outputs = layers.Dense(1, kernel_initializer="lecun_uniform", name="final")(x)
    return tf_keras.Model([user, item], outputs, name="neumf")
