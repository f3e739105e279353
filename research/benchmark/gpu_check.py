"""What a lent GPU should tell us about hf_attn, in one run of under 8 minutes.

* bf16 training throughput of the base-size Transformer (d_model 512, 6+6 layers, vocabulary
  8000) and its MFU: model FLOP/s (6 × non-embedding parameters × tokens, plus the output
  projection) over the bf16 matmul ceiling measured in the same process;
* beam-4 ``generate`` throughput (bf16 weights, a fixed number of new tokens);
* greedy decoding with a compiled forward and a static cache against eager, with its
  compilation time and whether the tokens agree;
* sdpa against flash attention (``flash_attention_2``) where the ``flash_attn`` package is
  installed: training-step time and the largest logit difference. hf_attn does not declare
  flash support, so the check switches the implementation on a built model; a failure is
  recorded, not hidden.

Step budgets, not wall-clock ones; the shell script stops the run after 8 minutes. Without
CUDA it refuses; ``--dry-run`` runs every part on the CPU at the tiny size instead (the test
suite does), so the script is known to work end to end before a GPU is lent.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import sys
import time
from collections.abc import Callable
from typing import Any

import torch
import transformers

from hf_attn.atomic import atomic_write_json

from .fast_paths import SPECIAL_IDS, build_model, compiled_forward, generation
from .settings import SIZES
from .summary import efficiency
from .systems import hf_transformer_config
from .worker import hf_system, matmul_gflops

# Per mode: model size, sentences × tokens of a training batch, steps, generation sentences and new tokens.
BUDGETS = {
    "gpu": {"size": "base", "batch": (64, 64), "steps": 30, "sentences": 64, "new_tokens": 64, "matmul": 8192},
    "dry_run": {"size": "tiny", "batch": (4, 8), "steps": 2, "sentences": 3, "new_tokens": 4, "matmul": 256},
}


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(function: Callable[[], object], device: torch.device) -> tuple[float, object]:
    synchronize(device)
    started = time.perf_counter()
    result = function()
    synchronize(device)
    return time.perf_counter() - started, result


def flash_attn_version() -> str | None:
    try:
        return importlib.metadata.version("flash_attn")
    except importlib.metadata.PackageNotFoundError:
        return None


def training_check(budget: dict[str, Any], device: torch.device, attn_implementation: str) -> dict[str, Any]:
    """bf16 (autocast) training steps of hf_attn's Transformer: tokens/s and MFU against the measured ceiling."""
    size = SIZES[budget["size"]]
    spec = {
        "system": "hf_attn",
        "model_type": "transformer_seq2seq",
        "model": hf_transformer_config(size, size.vocab_size, SPECIAL_IDS, 0.1),
        "attn_implementation": "sdpa",
        "dtype": "bf16",
        "learning_rate": 5e-4,
        "max_grad_norm": 1.0,
    }
    torch.manual_seed(0)
    system = hf_system(spec, device)
    if attn_implementation != "sdpa":
        system.model.config._attn_implementation = attn_implementation
    sentences, length = budget["batch"]
    ids = torch.randint(4, size.vocab_size, (sentences, length), device=device)
    batch = {"input_ids": ids, "attention_mask": torch.ones_like(ids), "labels": ids.roll(1, dims=1)}
    for _ in range(3):
        system.train_step(batch)
    seconds, _ = timed(lambda: [system.train_step(batch) for _ in range(budget["steps"])], device)
    tokens = sentences * length * budget["steps"]
    ceiling = matmul_gflops(budget["matmul"], "bf16", device)
    passes = [{"seconds": seconds, "source_tokens": tokens, "target_tokens": tokens}]
    flops = efficiency(passes, [ceiling], system.flop_parameters)
    return {
        "attn_implementation": attn_implementation,
        "steps": budget["steps"],
        "tokens_per_step": sentences * length,
        "seconds_per_step": round(seconds / budget["steps"], 5),
        "target_tokens_per_s": round(tokens / seconds, 1),
        "bf16_matmul_ceiling_gflops": round(ceiling, 1),
        "mfu": flops["fraction_of_matmul_with_output_projection"],
        "mfu_non_embedding": flops["fraction_of_matmul"],
        **flops,
    }


