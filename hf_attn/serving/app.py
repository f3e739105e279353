"""The FastAPI application: /translate, /score, /health, /info, /stats and the page at /.

Every error a client can cause is a 4xx whose body names the problem (the field, the limit);
anything else is a 500 with a one-line message, never a traceback.
"""

from __future__ import annotations

import asyncio
import logging
import platform
from contextlib import asynccontextmanager
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse
from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictFloat, StrictInt, StrictStr
from starlette.exceptions import HTTPException as StarletteHTTPException

from ..decoding import DecodingOptions, check_engine_supports
from ..engines import Engine, engine_info
from .batching import DynamicBatcher

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ServerLimits:
    """What one request may ask for, and how requests are batched."""

    max_texts: int = 64
    max_chars: int = 2000
    max_batch: int = 64
    max_wait: float = 0.01
    parallel_batches: int = 1  # engine calls at once (CTranslate2 only: its inter_threads)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TranslateRequest(_Strict):
    """The decoding options are named as on the command line, in snake_case."""

    texts: list[StrictStr]
    model: StrictStr | None = Field(None, description="a served model's name (/info); default: the first")
    num_beams: StrictInt | None = None
    n_best: StrictInt = 1
    length_penalty: StrictFloat | StrictInt = 1.0
    no_repeat_ngram_size: StrictInt = 0
    sample: StrictBool = False
    top_k: StrictInt = 0
    top_p: StrictFloat | StrictInt = 1.0
    temperature: StrictFloat | StrictInt = 1.0
    seed: StrictInt | None = None
    max_length_ratio: StrictFloat | StrictInt | None = None
    coverage_penalty: StrictFloat | StrictInt = 0.0
    alignment: StrictStr | None = None
    alignment_layer: StrictInt = -1


class ScoreRequest(_Strict):
    sources: list[StrictStr]
    targets: list[StrictStr]
    model: StrictStr | None = None
    per_token: StrictBool = False


