"""NeuMF's sizes and names, shared by the Keras 3 definition, the tf.keras twin, the PyTorch twin and the weights.

He, Liao, Zhang, Nie, Hu & Chua, *Neural Collaborative Filtering*, WWW 2017 (arXiv:1708.05031), section 3.4
(NeuMF = GMF + MLP), in the shape of the MLPerf recommendation reference: 64 predictive factors in the GMF
tower, MLP layers (256, 256, 128, 64) of which the first is the concatenated user and item embeddings.
"""

from twinbench.models.weights import default_torch_key

MF_DIM = 64  # GMF factors
MLP_LAYERS = (256, 256, 128, 64)  # mlp_layers[0] = user + item MLP embeddings, then one Dense per size
EMBEDDING_STD = 0.01  # nn.init.normal_(std=0.01), the reference's embedding initialisation


def torch_key(path: str) -> str:
    """Keras weight path -> ``state_dict`` key of ``torch_model.NeuMF``: ``mlp_0/kernel`` -> ``mlp.0.weight``."""
    layer, variable = path.rsplit("/", 1)
    if layer.startswith("mlp_") and layer[4:].isdigit():
        layer = f"mlp.{layer[4:]}"
    return default_torch_key(f"{layer}/{'weight' if variable == 'embeddings' else variable}")  # nn.Embedding


def check_arguments(input_shape, num_classes, mlp_layers) -> tuple[int, int]:
    """``(num_users, num_items)`` after checking the builder's arguments (one-line ``ValueError``)."""
    if len(tuple(input_shape)) != 2:
        raise ValueError(f"NeuMF takes input_shape=(num_users, num_items). Received: input_shape={input_shape}.")
    if num_classes != 1:
        raise ValueError(f"NeuMF outputs one logit (num_classes=1). Received: num_classes={num_classes}.")
    if len(mlp_layers) < 2 or mlp_layers[0] % 2:
        raise ValueError("mlp_layers needs an even first size (user + item embeddings) and at least one Dense "
                         f"layer. Received: mlp_layers={mlp_layers}.")
    return int(input_shape[0]), int(input_shape[1])
