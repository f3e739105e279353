"""Token-count batching: batches of similar-length sentences up to a padded-token budget.

Sentences are shuffled, cut into large pools, sorted by length inside each pool and
packed into batches whose padded size (rows x longest sentence) stays under
``max_tokens``; the batch order is shuffled again. The whole plan is a pure function of
(lengths, seed, epoch), so every process of a distributed run computes the same global
batches and takes its own share of each, and a resumed run can skip exactly the batches it
has already trained on. It is computed with numpy over an integer array of lengths, so a
corpus of millions of pairs is planned in about a second, not row by row in Python.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence

import numpy as np
from torch.utils.data import Sampler

logger = logging.getLogger(__name__)


def plan_token_batches(
    lengths: Sequence[int] | np.ndarray,
    max_tokens: int,
    seed: int,
    epoch: int,
    pool_factor: int = 50,
    min_batch_size: int = 1,
) -> list[list[int]]:
    """Global batches (lists of dataset indices) for one epoch.

    ``lengths[i]`` is the padded length example i contributes (e.g. max of source and
    target tokens). Batches with fewer than ``min_batch_size`` rows are dropped (with a
    warning giving the count), so each of that many processes always gets at least one sentence.
    """
    return [
        batch.tolist()
        for batch in plan_token_batch_arrays(lengths, max_tokens, seed, epoch, pool_factor, min_batch_size)
    ]


def plan_token_batch_arrays(
    lengths: Sequence[int] | np.ndarray,
    max_tokens: int,
    seed: int,
    epoch: int,
    pool_factor: int = 50,
    min_batch_size: int = 1,
) -> list[np.ndarray]:
    """:func:`plan_token_batches` as int64 arrays: 8 bytes an index, against about 36 as Python ints in lists."""
    if max_tokens < 1:
        raise ValueError(f"`max_tokens` must be a positive integer, got {max_tokens!r}.")
    lengths = np.asarray(lengths, dtype=np.int64)
    too_long = np.flatnonzero(lengths > max_tokens)
    if too_long.size:
        raise ValueError(
            f"{too_long.size} examples are longer than `max_tokens` ({max_tokens}), e.g. example {too_long[0]} "
            f"with {lengths[too_long[0]]} tokens; raise `max_tokens` or filter long sentences."
        )
    rng = np.random.default_rng([seed, epoch])
    order = rng.permutation(lengths.size)
    longest_overall = int(lengths.max()) if lengths.size else 1
    pool_size = max(1, pool_factor * max(1, max_tokens // max(1, longest_overall)))
    batches: list[np.ndarray] = []
    for start in range(0, order.size, pool_size):
        pool = order[start : start + pool_size]
        pool = pool[np.argsort(lengths[pool], kind="stable")]
        batches.extend(_pack_sorted(pool, lengths[pool], max_tokens))
    kept = [batches[i] for i in rng.permutation(len(batches)) if batches[i].size >= min_batch_size]
    if len(kept) < len(batches):
        dropped = len(batches) - len(kept)
        sentences = sum(batch.size for batch in batches) - sum(batch.size for batch in kept)
        logger.warning(
            "Dropped %d of %d batches (%d sentences) with fewer than min_batch_size=%d rows this epoch; "
            "raise max_tokens or lower the number of processes to keep them.",
            dropped,
            len(batches),
            sentences,
            min_batch_size,
        )
    return kept


def _pack_sorted(pool: np.ndarray, pool_lengths: np.ndarray, max_tokens: int) -> list[np.ndarray]:
    """Cut a pool sorted by ascending length greedily into batches of at most ``max_tokens`` padded tokens.

    In a sorted pool the longest row of a batch is its last, so a batch starting at ``start``
    may hold ``k`` rows while ``pool_lengths[start + k - 1] * k <= max_tokens``; that product
    only grows with ``k``, so the cut is found with one vectorised comparison per batch.
    """
    batches = []
    start = 0
    while start < pool.size:
        most = max(1, max_tokens // max(1, int(pool_lengths[start])))
        window = pool_lengths[start : start + most]
        fits = window * np.arange(1, window.size + 1) <= max_tokens
        rows = max(1, int(np.argmin(fits)) if not fits.all() else window.size)
        batches.append(pool[start : start + rows])
        start += rows
    return batches


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
        lengths: Sequence[int] | np.ndarray,
        max_tokens: int,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
        min_batch_size: int | None = None,
    ) -> None:
        if not 0 <= rank < world_size:
            raise ValueError(f"`rank` must be in [0, {world_size}), got {rank}.")
        self.lengths = np.asarray(lengths, dtype=np.int64)
        self.max_tokens = max_tokens
        self.seed = seed
        self.rank = rank
        self.world_size = world_size
        self.min_batch_size = world_size if min_batch_size is None else min_batch_size
        if self.min_batch_size < world_size:
            raise ValueError(f"`min_batch_size` ({min_batch_size}) must be at least `world_size` ({world_size}).")
        self.epoch = 0
        self.skip_batches = 0
        self._plan: tuple[int, list[np.ndarray]] | None = None

    def set_epoch(self, epoch: int, skip_batches: int = 0) -> None:
        """Select the epoch's plan; ``skip_batches`` resumes after that many already-trained batches."""
        self.epoch = epoch
        self.skip_batches = skip_batches

    def global_batches(self) -> list[np.ndarray]:
        """This epoch's plan as index arrays, computed once per epoch (``__len__`` and ``__iter__`` share it)."""
        if self._plan is None or self._plan[0] != self.epoch:
            plan = plan_token_batch_arrays(
                self.lengths, self.max_tokens, self.seed, self.epoch, min_batch_size=self.min_batch_size
            )
            self._plan = (self.epoch, plan)
        return self._plan[1]

    def __iter__(self) -> Iterator[list[int]]:
        for batch in self.global_batches()[self.skip_batches :]:
            yield batch[self.rank :: self.world_size].tolist()

    def __len__(self) -> int:
        return max(0, len(self.global_batches()) - self.skip_batches)
