"""The ``translate_with_stats`` functions the stages drive: ``generate`` on a model, or an exported folder's engine."""

from __future__ import annotations

import functools
import os

from transformers import PreTrainedModel, PreTrainedTokenizerBase

from ..evaluation import TranslateSplit
from ..generation import translate_with_stats
from ..inference import load_model_and_tokenizer


def model_translator(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase) -> TranslateSplit:
    """``model.generate`` in length-sorted batches (:func:`hf_attn.generation.translate_with_stats`)."""
    return functools.partial(translate_with_stats, model, tokenizer, device=None, generate_kwargs={})


def folder_translator(model_dir: str | os.PathLike) -> TranslateSplit:
    """A saved (or torch-int8 exported) hf_attn folder under ``generate``."""
    return model_translator(*load_model_and_tokenizer(model_dir))


def exported_translator(folder: str | os.PathLike, format: str) -> TranslateSplit:
    """An ``hf-attn export`` folder on the engine its format runs in (CTranslate2, or ``generate`` for torch-int8)."""
    if format == "ctranslate2":
        from ..deploy.ctranslate2_translate import CTranslate2Model

        return CTranslate2Model(folder).translate_with_stats
    return folder_translator(folder)
