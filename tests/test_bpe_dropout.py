"""BPE-dropout: the project's BPE re-applied with skipped merges, seeded per (seed, epoch, pair), resumable."""

from __future__ import annotations

import random

import datasets
import pytest
from accelerate import Accelerator
from test_training import assert_same_weights, final_weights, tiny_config, tokenizer_dir  # noqa: F401
from tokenizers import Tokenizer, models, pre_tokenizers

from hf_attn.bpe_dropout import BPEDropoutPairs, WordMerger, word_mergers
from hf_attn.data import load_bible_corpus
from hf_attn.tokenization import train_bpe_tokenizer, train_bpe_tokenizer_pair
from hf_attn.training.builders import build_collator, build_train_loader, build_training_data, select_subsets
from hf_attn.training.config import TrainingConfig
from hf_attn.training.loop import train

ODD_TEXTS = ["naïve café, “quoted” — ☃ 42×7!", "Ǆemal ﬁnds ½ of 𝔘nicode", "  spaced   out  ", ""]


@pytest.fixture(scope="module")
def corpus() -> datasets.DatasetDict:
    bible = load_bible_corpus()
    return datasets.DatasetDict(
        train=bible["train"].select(range(3000)), validation=bible["validation"].select(range(8))
    )


@pytest.fixture(scope="module")
def joint(corpus):
    return train_bpe_tokenizer(corpus["train"], vocab_size=800)


@pytest.mark.parametrize("vocabularies", ["joint", "separate"])
def test_without_dropout_the_merges_reproduce_the_tokenizer_exactly(corpus, joint, vocabularies):
    tokenizer = joint if vocabularies == "joint" else train_bpe_tokenizer_pair(corpus["train"], 700, 900)
    source, target = word_mergers(tokenizer)
    sources, targets = corpus["train"]["source"][:1500] + ODD_TEXTS, corpus["train"]["target"][:1500] + ODD_TEXTS
    encoded = tokenizer(sources, text_target=targets)
    rng = random.Random(0)
    for merger, column in ((source, "input_ids"), (target, "labels")):
        mismatches = [ids for ids in encoded[column] if merger.resegment(ids, 0.0, rng) != ids]
        assert mismatches == []
    assert any(token.startswith("<0x") for token in joint.convert_ids_to_tokens(joint(ODD_TEXTS[0])["input_ids"]))


def test_dropout_keeps_the_text_lengthens_the_segmentation_and_is_seeded(corpus, joint):
    merger, _ = word_mergers(joint)
    encoded = joint(corpus["train"]["source"][:300])["input_ids"]
    dropped = [merger.resegment(ids, 0.1, random.Random(f"x:{i}")) for i, ids in enumerate(encoded)]
    assert [joint.decode(ids) for ids in dropped] == [joint.decode(ids) for ids in encoded]
    assert all(ids[-1] == joint.eos_token_id for ids in dropped)
    changed = sum(new != old for new, old in zip(dropped, encoded))
    assert changed > 150, "p = 0.1 over words of several merges changes most sentences"
    assert sum(map(len, dropped)) > 1.05 * sum(map(len, encoded))
    again = [merger.resegment(ids, 0.1, random.Random(f"x:{i}")) for i, ids in enumerate(encoded)]
    assert again == dropped
    every_merge_skipped = [merger.resegment(ids, 0.999999, random.Random(1)) for ids in encoded[:20]]
    assert all(
        len(new) >= len(joint.decode(old, skip_special_tokens=True)) for new, old in zip(every_merge_skipped, encoded)
    )


