"""The Vision Transformer, defined once in Keras 3 so that it is numerically the network torchvision's
``VisionTransformer`` builds (``vit_b_16``, and ``vit_tiny``, the same class at CPU size).

Dosovitskiy et al., *An Image is Worth 16x16 Words: Transformers for Image Recognition at Scale*, ICLR 2021
(https://arxiv.org/abs/2010.11929), in torchvision's form (``torchvision/models/vision_transformer.py``).

The network: a Conv2D with kernel = stride = patch size cuts the image into patches and embeds each as a token of
width D (``conv_proj``); a learned class token is put in front; a learned position embedding is added; then
``num_layers`` pre-LayerNorm encoder blocks, a final LayerNorm, and a Dense head on the class token's output.
One block::

    x = x + Dropout(Attention(LayerNorm_1(x)))        # multi-head self-attention
    x = x + MLP(LayerNorm_2(x))                       # Dense(mlp_dim) -> GELU -> Dropout -> Dense(D) -> Dropout

What it takes to be torchvision's network, detail by detail:

- **Patch embedding**: ``Conv2D(D, patch, strides=patch, padding="valid")`` with bias, then a reshape of the
  ``(h, w, D)`` map to ``h*w`` tokens in row-major order, which is the order of torchvision's
  ``reshape(n, D, h*w).permute(0, 2, 1)`` of its ``(D, h, w)`` map. Kernel init ``trunc_normal_(std=sqrt(1/fan_in))``:
  torch truncates at +-2 in absolute value, i.e. at about 14 standard deviations for a 16x16x3 patch, so it is the
  untruncated normal of ``VarianceScaling(1, "fan_in")`` here (Keras' ``TruncatedNormal`` cuts at 2 std).
- **Class token and position embedding**: torchvision's ``class_token`` is a ``(1, 1, D)`` parameter, zeros,
  concatenated *in front* of the patch tokens; ``encoder.pos_embedding`` is ``(1, 1 + patches, D)``,
  ``normal_(std=0.02)``, added to every token including the class token. Both are plain weights here
  (``ClassToken``, ``PositionEmbedding``) with the same shapes, so they map one to one.
- **LayerNorm epsilon 1e-6** (torchvision's ``partial(nn.LayerNorm, eps=1e-6)``; Keras' default is 1e-3, torch's
  1e-5). Both normalise with the biased variance over the last axis.
- **Exact GELU**: ``nn.GELU()`` is ``x * Phi(x)`` with the error function. ``keras.ops.gelu`` defaults to the tanh
  approximation (``approximate=True``), so it is spelled ``approximate=False`` here. The two differ by up to
  4.7e-4 (at |x| = 2.7), far above float32 noise: a tanh-GELU twin fails the twin check (``tests/test_vit.py``).
- **The packed attention projection**: ``nn.MultiheadAttention`` keeps q, k and v in one ``in_proj_weight`` of shape
  ``(3D, D)`` (rows: q's D, then k's, then v's) and one ``in_proj_bias`` ``(3D,)``. ``keras.layers.MultiHeadAttention``
  has three separate ``EinsumDense`` projections of shape ``(D, heads, D/heads)``. This definition keeps torch's
  packing: one ``Dense(3D)`` (``encoder_layer_{i}_attention_qkv``), whose kernel is ``in_proj_weight`` transposed,
  split q, k, v in that order (``SelfAttention``). The output projection is ``out_proj``. Heads are contiguous
  ``D/heads`` slices of q, k and v; scores are ``q k^T / sqrt(D/heads)``, softmax over the keys. Swapping q and k
  transposes every score matrix: such a twin fails the twin check too.
  Init as in ``nn.MultiheadAttention._reset_parameters``: ``in_proj_weight`` ``xavier_uniform_`` over the packed
  ``(3D, D)`` matrix (the Keras ``(D, 3D)`` kernel has the same fans), biases zero, ``out_proj.weight`` the
  ``nn.Linear`` default.
- **MLP**: ``Dense(mlp_dim) -> GELU -> Dropout -> Dense(D) -> Dropout`` (torchvision's ``MLPBlock``: ``mlp.0``,
  ``mlp.3``), kernels ``xavier_uniform_``, biases ``normal_(std=1e-6)``.
- **The head**: ``Dense(num_classes)`` on token 0 after the final LayerNorm (``heads.head``; no pre-logits layer, as
  in ``vit_b_16``). torchvision initialises it to zeros; with ``zero_head=False`` it is the ``nn.Linear`` default
  instead, which the twin tests use: a zero head makes every logit 0 and every other gradient 0, so nothing would
  be compared.
- **Dropout** (``dropout`` after the position embedding, after attention and in the MLP; ``attention_dropout`` on
  the attention weights) is 0.0 by default, as in torchvision, and 0.0 in the twin tests: masks cannot match.

torchvision builds the position embedding for one image size (``image_size``); so does this definition, from
``input_shape``: a square image whose side is a multiple of the patch size.
"""

