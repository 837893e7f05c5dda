"""GPT-2 (Radford et al. 2019): the Keras 3 definition, Hugging Face's ``GPT2LMHeadModel`` as the PyTorch twin, and
the tf.keras twin; ``gpt2`` (GPT-2 small) and ``gpt_tiny`` (a CPU-sized configuration of the same class).

Language models (``twinbench.data.tasks``' ``language_model``): ``input_shape = (context_length,)``, ``num_classes`` = the
vocabulary size; ``gpt_tiny`` trains on the embedded ``pydoc`` corpus by default (``twinbench.data.text``).
"""

from twinbench.models._registry import ModelSpec, TwinCase, register_model
from twinbench.models.gpt2.config import CONTEXT, FORWARD_FLOPS, GPT2_SIZES, count_params

_PAPER = ("Radford, Wu, Child, Luan, Amodei & Sutskever, Language Models are Unsupervised Multitask Learners, "
          "OpenAI 2019; identical to Hugging Face transformers' GPT2LMHeadModel")
_SUMMARY = {
    "gpt2": "GPT-2 small: 12 pre-LN blocks of width 768, 12 heads, 1,024 positions, BPE vocabulary, tied output",
    "gpt_tiny": "CPU-sized GPT-2: 2 blocks of width 64, 4 heads, 64 positions, byte-level vocabulary (259)",
}

for _name, _sizes in GPT2_SIZES.items():
    register_model(
        ModelSpec(
            name=_name,
            builders={implementation: f"twinbench.models.gpt2.{module}:{_name}" for implementation, module in
                      (("keras", "keras_model"), ("torch", "torch_model"), ("tf_keras", "tf_keras_model"))},
            task="language_model",
            input_shape=(CONTEXT[_name],),
            num_classes=_sizes.vocab_size,
            paper=_PAPER,
            summary=_SUMMARY[_name],
            params=count_params(_sizes),  # 124,439,808 for GPT-2 small (tied output counted once)
            forward_flops={str(CONTEXT[_name]): FORWARD_FLOPS[_name]},
            torch_keys="twinbench.models.gpt2.weights:hf_key",
            # 16 tokens; GPT-2 small's twin case is 2 of its blocks at full width (768, 12 heads) with a 512-token
            # vocabulary (15M parameters instead of 124M: the twin tests' time budget). Every block is the same code
            # (the block index only names its weights), and the registry's parameter-count test builds all 12 in
            # every implementation.
            twin_case=TwinCase(input_shape=(16,), num_classes=None if _name == "gpt_tiny" else 512, batch=4,
                               options={"dropout": 0.0} if _name == "gpt_tiny" else {"dropout": 0.0, "n_layer": 2}),
        )
    )
