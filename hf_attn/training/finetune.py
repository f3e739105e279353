"""Fine-tune a saved hf_attn model with the stock ``Seq2SeqTrainer``.

The project's own loop (:mod:`hf_attn.training`) trains from scratch with token-count
batches; this module shows the models in the tool most ``transformers`` users already know:
``Seq2SeqTrainer`` with ``DataCollatorForSeq2Seq``, generation-based BLEU/chrF evaluation,
best-checkpoint selection by BLEU, gradient accumulation, resume and ``torchrun``. Nothing
here knows which model it drives.

Both models declare ``accepts_loss_kwargs = True`` and divide their summed token loss by the
``num_items_in_batch`` the Trainer passes, so the loss the Trainer logs and back-propagates
is the per-token mean over all micro-batches of an optimizer step (not a mean of
micro-batch means).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import datasets
import numpy as np
from transformers import (
    DataCollatorForSeq2Seq,
    EvalPrediction,
    PreTrainedModel,
    PreTrainedTokenizerBase,
    Seq2SeqTrainer,
    Seq2SeqTrainingArguments,
    TrainerCallback,
)

from ..atomic import atomic_write_json
from ..data import DataSource, load_bible_corpus, load_parallel_data
from ..evaluation import corpus_scores
from ..inference import load_model_and_tokenizer
from .builders import has_accelerator
from .lora import add_lora

if TYPE_CHECKING:
    from peft import LoraConfig

logger = logging.getLogger(__name__)

BEST_MODEL_DIR = "best"
MERGED_MODEL_DIR = "merged"
DEFAULT_MAX_LENGTH = 256


def training_arguments(output_dir: str | os.PathLike[str], **overrides: Any) -> Seq2SeqTrainingArguments:
    """``Seq2SeqTrainingArguments`` with this project's defaults; any field can be overridden.

    Defaults: evaluate and save every 200 steps, keep the best checkpoint by dev BLEU
    (beam 4 generation), CPU when there is no GPU (also right under ``torchrun`` on CPU,
    where it picks gloo), no external loggers.
    """
    defaults: dict[str, Any] = {
        "predict_with_generate": True,
        "generation_num_beams": 4,
        "eval_strategy": "steps",
        "eval_steps": 200,
        "save_strategy": "steps",
        "save_steps": 200,
        "save_total_limit": 2,
        "load_best_model_at_end": True,
        "metric_for_best_model": "bleu",
        "greater_is_better": True,
        "learning_rate": 5e-4,
        "per_device_train_batch_size": 32,
        "per_device_eval_batch_size": 32,
        "logging_steps": 50,
        "use_cpu": not has_accelerator(),
        "report_to": "none",
    }
    return Seq2SeqTrainingArguments(output_dir=str(output_dir), **{**defaults, **overrides})


def tokenize_pairs(
    split: datasets.Dataset,
    tokenizer: PreTrainedTokenizerBase,
    *,
    max_source_length: int = DEFAULT_MAX_LENGTH,
    max_target_length: int = DEFAULT_MAX_LENGTH,
) -> datasets.Dataset:
    """``input_ids``/``attention_mask``/``labels`` of each pair, truncated (keeping ``</s>``) as the Trainer expects."""

    def encode(batch: dict[str, list[str]]) -> dict[str, list[list[int]]]:
        encoded = tokenizer(batch["source"], max_length=max_source_length, truncation=True)
        labels = tokenizer(text_target=batch["target"], max_length=max_target_length, truncation=True)["input_ids"]
        return {"input_ids": encoded["input_ids"], "attention_mask": encoded["attention_mask"], "labels": labels}

    return split.map(encode, batched=True, remove_columns=split.column_names, desc="Tokenizing")


def make_compute_metrics(tokenizer: PreTrainedTokenizerBase) -> Callable[[EvalPrediction], dict[str, float]]:
    """A ``compute_metrics`` giving corpus BLEU and chrF (sacrebleu defaults, as :mod:`hf_attn.evaluation`).

    Generated ids and labels arrive padded with -100 across batches; they become the pad id
    before decoding. References are the decoded labels, so they are as long as the
    tokenized targets (see ``max_target_length``).
    """

    def compute_metrics(prediction: EvalPrediction) -> dict[str, float]:
        predictions = prediction.predictions[0] if isinstance(prediction.predictions, tuple) else prediction.predictions
        predictions = np.where(predictions != -100, predictions, tokenizer.pad_token_id)
        labels = np.where(prediction.label_ids != -100, prediction.label_ids, tokenizer.pad_token_id)
        hypotheses = [text.strip() for text in tokenizer.batch_decode(predictions, skip_special_tokens=True)]
        references = [text.strip() for text in tokenizer.batch_decode(labels, skip_special_tokens=True)]
        scores = corpus_scores(hypotheses, references)
        special = np.isin(predictions, tokenizer.all_special_ids)
        return {"bleu": scores["bleu"], "chrf": scores["chrf"], "gen_len": float((~special).sum(axis=1).mean())}

    return compute_metrics


def build_trainer(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    args: Seq2SeqTrainingArguments,
    train_dataset: datasets.Dataset,
    eval_dataset: datasets.Dataset | None = None,
    callbacks: Sequence[TrainerCallback] = (),
) -> Seq2SeqTrainer:
    """A ``Seq2SeqTrainer`` on tokenized pairs, with the model's own decoder inputs and BLEU/chrF metrics."""
    return Seq2SeqTrainer(
        model=model,
        args=args,
        data_collator=DataCollatorForSeq2Seq(tokenizer, model=model, label_pad_token_id=-100),
        train_dataset=train_dataset,
        eval_dataset=eval_dataset,
        processing_class=tokenizer,
        compute_metrics=make_compute_metrics(tokenizer),
        callbacks=list(callbacks),
    )


