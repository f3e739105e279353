"""Our Transformer's weights as a ``ctranslate2.specs.TransformerSpec`` (the engine's own model description).

Built from the weights directly rather than through a Marian-layout copy for CTranslate2's
Transformers converter: that converter's Marian loader drops the last vocabulary row (Marian's
``<pad>``) and starts the decoder from a zero embedding, while our decoder starts from ``<s>``
(id 1) and keeps ``<pad>`` at id 0; it also assumes one vocabulary and post-LN. The spec takes
every variant we train (pre/post-LN, separate vocabularies, untied output, learned or
sinusoidal positions) without a detour. Our attention layout already is CTranslate2's: fused
``qkv_proj`` ([q; k; v] rows, no biases) for self-attention, ``q_proj`` + fused ``kv_proj`` for
cross-attention. The sinusoidal table is handed over as a position table, so its interleaved
sin/cos layout (CTranslate2's built-in one puts all sines first) is kept as trained.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from torch import nn

from ..models import TransformerSeq2SeqForConditionalGeneration
from .requirements import require_ctranslate2

if TYPE_CHECKING:
    from ctranslate2.specs import TransformerSpec

# transformers.activations.ACT2FN keys that CTranslate2 computes with the same function.
ACTIVATIONS = {
    "relu": "RELU",
    "gelu": "GELU",
    "gelu_python": "GELU",
    "gelu_new": "GELUTanh",
    "gelu_fast": "GELUTanh",
    "gelu_pytorch_tanh": "GELUTanh",
    "quick_gelu": "GELUSigmoid",
    "silu": "SWISH",
    "swish": "SWISH",
    "tanh": "Tanh",
    "sigmoid": "Sigmoid",
}


def _activation(name: str):
    from ctranslate2.specs import common_spec

    if name not in ACTIVATIONS:
        raise ValueError(
            f"CTranslate2 has no activation matching `activation_function={name!r}`; "
            f"exportable ones: {', '.join(sorted(ACTIVATIONS))}."
        )
    return common_spec.Activation[ACTIVATIONS[name]]


def _linear(spec, layer: nn.Linear) -> None:
    spec.weight = layer.weight.detach()
    if layer.bias is not None:
        spec.bias = layer.bias.detach()


def _layer_norm(spec, layer: nn.LayerNorm) -> None:
    spec.gamma = layer.weight.detach()
    spec.beta = layer.bias.detach()


def _stack(spec, stack: nn.Module) -> None:
    """Token embeddings, their scale, the position table and (pre-LN only) the final LayerNorm."""
    embeddings = spec.embeddings[0] if isinstance(spec.embeddings, list) else spec.embeddings
    embeddings.weight = stack.embed_tokens.weight.detach()
    spec.scale_embeddings = float(stack.embed_scale)
    spec.position_encodings.encodings = stack.embed_positions.weight.detach()
    if stack.layer_norm is not None:
        _layer_norm(spec.layer_norm, stack.layer_norm)


def _feed_forward(spec, layer: nn.Module) -> None:
    _linear(spec.linear_0, layer.ffn.fc1)
    _linear(spec.linear_1, layer.ffn.fc2)
    _layer_norm(spec.layer_norm, layer.ffn_sublayer.layer_norm)


def build_transformer_spec(
    model: TransformerSeq2SeqForConditionalGeneration, source_tokens: list[str], target_tokens: list[str]
) -> TransformerSpec:
    """The spec of ``model`` with its vocabularies (token strings in id order) and special tokens."""
    require_ctranslate2()
    from ctranslate2.specs import transformer_spec

    config = model.config
    pre_norm, activation = config.normalize_before, _activation(config.activation_function)
    encoder_spec = transformer_spec.TransformerEncoderSpec(
        config.encoder_layers, config.encoder_attention_heads, pre_norm=pre_norm, activation=activation
    )
    # Alignments (translate_batch(return_attention=True)) average the last layer's heads, as hf_attn.decoding does.
    decoder_spec = transformer_spec.TransformerDecoderSpec(
        config.decoder_layers,
        config.decoder_attention_heads,
        pre_norm=pre_norm,
        activation=activation,
        alignment_heads=config.decoder_attention_heads,
    )
    encoder, decoder = model.model.encoder, model.model.decoder
    _stack(encoder_spec, encoder)
    for spec, layer in zip(encoder_spec.layer, encoder.layers):
        _linear(spec.self_attention.linear[0], layer.self_attn.qkv_proj)
        _linear(spec.self_attention.linear[1], layer.self_attn.out_proj)
        _layer_norm(spec.self_attention.layer_norm, layer.self_attn_sublayer.layer_norm)
        _feed_forward(spec.ffn, layer)
    _stack(decoder_spec, decoder)
    for spec, layer in zip(decoder_spec.layer, decoder.layers):
        _linear(spec.self_attention.linear[0], layer.self_attn.qkv_proj)
        _linear(spec.self_attention.linear[1], layer.self_attn.out_proj)
        _layer_norm(spec.self_attention.layer_norm, layer.self_attn_sublayer.layer_norm)
        _linear(spec.attention.linear[0], layer.encoder_attn.q_proj)
        _linear(spec.attention.linear[1], layer.encoder_attn.kv_proj)
        _linear(spec.attention.linear[2], layer.encoder_attn.out_proj)
        _layer_norm(spec.attention.layer_norm, layer.encoder_attn_sublayer.layer_norm)
        _feed_forward(spec.ffn, layer)
    _linear(decoder_spec.projection, model.lm_head)

    spec = transformer_spec.TransformerSpec(encoder_spec, decoder_spec)
    spec.config.layer_norm_epsilon = config.layer_norm_eps
    spec.config.bos_token = target_tokens[config.bos_token_id]
    spec.config.eos_token = target_tokens[config.eos_token_id]
    spec.config.decoder_start_token = target_tokens[config.decoder_start_token_id]
    spec.register_source_vocabulary(source_tokens)
    spec.register_target_vocabulary(target_tokens)
    return spec
