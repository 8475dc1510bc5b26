"""A grid file's sweep through Ray Tune (``tune:`` in the file, ``xwq sweep --backend ray``).

The points of ``search`` are every combination (``search: grid``) or ``num_samples`` draws
(``search: random``, drawn here with ``seed`` so that every seed of a point shares its values);
each point × method × scenario × seed is one Tune trial that runs the benchmark like any other
run — the same folder under ``results_dir`` (which must be shared storage, as for
:class:`~xwq.runners.ray_backend.RayBackend` without ``sync_results``) — and reports the greedy
test return (``test_return_mean``) at every evaluation, against ``env_steps``. With
``scheduler: asha`` Tune stops poor trials at an evaluation; a stopped run keeps its checkpoints
and has no ``summary.json``, so ``xwq plot`` and the aggregates leave it out. Tune's own records
go to ``<results_dir>/ray_tune/``.
"""

from __future__ import annotations

import itertools
import logging
import random
import signal
import threading
from pathlib import Path
from typing import Any

from xwq.common.process import default_logging
from xwq.runners.experiment import Experiment
from xwq.runners.grid_file import GridFile
from xwq.runners.ray_backend import RayBackend
from xwq.runners.run_folder import read_summary, timestamp
from xwq.runners.sweep import RunResult, RunSpec, aggregate_results

logger = logging.getLogger(__name__)

METRIC = "test_return_mean"


def search_points(grid: GridFile) -> list[dict[str, Any]]:
    """The values of ``search`` each trial group gets (``[{}]`` without a search)."""
    settings, keys = grid.tune, list(grid.search)
    if settings is None or settings.search == "grid":
        return [dict(zip(keys, values))
                for values in itertools.product(*(grid.search[k] for k in keys))]
    draw = random.Random(settings.seed)
    points: list[dict[str, Any]] = []
    for _ in range(settings.num_samples):
        point = {key: draw.choice(grid.search[key]) for key in keys}
        if point not in points:  # the same point twice would be the same runs twice
            points.append(point)
    return points


def tune_specs(grid: GridFile, resume: str | None = None,
               overrides: dict[str, Any] | None = None) -> list[RunSpec]:
    return [spec for point in search_points(grid)
            for spec in grid.specs(resume, search={k: [v] for k, v in point.items()},
                                   overrides=overrides)]


def _trial(trial_config: dict, specs: list[RunSpec]) -> None:
    """One Tune trial: the benchmark of one spec, reporting every evaluation."""
    from ray import tune

    default_logging()
    spec = specs[trial_config["run"]]
    experiment = Experiment.build(spec.resolve())

    def report(env_steps: int, mean: float) -> None:
        tune.report({METRIC: mean, "env_steps": env_steps, "run_dir": str(experiment.run_dir)})

    experiment.on_evaluation = report
    summary = experiment.benchmark(resume=spec.resume)
    if experiment.run_dir is None:  # resume="auto" found it finished: report it as it is
        tune.report({METRIC: summary["final_test_return"], "env_steps": summary["env_steps"],
                     "run_dir": summary["run_dir"]})


def _signal_handlers() -> dict[int, Any]:
    """SIGINT's and SIGTERM's handlers, where this thread may set them (the main thread)."""
    if threading.current_thread() is not threading.main_thread():
        return {}
    return {number: signal.getsignal(number) for number in (signal.SIGINT, signal.SIGTERM)}


def _restore_signal_handlers(handlers: dict[int, Any]) -> None:
    for number, handler in handlers.items():
        if handler is not None:  # None: set outside Python, cannot be put back from here
            signal.signal(number, handler)


def run_tune(grid: GridFile, address: str | None = None, resume: str | None = None,
             overrides: dict[str, Any] | None = None, progress: bool = True) -> dict:
    """Run the grid file's trials with Ray Tune; returns ``{"runs": [RunResult of each
    finished run], "aggregates": {...}, "notes": [lines], "result_grid": ResultGrid}``."""
    backend = RayBackend(address=address)
    ray = backend.ray
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler

    specs = tune_specs(grid, resume, overrides)
    tasks = [backend.prepare(spec) for spec in specs]
    config = specs[0].resolve()
    scheduler = None
    if grid.tune.scheduler == "asha":
        scheduler = ASHAScheduler(time_attr="env_steps", max_t=config.running_steps,
                                  grace_period=config.eval_interval)
    resources = {"cpu": backend.cpus(config), "gpu": backend.gpus(config)}
    started = backend.connect()
    try:
        trainable = tune.with_resources(
            tune.with_parameters(_trial, specs=[task.remote_spec for task in tasks]), resources)
        storage = Path(tasks[0].dirs["results_dir"]) / "ray_tune"
        tuner = tune.Tuner(
            trainable,
            param_space={"run": tune.grid_search(list(range(len(specs))))},
            tune_config=tune.TuneConfig(metric=METRIC, mode="max", scheduler=scheduler),
            run_config=tune.RunConfig(name=f"sweep_{timestamp()}", storage_path=str(storage),
                                      verbose=1 if progress else 0))
        # Tune installs its own SIGINT handler (a first Ctrl-C stops the trials gracefully) and
        # leaves it: put back the caller's, or Ctrl-C stops raising KeyboardInterrupt after
        handlers = _signal_handlers()
        try:
            result_grid = tuner.fit()
        finally:
            _restore_signal_handlers(handlers)
    finally:
        if started:
            ray.shutdown()
    runs, notes = [], []
    for result in result_grid:
        spec = specs[result.config["run"]]
        run_dir = (result.metrics or {}).get("run_dir")
        summary = read_summary(run_dir) if run_dir else None
        if result.error is not None:
            raise result.error
        if summary is None:
            notes.append(f"{spec}: stopped early by the scheduler at env step "
                         f"{result.metrics.get('env_steps')} ({run_dir})")
            continue
        runs.append(RunResult(spec, run_dir, summary))
    runs.sort(key=lambda run: specs.index(run.spec))
    notes.append(f"Ray Tune records: {result_grid.experiment_path}")
    return {"runs": runs, "aggregates": aggregate_results(runs), "notes": notes,
            "result_grid": result_grid}
