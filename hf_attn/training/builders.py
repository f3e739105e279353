"""Building what a training run needs, in one place: corpus, subsets, tokenizer, tokenized splits, batch
sampler, data loader, model, optimizer, schedule, device.

The accelerate loop (``loop.py``) only trains: it calls these builders in order and keeps
what they return. Fine-tuning, the seed experiment and the benchmarks construct their pieces
here too, so a model, a tokenized split or a loader is built the same way wherever it is
trained or measured (the role of Joey NMT's ``builders.py``). Each builder is a small function
of the config and what earlier builders made, so a test or a script can build one piece alone.
"""

from __future__ import annotations

import itertools
import logging
import resource
from dataclasses import dataclass
from pathlib import Path

import datasets
import numpy as np
import pyarrow as pa
import torch
from accelerate import Accelerator
from torch.optim.lr_scheduler import LambdaLR
from torch.utils.data import DataLoader
from transformers import (
    AutoConfig,
    AutoModelForSeq2SeqLM,
    DataCollatorForSeq2Seq,
    PreTrainedModel,
    PreTrainedTokenizerFast,
    get_inverse_sqrt_schedule,
)

from ..atomic import atomic_directory
from ..batching import TokenBatchSampler
from ..bpe_dropout import BPEDropoutPairs
from ..data import ROWS_PER_RECORD_BATCH, data_streams, first_examples, load_bible_corpus, load_data
from ..streaming import StreamingBatches, build_streaming_batches
from ..tokenization import (
    check_tokenizer_matches_config,
    encode_pairs_within_limits,
    has_separate_vocabularies,
    load_tokenizer,
    model_settings_from_tokenizer,
    target_vocab_size_of,
    tokenizer_training_sample,
    train_bpe_tokenizer,
    train_bpe_tokenizer_pair,
)
from .config import TrainingConfig

logger = logging.getLogger(__name__)

TOKENIZER_DIR = "tokenizer"


def load_corpus(config: TrainingConfig) -> datasets.DatasetDict:
    """The bundled Bible corpus, or the user's data named by ``config.data``."""
    return load_bible_corpus() if config.data is None else load_data(config.data)


def select_subsets(config: TrainingConfig, corpus: datasets.DatasetDict) -> datasets.DatasetDict:
    """The train pairs a run uses (the first ``max_train_examples``) and the dev pairs it scores (``eval_examples``).

    Cut before the tokenizer is trained, so a shortened run's BPE learns only from the pairs it
    trains on; the dev cap bounds what every evaluation decodes.
    """
    subsets = datasets.DatasetDict(corpus)
    if config.max_train_examples is not None:
        subsets["train"] = first_examples(corpus["train"], config.max_train_examples)
    subsets["validation"] = first_examples(corpus["validation"], config.eval_examples)
    return subsets


def prepare_tokenizer(
    config: TrainingConfig, corpus: datasets.DatasetDict, accelerator: Accelerator
) -> PreTrainedTokenizerFast:
    """The configured tokenizer, the one this run trained before (resume), or a new BPE on the train split."""
    if config.tokenizer is not None:
        location: str | Path = config.tokenizer
    else:
        location = Path(config.output_dir) / TOKENIZER_DIR
        if accelerator.is_main_process and not location.is_dir():
            tokenizer = train_tokenizer(config, corpus)
            atomic_directory(location, tokenizer.save_pretrained)
            logger.info(
                "Trained a BPE tokenizer on the training split: %d source tokens, %d target tokens",
                len(tokenizer),
                target_vocab_size_of(tokenizer),
            )
        accelerator.wait_for_everyone()
    tokenizer = load_tokenizer(location)
    check_tokenizer_kind(config, tokenizer, where=str(location))
    return tokenizer


