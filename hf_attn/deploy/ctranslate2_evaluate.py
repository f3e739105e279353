"""``hf-attn evaluate --engine ctranslate2``: BLEU, chrF and tokens/s of an exported folder, as for a saved model."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from ..data import load_bible_corpus, load_parallel_data
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
) -> dict[str, Any]:
    """Score ``model`` on a split of user data (default: the bundled corpus); writes MODEL/eval-SPLIT by default."""
    corpus = load_bible_corpus() if data is None else load_parallel_data(data)
    if split not in corpus:
        raise ValueError(f"split {split!r} not in the data (splits: {', '.join(corpus)})")
    return evaluate_translator(
        model.translate_with_stats,
        corpus[split],
        output_dir=output_dir or Path(model.folder) / f"eval-{split}",
        num_beams=num_beams,
        batch_size=batch_size,
        max_examples=max_examples,
        extra_metrics={"engine": "ctranslate2", "quantization": model.quantization},
    )
