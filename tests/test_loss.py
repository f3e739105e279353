"""The shared seq2seq loss: the same value and gradient as PyTorch's cross-entropy, faster backward."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from hf_attn.models.seq2seq_utils import seq2seq_lm_loss


def _logits_and_labels(rows: int = 6, length: int = 5, vocab: int = 11) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    logits = torch.randn(rows, length, vocab, generator=generator) * 3
    labels = torch.randint(0, vocab, (rows, length), generator=generator)
    labels[0, 2:] = -100
    labels[3, 1:] = -100
    return logits, labels


@pytest.mark.parametrize("label_smoothing", [0.0, 0.1, 0.3])
@pytest.mark.parametrize("num_items_in_batch", [None, 40])
def test_value_and_gradient_equal_pytorch_cross_entropy(label_smoothing, num_items_in_batch):
    logits, labels = _logits_and_labels()
    ours = logits.clone().requires_grad_()
    reference = logits.clone().requires_grad_()
    loss = seq2seq_lm_loss(ours, labels, label_smoothing, num_items_in_batch)
    expected = nn.functional.cross_entropy(
        reference.reshape(-1, logits.size(-1)),
        labels.reshape(-1),
        ignore_index=-100,
        label_smoothing=label_smoothing,
        reduction="mean" if num_items_in_batch is None else "sum",
    )
    if num_items_in_batch is not None:
        expected = expected / num_items_in_batch
    (3.0 * loss).backward()
    (3.0 * expected).backward()
    torch.testing.assert_close(loss, expected)
    torch.testing.assert_close(ours.grad, reference.grad)
    assert torch.all(ours.grad[labels == -100] == 0)


def test_works_without_autograd():
    logits, labels = _logits_and_labels()
    with torch.inference_mode():
        value = seq2seq_lm_loss(logits, labels, 0.1)
    torch.testing.assert_close(value, seq2seq_lm_loss(logits, labels, 0.1))


@pytest.mark.parametrize("bad_label", [-5, 11])
def test_out_of_range_label_is_named(bad_label):
    logits, labels = _logits_and_labels()
    labels[1, 1] = bad_label
    with pytest.raises(ValueError, match=f"holds {bad_label}"):
        seq2seq_lm_loss(logits, labels)


def test_shape_mismatch_is_named():
    logits, labels = _logits_and_labels()
    with pytest.raises(ValueError, match="does not match the logits"):
        seq2seq_lm_loss(logits, labels[:, :-1])
