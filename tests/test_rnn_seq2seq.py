"""The RNN encoder-decoder behaves like a transformers seq2seq model, for every attention and RNN type."""

from __future__ import annotations

import contextlib
import functools
import itertools
import time
from collections.abc import Iterator

import pytest
import torch
from seq2seq_checks import (
    assert_beam_search_independent_of_batch,
    assert_cached_generation_matches_uncached,
    assert_every_parameter_gets_gradient,
    assert_remote_code_roundtrip,
    assert_save_load_roundtrip,
    make_padded_batch,
    reverse_task_accuracy,
    train_and_score_reverse_task,
)
from tiny_seq2seq import seeded_model
from transformers import AutoConfig, AutoModel, AutoModelForSeq2SeqLM

from hf_attn import RNNSeq2SeqCache, RNNSeq2SeqConfig, RNNSeq2SeqForConditionalGeneration, RNNSeq2SeqModel
from hf_attn.models.attention import AdditiveAttention, DotAttention, GeneralAttention
from hf_attn.models.configuration_rnn_seq2seq import ATTENTION_TYPES, RNN_TYPES
from hf_attn.models.modeling_rnn_seq2seq import reverse_padded

VOCAB = 40

# Every attention type × RNN type. The bidirectional / input-feeding / depth flags rotate:
# attention type a takes entry a % 4 with a GRU and the opposite entry, 3 - a % 4, with an
# LSTM, so every attention type and both RNN types meet both values of each flag.
FLAG_ROTATION = [
    {"bidirectional_encoder": True, "input_feeding": True, "encoder_layers": 2, "decoder_layers": 1},
    {"bidirectional_encoder": True, "input_feeding": False, "encoder_layers": 1, "decoder_layers": 2},
    {"bidirectional_encoder": False, "input_feeding": True, "encoder_layers": 2, "decoder_layers": 2},
    {"bidirectional_encoder": False, "input_feeding": False, "encoder_layers": 1, "decoder_layers": 1},
]


def variant_name(attention: str, rnn: str, flags: dict) -> str:
    direction = "bi" if flags["bidirectional_encoder"] else "uni"
    return f"{attention}-{rnn}-{direction}-{'feed' if flags['input_feeding'] else 'nofeed'}"


