"""The BPE tokenizer round-trips real verses, follows the id convention, and reloads anywhere.

Tokenizers are trained on a few thousand training verses so the file stays fast; round trips
are checked on test-split verses, which the tokenizer never saw.
"""

from __future__ import annotations

import unicodedata
from types import SimpleNamespace

import datasets
import numpy as np
import pytest
from tokenizers import Tokenizer, models, pre_tokenizers
from transformers import AutoTokenizer, PreTrainedTokenizerFast

from hf_attn import tokenization
from hf_attn.data import ROWS_PER_RECORD_BATCH, load_bible_corpus
from hf_attn.models.configuration_transformer_seq2seq import TransformerSeq2SeqConfig
from hf_attn.tokenization import (
    BOS_ID,
    EOS_ID,
    PAD_ID,
    TOKENIZER_SAMPLE_BLOCK,
    UNK_ID,
    _rows_in_blocks,
    check_tokenizer_matches_config,
    load_tokenizer,
    model_settings_from_tokenizer,
    tokenizer_training_sample,
    train_bpe_tokenizer,
)
from hf_attn.training.builders import train_tokenizer
from hf_attn.training.config import TrainingConfig

VOCAB_SIZE = 2000


@pytest.fixture(scope="module")
def corpus() -> datasets.DatasetDict:
    bible = load_bible_corpus()
    return datasets.DatasetDict({"train": bible["train"].select(range(0, 27_000, 9)), "test": bible["test"]})


@pytest.fixture(scope="module")
def tokenizer(corpus) -> PreTrainedTokenizerFast:
    return train_bpe_tokenizer(corpus["train"], vocab_size=VOCAB_SIZE)


@pytest.fixture(scope="module")
def unseen_verses(corpus) -> list[str]:
    return list(corpus["test"]["source"]) + list(corpus["test"]["target"])


def test_special_token_ids(tokenizer):
    assert (tokenizer.pad_token, tokenizer.bos_token, tokenizer.eos_token, tokenizer.unk_token) == (
        "<pad>",
        "<s>",
        "</s>",
        "<unk>",
    )
    assert (
        (tokenizer.pad_token_id, tokenizer.bos_token_id, tokenizer.eos_token_id, tokenizer.unk_token_id)
        == (
            PAD_ID,
            BOS_ID,
            EOS_ID,
            UNK_ID,
        )
        == (0, 1, 2, 3)
    )
    assert len(tokenizer) == VOCAB_SIZE
    assert tokenizer.padding_side == "right"
    assert tokenizer.model_max_length == 512


def test_round_trip_on_unseen_verses(tokenizer, unseen_verses):
    encoded = tokenizer(unseen_verses)["input_ids"]
    decoded = tokenizer.batch_decode(encoded, skip_special_tokens=True)
    assert [d for d, v in zip(decoded, unseen_verses) if d != v] == []
    assert any("ñ" in v for v in unseen_verses) and any("¿" in v for v in unseen_verses)
    assert sum(ids.count(UNK_ID) for ids in encoded) == 0


@pytest.mark.parametrize(
    "text",
    [
        "Año 1909: ¿qué? ¡Sí! — «comillas» “curvas” [corchetes] 😀",
        "Ελληνικά καὶ עברית",
        "tab\tand  double  spaces",
    ],
)
def test_round_trip_of_characters_never_seen_in_training(tokenizer, text):
    ids = tokenizer(text)["input_ids"]
    assert UNK_ID not in ids
    assert tokenizer.decode(ids, skip_special_tokens=True) == unicodedata.normalize("NFKC", text)


def test_text_is_nfkc_normalised(tokenizer):
    assert tokenizer.decode(tokenizer("ﬁnal ½")["input_ids"], skip_special_tokens=True) == "final 1⁄2"


def test_every_sequence_ends_with_eos_and_targets_become_labels(tokenizer):
    batch = tokenizer(["In the beginning.", "Amen."], text_target=["En el principio.", "Amén."])
    assert all(ids[-1] == EOS_ID and ids[0] != BOS_ID for ids in batch["input_ids"] + batch["labels"])
    assert batch["labels"] == tokenizer(["En el principio.", "Amén."])["input_ids"]
    assert tokenizer.convert_ids_to_tokens(tokenizer("earth.")["input_ids"])[-2:] == [".", "</s>"]


def test_padding_is_on_the_right_with_pad_id(tokenizer):
    batch = tokenizer(["a", "a longer sentence here"], padding=True)
    short, long = batch["input_ids"]
    assert len(short) == len(long) and short[-1] == PAD_ID and long[-1] == EOS_ID
    assert batch["attention_mask"][0] == [1 if i != PAD_ID else 0 for i in short]


