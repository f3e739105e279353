"""RNN encoder-decoder with attention as a ``transformers`` model.

The decoder follows the seed's step order for every attention type: at step t it
(1) runs its RNN on the previous token's embedding (and, with input feeding, the previous
attentional vector h̃_{t-1}, Luong et al. 2015 §3.3) to get h_t, (2) scores every encoder
state h̄_s against h_t, (3) forms the context c_t, (4) concatenates [h_t; c_t], (5) passes it
through a feed-forward layer, h̃_t = tanh(W_c [h_t; c_t]) (Luong 2015 eq. 5), and (6) projects
h̃_t onto the vocabulary. Bahdanau et al. (2014) score with the previous state s_{t-1}; here
their additive score function (eq. 6) is applied to h_t, as in the seed. With
``attention_type="none"`` steps (2)-(3) are skipped and h̃_t = tanh(W_c h_t): the plain
encoder-decoder, which sees the source only through its initial state.

Without input feeding the decoder RNN does not depend on the attention, so training and
uncached decoding run it over the whole target in one fused ``nn.LSTM``/``nn.GRU`` call and
attend for all positions in one batched call. With input feeding it steps through time.

This file imports only torch, transformers and sibling files, so it travels with
``save_pretrained`` for ``trust_remote_code`` loading.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from transformers import GenerationMixin
from transformers import initialization as init
from transformers.cache_utils import Cache
from transformers.modeling_outputs import (
    BaseModelOutput,
    BaseModelOutputWithPastAndCrossAttentions,
    Seq2SeqLMOutput,
    Seq2SeqModelOutput,
)
from transformers.utils import can_return_tuple, is_tracing

from .attention import RNNAttention, build_rnn_attention
from .configuration_rnn_seq2seq import RNNSeq2SeqConfig
from .seq2seq_utils import (
    SHARED_EMBEDDING_TIES,
    HfAttnPreTrainedModel,
    build_token_embeddings,
    cache_of,
    cache_output,
    embed_checked,
    lm_head_ties,
    resolve_cache_argument,
    seq2seq_lm_loss,
    seq2seq_lm_output,
    shift_tokens_right,
)

# generate() options that draft tokens and verify them (assisted decoding, prompt lookup, early exit).
DRAFTING_GENERATE_OPTIONS = ("assistant_model", "prompt_lookup_num_tokens", "assistant_early_exit")

RecurrentState = torch.Tensor | tuple[torch.Tensor, torch.Tensor]


@dataclass
class RNNEncoderOutput(BaseModelOutput):
    """Encoder output plus ``final_state`` (batch, encoder_output_size): the top layer's last state
    in each direction, concatenated, which the bridge turns into the decoder's initial state."""

    final_state: torch.FloatTensor | None = None