def generation_checks(budget: dict[str, Any], device: torch.device) -> dict[str, Any]:
    """bf16 beam-4 generate, and compiled static-cache greedy against eager greedy (time, compile time, tokens)."""
    size = SIZES[budget["size"]]
    ids = torch.randint(4, size.vocab_size, (budget["sentences"], 24), device=device)
    source = {"input_ids": ids, "attention_mask": torch.ones_like(ids)}

    def model() -> torch.nn.Module:
        return build_model("hf_attn", budget["size"], 0.0).to(device=device, dtype=torch.bfloat16)

    eager, compiled = model(), compiled_forward(model())
    new_tokens = budget["new_tokens"]
    beam = generation(eager, source, new_tokens, num_beams=4)
    greedy = generation(eager, source, new_tokens)
    static = generation(compiled, source, new_tokens, cache_implementation="static")
    beam()
    compile_seconds, static_tokens = timed(static, device)
    greedy_tokens = greedy()
    results: dict[str, Any] = {"new_tokens": new_tokens, "sentences": budget["sentences"]}
    generated = budget["sentences"] * new_tokens
    for name, case in (("beam4_eager", beam), ("greedy_eager", greedy), ("greedy_compiled_static", static)):
        seconds = min(timed(case, device)[0] for _ in range(3))
        results[name] = {"seconds": round(seconds, 4), "generated_tokens_per_s": round(generated / seconds, 1)}
    results["greedy_compiled_static"]["first_call_seconds"] = round(compile_seconds, 2)
    results["greedy_compiled_static"]["same_tokens_as_eager"] = bool(torch.equal(static_tokens, greedy_tokens))
    results["greedy_compiled_static_speedup"] = round(
        results["greedy_eager"]["seconds"] / results["greedy_compiled_static"]["seconds"], 3
    )
    return results


def attention_check(budget: dict[str, Any], device: torch.device, other: str) -> dict[str, Any]:
    """sdpa against another attention implementation: training-step time and the largest logit difference."""
    result: dict[str, Any] = {"other": other, "sdpa": training_check(budget, device, "sdpa")}
    try:
        result[other] = training_check(budget, device, other)
        size = SIZES[budget["size"]]
        ids = torch.randint(4, size.vocab_size, (8, 32), device=device)
        model = build_model("hf_attn", budget["size"], 0.0).to(device=device, dtype=torch.bfloat16).eval()
        with torch.inference_mode():
            reference = model(input_ids=ids, decoder_input_ids=ids).logits
            model.config._attn_implementation = other
            compared = model(input_ids=ids, decoder_input_ids=ids).logits
        result["max_abs_logit_difference"] = float((reference.float() - compared.float()).abs().max())
        result["speedup_over_sdpa"] = round(result["sdpa"]["seconds_per_step"] / result[other]["seconds_per_step"], 3)
    except Exception as error:  # noqa: BLE001 - an unsupported backend is a finding to record, not a crash
        result["error"] = f"{type(error).__name__}: {error}"
    return result


def flash_check(budget: dict[str, Any], device: torch.device) -> dict[str, Any]:
    """sdpa against flash_attention_2 where flash_attn is installed on CUDA; a dry run checks the path with eager."""
    if device.type == "cpu":
        return {
            "stand_in": "dry run: eager stands in for flash_attention_2",
            **attention_check(budget, device, "eager"),
        }
    version = flash_attn_version()
    if version is None:
        return {"skipped": "flash_attn is not installed"}
    return {"flash_attn": version, **attention_check(budget, device, "flash_attention_2")}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="scripts/gpu_check.sh",
        description=__doc__.split("\n\n")[0],
        epilog=__doc__.split("\n\n", 1)[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--output", default="gpu_check.json", help="results JSON (written atomically)")
    parser.add_argument("--dry-run", action="store_true", help="tiny sizes on the CPU: check the script, not a GPU")
    args = parser.parse_args(argv)
    if not args.dry_run and not torch.cuda.is_available():
        print(
            "gpu_check needs a CUDA GPU and torch sees none (torch.cuda.is_available() is False). "
            "Run it on a GPU machine, or with --dry-run to exercise it on the CPU at tiny sizes.",
            file=sys.stderr,
        )
        return 2
    device = torch.device("cpu" if args.dry_run else "cuda")
    budget = BUDGETS["dry_run" if args.dry_run else "gpu"]
    started = time.perf_counter()
    results: dict[str, Any] = {
        "dry_run": args.dry_run,
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "size": budget["size"],
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "flash_attn": flash_attn_version(),
    }
    results["training_bf16"] = training_check(budget, device, "sdpa")
    results["generation_bf16"] = generation_checks(budget, device)
    results["sdpa_vs_flash"] = flash_check(budget, device)
    results["wall_seconds"] = round(time.perf_counter() - started, 1)
    atomic_write_json(args.output, results)
    training, generation_results = results["training_bf16"], results["generation_bf16"]
    print(
        f"{results['device']} ({budget['size']}): training {training['target_tokens_per_s']:.0f} target tok/s, "
        f"MFU {training['mfu']:.2f}; beam 4 {generation_results['beam4_eager']['generated_tokens_per_s']:.0f} tok/s; "
        f"compiled static greedy {generation_results['greedy_compiled_static_speedup']:.2f}x eager; "
        f"wrote {args.output} in {results['wall_seconds']:.0f} s"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
