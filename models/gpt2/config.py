"""The architecture table shared by every twin of GPT-2 (one place, imported by all three files).

GPT-2 (Radford et al., "Language Models are Unsupervised Multitask Learners", OpenAI 2019) is a decoder-only
Transformer with pre-LayerNorm blocks (Vaswani et al., "Attention Is All You Need", NeurIPS 2017). Its sizes are
the fields of Hugging Face transformers' ``GPT2Config``, under the same names, so that the PyTorch twin is built
from exactly these numbers.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace

BYTE_VOCAB = 256  # byte values 0..255
# gpt_tiny's vocabulary: the token conventions of every token task (PAD = 0, BOS = 1, EOS = 2), then the 256 byte
# values as tokens 3..258 (data/text.py). EOS plays the part of GPT-2's "<|endoftext|>".
SPECIAL_TOKENS = 3
TINY_BOS, TINY_EOS = 1, 2


@dataclass(frozen=True, kw_only=True)
class GPT2Sizes:
    """One GPT-2 configuration (``GPT2Config``'s field names).

    Attributes:
        vocab_size: tokens in the vocabulary (the input embedding and the tied output layer).
        n_positions: longest sequence (rows of the learned position embedding).
        n_embd: width of the residual stream.
        n_layer: Transformer blocks.
        n_head: attention heads (``n_embd`` must be a multiple of it).
        layer_norm_epsilon: every LayerNorm's epsilon.
        eos_token_id: the end-of-text token.
        bos_token_id: the beginning-of-text token (GPT-2 small uses its end-of-text token for both).
    """

    vocab_size: int
    n_positions: int
    n_embd: int
    n_layer: int
    n_head: int
    layer_norm_epsilon: float = 1e-5
    eos_token_id: int
    bos_token_id: int

    def as_config(self) -> dict:
        """Keyword arguments for ``transformers.GPT2Config`` (dropout is passed separately)."""
        return asdict(self)


GPT2_SIZES = {
    # GPT-2 small, the released 124M model: 50,257 BPE tokens, 1,024 positions, 12 x 768 with 12 heads.
    "gpt2": GPT2Sizes(vocab_size=50_257, n_positions=1024, n_embd=768, n_layer=12, n_head=12,
                      eos_token_id=50_256, bos_token_id=50_256),
    # A CPU-sized configuration of the same class: 3 special tokens + 256 bytes, 64 positions, 2 x 64 with 4 heads.
    "gpt_tiny": GPT2Sizes(vocab_size=SPECIAL_TOKENS + BYTE_VOCAB, n_positions=64, n_embd=64, n_layer=2, n_head=4,
                          eos_token_id=TINY_EOS, bos_token_id=TINY_BOS),
}

MLP_RATIO = 4  # the MLP's hidden width is 4 x n_embd ("n_inner" = None in GPT2Config)
INIT_STD = 0.02  # GPT2Config.initializer_range


def parameter_shapes(sizes: GPT2Sizes) -> dict[str, tuple[int, ...]]:
    """Every parameter's shape, by its neutral name (the Keras 3 weight path), in the model's order.

    The output layer is tied to ``wte`` (it reuses the input embedding transposed), so it has no entry: tied
    weights are counted once. Dense kernels are ``(in, out)``, which is also the layout of Hugging Face's
    ``Conv1D`` weights (unlike ``nn.Linear``'s ``(out, in)``).
    """
    d, hidden = sizes.n_embd, MLP_RATIO * sizes.n_embd
    shapes = {"wte/embeddings": (sizes.vocab_size, d), "wpe/embeddings": (sizes.n_positions, d)}
    for i in range(sizes.n_layer):
        p = f"h_{i}_"
        shapes.update({
            f"{p}ln_1/gamma": (d,), f"{p}ln_1/beta": (d,),
            f"{p}attn_c_attn/kernel": (d, 3 * d), f"{p}attn_c_attn/bias": (3 * d,),  # q, k, v side by side
            f"{p}attn_c_proj/kernel": (d, d), f"{p}attn_c_proj/bias": (d,),
            f"{p}ln_2/gamma": (d,), f"{p}ln_2/beta": (d,),
            f"{p}mlp_c_fc/kernel": (d, hidden), f"{p}mlp_c_fc/bias": (hidden,),
            f"{p}mlp_c_proj/kernel": (hidden, d), f"{p}mlp_c_proj/bias": (d,),
        })
    shapes.update({"ln_f/gamma": (d,), "ln_f/beta": (d,)})
    return shapes


def count_params(sizes: GPT2Sizes) -> int:
    """Parameters counted from the shapes alone (no model is built): 124,439,808 for GPT-2 small."""
    total = 0
    for shape in parameter_shapes(sizes).values():
        n = 1
        for dim in shape:
            n *= dim
        total += n
    return total


def sizes_for(name: str, *, input_shape, num_classes, n_layer=None) -> GPT2Sizes:
    """The sizes of model ``name`` built for ``input_shape = (context_length,)`` and ``num_classes`` tokens.

    The context length only has to fit the position embedding (``n_positions`` stays the model's, so the parameter
    count does not depend on it); ``num_classes`` is the vocabulary size; ``n_layer`` (default: the model's) builds
    fewer blocks of the same width, as GPT-2 small's twin case does.

    Raises:
        ValueError: one line, when ``input_shape`` is not ``(context_length,)`` with 1 <= context_length <=
            n_positions, ``num_classes`` is below 1, or ``n_layer`` is below 1.
    """
    sizes = GPT2_SIZES[name]
    if len(tuple(input_shape)) != 1 or not 1 <= int(input_shape[0]) <= sizes.n_positions:
        raise ValueError(f"Model {name!r} takes input_shape=(context_length,) with 1 <= context_length <= "
                         f"{sizes.n_positions}. Received: input_shape={tuple(input_shape)}.")
    if int(num_classes) < 1:
        raise ValueError(f"Model {name!r} takes num_classes = the vocabulary size >= 1. Received: {num_classes}.")
    if n_layer is not None and int(n_layer) < 1:
        raise ValueError(f"Model {name!r} takes n_layer >= 1 (blocks). Received: n_layer={n_layer}.")
    last = int(num_classes) - 1  # in a smaller vocabulary (a twin case) the last token plays GPT-2's end-of-text
    return replace(sizes, vocab_size=int(num_classes), n_layer=int(n_layer or sizes.n_layer),
                   eos_token_id=min(sizes.eos_token_id, last), bos_token_id=min(sizes.bos_token_id, last))


# Default context length per model and the forward FLOPs of one sequence there (models/flops.py: 2 per
# multiply-accumulate of the Dense layers, the attention's two T x T x C products and the tied output layer):
# 2 x (n_layer x (T x C x 12C + 2 x T^2 x C) + T x C x V).
CONTEXT = {"gpt2": 1024, "gpt_tiny": 64}
FORWARD_FLOPS = {"gpt2": 291_648_307_200, "gpt_tiny": 16_801_792}
