"""One system under benchmark, served in its own process; :mod:`research.benchmark.driver` starts and drives it.

Each system (hf_attn's Transformer or RNN, ``MarianMTModel``, Joey NMT's RNN) lives in a
separate worker process so that its peak memory (``ru_maxrss``) is its own, and so that
Joey NMT can run from its own virtual environment. The driver keeps every worker alive and
asks them in turn to run one timed pass (A, B, A, B, ...): all systems see the same load on a
shared machine. Commands and answers are JSON lines on stdin/stdout.

This file imports only the standard library and torch at module level: Joey NMT's venv runs
it by path (``python -P research/benchmark/worker.py --spec ...``) with neither hf_attn nor
research importable there.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

Batch = dict[str, torch.Tensor]
# Joey NMT numbers its special tokens unk, pad, bos, eos = 0..3; hf_attn uses pad, bos, eos, unk = 0..3.
# Every other id is the same (Joey reads our BPE pieces, in id order, as a word-level vocabulary).
HF_TO_JOEY_SPECIAL_IDS = {0: 1, 1: 2, 2: 3, 3: 0}
JOEY_PAD_ID, JOEY_BOS_ID, JOEY_EOS_ID = 1, 2, 3


@dataclass
class TrainableSystem:
    """A model with its own training step, exactly as its library's training loop runs it."""

    model: nn.Module
    train_step: Callable[[Any], None]
    prepare: Callable[[Batch], Any]
    flop_parameters: dict[str, int] | None = None


def peak_rss_mb(pid: int | str = "self") -> float | None:
    """Peak resident set of a process's own address space (Linux ``VmHWM``), in MiB.

    ``ru_maxrss`` would not do for a worker: Linux carries it across fork and exec, so a
    child starts with its parent's peak. Elsewhere this falls back to ``ru_maxrss`` of this
    process (and None for another one).
    """
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 if pid == "self" else None


def import_libraries(system: str) -> None:
    """Import what the system needs before the baseline memory reading, so the baseline includes it."""
    if system == "joey_rnn":
        import joeynmt.model  # noqa: F401
    elif system == "marian":
        from transformers import MarianMTModel  # noqa: F401
    else:
        import hf_attn  # noqa: F401  (imports transformers and registers the Auto classes)


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def autocast(device: torch.device, dtype: str) -> contextlib.AbstractContextManager:
    """bf16 autocast (fp32 master weights, as mixed-precision training does) or nothing for fp32."""
    if dtype == "bf16":
        return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def optimizer_for(model: nn.Module, learning_rate: float) -> torch.optim.Optimizer:
    """The same AdamW (torch's default foreach implementation) for every system."""
    return torch.optim.AdamW(model.parameters(), lr=learning_rate, betas=(0.9, 0.98), eps=1e-9)


def non_embedding_parameters(module: nn.Module) -> int:
    """Parameters of ``module`` outside its embedding tables (token and position embeddings)."""
    embedding_ids = {id(p) for m in module.modules() if isinstance(m, nn.Embedding) for p in m.parameters()}
    return sum(p.numel() for p in module.parameters() if id(p) not in embedding_ids)


def hf_system(spec: dict[str, Any], device: torch.device) -> TrainableSystem:
    """hf_attn's models or MarianMTModel, trained through their own ``labels`` loss like Trainer does."""
    from transformers import AutoConfig, AutoModelForSeq2SeqLM, MarianConfig, MarianMTModel

    if spec["system"] == "marian":
        config = MarianConfig(**spec["model"])
        model = MarianMTModel._from_config(config, attn_implementation=spec.get("attn_implementation"))
    else:
        config = AutoConfig.for_model(spec["model_type"], **spec["model"])
        kwargs = {"attn_implementation": spec["attn_implementation"]} if spec.get("attn_implementation") else {}
        model = AutoModelForSeq2SeqLM.from_config(config, **kwargs)
    model.to(device).train()
    optimizer = optimizer_for(model, spec["learning_rate"])
    dtype = spec["dtype"]

    def train_step(batch: Batch) -> None:
        with autocast(device, dtype):
            loss = model(**batch).loss
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), spec["max_grad_norm"])
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    flop_parameters = {
        "encoder": non_embedding_parameters(model.get_encoder()),
        "decoder": non_embedding_parameters(model.get_decoder()),
        "output_projection": model.get_output_embeddings().weight.numel(),
    }
    return TrainableSystem(model, train_step, lambda batch: _to_device(batch, device), flop_parameters)


