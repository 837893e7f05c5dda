"""GNMT as a native PyTorch module, written the way the PyTorch seq2seq tutorials and the MLPerf reference write it.

The architecture and its parity details are in ``models/gnmt/config.py``. How PyTorch spells them:

- ``nn.LSTM(batch_first=True)``: sigmoid gates and tanh, gate blocks ``i, f, g, o`` along the rows of
  ``weight_ih_l0`` ``(4 * hidden, input)`` and ``weight_hh_l0``; zero initial states (no ``(h0, c0)`` passed);
- two biases, ``bias_ih_l0 + bias_hh_l0``: ``bias_hh`` is set to zero and frozen (``requires_grad=False``), so
  the trainable parameters and the optimizer step are Keras' (one bias per LSTM). Unfrozen, it would be a
  different network in training, and ``tests/test_gnmt.py`` shows it;
- padding: the bidirectional layer reads a packed sequence (``pack_padded_sequence``: the backward direction starts
  at each source's last real token); the attention masks padded positions; the loss ignores PAD
  (``CrossEntropyLoss(ignore_index=PAD)``); ``nn.Embedding(padding_idx=PAD)`` keeps the PAD row's gradient at
  zero, as Keras' masks do;
- the fused kernel: ``nn.LSTM`` calls cuDNN on a CUDA device (packed sequences included); on a CPU it calls
  oneDNN's fused LSTM (``aten::mkldnn_rnn_layer``) for unpacked float32 input and ATen's own loop for packed input
  and float64 (``twinbench.backends.recurrent`` records it).

``forward(source, decoder_input)`` takes int ``(N, S)`` and ``(N, T)`` tensors and returns logits ``(N, T, vocabulary)``.
"""

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from twinbench.models.gnmt.config import (
    DEFAULT_SIZE,
    INIT_SCALE,
    MASKED_SCORE,
    PAD,
    attention_scale,
    gnmt_config,
)


class NormalizedBahdanauAttention(nn.Module):
    """MLPerf's normalised Bahdanau attention: ``score(q, k) = g * v / |v| . tanh(q + k + b)``, then softmax."""

    def __init__(self, units):
        super().__init__()
        self.linear_att = nn.Parameter(torch.empty(units).uniform_(-INIT_SCALE, INIT_SCALE))  # v
        self.normalize_scalar = nn.Parameter(torch.tensor(attention_scale(units)))  # g
        self.normalize_bias = nn.Parameter(torch.zeros(units))  # b

    def forward(self, query, keys, values, source_mask):
        summed = query.unsqueeze(2) + keys.unsqueeze(1) + self.normalize_bias  # (N, T, S, U)
        v = self.linear_att / self.linear_att.norm() * self.normalize_scalar
        scores = torch.tanh(summed) @ v  # (N, T, S)
        scores = scores.masked_fill(~source_mask.unsqueeze(1), MASKED_SCORE)
        return torch.bmm(F.softmax(scores, dim=-1), values)  # (N, T, H)


def lstm(input_size, hidden, *, bidirectional=False):
    """``nn.LSTM`` initialised like the reference (uniform), its second bias ``b_hh`` zero and frozen."""
    layer = nn.LSTM(input_size, hidden, batch_first=True, bidirectional=bidirectional)
    for name, parameter in layer.named_parameters():
        if name.startswith("bias_hh"):
            nn.init.zeros_(parameter)
            parameter.requires_grad_(False)  # Keras has one bias: b_ih alone is trained
        else:
            nn.init.uniform_(parameter, -INIT_SCALE, INIT_SCALE)
    return layer


class GNMT(nn.Module):
    """Encoder (bidirectional + residual LSTMs) -> attention -> decoder (residual LSTMs) -> logits."""

    def __init__(self, *, vocabulary, hidden, num_layers, dropout):
        super().__init__()
        self.embedding = nn.Embedding(vocabulary, hidden, padding_idx=PAD)  # shared by encoder and decoder
        self.encoder_lstm = nn.ModuleList([
            lstm(hidden, hidden, bidirectional=True),
            lstm(2 * hidden, hidden),
            *(lstm(hidden, hidden) for _ in range(2, num_layers)),
        ])
        self.decoder_lstm = nn.ModuleList([lstm(hidden, hidden), *(lstm(2 * hidden, hidden) for _ in range(1, num_layers))])
        self.attention_query = nn.Linear(hidden, hidden, bias=False)
        self.attention_key = nn.Linear(hidden, hidden, bias=False)
        self.attention = NormalizedBahdanauAttention(hidden)
        self.logits = nn.Linear(hidden, vocabulary)
        self.dropout = nn.Dropout(dropout)
        for module in (self.embedding, self.attention_query, self.attention_key, self.logits):
            for parameter in module.parameters():
                nn.init.uniform_(parameter, -INIT_SCALE, INIT_SCALE)

    def encode(self, source):
        source_mask = source != PAD
        lengths = source_mask.sum(dim=1).cpu()  # pack_padded_sequence wants the lengths on the CPU
        x = self.dropout(self.embedding(source))
        # The bidirectional layer reads only the real tokens: the backward direction starts at the last one.
        packed = pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
        x, _ = self.encoder_lstm[0](packed)
        x, _ = pad_packed_sequence(x, batch_first=True, total_length=source.shape[1])
        x, _ = self.encoder_lstm[1](self.dropout(x))
        for layer in self.encoder_lstm[2:]:
            residual = x
            x, _ = layer(self.dropout(x))
            x = x + residual
        return x, source_mask

    def forward(self, source, decoder_input):
        encoder_outputs, source_mask = self.encode(source)
        x = self.dropout(self.embedding(decoder_input))
        x, _ = self.decoder_lstm[0](x)
        context = self.attention(self.attention_query(x), self.attention_key(encoder_outputs), encoder_outputs,
                                 source_mask)
        for i, layer in enumerate(self.decoder_lstm[1:], start=1):
            residual = x
            x, _ = layer(torch.cat([self.dropout(x), context], dim=2))
            if i >= 2:
                x = x + residual
        return self.logits(x)


def gnmt(*, input_shape, num_classes, size=DEFAULT_SIZE, dropout=None):
    """GNMT (Wu et al. 2016, arXiv:1609.08144) as an ``nn.Module`` in the shape of the MLPerf reference.

    Args:
        input_shape: ``(source_length, target_length)`` (checked only: PyTorch takes any lengths).
        num_classes: vocabulary size, shared by source and target.
        size: ``"small"``, ``"reference"`` or a ``GNMTConfig``.
        dropout: overrides the size's dropout rate.
    """
    if len(input_shape) != 2:
        raise ValueError(f"GNMT takes input_shape=(source_length, target_length). Received: {tuple(input_shape)}.")
    config = gnmt_config(size)
    return GNMT(vocabulary=num_classes, hidden=config.hidden, num_layers=config.num_layers,
                dropout=config.dropout if dropout is None else dropout)


def token_loss():
    """Cross-entropy over the labelled tokens: PAD labels ignored, the mean over the others in the batch.

    Logits ``(N, T, V)`` go in as ``logits.flatten(0, 1)`` with labels ``labels.flatten()``.
    """
    return nn.CrossEntropyLoss(ignore_index=PAD)
