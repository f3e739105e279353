"""The accelerate training loop shared by both models.

One loop trains either model from a :class:`~hf_attn.training.config.TrainingConfig` on one
CPU, one GPU or many processes (``accelerate launch`` / ``torchrun``). Its guarantees:

* **Same result on N processes as on one.** Every process plans the same global
  token-count batches and takes its share of each; the loss of an optimizer step is the
  sum over its target tokens divided by the step's *global* token count, so gradients do
  not depend on how the tokens were split across processes or accumulation micro-batches.
* **Exact resume.** Checkpoints (model, optimizer, schedule, RNG states, progress
  including the position inside the epoch) are written atomically every ``save_every``
  steps; a run killed at any point and restarted continues from the last checkpoint and
  ends with the same weights as an uninterrupted run. A checkpoint that cannot give that
  (damaged, missing its random states, written for another model size) is refused with an
  error naming the file, unless ``allow_inexact_resume``; nothing in it is unpickled
  beyond tensors and plain data (``checkpointing.py``).
* **Clean stops.** SIGTERM (what schedulers send before killing) and Ctrl-C finish the
  current step, save a checkpoint and raise :class:`TrainingInterrupted`; a signal that reaches
  any one process stops all of them at the same step (a stop flag is all-reduced); one run at a time
  may use an output directory (a lock), and what a killed run left half-written is removed
  when the next one starts.
* **The best model is always loadable.** After each dev evaluation that improves dev
  BLEU, ``output_dir/best`` is replaced atomically with a ``save_pretrained`` folder
  (model, tokenizer, generation config), ready for ``AutoModelForSeq2SeqLM``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import math
import shutil
import signal
import threading
import time
from dataclasses import dataclass, field
from datetime import timedelta
from itertools import islice
from pathlib import Path
from typing import Any

import torch
from accelerate import Accelerator, DataLoaderConfiguration, InitProcessGroupKwargs
from accelerate.utils import broadcast_object_list, set_seed
from tqdm.auto import tqdm
from transformers import AutoModelForSeq2SeqLM, PreTrainedModel
from transformers.tokenization_utils_base import VERY_LARGE_INTEGER

from ..atomic import atomic_directory, atomic_write_json, replace_directory
from ..batching import TokenBatchSampler
from ..evaluation import corpus_scores
from ..generation import model_position_limit, translate
from ..models.seq2seq_utils import seq2seq_lm_loss
from ..plotting import plot_learning_curves
from ..streaming import StreamingBatches
from .averaging import average_checkpoints, last_checkpoints
from .builders import (
    build_collator,
    build_model,
    build_optimizer,
    build_scheduler,
    build_train_batches,
    build_training_data,
    has_accelerator,
    load_corpus,
    peak_memory_mb,
    prepare_tokenizer,
    select_subsets,
)
from .checkpointing import (
    OPTIMIZER_FILE,
    PROGRESS_FILE,
    SCHEDULER_FILE,
    CheckpointError,
    check_model_weights,
    checkpoint_dir,
    clean_leftovers,
    convert_legacy_progress,
    drop_tied_copies,
    latest_checkpoint,
    load_plain_data,
    lock_output_dir,
    mark_latest,
    prune_checkpoints,
    read_progress,
    read_rng_state,
    restore_stream_position,
    save_stream_position,
    unlock_output_dir,
)
from .config import TrainingConfig
from .cpu_memory import keep_freed_memory

logger = logging.getLogger(__name__)

BEST_MODEL_DIR = "best"
AVERAGED_MODEL_DIR = "averaged"
CHECKPOINTS_DIR = "checkpoints"
# What a run writes into its output directory through hf_attn.atomic (temporary siblings are cleaned on start).
ATOMIC_OUTPUTS = (BEST_MODEL_DIR, "tokenizer", "history.json", "summary.json")
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class TrainingInterrupted(KeyboardInterrupt):
    """Training stopped on SIGINT (Ctrl-C) or SIGTERM after saving a checkpoint; running again resumes it.

    A ``KeyboardInterrupt``, so code that lets Ctrl-C through lets this through too;
    ``signal_number`` tells which signal (the ``hf-attn`` command exits with 128 + it).
    """

    def __init__(self, signal_number: int, step: int, checkpoint: Path | None) -> None:
        self.signal_number, self.step, self.checkpoint = signal_number, step, checkpoint
        name = signal.Signals(signal_number).name
        super().__init__(
            f"training stopped by {name} at step {step}; the checkpoint {checkpoint} holds it. "
            "Run the same command again to resume."
        )


@dataclass
class TrainingProgress:
    """Everything about a run's position that resume must restore (saved with each checkpoint)."""

    step: int = 0
    epoch: int = 0
    batches_in_epoch: int = 0
    train_seconds: float = 0.0
    source_tokens: int = 0
    target_tokens: int = 0
    best_bleu: float | None = None
    best_step: int | None = None
    evals_without_improvement: int = 0
    history: list[dict[str, Any]] = field(default_factory=list)

    def state_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore a :meth:`state_dict` (checked: a damaged progress file must not resume silently wrong)."""
        names = {f.name for f in dataclasses.fields(self)}
        if not isinstance(state, dict) or set(state) != names:
            found = sorted(state) if isinstance(state, dict) else type(state).__name__
            raise ValueError(f"training progress must have the fields {sorted(names)}, found {found}")
        counts = ("step", "epoch", "batches_in_epoch", "source_tokens", "target_tokens", "evals_without_improvement")
        for name in counts:
            if not isinstance(state[name], int) or isinstance(state[name], bool) or state[name] < 0:
                raise ValueError(f"training progress `{name}` must be a non-negative integer, got {state[name]!r}")
        for name, optional in (("train_seconds", False), ("best_bleu", True)):
            value = state[name]
            if not (optional and value is None) and (not isinstance(value, (int, float)) or isinstance(value, bool)):
                raise ValueError(f"training progress `{name}` must be a number, got {value!r}")
        if state["best_step"] is not None and not isinstance(state["best_step"], int):
            raise ValueError(f"training progress `best_step` must be an integer or null, got {state['best_step']!r}")
        history = state["history"]
        if not isinstance(history, list) or not all(isinstance(row, dict) for row in history):
            raise ValueError("training progress `history` must be a list of objects")
        for name, value in state.items():
            setattr(self, name, value)


@dataclass
class TrainingSummary:
    """What a finished run reports (also written to ``output_dir/summary.json``)."""

    output_dir: str
    best_model_dir: str
    model_type: str
    num_parameters: int
    steps: int
    epochs_completed: int
    stopped_because: str
    train_seconds: float
    target_tokens: int
    source_tokens: int
    target_tokens_per_second: float
    source_tokens_per_second: float
    peak_memory_mb: float
    best_dev_bleu: float | None
    best_step: int | None
    num_processes: int
    device: str
    mixed_precision: str
    averaged_model_dir: str | None = None
    averaged_dev_bleu: float | None = None
    averaged_checkpoints: int | None = None


class TrainingRun:
    """One training run: builds everything from the config, then :meth:`run` trains it."""

    def __init__(self, config: TrainingConfig) -> None:
        self.config = config
        self.output_dir = Path(config.output_dir)
        self.accelerator = Accelerator(
            cpu=config.cpu or not has_accelerator(),
            mixed_precision=config.mixed_precision,
            log_with=config.log_with,
            project_dir=str(self.output_dir),
            # Batches are global and split across processes, so the schedule steps once per step.
            dataloader_config=DataLoaderConfiguration(split_batches=True),
            # torch's default 10 minutes ends a run whose main process is still tokenizing a large corpus.
            kwargs_handlers=[InitProcessGroupKwargs(timeout=timedelta(minutes=config.process_group_timeout_minutes))],
        )
        if config.mixed_precision == "fp16" and self.accelerator.device.type == "cpu":
            logger.warning("fp16 is not available on CPU: accelerate runs this training in fp32.")
        if config.keep_freed_memory and self.accelerator.device.type == "cpu" and keep_freed_memory():
            logger.info("glibc keeps freed memory in this process (keep_freed_memory): no page faults per step")
        set_seed(config.seed)
        self.checkpoints_root = self.output_dir / CHECKPOINTS_DIR
        self._lock = None
        self._stop_signal: int | None = None
        self._saved_step: int | None = None
        if self.accelerator.is_main_process:
            self.output_dir.mkdir(parents=True, exist_ok=True)
            # One run per output directory: a second would delete the first one's checkpoint staging.
            self._lock = lock_output_dir(self.output_dir)
            clean_leftovers(self.output_dir, ATOMIC_OUTPUTS, self.checkpoints_root)
            config.save(self.output_dir / "training_config.json")

        corpus = select_subsets(config, load_corpus(config))
        self.tokenizer = prepare_tokenizer(config, corpus, self.accelerator)
        data = build_training_data(config, corpus, self.tokenizer, self.accelerator)
        self.train_data, self.dev_data = data.train, data.dev
        self.dev_sources, self.dev_references = data.dev_sources, data.dev_references
        self.collator = build_collator(self.tokenizer)
        self.loader = build_train_batches(config, corpus, data, self.tokenizer, self.collator, self.accelerator)
        # A stream carries its own position (saved with each checkpoint); a map-style loader has a batch plan.
        self.stream: StreamingBatches | None = self.loader if isinstance(self.loader, StreamingBatches) else None
        self.sampler: TokenBatchSampler | None = None if self.stream is not None else self.loader.batch_sampler

        model = build_model(config, self.tokenizer)
        # Saved with every checkpoint: the tokenizer's limit is then the model's, not a default that warns wrongly.
        self.tokenizer.model_max_length = model_position_limit(model) or VERY_LARGE_INTEGER
        if config.compile:
            # In place (``nn.Module.compile``), so saving, unwrapping and generating see the same module.
            # Token batches vary in shape: one graph for dynamic shapes instead of one per batch shape.
            model.compile(dynamic=True)
        self.num_parameters = sum(p.numel() for p in model.parameters())
        optimizer = build_optimizer(config, model)
        scheduler = build_scheduler(config, optimizer)
        self.model, self.optimizer, self.scheduler = self.accelerator.prepare(model, optimizer, scheduler)
        self.accelerator.register_save_state_pre_hook(drop_tied_copies)  # no "Removed shared tensor" per save
        # Saved as JSON next to accelerate's state, not through register_for_checkpointing, whose
        # loader unpickles with weights_only=False: a crafted file in a run folder would run code.
        self.progress = TrainingProgress()
        if config.log_with:
            self.accelerator.init_trackers(self.output_dir.name, config=_flat_config(config))

    @property
    def unwrapped_model(self) -> PreTrainedModel:
        return self.accelerator.unwrap_model(self.model)

    def close(self) -> None:
        """Release the output directory for another run (also happens when the process ends)."""
        unlock_output_dir(self._lock)
        self._lock = None

    def resume_if_possible(self, allow_inexact_resume: bool = False) -> bool:
        """Load the latest complete checkpoint of this output directory, if there is one.

        Every file is checked before anything is loaded: a checkpoint that is damaged, has
        foreign files, or does not fit the configured model is a :class:`CheckpointError`. A
        missing or damaged random-state file would make the rest of the run differ from an
        uninterrupted one, so it is an error too unless ``allow_inexact_resume``.
        """
        checkpoint = self._latest()
        if checkpoint is None:
            return False
        if self.accelerator.is_main_process:
            convert_legacy_progress(checkpoint)
        self.accelerator.wait_for_everyone()
        progress = read_progress(checkpoint)
        try:
            TrainingProgress().load_state_dict(progress)
        except ValueError as error:
            raise CheckpointError(f"{checkpoint / PROGRESS_FILE} is damaged: {error}.") from None
        check_model_weights(checkpoint, self.unwrapped_model.state_dict())  # DDP prefixes `module.`
        for name in (OPTIMIZER_FILE, SCHEDULER_FILE):
            load_plain_data(checkpoint / name)
        _, rng_problem = read_rng_state(checkpoint, self.accelerator.process_index)
        if rng_problem is not None:
            if not allow_inexact_resume:
                raise CheckpointError(
                    f"Cannot resume {checkpoint} exactly: {rng_problem}, so dropout and batch order would differ "
                    "from an uninterrupted run. Pass --allow-inexact-resume (train(..., allow_inexact_resume=True)) "
                    "to continue anyway with fresh random states, or --no-resume to start over."
                )
            logger.warning("Resuming %s inexactly (allowed): %s; random states start fresh.", checkpoint, rng_problem)
        restore_stream_position(checkpoint, self.accelerator.process_index, self.stream)
        try:
            self.accelerator.load_state(str(checkpoint))
        except Exception as error:
            raise CheckpointError(f"Could not resume from {checkpoint}: {error}") from error
        self.progress.load_state_dict(progress)
        logger.info("Resumed from %s at step %d (epoch %d)", checkpoint, self.progress.step, self.progress.epoch)
        return True

    @contextlib.contextmanager
    def _stop_on_signals(self):
        """While training, SIGINT/SIGTERM ask for a stop after the current step (a second one stops at once).

        A signal the launcher ignores stays ignored: ``nohup`` and a script's background jobs
        ignore SIGINT on purpose, and a run started that way must not stop on it.
        """
        if threading.current_thread() is not threading.main_thread():
            yield
            return

        def request_stop(signal_number: int, frame: Any) -> None:
            name = signal.Signals(signal_number).name
            if self._stop_signal is not None:
                raise KeyboardInterrupt(f"second {name}: stopped at once; the last checkpoint is intact")
            self._stop_signal = signal_number
            logger.warning("%s: stopping after this step and saving a checkpoint (send it again to stop at once)", name)

        watched = [number for number in STOP_SIGNALS if signal.getsignal(number) is not signal.SIG_IGN]
        previous = {number: signal.signal(number, request_stop) for number in watched}
        try:
            yield
        finally:
            for number, handler in previous.items():
                signal.signal(number, signal.SIG_DFL if handler is None else handler)

    def run(self) -> TrainingSummary:
        with self._stop_on_signals():
            return self._run()

    def _run(self) -> TrainingSummary:
        config, progress = self.config, self.progress
        # The bar closes on every path (the budget spent, a stop signal, a failing step or save) before what follows.
        with tqdm(
            total=config.max_steps,
            initial=progress.step,
            desc=f"train {config.model_type}",
            disable=not self.accelerator.is_local_main_process,
        ) as bar:
            stopped_because = self._stop_reason()
            while stopped_because is None and progress.epoch < config.num_epochs:
                if self.sampler is not None:  # a stream resumes from its own saved position, epoch after epoch
                    self.sampler.set_epoch(progress.epoch, skip_batches=progress.batches_in_epoch)
                batches = iter(self.loader)
                while stopped_because is None and (window := list(islice(batches, config.gradient_accumulation_steps))):
                    started = time.perf_counter()
                    train_loss, source_tokens, target_tokens = self._optimizer_step(window)
                    progress.train_seconds += time.perf_counter() - started
                    progress.step += 1
                    progress.batches_in_epoch += len(window)
                    progress.source_tokens += source_tokens
                    progress.target_tokens += target_tokens
                    bar.update(1)
                    bar.set_postfix(loss=f"{train_loss:.3f}")
                    if progress.step % config.log_every == 0:
                        self._record({"train_loss": train_loss, "learning_rate": self.scheduler.get_last_lr()[0]})
                    if progress.step % config.eval_every == 0:
                        self._evaluate()
                    if progress.step % config.save_every == 0:
                        self._save_checkpoint()
                    stopped_because = self._stop_reason()
                if stopped_because is None:
                    progress.epoch += 1
                    progress.batches_in_epoch = 0
        if stopped_because in {number.name for number in STOP_SIGNALS}:
            if self._saved_step != progress.step:
                self._save_checkpoint()
            raise TrainingInterrupted(signal.Signals[stopped_because], progress.step, self._latest())
        stopped_because = stopped_because or "num_epochs"
        last_row = progress.history[-1] if progress.history else {}
        if last_row.get("step") != progress.step or "dev_bleu" not in last_row:
            self._evaluate()
        self._save_checkpoint()
        averaged = self._average_last_checkpoints()
        return self._finish(stopped_because, averaged)

    def _optimizer_step(self, window: list[dict[str, torch.Tensor]]) -> tuple[float, int, int]:
        """Forward/backward over the micro-batches of one step, then one optimizer update."""
        accelerator, model = self.accelerator, self.model
        device = accelerator.device
        local_counts = torch.tensor(
            [
                sum(int(b["attention_mask"].sum()) for b in window),
                sum(int((b["labels"] != -100).sum()) for b in window),
            ],
            device=device,
        )
        source_tokens, target_tokens = (int(n) for n in accelerator.reduce(local_counts, reduction="sum"))
        model.train()
        loss_sum = torch.zeros((), device=device)
        for index, batch in enumerate(window):
            batch = {name: tensor.to(device) for name, tensor in batch.items()}
            is_last = index == len(window) - 1
            with contextlib.nullcontext() if is_last else accelerator.no_sync(model):
                loss = model(**batch, num_items_in_batch=target_tokens).loss
                # DDP averages gradients over processes; the loss is already a global mean.
                accelerator.backward(loss * accelerator.num_processes)
            loss_sum += loss.detach()
        accelerator.clip_grad_norm_(model.parameters(), self.config.max_grad_norm)
        self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        train_loss = float(accelerator.reduce(loss_sum, reduction="sum"))
        return train_loss, source_tokens, target_tokens

    def _record(self, values: dict[str, Any]) -> None:
        progress = self.progress
        row = {"step": progress.step, "epoch": progress.epoch, "seconds": round(progress.train_seconds, 3), **values}
        if progress.history and progress.history[-1]["step"] == progress.step:
            progress.history[-1].update(row)
        else:
            progress.history.append(row)
        if self.config.log_with:
            self.accelerator.log(values, step=progress.step)

    @torch.no_grad()
    def _dev_loss(self, model: PreTrainedModel) -> float:
        """Token-level cross-entropy (no smoothing) on the dev pairs that fit the length limits."""
        model.eval()
        total, count = 0.0, 0
        for start in range(0, len(self.dev_data), 32):
            batch = self.collator([self.dev_data[i] for i in range(start, min(start + 32, len(self.dev_data)))])
            batch = {name: tensor.to(self.accelerator.device) for name, tensor in batch.items()}
            logits = model(**batch).logits
            # num_items_in_batch=1 turns the shared loss into a plain sum over the labelled tokens.
            total += float(seq2seq_lm_loss(logits, batch["labels"], label_smoothing=0.0, num_items_in_batch=1))
            count += int((batch["labels"] != -100).sum())
        return total / max(count, 1)

    def _dev_scores(self, model: PreTrainedModel) -> dict[str, Any]:
        """BLEU and chrF of ``model`` on the run's dev verses, decoded as every dev evaluation decodes them."""
        hypotheses = translate(
            model,
            self.tokenizer,
            self.dev_sources,
            num_beams=self.config.eval_num_beams,
            progress=self.accelerator.is_local_main_process,
        )
        return corpus_scores(hypotheses, self.dev_references)

    def _evaluate(self) -> None:
        """Dev loss and greedy BLEU on the main process; a BLEU improvement replaces ``best``."""
        improved = None
        if self.accelerator.is_main_process:
            model = self.unwrapped_model
            started = time.perf_counter()
            dev_loss = self._dev_loss(model)
            scores = self._dev_scores(model)
            progress = self.progress
            improved = progress.best_bleu is None or scores["bleu"] > progress.best_bleu
            if improved:
                progress.best_bleu, progress.best_step = scores["bleu"], progress.step
                progress.evals_without_improvement = 0
                self._save_best(model)
            else:
                progress.evals_without_improvement += 1
            self._record(
                {
                    "dev_loss": dev_loss,
                    "dev_perplexity": math.exp(min(dev_loss, 50.0)),
                    "dev_bleu": scores["bleu"],
                    "dev_chrf": scores["chrf"],
                    "eval_seconds": round(time.perf_counter() - started, 3),
                }
            )
            atomic_write_json(self.output_dir / "history.json", progress.history)
            logger.info("step %d: dev loss %.3f, dev BLEU %.2f", progress.step, dev_loss, scores["bleu"])
        # Every process must agree on the early-stopping state it will checkpoint.
        shared = broadcast_object_list([self.progress.state_dict()])
        self.progress.load_state_dict(shared[0])

    def _save_best(self, model: PreTrainedModel) -> None:
        def write(directory: Path) -> None:
            model.save_pretrained(directory)
            self.tokenizer.save_pretrained(directory)
            atomic_write_json(
                directory / "training_state.json",
                {
                    "step": self.progress.step,
                    "dev_bleu": self.progress.best_bleu,
                    "training_config": self.config.to_dict(),
                },
            )

        target = self.output_dir / BEST_MODEL_DIR
        try:
            atomic_directory(target, write)
        except Exception as error:
            raise OSError(
                f"Could not write the best model of step {self.progress.step} to {target} ({error}); the previous "
                "best model there is intact. Fix the cause (e.g. free disk space) and run again to resume."
            ) from error

    def _latest(self) -> Path | None:
        return latest_checkpoint(self.checkpoints_root)

    def _save_checkpoint(self) -> None:
        """Write accelerate's full state and the progress to a staging directory, then rename it into place."""
        accelerator = self.accelerator
        final = checkpoint_dir(self.checkpoints_root, self.progress.step)
        staging = final.with_name(f".{final.name}.tmp")
        try:
            if accelerator.is_main_process:
                shutil.rmtree(staging, ignore_errors=True)
                staging.mkdir(parents=True)
            accelerator.wait_for_everyone()
            accelerator.save_state(str(staging))
            save_stream_position(staging, accelerator.process_index, self.stream)
            if accelerator.is_main_process:
                atomic_write_json(staging / PROGRESS_FILE, self.progress.state_dict())
            accelerator.wait_for_everyone()
            if accelerator.is_main_process:
                replace_directory(staging, final)  # the end of a run may re-save a step already saved
                mark_latest(self.checkpoints_root, final)
                prune_checkpoints(self.checkpoints_root, self.config.keep_checkpoints)
        except Exception as error:
            if accelerator.is_main_process:
                shutil.rmtree(staging, ignore_errors=True)
            previous = self._latest()
            kept = f"the previous checkpoint {previous} is intact" if previous else "there is no earlier checkpoint"
            raise OSError(
                f"Could not write the checkpoint of step {self.progress.step} to {final} ({error}); {kept}. "
                "Fix the cause (e.g. free disk space) and run the same command again to resume."
            ) from error
        self._saved_step = self.progress.step
        accelerator.wait_for_everyone()

    def _average_last_checkpoints(self) -> tuple[str, float, int] | None:
        """With ``average_last_checkpoints: N``, average the last N checkpoints into ``output_dir/averaged``.

        Returns the averaged model's folder, dev BLEU (same dev verses and beam as the periodic
        evaluations) and how many checkpoints it averages, or None when averaging is off or
        the run holds fewer than two.
        """
        count, accelerator = self.config.average_last_checkpoints, self.accelerator
        if count is None:
            return None
        result = None
        if accelerator.is_main_process:
            checkpoints = last_checkpoints(self.checkpoints_root, count)
            if len(checkpoints) < count:
                # The config refuses a max_steps budget that writes too few; a run that stopped sooner (early
                # stopping, max_minutes, num_epochs) averages what it has rather than fail after training.
                logger.warning(
                    "average_last_checkpoints is %d but the run stopped with %d checkpoint(s) in %s; %s",
                    count,
                    len(checkpoints),
                    self.checkpoints_root,
                    "averaging those" if len(checkpoints) > 1 else "nothing to average, so no averaged model",
                )
            if len(checkpoints) > 1:
                folder = average_checkpoints(
                    checkpoints, self.output_dir / AVERAGED_MODEL_DIR, reference=self.output_dir / BEST_MODEL_DIR
                )
                result = (*self._score_averaged(folder, len(checkpoints)), len(checkpoints))
        return broadcast_object_list([result])[0]

    def _score_averaged(self, folder: Path, count: int) -> tuple[str, float]:
        """The averaged model's folder and its dev BLEU (same dev verses and beam as the periodic evaluations)."""
        model = AutoModelForSeq2SeqLM.from_pretrained(folder).to(self.accelerator.device)
        bleu = self._dev_scores(model)["bleu"]
        logger.info(
            "Average of the last %d checkpoints: dev BLEU %.2f (best single %.2f)", count, bleu, self.progress.best_bleu
        )
        return str(folder), bleu

    def _stop_reason(self) -> str | None:
        """Why training should stop now (the same answer on every process), or None."""
        config, progress = self.config, self.progress
        reason = None
        signal_number = self._stop_signal_on_any_process()
        if signal_number:
            reason = signal.Signals(signal_number).name
        elif config.max_steps is not None and progress.step >= config.max_steps:
            reason = "max_steps"
        elif config.max_minutes is not None and progress.train_seconds >= 60 * config.max_minutes:
            reason = "max_minutes"
        elif (
            config.early_stopping_patience is not None
            and progress.evals_without_improvement >= config.early_stopping_patience
        ):
            reason = "early_stopping"
        return broadcast_object_list([reason])[0]

    def _stop_signal_on_any_process(self) -> int:
        """The stop signal that reached any process (the highest number if several), else 0.

        A scheduler or a user may signal one rank only (SIGTERM to one node); the reason below is
        broadcast from rank 0, so without this all-reduce a signal on another rank would be ignored.
        """
        flag = torch.tensor([self._stop_signal or 0], device=self.accelerator.device)
        return int(self.accelerator.gather(flag).max())

    def _finish(self, stopped_because: str, averaged: tuple[str, float, int] | None) -> TrainingSummary:
        progress, accelerator = self.progress, self.accelerator
        seconds = max(progress.train_seconds, 1e-9)
        summary = TrainingSummary(
            output_dir=str(self.output_dir),
            best_model_dir=str(self.output_dir / BEST_MODEL_DIR),
            model_type=self.config.model_type,
            num_parameters=self.num_parameters,
            steps=progress.step,
            epochs_completed=progress.epoch,
            stopped_because=stopped_because,
            train_seconds=round(progress.train_seconds, 3),
            target_tokens=progress.target_tokens,
            source_tokens=progress.source_tokens,
            target_tokens_per_second=round(progress.target_tokens / seconds, 1),
            source_tokens_per_second=round(progress.source_tokens / seconds, 1),
            peak_memory_mb=round(peak_memory_mb(accelerator.device), 1),
            best_dev_bleu=progress.best_bleu,
            best_step=progress.best_step,
            averaged_model_dir=averaged[0] if averaged else None,
            averaged_dev_bleu=averaged[1] if averaged else None,
            averaged_checkpoints=averaged[2] if averaged else None,
            num_processes=accelerator.num_processes,
            device=str(accelerator.device),
            mixed_precision=self.config.mixed_precision,
        )
        if accelerator.is_main_process:
            atomic_write_json(self.output_dir / "history.json", progress.history)
            atomic_write_json(self.output_dir / "summary.json", dataclasses.asdict(summary))
            plot_learning_curves(progress.history, self.output_dir / "learning_curve.png")
        if self.config.log_with:
            accelerator.end_training()
        accelerator.wait_for_everyone()
        return summary


def _flat_config(config: TrainingConfig) -> dict[str, Any]:
    """Trackers take flat scalar hyper-parameters."""
    flat = {k: v for k, v in config.to_dict().items() if k != "model"}
    flat.update({f"model.{k}": v for k, v in config.model.items()})
    return {k: v if isinstance(v, (int, float, str, bool)) else str(v) for k, v in flat.items()}


def train(config: TrainingConfig, resume: bool = True, allow_inexact_resume: bool = False) -> TrainingSummary:
    """Train (or continue training) the model ``config`` describes; returns the run's summary.

    Raises :class:`TrainingInterrupted` (a ``KeyboardInterrupt``) after saving a checkpoint when
    SIGINT or SIGTERM stops the run, and :class:`~hf_attn.training.checkpointing.CheckpointError`
    when the checkpoint to resume cannot be resumed exactly (see :meth:`TrainingRun.resume_if_possible`).
    """
    run = TrainingRun(config)
    try:
        if resume:
            run.resume_if_possible(allow_inexact_resume=allow_inexact_resume)
        return run.run()
    finally:
        run.close()
