"""Statistics across seeds: mean, median and IQM with bootstrap confidence intervals (numpy only),
and median/quartile curves of evaluation returns.

A handful of seeds is the norm in MARL papers, so every point estimate comes with a percentile
bootstrap 95% interval over seeds (resampling runs with replacement, seeded, so the same results
give the same table). The interquartile mean (IQM) follows rliable (Agarwal et al., 2021) and
``scipy.stats.trim_mean(x, 0.25)``: sort, drop ``floor(n/4)`` runs from each end, average the rest
(with fewer than 4 runs nothing is dropped and the IQM equals the mean).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

BOOTSTRAP_RESAMPLES = 2000
BOOTSTRAP_SEED = 0
CONFIDENCE = 0.95


def iqm(values: np.ndarray, axis: int = -1) -> np.ndarray:
    """Interquartile mean along ``axis``: the mean of the middle half after sorting."""
    values = np.sort(np.asarray(values, dtype=np.float64), axis=axis)
    n = values.shape[axis]
    cut = n // 4
    return np.take(values, np.arange(cut, n - cut), axis=axis).mean(axis=axis)


STATISTICS: dict[str, Callable[..., np.ndarray]] = {
    "mean": lambda x, axis=-1: np.mean(x, axis=axis),
    "median": lambda x, axis=-1: np.median(x, axis=axis),
    "iqm": iqm,
}


def bootstrap_ci(values: Sequence[float], statistic: Callable[..., np.ndarray],
                 resamples: int = BOOTSTRAP_RESAMPLES, confidence: float = CONFIDENCE,
                 seed: int = BOOTSTRAP_SEED) -> tuple[float, float]:
    """Percentile bootstrap interval of ``statistic(values)``: resample the runs with replacement
    ``resamples`` times (numpy Generator seeded with ``seed``)."""
    values = np.asarray(values, dtype=np.float64)
    if values.size == 1:
        return float(values[0]), float(values[0])
    rng = np.random.default_rng(seed)
    samples = values[rng.integers(0, values.size, size=(resamples, values.size))]
    estimates = statistic(samples, axis=1)
    tail = (1.0 - confidence) / 2 * 100
    low, high = np.percentile(estimates, [tail, 100 - tail])
    return float(low), float(high)


def summarise(values: Sequence[float], resamples: int = BOOTSTRAP_RESAMPLES,
              seed: int = BOOTSTRAP_SEED) -> dict:
    """``{"n", "values", "mean": {"value", "ci_low", "ci_high"}, "median": ..., "iqm": ...,
    "std", "min", "max"}`` of one number per run."""
    values = np.asarray(values, dtype=np.float64)
    if values.size == 0:
        raise ValueError("no runs to summarise")
    summary: dict = {"n": int(values.size), "values": values.tolist()}
    for name, statistic in STATISTICS.items():
        low, high = bootstrap_ci(values, statistic, resamples=resamples, seed=seed)
        summary[name] = {"value": float(statistic(values)), "ci_low": low, "ci_high": high}
    summary.update(std=float(values.std()), min=float(values.min()), max=float(values.max()),
                   confidence=CONFIDENCE, resamples=resamples, bootstrap_seed=seed)
    return summary


def eval_grid(eval_interval: int, running_steps: int) -> np.ndarray:
    """The nominal evaluation steps of a benchmark: 0, every ``eval_interval``, and the end."""
    steps = set(range(0, running_steps, eval_interval)) | {0, running_steps}
    return np.array(sorted(steps), dtype=np.float64)


def curve_band(curves: Sequence[tuple[Sequence[float], Sequence[float]]],
               grid: np.ndarray) -> dict[str, list[float]]:
    """Median and quartiles across runs of ``(steps, returns)`` curves, each linearly interpolated
    onto ``grid`` (runs evaluate at slightly different env steps when episodes vary in length).

    Returns lists ``step``, ``median``, ``q25``, ``q75`` of the grid's length.
    """
    table = np.stack([np.interp(grid, np.asarray(steps, float), np.asarray(returns, float))
                      for steps, returns in curves])
    q25, median, q75 = np.percentile(table, [25, 50, 75], axis=0)
    return {"step": grid.tolist(), "median": median.tolist(), "q25": q25.tolist(),
            "q75": q75.tolist()}
