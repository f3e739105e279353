"""The RNN encoder-decoder behaves like a transformers seq2seq model, for every attention and RNN type."""

from __future__ import annotations

import itertools

import pytest
import torch
from seq2seq_checks import (
    assert_beam_search_independent_of_batch,
    assert_cached_generation_matches_uncached,
    assert_every_parameter_gets_gradient,
    assert_remote_code_roundtrip,
    assert_save_load_roundtrip,
    make_padded_batch,
)
from transformers import AutoConfig, AutoModel, AutoModelForSeq2SeqLM

from hf_attn import RNNSeq2SeqCache, RNNSeq2SeqConfig, RNNSeq2SeqForConditionalGeneration, RNNSeq2SeqModel
from hf_attn.configuration_rnn_seq2seq import ATTENTION_TYPES, RNN_TYPES

VOCAB = 40

# Every attention type × RNN type; the bidirectional / input-feeding / depth flags rotate
# across them so each flag value meets every attention type and both RNN types.
FLAG_ROTATION = [
    {"bidirectional_encoder": True, "input_feeding": True, "encoder_layers": 2, "decoder_layers": 1},
    {"bidirectional_encoder": False, "input_feeding": False, "encoder_layers": 1, "decoder_layers": 2},
    {"bidirectional_encoder": True, "input_feeding": False, "encoder_layers": 1, "decoder_layers": 1},
    {"bidirectional_encoder": False, "input_feeding": True, "encoder_layers": 2, "decoder_layers": 2},
]
VARIANTS = {
    f"{attention}-{rnn}-{'bi' if flags['bidirectional_encoder'] else 'uni'}-{'feed' if flags['input_feeding'] else 'nofeed'}": {
        "attention_type": attention,
        "rnn_type": rnn,
        **flags,
    }
    for (attention, rnn), flags in zip(
        itertools.product(ATTENTION_TYPES, RNN_TYPES), itertools.cycle(FLAG_ROTATION)
    )
}


def tiny_config(**overrides) -> RNNSeq2SeqConfig:
    settings = {
        "vocab_size": VOCAB,
        "hidden_size": 16,
        "embedding_size": 16,
        "dropout": 0.0,
        "embedding_dropout": 0.0,
    }
    settings.update(overrides)
    return RNNSeq2SeqConfig(**settings)


def tiny_model(**overrides) -> RNNSeq2SeqForConditionalGeneration:
    torch.manual_seed(0)
    return AutoModelForSeq2SeqLM.from_config(tiny_config(**overrides)).eval()


@pytest.fixture
def batch() -> tuple[torch.Tensor, torch.Tensor]:
    return make_padded_batch(VOCAB, batch_size=3, max_len=7)


def test_variants_cover_every_attention_and_rnn_type_and_flag():
    combos = {(v["attention_type"], v["rnn_type"]) for v in VARIANTS.values()}
    assert combos == set(itertools.product(ATTENTION_TYPES, RNN_TYPES))
    for flag in ("bidirectional_encoder", "input_feeding"):
        for attention in ATTENTION_TYPES:
            assert {v[flag] for v in VARIANTS.values() if v["attention_type"] == attention} == {True, False}


@pytest.mark.parametrize("variant", VARIANTS)
def test_cached_generation_matches_uncached(variant, batch):
    assert_cached_generation_matches_uncached(tiny_model(**VARIANTS[variant]), *batch)


@pytest.mark.parametrize("variant", VARIANTS)
def test_beam_search_independent_of_batch_and_padding(variant, batch):
    assert_beam_search_independent_of_batch(tiny_model(**VARIANTS[variant]), *batch)


@pytest.mark.parametrize("variant", VARIANTS)
def test_save_load_roundtrip(variant, batch, tmp_path):
    assert_save_load_roundtrip(tiny_model(**VARIANTS[variant]), tmp_path, *batch)


@pytest.mark.parametrize("variant", VARIANTS)
def test_remote_code_roundtrip(variant, batch, tmp_path):
    assert_remote_code_roundtrip(tiny_model(**VARIANTS[variant]), tmp_path, *batch)


@pytest.mark.parametrize("variant", VARIANTS)
def test_every_parameter_gets_gradient(variant, batch):
    assert_every_parameter_gets_gradient(tiny_model(**VARIANTS[variant]), *batch)
