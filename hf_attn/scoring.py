"""Forced decoding: the log-probability a model gives to existing translations, per sentence and per token.

What transformers#7766 and fairseq#4669 ask for. The target is tokenized as for training
(its EOS included), so a sentence's summed log-probability is minus the model's loss (label
smoothing off) times its token count: the tests hold scoring to exactly that.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from .generation import (
    _eval_mode,
    _padded,
    _resolve_device,
    check_sources,
    check_tokenizer_fits,
    model_position_limit,
    tokenize_within_limit,
)
from .models.config_validation import require_positive_int


@dataclass
class SentenceScore:
    """``log_prob``: sum over target tokens (EOS included); ``mean_log_prob``: per token; pieces with ``per_token``."""

    log_prob: float
    mean_log_prob: float
    tokens: int
    target_tokens: list[str] | None = None
    token_log_probs: list[float] | None = None

    def to_json(self) -> dict[str, Any]:
        return {key: value for key, value in asdict(self).items() if value is not None}


def sentence_score(tokens: Sequence[str], log_probs: Sequence[float], per_token: bool) -> SentenceScore:
    """The summary of one target's token log-probabilities (shared by both engines)."""
    total = float(sum(log_probs))
    return SentenceScore(
        log_prob=total,
        mean_log_prob=total / max(len(log_probs), 1),
        tokens=len(log_probs),
        target_tokens=list(tokens) if per_token else None,
        token_log_probs=[float(value) for value in log_probs] if per_token else None,
    )


def check_pairs(sources: Sequence[str], targets: Sequence[str]) -> tuple[list[str], list[str]]:
    """Sources and targets as lists of strings of equal length; anything else is an error that says what."""
    sources, targets = check_sources(sources), check_sources(targets)
    if len(sources) != len(targets):
        raise ValueError(f"{len(sources)} source(s) but {len(targets)} target(s): scoring needs one target per source.")
    return sources, targets


def encode_targets(tokenizer: PreTrainedTokenizerBase, targets: list[str], limit: int | None) -> list[list[int]]:
    """Target ids as training sees them (EOS appended), cut to the model's position table."""
    kwargs = {"truncation": True, "max_length": limit} if limit else {}
    return tokenizer(text_target=targets, **kwargs)["input_ids"]


def score(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    sources: Sequence[str],
    targets: Sequence[str],
    *,
    batch_size: int = 32,
    per_token: bool = False,
    device: str | torch.device | None = None,
) -> list[SentenceScore]:
    """Each target's log-probability given its source under ``model`` (teacher forcing, dropout off)."""
    require_positive_int("batch_size", batch_size)
    sources, targets = check_pairs(sources, targets)
    check_tokenizer_fits(model, tokenizer)
    run_device = _resolve_device(model, device)
    limit = model_position_limit(model)
    source_ids = tokenize_within_limit(tokenizer, sources, limit)["input_ids"] if sources else []
    target_ids = encode_targets(tokenizer, targets, limit) if targets else []
    results: list[SentenceScore] = []
    with _eval_mode(model), torch.inference_mode():
        for start in range(0, len(sources), batch_size):
            rows = target_ids[start : start + batch_size]
            input_ids, attention_mask = _padded(
                source_ids[start : start + batch_size], tokenizer.pad_token_id, run_device
            )
            labels, label_mask = _padded(rows, tokenizer.pad_token_id, run_device)
            labels = labels.masked_fill(label_mask == 0, -100)
            logits = model(input_ids=input_ids, attention_mask=attention_mask, labels=labels).logits
            log_probs = torch.log_softmax(logits.float(), dim=-1)
            picked = log_probs.gather(-1, labels.clamp(min=0).unsqueeze(-1)).squeeze(-1)
            for row, values in zip(rows, picked.cpu()):
                results.append(
                    sentence_score(tokenizer.convert_ids_to_tokens(row), values[: len(row)].tolist(), per_token)
                )
    return results
