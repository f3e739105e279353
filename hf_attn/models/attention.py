"""Attention functions shared by the hf_attn models.

Every function here turns a query and a set of keys into weights that sum to one over the
unmasked keys, and returns the weighted sum of the values. The Transformer's multi-head
attention plugs :func:`eager_attention_forward` into the ``transformers`` attention
interface (so ``sdpa`` and other registered backends can replace it); the RNN decoder's
scorers below follow Bahdanau et al. (2014) and Luong et al. (2015).

Masks are boolean with ``True`` meaning "may attend", the convention ``sdpa`` accepts too.
This file imports only torch and its sibling config_validation, so it travels with the remote-code files.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from .config_validation import require_choice

# The RNN decoder's scorers by their ``RNNSeq2SeqConfig.attention_type`` names ("none": no attention, the plain
# encoder-decoder); the config validates against this tuple, build_rnn_attention builds from it.
ATTENTION_TYPES = ("bahdanau", "luong_dot", "luong_general", "luong_concat", "none")


def causal_mask(query_length: int, key_length: int, device: torch.device) -> torch.Tensor:
    """Boolean (query_length, key_length) mask letting query i see keys up to its own position.

    Queries are the last ``query_length`` positions of the ``key_length`` keys, which covers
    decoding with a cache (earlier positions already in the keys).
    """
    offset = key_length - query_length
    query_positions = torch.arange(query_length, device=device).unsqueeze(1) + offset
    return torch.arange(key_length, device=device).unsqueeze(0) <= query_positions


def eager_attention_forward(
    module: nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    scaling: float | None = None,
    dropout: float = 0.0,
    is_causal: bool | None = None,
    **kwargs,
) -> tuple[torch.Tensor, torch.Tensor]:
    """softmax(QKᵀ/√d_k)V (Vaswani et al. 2017, eq. 1), the reference path that also returns weights.

    Shapes follow the ``transformers`` attention interface: query/key/value are
    (batch, heads, length, head_dim); the output is (batch, query_length, heads, head_dim).
    ``attention_mask`` is boolean (True = attend) or additive, broadcastable to
    (batch, heads, query_length, key_length). With no mask, ``is_causal`` (default: the
    module's ``is_causal``) applies the causal mask.
    """
    if scaling is None:
        scaling = query.size(-1) ** -0.5
    scores = torch.matmul(query, key.transpose(-2, -1)) * scaling
    causal = getattr(module, "is_causal", False) if is_causal is None else is_causal
    if attention_mask is None and causal and query.size(2) > 1:
        attention_mask = causal_mask(query.size(2), key.size(2), query.device)
    if attention_mask is not None:
        if attention_mask.dtype == torch.bool:
            scores = scores.masked_fill(~attention_mask, torch.finfo(scores.dtype).min)
        else:
            scores = scores + attention_mask
    weights = nn.functional.softmax(scores, dim=-1, dtype=torch.float32).to(query.dtype)
    weights = nn.functional.dropout(weights, p=dropout, training=module.training)
    output = torch.matmul(weights, value).transpose(1, 2).contiguous()
    return output, weights


def flex_attention_mask(attention_mask: Any, query: torch.Tensor, key: torch.Tensor, is_causal: bool) -> Any:
    """The mask as a ``BlockMask`` for transformers' ``flex_attention`` backend (None: attend everywhere).

    That backend ignores ``is_causal`` and adds a tensor mask as ``mask[b][0][q][k]`` inside a
    ``score_mod``; on the CPU (torch 2.13) a ``score_mod`` that reads a captured tensor indexes
    out of bounds or corrupts memory, even with a full (batch, 1, q, k) mask. A ``mask_mod``
    in a ``BlockMask`` (what transformers' own flex integration builds) computes correctly, so
    the boolean mask (True = attend; an additive one: 0 = attend), or the causal mask, becomes
    one. A mask that already is a ``BlockMask`` is used as given.
    """
    from torch.nn.attention.flex_attention import BlockMask, create_block_mask

    if isinstance(attention_mask, BlockMask):
        return attention_mask
    batch, query_length, key_length = key.shape[0], query.shape[2], key.shape[2]
    if attention_mask is None:
        if not (is_causal and query_length > 1):
            return None
        attention_mask = causal_mask(query_length, key_length, query.device)
    allowed = attention_mask if attention_mask.dtype == torch.bool else attention_mask == 0
    # (batch, query_length, key_length): the heads share one mask
    allowed = allowed.reshape(-1, *allowed.shape[-2:]).expand(batch, query_length, key_length).contiguous()

    def mask_mod(batch_index, head_index, query_index, key_index):
        return allowed[batch_index, query_index, key_index]

    return create_block_mask(mask_mod, batch, None, query_length, key_length, device=query.device)


class RNNAttention(nn.Module):
    """Global attention of an RNN decoder over the encoder states (Bahdanau et al. 2014; Luong et al. 2015).

    A scorer compares each decoder state h_t (the query) with every encoder state h̄_s. The
    query-independent part of the score (the key projection) is computed once per source
    sequence by :meth:`precompute_keys`, not at every decoder step. :meth:`forward` scores a
    whole block of queries at once, so a decoder without input feeding attends for all target
    positions in one call; an input-feeding decoder calls it with one query per step.
    """

    def precompute_keys(self, encoder_states: torch.Tensor) -> torch.Tensor:
        """Keys (batch, source_length, key_size) derived from the encoder states; identity by default."""
        return encoder_states

    def score(self, query: torch.Tensor, keys: torch.Tensor) -> torch.Tensor:
        """Unnormalised scores (batch, query_length, source_length) for queries (batch, query_length, size)."""
        raise NotImplementedError

    def forward(
        self, query: torch.Tensor, keys: torch.Tensor, values: torch.Tensor, mask: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Context vectors c_t = Σ_s a_t(s) h̄_s and the weights a_t (batch, query_length, source_length).

        ``mask`` is boolean (batch, source_length), True where the source may be attended; the
        weights of masked positions are exactly zero (their scores are set to the dtype's
        minimum, whose exponential underflows to 0 once at least one position is unmasked).
        """
        scores = self.score(query, keys)
        if mask is not None:
            scores = scores.masked_fill(~mask.unsqueeze(1), torch.finfo(scores.dtype).min)
        weights = nn.functional.softmax(scores, dim=-1, dtype=torch.float32).to(query.dtype)
        return torch.bmm(weights, values), weights


class DotAttention(RNNAttention):
    """Luong et al. (2015), eq. 8, "dot": score(h_t, h̄_s) = h_tᵀ h̄_s (needs equal sizes)."""

    def score(self, query: torch.Tensor, keys: torch.Tensor) -> torch.Tensor:
        return torch.bmm(query, keys.transpose(1, 2))


class GeneralAttention(DotAttention):
    """Luong et al. (2015), eq. 8, "general": score(h_t, h̄_s) = h_tᵀ W_a h̄_s.

    W_a h̄_s does not depend on t, so it is the precomputed key and the score is a dot product.
    """

    def __init__(self, query_size: int, key_size: int):
        super().__init__()
        self.key_projection = nn.Linear(key_size, query_size, bias=False)

    def precompute_keys(self, encoder_states: torch.Tensor) -> torch.Tensor:
        return self.key_projection(encoder_states)


class AdditiveAttention(RNNAttention):
    """Additive (MLP) score: v_aᵀ tanh(W_a h_t + U_a h̄_s).

    This is Bahdanau et al. (2014), eq. 6, e_ij = v_aᵀ tanh(W_a s_{i-1} + U_a h_j), and Luong
    et al. (2015), eq. 8, "concat", v_aᵀ tanh(W_a [h_t; h̄_s]) (W_a split into its two column
    blocks): the same function. U_a h̄_s is the precomputed key. The query is whatever decoder
    state the caller passes; hf_attn passes the current state h_t for every attention type.
    """

    def __init__(self, query_size: int, key_size: int, attention_size: int):
        super().__init__()
        self.query_projection = nn.Linear(query_size, attention_size, bias=False)
        self.key_projection = nn.Linear(key_size, attention_size, bias=False)
        self.energy = nn.Linear(attention_size, 1, bias=False)

    def precompute_keys(self, encoder_states: torch.Tensor) -> torch.Tensor:
        return self.key_projection(encoder_states)

    def score(self, query: torch.Tensor, keys: torch.Tensor) -> torch.Tensor:
        hidden = torch.tanh(self.query_projection(query).unsqueeze(2) + keys.unsqueeze(1))
        return self.energy(hidden).squeeze(-1)


def build_rnn_attention(attention_type: str, query_size: int, key_size: int) -> RNNAttention | None:
    """The scorer named by an ``RNNSeq2SeqConfig.attention_type`` (None for ``"none"``)."""
    require_choice("attention_type", attention_type, ATTENTION_TYPES)
    if attention_type in ("bahdanau", "luong_concat"):
        return AdditiveAttention(query_size, key_size, attention_size=query_size)
    if attention_type == "luong_general":
        return GeneralAttention(query_size, key_size)
    if attention_type == "luong_dot":
        if query_size != key_size:
            raise ValueError(f"'luong_dot' attention needs equal query and key sizes, got {query_size} and {key_size}.")
        return DotAttention()
    return None  # "none"
