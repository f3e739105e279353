"""Bad input through the Python API and the pipeline: a clear error or the right result, never a silently wrong one.

Empty sources translate to "" everywhere (translate, the pipeline, the CLI); over-long input
is truncated with a warning naming the limit; a tokenizer or a weights file that does not
fit the model is refused; damaged files are named. Each case checks the error type and that
the message names the offending value, field or file.
"""

from __future__ import annotations

import gzip
import json
import re
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file
from tiny_seq2seq import (
    MODEL_TYPES,
    bible_corpus,
    one_torch_thread,  # noqa: F401 - applies the fixture to this module
    save_tiny_model,
    short_pairs,
    small_tokenizer,
    tiny_model,
)
from transformers import pipeline

from hf_attn.data import load_parallel_data
from hf_attn.evaluation import evaluate_model
from hf_attn.generation import alignment, translate
from hf_attn.inference import load_model_and_tokenizer
from hf_attn.pipelines import TASK
from hf_attn.tokenization import load_tokenizer, train_bpe_tokenizer, train_bpe_tokenizer_pair
from hf_attn.training.config import TrainingConfig, load_training_config

SENTENCE = "In the beginning God created the heaven and the earth."
FAST = {"num_beams": 2, "max_new_tokens": 8}


@pytest.fixture(scope="module")
def models() -> dict[str, torch.nn.Module]:
    return {model_type: tiny_model(model_type) for model_type in MODEL_TYPES}


@pytest.fixture(scope="module")
def saved(tmp_path_factory) -> dict[str, Path]:
    folders = {}
    for model_type in MODEL_TYPES:
        folders[model_type] = tmp_path_factory.mktemp(model_type)
        save_tiny_model(model_type, folders[model_type])
    return folders


@pytest.fixture
def folder_copy(saved, tmp_path):
    def copy(model_type: str = "transformer_seq2seq") -> Path:
        target = tmp_path / model_type
        shutil.copytree(saved[model_type], target)
        return target

    return copy


def other_size_tokenizer(vocab_size: int):
    return train_bpe_tokenizer(bible_corpus()["train"].select(range(300)), vocab_size=vocab_size)


# --- Empty sources: "" without asking the model, in the API and the pipeline ---------------------------------------


@pytest.mark.parametrize("model_type", MODEL_TYPES)
def test_translate_gives_empty_text_for_blank_sources(model_type, models):
    model = models[model_type]
    alone = translate(model, small_tokenizer(), [SENTENCE], **FAST)
    assert translate(model, small_tokenizer(), ["", " \t ", SENTENCE, "\n"], **FAST) == ["", "", *alone, ""]


@pytest.mark.parametrize("model_type", MODEL_TYPES)
def test_blank_sources_never_reach_the_model(model_type, models, monkeypatch):
    model = models[model_type]

    def refuse(*args, **kwargs):
        raise AssertionError("generate() was called for a blank source")

    monkeypatch.setattr(model, "generate", refuse)
    assert translate(model, small_tokenizer(), ["", "   "], **FAST) == ["", ""]
    translator = pipeline(TASK, model=model, tokenizer=small_tokenizer())
    assert translator("") == [{"translation_text": ""}]
    assert translator([" ", ""]) == [{"translation_text": ""}, {"translation_text": ""}]


@pytest.mark.parametrize("model_type", MODEL_TYPES)
def test_the_pipeline_agrees_with_translate_on_blank_and_empty_input(model_type, models):
    model = models[model_type]
    translator = pipeline(TASK, model=model, tokenizer=small_tokenizer())
    expected = translate(model, small_tokenizer(), ["", SENTENCE], **FAST)
    assert translator(["", SENTENCE], **FAST) == [{"translation_text": text} for text in expected]
    assert translator(["", SENTENCE, ""], batch_size=2, **FAST)[::2] == [{"translation_text": ""}] * 2
    assert translator([]) == []
    assert translate(model, small_tokenizer(), []) == []


def test_alignment_of_an_empty_source_is_a_clear_error(models):
    with pytest.raises(ValueError, match="needs a non-empty source sentence"):
        alignment(models["rnn_seq2seq"], small_tokenizer(), "  ")


