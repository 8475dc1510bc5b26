"""Results: the software/machine record, reading finished runs back, and the statistics reports
(Markdown, CSV, JSON, PNG) that compare runs across seeds and methods.

A benchmark run folder ``results/<method>/<env>/<env_id>/seed_<seed>_<timestamp>/`` holds
``config.yaml``, ``metrics.{csv,jsonl}`` (one row per greedy evaluation), ``train.{csv,jsonl}``,
TensorBoard events, ``learning_curve.png``, ``summary.json``, ``best_model.pth``,
``final_model.pth`` and ``checkpoints/``. A run without ``summary.json`` did not finish.

Reports compare runs on their headline metric, the config key ``eval_metric``: ``return`` (the
greedy test return) or an env statistic such as ``battle_won`` (its ``final_test_<metric>``,
``best_test_<metric>`` and ``test_<metric>_mean`` curve). Runs compared together must share it.
"""

from __future__ import annotations

import csv
import importlib.metadata
import json
import logging
import os
import platform
from collections.abc import Iterable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml

from xwq.common.run_logger import METRICS_STREAM, read_jsonl
from xwq.errors import CheckpointError, MissingFileError, UsageError
from xwq.runners.plots import plot_bands
from xwq.runners.run_folder import SUMMARY_FILE, timestamp
from xwq.runners.statistics import STATISTICS, curve_band, eval_grid, summarise

logger = logging.getLogger(__name__)

PACKAGES = ("xwq", "torch", "numpy", "pettingzoo", "mpe2", "gymnasium", "tensorboardX",
            "matplotlib", "imageio")


