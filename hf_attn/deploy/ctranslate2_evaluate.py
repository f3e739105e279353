"""``hf-attn evaluate --engine ctranslate2``: BLEU, chrF and tokens/s of an exported folder, as for a saved model."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from ..data import load_bible_corpus, load_parallel_data
from ..decoding import DecodingOptions, best_translations
from ..evaluation import evaluate_translator
from .ctranslate2_translate import CTranslate2Model


def evaluate_ctranslate2(
    model: CTranslate2Model,
    *,
    data: str | None = None,
    split: str = "test",
    output_dir: str | os.PathLike | None = None,
    num_beams: int = 4,
    batch_size: int = 32,
    max_examples: int | None = None,
    decoding: DecodingOptions | None = None,
) -> dict[str, Any]:
    """Score ``model`` on a split of user data (default: the bundled corpus); writes MODEL/eval-SPLIT by default.

    ``decoding`` translates with :meth:`CTranslate2Model.decode` and those options (its beam replaces ``num_beams``).
    """
    corpus = load_bible_corpus() if data is None else load_parallel_data(data)
    if split not in corpus:
        raise ValueError(f"split {split!r} not in the data (splits: {', '.join(corpus)})")
    translate = model.translate_with_stats
    extra = {"engine": "ctranslate2", "quantization": model.quantization}
    if decoding is not None:
        translate = best_translations(
            lambda sources, options, size: model.decode(sources, options, batch_size=size), decoding
        )
        num_beams, extra = decoding.num_beams, {**extra, "decoding": decoding.as_dict()}
    return evaluate_translator(
        translate,
        corpus[split],
        output_dir=output_dir or Path(model.folder) / f"eval-{split}",
        num_beams=num_beams,
        batch_size=batch_size,
        max_examples=max_examples,
        length_penalty=1.0 if decoding is None else decoding.length_penalty,
        extra_metrics=extra,
    )
