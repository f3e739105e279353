"""Translate with any seq2seq model and extract its attention alignments.

Nothing here knows which model it drives: everything goes through ``generate()``, the
tokenizer and the library's output dataclasses, so the RNN and the Transformer translate
through the same code (docs/architecture.md, principle 2). Scoring lives in ``hf_attn.evaluation``;
this module needs no metric library, so importing the package (which registers the
pipeline built on it) stays light.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from .models.config_validation import require_positive_int

logger = logging.getLogger(__name__)


def default_max_new_tokens(source_length: int) -> int:
    """Generation bound for a source of ``source_length`` tokens: 1.5 * length + 10.

    Generous for translation between related languages, yet it stops an untrained model
    that never emits EOS from running to the model's maximum length on every sentence.
    """
    return int(1.5 * source_length) + 10


@contextmanager
def _eval_mode(model: PreTrainedModel) -> Iterator[None]:
    """Switch dropout off for evaluation and restore the caller's mode (the training loop's)."""
    was_training = model.training
    model.eval()
    try:
        yield
    finally:
        model.train(was_training)


def _resolve_device(model: PreTrainedModel, device: str | torch.device | None) -> torch.device:
    """The device to run on: ``device`` if given (the model is moved there), else the model's."""
    if device is None:
        return next(model.parameters()).device
    device = torch.device(device)
    model.to(device)
    return device


def beam_stopping(num_beams: int) -> dict[str, Any]:
    """``generate`` kwargs for the stopping rule of NMT toolkits: beam search ends once ``num_beams`` hypotheses have.

    fairseq, OpenNMT, Marian and CTranslate2 all stop there. transformers' default
    (``early_stopping=False``) searches on while a running beam might still win after length
    normalisation: slower, and CTranslate2 cannot follow it, so an export could not reproduce
    ``translate`` word for word. Greedy search takes no stopping flag.
    """
    return {"early_stopping": True} if num_beams > 1 else {}


def _end_token_ids(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase) -> tuple[torch.Tensor, int | None]:
    """EOS ids (a tensor, possibly empty) and the pad id that ``generate`` uses to fill finished rows."""
    config = model.generation_config
    eos = config.eos_token_id if config.eos_token_id is not None else tokenizer.eos_token_id
    eos_ids = torch.tensor([] if eos is None else [eos] if isinstance(eos, int) else list(eos), dtype=torch.long)
    return eos_ids, tokenizer.pad_token_id if config.pad_token_id is None else config.pad_token_id


def _generated_length(tokens: torch.Tensor, eos_ids: torch.Tensor, pad_id: int | None) -> int:
    """How many of ``tokens`` the model produced: up to and including the first EOS, else the non-pad ones.

    Padding alone cannot tell: beam search fills finished rows with EOS when the pad id is 0
    (transformers 5.23 tests ``pad_token_id or eos_token_id``).
    """
    ends = torch.isin(tokens, eos_ids.to(tokens.device)).nonzero()
    if len(ends):
        return int(ends[0]) + 1
    return len(tokens) if pad_id is None else int((tokens != pad_id).sum())


def model_position_limit(model: PreTrainedModel) -> int | None:
    """Longest sequence a model with a position table can take (``max_position_embeddings``), else None.

    Sources beyond it are truncated (with a warning: :func:`warn_truncated`) and generation
    stops there, instead of failing on one long verse in the middle of an evaluation.
    """
    return getattr(model.config, "max_position_embeddings", None)


HF_ATTN_MODEL_TYPES = ("transformer_seq2seq", "rnn_seq2seq")


def check_generation_settings(num_beams: Any, batch_size: Any = 1) -> None:
    """Raise a ValueError naming the setting for a beam count or batch size that is not a positive integer."""
    require_positive_int("num_beams", num_beams)
    require_positive_int("batch_size", batch_size)


