"""From timed rounds to the reported numbers: medians, per-round ratios, FLOP-based efficiency.

Every ratio is taken within a round (both systems measured under the same load) and then
summarised over rounds, so a slow round on a shared machine moves both sides together.
(Not named ``statistics``: the worker runs from this folder, and that would shadow the stdlib.)
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from typing import Any


def median(values: Sequence[float]) -> float:
    return float(statistics.median(values))


def summarise_ratio(numerators: Sequence[float], denominators: Sequence[float]) -> dict[str, float]:
    """Median, min and max over rounds of the per-round ratio (both measured in the same round)."""
    ratios = [a / b for a, b in zip(numerators, denominators)]
    return {"ratio": round(median(ratios), 3), "ratio_min": round(min(ratios), 3), "ratio_max": round(max(ratios), 3)}


def comparison(
    name: str,
    metric: str,
    numerator: str,
    denominator: str,
    rounds: dict[str, list[float]],
    absolute: dict[str, float],
    target: float | None,
) -> dict[str, Any]:
    """One row of "where we stand": numerator over denominator (system keys), and whether it meets the target."""
    entry = {
        "name": name,
        "metric": metric,
        "numerator": numerator,
        "denominator": denominator,
        "numerator_value": absolute[numerator],
        "denominator_value": absolute[denominator],
        **summarise_ratio(rounds[numerator], rounds[denominator]),
        "target": target,
    }
    entry["meets_target"] = None if target is None else entry["ratio"] >= target
    return entry


def training_summary(rounds: list[list[dict[str, Any]]], flop_parameters: dict[str, int] | None) -> dict[str, Any]:
    """Medians of one system's training rounds (answers: [train, matmul]) with its FLOP-based efficiency."""
    passes = [answers[0] for answers in rounds]
    matmul = [answers[1]["gflops"] for answers in rounds]
    target_rates = [p["target_tokens"] / p["seconds"] for p in passes]
    total_rates = [(p["source_tokens"] + p["target_tokens"]) / p["seconds"] for p in passes]
    first = passes[0]
    summary = {
        "target_tokens_per_s": round(median(target_rates), 1),
        "total_tokens_per_s": round(median(total_rates), 1),
        "target_tokens_per_s_rounds": [round(r, 1) for r in target_rates],
        "seconds_per_pass": round(median([p["seconds"] for p in passes]), 3),
        "steps_per_pass": first["steps"],
        "source_tokens_per_pass": first["source_tokens"],
        "target_tokens_per_pass": first["target_tokens"],
        "peak_rss_mb": passes[-1]["max_rss_mb"],
        "matmul_gflops": round(median(matmul), 1),
    }
    if "cuda_peak_allocated_mb" in passes[-1]:
        summary["cuda_peak_allocated_mb"] = passes[-1]["cuda_peak_allocated_mb"]
    if flop_parameters:
        summary.update(efficiency(passes, matmul, flop_parameters))
    return summary


def efficiency(passes: list[dict[str, Any]], matmul: list[float], parameters: dict[str, int]) -> dict[str, Any]:
    """Model FLOP/s = 6 × (P_enc × source tokens + P_dec × target tokens) / seconds, over the matmul rate.

    P_enc / P_dec are the encoder's / decoder's non-embedding parameters; tokens are non-pad
    tokens (padding and attention-score products are not counted). The "with output
    projection" variant adds 6 × d_model × vocab per target token for the tied output layer.
    Each round's rate is divided by the matmul rate the same process measured in that round.
    """
    body, head = [], []
    for answer in passes:
        seconds = answer["seconds"] * 1e9
        weighted = parameters["encoder"] * answer["source_tokens"] + parameters["decoder"] * answer["target_tokens"]
        body.append(6 * weighted / seconds)
        head.append(6 * parameters["output_projection"] * answer["target_tokens"] / seconds)
    with_head = [b + h for b, h in zip(body, head)]
    return {
        "model_gflops": round(median(body), 2),
        "model_gflops_with_output_projection": round(median(with_head), 2),
        "fraction_of_matmul": round(median([b / c for b, c in zip(body, matmul)]), 3),
        "fraction_of_matmul_with_output_projection": round(median([w / c for w, c in zip(with_head, matmul)]), 3),
    }
