"""Separate source and target vocabularies, end to end: one tokenizer pair, both models, every way in and out.

The pair is trained on a ninth of the training verses (fast); round trips use test-split
verses, which it never saw. The training runs are a few steps of the real presets with tiny
dimensions on the bundled corpus, so the text they produce is poor but comes out of the
real generate/decode paths.
"""

from __future__ import annotations

import json
import shutil
import unicodedata
from pathlib import Path
from types import SimpleNamespace

import datasets
import pytest
import torch
from seq2seq_checks import run_without_hf_attn
from tiny_seq2seq import (
    TINY_CONFIGS,
    bible_corpus,
    one_torch_thread,  # noqa: F401 - applies the fixture to this module
)
from tokenizers import Tokenizer, models, pre_tokenizers
from transformers import (
    AutoModelForSeq2SeqLM,
    AutoTokenizer,
    DataCollatorForSeq2Seq,
    PreTrainedTokenizerFast,
    pipeline,
)

from hf_attn.cards import write_model_card
from hf_attn.cli import main as cli_main
from hf_attn.evaluation import evaluate_model
from hf_attn.generation import alignment, translate
from hf_attn.inference import load_model_and_tokenizer
from hf_attn.models.configuration_rnn_seq2seq import RNNSeq2SeqConfig
from hf_attn.models.configuration_transformer_seq2seq import TransformerSeq2SeqConfig
from hf_attn.models.tokenization_seq2seq_bpe import Seq2SeqBPETokenizer
from hf_attn.pipelines import TASK
from hf_attn.tokenization import (
    EOS_ID,
    SPECIAL_TOKENS,
    UNK_ID,
    check_special_tokens,
    check_tokenizer_matches_config,
    has_separate_vocabularies,
    load_tokenizer,
    train_bpe_tokenizer,
    train_bpe_tokenizer_pair,
    wrap_tokenizer_pair,
)
from hf_attn.training.builders import build_model
from hf_attn.training.config import TrainingConfig, load_training_config
from hf_attn.training.loop import train

SOURCE_SIZE, TARGET_SIZE = 1500, 1200
SAVED_FILES = {"tokenizer.json", "target_tokenizer.json", "tokenizer_config.json", "tokenization_seq2seq_bpe.py"}


@pytest.fixture(scope="module")
def corpus() -> datasets.DatasetDict:
    bible = bible_corpus()
    return datasets.DatasetDict({"train": bible["train"].select(range(0, 27_000, 9)), "test": bible["test"]})


@pytest.fixture(scope="module")
def pair(corpus) -> Seq2SeqBPETokenizer:
    return train_bpe_tokenizer_pair(corpus, SOURCE_SIZE, TARGET_SIZE)


@pytest.fixture(scope="module")
def sources(corpus) -> list[str]:
    return list(corpus["test"]["source"])


@pytest.fixture(scope="module")
def targets(corpus) -> list[str]:
    return list(corpus["test"]["target"])


def backends(folder: Path) -> tuple[Tokenizer, Tokenizer]:
    """The saved source and target vocabularies, read with the tokenizers library alone."""
    return Tokenizer.from_file(str(folder / "tokenizer.json")), Tokenizer.from_file(
        str(folder / "target_tokenizer.json")
    )


# ---------------------------------------------------------------------------------------
# The tokenizer pair
# ---------------------------------------------------------------------------------------


def test_sizes_and_special_ids_on_both_sides(pair):
    assert isinstance(pair, Seq2SeqBPETokenizer) and has_separate_vocabularies(pair)
    assert (len(pair), pair.target_vocab_size) == (SOURCE_SIZE, TARGET_SIZE)
    assert (len(pair.get_source_vocab()), len(pair.get_target_vocab())) == (SOURCE_SIZE, TARGET_SIZE)
    for vocab in (pair.get_source_vocab(), pair.get_target_vocab()):
        assert [vocab[token] for token in SPECIAL_TOKENS] == [0, 1, 2, 3]
    assert (pair.pad_token_id, pair.bos_token_id, pair.eos_token_id, pair.unk_token_id) == (0, 1, 2, 3)
    assert (pair.padding_side, pair.model_max_length) == ("right", 512)


