"""A broken pair file for ``python -m twinbench check``: Keras' default BatchNorm epsilon (1e-3) on the block's
projection, where PyTorch has 1e-5. The check must name ``block_proj_bn``."""

import functools

from tiny_resnet import INPUT_SHAPE, NUM_CLASSES, torch_model  # noqa: F401  (what the check reads)
from tiny_resnet import keras_model as _keras_model

keras_model = functools.partial(_keras_model, proj_bn_epsilon=1e-3)
