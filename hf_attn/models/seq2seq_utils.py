"""Functions both hf_attn models share: shift and loss, both names of the cache, embeddings and ties, saving.

Both models are an encoder and a decoder behind the same interface; what is the same in
both lives here once, as functions each modeling file calls from its own ``forward`` (and
one PreTrainedModel base for transformers' saving/loading plumbing). This file is a sibling
of the modeling files and imports only torch and transformers, so ``save_pretrained``
copies it with them for ``trust_remote_code``.
"""

from __future__ import annotations

import dataclasses
import warnings
from typing import Any

import torch
from torch import nn
from transformers import PreTrainedModel
from transformers.cache_utils import Cache
from transformers.modeling_outputs import Seq2SeqLMOutput
from transformers.utils import is_tracing

# transformers 5.24 renamed the generation cache from `past_key_values` to `cache` in forward
# arguments, output dataclass fields and what `generate()` passes to the model. Both models
# accept either name and fill the output field the installed release declares, so `generate()`
# sees its cache (and no deprecation warning) on every release `pyproject.toml` admits.
CACHE_OUTPUT_FIELD = (
    "cache" if "cache" in {field.name for field in dataclasses.fields(Seq2SeqLMOutput)} else "past_key_values"
)


def resolve_cache_argument(cache: Cache | None, past_key_values: Cache | None) -> Cache | None:
    """The decoder cache passed as ``cache`` (transformers ≥ 5.24) or ``past_key_values`` (before).

    Where the installed release has renamed it, the old name still works but warns, as
    transformers' own models do.
    """
    if cache is not None and past_key_values is not None:
        raise ValueError("Pass the decoder cache as `cache` or as `past_key_values`, not both.")
    if past_key_values is not None and CACHE_OUTPUT_FIELD == "cache":
        warnings.warn(
            "`past_key_values` is deprecated since transformers 5.24 renamed it; pass the decoder cache as `cache`.",
            FutureWarning,
            stacklevel=3,
        )
    return past_key_values if cache is None else cache


def cache_output(cache: Cache | None) -> dict[str, Cache | None]:
    """The cache as keyword arguments of an output dataclass, under the installed release's field name."""
    return {CACHE_OUTPUT_FIELD: cache}


def cache_of(outputs: Any) -> Cache | None:
    """The cache an output dataclass holds, read under the installed release's field name."""
    return getattr(outputs, CACHE_OUTPUT_FIELD)


def embed_checked(embedding: nn.Embedding, input_ids: torch.Tensor, name: str) -> torch.Tensor:
    """``embedding(input_ids)``, with a readable error for ids outside the vocabulary instead of an index error.

    One min/max per call (per generated token in ``generate``); the check reads tensor values,
    so it is skipped while tracing, like the models' other value checks.
    """
    if input_ids.numel() and not is_tracing(input_ids):
        low, high = torch.aminmax(input_ids)
        if int(low) < 0 or int(high) >= embedding.num_embeddings:
            bad = int(low) if int(low) < 0 else int(high)
            raise ValueError(
                f"`{name}` holds token id {bad}, outside this model's vocabulary of {embedding.num_embeddings} ids "
                f"(0-{embedding.num_embeddings - 1}); encode the text with the model's own tokenizer."
            )
    return embedding(input_ids)


def check_no_empty_rows(attention_mask: torch.Tensor | None) -> None:
    """Raise if a row of ``attention_mask`` masks every position: there is nothing to translate or attend to."""
    if attention_mask is not None and not is_tracing(attention_mask) and not bool(attention_mask.any(dim=-1).all()):
        raise ValueError("Every source sequence needs at least one unmasked token.")


def shift_tokens_right(labels: torch.Tensor, pad_token_id: int, decoder_start_token_id: int) -> torch.Tensor:
    """Teacher-forcing decoder inputs: ``[start, y_1, ..., y_{n-1}]``, with -100 replaced by pad."""
    if labels.dim() != 2:
        raise ValueError(f"`labels` must have shape (batch, target_length), got {tuple(labels.shape)}.")
    shifted = labels.new_empty(labels.shape)
    shifted[:, 1:] = labels[:, :-1]
    shifted[:, 0] = decoder_start_token_id
    return shifted.masked_fill(shifted == -100, pad_token_id)