class RNNSeq2SeqCache(Cache):
    """Decoder state carried through ``generate()``; every tensor is batch-first so beams reorder along dim 0.

    Holds the recurrent state per layer (``hidden`` and, for LSTMs, ``cell``: (batch, layers,
    hidden_size)), the last attentional vector for input feeding (``attentional``: (batch,
    hidden_size)), the attention keys precomputed from the encoder states (``keys``), and the
    number of target tokens consumed so far.
    """

    def __init__(
        self,
        hidden: torch.Tensor,
        cell: torch.Tensor | None = None,
        attentional: torch.Tensor | None = None,
        keys: torch.Tensor | None = None,
        seen_tokens: int = 0,
    ):
        super().__init__(layers=[])
        self.hidden = hidden
        self.cell = cell
        self.attentional = attentional
        self.keys = keys
        self.seen_tokens = seen_tokens

    _TENSOR_FIELDS = ("hidden", "cell", "attentional", "keys")

    def _map(self, function, skip: tuple[str, ...] = ()) -> None:
        for name in self._TENSOR_FIELDS:
            value = None if name in skip else getattr(self, name)
            if value is not None:
                setattr(self, name, function(value))

    def reorder_cache(self, beam_idx: torch.LongTensor) -> None:
        """Keep the states of the rows ``beam_idx`` selects (any permutation, across sentences too)."""
        self._map(lambda tensor: tensor.index_select(0, beam_idx.to(tensor.device)))

    def reorder_decoder_state(self, beam_idx: torch.LongTensor) -> None:
        """Beam search's reorder: everything but the attention keys, which beams of one sentence share."""
        self._map(lambda tensor: tensor.index_select(0, beam_idx.to(tensor.device)), skip=("keys",))

    def batch_repeat_interleave(self, repeats: int) -> None:
        self._map(lambda tensor: tensor.repeat_interleave(repeats, dim=0))

    def batch_select_indices(self, indices: torch.Tensor) -> None:
        self._map(lambda tensor: tensor[indices])

    def get_seq_length(self, layer_idx: int = 0) -> int:
        return self.seen_tokens

    def get_max_length(self, layer_idx: int | None = None) -> int:
        return -1

    def crop(self, tokens_to_remove: int) -> None:
        """A recurrent state keeps no history, so only ``crop(0)`` (a no-op) is possible."""
        if tokens_to_remove != 0:
            raise NotImplementedError(
                "RNNSeq2SeqCache holds only the latest recurrent state and cannot be rolled back."
            )

    def reset(self) -> None:
        raise NotImplementedError("RNNSeq2SeqCache is built by the model's first forward; start with no cache instead.")

    @property
    def batch_size(self) -> int:
        return self.hidden.shape[0]

    @property
    def is_compileable(self) -> bool:
        return False

    @property
    def is_croppable(self) -> bool:
        return False

    @property
    def is_initialized(self) -> bool:
        return True

    def recurrent_state(self) -> RecurrentState:
        """The state in ``nn.LSTM``/``nn.GRU`` layout: (layers, batch, hidden_size)."""
        hidden = self.hidden.transpose(0, 1).contiguous()
        if self.cell is None:
            return hidden
        return hidden, self.cell.transpose(0, 1).contiguous()

    def update(
        self, hidden: torch.Tensor, cell: torch.Tensor | None, attentional: torch.Tensor | None, new_tokens: int
    ) -> None:
        """Store the state (batch-first: (batch, layers, hidden_size)) after ``new_tokens`` more target tokens."""
        self.hidden = hidden
        self.cell = cell
        self.attentional = attentional
        self.seen_tokens += new_tokens

    def __repr__(self) -> str:
        return f"{type(self).__name__}(batch_size={self.batch_size}, seen_tokens={self.seen_tokens})"


def _rnn_class(rnn_type: str) -> type[nn.RNNBase]:
    return nn.LSTM if rnn_type == "lstm" else nn.GRU


def _source_lengths(attention_mask: torch.Tensor) -> torch.Tensor:
    """Lengths of right-padded sequences; other padding would be silently wrong, so it raises.

    The checks read the mask's values, which ``torch.export``/``torch.compile`` cannot trace,
    so a traced graph skips them (the eager model checks every call).
    """
    lengths = attention_mask.sum(dim=1)
    if is_tracing(attention_mask):
        return lengths
    positions = torch.arange(attention_mask.shape[1], device=attention_mask.device)
    if not torch.equal(attention_mask.bool(), positions.unsqueeze(0) < lengths.unsqueeze(1)):
        raise ValueError("RNNSeq2Seq expects right-padded inputs: `attention_mask` must be 1s followed by 0s.")
    if bool((lengths == 0).any()):
        raise ValueError("Every source sequence needs at least one unmasked token.")
    return lengths


