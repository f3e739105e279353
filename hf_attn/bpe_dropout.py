"""BPE-dropout (Provilkov et al., 2020) for the project's own BPE, seeded so that exact resume still holds.

tokenizers' ``BPE(dropout=p)`` draws from an unseeded thread RNG, so a resumed or repeated run would
train on other segmentations, and the training pairs are tokenized once into a cache. So the
training loader re-segments each cached pair as it is batched: its ids are decoded to the
(normalized) text, split by the tokenizer's own pre-tokenizer, and every word merged again by the
tokenizer's merge ranks, each merge candidate skipped with probability ``p`` (as tokenizers does:
the best-ranked candidate not skipped is applied; a word stops merging when every candidate is
skipped). The random draws come from an RNG keyed by (seed, epoch, example index): a pair gets the
same segmentation in a resumed run and on any number of processes, and a new one every epoch.
With ``p = 0`` the result is the tokenizer's own encoding (the constructor checks this on a sample).
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Sequence

import datasets
import torch
from tokenizers import Tokenizer, decoders
from transformers import PreTrainedTokenizerBase

from .tokenization import BYTE_TOKENS, EOS_ID, WORD_START, has_separate_vocabularies

_BYTE_DECODER = decoders.ByteFallback()
# How many pairs the constructor re-segments with p = 0 to prove it reproduces the tokenizer.
SELF_CHECK_PAIRS = 200


class WordMerger:
    """One vocabulary's BPE merges, applied word by word with dropout: the project's byte-fallback BPE only."""

    def __init__(self, backend: Tokenizer) -> None:
        model = json.loads(backend.to_str())["model"]
        unsupported = {
            "type": model.get("type") != "BPE",
            "continuing_subword_prefix": bool(model.get("continuing_subword_prefix")),
            "end_of_word_suffix": bool(model.get("end_of_word_suffix")),
            "byte_fallback off": not model.get("byte_fallback"),
            "ignore_merges": bool(model.get("ignore_merges")),
        }
        if any(unsupported.values()):
            found = ", ".join(name for name, bad in unsupported.items() if bad)
            raise ValueError(
                f"bpe_dropout needs a byte-fallback BPE tokenizer as hf_attn trains it; this one has: {found} "
                f"(model type {model.get('type')!r}). Leave bpe_dropout at 0 for other tokenizers."
            )
        self.backend = backend
        self.vocab: dict[str, int] = model["vocab"]
        self.ranks: dict[tuple[str, str], int] = {
            tuple(merge.split(" ", 1) if isinstance(merge, str) else merge): rank
            for rank, merge in enumerate(model["merges"])
        }
        self.byte_ids = [self.vocab[token] for token in BYTE_TOKENS]

    def words(self, ids: Sequence[int]) -> list[str]:
        """The pre-tokenized words of an encoding (without its EOS), split again as at encoding.

        The pieces are joined with their byte tokens decoded and every word-start mark made a
        space again, leading one included (the tokenizer's decoder drops that one, which loses a
        space when the text began with one); the pre-tokenizer then marks them as it did at first.
        """
        pieces = [self.backend.id_to_token(token) for token in ids]
        text = _BYTE_DECODER.decode(pieces).replace(WORD_START, " ")
        return [word for word, _ in self.backend.pre_tokenizer.pre_tokenize_str(text)]

    def merge(self, word: str, probability: float, rng: random.Random) -> list[int]:
        """``word``'s ids, merged from its characters by rank with each candidate skipped with ``probability``."""
        symbols = list(word)
        while len(symbols) > 1:
            candidates = sorted(
                (rank, position)
                for position, pair in enumerate(zip(symbols, symbols[1:]))
                if (rank := self.ranks.get(pair)) is not None
            )
            for _, position in candidates:
                if probability == 0 or rng.random() >= probability:
                    symbols[position : position + 2] = [symbols[position] + symbols[position + 1]]
                    break
            else:
                break
        ids: list[int] = []
        for symbol in symbols:
            if symbol in self.vocab:
                ids.append(self.vocab[symbol])
            else:  # a character outside the vocabulary: its UTF-8 bytes, as byte fallback encodes it
                ids.extend(self.byte_ids[byte] for byte in symbol.encode("utf-8"))
        return ids

    def resegment(self, ids: Sequence[int], probability: float, rng: random.Random) -> list[int]:
        """The same text as ``ids`` (which end with EOS), segmented anew with dropout; EOS kept."""
        body = list(ids[:-1]) if len(ids) and ids[-1] == EOS_ID else list(ids)
        new = [token for word in self.words(body) for token in self.merge(word, probability, rng)]
        return [*new, EOS_ID] if len(body) < len(ids) else new