def train_tokenizer(config: TrainingConfig, corpus: datasets.DatasetDict) -> PreTrainedTokenizerFast:
    """A joint BPE tokenizer of ``vocab_size`` tokens, or with ``separate_vocabularies`` a source/target pair.

    Either trains on a seeded sample of the train split of at most ``tokenizer_sample_size`` pairs.
    """
    sample = tokenizer_training_sample(corpus["train"], config.tokenizer_sample_size, config.seed)
    if config.separate_vocabularies:
        return train_bpe_tokenizer_pair(sample, config.vocab_size, config.target_vocab_size)
    return train_bpe_tokenizer(sample, vocab_size=config.vocab_size)


def check_tokenizer_kind(config: TrainingConfig, tokenizer: PreTrainedTokenizerFast, where: str) -> None:
    """Raise if ``separate_vocabularies`` disagrees with the tokenizer (e.g. a resumed run whose config changed)."""
    separate = has_separate_vocabularies(tokenizer)
    if separate != config.separate_vocabularies:
        kind = "separate source and target vocabularies" if separate else "one joint vocabulary"
        raise ValueError(
            f"The tokenizer at {where} has {kind}, but the training config sets "
            f"`separate_vocabularies: {str(config.separate_vocabularies).lower()}`; make them agree."
        )


def build_model(config: TrainingConfig, tokenizer: PreTrainedTokenizerFast) -> PreTrainedModel:
    """A freshly initialised model whose vocabulary sizes and special ids come from the tokenizer."""
    from_tokenizer = model_settings_from_tokenizer(tokenizer)
    model_config = AutoConfig.for_model(config.model_type, **{**from_tokenizer, **config.model})
    check_tokenizer_matches_config(tokenizer, model_config)
    return AutoModelForSeq2SeqLM.from_config(model_config)


def tokenize_split(
    split: datasets.Dataset,
    tokenizer: PreTrainedTokenizerFast,
    max_source_tokens: int,
    max_target_tokens: int,
    num_proc: int | None = None,
) -> datasets.Dataset:
    """input_ids/labels and their padded ``length`` for every pair, without pairs over the token limits.

    Ids are stored in the smallest unsigned dtype that holds the vocabulary (uint16 under
    65,536 tokens, a quarter of int64), and long pairs are dropped inside the same ``map``,
    so the result has no indices mapping and its ``length`` column reads as one array. A split
    read from files is tokenized once (by ``num_proc`` processes) into the datasets cache: a
    later run, or another rank after the main one, loads that cache instead.
    """
    id_dtype = smallest_id_dtype(max(len(tokenizer), target_vocab_size_of(tokenizer)))
    features = datasets.Features(
        {
            "input_ids": datasets.Sequence(datasets.Value(id_dtype)),
            "labels": datasets.Sequence(datasets.Value(id_dtype)),
            "length": datasets.Value("int32"),
        }
    )

    def encode(batch: dict[str, list[str]]) -> pa.Table:
        limits = (max_source_tokens, max_target_tokens)
        return _encode_as_table(tokenizer, batch["source"], batch["target"], limits, features.arrow_schema)

    return split.map(
        encode,
        batched=True,
        # One record batch per map batch: see ROWS_PER_RECORD_BATCH.
        batch_size=ROWS_PER_RECORD_BATCH,
        writer_batch_size=ROWS_PER_RECORD_BATCH,
        remove_columns=split.column_names,
        features=features,
        # Starting worker processes costs more than a few thousand pairs take to tokenize.
        num_proc=num_proc if num_proc and num_proc > 1 and len(split) >= 1000 * num_proc else None,
        desc="Tokenizing",
    )


# Pairs per tokenizer call: its Encoding objects (tokens, offsets, masks) take ~27 KB a pair while they live.
PAIRS_PER_TOKENIZER_CALL = 1_000


