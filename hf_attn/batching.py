"""Token-count batching: batches of similar-length sentences up to a padded-token budget.

Sentences are shuffled, cut into large pools, sorted by length inside each pool and
packed into batches whose padded size (rows x longest sentence) stays under
``max_tokens``; the batch order is shuffled again. The whole plan is a pure function of
(lengths, seed, epoch), so every process of a distributed run computes the same global
batches and takes its own share of each, and a resumed run can skip exactly the batches it
has already trained on.
"""

from __future__ import annotations

import random
from collections.abc import Iterator, Sequence

from torch.utils.data import Sampler


def plan_token_batches(
    lengths: Sequence[int], max_tokens: int, seed: int, epoch: int, pool_factor: int = 50, min_batch_size: int = 1
) -> list[list[int]]:
    """Global batches (lists of dataset indices) for one epoch.

    ``lengths[i]`` is the padded length example i contributes (e.g. max of source and
    target tokens). Batches with fewer than ``min_batch_size`` rows are dropped, so each of
    that many processes always gets at least one sentence.
    """
    if max_tokens < 1:
        raise ValueError(f"`max_tokens` must be a positive integer, got {max_tokens!r}.")
    too_long = [i for i, length in enumerate(lengths) if length > max_tokens]
    if too_long:
        raise ValueError(
            f"{len(too_long)} examples are longer than `max_tokens` ({max_tokens}), e.g. example {too_long[0]} "
            f"with {lengths[too_long[0]]} tokens; raise `max_tokens` or filter long sentences."
        )
    rng = random.Random(seed * 1_000_003 + epoch)
    order = list(range(len(lengths)))
    rng.shuffle(order)
    batches: list[list[int]] = []
    pool_size = max(1, pool_factor * max(1, max_tokens // max(1, max(lengths, default=1))))
    for start in range(0, len(order), pool_size):
        pool = sorted(order[start : start + pool_size], key=lambda i: lengths[i])
        batch: list[int] = []
        longest = 0
        for index in pool:
            candidate_longest = max(longest, lengths[index])
            if batch and candidate_longest * (len(batch) + 1) > max_tokens:
                batches.append(batch)
                batch, candidate_longest = [], lengths[index]
            batch.append(index)
            longest = candidate_longest
        if batch:
            batches.append(batch)
    rng.shuffle(batches)
    return [batch for batch in batches if len(batch) >= min_batch_size]


class TokenBatchSampler(Sampler[list[int]]):
    """Yields this process's share of each global token-count batch, resumable mid-epoch.

    Rank r of ``world_size`` processes takes rows ``r::world_size`` of every global batch, so
    a run on N processes sees exactly the sentences a single process would see in one step.
    Global batches with fewer than ``min_batch_size`` rows (default: ``world_size``, so that no
    process is left without data) are skipped; give a single-process run the same value to
    reproduce a multi-process run's plan exactly.
    """

    def __init__(
        self,
        lengths: Sequence[int],
        max_tokens: int,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
        min_batch_size: int | None = None,
    ) -> None:
        if not 0 <= rank < world_size:
            raise ValueError(f"`rank` must be in [0, {world_size}), got {rank}.")
        self.lengths = list(lengths)
        self.max_tokens = max_tokens
        self.seed = seed
        self.rank = rank
        self.world_size = world_size
        self.min_batch_size = world_size if min_batch_size is None else min_batch_size
        if self.min_batch_size < world_size:
            raise ValueError(f"`min_batch_size` ({min_batch_size}) must be at least `world_size` ({world_size}).")
        self.epoch = 0
        self.skip_batches = 0

    def set_epoch(self, epoch: int, skip_batches: int = 0) -> None:
        """Select the epoch's plan; ``skip_batches`` resumes after that many already-trained batches."""
        self.epoch = epoch
        self.skip_batches = skip_batches

    def global_batches(self) -> list[list[int]]:
        return plan_token_batches(
            self.lengths, self.max_tokens, self.seed, self.epoch, min_batch_size=self.min_batch_size
        )

    def __iter__(self) -> Iterator[list[int]]:
        for batch in self.global_batches()[self.skip_batches :]:
            yield batch[self.rank :: self.world_size]

    def __len__(self) -> int:
        return max(0, len(self.global_batches()) - self.skip_batches)
