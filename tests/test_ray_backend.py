"""The Ray backend of a sweep: the same runs and aggregates as the serial backend, a worker
killed mid-run retried from its checkpoint to the same end, an interrupted sweep resumed, runs
copied back to the driver (sync_results), the error without Ray, and ``xwq sweep``.

One local Ray session (2 CPUs, loopback, no dashboard) serves the whole module."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
import torch
import yaml

import xwq
from xwq.common.checkpoint import safe_load
from xwq.errors import MissingPackageError
from xwq.runners import SerialBackend, Sweep, grid

REPO = Path(__file__).resolve().parent.parent
METHODS = ["qmix", "cw_qmix"]
SCENARIO = [("matrix_game", "nonmonotonic")]
SEEDS = [1, 2]
COMPARED = ("final_test_return", "best_test_return", "best_env_step", "updates", "env_steps",
            "episodes", "evaluations")


def small(root: Path) -> dict:
    """A few hundred env steps, a checkpoint (with the buffer) at every evaluation."""
    return dict(running_steps=192, eval_interval=64, save_interval=64, save_buffer=True,
                parallels=8, batch_size=8, test_parallels=4, test_episode=4,
                results_dir=str(root / "results"), log_dir=str(root / "logs"),
                model_dir=str(root / "models"), progress_bar=False)


def same_parameters(a: str, b: str) -> bool:
    pa, pb = safe_load(a)["policy"], safe_load(b)["policy"]
    return pa.keys() == pb.keys() and all(torch.equal(pa[k], pb[k]) for k in pa)


def assert_same_runs(runs, reference) -> None:
    assert [r.spec.seed for r in runs] == [r.spec.seed for r in reference]
    for run, ref in zip(runs, reference):
        assert (run.spec.method, run.spec.seed) == (ref.spec.method, ref.spec.seed)
        for key in COMPARED:
            assert run.summary[key] == ref.summary[key], (str(run.spec), key)
        assert same_parameters(run.summary["final_model"], ref.summary["final_model"])


def statistics(aggregates: dict) -> dict:
    return {label: {key: aggregate[key] for key in ("final_test_return", "best_test_return",
                                                     "env_steps_mean", "curve", "seeds")}
            for label, aggregate in aggregates.items()}


@pytest.fixture(scope="module")
def ray_session():
    ray = pytest.importorskip("ray")
    previous = os.environ.get("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER")
    os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"  # stay on 127.0.0.1
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        # tasks defined in this module travel by value (workers cannot import tests/)
        ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
        yield ray
    finally:
        ray.shutdown()
        if previous is None:
            os.environ.pop("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", None)
        else:
            os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = previous


@pytest.fixture(scope="module")
def serial(tmp_path_factory):
    """The reference: the grid run one after another in this process."""
    root = tmp_path_factory.mktemp("serial")
    specs = grid(METHODS, SCENARIO, SEEDS, overrides=small(root))
    return Sweep(specs, SerialBackend(), progress=False).run()


def ray_backend(**options):
    from xwq.runners.ray_backend import RayBackend

    return RayBackend(**options)


def crashing_backend(marker: Path, **options):
    """A RayBackend whose first task to get there kills its worker (``os._exit``) right after
    writing its first checkpoint; ``marker`` makes it happen once across all workers."""
    from xwq.runners.ray_backend import RayBackend, run_task

    def crash_once(spec, sync=None):
        try:
            os.close(os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
        except FileExistsError:
            return run_task(spec, sync)
        import xwq.runners.experiment as experiment

        original = experiment.save_checkpoint

        def save_then_die(*args, **kwargs):
            path = original(*args, **kwargs)
            marker.write_text(str(path))
            os._exit(1)

        experiment.save_checkpoint = save_then_die
        return run_task(spec, sync)

    class Crashing(RayBackend):
        task = staticmethod(crash_once)

    return Crashing(**options)


# --- without Ray ------------------------------------------------------------------------------
def test_import_xwq_does_not_import_ray():
    code = ("import sys, xwq, xwq.runners, xwq.runners.backends, xwq.cli\n"
            "assert 'ray' not in sys.modules\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=REPO)
    assert done.returncode == 0, done.stderr


def test_without_ray_the_backend_says_what_to_install(monkeypatch):
    from xwq.runners.ray_backend import RayBackend

    monkeypatch.setitem(sys.modules, "ray", None)  # import ray raises ImportError
    with pytest.raises(ImportError, match=r'pip install "xwq\[ray\]"') as error:
        RayBackend()
    assert isinstance(error.value, MissingPackageError) and isinstance(error.value,
                                                                       xwq.XwqError)
    runner = xwq.get_runner("qmix", "matrix_game", "nonmonotonic", progress_bar=False)
    with pytest.raises(ImportError, match="xwq.ray"):
        runner.benchmark(seeds=[1, 2], backend="ray")


def test_bad_backend_arguments_are_refused():
    from xwq.runners.backends import make_backend

    with pytest.raises(xwq.UsageError, match="unknown backend 'slurm'"):
        make_backend("slurm", 2)
    with pytest.raises(xwq.UsageError, match="workers applies to the local backend"):
        make_backend("ray", 2, workers=2)
    with pytest.raises(xwq.UsageError, match="is for the ray backend"):
        make_backend("local", 2, address="auto")


def test_grid_file_errors_name_the_file_and_key(tmp_path):
    from xwq.runners.grid_file import load_grid_file

    path = tmp_path / "grid.yaml"
    path.write_text("methods: [qmix]\nscenarios: [matrix_game/nonmonotonic]\nseeds: [1]\n"
                    "serach: {alpha: [0.1]}\n")
    with pytest.raises(xwq.UsageError, match=r"grid.yaml: unknown key 'serach'.*search"):
        load_grid_file(path)
    path.write_text("methods: [qmix]\nscenarios: [matrix_game]\nseeds: [1]\n")
    with pytest.raises(xwq.UsageError, match="a scenario is 'env/env_id'"):
        load_grid_file(path)
    path.write_text("methods: qmix\nscenarios: [{env: matrix_game, env_id: nonmonotonic}]\n"
                    "seeds: [1, 2]\nsearch: {alpha: [0.1, 0.5]}\n")
    specs = load_grid_file(path).specs()
    assert [(s.method, s.env, s.overrides["alpha"], s.seed) for s in specs] == [
        ("qmix", "matrix_game", 0.1, 1), ("qmix", "matrix_game", 0.1, 2),
        ("qmix", "matrix_game", 0.5, 1), ("qmix", "matrix_game", 0.5, 2)]


# --- on Ray -----------------------------------------------------------------------------------
def test_ray_gives_the_serial_runs_and_aggregates(ray_session, serial, tmp_path):
    specs = grid(METHODS, SCENARIO, SEEDS, overrides=small(tmp_path))
    result = Sweep(specs, ray_backend(), progress=False).run()
    assert [r.spec for r in result["runs"]] == specs
    assert_same_runs(result["runs"], serial["runs"])
    assert statistics(result["aggregates"]) == statistics(serial["aggregates"])
    for run in result["runs"]:  # the local layout, under this results_dir
        assert Path(run.run_dir).parent == tmp_path / "results" / run.spec.method / \
            "matrix_game" / "nonmonotonic"
        assert (Path(run.run_dir) / "summary.json").is_file()
    for aggregate in result["aggregates"].values():
        assert Path(aggregate["dir"]).parent.parent.parent.parent == tmp_path / "results"


def test_a_killed_worker_is_retried_and_resumes_to_the_same_end(ray_session, serial, tmp_path,
                                                               caplog):
    marker = tmp_path / "crashed"
    specs = grid(["qmix"], SCENARIO, SEEDS, overrides=small(tmp_path))
    result = Sweep(specs, crashing_backend(marker), progress=False).run()
    checkpoint = Path(marker.read_text())  # written by the killed worker, just before dying
    assert checkpoint.name == "ckpt_64.pth"
    assert "its Ray worker died (WorkerCrashedError); retry 1 of 3" in caplog.text
    resumed = [r for r in result["runs"] if r.summary["resumed_from"]]
    assert len(resumed) == 1  # one run crashed; it continued in its own folder
    assert resumed[0].summary["resumed_from"] == [str(checkpoint)]
    assert resumed[0].run_dir == str(checkpoint.parent.parent)
    assert_same_runs(result["runs"], [r for r in serial["runs"] if r.spec.method == "qmix"])
    metrics = (Path(resumed[0].run_dir) / "metrics.csv").read_text().splitlines()
    assert len(metrics) == 1 + 4  # header + evaluations at 0, 64, 128, 192: none twice


@pytest.mark.parametrize("sync_results", [False, True], ids=["shared", "sync_results"])
def test_an_interrupted_sweep_resumes_where_it_stopped(ray_session, serial, tmp_path,
                                                       sync_results):
    marker = tmp_path / "crashed"
    specs = grid(["qmix"], SCENARIO, SEEDS, overrides=small(tmp_path))
    with pytest.raises(RuntimeError, match="its Ray worker died 1 times"):
        Sweep(specs, crashing_backend(marker, max_retries=0, sync_results=sync_results),
              progress=False).run()
    crashed = Path(marker.read_text()).parent.parent  # with sync_results: on the worker
    assert not (crashed / "summary.json").exists()  # only its checkpoints
    finished = {p.name: (p / "summary.json").read_text()
                for p in (tmp_path / "results" / "qmix").rglob("seed_*")
                if (p / "summary.json").is_file()}  # the other run, if it got to the end

    again = grid(["qmix"], SCENARIO, SEEDS, overrides=small(tmp_path), resume="auto")
    result = Sweep(again, ray_backend(sync_results=sync_results), progress=False).run()
    summaries = {Path(r.run_dir).name: r.summary for r in result["runs"]}
    for run in result["runs"]:
        assert Path(run.run_dir).is_relative_to(tmp_path / "results")
    (resumed_from,) = summaries[crashed.name]["resumed_from"]  # continued, not redone
    assert resumed_from.endswith(f"{crashed.name}/checkpoints/ckpt_64.pth")
    for name, text in finished.items():  # reported as it was, not run again
        assert name in summaries
        assert next((tmp_path / "results").rglob(f"{name}/summary.json")).read_text() == text
    assert_same_runs(result["runs"], [r for r in serial["runs"] if r.spec.method == "qmix"])


def test_sync_results_copies_each_run_back_to_the_driver(ray_session, serial, tmp_path):
    specs = grid(METHODS, SCENARIO, SEEDS, overrides=small(tmp_path))
    result = Sweep(specs, ray_backend(sync_results=True), progress=False).run()
    assert_same_runs(result["runs"], serial["runs"])
    assert statistics(result["aggregates"]) == statistics(serial["aggregates"])
    for run in result["runs"]:
        run_dir = Path(run.run_dir)
        assert run_dir.is_relative_to(tmp_path / "results")
        summary = json.loads((run_dir / "summary.json").read_text())
        assert summary["run_dir"] == run.run_dir
        assert summary["final_model"] == str(run_dir / "final_model.pth")
        saved = yaml.safe_load((run_dir / "config.yaml").read_text())
        assert saved["results_dir"] == str(tmp_path / "results")
        assert (run_dir / "checkpoints" / "ckpt_192.pth").is_file()
        # the worker's scratch copy is gone once the driver holds the run
        scratch = Path(tempfile.gettempdir()) / "xwq-ray"
        assert not list(scratch.glob(f"*/results/**/{run_dir.name}"))


def test_runner_benchmark_on_ray(ray_session, serial, tmp_path):
    runner = xwq.get_runner("cw_qmix", "matrix_game", "nonmonotonic", **small(tmp_path))
    result = runner.benchmark(seeds=SEEDS, backend="ray")
    reference = [r.summary for r in serial["runs"] if r.spec.method == "cw_qmix"]
    for summary, ref in zip(result["runs"], reference):
        for key in COMPARED:
            assert summary[key] == ref[key], key
    assert result["aggregate"]["final_test_return"]["n"] == 2


def write_grid(tmp_path: Path) -> Path:
    path = tmp_path / "grid.yaml"
    path.write_text(yaml.safe_dump({
        "methods": ["qmix"], "scenarios": ["matrix_game/nonmonotonic"], "seeds": [1, 2],
        "overrides": small(tmp_path), "search": {"learning_rate": [0.0005]}}))
    return path


def test_cli_sweep_on_the_local_backend(tmp_path, capsys):
    from xwq.cli import main

    path = write_grid(tmp_path)
    assert main(["sweep", str(path), "--workers", "2"]) == 0
    out = capsys.readouterr().out
    assert "qmix matrix_game/nonmonotonic seed 1: final" in out and "| qmix | 2 |" in out
    assert main(["sweep", str(path), "--address", "auto"]) == 2
    assert "--address and --sync-results are for --backend ray" in capsys.readouterr().err
    assert main(["plot", str(tmp_path / "results" / "qmix")]) == 0


def test_cli_sweep_on_ray(ray_session, serial, tmp_path, capsys):
    from xwq.cli import main

    path = write_grid(tmp_path)
    assert main(["sweep", str(path), "--backend", "ray"]) == 0
    out = capsys.readouterr().out
    reference = {r.spec.seed: r.summary for r in serial["runs"] if r.spec.method == "qmix"}
    for seed in SEEDS:
        assert (f"qmix matrix_game/nonmonotonic seed {seed}: final "
                f"{reference[seed]['final_test_return']:.3f}") in out
    assert "aggregate: " in out
    matrix = ["--method", "qmix", "--env", "matrix_game", "--env-id", "nonmonotonic"]
    sets = [item for key, value in small(tmp_path / "bench").items()
            for item in ("--set", f"{key}={value}")]
    assert main(["benchmark", *matrix, *sets, "--seeds", "1", "2", "--backend", "ray"]) == 0
    out = capsys.readouterr().out
    assert f"seed 2: final {reference[2]['final_test_return']:.3f}" in out and "| qmix | 2 |" in out
    assert main(["benchmark", *matrix, *sets, "--backend", "ray"]) == 2
    assert "--backend ray runs several seeds: give --seeds too" in capsys.readouterr().err
    # the same sweep again with --resume: every run is reported finished, none rerun
    folders = sorted((tmp_path / "results" / "qmix").rglob("seed_*"))
    assert main(["sweep", str(path), "--backend", "ray", "--resume"]) == 0
    assert sorted((tmp_path / "results" / "qmix").rglob("seed_*")) == folders


def test_cli_sweep_through_ray_tune(ray_session, serial, tmp_path, capsys):
    from xwq.cli import main

    path = tmp_path / "grid.yaml"
    path.write_text(yaml.safe_dump({
        "methods": ["qmix"], "scenarios": ["matrix_game/nonmonotonic"], "seeds": [1, 2],
        "overrides": small(tmp_path), "search": {"learning_rate": [0.0005, 0.001]},
        "tune": {"search": "random", "num_samples": 1, "seed": 0, "scheduler": "asha"}}))
    import signal

    before = signal.getsignal(signal.SIGINT)
    assert main(["sweep", str(path), "--backend", "ray"]) == 0
    assert signal.getsignal(signal.SIGINT) is before  # Tune's own handler does not stay
    out = capsys.readouterr().out
    assert "Ray Tune records: " in out
    runs = [json.loads(p.read_text()) for p in (tmp_path / "results").rglob("summary.json")]
    stopped = out.count("stopped early by the scheduler")
    assert len(runs) + stopped == 2  # one drawn point x 2 seeds
    if not stopped:  # both finished: the point's seeds aggregated, as in a local sweep
        assert "aggregate: " in out
    if 0.0005 in {yaml.safe_load((Path(r["run_dir"]) / "config.yaml").read_text())
                  ["learning_rate"] for r in runs}:  # the serial grid's point: same numbers
        reference = {r.spec.seed: r.summary for r in serial["runs"] if r.spec.method == "qmix"}
        for run in runs:
            assert run["final_test_return"] == reference[run["seed"]]["final_test_return"]