def test_round_trip_on_unseen_verses_for_both_sides(pair, sources, targets):
    source_ids = pair(sources)["input_ids"]
    target_ids = pair(text_target=targets)["input_ids"]
    assert pair.batch_decode(source_ids, skip_special_tokens=True, use_source_tokenizer=True) == sources
    assert pair.batch_decode(target_ids, skip_special_tokens=True) == targets
    assert all(ids[-1] == EOS_ID and UNK_ID not in ids for ids in source_ids + target_ids)
    text = "Año 1909: ¿qué? ﬁnal 😀"
    assert pair.decode(pair(text_target=text)["input_ids"], skip_special_tokens=True) == unicodedata.normalize(
        "NFKC", text
    )


def test_labels_come_from_the_target_vocabulary(pair, sources, targets):
    batch = pair(sources[:20], text_target=targets[:20])
    assert batch["input_ids"] == pair(sources[:20])["input_ids"]
    assert batch["labels"] == pair(text_target=targets[:20])["input_ids"]
    # The same Spanish text gets other ids from the source vocabulary, which was trained on English only.
    assert batch["labels"] != pair(targets[:20])["input_ids"]
    assert max(max(ids) for ids in batch["labels"]) < TARGET_SIZE
    source_vocab, target_vocab = pair.get_source_vocab(), pair.get_target_vocab()
    assert {"▁Dios", "▁los"} <= set(target_vocab) and not {"▁Dios", "▁los"} & set(source_vocab)
    assert {"▁God", "▁the"} <= set(source_vocab) and not {"▁God", "▁the"} & set(target_vocab)
    assert len(pair) == SOURCE_SIZE, "encoding a target must leave the tokenizer in source mode"


def test_collator_pads_inputs_with_pad_and_target_labels_with_minus_100(pair, sources, targets):
    encoded = pair(sources[:3], text_target=targets[:3])
    features = [{"input_ids": ids, "labels": labels} for ids, labels in zip(encoded["input_ids"], encoded["labels"])]
    batch = DataCollatorForSeq2Seq(pair, label_pad_token_id=-100, return_tensors="pt")(features)
    for row, (ids, labels) in enumerate(zip(encoded["input_ids"], encoded["labels"])):
        assert batch["input_ids"][row, : len(ids)].tolist() == ids
        assert set(batch["input_ids"][row, len(ids) :].tolist()) <= {0}
        assert batch["labels"][row, : len(labels)].tolist() == labels
        assert set(batch["labels"][row, len(labels) :].tolist()) <= {-100}
    assert batch["labels"].shape[1] == max(map(len, encoded["labels"]))


def test_a_failed_target_encoding_leaves_source_mode(pair):
    with pytest.raises((TypeError, ValueError)):
        pair(text_target=[["not", "a"], 3])
    assert len(pair) == SOURCE_SIZE and pair.get_vocab() == pair.get_source_vocab()


def test_ids_turn_into_target_pieces_unless_the_source_is_asked_for(pair):
    source_ids = pair("In the beginning God")["input_ids"]
    target_ids = pair(text_target="En el principio Dios")["input_ids"]
    assert pair.convert_ids_to_tokens(target_ids)[-2:] == ["▁Dios", "</s>"]
    assert pair.convert_source_ids_to_tokens(source_ids)[-2:] == ["▁God", "</s>"]
    assert pair.convert_ids_to_tokens(source_ids) != pair.convert_source_ids_to_tokens(source_ids)
    assert pair.decode(source_ids, skip_special_tokens=True, use_source_tokenizer=True) == "In the beginning God"
    assert pair.decode(source_ids, skip_special_tokens=True) != "In the beginning God"


def test_each_side_is_the_joint_pipeline_trained_on_its_own_column(corpus, pair):
    """Same normaliser, splitting and byte fallback as the joint tokenizer, on the train split only."""
    source_only = train_bpe_tokenizer(corpus["train"], vocab_size=SOURCE_SIZE, columns=("source",))
    target_only = train_bpe_tokenizer(corpus["train"], vocab_size=TARGET_SIZE, columns=("target",))
    assert pair.get_source_vocab() == source_only.get_vocab()
    assert pair.get_target_vocab() == target_only.get_vocab()
    assert (
        train_bpe_tokenizer_pair(corpus["train"], SOURCE_SIZE, TARGET_SIZE).get_target_vocab()
        == target_only.get_vocab()
    )
    assert train_bpe_tokenizer_pair(corpus["train"], SOURCE_SIZE).target_vocab_size == SOURCE_SIZE


