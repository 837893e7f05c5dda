"""The GNMT architecture table, shared by the Keras 3 definition, the PyTorch twin and the tf.keras twin.

GNMT (Wu et al., *Google's Neural Machine Translation System*, 2016, arXiv:1609.08144) as the MLPerf training
reference builds it (``rnn_translator``, "GNMT v2"): an LSTM encoder-decoder with additive attention.

Encoder, ``num_layers`` LSTMs of ``hidden`` units over the embedded source::

    embedding -> dropout -> bidirectional LSTM (2 x hidden, the only layer that needs the padding mask)
              -> dropout -> LSTM (2 x hidden -> hidden)
              -> [dropout -> LSTM (hidden -> hidden) + residual] x (num_layers - 2)

Decoder, teacher forcing (its input is the target shifted right by one: ``BOS y1 y2 ...`` predicts
``y1 y2 ... EOS``), ``num_layers`` LSTMs::

    embedding -> dropout -> LSTM (hidden)  = the query of the attention over the encoder's outputs -> context
              -> dropout -> concat(x, context) -> LSTM (2 x hidden -> hidden)
              -> [dropout -> concat(x, context) -> LSTM (2 x hidden -> hidden) + residual] x (num_layers - 2)
              -> Dense (logits over the vocabulary)

The attention is MLPerf's *normalised Bahdanau* attention (Bahdanau et al. 2015, weight-normalised as in
Salimans & Kingma 2016): ``score(q, k) = g * v / |v| . tanh(W_q q + W_k k + b)``; padded source positions get
``MASKED_SCORE`` before the softmax; the context is the softmax-weighted sum of the encoder's outputs. Because the
attention reads the first decoder LSTM's *output* (no input feeding), the whole decoder runs over the target in
one pass per layer during training, as in the reference.

As in the reference, source and target share one vocabulary and one embedding table, the initial LSTM states are
zeros (the decoder does not start from the encoder's final state), and every weight starts uniform in
``[-INIT_SCALE, INIT_SCALE]`` except the attention's ``g = 1 / sqrt(hidden)`` and ``b = 0``.

Token conventions (those of every token task in twinbench): ``PAD = 0`` (masked out of the encoder's
bidirectional layer, the attention and the loss), ``BOS = 1`` (first decoder input), ``EOS = 2``.

The parity details, shared by the three files (each file's docstring says how its framework spells them):

- gate order: both frameworks stack the four gate blocks of an LSTM kernel in the same order, input, forget,
  cell candidate, output (Keras calls the candidate ``c``, PyTorch ``g``). Keras keeps them as columns of a
  ``(input, 4 * hidden)`` kernel, PyTorch as rows of a ``(4 * hidden, input)`` weight: a transpose, no reordering.
- biases: a Keras LSTM has one bias ``b``, a PyTorch ``nn.LSTM`` two, ``b_ih + b_hh``, which the forward pass only
  ever uses summed. The neutral mapping carries ``b``: it loads as ``b_ih = b, b_hh = 0`` and is read back as
  ``b_ih + b_hh`` (``twinbench.models.weights``). Trained, two biases are not one: each receives the full gradient, so
  their sum moves twice as far per SGD step and there are ``4 * hidden`` more parameters per LSTM direction. The
  PyTorch twin therefore keeps ``b_hh`` at zero and frozen (``requires_grad=False``): the same trainable
  parameters and the same optimizer step as Keras. ``LSTM_DIRECTIONS`` counts what unfreezing it would add.
- recurrent activation: the logistic sigmoid (``torch.sigmoid``; Keras 3 and tf.keras 2 default to it; Keras 1's
  ``hard_sigmoid`` would be another network); cell activation ``tanh``.
- padding: sources are right-padded. The bidirectional layer must not read the padding, or the backward
  direction would start from it: PyTorch packs the sequence (``pack_padded_sequence``), Keras passes the mask.
  The unidirectional layers above run over the padding in both (it comes after every real token and never
  reaches a real output), the attention gives padded positions zero weight, and the loss ignores PAD labels.
  Masked positions themselves may differ (Keras repeats the last output there, PyTorch's packing gives zeros):
  they are never used.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from twinbench.models.weights import default_torch_key

PAD, BOS, EOS = 0, 1, 2  # token conventions of every token task
INIT_SCALE = 0.1  # the reference's init_weight: weights start uniform in [-0.1, 0.1]
MASKED_SCORE = -65504.0  # attention score of a padded source position (the reference's value: float16's minimum)


@dataclass(frozen=True, kw_only=True)
class GNMTConfig:
    """One size of GNMT.

    Attributes:
        hidden: units of every LSTM, of the embedding and of the attention.
        num_layers: LSTM layers in the encoder (the first bidirectional) and in the decoder (the first feeds the
            attention); at least 2, residual connections from the third on.
        dropout: dropout rate between layers (the twin tests use 0: masks cannot match across frameworks).
    """

    hidden: int
    num_layers: int
    dropout: float = 0.2


# The reference size (MLPerf GNMT v2: 1024 units, 4 layers, dropout 0.2; vocabulary 32,317 shared BPE tokens) and
# a small one for CPU tests and benchmarks.
SIZES = {
    "reference": GNMTConfig(hidden=1024, num_layers=4, dropout=0.2),
    "small": GNMTConfig(hidden=32, num_layers=3, dropout=0.2),
}
REFERENCE_VOCABULARY = 32_317
# param_count(SIZES["reference"], REFERENCE_VOCABULARY): 160,628,286 (the PyTorch twin's trainable parameters too,
# built once by hand; with both nn.LSTM biases trained it would have 36,864 more: 160,665,150).
PARAMS_REFERENCE = 160_628_286
DEFAULT_SIZE = "small"


def gnmt_config(size) -> GNMTConfig:
    """``size`` as a ``GNMTConfig``: one of ``SIZES`` by name, or a ``GNMTConfig`` itself."""
    if isinstance(size, GNMTConfig):
        config = size
    elif size in SIZES:
        config = SIZES[size]
    else:
        raise ValueError(f"Unknown GNMT size {size!r}. Valid choices: {', '.join(SIZES)}.")
    if config.num_layers < 2:
        raise ValueError(f"GNMT needs num_layers >= 2. Received: num_layers={config.num_layers}.")
    return config


def lstm_params(inputs: int, units: int, *, biases: int = 1) -> int:
    """Parameters of one LSTM direction: 4 gates of ``(inputs + units) x units`` weights and ``biases`` bias vectors."""
    return 4 * units * (inputs + units) + biases * 4 * units


def lstm_directions(config: GNMTConfig) -> int:
    """LSTM directions in the model: 2 (bidirectional) + num_layers - 1 in the encoder, num_layers in the decoder."""
    return 2 + (config.num_layers - 1) + config.num_layers


def param_count(config: GNMTConfig, vocabulary: int) -> int:
    """Trainable parameters with one bias per LSTM (Keras; the PyTorch twin with ``b_hh`` frozen).

    A PyTorch ``nn.LSTM`` with both biases trainable has ``4 * hidden * lstm_directions(config)`` more.
    """
    h, layers = config.hidden, config.num_layers
    embedding = vocabulary * h  # one table, shared by encoder and decoder
    encoder = 2 * lstm_params(h, h) + lstm_params(2 * h, h) + (layers - 2) * lstm_params(h, h)
    attention = 2 * h * h + h + 1 + h  # W_q, W_k, v, g, b
    decoder = lstm_params(h, h) + (layers - 1) * lstm_params(2 * h, h)
    classifier = h * vocabulary + vocabulary
    return embedding + encoder + attention + decoder + classifier


def shift_right(targets):
    """Teacher forcing: the decoder's input for ``targets`` (NumPy, ``(N, T)``, right-padded with PAD).

    ``BOS y1 y2 ... y_{T-1}``: position ``t`` sees the target up to ``t - 1`` and is trained to predict ``y_t``.
    """
    import numpy as np

    targets = np.asarray(targets)
    decoder_input = np.empty_like(targets)
    decoder_input[:, 0] = BOS
    decoder_input[:, 1:] = targets[:, :-1]
    return decoder_input


# -- names: Keras layer -> PyTorch module ---------------------------------------------------------------------
# Keras names its layers ``encoder_lstm_0``; the PyTorch twin keeps them in ``nn.ModuleList``s (``encoder_lstm.0``).
# A Keras LSTM keeps its weights in its cell (``encoder_lstm_1/lstm_cell/kernel``); a Bidirectional layer holds a
# forward and a backward LSTM (``encoder_lstm_0/forward_encoder_lstm_0/lstm_cell/kernel``), which nn.LSTM keeps in
# one module, the backward weights suffixed ``_reverse``.
_LSTM_VARIABLES = {"kernel": "weight_ih_l0", "recurrent_kernel": "weight_hh_l0", "bias": "bias_ih_l0"}
_LSTM_PATH = re.compile(r"^(encoder|decoder)_lstm_(\d+)/(?:(forward|backward)_\w+/)?lstm_cell/(\w+)$")


def torch_key(path: str) -> str:
    """Keras weight path -> the PyTorch twin's ``state_dict`` key.

    ``encoder_lstm_0/backward_encoder_lstm_0/lstm_cell/kernel`` -> ``encoder_lstm.0.weight_ih_l0_reverse``,
    ``decoder_lstm_1/lstm_cell/bias`` -> ``decoder_lstm.1.bias_ih_l0`` (``b_hh`` follows: ``twinbench.models.weights``),
    ``embedding/embeddings`` -> ``embedding.weight``, ``attention/linear_att`` -> ``attention.linear_att``.
    """
    match = _LSTM_PATH.match(path)
    if match:
        stack, index, direction, variable = match.groups()
        suffix = "_reverse" if direction == "backward" else ""
        return f"{stack}_lstm.{index}.{_LSTM_VARIABLES[variable]}{suffix}"
    if path == "embedding/embeddings":
        return "embedding.weight"
    return default_torch_key(path)


def attention_scale(hidden: int) -> float:
    """The initial ``g`` of the normalised attention: ``1 / sqrt(hidden)``."""
    return 1.0 / math.sqrt(hidden)
