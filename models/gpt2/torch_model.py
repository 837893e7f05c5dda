"""GPT-2's PyTorch twin: Hugging Face transformers' own ``GPT2LMHeadModel``, built from a ``GPT2Config``.

Nothing is downloaded: the model is initialised at random from the configuration (twinbench loads its canonical
weights into it afterwards). ``forward(input_ids)`` returns an output object whose ``.logits`` are
``(batch, T, vocab)``; the loss is computed outside, the same formula in every implementation (``data/text.py``).
"""

from __future__ import annotations

from twinbench.models.gpt2.config import GPT2_SIZES, GPT2Sizes, sizes_for

DROPOUT = 0.1  # GPT2Config's default resid/embd/attn dropout


def gpt2_config(sizes: GPT2Sizes, *, dropout=DROPOUT, activation="gelu_new"):
    """The ``transformers.GPT2Config`` of ``sizes`` (``activation`` other than "gelu_new" only for tests that must
    fail)."""
    from transformers import GPT2Config

    return GPT2Config(**sizes.as_config(), resid_pdrop=dropout, embd_pdrop=dropout, attn_pdrop=dropout,
                      activation_function=activation, tie_word_embeddings=True)


def build_gpt2(sizes: GPT2Sizes, *, dropout=DROPOUT, activation="gelu_new"):
    """``GPT2LMHeadModel(GPT2Config(...))``: randomly initialised, tied input/output embeddings."""
    from transformers import GPT2LMHeadModel

    return GPT2LMHeadModel(gpt2_config(sizes, dropout=dropout, activation=activation))


def gpt2(*, input_shape=(1024,), num_classes=50_257, dropout=DROPOUT, n_layer=None):
    """GPT-2 small as Hugging Face's ``GPT2LMHeadModel`` (124,439,808 parameters at the defaults; ``n_layer``:
    fewer blocks, ``config.sizes_for``)."""
    return build_gpt2(sizes_for("gpt2", input_shape=input_shape, num_classes=num_classes, n_layer=n_layer),
                      dropout=dropout)


def gpt_tiny(*, input_shape=(64,), num_classes=GPT2_SIZES["gpt_tiny"].vocab_size, dropout=DROPOUT):
    """The CPU-sized GPT-2 as Hugging Face's ``GPT2LMHeadModel`` (120,768 parameters at the defaults)."""
    return build_gpt2(sizes_for("gpt_tiny", input_shape=input_shape, num_classes=num_classes), dropout=dropout)