def check_sources(sources: Sequence[Any]) -> list[str]:
    """The sources as a list of strings; anything else is a TypeError naming its position."""
    if isinstance(sources, str):
        raise TypeError("`sources` must be a list of strings, not a single string: pass [text].")
    sources = list(sources)
    for index, source in enumerate(sources):
        if not isinstance(source, str):
            raise TypeError(f"sources[{index}] is {type(source).__name__} ({source!r:.60}); expected a string.")
    return sources


def is_blank(source: str) -> bool:
    """Empty or whitespace-only: such a source translates to "" without asking the model (which would invent text)."""
    return not source.strip()


def check_tokenizer_fits(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase) -> None:
    """For hf_attn models, raise unless the tokenizer's vocabulary and special ids are the model's.

    A tokenizer of another size maps text to the wrong embeddings (or past the end of them)
    and returns garbage with no error; other models' tokenizers follow other conventions and
    are not checked.
    """
    if getattr(model.config, "model_type", None) in HF_ATTN_MODEL_TYPES:
        from .tokenization import check_tokenizer_matches_config

        check_tokenizer_matches_config(tokenizer, model.config)


def warn_truncated(lengths: Sequence[int], limit: int | None) -> None:
    """Log a warning naming the limit when sources of ``lengths`` tokens exceed ``max_position_embeddings``."""
    if limit is None:
        return
    over = [(index, length) for index, length in enumerate(lengths) if length > limit]
    if over:
        index, length = max(over, key=lambda item: item[1])
        logger.warning(
            "%d of %d source(s) exceed the model's limit of %d tokens (max_position_embeddings) and were truncated "
            "to it, so only their first %d tokens are translated (the longest, source %d, has %d tokens).",
            len(over),
            len(lengths),
            limit,
            limit,
            index,
            length,
        )


def tokenize_within_limit(
    tokenizer: PreTrainedTokenizerBase, texts: str | list[str], limit: int | None, **kwargs: Any
) -> Any:
    """``tokenizer(texts, **kwargs)``, truncated to ``limit`` tokens (the model's position table) with a warning.

    Every engine and the pipeline encode sources through this, so a source too long for the
    model is cut, and reported, the same way everywhere.
    """
    if limit:
        batch = [texts] if isinstance(texts, str) else texts
        # verbose=False: transformers' own "longer than the specified maximum" warning would repeat this one.
        warn_truncated([len(ids) for ids in tokenizer(batch, verbose=False)["input_ids"]], limit)
        kwargs = {**kwargs, "truncation": True, "max_length": limit}
    return tokenizer(texts, **kwargs)


def encode_sources(
    tokenizer: PreTrainedTokenizerBase, sources: Sequence[str], position_limit: int | None
) -> tuple[list[str], dict[int, list[int]], list[int]]:
    """Checked sources, the token ids of the non-blank ones (truncated to ``position_limit``) and their batch order.

    The order is longest first: a batch that does not fit in memory fails at once, not at the end,
    and length-sorted batches carry little padding. Blank sources are left out (they translate to "").
    """
    sources = check_sources(sources)
    active = [i for i, source in enumerate(sources) if not is_blank(source)]
    texts = [sources[i] for i in active]
    encoded = dict(zip(active, tokenize_within_limit(tokenizer, texts, position_limit)["input_ids"])) if texts else {}
    return sources, encoded, sorted(active, key=lambda i: -len(encoded[i]))


def generation_limits(
    source_lengths: Sequence[int],
    max_new_tokens: int | None,
    position_limit: int | None,
    max_length_ratio: float | None = None,
) -> list[int]:
    """Per-source bounds on new tokens: ``max_new_tokens``, else ``max_length_ratio`` × source tokens, else the default.

    The decoder start token takes position 0, so no bound passes ``position_limit - 1``.
    """
    if max_new_tokens is not None:
        limits = [max_new_tokens] * len(source_lengths)
    elif max_length_ratio is not None:
        limits = [max(1, math.ceil(max_length_ratio * length)) for length in source_lengths]
    else:
        limits = [default_max_new_tokens(length) for length in source_lengths]
    return [min(limit, position_limit - 1) for limit in limits] if position_limit else limits


