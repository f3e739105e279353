"""Training pairs read as a stream (``data.streaming: true``): sharded, tokenized on the fly, batched from a buffer.

For corpora larger than RAM or the datasets cache. The training split is a
``datasets.IterableDataset``; each process reads its own disjoint part of it
(``datasets.distributed.split_dataset_by_node``: whole files when the file count divides by the
number of processes, else every N-th pair), tokenizes pairs as they arrive and packs
token-count batches. Memory is one buffer of ``shuffle_buffer`` pairs, whatever the corpus size.

**Batches.** The stream is consumed in pools of ``shuffle_buffer`` pairs. A pool is tokenized
(pairs over ``max_source_tokens``/``max_target_tokens`` dropped, as in the map-style path) and
planned by :func:`~hf_attn.batching.plan_token_batches`, the map-style planner (shuffled, sorted
by length in sub-pools, packed, batch order shuffled), with a random key derived from
(seed, epoch, rank, pool): the batches are deterministic per (seed, epoch, rank). Each process's
batches hold at most ``max_tokens / N`` padded tokens (``max_tokens_per_process`` if set), so an
optimizer step covers ``max_tokens`` over all processes, as in the map-style path; but each
process batches its own pairs, so N processes do not reproduce a 1-process run step for step.

**Epochs.** The batches never end: when a process reaches the end of its part it starts its next
epoch. Processes reach their ends at different steps, so a stream needs a step budget
(``max_steps``); ``num_epochs`` does not apply.

**Resume (the replay rule).** The position saved with each checkpoint, one JSON file per process,
is (epoch, pool, batches already yielded from that pool, ``IterableDataset.state_dict()`` taken
just before the pool was read). Resuming loads that dataset state, reads and plans the pool
again (the same pairs give the same batches) and skips the batches already trained on, so a
resumed run continues with exactly the batches an uninterrupted run would have seen; at most one
pool is read twice.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from itertools import islice
from typing import TYPE_CHECKING, Any

import datasets
import numpy as np
import torch
from datasets.distributed import split_dataset_by_node
from transformers import PreTrainedTokenizerBase

from .batching import plan_token_batches
from .tokenization import encode_pairs_within_limits

if TYPE_CHECKING:
    from .training.config import TrainingConfig

logger = logging.getLogger(__name__)

# Pairs held (and shuffled) at a time: a few MB of text and ids, enough to sort pairs of similar length together.
DEFAULT_SHUFFLE_BUFFER = 10_000

# Pairs per tokenizer call: a fast tokenizer's Encoding objects for a whole pool of 10,000 pairs hold ~270 MB at
# once (tokens, offsets, masks), four times the ids kept; in chunks of 1,000 the pool costs ~60 MB (measured).
TOKENIZER_CHUNK = 1_000

Example = dict[str, list[int]]


@dataclass
class StreamPosition:
    """Where a process is in its stream: everything resume needs besides the configuration."""

    epoch: int = 0
    pool: int = 0
    batches_in_pool: int = 0
    dataset_state: dict[str, Any] | None = None  # IterableDataset.state_dict() before the pool; None: epoch start


class StreamingBatches:
    """Collated token-count batches of this process's share of a stream, epoch after epoch, resumable.

    Iterate it as a ``DataLoader``: each item is a batch ready for the model. :meth:`state_dict`
    is the position after the last batch yielded (plain JSON data); :meth:`load_state_dict`
    makes the next iteration continue from there.
    """

    def __init__(
        self,
        pairs: datasets.IterableDataset,
        tokenizer: PreTrainedTokenizerBase,
        collate: Callable[[list[Example]], dict[str, torch.Tensor]],
        *,
        max_tokens: int,
        max_source_tokens: int,
        max_target_tokens: int,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
        shuffle_buffer: int = DEFAULT_SHUFFLE_BUFFER,
        min_batch_size: int = 1,
    ) -> None:
        if not 0 <= rank < world_size:
            raise ValueError(f"`rank` must be in [0, {world_size}), got {rank}.")
        self.pairs = split_dataset_by_node(pairs, rank=rank, world_size=world_size)
        self.tokenizer, self.collate = tokenizer, collate
        self.max_tokens, self.min_batch_size = max_tokens, min_batch_size
        self.max_source_tokens, self.max_target_tokens = max_source_tokens, max_target_tokens
        self.seed, self.rank, self.world_size, self.shuffle_buffer = seed, rank, world_size, shuffle_buffer
        self.position = StreamPosition()

    def _layout(self) -> dict[str, int]:
        """What a saved position is only valid for: the same batches need the same shard, buffer and seed."""
        return {
            "seed": self.seed,
            "rank": self.rank,
            "world_size": self.world_size,
            "shuffle_buffer": self.shuffle_buffer,
            "max_tokens": self.max_tokens,
        }

    def state_dict(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self.position), **self._layout()}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Continue from a :meth:`state_dict`; one saved under another layout is refused (it would not be exact)."""
        names = {field.name for field in dataclasses.fields(StreamPosition)} | set(self._layout())
        if not isinstance(state, Mapping) or set(state) != names:
            found = sorted(state) if isinstance(state, Mapping) else type(state).__name__
            raise ValueError(f"a stream position must have the fields {sorted(names)}, found {found}")
        layout = self._layout().items()
        changed = [f"{name} {state[name]!r} -> {value!r}" for name, value in layout if state[name] != value]
        if changed:
            raise ValueError(
                f"the stream position was saved with another layout ({', '.join(changed)}), so the stream would not "
                "continue where it stopped; resume with the same seed, number of processes, `data.shuffle_buffer` "
                "and `max_tokens`"
            )
        for name in ("epoch", "pool", "batches_in_pool"):
            if not isinstance(state[name], int) or isinstance(state[name], bool) or state[name] < 0:
                raise ValueError(f"the stream position's `{name}` must be a non-negative integer, got {state[name]!r}")
        if state["dataset_state"] is not None and not isinstance(state["dataset_state"], dict):
            found = state["dataset_state"]
            raise ValueError(f"the stream position's `dataset_state` must be an object or null, got {found!r}")
        self.position = StreamPosition(state["epoch"], state["pool"], state["batches_in_pool"], state["dataset_state"])

    def __iter__(self) -> Iterator[dict[str, torch.Tensor]]:
        while True:
            fresh = self.position == StreamPosition(epoch=self.position.epoch)
            yielded = yield from self._rest_of_epoch()
            if fresh and not yielded:
                raise ValueError(
                    f"Process {self.rank} of {self.world_size} got no training pair within `max_source_tokens`/"
                    "`max_target_tokens` from its part of the stream; give it more data or raise the limits."
                )
            logger.info("Process %d finished epoch %d of its part of the stream.", self.rank, self.position.epoch)
            self.position = StreamPosition(epoch=self.position.epoch + 1)

    def _rest_of_epoch(self) -> Iterator[dict[str, torch.Tensor]]:
        """The batches of this epoch from the saved position on; returns how many it yielded."""
        epoch, pool, skip, state = dataclasses.astuple(self.position)
        self.pairs.set_epoch(epoch)
        if state is not None:
            self.pairs.load_state_dict(state)
        stream = iter(self.pairs)
        yielded = 0
        while pairs := list(islice(stream, self.shuffle_buffer)):
            batches = self._plan_pool(pairs, epoch, pool)
            for index in range(skip, len(batches)):
                self.position = StreamPosition(epoch, pool, index + 1, state)
                yielded += 1
                yield self.collate(batches[index])
            # islice stopped right after the pool's last pair, so this is where the next pool starts.
            pool, skip, state = pool + 1, 0, self.pairs.state_dict()
            self.position = StreamPosition(epoch, pool, 0, state)
        return yielded

    def _plan_pool(self, pairs: list[dict[str, str]], epoch: int, pool: int) -> list[list[Example]]:
        """A pool's pairs tokenized, filtered by the token limits and packed into batches (a pure function)."""
        examples: list[Example] = []
        lengths: list[int] = []
        for start in range(0, len(pairs), TOKENIZER_CHUNK):
            chunk = pairs[start : start + TOKENIZER_CHUNK]
            kept = encode_pairs_within_limits(
                self.tokenizer,
                [p["source"] for p in chunk],
                [p["target"] for p in chunk],
                self.max_source_tokens,
                self.max_target_tokens,
            )
            examples.extend({"input_ids": s, "labels": t} for s, t in zip(kept["input_ids"], kept["labels"]))
            lengths.extend(kept["length"])
        key = int(np.random.SeedSequence([epoch, self.rank, pool]).generate_state(1)[0])
        plan = plan_token_batches(lengths, self.max_tokens, self.seed, key, min_batch_size=self.min_batch_size)
        return [[examples[i] for i in batch] for batch in plan]


