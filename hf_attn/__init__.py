"""hf_attn: classic attention seq2seq models as genuine ``transformers`` models.

Importing the package registers every model with the Auto classes (``AutoConfig``,
``AutoModel``, ``AutoModelForSeq2SeqLM``) and the separate-vocabulary tokenizer with
``AutoTokenizer``, and marks them for remote code, so a saved checkpoint also loads with
``trust_remote_code=True`` where hf_attn is not installed.
"""

from __future__ import annotations

from transformers import (
    AutoConfig,
    AutoModel,
    AutoModelForSeq2SeqLM,
    AutoTokenizer,
    PreTrainedConfig,
    PreTrainedModel,
)

from .models import (
    RNNSeq2SeqCache,
    RNNSeq2SeqConfig,
    RNNSeq2SeqForConditionalGeneration,
    RNNSeq2SeqModel,
    RNNSeq2SeqPreTrainedModel,
    Seq2SeqBPETokenizer,
    TransformerSeq2SeqConfig,
    TransformerSeq2SeqForConditionalGeneration,
    TransformerSeq2SeqModel,
    TransformerSeq2SeqPreTrainedModel,
)
from .pipelines import register_pipeline

__version__ = "0.1.0"


def _register(
    config_class: type[PreTrainedConfig], base_model: type[PreTrainedModel], lm_model: type[PreTrainedModel]
) -> None:
    """Register one model family with the Auto classes and for remote-code saving.

    AutoTokenizer learns the separate-vocabulary tokenizer's class name through the config;
    a folder's tokenizer_config.json still picks the class, so joint tokenizers load as before.
    """
    AutoConfig.register(config_class.model_type, config_class, exist_ok=True)
    AutoModel.register(config_class, base_model, exist_ok=True)
    AutoModelForSeq2SeqLM.register(config_class, lm_model, exist_ok=True)
    AutoTokenizer.register(config_class, tokenizer_class=Seq2SeqBPETokenizer, exist_ok=True)
    config_class.register_for_auto_class("AutoConfig")
    base_model.register_for_auto_class("AutoModel")
    lm_model.register_for_auto_class("AutoModelForSeq2SeqLM")


_register(RNNSeq2SeqConfig, RNNSeq2SeqModel, RNNSeq2SeqForConditionalGeneration)
_register(TransformerSeq2SeqConfig, TransformerSeq2SeqModel, TransformerSeq2SeqForConditionalGeneration)
Seq2SeqBPETokenizer.register_for_auto_class("AutoTokenizer")
register_pipeline()  # pipeline("hf-attn-translation", model=...)

__all__ = [
    "RNNSeq2SeqCache",
    "RNNSeq2SeqConfig",
    "RNNSeq2SeqForConditionalGeneration",
    "RNNSeq2SeqModel",
    "RNNSeq2SeqPreTrainedModel",
    "Seq2SeqBPETokenizer",
    "TransformerSeq2SeqConfig",
    "TransformerSeq2SeqForConditionalGeneration",
    "TransformerSeq2SeqModel",
    "TransformerSeq2SeqPreTrainedModel",
    "__version__",
]
