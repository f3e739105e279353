"""One training configuration for both models: what to train, on what data, with which budget.

Only ``model_type`` and the ``model`` overrides differ between an RNN and a Transformer
run; everything else (data, tokenizer, batching, optimiser, schedule, evaluation,
checkpointing) is shared, which is what makes the two models' comparison fair.
Configs load from YAML or JSON files; unknown keys are errors, so a typo cannot silently
fall back to a default. That holds inside the ``model`` block too: its fields are checked
against the model's config class (naming the nearest valid field) and its values
validated when the training config is built, before any corpus is loaded or BPE trained.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from transformers import PreTrainedConfig

from ..data import check_data_spec, data_streams
from ..models import RNNSeq2SeqConfig, TransformerSeq2SeqConfig
from ..models.config_validation import (
    require_bool,
    require_choice,
    require_non_negative_int,
    require_positive_int,
    require_probability,
)

MODEL_CONFIG_CLASSES: dict[str, type[PreTrainedConfig]] = {
    "transformer_seq2seq": TransformerSeq2SeqConfig,
    "rnn_seq2seq": RNNSeq2SeqConfig,
}
MODEL_TYPES = tuple(MODEL_CONFIG_CLASSES)


class _ConfigLoader(yaml.SafeLoader):
    """YAML loader that also reads exponent floats without a dot (``1e-9``) as numbers, as JSON does."""


_ConfigLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*(?:\.[0-9_]*)?|\.[0-9_]+)[eE][-+]?[0-9]+$"),
    list("-+0123456789."),
)


def _load_yaml(text: str, source: str):
    """Parse YAML; a syntax error names ``source`` (a file, or a --set override) and the line."""
    try:
        return yaml.load(text, Loader=_ConfigLoader)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else ""
        problem = getattr(error, "problem", None) or str(error).split("\n")[0]
        raise ValueError(f"{source} is not valid YAML{where}: {problem}.") from None


MIXED_PRECISION = ("no", "fp16", "bf16")
TRACKERS = (None, "tensorboard")
# Pairs the project's BPE trains on (a seeded sample of the train split; null: all of it). Merges settle long
# before this, and a bound keeps the tokenizer's time and memory flat however large the corpus.
DEFAULT_TOKENIZER_SAMPLE_SIZE = 300_000
PRESETS_DIR = Path(__file__).resolve().parent.parent / "configs"


@dataclass
class TrainingConfig:
    """Everything a training run needs; see ``hf_attn/configs/*.yaml`` for annotated presets."""

    model_type: str = "transformer_seq2seq"
    model: dict[str, Any] = field(default_factory=dict)
    output_dir: str = "runs/model"
    data: str | dict[str, Any] | None = None
    tokenizer: str | None = None
    vocab_size: int = 8000
    separate_vocabularies: bool = False
    target_vocab_size: int | None = None
    tokenizer_sample_size: int | None = DEFAULT_TOKENIZER_SAMPLE_SIZE
    # BPE-dropout while training (the project's BPE; 0: off): each merge skipped with this probability, seeded.
    bpe_dropout: float = 0.0
    max_source_tokens: int = 128
    max_target_tokens: int = 128
    max_tokens: int = 2048
    # Per-process budget instead: the global batch is this times the number of processes.
    max_tokens_per_process: int | None = None
    min_batch_size: int = 1
    max_train_examples: int | None = None
    # Processes that tokenize the corpus once into the datasets cache (None: this one only).
    num_proc: int | None = None
    # How long processes wait for each other (e.g. while the main one tokenizes a large corpus).
    process_group_timeout_minutes: int = 60
    gradient_accumulation_steps: int = 1
    learning_rate: float = 7e-4
    warmup_steps: int = 1000
    adam_beta1: float = 0.9
    adam_beta2: float = 0.98
    adam_epsilon: float = 1e-9
    weight_decay: float = 0.0
    max_grad_norm: float = 1.0
    num_epochs: int = 10
    max_steps: int | None = None
    max_minutes: float | None = None
    eval_every: int = 500
    eval_examples: int = 200
    eval_num_beams: int = 1
    early_stopping_patience: int | None = None
    save_every: int = 500
    keep_checkpoints: int = 2
    average_last_checkpoints: int | None = None
    log_every: int = 50
    log_with: str | None = None
    mixed_precision: str = "no"
    seed: int = 42
    cpu: bool = False
    keep_freed_memory: bool = True
    compile: bool = False

    def __post_init__(self) -> None:
        require_choice("model_type", self.model_type, MODEL_TYPES)
        if not isinstance(self.model, dict):
            raise ValueError(f"`model` must be a mapping of model config overrides, got {self.model!r}.")
        self._check_model_block()
        if self.data is not None:
            check_data_spec(self.data)
        if data_streams(self.data) and self.max_steps is None:
            raise ValueError(
                "`data.streaming: true` needs a step budget: set `max_steps`. A stream has no length and each process "
                "starts its next pass over its part when that part ends, at different steps, so `num_epochs` cannot "
                "end a streaming run."
            )
        require_probability("bpe_dropout", self.bpe_dropout)
        if self.bpe_dropout and data_streams(self.data):
            raise ValueError(
                "`bpe_dropout` works on the tokenized cache of the map-style path; `data.streaming: true` tokenizes "
                "as it reads and does not support it yet. Set bpe_dropout to 0 or stream without it."
            )
        if self.num_proc is not None:
            require_positive_int("num_proc", self.num_proc)
        for name in (
            "vocab_size",
            "max_source_tokens",
            "max_target_tokens",
            "max_tokens",
            "min_batch_size",
            "gradient_accumulation_steps",
            "num_epochs",
            "eval_every",
            "eval_examples",
            "eval_num_beams",
            "save_every",
            "keep_checkpoints",
            "log_every",
            "process_group_timeout_minutes",
        ):
            require_positive_int(name, getattr(self, name))
        require_non_negative_int("warmup_steps", self.warmup_steps)
        require_non_negative_int("seed", self.seed)
        self._check_vocabularies()
        for name in ("max_steps", "early_stopping_patience", "max_train_examples", "tokenizer_sample_size"):
            if getattr(self, name) is not None:
                require_positive_int(name, getattr(self, name))
        self._check_averaging()
        for name in ("learning_rate", "adam_epsilon", "max_grad_norm"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or value <= 0:
                raise ValueError(f"`{name}` must be a positive number, got {value!r}.")
        for name in ("adam_beta1", "adam_beta2", "weight_decay"):
            require_probability(name, getattr(self, name))
        if self.max_minutes is not None and (not isinstance(self.max_minutes, (int, float)) or self.max_minutes <= 0):
            raise ValueError(f"`max_minutes` must be a positive number or null, got {self.max_minutes!r}.")
        require_choice("mixed_precision", self.mixed_precision, MIXED_PRECISION)
        require_bool("keep_freed_memory", self.keep_freed_memory)
        require_bool("compile", self.compile)
        require_choice("log_with", self.log_with, TRACKERS)
        if self.max_tokens_per_process is not None:
            require_positive_int("max_tokens_per_process", self.max_tokens_per_process)
        if self.max_source_tokens > self.max_tokens or self.max_target_tokens > self.max_tokens:
            raise ValueError(
                f"`max_tokens` ({self.max_tokens}) must be at least `max_source_tokens` ({self.max_source_tokens}) "
                f"and `max_target_tokens` ({self.max_target_tokens}), or the longest sentences fit no batch."
            )
        if self.max_tokens_per_process is not None and self.max_tokens_per_process < max(
            self.max_source_tokens, self.max_target_tokens
        ):
            raise ValueError(
                f"`max_tokens_per_process` ({self.max_tokens_per_process}) must be at least `max_source_tokens` and "
                "`max_target_tokens`, or the longest sentences fit no batch."
            )

    def global_max_tokens(self, num_processes: int) -> int:
        """Padded tokens per optimizer step over all processes: ``max_tokens``, or the per-process budget times N."""
        if self.max_tokens_per_process is None:
            return self.max_tokens
        return self.max_tokens_per_process * num_processes

    def _check_model_block(self) -> None:
        """Every ``model`` key is a field of the model's config, and together they build a valid config.

        transformers configs keep unknown keyword arguments as attributes, so a typo such as
        ``attenton_type`` would otherwise be stored and ignored: the run would train the default.
        """
        config_class = MODEL_CONFIG_CLASSES[self.model_type]
        known = sorted({f.name for f in dataclasses.fields(config_class)} | set(config_class.attribute_map))
        for name in self.model:
            if name not in known:
                nearest = difflib.get_close_matches(name, known, n=1)
                hint = f"did you mean `model.{nearest[0]}`?" if nearest else f"the fields are: {', '.join(known)}"
                raise ValueError(
                    f"`model.{name}` is not a field of {config_class.__name__} ({self.model_type}); {hint}"
                )
        try:
            config_class(**self.model)
        except ValueError as error:
            raise ValueError(f"The `model` block does not make a valid {config_class.__name__}: {error}") from error

    def _check_averaging(self) -> None:
        """Averaging runs after training, so refuse now what cannot work then: the checkpoints to average must be
        kept (``keep_checkpoints``) and, with a ``max_steps`` budget, written (one every ``save_every`` updates and
        one at the end). A run that stops sooner than its budget averages what it has, with a warning."""
        if self.average_last_checkpoints is None:
            return
        count = self.average_last_checkpoints
        require_positive_int("average_last_checkpoints", count)
        if count > self.keep_checkpoints:
            raise ValueError(
                f"`average_last_checkpoints` ({count}) needs as many saved checkpoints, "
                f"but `keep_checkpoints` is {self.keep_checkpoints}; raise it."
            )
        written = self.checkpoints_written()
        if written is not None and count > written:
            raise ValueError(
                f"`average_last_checkpoints` ({count}) is more than the {written} checkpoint(s) this budget writes "
                f"(`max_steps` {self.max_steps} with `save_every` {self.save_every}: one every {self.save_every} "
                f"updates and one at the end); lower it to {written} or set it to null (no averaging), or lower "
                "`save_every`. Refused before training so the run does not fail after it."
            )

    def checkpoints_written(self) -> int | None:
        """How many checkpoints a run of ``max_steps`` updates holds at its end (None without that budget)."""
        if self.max_steps is None:
            return None
        return min(math.ceil(self.max_steps / self.save_every), self.keep_checkpoints)

    def _check_vocabularies(self) -> None:
        """Separate vocabularies need unshared embeddings; a target size without them would be ignored."""
        require_bool("separate_vocabularies", self.separate_vocabularies)
        if self.target_vocab_size is not None:
            require_positive_int("target_vocab_size", self.target_vocab_size)
            if not self.separate_vocabularies:
                raise ValueError(
                    "`target_vocab_size` sizes a separate target vocabulary; set `separate_vocabularies: true` "
                    "or remove it (the joint vocabulary has `vocab_size` tokens)."
                )
        if self.separate_vocabularies and self.model.get("share_encoder_decoder_embeddings") is True:
            raise ValueError(
                "`separate_vocabularies: true` gives source and target different vocabularies, so "
                "`model.share_encoder_decoder_embeddings` cannot be true; remove it (it is set to false)."
            )

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TrainingConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(
                f"Unknown training config keys: {', '.join(unknown)}. Known keys: {', '.join(sorted(known))}."
            )
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=2) + "\n", encoding="utf-8")


def resolve_config_path(path: str | Path) -> Path:
    """A config file path, or a preset name such as ``transformer_small``."""
    candidate = Path(path)
    if candidate.is_file():
        return candidate
    preset = PRESETS_DIR / f"{path}.yaml"
    if preset.is_file():
        return preset
    presets = ", ".join(sorted(p.stem for p in PRESETS_DIR.glob("*.yaml")))
    raise FileNotFoundError(f"No config file {candidate} and no preset named {str(path)!r} (presets: {presets}).")


def parse_override(assignment: str) -> tuple[str, Any]:
    """``key=value`` from the command line; the value is parsed as YAML (numbers, booleans, null, lists)."""
    key, separator, raw_value = assignment.partition("=")
    if not separator or not key:
        raise ValueError(f"Override {assignment!r} must look like key=value (e.g. max_steps=100 or model.d_model=256).")
    return key, _load_yaml(raw_value, f"The value of override {assignment!r}")


def apply_overrides(values: dict[str, Any], assignments: list[str]) -> dict[str, Any]:
    """Apply ``key=value`` overrides; ``model.x=…`` sets a model config field."""
    values = {**values, "model": dict(values.get("model") or {})}
    for assignment in assignments:
        key, value = parse_override(assignment)
        if key.startswith("model."):
            values["model"][key.removeprefix("model.")] = value
        else:
            values[key] = value
    return values


def load_training_config(path: str | Path, assignments: list[str] | None = None) -> TrainingConfig:
    """A preset or config file with command-line ``key=value`` overrides applied."""
    resolved = resolve_config_path(path)
    try:
        text = resolved.read_text(encoding="utf-8")
    except UnicodeDecodeError as error:
        raise ValueError(f"{resolved} is not UTF-8 text ({error.reason} at byte {error.start}).") from None
    values = _load_yaml(text, str(resolved)) or {}
    if not isinstance(values, dict):
        raise ValueError(f"{resolved} must contain a mapping of config keys, got {type(values).__name__}.")
    return TrainingConfig.from_dict(apply_overrides(values, assignments or []))
