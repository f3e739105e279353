"""Evaluate the teacher, the student and the exported student on the test split, and write the student's card.

Each model is scored by the project's evaluation (sacrebleu BLEU/chrF, tokens/s, BLEU by
source length) on its own engine; each result is kept in ``EVAL_DIR/NAME/metrics.json`` and
reused by a restarted run. The card is ``hf_attn.cards.write_model_card``'s, with a
"Distillation" section naming the teacher and comparing the three models.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import datasets

from ..atomic import read_json_if_exists
from ..cards import BIBLE_DATASET_DESCRIPTION, write_model_card
from ..evaluation import TranslateSplit, evaluate_translator

WEIGHT_SUFFIXES = (".safetensors", ".bin")


def weights_megabytes(folder: str | os.PathLike) -> float | None:
    """Size of a model folder's weight files (safetensors, CTranslate2's model.bin) in MB; None for a Hub id."""
    path = Path(folder)
    if not path.is_dir():
        return None
    return round(sum(f.stat().st_size for f in path.iterdir() if f.suffix in WEIGHT_SUFFIXES) / 1e6, 2)


def evaluate_once(
    name: str,
    eval_dir: Path,
    test_split: datasets.Dataset,
    make_translator: Callable[[], TranslateSplit],
    *,
    engine: str,
    num_beams: int,
    batch_size: int,
    max_examples: int | None,
) -> dict[str, Any]:
    """Score a model on ``test_split`` into ``eval_dir/name``; the same evaluation finished there before is reused.

    ``make_translator`` loads the model only when the evaluation is not done yet.
    """
    folder = eval_dir / name
    done = read_json_if_exists(folder / "metrics.json")
    expected = len(test_split) if max_examples is None else min(max_examples, len(test_split))
    if done is not None and done.get("n") == expected and done.get("num_beams") == num_beams:
        return done
    return evaluate_translator(
        make_translator(),
        test_split,
        output_dir=folder,
        num_beams=num_beams,
        batch_size=batch_size,
        max_examples=max_examples,
        extra_metrics={"engine": engine},
    )


def _cell(value: Any, digits: int = 1) -> str:
    return "n/a" if value is None else f"{value:,.{digits}f}"


def distillation_section(teacher: str, settings: Mapping[str, Any], models: Mapping[str, Mapping[str, Any]]) -> str:
    """The card's "Distillation" section: the teacher, how it translated, and the three models side by side."""
    rows = [
        f"| {name} | {entry.get('engine')} | {_cell(entry['metrics'].get('bleu'))} | "
        f"{_cell(entry['metrics'].get('chrf'))} | {_cell(entry['metrics'].get('tokens_per_second'), 0)} | "
        f"{_cell(entry.get('megabytes'), 1)} |"
        for name, entry in models.items()
    ]
    mixed = " mixed with the original references" if settings.get("mix_references") else ""
    return (
        "## Distillation\n\n"
        f"This model is a student distilled from the teacher **`{teacher}`** by sequence-level knowledge "
        "distillation (Kim & Rush 2016, arXiv:1606.07947) with `hf-attn distill`: the teacher translated the "
        f"training sources (beam {settings.get('num_beams')}, on {models['teacher']['engine']}), and the "
        f"student was trained on those translations{mixed}. Validation and test keep the human references.\n\n"
        "Test split, same sentences for every model (tokens/s: generated target tokens per second of decoding on "
        "this machine; MB: weight files):\n\n"
        "| model | engine | BLEU | chrF | tokens/s | MB |\n|---|---|---|---|---|---|\n" + "\n".join(rows) + "\n"
    )


def write_distillation_card(
    model_dir: str | os.PathLike,
    run_dir: str | os.PathLike,
    teacher: str,
    settings: Mapping[str, Any],
    models: Mapping[str, Mapping[str, Any]],
) -> Path:
    """The student's model card (``model_dir/README.md``) with the Distillation section; returns its path."""
    data = settings.get("data")
    source = BIBLE_DATASET_DESCRIPTION if data is None else f"User data from `{data}`."
    return write_model_card(
        model_dir,
        run_dir=run_dir,
        test_metrics=models["student"]["metrics"],
        dataset_description=f"{source}\n\nThe training targets are translations by the teacher `{teacher}` "
        "(see Distillation below); validation and test keep the references.",
        extra_sections=[distillation_section(teacher, settings, models)],
    )
