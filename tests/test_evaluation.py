"""hf_attn.evaluation: sacrebleu scores, length buckets, batched translation, metrics files, alignments.

The models are tiny and trained for a few dozen steps on a copy task, so they produce
different outputs for different inputs (a randomly initialised one mostly repeats one
token, which would let an order mix-up pass unnoticed). Both model families run the same
tests: evaluation must not care which model it drives.
"""

from __future__ import annotations

import json
import math
import random

import numpy as np
import pytest
import sacrebleu
import torch
from datasets import Dataset
from tokenizers import Tokenizer, models, pre_tokenizers, processors
from transformers import AutoModelForSeq2SeqLM, MarianConfig, MarianMTModel, PreTrainedModel, PreTrainedTokenizerFast

import hf_attn
from hf_attn.evaluation import bleu_by_source_length, corpus_scores, evaluate_model
from hf_attn.generation import alignment, beam_stopping, default_max_new_tokens, translate

WORDS = "the a cat dog sat ran on under mat house big small".split()
SOURCES = [
    "the cat sat on the mat",
    "a dog",
    "the small dog ran under the big mat on a house",
    "cat",
    "dog sat on a big mat",
    "the house",
    "a small cat ran",
]


def build_tokenizer() -> PreTrainedTokenizerFast:
    """Word-level tokenizer with the project's special ids (<pad>=0, <s>=1, </s>=2, <unk>=3), appending </s>."""
    vocab = {"<pad>": 0, "<s>": 1, "</s>": 2, "<unk>": 3} | {word: i + 4 for i, word in enumerate(WORDS)}
    backend = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    backend.post_processor = processors.TemplateProcessing(single="$A </s>", special_tokens=[("</s>", 2)])
    return PreTrainedTokenizerFast(
        tokenizer_object=backend, pad_token="<pad>", bos_token="<s>", eos_token="</s>", unk_token="<unk>"
    )


def tiny_config(kind: str, vocab_size: int):
    if kind == "transformer":
        return hf_attn.TransformerSeq2SeqConfig(
            vocab_size=vocab_size,
            d_model=32,
            encoder_layers=1,
            decoder_layers=2,
            encoder_attention_heads=4,
            decoder_attention_heads=4,
            encoder_ffn_dim=64,
            decoder_ffn_dim=64,
            dropout=0.1,
            label_smoothing=0.0,
        )
    return hf_attn.RNNSeq2SeqConfig(vocab_size=vocab_size, hidden_size=32, embedding_size=32)


def train_copy_model(kind: str, tokenizer: PreTrainedTokenizerFast, steps: int = 60) -> PreTrainedModel:
    """A tiny model of the given family, trained briefly to copy random word sequences."""
    torch.manual_seed(0)
    rng = random.Random(0)
    model = AutoModelForSeq2SeqLM.from_config(tiny_config(kind, len(tokenizer)))
    sentences = [" ".join(rng.choice(WORDS) for _ in range(rng.randint(1, 9))) for _ in range(64)]
    batch = tokenizer(sentences, padding=True, return_tensors="pt")
    labels = batch["input_ids"].masked_fill(batch["attention_mask"] == 0, -100)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    model.train()
    for _ in range(steps):
        loss = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], labels=labels).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return model.eval()


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Tiny models run fastest on one thread; with two on a busy 2-core machine, 20x slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def tokenizer() -> PreTrainedTokenizerFast:
    return build_tokenizer()


@pytest.fixture(scope="module", params=["transformer", "rnn"])
def model(request, tokenizer) -> PreTrainedModel:
    return train_copy_model(request.param, tokenizer)


# --- corpus_scores -------------------------------------------------------------------------


def test_identical_corpus_scores_100_with_signatures():
    sentences = ["the cat sat on the mat .", "A dog ran under the big house !"]
    scores = corpus_scores(sentences, sentences)
    assert scores["bleu"] == pytest.approx(100.0)
    assert scores["chrf"] == pytest.approx(100.0)
    assert scores["n"] == 2
    assert scores["bleu_signature"].startswith("nrefs:1|case:mixed|eff:no|tok:13a|smooth:exp|version:")
    assert scores["chrf_signature"].startswith("nrefs:1|case:mixed|eff:yes|nc:6|nw:0|space:no|version:")


