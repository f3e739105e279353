"""What `generate()` and transformers' model tooling expect of both models, on every release we admit.

transformers' own generation tests (`tests/generation/test_utils.py`) are not in its sdist,
so these cover their checks for hf_attn: dict outputs with scores, attentions and hidden
states of the right shapes, a returned cache that behaves like the library's, assisted
decoding (guarded where a recurrent state cannot be rolled back), the 5.24 rename of
`past_key_values` to `cache`, loading a checkpoint that lacks the shared embedding, and
`torch.export`.
"""

from __future__ import annotations

import dataclasses

import pytest
import torch
from safetensors.torch import load_file, save_file
from seq2seq_checks import make_padded_batch
from tiny_seq2seq import MODEL_TYPES, TINY_CONFIGS, one_torch_thread, seeded_model  # noqa: F401 - fixture
from transformers import AutoConfig, AutoModelForSeq2SeqLM, PreTrainedModel
from transformers.cache_utils import EncoderDecoderCache
from transformers.modeling_outputs import Seq2SeqLMOutput

import hf_attn  # noqa: F401 - registers the models
from hf_attn.models.seq2seq_utils import CACHE_OUTPUT_FIELD, cache_of

VOCAB = 40
NEW_TOKENS = 5


def build(model_type: str, seed: int = 0, **overrides) -> PreTrainedModel:
    config = AutoConfig.for_model(model_type, vocab_size=VOCAB, **{**TINY_CONFIGS[model_type], **overrides})
    return seeded_model(config, seed)


@pytest.fixture
def batch() -> tuple[torch.Tensor, torch.Tensor]:
    return make_padded_batch(VOCAB, batch_size=3, max_len=7)


def generate_dict(model: PreTrainedModel, batch, **settings):
    input_ids, attention_mask = batch
    return model.generate(
        input_ids=input_ids,
        attention_mask=attention_mask,
        max_new_tokens=NEW_TOKENS,
        min_new_tokens=NEW_TOKENS,
        return_dict_in_generate=True,
        output_scores=True,
        output_attentions=True,
        output_hidden_states=True,
        **settings,
    )


@pytest.mark.parametrize("model_type", MODEL_TYPES)
@pytest.mark.parametrize("decoder_vocab_size", [None, 30])
def test_decoder_text_config_reports_the_target_vocabulary(model_type, decoder_vocab_size, batch):
    """generate's score checks and token-id validation read the decoder's `vocab_size` from the text config."""
    separate = {"decoder_vocab_size": decoder_vocab_size, "share_encoder_decoder_embeddings": False}
    model = build(model_type, **(separate if decoder_vocab_size else {}))
    target_vocab = decoder_vocab_size or VOCAB
    assert model.config.get_text_config(decoder=True).vocab_size == target_vocab
    scores = generate_dict(model, batch, num_beams=2).scores
    assert len(scores) == NEW_TOKENS
    assert all(step.shape == (3 * 2, target_vocab) for step in scores)


@pytest.mark.parametrize("model_type", MODEL_TYPES)
@pytest.mark.parametrize("num_beams", [1, 3])
def test_generate_dict_outputs_have_the_library_shapes(model_type, num_beams, batch):
    model = build(model_type)
    out = generate_dict(model, batch, num_beams=num_beams)
    rows, source_length = 3 * num_beams, batch[0].shape[1]
    assert out.sequences.shape == (3, 1 + NEW_TOKENS)
    assert len(out.cross_attentions) == len(out.decoder_hidden_states) == NEW_TOKENS
    for step in out.cross_attentions:
        assert all(layer.shape[0] == rows and layer.shape[-2:] == (1, source_length) for layer in step)
        assert all(torch.allclose(layer.sum(-1), torch.ones(())) for layer in step)
    width = model.config.d_model if model_type == "transformer_seq2seq" else model.config.hidden_size
    for step in out.decoder_hidden_states:
        assert all(state.shape == (rows, 1, width) for state in step)
    expected_decoder_states = model.config.decoder_layers + 1 if model_type == "transformer_seq2seq" else 3
    assert len(out.decoder_hidden_states[0]) == expected_decoder_states
    assert len(out.encoder_hidden_states) == model.config.encoder_layers + 1
    assert out.encoder_hidden_states[0].shape[:2] == batch[0].shape


