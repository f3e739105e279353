"""The ``hf-attn`` console command: thin argument parsing over the library.

Each subcommand imports what it needs lazily, so ``hf-attn --help`` answers instantly.
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
from collections.abc import Sequence


def positive_int(text: str) -> int:
    """argparse type: an integer of at least 1 (checked before any model or data is loaded)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {value}")
    return value


def positive_float(text: str) -> float:
    """argparse type: a number above 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text}")
    return value


def add_overrides_option(parser: argparse.ArgumentParser, help_text: str) -> None:
    """The repeatable ``--set KEY=VALUE`` training-config override (train, and the seed experiment's script)."""
    parser.add_argument(
        "--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE", help=f"{help_text} (repeatable)"
    )


def _add_train(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "train",
        help="Train a model from a config (same as scripts/train.py).",
        description="Train an RNN or Transformer from a YAML/JSON config or a preset name "
        "(transformer_small, rnn_small). Resumes from the output directory's latest checkpoint.",
    )
    parser.add_argument("config", help="config file or preset name (see hf_attn/configs/)")
    add_overrides_option(parser, "override a config value, e.g. --set max_steps=200 --set model.d_model=128")
    parser.add_argument("--output-dir", help="where checkpoints, the best model and plots go")
    parser.add_argument("--no-resume", action="store_true", help="start from scratch even if checkpoints exist")
    parser.add_argument(
        "--allow-inexact-resume",
        action="store_true",
        help="resume even when the checkpoint's random-number states are missing or damaged (the run then differs "
        "from an uninterrupted one); without it that is an error",
    )
    parser.set_defaults(handler=_run_train)


def _run_train(args: argparse.Namespace) -> int:
    from .training.config import load_training_config
    from .training.loop import train

    overrides = list(args.overrides) + ([f"output_dir={args.output_dir}"] if args.output_dir else [])
    config = load_training_config(args.config, overrides)
    summary = train(config, resume=not args.no_resume, allow_inexact_resume=args.allow_inexact_resume)
    print(json.dumps(summary.__dict__, indent=2))
    return 0


def _add_evaluate(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "evaluate",
        help="BLEU/chrF of a saved model on a split.",
        description="Translate a split with a saved model and score it with sacrebleu (BLEU, chrF, BLEU by "
        "source length); writes hypotheses.txt and metrics.json.",
    )
    parser.add_argument("model_dir", help="a save_pretrained folder (model + tokenizer)")
    parser.add_argument("--data", help="user data (TSV/JSONL/saved dataset); default: the bundled Bible corpus")
    parser.add_argument("--split", default="test", help="split to evaluate (default: test)")
    parser.add_argument("--max-examples", type=positive_int, help="evaluate only the first N examples")
    parser.add_argument("--output-dir", help="where hypotheses.txt and metrics.json go (default: MODEL_DIR/eval-SPLIT)")
    _add_engine_argument(parser)
    from .decoding_cli import add_decoding_arguments

    add_decoding_arguments(parser, alignment=False)
    parser.set_defaults(handler=_run_evaluate_on_engine)


def _run_evaluate(args: argparse.Namespace) -> int:
    from pathlib import Path

    from .data import load_bible_corpus, load_parallel_data
    from .decoding_cli import evaluation_decoding
    from .evaluation import evaluate_model
    from .inference import load_model_and_tokenizer

    num_beams, decoding = evaluation_decoding(args)
    model, tokenizer = load_model_and_tokenizer(args.model_dir)
    corpus = load_bible_corpus() if args.data is None else load_parallel_data(args.data)
    if args.split not in corpus:
        raise SystemExit(f"error: split {args.split!r} not in the data (splits: {', '.join(corpus)})")
    output_dir = args.output_dir or str(Path(args.model_dir) / f"eval-{args.split}")
    metrics = evaluate_model(
        model,
        tokenizer,
        corpus[args.split],
        output_dir=output_dir,
        num_beams=num_beams,
        batch_size=args.batch_size,
        max_examples=args.max_examples,
        progress=True,
        decoding=decoding,
    )
    print(json.dumps(metrics, indent=2))
    return 0


def _add_average(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "average",
        help="Average the weights of several checkpoints into one model folder.",
        description="Average the weights of training checkpoints (RUN/checkpoints/step-*) or save_pretrained folders "
        "of one architecture into a save_pretrained folder, as Vaswani et al. (2017) do with a run's last checkpoints.",
    )
    parser.add_argument("checkpoints", nargs="+", help="checkpoint or model folders to average")
    parser.add_argument("output_dir", help="where the averaged model folder goes (replaced atomically)")
    parser.add_argument(
        "--reference",
        help="model folder whose config, generation config and tokenizer the average keeps "
        "(default: the first save_pretrained input, else the run's best/)",
    )
    parser.set_defaults(handler=_run_average)


def _run_average(args: argparse.Namespace) -> int:
    from .training.averaging import average_checkpoints

    folder = average_checkpoints(args.checkpoints, args.output_dir, reference=args.reference)
    print(json.dumps({"averaged": len(args.checkpoints), "output_dir": str(folder)}))
    return 0


def _add_translate(subparsers: argparse._SubParsersAction) -> None:
    from .decoding_cli import (
        IntermixedArgumentParser,
        add_decoding_arguments,
        add_output_arguments,
        add_threads_argument,
        run_translate,
    )

    parser = subparsers.add_parser(
        "translate",
        help="Translate text with a saved model: beam search or sampling, n-best lists, scores, alignments.",
        description="Translate sentences given as arguments, lines of --input FILE, or lines on standard input with "
        "'-' (read line by line: each batch is printed as soon as it is translated). An empty line translates to an "
        "empty line.",
    )
    parser.add_argument("model_dir", help="a save_pretrained folder (model + tokenizer)")
    parser.__class__ = IntermixedArgumentParser  # sentences may follow the options
    parser.add_argument("text", nargs="*", help="sentences to translate, or '-' to read lines from stdin")
    add_decoding_arguments(parser)
    add_output_arguments(parser)
    _add_engine_argument(parser)
    add_threads_argument(parser)
    parser.set_defaults(handler=run_translate)


def _add_serve(subparsers: argparse._SubParsersAction) -> None:
    from .serving.cli import add_serve

    add_serve(subparsers, _add_engine_argument)


def _add_score(subparsers: argparse._SubParsersAction) -> None:
    from .decoding_cli import add_score

    add_score(subparsers, _add_engine_argument)


def _add_engine_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--engine",
        choices=("torch", "ctranslate2"),
        default="torch",
        help="torch: model.generate on a saved (or torch-int8 exported) folder; ctranslate2: a folder written by "
        "`hf-attn export --format ctranslate2` (default: torch)",
    )