def test_partial_bleu_matches_hand_computed_corpus_statistics():
    # Sentence 1 (6 vs 6 words): matched n-grams 5/6, 3/5, 2/4, 1/3.
    # Sentence 2 (4 vs 6 words): a prefix of its reference: 4/4, 3/3, 2/2, 1/1.
    # Corpus BLEU pools the counts: 9/10, 6/8, 4/6, 2/4; hypothesis 10 vs reference 12 words.
    hypotheses = ["the cat sat on the mat", "the dog ran under"]
    references = ["the cat sat on a mat", "the dog ran under the house"]
    expected = 100 * math.exp(1 - 12 / 10) * (9 / 10 * 6 / 8 * 4 / 6 * 2 / 4) ** 0.25
    scores = corpus_scores(hypotheses, references)
    assert scores["bleu"] == pytest.approx(expected, abs=1e-9)
    assert scores["brevity_penalty"] == pytest.approx(math.exp(-0.2))
    assert scores["bleu"] == pytest.approx(sacrebleu.corpus_bleu(hypotheses, [references]).score)
    assert scores["chrf"] == pytest.approx(sacrebleu.corpus_chrf(hypotheses, [references]).score)
    assert 0 < scores["chrf"] < 100
    assert corpus_scores(hypotheses[:1], references[:1])["bleu"] == pytest.approx(100 * (1 / 12) ** 0.25)


@pytest.mark.parametrize(("hypotheses", "references"), [(["a"], ["a", "b"]), (["a", "b"], ["a"]), ([], [])])
def test_corpus_scores_rejects_unpaired_or_empty_input(hypotheses, references):
    with pytest.raises(ValueError, match="hypotheses|empty"):
        corpus_scores(hypotheses, references)


# --- bleu_by_source_length -----------------------------------------------------------------


def words(count: int) -> str:
    return " ".join(f"w{i}" for i in range(count))


def test_buckets_by_whitespace_words_with_inclusive_bounds():
    sources = ["", words(10), words(11), "  spaced   out\twords  ", words(20), words(51), words(75)]
    references = [
        "ref one two three",
        "ref four five six",
        "ok seven eight nine",
        "alpha beta gamma delta",
        "good ten eleven twelve",
        "long thirteen fourteen fifteen",
        "longer sixteen seventeen eighteen",
    ]
    # Bucket 0-10 (0, 10 and 3 words) gets wrong hypotheses, 11-20 and 51+ exact ones.
    hypotheses = ["x y z", "x y z", references[2], "x y z", references[4], references[5], references[6]]
    table = bleu_by_source_length(sources, hypotheses, references)
    assert [row["bucket"] for row in table] == ["0-10", "11-20", "21-30", "31-40", "41-50", "51+"]
    assert [row["n"] for row in table] == [3, 2, 0, 0, 0, 2]
    assert table[0]["bleu"] == pytest.approx(0.0)
    assert table[1]["bleu"] == pytest.approx(100.0) and table[5]["bleu"] == pytest.approx(100.0)
    assert table[1]["chrf"] == pytest.approx(100.0)
    for empty in table[2:5]:
        assert empty["bleu"] is None and empty["chrf"] is None
    assert (table[5]["min_words"], table[5]["max_words"]) == (51, None)


def test_custom_buckets_leave_out_unbucketed_sentences_and_reject_bad_bounds(caplog):
    sources, hypotheses = [words(2), words(5), words(9)], ["a b", "c d", "e f"]
    table = bleu_by_source_length(sources, hypotheses, hypotheses, buckets=((1, 3), (8, None)))
    assert [(row["bucket"], row["n"]) for row in table] == [("1-3", 1), ("8+", 1)]
    assert "1 sentences fall in no length bucket" in caplog.text
    with pytest.raises(ValueError, match="min_words"):
        bleu_by_source_length(sources, hypotheses, hypotheses, buckets=((5, 2),))
    with pytest.raises(ValueError, match="same length"):
        bleu_by_source_length(sources, hypotheses[:2], hypotheses)


# --- translate and evaluate_model ----------------------------------------------------------


def generate_alone(model, tokenizer, source: str, **kwargs) -> torch.Tensor:
    """The reference behaviour: one unpadded sentence through model.generate, beams stopped as translate stops them."""
    encoded = tokenizer(source, return_tensors="pt")
    with torch.no_grad():
        return model.generate(**encoded, **beam_stopping(kwargs.get("num_beams", 1)), **kwargs)[0, 1:]


def translate_alone(model, tokenizer, source: str, **kwargs) -> str:
    return tokenizer.decode(generate_alone(model, tokenizer, source, **kwargs), skip_special_tokens=True).strip()