@pytest.mark.parametrize("model_type", MODEL_TYPES)
def test_hidden_states_follow_the_argument_and_the_config(model_type, batch):
    """`output_hidden_states` works as an argument and from the config; the last decoder state is the output."""
    input_ids, attention_mask = batch
    model = build(model_type)
    decoder_input_ids = input_ids[:, :4]
    plain = model.model(input_ids=input_ids, attention_mask=attention_mask, decoder_input_ids=decoder_input_ids)
    assert plain.decoder_hidden_states is None and plain.encoder_hidden_states is None
    by_argument = model.model(
        input_ids=input_ids,
        attention_mask=attention_mask,
        decoder_input_ids=decoder_input_ids,
        output_hidden_states=True,
    )
    model.config.output_hidden_states = True
    by_config = model.model(input_ids=input_ids, attention_mask=attention_mask, decoder_input_ids=decoder_input_ids)
    for outputs in (by_argument, by_config):
        assert torch.equal(outputs.decoder_hidden_states[-1], outputs.last_hidden_state)
        assert outputs.decoder_hidden_states[0].shape[:2] == decoder_input_ids.shape
        assert len(outputs.encoder_hidden_states) == model.config.encoder_layers + 1


@pytest.mark.parametrize("model_type", MODEL_TYPES)
def test_beam_search_cache_reorders_like_the_library_cache(model_type, batch):
    """The cache `generate` hands back supports `reorder_cache`, even across sentences."""
    out = generate_dict(build(model_type), batch, num_beams=3)
    cache = cache_of(out)
    rows = 3 * 3  # sentences x beams
    cache.reorder_cache(torch.arange(rows).flip(0))
    cache.batch_select_indices(torch.tensor([0, 4]))
    if model_type == "transformer_seq2seq":
        assert isinstance(cache, EncoderDecoderCache)
        for layer in (*cache.self_attention_cache.layers, *cache.cross_attention_cache.layers):
            assert layer.keys.shape[0] == 2


def test_transformer_cache_reordered_across_sentences_decodes_like_a_fresh_one():
    """Rows moved to another sentence's position keep their own source (cross-attention follows the row)."""
    model = build("transformer_seq2seq")
    input_ids, attention_mask = make_padded_batch(VOCAB, batch_size=2, max_len=6)
    per_source = 3
    history = torch.randint(3, VOCAB, (2 * per_source, 3), generator=torch.Generator().manual_seed(3))
    encoder_outputs = model.get_encoder()(input_ids=input_ids, attention_mask=attention_mask)
    first = model(
        encoder_outputs=encoder_outputs, attention_mask=attention_mask, decoder_input_ids=history[:, :2], use_cache=True
    )
    cache = cache_of(first)
    order = torch.tensor([5, 0, 3, 1, 4, 2])
    cache.reorder_cache(order)
    sources = order // per_source
    step = model(
        encoder_outputs=(encoder_outputs.last_hidden_state[sources],),
        attention_mask=attention_mask[sources],
        decoder_input_ids=history[order, 2:],
        **{CACHE_OUTPUT_FIELD: cache},
    )
    fresh = model(
        input_ids=input_ids[sources], attention_mask=attention_mask[sources], decoder_input_ids=history[order]
    )
    torch.testing.assert_close(step.logits[:, -1], fresh.logits[:, -1])


@pytest.mark.parametrize("model_type", MODEL_TYPES)
def test_cache_comes_under_either_name(model_type, batch):
    """transformers ≥ 5.24 passes `cache`, older ones `past_key_values`: both decode alike; both at once is an error."""
    input_ids, attention_mask = batch
    model = build(model_type)
    assert CACHE_OUTPUT_FIELD in {field.name for field in dataclasses.fields(Seq2SeqLMOutput)}
    steps = {}
    for name in ("cache", "past_key_values"):
        first = model(
            input_ids=input_ids, attention_mask=attention_mask, decoder_input_ids=input_ids[:, :2], use_cache=True
        )
        steps[name] = model(
            input_ids=input_ids,
            attention_mask=attention_mask,
            decoder_input_ids=input_ids[:, 2:3],
            **{name: cache_of(first)},
        ).logits
    torch.testing.assert_close(steps["cache"], steps["past_key_values"], rtol=0, atol=0)
    whole = model(input_ids=input_ids, attention_mask=attention_mask, decoder_input_ids=input_ids[:, :3]).logits
    torch.testing.assert_close(steps["cache"][:, -1], whole[:, -1])
    first = model(
        input_ids=input_ids, attention_mask=attention_mask, decoder_input_ids=input_ids[:, :2], use_cache=True
    )
    with pytest.raises(ValueError, match="not both"):
        model(
            input_ids=input_ids,
            attention_mask=attention_mask,
            decoder_input_ids=input_ids[:, 2:3],
            cache=cache_of(first),
            past_key_values=cache_of(first),
        )


