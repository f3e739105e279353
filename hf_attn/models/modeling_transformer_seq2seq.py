"""The Transformer encoder-decoder of Vaswani et al. (2017), written from scratch as a `transformers` model.

Multi-head attention computes softmax(QKᵀ/√d_k)V through the `transformers` attention
interface, so ``attn_implementation="sdpa"`` (the default) and ``"eager"`` give the same
numbers and ``output_attentions=True`` can fall back to the eager path that returns weights.
Generation uses ``EncoderDecoderCache``: self-attention keys/values grow by one step at a
time, cross-attention keys/values are projected once per source sentence.

This file imports only torch, transformers and its sibling files, so it can be shipped
with a checkpoint for ``trust_remote_code`` loading.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import nn
from transformers import GenerationMixin
from transformers import initialization as init
from transformers.activations import ACT2FN
from transformers.cache_utils import Cache, DynamicCache, EncoderDecoderCache
from transformers.modeling_layers import GradientCheckpointingLayer
from transformers.modeling_outputs import (
    BaseModelOutput,
    BaseModelOutputWithPastAndCrossAttentions,
    Seq2SeqLMOutput,
    Seq2SeqModelOutput,
)
from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS
from transformers.utils import can_return_tuple, is_tracing

from .attention import causal_mask, eager_attention_forward, flex_attention_mask
from .configuration_transformer_seq2seq import TransformerSeq2SeqConfig
from .seq2seq_utils import (
    SHARED_EMBEDDING_TIES,
    HfAttnPreTrainedModel,
    build_token_embeddings,
    cache_of,
    cache_output,
    check_no_empty_rows,
    embed_checked,
    lm_head_ties,
    resolve_cache_argument,
    seq2seq_lm_loss,
    seq2seq_lm_output,
    shift_tokens_right,
)


def sinusoidal_position_table(num_positions: int, dim: int) -> torch.Tensor:
    """PE(pos, 2i) = sin(pos / 10000^(2i/d)), PE(pos, 2i+1) = cos(...) (Vaswani et al. 2017, section 3.5)."""
    positions = torch.arange(num_positions, dtype=torch.float32).unsqueeze(1)
    frequencies = torch.exp(torch.arange(0, dim, 2, dtype=torch.float32) * (-math.log(10000.0) / dim))
    table = torch.zeros(num_positions, dim)
    table[:, 0::2] = torch.sin(positions * frequencies)
    table[:, 1::2] = torch.cos(positions * frequencies[: dim // 2])
    return table


class SinusoidalPositionalEmbedding(nn.Module):
    """Fixed sinusoidal positions, kept as a non-persistent buffer (rebuilt, never saved)."""

    def __init__(self, num_positions: int, dim: int) -> None:
        super().__init__()
        self.register_buffer("weight", sinusoidal_position_table(num_positions, dim), persistent=False)

    def forward(self, position_ids: torch.Tensor) -> torch.Tensor:
        return self.weight[position_ids]


def check_positions_fit(config: TransformerSeq2SeqConfig, last_position: int | torch.Tensor, side: str) -> None:
    """Fail with a readable message instead of an index error when a sequence is too long.

    A static cache counts its length in a tensor; while compiling, reading it would break the
    graph, so the traced graph skips the check (like the models' other value checks).
    """
    if isinstance(last_position, torch.Tensor) and is_tracing(last_position):
        return
    if last_position >= config.max_position_embeddings:
        raise ValueError(
            f"The {side} sequence needs position {last_position}, but `max_position_embeddings` is "
            f"{config.max_position_embeddings}; shorten the input or build the model with a larger value."
        )


def build_position_embedding(config: TransformerSeq2SeqConfig) -> nn.Module:
    if config.position_embedding_type == "sinusoidal":
        return SinusoidalPositionalEmbedding(config.max_position_embeddings, config.d_model)
    return nn.Embedding(config.max_position_embeddings, config.d_model)


def has_no_padding(attention_mask: torch.Tensor | None) -> bool:
    """True when no position is masked, so a mask can be left out (sdpa's fast path).

    Asking the values is a data-dependent branch that ``torch.export`` and ``torch.compile``
    cannot trace, so while tracing the answer is "padded": the mask is always applied, which
    is exact either way.
    """
    if attention_mask is None:
        return True
    return not is_tracing(attention_mask) and bool(attention_mask.all())


def padding_mask(attention_mask: torch.Tensor | None) -> torch.Tensor | None:
    """(batch, 1, 1, source_length) boolean key mask, or None when nothing is padded."""
    if has_no_padding(attention_mask):
        return None
    return attention_mask.bool()[:, None, None, :]


def decoder_self_attention_mask(
    attention_mask: torch.Tensor | None, query_length: int, past_length: int, device: torch.device
) -> torch.Tensor | None:
    """Causal (+ padding) mask for decoder self-attention, or None where ``is_causal`` alone is exact.

    A 4D mask (batch, 1, query_length, key_length) is already complete and is used as given:
    ``generate()`` builds one for compileable caches (``cache_implementation="static"``), whose
    keys span the whole preallocated length, unwritten slots included.
    """
    if attention_mask is not None and attention_mask.dim() == 4:
        return attention_mask
    key_length = past_length + query_length
    no_padding = has_no_padding(attention_mask)
    if no_padding and (past_length == 0 or query_length == 1):
        return None
    mask = causal_mask(query_length, key_length, device)[None, None]
    if no_padding:
        return mask
    if attention_mask.shape[-1] != key_length:
        raise ValueError(
            f"`decoder_attention_mask` has length {attention_mask.shape[-1]}, expected {key_length} "
            f"(cached {past_length} + new {query_length} decoder positions)."
        )
    return mask & attention_mask.bool()[:, None, None, :]


def decoder_rows_per_source(decoder_rows: int, sources: int) -> int:
    """How many decoder rows share each source sentence's encoder output (beams, samples), checked."""
    if sources == 0 or decoder_rows % sources:
        raise ValueError(
            f"The decoder batch ({decoder_rows} rows) must be a whole multiple of the encoder batch ({sources}): "
            "each source sentence serves one decoder row or a group of consecutive rows (its beams)."
        )
    return decoder_rows // sources


def queries_by_source(query: torch.Tensor, rows_per_source: int) -> torch.Tensor:
    """(sources * k, heads, length, d) -> (sources, heads, k * length, d): a sentence's k rows query its keys once.

    Cross-attention has no mask between queries, so stacking the k rows' queries of one
    source sentence into one longer query block computes the same function while reading
    that sentence's keys and values once instead of k times.
    """
    if rows_per_source == 1:
        return query
    rows, heads, length, head_dim = query.shape
    grouped = query.view(rows // rows_per_source, rows_per_source, heads, length, head_dim).transpose(1, 2)
    return grouped.reshape(rows // rows_per_source, heads, rows_per_source * length, head_dim)


class SourceSharedCrossAttentionCache(DynamicCache):
    """Cross-attention keys/values kept once per source sentence for its ``rows_per_source`` decoder rows.

    Beams and samples of one sentence attend to the same encoder output, so storing (and
    reading) its keys/values once instead of once per row is exact and cheaper. The row
    operations take decoder-row indices, like those of the self-attention cache beside it in
    the ``EncoderDecoderCache``: a permutation within each sentence's rows (what beam search
    does) leaves the shared keys/values as they are; any other selection gives each decoder
    row its own copy, after which this is an ordinary per-row cache.
    """

    def __init__(self, rows_per_source: int) -> None:
        super().__init__()
        self.rows_per_source = rows_per_source

    def _follow_decoder_rows(self, decoder_rows: torch.Tensor) -> None:
        sources = decoder_rows // self.rows_per_source
        rows_kept_by_source = torch.arange(sources.numel(), device=sources.device) // self.rows_per_source
        if self.rows_per_source > 1 and torch.equal(sources, rows_kept_by_source.to(sources.dtype)):
            return
        super().reorder_cache(sources)
        self.rows_per_source = 1

    def reorder_cache(self, beam_idx: torch.LongTensor) -> None:
        self._follow_decoder_rows(beam_idx)

    def batch_select_indices(self, indices: torch.Tensor) -> None:
        self._follow_decoder_rows(indices)

    def batch_repeat_interleave(self, repeats: int) -> None:
        self.rows_per_source *= repeats


def share_cross_attention_by_source(cache: EncoderDecoderCache, decoder_rows: int, sources: int) -> None:
    """Before the first step: store cross-attention keys/values per source sentence when rows share one."""
    if decoder_rows != sources and cache.cross_attention_cache.get_seq_length() == 0:
        cache.cross_attention_cache = SourceSharedCrossAttentionCache(decoder_rows_per_source(decoder_rows, sources))


def weights_by_row(weights: torch.Tensor, rows_per_source: int, length: int) -> torch.Tensor:
    """Undo :func:`queries_by_source` on attention weights: (sources, heads, k * length, keys) -> per row."""
    if rows_per_source == 1:
        return weights
    sources, heads, _, keys = weights.shape
    per_row = weights.view(sources, heads, rows_per_source, length, keys).transpose(1, 2)
    return per_row.reshape(sources * rows_per_source, heads, length, keys)


class TransformerSeq2SeqAttention(nn.Module):
    """Multi-head attention (Vaswani et al. 2017, section 3.2.2).

    Self-attention projects queries, keys and values with one fused matrix; cross-attention
    projects queries from the decoder and keys/values (fused) from the encoder output, once
    per sequence when a cache is given.
    """

    def __init__(
        self,
        config: TransformerSeq2SeqConfig,
        num_heads: int,
        is_cross_attention: bool = False,
        is_causal: bool = False,
        layer_idx: int | None = None,
    ) -> None:
        super().__init__()
        self.config = config
        self.num_heads = num_heads
        self.head_dim = config.d_model // num_heads
        self.scaling = self.head_dim**-0.5
        self.attention_dropout = config.attention_dropout
        self.is_cross_attention = is_cross_attention
        self.is_causal = is_causal
        self.layer_idx = layer_idx
        # Projections are plain matrices W^Q, W^K, W^V, W^O as in the paper: a key bias would
        # add the same q·b to every score of a query, so it could never receive a gradient.
        if is_cross_attention:
            self.q_proj = nn.Linear(config.d_model, config.d_model, bias=False)
            self.kv_proj = nn.Linear(config.d_model, 2 * config.d_model, bias=False)
        else:
            self.qkv_proj = nn.Linear(config.d_model, 3 * config.d_model, bias=False)
        self.out_proj = nn.Linear(config.d_model, config.d_model, bias=False)

    def _split_heads(self, projected: torch.Tensor, parts: int) -> tuple[torch.Tensor, ...]:
        """(batch, length, parts * d_model) -> `parts` tensors of (batch, heads, length, head_dim)."""
        batch, length, _ = projected.shape
        return projected.view(batch, length, parts, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4).unbind(0)

    def _cross_attention_key_values(
        self, encoder_hidden_states: torch.Tensor, cache: EncoderDecoderCache | None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        if cache is not None and cache.is_updated.get(self.layer_idx):
            layer = cache.cross_attention_cache.layers[self.layer_idx]
            return layer.keys, layer.values
        key, value = self._split_heads(self.kv_proj(encoder_hidden_states), 2)
        if cache is not None:
            key, value = cache.cross_attention_cache.update(key, value, self.layer_idx)
            cache.is_updated[self.layer_idx] = True
        return key, value

    def forward(
        self,
        hidden_states: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        encoder_hidden_states: torch.Tensor | None = None,
        cache: EncoderDecoderCache | None = None,
        output_attentions: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        batch, length, _ = hidden_states.shape
        rows_per_source = 1
        if self.is_cross_attention:
            (query,) = self._split_heads(self.q_proj(hidden_states), 1)  # (batch, heads, tgt_len, head_dim)
            # (sources, heads, src_len, head_dim): one row per sentence, shared by its beams
            key, value = self._cross_attention_key_values(encoder_hidden_states, cache)
            rows_per_source = decoder_rows_per_source(batch, key.shape[0])
            query = queries_by_source(query, rows_per_source)
        else:
            query, key, value = self._split_heads(self.qkv_proj(hidden_states), 3)
            if cache is not None:
                key, value = cache.self_attention_cache.update(key, value, self.layer_idx)

        # Only the eager path returns weights; it computes the same function as the others.
        implementation = "eager" if output_attentions else self.config._attn_implementation
        attention_function: Callable = ALL_ATTENTION_FUNCTIONS.get_interface(implementation, eager_attention_forward)
        if implementation == "flex_attention":
            attention_mask = flex_attention_mask(attention_mask, query, key, self.is_causal)
        output, weights = attention_function(
            self,
            query,
            key,
            value,
            attention_mask,
            dropout=self.attention_dropout if self.training else 0.0,
            scaling=self.scaling,
            is_causal=self.is_causal,
        )
        output = self.out_proj(output.reshape(batch, length, -1))  # (batch, length, d_model)
        if not output_attentions:
            return output, None
        return output, weights_by_row(weights, rows_per_source, length)


class PositionwiseFeedForward(nn.Module):
    """FFN(x) = act(xW1 + b1)W2 + b2 (Vaswani et al. 2017, eq. 2)."""

    def __init__(self, config: TransformerSeq2SeqConfig, ffn_dim: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(config.d_model, ffn_dim)
        self.fc2 = nn.Linear(ffn_dim, config.d_model)
        self.activation = ACT2FN[config.activation_function]
        self.activation_dropout = config.activation_dropout

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        hidden_states = self.activation(self.fc1(hidden_states))
        hidden_states = nn.functional.dropout(hidden_states, p=self.activation_dropout, training=self.training)
        return self.fc2(hidden_states)


class ResidualSublayer(nn.Module):
    """Wraps a sublayer f with dropout, the residual connection and LayerNorm.

    Post-LN (the paper): LN(x + dropout(f(x))). Pre-LN: x + dropout(f(LN(x))).
    """

    def __init__(self, config: TransformerSeq2SeqConfig) -> None:
        super().__init__()
        self.layer_norm = nn.LayerNorm(config.d_model, eps=config.layer_norm_eps)
        self.dropout = config.dropout
        self.normalize_before = config.normalize_before

    def forward(self, hidden_states: torch.Tensor, sublayer: Callable, *args, **kwargs) -> tuple[torch.Tensor, object]:
        """Returns the new hidden states and whatever else the sublayer returned (e.g. attention weights)."""
        inputs = self.layer_norm(hidden_states) if self.normalize_before else hidden_states
        output = sublayer(inputs, *args, **kwargs)
        output, extra = output if isinstance(output, tuple) else (output, None)
        hidden_states = hidden_states + nn.functional.dropout(output, p=self.dropout, training=self.training)
        if not self.normalize_before:
            hidden_states = self.layer_norm(hidden_states)
        return hidden_states, extra


class TransformerSeq2SeqEncoderLayer(GradientCheckpointingLayer):
    """Self-attention then feed-forward, each in a residual sublayer."""

    def __init__(self, config: TransformerSeq2SeqConfig) -> None:
        super().__init__()
        self.self_attn = TransformerSeq2SeqAttention(config, config.encoder_attention_heads)
        self.self_attn_sublayer = ResidualSublayer(config)
        self.ffn = PositionwiseFeedForward(config, config.encoder_ffn_dim)
        self.ffn_sublayer = ResidualSublayer(config)

    def forward(
        self, hidden_states: torch.Tensor, attention_mask: torch.Tensor | None = None, output_attentions: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        hidden_states, weights = self.self_attn_sublayer(
            hidden_states, self.self_attn, attention_mask=attention_mask, output_attentions=output_attentions
        )
        hidden_states, _ = self.ffn_sublayer(hidden_states, self.ffn)
        return hidden_states, weights


class TransformerSeq2SeqDecoderLayer(GradientCheckpointingLayer):
    """Masked self-attention, cross-attention over the encoder output, then feed-forward."""

    def __init__(self, config: TransformerSeq2SeqConfig, layer_idx: int) -> None:
        super().__init__()
        heads = config.decoder_attention_heads
        self.self_attn = TransformerSeq2SeqAttention(config, heads, is_causal=True, layer_idx=layer_idx)
        self.self_attn_sublayer = ResidualSublayer(config)
        self.encoder_attn = TransformerSeq2SeqAttention(config, heads, is_cross_attention=True, layer_idx=layer_idx)
        self.encoder_attn_sublayer = ResidualSublayer(config)
        self.ffn = PositionwiseFeedForward(config, config.decoder_ffn_dim)
        self.ffn_sublayer = ResidualSublayer(config)

    def forward(
        self,
        hidden_states: torch.Tensor,
        encoder_hidden_states: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        encoder_attention_mask: torch.Tensor | None = None,
        cache: EncoderDecoderCache | None = None,
        output_attentions: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
        hidden_states, self_weights = self.self_attn_sublayer(
            hidden_states,
            self.self_attn,
            attention_mask=attention_mask,
            cache=cache,
            output_attentions=output_attentions,
        )
        hidden_states, cross_weights = self.encoder_attn_sublayer(
            hidden_states,
            self.encoder_attn,
            attention_mask=encoder_attention_mask,
            encoder_hidden_states=encoder_hidden_states,
            cache=cache,
            output_attentions=output_attentions,
        )
        hidden_states, _ = self.ffn_sublayer(hidden_states, self.ffn)
        return hidden_states, self_weights, cross_weights


class TransformerSeq2SeqPreTrainedModel(HfAttnPreTrainedModel):
    """Weight initialisation and backend support flags of both model classes."""

    config_class = TransformerSeq2SeqConfig
    config: TransformerSeq2SeqConfig
    base_model_prefix = "model"
    main_input_name = "input_ids"
    supports_gradient_checkpointing = True
    _supports_sdpa = True
    _supports_attention_backend = True
    # Each flag is proved in tests/test_fast_paths.py: the decoding step compiles with fullgraph=True over a
    # static cache; flex attention (masks as BlockMasks, see flex_attention_mask) gives sdpa's outputs and
    # generate tokens. Flash attention stays undeclared until a GPU run proves it (scripts/gpu_check.sh).
    _supports_flex_attn = True
    _can_compile_fullgraph = True
    _no_split_modules = ["TransformerSeq2SeqEncoderLayer", "TransformerSeq2SeqDecoderLayer"]
    _remote_code_auto_classes = {
        "AutoModel": "TransformerSeq2SeqModel",
        "AutoModelForSeq2SeqLM": "TransformerSeq2SeqForConditionalGeneration",
    }

    def _init_weights(self, module: nn.Module) -> None:
        """Xavier-uniform linear layers (as in tensor2tensor), N(0, d_model^-0.5) embeddings."""
        if isinstance(module, nn.Linear):
            init.xavier_uniform_(module.weight)
            if module.bias is not None:
                init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            std = self.config.init_std or self.config.d_model**-0.5
            init.normal_(module.weight, mean=0.0, std=std)
            if module.padding_idx is not None and not getattr(module.weight, "_is_hf_initialized", False):
                init.zeros_(module.weight[module.padding_idx])
        elif isinstance(module, nn.LayerNorm):
            init.ones_(module.weight)
            init.zeros_(module.bias)
        elif isinstance(module, SinusoidalPositionalEmbedding):
            init.copy_(module.weight, sinusoidal_position_table(*module.weight.shape))


class TransformerSeq2SeqStack(nn.Module):
    """What the encoder and decoder stacks share: token + position embeddings and the final pre-LN norm."""

    def __init__(self, config: TransformerSeq2SeqConfig, embed_tokens: nn.Embedding, layers: list[nn.Module]) -> None:
        super().__init__()
        self.config = config
        self.embed_tokens = embed_tokens
        self.embed_scale = math.sqrt(config.d_model) if config.scale_embedding else 1.0
        self.embed_positions = build_position_embedding(config)
        self.dropout = config.dropout
        self.layers = nn.ModuleList(layers)
        self.layer_norm = nn.LayerNorm(config.d_model, eps=config.layer_norm_eps) if config.normalize_before else None

    def embed(
        self, input_ids: torch.LongTensor | None, inputs_embeds: torch.Tensor | None, first_position: int, side: str
    ) -> torch.Tensor:
        """Scaled token embeddings plus positions ``first_position…``, with dropout: the first layer's input."""
        if (input_ids is None) == (inputs_embeds is None):
            prefix = "" if side == "source" else "decoder_"
            raise ValueError(f"Pass exactly one of `{prefix}input_ids` and `{prefix}inputs_embeds`.")
        if inputs_embeds is None:
            inputs_embeds = embed_checked(
                self.embed_tokens, input_ids, "input_ids" if side == "source" else "decoder_input_ids"
            )
        length = inputs_embeds.shape[1]
        check_positions_fit(self.config, first_position + length - 1, side)
        # An offset added to arange(length), not arange(first, first + length): a static cache's tensor
        # offset then stays in the compiled graph instead of being read out of it.
        positions = torch.arange(length, device=inputs_embeds.device) + first_position
        hidden_states = inputs_embeds * self.embed_scale + self.embed_positions(positions)
        return nn.functional.dropout(hidden_states, p=self.dropout, training=self.training)


class TransformerSeq2SeqEncoder(TransformerSeq2SeqStack):
    """Token + position embeddings, then a stack of encoder layers."""

    main_input_name = "input_ids"

    def __init__(self, config: TransformerSeq2SeqConfig, embed_tokens: nn.Embedding) -> None:
        super().__init__(
            config, embed_tokens, [TransformerSeq2SeqEncoderLayer(config) for _ in range(config.encoder_layers)]
        )

    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool = True,
    ) -> BaseModelOutput:
        """Encode a padded batch; ``attention_mask`` is 1 for real tokens, 0 for padding."""
        output_attentions = self.config.output_attentions if output_attentions is None else output_attentions
        output_hidden_states = (
            self.config.output_hidden_states if output_hidden_states is None else output_hidden_states
        )
        hidden_states = self.embed(input_ids, inputs_embeds, 0, "source")
        if attention_mask is not None and attention_mask.shape != hidden_states.shape[:2]:
            raise ValueError(
                f"`attention_mask` shape {tuple(attention_mask.shape)} does not match the input's "
                f"{tuple(hidden_states.shape[:2])}."
            )
        mask = padding_mask(attention_mask)
        if mask is not None:
            # An all-padding row would attend to nothing (softmax over no keys) and still be translated.
            check_no_empty_rows(attention_mask)

        all_hidden_states = () if output_hidden_states else None
        all_attentions = () if output_attentions else None
        for layer in self.layers:
            if output_hidden_states:
                all_hidden_states += (hidden_states,)
            hidden_states, weights = layer(hidden_states, attention_mask=mask, output_attentions=output_attentions)
            if output_attentions:
                all_attentions += (weights,)
        if self.layer_norm is not None:
            hidden_states = self.layer_norm(hidden_states)
        if output_hidden_states:
            all_hidden_states += (hidden_states,)
        output = BaseModelOutput(
            last_hidden_state=hidden_states, hidden_states=all_hidden_states, attentions=all_attentions
        )
        return output if return_dict else output.to_tuple()


class TransformerSeq2SeqDecoder(TransformerSeq2SeqStack):
    """Token + position embeddings, then a stack of decoder layers attending to the encoder output."""

    def __init__(self, config: TransformerSeq2SeqConfig, embed_tokens: nn.Embedding) -> None:
        layers = [TransformerSeq2SeqDecoderLayer(config, layer_idx) for layer_idx in range(config.decoder_layers)]
        super().__init__(config, embed_tokens, layers)

    def forward(
        self,
        input_ids: torch.LongTensor | None,
        encoder_hidden_states: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        encoder_attention_mask: torch.Tensor | None = None,
        cache: EncoderDecoderCache | None = None,
        inputs_embeds: torch.Tensor | None = None,
        use_cache: bool = False,
        output_attentions: bool = False,
        output_hidden_states: bool = False,
    ) -> BaseModelOutputWithPastAndCrossAttentions:
        if use_cache and cache is None:
            cache = EncoderDecoderCache(DynamicCache(), DynamicCache())
        if cache is not None and not isinstance(cache, EncoderDecoderCache):
            raise TypeError(f"The decoder cache must be an EncoderDecoderCache, got {type(cache).__name__}.")
        past_length = cache.get_seq_length() if cache is not None else 0
        hidden_states = self.embed(input_ids, inputs_embeds, past_length, "target")
        if cache is not None:
            share_cross_attention_by_source(cache, hidden_states.shape[0], encoder_hidden_states.shape[0])
        self_mask = decoder_self_attention_mask(
            attention_mask, hidden_states.shape[1], past_length, hidden_states.device
        )
        cross_mask = padding_mask(encoder_attention_mask)

        all_hidden_states = () if output_hidden_states else None
        all_self_attentions = () if output_attentions else None
        all_cross_attentions = () if output_attentions else None
        for layer in self.layers:
            if output_hidden_states:
                all_hidden_states += (hidden_states,)
            hidden_states, self_weights, cross_weights = layer(
                hidden_states,
                encoder_hidden_states,
                attention_mask=self_mask,
                encoder_attention_mask=cross_mask,
                cache=cache,
                output_attentions=output_attentions,
            )
            if output_attentions:
                all_self_attentions += (self_weights,)
                all_cross_attentions += (cross_weights,)
        if self.layer_norm is not None:
            hidden_states = self.layer_norm(hidden_states)
        if output_hidden_states:
            all_hidden_states += (hidden_states,)
        return BaseModelOutputWithPastAndCrossAttentions(
            last_hidden_state=hidden_states,
            **cache_output(cache),
            hidden_states=all_hidden_states,
            attentions=all_self_attentions,
            cross_attentions=all_cross_attentions,
        )


class TransformerSeq2SeqModel(TransformerSeq2SeqPreTrainedModel):
    """The bare encoder-decoder: returns the decoder's last hidden states (no output projection)."""

    def __init__(self, config: TransformerSeq2SeqConfig) -> None:
        super().__init__(config)
        shared, encoder_embeddings, decoder_embeddings = build_token_embeddings(config, config.d_model)
        if shared is not None:
            self.shared = shared
        self._tied_weights_keys = dict(SHARED_EMBEDDING_TIES) if shared is not None else {}
        self.encoder = TransformerSeq2SeqEncoder(config, encoder_embeddings)
        self.decoder = TransformerSeq2SeqDecoder(config, decoder_embeddings)
        self.post_init()

    def get_input_embeddings(self) -> nn.Embedding:
        return self.encoder.embed_tokens

    def set_input_embeddings(self, value: nn.Embedding) -> None:
        """Replace the source embeddings; with one shared matrix, the target side's too."""
        if self.config.share_encoder_decoder_embeddings:
            self.shared = value
            self.decoder.embed_tokens = value
        self.encoder.embed_tokens = value

    def get_encoder(self, modality: str | None = None) -> nn.Module:
        return self.encoder

    def get_decoder(self) -> nn.Module:
        return self.decoder

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
        use_cache: bool | None = None,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
        cache: Cache | None = None,
        **kwargs,
    ) -> Seq2SeqModelOutput:
        """Encode the source (unless ``encoder_outputs`` are given) and decode ``decoder_input_ids``.

        The decoder cache comes as ``cache`` (transformers ≥ 5.24) or ``past_key_values``.
        ``kwargs`` absorbs bookkeeping arguments that ``generate()`` passes to every model
        (such as ``cache_position``); this model derives positions from the cache instead.
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
                output_attentions=output_attentions,
                output_hidden_states=output_hidden_states,
            )
        elif not isinstance(encoder_outputs, BaseModelOutput):
            encoder_outputs = BaseModelOutput(*encoder_outputs)
        decoder_outputs = self.decoder(
            decoder_input_ids,
            encoder_outputs.last_hidden_state,
            attention_mask=decoder_attention_mask,
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
            decoder_attentions=decoder_outputs.attentions,
            cross_attentions=decoder_outputs.cross_attentions,
            encoder_last_hidden_state=encoder_outputs.last_hidden_state,
            encoder_hidden_states=encoder_outputs.hidden_states,
            encoder_attentions=encoder_outputs.attentions,
        )


class TransformerSeq2SeqForConditionalGeneration(TransformerSeq2SeqPreTrainedModel, GenerationMixin):
    """The encoder-decoder with its output projection: training loss and `generate()`."""

    accepts_loss_kwargs = True

    def __init__(self, config: TransformerSeq2SeqConfig) -> None:
        super().__init__(config)
        self.model = TransformerSeq2SeqModel(config)
        self.lm_head = nn.Linear(config.d_model, config.target_vocab_size, bias=False)
        self._tied_weights_keys = lm_head_ties(config)
        self.post_init()

    def get_input_embeddings(self) -> nn.Embedding:
        return self.model.get_input_embeddings()

    def set_input_embeddings(self, value: nn.Embedding) -> None:
        self.model.set_input_embeddings(value)

    def get_output_embeddings(self) -> nn.Linear:
        return self.lm_head

    def set_output_embeddings(self, value: nn.Linear) -> None:
        self.lm_head = value

    def get_encoder(self, modality: str | None = None) -> nn.Module:
        return self.model.encoder

    def get_decoder(self) -> nn.Module:
        return self.model.decoder

    def prepare_decoder_input_ids_from_labels(self, labels: torch.Tensor) -> torch.Tensor:
        return shift_tokens_right(labels, self.config.pad_token_id, self.config.decoder_start_token_id)

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

    def _expand_inputs_for_generation(
        self,
        expand_size: int = 1,
        is_encoder_decoder: bool = False,
        input_ids: torch.LongTensor | None = None,
        **model_kwargs,
    ) -> tuple[torch.LongTensor, dict]:
        """Repeat the decoder inputs for beams/samples but keep one encoder output per sentence.

        Cross-attention serves a sentence's ``expand_size`` consecutive decoder rows from one
        copy of its encoder output (see :func:`queries_by_source`), so the copies
        ``generate()`` would otherwise make are neither projected nor read ``expand_size`` times.
        """
        per_sentence = {
            key: model_kwargs.pop(key) for key in ("encoder_outputs", "attention_mask") if key in model_kwargs
        }
        input_ids, model_kwargs = super()._expand_inputs_for_generation(expand_size, False, input_ids, **model_kwargs)
        return input_ids, {**model_kwargs, **per_sentence}


__all__ = [
    "TransformerSeq2SeqForConditionalGeneration",
    "TransformerSeq2SeqModel",
    "TransformerSeq2SeqPreTrainedModel",
]
