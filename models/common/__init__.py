"""Pieces every torchvision-matched family shares: torch-faithful layers and initializers.

- ``pooling``          the adaptive-average-pooling index formula of PyTorch, in NumPy (no framework);
- ``keras_layers``     Keras 3 layers and initializers that behave like their ``torch.nn`` counterparts;
- ``tf_keras_layers``  the same for tf.keras (Keras 2).

Importing this package imports no framework; import the module for the framework you use.
"""