def test_truncation_keeps_eos(tokenizer):
    ids = tokenizer("word " * 100, truncation=True, max_length=10)["input_ids"]
    assert len(ids) == 10 and ids[-1] == EOS_ID


def test_autotokenizer_reload_is_equivalent(tokenizer, tmp_path, unseen_verses):
    tokenizer.save_pretrained(tmp_path)
    for reloaded in (AutoTokenizer.from_pretrained(tmp_path), load_tokenizer(tmp_path)):
        assert reloaded.get_vocab() == tokenizer.get_vocab()
        assert reloaded.all_special_tokens == tokenizer.all_special_tokens
        assert (reloaded.padding_side, reloaded.model_max_length) == ("right", 512)
        sample = unseen_verses[:50]
        assert reloaded(sample, text_target=sample)["labels"] == tokenizer(sample)["input_ids"]
        assert reloaded.batch_decode(tokenizer(sample)["input_ids"], skip_special_tokens=True) == sample


def test_training_is_deterministic_and_uses_only_the_train_split(corpus, tokenizer):
    assert train_bpe_tokenizer(corpus, vocab_size=VOCAB_SIZE).get_vocab() == tokenizer.get_vocab()
    texts = list(corpus["train"]["source"]) + list(corpus["train"]["target"])
    assert train_bpe_tokenizer(texts, vocab_size=VOCAB_SIZE).get_vocab() == tokenizer.get_vocab()


def test_joint_vocabulary_covers_both_languages(tokenizer):
    vocab = tokenizer.get_vocab()
    assert {"▁the", "▁and", "▁de", "▁los"} <= set(vocab)


def test_training_input_errors(corpus):
    with pytest.raises(ValueError, match="vocab_size must exceed 260"):
        train_bpe_tokenizer(["a b c"], vocab_size=100)
    with pytest.raises(TypeError, match="not a single string"):
        train_bpe_tokenizer("some text", vocab_size=1000)
    with pytest.raises(ValueError, match=r"lacks column\(s\) \['en'\]"):
        train_bpe_tokenizer(corpus["train"], columns=("en",), vocab_size=1000)
    small = train_bpe_tokenizer(["tiny corpus"] * 3, vocab_size=1000)
    assert len(small) < 1000 and small.decode(small("tiny")["input_ids"], skip_special_tokens=True) == "tiny"


def test_load_tokenizer_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="No tokenizer folder"):
        load_tokenizer(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="has no tokenizer.json"):
        load_tokenizer(tmp_path / "empty")
    foreign = Tokenizer(models.WordLevel({"<unk>": 0, "<pad>": 1, "<s>": 2, "</s>": 3, "a": 4}, unk_token="<unk>"))
    foreign.pre_tokenizer = pre_tokenizers.Whitespace()
    PreTrainedTokenizerFast(
        tokenizer_object=foreign, unk_token="<unk>", pad_token="<pad>", bos_token="<s>", eos_token="</s>"
    ).save_pretrained(tmp_path / "foreign")
    loaded = load_tokenizer(tmp_path / "foreign")  # other ids are fine; hf_attn appends the eos it lacked
    assert loaded("a")["input_ids"] == [4, 3]
    assert model_settings_from_tokenizer(loaded) == {
        "vocab_size": 5, "pad_token_id": 1, "bos_token_id": 2, "eos_token_id": 3, "decoder_start_token_id": 2
    }  # fmt: skip
    PreTrainedTokenizerFast(tokenizer_object=foreign, unk_token="<unk>").save_pretrained(tmp_path / "bare")
    with pytest.raises(ValueError, match=r"has no pad_token and no eos_token.*add_special_tokens\(\{'pad_token'"):
        load_tokenizer(tmp_path / "bare")


def test_matching_config_passes(tokenizer):
    config = TransformerSeq2SeqConfig(
        vocab_size=len(tokenizer), d_model=32, encoder_attention_heads=4, decoder_attention_heads=4
    )
    check_tokenizer_matches_config(tokenizer, config)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("vocab_size", 8000),
        ("pad_token_id", 1),
        ("bos_token_id", 0),
        ("eos_token_id", 3),
        ("decoder_start_token_id", 0),
    ],
)
def test_mismatched_config_is_named(tokenizer, field, value):
    fields = {
        "vocab_size": len(tokenizer),
        "pad_token_id": 0,
        "bos_token_id": 1,
        "eos_token_id": 2,
        "decoder_start_token_id": 1,
    }
    config = SimpleNamespace(**{**fields, field: value})
    with pytest.raises(ValueError, match=rf"config\.{field} is {value} but the tokenizer needs {fields[field]}"):
        check_tokenizer_matches_config(tokenizer, config)


