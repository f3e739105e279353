"""The from-scratch Transformer behaves like a transformers seq2seq model and computes what the paper says."""

from __future__ import annotations

import math
import time

import pytest
import torch
from seq2seq_checks import (
    assert_beam_search_independent_of_batch,
    assert_cached_generation_matches_uncached,
    assert_every_parameter_gets_gradient,
    assert_remote_code_roundtrip,
    assert_save_load_roundtrip,
    make_padded_batch,
    train_and_score_reverse_task,
)
from tiny_seq2seq import seeded_model
from transformers import AutoConfig, AutoModel, AutoModelForSeq2SeqLM

from hf_attn import (
    TransformerSeq2SeqConfig,
    TransformerSeq2SeqForConditionalGeneration,
    TransformerSeq2SeqModel,
)
from hf_attn.models.modeling_transformer_seq2seq import sinusoidal_position_table

VOCAB = 40

VARIANTS = {
    "paper": {},
    "pre_ln_learned_positions": {"normalize_before": True, "position_embedding_type": "learned"},
    "separate_vocabularies_untied": {
        "share_encoder_decoder_embeddings": False,
        "tie_word_embeddings": False,
        "decoder_vocab_size": VOCAB + 7,
        "activation_function": "gelu",
    },
}


def tiny_config(**overrides) -> TransformerSeq2SeqConfig:
    settings = {
        "vocab_size": VOCAB,
        "d_model": 32,
        "encoder_layers": 2,
        "decoder_layers": 2,
        "encoder_attention_heads": 4,
        "decoder_attention_heads": 4,
        "encoder_ffn_dim": 64,
        "decoder_ffn_dim": 64,
        "dropout": 0.0,
        "max_position_embeddings": 64,
    }
    settings.update(overrides)
    return TransformerSeq2SeqConfig(**settings)


def tiny_model(**overrides) -> TransformerSeq2SeqForConditionalGeneration:
    return seeded_model(tiny_config(**overrides))


@pytest.fixture
def batch() -> tuple[torch.Tensor, torch.Tensor]:
    return make_padded_batch(VOCAB, batch_size=3, max_len=7)


@pytest.mark.parametrize("variant", VARIANTS)
def test_cached_generation_matches_uncached(variant, batch):
    assert_cached_generation_matches_uncached(tiny_model(**VARIANTS[variant]), *batch)


@pytest.mark.parametrize("variant", VARIANTS)
def test_beam_search_independent_of_batch_and_padding(variant, batch):
    assert_beam_search_independent_of_batch(tiny_model(**VARIANTS[variant]), *batch)


@pytest.mark.parametrize("variant", VARIANTS)
def test_save_load_roundtrip(variant, batch, tmp_path):
    assert_save_load_roundtrip(tiny_model(**VARIANTS[variant]), tmp_path, *batch)


def test_loads_in_bfloat16_and_generates(batch, tmp_path):
    tiny_model().save_pretrained(tmp_path)
    model = AutoModelForSeq2SeqLM.from_pretrained(tmp_path, dtype=torch.bfloat16)
    assert model.dtype == torch.bfloat16
    generated = model.generate(input_ids=batch[0], attention_mask=batch[1], max_new_tokens=5)
    assert generated.shape == (3, 6)


@pytest.mark.parametrize("variant", ["paper", "separate_vocabularies_untied"])
def test_remote_code_roundtrip_without_hf_attn(variant, batch, tmp_path):
    assert_remote_code_roundtrip(tiny_model(**VARIANTS[variant]), tmp_path, *batch)


def test_auto_classes_resolve_to_hf_attn():
    config = AutoConfig.for_model(
        "transformer_seq2seq", d_model=32, encoder_attention_heads=4, decoder_attention_heads=4
    )
    assert isinstance(config, TransformerSeq2SeqConfig)
    assert type(AutoModel.from_config(config)) is TransformerSeq2SeqModel
    assert type(AutoModelForSeq2SeqLM.from_config(config)) is TransformerSeq2SeqForConditionalGeneration


def test_eager_and_sdpa_give_the_same_logits(batch):
    model = tiny_model()
    labels = batch[0].masked_fill(batch[1] == 0, -100)
    model.set_attn_implementation("sdpa")
    sdpa = model(input_ids=batch[0], attention_mask=batch[1], labels=labels).logits
    model.set_attn_implementation("eager")
    eager = model(input_ids=batch[0], attention_mask=batch[1], labels=labels).logits
    torch.testing.assert_close(sdpa, eager, atol=1e-5, rtol=1e-5)


