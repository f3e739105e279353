"""``hf-attn translate`` decoding options and streaming, and ``hf-attn score``: argument parsing over the library.

Kept apart from :mod:`hf_attn.cli` so that module stays a list of subcommands.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import queue
import sys
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import IO, TYPE_CHECKING, TextIO

if TYPE_CHECKING:  # the library is imported when a command runs, so `hf-attn --help` stays instant
    from .decoding import DecodingOptions, SourceTranslations


class IntermixedArgumentParser(argparse.ArgumentParser):
    """A subcommand parser that takes sentences before and after options (``MODEL --engine X "text"``).

    Plain argparse gives an optional positional (``nargs="*"``) nothing once an option follows the
    model folder; ``parse_known_intermixed_args`` (which itself calls ``parse_known_args``) does not.
    """

    _intermixing = False

    def parse_known_args(self, args=None, namespace=None):
        if self._intermixing:
            return super().parse_known_args(args, namespace)
        self._intermixing = True
        try:
            return self.parse_known_intermixed_args(args, namespace)
        finally:
            self._intermixing = False


def add_decoding_arguments(parser: argparse.ArgumentParser, *, alignment: bool = True) -> None:
    """The decoding flags (engines: both unless said); checked by :class:`DecodingOptions` before loading a model."""
    from .cli import positive_int

    group = parser.add_argument_group("decoding")
    group.add_argument("--num-beams", type=positive_int, help="beam size (default: 4; 1 with --sample)")
    group.add_argument("--n-best", type=positive_int, default=1, help="hypotheses per source, with scores (default: 1)")
    group.add_argument("--length-penalty", type=float, default=1.0, help="score = log-prob / length^this (default 1)")
    group.add_argument("--no-repeat-ngram-size", type=int, default=0, help="forbid repeating n-grams of this size")
    group.add_argument("--sample", action="store_true", help="sample instead of beam search")
    group.add_argument("--top-k", type=int, default=0, help="sample among the K likeliest tokens (0: all)")
    group.add_argument("--top-p", type=float, default=1.0, help="nucleus sampling mass (1: all)")
    group.add_argument("--temperature", type=float, default=1.0, help="sampling temperature")
    group.add_argument("--seed", type=int, help="random seed for sampling")
    group.add_argument("--max-length-ratio", type=float, help="at most RATIO × source tokens (default 1.5× + 10)")
    group.add_argument("--coverage-penalty", type=float, default=0.0, help="ctranslate2 engine only")
    if alignment:
        group.add_argument("--alignment", choices=("hard", "soft"), help="hard: Pharaoh i-j pairs; soft: matrix (json)")
        group.add_argument("--alignment-layer", type=int, default=-1, help="layer for alignments (default: last)")
    group.add_argument("--batch-size", type=positive_int, default=32)


def decoding_options(args: argparse.Namespace) -> DecodingOptions:
    """The options of parsed arguments; a bad combination is a ValueError naming the option."""
    from .decoding import DecodingOptions

    num_beams = args.num_beams if args.num_beams is not None else (1 if args.sample else 4)
    return DecodingOptions(
        num_beams=num_beams,
        n_best=args.n_best,
        length_penalty=args.length_penalty,
        no_repeat_ngram_size=args.no_repeat_ngram_size,
        sample=args.sample,
        top_k=args.top_k,
        top_p=args.top_p,
        temperature=args.temperature,
        seed=args.seed,
        max_length_ratio=args.max_length_ratio,
        coverage_penalty=args.coverage_penalty,
        alignment=getattr(args, "alignment", None),
        alignment_layer=getattr(args, "alignment_layer", -1),
    )


def evaluation_decoding(args: argparse.Namespace) -> tuple[int, DecodingOptions | None]:
    """``hf-attn evaluate``'s beam, and options for :mod:`hf_attn.decoding` when any beyond the beam are set.

    Plain beam search keeps the evaluation path that CTranslate2 reproduces token for token.
    """
    from dataclasses import replace

    from .decoding import DecodingOptions, check_engine_supports

    options = decoding_options(args)
    check_engine_supports(options, args.engine)
    plain = replace(DecodingOptions(), num_beams=options.num_beams)
    return options.num_beams, None if options == plain else options


THREADS_HELP = "threads per engine call (default 0: the engine's choice, all cores; on a busy machine 1 can be faster)"


def add_threads_argument(parser: argparse.ArgumentParser, default: int | None = 0, help: str = THREADS_HELP) -> None:
    parser.add_argument("--threads", type=int, default=default, help=help)


def add_output_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--input", help="read sentences from FILE, one per line")
    parser.add_argument("--output", help="write to FILE (replaced when complete) instead of stdout")
    parser.add_argument("--format", choices=("text", "json"), default="text", help="text, or JSON lines")


def stream_batches(lines: IO[str], batch_size: int) -> Iterator[list[str]]:
    """Batches of lines as they arrive: a batch is whatever has arrived (up to ``batch_size``) once one line has.

    A reader thread feeds a queue, so a pipe held open gets each translation as soon as its
    line is in, and a file or a fast pipe still gets full batches.
    """
    arrived: queue.Queue[str | None] = queue.Queue()

    def read() -> None:
        for line in lines:
            arrived.put(line.rstrip("\n"))
        arrived.put(None)

    threading.Thread(target=read, daemon=True).start()
    while True:
        first = arrived.get()
        if first is None:
            return
        batch = [first]
        while len(batch) < batch_size:
            try:
                line = arrived.get_nowait()
            except queue.Empty:
                break
            if line is None:
                yield batch
                return
            batch.append(line)
        yield batch


def format_translations(result: SourceTranslations, output_format: str) -> str:
    """Lines for one source: its best translation (text), Moses-style ``rank ||| text ||| score`` for n-best, or JSON.

    A hard alignment follows the text after `` ||| `` as Marian prints it.
    """
    if output_format == "json":
        return json.dumps(result.to_json(), ensure_ascii=False)
    hypotheses = result.hypotheses or []
    if not hypotheses:
        return ""
    lines = []
    for rank, hypothesis in enumerate(hypotheses):
        fields = [hypothesis.text]
        if len(hypotheses) > 1:
            fields = [str(rank), hypothesis.text, f"{hypothesis.score:.4f}"]
        if isinstance(hypothesis.alignment, str):
            fields.append(hypothesis.alignment)
        lines.append(" ||| ".join(fields))
    return "\n".join(lines)


@contextlib.contextmanager
def output_stream(path: str | None) -> Iterator[TextIO]:
    """stdout, or a temporary file beside ``path`` that replaces it only when everything was written."""
    if path is None:
        yield sys.stdout
        return
    target = Path(path)
    handle, temporary = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent or ".")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as stream:
            yield stream
        os.replace(temporary, target)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def _input_lines(args: argparse.Namespace, stack: contextlib.ExitStack) -> tuple[IO[str], list[str] | None]:
    """The line source: --input FILE (closed with ``stack``), stdin for '-', else the sentences given as arguments."""
    if args.input:
        if args.text:
            raise ValueError("give sentences either as arguments or with --input FILE, not both.")
        return stack.enter_context(open(args.input, encoding="utf-8")), None
    if args.text == ["-"]:
        return sys.stdin, None
    if not args.text:
        raise ValueError("nothing to translate: give sentences, '-' for stdin, or --input FILE.")
    return sys.stdin, args.text


def run_translate(args: argparse.Namespace) -> int:
    """``hf-attn translate``: decode arguments, a file or stdin line by line, printing each batch when done."""
    from .decoding import check_engine_supports
    from .engines import load_engine

    options = decoding_options(args)
    check_engine_supports(options, args.engine)
    if options.alignment == "soft" and args.format != "json":
        raise ValueError("--alignment soft prints a matrix: use it with --format json.")
    with contextlib.ExitStack() as stack:
        lines, given = _input_lines(args, stack)
        engine = load_engine(args.model_dir, args.engine, threads=args.threads)
        batches = iter([given]) if given is not None else stream_batches(lines, args.batch_size)
        output = stack.enter_context(output_stream(args.output))
        for batch in batches:
            for result in engine.decode(batch, options, batch_size=args.batch_size):
                print(format_translations(result, args.format), file=output, flush=True)
    return 0


def add_score(subparsers: argparse._SubParsersAction, add_engine_argument) -> None:
    parser = subparsers.add_parser(
        "score",
        help="Log-probabilities of existing translations (forced decoding), as JSON lines.",
        description="Score target sentences given their sources: each line gives log_prob (sum over target tokens, "
        "EOS included), mean_log_prob and tokens; --per-token adds every target piece and its log-probability.",
    )
    parser.add_argument("model_dir", help="a save_pretrained folder, or a ctranslate2 export with --engine ctranslate2")
    parser.add_argument("--source", help="file of source sentences, one per line")
    parser.add_argument("--target", help="file of target sentences, line by line with --source")
    parser.add_argument("--tsv", help="a file of source<TAB>target lines instead of --source/--target")
    parser.add_argument("--per-token", action="store_true", help="add each target token's log-probability")
    parser.add_argument("--batch-size", type=int, default=32)
    add_threads_argument(parser)
    parser.add_argument("--output", help="write to FILE (replaced when complete) instead of stdout")
    add_engine_argument(parser)
    parser.set_defaults(handler=run_score)


def _read_lines(path: str) -> list[str]:
    with open(path, encoding="utf-8") as stream:
        return [line.rstrip("\n") for line in stream]


def read_score_pairs(args: argparse.Namespace) -> tuple[list[str], list[str]]:
    """Sources and targets from --tsv or from --source with --target; a malformed line is named by number."""
    if args.tsv:
        if args.source or args.target:
            raise ValueError("give either --tsv or --source with --target, not both.")
        sources, targets = [], []
        for number, line in enumerate(_read_lines(args.tsv), start=1):
            fields = line.split("\t")
            if len(fields) != 2:
                raise ValueError(f"{args.tsv} line {number}: expected source<TAB>target, got {len(fields)} field(s).")
            sources.append(fields[0])
            targets.append(fields[1])
        return sources, targets
    if not (args.source and args.target):
        raise ValueError("give --source and --target files (or --tsv).")
    sources, targets = _read_lines(args.source), _read_lines(args.target)
    if len(sources) != len(targets):
        raise ValueError(f"{args.source} has {len(sources)} line(s) but {args.target} has {len(targets)}.")
    return sources, targets


def run_score(args: argparse.Namespace) -> int:
    from .engines import load_engine

    if args.batch_size < 1:
        raise ValueError(f"--batch-size must be a positive integer, got {args.batch_size}.")
    sources, targets = read_score_pairs(args)
    engine = load_engine(args.model_dir, args.engine, threads=args.threads)
    scores = engine.score(sources, targets, batch_size=args.batch_size, per_token=args.per_token)
    with output_stream(args.output) as output:
        for result in scores:
            print(json.dumps(result.to_json(), ensure_ascii=False), file=output)
    return 0