def build_streaming_batches(
    config: TrainingConfig,
    pairs: datasets.IterableDataset,
    tokenizer: PreTrainedTokenizerBase,
    collate: Callable[[list[Example]], dict[str, torch.Tensor]],
    rank: int,
    world_size: int,
) -> StreamingBatches:
    """The training batches of ``config`` (``data.streaming: true``) for process ``rank`` of ``world_size``."""
    max_tokens = config.global_max_tokens(world_size) // world_size
    longest = max(config.max_source_tokens, config.max_target_tokens)
    if max_tokens < longest:
        raise ValueError(
            f"With `data.streaming` each of the {world_size} processes batches its own pairs, with "
            f"`max_tokens` / {world_size} = {max_tokens} padded tokens, fewer than the longest pair allowed "
            f"({longest}, `max_source_tokens`/`max_target_tokens`); raise `max_tokens` or lower the limits."
        )
    data = config.data if isinstance(config.data, Mapping) else {}
    return StreamingBatches(
        pairs,
        tokenizer,
        collate,
        max_tokens=max_tokens,
        max_source_tokens=config.max_source_tokens,
        max_target_tokens=config.max_target_tokens,
        seed=config.seed,
        rank=rank,
        world_size=world_size,
        shuffle_buffer=data.get("shuffle_buffer", DEFAULT_SHUFFLE_BUFFER),
        min_batch_size=math.ceil(config.min_batch_size / world_size),
    )
