"""Translate the training sources in chunks, each written atomically, so a killed run resumes where it stopped.

Chunk ``k`` holds sources ``k * chunk_size`` … and their translations in one JSON file
(``chunk-00000k.json``), renamed into place only when complete: after a kill every file on disk
is whole, the chunk being translated is simply absent, and a restart translates only the
missing chunks. A chunk file whose sources differ from the data's (the data changed under the
run) is refused rather than silently mixed in; the temporary file of a chunk cut off mid-write is
removed on restart.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from tqdm.auto import tqdm

from ..atomic import atomic_write_json, read_json_file
from ..evaluation import TranslateSplit
from ..models.config_validation import require_positive_int


@dataclass
class ChunkedTranslations:
    """All hypotheses in source order, and what this call did (chunks translated now vs found on disk)."""

    hypotheses: list[str]
    translated_chunks: int
    reused_chunks: int
    generation_seconds: float
    generated_tokens: int


def chunk_path(chunk_dir: Path, index: int) -> Path:
    return chunk_dir / f"chunk-{index:06d}.json"


def _read_chunk(path: Path, sources: list[str]) -> list[str]:
    record = read_json_file(path)
    if not isinstance(record, dict) or record.get("sources") != sources:
        raise ValueError(
            f"{path} holds translations of other sources than the data's at this position: the data changed "
            "since this run began. Use a new --output-dir (or delete the chunks folder)."
        )
    hypotheses = record.get("hypotheses")
    if not isinstance(hypotheses, list) or len(hypotheses) != len(sources):
        raise ValueError(f"{path} is damaged: it needs one hypothesis per source ({len(sources)}).")
    return hypotheses


def translate_in_chunks(
    sources: Sequence[str],
    translate: TranslateSplit,
    chunk_dir: str | os.PathLike,
    *,
    chunk_size: int = 1000,
    num_beams: int = 4,
    batch_size: int = 32,
    progress: bool = False,
) -> ChunkedTranslations:
    """Translate ``sources`` with ``translate`` (an engine's ``translate_with_stats``), one atomic file per chunk."""
    require_positive_int("chunk_size", chunk_size)
    folder = Path(chunk_dir)
    folder.mkdir(parents=True, exist_ok=True)
    for leftover in folder.glob(".chunk-*.tmp"):  # a chunk being written when the process was killed
        leftover.unlink()
    sources = list(sources)
    hypotheses: list[str] = []
    translated = reused = tokens = 0
    seconds = 0.0
    starts = range(0, len(sources), chunk_size)
    for index, start in enumerate(tqdm(starts, unit="chunk", desc="teacher", disable=not progress)):
        part = sources[start : start + chunk_size]
        path = chunk_path(folder, index)
        if path.is_file():
            hypotheses.extend(_read_chunk(path, part))
            reused += 1
            continue
        result = translate(
            part, batch_size=batch_size, num_beams=num_beams, max_new_tokens=None, length_penalty=1.0, progress=False
        )
        atomic_write_json(
            path,
            {
                "index": index,
                "start": start,
                "sources": part,
                "hypotheses": result.hypotheses,
                "generation_seconds": result.generation_seconds,
                "generated_tokens": result.generated_tokens,
            },
        )
        hypotheses.extend(result.hypotheses)
        translated += 1
        seconds += result.generation_seconds
        tokens += result.generated_tokens
    return ChunkedTranslations(hypotheses, translated, reused, seconds, tokens)