def test_attention_weights_are_distributions_that_ignore_padding(batch):
    input_ids, attention_mask = batch
    model = tiny_model()
    decoder_input_ids = input_ids[:, :5]
    out = model(
        input_ids=input_ids, attention_mask=attention_mask, decoder_input_ids=decoder_input_ids, output_attentions=True
    )
    padding = attention_mask == 0
    assert len(out.encoder_attentions) == len(out.cross_attentions) == len(out.decoder_attentions) == 2
    for weights in out.encoder_attentions + out.cross_attentions:
        torch.testing.assert_close(weights.sum(-1), torch.ones_like(weights.sum(-1)))
        assert torch.all(weights.masked_select(padding[:, None, None, :].expand_as(weights)) == 0)
    future = torch.ones(5, 5, dtype=torch.bool).triu(1)
    for weights in out.decoder_attentions:
        torch.testing.assert_close(weights.sum(-1), torch.ones_like(weights.sum(-1)))
        assert torch.all(weights[..., future] == 0)


def test_generate_returns_one_cross_attention_per_generated_token(batch):
    model = tiny_model()
    out = model.generate(
        input_ids=batch[0],
        attention_mask=batch[1],
        max_new_tokens=6,
        min_new_tokens=6,
        output_attentions=True,
        return_dict_in_generate=True,
    )
    assert len(out.cross_attentions) == out.sequences.shape[1] - 1 == 6
    assert out.cross_attentions[0][0].shape == (3, 4, 1, batch[0].shape[1])


def test_cross_attention_keys_and_values_are_projected_once_per_sequence(batch):
    model = tiny_model()
    calls = []
    for layer in model.model.decoder.layers:
        layer.encoder_attn.kv_proj.register_forward_hook(lambda *args: calls.append(1))
    model.generate(input_ids=batch[0], attention_mask=batch[1], max_new_tokens=6, min_new_tokens=6)
    assert len(calls) == model.config.decoder_layers


@pytest.mark.parametrize("implementation", ["sdpa", "eager"])
def test_decoder_rows_grouped_by_sentence_match_repeated_encoder_output(implementation, batch):
    input_ids, attention_mask = batch
    model = tiny_model()
    model.set_attn_implementation(implementation)
    encoder_outputs = model.get_encoder()(input_ids=input_ids, attention_mask=attention_mask)
    beams = 3
    decoder_input_ids = torch.randint(3, model.config.vocab_size, (input_ids.shape[0] * beams, 4))
    kwargs = {"decoder_input_ids": decoder_input_ids, "output_attentions": True}
    grouped = model(encoder_outputs=encoder_outputs, attention_mask=attention_mask, **kwargs)
    repeated = model(
        encoder_outputs=(encoder_outputs.last_hidden_state.repeat_interleave(beams, dim=0),),
        attention_mask=attention_mask.repeat_interleave(beams, dim=0),
        **kwargs,
    )
    torch.testing.assert_close(grouped.logits, repeated.logits, atol=1e-6, rtol=1e-5)
    for ours, reference in zip(grouped.cross_attentions, repeated.cross_attentions):
        torch.testing.assert_close(ours, reference, atol=1e-6, rtol=1e-5)
    with pytest.raises(ValueError, match="whole multiple of the encoder batch"):
        model(encoder_outputs=encoder_outputs, attention_mask=attention_mask, decoder_input_ids=decoder_input_ids[:4])


def test_beam_search_projects_each_sentence_once_not_once_per_beam(batch):
    input_ids, attention_mask = batch
    model = tiny_model()
    projected_rows = []
    model.model.decoder.layers[0].encoder_attn.kv_proj.register_forward_hook(
        lambda module, args, output: projected_rows.append(args[0].shape[0])
    )
    out = model.generate(
        input_ids=input_ids,
        attention_mask=attention_mask,
        max_new_tokens=4,
        min_new_tokens=4,
        num_beams=4,
        output_attentions=True,
        return_dict_in_generate=True,
    )
    assert projected_rows == [input_ids.shape[0]]
    assert out.cross_attentions[-1][0].shape == (input_ids.shape[0] * 4, 4, 1, input_ids.shape[1])


def test_every_parameter_gets_a_gradient(batch):
    assert_every_parameter_gets_gradient(tiny_model(**VARIANTS["separate_vocabularies_untied"]), *batch)
    assert_every_parameter_gets_gradient(tiny_model(position_embedding_type="learned"), *batch)


def test_activation_checkpointing_gives_the_same_gradients(batch):
    input_ids, attention_mask = batch
    labels = input_ids.masked_fill(attention_mask == 0, -100)

    def gradients(model):
        model.train()
        model(input_ids=input_ids, attention_mask=attention_mask, labels=labels).loss.backward()
        return {name: p.grad.clone() for name, p in model.named_parameters()}

    reference = gradients(tiny_model())
    checkpointed_model = tiny_model()
    checkpointed_model.activation_checkpointing_enable()
    assert all(layer.gradient_checkpointing for layer in checkpointed_model.model.encoder.layers)
    checkpointed = gradients(checkpointed_model)
    for name, grad in reference.items():
        torch.testing.assert_close(checkpointed[name], grad, atol=1e-6, rtol=1e-5)


