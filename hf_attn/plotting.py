"""Figures for the RNN-vs-Transformer comparison: learning curves, attention, BLEU by length.

Figures are drawn on ``matplotlib.figure.Figure`` objects, which render with the Agg
backend and never touch pyplot's global state: safe in training processes, threads and
headless machines, and nothing is ever shown. Each function writes a PNG (creating its
folder) and returns the path, so cards and reports can link it.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

logger = logging.getLogger(__name__)

History = Sequence[Mapping[str, Any]]
DPI = 120
AXIS_LABELS = {"step": "update step", "seconds": "wall-clock seconds", "epoch": "epoch"}
LOSS_KEYS = {"train_loss": ("train", "-"), "dev_loss": ("dev", "--")}
# A cell of the attention heatmap, in inches: large enough for a 7-point token label.
CELL_INCHES = 0.22
MAX_FIGURE_INCHES = 40.0


def _save(figure: Figure, path: str | os.PathLike) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=DPI, bbox_inches="tight")
    logger.info("Wrote %s", path)
    return path


def _decorate(axes: Axes, xlabel: str, ylabel: str, title: str | None, *, logy: bool = False) -> None:
    axes.set_xlabel(xlabel)
    axes.set_ylabel(ylabel)
    if title:
        axes.set_title(title)
    if logy:
        axes.set_yscale("log")
    axes.grid(True, alpha=0.3)
    if axes.get_legend_handles_labels()[0]:
        axes.legend()


def _points(history: History, x: str, key: str) -> tuple[list[float], list[float]]:
    """The (x, value) pairs of the rows that have both (evaluation rows and training rows differ)."""
    rows = [row for row in history if row.get(x) is not None and row.get(key) is not None]
    return [row[x] for row in rows], [row[key] for row in rows]


def plot_learning_curves(history: History | Mapping[str, History], path: str | os.PathLike, *, x: str = "step") -> Path:
    """Loss (train solid, dev dashed) and dev BLEU against ``x``, for one run or several named runs.

    ``history`` is a list of rows (``{"step", "seconds", "train_loss", "dev_loss", "dev_bleu"}``,
    any key may be missing), or ``{run_name: rows}`` to compare runs on the same axes.
    A panel is drawn only for what was recorded.
    """
    runs = dict(history) if isinstance(history, Mapping) else {"": history}
    has_loss = any(_points(rows, x, key)[0] for rows in runs.values() for key in LOSS_KEYS)
    has_bleu = any(_points(rows, x, "dev_bleu")[0] for rows in runs.values())
    if not (has_loss or has_bleu):
        raise ValueError(f"No row has {x!r} together with any of {[*LOSS_KEYS, 'dev_bleu']}: nothing to plot.")
    panels = int(has_loss) + int(has_bleu)
    figure = Figure(figsize=(5.5 * panels, 4.0), layout="constrained")
    axes = iter(figure.subplots(1, panels, squeeze=False)[0])
    colors = {name: f"C{index}" for index, name in enumerate(runs)}
    if has_loss:
        loss_axes = next(axes)
        for name, rows in runs.items():
            for key, (split, style) in LOSS_KEYS.items():
                xs, ys = _points(rows, x, key)
                if xs:
                    label = f"{name} {split}".strip()
                    loss_axes.plot(xs, ys, style, color=colors[name], label=label)
        _decorate(loss_axes, AXIS_LABELS.get(x, x), "loss (per target token)", "Loss")
    if has_bleu:
        bleu_axes = next(axes)
        for name, rows in runs.items():
            xs, ys = _points(rows, x, "dev_bleu")
            if xs:
                bleu_axes.plot(xs, ys, "o-", color=colors[name], markersize=3, label=name or "dev")
        _decorate(bleu_axes, AXIS_LABELS.get(x, x), "BLEU", "Dev BLEU")
    return _save(figure, path)


def plot_attention(
    source_tokens: Sequence[str],
    target_tokens: Sequence[str],
    weights: Any,
    path: str | os.PathLike,
    *,
    title: str | None = None,
) -> Path:
    """Heatmap of a (target_len, source_len) attention matrix, tokens on the axes (Bahdanau et al. Fig. 3).

    The figure grows with the token counts so every label stays readable (source labels
    are vertical); 0 is white and 1 black, the papers' convention.
    """
    weights = np.asarray(weights, dtype=float)
    if weights.shape != (len(target_tokens), len(source_tokens)):
        raise ValueError(
            f"Attention of shape {weights.shape} does not match {len(target_tokens)} target "
            f"x {len(source_tokens)} source tokens."
        )
    width = min(MAX_FIGURE_INCHES, 2.0 + CELL_INCHES * len(source_tokens))
    height = min(MAX_FIGURE_INCHES, 1.5 + CELL_INCHES * len(target_tokens))
    figure = Figure(figsize=(max(width, 4.0), max(height, 3.0)), layout="constrained")
    axes = figure.subplots()
    image = axes.imshow(weights, cmap="Greys", vmin=0.0, vmax=1.0, aspect="auto", interpolation="nearest")
    fontsize = 7 if max(len(source_tokens), len(target_tokens)) > 30 else 9
    axes.set_xticks(range(len(source_tokens)), labels=list(source_tokens), rotation=90, fontsize=fontsize)
    axes.set_yticks(range(len(target_tokens)), labels=list(target_tokens), fontsize=fontsize)
    axes.xaxis.tick_top()
    axes.xaxis.set_label_position("top")
    axes.set_xlabel("source")
    axes.set_ylabel("target")
    if title:
        axes.set_title(title)
    figure.colorbar(image, ax=axes, shrink=0.6, label="attention weight")
    return _save(figure, path)


def plot_bleu_by_length(results: Mapping[str, Sequence[Mapping[str, Any]]], path: str | os.PathLike) -> Path:
    """BLEU per source-length bucket, one line per model (Bahdanau et al. 2014, Fig. 2).

    ``results`` maps a model name to its table from
    :func:`hf_attn.evaluation.bleu_by_source_length`; empty buckets leave a gap. The tick
    labels carry each bucket's sentence count (of the first model) so thin buckets are visible.
    """
    if not results or not all(results.values()):
        raise ValueError("`results` needs at least one model with a non-empty bucket table.")
    tables = list(results.values())
    labels = [row["bucket"] for row in tables[0]]
    if any([row["bucket"] for row in table] != labels for table in tables):
        raise ValueError("Every model's bucket table must use the same buckets.")
    figure = Figure(figsize=(max(5.0, 1.0 + 0.9 * len(labels)), 4.0), layout="constrained")
    axes = figure.subplots()
    positions = range(len(labels))
    for name, table in results.items():
        scores = [math.nan if row["bleu"] is None else row["bleu"] for row in table]
        axes.plot(positions, scores, "o-", label=name)
    axes.set_xticks(positions, labels=[f"{label}\n(n={row['n']})" for label, row in zip(labels, tables[0])])
    _decorate(axes, "source sentence length (words)", "BLEU", "BLEU by source sentence length")
    axes.set_ylim(bottom=0)
    return _save(figure, path)


def plot_series(
    series: Mapping[str, tuple[Sequence[float], Sequence[float]]],
    path: str | os.PathLike,
    *,
    xlabel: str,
    ylabel: str,
    title: str | None = None,
    logy: bool = False,
) -> Path:
    """Named (xs, ys) lines on one axes, e.g. tokens/s against sentence length for each model."""
    if not series:
        raise ValueError("`series` is empty: nothing to plot.")
    figure = Figure(figsize=(6.0, 4.0), layout="constrained")
    axes = figure.subplots()
    for name, (xs, ys) in series.items():
        if len(xs) != len(ys):
            raise ValueError(f"Series {name!r} has {len(xs)} x values but {len(ys)} y values.")
        axes.plot(xs, ys, "o-", markersize=3, label=name)
    _decorate(axes, xlabel, ylabel, title, logy=logy)
    return _save(figure, path)
