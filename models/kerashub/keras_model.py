"""keras-hub's ViT and GPT-2, built from their constructors (no preset, no download): the Transformers' *definition
effect* variants, as ``models/kerasapps`` are the CNNs'.

A user who reaches for "the Keras ViT" or "the Keras GPT-2" today gets keras-hub's ``ViTBackbone`` and
``GPT2Backbone``. Each builder below returns that backbone with the task head keras-hub itself puts on it
(``ViTImageClassifier``'s token-pooling ``Dense``; ``GPT2CausalLM``'s tied output, the token embedding reversed), at the
sizes of twinbench's own table (``models/vit/config.py``, ``models/gpt2/config.py``), so the parameter counts are the
twins'. The docstrings list how the networks differ from the twins all the same.

keras-hub 0.32 requires tensorflow-text, which pulls TensorFlow in, so twinbench installs it in the tensorflow
environment only: these models build with ``KERAS_BACKEND=tensorflow`` (``keras[tensorflow]``) and nowhere else.
"""

import keras
import keras_hub

from twinbench.models.gpt2.config import CONTEXT, GPT2_SIZES, MLP_RATIO
from twinbench.models.vit.config import CONFIGS, LAYER_NORM_EPSILON, check_image_size


def _vit(name, *, input_shape, num_classes, dropout=0.0, attention_dropout=0.0):
    config = CONFIGS[name]
    check_image_size(name, config, input_shape)
    backbone = keras_hub.models.ViTBackbone(
        image_shape=tuple(input_shape), patch_size=config.patch_size, num_layers=config.num_layers,
        num_heads=config.num_heads, hidden_dim=config.hidden_dim, mlp_dim=config.mlp_dim, dropout_rate=dropout,
        attention_dropout=attention_dropout, layer_norm_epsilon=LAYER_NORM_EPSILON, name=f"{name}_backbone")
    classifier = keras_hub.models.ViTImageClassifier(backbone=backbone, num_classes=num_classes, pooling="token",
                                                     activation=None, preprocessor=None)
    # The classifier's own graph as a plain functional model: keras-hub's task models override `fit` to build a
    # tf.data pipeline of their own, which takes no PyDataset (the feed every Keras cell shares).
    return keras.Model(classifier.inputs, classifier.outputs, name=f"{name}_kerashub")


def vit_b_16_kerashub(*, input_shape=(224, 224, 3), num_classes=1000, **options):
    """keras-hub's ``ViTBackbone`` + ``ViTImageClassifier`` at ViT-B/16's sizes (Dosovitskiy et al., ICLR 2021,
    https://arxiv.org/abs/2010.11929); logits out. Parameters: torchvision's 86,567,656 at 224x224 and 1000 classes.

    Differences from ``torchvision.models.vit_b_16`` (and twinbench's ``vit_b_16``):

    - attention is ``keras.layers.MultiHeadAttention``: separate query, key and value ``EinsumDense`` projections of
      shape (D, heads, D/heads) where torchvision packs them into one ``in_proj`` of (3D, D) — the same parameters,
      three einsums instead of one matmul, and the heads never split by a reshape;
    - the class token is initialised ``random_normal`` (torchvision: zeros) and the position embedding is a
      ``keras.layers.Embedding`` over position ids, gathered each call (torchvision adds a parameter tensor);
    - Keras' default Glorot-uniform kernels (torchvision: LeCun-normal-like patch embedding, Xavier-uniform attention,
      zero head); biases of the MLP normal(1e-6) in both;
    - the same pre-LayerNorm blocks, exact (erf) GELU, LayerNorm epsilon 1e-6, token pooling and no dropout.

    ``options``: ``dropout``, ``attention_dropout``.
    """
    return _vit("vit_b_16", input_shape=input_shape, num_classes=num_classes, **options)


def vit_tiny_kerashub(*, input_shape=(32, 32, 3), num_classes=10, **options):
    """``vit_b_16_kerashub``'s classes at ``vit_tiny``'s sizes (32x32, 4x4 patches, 4 layers of width 64, 4 heads):
    208,074 parameters at 10 classes, like the twin. Differences from the twin: those of ``vit_b_16_kerashub``."""
    return _vit("vit_tiny", input_shape=input_shape, num_classes=num_classes, **options)


def _gpt2(name, *, input_shape, num_classes, dropout=0.1):
    sizes = GPT2_SIZES[name]
    (context,) = tuple(input_shape)
    if not 1 <= context <= CONTEXT[name]:
        raise ValueError(f"{name}_kerashub takes 1 to {CONTEXT[name]} tokens. Received: input_shape={input_shape!r}")
    backbone = keras_hub.models.GPT2Backbone(
        vocabulary_size=num_classes, num_layers=sizes.n_layer, num_heads=sizes.n_head, hidden_dim=sizes.n_embd,
        intermediate_dim=MLP_RATIO * sizes.n_embd, dropout=dropout, max_sequence_length=sizes.n_positions,
        name=f"{name}_backbone")
    tokens = keras.Input(shape=(context,), dtype="int32", name="tokens")
    # keras-hub's backbone takes a padding mask beside the tokens; every sequence here is full length.
    hidden = backbone({"token_ids": tokens, "padding_mask": keras.ops.ones_like(tokens)})
    logits = backbone.token_embedding(hidden, reverse=True)  # GPT2CausalLM's tied output layer
    return keras.Model(tokens, logits, name=f"{name}_kerashub")


def gpt2_kerashub(*, input_shape=(1024,), num_classes=50_257, dropout=0.1):
    """keras-hub's ``GPT2Backbone`` with ``GPT2CausalLM``'s tied output layer at GPT-2 small's sizes (Radford et al.,
    OpenAI 2019); next-token logits out. Parameters: 124,439,808, as Hugging Face's ``GPT2LMHeadModel``.

    Differences from ``transformers.GPT2LMHeadModel`` (and twinbench's ``gpt2``):

    - attention is ``keras.layers.MultiHeadAttention`` (inside keras-hub's ``TransformerDecoder``): separate query,
      key and value ``EinsumDense`` projections where GPT-2 has one fused ``c_attn`` (the same parameters, three
      einsums instead of one matmul);
    - the causal mask is built and merged with the padding mask inside every block, on every call (the twins apply one
      fixed lower-triangular mask), and the model takes that padding mask as a second input (all ones here);
    - the position embedding is keras-hub's ``PositionEmbedding`` (a slice of a weight, the same (1024, 768) table);
    - initialisers: token embedding normal(0.01) (GPT-2: 0.02), no scaled initialisation of the residual projections;
    - the same pre-LayerNorm blocks, tanh-approximate GELU, LayerNorm epsilon 1e-5, dropout 0.1 on embeddings,
      attention weights and residual branches, and tied input/output embeddings.
    """
    return _gpt2("gpt2", input_shape=input_shape, num_classes=num_classes, dropout=dropout)


def gpt_tiny_kerashub(*, input_shape=(64,), num_classes=GPT2_SIZES["gpt_tiny"].vocab_size, dropout=0.1):
    """``gpt2_kerashub``'s classes at ``gpt_tiny``'s sizes (2 blocks of width 64, 4 heads, 64 positions, 259 byte-level
    tokens). Differences from the twin: those of ``gpt2_kerashub``."""
    return _gpt2("gpt_tiny", input_shape=input_shape, num_classes=num_classes, dropout=dropout)
