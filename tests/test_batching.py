"""Token-count batches respect the budget, cover every sentence once, and shard/resume exactly."""

from __future__ import annotations

import random

import pytest

from hf_attn.batching import TokenBatchSampler, plan_token_batches


@pytest.fixture
def lengths() -> list[int]:
    rng = random.Random(3)
    return [rng.randint(1, 60) for _ in range(1000)]


def test_batches_fit_the_budget_and_cover_every_example_once(lengths):
    batches = plan_token_batches(lengths, max_tokens=300, seed=1, epoch=0)
    assert sorted(i for batch in batches for i in batch) == list(range(len(lengths)))
    for batch in batches:
        assert max(lengths[i] for i in batch) * len(batch) <= 300


def test_batches_group_similar_lengths(lengths):
    batches = plan_token_batches(lengths, max_tokens=300, seed=1, epoch=0)
    padded = sum(max(lengths[i] for i in batch) * len(batch) for batch in batches)
    assert sum(lengths) / padded > 0.9, "sorted pools should keep padding under 10%"


def test_plan_depends_only_on_seed_and_epoch(lengths):
    assert plan_token_batches(lengths, 300, seed=1, epoch=0) == plan_token_batches(lengths, 300, seed=1, epoch=0)
    assert plan_token_batches(lengths, 300, seed=1, epoch=0) != plan_token_batches(lengths, 300, seed=1, epoch=1)
    assert plan_token_batches(lengths, 300, seed=1, epoch=0) != plan_token_batches(lengths, 300, seed=2, epoch=0)


def test_shards_partition_each_global_batch(lengths):
    single = list(TokenBatchSampler(lengths, 300, seed=5, min_batch_size=2))
    ranks = [list(TokenBatchSampler(lengths, 300, seed=5, rank=r, world_size=2)) for r in range(2)]
    assert len(ranks[0]) == len(ranks[1]) == len(single)
    for whole, first, second in zip(single, *ranks):
        assert sorted(first + second) == sorted(whole)
        assert first and second


def test_resume_skips_exactly_the_trained_batches(lengths):
    sampler = TokenBatchSampler(lengths, 300, seed=5)
    sampler.set_epoch(2)
    full = list(sampler)
    sampler.set_epoch(2, skip_batches=7)
    assert list(sampler) == full[7:]
    assert len(sampler) == len(full) - 7


def test_too_long_example_is_a_clear_error():
    with pytest.raises(ValueError, match="max_tokens"):
        plan_token_batches([5, 400, 7], max_tokens=300, seed=0, epoch=0)


def test_undersized_batches_are_dropped_only_when_asked(lengths):
    everything = plan_token_batches(lengths, 300, seed=1, epoch=0)
    at_least_two = plan_token_batches(lengths, 300, seed=1, epoch=0, min_batch_size=2)
    assert [b for b in everything if len(b) >= 2] == at_least_two
    with pytest.raises(ValueError, match="min_batch_size"):
        TokenBatchSampler(lengths, 300, rank=0, world_size=2, min_batch_size=1)


def test_dropped_batches_are_counted_in_a_warning(lengths, caplog):
    everything = plan_token_batches(lengths, 300, seed=1, epoch=0)
    with caplog.at_level("WARNING", logger="hf_attn.batching"):
        kept = plan_token_batches(lengths, 300, seed=1, epoch=0, min_batch_size=6)
    dropped = len(everything) - len(kept)
    assert dropped > 0
    assert f"Dropped {dropped} of {len(everything)} batches" in caplog.text


def test_tokenized_split_is_cached_with_small_ids_and_a_length_column(tmp_path):
    from hf_attn.data import load_parallel_data
    from hf_attn.tokenization import train_bpe_tokenizer
    from hf_attn.training.builders import example_lengths, tokenize_split

    (tmp_path / "pairs.tsv").write_text("".join(f"word {i} here\tpalabra {i} aqui\n" for i in range(300)))
    corpus = load_parallel_data(tmp_path / "pairs.tsv", validation_size=0, test_size=0)
    tokenizer = train_bpe_tokenizer(corpus, vocab_size=300)
    first = tokenize_split(corpus["train"], tokenizer, 128, 128)
    assert first.features["input_ids"].feature.dtype == "uint16"
    lengths = example_lengths(first)
    assert lengths.tolist() == [max(len(s), len(t)) for s, t in zip(first["input_ids"], first["labels"])]
    again = tokenize_split(corpus["train"], tokenizer, 128, 128)
    assert again.cache_files == first.cache_files, "a second tokenization of the same file reuses the cache"
    assert len(tokenize_split(corpus["train"], tokenizer, 3, 128)) < len(first), "long pairs are dropped"


@pytest.mark.parametrize("num_proc", [None, 2])
def test_pairs_and_tokenized_pairs_are_stored_in_large_record_batches(tmp_path, num_proc):
    """Opening a memory-mapped file maps ~64 KB per record batch: the files hf_attn writes hold few, large ones."""
    from hf_attn.data import ROWS_PER_RECORD_BATCH, load_parallel_data
    from hf_attn.tokenization import encode_pairs_within_limits, train_bpe_tokenizer
    from hf_attn.training.builders import tokenize_split

    pairs = 2 * ROWS_PER_RECORD_BATCH + 500
    (tmp_path / "pairs.tsv").write_text("".join(f"word {i} here\tpalabra {i} aqui\n" for i in range(pairs)))
    corpus = load_parallel_data(tmp_path / "pairs.tsv", validation_size=100, test_size=0)
    tokenizer = train_bpe_tokenizer(corpus["train"].select(range(2000)), vocab_size=300)
    tokenized = tokenize_split(corpus["train"], tokenizer, 7, 128, num_proc=num_proc)
    assert len(corpus["train"].data.to_batches()) == 3, "the pairs file: 10,000 rows a record batch"
    assert len(tokenized.data.to_batches()) <= 3 + (num_proc or 1), "at most one part-filled batch per process"
    expected = encode_pairs_within_limits(tokenizer, corpus["train"]["source"], corpus["train"]["target"], 7, 128)
    assert 0 < len(tokenized) < len(corpus["train"]), "long pairs are dropped"
    assert {name: list(tokenized[name]) for name in expected} == expected
    again = load_parallel_data(tmp_path / "pairs.tsv", validation_size=100, test_size=0)
    reused = tokenize_split(again["train"], tokenizer, 7, 128, num_proc=num_proc)
    assert reused.cache_files == tokenized.cache_files, "the carved split's fingerprint is stable: the cache is reused"


def test_a_per_process_token_budget_scales_with_the_processes():
    from hf_attn.training.config import TrainingConfig

    assert TrainingConfig(max_tokens=1500).global_max_tokens(4) == 1500
    assert TrainingConfig(max_tokens_per_process=500).global_max_tokens(4) == 2000
    with pytest.raises(ValueError, match="`max_tokens_per_process` .* must be at least `max_source_tokens`"):
        TrainingConfig(max_tokens_per_process=64)