import math

import keras
from keras import layers, ops

from twinbench.models.common.keras_layers import image_input, torch_linear_bias, torch_linear_kernel
from twinbench.models.vit.config import (
    CONFIGS,
    DROPOUT,
    GELU_APPROXIMATE,
    LAYER_NORM_EPSILON,
    MLP_BIAS_STD,
    POS_EMBEDDING_STD,
    check_image_size,
    num_patches,
)


@keras.saving.register_keras_serializable(package="twinbench")
class ClassToken(keras.layers.Layer):
    """Puts a learned ``(1, 1, D)`` token in front of the sequence: torchvision's ``class_token`` (zeros at init)."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.token_initializer = keras.initializers.Zeros()

    def build(self, input_shape):
        self.token = self.add_weight(shape=(1, 1, input_shape[-1]), initializer=self.token_initializer, name="token")

    def call(self, inputs):
        token = ops.broadcast_to(ops.cast(self.token, inputs.dtype), (ops.shape(inputs)[0], 1, inputs.shape[-1]))
        return ops.concatenate([token, inputs], axis=1)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], None if input_shape[1] is None else input_shape[1] + 1, input_shape[2])


@keras.saving.register_keras_serializable(package="twinbench")
class PositionEmbedding(keras.layers.Layer):
    """Adds a learned ``(1, tokens, D)`` embedding: torchvision's ``encoder.pos_embedding`` (normal, std 0.02)."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.embedding_initializer = keras.initializers.RandomNormal(stddev=POS_EMBEDDING_STD)

    def build(self, input_shape):
        self.embedding = self.add_weight(shape=(1, input_shape[1], input_shape[2]),
                                         initializer=self.embedding_initializer, name="embedding")

    def call(self, inputs):
        return inputs + ops.cast(self.embedding, inputs.dtype)