class ClientError(Exception):
    """A request the server refuses: ``status`` and a message that names the problem."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass
class ServedModel:
    name: str
    folder: str
    engine: Engine
    batcher: DynamicBatcher


def _check_texts(field: str, texts: list[str], limits: ServerLimits) -> None:
    if not texts:
        raise ClientError(422, f"`{field}` is empty: send at least one sentence.")
    if len(texts) > limits.max_texts:
        raise ClientError(
            413, f"`{field}` has {len(texts)} items; the limit is {limits.max_texts} per request (max_texts)."
        )
    for index, text in enumerate(texts):
        if not text.strip():
            raise ClientError(422, f"`{field}[{index}]` is empty: there is nothing to translate.")
        if len(text) > limits.max_chars:
            raise ClientError(
                413, f"`{field}[{index}]` has {len(text)} characters; the limit is {limits.max_chars} (max_chars)."
            )


def _validation_message(error: RequestValidationError) -> str:
    """One readable line per problem: where it is and what is wrong."""
    problems = []
    for item in error.errors():
        where = ".".join(str(part) for part in item.get("loc", ()) if part != "body") or "body"
        problems.append(f"{where}: {item.get('msg', 'invalid')}")
    return "; ".join(problems)


def create_app(models: list[tuple[str, Engine]], limits: ServerLimits | None = None) -> FastAPI:
    """The app serving ``models`` (folder, engine) pairs; each model gets its own batcher and worker thread(s)."""
    limits = limits or ServerLimits()
    served: dict[str, ServedModel] = {}
    for folder, engine in models:
        if limits.parallel_batches > 1 and engine.name != "ctranslate2":
            raise ValueError(
                f"parallel_batches {limits.parallel_batches} needs the ctranslate2 engine: a {engine.name} model "
                "decodes one batch at a time."
            )
        name = Path(folder).name or folder
        if name in served:
            name = f"{name}-{len(served) + 1}"

        def decode(texts: list[str], options: DecodingOptions, engine: Engine = engine) -> Any:
            return engine.decode(texts, options, batch_size=limits.max_batch)

        batcher = DynamicBatcher(
            decode,
            max_batch=limits.max_batch,
            max_wait=limits.max_wait,
            workers=limits.parallel_batches,
            name=name,
        )
        served[name] = ServedModel(name, str(folder), engine, batcher)

    @asynccontextmanager
    async def lifespan(_: FastAPI):
        for model in served.values():
            model.batcher.start()
        yield
        for model in served.values():
            await model.batcher.stop()

    app = FastAPI(title="hf_attn", lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(_: Request, error: RequestValidationError) -> JSONResponse:
        return JSONResponse({"error": _validation_message(error)}, status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, error: StarletteHTTPException) -> JSONResponse:
        return JSONResponse({"error": str(error.detail)}, status_code=error.status_code)

    @app.exception_handler(ClientError)
    async def refused(_: Request, error: ClientError) -> JSONResponse:
        return JSONResponse({"error": str(error)}, status_code=error.status)

    @app.exception_handler(Exception)
    async def failed(_: Request, error: Exception) -> JSONResponse:
        logger.exception("request failed")
        return JSONResponse({"error": f"internal error: {type(error).__name__}: {error}"}, status_code=500)

    def pick(name: str | None) -> ServedModel:
        if name is None:
            return next(iter(served.values()))
        if name not in served:
            raise ClientError(422, f"model {name!r} is not served here (served: {', '.join(served)}).")
        return served[name]

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/info")
    async def info() -> dict[str, Any]:
        from .. import __version__ as version

        return {
            "models": [{"name": m.name, **engine_info(m.engine, m.folder)} for m in served.values()],
            "limits": {
                "max_texts": limits.max_texts,
                "max_chars": limits.max_chars,
                "max_batch": limits.max_batch,
                "parallel_batches": limits.parallel_batches,
            },
            "versions": {"hf_attn": version, "python": platform.python_version(), **_library_versions()},
        }

    @app.get("/stats")
    async def stats() -> dict[str, Any]:
        """Batches formed and engine time per model since the start: what to read when tuning batching."""
        return {"models": {m.name: m.batcher.stats.to_json(m.batcher.workers) for m in served.values()}}

    @app.post("/translate")
    async def translate(request: TranslateRequest) -> dict[str, Any]:
        model = pick(request.model)
        _check_texts("texts", request.texts, limits)
        fields = request.model_dump(exclude={"texts", "model"})
        if fields["num_beams"] is None:
            fields["num_beams"] = 1 if request.sample else 4
        try:
            options = DecodingOptions(**fields)
            check_engine_supports(options, model.engine.name)
        except ValueError as error:
            raise ClientError(422, str(error)) from None
        try:
            results = await model.batcher.translate(request.texts, options)
        except ValueError as error:  # e.g. an alignment layer the model lacks
            raise ClientError(422, str(error)) from None
        return {"model": model.name, "results": [result.to_json() for result in results]}

    @app.post("/score")
    async def score(request: ScoreRequest) -> dict[str, Any]:
        model = pick(request.model)
        _check_texts("sources", request.sources, limits)
        _check_texts("targets", request.targets, limits)
        if len(request.sources) != len(request.targets):
            raise ClientError(422, f"{len(request.sources)} source(s) but {len(request.targets)} target(s).")
        loop = asyncio.get_running_loop()
        results = await loop.run_in_executor(
            model.batcher.executor,
            lambda: model.engine.score(request.sources, request.targets, per_token=request.per_token),
        )
        return {"model": model.name, "results": [result.to_json() for result in results]}

    @app.get("/", response_class=HTMLResponse)
    async def page() -> str:
        return resources.files(__package__).joinpath("static/index.html").read_text(encoding="utf-8")

    return app


def _library_versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    versions = {}
    for name in ("torch", "transformers", "ctranslate2", "fastapi", "uvicorn"):
        try:
            versions[name] = version(name)
        except PackageNotFoundError:
            continue
    return versions
