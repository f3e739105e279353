"""Attention functions shared by the hf_attn models.

Every function here turns a query and a set of keys into weights that sum to one over the
unmasked keys, and returns the weighted sum of the values. The Transformer's multi-head
attention plugs :func:`eager_attention_forward` into the ``transformers`` attention
interface (so ``sdpa`` and other registered backends can replace it); the RNN decoder's
scorers below follow Bahdanau et al. (2014) and Luong et al. (2015).

Masks are boolean with ``True`` meaning "may attend", the convention ``sdpa`` accepts too.
This file imports only torch, so it travels with the remote-code files.
"""

from __future__ import annotations

import torch
from torch import nn


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
