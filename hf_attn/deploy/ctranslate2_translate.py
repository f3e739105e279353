"""Translate with an exported CTranslate2 folder through the same batching, bounds and decoding as ``generate``.

Only the engine differs from :func:`hf_attn.generation.translate_with_stats`: sources are
truncated, sorted, bounded (``default_max_new_tokens``), cut and decoded by the same code, so
BLEU and tokens/s of the two engines measure the same work.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np
import torch
from transformers import PreTrainedTokenizerBase

from ..decoding import DecodingOptions, RawHypothesis, SourceTranslations, check_engine_supports, decode_in_batches
from ..generation import Translations, tokenize_within_limit, translate_in_batches
from ..scoring import SentenceScore, check_pairs, encode_targets, sentence_score
from ..tokenization import load_tokenizer
from .metadata import require_export
from .requirements import require_ctranslate2


class CTranslate2Model:
    """An ``hf-attn export --format ctranslate2`` folder: CTranslate2's ``Translator`` and our tokenizer.

    ``compute_type="default"`` runs the weights as they were exported (int8 stays int8 on CPU);
    ``intra_threads=0`` lets CTranslate2 pick its thread count (per batch); ``inter_threads``
    batches may run at once, each called from its own thread. ``tokenizer`` replaces the saved one
    for a folder CTranslate2's own converter wrote from another model (its tokenizer is not ours).
    """

    def __init__(
        self,
        folder: str | os.PathLike,
        *,
        device: str = "cpu",
        compute_type: str = "default",
        intra_threads: int = 0,
        inter_threads: int = 1,
        tokenizer: PreTrainedTokenizerBase | None = None,
    ) -> None:
        metadata = require_export(folder, "ctranslate2")
        require_ctranslate2()
        import ctranslate2

        self.folder = str(folder)
        self.quantization = metadata["quantization"]
        self.position_limit: int | None = metadata.get("max_position_embeddings")
        # Another model's tokenizer (a converted Marian teacher's) is passed in; ours is saved with the export.
        self.tokenizer = load_tokenizer(folder) if tokenizer is None else tokenizer
        self.translator = ctranslate2.Translator(
            self.folder,
            device=device,
            compute_type=compute_type,
            intra_threads=intra_threads,
            inter_threads=inter_threads,
        )
        convert_source = getattr(self.tokenizer, "convert_source_ids_to_tokens", self.tokenizer.convert_ids_to_tokens)
        self._source_tokens = convert_source
        # CTranslate2 answers in target pieces; a tokenizer pair's convert_tokens_to_ids reads the source side.
        self._target_vocabulary = getattr(self.tokenizer, "get_target_vocab", self.tokenizer.get_vocab)()

    def generate_ids(
        self, rows: list[list[int]], max_new_tokens: int, *, num_beams: int = 4, length_penalty: float = 1.0
    ) -> list[list[int]]:
        """Target ids per source id row (best hypothesis, ``</s>`` kept when produced), as ``generate`` returns them."""
        results = self.translator.translate_batch(
            [self._source_tokens(row) for row in rows],
            beam_size=num_beams,
            length_penalty=length_penalty,
            max_decoding_length=max_new_tokens,
            max_input_length=0,  # sources arrive truncated to the position table already
            return_end_token=True,
        )
        return [[self._target_vocabulary[token] for token in result.hypotheses[0]] for result in results]

    def decode_batch(
        self, rows: list[list[int]], max_new_tokens: int, options: DecodingOptions
    ) -> list[list[RawHypothesis]]:
        """``n_best`` hypotheses per source id row with CTranslate2's scores and (if asked) attention, best first."""
        check_engine_supports(options, "ctranslate2")
        sampling = {
            "sampling_topk": options.top_k if options.sample else 1,
            "sampling_topp": options.top_p if options.sample else 1.0,
            "sampling_temperature": options.temperature if options.sample else 1.0,
        }
        results = self.translator.translate_batch(
            [self._source_tokens(row) for row in rows],
            beam_size=options.num_beams,
            num_hypotheses=options.n_best,
            length_penalty=options.length_penalty,
            coverage_penalty=options.coverage_penalty,
            no_repeat_ngram_size=options.no_repeat_ngram_size,
            max_decoding_length=max_new_tokens,
            max_input_length=0,
            return_end_token=True,
            return_scores=True,
            return_attention=options.alignment is not None,
            **sampling,
        )
        return [
            [
                RawHypothesis(
                    [self._target_vocabulary[token] for token in tokens],
                    score,
                    np.asarray(result.attention[k], dtype=np.float32) if options.alignment is not None else None,
                )
                for k, (tokens, score) in enumerate(zip(result.hypotheses, result.scores))
            ]
            for result in results
        ]

    def decode(
        self, sources: Sequence[str], options: DecodingOptions | None = None, *, batch_size: int = 32
    ) -> list[SourceTranslations]:
        """N-best translations with scores and alignments, as :func:`hf_attn.decoding.decode` gives for torch."""
        import ctranslate2

        options = options or DecodingOptions()
        if options.seed is not None:
            ctranslate2.set_random_seed(options.seed)
        return decode_in_batches(
            self.tokenizer,
            sources,
            lambda rows, limit: self.decode_batch(rows, limit, options),
            options,
            batch_size=batch_size,
            position_limit=self.position_limit,
            eos_ids=torch.tensor([self.tokenizer.eos_token_id]),
            pad_id=self.tokenizer.pad_token_id,
        )

    def score(
        self, sources: Sequence[str], targets: Sequence[str], *, batch_size: int = 32, per_token: bool = False
    ) -> list[SentenceScore]:
        """Each target's log-probability given its source, with CTranslate2's ``score_batch``.

        Targets are tokenized as for training; CTranslate2 adds the start and end tokens itself,
        so the EOS is left off what it is given and comes back scored.
        """
        sources, targets = check_pairs(sources, targets)
        tokenizer = self.tokenizer
        source_ids = tokenize_within_limit(tokenizer, sources, self.position_limit)["input_ids"] if sources else []
        target_ids = encode_targets(tokenizer, targets, self.position_limit) if targets else []
        eos = tokenizer.eos_token_id
        results = self.translator.score_batch(
            [self._source_tokens(row) for row in source_ids],
            [tokenizer.convert_ids_to_tokens(row[:-1] if row and row[-1] == eos else row) for row in target_ids],
            max_batch_size=batch_size,
            max_input_length=0,
        )
        return [sentence_score(result.tokens, result.log_probs, per_token) for result in results]

    def translate_with_stats(
        self,
        sources: Sequence[str],
        *,
        batch_size: int = 32,
        num_beams: int = 4,
        max_new_tokens: int | None = None,
        length_penalty: float = 1.0,
        progress: bool = False,
    ) -> Translations:
        """Hypotheses in input order, the seconds CTranslate2 took and the tokens it produced."""
        tokenizer = self.tokenizer
        return translate_in_batches(
            tokenizer,
            sources,
            lambda rows, limit: self.generate_ids(rows, limit, num_beams=num_beams, length_penalty=length_penalty),
            batch_size=batch_size,
            max_new_tokens=max_new_tokens,
            position_limit=self.position_limit,
            eos_ids=torch.tensor([tokenizer.eos_token_id]),
            pad_id=tokenizer.pad_token_id,
            progress=progress,
        )

    def translate(self, sources: Sequence[str], **options) -> list[str]:
        """One translation per source (beam 4 by default; options as :meth:`translate_with_stats`)."""
        return self.translate_with_stats(sources, **options).hypotheses
