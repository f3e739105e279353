"""Training speed against sentence length: the cost of sequential computation, measured.

An RNN processes a sentence one token after another; a Transformer layer processes all
positions at once (paying for attention quadratically in the length). Training steps on
synthetic batches that hold the *same number of tokens* at every length isolate that
effect: with a fixed token count, throughput changes only because of how the model's work
scales with length, not because of batch size.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence

import torch
from transformers import PreTrainedModel

FIRST_ORDINARY_ID = 4  # ids 0-3 are <pad>, <s>, </s>, <unk>


def synthetic_batch(model: PreTrainedModel, length: int, tokens: int, seed: int) -> dict[str, torch.Tensor]:
    """``tokens // length`` random sentence pairs of exactly ``length`` tokens each (``</s>`` last), no padding."""
    config = model.config
    generator = torch.Generator().manual_seed(seed + length)
    rows = max(1, tokens // length)
    source = torch.randint(FIRST_ORDINARY_ID, config.vocab_size, (rows, length), generator=generator)
    # Labels index the target vocabulary, which is smaller or larger than the source one when they are separate.
    labels = torch.randint(FIRST_ORDINARY_ID, config.target_vocab_size, (rows, length), generator=generator)
    source[:, -1] = labels[:, -1] = config.eos_token_id
    device = next(model.parameters()).device
    return {
        "input_ids": source.to(device),
        "attention_mask": torch.ones_like(source).to(device),
        "labels": labels.to(device),
    }


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _timed_step(model: PreTrainedModel, optimizer: torch.optim.Optimizer, batch: dict[str, torch.Tensor]) -> float:
    """Seconds of one forward, backward and optimizer update."""
    device = batch["input_ids"].device
    _synchronize(device)
    started = time.perf_counter()
    model(**batch).loss.backward()
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    _synchronize(device)
    return time.perf_counter() - started


def training_tokens_per_second(
    models: Mapping[str, PreTrainedModel],
    lengths: Sequence[int],
    *,
    tokens_per_batch: int = 2048,
    repeats: int = 3,
    warmup: int = 1,
    learning_rate: float = 1e-4,
    seed: int = 0,
) -> dict[str, list[float]]:
    """Target tokens per second of full training steps (forward, backward, AdamW update) per model and length.

    The models are trained by the measurement (their weights change): pass throw-away copies.
    They take turns one step at a time, the first one rotating every round, so a change of
    load on a shared machine hits every model alike; each (model, length) keeps the best of
    ``repeats`` timed steps (the least disturbed), after ``warmup`` untimed ones.
    """
    if not lengths or any(length < 2 for length in lengths):
        raise ValueError(f"`lengths` must be sentence lengths of at least 2 tokens, got {list(lengths)!r}.")
    if repeats < 1 or warmup < 0 or tokens_per_batch < 1:
        raise ValueError("`repeats` and `tokens_per_batch` must be positive and `warmup` non-negative.")
    names = list(models)
    optimizers = {name: torch.optim.AdamW(models[name].parameters(), lr=learning_rate) for name in names}
    rates: dict[str, list[float]] = {name: [] for name in names}
    for length in lengths:
        batches = {name: synthetic_batch(models[name], length, tokens_per_batch, seed) for name in names}
        best = dict.fromkeys(names, float("inf"))
        for round_index in range(warmup + repeats):
            for name in names[round_index % len(names) :] + names[: round_index % len(names)]:
                models[name].train()
                seconds = _timed_step(models[name], optimizers[name], batches[name])
                if round_index >= warmup:
                    best[name] = min(best[name], seconds)
        for name in names:
            rates[name].append(batches[name]["labels"].numel() / best[name])
    return rates
