"""Data-preparation scale benchmark: synthetic English->Spanish corpora of N pairs through `hf-attn train`'s stages.

The corpus recombines the bundled verses two at a time and gives every pair an invented
name on both sides, drawn from a pool that grows with N, so the vocabulary (and the BPE
tokenizer's work) keeps growing as a real corpus would. :func:`measure_stages` then builds
a training run's pieces with the same functions ``TrainingRun`` calls, in its order, and
records the wall time and the process's peak RSS after each stage; the last stage is the
first optimizer update. It runs in a fresh process per measurement (``python -m
research.benchmark.data_scaling``), so peak RSS belongs to one run, and only uses names the
plugin had before this benchmark existed, so the same driver measures an older checkout.

With ``--streaming`` (:func:`measure_streaming_stages`) the same run reads its training pairs
as a stream (``data.streaming: true``, hf_attn.streaming): the corpus is never tokenized up
front, so the stages are read, tokenizer, first update (one pool of ``shuffle_buffer`` pairs
read, tokenized and batched, then one update) and five more pools streamed; its peak RSS
should not depend on N, nor grow as the stream advances.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import threading
import time
from collections.abc import Callable
from pathlib import Path

SYLLABLES = ("ka", "lo", "mi", "ren", "tu", "zar", "vel", "on", "dri", "sa", "quo", "bel", "nim", "ga", "fer", "yu")


def invented_name(rng: random.Random, syllables: int = 3) -> str:
    return "".join(rng.choice(SYLLABLES) for _ in range(syllables)).capitalize()


def write_synthetic_corpus(path: Path, pairs: int, seed: int = 0) -> Path:
    """``pairs`` lines of ``english<TAB>spanish``: two recombined bundled verses and an invented name."""
    from hf_attn.data import load_bible_corpus

    train = load_bible_corpus()["train"]
    english, spanish = list(train["source"]), list(train["target"])
    rng = random.Random(seed)
    names = [invented_name(rng) for _ in range(max(16, pairs // 20))]
    with path.open("w", encoding="utf-8") as handle:
        for _ in range(pairs):
            first, second = rng.randrange(len(english)), rng.randrange(len(english))
            name = rng.choice(names)
            handle.write(
                f"{name} said: {english[first]} {english[second]}\t{name} dijo: {spanish[first]} {spanish[second]}\n"
            )
    return path


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class TreeMemory:
    """The peak PSS of this process and its children together, sampled every ``interval`` seconds (Linux).

    ``num_proc`` tokenizing workers are forked: each one's RSS counts the pages it shares with
    the parent, so RSS summed over the processes overstates their memory. PSS divides every
    shared page among the processes that map it, so the sum is what the tree really holds.
    ``peak_anon_mb`` leaves out file pages (the memory-mapped Arrow files, libraries): those
    count in RSS while mapped, but are page cache the kernel can drop and read again.
    """

    def __init__(self, interval: float = 0.5) -> None:
        self.interval = interval
        self.peak_mb = 0.0
        self.peak_anon_mb = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def __enter__(self) -> TreeMemory:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join()

    def _sample(self) -> None:
        while True:
            total, anon = tree_pss_mb(os.getpid())
            self.peak_mb, self.peak_anon_mb = max(self.peak_mb, total), max(self.peak_anon_mb, anon)
            if self._stop.wait(self.interval):
                return


def tree_pss_mb(pid: int) -> tuple[float, float]:
    """PSS of ``pid`` and all its descendants, and its anonymous part, in MB (a process that ended counts 0)."""
    total = anon = 0.0
    pending = [pid]
    while pending:
        current = pending.pop()
        try:
            rollup = Path(f"/proc/{current}/smaps_rollup").read_text()
            children = Path(f"/proc/{current}/task/{current}/children").read_text().split()
        except OSError:
            continue
        fields = {line.split(":")[0]: int(line.split()[1]) for line in rollup.splitlines()[1:]}
        total += fields["Pss"] / 1024
        anon += fields.get("Pss_Anon", 0) / 1024
        pending.extend(int(child) for child in children)
    return total, anon


def tiny_run_config(data: str, output_dir: Path, vocab_size: int, extra: tuple[str, ...] = ()):
    """The ``transformer_small`` preset shrunk to a tiny model (the data stages, not the model, are measured)."""
    from hf_attn.training.config import load_training_config

    model = ("d_model=32", "encoder_layers=1", "decoder_layers=1", "encoder_ffn_dim=64", "decoder_ffn_dim=64")
    overrides = [f"data={data}", f"output_dir={output_dir}", f"vocab_size={vocab_size}", *extra]
    return load_training_config("transformer_small", overrides + [f"model.{setting}" for setting in model])


class StageTimer:
    """Runs named stages in order, printing each one's wall time and peak memory after it (JSON).

    ``peak_rss_mb`` is this process alone; ``tree_peak_pss_mb`` counts forked ``num_proc`` workers too
    (:class:`TreeMemory`).
    """

    def __init__(self) -> None:
        self.stages: list[dict[str, float | str]] = []
        self.results: dict[str, object] = {}

    def __call__(self, name: str, work: Callable[[], object]) -> object:
        start = time.perf_counter()
        with TreeMemory() as memory:
            self.results[name] = work()
        row = {
            "stage": name,
            "seconds": round(time.perf_counter() - start, 2),
            "peak_rss_mb": round(peak_rss_mb()),
            "tree_peak_pss_mb": round(memory.peak_mb),
            "tree_peak_anon_pss_mb": round(memory.peak_anon_mb),
        }
        self.stages.append(row)
        print(json.dumps(row), flush=True)
        return self.results[name]


def one_update(model, batch) -> float:
    """One AdamW update of ``model`` on ``batch``; the loss."""
    import torch

    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    loss = model(**batch).loss
    loss.backward()
    optimizer.step()
    return float(loss.detach())


def _builders():
    """``hf_attn.training.builders``, or ``setup`` in a checkout from before the rename (measured with --plugin)."""
    try:
        from hf_attn.training import builders
    except ImportError:
        from hf_attn.training import setup as builders
    return builders


def measure_stages(
    data: Path, output_dir: Path, vocab_size: int = 8000, num_proc: int | None = None
) -> list[dict[str, float | str]]:
    """Wall time and peak memory after each preparation stage of a tiny-model run on ``data``, up to one update.

    ``num_proc`` tokenizes the training split in that many processes (the config's ``num_proc``).
    """
    from accelerate import Accelerator
    from transformers import DataCollatorForSeq2Seq

    from hf_attn.batching import TokenBatchSampler

    builders = _builders()
    build_model, example_lengths, load_corpus = builders.build_model, builders.example_lengths, builders.load_corpus
    prepare_tokenizer, tokenize_split = builders.prepare_tokenizer, builders.tokenize_split

    config = tiny_run_config(str(data), output_dir, vocab_size, extra=(f"num_proc={num_proc}",) if num_proc else ())
    accelerator = Accelerator(cpu=True)
    stage = StageTimer()
    state = stage.results
    limits = (config.max_source_tokens, config.max_target_tokens)
    stage("read", lambda: load_corpus(config))
    corpus = state["read"]
    stage("tokenizer", lambda: prepare_tokenizer(config, corpus, accelerator))
    tokenizer = state["tokenizer"]
    # Passed only when set: a checkout from before num_proc existed is measured the same way.
    parallel = {"num_proc": config.num_proc} if config.num_proc else {}
    stage("tokenize", lambda: tokenize_split(corpus["train"], tokenizer, *limits, **parallel))
    stage("lengths", lambda: example_lengths(state["tokenize"]))
    stage("plan", lambda: len(TokenBatchSampler(state["lengths"], config.max_tokens, seed=config.seed)))

    def first_update() -> float:
        sampler = TokenBatchSampler(state["lengths"], config.max_tokens, seed=config.seed)
        train = state["tokenize"]
        if "length" in train.column_names:
            train = train.remove_columns("length")
        collator = DataCollatorForSeq2Seq(tokenizer, label_pad_token_id=-100, return_tensors="pt")
        batch = collator([train[i] for i in next(iter(sampler))])
        return one_update(build_model(config, tokenizer), batch)

    stage("first update", first_update)
    return stage.stages


# Pools of `shuffle_buffer` pairs the streaming measurement reads past the first update: RSS must not grow with them.
STREAMED_POOLS = 5


def measure_streaming_stages(
    data: Path, validation: Path, output_dir: Path, vocab_size: int = 8000, tokenizer: Path | None = None
) -> list[dict[str, float | str]]:
    """:func:`measure_stages` for ``data.streaming: true``: read (lazily), tokenizer, first update from the stream,
    then the batches of :data:`STREAMED_POOLS` more pools (tokenized and packed, no updates). With ``tokenizer``
    that one is loaded instead of a BPE trained (the stream's own stages alone)."""
    from accelerate import Accelerator
    from transformers import DataCollatorForSeq2Seq

    from hf_attn.streaming import build_streaming_batches
    from hf_attn.training.builders import build_model, load_corpus, prepare_tokenizer

    spec = f"{{streaming: true, splits: {{train: '{data}', validation: '{validation}'}}}}"
    extra = ("max_steps=1", *([f"tokenizer={tokenizer}"] if tokenizer else []))
    config = tiny_run_config(spec, output_dir, vocab_size, extra=extra)
    accelerator = Accelerator(cpu=True)
    stage = StageTimer()
    corpus = stage("read", lambda: load_corpus(config))
    tokenizer = stage("tokenizer", lambda: prepare_tokenizer(config, corpus, accelerator))

    collator = DataCollatorForSeq2Seq(tokenizer, label_pad_token_id=-100, return_tensors="pt")
    batches = build_streaming_batches(config, corpus["train"], tokenizer, collator, rank=0, world_size=1)
    stream = iter(batches)
    stage("first update", lambda: one_update(build_model(config, tokenizer), next(stream)))

    def read_on(pools: int) -> int:
        """Batches formed while the stream moves through ``pools`` more pools, or to the end of its epoch."""
        count, start = 0, batches.position
        while batches.position.epoch == start.epoch and batches.position.pool < start.pool + pools:
            next(stream)
            count += 1
        return count

    stage(f"next {STREAMED_POOLS} pools", lambda: read_on(STREAMED_POOLS))
    return stage.stages


def main() -> None:
    parser = argparse.ArgumentParser(description="One measurement: prepare a training run on DATA up to one update.")
    parser.add_argument("data", type=Path)
    parser.add_argument("output_dir", type=Path)
    parser.add_argument("--vocab-size", type=int, default=8000)
    parser.add_argument("--num-proc", type=int, help="processes that tokenize the training split (default: one)")
    parser.add_argument("--streaming", type=Path, metavar="VALIDATION_TSV", help="stream DATA, evaluating on this file")
    parser.add_argument("--tokenizer", type=Path, help="with --streaming: load this tokenizer instead of training BPE")
    args = parser.parse_args()
    if args.streaming:
        stages = measure_streaming_stages(args.data, args.streaming, args.output_dir, args.vocab_size, args.tokenizer)
    else:
        stages = measure_stages(args.data, args.output_dir, args.vocab_size, args.num_proc)
    total = {"stage": "total", "seconds": round(sum(float(s["seconds"]) for s in stages), 2)}
    for key in ("peak_rss_mb", "tree_peak_pss_mb", "tree_peak_anon_pss_mb"):
        total[key] = max(s[key] for s in stages)
    print(json.dumps(total))


if __name__ == "__main__":
    main()
