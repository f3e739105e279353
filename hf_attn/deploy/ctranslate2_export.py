"""Write our Transformer as a CTranslate2 model folder, through CTranslate2's own ``Converter``."""

from __future__ import annotations

from pathlib import Path

from transformers import PreTrainedModel, PreTrainedTokenizerBase

from .ctranslate2_spec import build_transformer_spec
from .requirements import require_ctranslate2


def vocabularies(tokenizer: PreTrainedTokenizerBase, model: PreTrainedModel) -> tuple[list[str], list[str]]:
    """Source and target token strings in id order (one list twice for a joint vocabulary)."""
    config = model.config
    source_ids, target_ids = list(range(config.vocab_size)), list(range(config.target_vocab_size))
    convert_source = getattr(tokenizer, "convert_source_ids_to_tokens", tokenizer.convert_ids_to_tokens)
    return convert_source(source_ids), tokenizer.convert_ids_to_tokens(target_ids)


def write_ctranslate2_model(
    model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, folder: Path, quantization: str
) -> None:
    """Convert ``model`` into ``folder`` (model.bin, config.json, vocabularies), weights stored as ``quantization``."""
    require_ctranslate2()
    from ctranslate2.converters import Converter

    source_tokens, target_tokens = vocabularies(tokenizer, model)

    class _HfAttnConverter(Converter):
        def _load(self):
            spec = build_transformer_spec(model, source_tokens, target_tokens)
            spec.config.unk_token = tokenizer.unk_token
            return spec

    _HfAttnConverter().convert(str(folder), quantization=quantization, force=True)
