"""The seed experiment's controlled part: the reversal task, its tokenizer and scores, and a tiny run of the four."""

from __future__ import annotations

import dataclasses
import random
from pathlib import Path

import pytest
import torch
from tiny_seq2seq import one_torch_thread, tiny_synthetic_settings  # noqa: F401

from hf_attn.data import load_parallel_data
from hf_attn.tokenization import EOS_ID, UNK_ID, load_tokenizer
from research.experiment.runs import MODELS
from research.experiment.synthetic import (
    ReversalTask,
    accuracy_by_length,
    generate_splits,
    reverse,
    symbol_tokenizer,
    token_matches,
)
from research.experiment.synthetic_run import prepare_task, run_synthetic, synthetic_configs

SMALL = ReversalTask(train_examples=400, validation_examples=50, test_per_bucket=20)


def _lengths(split) -> list[int]:
    return [len(source.split()) for source in split["source"]]


# ------------------------------------------------------------------------------ the task


def test_buckets_cover_the_lengths_at_multiples_of_the_width():
    assert ReversalTask().buckets == [(5, 10), (11, 20), (21, 30), (31, 40), (41, 50), (51, 60), (61, 70), (71, 80)]
    assert ReversalTask(min_length=12, max_length=75).buckets[0] == (12, 20)
    assert ReversalTask(min_length=12, max_length=75).buckets[-1] == (71, 75)


def test_splits_have_the_asked_lengths_and_reverse_their_sources():
    corpus = generate_splits(SMALL)
    assert {name: len(split) for name, split in corpus.items()} == {"train": 400, "validation": 50, "test": 160}
    for name in ("train", "validation"):
        lengths = _lengths(corpus[name])
        assert min(lengths) >= 5 and max(lengths) <= 80
        long = sum(length > 40 for length in lengths) / len(lengths)
        assert 0.02 < long < 0.2  # long_fraction 0.1: long strings are rare, but there
    test_lengths = _lengths(corpus["test"])
    assert [sum(low <= n <= high for n in test_lengths) for low, high in SMALL.buckets] == [20] * 8
    for split in corpus.values():
        assert all(target == reverse(source) for source, target in zip(split["source"], split["target"]))
        assert set(" ".join(split["source"]).split()) <= set(SMALL.alphabet)
    assert reverse("a b c") == "c b a"


def test_splits_are_deterministic_by_seed_and_disjoint():
    first, again = generate_splits(SMALL), generate_splits(SMALL)
    assert all(first[name]["source"] == again[name]["source"] for name in first)
    other = generate_splits(dataclasses.replace(SMALL, seed=1))
    assert first["test"]["source"] != other["test"]["source"]
    sources = [set(split["source"]) for split in first.values()]
    assert sum(len(s) for s in sources) == len(set().union(*sources))  # no string twice, within or across splits
    bigger = generate_splits(dataclasses.replace(SMALL, train_examples=800))
    assert bigger["test"]["source"] == first["test"]["source"]  # more training data leaves the test alone
    assert SMALL.fingerprint() != dataclasses.replace(SMALL, train_examples=800).fingerprint()


def test_no_string_is_drawn_twice_even_when_few_exist():
    # 2 symbols: 4 strings of length 2; the test takes one and the training splits (all long) the other three.
    task = ReversalTask(
        symbols=2, min_length=1, typical_max_length=1, max_length=2, long_fraction=1.0, train_examples=2,
        validation_examples=1, test_per_bucket=1, bucket_width=1,
    )  # fmt: skip
    corpus = generate_splits(task)
    sources = [s for split in corpus.values() for s in split["source"]]
    assert len(sources) == len(set(sources)) == 5
    with pytest.raises(ValueError, match="more distinct strings"):
        generate_splits(dataclasses.replace(task, train_examples=4))


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"symbols": 30}, "symbols"),
        ({"min_length": 50}, "Lengths"),
        ({"long_fraction": 1.5}, "long_fraction"),
        ({"test_per_bucket": 0}, "test_per_bucket"),
    ],
)
def test_task_settings_are_checked(change, message):
    with pytest.raises(ValueError, match=message):
        ReversalTask(**change)


def test_symbol_tokenizer_is_word_level_and_follows_the_id_convention(tmp_path):
    tokenizer = symbol_tokenizer(SMALL)
    assert len(tokenizer) == 4 + SMALL.symbols
    encoded = tokenizer("a t b", text_target="b t a")
    assert encoded["input_ids"] == [4, 4 + 19, 5, EOS_ID] and encoded["labels"] == [5, 23, 4, EOS_ID]
    assert tokenizer("a z")["input_ids"] == [4, UNK_ID, EOS_ID]
    tokenizer.save_pretrained(tmp_path)
    reloaded = load_tokenizer(tmp_path)  # checks the special tokens
    assert reloaded.decode(encoded["labels"], skip_special_tokens=True) == "b t a"