def test_config_without_the_fields_is_rejected(tokenizer):
    with pytest.raises(ValueError, match="config.decoder_start_token_id is None"):
        config = SimpleNamespace(vocab_size=len(tokenizer), pad_token_id=0, bos_token_id=1, eos_token_id=2)
        check_tokenizer_matches_config(tokenizer, config)


def test_the_bpe_trains_on_a_seeded_sample_bounded_in_size(monkeypatch):
    """tokenizer_sample_size bounds what BPE reads: the same seed draws the same rows, in corpus order."""
    monkeypatch.setattr(tokenization, "TOKENIZER_SAMPLE_BLOCK", 100)  # blocks smaller than this 3,000-row split
    train_split = load_bible_corpus()["train"].select(range(3000))
    sample = tokenizer_training_sample(train_split, 500, seed=7)
    assert len(sample) == 500 and sample["source"] == tokenizer_training_sample(train_split, 500, seed=7)["source"]
    assert sample["source"] != tokenizer_training_sample(train_split, 500, seed=8)["source"]
    assert set(sample["source"]) < set(train_split["source"])
    assert tokenizer_training_sample(train_split, None, seed=7) is train_split
    assert tokenizer_training_sample(train_split, 5000, seed=7) is train_split
    config = TrainingConfig(tokenizer_sample_size=500, vocab_size=400, seed=7)
    assert (
        train_tokenizer(config, datasets.DatasetDict(train=train_split)).get_vocab()
        == train_bpe_tokenizer(sample, vocab_size=400).get_vocab()
    )
    with pytest.raises(ValueError, match="tokenizer_sample_size"):
        TrainingConfig(tokenizer_sample_size=0)


def test_the_sample_of_a_stream_is_its_first_pairs_in_order():
    """A stream cannot be sampled without reading it all: its first pairs, read batch by batch into one table."""
    count = ROWS_PER_RECORD_BATCH + 7
    rows = [{"id": str(i), "source": f"s{i}", "target": f"t{i}"} for i in range(count)]
    stream = datasets.Dataset.from_list(rows).to_iterable_dataset()
    sample = tokenizer_training_sample(stream, count - 4, seed=0)
    assert sample.column_names == ["source", "target"]
    assert list(sample["source"]) == [f"s{i}" for i in range(count - 4)]
    assert list(tokenizer_training_sample(stream, None, seed=0)["target"]) == [f"t{i}" for i in range(count)]


def test_the_sample_of_a_carved_split_is_blocks_of_rows_stored_together():
    """A carved train split maps its positions to shuffled stored rows; the sample reads stored runs."""
    total, size = 20 * TOKENIZER_SAMPLE_BLOCK, 3 * TOKENIZER_SAMPLE_BLOCK
    stored = datasets.Dataset.from_dict({"source": [f"s{i}" for i in range(total)], "target": ["t"] * total})
    carved = stored.train_test_split(test_size=0.1, seed=0)["train"]
    sample = tokenizer_training_sample(carved, size, seed=1)
    rows = np.array([int(text[1:]) for text in sample["source"]])  # each text names its stored row
    assert len(rows) == size and set(rows) <= {int(text[1:]) for text in carved["source"]}
    assert np.all(np.diff(rows) > 0), "read in storage order"
    runs = 1 + int(np.count_nonzero(np.diff(rows) > 20))  # a gap over 20 rows starts a new run (10 % held out)
    assert runs <= 2 * (-(-size // TOKENIZER_SAMPLE_BLOCK) + 1)
    assert rows[-1] - rows[0] > 2 * size, "spread over the file, not one stretch"


@pytest.mark.parametrize(
    ("total", "size", "block"), [(3000, 500, 256), (1000, 999, 256), (10_000, 1, 7), (515, 300, 8), (50_000, 900, 16)]
)
def test_the_tokenizer_sample_is_whole_blocks_spread_over_the_split(total, size, block):
    """Blocks of consecutive rows keep the pages a memory-mapped corpus's sample touches proportional to the sample."""
    rows = _rows_in_blocks(total, size, seed=3, block=block)
    assert len(rows) == size and len(set(rows.tolist())) == size
    assert np.all(np.diff(rows) > 0) and rows[0] >= 0 and rows[-1] < total
    blocks_needed = -(-size // block)
    assert len(set((rows // block).tolist())) <= blocks_needed + 1
    assert np.array_equal(rows, _rows_in_blocks(total, size, seed=3, block=block))
    if total // block > 4 * (blocks_needed + 1):  # enough blocks to tell seeds apart
        assert not np.array_equal(rows, _rows_in_blocks(total, size, seed=4, block=block))
    if blocks_needed >= 50:  # many blocks: they spread over the split instead of bunching at its start
        assert rows[0] < total // 10 and rows[-1] > total - total // 10