class LabelSmoothedCrossEntropySum(torch.autograd.Function):
    """Sum over labelled rows of label-smoothed cross-entropy, with a hand-written backward.

    Same value and gradient as ``cross_entropy(..., label_smoothing=ε, reduction="sum")``
    (to float rounding), but the backward is one exponentiation of the saved log-softmax in
    place, (softmax − ε/V)·g minus (1−ε)·g at each label, instead of autograd's chain of
    a zero-filled (rows, vocab) NLL gradient, the smoothing term and the log-softmax
    backward. On the benchmark batches (8000-token vocabulary) the loss's forward and
    backward took half the time, about 4 % of a small Transformer's training step.
    Rows labelled -100 get a zero gradient.
    """

    @staticmethod
    def forward(ctx, logits: torch.Tensor, labels: torch.Tensor, label_smoothing: float) -> torch.Tensor:
        log_probs = torch.log_softmax(logits, dim=-1)
        labelled = labels != -100
        safe_labels = labels.masked_fill(~labelled, 0)
        per_row = -log_probs.gather(1, safe_labels[:, None]).squeeze(1)
        if label_smoothing:
            per_row = (1.0 - label_smoothing) * per_row - label_smoothing * log_probs.mean(dim=-1)
        ctx.save_for_backward(log_probs, safe_labels, labelled)
        ctx.label_smoothing = label_smoothing
        return (per_row * labelled).sum()

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_output: torch.Tensor) -> tuple[torch.Tensor, None, None]:
        log_probs, safe_labels, labelled = ctx.saved_tensors
        smoothing = ctx.label_smoothing
        row_scale = (labelled.to(log_probs.dtype) * grad_output)[:, None]
        grad = log_probs.exp_()
        if smoothing:
            grad.sub_(smoothing / log_probs.shape[-1])
        grad.mul_(row_scale)
        return grad.scatter_add_(1, safe_labels[:, None], -(1.0 - smoothing) * row_scale), None, None


def seq2seq_lm_loss(
    logits: torch.Tensor,
    labels: torch.Tensor,
    label_smoothing: float = 0.0,
    num_items_in_batch: int | torch.Tensor | None = None,
) -> torch.Tensor:
    """Token-level cross-entropy with label smoothing; positions labelled -100 are ignored.

    Without ``num_items_in_batch`` the loss is the mean over this batch's target tokens.
    With it (``Trainer`` passes the token count of all micro-batches of one optimizer
    step), the sum is divided by that count, so gradient accumulation and data parallel
    training average over the true number of tokens instead of averaging batch means.
    """
    if logits.shape[:-1] != labels.shape:
        raise ValueError(f"`labels` shape {tuple(labels.shape)} does not match the logits' {tuple(logits.shape[:-1])}.")
    vocab_size = logits.size(-1)
    flat_labels = labels.reshape(-1).to(logits.device)
    out_of_range = (flat_labels != -100) & ((flat_labels < 0) | (flat_labels >= vocab_size))
    # Reading the values would break a compiled graph: traced, the check is skipped like the models' others.
    if not is_tracing(flat_labels) and bool(out_of_range.any()):
        bad = flat_labels[out_of_range][0].item()
        raise ValueError(f"`labels` holds {bad}; a label must be -100 (ignored) or a token id below {vocab_size}.")
    total = LabelSmoothedCrossEntropySum.apply(logits.reshape(-1, vocab_size).float(), flat_labels, label_smoothing)
    if num_items_in_batch is None:
        return total / (flat_labels != -100).sum()
    if torch.is_tensor(num_items_in_batch):
        num_items_in_batch = num_items_in_batch.to(total.device)
    return total / num_items_in_batch


