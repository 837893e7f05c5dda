"""keras-hub's ViT and GPT-2 (Keras 3 only, the tensorflow environment only): the Transformers' definition-effect
variants, as ``models/kerasapps`` are the CNNs'. Each builder's docstring lists how it differs from the twins.

keras-hub 0.32 requires tensorflow-text, which requires TensorFlow, so it would pull TensorFlow into the torch and jax
environments; twinbench installs it in the tensorflow environment only (``pyproject.toml``) and these models say so
(``ModelSpec.environments``) when another backend asks for them.
"""

from twinbench.models._registry import ModelSpec, TwinCase, get_model_spec, register_model
from twinbench.models.gpt2.config import CONTEXT, GPT2_SIZES, count_params
from twinbench.models.vit.config import CONFIGS, PARAMS

# The FLOPs are the twin's: the same convolutions and matmuls (three q/k/v einsums do what one packed projection does);
# models/flops.py cannot walk keras-hub's composite layers (TransformerDecoder, ViTPatchingAndEmbedding) to recount them.
_HUB = "keras-hub 0.32's {}, built from its constructor at the twins' sizes"
_VIT_PAPER = ("Dosovitskiy et al., An Image is Worth 16x16 Words: Transformers for Image Recognition at Scale, "
              "ICLR 2021 (arXiv:2010.11929)")
_GPT2_PAPER = ("Radford, Wu, Child, Luan, Amodei & Sutskever, Language Models are Unsupervised Multitask Learners, "
               "OpenAI 2019")

for _twin in ("vit_b_16", "vit_tiny"):
    _size = CONFIGS[_twin].image_size
    register_model(
        ModelSpec(
            name=f"{_twin}_kerashub",
            builders={"keras": f"twinbench.models.kerashub.keras_model:{_twin}_kerashub"},
            input_shape=(_size, _size, 3),
            num_classes=1000 if _twin == "vit_b_16" else 10,
            paper=_VIT_PAPER,
            summary=_HUB.format("ViTBackbone + ViTImageClassifier") + " (separate q/k/v projections)",
            params=PARAMS[_twin],
            forward_flops=get_model_spec(_twin).forward_flops,  # the twin's (see _FLOPS)
            min_input_size=CONFIGS[_twin].patch_size,
            input_check="twinbench.models.vit.config:check_input",
            twin_case=TwinCase(input_shape=(32, 32, 3), num_classes=10, batch=2),
            environments=("tensorflow",),
        )
    )

for _twin in ("gpt2", "gpt_tiny"):
    register_model(
        ModelSpec(
            name=f"{_twin}_kerashub",
            builders={"keras": f"twinbench.models.kerashub.keras_model:{_twin}_kerashub"},
            task="language_model",
            input_shape=(CONTEXT[_twin],),
            num_classes=GPT2_SIZES[_twin].vocab_size,
            paper=_GPT2_PAPER,
            summary=_HUB.format("GPT2Backbone + GPT2CausalLM's tied output") + " (separate q/k/v, masks per call)",
            params=count_params(GPT2_SIZES[_twin]),
            forward_flops=get_model_spec(_twin).forward_flops,  # the twin's (see _FLOPS)
            twin_case=TwinCase(input_shape=(16,), num_classes=None if _twin == "gpt_tiny" else 512, batch=4,
                               options={"dropout": 0.0}),
            environments=("tensorflow",),
        )
    )
