"""Decoding with every option of an NMT toolkit: n-best lists with scores, sampling, length bounds, alignments.

:class:`DecodingOptions` is one checked set of options shared by the command line, the server
and both engines; :func:`decode_in_batches` does the engine-independent work (truncation,
length-sorted batches, per-source bounds, cutting, detokenizing, alignments) around an engine's
``decode_batch``: :func:`torch_decoder` here (``model.generate``), ``CTranslate2Model.decode_batch``
for an exported folder. An option an engine lacks is refused by name, never silently ignored.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from .generation import (
    Translations,
    _end_token_ids,
    _eval_mode,
    _padded,
    _resolve_device,
    _source_tokens,
    beam_stopping,
    check_tokenizer_fits,
    cut_generated,
    encode_sources,
    generation_limits,
    model_position_limit,
)
from .models.config_validation import require_positive_int

ALIGNMENT_KINDS = ("hard", "soft")


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise ValueError(message)


@dataclass(frozen=True)
class DecodingOptions:
    """How to decode: beam search by default, sampling with ``sample=True``.

    ``n_best`` hypotheses per source (at most ``num_beams`` in beam search); ``top_k`` 0 and
    ``top_p`` 1 mean no cut of the sampling distribution; ``max_length_ratio`` bounds a
    hypothesis at ratio × source tokens (default: 1.5 × + 10); ``coverage_penalty`` exists in
    CTranslate2 only; ``alignment`` "hard" gives Pharaoh ``i-j`` pairs (source i, target j) from
    the attention argmax, "soft" the attention matrix, both from ``alignment_layer`` averaged
    over heads (the Transformer's cross-attention; the RNN's one attention). Every field is
    checked here, so a bad value fails before a model is loaded, with the field's name.
    """

    num_beams: int = 4
    n_best: int = 1
    length_penalty: float = 1.0
    no_repeat_ngram_size: int = 0
    sample: bool = False
    top_k: int = 0
    top_p: float = 1.0
    temperature: float = 1.0
    seed: int | None = None
    max_length_ratio: float | None = None
    coverage_penalty: float = 0.0
    alignment: str | None = None
    alignment_layer: int = -1

    def __post_init__(self) -> None:
        require_positive_int("num_beams", self.num_beams)
        require_positive_int("n_best", self.n_best)
        if self.sample:
            _require(
                self.num_beams == 1,
                f"sample draws one hypothesis at a time: num_beams must be 1, not {self.num_beams}.",
            )
        else:
            _require(
                self.n_best <= self.num_beams,
                f"n_best ({self.n_best}) must not exceed num_beams ({self.num_beams}): beam search keeps num_beams "
                "hypotheses.",
            )
        for name in ("length_penalty", "top_p", "temperature", "coverage_penalty"):
            value = getattr(self, name)
            _require(
                isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value),
                f"{name} must be a finite number, got {value!r}.",
            )
        for name in ("no_repeat_ngram_size", "top_k"):
            value = getattr(self, name)
            _require(
                isinstance(value, int) and not isinstance(value, bool) and value >= 0,
                f"{name} must be an integer of at least 0, got {value!r}.",
            )
        _require(0 < self.top_p <= 1, f"top_p must be in (0, 1], got {self.top_p}.")
        _require(self.temperature > 0, f"temperature must be above 0, got {self.temperature}.")
        _require(self.coverage_penalty >= 0, f"coverage_penalty must be at least 0, got {self.coverage_penalty}.")
        if self.seed is not None:
            _require(
                isinstance(self.seed, int) and not isinstance(self.seed, bool) and self.seed >= 0,
                f"seed must be an integer of at least 0, got {self.seed!r}.",
            )
        if self.max_length_ratio is not None:
            value = self.max_length_ratio
            _require(
                isinstance(value, (int, float)) and not isinstance(value, bool) and 0 < value < math.inf,
                f"max_length_ratio must be a number above 0, got {value!r}.",
            )
        _require(
            self.alignment is None or self.alignment in ALIGNMENT_KINDS,
            f"alignment must be one of {', '.join(ALIGNMENT_KINDS)} (or none), got {self.alignment!r}.",
        )
        _require(
            isinstance(self.alignment_layer, int) and not isinstance(self.alignment_layer, bool),
            f"alignment_layer must be an integer, got {self.alignment_layer!r}.",
        )

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class RawHypothesis:
    """What an engine returns for one hypothesis: target ids (EOS kept), its score, and attention rows if asked."""

    ids: list[int]
    score: float
    attention: np.ndarray | None = None  # (target steps, source tokens), averaged over heads
    token_log_probs: list[float] | None = None  # when given, the score is recomputed over the cut hypothesis


@dataclass
class Hypothesis:
    """One translation: text, score (log-probability / length^length_penalty, as the engine ranks) and alignment."""

    text: str
    score: float
    target_tokens: list[str] = field(default_factory=list)
    alignment: str | list[list[float]] | None = None


@dataclass
class SourceTranslations:
    """The n-best list of one source (empty for a blank source) with the source's tokens (for heatmaps)."""

    source: str
    source_tokens: list[str]
    hypotheses: list[Hypothesis]

    def to_json(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "source_tokens": self.source_tokens,
            "translations": [asdict(hypothesis) for hypothesis in self.hypotheses],
        }


