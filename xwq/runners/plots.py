"""Figures of results: one run's learning curve, and median/quartile bands across runs.

Drawn with matplotlib's object API (``Figure`` + the Agg canvas), never ``pyplot``, so the library
neither needs a display nor changes the user's global backend.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from xwq.common.run_logger import METRICS_STREAM, TRAIN_STREAM, read_jsonl


def _save(figure: Figure, path: str | os.PathLike) -> Path:
    FigureCanvasAgg(figure)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    return Path(path)


def plot_learning_curve(run_dir: str | os.PathLike, path: str | os.PathLike | None = None,
                        title: str = "", metric: str = "return") -> Path:
    """``learning_curve.png`` of a benchmark run: the mean greedy test value of ``metric`` (the
    return, or an env statistic such as ``battle_won``; ± std over the test episodes) at each
    evaluation, and its mean over training episodes (ε-greedy) for context."""
    run_dir = Path(run_dir)
    figure = Figure(figsize=(7, 4.2))
    axes = figure.subplots()
    test, train_column = f"test_{metric}", f"episode_{metric}"
    evals = [row for row in read_jsonl(run_dir / f"{METRICS_STREAM}.jsonl")
             if f"{test}_mean" in row]
    train = [row for row in read_jsonl(run_dir / f"{TRAIN_STREAM}.jsonl")
             if train_column in row]
    if train:
        axes.plot([r["env_step"] for r in train], [r[train_column] for r in train],
                  color="0.6", linewidth=1, label="training episodes (ε-greedy)")
    if evals:
        steps = np.array([r["env_step"] for r in evals], dtype=float)
        mean = np.array([r[f"{test}_mean"] for r in evals])
        std = np.array([r.get(f"{test}_std", 0.0) for r in evals])
        axes.plot(steps, mean, marker="o", markersize=3, color="C0",
                  label=f"greedy test {metric}")
        axes.fill_between(steps, mean - std, mean + std, color="C0", alpha=0.2,
                          label="± std over test episodes")
    axes.set_xlabel("env steps")
    axes.set_ylabel(metric)
    axes.set_title(title)
    axes.grid(alpha=0.3)
    axes.legend(loc="best", fontsize="small")
    return _save(figure, path or run_dir / "learning_curve.png")


def plot_bands(curves: dict[str, dict[str, list[float]]], runs: dict[str, int],
               path: str | os.PathLike, title: str = "", metric: str = "return") -> Path:
    """Median (line) and interquartile band (shade) of the greedy test ``metric`` per group.

    ``curves[label]`` holds lists ``step``, ``median``, ``q25``, ``q75``; ``runs[label]`` the
    number of runs, shown in the legend.
    """
    figure = Figure(figsize=(7, 4.2))
    axes = figure.subplots()
    for index, (label, curve) in enumerate(curves.items()):
        color = f"C{index % 10}"
        axes.plot(curve["step"], curve["median"], color=color,
                  label=f"{label} (median of {runs[label]})")
        axes.fill_between(curve["step"], curve["q25"], curve["q75"], color=color, alpha=0.2)
    axes.set_xlabel("env steps")
    axes.set_ylabel(f"greedy test {metric} (median, IQR band)")
    axes.set_title(title)
    axes.grid(alpha=0.3)
    axes.legend(loc="best", fontsize="small")
    return _save(figure, path)
