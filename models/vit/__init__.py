"""The Vision Transformer: a Keras 3 definition matching torchvision's ``VisionTransformer``, its tf.keras twin, and
torchvision itself; ``vit_b_16`` and the CPU-sized ``vit_tiny`` are two rows of one table (``config.CONFIGS``).

No stock keras-hub variant (like ``models/kerasapps`` for the CNNs): keras-hub 0.32.0 requires
``tensorflow-text>=2.20.1`` on Linux and macOS, which requires ``tensorflow``, so installing it would put TensorFlow
into the torch and jax environments (``pip install --dry-run keras-hub==0.32.0`` there: "Would install ...
tensorflow-2.21.0 tensorflow-text-2.21.1 ..."). It installs cleanly only into the tensorflow environment.
"""

from twinbench.models._registry import ModelSpec, TwinCase, register_model
from twinbench.models.vit.config import CONFIGS, PARAMS

PAPER = ("Dosovitskiy, Beyer, Kolesnikov, Weissenborn, Zhai, Unterthiner, Dehghani, Minderer, Heigold, Gelly, "
         "Uszkoreit & Houlsby, An Image is Worth 16x16 Words: Transformers for Image Recognition at Scale, "
         "ICLR 2021 (arXiv:2010.11929)")
# The twin tests' options, the same for every implementation: no dropout (masks cannot match across frameworks),
# and a random head instead of torchvision's zeros, which would make every logit and every other gradient zero.
TWIN_OPTIONS = {"dropout": 0.0, "attention_dropout": 0.0, "zero_head": False}


def _register(name, *, num_classes, summary, forward_flops, twin_case):
    config = CONFIGS[name]
    register_model(
        ModelSpec(
            name=name,
            builders={
                "keras": f"twinbench.models.vit.keras_model:{name}",
                "torch": f"twinbench.models.vit.torch_model:{name}",
                "tf_keras": f"twinbench.models.vit.tf_keras_model:{name}",
            },
            input_shape=(config.image_size, config.image_size, 3),
            num_classes=num_classes,
            paper=PAPER,
            summary=summary,
            params=PARAMS[name],
            forward_flops=forward_flops,  # at the default classes; models/flops.py
            torch_keys="twinbench.models.vit.config:torch_key",
            min_input_size=config.patch_size,
            input_check="twinbench.models.vit.config:check_input",  # square, a multiple of the patch size
            head="head",
            twin_case=twin_case,
        )
    )


_register("vit_b_16", num_classes=1000,
          summary="ViT-B/16 as torchvision defines it (pre-LN, LayerNorm eps 1e-6, exact GELU, packed q/k/v)",
          forward_flops={"224x224x3": 35_127_656_448, "32x32x3": 856_522_752},  # torchvision: 17.56 GMACs
          # one block of ViT-B/16's width (7.7M weights, not 86M: the twin tests' time budget) on 32x32 images
          # (4 patches + the class token); every block is the same code, and the registry's parameter-count test
          # builds all 12 in every implementation
          twin_case=TwinCase(input_shape=(32, 32, 3), num_classes=10, batch=2,
                             options={**TWIN_OPTIONS, "num_layers": 1}))
_register("vit_tiny", num_classes=10,
          summary="ViT at CPU size: torchvision's class, 32x32 images, 4x4 patches, 4 layers of width 64",
          forward_flops={"32x32x3": 30_279_936},
          twin_case=TwinCase(input_shape=(32, 32, 3), num_classes=10, batch=4, options=TWIN_OPTIONS))