DecodeBatch = Callable[[list[list[int]], int], list[list[RawHypothesis]]]
"""(source id rows, max_new_tokens) -> ``n_best`` raw hypotheses per row, best first."""


def hard_alignment(attention: np.ndarray, source_keep: Sequence[bool], target_keep: Sequence[bool]) -> str:
    """Pharaoh ``i-j`` pairs: each kept target token j to the kept source token i it attends to most."""
    columns = [i for i, keep in enumerate(source_keep) if keep]
    if not columns:
        return ""
    source_index = {column: rank for rank, column in enumerate(columns)}
    pairs = []
    for target_rank, row in enumerate(r for r, keep in zip(attention, target_keep) if keep):
        best = columns[int(np.argmax(row[columns]))]
        pairs.append(f"{source_index[best]}-{target_rank}")
    return " ".join(pairs)


def decode_in_batches(
    tokenizer: PreTrainedTokenizerBase,
    sources: Sequence[str],
    decode_batch: DecodeBatch,
    options: DecodingOptions,
    *,
    batch_size: int,
    position_limit: int | None,
    eos_ids: torch.Tensor,
    pad_id: int | None,
) -> list[SourceTranslations]:
    """N-best lists in input order from any engine: the work around ``decode_batch`` is the same for all engines.

    Sources are encoded, truncated and batched as :func:`hf_attn.generation.translate_in_batches`
    does; blank sources get an empty list without a call to the engine.
    """
    require_positive_int("batch_size", batch_size)
    sources, encoded, order = encode_sources(tokenizer, sources, position_limit)
    special = set(tokenizer.all_special_ids)
    results = [SourceTranslations(source, [], []) for source in sources]
    for start in range(0, len(order), batch_size):
        batch = order[start : start + batch_size]
        limits = generation_limits(
            [len(encoded[i]) for i in batch], None, position_limit, max_length_ratio=options.max_length_ratio
        )
        for index, limit, raw in zip(batch, limits, decode_batch([encoded[i] for i in batch], max(limits))):
            source_ids = encoded[index]
            results[index].source_tokens = _source_tokens(tokenizer, source_ids)
            hypotheses = [
                _hypothesis(tokenizer, hypothesis, limit, source_ids, special, options, eos_ids, pad_id)
                for hypothesis in raw
            ]
            results[index].hypotheses = sorted(hypotheses, key=lambda hypothesis: -hypothesis.score)
    return results


def _hypothesis(
    tokenizer: PreTrainedTokenizerBase,
    raw: RawHypothesis,
    limit: int,
    source_ids: list[int],
    special: set[int],
    options: DecodingOptions,
    eos_ids: torch.Tensor,
    pad_id: int | None,
) -> Hypothesis:
    ids = cut_generated(raw.ids, limit, eos_ids, pad_id).tolist()
    score = raw.score
    if raw.token_log_probs is not None:  # the tokens kept, not those a longer batch neighbour let it run on to
        score = sum(raw.token_log_probs[: len(ids)]) / max(len(ids), 1) ** options.length_penalty
    hypothesis = Hypothesis(
        text=tokenizer.decode(ids, skip_special_tokens=True).strip(),
        score=float(score),
        target_tokens=tokenizer.convert_ids_to_tokens(ids),
    )
    if options.alignment is not None and raw.attention is not None:
        attention = raw.attention[: len(ids), : len(source_ids)]
        if options.alignment == "soft":
            hypothesis.alignment = np.round(attention.astype(np.float64), 4).tolist()
        else:
            hypothesis.alignment = hard_alignment(
                attention, [i not in special for i in source_ids], [i not in special for i in ids]
            )
    return hypothesis


def check_engine_supports(options: DecodingOptions, engine: str) -> None:
    """Refuse, by name, an option the engine lacks (called before a model is loaded, and by the engines)."""
    if engine == "torch" and options.coverage_penalty:
        raise ValueError(
            "coverage_penalty is supported by the ctranslate2 engine only (model.generate has no coverage penalty); "
            "drop it or use --engine ctranslate2 on an exported model."
        )
    if engine == "ctranslate2" and options.alignment is not None and options.alignment_layer != -1:
        raise ValueError(
            f"alignment_layer {options.alignment_layer} is not available with the ctranslate2 engine: an export "
            "gives the last layer's attention only (alignment_layer -1)."
        )


def torch_generate_kwargs(options: DecodingOptions) -> dict[str, Any]:
    """``generate`` arguments of ``options``; what ``generate`` cannot do is refused by name."""
    check_engine_supports(options, "torch")
    kwargs: dict[str, Any] = {
        "num_beams": options.num_beams,
        "num_return_sequences": options.n_best,
        "length_penalty": options.length_penalty,
        "no_repeat_ngram_size": options.no_repeat_ngram_size,
        "do_sample": options.sample,
    }
    if options.sample:
        kwargs.update(top_k=options.top_k, top_p=options.top_p, temperature=options.temperature)
    return {**kwargs, **beam_stopping(options.num_beams if not options.sample else 1)}


