"""Pieces both hf_attn models share: label shifting, the seq2seq loss, remote-code metadata.

This file is a sibling of the modeling files and imports only torch, so
``save_pretrained`` can copy it with them for ``trust_remote_code`` loading.
"""

from __future__ import annotations

import torch
from torch import nn


def shift_tokens_right(labels: torch.Tensor, pad_token_id: int, decoder_start_token_id: int) -> torch.Tensor:
    """Teacher-forcing decoder inputs: ``[start, y_1, ..., y_{n-1}]``, with -100 replaced by pad."""
    if labels.dim() != 2:
        raise ValueError(f"`labels` must have shape (batch, target_length), got {tuple(labels.shape)}.")
    shifted = labels.new_empty(labels.shape)
    shifted[:, 1:] = labels[:, :-1]
    shifted[:, 0] = decoder_start_token_id
    return shifted.masked_fill(shifted == -100, pad_token_id)


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
        raise ValueError(
            f"`labels` shape {tuple(labels.shape)} does not match the logits' {tuple(logits.shape[:-1])}."
        )
    flat_logits = logits.reshape(-1, logits.size(-1)).float()
    flat_labels = labels.reshape(-1).to(logits.device)
    if num_items_in_batch is None:
        return nn.functional.cross_entropy(flat_logits, flat_labels, ignore_index=-100, label_smoothing=label_smoothing)
    total = nn.functional.cross_entropy(
        flat_logits, flat_labels, ignore_index=-100, label_smoothing=label_smoothing, reduction="sum"
    )
    if torch.is_tensor(num_items_in_batch):
        num_items_in_batch = num_items_in_batch.to(total.device)
    return total / num_items_in_batch


class RemoteCodeAutoMapMixin:
    """Completes ``config.auto_map`` on save so every Auto class works with ``trust_remote_code``.

    ``transformers`` writes an ``auto_map`` entry only for the class being saved (plus
    ``AutoConfig``); a checkpoint of the generation model would then not load through
    ``AutoModel``. Subclasses list the classes of their modeling file in
    ``_remote_code_auto_classes`` as ``{auto class name: class name}``.
    """

    _remote_code_auto_classes: dict[str, str] = {}

    def save_pretrained(self, save_directory, *args, **kwargs):  # noqa: D102 - same contract as the base
        if self.is_remote_code():
            module = type(self).__module__.rsplit(".", 1)[-1]
            auto_map = dict(getattr(self.config, "auto_map", None) or {})
            for auto_class, class_name in self._remote_code_auto_classes.items():
                auto_map[auto_class] = f"{module}.{class_name}"
            self.config.auto_map = auto_map
        return super().save_pretrained(save_directory, *args, **kwargs)


class ExplicitTiedWeightsMixin:
    """Applies a model's ``_tied_weights_keys`` whatever ``tie_word_embeddings`` says.

    The base class honours ``_tied_weights_keys`` only when ``tie_word_embeddings`` is set;
    sharing source and target embeddings is a separate switch, so each hf_attn model class
    sets its own ``{target: source}`` ties in ``__init__`` from both switches.
    """

    def get_expanded_tied_weights_keys(self, all_submodels: bool = False) -> dict:
        if all_submodels:
            return super().get_expanded_tied_weights_keys(all_submodels=True)
        return dict(self._tied_weights_keys or {})
