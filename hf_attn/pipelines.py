"""A ``transformers`` pipeline for translating with hf_attn models.

transformers 5 removed the ``translation`` and ``text2text-generation`` tasks, so
``import hf_attn`` registers this one as ``"hf-attn-translation"``::

    import hf_attn
    from transformers import pipeline

    translator = pipeline("hf-attn-translation", model="runs/quickstart/transformer/best")
    translator("In the beginning God created the heaven and the earth.", num_beams=4)
    # [{'translation_text': 'En el principio crió Dios los cielos y la tierra.'}]

It answers like the former ``TranslationPipeline``: a list of ``{"translation_text": ...}``
per input (one per returned sequence), flattened when a list of strings goes in and one
sequence per input comes out. It agrees with :func:`hf_attn.generation.translate` on bad
input: an empty or whitespace-only string translates to "", an empty list to ``[]``, input
over ``max_position_embeddings`` is truncated with a warning naming the limit, and an hf_attn
model refuses a tokenizer whose vocabulary is not its own (or weights that did not load
completely). Generation keyword arguments go to ``generate()``; without a
length bound each sentence gets :func:`hf_attn.generation.default_max_new_tokens` of its own
source, so a sentence translates the same alone or in a batch. ``return_alignment=True``
adds the cross-attention alignment of :func:`hf_attn.generation.alignment`.
"""

from __future__ import annotations

import logging
from typing import Any

import torch
from transformers import AutoModelForSeq2SeqLM, Pipeline
from transformers.pipelines import PIPELINE_REGISTRY

from .generation import (
    alignment,
    check_generation_settings,
    check_tokenizer_fits,
    default_max_new_tokens,
    is_blank,
    model_position_limit,
    tokenize_within_limit,
)

logger = logging.getLogger(__name__)

TASK = "hf-attn-translation"
# Generation settings that `alignment()` reproduces; with `return_alignment` nothing else may be set.
_ALIGNMENT_GENERATE_KWARGS = frozenset({"num_beams", "max_new_tokens"})


