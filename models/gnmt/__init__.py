"""GNMT: an LSTM encoder-decoder with attention (Wu et al. 2016) in the MLPerf reference's shape.

``keras_model.gnmt`` (the single Keras 3 definition), ``torch_model.gnmt`` (``nn.LSTM``, tutorial style) and
``tf_keras_model.gnmt`` (tf.keras), with one architecture table, ``config.py``. Each builder is keyword-only,
``gnmt(*, input_shape=(source_length, target_length), num_classes=vocabulary, size="small", dropout=None)``, and
returns logits ``(N, T, vocabulary)`` for the inputs ``(source, decoder_input)``.

Registered as ``gnmt`` (task ``seq2seq``, ``twinbench.data.tasks``) at the small size, trained by default on ``reverse``;
``tests/test_gnmt.py`` proves the twins at the model level, the registry's twin tests as every other model.
"""

from twinbench.models._registry import ModelSpec, TwinCase, register_model  # noqa: E402

register_model(
    ModelSpec(
        name="gnmt",
        builders={
            "keras": "twinbench.models.gnmt.keras_model:gnmt",
            "torch": "twinbench.models.gnmt.torch_model:gnmt",
            "tf_keras": "twinbench.models.gnmt.tf_keras_model:gnmt",
        },
        task="seq2seq",
        input_shape=(8, 9),  # (source, target) lengths of the default dataset, `reverse`
        num_classes=13,  # its vocabulary: PAD, BOS, EOS and ten digits
        paper="Wu et al., Google's Neural Machine Translation System, arXiv:1609.08144 (2016); the MLPerf "
              "reference's GNMT v2 shape",
        summary="GNMT (small: 32 units, 3 layers): bidirectional + residual LSTM encoder, attention, LSTM decoder",
        params=73_486,
        forward_flops={"8x9": 1_231_168},
        torch_keys="twinbench.models.gnmt.config:torch_key",
        twin_case=TwinCase(input_shape=(7, 6), num_classes=40, batch=4, options={"dropout": 0.0}),
    )
)