def _ctranslate2_model(folder: str):
    """An exported CTranslate2 folder; a missing optional package becomes a one-line error."""
    try:
        from .deploy.ctranslate2_translate import CTranslate2Model

        return CTranslate2Model(folder)
    except ImportError as error:
        raise SystemExit(f"error: {error}") from None


def _run_evaluate_on_engine(args: argparse.Namespace) -> int:
    if args.engine == "torch":
        return _run_evaluate(args)
    from .decoding_cli import evaluation_decoding
    from .deploy.ctranslate2_evaluate import evaluate_ctranslate2

    num_beams, decoding = evaluation_decoding(args)
    metrics = evaluate_ctranslate2(
        _ctranslate2_model(args.model_dir),
        data=args.data,
        split=args.split,
        output_dir=args.output_dir,
        num_beams=num_beams,
        batch_size=args.batch_size,
        max_examples=args.max_examples,
        decoding=decoding,
    )
    print(json.dumps(metrics, indent=2))
    return 0


def _add_export(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "export",
        help="Export a saved model for fast CPU serving (Transformer: CTranslate2; RNN: int8 PyTorch).",
        description="Write OUT_DIR for serving: --format ctranslate2 converts a transformer_seq2seq model to "
        "CTranslate2 (weights int8 by default; float32 translates token for token like generate); --format "
        "torch-int8 quantizes an rnn_seq2seq model's linear layers to int8 (PyTorch dynamic quantization), loadable "
        "by hf-attn translate/evaluate and load_model_and_tokenizer. OUT_DIR also gets the tokenizer and a README "
        "with the command that uses it.",
    )
    parser.add_argument("model_dir", help="a save_pretrained folder (model + tokenizer)")
    parser.add_argument("out_dir", help="the folder to write (replaced if it exists)")
    parser.add_argument("--format", required=True, choices=("ctranslate2", "torch-int8"))
    parser.add_argument(
        "--quantization",
        help="ctranslate2: int8 (default), int8_float32 or float32; torch-int8: int8",
    )
    parser.set_defaults(handler=_run_export)


