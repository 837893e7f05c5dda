"""NCF (NeuMF): a Keras 3 definition, its tf.keras twin and a PyTorch twin in the MLPerf reference's style."""

from twinbench.models._registry import ModelSpec, TwinCase, register_model

register_model(
    ModelSpec(
        name="ncf",
        builders={
            "keras": "twinbench.models.ncf.keras_model:neumf",
            "torch": "twinbench.models.ncf.torch_model:neumf",
            "tf_keras": "twinbench.models.ncf.tf_keras_model:neumf",
        },
        task="recommendation",
        input_shape=(128, 256),  # (users, items) of the default dataset, `implicit`; movielens brings its own
        num_classes=1,
        paper="He, Liao, Zhang, Nie, Hu & Chua, Neural Collaborative Filtering, WWW 2017 (arXiv:1708.05031), "
              "NeuMF in the MLPerf recommendation reference's sizes",
        summary="NeuMF: GMF (64 factors) + MLP (256-256-128-64) towers over user and item embeddings",
        params=180_801,
        forward_flops={"128x256": 213_248},  # Dense layers only (models/flops.py): embeddings are lookups
        torch_keys="twinbench.models.ncf.config:torch_key",
        twin_case=TwinCase(input_shape=(10, 12), batch=8, options={"mf_dim": 4, "mlp_layers": (8, 8, 4)}),
    )
)