@pytest.mark.parametrize(
    ("sources", "error", "message"),
    [
        (SENTENCE, TypeError, "not a single string"),
        ([SENTENCE, None], TypeError, r"sources\[1\] is NoneType"),
        ([SENTENCE, 3], TypeError, r"sources\[1\] is int"),
    ],
)
def test_sources_that_are_not_strings_are_named(sources, error, message, models):
    with pytest.raises(error, match=message):
        translate(models["rnn_seq2seq"], small_tokenizer(), sources)


# --- Over-long input: truncated with a warning naming the limit ------------------------------------------------------


@pytest.fixture(scope="module")
def short_limit_model() -> torch.nn.Module:
    return tiny_model("transformer_seq2seq", max_position_embeddings=24)


LONG = " ".join([SENTENCE] * 8)


def test_translate_warns_when_it_truncates(short_limit_model, caplog):
    translate(short_limit_model, small_tokenizer(), [SENTENCE[:20]], **FAST)
    assert "max_position_embeddings" not in caplog.text
    translate(short_limit_model, small_tokenizer(), [SENTENCE[:20], LONG], **FAST)
    assert "1 of 2 source(s) exceed the model's limit of 24 tokens (max_position_embeddings)" in caplog.text


def test_the_pipeline_warns_when_it_truncates(short_limit_model, caplog):
    translator = pipeline(TASK, model=short_limit_model, tokenizer=small_tokenizer())
    translator(LONG, **FAST)
    assert "limit of 24 tokens (max_position_embeddings)" in caplog.text


def test_alignment_warns_when_it_truncates(short_limit_model, caplog):
    short_limit_model.set_attn_implementation("eager")
    result = alignment(short_limit_model, small_tokenizer(), LONG, max_new_tokens=4)
    assert len(result["source_tokens"]) == 24
    assert "limit of 24 tokens (max_position_embeddings)" in caplog.text


# --- Generation settings -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("setting", "value"), [("num_beams", 0), ("num_beams", -2), ("num_beams", 2.5), ("batch_size", 0)]
)
def test_bad_generation_settings_name_the_setting(setting, value, models):
    with pytest.raises(ValueError, match=rf"`{setting}` must be a positive integer, got {value}"):
        translate(models["rnn_seq2seq"], small_tokenizer(), [SENTENCE], **{"num_beams": 2, setting: value})


def test_bad_beam_counts_in_the_pipeline_and_alignment_name_the_setting(models):
    translator = pipeline(TASK, model=models["rnn_seq2seq"], tokenizer=small_tokenizer())
    with pytest.raises(ValueError, match="`num_beams` must be a positive integer, got 0"):
        translator(SENTENCE, num_beams=0)
    with pytest.raises(ValueError, match="`num_beams` must be a positive integer, got -1"):
        alignment(models["rnn_seq2seq"], small_tokenizer(), SENTENCE, num_beams=-1)


def test_evaluation_with_no_examples_is_refused(models):
    with pytest.raises(ValueError, match="`max_examples` must be a positive integer"):
        evaluate_model(models["rnn_seq2seq"], small_tokenizer(), short_pairs("test", 4), max_examples=0)


# --- The model itself: token ids and padding -----------------------------------------------------------------------


@pytest.mark.parametrize("model_type", MODEL_TYPES)
@pytest.mark.parametrize(
    ("argument", "bad_id"), [("input_ids", 700), ("input_ids", 5000), ("input_ids", -1), ("decoder_input_ids", 700)]
)
def test_token_ids_outside_the_vocabulary_are_named(model_type, argument, bad_id, models):
    inputs = {"input_ids": torch.tensor([[5, 6, 2]]), "decoder_input_ids": torch.tensor([[1, 7]])}
    inputs[argument] = inputs[argument].clone()
    inputs[argument][0, 1] = bad_id
    with pytest.raises(ValueError, match=rf"`{argument}` holds token id {bad_id}, outside .* vocabulary of 700 ids"):
        models[model_type](**inputs)


@pytest.mark.parametrize("model_type", MODEL_TYPES)
def test_generating_from_an_all_padding_row_is_an_error_in_both_models(model_type, models):
    input_ids = torch.tensor([[5, 6, 2], [0, 0, 0]])
    attention_mask = torch.tensor([[1, 1, 1], [0, 0, 0]])
    with pytest.raises(ValueError, match="Every source sequence needs at least one unmasked token"):
        models[model_type].generate(input_ids=input_ids, attention_mask=attention_mask, max_new_tokens=3)