def _run_export(args: argparse.Namespace) -> int:
    from .deploy import export_model

    try:
        print(export_model(args.model_dir, args.out_dir, args.format, args.quantization))
    except ImportError as error:
        raise SystemExit(f"error: {error}") from None
    return 0


def _add_quickstart(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "quickstart",
        help="The main job: train, evaluate and compare a Transformer and an RNN on the bundled corpus.",
        description="Train a Transformer and an RNN+attention model on the bundled KJV->RV1909 corpus with one "
        "shared tokenizer and budget, evaluate both on the test split, print a results table and sample "
        "translations. Default budget ~20 minutes on 2 CPU cores; --quick takes ~3 minutes.",
    )
    parser.add_argument("--output-dir", default="runs/quickstart")
    parser.add_argument("--quick", action="store_true", help="a few-minute smoke run")
    parser.add_argument(
        "--steps-per-model",
        type=positive_int,
        help="training updates of each model (default: the presets' 1,100 and 1,600)",
    )
    parser.add_argument("--minutes-per-model", type=positive_float, help="wall-clock cap per model (default: none)")
    parser.add_argument("--test-examples", type=positive_int, help="evaluate on the first N test verses only")
    parser.add_argument("--cards-dir", help="also copy the model cards and plots here (e.g. model_cards)")
    parser.set_defaults(handler=_run_quickstart)


def _run_quickstart(args: argparse.Namespace) -> int:
    from .quickstart import format_report, run_quickstart

    report = run_quickstart(
        args.output_dir,
        quick=args.quick,
        minutes_per_model=args.minutes_per_model,
        steps_per_model=args.steps_per_model,
        test_examples=args.test_examples,
        cards_dir=args.cards_dir,
    )
    print(format_report(report))
    return 0


def _add_card(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "card",
        help="Write a model card (README.md with Hub metadata) for a saved model.",
        description="Write MODEL_DIR/README.md: Hub YAML metadata (languages, licence, tags, test BLEU/chrF as "
        "model-index), architecture from the config, training data, budget and hardware, test metrics by sentence "
        "length, sample translations, usage, plots and limitations.",
    )
    parser.add_argument("model_dir", help="a save_pretrained folder (model + tokenizer)")
    parser.add_argument(
        "--run-dir", help="the training run folder (default: MODEL_DIR's parent when it holds summary.json)"
    )
    parser.add_argument("--test-metrics", help="an evaluation's metrics.json (default: RUN_DIR/test/metrics.json)")
    parser.add_argument("--repo-id", help="Hub repo id to name in the title and the usage snippets")
    parser.set_defaults(handler=_run_card)


def _run_card(args: argparse.Namespace) -> int:
    from .atomic import read_json_file
    from .cards import write_model_card

    metrics = read_json_file(args.test_metrics) if args.test_metrics else None
    print(write_model_card(args.model_dir, run_dir=args.run_dir, test_metrics=metrics, repo_id=args.repo_id))
    return 0


def _add_push(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "push",
        help="Upload a saved model folder to the Hugging Face Hub.",
        description="Upload every file of MODEL_DIR (weights, config, tokenizer, remote code, card, plots) to the "
        "Hub model repo REPO_ID in one commit, creating the repo if needed. Writes a model card first if the folder "
        "has none. Uses the logged-in token or HF_TOKEN.",
    )
    parser.add_argument("model_dir", help="a save_pretrained folder (model + tokenizer)")
    parser.add_argument("repo_id", help="owner/name on the Hub")
    parser.add_argument("--private", action="store_true", help="create the repo private")
    parser.add_argument("--message", help="commit message")
    parser.add_argument("--run-dir", help="the training run folder, for the card (default: see `hf-attn card`)")
    parser.set_defaults(handler=_run_push)


def _run_push(args: argparse.Namespace) -> int:
    from .cards import CARD_NAME, write_model_card
    from .hub import check_model_folder, push_model_folder, validate_repo_id

    validate_repo_id(args.repo_id)
    folder = check_model_folder(args.model_dir)
    if not (folder / CARD_NAME).is_file():
        write_model_card(folder, run_dir=args.run_dir, repo_id=args.repo_id)
    commit = push_model_folder(folder, args.repo_id, private=args.private, commit_message=args.message)
    print(commit)
    return 0


