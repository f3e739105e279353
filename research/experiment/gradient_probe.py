"""Vanishing gradients, measured: how much training signal reaches each source position.

For one (source, reference) pair the probe computes the token-mean cross-entropy of the
reference under teacher forcing and its gradient with respect to the *output of the
source embedding layer*; the L2 norm of that gradient at source position i says how
strongly the loss can still change token i's representation. A plain RNN encoder-decoder
reaches a source token only through the recurrence (the norm decays with the distance to
where the decoder reads the encoder state); attention gives every position a direct path.

The probe is model-agnostic: it feeds ``inputs_embeds=model.get_input_embeddings()(input_ids)``
(with ``requires_grad``) to the model's own forward, which both hf_attn models accept, and
computes the loss from the returned logits, so label smoothing or other training-loss
settings of a model do not change what is measured.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase


def source_gradient_norms(model: PreTrainedModel, input_ids: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """‖∂loss/∂(embedding output)‖₂ at every source position of one unpadded pair; shape (source_length,).

    ``input_ids`` and ``labels`` are (1, length) tensors on the model's device. Dropout is off
    (eval mode) so the measure is deterministic; cuDNN is bypassed because its RNN kernels
    refuse a backward pass in eval mode. The model's train/eval mode is restored afterwards.
    """
    if input_ids.dim() != 2 or input_ids.shape[0] != 1 or labels.shape[0] != 1:
        raise ValueError(
            f"Give one pair as (1, length) tensors, got {tuple(input_ids.shape)} and {tuple(labels.shape)}."
        )
    was_training = model.training
    model.eval()
    try:
        with torch.enable_grad(), torch.backends.cudnn.flags(enabled=False):
            embeddings = model.get_input_embeddings()(input_ids).detach().requires_grad_(True)
            logits = model(inputs_embeds=embeddings, attention_mask=torch.ones_like(input_ids), labels=labels).logits
            loss = torch.nn.functional.cross_entropy(logits.flatten(0, 1).float(), labels.flatten(), ignore_index=-100)
            (gradient,) = torch.autograd.grad(loss, embeddings)
    finally:
        model.train(was_training)
    return gradient[0].float().norm(dim=-1).detach().cpu()


@dataclass
class GradientProfile:
    """Gradient norms by source position, averaged over verses (see :func:`probe_gradients`).

    ``from_start[i]`` is the mean norm at the i-th source token, ``from_end[i]`` at the i-th
    token before the end (0 = the final ``</s>``); both cover the ``positions`` tokens every
    probed verse has, so each point averages all verses. ``spread`` is the geometric mean over
    verses of max/min norm along the verse (1 = every position gets the same signal), and
    ``first_to_last`` the geometric mean of norm[first token] / norm[last token].
    """

    num_verses: int
    positions: int
    from_start: list[float]
    from_end: list[float]
    spread: float
    first_to_last: float
    source_lengths: list[int]


def _geometric_mean(values: Sequence[float]) -> float:
    return math.exp(sum(math.log(v) for v in values) / len(values))


def summarise_profiles(norms: Sequence[torch.Tensor]) -> GradientProfile:
    """Average per-verse norm vectors (of different lengths) into a :class:`GradientProfile`."""
    if not norms:
        raise ValueError("No verses were probed: give at least one (source, reference) pair.")
    tiny = torch.finfo(torch.float32).tiny  # a norm that underflowed to 0 still has a finite ratio
    norms = [n.clamp_min(tiny) for n in norms]
    positions = min(len(n) for n in norms)
    return GradientProfile(
        num_verses=len(norms),
        positions=positions,
        from_start=torch.stack([n[:positions] for n in norms]).mean(0).tolist(),
        from_end=torch.stack([n.flip(0)[:positions] for n in norms]).mean(0).tolist(),
        spread=_geometric_mean([float(n.max() / n.min()) for n in norms]),
        first_to_last=_geometric_mean([float(n[0] / n[-1]) for n in norms]),
        source_lengths=[len(n) for n in norms],
    )


def probe_gradients(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    sources: Sequence[str],
    references: Sequence[str],
) -> GradientProfile:
    """Gradient norms by source position over (source, reference) pairs, one pair at a time (no padding)."""
    if len(sources) != len(references):
        raise ValueError(f"Got {len(sources)} sources but {len(references)} references; they must pair up.")
    device = next(model.parameters()).device
    norms = []
    for source, reference in zip(sources, references):
        encoded = tokenizer(source, text_target=reference, return_tensors="pt")
        norms.append(source_gradient_norms(model, encoded["input_ids"].to(device), encoded["labels"].to(device)))
    return summarise_profiles(norms)