def test_pair_training_input_errors(corpus):
    with pytest.raises(TypeError, match="Dataset or DatasetDict"):
        train_bpe_tokenizer_pair(["a text"], 1000)
    with pytest.raises(ValueError, match=r"lacks column\(s\) \['es'\]"):
        train_bpe_tokenizer_pair(corpus, 1000, target_column="es")
    with pytest.raises(ValueError, match="vocab_size must exceed 260"):
        train_bpe_tokenizer_pair(corpus, 1000, 200)


def test_save_then_autotokenizer_reload_is_equivalent(pair, sources, targets, tmp_path):
    pair.save_pretrained(tmp_path)
    assert {path.name for path in tmp_path.iterdir()} == SAVED_FILES
    config = json.loads((tmp_path / "tokenizer_config.json").read_text())
    assert config["tokenizer_class"] == "Seq2SeqBPETokenizer"
    assert config["auto_map"]["AutoTokenizer"][0] == "tokenization_seq2seq_bpe.Seq2SeqBPETokenizer"
    source_backend, target_backend = backends(tmp_path)
    assert source_backend.get_vocab() == pair.get_source_vocab()
    assert target_backend.get_vocab() == pair.get_target_vocab()
    for reloaded in (AutoTokenizer.from_pretrained(tmp_path), load_tokenizer(tmp_path)):
        assert type(reloaded) is Seq2SeqBPETokenizer
        assert (len(reloaded), reloaded.target_vocab_size) == (SOURCE_SIZE, TARGET_SIZE)
        assert reloaded.all_special_tokens == pair.all_special_tokens
        assert (reloaded.padding_side, reloaded.model_max_length) == ("right", 512)
        assert dict(reloaded(sources, text_target=targets)) == dict(pair(sources, text_target=targets))
        labels = pair(text_target=targets)["input_ids"]
        assert reloaded.batch_decode(labels, skip_special_tokens=True) == targets


def test_remote_code_loads_the_pair_and_the_model_without_hf_attn(pair, sources, tmp_path):
    """A model folder with a tokenizer pair, loaded with trust_remote_code where hf_attn cannot be imported."""
    folder = tmp_path / "model"
    model = build_model(
        TrainingConfig(model_type="transformer_seq2seq", model=TINY_CONFIGS["transformer_seq2seq"]), pair
    )
    model.save_pretrained(folder)
    pair.save_pretrained(folder)
    output_file = tmp_path / "remote.json"
    script = """
import json, sys
from transformers import AutoModelForSeq2SeqLM, AutoTokenizer
folder, source, output_file = sys.argv[1:4]
tokenizer = AutoTokenizer.from_pretrained(folder, trust_remote_code=True)
model = AutoModelForSeq2SeqLM.from_pretrained(folder, trust_remote_code=True).eval()
assert "hf_attn" not in sys.modules, "remote code imported hf_attn"
generated = model.generate(**tokenizer([source], return_tensors="pt"), max_new_tokens=8)
json.dump({
    "class": type(tokenizer).__name__, "module": type(tokenizer).__module__,
    "sizes": [len(tokenizer), tokenizer.target_vocab_size],
    "encoded": dict(tokenizer([source], text_target=["En el principio"])),
    "generated": generated.tolist(),
    "text": tokenizer.batch_decode(generated, skip_special_tokens=True),
}, open(output_file, "w"))
"""
    run_without_hf_attn(script, [folder, sources[0], output_file], tmp_path)
    remote = json.loads(output_file.read_text())
    assert remote["class"] == "Seq2SeqBPETokenizer" and not remote["module"].startswith("hf_attn")
    assert remote["sizes"] == [SOURCE_SIZE, TARGET_SIZE]
    assert remote["encoded"] == dict(pair([sources[0]], text_target=["En el principio"]))
    with torch.no_grad():
        generated = model.eval().generate(**pair([sources[0]], return_tensors="pt"), max_new_tokens=8)
    assert remote["generated"] == generated.tolist()
    assert remote["text"] == pair.batch_decode(generated, skip_special_tokens=True)