class HfAttnTranslationPipeline(Pipeline):
    """Translate strings with any hf_attn (or other) seq2seq model: tokenize, ``generate``, decode."""

    _load_tokenizer = True
    _load_processor = False
    _load_image_processor = False
    _load_feature_extractor = False
    _pipeline_calls_generate = True

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.tokenizer is not None:
            check_tokenizer_fits(self.model, self.tokenizer)
        check_weights_loaded(self.model)

    def _sanitize_parameters(
        self, return_alignment: bool | None = None, **generate_kwargs: Any
    ) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
        if generate_kwargs.get("num_beams") is not None:
            check_generation_settings(generate_kwargs["num_beams"])
        forward_params = dict(generate_kwargs)
        if return_alignment is not None:
            forward_params["return_alignment"] = return_alignment
        return {}, forward_params, {}

    def __call__(self, inputs: str | list[str], *args: Any, **kwargs: Any) -> list[Any]:
        """Translate one string (``[{"translation_text": ...}]``) or a list of them (one entry each)."""
        if isinstance(inputs, list) and not inputs:
            return []
        result = super().__call__(inputs, *args, **kwargs)
        if isinstance(inputs, list) and all(isinstance(item, list) and len(item) == 1 for item in result):
            return [item[0] for item in result]
        return result

    def preprocess(self, text: str) -> dict[str, Any]:
        if not isinstance(text, str):
            raise TypeError(f"{TASK} translates strings, got {type(text).__name__}: {text!r}.")
        encoded = tokenize_within_limit(self.tokenizer, text, model_position_limit(self.model), return_tensors="pt")
        return {"input_ids": encoded["input_ids"], "attention_mask": encoded["attention_mask"], "source_text": text}

    def _default_limits(self, source_lengths: list[int]) -> list[int]:
        """Per-sentence ``max_new_tokens`` when the caller set no length: as ``hf_attn.evaluation`` bounds them."""
        limits = [default_max_new_tokens(length) for length in source_lengths]
        position_limit = model_position_limit(self.model)
        # The decoder start token takes position 0.
        return [min(limit, position_limit - 1) for limit in limits] if position_limit else limits

    def _forward(
        self, model_inputs: dict[str, Any], return_alignment: bool = False, **generate_kwargs: Any
    ) -> dict[str, Any]:
        sources = model_inputs.pop("source_text")
        sources = [sources] if isinstance(sources, str) else list(sources)
        lengths = model_inputs["attention_mask"].sum(dim=1).tolist()
        generate_kwargs = self._prepare_generate_kwargs(generate_kwargs)
        set_params = self._get_set_generation_params(generate_kwargs)
        limits = None if {"max_new_tokens", "max_length"} & set_params.keys() else self._default_limits(lengths)
        if return_alignment:
            return self._forward_with_alignment(sources, limits, generate_kwargs)
        if limits is not None:
            generate_kwargs["max_new_tokens"] = max(limits)
        blank = torch.tensor([is_blank(source) for source in sources])
        if bool(blank.all()):
            # Nothing to translate: an empty source gives "" (the model would invent a sentence).
            sequences = torch.zeros((len(sources), 1), dtype=torch.long)
        else:
            sequences = self.model.generate(**model_inputs, **generate_kwargs)
        # Per-sentence values are tensors (-1: no own bound), which the pipeline's batch unrolling slices by row.
        return {
            "output_ids": sequences.reshape(len(sources), sequences.shape[0] // len(sources), -1),
            "limits": torch.tensor(limits or [-1] * len(sources)),
            "blank": blank,
        }

    def _forward_with_alignment(
        self, sources: list[str], limits: list[int] | None, generate_kwargs: dict[str, Any]
    ) -> dict[str, Any]:
        """Translate each sentence through :func:`hf_attn.generation.alignment`, which follows the best beam."""
        explicit = {key for key, value in generate_kwargs.items() if value is not None}
        unsupported = sorted(explicit - _ALIGNMENT_GENERATE_KWARGS - set(self._generation_defaults))
        if unsupported:
            raise ValueError(
                f"return_alignment=True supports only {sorted(_ALIGNMENT_GENERATE_KWARGS)} as generation settings "
                f"(greedy or beam search, one sequence per input); got {unsupported}."
            )
        if self.model.config._attn_implementation != "eager":
            logger.info("Switching the model to eager attention: the only backend that returns attention weights.")
            self.model.set_attn_implementation("eager")
        num_beams = generate_kwargs.get("num_beams") or self.model.generation_config.num_beams or 1
        results = [
            alignment(
                self.model,
                self.tokenizer,
                source,
                num_beams=num_beams,
                max_new_tokens=generate_kwargs.get("max_new_tokens") if limits is None else limit,
            )
            for source, limit in zip(sources, limits or [None] * len(sources))
        ]
        return {"alignments": results}

    def postprocess(self, model_outputs: dict[str, Any]) -> list[dict[str, Any]]:
        if "alignments" in model_outputs:
            # Unrolled batches hand over one sentence's dict; an unbatched call its list of one.
            result = model_outputs["alignments"]
            result = result[0] if isinstance(result, list) else result
            fields = ("source_tokens", "target_tokens", "attention", "attention_per_head")
            return [{"translation_text": result["target_text"], "alignment": {key: result[key] for key in fields}}]
        limit = int(model_outputs["limits"][0])
        # Column 0 is the decoder start token; a default bound applies to each sentence on its own.
        sequences = [row[1:] if limit < 0 else row[1 : 1 + limit] for row in model_outputs["output_ids"][0]]
        if bool(model_outputs["blank"][0]):
            return [{"translation_text": ""} for _ in sequences]
        return [
            {"translation_text": text.strip()}
            for text in self.tokenizer.batch_decode(sequences, skip_special_tokens=True)
        ]


def check_weights_loaded(model: Any) -> None:
    """Raise if ``from_pretrained`` left an hf_attn model with missing, unexpected or resized weights.

    transformers only logs those and initialises the missing tensors at random, so such a model
    translates garbage; the loading report is kept by the model classes (``loading_report``).
    """
    report = getattr(model, "loading_report", None)
    if report is not None:
        from .inference import check_loading_report

        try:
            check_loading_report(report, getattr(model, "name_or_path", "the model"))
        except ValueError as error:
            raise ValueError(
                f"{error} (If those weights were trained or set after loading, set `model.loading_report = None`.)"
            ) from None


def register_pipeline() -> None:
    """Make ``pipeline("hf-attn-translation", model=...)`` build :class:`HfAttnTranslationPipeline`."""
    PIPELINE_REGISTRY.register_pipeline(
        TASK, pipeline_class=HfAttnTranslationPipeline, pt_model=AutoModelForSeq2SeqLM, type="text"
    )


__all__ = ["TASK", "HfAttnTranslationPipeline", "register_pipeline"]
