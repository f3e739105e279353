"""Configuration of the from-scratch Transformer encoder-decoder (Vaswani et al., 2017)."""

from __future__ import annotations

from transformers import PreTrainedConfig
from transformers.activations import ACT2FN

from .config_validation import (
    described,
    document_fields,
    require_bool,
    require_choice,
    require_non_negative_int,
    require_positive_int,
    require_positive_number,
    require_probability,
    validate_vocabularies,
)

POSITION_EMBEDDING_TYPES = ("sinusoidal", "learned")


class TransformerSeq2SeqConfig(PreTrainedConfig):
    r"""Hyper-parameters of [`TransformerSeq2SeqModel`]; defaults are the paper's base model.

    Attribute names follow `transformers` (Marian/BART) so users find what they expect.

    Each field's meaning is declared with it (``described``); ``help()`` and the model cards show them.
    """

    model_type = "transformer_seq2seq"
    keys_to_ignore_at_inference = ["past_key_values", "cache"]
    attribute_map = {
        "num_attention_heads": "encoder_attention_heads",
        "hidden_size": "d_model",
        "num_hidden_layers": "encoder_layers",
    }

    vocab_size: int = described(8000, "size of the (source, or shared) vocabulary.")
    decoder_vocab_size: int | None = described(
        None,
        "size of the target vocabulary when source and target do not share one "
        "(`share_encoder_decoder_embeddings=False`); `None` sets it to `vocab_size` (so "
        "`config.get_text_config(decoder=True).vocab_size` reports it, as Marian's does).",
    )
    d_model: int = described(512, "width of every layer (d_model in the paper).")
    encoder_layers: int = described(6, "number of stacked layers (N).")
    decoder_layers: int = described(6, "number of stacked layers (N).")
    encoder_attention_heads: int = described(8, "heads per attention (h); must divide d_model.")
    decoder_attention_heads: int = described(8, "heads per attention (h); must divide d_model.")
    encoder_ffn_dim: int = described(2048, "inner size of the position-wise feed-forward (d_ff).")
    decoder_ffn_dim: int = described(2048, "inner size of the position-wise feed-forward (d_ff).")
    activation_function: str = described(
        "relu",
        'any key of `transformers.activations.ACT2FN` ("relu" in the paper).',
    )
    dropout: float = described(0.1, "residual and embedding dropout (P_drop).")
    attention_dropout: float = described(0.0, "dropout on the attention weights.")
    activation_dropout: float = described(0.0, "dropout inside the feed-forward, after the activation.")
    max_position_embeddings: int = described(1024, "longest sequence the position table covers.")
    position_embedding_type: str = described("sinusoidal", '"sinusoidal" (the paper, section 3.5) or "learned".')
    normalize_before: bool = described(
        False,
        "pre-LayerNorm (`x + f(LN(x))`, stabler for deep stacks) instead of the paper's "
        "post-LayerNorm (`LN(x + f(x))`); pre-LN adds a final LayerNorm per stack.",
    )
    scale_embedding: bool = described(True, "multiply token embeddings by sqrt(d_model) (the paper, section 3.4).")
    share_encoder_decoder_embeddings: bool = described(True, "one embedding matrix for source and target tokens.")
    tie_word_embeddings: bool = described(True, "the output projection reuses the target embedding matrix.")
    label_smoothing: float = described(0.1, "epsilon_ls of the training loss (0.1 in the paper).")
    layer_norm_eps: float = described(1e-5, "LayerNorm epsilon.")
    init_std: float | None = described(
        None,
        "standard deviation of the embedding initialisation; `None` means d_model ** -0.5.",
    )
    use_cache: bool = True
    is_encoder_decoder: bool = True
    pad_token_id: int = 0
    bos_token_id: int = 1
    eos_token_id: int = 2
    decoder_start_token_id: int = 1

    def __post_init__(self, **kwargs):
        if self.decoder_vocab_size is None:
            self.decoder_vocab_size = self.vocab_size
        super().__post_init__(**kwargs)
        self.validate_architecture()

    @property
    def target_vocab_size(self) -> int:
        """Size of the vocabulary the decoder reads and predicts (``decoder_vocab_size``)."""
        return self.decoder_vocab_size

    def validate_architecture(self) -> None:
        """Check every field and the combinations that cannot be built; messages name the field.

        transformers' name for a config's own checks. Called at the end of ``__post_init__``
        (not through ``@strict``, whose wrapper would turn these ValueErrors into another type).
        """
        validate_vocabularies(self)
        for name in (
            "d_model",
            "encoder_attention_heads",
            "decoder_attention_heads",
            "encoder_ffn_dim",
            "decoder_ffn_dim",
            "max_position_embeddings",
        ):
            require_positive_int(name, getattr(self, name))
        require_non_negative_int("encoder_layers", self.encoder_layers)
        require_positive_int("decoder_layers", self.decoder_layers)
        for heads_name in ("encoder_attention_heads", "decoder_attention_heads"):
            heads = getattr(self, heads_name)
            if self.d_model % heads:
                raise ValueError(f"`d_model` ({self.d_model}) must be divisible by `{heads_name}` ({heads}).")
        for name in ("dropout", "attention_dropout", "activation_dropout", "label_smoothing"):
            require_probability(name, getattr(self, name))
        require_choice("activation_function", self.activation_function, sorted(ACT2FN))
        require_choice("position_embedding_type", self.position_embedding_type, POSITION_EMBEDDING_TYPES)
        for name in ("normalize_before", "scale_embedding", "share_encoder_decoder_embeddings", "tie_word_embeddings"):
            require_bool(name, getattr(self, name))
        require_positive_number("layer_norm_eps", self.layer_norm_eps)
        require_positive_number("init_std", self.init_std, optional=True)


document_fields(TransformerSeq2SeqConfig)

__all__ = ["TransformerSeq2SeqConfig"]
