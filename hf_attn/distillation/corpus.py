"""The distilled corpus: training sources paired with the teacher's translations, as a saved ``DatasetDict``.

Validation and test keep their references (a student is selected and scored against human
translations, not the teacher's). ``mix_references`` adds the original training pairs next to
the distilled ones. The folder is written with ``save_to_disk`` (atomically), which
``hf_attn.data.load_parallel_data`` and therefore ``hf-attn train --set data=…`` read.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import datasets

from ..atomic import atomic_directory
from ..generation import is_blank

DISTILLED_ID_SUFFIX = "#distilled"


def build_distilled_corpus(
    corpus: datasets.DatasetDict, hypotheses: Sequence[str], *, mix_references: bool = False
) -> datasets.DatasetDict:
    """``corpus`` with the training targets replaced by ``hypotheses`` (blank ones dropped), optionally mixed."""
    train = corpus["train"]
    if len(hypotheses) != len(train):
        raise ValueError(f"Got {len(hypotheses)} teacher translations for {len(train)} training pairs.")
    keep = [index for index, hypothesis in enumerate(hypotheses) if not is_blank(hypothesis)]
    if not keep and len(train):
        raise ValueError("The teacher translated every training source to an empty string: nothing to distil.")
    distilled = train.map(
        lambda example, index: {"id": f"{example['id']}{DISTILLED_ID_SUFFIX}", "target": hypotheses[index]},
        with_indices=True,
        desc="Distilled targets",
    ).select(keep)
    if mix_references:
        distilled = datasets.concatenate_datasets([distilled, train])
    return datasets.DatasetDict({"train": distilled, **{split: corpus[split] for split in corpus if split != "train"}})


def save_corpus(corpus: datasets.DatasetDict, folder: str | os.PathLike) -> Path:
    """Write ``corpus`` with ``save_to_disk`` into ``folder``, atomically (a kill leaves the old folder or none)."""
    return atomic_directory(folder, lambda staging: corpus.save_to_disk(str(staging)))