def _teacher_forced(
    model: PreTrainedModel,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    sequences: torch.Tensor,
    layer: int | None,
) -> tuple[torch.Tensor, np.ndarray | None]:
    """Each generated token's log-probability, and ``layer``'s cross-attention (mean over heads) if asked.

    The decoder re-reads its own output: in eval mode these are the probabilities and the
    attention of the decoding itself (cached and uncached decoding agree), for any number of
    beams or samples per source, and they do not depend on the batch (beam search's own
    scores do: a hypothesis cut at its source's bound was scored over the batch's longer one).
    """
    output = model(
        input_ids=input_ids,
        attention_mask=attention_mask,
        decoder_input_ids=sequences[:, :-1],
        output_attentions=layer is not None,
    )
    log_probs = torch.log_softmax(output.logits.float(), dim=-1).gather(-1, sequences[:, 1:].unsqueeze(-1)).squeeze(-1)
    if layer is None:
        return log_probs, None
    layers = output.cross_attentions
    if not layers or any(weights is None for weights in layers):
        raise ValueError("The model returned no cross-attention weights, so no alignment can be given.")
    if not -len(layers) <= layer < len(layers):
        raise ValueError(f"alignment_layer {layer} does not exist: the model has {len(layers)} attention layer(s).")
    return log_probs, layers[layer].float().mean(dim=1).cpu().numpy()


def torch_decoder(
    model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, options: DecodingOptions, device: torch.device
) -> DecodeBatch:
    """``decode_batch`` on ``model.generate`` with ``options``."""
    kwargs = torch_generate_kwargs(options)

    def decode_batch(rows: list[list[int]], limit: int) -> list[list[RawHypothesis]]:
        input_ids, attention_mask = _padded(rows, tokenizer.pad_token_id, device)
        sequences = model.generate(input_ids=input_ids, attention_mask=attention_mask, max_new_tokens=limit, **kwargs)
        repeat = options.n_best
        log_probs, attention = _teacher_forced(
            model,
            input_ids.repeat_interleave(repeat, dim=0),
            attention_mask.repeat_interleave(repeat, dim=0),
            sequences,
            options.alignment_layer if options.alignment is not None else None,
        )
        generated = sequences[:, 1:].cpu().tolist()  # column 0 is the decoder start token
        hypotheses = [
            RawHypothesis(ids, 0.0, None if attention is None else attention[row], log_probs[row].tolist())
            for row, ids in enumerate(generated)
        ]
        return [hypotheses[i : i + repeat] for i in range(0, len(hypotheses), repeat)]

    return decode_batch


def decode(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    sources: Sequence[str],
    options: DecodingOptions | None = None,
    *,
    batch_size: int = 32,
    device: str | torch.device | None = None,
) -> list[SourceTranslations]:
    """N-best translations of ``sources`` with ``model.generate``: texts, scores and (if asked) alignments.

    The richer sibling of :func:`hf_attn.generation.translate` (which returns one string per
    source): same batching, truncation and length bounds. ``options.seed`` seeds torch once
    before decoding, so a sampled run repeats.
    """
    options = options or DecodingOptions()
    check_tokenizer_fits(model, tokenizer)
    run_device = _resolve_device(model, device)
    if options.seed is not None:
        torch.manual_seed(options.seed)
    eos_ids, pad_id = _end_token_ids(model, tokenizer)
    with _eval_mode(model), torch.inference_mode():
        return decode_in_batches(
            tokenizer,
            sources,
            torch_decoder(model, tokenizer, options, run_device),
            options,
            batch_size=batch_size,
            position_limit=model_position_limit(model),
            eos_ids=eos_ids,
            pad_id=pad_id,
        )


DecodeSources = Callable[[list[str], DecodingOptions, int], list[SourceTranslations]]
"""(sources, options, batch_size) -> n-best lists: an engine's ``decode``."""


def best_translations(decode_sources: DecodeSources, options: DecodingOptions) -> Callable[..., Translations]:
    """A ``translate`` for :func:`hf_attn.evaluation.evaluate_translator`: each source's best hypothesis, timed.

    ``evaluate_translator`` passes its beam and length penalty too; ``options`` already hold them.
    """

    def translate(sources: Sequence[str], *, batch_size: int, progress: bool = False, **_: Any) -> Translations:
        began = time.perf_counter()
        results = decode_sources(list(sources), options, batch_size)
        seconds = time.perf_counter() - began
        best = [result.hypotheses[0] if result.hypotheses else None for result in results]
        texts = [hypothesis.text if hypothesis else "" for hypothesis in best]
        return Translations(texts, seconds, sum(len(h.target_tokens) for h in best if h))

    return translate