class HfAttnPreTrainedModel(PreTrainedModel):
    """What both models need from transformers' saving and loading beyond what the library does for outside models.

    * ``save_pretrained`` completes ``config.auto_map``: transformers writes an entry only for
      the class being saved (plus ``AutoConfig``), so a checkpoint of the generation model
      would not load through ``AutoModel`` with ``trust_remote_code``. Subclasses list their
      file's classes in ``_remote_code_auto_classes`` as ``{auto class name: class name}``.
    * Ties follow each model's own ``_tied_weights_keys`` whatever ``tie_word_embeddings``
      says: the base class honours them only when it is set, but sharing source and target
      embeddings is a separate switch (``share_encoder_decoder_embeddings``).
    * A tie source the checkpoint lacks stays reported and initialised (see
      :meth:`mark_tied_weights_as_initialized`).
    * ``from_pretrained`` keeps its loading report as ``model.loading_report`` (missing,
      unexpected and resized weights), so code that did not ask for ``output_loading_info``
      (a pipeline) can still refuse a model whose weights were partly initialised at random.
    """

    loading_report: Any = None

    _remote_code_auto_classes: dict[str, str] = {}

    def save_pretrained(self, save_directory, *args, **kwargs):  # noqa: D102 - same contract as the base
        if self.is_remote_code():
            module = type(self).__module__.rsplit(".", 1)[-1]
            auto_map = dict(getattr(self.config, "auto_map", None) or {})
            for auto_class, class_name in self._remote_code_auto_classes.items():
                auto_map[auto_class] = f"{module}.{class_name}"
            self.config.auto_map = auto_map
        return super().save_pretrained(save_directory, *args, **kwargs)

    def get_expanded_tied_weights_keys(self, all_submodels: bool = False) -> dict:
        if all_submodels:
            return super().get_expanded_tied_weights_keys(all_submodels=True)
        return dict(self._tied_weights_keys or {})

    def mark_tied_weights_as_initialized(self, loading_info: Any) -> None:
        """Keep a tie source that the checkpoint lacks (e.g. ``model.shared.weight``) reported and initialised.

        transformers marks tied targets as initialised so that loading skips their init; a
        target shares its Parameter with its source, so the source looks initialised too, and
        for models defined outside the library a filter then drops it from the missing keys:
        it stayed on the meta device and no missing key was reported. A source missing together
        with all its targets is put back, so it is reported, materialised and initialised, as
        for Marian.
        """
        # Called once per from_pretrained with the report it fills in (and finalises) in place.
        self.loading_report = loading_info
        missing_before = set(loading_info.missing_keys)
        super().mark_tied_weights_as_initialized(loading_info)
        tied = self.all_tied_weights_keys
        for source in set(tied.values()) & missing_before:
            if all(target in missing_before for target, its_source in tied.items() if its_source == source):
                loading_info.missing_keys.add(source)
                self.get_parameter_or_buffer(source)._is_hf_initialized = False


SHARED_EMBEDDING_TIES = {"encoder.embed_tokens.weight": "shared.weight", "decoder.embed_tokens.weight": "shared.weight"}
"""A base model's ties when one embedding matrix (``shared``) serves source and target."""


def build_token_embeddings(config: Any, embedding_dim: int) -> tuple[nn.Embedding | None, nn.Embedding, nn.Embedding]:
    """``(shared, source, target)`` embeddings of a base model; ``shared`` is None without one shared matrix.

    With ``share_encoder_decoder_embeddings`` one matrix serves both sides (declare
    :data:`SHARED_EMBEDDING_TIES`); otherwise the target embeddings have ``decoder_vocab_size`` rows.
    """
    if config.share_encoder_decoder_embeddings:
        shared = nn.Embedding(config.vocab_size, embedding_dim, config.pad_token_id)
        return shared, shared, shared
    return (
        None,
        nn.Embedding(config.vocab_size, embedding_dim, config.pad_token_id),
        nn.Embedding(config.target_vocab_size, embedding_dim, config.pad_token_id),
    )


def lm_head_ties(config: Any) -> dict[str, str]:
    """The output projection's tie to the target embeddings, when ``tie_word_embeddings`` asks for one."""
    if not config.tie_word_embeddings:
        return {}
    source = "model.shared" if config.share_encoder_decoder_embeddings else "model.decoder.embed_tokens"
    return {"lm_head.weight": f"{source}.weight"}


def seq2seq_lm_output(outputs: Any, logits: torch.Tensor, loss: torch.Tensor | None) -> Seq2SeqLMOutput:
    """The generation model's output: its logits and loss, plus everything the base model returned."""
    return Seq2SeqLMOutput(
        loss=loss,
        logits=logits,
        **cache_output(cache_of(outputs)),
        decoder_hidden_states=outputs.decoder_hidden_states,
        decoder_attentions=outputs.decoder_attentions,
        cross_attentions=outputs.cross_attentions,
        encoder_last_hidden_state=outputs.encoder_last_hidden_state,
        encoder_hidden_states=outputs.encoder_hidden_states,
        encoder_attentions=outputs.encoder_attentions,
    )
