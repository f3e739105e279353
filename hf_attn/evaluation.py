"""Score translations with sacrebleu: corpus BLEU/chrF, by source length, and a whole evaluation run.

Scores come from ``sacrebleu`` directly, because ``evaluate.load("sacrebleu")`` needs the
Hub; every score is stored with its sacrebleu signature so numbers stay comparable across
runs and papers. Translation itself is ``hf_attn.generation``.
"""

from __future__ import annotations

import functools
import logging
import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from sacrebleu.metrics import BLEU, CHRF
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from . import generation
from .atomic import atomic_write_json, atomic_write_text
from .decoding import DecodingOptions
from .deprecation import moved_names
from .generation import Translations, translate_with_stats
from .models.config_validation import require_positive_int

logger = logging.getLogger(__name__)

# Moved to hf_attn.generation (evaluation scores, generation translates): the old imports warn until 0.3.0.
_MOVED_TO_GENERATION = ("translate", "alignment", "default_max_new_tokens")
__getattr__ = moved_names(__name__, dict.fromkeys(_MOVED_TO_GENERATION, generation), removed_in="0.3.0")

Bucket = tuple[int, int | None]
DEFAULT_LENGTH_BUCKETS: tuple[Bucket, ...] = ((0, 10), (11, 20), (21, 30), (31, 40), (41, 50), (51, None))


def corpus_scores(hypotheses: Sequence[str], references: Sequence[str]) -> dict[str, Any]:
    """Corpus BLEU and chrF (sacrebleu defaults: 13a tokenisation, exp smoothing, chrF2) with signatures."""
    hypotheses, references = list(hypotheses), list(references)
    if len(hypotheses) != len(references):
        raise ValueError(f"Got {len(hypotheses)} hypotheses but {len(references)} references; they must pair up.")
    if not hypotheses:
        raise ValueError("Cannot score an empty corpus: no hypotheses and no references were given.")
    bleu, chrf = BLEU(), CHRF()
    bleu_score = bleu.corpus_score(hypotheses, [references])
    chrf_score = chrf.corpus_score(hypotheses, [references])
    return {
        "bleu": bleu_score.score,
        "chrf": chrf_score.score,
        "bleu_signature": str(bleu.get_signature()),
        "chrf_signature": str(chrf.get_signature()),
        "bleu_precisions": list(bleu_score.precisions),
        "brevity_penalty": bleu_score.bp,
        "hypothesis_length": bleu_score.sys_len,
        "reference_length": bleu_score.ref_len,
        "n": len(hypotheses),
    }


def _bucket_label(bucket: Bucket) -> str:
    low, high = bucket
    return f"{low}+" if high is None else f"{low}-{high}"


def _bucket_holds(bucket: Bucket, words: int) -> bool:
    low, high = bucket
    return low <= words and (high is None or words <= high)


def _check_buckets(buckets: Sequence[Bucket]) -> None:
    for low, high in buckets:
        if not isinstance(low, int) or low < 0 or (high is not None and (not isinstance(high, int) or high < low)):
            raise ValueError(
                f"Bucket ({low!r}, {high!r}) must be (min_words, max_words) with 0 <= min <= max, or max None."
            )


def bleu_by_source_length(
    sources: Sequence[str],
    hypotheses: Sequence[str],
    references: Sequence[str],
    buckets: Sequence[Bucket] = DEFAULT_LENGTH_BUCKETS,
) -> list[dict[str, Any]]:
    """BLEU and chrF per source-length bucket (whitespace words, inclusive bounds; None = no upper bound).

    The view of Bahdanau et al. (2014), Fig. 2: how quality falls with sentence length.
    A sentence goes to the first bucket that holds its length; sentences no bucket holds are
    left out (with a warning). Empty buckets are kept with ``n`` 0 and scores None.
    """
    if not (len(sources) == len(hypotheses) == len(references)):
        raise ValueError(
            f"Got {len(sources)} sources, {len(hypotheses)} hypotheses and {len(references)} references; "
            "they must have the same length."
        )
    _check_buckets(buckets)
    members: list[list[int]] = [[] for _ in buckets]
    unplaced = 0
    for index, source in enumerate(sources):
        words = len(source.split())
        slot = next((b for b, bucket in enumerate(buckets) if _bucket_holds(bucket, words)), None)
        if slot is None:
            unplaced += 1
        else:
            members[slot].append(index)
    if unplaced:
        logger.warning("%d sentences fall in no length bucket of %s and were left out.", unplaced, list(buckets))
    table = []
    for (low, high), indices in zip(buckets, members):
        row: dict[str, Any] = {
            "bucket": _bucket_label((low, high)),
            "min_words": low,
            "max_words": high,
            "n": len(indices),
        }
        if indices:
            scores = corpus_scores([hypotheses[i] for i in indices], [references[i] for i in indices])
            row.update(bleu=scores["bleu"], chrf=scores["chrf"])
        else:
            row.update(bleu=None, chrf=None)
        table.append(row)
    return table


