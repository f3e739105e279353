"""The data every system trains and generates on, prepared once and saved for the workers to load.

Real batches are the first token-count batches of an epoch of the bundled corpus, collated
as hf_attn's training loop does; synthetic batches of one fixed sentence length feed the
scaling benchmark; Joey NMT reads the same BPE pieces as a word-level vocabulary.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from .settings import LABEL_PAD, BenchmarkSettings

# Token limits of a pair in the real batches (longer pairs are dropped, as the training loop does).
MAX_PAIR_TOKENS = 128


@dataclass
class PreparedData:
    """What the workers read (``batches_file``) plus what the report says about it."""

    batches_file: Path
    joey_vocab_file: Path
    vocab_size: int
    special_ids: dict[str, int]
    description: dict[str, Any]
    joey_cli_texts: dict[str, list[str]]


def special_ids(tokenizer) -> dict[str, int]:
    """The config fields both Transformers and the RNNs take from the tokenizer's special tokens."""
    return {
        "pad_token_id": tokenizer.pad_token_id,
        "bos_token_id": tokenizer.bos_token_id,
        "eos_token_id": tokenizer.eos_token_id,
        "decoder_start_token_id": tokenizer.bos_token_id,
    }


def prepare_data(settings: BenchmarkSettings, work_dir: Path) -> PreparedData:
    """BPE on the bundled corpus, the first token-count batches of an epoch, test sources, synthetic batches."""
    from hf_attn.data import load_bible_corpus
    from hf_attn.tokenization import train_bpe_tokenizer

    corpus = load_bible_corpus()
    if settings.max_train_examples is not None:
        corpus["train"] = corpus["train"].select(range(min(settings.max_train_examples, len(corpus["train"]))))
    tokenizer = train_bpe_tokenizer(corpus, vocab_size=settings.model_size.vocab_size)
    vocab_size, ids = len(tokenizer), special_ids(tokenizer)
    train_batches, train_pairs = real_batches(corpus["train"], tokenizer, settings)
    train_sets = {"train": train_batches}
    for length in settings.scaling_lengths:
        train_sets[f"length_{length}"] = synthetic_batches(
            length, settings.scaling_tokens, vocab_size, ids, settings.seed
        )
    sources = list(corpus["test"]["source"][: settings.generation_sentences])
    encoded = (
        tokenizer(
            sources[start : start + settings.generation_batch_size],
            truncation=True,
            max_length=MAX_PAIR_TOKENS,
            padding=True,
            return_tensors="pt",
        )
        for start in range(0, len(sources), settings.generation_batch_size)
    )
    generation = [{"input_ids": e["input_ids"], "attention_mask": e["attention_mask"]} for e in encoded]
    work_dir.mkdir(parents=True, exist_ok=True)
    batches_file = work_dir / "batches.pt"
    torch.save({"train_sets": train_sets, "generation": generation}, batches_file)
    joey_vocab_file = write_joey_vocabulary(tokenizer, work_dir / "joey_vocab.txt")

    source_tokens = [int(b["attention_mask"].sum()) for b in train_batches]
    target_tokens = [int((b["labels"] != LABEL_PAD).sum()) for b in train_batches]
    description = {
        "corpus": "bundled KJV→RV1909 Bible pairs (hf_attn.data.load_bible_corpus), train split",
        "train_pairs": train_pairs,
        "vocab_size": vocab_size,
        "train_batches": len(train_batches),
        "max_padded_tokens_per_batch": settings.max_tokens,
        "mean_source_tokens_per_batch": round(statistics.mean(source_tokens), 1),
        "mean_target_tokens_per_batch": round(statistics.mean(target_tokens), 1),
        "mean_sentences_per_batch": round(statistics.mean(b["input_ids"].shape[0] for b in train_batches), 1),
        "generation_sentences": len(sources),
        "generation_mean_source_tokens": round(
            statistics.mean(int(m.sum()) for b in generation for m in b["attention_mask"]), 1
        ),
    }
    joey_cli_texts = {
        name: [" ".join(tokenizer.convert_ids_to_tokens(ids_[:-1])) for ids_ in tokenizer(texts)["input_ids"]]
        for name, texts in {
            "train.en": corpus["train"]["source"][:4000],
            "train.es": corpus["train"]["target"][:4000],
            "dev.en": corpus["validation"]["source"][:8],
            "dev.es": corpus["validation"]["target"][:8],
        }.items()
    }
    return PreparedData(batches_file, joey_vocab_file, vocab_size, ids, description, joey_cli_texts)


def real_batches(split, tokenizer, settings: BenchmarkSettings) -> tuple[list[dict[str, torch.Tensor]], int]:
    """The first ``train_batches`` token-count batches of epoch 0, collated as the training loop does."""
    from transformers import DataCollatorForSeq2Seq

    from hf_attn.batching import plan_token_batches
    from hf_attn.training.builders import example_lengths, tokenize_split

    tokenized = tokenize_split(split, tokenizer, MAX_PAIR_TOKENS, MAX_PAIR_TOKENS)
    plan = plan_token_batches(example_lengths(tokenized), settings.max_tokens, seed=settings.seed, epoch=0)
    if len(plan) < settings.train_batches:
        raise ValueError(
            f"The corpus gives only {len(plan)} batches; lower `train_batches` ({settings.train_batches})."
        )
    collator = DataCollatorForSeq2Seq(tokenizer, label_pad_token_id=LABEL_PAD, return_tensors="pt")
    keys = ("input_ids", "attention_mask", "labels")
    batches = [
        {k: v for k, v in collator([tokenized[i] for i in indices]).items() if k in keys}
        for indices in plan[: settings.train_batches]
    ]
    return batches, len(tokenized)


def write_joey_vocabulary(tokenizer, path: Path) -> Path:
    """Our BPE pieces in id order, one per line: Joey NMT's word-level ``voc_file`` for the same ids."""
    pieces = tokenizer.convert_ids_to_tokens(list(range(len(tokenizer))))
    if any(not piece or any(c.isspace() for c in piece) for piece in pieces):
        raise ValueError("A BPE piece is empty or contains whitespace: Joey NMT could not read it as a word.")
    path.write_text("\n".join(pieces) + "\n", encoding="utf-8")
    return path


def synthetic_batches(length: int, tokens: int, vocab_size: int, ids: dict[str, int], seed: int) -> list[dict]:
    """Two unpadded batches of ``tokens // length`` random sentences of exactly ``length`` tokens (EOS last)."""
    generator = torch.Generator().manual_seed(seed + length)
    rows = max(1, tokens // length)
    batches = []
    for _ in range(2):
        source = torch.randint(4, vocab_size, (rows, length), generator=generator)
        labels = torch.randint(4, vocab_size, (rows, length), generator=generator)
        source[:, -1] = labels[:, -1] = ids["eos_token_id"]
        batches.append({"input_ids": source, "attention_mask": torch.ones_like(source), "labels": labels})
    return batches