# ------------------------------------------------------------------------------ scores


def test_token_matches_count_missing_and_extra_symbols_as_wrong():
    assert token_matches("a b c", "a b c") == (3, 3)
    assert token_matches("a x c", "a b c") == (2, 3)
    assert token_matches("a b", "a b c") == (2, 3)
    assert token_matches("a b c d e", "a b c") == (3, 5)
    assert token_matches("", "a b") == (0, 2)


def test_accuracy_by_length_pools_tokens_per_bucket():
    references = ["a b c", "a b c d", "a b c d e f g h i j k l"]
    hypotheses = ["a b c", "a b c x", "a b c d e f g h i j k"]
    scores = accuracy_by_length(hypotheses, references, [(1, 5), (6, 10), (11, 15)])
    assert [row["bucket"] for row in scores["by_length"]] == ["1-5", "6-10", "11-15"]
    short, empty, long = scores["by_length"]
    assert short["n"] == 2 and short["exact_match"] == 0.5 and short["token_accuracy"] == 6 / 7
    assert empty == {"bucket": "6-10", "min_length": 6, "max_length": 10, "n": 0, "exact_match": None,
                     "token_accuracy": None}  # fmt: skip
    assert long["exact_match"] == 0.0 and long["token_accuracy"] == 11 / 12
    assert scores["n"] == 3 and scores["exact_match"] == 1 / 3 and scores["token_accuracy"] == 17 / 19
    with pytest.raises(ValueError, match="hypotheses"):
        accuracy_by_length(hypotheses[:1], references, [(1, 5)])


def test_perfect_and_random_outputs_score_one_and_near_chance():
    corpus = generate_splits(SMALL)["test"]
    references = list(corpus["target"])
    assert accuracy_by_length(references, references, SMALL.buckets)["token_accuracy"] == 1.0
    rng = random.Random(0)
    guesses = [" ".join(rng.choices(SMALL.alphabet, k=len(r.split()))) for r in references]
    assert accuracy_by_length(guesses, references, SMALL.buckets)["token_accuracy"] < 0.1  # chance is 1/20


# ------------------------------------------------------------------------------ the four models on it


def test_task_data_goes_through_the_user_data_loader(tmp_path):
    settings = tiny_synthetic_settings()
    data_dir, tokenizer_dir = prepare_task(settings.task, tmp_path)
    assert data_dir.parent.name == tokenizer_dir.parent.name == f"task-{settings.task.fingerprint()}"
    corpus = load_parallel_data(str(data_dir))
    assert list(corpus) == ["train", "validation", "test"] and len(corpus["test"]) == 6
    configs = synthetic_configs(settings, tmp_path, data_dir, tokenizer_dir)
    assert list(configs) == [m.name for m in MODELS]
    assert {c.max_steps for c in configs.values()} == {2} and {c.data for c in configs.values()} == {str(data_dir)}
    assert configs["rnn_none"].model["attention_type"] == "none"
    assert configs["rnn_luong"].model["input_feeding"] is True
    assert Path(configs["transformer"].output_dir) == data_dir.parent / "transformer"  # runs live with their data
    sized = synthetic_configs(dataclasses.replace(settings, model_overrides={}), tmp_path, data_dir, tokenizer_dir)
    assert sized["rnn_bahdanau"].model["hidden_size"] == 64 and sized["transformer"].model["d_model"] == 64


def test_tiny_controlled_run_trains_tests_probes_and_reuses(tmp_path):
    """Four tiny models, two updates each: every number is there, and a re-run trains nothing."""
    settings = tiny_synthetic_settings()
    results = run_synthetic(settings, tmp_path, device=torch.device("cpu"))
    assert list(results["models"]) == [m.name for m in MODELS]
    assert results["task"]["buckets"] == [(3, 8), (9, 16)] and results["probe"] == {"strings": 2, "min_length": 9}
    for entry in results["models"].values():
        assert entry["training"]["steps"] == 2 and not entry["reused"]
        assert [row["n"] for row in entry["test"]["by_length"]] == [3, 3]
        assert 0 <= entry["test"]["token_accuracy"] <= 1
        assert len(entry["samples"]) == 2 and entry["gradients"]["trained"]["num_verses"] == 2
    again = run_synthetic(settings, tmp_path, device=torch.device("cpu"))
    assert all(entry["reused"] for entry in again["models"].values())
    assert {n: e["test"] for n, e in again["models"].items()} == {n: e["test"] for n, e in results["models"].items()}
    other_task = dataclasses.replace(settings, task=dataclasses.replace(settings.task, seed=1), max_steps=1)
    fresh = run_synthetic(other_task, tmp_path, device=torch.device("cpu"))
    assert all(not e["reused"] and e["training"]["steps"] == 1 for e in fresh["models"].values())  # not resumed