def test_translate_batches_by_length_and_restores_input_order(model, tokenizer):
    batched = translate(model, tokenizer, SOURCES, batch_size=3, num_beams=1)
    bounds = [default_max_new_tokens(len(tokenizer(source).input_ids)) for source in SOURCES]
    alone = [translate_alone(model, tokenizer, source, max_new_tokens=bound) for source, bound in zip(SOURCES, bounds)]
    assert batched == alone
    assert len(set(batched)) >= 5, f"outputs too uniform to show the order is restored: {batched}"


@pytest.mark.parametrize("kind", ["transformer", "rnn"])
def test_default_length_bound_is_each_sources_own(kind, tokenizer):
    untrained = train_copy_model(kind, tokenizer, steps=0)  # never emits EOS: every bound is reached
    bounds = [default_max_new_tokens(len(tokenizer(source).input_ids)) for source in SOURCES]
    alone = [generate_alone(untrained, tokenizer, s, max_new_tokens=bound) for s, bound in zip(SOURCES, bounds)]
    assert [len(ids) for ids in alone] == bounds
    batched = translate(untrained, tokenizer, SOURCES, batch_size=len(SOURCES), num_beams=1)
    assert batched == [tokenizer.decode(ids, skip_special_tokens=True).strip() for ids in alone]


def test_translate_beam_search_matches_one_sentence_at_a_time(model, tokenizer):
    settings = {"num_beams": 3, "max_new_tokens": 12, "length_penalty": 0.6}
    batched = translate(model, tokenizer, SOURCES, batch_size=4, **settings)
    assert batched == [translate_alone(model, tokenizer, source, **settings) for source in SOURCES]


@pytest.mark.parametrize(
    ("num_beams", "generate_kwargs", "expected"),
    [
        (4, {}, {"early_stopping": True}),
        (1, {}, {}),
        (4, {"early_stopping": False}, {"early_stopping": False}),
    ],
)
def test_translate_stops_beams_like_nmt_toolkits_unless_told_otherwise(
    model, tokenizer, monkeypatch, num_beams, generate_kwargs, expected
):
    calls = []
    real_generate = model.generate

    def recording_generate(**kwargs):
        calls.append({key: kwargs[key] for key in ("early_stopping",) if key in kwargs})
        return real_generate(**kwargs)

    monkeypatch.setattr(model, "generate", recording_generate)
    translate(model, tokenizer, SOURCES[:2], num_beams=num_beams, max_new_tokens=4, **generate_kwargs)
    assert calls == [expected]


def test_translate_restores_training_mode_and_handles_no_input(model, tokenizer):
    model.train()
    try:
        translate(model, tokenizer, SOURCES[:2], num_beams=1)
        assert model.training
    finally:
        model.eval()
    assert translate(model, tokenizer, [], num_beams=1) == []
    with pytest.raises(ValueError, match="batch_size"):
        translate(model, tokenizer, SOURCES, batch_size=0)


def test_evaluate_model_writes_hypotheses_and_metrics(model, tokenizer, tmp_path):
    references = [source.replace("cat", "dog") for source in SOURCES]
    split = Dataset.from_dict({"id": list(range(len(SOURCES))), "source": SOURCES, "target": references})
    output_dir = tmp_path / "eval" / "test"
    settings = {"num_beams": 2, "max_new_tokens": 12}
    metrics = evaluate_model(model, tokenizer, split, output_dir=output_dir, batch_size=3, max_examples=6, **settings)

    expected = [translate_alone(model, tokenizer, source, **settings) for source in SOURCES[:6]]
    assert (output_dir / "hypotheses.txt").read_text(encoding="utf-8").splitlines() == expected
    assert json.loads((output_dir / "metrics.json").read_text(encoding="utf-8")) == metrics
    assert sorted(path.name for path in output_dir.iterdir()) == ["hypotheses.txt", "metrics.json"]

    assert metrics["n"] == 6 and metrics["num_beams"] == 2
    assert metrics["bleu"] == pytest.approx(corpus_scores(expected, references[:6])["bleu"])
    assert metrics["chrf"] == pytest.approx(corpus_scores(expected, references[:6])["chrf"])
    assert "tok:13a" in metrics["bleu_signature"] and "nc:6" in metrics["chrf_signature"]
    assert sum(row["n"] for row in metrics["by_source_length"]) == 6
    assert metrics["max_new_tokens"] == 12
    generated = [generate_alone(model, tokenizer, source, **settings) for source in SOURCES[:6]]
    assert metrics["generated_tokens"] == sum(len(ids) for ids in generated)
    assert metrics["tokens_per_second"] > 0
    assert metrics["seconds"] >= metrics["generation_seconds"] > 0


def test_evaluate_model_names_missing_columns(model, tokenizer):
    with pytest.raises(ValueError, match="target"):
        evaluate_model(model, tokenizer, Dataset.from_dict({"source": SOURCES}))


