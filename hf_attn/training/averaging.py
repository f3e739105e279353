"""Checkpoint averaging: one model whose weights are the mean of several checkpoints' weights.

Vaswani et al. (2017) average the last checkpoints of a run for their results, and Joey
NMT, OpenNMT-py and fairseq ship a tool for it: late checkpoints of one run sit near one
minimum, and their mean usually translates better than any of them. The inputs are
training checkpoints (``output_dir/checkpoints/step-*``, whose ``model.safetensors`` holds
the model's weights) or ``save_pretrained`` folders; the output is a ``save_pretrained``
folder with the reference folder's config, generation config and tokenizer.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import torch
from safetensors import safe_open
from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

from ..atomic import atomic_directory
from .checkpointing import CHECKPOINT_PREFIX

logger = logging.getLogger(__name__)

WEIGHTS_NAME = "model.safetensors"


def _weights_file(checkpoint: Path) -> Path:
    weights = checkpoint / WEIGHTS_NAME
    if not weights.is_file():
        raise FileNotFoundError(
            f"{checkpoint} has no {WEIGHTS_NAME}: pass training checkpoints (checkpoints/{CHECKPOINT_PREFIX}*) "
            "or save_pretrained folders."
        )
    return weights


def default_reference(checkpoints: Sequence[Path]) -> Path:
    """The folder whose config and tokenizer the average keeps: a save_pretrained input, else the run's ``best/``."""
    for checkpoint in checkpoints:
        if (checkpoint / "config.json").is_file():
            return checkpoint
    best = checkpoints[-1].parent.parent / "best"
    if not (best / "config.json").is_file():
        raise FileNotFoundError(
            f"No config to build the averaged model from: none of the inputs is a save_pretrained folder and {best} "
            "does not exist; pass reference=MODEL_DIR (--reference in the CLI)."
        )
    return best


def average_state_dicts(checkpoints: Sequence[Path]) -> dict[str, torch.Tensor]:
    """The element-wise mean of the checkpoints' tensors, accumulated in float64, in each tensor's own dtype.

    Every checkpoint must hold the same tensor names and shapes (the same architecture);
    integer tensors, which have no meaningful mean, must be equal in all of them.
    """
    if not checkpoints:
        raise ValueError("Average of no checkpoints: pass at least one.")
    sums: dict[str, torch.Tensor] = {}
    first: dict[str, torch.Tensor] = {}
    for index, checkpoint in enumerate(checkpoints):
        with safe_open(str(_weights_file(checkpoint)), framework="pt") as tensors:
            names = set(tensors.keys())
            if index == 0:
                first = {name: tensors.get_tensor(name) for name in names}
                sums = {name: tensor.to(torch.float64) for name, tensor in first.items()}
                continue
            if names != set(first):
                different = sorted(names.symmetric_difference(first))[:5]
                raise ValueError(
                    f"{checkpoint} holds other tensors than {checkpoints[0]} (e.g. {different}): "
                    "only checkpoints of one architecture can be averaged."
                )
            for name in sorted(names):
                tensor = tensors.get_tensor(name)
                if tensor.shape != first[name].shape:
                    raise ValueError(
                        f"`{name}` has shape {tuple(tensor.shape)} in {checkpoint} but "
                        f"{tuple(first[name].shape)} in {checkpoints[0]}: only checkpoints of one size can be averaged."
                    )
                if not tensor.is_floating_point() and not torch.equal(tensor, first[name]):
                    raise ValueError(f"Integer tensor `{name}` differs between {checkpoints[0]} and {checkpoint}.")
                sums[name] += tensor.to(torch.float64)
    count = len(checkpoints)
    return {
        name: (sums[name] / count).to(tensor.dtype) if tensor.is_floating_point() else tensor
        for name, tensor in first.items()
    }


def average_checkpoints(
    checkpoints: Sequence[str | Path], output_dir: str | Path, reference: str | Path | None = None
) -> Path:
    """Write the average of ``checkpoints`` as a ``save_pretrained`` folder at ``output_dir`` (atomically).

    ``reference`` gives the config, generation config and tokenizer (default: see
    :func:`default_reference`). Returns ``output_dir``.
    """
    checkpoints = [Path(checkpoint) for checkpoint in checkpoints]
    reference = Path(reference) if reference is not None else default_reference(checkpoints)
    averaged = average_state_dicts(checkpoints)
    model = AutoModelForSeq2SeqLM.from_pretrained(reference)
    tokenizer = AutoTokenizer.from_pretrained(reference)
    missing, unexpected = model.load_state_dict(averaged, strict=False)
    tied = set(model.all_tied_weights_keys)
    if unexpected or set(missing) - tied:
        raise ValueError(
            f"The checkpoints do not fit the model in {reference}: missing {sorted(set(missing) - tied)[:5]}, "
            f"unexpected {sorted(unexpected)[:5]}."
        )
    model.tie_weights()

    def write(directory: Path) -> None:
        model.save_pretrained(directory)
        tokenizer.save_pretrained(directory)

    logger.info("Averaged %d checkpoints into %s", len(checkpoints), output_dir)
    return atomic_directory(output_dir, write)


def last_checkpoints(checkpoints_root: Path, count: int) -> list[Path]:
    """The ``count`` newest complete checkpoints of a run, oldest first (fewer when the run holds fewer)."""
    finished = sorted(path for path in checkpoints_root.glob(f"{CHECKPOINT_PREFIX}*") if path.is_dir())
    return finished[-count:]
