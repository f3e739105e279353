"""Configuration of the RNN encoder-decoder with attention (Bahdanau et al. 2014; Luong et al. 2015).

Sizes: ``hidden_size`` is the decoder's state size, which is also the size of the attention
space and of the attentional vector h̃_t that feeds the output projection.
``encoder_hidden_size`` is the size of *one direction* of the encoder; by default it is
``hidden_size // 2`` for a bidirectional encoder (so the concatenated encoder states are
``hidden_size`` wide, as dot-product attention needs) and ``hidden_size`` otherwise. Set it
explicitly for the Bahdanau/Joey NMT convention of full-size directions (then the encoder
states are ``2 * encoder_hidden_size`` wide and ``luong_dot`` is not available).
"""

from __future__ import annotations

from transformers import PreTrainedConfig

from .attention import ATTENTION_TYPES
from .config_validation import (
    described,
    document_fields,
    require_bool,
    require_choice,
    require_positive_int,
    require_positive_number,
    require_probability,
    validate_vocabularies,
)

RNN_TYPES = ("gru", "lstm")
DECODER_INIT_TYPES = ("bridge", "zero")


class RNNSeq2SeqConfig(PreTrainedConfig):
    r"""Configuration of :class:`~hf_attn.RNNSeq2SeqModel` / :class:`~hf_attn.RNNSeq2SeqForConditionalGeneration`.

    Each field's meaning is declared with it (``described``); ``help()`` and the model cards show them.
    """

    model_type = "rnn_seq2seq"
    keys_to_ignore_at_inference = ["past_key_values", "cache"]
    attribute_map = {"num_hidden_layers": "encoder_layers", "d_model": "hidden_size"}

    vocab_size: int = described(8000, "size of the (source, or shared) vocabulary.")
    decoder_vocab_size: int | None = described(
        None,
        "size of the target vocabulary when source and target do not share one "
        "(``share_encoder_decoder_embeddings=False``); ``None`` sets it to ``vocab_size``.",
    )
    rnn_type: str = described("lstm", '``"gru"`` or ``"lstm"``, for encoder and decoder alike.')
    hidden_size: int = described(256, "decoder state size = attention size = size of the attentional vector.")
    embedding_size: int = described(256, "size of the source and target token embeddings.")
    encoder_hidden_size: int | None = described(
        None,
        "state size of each encoder direction (see the module docstring; ``None`` picks ``hidden_size // 2`` "
        "when bidirectional, else ``hidden_size``).",
    )
    encoder_layers: int = described(1, "stacked RNN layers.")
    decoder_layers: int = described(1, "stacked RNN layers.")
    bidirectional_encoder: bool = described(True, "run the encoder in both directions and concatenate the states.")
    attention_type: str = described(
        "bahdanau",
        "``'bahdanau'`` (additive, Bahdanau 2014 eq. 6), ``'luong_dot'``, ``'luong_general'``, "
        "``'luong_concat'`` (Luong 2015 eq. 8), or ``'none'`` (the plain encoder-decoder: "
        "the decoder sees the source only through its initial state).",
    )
    input_feeding: bool = described(
        True,
        "feed the previous attentional vector h̃_{t-1} into the decoder RNN (Luong 2015, §3.3). "
        "Off, the decoder RNN runs over the whole target in one fused call.",
    )
    decoder_init: str = described(
        "bridge",
        '``"bridge"`` (a learned tanh projection of the encoder\'s final state) or ``"zero"``.',
    )
    dropout: float = described(
        0.1,
        "dropout between stacked RNN layers, on the encoder outputs and on the attentional vector.",
    )
    embedding_dropout: float = described(0.1, "dropout on the token embeddings.")
    label_smoothing: float = described(0.0, "label smoothing mass of the training loss.")
    init_std: float | None = described(
        None,
        "standard deviation of the embedding initialisation; ``None`` means ``embedding_size ** -0.5``.",
    )
    share_encoder_decoder_embeddings: bool = described(True, "one embedding matrix for source and target tokens.")
    tie_word_embeddings: bool | None = described(
        None,
        "the output projection reuses the target embedding matrix (needs "
        "``embedding_size == hidden_size``); ``None`` ties exactly when the sizes are equal, so "
        "the papers' shapes (e.g. 620-wide embeddings, 1000-wide states) build untied.",
    )
    use_cache: bool = True
    is_encoder_decoder: bool = True
    pad_token_id: int = 0
    bos_token_id: int = 1
    eos_token_id: int = 2
    decoder_start_token_id: int = 1

    def __post_init__(self, **kwargs):
        if self.encoder_hidden_size is None:
            bidirectional = self.bidirectional_encoder is True
            if bidirectional and isinstance(self.hidden_size, int) and self.hidden_size % 2:
                raise ValueError(
                    f"`hidden_size` must be even with `bidirectional_encoder=True` and the default "
                    f"`encoder_hidden_size` (hidden_size // 2 per direction), got {self.hidden_size}; "
                    "or set `encoder_hidden_size` explicitly."
                )
            if isinstance(self.hidden_size, int):
                self.encoder_hidden_size = self.hidden_size // 2 if bidirectional else self.hidden_size
        if self.tie_word_embeddings is None:
            self.tie_word_embeddings = self.embedding_size == self.hidden_size
        if self.decoder_vocab_size is None:
            self.decoder_vocab_size = self.vocab_size
        super().__post_init__(**kwargs)
        self.validate_architecture()

    @property
    def target_vocab_size(self) -> int:
        """Size of the vocabulary the decoder reads and predicts (``decoder_vocab_size``)."""
        return self.decoder_vocab_size

    @property
    def encoder_output_size(self) -> int:
        """Width of the encoder states h̄_s the decoder attends over (both directions concatenated)."""
        return self.encoder_hidden_size * (2 if self.bidirectional_encoder else 1)

    def validate_architecture(self) -> None:
        """Check every field and the combinations that cannot be built; messages name the field.

        transformers' name for a config's own checks. Called at the end of ``__post_init__``
        (not through ``@strict``, whose wrapper would turn these ValueErrors into another type).
        """
        validate_vocabularies(self)
        for name in (
            "hidden_size",
            "embedding_size",
            "encoder_hidden_size",
            "encoder_layers",
            "decoder_layers",
        ):
            require_positive_int(name, getattr(self, name))
        for name in (
            "bidirectional_encoder",
            "input_feeding",
            "share_encoder_decoder_embeddings",
            "tie_word_embeddings",
            "use_cache",
        ):
            require_bool(name, getattr(self, name))
        for name in ("dropout", "embedding_dropout", "label_smoothing"):
            require_probability(name, getattr(self, name))
        require_positive_number("init_std", self.init_std, optional=True)
        require_choice("rnn_type", self.rnn_type, RNN_TYPES)
        require_choice("attention_type", self.attention_type, ATTENTION_TYPES)
        require_choice("decoder_init", self.decoder_init, DECODER_INIT_TYPES)
        if self.attention_type == "luong_dot" and self.encoder_output_size != self.hidden_size:
            raise ValueError(
                "`attention_type='luong_dot'` scores h_tᵀh̄_s, so the encoder states "
                f"({self.encoder_output_size} = encoder_hidden_size × directions) must match `hidden_size` "
                f"({self.hidden_size}); use 'luong_general', 'luong_concat' or 'bahdanau', or change the sizes."
            )
        if self.attention_type == "none" and self.decoder_init == "zero":
            raise ValueError(
                "`attention_type='none'` lets the decoder see the source only through its initial state, "
                "so `decoder_init` must be 'bridge', not 'zero'."
            )
        if self.tie_word_embeddings and self.embedding_size != self.hidden_size:
            raise ValueError(
                "`tie_word_embeddings=True` shares the target embeddings with the output projection, "
                f"so `embedding_size` ({self.embedding_size}) must equal `hidden_size` ({self.hidden_size}); "
                "set `tie_word_embeddings=False` or make the sizes equal."
            )


document_fields(RNNSeq2SeqConfig)

__all__ = ["RNNSeq2SeqConfig"]