VARIANTS = {
    variant_name(attention, rnn, flags): {"attention_type": attention, "rnn_type": rnn, **flags}
    for a, attention in enumerate(ATTENTION_TYPES)
    for rnn in RNN_TYPES
    for flags in [FLAG_ROTATION[a % 4 if rnn == "gru" else 3 - a % 4]]
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
    return seeded_model(tiny_config(**overrides))


@contextlib.contextmanager
def single_thread() -> Iterator[None]:
    """The toy models' matrices are tiny: on a shared 2-core machine a second OpenMP thread
    makes each step several times slower instead of faster."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


@pytest.fixture(autouse=True)
def one_thread(monkeypatch) -> Iterator[None]:
    """Every model here is tiny; one thread (also in the remote-code subprocess) is faster on a shared machine."""
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    with single_thread():
        yield


@pytest.fixture
def batch() -> tuple[torch.Tensor, torch.Tensor]:
    return make_padded_batch(VOCAB, batch_size=3, max_len=7)


def test_variants_cover_every_attention_and_rnn_type_and_flag():
    combos = {(v["attention_type"], v["rnn_type"]) for v in VARIANTS.values()}
    assert combos == set(itertools.product(ATTENTION_TYPES, RNN_TYPES))
    for flag in ("bidirectional_encoder", "input_feeding"):
        for key, values in [("attention_type", ATTENTION_TYPES), ("rnn_type", RNN_TYPES)]:
            for value in values:
                assert {v[flag] for v in VARIANTS.values() if v[key] == value} == {True, False}, (flag, value)
    assert {(v["rnn_type"], v["decoder_layers"]) for v in VARIANTS.values()} == set(
        itertools.product(RNN_TYPES, [1, 2])
    )


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


def test_auto_classes_resolve_to_hf_attn():
    config = AutoConfig.for_model("rnn_seq2seq", hidden_size=16, embedding_size=16)
    assert isinstance(config, RNNSeq2SeqConfig)
    assert type(AutoModel.from_config(config)) is RNNSeq2SeqModel
    assert type(AutoModelForSeq2SeqLM.from_config(config)) is RNNSeq2SeqForConditionalGeneration


@pytest.mark.parametrize("attention_type", [a for a in ATTENTION_TYPES if a != "none"])
def test_attention_weights_are_distributions_that_ignore_padding(attention_type, batch):
    input_ids, attention_mask = batch
    model = tiny_model(attention_type=attention_type, input_feeding=attention_type != "luong_dot")
    out = model(
        input_ids=input_ids, attention_mask=attention_mask, decoder_input_ids=input_ids[:, :5], output_attentions=True
    )
    (weights,) = out.cross_attentions
    assert weights.shape == (3, 1, 5, input_ids.shape[1])
    torch.testing.assert_close(weights.sum(-1), torch.ones(3, 1, 5))
    padding = (attention_mask == 0)[:, None, None, :].expand_as(weights)
    assert padding.any()
    assert torch.all(weights.masked_select(padding) == 0)


def test_no_attention_means_no_cross_attentions(batch):
    out = tiny_model(attention_type="none")(
        input_ids=batch[0], attention_mask=batch[1], decoder_input_ids=batch[0], output_attentions=True
    )
    assert out.cross_attentions is None


@pytest.mark.parametrize("num_beams", [1, 3])
def test_generate_returns_one_cross_attention_per_generated_token(num_beams, batch):
    out = tiny_model().generate(
        input_ids=batch[0],
        attention_mask=batch[1],
        max_new_tokens=6,
        min_new_tokens=6,
        num_beams=num_beams,
        output_attentions=True,
        return_dict_in_generate=True,
    )
    assert len(out.cross_attentions) == out.sequences.shape[1] - 1 == 6
    for step in out.cross_attentions:
        assert len(step) == 1 and step[0].shape == (3 * num_beams, 1, 1, batch[0].shape[1])


@pytest.mark.parametrize(
    "overrides",
    [
        {"rnn_type": "lstm", "bidirectional_encoder": True, "encoder_layers": 2},
        {"rnn_type": "gru", "bidirectional_encoder": True, "encoder_layers": 1},
        {"rnn_type": "gru", "bidirectional_encoder": False, "encoder_layers": 2},
    ],
)
def test_padding_never_changes_encoder_states(overrides, batch):
    input_ids, attention_mask = batch
    encoder = tiny_model(**overrides).get_encoder()
    batched = encoder(input_ids=input_ids, attention_mask=attention_mask)
    assert torch.all(batched.last_hidden_state[attention_mask == 0] == 0)
    for row in range(input_ids.shape[0]):
        length = int(attention_mask[row].sum())
        alone = encoder(input_ids=input_ids[row : row + 1, :length])
        torch.testing.assert_close(
            batched.last_hidden_state[row, :length], alone.last_hidden_state[0], atol=1e-6, rtol=1e-5
        )
        torch.testing.assert_close(batched.final_state[row], alone.final_state[0], atol=1e-6, rtol=1e-5)


def test_final_state_is_last_forward_and_first_backward_state(batch):
    input_ids, attention_mask = batch
    encoder = tiny_model(bidirectional_encoder=True).get_encoder()
    out = encoder(input_ids=input_ids, attention_mask=attention_mask)
    half = encoder.config.encoder_hidden_size
    lengths = attention_mask.sum(1)
    for row, length in enumerate(lengths.tolist()):
        torch.testing.assert_close(out.final_state[row, :half], out.last_hidden_state[row, length - 1, :half])
        torch.testing.assert_close(out.final_state[row, half:], out.last_hidden_state[row, 0, half:])


def test_reverse_padded_reverses_each_sentence_and_keeps_padding():
    sequences = torch.tensor([[1, 2, 3, 4], [5, 6, 0, 0]])
    reversed_ = reverse_padded(sequences, torch.tensor([4, 2]))
    assert reversed_.tolist() == [[4, 3, 2, 1], [6, 5, 0, 0]]
    assert torch.equal(reverse_padded(reversed_, torch.tensor([4, 2])), sequences)


@pytest.mark.parametrize("input_feeding", [False, True])
def test_decoding_token_by_token_with_the_cache_matches_the_whole_sequence(input_feeding, batch):
    input_ids, attention_mask = batch
    model = tiny_model(input_feeding=input_feeding, decoder_layers=2)
    whole = model(
        input_ids=input_ids, attention_mask=attention_mask, decoder_input_ids=input_ids, output_attentions=True
    )
    encoder_outputs = model.get_encoder()(input_ids=input_ids, attention_mask=attention_mask)
    cache, logits, weights = None, [], []
    for position in range(input_ids.shape[1]):
        step = model(
            encoder_outputs=encoder_outputs,
            attention_mask=attention_mask,
            decoder_input_ids=input_ids[:, position : position + 1],
            past_key_values=cache,
            use_cache=True,
            output_attentions=True,
        )
        cache = step.past_key_values
        logits.append(step.logits)
        weights.append(step.cross_attentions[0])
    assert isinstance(cache, RNNSeq2SeqCache) and cache.get_seq_length() == input_ids.shape[1]
    torch.testing.assert_close(torch.cat(logits, dim=1), whole.logits, atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(torch.cat(weights, dim=2), whole.cross_attentions[0], atol=1e-6, rtol=1e-5)


def test_cache_reorders_and_selects_along_the_batch():
    hidden = torch.arange(3.0).view(3, 1, 1).expand(3, 2, 4).clone()
    cache = RNNSeq2SeqCache(
        hidden, hidden.clone(), hidden[:, 0].clone(), torch.arange(3.0).view(3, 1, 1).expand(3, 5, 4)
    )
    cache.batch_repeat_interleave(2)
    assert cache.hidden[:, 0, 0].tolist() == [0, 0, 1, 1, 2, 2]
    cache.reorder_cache(torch.tensor([5, 0, 0, 3, 2, 1]))
    for tensor in (cache.hidden[:, 0, 0], cache.cell[:, 1, 2], cache.attentional[:, 0], cache.keys[:, 4, 0]):
        assert tensor.tolist() == [2, 0, 0, 1, 1, 0]
    cache.batch_select_indices(torch.tensor([0, 3]))
    assert cache.hidden[:, 0, 0].tolist() == [2, 1] and cache.batch_size == 2


def test_scorers_follow_their_equations():
    torch.manual_seed(0)
    query, states = torch.randn(2, 3, 4), torch.randn(2, 5, 6)
    general = GeneralAttention(4, 6)
    w_a = general.key_projection.weight
    torch.testing.assert_close(
        general.score(query, general.precompute_keys(states)), torch.einsum("bti,ij,bsj->bts", query, w_a, states)
    )
    same_size = torch.randn(2, 5, 4)
    torch.testing.assert_close(DotAttention().score(query, same_size), torch.einsum("bti,bsi->bts", query, same_size))
    additive = AdditiveAttention(4, 6, attention_size=7)
    w, u, v = additive.query_projection.weight, additive.key_projection.weight, additive.energy.weight[0]
    expected = torch.tanh((query @ w.T).unsqueeze(2) + (states @ u.T).unsqueeze(1)) @ v
    torch.testing.assert_close(additive.score(query, additive.precompute_keys(states)), expected)


@pytest.mark.parametrize("rnn_type", RNN_TYPES)
def test_decoder_step_follows_the_seed_order(rnn_type):
    """RNN step on [y_{t-1}; h̃_{t-1}] → score h_t against h̄_s → c_t → tanh(W_c [h_t; c_t]) → logits."""
    model = tiny_model(rnn_type=rnn_type, attention_type="luong_general", input_feeding=True, tie_word_embeddings=False)
    decoder = model.get_decoder()
    input_ids = torch.tensor([[5, 6, 7, 2, 0]])
    attention_mask = (input_ids != 0).long()
    decoder_input_ids = torch.tensor([[1, 8, 9]])
    logits = model(input_ids=input_ids, attention_mask=attention_mask, decoder_input_ids=decoder_input_ids).logits
    encoder = model.get_encoder()(input_ids=input_ids, attention_mask=attention_mask)
    states = encoder.last_hidden_state[0]
    hidden = torch.tanh(decoder.bridge(encoder.final_state))
    cell = torch.zeros_like(hidden)
    attentional = torch.zeros_like(hidden)
    step = torch.nn.LSTMCell(32, 16) if rnn_type == "lstm" else torch.nn.GRUCell(32, 16)
    for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
        setattr(step, name, getattr(decoder.rnn, f"{name}_l0"))
    for position, token in enumerate(decoder_input_ids[0].tolist()):
        rnn_input = torch.cat([decoder.embed_tokens.weight[token].unsqueeze(0), attentional], dim=-1)
        if rnn_type == "lstm":
            hidden, cell = step(rnn_input, (hidden, cell))
        else:
            hidden = step(rnn_input, hidden)
        scores = hidden[0] @ decoder.attention.key_projection.weight @ states.T
        scores[attention_mask[0] == 0] = float("-inf")
        context = scores.softmax(-1) @ states
        attentional = torch.tanh(decoder.attentional_layer(torch.cat([hidden[0], context]))).unsqueeze(0)
        torch.testing.assert_close(logits[0, position], model.lm_head(attentional[0]), atol=1e-6, rtol=1e-5)


def test_loss_is_label_smoothed_cross_entropy_on_shifted_labels(batch):
    input_ids, attention_mask = batch
    model = tiny_model(label_smoothing=0.1)
    labels = input_ids.masked_fill(attention_mask == 0, -100)
    out = model(input_ids=input_ids, attention_mask=attention_mask, labels=labels)
    shifted = model.prepare_decoder_input_ids_from_labels(labels)
    assert shifted[:, 0].eq(model.config.decoder_start_token_id).all()
    explicit = model(input_ids=input_ids, attention_mask=attention_mask, decoder_input_ids=shifted)
    torch.testing.assert_close(out.logits, explicit.logits)
    log_probs = out.logits.log_softmax(-1)
    keep = labels != -100
    nll = -log_probs.gather(-1, labels.clamp(min=0).unsqueeze(-1)).squeeze(-1)
    expected = (0.9 * nll - 0.1 * log_probs.mean(-1))[keep].mean()
    torch.testing.assert_close(out.loss, expected)
    summed = model(input_ids=input_ids, attention_mask=attention_mask, labels=labels, num_items_in_batch=100).loss
    torch.testing.assert_close(summed, expected * keep.sum() / 100)


@pytest.mark.parametrize(
    ("share", "tie"), [(True, True), (True, False), (False, True), (False, False)], ids=lambda flag: str(flag)
)
def test_embedding_sharing_and_tying_follow_the_config(share, tie, tmp_path):
    overrides = {"share_encoder_decoder_embeddings": share, "tie_word_embeddings": tie}
    if not share:
        overrides["decoder_vocab_size"] = VOCAB + 5
    model = tiny_model(**overrides)
    encoder, decoder = model.model.encoder.embed_tokens.weight, model.model.decoder.embed_tokens.weight
    assert (encoder is decoder) == share
    assert (model.lm_head.weight is decoder) == tie
    assert model.lm_head.weight.shape[0] == model.config.target_vocab_size
    model.save_pretrained(tmp_path)
    reloaded = AutoModelForSeq2SeqLM.from_pretrained(tmp_path)
    assert (reloaded.model.encoder.embed_tokens.weight is reloaded.model.decoder.embed_tokens.weight) == share
    assert (reloaded.lm_head.weight is reloaded.model.decoder.embed_tokens.weight) == tie


def test_left_padding_and_mismatched_masks_are_clear_errors(batch):
    input_ids, attention_mask = batch
    model = tiny_model()
    with pytest.raises(ValueError, match="right-padded"):
        model(input_ids=input_ids, attention_mask=attention_mask.flip(1), decoder_input_ids=input_ids)
    with pytest.raises(ValueError, match="attention_mask"):
        model(input_ids=input_ids, attention_mask=attention_mask[:, :-1], decoder_input_ids=input_ids)


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"rnn_type": "rnn"}, "rnn_type"),
        ({"attention_type": "multihead"}, "attention_type"),
        ({"decoder_init": "mean"}, "decoder_init"),
        ({"hidden_size": 0}, "hidden_size"),
        ({"embedding_size": -1}, "embedding_size"),
        ({"encoder_hidden_size": 0}, "encoder_hidden_size"),
        ({"encoder_layers": 0}, "encoder_layers"),
        ({"decoder_layers": 1.5}, "decoder_layers"),
        ({"vocab_size": 0}, "vocab_size"),
        ({"bidirectional_encoder": "yes"}, "bidirectional_encoder"),
        ({"input_feeding": 1}, "input_feeding"),
        ({"dropout": 1.0}, "dropout"),
        ({"embedding_dropout": -0.1}, "embedding_dropout"),
        ({"label_smoothing": 1.5}, "label_smoothing"),
        ({"init_std": 0}, "init_std"),
        ({"pad_token_id": VOCAB}, "pad_token_id"),
        ({"eos_token_id": -1}, "eos_token_id"),
        ({"decoder_start_token_id": None}, "decoder_start_token_id"),
        ({"decoder_vocab_size": VOCAB + 1}, "decoder_vocab_size"),
        ({"hidden_size": 15, "embedding_size": 15}, "hidden_size"),
        ({"attention_type": "luong_dot", "encoder_hidden_size": 16}, "attention_type='luong_dot'"),
        (
            {"attention_type": "luong_dot", "bidirectional_encoder": False, "encoder_hidden_size": 8},
            "attention_type='luong_dot'",
        ),
        ({"attention_type": "none", "decoder_init": "zero"}, "decoder_init"),
        ({"embedding_size": 8, "tie_word_embeddings": True}, "tie_word_embeddings"),
    ],
)
def test_config_validation_names_the_field(overrides, field):
    with pytest.raises(ValueError, match=f"`{field}"):
        tiny_config(**overrides)


def test_bidirectional_size_convention():
    assert tiny_config(bidirectional_encoder=True).encoder_output_size == 16
    assert tiny_config(bidirectional_encoder=True).encoder_hidden_size == 8
    assert tiny_config(bidirectional_encoder=False).encoder_hidden_size == 16
    joey_sized = tiny_config(bidirectional_encoder=True, encoder_hidden_size=16, attention_type="bahdanau")
    assert joey_sized.encoder_output_size == 32
    assert (
        tiny_model(encoder_hidden_size=16).get_encoder()(input_ids=torch.tensor([[5, 2]])).last_hidden_state.shape[-1]
        == 32
    )


def test_tie_default_follows_the_sizes():
    """Bahdanau et al.'s shapes (620-wide embeddings, 1000-wide states) build untied; equal sizes tie."""
    papers = AutoConfig.for_model("rnn_seq2seq", embedding_size=620, hidden_size=1000)
    assert papers.tie_word_embeddings is False
    assert AutoConfig.for_model("rnn_seq2seq", embedding_size=64, hidden_size=64).tie_word_embeddings is True
    assert AutoConfig.for_model("rnn_seq2seq", tie_word_embeddings=False).tie_word_embeddings is False
    model = AutoModelForSeq2SeqLM.from_config(
        AutoConfig.for_model("rnn_seq2seq", vocab_size=50, embedding_size=12, hidden_size=20)
    )
    assert model.lm_head.weight.data_ptr() != model.get_input_embeddings().weight.data_ptr()


def test_config_roundtrips_through_json(tmp_path):
    config = tiny_config(rnn_type="gru", attention_type="luong_concat", input_feeding=False, decoder_init="zero")
    config.save_pretrained(tmp_path)
    reloaded = AutoConfig.from_pretrained(tmp_path)
    assert reloaded.to_diff_dict() == config.to_diff_dict()


REVERSE_TASK = {"steps": 300, "min_len": 3, "max_len": 10, "num_symbols": 12, "learning_rate": 3e-3}
LONGER = {"min_len": 11, "max_len": 14, "num_symbols": 12}


@functools.cache
def trained_on_reverse_task(attention_type: str) -> tuple[RNNSeq2SeqForConditionalGeneration, float, float]:
    """(model, held-out exact match, seconds) after training on the reverse task; trained once per type."""
    torch.manual_seed(0)
    model = AutoModelForSeq2SeqLM.from_config(
        tiny_config(vocab_size=16, hidden_size=64, embedding_size=64, attention_type=attention_type, input_feeding=True)
    )
    start = time.perf_counter()
    accuracy = train_and_score_reverse_task(model, **REVERSE_TASK)
    return model, accuracy, time.perf_counter() - start


@pytest.mark.parametrize("attention_type", ["bahdanau", "luong_general"])
def test_learns_to_reverse_sequences(attention_type):
    _, accuracy, seconds = trained_on_reverse_task(attention_type)
    steps = REVERSE_TASK["steps"]
    print(f"rnn {attention_type} reverse task: accuracy={accuracy:.3f} steps={steps} seconds={seconds:.1f}")
    assert accuracy >= 0.99


def test_attention_generalises_to_longer_sequences_than_no_attention():
    """Trained on lengths 3-10, scored on 11-14: attention keeps finding the source word, a fixed state cannot."""
    plain, in_distribution, _ = trained_on_reverse_task("none")
    plain_longer = reverse_task_accuracy(plain, **LONGER)
    for attention_type in ("bahdanau", "luong_general"):
        model, _, _ = trained_on_reverse_task(attention_type)
        longer = reverse_task_accuracy(model, **LONGER)
        print(
            f"longer sequences (11-14): {attention_type}={longer:.3f} "
            f"none={plain_longer:.3f} (none in-distribution: {in_distribution:.3f})"
        )
        assert longer >= plain_longer + 0.15


@pytest.mark.parametrize("input_feeding", [False, True])
def test_loads_in_bfloat16_and_generates(input_feeding, batch, tmp_path):
    tiny_model(input_feeding=input_feeding).save_pretrained(tmp_path)
    model = AutoModelForSeq2SeqLM.from_pretrained(tmp_path, dtype=torch.bfloat16)
    assert model.dtype == torch.bfloat16
    generated = model.generate(
        input_ids=batch[0], attention_mask=batch[1], max_new_tokens=5, min_new_tokens=5, num_beams=2
    )
    assert generated.shape == (3, 6)


@pytest.mark.parametrize("attention_type", ["bahdanau", "luong_general"])
@pytest.mark.parametrize("num_beams", [1, 3])
def test_attention_keys_are_projected_once_per_sequence(attention_type, num_beams, batch):
    model = tiny_model(attention_type=attention_type)
    calls = []
    model.get_decoder().attention.key_projection.register_forward_hook(lambda *args: calls.append(1))
    model.generate(input_ids=batch[0], attention_mask=batch[1], max_new_tokens=6, min_new_tokens=6, num_beams=num_beams)
    assert len(calls) == 1
