"""Runner: benchmark results folders, several seeds and their aggregate, statistics, method
comparison plots, and GIFs of greedy episodes."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest
import yaml

import xwq
from xwq.runners import aggregate_runs, plot_results
from xwq.runners.results import find_runs
from xwq.runners.run_folder import new_run_dir
from xwq.runners.statistics import bootstrap_ci, curve_band, eval_grid, iqm, summarise

MATRIX = ("cw_qmix", "matrix_game", "nonmonotonic")


def small(run_dirs: dict, **extra) -> dict:
    """A matrix-game benchmark of a second or two: 8 one-step games per round."""
    return dict(running_steps=128, eval_interval=64, parallels=8, batch_size=8, test_parallels=4,
                test_episode=4, save_interval=64, **run_dirs) | extra


def test_benchmark_writes_one_new_folder_per_run(run_dirs, tmp_path):
    summary = xwq.get_runner(*MATRIX, **small(run_dirs)).benchmark()
    run_dir = tmp_path / "results" / "cw_qmix" / "matrix_game" / "nonmonotonic"
    assert summary["run_dir"].startswith(str(run_dir / "seed_1_"))
    folder = run_dir / summary["run_dir"].rsplit("/", 1)[-1]
    for name in ("config.yaml", "metrics.csv", "metrics.jsonl", "train.csv", "train.jsonl",
                 "learning_curve.png", "summary.json", "final_model.pth", "best_model.pth"):
        assert (folder / name).is_file(), name
    assert list(folder.glob("events.out.tfevents.*"))
    assert sorted(p.name for p in (folder / "checkpoints").iterdir()) == [
        "ckpt_128.pth", "ckpt_64.pth"]

    # evaluations at step 0 and every eval_interval; the summary agrees with them
    rows = [json.loads(line) for line in (folder / "metrics.jsonl").read_text().splitlines()]
    assert [row["env_step"] for row in rows] == [0, 64, 128]
    assert summary["final_test_return"] == rows[-1]["test_return_mean"]
    assert summary["best_test_return"] == max(row["test_return_mean"] for row in rows)
    assert summary["env_steps"] == 128 and summary["evaluations"] == 3
    on_disk = json.loads((folder / "summary.json").read_text())
    assert on_disk["final_test_return"] == summary["final_test_return"]
    for key in ("wall_time", "env_steps_per_second", "updates", "episodes"):
        assert summary[key] > 0
    assert {"xwq", "torch", "numpy", "pettingzoo", "mpe2", "python"} <= set(summary["versions"])
    assert summary["versions"]["torch"]
    assert {"platform", "cpu_count", "device"} <= set(summary["machine"])

    # the resolved config reads back as the same configuration
    config = xwq.get_configs(file_dir=folder / "config.yaml")
    assert config.to_dict() == yaml.safe_load((folder / "config.yaml").read_text())
    assert config.method == "cw_qmix" and config.running_steps == 128

    # a second run never touches the first
    again = xwq.get_runner(*MATRIX, **small(run_dirs)).benchmark()
    assert again["run_dir"] != summary["run_dir"]
    assert json.loads((folder / "summary.json").read_text()) == on_disk
    assert again["final_test_return"] == summary["final_test_return"]  # same seed, same run


def test_existing_folder_is_refused(tmp_path, monkeypatch):
    import xwq.runners.run_folder as run_folder

    monkeypatch.setattr(run_folder, "timestamp", lambda: "fixed")
    config = xwq.get_configs(method="qmix")
    new_run_dir(tmp_path, config)
    with pytest.raises(FileExistsError):
        new_run_dir(tmp_path, config)


def test_benchmark_several_seeds_and_aggregate(run_dirs, tmp_path):
    runner = xwq.get_runner(*MATRIX, **small(run_dirs))
    result = runner.benchmark(seeds=[1, 2, 3])
    runs = result["runs"]
    assert [run["seed"] for run in runs] == [1, 2, 3]
    assert len({run["run_dir"] for run in runs}) == 3
    for run in runs:
        saved = yaml.safe_load(open(f"{run['run_dir']}/config.yaml"))
        assert saved["seed"] == run["seed"] and saved["running_steps"] == 128

    aggregate = result["aggregate"]
    finals = [run["final_test_return"] for run in runs]
    stats = aggregate["final_test_return"]
    assert stats["values"] == finals
    assert stats["mean"]["value"] == pytest.approx(np.mean(finals))
    assert stats["median"]["value"] == pytest.approx(np.median(finals))
    for name in ("mean", "median", "iqm"):
        assert stats[name]["ci_low"] <= stats[name]["value"] <= stats[name]["ci_high"]
    folder = tmp_path / "results" / "cw_qmix" / "matrix_game" / "nonmonotonic"
    assert aggregate["dir"].startswith(str(folder / "aggregate_"))
    for name in ("aggregate.md", "aggregate.csv", "aggregate.json", "aggregate.png"):
        assert (folder / aggregate["dir"].rsplit("/", 1)[-1] / name).is_file()
    assert "| cw_qmix | 3 |" in aggregate["table"]
    assert len(aggregate["curve"]["median"]) == len(aggregate["curve"]["step"]) == 3

    # each seed's run is the run get_runner would give for that seed
    alone = xwq.get_runner(*MATRIX, **small(run_dirs, seed=2)).benchmark()
    assert alone["final_test_return"] == runs[1]["final_test_return"]
    assert alone["updates"] == runs[1]["updates"]

    with pytest.raises(ValueError, match="distinct"):
        xwq.get_runner(*MATRIX, **small(run_dirs)).benchmark(seeds=[1, 1])


def _final_params(summary: dict) -> dict:
    import torch

    state = torch.load(summary["final_model"], weights_only=True)
    return {key: value for key, value in _flatten(state)}


def _flatten(state, prefix=""):
    import torch

    if isinstance(state, torch.Tensor):
        yield prefix, state
    elif isinstance(state, dict):
        for key, value in state.items():
            yield from _flatten(value, f"{prefix}/{key}")


def test_parallel_seeds_are_the_sequential_runs(run_dirs, tmp_path):
    config = small(run_dirs, results_dir=str(tmp_path / "one_by_one"))
    one_by_one = xwq.get_runner(*MATRIX, **config).benchmark(seeds=[1, 2, 3])
    config = small(run_dirs, results_dir=str(tmp_path / "parallel"))
    parallel = xwq.get_runner(*MATRIX, **config).benchmark(seeds=[1, 2, 3], workers=2)

    assert [run["seed"] for run in parallel["runs"]] == [1, 2, 3]
    for alone, together in zip(one_by_one["runs"], parallel["runs"]):
        assert together["run_dir"].startswith(str(tmp_path / "parallel"))
        for key in ("final_test_return", "best_test_return", "updates", "env_steps"):
            assert together[key] == alone[key], key
        metrics = [open(f"{run['run_dir']}/metrics.jsonl").read().splitlines()
                   for run in (alone, together)]
        returns = [[json.loads(row)["test_return_mean"] for row in rows] for rows in metrics]
        assert returns[0] == returns[1]
        params = _final_params(alone), _final_params(together)
        assert params[0].keys() == params[1].keys() and params[0]
        for key, value in params[0].items():
            assert value.equal(params[1][key]), key
    assert parallel["aggregate"]["final_test_return"]["values"] == \
        one_by_one["aggregate"]["final_test_return"]["values"]


def test_spawned_workers_give_the_same_runs(run_dirs, tmp_path, monkeypatch):
    """The start method of macOS, Windows and of any CUDA run: workers re-import xwq."""
    import multiprocessing
    import sys

    from xwq.runners import process_backend as parallel

    assert parallel.start_method({"device": "cuda"}) == "spawn"
    assert parallel.start_method({"device": "cuda:1"}) == "spawn"
    if sys.platform.startswith("linux"):
        assert parallel.start_method({"device": "cpu"}) == "fork"
    used, real_get_context = [], multiprocessing.get_context

    def get_context(method):
        used.append(method)
        return real_get_context(method)

    monkeypatch.setattr(parallel, "start_method", lambda config: "spawn")
    monkeypatch.setattr(parallel.multiprocessing, "get_context", get_context)
    config = small(run_dirs, results_dir=str(tmp_path / "spawned"))
    spawned = xwq.get_runner(*MATRIX, **config).benchmark(seeds=[1, 2], workers=2)["runs"]
    assert used == ["spawn"]
    for run in spawned:
        alone = xwq.get_runner(*MATRIX, **small(run_dirs, seed=run["seed"])).benchmark()
        for key in ("final_test_return", "best_test_return", "updates"):
            assert run[key] == alone[key], key


class TwoArgumentError(Exception):
    """Pickles, but cannot be rebuilt from its args: crosses processes as SeedFailed."""

    def __init__(self, what, where):
        super().__init__(f"{what} at {where}")


@pytest.mark.skipif(not sys.platform.startswith("linux"),
                    reason="forked workers inherit the monkeypatched run")
def test_parallel_seed_failures_name_the_seed_and_stop_the_others(run_dirs, tmp_path,
                                                                  monkeypatch, caplog):
    import multiprocessing
    import os
    import time

    from xwq.runners import process_backend as parallel
    from xwq.runners.experiment import Experiment

    original, finished = Experiment.benchmark, tmp_path / "slow seed finished"

    def failing(self, resume=None):
        if self.config.seed == 1:  # a long run, stopped when another seed fails
            time.sleep(60)
            finished.write_text("yes")
        if self.config.seed == 2:
            raise ValueError("boom in the env")
        if self.config.seed == 3:
            os._exit(3)  # a worker killed without a word (OOM killer, segfault)
        if self.config.seed == 4:
            raise TwoArgumentError("odd error", "step 7")
        return original(self, resume)

    monkeypatch.setattr(Experiment, "benchmark", failing)  # forked workers inherit it
    with pytest.raises(ValueError, match="boom in the env") as error:
        xwq.get_runner(*MATRIX, **small(run_dirs)).benchmark(seeds=[1, 2], workers=2)
    assert multiprocessing.active_children() == [] and not finished.exists()
    note = error.value.__notes__[0]
    assert note.startswith("(in the benchmark run of seed 2") and "boom in the env" in note
    assert "benchmark seed 2 failed: ValueError: boom in the env" in caplog.text
    assert "benchmark seed 1 stopped (seed 2 failed)" in caplog.text

    with pytest.raises(parallel.SeedFailed, match="seed 3 died without a result .exit code 3."):
        xwq.get_runner(*MATRIX, **small(run_dirs)).benchmark(seeds=[3, 5], workers=2)
    with pytest.raises(parallel.SeedFailed, match="TwoArgumentError: odd error at step 7"):
        xwq.get_runner(*MATRIX, **small(run_dirs)).benchmark(seeds=[4, 5], workers=2)
    assert multiprocessing.active_children() == []


def test_no_progress_bar_object_when_progress_bar_is_off(run_dirs, monkeypatch):
    import xwq.runners.experiment as runner_module

    def no_tqdm(*args, **kwargs):
        raise AssertionError("a tqdm bar was created with progress_bar: false")

    monkeypatch.setattr(runner_module, "tqdm", no_tqdm)
    summary = xwq.get_runner(*MATRIX, **small(run_dirs)).benchmark()
    assert summary["env_steps"] == 128
    with pytest.raises(AssertionError, match="tqdm bar was created"):
        xwq.get_runner(*MATRIX, **small(run_dirs, progress_bar=True)).benchmark()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="signals and pgrep-free /proc")
def test_sigterm_to_the_parent_stops_the_seed_workers(tmp_path):
    import os
    import signal
    import subprocess
    import time

    script = tmp_path / "long_benchmark.py"
    script.write_text(
        "import os, xwq\n"
        "if __name__ == '__main__':\n"
        f"    r = xwq.get_runner('cw_qmix', 'matrix_game', 'nonmonotonic', progress_bar=False,\n"
        f"        running_steps=10**7, eval_interval=10**6, results_dir={str(tmp_path)!r},\n"
        f"        log_dir={str(tmp_path)!r})\n"
        "    r.benchmark(seeds=[1, 2], workers=2)\n")
    parent = subprocess.Popen([sys.executable, str(script)], stderr=subprocess.PIPE, text=True)

    def children() -> list[int]:
        found = []
        for entry in os.listdir("/proc"):
            try:
                with open(f"/proc/{entry}/stat") as stat:
                    if int(stat.read().rsplit(")", 1)[1].split()[1]) == parent.pid:
                        found.append(int(entry))
            except (ValueError, OSError, IndexError):
                continue
        return found

    deadline = time.monotonic() + 60
    while len(children()) < 2 and time.monotonic() < deadline:
        time.sleep(0.2)
    workers = children()
    assert len(workers) == 2, "the two seed workers never started"
    parent.send_signal(signal.SIGTERM)
    _, err = parent.communicate(timeout=60)
    assert parent.returncode != 0
    assert "benchmark seed 1 stopped (the benchmark was stopped: SystemExit)" in err
    for pid in workers:  # gone, not re-parented to init and still training
        assert not os.path.exists(f"/proc/{pid}") or \
            open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[0] == "Z"


def test_workers_are_checked(run_dirs):
    runner = xwq.get_runner(*MATRIX, **small(run_dirs))
    for bad in (0, -1, True, 1.5, "2"):
        with pytest.raises(ValueError, match="workers must be a positive integer"):
            runner.benchmark(seeds=[1, 2], workers=bad)
    with pytest.raises(ValueError, match="workers > 1 runs several seeds at once"):
        runner.benchmark(workers=2)
    from xwq.runners.process_backend import check_workers

    assert check_workers(np.int64(2), [1, 2]) == 2


def test_statistics():
    assert iqm([1, 2, 3]) == pytest.approx(2.0)  # fewer than 4 runs: the mean
    assert iqm([0, 1, 2, 3, 4, 5, 6, 100]) == pytest.approx(3.5)  # drops 2 from each end
    values = [0.0, 8.0, 8.0, 0.0, 8.0]
    first = bootstrap_ci(values, np.mean)
    assert first == bootstrap_ci(values, np.mean)  # seeded
    assert 0.0 <= first[0] < np.mean(values) < first[1] <= 8.0
    assert bootstrap_ci([3.0], np.mean) == (3.0, 3.0)
    summary = summarise(values)
    assert summary["n"] == 5 and summary["median"]["value"] == 8.0
    assert summary["iqm"]["value"] == pytest.approx(np.mean([0, 8, 8]))
    with pytest.raises(ValueError, match="no runs"):
        summarise([])

    assert eval_grid(50, 120).tolist() == [0, 50, 100, 120]
    band = curve_band([([0, 64], [0.0, 8.0]), ([0, 64], [0.0, 0.0]), ([0, 64], [0.0, 4.0])],
                      np.array([0.0, 32.0, 64.0]))
    assert band["median"] == [0.0, 2.0, 4.0]
    assert band["q25"][2] == pytest.approx(2.0) and band["q75"][2] == pytest.approx(6.0)


def test_plot_results_groups_runs_by_method(run_dirs, tmp_path):
    for method in ("cw_qmix", "vdn"):
        for seed in (1, 2):
            xwq.get_runner(method, "matrix_game", "nonmonotonic",
                           **small(run_dirs, seed=seed, save_interval=0)).benchmark()
    # an unfinished run (no summary.json) is skipped
    unfinished = tmp_path / "results" / "vdn" / "matrix_game" / "nonmonotonic" / "seed_9_x"
    unfinished.mkdir()
    (unfinished / "config.yaml").write_text("method: vdn\n")
    (unfinished / "metrics.jsonl").write_text("")
    assert len(find_runs([tmp_path / "results"])) == 4

    report = plot_results([tmp_path / "results" / "cw_qmix", tmp_path / "results" / "vdn"],
                          out_dir=tmp_path / "compare")
    assert list(report["groups"]) == ["cw_qmix", "vdn"]
    assert report["groups"]["vdn"]["final_test_return"]["n"] == 2
    for name in ("comparison.png", "comparison.md", "comparison.csv", "comparison.json"):
        assert (tmp_path / "compare" / name).is_file()
    table = (tmp_path / "compare" / "comparison.md").read_text()
    assert "| cw_qmix | 2 |" in table and "| vdn | 2 |" in table
    assert json.loads((tmp_path / "compare" / "comparison.json").read_text())["table"] == \
        report["table"]

    # the same statistics as an aggregate of the same runs
    cw_runs = report["groups"]["cw_qmix"]["runs"]
    aggregate = aggregate_runs(cw_runs, tmp_path / "agg")
    assert aggregate["final_test_return"] == report["groups"]["cw_qmix"]["final_test_return"]

    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="no finished benchmark run"):
        plot_results([tmp_path / "empty"])


@pytest.mark.parametrize("env, env_id, extra", [
    ("mpe", "simple_spread_v3", {"max_episode_steps": 6}),
    ("predator_prey", "punishment", {"max_episode_steps": 6}),
])
def test_is_test_render_saves_a_gif(run_dirs, tmp_path, env, env_id, extra):
    import imageio.v3 as iio

    kwargs = dict(parallels=2, test_parallels=2, test_episode=2, batch_size=2,
                  buffer_size=8, **extra, **run_dirs)
    trainer = xwq.get_runner("qmix", env, env_id, **kwargs)
    model = trainer.agents.save_model(tmp_path / "model" / "final_model.pth")
    trainer.finish()
    runner = xwq.get_runner("qmix", env, env_id, is_test=True, render=True,
                            model_path=str(model), **kwargs)
    mean = runner.run()
    assert isinstance(mean, float)
    assert runner.gif_path is not None and runner.gif_path.parent == model.parent / "gifs"
    frames = iio.imread(runner.gif_path, index=None)
    assert frames.ndim == 4 and frames.shape[-1] == 3
    assert 2 <= len(frames) <= 7  # one greedy episode of at most 6 steps, plus the last frame


def test_render_without_frames_warns(run_dirs, tmp_path, caplog):
    trainer = xwq.get_runner(*MATRIX, **run_dirs)
    model = trainer.agents.save_model(tmp_path / "m.pth")
    trainer.finish()
    runner = xwq.get_runner(*MATRIX, is_test=True, render=True, model_path=str(model),
                            **run_dirs)
    with caplog.at_level("WARNING", logger="xwq"):
        assert isinstance(runner.run(), float)
    assert runner.gif_path is None and "cannot draw frames" in caplog.text


def test_is_test_finds_a_benchmark_model(run_dirs):
    xwq.get_runner(*MATRIX, **small(run_dirs, save_interval=0)).benchmark()
    mean = xwq.get_runner(*MATRIX, is_test=True, **small(run_dirs)).run()
    assert -12.0 <= mean <= 8.0


def test_messages_print_once_when_a_later_import_configures_the_root_logger():
    """gfootball's absl configures the root logger when its env is built, after get_runner set
    up xwq's own handler: each message must still print once."""
    import subprocess

    code = (
        "import logging\n"
        "from xwq.common.process import default_logging\n"
        "default_logging()\n"
        "logging.getLogger('xwq.x').info('before')\n"
        "logging.basicConfig(format='root:%(message)s', level=logging.INFO)\n"
        "logging.getLogger('xwq.x').info('after')\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=True)
    assert result.stderr.splitlines() == ["[xwq] before", "root:after"]