@dataclass
class FinetuneResult:
    """What :func:`finetune` reports (also written to ``output_dir/finetune_result.json``)."""

    output_dir: str
    best_model_dir: str
    best_model_checkpoint: str | None
    best_metric: float | None
    global_step: int
    train_loss: float
    train_metrics: dict[str, float]


def _load_corpus(data: DataSource | datasets.DatasetDict | None) -> datasets.DatasetDict:
    if data is None:
        return load_bible_corpus()
    return data if isinstance(data, datasets.DatasetDict) else load_parallel_data(data)


def _first(split: datasets.Dataset, count: int | None) -> datasets.Dataset:
    return split if count is None else split.select(range(min(count, len(split))))


def finetune(
    model_name_or_path: str | os.PathLike[str],
    output_dir: str | os.PathLike[str],
    *,
    data: DataSource | datasets.DatasetDict | None = None,
    max_train_examples: int | None = None,
    eval_examples: int | None = 200,
    max_source_length: int | None = None,
    max_target_length: int | None = None,
    resume_from_checkpoint: str | bool | None = None,
    lora: LoraConfig | None = None,
    callbacks: Sequence[TrainerCallback] = (),
    **training_overrides: Any,
) -> FinetuneResult:
    """Fine-tune a saved model (local folder or Hub id) on ``data`` (default: the bundled corpus).

    ``data`` is anything :func:`hf_attn.data.load_parallel_data` reads, or a DatasetDict with
    ``train`` and ``validation`` splits (columns ``source``/``target``). Evaluation uses the
    first ``eval_examples`` validation pairs. ``training_overrides`` are
    ``Seq2SeqTrainingArguments`` fields. ``resume_from_checkpoint`` is a checkpoint folder, or
    True for the latest in ``output_dir``. The best model (by dev BLEU) is saved with its
    tokenizer to ``output_dir/best``. With ``lora`` (see :mod:`hf_attn.training.lora`) only adapters
    train; ``best`` then holds the adapter and ``output_dir/merged`` the merged plain model.
    """
    model, tokenizer = load_model_and_tokenizer(model_name_or_path)
    if lora is not None:
        model = add_lora(model, lora)
    position_limit = getattr(model.config, "max_position_embeddings", None) or DEFAULT_MAX_LENGTH
    default_length = min(DEFAULT_MAX_LENGTH, position_limit)
    training_overrides.setdefault("generation_max_length", default_length)
    args = training_arguments(output_dir, **training_overrides)
    corpus = _load_corpus(data)
    with args.main_process_first(desc="tokenizing"):
        lengths = {
            "max_source_length": max_source_length or default_length,
            "max_target_length": max_target_length or default_length,
        }
        train_dataset = tokenize_pairs(_first(corpus["train"], max_train_examples), tokenizer, **lengths)
        eval_dataset = None
        if args.eval_strategy != "no":
            if "validation" not in corpus:
                raise ValueError(f"Evaluation needs a 'validation' split; the data has {', '.join(corpus)}.")
            eval_dataset = tokenize_pairs(_first(corpus["validation"], eval_examples), tokenizer, **lengths)
    trainer = build_trainer(model, tokenizer, args, train_dataset, eval_dataset, callbacks)
    output = trainer.train(resume_from_checkpoint=resume_from_checkpoint)
    best_dir = Path(output_dir) / BEST_MODEL_DIR
    trainer.save_model(str(best_dir))
    trainer.save_metrics("train", output.metrics)
    trainer.save_state()
    result = FinetuneResult(
        output_dir=str(output_dir),
        best_model_dir=str(best_dir),
        best_model_checkpoint=trainer.state.best_model_checkpoint,
        best_metric=trainer.state.best_metric,
        global_step=output.global_step,
        train_loss=output.training_loss,
        train_metrics=dict(output.metrics),
    )
    if trainer.is_world_process_zero():
        if lora is not None:
            merged = trainer.model.merge_and_unload()
            merged.save_pretrained(Path(output_dir) / MERGED_MODEL_DIR)
            tokenizer.save_pretrained(Path(output_dir) / MERGED_MODEL_DIR)
        atomic_write_json(Path(output_dir) / "finetune_result.json", asdict(result))
    logger.info(
        "Fine-tuned for %d steps; best dev BLEU %s; best model in %s", result.global_step, result.best_metric, best_dir
    )
    return result