TranslateSplit = Callable[..., Translations]
"""``translate(sources, *, batch_size, num_beams, max_new_tokens, length_penalty, progress) -> Translations``."""


def evaluate_model(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    dataset_split: Any,
    *,
    output_dir: str | os.PathLike | None = None,
    num_beams: int = 4,
    batch_size: int = 32,
    max_examples: int | None = None,
    max_new_tokens: int | None = None,
    length_penalty: float = 1.0,
    device: str | torch.device | None = None,
    progress: bool = False,
    buckets: Sequence[Bucket] = DEFAULT_LENGTH_BUCKETS,
    source_column: str = "source",
    target_column: str = "target",
    decoding: DecodingOptions | None = None,
) -> dict[str, Any]:
    """Translate a ``datasets.Dataset`` split with ``model.generate``, score it, and optionally save the results.

    With ``output_dir`` it writes ``hypotheses.txt`` (one line per example, dataset order) and
    ``metrics.json`` (the returned dict), each atomically. ``max_examples`` keeps the first
    examples, so periodic dev evaluations during training see the same sentences every time.
    Call it on one process only under distributed training. ``decoding`` (sampling, n-gram
    blocking, a length ratio, ...) translates with :func:`hf_attn.decoding.decode` instead; its
    ``num_beams`` and ``length_penalty`` then replace the arguments of the same name.
    """
    translate: TranslateSplit = functools.partial(
        translate_with_stats, model, tokenizer, device=device, generate_kwargs={}
    )
    if decoding is not None:
        from .decoding import best_translations, decode

        translate = best_translations(
            lambda sources, options, size: decode(model, tokenizer, sources, options, batch_size=size, device=device),
            decoding,
        )
        num_beams, length_penalty = decoding.num_beams, decoding.length_penalty
    return evaluate_translator(
        translate,
        dataset_split,
        output_dir=output_dir,
        num_beams=num_beams,
        batch_size=batch_size,
        max_examples=max_examples,
        max_new_tokens=max_new_tokens,
        length_penalty=length_penalty,
        progress=progress,
        buckets=buckets,
        source_column=source_column,
        target_column=target_column,
        extra_metrics=None if decoding is None else {"decoding": decoding.as_dict()},
    )


def evaluate_translator(
    translate: TranslateSplit,
    dataset_split: Any,
    *,
    output_dir: str | os.PathLike | None = None,
    num_beams: int = 4,
    batch_size: int = 32,
    max_examples: int | None = None,
    max_new_tokens: int | None = None,
    length_penalty: float = 1.0,
    progress: bool = False,
    buckets: Sequence[Bucket] = DEFAULT_LENGTH_BUCKETS,
    source_column: str = "source",
    target_column: str = "target",
    extra_metrics: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """:func:`evaluate_model` for any engine: ``translate`` produces the hypotheses (e.g. an exported model's).

    ``extra_metrics`` (such as the engine's name) are stored with the scores.
    """
    missing = {source_column, target_column} - set(dataset_split.column_names)
    if missing:
        columns = dataset_split.column_names
        raise ValueError(f"The dataset has no column(s) {sorted(missing)}; its columns are {columns}.")
    if max_examples is not None:
        require_positive_int("max_examples", max_examples)
        dataset_split = dataset_split.select(range(min(max_examples, len(dataset_split))))
    sources, references = list(dataset_split[source_column]), list(dataset_split[target_column])
    began = time.perf_counter()
    translations = translate(
        sources,
        batch_size=batch_size,
        num_beams=num_beams,
        max_new_tokens=max_new_tokens,
        length_penalty=length_penalty,
        progress=progress,
    )
    metrics = corpus_scores(translations.hypotheses, references)
    metrics.update(
        num_beams=num_beams,
        length_penalty=length_penalty,
        max_new_tokens=max_new_tokens,
        batch_size=batch_size,
        generation_seconds=translations.generation_seconds,
        generated_tokens=translations.generated_tokens,
        tokens_per_second=translations.generated_tokens / translations.generation_seconds
        if translations.generation_seconds > 0
        else None,
        by_source_length=bleu_by_source_length(sources, translations.hypotheses, references, buckets),
        **(extra_metrics or {}),
    )
    metrics["seconds"] = time.perf_counter() - began
    logger.info(
        "BLEU %.2f chrF %.2f on %d sentences (beam %d) in %.1f s",
        *(metrics[key] for key in ("bleu", "chrf", "n", "num_beams", "seconds")),
    )
    if output_dir is not None:
        lines = "".join(" ".join(hypothesis.splitlines()) + "\n" for hypothesis in translations.hypotheses)
        atomic_write_text(Path(output_dir) / "hypotheses.txt", lines)
        atomic_write_json(Path(output_dir) / "metrics.json", metrics)
    return metrics
