"""GNMT: an LSTM encoder-decoder with attention (Wu et al. 2016) in the MLPerf reference's shape.

``keras_model.gnmt`` (the single Keras 3 definition), ``torch_model.gnmt`` (``nn.LSTM``, tutorial style) and
``tf_keras_model.gnmt`` (tf.keras), with one architecture table, ``config.py``. Each builder is keyword-only,
``gnmt(*, input_shape=(source_length, target_length), num_classes=vocabulary, size="small", dropout=None)``, and
returns logits ``(N, T, vocabulary)`` for the inputs ``(source, decoder_input)``.

Not registered yet: the registry's runners take images until the non-image data path (tasks, token datasets,
per-token loss) lands; ``tests/test_gnmt.py`` proves the twins meanwhile.
"""