@keras.saving.register_keras_serializable(package="twinbench")
class SelfAttention(keras.layers.Layer):
    """Multi-head scaled dot-product attention on a packed ``(batch, tokens, 3D)`` q, k, v tensor.

    The part of ``nn.MultiheadAttention`` between ``in_proj`` and ``out_proj``: split q, k, v (in that order),
    split each into ``num_heads`` contiguous slices, ``softmax(q k^T / sqrt(D / num_heads)) v`` per head, heads
    concatenated back to ``(batch, tokens, D)``. ``dropout`` acts on the attention weights (torch's
    ``attention_dropout``). No weights: the projections are the ``Dense`` layers around it.

    Args:
        num_heads: attention heads.
        dropout: dropout rate on the attention weights.
        **kwargs: base layer arguments (e.g. ``name``).
    """

    def __init__(self, num_heads, *, dropout=0.0, **kwargs):
        super().__init__(**kwargs)
        self.num_heads = num_heads
        self.dropout = dropout
        self.dropout_layer = layers.Dropout(dropout)

    def call(self, qkv, training=None):
        tokens, width = qkv.shape[1], qkv.shape[2] // 3
        head_dim = width // self.num_heads

        def heads(x):  # (batch, tokens, D) -> (batch, heads, tokens, D / heads)
            return ops.transpose(ops.reshape(x, (-1, tokens, self.num_heads, head_dim)), (0, 2, 1, 3))

        q, k, v = (heads(part) for part in self.split_qkv(qkv))
        scores = ops.matmul(q, ops.transpose(k, (0, 1, 3, 2))) * (1.0 / math.sqrt(head_dim))
        weights = self.dropout_layer(ops.softmax(scores, axis=-1), training=training)
        out = ops.transpose(ops.matmul(weights, v), (0, 2, 1, 3))
        return ops.reshape(out, (-1, tokens, width))

    def split_qkv(self, qkv):
        """q, k, v: the thirds of the packed projection, in torch's ``in_proj_weight`` order."""
        return ops.split(qkv, 3, axis=-1)

    def compute_output_shape(self, input_shape):
        return (*input_shape[:2], input_shape[2] // 3)

    def macs(self) -> int:
        """Multiply-accumulates per sample (``twinbench.models.flops``): ``q k^T`` and ``weights v``, each tokens^2 * D."""
        tokens, width = self.input.shape[1], self.input.shape[2] // 3
        return 2 * tokens * tokens * width

    def get_config(self):
        return {**super().get_config(), "num_heads": self.num_heads, "dropout": self.dropout}


@keras.saving.register_keras_serializable(package="twinbench")
class GELU(keras.layers.Layer):
    """``nn.GELU()``: ``x * Phi(x)``, exact (erf) unless ``approximate=True`` (the tanh form, ``nn.GELU("tanh")``)."""

    def __init__(self, *, approximate=GELU_APPROXIMATE, **kwargs):
        super().__init__(**kwargs)
        self.approximate = approximate

    def call(self, inputs):
        return ops.gelu(inputs, approximate=self.approximate)

    def get_config(self):
        return {**super().get_config(), "approximate": self.approximate}


@keras.saving.register_keras_serializable(package="twinbench")
class ClassTokenOutput(keras.layers.Layer):
    """Token 0 of the sequence, ``x[:, 0]``: the class token's output, which the head classifies."""

    def call(self, inputs):
        return inputs[:, 0]

    def compute_output_shape(self, input_shape):
        return (input_shape[0], input_shape[2])


def _mlp_dense(units, name):
    """A Dense layer of torchvision's ``MLPBlock``: ``xavier_uniform_`` kernel, ``normal_(std=1e-6)`` bias."""
    return layers.Dense(units, kernel_initializer="glorot_uniform",
                        bias_initializer=keras.initializers.RandomNormal(stddev=MLP_BIAS_STD), name=name)


def encoder_block(x, *, num_heads, hidden_dim, mlp_dim, dropout, attention_dropout, approximate_gelu, name):
    """torchvision's ``EncoderBlock``: pre-LayerNorm attention and MLP, each added to its input."""
    y = layers.LayerNormalization(epsilon=LAYER_NORM_EPSILON, name=f"{name}_ln_1")(x)
    y = layers.Dense(3 * hidden_dim, kernel_initializer="glorot_uniform", bias_initializer="zeros",
                     name=f"{name}_attention_qkv")(y)  # torch's packed in_proj_weight, transposed
    y = SelfAttention(num_heads, dropout=attention_dropout, name=f"{name}_attention")(y)
    y = layers.Dense(hidden_dim, kernel_initializer=torch_linear_kernel(), bias_initializer="zeros",
                     name=f"{name}_attention_out")(y)
    y = layers.Dropout(dropout, name=f"{name}_attention_dropout")(y)
    x = layers.Add(name=f"{name}_add_1")([x, y])
    y = layers.LayerNormalization(epsilon=LAYER_NORM_EPSILON, name=f"{name}_ln_2")(x)
    y = _mlp_dense(mlp_dim, f"{name}_mlp_1")(y)
    y = GELU(approximate=approximate_gelu, name=f"{name}_gelu")(y)
    y = layers.Dropout(dropout, name=f"{name}_mlp_dropout_1")(y)
    y = _mlp_dense(hidden_dim, f"{name}_mlp_2")(y)
    y = layers.Dropout(dropout, name=f"{name}_mlp_dropout_2")(y)
    return layers.Add(name=f"{name}_add_2")([x, y])


def vision_transformer(name, *, input_shape, num_classes, dropout=DROPOUT, attention_dropout=DROPOUT,
                       zero_head=True, num_layers=None, approximate_gelu=GELU_APPROXIMATE):
    """A Vision Transformer of the configuration ``name`` (``twinbench.models.vit.config.CONFIGS``) in Keras 3.

    Args:
        name: ``"vit_b_16"`` or ``"vit_tiny"``.
        input_shape: ``(height, width, channels)``, channels last; square, side a multiple of the patch size.
        num_classes: number of output logits.
        dropout: rate of torchvision's ``dropout`` (after the position embedding, the attention and in the MLP).
        attention_dropout: rate of torchvision's ``attention_dropout`` (on the attention weights).
        zero_head: initialise the head to zeros, as torchvision does; ``False`` draws ``nn.Linear``'s default.
        num_layers: encoder blocks, if not the configuration's (``vit_b_16``'s twin case checks one block of
            ViT-B/16's width: every block is the same code, and the parameter count is checked at 12).
        approximate_gelu: ``False`` (torch's exact GELU); ``True`` only to show that the tanh form is another
            network (the twin tests' deliberately wrong twin).

    Returns:
        A ``keras.Model`` mapping images to logits.
    """
    config = CONFIGS[name]
    image_size = check_image_size(name, config, input_shape)
    d = config.hidden_dim
    inputs = image_input(input_shape)
    x = layers.Conv2D(d, config.patch_size, strides=config.patch_size, padding="valid",
                      kernel_initializer=keras.initializers.VarianceScaling(1.0, "fan_in", "untruncated_normal"),
                      name="conv_proj")(inputs)
    x = layers.Reshape((num_patches(config, image_size), d), name="patches")(x)
    x = ClassToken(name="class_token")(x)
    x = PositionEmbedding(name="pos_embedding")(x)
    x = layers.Dropout(dropout, name="dropout")(x)
    for i in range(config.num_layers if num_layers is None else num_layers):
        x = encoder_block(x, num_heads=config.num_heads, hidden_dim=d, mlp_dim=config.mlp_dim, dropout=dropout,
                          attention_dropout=attention_dropout, approximate_gelu=approximate_gelu,
                          name=f"encoder_layer_{i}")
    x = layers.LayerNormalization(epsilon=LAYER_NORM_EPSILON, name="encoder_ln")(x)
    x = ClassTokenOutput(name="class_token_output")(x)
    head_kernel = "zeros" if zero_head else torch_linear_kernel()
    head_bias = "zeros" if zero_head else torch_linear_bias(d)
    outputs = layers.Dense(num_classes, kernel_initializer=head_kernel, bias_initializer=head_bias, name="head")(x)
    return keras.Model(inputs, outputs, name=name)


def vit_b_16(*, input_shape=(224, 224, 3), num_classes=1000, **options):
    """ViT-B/16 (torchvision's ``vit_b_16``) in Keras 3; 86,567,656 parameters at 224x224 and 1000 classes.

    ``options``: ``dropout``, ``attention_dropout``, ``zero_head``, ``num_layers`` (``vision_transformer``).
    """
    return vision_transformer("vit_b_16", input_shape=input_shape, num_classes=num_classes, **options)


def vit_tiny(*, input_shape=(32, 32, 3), num_classes=10, **options):
    """ViT at CPU size (32x32, 4x4 patches, 4 layers of width 64, 4 heads), torchvision's class; 208,074 parameters
    at 10 classes.

    ``options``: ``dropout``, ``attention_dropout``, ``zero_head``, ``num_layers`` (``vision_transformer``).
    """
    return vision_transformer("vit_tiny", input_shape=input_shape, num_classes=num_classes, **options)