def test_joint_tokenizer_saves_and_loads_as_before(corpus, tmp_path):
    joint = train_bpe_tokenizer(corpus["train"], vocab_size=SOURCE_SIZE)
    assert type(joint) is PreTrainedTokenizerFast and not has_separate_vocabularies(joint)
    joint.save_pretrained(tmp_path)
    assert {path.name for path in tmp_path.iterdir()} == {"tokenizer.json", "tokenizer_config.json"}
    config = json.loads((tmp_path / "tokenizer_config.json").read_text())
    assert config["tokenizer_class"] == "TokenizersBackend" and "auto_map" not in config
    assert type(AutoTokenizer.from_pretrained(tmp_path)) is PreTrainedTokenizerFast
    assert type(load_tokenizer(tmp_path)) is PreTrainedTokenizerFast


def test_missing_target_vocabulary_is_named(pair, tmp_path):
    pair.save_pretrained(tmp_path)
    (tmp_path / "target_tokenizer.json").unlink()
    with pytest.raises(FileNotFoundError, match="has no target_tokenizer.json"):
        load_tokenizer(tmp_path)
    with pytest.raises(ValueError, match="needs a target vocabulary"):
        AutoTokenizer.from_pretrained(tmp_path)


def test_a_target_vocabulary_with_other_special_ids_is_rejected(pair):
    foreign = Tokenizer(models.WordLevel({"<unk>": 0, "<pad>": 1, "<s>": 2, "</s>": 3, "a": 4}, unk_token="<unk>"))
    foreign.pre_tokenizer = pre_tokenizers.Whitespace()
    with pytest.raises(
        ValueError, match=r"the target vocabulary gives '<pad>' id 1, expected 0.*target text does not end"
    ):
        wrap_tokenizer_pair(pair.backend_tokenizer, foreign)
    check_special_tokens(pair)


# ---------------------------------------------------------------------------------------
# Tokenizer and model config
# ---------------------------------------------------------------------------------------

TINY_CONFIG_CLASSES = {
    TransformerSeq2SeqConfig: {"d_model": 32, "encoder_attention_heads": 4, "decoder_attention_heads": 4},
    RNNSeq2SeqConfig: {"hidden_size": 32, "embedding_size": 32},
}


@pytest.mark.parametrize("config_class", list(TINY_CONFIG_CLASSES))
def test_config_must_match_both_vocabularies(pair, config_class):
    def config(**fields):
        settings = {
            "vocab_size": SOURCE_SIZE,
            "decoder_vocab_size": TARGET_SIZE,
            "share_encoder_decoder_embeddings": False,
        }
        return config_class(**{**TINY_CONFIG_CLASSES[config_class], **settings, **fields})

    check_tokenizer_matches_config(pair, config())
    with pytest.raises(ValueError, match=rf"config\.vocab_size is 1400 but the tokenizer needs {SOURCE_SIZE}"):
        check_tokenizer_matches_config(pair, config(vocab_size=1400))
    with pytest.raises(ValueError, match=rf"config\.target_vocab_size is 1100 but the tokenizer needs {TARGET_SIZE}"):
        check_tokenizer_matches_config(pair, config(decoder_vocab_size=1100))
    shared = config(decoder_vocab_size=None, share_encoder_decoder_embeddings=True)
    with pytest.raises(
        ValueError, match="config.share_encoder_decoder_embeddings is True but the tokenizer needs False"
    ):
        check_tokenizer_matches_config(pair, shared)


def test_joint_tokenizer_needs_one_output_vocabulary_of_its_size(corpus):
    joint = train_bpe_tokenizer(corpus["train"], vocab_size=SOURCE_SIZE)
    fields = {
        "vocab_size": SOURCE_SIZE,
        "pad_token_id": 0,
        "bos_token_id": 1,
        "eos_token_id": 2,
        "decoder_start_token_id": 1,
    }
    check_tokenizer_matches_config(joint, SimpleNamespace(**fields))
    with pytest.raises(ValueError, match=rf"config\.target_vocab_size is 900 but the tokenizer needs {SOURCE_SIZE}"):
        check_tokenizer_matches_config(joint, SimpleNamespace(**fields, decoder_vocab_size=900))


# ---------------------------------------------------------------------------------------
# Training config
# ---------------------------------------------------------------------------------------