def joey_system(spec: dict[str, Any], device: torch.device) -> TrainableSystem:
    """Joey NMT 2.3's model and the body of its ``TrainManager._train_step`` plus the update it follows with.

    Joey's batch object is built before timing (its DataLoader's collate does that); sorting by
    source length, the loss (with Joey's label smoothing), token normalisation, clipping and
    the AdamW step are timed, as in Joey's trainer.
    """
    from types import SimpleNamespace

    from joeynmt.batch import Batch as JoeyBatch
    from joeynmt.model import build_model
    from joeynmt.vocabulary import Vocabulary

    specials = SimpleNamespace(
        unk_token="<unk>",
        unk_id=0,
        pad_token="<pad>",
        pad_id=JOEY_PAD_ID,
        bos_token="<s>",
        bos_id=JOEY_BOS_ID,
        eos_token="</s>",
        eos_id=JOEY_EOS_ID,
        sep_token=None,
        sep_id=None,
        lang_tags=[],
    )
    with open(spec["joey_vocab_file"], encoding="utf-8") as handle:
        vocabulary = Vocabulary([line.rstrip("\n") for line in handle], specials)
    model = build_model(spec["joey_model"], src_vocab=vocabulary, trg_vocab=vocabulary)
    model.loss_function = ("crossentropy", spec["label_smoothing"])
    model.to(device).train()
    optimizer = optimizer_for(model, spec["learning_rate"])
    permutation = torch.arange(len(vocabulary))
    for ours, theirs in HF_TO_JOEY_SPECIAL_IDS.items():
        permutation[ours] = theirs

    def prepare(batch: Batch) -> JoeyBatch:
        labels = batch["labels"].masked_fill(batch["labels"] == -100, 0)
        target = torch.cat([torch.full_like(labels[:, :1], 1), labels], dim=1)  # <s> y_1 ... </s> <pad>...
        return JoeyBatch(
            src=permutation[batch["input_ids"]],
            src_length=batch["attention_mask"].sum(dim=1),
            src_prompt_mask=None,
            trg=permutation[target],
            trg_prompt_mask=None,
            indices=torch.arange(labels.shape[0]),
            device=device,
            pad_index=JOEY_PAD_ID,
            eos_index=JOEY_EOS_ID,
        )

    def train_step(batch: JoeyBatch) -> None:
        batch.sort_by_src_length()
        with autocast(device, spec["dtype"]):
            batch_loss, _, _, _ = model(return_type="loss", **vars(batch))
        batch.normalize(batch_loss, normalization="tokens").backward()
        nn.utils.clip_grad_norm_(model.parameters(), spec["max_grad_norm"])
        optimizer.step()
        model.zero_grad()

    return TrainableSystem(model, train_step, prepare)


def _to_device(batch: Batch, device: torch.device) -> Batch:
    return {name: tensor.to(device) for name, tensor in batch.items()}


def batch_tokens(batch: Batch) -> tuple[int, int]:
    """Non-pad source tokens and non-pad target tokens (labels other than -100, EOS included)."""
    return int(batch["attention_mask"].sum()), int((batch["labels"] != -100).sum())


def matmul_gflops(size: int, dtype: str, device: torch.device, seconds: float = 0.5) -> float:
    """Best rate of size×size matrix products over about ``seconds``: this process's compute ceiling."""
    torch_dtype = torch.bfloat16 if dtype == "bf16" else torch.float32
    a = torch.randn(size, size, device=device, dtype=torch_dtype)
    b = torch.randn(size, size, device=device, dtype=torch_dtype)
    torch.matmul(a, b)
    best, deadline = float("inf"), time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        synchronize(device)
        started = time.perf_counter()
        torch.matmul(a, b)
        synchronize(device)
        best = min(best, time.perf_counter() - started)
    return 2 * size**3 / best / 1e9