# --- Tokenizers ----------------------------------------------------------------------------------------------------


def test_a_bpe_vocabulary_is_never_larger_than_asked():
    texts = bible_corpus()["train"].select(range(300))
    tokenizer = train_bpe_tokenizer(texts, vocab_size=300)
    assert len(tokenizer) == 300
    text = "¡Él dijo: «Sí»! Œuvre — naïve"
    assert tokenizer.decode(tokenizer(text)["input_ids"], skip_special_tokens=True) == text
    pair = train_bpe_tokenizer_pair(texts, 280, 290)
    assert (len(pair), pair.target_vocab_size) == (280, 290)


@pytest.mark.parametrize("vocab_size", [600, 800])
@pytest.mark.parametrize("model_type", MODEL_TYPES)
def test_a_tokenizer_of_another_size_is_refused_by_the_pipeline_and_translate(model_type, vocab_size, models):
    tokenizer = other_size_tokenizer(vocab_size)
    message = rf"config.vocab_size is 700 but the tokenizer needs {vocab_size}"
    with pytest.raises(ValueError, match=message):
        pipeline(TASK, model=models[model_type], tokenizer=tokenizer)
    with pytest.raises(ValueError, match=message):
        translate(models[model_type], tokenizer, [SENTENCE])


def test_a_tokenizer_of_another_size_in_a_folder_is_refused(folder_copy):
    folder = folder_copy()
    other_size_tokenizer(600).save_pretrained(folder)
    with pytest.raises(ValueError, match="config.vocab_size is 700 but the tokenizer needs 600"):
        load_model_and_tokenizer(folder)
    with pytest.raises(ValueError, match="config.vocab_size is 700 but the tokenizer needs 600"):
        pipeline(TASK, model=str(folder))


# --- Model folders: damaged or foreign files are named ---------------------------------------------------------------


def rewrite_weights(folder: Path, change) -> None:
    weights = load_file(folder / "model.safetensors")
    change(weights)
    save_file(weights, folder / "model.safetensors", metadata={"format": "pt"})


def drop_a_tensor(weights):
    del weights[sorted(weights)[3]]


def add_a_tensor(weights):
    weights["model.extra.weight"] = torch.zeros(3)


def resize_a_tensor(weights):
    name = next(name for name in sorted(weights) if weights[name].dim() == 2)
    weights[name] = torch.zeros(weights[name].shape[0], weights[name].shape[1] + 1)


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda f: (f / "model.safetensors").write_bytes((f / "model.safetensors").read_bytes()[:3000]),
         r"model.safetensors is damaged or truncated .*incomplete metadata"),
        (lambda f: (f / "model.safetensors").write_bytes(b"garbage" * 50), r"model.safetensors is damaged"),
        (lambda f: rewrite_weights(f, drop_a_tensor), r"do not fit .*1 missing tensor\(s\)"),
        (lambda f: rewrite_weights(f, add_a_tensor), r"do not fit .*1 unexpected tensor\(s\): model.extra.weight"),
        (lambda f: rewrite_weights(f, resize_a_tensor), r"do not fit .*of another shape: .* in the file"),
        (lambda f: shutil.copy(f.parent / "rnn_seq2seq" / "model.safetensors", f / "model.safetensors"),
         r"do not fit .*missing tensor\(s\).*unexpected tensor\(s\)"),
        (lambda f: (f / "tokenizer.json").write_text((f / "tokenizer.json").read_text()[:400]),
         r"tokenizer.json is damaged: not valid JSON \(.*: line \d+, column \d+\)"),
        (lambda f: (f / "tokenizer.json").write_text('{"version": "1.0"}'), r"The tokenizer in .* is damaged"),
        (lambda f: (f / "tokenizer_config.json").write_text("{"), r"tokenizer_config.json is damaged: not valid JSON"),
        (lambda f: (f / "config.json").write_text('{"model_type": '), r"config.json is damaged: not valid JSON"),
        (lambda f: (f / "generation_config.json").write_text("{,}"), r"generation_config.json is damaged"),
    ],
    ids=[
        "truncated-weights", "garbage-weights", "missing-tensor", "extra-tensor", "resized-tensor",
        "other-architecture", "truncated-tokenizer-json", "foreign-tokenizer-json", "damaged-tokenizer-config",
        "damaged-config", "damaged-generation-config",
    ],
)  # fmt: skip
def test_a_damaged_or_foreign_model_folder_is_named(damage, message, folder_copy):
    folder_copy("rnn_seq2seq")
    folder = folder_copy()
    damage(folder)
    with pytest.raises(ValueError, match=message):
        load_model_and_tokenizer(folder)