# --- what the numbers were measured with ---------------------------------------------------------
def package_versions() -> dict[str, str | None]:
    versions: dict[str, str | None] = {"python": platform.python_version()}
    for package in PACKAGES:
        try:
            versions[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            versions[package] = None
    return versions


def machine_info(device: str | torch.device) -> dict[str, Any]:
    device = torch.device(device)
    info: dict[str, Any] = {
        "platform": platform.platform(), "machine": platform.machine(),
        "processor": platform.processor() or platform.machine(), "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(), "device": str(device),
    }
    if device.type == "cuda" and torch.cuda.is_available():
        info["cuda_device"] = torch.cuda.get_device_name(device)
    return info


def environment_report(device: str | torch.device = "cpu") -> dict[str, Any]:
    """Package versions, the machine (with its load average now) and the time: what a result
    needs beside it to be read, and compared, later."""
    machine = machine_info(device)
    if hasattr(os, "getloadavg"):
        machine["load_average"] = list(os.getloadavg())
    return {"versions": package_versions(), "machine": machine,
            "date": datetime.now().isoformat(timespec="seconds")}


def write_json(data: Any, path: str | os.PathLike) -> Path:
    """Write ``data`` as JSON atomically (a temporary file, then a rename), creating the folder."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text(json.dumps(data, indent=2) + "\n")
    os.replace(temporary, path)
    return path


# --- reading runs back ---------------------------------------------------------------------------
def eval_curve(run_dir: str | os.PathLike, metric: str = "return"
               ) -> tuple[list[int], list[float]]:
    """``(env steps, mean greedy test <metric>)`` of every evaluation of a benchmark run."""
    column = f"test_{metric}_mean"
    rows = [row for row in read_jsonl(Path(run_dir) / f"{METRICS_STREAM}.jsonl")
            if column in row]
    return [int(row["env_step"]) for row in rows], [float(row[column]) for row in rows]


def load_run(run_dir: str | os.PathLike) -> dict[str, Any]:
    """A finished benchmark run: ``{"dir", "config", "summary", "metric", "steps",
    "values"}`` — its headline metric (config ``eval_metric``) and that metric's curve."""
    run_dir = Path(run_dir)
    summary_path = run_dir / SUMMARY_FILE
    if not summary_path.is_file():
        raise MissingFileError(f"{run_dir} has no {SUMMARY_FILE}: not a finished benchmark run")
    config_path = run_dir / "config.yaml"
    try:
        with open(config_path) as handle:
            config = yaml.safe_load(handle)
    except (yaml.YAMLError, UnicodeDecodeError) as error:
        raise CheckpointError(f"{config_path}: damaged, not YAML ({type(error).__name__}); "
                              "restore it or leave this run out") from None
    if not isinstance(config, dict):
        raise CheckpointError(f"{config_path}: not a run's config (a mapping of key: value); "
                              "restore it or leave this run out")
    try:
        summary = json.loads(summary_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise CheckpointError(f"{summary_path}: damaged, not JSON ({error}); resume the run "
                              "(benchmark --resume auto rewrites it) or leave it out") from None
    metric = config.get("eval_metric", "return")
    steps, values = eval_curve(run_dir, metric)
    if not steps:
        raise CheckpointError(f"{run_dir / (METRICS_STREAM + '.jsonl')}: no evaluation of "
                              f"test_{metric}_mean in it; leave this run out")
    return {"dir": str(run_dir), "config": config, "summary": summary, "metric": metric,
            "steps": steps, "values": values}


def shared_metric(runs: Sequence[dict]) -> str:
    """The headline metric all ``runs`` (from :func:`load_run`) share; ValueError if not."""
    metrics = sorted({run["metric"] for run in runs})
    if len(metrics) != 1:
        raise UsageError(
            f"these runs rank by different eval_metric values {metrics}: compare runs of one "
            "metric (e.g. plot each metric's runs separately)")
    return metrics[0]


def find_runs(paths: Iterable[str | os.PathLike]) -> list[Path]:
    """Finished benchmark run folders at or below ``paths`` (a run folder or any parent).

    Unfinished runs (no summary.json) are skipped with a warning; a path with no run at all
    raises FileNotFoundError.
    """
    found: list[Path] = []
    for path in map(Path, paths):
        if not path.exists():
            raise MissingFileError(f"no such results folder: {path}")
        candidates = [path] if (path / "config.yaml").is_file() else sorted(
            p.parent for p in path.rglob("config.yaml"))
        runs = []
        for candidate in candidates:
            if not (candidate / f"{METRICS_STREAM}.jsonl").is_file():
                continue  # a train-only run (no evaluations) or an aggregate folder
            if not (candidate / SUMMARY_FILE).is_file():
                logger.warning("skipping unfinished run %s (no %s; resume it with "
                               "benchmark(resume='auto'))", candidate, SUMMARY_FILE)
                continue
            runs.append(candidate)
        if not runs:
            trained = [c for c in candidates if (c / SUMMARY_FILE).is_file()]
            raise MissingFileError(
                f"no finished benchmark run (a folder with config.yaml, metrics.jsonl and "
                f"{SUMMARY_FILE}) under {path}"
                + (f"; the {len(trained)} run(s) there were made by train, which does not "
                   "evaluate: run benchmark to get learning curves" if trained else ""))
        found.extend(run for run in runs if run not in found)
    return found


def group_runs(runs: Sequence[dict]) -> dict[str, list[dict]]:
    """Runs grouped by method (from their config.yaml); labels add env/env_id only when the runs
    span more than one environment."""
    scenarios = {(run["config"]["env_name"], run["config"]["env_id"]) for run in runs}
    groups: dict[str, list[dict]] = {}
    for run in runs:
        config = run["config"]
        label = config["method"]
        if len(scenarios) > 1:
            label = f"{label} {config['env_name']}/{config['env_id']}"
        groups.setdefault(label, []).append(run)
    return groups


# --- statistics reports --------------------------------------------------------------------------
def group_statistics(runs: Sequence[dict]) -> dict[str, Any]:
    """Statistics of the final and best test values of the runs' headline metric
    (``final_test_<metric>``, ``best_test_<metric>``) and its median/quartile curve."""
    metric = shared_metric(runs)
    final = summarise([run["summary"][f"final_test_{metric}"] for run in runs])
    best = summarise([run["summary"][f"best_test_{metric}"] for run in runs])
    grids = [eval_grid(run["config"]["eval_interval"], run["config"]["running_steps"])
             for run in runs]
    grid = np.unique(np.concatenate(grids))
    curve = curve_band([(run["steps"], run["values"]) for run in runs if run["steps"]], grid)
    return {
        "runs": [run["dir"] for run in runs],
        "seeds": [run["config"]["seed"] for run in runs],
        "env": sorted({f"{run['config']['env_name']}/{run['config']['env_id']}" for run in runs}),
        f"final_test_{metric}": final, f"best_test_{metric}": best,
        "env_steps_mean": float(np.mean([run["summary"]["env_steps"] for run in runs])),
        "wall_time_mean": float(np.mean([run["summary"]["wall_time"] for run in runs])),
        "curve": curve,
    }


def _cell(stat: dict) -> str:
    return f"{stat['value']:.2f} [{stat['ci_low']:.2f}, {stat['ci_high']:.2f}]"


def markdown_table(statistics: dict[str, dict], metric: str = "return") -> str:
    """One row per group: runs, and mean / median / IQM of the final greedy test value of
    ``metric`` with bootstrap 95% intervals, then the IQM of the best evaluation."""
    header = (f"| method | runs | final {metric} mean [95% CI] | median [95% CI] | IQM [95% CI] "
              f"| best {metric} IQM [95% CI] | env steps |")
    lines = [header, "|---|---:|---:|---:|---:|---:|---:|"]
    for label, stats in statistics.items():
        final = stats[f"final_test_{metric}"]
        lines.append(f"| {label} | {final['n']} | {_cell(final['mean'])} | "
                     f"{_cell(final['median'])} | {_cell(final['iqm'])} | "
                     f"{_cell(stats[f'best_test_{metric}']['iqm'])} | "
                     f"{stats['env_steps_mean']:.0f} |")
    return "\n".join(lines) + "\n"


def _csv_rows(statistics: dict[str, dict], metric: str) -> list[dict]:
    rows = []
    for label, stats in statistics.items():
        for quantity in (f"final_test_{metric}", f"best_test_{metric}"):
            for name in STATISTICS:
                stat = stats[quantity][name]
                rows.append({"method": label, "quantity": quantity, "statistic": name,
                             "value": stat["value"], "ci_low": stat["ci_low"],
                             "ci_high": stat["ci_high"], "runs": stats[quantity]["n"]})
    return rows


def write_report(groups: dict[str, list[dict]], out_dir: str | os.PathLike, stem: str,
                 title: str = "") -> dict[str, Any]:
    """Write ``<stem>.md``, ``<stem>.csv``, ``<stem>.json`` and ``<stem>.png`` (median and
    quartile band of the greedy test value of the runs' headline metric per group) into
    ``out_dir``.

    Returns ``{"groups": {label: statistics}, "table": markdown, "files": {...}}``.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    metric = shared_metric([run for runs in groups.values() for run in runs])
    statistics = {label: group_statistics(runs) for label, runs in groups.items()}
    table = markdown_table(statistics, metric)
    what = ("Final return: greedy test return" if metric == "return"
            else f"Final {metric}: mean of the env statistic {metric} over the greedy test "
                 "episodes")
    note = (f"{what} at the end of training, one number per run; "
            "95% CIs: percentile bootstrap over runs (2000 resamples, seed 0); IQM: mean of the "
            "middle 50% of runs (equals the mean with fewer than 4 runs).\n")
    files = {"table": out_dir / f"{stem}.md", "csv": out_dir / f"{stem}.csv",
             "json": out_dir / f"{stem}.json", "plot": out_dir / f"{stem}.png"}
    files["table"].write_text((f"# {title}\n\n" if title else "") + table + "\n" + note)
    with open(files["csv"], "w", newline="") as handle:
        rows = _csv_rows(statistics, metric)
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    plot_bands({label: stats["curve"] for label, stats in statistics.items()},
               {label: stats[f"final_test_{metric}"]["n"] for label, stats in statistics.items()},
               files["plot"], title=title, metric=metric)
    report = {"groups": statistics, "table": table,
              "files": {key: str(path) for key, path in files.items()}}
    write_json(report, files["json"])
    return report


# --- reports over several runs -----------------------------------------------------------------
def aggregate_runs(run_dirs: Sequence[str | os.PathLike], out_dir: str | os.PathLike,
                   title: str | None = None) -> dict:
    """Statistics across finished benchmark runs (normally the seeds of one method): mean,
    median and IQM of the final test value of their headline metric (``return`` unless their
    ``eval_metric`` says otherwise) with bootstrap 95% CIs, the median/quartile curve
    (``aggregate.png``) and a Markdown table (``aggregate.md``, also ``.csv``/``.json``) in
    ``out_dir``. Returns the first group's statistics plus ``dir``, ``table`` and ``files``."""
    runs = [load_run(path) for path in run_dirs]
    groups = group_runs(runs)
    first = runs[0]["config"]
    report = write_report(groups, out_dir, "aggregate",
                          title=title or f"{first['env_name']}/{first['env_id']}")
    statistics = next(iter(report["groups"].values()))
    return {**statistics, "dir": str(out_dir), "table": report["table"],
            "files": report["files"]}


def plot_results(paths: Sequence[str | os.PathLike], out_dir: str | os.PathLike | None = None,
                 title: str | None = None) -> dict:
    """Compare methods: every finished benchmark run at or below ``paths``, grouped by method
    (from each run's config.yaml), drawn on one figure (median and quartile band per method),
    with one Markdown table (+ CSV/JSON) of the final-return statistics.

    Writes ``comparison.{png,md,csv,json}`` into ``out_dir`` (default
    ``./results/comparison_<timestamp>``) and returns ``{"groups", "table", "files", "dir"}``.
    """
    runs = [load_run(path) for path in find_runs(paths)]
    groups = group_runs(runs)
    scenarios = sorted({f"{r['config']['env_name']}/{r['config']['env_id']}" for r in runs})
    if out_dir is None:
        out_dir = Path("results") / f"comparison_{timestamp()}"
    report = write_report(groups, out_dir, "comparison",
                          title=title if title is not None else ", ".join(scenarios))
    return {**report, "dir": str(out_dir)}
