"""The RNN with int8 linear layers (PyTorch dynamic quantization), saved and loaded as safetensors.

``torch.ao.quantization.quantize_dynamic`` stores each ``nn.Linear`` weight as int8 with one
scale per output row and quantizes activations on the fly. Only the linear layers are
quantized: with ``input_feeding`` (the default) the decoder steps with ``torch.lstm_cell`` on
the raw ``self.rnn.weight_*`` tensors, which a quantized ``nn.LSTM`` no longer has, and the
encoder's LSTMs run once per sentence (about 1% of beam-search time), so quantizing them gains
nothing measurable. The output projection (hidden x target vocabulary, every step, every beam)
is where int8 pays.

The folder holds ``config.json``, ``generation_config.json`` and ``model_int8.safetensors``:
int8 weights with their scales and zero points, and every fp32 tensor left (embeddings,
LSTMs, biases). No pickle. Loading rebuilds the model from its config, quantizes it the same
way and puts the saved values back, so ``load_quantized_rnn(save_quantized(m))`` generates
exactly what ``m`` does.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from torch import nn
from torch.ao.nn.quantized.dynamic import Linear as DynamicQuantizedLinear
from torch.ao.quantization import per_channel_dynamic_qconfig, quantize_dynamic
from transformers import AutoConfig, AutoModelForSeq2SeqLM, PreTrainedModel

WEIGHTS_NAME = "model_int8.safetensors"
# Suffixes of the saved int8 weight of a quantized linear layer ``name``.
INT8, SCALES, ZERO_POINTS, BIAS = ".weight.int8", ".weight.scales", ".weight.zero_points", ".bias"


def quantize_rnn(model: PreTrainedModel) -> PreTrainedModel:
    """A copy of an ``rnn_seq2seq`` model whose ``nn.Linear`` layers are dynamic int8 (per output row)."""
    if model.config.model_type != "rnn_seq2seq":
        raise ValueError(f"quantize_rnn quantizes rnn_seq2seq models, got {model.config.model_type!r}.")
    return quantize_dynamic(model, {nn.Linear: per_channel_dynamic_qconfig}, dtype=torch.qint8).eval()


def _quantized_linears(model: nn.Module) -> dict[str, DynamicQuantizedLinear]:
    return {name: module for name, module in model.named_modules() if isinstance(module, DynamicQuantizedLinear)}


def save_quantized(model: PreTrainedModel, folder: str | os.PathLike) -> None:
    """Write a :func:`quantize_rnn` model's config and weights to ``folder`` (safetensors, no pickle)."""
    folder = Path(folder)
    linears = _quantized_linears(model)
    if not linears:
        raise ValueError("The model has no quantized linear layer; call quantize_rnn(model) first.")
    tensors: dict[str, torch.Tensor] = {}
    for name, module in linears.items():
        weight, bias = module._weight_bias()
        tensors[name + INT8] = weight.int_repr()
        tensors[name + SCALES] = weight.q_per_channel_scales().float()
        tensors[name + ZERO_POINTS] = weight.q_per_channel_zero_points()
        if bias is not None:
            tensors[name + BIAS] = bias.detach()
    # named_parameters/buffers list each tied tensor once, under one of its names.
    for name, tensor in [*model.named_parameters(), *model.named_buffers()]:
        tensors[name] = tensor.detach().contiguous()
    model.config.save_pretrained(folder)
    model.generation_config.save_pretrained(folder)
    save_file(tensors, str(folder / WEIGHTS_NAME), metadata={"format": "pt", "quantization": "torch-int8"})


def load_quantized_rnn(folder: str | os.PathLike) -> PreTrainedModel:
    """The model :func:`save_quantized` wrote to ``folder``, in eval mode."""
    folder = Path(folder)
    if not (folder / WEIGHTS_NAME).is_file():
        raise FileNotFoundError(f"{folder} has no {WEIGHTS_NAME}; expected a folder written by save_quantized.")
    model = quantize_rnn(AutoModelForSeq2SeqLM.from_config(AutoConfig.from_pretrained(folder)))
    tensors = load_file(str(folder / WEIGHTS_NAME))
    for name, module in _quantized_linears(model).items():
        weight = torch._make_per_channel_quantized_tensor(
            tensors.pop(name + INT8), tensors.pop(name + SCALES).double(), tensors.pop(name + ZERO_POINTS), 0
        )
        module.set_weight_bias(weight, tensors.pop(name + BIAS, None))
    # Not load_state_dict: quantized layers expect their own packed entries, set above.
    targets = dict([*model.named_parameters(), *model.named_buffers()])
    if set(targets) != set(tensors):
        raise ValueError(
            f"{folder / WEIGHTS_NAME} does not match the config: missing {sorted(set(targets) - set(tensors))}, "
            f"unexpected {sorted(set(tensors) - set(targets))}."
        )
    with torch.no_grad():
        for name, target in targets.items():
            target.copy_(tensors[name])
    return model.eval()
