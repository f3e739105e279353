"""Turns the results of :mod:`research.benchmark.run` into tables, a plot and ``docs/benchmarks.md``.

Everything here reads only the results dictionary (the JSON the script writes), so the
document can be regenerated from a saved JSON without rerunning anything.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hf_attn.atomic import atomic_write_text
from hf_attn.plotting import plot_series

SCALING_PLOT = "benchmark_scaling.png"


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A GitHub-flavoured markdown table (also readable in a terminal)."""
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join("" if cell is None else str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def _label(results: dict[str, Any], key: str) -> str:
    return results.get("systems", {}).get(key, {}).get("label", key)


def _verdict(entry: dict[str, Any]) -> str:
    if entry["target"] is None:
        return "—"
    return f"≥ {entry['target']:.2f}: {'yes' if entry['meets_target'] else 'no'}"


# The two FLOP accounts of the efficiency rows: Kaplan et al.'s non-embedding parameters, and
# every matrix product the model multiplies by (Megatron-LM's and PaLM's MFU count the tied
# output projection, a real (d_model x vocab) product per target token).
EFFICIENCY_ACCOUNTS = (
    ("non-embedding parameters", "model_gflops", "fraction_of_matmul"),
    ("output projection counted", "model_gflops_with_output_projection", "fraction_of_matmul_with_output_projection"),
)


def comparisons_table(results: dict[str, Any]) -> str:
    rows = [
        [
            entry["name"],
            entry["metric"],
            f"{_label(results, entry['numerator'])}: {entry['numerator_value']:.1f}",
            f"{_label(results, entry['denominator'])}: {entry['denominator_value']:.1f}",
            f"**{entry['ratio']:.2f}** ({entry['ratio_min']:.2f}–{entry['ratio_max']:.2f})",
            _verdict(entry),
        ]
        for entry in results["comparisons"]
    ]
    target = results.get("targets", {}).get("efficiency")
    for key, summary in results.get("training", {}).items():
        if not key.startswith("hf_attn-transformer"):
            continue
        for counted, gflops_field, fraction_field in EFFICIENCY_ACCOUNTS:
            if fraction_field not in summary or gflops_field not in summary:
                continue
            fraction = summary[fraction_field]
            met = "—" if target is None else f"≥ {target:.2f}: {'yes' if fraction >= target else 'no'}"
            rows.append(
                [
                    f"Training efficiency ({_label(results, key)}), {counted}",
                    "model FLOP/s ÷ matmul FLOP/s",
                    f"{summary[gflops_field]:.1f} GFLOP/s",
                    f"matmul {summary['matmul_gflops']:.1f} GFLOP/s",
                    f"**{fraction:.2f}**",
                    met,
                ]
            )
    headers = ["comparison", "metric", "hf_attn", "peer / ceiling", "ratio (min–max over rounds)", "target met"]
    return table(headers, rows)


def training_table(results: dict[str, Any], family: str) -> str:
    rows = []
    for key, s in results.get("training", {}).items():
        system = results["systems"][key]
        if system["family"] != family:
            continue
        rows.append(
            [
                system["label"],
                f"{s['target_tokens_per_s']:.1f}",
                f"{s['total_tokens_per_s']:.1f}",
                ", ".join(f"{r:.0f}" for r in s["target_tokens_per_s_rounds"]),
                f"{s['seconds_per_pass']:.2f}",
                f"{s['peak_rss_mb']:.0f} (+{s['peak_rss_mb'] - system['baseline_rss_mb']:.0f})",
                f"{system['parameters'] / 1e6:.2f} M",
                f"{s['matmul_gflops']:.1f}",
                f"{s['model_gflops']:.1f}" if "model_gflops" in s else "—",
                f"{s['fraction_of_matmul']:.2f} / {s['fraction_of_matmul_with_output_projection']:.2f}"
                if "fraction_of_matmul" in s
                else "—",
            ]
        )
    return table(
        [
            "system",
            "target tok/s",
            "source+target tok/s",
            "target tok/s per round",
            "s / pass",
            "peak RSS MB (+ over imports)",
            "parameters",
            "matmul GFLOP/s",
            "model GFLOP/s",
            "fraction of matmul (without / with output projection)",
        ],
        rows,
    )


def generation_table(results: dict[str, Any]) -> str:
    generation = results.get("generation", {})
    keys = list(next(iter(generation.values()), {}))
    rows = [
        [_label(results, key), *(f"{generation[mode][key]['tokens_per_s']:.1f}" for mode in generation)] for key in keys
    ]
    return table(["system", *(f"{mode} tokens/s" for mode in generation)], rows)


def scaling_table(results: dict[str, Any]) -> str:
    scaling = results.get("scaling", {})
    if not scaling:
        return ""
    keys = list(next(iter(scaling.values())))
    ratios = results.get("scaling_ratios", {})
    ratio_keys = list(next(iter(ratios.values()), {}))
    rows = [
        [
            length,
            row[keys[0]]["sentences_per_batch"],
            *(f"{row[k]['target_tokens_per_s']:.0f}" for k in keys),
            *(f"{ratios[length][k]:.2f}" for k in ratio_keys),
        ]
        for length, row in scaling.items()
    ]
    headers = [
        "length",
        "sentences / batch",
        *(f"{_label(results, k)} tok/s" for k in keys),
        *(f"Transformer ÷ {_label(results, k)}" for k in ratio_keys),
    ]
    return table(headers, rows)


def format_report(results: dict[str, Any]) -> str:
    """The console summary: comparisons, then the per-benchmark tables that exist."""
    parts = []
    if results.get("systems"):
        parts += ["Comparisons (median over rounds of the per-round ratio):", comparisons_table(results)]
    for family, title in (("transformer", "Transformer training"), ("rnn", "RNN training")):
        if any(results["systems"][k]["family"] == family for k in results.get("training", {})):
            parts += [f"\n{title}:", training_table(results, family)]
    if results.get("generation"):
        parts += ["\nGeneration:", generation_table(results)]
    if results.get("scaling"):
        parts += ["\nScaling (synthetic batches, target tokens/s):", scaling_table(results)]
    if results.get("joey_cli"):
        parts.append(f"\nJoey NMT's own trainer (log): {results['joey_cli']['target_tokens_per_s']:.1f} target tok/s")
    if results.get("fast_paths"):
        parts += [
            "\nFast paths (speed ratios, median over rounds):",
            fast_paths_table(results),
            fast_paths_times_table(results),
            fast_paths_profile_table(results),
            time_splits_table(results),
            *unmet_targets(results),
        ]
    return "\n".join(parts)


def write_json(results: dict[str, Any], path: str | os.PathLike) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    return path


def plot_scaling(results: dict[str, Any], path: str | os.PathLike) -> Path:
    scaling = results["scaling"]
    lengths = [int(length) for length in scaling]
    keys = list(next(iter(scaling.values())))
    series = {
        _label(results, key): (lengths, [scaling[str(length)][key]["target_tokens_per_s"] for length in lengths])
        for key in keys
    }
    return plot_series(
        series,
        path,
        xlabel="sentence length (tokens, source = target)",
        ylabel="training target tokens/s",
        title=f"Training throughput vs sentence length ({results['settings']['scaling_tokens']} tokens per batch)",
        logy=True,
    )


def _machine_section(results: dict[str, Any]) -> str:
    m, s = results["machine"], results["settings"]
    git = m.get("git", {})
    modified = ", ".join(git.get("uncommitted_package_files") or []) or "none"
    lines = [
        f"- CPU: {m['cpu']}, {m['usable_cpus']} usable of {m['logical_cpus']} logical CPUs, "
        f"{m['threads']} torch thread(s) per system; {m.get('memory_gb')} GB memory"
        + (f"; GPU: {m['gpu']}" if m.get("gpu") else ""),
        f"- Python {m['python']}, torch {m['torch']}, transformers {m['transformers']}; "
        f"device {s['device']}, {s['dtype']}",
        "- Memory allocator: "
        + (
            "glibc told to keep freed memory in the process (`--keep-freed-memory`: "
            "`MALLOC_MMAP_THRESHOLD_` and `MALLOC_TRIM_THRESHOLD_` = 1 GiB), for every system"
            if s.get("keep_freed_memory")
            else "glibc defaults (large freed blocks go back to the OS)"
        ),
        f"- Load average (1, 5, 15 min) at start {m['load_average_at_start']}, at end {m.get('load_average_at_end')}: "
        "the machine was shared, so absolute numbers are noisy; ratios are per round.",
        *(
            [
                f"- {m['threads']} thread(s) per system on {m['usable_cpus']} CPUs: on a shared machine a "
                "multi-threaded torch op stalls at its OpenMP barrier whenever another process holds a core, and "
                "throughput then swings several-fold from round to round; fewer threads measure compute, not "
                "scheduling. Compare thread counts only between runs on an idle machine."
            ]
            if m["threads"] < m["usable_cpus"]
            else []
        ),
        f"- Code: commit {git.get('commit')}; files of hf_attn/ and research/ differing from it (modified or "
        f"untracked) at the time: {modified}",
        f"- Run: {results['created']}, {results['wall_seconds']:.0f} s wall time",
    ]
    return "\n".join(lines)


def _data_section(results: dict[str, Any]) -> str:
    d, s = results["data"], results["settings"]
    return (
        f"Data: the {d['corpus']}: {d['train_pairs']} pairs, joint BPE of {d['vocab_size']} tokens trained on them. "
        f"Training uses the first {d['train_batches']} token-count batches of epoch 0 "
        f"(`plan_token_batches`, seed {s['seed']}, ≤ {d['max_padded_tokens_per_batch']} padded tokens): "
        f"on average {d['mean_sentences_per_batch']} sentences, {d['mean_source_tokens_per_batch']} source and "
        f"{d['mean_target_tokens_per_batch']} target tokens per batch. Generation translates the first "
        f"{d['generation_sentences']} test verses (mean {d['generation_mean_source_tokens']} source tokens) in "
        f"batches of {s['generation_batch_size']}."
    )


def render_markdown(results: dict[str, Any]) -> str:
    """The whole ``docs/benchmarks.md``."""
    s = results["settings"]
    size = results.get("size", {})
    sections = [
        "# Benchmarks",
        "Generated by `scripts/benchmark.py --write-docs` from the `benchmarks.json` next to this file; "
        "do not edit by hand. "
        "Every ratio compares two systems measured in the same rounds of the same run: each system runs in its "
        "own worker process, and the workers take turns over the same batches (A, B, C, …; who starts rotates "
        "every round). A ratio is the median over rounds of the per-round ratio; min–max shows its spread.",
        "## Where we stand",
        comparisons_table(results),
        "## Machine",
        _machine_section(results),
        "## Reproduce",
        "```bash\n"
        f"{results['command']}\n"
        "python scripts/benchmark.py --quick --no-joey      # smoke test, a minute or two\n"
        "python scripts/benchmark.py --size base --device cuda --dtype bf16 --write-docs   # on a GPU\n"
        "```\n"
        "Joey NMT runs from its own venv (`--joey-venv`, default `$XDG_CACHE_HOME/hf_attn/joey-venv` or "
        "`~/.cache/hf_attn/joey-venv`, created on first use with "
        "`pip install torch==<this torch> joeynmt==2.3.0 importlib_metadata`); hf_attn's environment never gets it.",
        "Serving throughput (trained models with beam 4 under `generate`, CTranslate2 fp32/int8 and the RNN's "
        "torch-int8, against MarianMTModel and Marian on CTranslate2) needs trained models and the `deploy` extra, "
        "so it has its own script and page: `scripts/benchmark_translation.py`, "
        "[translation_benchmark.md](translation_benchmark.md).",
        "Eager against compiled (`torch.compile`, static-cache decoding) at 1 and 2 threads, and where the time of "
        "each case goes, is the `fast_paths` benchmark of the same script, on its own page: "
        f"[{FAST_PATH_DOC}]({FAST_PATH_DOC}).",
        _gpu_section(results),
        "## Models and data",
        f"Size `{s['size']}`: vocabulary {size.get('vocab_size')}, d_model {size.get('d_model')}, "
        f"{size.get('layers')}+{size.get('layers')} layers, {size.get('heads')} heads, FFN {size.get('ffn_dim')}; "
        f"RNN hidden size {size.get('rnn_hidden')}. " + _data_section(results),
        "- **Transformers**: hf_attn's `TransformerSeq2SeqForConditionalGeneration` and a randomly initialised "
        "`MarianMTModel` with identical dimensions: vocabulary, d_model, layers, heads, FFN, ReLU, dropout "
        f"{s['dropout']}, no attention/activation dropout, post-LayerNorm, sinusoidal positions, embeddings scaled by "
        "√d_model, one embedding matrix shared by encoder, decoder and output layer. Both compute their own loss "
        "from `labels` (hf_attn with `label_smoothing=0`, as Marian's built-in loss has none). Differences that "
        "remain: hf_attn's attention projections have no biases (Marian's have), so Marian has "
        "more parameters (see the table); Marian adds a `final_logits_bias` buffer to the logits.",
        "- **RNNs**: 1-layer bidirectional LSTM encoder with "
        f"{size.get('rnn_hidden')} units per direction, 1-layer LSTM decoder of {size.get('rnn_hidden')}, Bahdanau "
        "attention on the new decoder state, attentional vector tanh(W[h; c]), bridge initialisation, tied "
        "embeddings, dropout everywhere as above, label smoothing 0.1 for all RNNs. Joey NMT 2.3 gets the same "
        "token ids (our BPE pieces as its word-level vocabulary; only the four special ids are permuted) and the "
        "same batches, through its own model and the body of its trainer's step. hf_attn's RNN runs with input "
        "feeding (the step-by-step decoder, like Joey's) and without (one fused LSTM call over the target).",
        f"- **Training step** (every system): forward with loss, backward, gradient clipping at {s['max_grad_norm']}, "
        f"AdamW (torch default implementation, lr {s['learning_rate']}), zero grads; one step per batch. A pass is "
        f"one step on each of the {s['train_batches']} batches; {s['repeats']} measured rounds after "
        f"{s['warmup']} warm-up round(s) ({s['generation_repeats']} for generation, {s['scaling_repeats']} per "
        "scaling length).",
        "- **Tokens/s** counts non-pad tokens: target = labels other than -100 (EOS included, as Joey's log counts), "
        "source+target adds the attention-mask tokens of the source.",
        "- **Peak memory** is each worker process's peak resident set after the training rounds (Linux `VmHWM`: "
        "model, optimizer state, activations, plus the interpreter and libraries; `ru_maxrss` would not do, as a "
        "child inherits its parent's); the figure in brackets subtracts the worker's peak after its imports, "
        "before the model was built."
        + (" On CUDA, `torch.cuda.max_memory_allocated` is reported too." if s["device"] == "cuda" else ""),
        "## Transformer training",
        training_table(results, "transformer"),
        "## Efficiency",
        "Model FLOP/s = 6 × (P_enc × source tokens + P_dec × target tokens) / seconds, where P_enc and P_dec are the "
        "encoder's and decoder's non-embedding parameters (attention, FFN, LayerNorm; no token or position "
        "embeddings) and tokens are non-pad tokens; the second figure also counts the tied output projection "
        "(6 × d_model × vocab per target token), a real matrix product that Megatron-LM's and PaLM's MFU formulas "
        "count too (Kaplan et al.'s non-embedding count leaves it out); the top table gives both. "
        "Attention-score products and padding are not counted, so this is "
        "useful work only. The ceiling is the best rate of "
        f"{s['matmul_size']}×{s['matmul_size']} {s['dtype']} matrix products measured in the same worker process, "
        "with the same thread count, in every round (median over rounds).",
        "## Generation",
        f"`generate()` with `max_new_tokens = min_new_tokens = {s['max_new_tokens']}` (random weights would "
        "otherwise stop at different times), cache on, greedy and beam search (beam hypotheses are not counted: "
        "tokens = sentences × new tokens). Same `GenerationConfig` for both systems.",
        generation_table(results),
        "## RNN training",
        training_table(results, "rnn"),
        _joey_cli_section(results),
        "## Scaling with sentence length",
        f"Synthetic unpadded batches of {s['scaling_tokens']} tokens (source and target both of the given length, "
        f"random ids), two batches per pass, {s['scaling_repeats']} rounds. With a fixed token budget, longer "
        "sentences mean fewer of them per batch. The Transformer processes all positions of a layer at once, so "
        "its matrix products keep their size (sentences × length) and only attention grows with length; an RNN "
        "steps through the positions (the decoder with input feeding one step at a time, also in training), and "
        "each step's products shrink to the number of sentences, so its throughput falls as sentences grow.",
        scaling_table(results),
        f"![training tokens/s vs sentence length]({SCALING_PLOT})" if results.get("scaling") else "",
    ]
    return "\n\n".join(part for part in sections if part) + "\n"


def _gpu_section(results: dict[str, Any]) -> str:
    if results["machine"].get("gpu"):
        return ""
    return (
        "GPU numbers (bf16 training throughput and MFU of the base-size Transformer, beam-4 and compiled "
        "static-cache generate, sdpa against flash attention) are pending a lent GPU: `scripts/gpu_check.sh` "
        "measures them in under 8 minutes and writes JSON; `scripts/gpu_check.sh --dry-run` runs the same script "
        "end to end on the CPU at tiny sizes (the test suite does)."
    )


def _joey_cli_section(results: dict[str, Any]) -> str:
    cli = results.get("joey_cli")
    if not cli:
        return ""
    harness = results.get("training", {}).get("joeynmt-rnn", {}).get("target_tokens_per_s")
    peak = "n/a" if cli["peak_rss_mb"] is None else f"{cli['peak_rss_mb']:.0f} MB"
    return (
        f"Cross-check, not interleaved: Joey NMT's own `python -m joeynmt train` for {cli['steps']} steps on the same "
        f"token ids logged {cli['target_tokens_per_s']:.1f} target tokens/s (median of its log lines after the "
        f"first: {cli['logged_target_tokens_per_s']}), peak RSS {peak}; the harness measured "
        f"{harness} for Joey's model on our batches. Joey's own batches are not grouped by length, so they "
        "carry more padding."
    )


def write_docs(results: dict[str, Any], docs_dir: str | os.PathLike) -> list[Path]:
    """Write the pages a run's results fill into ``docs_dir``, each with the JSON it is rendered from.

    ``benchmarks.json``, the scaling plot and ``benchmarks.md`` for the worker benchmarks;
    ``fast_paths_benchmark.json`` and ``.md`` for the fast paths. A run of one kind leaves the
    other kind's page as it was.
    """
    docs_dir = Path(docs_dir)
    written = []
    if results.get("systems"):
        written.append(write_json(results, docs_dir / "benchmarks.json"))
        if results.get("scaling"):
            written.append(plot_scaling(results, docs_dir / SCALING_PLOT))
        atomic_write_text(docs_dir / "benchmarks.md", render_markdown(results))
        written.append(docs_dir / "benchmarks.md")
    if results.get("fast_paths"):
        written.append(write_json(results, docs_dir / FAST_PATH_DOC.replace(".md", ".json")))
        atomic_write_text(docs_dir / FAST_PATH_DOC, render_fast_paths_markdown(results))
        written.append(docs_dir / FAST_PATH_DOC)
    return written


FAST_PATH_DOC = "fast_paths_benchmark.md"
# Rows of the fast-path table: (ratio key in each thread count's "ratios", what it compares).
FAST_PATH_ROWS = (
    ("train eager", "training step, eager: hf_attn speed / Marian"),
    ("train compiled", "training step, compiled: hf_attn / Marian"),
    ("beam4 eager", "beam-4 generate, eager: hf_attn / Marian"),
    ("beam4 compiled", "beam-4 generate, compiled forward + static cache: hf_attn / Marian"),
    ("greedy compiled static / eager", "greedy, compiled static cache / own eager (hf_attn)"),
    ("train hf_attn compiled / eager", "training step, hf_attn: compiled / eager"),
    ("train marian compiled / eager", "training step, Marian: compiled / eager"),
    ("greedy marian compiled static / eager", "greedy, compiled static cache / own eager (Marian)"),
)


def _fast_path_verdict(value: float, target: float | None) -> str:
    return "" if target is None else (" ✓" if value >= target else " ✗")


def fast_paths_table(results: dict[str, Any]) -> str:
    """Ratios by thread count (columns), with the issue's targets; ✓/✗ says whether a ratio meets its target."""
    from .fast_paths import FAST_PATH_TARGETS

    by_threads = results["fast_paths"]
    rows = []
    for key, label in FAST_PATH_ROWS:
        if not any(key in run["ratios"] for run in by_threads.values()):
            continue
        target = FAST_PATH_TARGETS.get(key)
        cells = []
        for run in by_threads.values():
            entry = run["ratios"].get(key)
            cells.append(
                "—"
                if entry is None
                else f"**{entry['ratio']:.2f}** ({entry['ratio_min']:.2f}–{entry['ratio_max']:.2f})"
                + _fast_path_verdict(entry["ratio"], target)
            )
        rows.append([label, "—" if target is None else f"≥ {target:.2f}", *cells])
    target = FAST_PATH_TARGETS["rnn beam4 speed-up"]
    rows.append(
        [
            "RNN beam-4 generate: the most any faster decoding step could give (Amdahl, step free but the "
            "output projection)",
            f"≥ {target:.2f}",
            *(
                f"{run['time_splits']['rnn beam4 eager']['speed_up_bound_free_step']:.2f}"
                + _fast_path_verdict(run["time_splits"]["rnn beam4 eager"]["speed_up_bound_free_step"], target)
                for run in by_threads.values()
            ),
        ]
    )
    return table(["comparison", "target", *(f"{t} thread(s)" for t in by_threads)], rows)


def fast_paths_times_table(results: dict[str, Any]) -> str:
    by_threads = results["fast_paths"]
    cases = list(next(iter(by_threads.values()))["median_seconds"])
    rows = [
        [
            case,
            *(
                f"{run['median_seconds'][case] * 1000:.0f} ms (first call {run['first_call_seconds'][case]:.1f} s)"
                for run in by_threads.values()
            ),
        ]
        for case in cases
    ]
    return table(["case", *(f"{t} thread(s): median" for t in by_threads)], rows)


def fast_paths_profile_table(results: dict[str, Any]) -> str:
    by_threads = results["fast_paths"]
    cases = list(next(iter(by_threads.values()))["profiles"])
    rows = []
    for case in cases:
        cells = []
        for run in by_threads.values():
            p = run["profiles"][case]
            cells.append(
                f"{p['matmul_share']:.0%} of {p['profiled_seconds']:.2f} s; "
                f"{p['matmul_gflops_achieved']:.0f} of {run['matmul_ceiling_gflops']:.0f} GFLOP/s"
            )
        rows.append([case, *cells])
    return table(
        ["case", *(f"{t} thread(s): time in matrix products; their rate of the ceiling" for t in by_threads)], rows
    )


def time_splits_table(results: dict[str, Any]) -> str:
    rows = [
        [
            case,
            threads,
            f"{split['generate_seconds']:.3f}",
            f"{split['forward_seconds']:.3f}",
            f"{split['output_projection_seconds']:.3f}",
            f"{split['outside_forward_seconds']:.3f}",
            f"**{split['speed_up_bound_free_step']:.2f}**",
        ]
        for threads, run in results["fast_paths"].items()
        for case, split in run["time_splits"].items()
    ]
    headers = [
        "eager generate case",
        "threads",
        "total s",
        "model forward s",
        "of it: output projection s",
        "outside the model s",
        "bound: step free but the projection",
    ]
    return table(headers, rows)


def unmet_targets(results: dict[str, Any]) -> list[str]:
    """One line per missed target, with what the profile and the time split say about it."""
    from .fast_paths import FAST_PATH_TARGETS

    lines = []
    against_marian = {
        "train eager": ("train hf_attn eager", "train marian eager"),
        "train compiled": ("train hf_attn compiled", "train marian compiled"),
        "beam4 eager": ("beam4 hf_attn eager", "beam4 marian eager"),
        "beam4 compiled": ("beam4 hf_attn compiled", "beam4 marian compiled"),
    }
    for threads, run in results["fast_paths"].items():
        ceiling = run["matmul_ceiling_gflops"]
        for key, (ours, theirs) in against_marian.items():
            entry, target = run["ratios"].get(key), FAST_PATH_TARGETS[key]
            if entry is None or entry["ratio"] >= target or ours not in run["profiles"]:
                continue
            profile, ours_s, theirs_s = (
                run["profiles"][ours],
                run["median_seconds"][ours],
                run["median_seconds"][theirs],
            )
            rest = (1 - profile["matmul_share"]) * ours_s
            cut = (ours_s - theirs_s / target) / rest if rest else float("inf")
            lines.append(
                f"- {key}, {threads} thread(s): {entry['ratio']:.2f} < {target:.2f}. hf_attn spends "
                f"{profile['matmul_share']:.0%} of its time in matrix products, at "
                f"{profile['matmul_gflops_achieved']:.0f} of the {ceiling:.0f} GFLOP/s ceiling; Marian multiplies the "
                f"same matrices (plus biases), so {target:.2f} needs "
                f"hf_attn's other work ({rest * 1000:.0f} ms of {ours_s * 1000:.0f} ms) cut by {cut:.0%}."
            )
        entry, target = (
            run["ratios"].get("greedy compiled static / eager"),
            FAST_PATH_TARGETS["greedy compiled static / eager"],
        )
        split = run["time_splits"].get("greedy hf_attn eager")
        if entry is not None and entry["ratio"] < target and split:
            lines.append(
                f"- greedy compiled static / eager, {threads} thread(s): {entry['ratio']:.2f} < {target:.2f}. Eager "
                f"greedy spends {split['outside_forward_seconds'] / split['generate_seconds']:.0%} of its time outside "
                f"the model and {split['output_projection_seconds'] / split['generate_seconds']:.0%} in the output "
                "projection, neither of which compiling the decoding step changes: even a free step would give "
                f"{split['speed_up_bound_free_step']:.2f}."
            )
        split, target = run["time_splits"]["rnn beam4 eager"], FAST_PATH_TARGETS["rnn beam4 speed-up"]
        if split["speed_up_bound_free_step"] < target:
            lines.append(
                f"- RNN beam 4, {threads} thread(s): {split['speed_up_bound_free_step']:.2f} < {target:.2f} even with "
                f"a free decoding step. {split['outside_forward_seconds'] / split['generate_seconds']:.0%} of generate "
                "is transformers' beam search on the (rows × vocabulary) scores, and "
                f"{split['output_projection_seconds'] / split['generate_seconds']:.0%} the output projection at the "
                f"matmul ceiling (RNN profile: {run['profiles']['rnn beam4 eager']['matmul_share']:.0%} in matrix "
                "products); tokens identical to today's keep both, so no fused or compiled step reaches the target."
            )
    return lines


def render_fast_paths_markdown(results: dict[str, Any]) -> str:
    """The whole ``docs/fast_paths_benchmark.md``: ratios, times, profiles and the RNN's time split."""
    s = results["settings"]
    size = results.get("size", {})
    by_threads = results["fast_paths"]
    loads = "; ".join(f"{t} thread(s): {run['load_average']}" for t, run in by_threads.items())
    sections = [
        "# Fast paths: eager and compiled, hf_attn against MarianMTModel",
        "Generated by `scripts/benchmark.py --benchmarks fast_paths --write-docs` from the "
        "`fast_paths_benchmark.json` next to this file; do not edit by hand. Method "
        "(`research/benchmark/fast_paths.py`): one process per thread count; in it every case runs once per round "
        f"(one unmeasured warm-up round compiles), {s['repeats']} measured rounds; a ratio is the median over rounds "
        "of the per-round ratio (min–max in brackets), speed = 1 / time, so above 1 means hf_attn (or the compiled "
        "path) is faster. Models have random weights: hf_attn's Transformer and a MarianMTModel of identical "
        f"dimensions (size `{s['size']}`: vocabulary {size.get('vocab_size')}, d_model {size.get('d_model')}, "
        f"{size.get('layers')}+{size.get('layers')} layers, {size.get('heads')} heads, FFN {size.get('ffn_dim')}, "
        f"dropout {s['dropout']} in training) and hf_attn's RNN (biLSTM encoder and LSTM decoder of "
        f"{size.get('rnn_hidden')}, Bahdanau attention, input feeding). Inputs: {s['fast_path_sentences']} sentences "
        f"of {s['fast_path_length']} random source and target ids; generation makes exactly {s['max_new_tokens']} "
        "new tokens per sentence. Compiled: training `model.compile(dynamic=False)`; decoding "
        '`model.forward = torch.compile(model.forward, dynamic=False)` with `cache_implementation="static"`.',
        "## Ratios",
        fast_paths_table(results),
        "## Times",
        "Median wall time per call; the first call of a compiled case includes its compilation (cold: inductor's "
        "caches are disabled in these processes).",
        fast_paths_times_table(results),
        "## Where the time goes",
        "One profiled call per case after the rounds (`torch.profiler`, self CPU time): the share spent in matrix "
        "products (`mm`, `addmm`, `bmm`, `baddbmm`) and the rate those products reached, against the ceiling "
        f"(best {s['matmul_size']}×{s['matmul_size']} fp32 matmul in the same process). A ratio against Marian "
        "can move only by the part that is not matrix products (both models multiply the same matrices), and a "
        "compiled path only removes elementwise and Python work.",
        fast_paths_profile_table(results),
        "Eager `generate` calls split by wall clocks around the model's forward and its output projection "
        "(one unmeasured call each after the rounds). Tokens identical to today's need the same output projection "
        "(a (beams × sentences, hidden) × (hidden, vocabulary) product at the matmul ceiling) and the same work "
        "in transformers' beam search on the (rows × vocabulary) scores (logits copy, `log_softmax`, adding beam "
        "scores, `topk`, logits processors): only the rest of the step can get faster, so the last column is the "
        "most any fused or compiled decoding step could give.",
        time_splits_table(results),
        "## Targets not met, and why",
        "\n".join(unmet_targets(results)) or "Every target is met.",
        "## Machine",
        f"- {results['machine']['cpu']}, {results['machine']['usable_cpus']} usable CPUs; Python "
        f"{results['machine']['python']}, torch {results['machine']['torch']}, transformers "
        f"{results['machine']['transformers']}; fp32",
        f"- Load average (1, 5, 15 min) at the end of each thread count's process: {loads}. The machine is shared: "
        "absolute times are noisy, ratios are per round; 2 threads on 2 busy cores measure scheduling as much as "
        "compute.",
        f"- Code: commit {results['machine'].get('git', {}).get('commit')}; run {results['created']}.",
        "## Reproduce",
        f"```bash\n{results['command']}\n```",
    ]
    return "\n\n".join(sections) + "\n"
