"""hf_attn.plotting: every figure is written as a readable PNG, and bad input fails loudly."""

from __future__ import annotations

import math

import matplotlib.image
import matplotlib.pyplot as plt
import numpy as np
import pytest

from hf_attn.plotting import plot_attention, plot_bleu_by_length, plot_learning_curves, plot_series

HISTORY = [
    {"step": 0, "seconds": 0.0, "dev_loss": 9.1, "dev_bleu": 0.0},
    {"step": 50, "seconds": 12.5, "train_loss": 7.2},
    {"step": 100, "seconds": 25.0, "train_loss": 5.8, "dev_loss": 6.0, "dev_bleu": 3.4},
    {"step": 150, "seconds": 37.5, "train_loss": 4.9},
    {"step": 200, "seconds": 50.0, "train_loss": 4.1, "dev_loss": 4.6, "dev_bleu": 9.8},
]
BUCKETS = [
    {"bucket": "0-10", "n": 12, "bleu": 31.0},
    {"bucket": "11-20", "n": 40, "bleu": 27.5},
    {"bucket": "21-30", "n": 25, "bleu": 22.0},
    {"bucket": "31-40", "n": 0, "bleu": None},
    {"bucket": "51+", "n": 3, "bleu": 9.0},
]


def read_png(path) -> np.ndarray:
    """The image, after checking it is a non-empty PNG file."""
    assert path.suffix == ".png" and path.stat().st_size > 0
    image = matplotlib.image.imread(path)
    assert image.ndim == 3 and image.shape[0] > 50 and image.shape[1] > 50
    assert image[..., :3].std() > 0, "blank image"
    return image


def test_learning_curves_single_run_with_partial_rows(tmp_path):
    path = plot_learning_curves(HISTORY, tmp_path / "plots" / "curves.png")
    assert path == tmp_path / "plots" / "curves.png"
    two_panels = read_png(path)
    loss_history = [{"step": step, "train_loss": 1 / (step + 1)} for step in range(5)]
    loss_only = read_png(plot_learning_curves(loss_history, tmp_path / "loss_only.png"))
    assert two_panels.shape[1] > 1.5 * loss_only.shape[1], "the BLEU panel should widen the figure"


def test_learning_curves_compare_runs_against_seconds(tmp_path):
    runs = {"transformer": HISTORY, "rnn": [{**row, "seconds": row["seconds"] * 1.3} for row in HISTORY]}
    read_png(plot_learning_curves(runs, tmp_path / "runs.png", x="seconds"))


def test_learning_curves_reject_history_without_the_x_key(tmp_path):
    with pytest.raises(ValueError, match="epoch"):
        plot_learning_curves(HISTORY, tmp_path / "none.png", x="epoch")


def test_attention_heatmap_grows_with_the_sentence(tmp_path):
    rng = np.random.default_rng(0)

    def heatmap(target_len: int, source_len: int, name: str) -> np.ndarray:
        weights = rng.random((target_len, source_len))
        weights /= weights.sum(axis=1, keepdims=True)
        source = [f"▁src{i}" for i in range(source_len)]
        target = [f"▁tgt{i}" for i in range(target_len)]
        return read_png(plot_attention(source, target, weights, tmp_path / name, title="layer 1, mean of heads"))

    small, large = heatmap(5, 6, "small.png"), heatmap(58, 62, "large.png")
    assert large.shape[0] > 3 * small.shape[0] and large.shape[1] > 3 * small.shape[1]


def test_attention_heatmap_checks_shape_against_tokens(tmp_path):
    with pytest.raises(ValueError, match="does not match"):
        plot_attention(["a", "b"], ["x"], np.ones((2, 1)), tmp_path / "bad.png")


def test_bleu_by_length_one_line_per_model_with_gaps(tmp_path):
    rnn = [{**row, "bleu": None if row["bleu"] is None else row["bleu"] * 0.6} for row in BUCKETS]
    read_png(plot_bleu_by_length({"transformer": BUCKETS, "rnn": rnn}, tmp_path / "bleu_by_length.png"))
    with pytest.raises(ValueError, match="same buckets"):
        plot_bleu_by_length({"transformer": BUCKETS, "rnn": BUCKETS[:2]}, tmp_path / "bad.png")


def test_series_linear_and_log(tmp_path):
    lengths = [5, 10, 20, 40, 80]
    series = {"transformer": (lengths, [900, 850, 700, 520, 300]), "rnn": (lengths, [800, 600, 420, 250, 120])}
    read_png(plot_series(series, tmp_path / "speed.png", xlabel="source length (tokens)", ylabel="tokens/s"))
    grads = {"rnn": (list(range(30)), [math.exp(-0.2 * i) for i in range(30)])}
    read_png(plot_series(grads, tmp_path / "grad.png", xlabel="source position", ylabel="|dL/dx|", logy=True))
    with pytest.raises(ValueError, match="x values"):
        plot_series({"bad": ([1, 2], [1])}, tmp_path / "bad.png", xlabel="x", ylabel="y")


def test_plots_leave_no_open_pyplot_figures(tmp_path):
    before = plt.get_fignums()
    plot_series({"a": ([1, 2], [3, 4])}, tmp_path / "a.png", xlabel="x", ylabel="y")
    plot_learning_curves(HISTORY, tmp_path / "b.png")
    assert plt.get_fignums() == before
