"""The two models: configurations, modeling files, and the separate-vocabulary tokenizer.

This folder is the remote-code boundary: ``save_pretrained`` copies a modeling file and the
siblings it imports next to the weights, so every module here imports only torch,
transformers and its siblings (``tests/test_layout.py`` enforces it).
"""

from .configuration_rnn_seq2seq import RNNSeq2SeqConfig
from .configuration_transformer_seq2seq import TransformerSeq2SeqConfig
from .modeling_rnn_seq2seq import (
    RNNSeq2SeqCache,
    RNNSeq2SeqForConditionalGeneration,
    RNNSeq2SeqModel,
    RNNSeq2SeqPreTrainedModel,
)
from .modeling_transformer_seq2seq import (
    TransformerSeq2SeqForConditionalGeneration,
    TransformerSeq2SeqModel,
    TransformerSeq2SeqPreTrainedModel,
)
from .tokenization_seq2seq_bpe import Seq2SeqBPETokenizer

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
]