@pytest.mark.parametrize("change", [drop_a_tensor, add_a_tensor], ids=["missing-tensor", "extra-tensor"])
def test_the_pipeline_refuses_weights_that_did_not_load_completely(change, folder_copy):
    folder = folder_copy("rnn_seq2seq")
    rewrite_weights(folder, change)
    with pytest.raises(ValueError, match="do not fit the model its config.json describes"):
        pipeline(TASK, model=str(folder))


@pytest.fixture
def offline(monkeypatch):
    """No Hub: a bare name that is no folder fails at once (as on a machine without network)."""
    import huggingface_hub.constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)


def test_a_bare_name_that_is_no_folder_names_both_possibilities(offline, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(OSError, match=r"'no-such-model' is neither a local model folder .* nor a reachable Hub"):
        load_model_and_tokenizer("no-such-model")
    with pytest.raises(
        OSError, match=r"'no-such-tokenizer' is neither a local tokenizer folder .* nor a reachable Hub"
    ):
        load_tokenizer("no-such-tokenizer")


def test_a_damaged_tokenizer_folder_is_named_when_training(tmp_path):
    small_tokenizer().save_pretrained(tmp_path / "tok")
    (tmp_path / "tok" / "tokenizer.json").write_text("{")
    with pytest.raises(ValueError, match=r"tok/tokenizer.json is damaged: not valid JSON"):
        load_tokenizer(tmp_path / "tok")


# --- Data files ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "content"),
    [
        ("pairs.tsv.gz", b"source\ttarget\nnot gzip at all\n"),
        ("pairs.tsv.gz", gzip.compress(b"a\tb\n" * 200)[:-12]),
        ("pairs.jsonl.gz", b"\x1f\x8b\x08garbage"),
    ],
    ids=["not-gzip", "truncated-gzip", "garbage-gzip"],
)
def test_a_corrupt_gzip_file_is_named(name, content, tmp_path):
    (tmp_path / name).write_bytes(content)
    with pytest.raises(ValueError, match=rf"{name} is not a complete gzip file"):
        load_parallel_data(tmp_path / name)


# --- Training configs ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("model_type: rnn_seq2seq\nmodel: {hidden_size: 64\n", r"config.yaml is not valid YAML \(line 3, column 1\)"),
        ("max_steps: 10\n  bad indent: 3\n", r"config.yaml is not valid YAML \(line 2, column \d+\)"),
        ("- a list\n- not a mapping\n", r"config.yaml must contain a mapping"),
        ("model_type: rnn_seq2seq\nmodel:\n  attenton_type: luong_dot\n", r"did you mean `model.attention_type`"),
        ("model_type: transformer_seq2seq\nmodel:\n  d_modle: 64\n", r"did you mean `model.d_model`"),
    ],
)
def test_a_bad_config_file_names_the_file_and_the_problem(text, message, tmp_path):
    (tmp_path / "config.yaml").write_text(text)
    with pytest.raises(ValueError, match=message):
        load_training_config(tmp_path / "config.yaml")


@pytest.mark.parametrize("assignment", ["model.d_model=[1, 2", "max_steps={", "log_with='tensorboard"])
def test_a_malformed_override_names_the_override(assignment):
    with pytest.raises(ValueError, match=re.escape(f"The value of override {assignment!r} is not valid YAML")):
        load_training_config("rnn_small", [assignment])


def test_a_non_utf8_config_is_named(tmp_path):
    (tmp_path / "config.yaml").write_bytes(b"max_steps: 10\n# \xff\xfe\n")
    with pytest.raises(ValueError, match=r"config.yaml is not UTF-8 text"):
        load_training_config(tmp_path / "config.yaml")


