"""The controlled task: reverse random strings of symbols, scored by length.

On real verses at CPU budgets the RNNs barely learn, so the seed's long-input claims come out
"mixed". Reversal isolates them: the output is fully determined by the input, every output
symbol needs content from a known source position, and a string of n symbols carries
n·log2(symbols) bits that a fixed-size encoder vector must hold at once, while attention can
fetch each symbol when it is needed. Most training strings are short (the typical range) and a
few are long, as long verses are rare in the Bible corpus, so the long test buckets measure
capacity, not extrapolation to unseen lengths.

The data goes through the same path as real data: a ``datasets.DatasetDict`` saved to disk
(which :func:`hf_attn.data.load_parallel_data` reads), a word-level ``PreTrainedTokenizerFast``
over the symbols, and ``generate()`` for greedy decoding.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import random
import string
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import datasets
from tokenizers import Tokenizer, models, pre_tokenizers, processors
from transformers import PreTrainedModel, PreTrainedTokenizerBase, PreTrainedTokenizerFast

from hf_attn.generation import translate
from hf_attn.tokenization import EOS_ID, EOS_TOKEN, SPECIAL_TOKENS, UNK_TOKEN, wrap_tokenizer

# Draws of an already-used string before generation gives up (a task asking for more strings than exist).
MAX_REDRAWS = 1000


@dataclass(frozen=True)
class ReversalTask:
    """What the controlled task's data is: symbols, lengths, split sizes and the seed that draws them.

    Training and validation strings are ``min_length``-``typical_max_length`` symbols long, except a
    ``long_fraction`` of them that are ``typical_max_length + 1``-``max_length`` long. The test split holds
    ``test_per_bucket`` strings of each ``bucket_width``-wide length bucket from ``min_length`` to ``max_length``.
    """

    symbols: int = 20
    min_length: int = 5
    typical_max_length: int = 40
    max_length: int = 80
    long_fraction: float = 0.1
    train_examples: int = 20_000
    validation_examples: int = 200
    test_per_bucket: int = 50
    bucket_width: int = 10
    seed: int = 0

    def __post_init__(self) -> None:
        if not 2 <= self.symbols <= len(string.ascii_lowercase):
            raise ValueError(f"`symbols` must be 2-{len(string.ascii_lowercase)}, got {self.symbols!r}.")
        if not 1 <= self.min_length <= self.typical_max_length < self.max_length:
            raise ValueError(
                "Lengths must satisfy 1 <= min_length <= typical_max_length < max_length, got "
                f"{self.min_length}, {self.typical_max_length}, {self.max_length}."
            )
        if not 0 <= self.long_fraction <= 1:
            raise ValueError(f"`long_fraction` must be in [0, 1], got {self.long_fraction!r}.")
        for name in ("train_examples", "validation_examples", "test_per_bucket", "bucket_width"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                raise ValueError(f"`{name}` must be a positive integer, got {getattr(self, name)!r}.")

    @property
    def alphabet(self) -> tuple[str, ...]:
        return tuple(string.ascii_lowercase[: self.symbols])

    @property
    def buckets(self) -> list[tuple[int, int]]:
        """(shortest, longest) of each test bucket, edges at multiples of ``bucket_width``: 5-10, 11-20, ..."""
        buckets, low = [], self.min_length
        while low <= self.max_length:
            high = min((low - 1) // self.bucket_width * self.bucket_width + self.bucket_width, self.max_length)
            buckets.append((low, high))
            low = high + 1
        return buckets

    def fingerprint(self) -> str:
        """A short digest of every field: runs trained on other data get another folder, so none is reused."""
        return hashlib.sha256(json.dumps(dataclasses.asdict(self), sort_keys=True).encode()).hexdigest()[:10]


def reverse(source: str) -> str:
    return " ".join(reversed(source.split()))


def _training_length(task: ReversalTask, rng: random.Random) -> int:
    if rng.random() < task.long_fraction:
        return rng.randint(task.typical_max_length + 1, task.max_length)
    return rng.randint(task.min_length, task.typical_max_length)


def generate_splits(task: ReversalTask) -> datasets.DatasetDict:
    """Train, validation and test pairs (``id``, ``source``, ``target``); no source string is in two splits.

    Each split draws from its own seeded stream, test first, so the test strings do not change
    when the training set grows; a string already drawn is drawn again.
    """
    seen: set[str] = set()

    def draw(rng: random.Random, length: int) -> str:
        for _ in range(MAX_REDRAWS):
            text = " ".join(rng.choices(task.alphabet, k=length))
            if text not in seen:
                seen.add(text)
                return text
        raise ValueError(
            f"Found no new string of {length} symbols in {MAX_REDRAWS} draws: the task asks for more distinct "
            "strings than its alphabet and lengths offer; raise `symbols` or `min_length`."
        )

    def split(name: str, lengths: Sequence[int], rng: random.Random) -> datasets.Dataset:
        sources = [draw(rng, length) for length in lengths]
        return datasets.Dataset.from_dict(
            {
                "id": [f"{name}-{i}" for i in range(len(sources))],
                "source": sources,
                "target": [reverse(s) for s in sources],
            }
        )

    streams = {name: random.Random(f"{task.seed}-{name}") for name in ("test", "validation", "train")}
    test_lengths = [
        streams["test"].randint(low, high) for low, high in task.buckets for _ in range(task.test_per_bucket)
    ]
    splits = {"test": split("test", test_lengths, streams["test"])}
    for name, count in (("validation", task.validation_examples), ("train", task.train_examples)):
        lengths = [_training_length(task, streams[name]) for _ in range(count)]
        splits[name] = split(name, lengths, streams[name])
    return datasets.DatasetDict({name: splits[name] for name in ("train", "validation", "test")})


def symbol_tokenizer(task: ReversalTask) -> PreTrainedTokenizerFast:
    """A word-level tokenizer: the special tokens, then one token per symbol; ``</s>`` appended as everywhere."""
    vocab = {token: i for i, token in enumerate((*SPECIAL_TOKENS, *task.alphabet))}
    backend = Tokenizer(models.WordLevel(vocab, unk_token=UNK_TOKEN))
    backend.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    backend.post_processor = processors.TemplateProcessing(
        single=f"$A {EOS_TOKEN}", pair=f"$A $B {EOS_TOKEN}", special_tokens=[(EOS_TOKEN, EOS_ID)]
    )
    return wrap_tokenizer(backend)


# ------------------------------------------------------------------------------ scoring


def bucket_members(strings: Sequence[str], bucket: tuple[int, int]) -> list[int]:
    """Indices of the ``strings`` whose symbol count lies in ``bucket`` (bounds included)."""
    low, high = bucket
    return [i for i, string in enumerate(strings) if low <= len(string.split()) <= high]


def token_matches(hypothesis: str, reference: str) -> tuple[int, int]:
    """(symbols equal at the same position, the longer string's length): missing and extra symbols count as wrong."""
    produced, wanted = hypothesis.split(), reference.split()
    return sum(a == b for a, b in zip(produced, wanted)), max(len(produced), len(wanted))


def _scores(pairs: Sequence[tuple[str, str]]) -> dict[str, Any]:
    matched = [token_matches(h, r) for h, r in pairs]
    return {
        "n": len(pairs),
        "exact_match": sum(h.split() == r.split() for h, r in pairs) / len(pairs) if pairs else None,
        "token_accuracy": sum(m for m, _ in matched) / sum(t for _, t in matched) if pairs else None,
    }


def accuracy_by_length(
    hypotheses: Sequence[str], references: Sequence[str], buckets: Sequence[tuple[int, int]]
) -> dict[str, Any]:
    """Exact-match rate and token accuracy, overall and per length bucket of the reference (= source) string.

    Token accuracy pools symbols over a bucket's strings, so it does not fall just because longer
    strings offer more chances to slip, as the exact-match rate does.
    """
    if len(hypotheses) != len(references):
        raise ValueError(f"Got {len(hypotheses)} hypotheses for {len(references)} references.")
    pairs = list(zip(hypotheses, references))
    rows = []
    for low, high in buckets:
        members = [pairs[i] for i in bucket_members(references, (low, high))]
        rows.append({"bucket": f"{low}-{high}", "min_length": low, "max_length": high, **_scores(members)})
    return {**_scores(pairs), "by_length": rows}


def evaluate_reversal(
    model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, test: datasets.Dataset, task: ReversalTask
) -> tuple[dict[str, Any], list[str]]:
    """Greedy ``generate()`` on every test string: the scores by length and the hypotheses in test order."""
    hypotheses = translate(model, tokenizer, list(test["source"]), num_beams=1, batch_size=64)
    return accuracy_by_length(hypotheses, list(test["target"]), task.buckets), hypotheses
