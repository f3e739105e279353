"""The RNN exported as int8 PyTorch: what it quantizes, and that it loads, generates and saves through our classes."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file
from tiny_seq2seq import (
    bible_corpus,
    one_torch_thread,  # noqa: F401 - applies the fixture to this module
    save_tiny_model,
    small_tokenizer,
)
from torch import nn
from torch.ao.nn.quantized.dynamic import Linear as DynamicQuantizedLinear
from transformers import AutoModelForSeq2SeqLM

from hf_attn.cli import main as cli_main
from hf_attn.deploy import export_model
from hf_attn.deploy.metadata import METADATA_NAME
from hf_attn.deploy.torch_int8 import WEIGHTS_NAME, load_quantized_rnn, quantize_rnn, save_quantized
from hf_attn.generation import translate
from hf_attn.inference import load_model_and_tokenizer
from hf_attn.models import RNNSeq2SeqForConditionalGeneration

SOURCES = list(bible_corpus()["test"]["source"][:12])


@pytest.mark.parametrize("input_feeding", [True, False])
def test_linear_layers_become_int8_and_the_recurrent_weights_stay(input_feeding, tmp_path):
    model = save_tiny_model("rnn_seq2seq", tmp_path, input_feeding=input_feeding)
    quantized = quantize_rnn(model)
    assert isinstance(quantized, RNNSeq2SeqForConditionalGeneration)
    linears = [name for name, module in model.named_modules() if isinstance(module, nn.Linear)]
    assert "lm_head" in linears
    assert all(isinstance(quantized.get_submodule(name), DynamicQuantizedLinear) for name in linears)
    # The decoder's input-feeding step reads self.rnn.weight_* directly: the LSTMs keep their fp32 weights.
    assert isinstance(quantized.model.decoder.rnn, nn.LSTM)
    assert quantized.model.decoder.rnn.weight_hh_l0.dtype == torch.float32
    assert isinstance(model.lm_head, nn.Linear)  # the original is left alone
    assert all(translate(quantized, small_tokenizer(), SOURCES, max_new_tokens=12))


def test_export_round_trip_generates_what_the_quantized_model_does(tmp_path, capsys):
    model = save_tiny_model("rnn_seq2seq", tmp_path / "model")
    export_dir = tmp_path / "int8"
    assert cli_main(["export", str(tmp_path / "model"), str(export_dir), "--format", "torch-int8"]) == 0
    metadata = json.loads((export_dir / METADATA_NAME).read_text())
    assert [metadata[key] for key in ("format", "quantization", "model_type")] == ["torch-int8", "int8", "rnn_seq2seq"]
    assert {WEIGHTS_NAME, "config.json", "generation_config.json", "tokenizer.json", "README.md"} <= {
        path.name for path in export_dir.iterdir()
    }
    loaded, tokenizer = load_model_and_tokenizer(export_dir)
    in_memory = quantize_rnn(model)
    expected = translate(in_memory, small_tokenizer(), SOURCES, max_new_tokens=12)
    assert translate(loaded, tokenizer, SOURCES, max_new_tokens=12) == expected

    save_quantized(loaded, tmp_path / "again")
    first, second = load_file(str(export_dir / WEIGHTS_NAME)), load_file(str(tmp_path / "again" / WEIGHTS_NAME))
    assert first.keys() == second.keys() and all(torch.equal(first[key], second[key]) for key in first)
    assert translate(load_quantized_rnn(tmp_path / "again"), tokenizer, SOURCES, max_new_tokens=12) == expected

    capsys.readouterr()
    assert cli_main(["translate", str(export_dir), "--num-beams", "2", SOURCES[0]]) == 0
    assert capsys.readouterr().out.strip() == translate(in_memory, tokenizer, SOURCES[:1], num_beams=2)[0]
    # The int8 file is not a transformers checkpoint: from_pretrained refuses it rather than loading random weights.
    with pytest.raises(OSError, match="model.safetensors"):
        AutoModelForSeq2SeqLM.from_pretrained(export_dir)


def test_the_transformer_is_not_a_torch_int8_model(tmp_path, capsys):
    save_tiny_model("transformer_seq2seq", tmp_path / "model")
    assert cli_main(["export", str(tmp_path / "model"), str(tmp_path / "out"), "--format", "torch-int8"]) == 2
    error = capsys.readouterr().err
    assert "'transformer_seq2seq'" in error and "torch-int8 for rnn_seq2seq" in error
    with pytest.raises(ValueError, match="quantizes rnn_seq2seq models"):
        quantize_rnn(AutoModelForSeq2SeqLM.from_pretrained(tmp_path / "model"))


def test_torch_refuses_a_ctranslate2_export_with_the_engine_to_use(tmp_path):
    pytest.importorskip("ctranslate2")
    save_tiny_model("transformer_seq2seq", tmp_path / "model")
    export_model(tmp_path / "model", tmp_path / "ct2", "ctranslate2", "float32")
    with pytest.raises(ValueError, match="use --engine ctranslate2"):
        load_model_and_tokenizer(tmp_path / "ct2")


def test_save_quantized_needs_a_quantized_model(tmp_path):
    with pytest.raises(ValueError, match="call quantize_rnn"):
        save_quantized(save_tiny_model("rnn_seq2seq", tmp_path / "model"), tmp_path / "out")
    with pytest.raises(FileNotFoundError, match=WEIGHTS_NAME):
        load_quantized_rnn(tmp_path / "model")
