"""One interface over the two inference engines, for the command line and the server.

``torch`` runs ``model.generate`` on a ``save_pretrained`` (or torch-int8 exported) folder;
``ctranslate2`` runs a folder written by ``hf-attn export --format ctranslate2``. Both give
n-best lists (:mod:`hf_attn.decoding`) and scores (:mod:`hf_attn.scoring`) in the same shapes.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

from .decoding import DecodingOptions, SourceTranslations
from .models.config_validation import require_non_negative_int, require_positive_int
from .scoring import SentenceScore

ENGINES = ("torch", "ctranslate2")


class Engine(Protocol):
    name: str
    model_type: str

    def decode(
        self, sources: Sequence[str], options: DecodingOptions, *, batch_size: int = 32
    ) -> list[SourceTranslations]: ...

    def score(
        self, sources: Sequence[str], targets: Sequence[str], *, batch_size: int = 32, per_token: bool = False
    ) -> list[SentenceScore]: ...


class TorchEngine:
    """``model.generate`` and teacher-forced scoring of a model folder."""

    name = "torch"

    def __init__(self, folder: str | Path, *, threads: int = 0) -> None:
        import torch

        from .inference import load_model_and_tokenizer

        if threads:
            torch.set_num_threads(threads)  # process-wide: torch has no per-model thread pool
        self.model, self.tokenizer = load_model_and_tokenizer(folder)
        self.model_type = self.model.config.model_type

    def decode(
        self, sources: Sequence[str], options: DecodingOptions, *, batch_size: int = 32
    ) -> list[SourceTranslations]:
        from .decoding import decode

        return decode(self.model, self.tokenizer, sources, options, batch_size=batch_size)

    def score(
        self, sources: Sequence[str], targets: Sequence[str], *, batch_size: int = 32, per_token: bool = False
    ) -> list[SentenceScore]:
        from .scoring import score

        return score(self.model, self.tokenizer, sources, targets, batch_size=batch_size, per_token=per_token)


class CTranslate2Engine:
    """An exported CTranslate2 folder (the Transformer only); ``parallel`` batches may run at once, one per thread."""

    name = "ctranslate2"
    model_type = "transformer_seq2seq"

    def __init__(self, folder: str | Path, *, threads: int = 0, parallel: int = 1) -> None:
        from .deploy.ctranslate2_translate import CTranslate2Model

        self.model = CTranslate2Model(folder, intra_threads=threads, inter_threads=parallel)

    def decode(
        self, sources: Sequence[str], options: DecodingOptions, *, batch_size: int = 32
    ) -> list[SourceTranslations]:
        return self.model.decode(sources, options, batch_size=batch_size)

    def score(
        self, sources: Sequence[str], targets: Sequence[str], *, batch_size: int = 32, per_token: bool = False
    ) -> list[SentenceScore]:
        return self.model.score(sources, targets, batch_size=batch_size, per_token=per_token)


def load_engine(folder: str | Path, engine: str = "torch", *, threads: int = 0, parallel: int = 1) -> Engine:
    """The engine ``engine`` on ``folder`` (torch also takes a Hub repo id); bad names are errors that name them.

    ``threads`` per engine call (0: the engine's default, all cores); ``parallel`` engine calls at
    once (CTranslate2's ``inter_threads``; torch decodes one batch at a time).
    """
    if engine not in ENGINES:
        raise ValueError(f"unknown engine {engine!r}: choose one of {', '.join(ENGINES)}.")
    require_non_negative_int("threads", threads)
    require_positive_int("parallel", parallel)
    if engine == "torch" and parallel != 1:
        raise ValueError(f"parallel {parallel} needs the ctranslate2 engine: torch decodes one batch at a time.")
    if engine == "ctranslate2" and not Path(folder).is_dir():
        raise ValueError(f"model folder {str(folder)!r} does not exist (or is not a folder).")
    if engine == "torch":
        return TorchEngine(folder, threads=threads)
    return CTranslate2Engine(folder, threads=threads, parallel=parallel)


def engine_info(engine: Engine, folder: str | Path) -> dict[str, Any]:
    """What /info reports about one served model."""
    return {"model": str(folder), "engine": engine.name, "model_type": engine.model_type}