def test_loss_is_label_smoothed_cross_entropy_ignoring_minus_100(batch):
    input_ids, attention_mask = batch
    model = tiny_model(label_smoothing=0.1)
    labels = input_ids.masked_fill(attention_mask == 0, -100)
    out = model(input_ids=input_ids, attention_mask=attention_mask, labels=labels)
    log_probs = out.logits.log_softmax(-1)
    keep = labels != -100
    nll = -log_probs.gather(-1, labels.clamp(min=0).unsqueeze(-1)).squeeze(-1)
    smooth = -log_probs.mean(-1)
    expected = (0.9 * nll + 0.1 * smooth)[keep].mean()
    torch.testing.assert_close(out.loss, expected)
    summed = model(input_ids=input_ids, attention_mask=attention_mask, labels=labels, num_items_in_batch=100).loss
    torch.testing.assert_close(summed, expected * keep.sum() / 100)


def test_labels_are_shifted_into_decoder_inputs(batch):
    input_ids, attention_mask = batch
    model = tiny_model()
    labels = input_ids.masked_fill(attention_mask == 0, -100)
    shifted = model.prepare_decoder_input_ids_from_labels(labels)
    assert shifted[:, 0].eq(model.config.decoder_start_token_id).all()
    assert torch.equal(shifted[:, 1:], input_ids[:, :-1])
    from_labels = model(input_ids=input_ids, attention_mask=attention_mask, labels=labels).logits
    explicit = model(input_ids=input_ids, attention_mask=attention_mask, decoder_input_ids=shifted).logits
    torch.testing.assert_close(from_labels, explicit)


def test_sinusoidal_positions_follow_the_paper():
    table = sinusoidal_position_table(50, 16)
    position, i = 7, 3
    assert table[position, 2 * i].item() == pytest.approx(math.sin(position / 10000 ** (2 * i / 16)), abs=1e-6)
    assert table[position, 2 * i + 1].item() == pytest.approx(math.cos(position / 10000 ** (2 * i / 16)), abs=1e-6)


def test_too_long_input_names_max_position_embeddings():
    model = tiny_model(max_position_embeddings=8)
    with pytest.raises(ValueError, match="max_position_embeddings"):
        model(input_ids=torch.full((1, 9), 5), decoder_input_ids=torch.full((1, 2), 5))


def test_mismatched_attention_mask_is_a_clear_error(batch):
    with pytest.raises(ValueError, match="attention_mask"):
        tiny_model()(input_ids=batch[0], attention_mask=batch[1][:, :-1], decoder_input_ids=batch[0])


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"d_model": 30}, "d_model"),
        ({"encoder_attention_heads": 0}, "encoder_attention_heads"),
        ({"decoder_attention_heads": 5}, "decoder_attention_heads"),
        ({"vocab_size": -3}, "vocab_size"),
        ({"encoder_ffn_dim": 0}, "encoder_ffn_dim"),
        ({"decoder_layers": 0}, "decoder_layers"),
        ({"encoder_layers": -1}, "encoder_layers"),
        ({"dropout": 1.0}, "dropout"),
        ({"attention_dropout": -0.1}, "attention_dropout"),
        ({"label_smoothing": 1.5}, "label_smoothing"),
        ({"activation_function": "swishy"}, "activation_function"),
        ({"position_embedding_type": "rotary"}, "position_embedding_type"),
        ({"normalize_before": "yes"}, "normalize_before"),
        ({"max_position_embeddings": 0}, "max_position_embeddings"),
        ({"decoder_vocab_size": 30}, "decoder_vocab_size"),
        ({"pad_token_id": 40}, "pad_token_id"),
        ({"eos_token_id": -1}, "eos_token_id"),
        ({"layer_norm_eps": 0}, "layer_norm_eps"),
    ],
)
def test_config_validation_names_the_field(overrides, field):
    with pytest.raises(ValueError, match=f"`{field}`"):
        tiny_config(**overrides)


def test_config_roundtrips_through_json(tmp_path):
    config = tiny_config(**VARIANTS["separate_vocabularies_untied"])
    config.save_pretrained(tmp_path)
    reloaded = AutoConfig.from_pretrained(tmp_path)
    assert reloaded.to_diff_dict() == config.to_diff_dict()


def test_learns_to_reverse_sequences():
    torch.manual_seed(0)
    model = AutoModelForSeq2SeqLM.from_config(
        tiny_config(
            vocab_size=16,
            d_model=64,
            encoder_ffn_dim=128,
            decoder_ffn_dim=128,
            label_smoothing=0.0,
            max_position_embeddings=32,
        )
    )
    start = time.perf_counter()
    accuracy = train_and_score_reverse_task(model, steps=300, num_symbols=12, learning_rate=3e-3)
    seconds = time.perf_counter() - start
    print(f"transformer reverse task: accuracy={accuracy:.3f} steps=300 seconds={seconds:.1f}")
    assert accuracy >= 0.99
