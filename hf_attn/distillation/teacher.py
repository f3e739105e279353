"""The teacher: any transformers seq2seq model with its own tokenizer, on CTranslate2 when it converts to it.

Our Transformer goes through ``hf-attn export``'s converter; other architectures (Marian/OPUS-MT,
NLLB, M2M100, …) through CTranslate2's own ``TransformersConverter``. A teacher neither handles
(an RNN, a model type CTranslate2 does not know) translates with ``generate``. Whatever the
engine, it is driven through :func:`hf_attn.generation.translate_in_batches` (the same batching,
bounds and decoding as evaluation), so the teacher's test score and its distilled targets come
from the same decoding.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from transformers import AutoConfig, AutoModelForSeq2SeqLM, PreTrainedConfig, PreTrainedTokenizerBase
from transformers.models.auto.modeling_auto import MODEL_FOR_SEQ_TO_SEQ_CAUSAL_LM_MAPPING

from ..atomic import atomic_directory, atomic_write_json
from ..evaluation import TranslateSplit
from ..generation import HF_ATTN_MODEL_TYPES
from ..inference import load_model_and_tokenizer
from ..tokenization import hub_lookup_failed, load_pretrained_tokenizer
from .engines import model_translator

logger = logging.getLogger(__name__)

TEACHER_ENGINES = ("auto", "ctranslate2", "torch")
UNKNOWN_TOKEN_LIMIT = 0.02
TOKENIZER_SAMPLE = 500


@dataclass
class Teacher:
    """A loaded teacher: what it is, the engine it runs on, and its ``translate_with_stats``."""

    name: str
    model_type: str
    engine: str
    quantization: str | None
    tokenizer: PreTrainedTokenizerBase
    translate_with_stats: TranslateSplit


def teacher_config(teacher: str) -> PreTrainedConfig:
    """The teacher's config; refused unless ``AutoModelForSeq2SeqLM`` can load the model it describes."""
    local = Path(teacher).expanduser().exists()
    try:
        config = AutoConfig.from_pretrained(teacher)
    except OSError as error:
        if not local:
            raise hub_lookup_failed(teacher, "teacher model", error) from error
        raise ValueError(f"The teacher {teacher!r} is not a transformers model folder ({error}).") from error
    if type(config) not in MODEL_FOR_SEQ_TO_SEQ_CAUSAL_LM_MAPPING:
        raise ValueError(
            f"The teacher {teacher!r} is a {config.model_type!r} model, not a sequence-to-sequence one: "
            "AutoModelForSeq2SeqLM cannot load it. Give an encoder-decoder translation model (MarianMT, NLLB, "
            "M2M100, an hf_attn model)."
        )
    return config


def check_tokenizer_encodes(
    tokenizer: PreTrainedTokenizerBase, sources: Sequence[str], teacher: str, limit: float = UNKNOWN_TOKEN_LIMIT
) -> None:
    """Refuse a teacher whose tokenizer maps more than ``limit`` of a sample's tokens to its unknown token.

    Such a teacher was made for other languages or scripts: it would translate text it cannot
    see, and the student would learn its guesses.
    """
    unknown_id = tokenizer.unk_token_id
    sample = [source for source in sources[:TOKENIZER_SAMPLE] if source.strip()]
    if unknown_id is None or not sample:
        return  # a byte-level tokenizer encodes every text
    rows = tokenizer(sample)["input_ids"]
    total = sum(len(row) for row in rows)
    unknown = sum(row.count(unknown_id) for row in rows)
    if total and unknown / total > limit:
        example = next(source for source, row in zip(sample, rows) if unknown_id in row)
        raise ValueError(
            f"The tokenizer of teacher {teacher!r} cannot encode the data: {unknown:,} of {total:,} tokens "
            f"({unknown / total:.0%}) of the first {len(sample)} training sources are its unknown token "
            f"{tokenizer.unk_token!r} (for example in {example[:80]!r}). Use a teacher for this language pair."
        )


def load_teacher_tokenizer(teacher: str) -> PreTrainedTokenizerBase:
    return load_pretrained_tokenizer(teacher, exists_locally=Path(teacher).expanduser().exists())


def _torch_teacher(teacher: str, config: PreTrainedConfig) -> Teacher:
    if config.model_type in HF_ATTN_MODEL_TYPES:
        model, tokenizer = load_model_and_tokenizer(teacher)
    else:
        model = AutoModelForSeq2SeqLM.from_pretrained(teacher).eval()
        tokenizer = load_teacher_tokenizer(teacher)
    return Teacher(teacher, config.model_type, "torch", None, tokenizer, model_translator(model, tokenizer))


def _convert_foreign(teacher: str, config: PreTrainedConfig, folder: Path, quantization: str) -> None:
    """Convert a non-hf_attn teacher with CTranslate2's converter; ValueError when it knows no such model."""
    from ctranslate2.converters import TransformersConverter

    from ..deploy.metadata import METADATA_NAME, export_metadata

    def write(staging: Path) -> None:
        TransformersConverter(teacher).convert(str(staging), quantization=quantization, force=True)
        atomic_write_json(staging / METADATA_NAME, export_metadata("ctranslate2", quantization, config, teacher))

    atomic_directory(folder, write)


def _ctranslate2_teacher(teacher: str, config: PreTrainedConfig, folder: Path, quantization: str) -> Teacher:
    from ..deploy.ctranslate2_translate import CTranslate2Model
    from ..deploy.export import export_model

    if not folder.is_dir():
        if config.model_type in HF_ATTN_MODEL_TYPES:
            export_model(teacher, folder, "ctranslate2", quantization)
        else:
            _convert_foreign(teacher, config, folder, quantization)
    foreign = config.model_type not in HF_ATTN_MODEL_TYPES
    model = CTranslate2Model(folder, tokenizer=load_teacher_tokenizer(teacher) if foreign else None)
    return Teacher(teacher, config.model_type, "ctranslate2", quantization, model.tokenizer, model.translate_with_stats)


def load_teacher(
    teacher: str, engine_dir: str | os.PathLike, *, engine: str = "auto", quantization: str = "int8"
) -> Teacher:
    """The teacher ready to translate; with CTranslate2 its converted copy lives in ``engine_dir`` (kept for reuse).

    ``engine="auto"`` takes CTranslate2 when the package is installed and the model converts,
    else ``generate``; ``"ctranslate2"`` insists (and says why it cannot).
    """
    if engine not in TEACHER_ENGINES:
        raise ValueError(f"Unknown teacher engine {engine!r}; choose one of {', '.join(TEACHER_ENGINES)}.")
    config = teacher_config(teacher)
    if engine == "torch":
        return _torch_teacher(teacher, config)
    try:
        from ..deploy.requirements import require_ctranslate2

        require_ctranslate2()
        if config.model_type == "rnn_seq2seq":
            raise ValueError("CTranslate2 runs no RNN: an rnn_seq2seq teacher translates with generate.")
        return _ctranslate2_teacher(teacher, config, Path(engine_dir), quantization)
    except (ImportError, ValueError) as error:
        if engine == "ctranslate2":
            raise ValueError(f"The teacher {teacher!r} cannot run on CTranslate2: {error}") from error
        logger.warning("Teacher %s translates with generate, not CTranslate2: %s", teacher, error)
        return _torch_teacher(teacher, config)
