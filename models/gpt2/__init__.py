"""GPT-2 (Radford et al. 2019): the Keras 3 definition, Hugging Face's ``GPT2LMHeadModel`` as the PyTorch twin, and
the tf.keras twin; ``gpt2`` (GPT-2 small, 124,439,808 parameters) and ``gpt_tiny`` (a CPU-sized configuration).

Not yet in the model registry: its builders take ``input_shape=(context_length,)`` and ``num_classes`` = the
vocabulary size, the language-model task's meaning of the two build arguments, which the registry and the runners
learn with the non-image data path. Until then the twin tests are model level (``tests/test_gpt2.py``).
"""