def cut_generated(row: Sequence[int], limit: int, eos_ids: torch.Tensor, pad_id: int | None) -> torch.Tensor:
    """The tokens a row's own source allows: at most ``limit``, up to and including the first EOS.

    Each row is cut to its own source's bound, so a hypothesis does not depend on which
    (longer) sentences shared its batch.
    """
    row = torch.as_tensor(row[:limit], dtype=torch.long)
    return row[: _generated_length(row, eos_ids, pad_id)]


@dataclass
class Translations:
    """Hypotheses in input order, with the time generate() took and the tokens it produced (for tokens/s)."""

    hypotheses: list[str]
    generation_seconds: float
    generated_tokens: int


def _padded(rows: Sequence[Sequence[int]], pad_id: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-padded ``input_ids`` and ``attention_mask`` of token-id rows (what ``tokenizer(padding=True)`` gives)."""
    longest = max(len(row) for row in rows)
    input_ids = torch.full((len(rows), longest), pad_id, dtype=torch.long)
    attention_mask = torch.zeros((len(rows), longest), dtype=torch.long)
    for index, row in enumerate(rows):
        input_ids[index, : len(row)] = torch.tensor(row, dtype=torch.long)
        attention_mask[index, : len(row)] = 1
    return input_ids.to(device), attention_mask.to(device)


GenerateBatch = Callable[[list[list[int]], int], Sequence[Sequence[int]]]
"""(source id rows, max_new_tokens) -> generated target ids per row, without the decoder start token."""


def translate_in_batches(
    tokenizer: PreTrainedTokenizerBase,
    sources: Sequence[str],
    generate_batch: GenerateBatch,
    *,
    batch_size: int,
    max_new_tokens: int | None,
    position_limit: int | None,
    eos_ids: torch.Tensor,
    pad_id: int | None,
    progress: bool,
) -> Translations:
    """Translate in length-sorted batches (little padding) with any engine: hypotheses in input order, time, tokens.

    ``generate_batch`` is the engine (``model.generate``, or CTranslate2 for an exported
    model); everything around it (blank sources, truncation and its warning, per-source length
    bounds, cutting, decoding, counting) is shared, so engines are compared on the same work
    and refuse or warn alike. Blank sources get "" without a call to the engine; sources
    longer than ``position_limit`` are truncated with a warning naming the limit.
    """
    check_generation_settings(1, batch_size)
    sources, encoded, order = encode_sources(tokenizer, sources, position_limit)
    hypotheses: list[str] = [""] * len(sources)  # blank sources stay ""
    seconds, tokens = 0.0, 0
    with tqdm(total=len(order), unit="sent", desc="translate", disable=not progress) as bar:
        for start in range(0, len(order), batch_size):
            batch = order[start : start + batch_size]
            limits = generation_limits([len(encoded[i]) for i in batch], max_new_tokens, position_limit)
            began = time.perf_counter()
            rows = generate_batch([encoded[i] for i in batch], max(limits))
            seconds += time.perf_counter() - began
            generated = [cut_generated(row, limit, eos_ids, pad_id) for row, limit in zip(rows, limits)]
            tokens += sum(len(row) for row in generated)
            for index, text in zip(batch, tokenizer.batch_decode(generated, skip_special_tokens=True)):
                hypotheses[index] = text.strip()
            bar.update(len(batch))
    return Translations(hypotheses, seconds, tokens)


def translate_with_stats(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    sources: Sequence[str],
    *,
    batch_size: int,
    num_beams: int,
    max_new_tokens: int | None,
    length_penalty: float,
    device: str | torch.device | None,
    progress: bool,
    generate_kwargs: dict[str, Any],
) -> Translations:
    """Translate with ``model.generate`` in length-sorted batches: hypotheses in input order, time and tokens.

    Blank sources get "" without a model call; sources longer than the model's position
    limit are truncated with a warning; a tokenizer of another vocabulary is refused.
    """
    check_generation_settings(num_beams, batch_size)
    check_tokenizer_fits(model, tokenizer)
    run_device = _resolve_device(model, device)
    eos_ids, pad_id = _end_token_ids(model, tokenizer)

    def generate_batch(rows: list[list[int]], limit: int) -> torch.Tensor:
        input_ids, attention_mask = _padded(rows, tokenizer.pad_token_id, run_device)
        sequences = model.generate(
            input_ids=input_ids,
            attention_mask=attention_mask,
            num_beams=num_beams,
            max_new_tokens=limit,
            length_penalty=length_penalty,
            **{**beam_stopping(num_beams), **generate_kwargs},
        )
        return sequences[:, 1:].cpu()  # column 0 is the decoder start token

    with _eval_mode(model), torch.inference_mode():
        return translate_in_batches(
            tokenizer,
            sources,
            generate_batch,
            batch_size=batch_size,
            max_new_tokens=max_new_tokens,
            position_limit=model_position_limit(model),
            eos_ids=eos_ids,
            pad_id=pad_id,
            progress=progress,
        )


def translate(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    sources: Sequence[str],
    *,
    batch_size: int = 32,
    num_beams: int = 4,
    max_new_tokens: int | None = None,
    length_penalty: float = 1.0,
    device: str | torch.device | None = None,
    progress: bool = False,
    **generate_kwargs: Any,
) -> list[str]:
    """Translate ``sources`` with ``model.generate`` (beam search by default); one string per source.

    Sources are batched by token length so little time goes to padding; the result is in the
    order of ``sources``. ``max_new_tokens=None`` bounds each hypothesis by
    :func:`default_max_new_tokens` of its own source's token count. An empty or whitespace-only
    source translates to "" (the model is not asked: it would invent a sentence). A source
    longer than the model's ``max_position_embeddings`` is truncated to it, with a warning that
    names the limit. For hf_attn models the tokenizer must match the model's vocabulary
    (a ValueError otherwise). Beam search stops as NMT toolkits and CTranslate2 do
    (:func:`beam_stopping`); ``generate_kwargs`` go to ``generate()`` unchanged and may
    override that (one hypothesis per source is assumed). The model's
    train/eval mode is restored afterwards, so the training loop can call this mid-run.
    """
    return translate_with_stats(
        model,
        tokenizer,
        sources,
        batch_size=batch_size,
        num_beams=num_beams,
        max_new_tokens=max_new_tokens,
        length_penalty=length_penalty,
        device=device,
        progress=progress,
        generate_kwargs=generate_kwargs,
    ).hypotheses


def _require_weights(weights: Sequence[torch.Tensor | None] | None, model: PreTrainedModel) -> Sequence[torch.Tensor]:
    """The attention tensors, or a clear error where the attention backend returned none (e.g. sdpa)."""
    if not weights or any(w is None for w in weights):
        implementation = getattr(model.config, "_attn_implementation", None)
        raise ValueError(
            f"The model returned no cross-attention weights (attention implementation {implementation!r}); "
            "call `model.set_attn_implementation('eager')` first."
        )
    return weights


def _as_array(per_layer: Sequence[torch.Tensor]) -> np.ndarray:
    """(layers, heads, target, source) float32 array from per-layer (heads, target, source) tensors."""
    return torch.stack([weights.float() for weights in per_layer]).cpu().numpy()


def _generated_alignment(
    model: PreTrainedModel, encoded: dict[str, torch.Tensor], num_beams: int, max_new_tokens: int | None
) -> tuple[torch.Tensor, np.ndarray]:
    """Target ids and attention while the model translates the source itself."""
    if max_new_tokens is None:
        max_new_tokens = default_max_new_tokens(encoded["input_ids"].shape[1])
    output = model.generate(
        **encoded,
        num_beams=num_beams,
        do_sample=False,
        max_new_tokens=max_new_tokens,
        output_attentions=True,
        output_scores=num_beams > 1,  # beam search reports which beam made each token only with scores
        return_dict_in_generate=True,
        **beam_stopping(num_beams),
    )
    steps = output.cross_attentions
    _require_weights(steps[0] if steps else None, model)
    if num_beams > 1:
        rows = output.beam_indices[0]
        rows = rows[rows >= 0].tolist()
    else:
        rows = [0] * (output.sequences.shape[1] - 1)
    per_layer = []
    for layer in range(len(steps[0])):
        layer_steps = _require_weights([steps[t][layer] for t in range(len(rows))], model)
        # Without a cache a step returns weights for every query position: the last one is the new token's.
        per_layer.append(torch.stack([weights[row, :, -1, :] for weights, row in zip(layer_steps, rows)], dim=1))
    return output.sequences[0, 1 : 1 + len(rows)], _as_array(per_layer)


def _teacher_forced_alignment(
    model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, encoded: dict[str, torch.Tensor], target: str
) -> tuple[torch.Tensor, np.ndarray]:
    """Target ids and attention while the decoder reads the given reference (labels shifted right by the model)."""
    labels = tokenizer(text_target=target, return_tensors="pt")["input_ids"].to(encoded["input_ids"].device)
    output = model(**encoded, labels=labels, output_attentions=True)
    per_layer = _require_weights(output.cross_attentions, model)
    return labels[0], _as_array([weights[0] for weights in per_layer])


def _source_tokens(tokenizer: PreTrainedTokenizerBase, ids: list[int]) -> list[str]:
    """Source pieces of source ids; a separate-vocabulary tokenizer's ``convert_ids_to_tokens`` reads target ids."""
    convert = getattr(tokenizer, "convert_source_ids_to_tokens", tokenizer.convert_ids_to_tokens)
    return convert(ids)


def alignment(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    source: str,
    *,
    target: str | None = None,
    num_beams: int = 1,
    max_new_tokens: int | None = None,
    device: str | torch.device | None = None,
) -> dict[str, Any]:
    """Cross-attention between one source sentence and its translation, for heatmaps.

    Without ``target`` the model translates the source (greedy by default; with beams, the
    best beam's attention is followed back through beam search); with ``target`` the
    reference is teacher-forced through ``forward``. Row ``t`` of every matrix is the attention
    the decoder paid to the source while predicting target token ``t``, so rows sum to 1.

    Returns ``source_tokens`` and ``target_tokens`` (tokenizer pieces, special tokens
    included; each from its own vocabulary when the tokenizer has two), ``target_text``,
    ``mode`` ("generated" or "teacher_forced"), ``attention`` of shape (layers, target_len,
    source_len) (averaged over heads) and ``attention_per_head`` of shape (layers, heads, target_len, source_len).
    An empty source has no alignment (a ValueError); a source over ``max_position_embeddings``
    is truncated with a warning, as in :func:`translate`.
    """
    check_generation_settings(num_beams)
    check_sources([source])
    if is_blank(source):
        raise ValueError("alignment() needs a non-empty source sentence; an empty one has nothing to align.")
    check_tokenizer_fits(model, tokenizer)
    run_device = _resolve_device(model, device)
    encoded = tokenize_within_limit(tokenizer, source, model_position_limit(model), return_tensors="pt").to(run_device)
    encoded = {"input_ids": encoded["input_ids"], "attention_mask": encoded["attention_mask"]}
    with _eval_mode(model), torch.inference_mode():
        if target is None:
            target_ids, per_head = _generated_alignment(model, encoded, num_beams, max_new_tokens)
        else:
            target_ids, per_head = _teacher_forced_alignment(model, tokenizer, encoded, target)
    return {
        "source_tokens": _source_tokens(tokenizer, encoded["input_ids"][0].tolist()),
        "target_tokens": tokenizer.convert_ids_to_tokens(target_ids.tolist()),
        "target_text": tokenizer.decode(target_ids, skip_special_tokens=True).strip(),
        "mode": "generated" if target is None else "teacher_forced",
        "attention": per_head.mean(axis=1),
        "attention_per_head": per_head,
    }
