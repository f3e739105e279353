#!/usr/bin/env python
"""Fine-tune a saved hf_attn model with transformers' Seq2SeqTrainer (hf_attn.training.finetune).

Runs as `python scripts/finetune.py MODEL`, `torchrun --nproc_per_node N scripts/finetune.py MODEL`
(CPU or GPU processes) and `accelerate launch scripts/finetune.py MODEL` (GPUs).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Sequence
from typing import Any


def _key_value(text: str) -> tuple[str, Any]:
    import yaml

    key, separator, value = text.partition("=")
    if not separator or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    return key, yaml.safe_load(value)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description="Fine-tune a saved hf_attn model (local folder or Hub id) with Seq2SeqTrainer: BLEU/chrF "
        "evaluation by generation, best checkpoint by dev BLEU, gradient accumulation, resume, optional LoRA.",
    )
    parser.add_argument("model", help="a save_pretrained folder with its tokenizer, or a Hub repo id")
    parser.add_argument("--output-dir", default="runs/finetune", help="checkpoints, best/ and metrics go here")
    parser.add_argument("--data", help="TSV/JSONL/aligned text files/saved dataset; default: the bundled Bible corpus")
    parser.add_argument("--max-train-examples", type=int, help="train on the first N training pairs only")
    parser.add_argument("--eval-examples", type=int, default=200, help="evaluate on the first N validation pairs")
    parser.add_argument("--max-source-length", type=int, help="truncate sources to N tokens (default 256)")
    parser.add_argument("--max-target-length", type=int, help="truncate targets to N tokens (default 256)")
    parser.add_argument("--max-steps", type=int, default=-1, help="optimizer steps (default: --epochs)")
    parser.add_argument("--epochs", type=float, default=1.0)
    parser.add_argument("--learning-rate", type=float, default=5e-4)
    parser.add_argument("--warmup-steps", type=int, default=0)
    parser.add_argument("--batch-size", type=int, default=32, help="sentence pairs per device and micro-batch")
    parser.add_argument("--gradient-accumulation-steps", type=int, default=1)
    parser.add_argument("--eval-steps", type=int, default=200, help="evaluate and save a checkpoint every N steps")
    parser.add_argument("--logging-steps", type=int, default=50)
    parser.add_argument("--num-beams", type=int, default=4, help="beam size of evaluation generation")
    parser.add_argument("--generation-max-length", type=int, help="longest generated sequence during evaluation")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--report-to", default="none", help="none, tensorboard, wandb, ...")
    resume = parser.add_mutually_exclusive_group()
    resume.add_argument("--resume", action="store_true", help="continue from the latest checkpoint in --output-dir")
    resume.add_argument("--resume-from-checkpoint", metavar="DIR", help="continue from this checkpoint folder")
    parser.add_argument("--lora", action="store_true", help="train LoRA adapters only (needs peft)")
    parser.add_argument("--lora-r", type=int, default=8)
    parser.add_argument("--lora-alpha", type=int, default=16)
    parser.add_argument("--lora-dropout", type=float, default=0.0)
    parser.add_argument(
        "--lora-target-modules", nargs="+", default=["all-linear"], help="layer names (see hf_attn/lora.py)"
    )
    parser.add_argument(
        "--training-arg",
        dest="training_args",
        action="append",
        type=_key_value,
        default=[],
        metavar="KEY=VALUE",
        help="any other Seq2SeqTrainingArguments field, e.g. --training-arg weight_decay=0.01 (repeatable)",
    )
    parser.add_argument("--verbose", action="store_true", help="debug logging")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    from dataclasses import asdict

    from hf_attn.training.finetune import finetune
    from hf_attn.training.lora import lora_config

    targets = args.lora_target_modules
    lora = (
        lora_config(
            r=args.lora_r,
            alpha=args.lora_alpha,
            dropout=args.lora_dropout,
            target_modules=targets[0] if targets == ["all-linear"] else targets,
        )
        if args.lora
        else None
    )
    training_overrides: dict[str, Any] = {
        "max_steps": args.max_steps,
        "num_train_epochs": args.epochs,
        "learning_rate": args.learning_rate,
        "warmup_steps": args.warmup_steps,
        "per_device_train_batch_size": args.batch_size,
        "per_device_eval_batch_size": args.batch_size,
        "gradient_accumulation_steps": args.gradient_accumulation_steps,
        "eval_steps": args.eval_steps,
        "save_steps": args.eval_steps,
        "logging_steps": args.logging_steps,
        "generation_num_beams": args.num_beams,
        "seed": args.seed,
        "report_to": args.report_to,
    }
    if args.generation_max_length:
        training_overrides["generation_max_length"] = args.generation_max_length
    training_overrides.update(args.training_args)
    result = finetune(
        args.model,
        args.output_dir,
        data=args.data,
        max_train_examples=args.max_train_examples,
        eval_examples=args.eval_examples,
        max_source_length=args.max_source_length,
        max_target_length=args.max_target_length,
        resume_from_checkpoint=True if args.resume else args.resume_from_checkpoint,
        lora=lora,
        **training_overrides,
    )
    if int(os.environ.get("RANK", "0")) == 0:
        print(json.dumps(asdict(result), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
