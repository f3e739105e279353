"""``hf-attn serve`` arguments; the server stack is imported only when the command runs."""

from __future__ import annotations

import argparse
import contextlib
import os
import signal

from ..decoding_cli import add_threads_argument


def add_serve(subparsers: argparse._SubParsersAction, add_engine_argument) -> None:
    parser = subparsers.add_parser(
        "serve",
        help="Serve one or two models over HTTP (JSON API and a web page with attention heatmaps).",
        description="POST /translate, POST /score, GET /health, GET /info, and a page at / to translate and look at "
        "attention (two models side by side when two are given). Listens on 127.0.0.1 unless --host says otherwise. "
        "Needs the `serve` extra (pip install 'hf_attn[serve]').",
    )
    parser.add_argument("model_dirs", nargs="+", metavar="MODEL", help="one or two model folders")
    add_engine_argument(parser)
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8080, help="port (default: 8080; 0 picks a free one)")
    parser.add_argument("--max-texts", type=int, default=64, help="texts per request (default 64)")
    parser.add_argument("--max-chars", type=int, default=2000, help="characters per text (default 2000)")
    parser.add_argument("--max-batch", type=int, default=64, help="texts per engine call (default 64)")
    parser.add_argument("--max-wait-ms", type=float, default=10.0, help="how long a request waits for others (10)")
    add_threads_argument(
        parser,
        default=None,
        help="threads per engine call (default: 1 with ctranslate2, whose --parallel-batches use the other cores; "
        "0, the engine's choice of all cores, with torch)",
    )
    parser.add_argument(
        "--parallel-batches",
        type=int,
        default=None,
        help="engine calls at once, each with --threads threads (ctranslate2 only; default: one per usable core "
        "with the default --threads, else 1)",
    )
    parser.set_defaults(handler=run_serve)


def usable_cores() -> int:
    """The cores this process may run on (its affinity mask under a scheduler or taskset), not the machine's."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def default_engine_threads(engine: str, threads: int | None, parallel: int | None) -> tuple[int, int]:
    """``--threads`` and ``--parallel-batches`` where not given.

    CTranslate2 serves best with single-threaded calls, one per core (docs/serving.md): a small
    model's matrix products split over threads wait at barriers, while separate calls never wait
    for each other. Torch decodes one batch at a time.
    """
    if engine != "ctranslate2":
        return (0 if threads is None else threads), (1 if parallel is None else parallel)
    if threads is None:
        return 1, (usable_cores() if parallel is None else parallel)
    return threads, (1 if parallel is None else parallel)


def run_serve(args: argparse.Namespace) -> int:
    args.threads, args.parallel_batches = default_engine_threads(args.engine, args.threads, args.parallel_batches)
    if len(args.model_dirs) > 2:
        raise ValueError(f"serve takes one or two models, got {len(args.model_dirs)}.")
    for name in ("max_texts", "max_chars", "max_batch", "parallel_batches"):
        if getattr(args, name) < 1:
            raise ValueError(f"--{name.replace('_', '-')} must be a positive integer, got {getattr(args, name)}.")
    if not 0 <= args.max_wait_ms < 60_000:
        raise ValueError(f"--max-wait-ms must be between 0 and 60000, got {args.max_wait_ms}.")
    try:
        import uvicorn

        from .app import ServerLimits, create_app
    except ImportError as error:
        raise SystemExit(
            f"error: hf-attn serve needs the serve extra (pip install 'hf_attn[serve]'): {error}"
        ) from None
    from ..engines import load_engine

    models = [
        (folder, load_engine(folder, args.engine, threads=args.threads, parallel=args.parallel_batches))
        for folder in args.model_dirs
    ]
    limits = ServerLimits(
        args.max_texts, args.max_chars, args.max_batch, args.max_wait_ms / 1000, args.parallel_batches
    )
    server = _graceful_server_class()(uvicorn.Config(create_app(models, limits), host=args.host, port=args.port))
    server.run()
    return 0


def _graceful_server_class() -> type:
    """Built on first use: uvicorn is an optional dependency."""
    import uvicorn

    class GracefulServer(uvicorn.Server):
        """A uvicorn server that exits 0 on SIGTERM/SIGINT once the requests in flight are answered.

        uvicorn finishes them too, but then re-raises the signal, so the process dies by it.
        """

        @contextlib.contextmanager
        def capture_signals(self):
            def stop(*_: object) -> None:
                self.should_exit = True

            previous = {number: signal.signal(number, stop) for number in (signal.SIGTERM, signal.SIGINT)}
            try:
                yield
            finally:
                for number, handler in previous.items():
                    signal.signal(number, handler)

    return GracefulServer
