"""The Transformer exported to CTranslate2: fp32 output token-identical to ``translate``, and the errors.

Exactness is checked on small models trained for some real steps on Bible verses (a random
model repeats one token, which would hide most mistakes), greedy and beam 4, on 200 test
verses for the paper's post-LN model with one shared vocabulary, and on fewer for pre-LN with
separate untied vocabularies, GELU, learned positions and no embedding scaling.
``translate`` stops beam search as CTranslate2 does (once ``num_beams`` hypotheses have ended);
transformers' default ``early_stopping=False`` searches on and can differ on a real model.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from tiny_seq2seq import (
    bible_corpus,
    one_torch_thread,  # noqa: F401 - applies the fixture to this module
    small_tokenizer,
)

from hf_attn.cli import main as cli_main
from hf_attn.deploy import export_model
from hf_attn.deploy.metadata import METADATA_NAME
from hf_attn.generation import translate_with_stats
from hf_attn.inference import load_model_and_tokenizer
from hf_attn.tokenization import train_bpe_tokenizer_pair
from hf_attn.training.config import TrainingConfig
from hf_attn.training.loop import train

ctranslate2 = pytest.importorskip("ctranslate2")

SMALL = {
    "d_model": 64,
    "encoder_layers": 2,
    "decoder_layers": 2,
    "encoder_attention_heads": 4,
    "decoder_attention_heads": 4,
    "encoder_ffn_dim": 128,
    "decoder_ffn_dim": 128,
    "max_position_embeddings": 256,
    "dropout": 0.0,
}
VARIANT = {
    **SMALL,
    "normalize_before": True,
    "activation_function": "gelu",
    "position_embedding_type": "learned",
    "scale_embedding": False,
    "tie_word_embeddings": False,
    "layer_norm_eps": 1e-6,
}


def train_small(output_dir: Path, model: dict, tokenizer_dir: Path, steps: int, **fields) -> Path:
    """A real training run of ``steps`` updates; returns its ``best/`` model folder."""
    config = TrainingConfig(
        model_type="transformer_seq2seq",
        model=model,
        output_dir=str(output_dir),
        tokenizer=str(tokenizer_dir),
        max_train_examples=2000,
        max_tokens=1500,
        max_steps=steps,
        warmup_steps=20,
        learning_rate=3e-3,
        eval_every=steps,
        eval_examples=8,
        save_every=steps,
        log_every=steps,
        **fields,
    )
    return Path(train(config).best_model_dir)


@pytest.fixture(scope="module")
def post_ln(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("post_ln")
    small_tokenizer().save_pretrained(root / "tokenizer")
    return train_small(root / "run", SMALL, root / "tokenizer", steps=500)


@pytest.fixture(scope="module")
def pre_ln_separate(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("pre_ln")
    pair = train_bpe_tokenizer_pair(bible_corpus()["train"].select(range(400)), 600, 500)
    pair.save_pretrained(root / "tokenizer")
    return train_small(root / "run", VARIANT, root / "tokenizer", steps=200, separate_vocabularies=True)


def differing(model_dir: Path, export_dir: Path, sources: list[str], num_beams: int) -> list[tuple[str, str]]:
    """(generate, CTranslate2) pairs of the verses whose translations differ."""
    from hf_attn.deploy.ctranslate2_translate import CTranslate2Model

    model, tokenizer = load_model_and_tokenizer(model_dir)
    reference = translate_with_stats(
        model,
        tokenizer,
        sources,
        batch_size=32,
        num_beams=num_beams,
        max_new_tokens=None,
        length_penalty=1.0,
        device=None,
        progress=False,
        generate_kwargs={},
    )
    exported = CTranslate2Model(export_dir, intra_threads=1).translate_with_stats(sources, num_beams=num_beams)
    # A trained model, not a degenerate one: most verses get a translation of their own.
    assert len(set(reference.hypotheses)) > len(sources) // 2
    return [(a, b) for a, b in zip(reference.hypotheses, exported.hypotheses) if a != b]


@pytest.mark.slow
@pytest.mark.parametrize("num_beams", [1, 4])
def test_float32_export_is_token_identical_on_200_verses(post_ln, tmp_path, num_beams):
    export_dir = export_model(post_ln, tmp_path / "ct2", "ctranslate2", "float32")
    sources = list(bible_corpus()["test"]["source"][:200])
    assert differing(post_ln, export_dir, sources, num_beams) == []


@pytest.mark.slow
@pytest.mark.parametrize("num_beams", [1, 4])
def test_pre_ln_separate_untied_variant_is_token_identical(pre_ln_separate, tmp_path, num_beams):
    export_dir = export_model(pre_ln_separate, tmp_path / "ct2", "ctranslate2", "float32")
    assert sorted(path.name for path in export_dir.glob("*_vocabulary.json")) == [
        "source_vocabulary.json",
        "target_vocabulary.json",
    ]
    sources = list(bible_corpus()["test"]["source"][:60])
    assert differing(pre_ln_separate, export_dir, sources, num_beams) == []


@pytest.mark.slow
def test_cli_export_translate_and_evaluate_with_int8(post_ln, tmp_path, capsys):
    export_dir = tmp_path / "int8"
    assert cli_main(["export", str(post_ln), str(export_dir), "--format", "ctranslate2"]) == 0
    metadata = json.loads((export_dir / METADATA_NAME).read_text())
    assert (metadata["format"], metadata["quantization"], metadata["model_type"]) == (
        "ctranslate2",
        "int8",
        "transformer_seq2seq",
    )
    assert {"model.bin", "config.json", "shared_vocabulary.json", "tokenizer.json", "README.md"} <= {
        path.name for path in export_dir.iterdir()
    }
    capsys.readouterr()
    assert cli_main(["translate", str(export_dir), "--engine", "ctranslate2", "In the beginning God created"]) == 0
    assert capsys.readouterr().out.strip()
    assert cli_main(["evaluate", str(export_dir), "--engine", "ctranslate2", "--max-examples", "20"]) == 0
    metrics = json.loads((export_dir / "eval-test" / "metrics.json").read_text())
    assert metrics["n"] == 20 and metrics["engine"] == "ctranslate2" and metrics["tokens_per_second"] > 0


def test_the_rnn_cannot_go_to_ctranslate2_and_says_what_can(tmp_path, capsys):
    from tiny_seq2seq import save_tiny_model

    save_tiny_model("rnn_seq2seq", tmp_path / "rnn")
    assert cli_main(["export", str(tmp_path / "rnn"), str(tmp_path / "out"), "--format", "ctranslate2"]) == 2
    error = capsys.readouterr().err
    assert "'rnn_seq2seq'" in error and "ctranslate2 for transformer_seq2seq" in error and "torch-int8" in error
    assert not (tmp_path / "out").exists()


def test_export_input_errors(tmp_path):
    from tiny_seq2seq import save_tiny_model

    with pytest.raises(FileNotFoundError, match="No model folder"):
        export_model(tmp_path / "missing", tmp_path / "out")
    save_tiny_model("transformer_seq2seq", tmp_path / "model")
    with pytest.raises(ValueError, match="Unknown quantization 'int4'.*int8, int8_float32, float32"):
        export_model(tmp_path / "model", tmp_path / "out", quantization="int4")
    with pytest.raises(ValueError, match="Unknown export format 'onnx'"):
        export_model(tmp_path / "model", tmp_path / "out", format="onnx")
    with pytest.raises(ValueError, match="must differ"):
        export_model(tmp_path / "model", tmp_path / "model")


def test_translating_a_folder_that_is_no_export_names_the_problem(tmp_path):
    from tiny_seq2seq import save_tiny_model

    from hf_attn.deploy.ctranslate2_translate import CTranslate2Model

    save_tiny_model("transformer_seq2seq", tmp_path / "model")
    with pytest.raises(FileNotFoundError, match="not a folder written by `hf-attn export --format ctranslate2`"):
        CTranslate2Model(tmp_path / "model")
    with pytest.raises(FileNotFoundError, match="No exported model folder"):
        CTranslate2Model(tmp_path / "missing")