def _encode_as_table(
    tokenizer: PreTrainedTokenizerFast,
    sources: list[str],
    targets: list[str],
    limits: tuple[int, int],
    schema: pa.Schema,
) -> pa.Table:
    """:func:`encode_pairs_within_limits` of a record batch's pairs, as an Arrow table of ``schema``.

    The tokenizer sees :data:`PAIRS_PER_TOKENIZER_CALL` pairs at a time, and each call's ids go straight
    into flat numpy arrays, so a 10,000-pair batch holds a few MB of ids instead of Python lists of ints.
    """
    id_type = schema.field("input_ids").type.value_type.to_pandas_dtype()
    parts: dict[str, list[pa.Array]] = {name: [] for name in schema.names}
    for start in range(0, len(sources), PAIRS_PER_TOKENIZER_CALL):
        end = start + PAIRS_PER_TOKENIZER_CALL
        kept = encode_pairs_within_limits(tokenizer, sources[start:end], targets[start:end], *limits)
        for name in ("input_ids", "labels"):
            parts[name].append(_list_array(kept[name], id_type))
        parts["length"].append(pa.array(np.asarray(kept["length"], dtype=np.int32)))
    columns = [
        pa.concat_arrays(parts[name]) if parts[name] else pa.array([], schema.field(name).type) for name in schema.names
    ]
    return pa.Table.from_arrays(columns, schema=schema)


def _list_array(rows: list[list[int]], dtype: type) -> pa.ListArray:
    """Lists of ids as one Arrow list array: flat values of ``dtype`` and int32 offsets."""
    offsets = np.zeros(len(rows) + 1, dtype=np.int32)
    np.cumsum(np.fromiter(map(len, rows), dtype=np.int32, count=len(rows)), out=offsets[1:])
    values = np.fromiter(itertools.chain.from_iterable(rows), dtype=dtype, count=int(offsets[-1]))
    return pa.ListArray.from_arrays(pa.array(offsets), pa.array(values))


def smallest_id_dtype(vocab_size: int) -> str:
    """The narrowest unsigned integer type (a ``datasets.Value`` dtype) that holds ids below ``vocab_size``."""
    return "uint16" if vocab_size <= 2**16 else "uint32"


def example_lengths(tokenized: datasets.Dataset) -> np.ndarray:
    """Padded length each example adds to a batch (its longer side), read as one column."""
    # The Arrow column converts in a millisecond; the "numpy" format converts row by row (18 s per 300k rows).
    return tokenized.with_format("arrow")["length"].to_numpy().astype(np.int64)


@dataclass
class TrainingData:
    """The tokenized pairs a run trains and evaluates on, in the form the loop consumes them."""

    # input_ids and labels of the train pairs within the length limits, and each one's padded length (the batch
    # plan's only input); None with `data.streaming`, whose pairs are tokenized as they are read (hf_attn.streaming)
    train: datasets.Dataset | None
    train_lengths: np.ndarray | None
    dev: datasets.Dataset  # input_ids and labels of the dev pairs within the limits: the dev loss
    dev_sources: list[str]  # every dev pair, decoded for BLEU and chrF
    dev_references: list[str]


def build_training_data(
    config: TrainingConfig,
    subsets: datasets.DatasetDict,
    tokenizer: PreTrainedTokenizerFast,
    accelerator: Accelerator,
) -> TrainingData:
    """Tokenize the train and dev subsets, the main process first so the other ranks load its cache."""
    limits = (config.max_source_tokens, config.max_target_tokens)
    streaming = data_streams(config.data)
    with accelerator.main_process_first():
        train = None if streaming else tokenize_split(subsets["train"], tokenizer, *limits, num_proc=config.num_proc)
        dev = tokenize_split(subsets["validation"], tokenizer, *limits).remove_columns("length")
    if train is not None and len(train) == 0:
        raise ValueError("No training pair fits `max_source_tokens`/`max_target_tokens`; raise the limits.")
    return TrainingData(
        # The collator pads every column it gets: the model takes ids and labels only.
        train=None if train is None else train.remove_columns("length"),
        train_lengths=None if train is None else example_lengths(train),
        dev=dev,
        dev_sources=list(subsets["validation"]["source"]),
        dev_references=list(subsets["validation"]["target"]),
    )


