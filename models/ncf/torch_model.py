"""NeuMF in PyTorch, written the way the MLPerf recommendation reference writes it (``nn.Embedding`` towers).

He et al., *Neural Collaborative Filtering*, WWW 2017 (arXiv:1708.05031). No well-kept library ships NeuMF, so the
twin is this plain module; its attribute names are the Keras definition's layer names.

Embeddings have dense gradients (``nn.Embedding(sparse=False)``, the default): ``torch.optim.Adam`` takes no sparse
gradients, and ``SparseAdam`` would be another optimizer than the other implementations use.
"""

import math

import torch
from torch import nn

from twinbench.models.ncf.config import EMBEDDING_STD, MF_DIM, MLP_LAYERS, check_arguments


class NeuMF(nn.Module):
    """GMF and MLP towers over user and item embeddings, concatenated (GMF first) into one logit."""

    def __init__(self, num_users, num_items, *, mf_dim=MF_DIM, mlp_layers=MLP_LAYERS):
        super().__init__()
        self.mf_user_embed = nn.Embedding(num_users, mf_dim)
        self.mf_item_embed = nn.Embedding(num_items, mf_dim)
        self.mlp_user_embed = nn.Embedding(num_users, mlp_layers[0] // 2)
        self.mlp_item_embed = nn.Embedding(num_items, mlp_layers[0] // 2)
        self.mlp = nn.ModuleList(nn.Linear(a, b) for a, b in zip(mlp_layers[:-1], mlp_layers[1:], strict=False))
        self.final = nn.Linear(mlp_layers[-1] + mf_dim, 1)
        for embedding in (self.mf_user_embed, self.mf_item_embed, self.mlp_user_embed, self.mlp_item_embed):
            nn.init.normal_(embedding.weight, 0.0, EMBEDDING_STD)
        for layer in self.mlp:
            nn.init.xavier_uniform_(layer.weight)
            nn.init.zeros_(layer.bias)
        nn.init.uniform_(self.final.weight, -math.sqrt(3.0 / self.final.in_features),
                         math.sqrt(3.0 / self.final.in_features))  # LeCun uniform
        nn.init.zeros_(self.final.bias)

    def forward(self, user, item):
        mf = self.mf_user_embed(user) * self.mf_item_embed(item)
        x = torch.cat([self.mlp_user_embed(user), self.mlp_item_embed(item)], dim=1)
        for layer in self.mlp:
            x = torch.relu(layer(x))
        x = torch.cat([mf, x], dim=1)  # GMF first, then MLP
        return self.final(x)


def neumf(*, input_shape=(128, 256), num_classes=1, mf_dim=MF_DIM, mlp_layers=MLP_LAYERS):
    """``NeuMF(num_users, num_items)`` with ``input_shape=(num_users, num_items)``; outputs ``(N, 1)`` logits."""
    num_users, num_items = check_arguments(input_shape, num_classes, mlp_layers)
    return NeuMF(num_users, num_items, mf_dim=mf_dim, mlp_layers=tuple(mlp_layers))