def test_training_config_option_and_its_errors():
    config = load_training_config("transformer_small", ["separate_vocabularies=true", "target_vocab_size=6000"])
    assert (config.separate_vocabularies, config.vocab_size, config.target_vocab_size) == (True, 8000, 6000)
    assert load_training_config("transformer_small").separate_vocabularies is False
    with pytest.raises(ValueError, match="`model.share_encoder_decoder_embeddings` cannot be true"):
        load_training_config("rnn_small", ["separate_vocabularies=true", "model.share_encoder_decoder_embeddings=true"])
    with pytest.raises(ValueError, match="set `separate_vocabularies: true`"):
        load_training_config("rnn_small", ["target_vocab_size=6000"])
    with pytest.raises(ValueError, match="`separate_vocabularies` must be true or false"):
        load_training_config("rnn_small", ["separate_vocabularies=yes please"])


@pytest.mark.parametrize("model_type", list(TINY_CONFIGS))
def test_build_model_sizes_both_embeddings_from_the_pair(pair, model_type):
    model = build_model(TrainingConfig(model_type=model_type, model=TINY_CONFIGS[model_type]), pair)
    config = model.config
    assert (config.vocab_size, config.decoder_vocab_size, config.share_encoder_decoder_embeddings) == (
        SOURCE_SIZE,
        TARGET_SIZE,
        False,
    )
    assert model.get_input_embeddings().num_embeddings == SOURCE_SIZE
    assert model.get_output_embeddings().out_features == TARGET_SIZE


def test_tokenizer_kind_must_agree_with_the_config(corpus, pair, tmp_path):
    train_bpe_tokenizer(corpus["train"], vocab_size=SOURCE_SIZE).save_pretrained(tmp_path / "joint")
    pair.save_pretrained(tmp_path / "pair")
    common = {"output_dir": str(tmp_path / "run"), "max_train_examples": 8, "max_steps": 1}
    with pytest.raises(
        ValueError, match="has one joint vocabulary, but the training config sets `separate_vocabularies: true`"
    ):
        train(TrainingConfig(tokenizer=str(tmp_path / "joint"), separate_vocabularies=True, **common))
    with pytest.raises(
        ValueError, match="has separate source and target vocabularies, but .* `separate_vocabularies: false`"
    ):
        train(TrainingConfig(tokenizer=str(tmp_path / "pair"), **common))


# ---------------------------------------------------------------------------------------
# Training, reloading and translating with a separate-vocabulary model
# ---------------------------------------------------------------------------------------

PRESETS = {"transformer_seq2seq": "transformer_small", "rnn_seq2seq": "rnn_small"}