def build_collator(tokenizer: PreTrainedTokenizerFast) -> DataCollatorForSeq2Seq:
    """Pads ids with the pad id and labels with -100, which the loss ignores."""
    return DataCollatorForSeq2Seq(tokenizer, label_pad_token_id=-100, return_tensors="pt")


def build_batch_sampler(config: TrainingConfig, lengths: np.ndarray, accelerator: Accelerator) -> TokenBatchSampler:
    """This process's share of the global token-count batches every process plans alike (N processes = 1)."""
    return TokenBatchSampler(
        lengths,
        config.global_max_tokens(accelerator.num_processes),
        seed=config.seed,
        rank=accelerator.process_index,
        world_size=accelerator.num_processes,
        min_batch_size=max(config.min_batch_size, accelerator.num_processes),
    )


def build_train_batches(
    config: TrainingConfig,
    subsets: datasets.DatasetDict,
    data: TrainingData,
    tokenizer: PreTrainedTokenizerFast,
    collator: DataCollatorForSeq2Seq,
    accelerator: Accelerator,
) -> DataLoader | StreamingBatches:
    """This process's training batches: a stream's (``data.streaming``) or the tokenized split's loader."""
    if data.train is None:
        rank, processes = accelerator.process_index, accelerator.num_processes
        return build_streaming_batches(config, subsets["train"], tokenizer, collator, rank, processes)
    return build_train_loader(config, data, collator, accelerator)


def build_train_loader(
    config: TrainingConfig, data: TrainingData, collator: DataCollatorForSeq2Seq, accelerator: Accelerator
) -> DataLoader:
    """The training batches of this process: its :func:`build_batch_sampler` share, collated.

    The loader is not passed through ``accelerator.prepare``: the sampler already splits each
    global batch across processes. Its ``batch_sampler`` is the :class:`TokenBatchSampler` the
    loop moves to each epoch (and to the resumed position inside it). With ``bpe_dropout`` the
    pairs are re-segmented as they are read, keyed by the sampler's epoch.
    """
    sampler = build_batch_sampler(config, data.train_lengths, accelerator)
    pairs: datasets.Dataset | BPEDropoutPairs = data.train
    if config.bpe_dropout:
        pairs = BPEDropoutPairs(
            data.train,
            collator.tokenizer,
            config.bpe_dropout,
            seed=config.seed,
            epoch=lambda: sampler.epoch,
            max_source_tokens=config.max_source_tokens,
            max_target_tokens=config.max_target_tokens,
        )
    return DataLoader(
        pairs,
        batch_sampler=sampler,
        collate_fn=collator,
        # A private generator keeps the DataLoader from drawing on the global RNG, which
        # would make a resumed run's dropout masks differ from an uninterrupted run's.
        generator=torch.Generator().manual_seed(config.seed),
    )


def build_optimizer(config: TrainingConfig, model: PreTrainedModel) -> torch.optim.AdamW:
    """AdamW over every parameter with the config's betas, epsilon and weight decay (Vaswani et al.'s recipe)."""
    return torch.optim.AdamW(
        model.parameters(),
        lr=config.learning_rate,
        betas=(config.adam_beta1, config.adam_beta2),
        eps=config.adam_epsilon,
        weight_decay=config.weight_decay,
    )


def build_scheduler(config: TrainingConfig, optimizer: torch.optim.Optimizer) -> LambdaLR:
    """Linear warm-up over ``warmup_steps``, then decay with the inverse square root of the step ("noam")."""
    return get_inverse_sqrt_schedule(optimizer, num_warmup_steps=config.warmup_steps)


def has_accelerator() -> bool:
    """Whether a GPU-like device exists; without one, accelerate must be told to run (multi-)CPU.

    Under ``torchrun`` on a CPU-only machine, accelerate otherwise does not set up the gloo
    process group and each process silently trains alone.
    """
    return torch.cuda.is_available() or torch.backends.mps.is_available()


def peak_memory_mb(device: torch.device) -> float:
    """Peak memory of this run: CUDA's allocator peak on a GPU, else the process's peak RSS."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