class Worker:
    """Holds one system, its prepared batches and its optimizer; answers the driver's commands."""

    def __init__(self, spec: dict[str, Any]) -> None:
        torch.set_num_threads(spec["threads"])
        torch.manual_seed(spec["seed"])
        self.spec = spec
        self.device = torch.device(spec["device"])
        import_libraries(spec["system"])
        self.baseline_rss_mb = peak_rss_mb()
        builder = joey_system if spec["system"] == "joey_rnn" else hf_system
        self.system = builder(spec, self.device)
        data = torch.load(spec["batches"], weights_only=True)
        self.sets: dict[str, list[tuple[Any, tuple[int, int]]]] = {
            name: [(self.system.prepare(batch), batch_tokens(batch)) for batch in batches]
            for name, batches in data["train_sets"].items()
        }
        self.generation_batches = [_to_device(batch, self.device) for batch in data.get("generation", [])]

    def ready(self) -> dict[str, Any]:
        model = self.system.model
        return {
            "ready": True,
            "parameters": sum(p.numel() for p in model.parameters()),
            "flop_parameters": self.system.flop_parameters,
            "baseline_rss_mb": round(self.baseline_rss_mb, 1),
            "rss_after_build_mb": round(peak_rss_mb(), 1),
        }

    def train(self, name: str) -> dict[str, Any]:
        """One timed pass over a prepared batch set: one optimizer step per batch."""
        source_tokens = target_tokens = 0
        synchronize(self.device)
        started = time.perf_counter()
        for batch, (source, target) in self.sets[name]:
            self.system.train_step(batch)
            source_tokens += source
            target_tokens += target
        synchronize(self.device)
        return {
            "seconds": time.perf_counter() - started,
            "steps": len(self.sets[name]),
            "source_tokens": source_tokens,
            "target_tokens": target_tokens,
            **self.memory(),
        }

    @torch.no_grad()
    def generate(self, num_beams: int, max_new_tokens: int) -> dict[str, Any]:
        """Timed ``generate`` over the test batches; every sentence gets exactly ``max_new_tokens`` tokens."""
        from transformers import GenerationConfig

        model = self.system.model
        config = model.config
        generation_config = GenerationConfig(
            max_new_tokens=max_new_tokens,
            min_new_tokens=max_new_tokens,
            num_beams=num_beams,
            do_sample=False,
            use_cache=True,
            early_stopping=True if num_beams > 1 else False,
            length_penalty=1.0,
            pad_token_id=config.pad_token_id,
            bos_token_id=config.bos_token_id,
            eos_token_id=config.eos_token_id,
            decoder_start_token_id=config.decoder_start_token_id,
        )
        model.eval()
        tokens = 0
        synchronize(self.device)
        started = time.perf_counter()
        with autocast(self.device, self.spec["dtype"]):
            for batch in self.generation_batches:
                output = model.generate(**batch, generation_config=generation_config)
                tokens += (output.shape[1] - 1) * output.shape[0]  # minus the decoder start token
        synchronize(self.device)
        seconds = time.perf_counter() - started
        model.train()
        sentences = sum(b["input_ids"].shape[0] for b in self.generation_batches)
        return {"seconds": seconds, "tokens": tokens, "sentences": sentences}

    def memory(self) -> dict[str, float]:
        memory = {"max_rss_mb": round(peak_rss_mb(), 1)}
        if self.device.type == "cuda":
            memory["cuda_peak_allocated_mb"] = round(torch.cuda.max_memory_allocated(self.device) / 2**20, 1)
        return memory

    def handle(self, command: dict[str, Any]) -> dict[str, Any]:
        operation = command["op"]
        if operation == "train":
            return self.train(command["set"])
        if operation == "generate":
            return self.generate(command["num_beams"], command["max_new_tokens"])
        if operation == "matmul":
            return {"gflops": matmul_gflops(command["size"], self.spec["dtype"], self.device)}
        raise ValueError(f"Unknown worker command {operation!r}.")


def serve(spec: dict[str, Any], commands: Iterator[str], answer: Callable[[dict[str, Any]], None]) -> None:
    """Build the system, say ready, then answer one JSON command per line until ``exit`` or end of input."""
    try:
        worker = Worker(spec)
        answer(worker.ready())
    except Exception as error:  # the driver shows the message and the worker's stderr
        answer({"error": f"{type(error).__name__}: {error}"})
        raise
    for line in commands:
        command = json.loads(line)
        if command["op"] == "exit":
            return
        try:
            answer(worker.handle(command))
        except Exception as error:
            answer({"error": f"{type(error).__name__}: {error}"})
            raise


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description="Benchmark worker (started by research.benchmark.driver; not for direct use)."
    )
    parser.add_argument("--spec", required=True, help="JSON file describing the system to build")
    args = parser.parse_args(argv)
    with open(args.spec, encoding="utf-8") as handle:
        spec = json.load(handle)
    # Answers travel on the original stdout; anything else printing there (library logs) goes to stderr.
    channel = os.fdopen(os.dup(sys.stdout.fileno()), "w", buffering=1)
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())

    def answer(message: dict[str, Any]) -> None:
        channel.write(json.dumps(message) + "\n")

    serve(spec, iter(sys.stdin.readline, ""), answer)


if __name__ == "__main__":
    main()