def word_mergers(tokenizer: PreTrainedTokenizerBase) -> tuple[WordMerger, WordMerger]:
    """The source and target mergers (the same one for a joint vocabulary)."""
    if has_separate_vocabularies(tokenizer):
        return WordMerger(tokenizer._source_tokenizer), WordMerger(tokenizer._target_tokenizer)
    merger = WordMerger(tokenizer.backend_tokenizer)
    return merger, merger


class BPEDropoutPairs(torch.utils.data.Dataset):
    """Tokenized training pairs whose ids are re-segmented with BPE-dropout each time they are read.

    ``epoch`` tells the current epoch (the batch sampler's). A side whose new segmentation
    would pass its token limit keeps its cached ids, so the position table is never exceeded;
    batches are planned on the cached lengths, which dropout lengthens by a few per cent.
    """

    def __init__(
        self,
        pairs: datasets.Dataset,
        tokenizer: PreTrainedTokenizerBase,
        probability: float,
        *,
        seed: int,
        epoch: Callable[[], int],
        max_source_tokens: int,
        max_target_tokens: int,
    ) -> None:
        if not 0 < probability < 1:
            raise ValueError(f"`bpe_dropout` must be in (0, 1) to re-segment, got {probability!r}.")
        self.pairs = pairs
        self.source, self.target = word_mergers(tokenizer)
        self.probability = probability
        self.seed = seed
        self.epoch = epoch
        self.limits = {"input_ids": max_source_tokens, "labels": max_target_tokens}
        self._check_reproduces_the_tokenizer()

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, index: int) -> dict[str, list[int]]:
        return self.__getitems__([index])[0]

    def __getitems__(self, indices: Sequence[int]) -> list[dict[str, list[int]]]:
        rows = self.pairs[list(indices)]
        epoch = self.epoch()
        return [
            self._resegment_pair(index, source, target, epoch)
            for index, source, target in zip(indices, rows["input_ids"], rows["labels"])
        ]

    def _resegment_pair(self, index: int, source: list[int], target: list[int], epoch: int) -> dict[str, list[int]]:
        rng = random.Random(f"bpe-dropout:{self.seed}:{epoch}:{index}")  # str seeds hash the same in every process
        pair = {"input_ids": source, "labels": target}
        for column, merger in (("input_ids", self.source), ("labels", self.target)):
            new = merger.resegment(pair[column], self.probability, rng)
            if len(new) <= self.limits[column]:
                pair[column] = new
        return pair

    def _check_reproduces_the_tokenizer(self) -> None:
        """Refuse a tokenizer whose encodings the mergers do not reproduce with p = 0 (on the first pairs)."""
        rng = random.Random(0)
        sample = self.pairs[: min(SELF_CHECK_PAIRS, len(self.pairs))]
        for column, merger in (("input_ids", self.source), ("labels", self.target)):
            for row, ids in enumerate(sample[column]):
                again = merger.resegment(ids, 0.0, rng)
                if again != list(ids):
                    raise ValueError(
                        f"bpe_dropout cannot re-segment this tokenizer's output: training pair {row}'s {column} "
                        f"{list(ids)[:12]}... came back as {again[:12]}.... Leave bpe_dropout at 0 for this tokenizer."
                    )