def test_a_model_field_typo_is_caught_in_code_too():
    with pytest.raises(ValueError, match=r"`model.hiden_size` is not a field .*did you mean `model.hidden_size`"):
        TrainingConfig(model_type="rnn_seq2seq", model={"hiden_size": 64})


# --- Quickstart validates before expensive work --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("settings", "message"),
    [({"minutes_per_model": -1}, "`max_minutes` must be a positive number"), ({"test_examples": 0}, "`test_examples`")],
)
def test_quickstart_rejects_bad_settings_before_training_anything(settings, message, tmp_path):
    from hf_attn.quickstart import run_quickstart

    with pytest.raises(ValueError, match=message):
        run_quickstart(tmp_path / "quickstart", **settings)
    assert not (tmp_path / "quickstart" / "tokenizer").exists()


def test_quickstart_refuses_a_cards_folder_it_cannot_make_before_training(tmp_path):
    from hf_attn.quickstart import run_quickstart

    (tmp_path / "a_file").write_text("not a folder")
    with pytest.raises(OSError, match="a_file"):
        run_quickstart(tmp_path / "quickstart", cards_dir=tmp_path / "a_file" / "cards")
    assert not (tmp_path / "quickstart" / "tokenizer").exists()


def test_jsonl_records_still_report_their_line(tmp_path):
    """A control: the data loaders' existing checks keep naming the file and line."""
    (tmp_path / "pairs.jsonl").write_text(json.dumps({"source": "a", "target": "b"}) + "\n{oops\n")
    with pytest.raises(ValueError, match=r"pairs.jsonl, line 2: invalid JSON"):
        load_parallel_data(tmp_path / "pairs.jsonl")


CONFIG_CLASSES = {"rnn": "RNNSeq2SeqConfig", "transformer": "TransformerSeq2SeqConfig"}


@pytest.mark.parametrize("config_name", sorted(CONFIG_CLASSES.values()))
@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("init_std", True, r"`init_std` must be a positive number or None, got True"),
        ("init_std", 0, r"`init_std` must be a positive number or None, got 0"),
        ("init_std", "0.02", r"`init_std` must be a positive number or None, got '0.02'"),
        ("vocab_size", True, r"`vocab_size` must be a positive integer, got True"),
        ("decoder_vocab_size", 0, r"`decoder_vocab_size` must be a positive integer, got 0"),
        ("pad_token_id", 800, r"`pad_token_id` must be a token id in \[0, 800\) .* got 800"),
        ("eos_token_id", False, r"`eos_token_id` must be a token id in \[0, 800\) .* got False"),
        ("decoder_start_token_id", -1, r"`decoder_start_token_id` must be a token id .* got -1"),
    ],
)
def test_both_configs_refuse_the_same_bad_shared_fields(config_name, field, value, message):
    """The vocabulary, token-id and init_std checks are one shared helper, so the two configs cannot drift again."""
    import hf_attn

    config_class = getattr(hf_attn, config_name)
    with pytest.raises(ValueError, match=message):
        config_class(**{"vocab_size": 800, field: value})


@pytest.mark.parametrize("config_name", sorted(CONFIG_CLASSES.values()))
def test_both_configs_refuse_a_shared_embedding_over_two_vocabularies(config_name):
    import hf_attn

    with pytest.raises(ValueError, match=r"`decoder_vocab_size` \(500\) differs from `vocab_size` \(800\)"):
        getattr(hf_attn, config_name)(vocab_size=800, decoder_vocab_size=500, share_encoder_decoder_embeddings=True)


def test_the_transformer_config_refuses_a_bool_layer_norm_eps():
    from hf_attn import TransformerSeq2SeqConfig

    with pytest.raises(ValueError, match="`layer_norm_eps` must be a positive number, got True"):
        TransformerSeq2SeqConfig(layer_norm_eps=True)


def test_an_unknown_rnn_attention_type_is_named_by_the_builder_too():
    from hf_attn.models.attention import build_rnn_attention

    with pytest.raises(ValueError, match="`attention_type` must be one of 'bahdanau', .*; got 'luong_cosine'"):
        build_rnn_attention("luong_cosine", 8, 8)
