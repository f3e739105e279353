"""The Transformer's fast paths transformers users reach for: a static cache and ``torch.compile``.

Each declared capability flag is proved here: ``_can_compile_fullgraph`` by compiling the
decoding step with ``fullgraph=True`` (a graph break raises) and comparing its tokens with eager
decoding.
"""

from __future__ import annotations

import pytest
import torch
from seq2seq_checks import make_padded_batch
from tiny_seq2seq import seeded_model

from hf_attn import TransformerSeq2SeqConfig, TransformerSeq2SeqForConditionalGeneration

VOCAB = 40
GENERATE = {"max_new_tokens": 8, "min_new_tokens": 8, "do_sample": False}


def tiny_model(**overrides) -> TransformerSeq2SeqForConditionalGeneration:
    settings = {
        "vocab_size": VOCAB,
        "d_model": 32,
        "encoder_layers": 1,
        "decoder_layers": 2,
        "encoder_attention_heads": 2,
        "decoder_attention_heads": 2,
        "encoder_ffn_dim": 64,
        "decoder_ffn_dim": 64,
        "dropout": 0.0,
        "max_position_embeddings": 64,
        "init_std": 1.0,  # with untied output weights, large enough that the tokens depend on the input
        "tie_word_embeddings": False,
    }
    settings.update(overrides)
    return seeded_model(TransformerSeq2SeqConfig(**settings))


@pytest.fixture(autouse=True)
def one_thread():
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.mark.parametrize("implementation", ["sdpa", "eager"])
@pytest.mark.parametrize("num_beams", [1, 4])
def test_static_cache_generates_the_dynamic_cache_tokens(implementation, num_beams):
    model = tiny_model(attn_implementation=implementation)
    input_ids, attention_mask = make_padded_batch(VOCAB, batch_size=3, max_len=7)
    assert not bool(attention_mask.all()), "the batch must be padded for the mask path to be exercised"
    dynamic = model.generate(input_ids, attention_mask=attention_mask, num_beams=num_beams, **GENERATE)
    static = model.generate(
        input_ids, attention_mask=attention_mask, num_beams=num_beams, cache_implementation="static", **GENERATE
    )
    assert torch.equal(dynamic, static)
    assert len(set(map(tuple, dynamic.tolist()))) > 1, "the sentences should not all decode alike"


def test_model_declares_tested_backends_only():
    assert TransformerSeq2SeqForConditionalGeneration._can_compile_fullgraph
    assert TransformerSeq2SeqForConditionalGeneration._supports_flex_attn
    assert not TransformerSeq2SeqForConditionalGeneration._supports_flash_attn


@pytest.mark.slow
def test_flex_attention_matches_sdpa_outputs_and_generated_tokens():
    """Encoder self-attention and cross-attention over padded sources, causal decoder self-attention over a
    padded target: flex gives sdpa's logits and, greedy and beam 4, its tokens."""
    sdpa = tiny_model(attn_implementation="sdpa", decoder_layers=1)
    flex = tiny_model(attn_implementation="flex_attention", decoder_layers=1)
    assert flex.config._attn_implementation == "flex_attention"
    input_ids, attention_mask = make_padded_batch(VOCAB, batch_size=3, max_len=7)
    decoder_input_ids = torch.randint(3, VOCAB, (3, 5), generator=torch.Generator().manual_seed(1))
    decoder_attention_mask = torch.ones_like(decoder_input_ids)
    decoder_attention_mask[0, -2:] = 0
    inputs = {
        "input_ids": input_ids,
        "attention_mask": attention_mask,
        "decoder_input_ids": decoder_input_ids,
        "decoder_attention_mask": decoder_attention_mask,
    }
    torch._dynamo.reset()
    try:
        with torch.no_grad():
            torch.testing.assert_close(flex(**inputs).logits, sdpa(**inputs).logits, atol=1e-5, rtol=1e-5)
        for num_beams in (1, 4):
            options = {"attention_mask": attention_mask, "num_beams": num_beams, **GENERATE, "max_new_tokens": 5}
            options["min_new_tokens"] = 5
            assert torch.equal(flex.generate(input_ids, **options), sdpa.generate(input_ids, **options))
    finally:
        torch._dynamo.reset()


@pytest.mark.slow
def test_fullgraph_compiled_decoding_step_generates_the_eager_tokens():
    """``fullgraph=True`` raises on any graph break, so passing proves the decoding step compiles whole."""
    model = tiny_model()
    input_ids, attention_mask = make_padded_batch(VOCAB, batch_size=3, max_len=7)
    eager = model.generate(input_ids, attention_mask=attention_mask, **GENERATE)
    torch._dynamo.reset()
    model.forward = torch.compile(model.forward, fullgraph=True, dynamic=False)
    try:
        compiled = model.generate(input_ids, attention_mask=attention_mask, cache_implementation="static", **GENERATE)
    finally:
        torch._dynamo.reset()
    assert torch.equal(eager, compiled)