def test_transformer_assisted_decoding_matches_greedy():
    model = build("transformer_seq2seq")
    input_ids, attention_mask = make_padded_batch(VOCAB, batch_size=1, max_len=7)
    settings = {"input_ids": input_ids, "attention_mask": attention_mask, "max_new_tokens": 8, "do_sample": False}
    assisted = model.generate(**settings, assistant_model=build("transformer_seq2seq", seed=1))
    assert torch.equal(assisted, model.generate(**settings))


def test_rnn_refuses_assisted_decoding_naming_why():
    """A recurrent state cannot be rolled back to before rejected draft tokens (`_is_stateful`)."""
    model = build("rnn_seq2seq")
    input_ids, attention_mask = make_padded_batch(VOCAB, batch_size=1, max_len=7)
    with pytest.raises(ValueError, match="stateful models.*rolled back.*assistant_model"):
        model.generate(input_ids=input_ids, attention_mask=attention_mask, assistant_model=build("rnn_seq2seq", seed=1))
    with pytest.raises(ValueError, match="stateful models.*prompt_lookup_num_tokens"):
        model.generate(input_ids=input_ids, attention_mask=attention_mask, prompt_lookup_num_tokens=2)


@pytest.mark.parametrize("model_type", MODEL_TYPES)
def test_checkpoint_without_the_shared_embedding_reports_it_and_initialises_it(model_type, tmp_path, batch):
    """As for Marian: the missing key is reported, the weights are real (not meta) and tied, and generate runs."""
    build(model_type).save_pretrained(tmp_path)
    weights_file = tmp_path / "model.safetensors"
    state = load_file(weights_file)
    del state["model.shared.weight"]
    save_file(state, weights_file, metadata={"format": "pt"})
    model, info = AutoModelForSeq2SeqLM.from_pretrained(tmp_path, output_loading_info=True)
    assert "model.shared.weight" in info["missing_keys"]
    shared = model.get_input_embeddings().weight
    assert shared.device.type == "cpu" and bool(torch.isfinite(shared).all()) and float(shared.detach().std()) > 0
    assert model.get_output_embeddings().weight is shared
    assert model.generate(input_ids=batch[0], attention_mask=batch[1], max_new_tokens=3).shape[0] == 3


@pytest.mark.parametrize("model_type", MODEL_TYPES)
def test_torch_export_matches_eager(model_type, batch):
    """`torch.export` traces both models; the exported graph keeps masking per row (no value-specialised branch)."""
    input_ids, attention_mask = batch
    model = build(model_type)
    decoder_input_ids = input_ids[:, :4]
    inputs = {"input_ids": input_ids, "attention_mask": attention_mask, "decoder_input_ids": decoder_input_ids}
    exported = torch.export.export(model, args=(), kwargs={**inputs, "use_cache": False}, strict=False).module()
    torch.testing.assert_close(exported(**inputs, use_cache=False).logits, model(**inputs, use_cache=False).logits)
    other_ids, other_mask = make_padded_batch(VOCAB, batch_size=3, max_len=7, seed=5)
    other_mask[:, :5] = 1  # other padding pattern, same shapes
    other_ids = other_ids.masked_fill(other_mask.bool() & (other_ids == 0), 3)
    other = {"input_ids": other_ids, "attention_mask": other_mask, "decoder_input_ids": decoder_input_ids}
    torch.testing.assert_close(exported(**other, use_cache=False).logits, model(**other, use_cache=False).logits)