def test_the_training_loader_resegments_by_epoch_within_the_limits(corpus, joint):
    config = TrainingConfig(
        max_tokens=400, max_source_tokens=60, max_target_tokens=60, seed=5, eval_examples=4, bpe_dropout=0.1
    )
    data = build_training_data(config, select_subsets(config, corpus), joint, Accelerator(cpu=True))
    loader = build_train_loader(config, data, build_collator(joint), Accelerator(cpu=True))
    pairs = loader.dataset
    assert isinstance(pairs, BPEDropoutPairs)

    def first_batches(epoch: int) -> list[list[list[int]]]:
        loader.batch_sampler.set_epoch(epoch)
        batches = []
        for batch, _ in zip(loader, range(3)):
            batches.append([[i for i in row if i != joint.pad_token_id] for row in batch["input_ids"].tolist()])
        return batches

    epoch_0 = first_batches(0)
    assert first_batches(0) == epoch_0, "the same epoch gives the same segmentations"
    plan = loader.batch_sampler.global_batches()
    cached = [data.train[int(index)]["input_ids"] for index in plan[0]]
    assert [joint.decode(row) for row in epoch_0[0]] == [joint.decode(row) for row in cached]
    assert epoch_0[0] != cached, "re-segmented, not the cached ids"
    indices = [int(index) for index in plan[0]]
    loader.batch_sampler.set_epoch(1)
    epoch_1 = pairs.__getitems__(indices)
    loader.batch_sampler.set_epoch(0)
    assert pairs.__getitems__(indices) != epoch_1, "a new epoch draws new segmentations of the same pairs"
    assert all(len(pairs[i]["input_ids"]) <= 60 and len(pairs[i]["labels"]) <= 60 for i in range(len(pairs)))


def test_a_side_that_dropout_would_push_past_its_limit_keeps_its_cached_ids(joint):
    ids = joint("In the beginning God created the heaven and the earth.")["input_ids"]
    labels = joint(text_target="En el principio creó Dios los cielos y la tierra.")["input_ids"]
    pairs = datasets.Dataset.from_dict({"input_ids": [ids], "labels": [labels]})
    tight = BPEDropoutPairs(
        pairs, joint, 0.5, seed=0, epoch=lambda: 0, max_source_tokens=len(ids), max_target_tokens=10_000
    )
    assert tight[0]["input_ids"] == ids and tight[0]["labels"] != labels


def test_bpe_dropout_is_checked_by_name(tmp_path):
    for value in (1.0, -0.1, "0.1"):
        with pytest.raises(ValueError, match="`bpe_dropout` must be a number in \\[0, 1\\)"):
            TrainingConfig(bpe_dropout=value)
    train_file = tmp_path / "train.tsv"
    train_file.write_text("a\tb\n", encoding="utf-8")
    with pytest.raises(ValueError, match="does not support it yet"):
        TrainingConfig(bpe_dropout=0.1, max_steps=5, data={"path": str(train_file), "streaming": True})


def test_a_tokenizer_that_is_not_the_projects_bpe_is_refused_by_name():
    word_level = Tokenizer(models.WordLevel({"<pad>": 0, "<s>": 1, "</s>": 2, "<unk>": 3, "a": 4}, unk_token="<unk>"))
    word_level.pre_tokenizer = pre_tokenizers.Whitespace()
    with pytest.raises(ValueError, match="bpe_dropout needs a byte-fallback BPE tokenizer.*model type 'WordLevel'"):
        WordMerger(word_level)
    suffixed = Tokenizer(models.BPE(unk_token="<unk>", end_of_word_suffix="</w>"))
    with pytest.raises(ValueError, match="end_of_word_suffix, byte_fallback off"):
        WordMerger(suffixed)


def test_a_run_with_bpe_dropout_stopped_across_an_epoch_resumes_to_the_same_weights(tokenizer_dir, tmp_path):  # noqa: F811
    """Dropout draws are keyed by (seed, epoch, pair), so the resumed epochs re-segment as the whole run did."""
    settings = {"bpe_dropout": 0.1, "max_train_examples": 24, "max_tokens": 256, "max_steps": 8}
    whole = train(tiny_config("transformer_seq2seq", tmp_path / "whole", tokenizer_dir, **settings))
    assert whole.epochs_completed >= 2, "the run must cross epochs for the test to mean anything"
    train(tiny_config("transformer_seq2seq", tmp_path / "resumed", tokenizer_dir, **{**settings, "max_steps": 5}))
    train(tiny_config("transformer_seq2seq", tmp_path / "resumed", tokenizer_dir, **settings))
    assert_same_weights(final_weights(tmp_path / "whole"), final_weights(tmp_path / "resumed"))
    plain = train(
        tiny_config("transformer_seq2seq", tmp_path / "plain", tokenizer_dir, **{**settings, "bpe_dropout": 0})
    )
    assert plain.target_tokens < whole.target_tokens, "dropout lengthens the segmentations the model trained on"