@pytest.fixture(scope="module", params=list(PRESETS))
def trained_run(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A few steps of the preset, shrunk, trained with its own tokenizer pair through ``hf-attn train``."""
    run_dir = tmp_path_factory.mktemp(request.param) / "run"
    overrides = [f"model.{key}={value}" for key, value in TINY_CONFIGS[request.param].items()]
    overrides += [
        "separate_vocabularies=true",
        "vocab_size=700",
        "target_vocab_size=600",
        "max_train_examples=400",
        "max_tokens=512",
        "learning_rate=0.005",
        "warmup_steps=2",
        "max_steps=12",
        "max_minutes=null",
        "eval_every=6",
        "eval_examples=8",
        "save_every=12",
        "log_every=1",
    ]
    argv = ["train", PRESETS[request.param], "--output-dir", str(run_dir), *(f"--set={item}" for item in overrides)]
    assert cli_main(argv) == 0
    return run_dir


def test_training_trains_a_pair_on_the_train_split_and_saves_a_loadable_best_model(trained_run):
    best = trained_run / "best"
    assert SAVED_FILES <= {path.name for path in best.iterdir()}
    tokenizer = AutoTokenizer.from_pretrained(best)
    model = AutoModelForSeq2SeqLM.from_pretrained(best)
    assert type(tokenizer) is Seq2SeqBPETokenizer
    assert (len(tokenizer), tokenizer.target_vocab_size) == (700, 600)
    config = model.config
    assert (config.vocab_size, config.target_vocab_size, config.share_encoder_decoder_embeddings) == (700, 600, False)
    assert json.loads((trained_run / "training_config.json").read_text())["separate_vocabularies"] is True
    expected = train_bpe_tokenizer_pair(bible_corpus()["train"].select(range(400)), 700, 600)
    assert tokenizer.get_target_vocab() == expected.get_target_vocab()
    loaded_model, loaded_tokenizer = load_model_and_tokenizer(best)
    assert type(loaded_model) is type(model) and type(loaded_tokenizer) is Seq2SeqBPETokenizer


def test_generated_ids_decode_with_the_target_vocabulary(trained_run, sources, capsys):
    best = trained_run / "best"
    model, tokenizer = load_model_and_tokenizer(best)
    source_backend, target_backend = backends(best)
    batch = tokenizer(sources[:4], padding=True, return_tensors="pt")
    # Sampling: a few steps leave greedy search on one or two tokens, which may read the same in both vocabularies.
    torch.manual_seed(0)
    with torch.no_grad():
        sampled = model.generate(**batch, do_sample=True, top_k=0, max_new_tokens=12).tolist()
    decoded = tokenizer.batch_decode(sampled, skip_special_tokens=True)
    assert decoded == [target_backend.decode(row, skip_special_tokens=True) for row in sampled]
    assert decoded != [source_backend.decode(row, skip_special_tokens=True) for row in sampled]
    assert all(text.strip() for text in decoded)

    with torch.no_grad():
        greedy = model.generate(**batch, max_new_tokens=10)
    expected = [text.strip() for text in tokenizer.batch_decode(greedy, skip_special_tokens=True)]
    assert translate(model, tokenizer, sources[:4], num_beams=1, max_new_tokens=10) == expected

    assert cli_main(["translate", str(best), *sources[:2], "--num-beams", "2"]) == 0
    assert capsys.readouterr().out.splitlines() == translate(model, tokenizer, sources[:2], num_beams=2)


def test_pipeline_gives_the_text_of_generate_and_decode(trained_run, sources):
    model, tokenizer = load_model_and_tokenizer(trained_run / "best")
    translator = pipeline(TASK, model=str(trained_run / "best"))
    assert type(translator.tokenizer) is Seq2SeqBPETokenizer
    for source in sources[:3]:
        with torch.no_grad():
            generated = model.generate(**tokenizer(source, return_tensors="pt"), num_beams=2, max_new_tokens=10)
        expected = tokenizer.decode(generated[0], skip_special_tokens=True).strip()
        assert translator(source, num_beams=2, max_new_tokens=10) == [{"translation_text": expected}]


def test_alignment_takes_each_axis_from_its_own_vocabulary(trained_run, sources):
    model, tokenizer = load_model_and_tokenizer(trained_run / "best")
    model.set_attn_implementation("eager")
    result = alignment(model, tokenizer, sources[0], target="En el principio crió Dios los cielos y la tierra.")
    source_ids = tokenizer(sources[0])["input_ids"]
    target_ids = tokenizer(text_target="En el principio crió Dios los cielos y la tierra.")["input_ids"]
    source_backend, target_backend = backends(trained_run / "best")
    assert result["source_tokens"] == [source_backend.id_to_token(i) for i in source_ids]
    assert result["target_tokens"] == [target_backend.id_to_token(i) for i in target_ids]
    assert result["target_text"] == "En el principio crió Dios los cielos y la tierra."
    assert result["attention"].shape[1:] == (len(target_ids), len(source_ids))


def test_evaluation_and_model_card_show_the_target_text(trained_run):
    best = trained_run / "best"
    model, tokenizer = load_model_and_tokenizer(best)
    test_split = bible_corpus()["test"].select(range(4))
    metrics = evaluate_model(model, tokenizer, test_split, output_dir=trained_run / "test", num_beams=2)
    hypotheses = (trained_run / "test" / "hypotheses.txt").read_text(encoding="utf-8").splitlines()
    assert hypotheses == translate(model, tokenizer, list(test_split["source"]), num_beams=2)
    assert metrics["n"] == 4
    card = write_model_card(best, run_dir=trained_run, test_metrics=metrics).read_text(encoding="utf-8")
    assert f"**This model:** {hypotheses[0]}" in card
    assert "`separate_vocabularies` | True" in card and "`target_vocab_size` | 600" in card


def test_best_folder_without_its_target_vocabulary_is_named(trained_run, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(trained_run / "best", copy)
    (copy / "target_tokenizer.json").unlink()
    with pytest.raises(FileNotFoundError, match="missing target_tokenizer.json"):
        load_model_and_tokenizer(copy)