# --- alignment -----------------------------------------------------------------------------


def check_shapes_and_rows(result, config) -> None:
    layers, target_len, source_len = result["attention"].shape
    assert (target_len, source_len) == (len(result["target_tokens"]), len(result["source_tokens"]))
    assert result["attention_per_head"].shape[0] == layers
    assert result["attention_per_head"].shape[2:] == (target_len, source_len)
    np.testing.assert_allclose(result["attention"].sum(-1), 1.0, atol=1e-5)
    np.testing.assert_allclose(result["attention_per_head"].sum(-1), 1.0, atol=1e-5)
    np.testing.assert_allclose(result["attention"], result["attention_per_head"].mean(axis=1), atol=1e-6)
    assert layers == getattr(config, "decoder_layers", 1)


@pytest.mark.parametrize("num_beams", [1, 3])
def test_generated_alignment_equals_teacher_forcing_its_own_output(model, tokenizer, num_beams):
    source = SOURCES[0]
    generated = alignment(model, tokenizer, source, num_beams=num_beams)
    check_shapes_and_rows(generated, model.config)
    assert generated["mode"] == "generated"
    assert generated["source_tokens"] == ["the", "cat", "sat", "on", "the", "mat", "</s>"]
    assert generated["target_text"] == translate(model, tokenizer, [source], num_beams=num_beams)[0]
    assert generated["target_tokens"][-1] == "</s>", "precondition: the copy model finishes this sentence"

    # The decoder is deterministic, so feeding the chosen output back must reproduce the attention
    # recorded during search; with beams this fails unless each step follows the winning beam.
    forced = alignment(model, tokenizer, source, target=generated["target_text"])
    assert forced["mode"] == "teacher_forced"
    assert forced["target_tokens"] == generated["target_tokens"]
    np.testing.assert_allclose(forced["attention_per_head"], generated["attention_per_head"], atol=1e-5)


def test_teacher_forced_alignment_uses_the_given_target(model, tokenizer):
    result = alignment(model, tokenizer, "a small cat", target="the big big house")
    check_shapes_and_rows(result, model.config)
    assert result["target_tokens"] == ["the", "big", "big", "house", "</s>"]
    assert result["source_tokens"] == ["a", "small", "cat", "</s>"]


@pytest.mark.parametrize("target", [None, "the cat"])
def test_alignment_works_for_other_library_models_and_asks_for_eager_attention(tokenizer, target):
    sizes = {"d_model": 16, "encoder_ffn_dim": 32, "decoder_ffn_dim": 32, "max_position_embeddings": 64}
    layers = {"encoder_layers": 1, "decoder_layers": 1, "encoder_attention_heads": 2, "decoder_attention_heads": 2}
    special = {"pad_token_id": 0, "eos_token_id": 2, "decoder_start_token_id": 1}
    config = MarianConfig(vocab_size=len(tokenizer), **sizes, **layers, **special)
    marian = MarianMTModel(config)
    marian.set_attn_implementation("sdpa")  # returns no attention weights
    with pytest.raises(ValueError, match="set_attn_implementation"):
        alignment(marian, tokenizer, SOURCES[0], target=target, max_new_tokens=5)
    marian.set_attn_implementation("eager")
    result = alignment(marian, tokenizer, SOURCES[0], target=target, max_new_tokens=5)
    check_shapes_and_rows(result, marian.config)


@pytest.mark.parametrize("name", ["translate", "alignment", "default_max_new_tokens"])
def test_names_moved_to_generation_still_import_from_evaluation_with_a_future_warning(name):
    """The deprecation policy (README): a moved public name keeps a warning shim for one minor version."""
    import hf_attn.generation

    namespace: dict = {}
    message = rf"`hf_attn.evaluation.{name}` moved to `hf_attn.generation.{name}`.*removed in hf_attn 0\.3\.0"
    with pytest.warns(FutureWarning, match=message):
        exec(f"from hf_attn.evaluation import {name} as old", namespace)
    assert namespace["old"] is getattr(hf_attn.generation, name)


def test_the_translate_shim_translates(model, tokenizer):
    with pytest.warns(FutureWarning):
        from hf_attn.evaluation import translate as old_translate
    sources = ["a b c", "d e"]
    assert old_translate(model, tokenizer, sources, num_beams=2) == translate(model, tokenizer, sources, num_beams=2)


def test_an_unknown_evaluation_name_is_still_an_import_error():
    with pytest.raises(ImportError, match="no_such_name"):
        exec("from hf_attn.evaluation import no_such_name", {})