def reverse_padded(sequences: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """Reverse the first ``lengths[b]`` positions of each row of (batch, length, ...); padding stays in place.

    Its own inverse. Running a forward RNN over the reversed rows is the backward direction
    of a bidirectional RNN that starts at each sentence's last real token, not at the padding.
    """
    positions = torch.arange(sequences.shape[1], device=sequences.device).unsqueeze(0)
    reversed_positions = lengths.unsqueeze(1) - 1 - positions
    index = torch.where(reversed_positions >= 0, reversed_positions, positions)
    index = index.view(*index.shape, *([1] * (sequences.dim() - 2))).expand_as(sequences)
    return sequences.gather(1, index)


class RNNSeq2SeqEncoderLayer(nn.Module):
    """One encoder layer: a forward RNN and, if bidirectional, a backward RNN over the reversed sentences.

    Each direction is one whole-sequence ``nn.LSTM``/``nn.GRU`` call on the padded batch (the
    fused CPU/cuDNN kernels). The forward direction never sees the right padding before a
    sentence's last token, and the backward one starts at that token (``reverse_padded``), so
    padding does not change any state at a real position: what packed sequences guarantee,
    without their slower, memory-layout-dependent CPU kernel.
    """

    def __init__(self, input_size: int, hidden_size: int, rnn_type: str, bidirectional: bool):
        super().__init__()
        rnn_class = _rnn_class(rnn_type)
        self.forward_rnn = rnn_class(input_size, hidden_size, batch_first=True)
        self.backward_rnn = rnn_class(input_size, hidden_size, batch_first=True) if bidirectional else None

    def forward(self, inputs: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        outputs, _ = self.forward_rnn(inputs)
        if self.backward_rnn is None:
            return outputs
        backward, _ = self.backward_rnn(reverse_padded(inputs, lengths))
        return torch.cat([outputs, reverse_padded(backward, lengths)], dim=-1)


class RNNSeq2SeqPreTrainedModel(HfAttnPreTrainedModel):
    """Shared loading, saving and weight initialisation of the RNN seq2seq models."""

    config: RNNSeq2SeqConfig
    config_class = RNNSeq2SeqConfig
    base_model_prefix = "model"
    main_input_name = "input_ids"
    supports_gradient_checkpointing = False
    # The decoder state is recurrent: it cannot be rolled back to an earlier step, so generation
    # modes that draft and discard tokens (assisted decoding) are refused (transformers reads this up
    # to 5.24; RNNSeq2SeqForConditionalGeneration.generate refuses them itself on every release).
    _is_stateful = True
    _remote_code_auto_classes = {
        "AutoModel": "RNNSeq2SeqModel",
        "AutoModelForSeq2SeqLM": "RNNSeq2SeqForConditionalGeneration",
    }

    @torch.no_grad()
    def _init_weights(self, module: nn.Module) -> None:
        """Glorot for projections, orthogonal recurrent matrices, normal embeddings.

        The LSTM forget gate starts with bias 1 (0.5 in each of b_ih and b_hh), so early in
        training the cell keeps its memory instead of halving it at every step.
        """
        if isinstance(module, nn.Linear):
            init.xavier_uniform_(module.weight)
            if module.bias is not None:
                init.zeros_(module.bias)
        elif isinstance(module, nn.RNNBase):
            for name, param in module.named_parameters():
                if name.startswith("weight_hh"):
                    init.orthogonal_(param)
                elif name.startswith("weight_ih"):
                    init.xavier_uniform_(param)
                elif name.startswith("bias"):
                    is_initialized = getattr(param, "_is_hf_initialized", False)
                    init.zeros_(param)
                    if isinstance(module, nn.LSTM) and not is_initialized:
                        param[module.hidden_size : 2 * module.hidden_size] = 0.5
        elif isinstance(module, nn.Embedding):
            std = self.config.init_std or self.config.embedding_size**-0.5
            init.normal_(module.weight, mean=0.0, std=std)
            if module.padding_idx is not None and not getattr(module.weight, "_is_hf_initialized", False):
                init.zeros_(module.weight[module.padding_idx])


class RNNSeq2SeqEncoder(nn.Module):
    """Embeds the source and runs a stack of (bi)directional RNN layers over it.

    Returns the top layer's states h̄_s (zero at padding) and ``final_state``, the top layer's
    state after the last real token in each direction: the forward state at position
    length-1 and the backward state at position 0.
    """

    main_input_name = "input_ids"

    def __init__(self, config: RNNSeq2SeqConfig, embed_tokens: nn.Embedding):
        super().__init__()
        self.config = config
        self.embed_tokens = embed_tokens
        self.embedding_dropout = nn.Dropout(config.embedding_dropout)
        input_sizes = [config.embedding_size] + [config.encoder_output_size] * (config.encoder_layers - 1)
        self.layers = nn.ModuleList(
            RNNSeq2SeqEncoderLayer(size, config.encoder_hidden_size, config.rnn_type, config.bidirectional_encoder)
            for size in input_sizes
        )
        self.dropout = nn.Dropout(config.dropout)

    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
        **kwargs,
    ) -> RNNEncoderOutput | tuple:
        """Encoder states (batch, source_length, encoder_output_size) and the final state (batch, encoder_output_size).

        ``output_attentions`` is accepted because ``generate()`` passes it; the encoder has no attention.
        """
        if (input_ids is None) == (inputs_embeds is None):
            raise ValueError("Pass exactly one of `input_ids` and `inputs_embeds` to the encoder.")
        output_hidden_states = (
            self.config.output_hidden_states if output_hidden_states is None else output_hidden_states
        )
        if inputs_embeds is None:
            inputs_embeds = embed_checked(self.embed_tokens, input_ids, "input_ids")  # (batch, src_len, embedding_size)
        batch_size, source_length = inputs_embeds.shape[:2]
        if attention_mask is not None and attention_mask.shape != (batch_size, source_length):
            raise ValueError(
                f"`attention_mask` has shape {tuple(attention_mask.shape)} but the inputs are "
                f"(batch, source_length) = {(batch_size, source_length)}."
            )
        if attention_mask is None:
            lengths = torch.full((batch_size,), source_length, dtype=torch.long, device=inputs_embeds.device)
        else:
            lengths = _source_lengths(attention_mask)  # (batch,)
        states = self.embedding_dropout(inputs_embeds)
        all_states = (inputs_embeds,) if output_hidden_states else None
        for index, layer in enumerate(self.layers):
            # (batch, src_len, directions * encoder_hidden_size)
            states = layer(self.dropout(states) if index > 0 else states, lengths)
            if attention_mask is not None:
                states = states * attention_mask.unsqueeze(-1).to(states.dtype)
            if output_hidden_states:
                all_states += (states,)
        # (batch, encoder_hidden_size): the forward direction after the last real token
        last_forward = states[
            torch.arange(batch_size, device=states.device), lengths - 1, : self.config.encoder_hidden_size
        ]
        final_state = last_forward  # (batch, encoder_output_size), once the backward state at position 0 joins
        if self.config.bidirectional_encoder:
            final_state = torch.cat([last_forward, states[:, 0, self.config.encoder_hidden_size :]], dim=-1)
        output = RNNEncoderOutput(
            last_hidden_state=self.dropout(states), final_state=final_state, hidden_states=all_states
        )
        return output if return_dict is not False else output.to_tuple()


class RNNSeq2SeqDecoder(nn.Module):
    """The seed's attention decoder: RNN step → attention → [h_t; c_t] → tanh layer → h̃_t."""

    def __init__(self, config: RNNSeq2SeqConfig, embed_tokens: nn.Embedding):
        super().__init__()
        self.config = config
        hidden_size = config.hidden_size
        self.embed_tokens = embed_tokens
        self.embedding_dropout = nn.Dropout(config.embedding_dropout)
        self.bridge = (
            nn.Linear(config.encoder_output_size, config.decoder_layers * hidden_size)
            if config.decoder_init == "bridge"
            else None
        )
        rnn_input_size = config.embedding_size + (hidden_size if config.input_feeding else 0)
        self.rnn = _rnn_class(config.rnn_type)(
            rnn_input_size,
            hidden_size,
            num_layers=config.decoder_layers,
            batch_first=True,
            dropout=config.dropout if config.decoder_layers > 1 else 0.0,
        )
        self.attention: RNNAttention | None = build_rnn_attention(
            config.attention_type, hidden_size, config.encoder_output_size
        )
        context_size = config.encoder_output_size if self.attention is not None else 0
        self.attentional_layer = nn.Linear(hidden_size + context_size, hidden_size)
        self.output_dropout = nn.Dropout(config.dropout)

    def initial_cache(self, encoder_states: torch.Tensor, final_state: torch.Tensor | None) -> RNNSeq2SeqCache:
        """The state before the first target token: tanh(bridge(final encoder state)) or zeros.

        The bridge sets every decoder layer's hidden state; an LSTM's cell state starts at zero.
        """
        config = self.config
        batch_size = encoder_states.shape[0]
        if self.bridge is not None:
            if final_state is None:
                raise ValueError(
                    "`decoder_init='bridge'` needs `encoder_outputs.final_state` (run the model's encoder)."
                )
            hidden = torch.tanh(self.bridge(final_state)).view(batch_size, config.decoder_layers, config.hidden_size)
        else:
            hidden = encoder_states.new_zeros(batch_size, config.decoder_layers, config.hidden_size)
        cell = torch.zeros_like(hidden) if config.rnn_type == "lstm" else None
        attentional = hidden.new_zeros(batch_size, config.hidden_size) if config.input_feeding else None
        keys = self.attention.precompute_keys(encoder_states) if self.attention is not None else None
        return RNNSeq2SeqCache(hidden, cell, attentional, keys)

    def _attend(
        self, rnn_outputs: torch.Tensor, cache: RNNSeq2SeqCache, encoder_states: torch.Tensor, mask: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """h̃ = dropout(tanh(W_c [h; c])) for a block of RNN outputs, with the attention weights."""
        if self.attention is None:
            return self.output_dropout(torch.tanh(self.attentional_layer(rnn_outputs))), None
        context, weights = self.attention(rnn_outputs, cache.keys, encoder_states, mask)
        combined = torch.cat([rnn_outputs, context], dim=-1)
        return self.output_dropout(torch.tanh(self.attentional_layer(combined))), weights

    def forward(
        self,
        input_ids: torch.LongTensor | None,
        encoder_hidden_states: torch.Tensor,
        encoder_final_state: torch.Tensor | None = None,
        encoder_attention_mask: torch.Tensor | None = None,
        cache: RNNSeq2SeqCache | None = None,
        inputs_embeds: torch.Tensor | None = None,
        use_cache: bool = False,
        output_attentions: bool = False,
        output_hidden_states: bool = False,
    ) -> BaseModelOutputWithPastAndCrossAttentions:
        """Decode the target tokens from ``cache`` (or, without one, from :meth:`initial_cache`).

        ``last_hidden_state`` is the attentional vectors h̃_t (batch, tgt_len, hidden_size);
        ``cross_attentions`` a 1-tuple of (batch, 1, tgt_len, src_len) weights; ``hidden_states``
        the decoder's three stages: the target embeddings, the top RNN layer's h_t and h̃_t.
        The cache advances past the given tokens and is returned when ``use_cache``.
        """
        if (input_ids is None) == (inputs_embeds is None):
            raise ValueError("Pass exactly one of `decoder_input_ids` and `decoder_inputs_embeds` (or `labels`).")
        if inputs_embeds is None:
            # (batch, tgt_len, embedding_size)
            inputs_embeds = embed_checked(self.embed_tokens, input_ids, "decoder_input_ids")
        if cache is None:
            cache = self.initial_cache(encoder_hidden_states, encoder_final_state)
        mask = encoder_attention_mask.bool() if encoder_attention_mask is not None else None
        embedded = self.embedding_dropout(inputs_embeds)
        if self.config.input_feeding:
            attentional, weights, rnn_outputs = self._input_feeding_forward(
                embedded, encoder_hidden_states, mask, cache
            )
        else:
            rnn_outputs, state = self.rnn(embedded, cache.recurrent_state())
            attentional, weights = self._attend(rnn_outputs, cache, encoder_hidden_states, mask)
            hidden, cell = state if isinstance(state, tuple) else (state, None)
            cache.update(
                hidden.transpose(0, 1), None if cell is None else cell.transpose(0, 1), None, embedded.shape[1]
            )
        return BaseModelOutputWithPastAndCrossAttentions(
            last_hidden_state=attentional,
            **cache_output(cache if use_cache else None),
            hidden_states=(inputs_embeds, rnn_outputs, attentional) if output_hidden_states else None,
            cross_attentions=(weights.unsqueeze(1),) if output_attentions and weights is not None else None,
        )

    def _input_feeding_forward(
        self,
        embedded: torch.Tensor,
        encoder_states: torch.Tensor,
        encoder_mask: torch.Tensor | None,
        cache: RNNSeq2SeqCache,
    ) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor]:
        """Step through time, feeding h̃_{t-1} back in (Luong 2015 §3.3).

        The layers' parameters are those of ``self.rnn``, applied with the fused single-step
        cell kernels (``torch.lstm_cell``/``torch.gru_cell``): cheaper per step than a
        one-step ``nn.LSTM`` call. The embedding part of the first layer's input projection,
        W_e y_{t-1} + b, does not depend on the previous step, so it is one matrix product
        for all steps, passed to the cell as its (per-row) input bias.
        """
        rnn, is_lstm = self.rnn, self.config.rnn_type == "lstm"
        cell_function = torch.lstm_cell if is_lstm else torch.gru_cell
        parameters = [
            [getattr(rnn, f"{kind}_l{layer}") for kind in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")]
            for layer in range(rnn.num_layers)
        ]
        first_input_weight = parameters[0][0]
        # (batch, tgt_len, gates) (gates = 4 * hidden for an LSTM, 3 * hidden for a GRU)
        embedding_gates = nn.functional.linear(
            embedded, first_input_weight[:, : self.config.embedding_size], parameters[0][2]
        )
        parameters[0][0] = first_input_weight[:, self.config.embedding_size :]
        hidden = list(cache.hidden.unbind(1))  # layers x (batch, hidden_size)
        cells = list(cache.cell.unbind(1)) if is_lstm else None
        previous = cache.attentional  # (batch, hidden_size): h̃_{t-1}
        step_outputs, step_weights, step_rnn_outputs = [], [], []
        for step_gates in embedding_gates.unbind(1):  # (batch, gates)
            layer_input = previous
            for layer, (weight_ih, weight_hh, bias_ih, bias_hh) in enumerate(parameters):
                if layer == 0:
                    bias_ih = step_gates
                else:
                    layer_input = nn.functional.dropout(layer_input, rnn.dropout, self.training)
                if is_lstm:
                    hidden[layer], cells[layer] = cell_function(
                        layer_input, (hidden[layer], cells[layer]), weight_ih, weight_hh, bias_ih, bias_hh
                    )
                else:
                    hidden[layer] = cell_function(layer_input, hidden[layer], weight_ih, weight_hh, bias_ih, bias_hh)
                layer_input = hidden[layer]
            rnn_output = layer_input.unsqueeze(1)  # (batch, 1, hidden_size): h_t
            # (batch, 1, hidden_size) h̃_t and (batch, 1, src_len) weights
            attentional, weights = self._attend(rnn_output, cache, encoder_states, encoder_mask)
            previous = attentional.squeeze(1)
            step_outputs.append(attentional)
            step_weights.append(weights)
            step_rnn_outputs.append(rnn_output)
        cache.update(
            torch.stack(hidden, dim=1), torch.stack(cells, dim=1) if is_lstm else None, previous, embedded.shape[1]
        )
        weights = None if self.attention is None else torch.cat(step_weights, dim=1)
        return torch.cat(step_outputs, dim=1), weights, torch.cat(step_rnn_outputs, dim=1)


class RNNSeq2SeqModel(RNNSeq2SeqPreTrainedModel):
    """Encoder and attention decoder; returns the attentional vectors h̃_t as ``last_hidden_state``."""

    def __init__(self, config: RNNSeq2SeqConfig):
        super().__init__(config)
        shared, encoder_embeddings, decoder_embeddings = build_token_embeddings(config, config.embedding_size)
        if shared is not None:
            self.shared = shared
        self._tied_weights_keys = dict(SHARED_EMBEDDING_TIES) if shared is not None else {}
        self.encoder = RNNSeq2SeqEncoder(config, encoder_embeddings)
        self.decoder = RNNSeq2SeqDecoder(config, decoder_embeddings)
        self.post_init()

    # Copied from hf_attn.models.modeling_transformer_seq2seq.TransformerSeq2SeqModel.get_input_embeddings with Transformer->RNN  # noqa: E501
    def get_input_embeddings(self) -> nn.Embedding:
        return self.encoder.embed_tokens

    # Copied from hf_attn.models.modeling_transformer_seq2seq.TransformerSeq2SeqModel.set_input_embeddings with Transformer->RNN  # noqa: E501
    def set_input_embeddings(self, value: nn.Embedding) -> None:
        """Replace the source embeddings; with one shared matrix, the target side's too."""
        if self.config.share_encoder_decoder_embeddings:
            self.shared = value
            self.decoder.embed_tokens = value
        self.encoder.embed_tokens = value

    # Copied from hf_attn.models.modeling_transformer_seq2seq.TransformerSeq2SeqModel.get_encoder with Transformer->RNN  # noqa: E501
    def get_encoder(self, modality: str | None = None) -> nn.Module:
        return self.encoder

    # Copied from hf_attn.models.modeling_transformer_seq2seq.TransformerSeq2SeqModel.get_decoder with Transformer->RNN  # noqa: E501
    def get_decoder(self) -> nn.Module:
        return self.decoder

    @can_return_tuple
    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        decoder_input_ids: torch.LongTensor | None = None,
        decoder_attention_mask: torch.Tensor | None = None,
        encoder_outputs: RNNEncoderOutput | tuple | None = None,
        past_key_values: RNNSeq2SeqCache | None = None,
        inputs_embeds: torch.Tensor | None = None,
        decoder_inputs_embeds: torch.Tensor | None = None,
        use_cache: bool | None = None,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
        cache: RNNSeq2SeqCache | None = None,
        **kwargs,
    ) -> Seq2SeqModelOutput:
        """Encode (unless ``encoder_outputs`` is given) and decode ``decoder_input_ids`` from the cached state.

        ``decoder_attention_mask`` is accepted for interface compatibility and not needed: the
        decoder is causal by construction and right padding never affects earlier positions.
        The decoder cache comes as ``cache`` (transformers ≥ 5.24) or ``past_key_values``.
        ``cross_attentions`` is a 1-tuple of (batch, 1, target_length, source_length) weights.
        ``encoder_hidden_states`` are the embeddings and each encoder layer's states;
        ``decoder_hidden_states`` are the decoder's three stages: the target embeddings, the top
        RNN layer's h_t and the attentional vectors h̃_t (= ``last_hidden_state``).
        """
        output_attentions = self.config.output_attentions if output_attentions is None else output_attentions
        output_hidden_states = (
            self.config.output_hidden_states if output_hidden_states is None else output_hidden_states
        )
        use_cache = self.config.use_cache if use_cache is None else use_cache
        if encoder_outputs is None:
            encoder_outputs = self.encoder(
                input_ids=input_ids,
                attention_mask=attention_mask,
                inputs_embeds=inputs_embeds,
                output_hidden_states=output_hidden_states,
            )
        elif not isinstance(encoder_outputs, RNNEncoderOutput):
            encoder_outputs = RNNEncoderOutput(
                last_hidden_state=encoder_outputs[0],
                final_state=encoder_outputs[1] if len(encoder_outputs) > 1 else None,
            )
        decoder_outputs = self.decoder(
            decoder_input_ids,
            encoder_outputs.last_hidden_state,
            encoder_final_state=encoder_outputs.final_state,
            encoder_attention_mask=attention_mask,
            cache=resolve_cache_argument(cache, past_key_values),
            inputs_embeds=decoder_inputs_embeds,
            use_cache=use_cache,
            output_attentions=output_attentions,
            output_hidden_states=output_hidden_states,
        )
        return Seq2SeqModelOutput(
            last_hidden_state=decoder_outputs.last_hidden_state,
            **cache_output(cache_of(decoder_outputs)),
            decoder_hidden_states=decoder_outputs.hidden_states,
            cross_attentions=decoder_outputs.cross_attentions,
            encoder_last_hidden_state=encoder_outputs.last_hidden_state,
            encoder_hidden_states=encoder_outputs.hidden_states,
        )


class RNNSeq2SeqForConditionalGeneration(RNNSeq2SeqPreTrainedModel, GenerationMixin):
    """RNN encoder-decoder with an output projection, a label-smoothed loss and ``generate()``."""

    accepts_loss_kwargs = True

    def __init__(self, config: RNNSeq2SeqConfig):
        super().__init__(config)
        self.model = RNNSeq2SeqModel(config)
        self.lm_head = nn.Linear(config.hidden_size, config.target_vocab_size, bias=False)
        self._tied_weights_keys = lm_head_ties(config)
        self.post_init()

    # Copied from hf_attn.models.modeling_transformer_seq2seq.TransformerSeq2SeqForConditionalGeneration.get_input_embeddings with Transformer->RNN  # noqa: E501
    def get_input_embeddings(self) -> nn.Embedding:
        return self.model.get_input_embeddings()

    # Copied from hf_attn.models.modeling_transformer_seq2seq.TransformerSeq2SeqForConditionalGeneration.set_input_embeddings with Transformer->RNN  # noqa: E501
    def set_input_embeddings(self, value: nn.Embedding) -> None:
        self.model.set_input_embeddings(value)

    # Copied from hf_attn.models.modeling_transformer_seq2seq.TransformerSeq2SeqForConditionalGeneration.get_output_embeddings with Transformer->RNN  # noqa: E501
    def get_output_embeddings(self) -> nn.Linear:
        return self.lm_head

    # Copied from hf_attn.models.modeling_transformer_seq2seq.TransformerSeq2SeqForConditionalGeneration.set_output_embeddings with Transformer->RNN  # noqa: E501
    def set_output_embeddings(self, value: nn.Linear) -> None:
        self.lm_head = value

    # Copied from hf_attn.models.modeling_transformer_seq2seq.TransformerSeq2SeqForConditionalGeneration.get_encoder with Transformer->RNN  # noqa: E501
    def get_encoder(self, modality: str | None = None) -> nn.Module:
        return self.model.encoder

    # Copied from hf_attn.models.modeling_transformer_seq2seq.TransformerSeq2SeqForConditionalGeneration.get_decoder with Transformer->RNN  # noqa: E501
    def get_decoder(self) -> nn.Module:
        return self.model.decoder

    # Copied from hf_attn.models.modeling_transformer_seq2seq.TransformerSeq2SeqForConditionalGeneration.prepare_decoder_input_ids_from_labels with Transformer->RNN  # noqa: E501
    def prepare_decoder_input_ids_from_labels(self, labels: torch.Tensor) -> torch.Tensor:
        return shift_tokens_right(labels, self.config.pad_token_id, self.config.decoder_start_token_id)

    def generate(self, *args: Any, **kwargs: Any) -> Any:
        """``GenerationMixin.generate``, refusing the modes that draft tokens and discard the rejected ones.

        A recurrent state cannot be rolled back to before rejected draft tokens. transformers up to 5.24
        refuses this through ``_is_stateful``; 5.25 dropped that check and fails later with "Assisted
        decoding requires a cache", which does not say why. This refusal names the cause on every release.
        """
        generation_config = kwargs.get("generation_config") or self.generation_config
        drafting = [
            name
            for name in DRAFTING_GENERATE_OPTIONS
            if kwargs.get(name) is not None or getattr(generation_config, name, None) is not None
        ]
        if drafting:
            raise ValueError(
                f"assisted generation is not supported with stateful models, such as {type(self).__name__}: its "
                f"recurrent decoder state cannot be rolled back to before rejected draft tokens (got "
                f"{', '.join(drafting)}); use greedy, beam search or sampling."
            )
        return super().generate(*args, **kwargs)

    # Copied from hf_attn.models.modeling_transformer_seq2seq.TransformerSeq2SeqForConditionalGeneration.forward with Transformer->RNN  # noqa: E501
    @can_return_tuple
    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        decoder_input_ids: torch.LongTensor | None = None,
        decoder_attention_mask: torch.Tensor | None = None,
        encoder_outputs: BaseModelOutput | tuple | None = None,
        past_key_values: Cache | None = None,
        inputs_embeds: torch.Tensor | None = None,
        decoder_inputs_embeds: torch.Tensor | None = None,
        labels: torch.LongTensor | None = None,
        use_cache: bool | None = None,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
        num_items_in_batch: int | torch.Tensor | None = None,
        cache: Cache | None = None,
        **kwargs,
    ) -> Seq2SeqLMOutput:
        """Logits over the target vocabulary; with ``labels`` (-100 = ignore) also the label-smoothed loss.

        Without ``decoder_input_ids`` the labels are shifted right behind
        ``decoder_start_token_id`` to form the decoder input (teacher forcing). Trainer passes
        ``num_items_in_batch``: the loss then averages over the true token count of the whole
        optimizer step (``accepts_loss_kwargs``), not over this micro-batch.
        """
        if labels is not None:
            use_cache = False
            if decoder_input_ids is None and decoder_inputs_embeds is None:
                decoder_input_ids = self.prepare_decoder_input_ids_from_labels(labels)
        outputs = self.model(
            input_ids=input_ids,
            attention_mask=attention_mask,
            decoder_input_ids=decoder_input_ids,
            decoder_attention_mask=decoder_attention_mask,
            encoder_outputs=encoder_outputs,
            cache=resolve_cache_argument(cache, past_key_values),
            inputs_embeds=inputs_embeds,
            decoder_inputs_embeds=decoder_inputs_embeds,
            use_cache=use_cache,
            output_attentions=output_attentions,
            output_hidden_states=output_hidden_states,
            **kwargs,
        )
        logits = self.lm_head(outputs.last_hidden_state)
        loss = None
        if labels is not None:
            loss = seq2seq_lm_loss(logits, labels, self.config.label_smoothing, num_items_in_batch)
        return seq2seq_lm_output(outputs, logits, loss)

    @classmethod
    def _supports_default_dynamic_cache(cls) -> bool:
        """The decoder builds its own :class:`RNNSeq2SeqCache`; a key/value cache does not fit a recurrent state."""
        return False

    @staticmethod
    def _reorder_cache(past_key_values: RNNSeq2SeqCache, beam_idx: torch.LongTensor) -> RNNSeq2SeqCache:
        """Beam search permutes beams within a sentence, so the encoder's attention keys stay put."""
        past_key_values.reorder_decoder_state(beam_idx)
        return past_key_values


__all__ = [
    "RNNEncoderOutput",
    "RNNSeq2SeqCache",
    "RNNSeq2SeqForConditionalGeneration",
    "RNNSeq2SeqModel",
    "RNNSeq2SeqPreTrainedModel",
]