def _add_distill(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "distill",
        help="Distill any seq2seq teacher into a small, fast student (sequence-level knowledge distillation).",
        description="Translate the training sources with TEACHER (any AutoModelForSeq2SeqLM folder or Hub id, with "
        "its own tokenizer; on CTranslate2 when it converts to it, else generate), in chunks written atomically so a "
        "killed run continues where it stopped; save the distilled corpus (save_to_disk); train the student preset on "
        "it with the normal training loop; export it (CTranslate2 int8 for a Transformer, torch-int8 for an RNN); "
        "evaluate teacher, student and exported student on the test split; write the student's card naming the "
        "teacher. Re-running with the same arguments resumes; a folder holding another run is refused.",
    )
    parser.add_argument("teacher", help="the teacher: a save_pretrained folder or a Hub id of a seq2seq model")
    parser.add_argument("--output-dir", required=True, help="the run folder (new or empty, or this run's to resume)")
    parser.add_argument("--data", help="user data (TSV/JSONL/saved dataset); default: the bundled Bible corpus")
    parser.add_argument(
        "--student", default="transformer_student", help="student preset or config file (default: transformer_student)"
    )
    add_overrides_option(parser, "override a student config value as in `hf-attn train`, e.g. --set max_steps=200")
    parser.add_argument("--num-beams", type=positive_int, default=4, help="teacher beam size (default: 4)")
    parser.add_argument("--batch-size", type=positive_int, default=32, help="sentences per translation batch")
    parser.add_argument(
        "--chunk-size", type=positive_int, default=1000, help="sentences per atomically written teacher chunk"
    )
    parser.add_argument("--mix-references", action="store_true", help="train on distilled and original pairs")
    parser.add_argument("--teacher-engine", choices=("auto", "ctranslate2", "torch"), default="auto")
    parser.add_argument(
        "--teacher-quantization",
        choices=("int8", "int8_float32", "float32"),
        default="int8",
        help="weights of the teacher's CTranslate2 copy (default: int8)",
    )
    parser.add_argument("--train-examples", type=positive_int, help="distill only the first N training pairs")
    parser.add_argument("--test-examples", type=positive_int, help="evaluate on the first N test pairs only")
    parser.add_argument("--eval-num-beams", type=positive_int, default=4, help="beam size of the test evaluations")
    parser.set_defaults(handler=_run_distill)


def _run_distill(args: argparse.Namespace) -> int:
    from .distillation import DistillationSettings, run_distillation

    settings = DistillationSettings(
        teacher=args.teacher,
        output_dir=args.output_dir,
        student=args.student,
        data=args.data,
        overrides=args.overrides,
        num_beams=args.num_beams,
        batch_size=args.batch_size,
        chunk_size=args.chunk_size,
        mix_references=args.mix_references,
        teacher_engine=args.teacher_engine,
        teacher_quantization=args.teacher_quantization,
        train_examples=args.train_examples,
        test_examples=args.test_examples,
        eval_num_beams=args.eval_num_beams,
    )
    report = run_distillation(settings, progress=True)
    print(json.dumps({"models": report["models"], "stages": report["stages"], "card": report["card"]}, indent=2))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hf-attn",
        description="Classic attention seq2seq models (RNN+attention, Transformer) as transformers models.",
    )
    parser.add_argument("--verbose", action="store_true", help="debug logging")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add in (
        _add_quickstart,
        _add_train,
        _add_evaluate,
        _add_translate,
        _add_score,
        _add_serve,
        _add_average,
        _add_export,
        _add_card,
        _add_push,
        _add_distill,
    ):
        add(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        return args.handler(args)
    except (OSError, ValueError) as error:
        # Bad input (a missing file or repo, a bad config value, malformed data) is the user's to fix:
        # say what is wrong without a traceback, unless --verbose asks for one.
        if args.verbose:
            raise
        print(f"hf-attn {args.command}: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as interrupt:
        # Ctrl-C, or SIGTERM during training (which first saves a checkpoint: TrainingInterrupted says where).
        if args.verbose:
            raise
        signal_number = getattr(interrupt, "signal_number", signal.SIGINT)
        detail = str(interrupt) or "interrupted"
        print(f"hf-attn {args.command}: {detail}", file=sys.stderr)
        return 128 + int(signal_number)


if __name__ == "__main__":
    sys.exit(main())
