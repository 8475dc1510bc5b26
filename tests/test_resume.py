"""Checkpoints and resume: a run interrupted (even SIGKILLed) and resumed ends exactly where an
uninterrupted run ends; checkpoints are pruned, code-free, config-checked, and survive a
non-finite loss."""

from __future__ import annotations

import json
import os
import pickle
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

import xwq
import xwq.runners.experiment as runner_module
from xwq.common.checkpoint import safe_load
from xwq.learners import NonFiniteLossError
from xwq.runners.checkpoints import list_checkpoints, load_checkpoint

REPO = Path(__file__).resolve().parent.parent
MATRIX = ("qmix", "matrix_game", "nonmonotonic")


def dirs(root: Path) -> dict:
    return {"log_dir": str(root / "logs"), "model_dir": str(root / "models"),
            "results_dir": str(root / "results"), "progress_bar": False}


def rows(path: Path, drop: set[str]) -> list[dict]:
    """Log rows without the wall-clock columns (the only ones allowed to differ)."""
    return [{k: v for k, v in json.loads(line).items() if k not in drop}
            for line in path.read_text().splitlines()]


def same_parameters(a: Path, b: Path) -> bool:
    pa, pb = safe_load(a)["policy"], safe_load(b)["policy"]
    return pa.keys() == pb.keys() and all(torch.equal(pa[k], pb[k]) for k in pa)


class Killed(BaseException):
    """Stands in for a crash right after a checkpoint is written."""


def die_after_checkpoints(monkeypatch, count: int) -> None:
    """Make the runner 'crash' just after writing its ``count``-th checkpoint."""
    original = runner_module.save_checkpoint
    written = []

    def save_then_die(*args, **kwargs):
        path = original(*args, **kwargs)
        written.append(path)
        if len(written) == count:
            raise Killed(path)
        return path

    monkeypatch.setattr(runner_module, "save_checkpoint", save_then_die)


# --- exact resume ------------------------------------------------------------------------------
BENCHMARKS = {
    # native MPE: the initial positions come from the env RNGs, which checkpoints do not hold
    "mpe": (("cw_qmix", "mpe", "simple_spread_v3"),
            dict(parallels=2, max_episode_steps=5, training_frequency=5)),
    # 4 envs whose episodes last 1 to 5 steps: checkpoints at env steps 36 and 72 (save_interval
    # 35) fall in the middle of episodes, which both runs end there (truncations in the buffer)
    "random_length": (("qmix", "random_length", "x"),
                      dict(parallels=4, seed=2, vectorize="serial", training_frequency=3,
                           save_interval=35)),
}


@pytest.mark.parametrize("name", list(BENCHMARKS))
def test_benchmark_resumed_after_a_crash_matches_an_unbroken_run(name, tmp_path, monkeypatch,
                                                                 random_length_env_class):
    xwq.register_env("random_length", random_length_env_class)
    method, extra = BENCHMARKS[name]

    def config(root: Path) -> dict:
        # log rows every 40 steps, checkpoints every 30: a checkpoint falls between two rows
        return dict(batch_size=4, running_steps=120, eval_interval=40, save_interval=30,
                    test_parallels=2, test_episode=2, save_buffer=True, log_interval=40,
                    decay_step_greedy=100, **dirs(root)) | extra

    reference = xwq.get_runner(*method, **config(tmp_path / "a")).benchmark()

    die_after_checkpoints(monkeypatch, 2)
    with pytest.raises(Killed) as crash:
        xwq.get_runner(*method, **config(tmp_path / "b")).benchmark()
    monkeypatch.undo()
    checkpoint = Path(str(crash.value))
    assert 60 <= int(checkpoint.stem.split("_")[1]) < 90
    run_dir = checkpoint.parent.parent
    assert not (run_dir / "summary.json").exists()

    resumed = xwq.get_runner(*method, **config(tmp_path / "b")).benchmark(resume="auto")
    assert resumed["run_dir"] == str(run_dir)  # the same folder, continued
    assert resumed["resumed_from"] == [str(checkpoint)]
    for stream, drop in (("train", {"steps_per_second"}), ("metrics", {"wall_time"})):
        assert rows(run_dir / f"{stream}.jsonl", drop) == \
            rows(Path(reference["run_dir"]) / f"{stream}.jsonl", drop), stream
    csv_lines = (run_dir / "metrics.csv").read_text().splitlines()
    assert csv_lines[0].startswith("env_step,") and len(csv_lines) == 1 + 4  # 0, ~40, ~80, ~120
    assert same_parameters(run_dir / "final_model.pth", Path(reference["final_model"]))
    assert same_parameters(run_dir / "best_model.pth", Path(reference["best_model"]))
    for key in ("final_test_return", "best_test_return", "best_env_step", "env_steps",
                "updates", "episodes"):
        assert resumed[key] == reference[key], key


def test_resume_picks_up_an_evaluation_that_was_due(tmp_path, monkeypatch):
    """A checkpoint written on an evaluation step, the process dying before the evaluation:
    the resumed run evaluates there first."""
    kwargs = dict(running_steps=128, eval_interval=64, save_interval=64, parallels=8,
                  batch_size=8, test_parallels=4, test_episode=4, save_buffer=True)
    reference = xwq.get_runner(*MATRIX, **kwargs, **dirs(tmp_path / "a")).benchmark()
    die_after_checkpoints(monkeypatch, 1)  # at env step 64, before its evaluation
    with pytest.raises(Killed):
        xwq.get_runner(*MATRIX, **kwargs, **dirs(tmp_path / "b")).benchmark()
    monkeypatch.undo()
    resumed = xwq.get_runner(*MATRIX, **kwargs, **dirs(tmp_path / "b")).benchmark(resume="auto")
    drop = {"wall_time", "steps_per_second"}
    for stream in ("metrics", "train"):
        assert rows(Path(resumed["run_dir"]) / f"{stream}.jsonl", drop) == \
            rows(Path(reference["run_dir"]) / f"{stream}.jsonl", drop)
    assert [r["env_step"] for r in rows(Path(resumed["run_dir"]) / "metrics.jsonl", drop)] == \
        [0, 64, 128]


def test_run_killed_by_sigkill_resumes_to_the_same_end(tmp_path):
    """A real ``python -m xwq train`` process, SIGKILLed once its first checkpoint exists, then
    ``xwq train --resume`` : same training log and final parameters as an unbroken run."""
    settings = ["running_steps=2048", "save_interval=256", "save_buffer=true", "parallels=8",
                "batch_size=4", "training_frequency=2", "log_interval=96", "keep_checkpoints=2"]
    killed = dirs(tmp_path / "killed")
    command = [sys.executable, "-m", "xwq", "train", "--method", MATRIX[0], "--env", MATRIX[1],
               "--env-id", MATRIX[2]]
    for setting in settings + [f"{k}={v}" for k, v in killed.items()]:
        command += ["--set", setting]
    env = dict(os.environ, PYTHONPATH=str(REPO))
    process = subprocess.Popen(command, cwd=tmp_path, env=env, stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE)
    logs = tmp_path / "killed" / "logs"
    deadline = time.monotonic() + 120
    try:
        while not list(logs.glob("*/*/*/seed_1_*/checkpoints/ckpt_*.pth")):
            assert process.poll() is None, process.stderr.read().decode()
            assert time.monotonic() < deadline, "no checkpoint after 120 s"
            time.sleep(0.01)
        assert process.poll() is None, "the run finished before it could be killed"
        process.send_signal(signal.SIGKILL)
    finally:
        process.kill()
        process.wait()
    assert process.returncode == -signal.SIGKILL
    run_dir = next(logs.glob("*/*/*/seed_1_*"))
    assert not (run_dir / "summary.json").exists()
    last = list_checkpoints(run_dir)[-1]
    stopped_at = load_checkpoint(last)["agents"]["counters"]["env_steps"]
    assert stopped_at < 2048

    from xwq.cli import main

    overrides = [item for setting in settings + [f"{k}={v}" for k, v in killed.items()]
                 for item in ("--set", setting)]
    assert main(["train", "--method", MATRIX[0], "--env", MATRIX[1], "--env-id", MATRIX[2],
                 *overrides, "--resume"]) == 0
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["resumed_from"] == [str(last)] and summary["env_steps"] == 2048

    reference = xwq.get_runner(*MATRIX, running_steps=2048, save_interval=256, save_buffer=True,
                               parallels=8, batch_size=4, training_frequency=2,
                               log_interval=96, keep_checkpoints=2,
                               **dirs(tmp_path / "reference"))
    reference_model = reference.run()
    drop = {"steps_per_second"}
    assert rows(run_dir / "train.jsonl", drop) == rows(reference.run_dir / "train.jsonl", drop)
    assert same_parameters(Path(summary["final_model"]), reference_model)


# --- checkpoint files ----------------------------------------------------------------------------
def test_checkpoints_every_save_interval_newest_kept(tmp_path):
    runner = xwq.get_runner(*MATRIX, running_steps=160, save_interval=40, keep_checkpoints=2,
                            parallels=8, batch_size=8, **dirs(tmp_path))
    runner.run()
    names = [p.name for p in list_checkpoints(runner.run_dir)]
    assert names == ["ckpt_120.pth", "ckpt_160.pth"]  # 40, 80 pruned; 160 is the final one
    payload = load_checkpoint(runner.run_dir / "checkpoints" / "ckpt_120.pth")
    agents = payload["agents"]
    assert agents["counters"]["env_steps"] == 120 and "buffer" not in agents  # save_buffer off
    assert {"policy", "learner", "rng", "epsilon"} <= set(agents)
    assert {"targets", "optimizer", "updates"} <= set(agents["learner"])
    assert payload["kind"] == "run" and payload["runner"]["log_rows"]["train"] >= 1
    assert not list((runner.run_dir / "checkpoints").glob(".*"))  # no temporary files left

    with_buffer = xwq.get_runner(*MATRIX, running_steps=40, save_interval=40, save_buffer=True,
                                 parallels=8, batch_size=8, **dirs(tmp_path / "b"))
    with_buffer.run()
    buffer = load_checkpoint(list_checkpoints(with_buffer.run_dir)[-1])["agents"]["buffer"]
    assert buffer["size"] == 40

    off = xwq.get_runner(*MATRIX, running_steps=40, save_interval=0, parallels=8,
                         **dirs(tmp_path / "c"))
    off.run()
    assert list_checkpoints(off.run_dir) == []


def test_wqmix_checkpoint_holds_q_star_and_its_targets(tmp_path):
    runner = xwq.get_runner("wqmix", *MATRIX[1:], running_steps=32, save_interval=32,
                            parallels=8, batch_size=8, **dirs(tmp_path))
    runner.run()
    agents = load_checkpoint(list_checkpoints(runner.run_dir)[-1])["agents"]
    policy_keys = set(agents["policy"])
    assert any("star" in key for key in policy_keys), sorted(policy_keys)[:10]
    assert any("star" in key for key in agents["learner"]["targets"])


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
def test_a_malicious_pickle_is_refused(tmp_path):
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    path = tmp_path / "checkpoints" / "ckpt_64.pth"
    path.parent.mkdir()
    torch.save({"format": 1, "kind": "run", "agents": Evil()}, path)
    with pytest.raises(ValueError, match="refusing to load"):
        load_checkpoint(path)
    with open(tmp_path / "plain.pkl", "wb") as handle:
        pickle.dump(Evil(), handle)
    with pytest.raises(ValueError, match="refusing to load"):
        load_checkpoint(tmp_path / "plain.pkl")
    runner = xwq.get_runner(*MATRIX, **dirs(tmp_path / "r"))
    with pytest.raises(ValueError, match="refusing to load"):
        runner.run(resume=path)
    assert not marker.exists()

    model = runner.agents.save_model(tmp_path / "model.pth")
    with pytest.raises(ValueError, match="not an xwq training checkpoint"):
        load_checkpoint(model)
    runner.finish()


# --- resume rules --------------------------------------------------------------------------------
def test_resume_rules(tmp_path, caplog):
    kwargs = dict(running_steps=64, save_interval=32, parallels=8, batch_size=8, **dirs(tmp_path))
    first = xwq.get_runner(*MATRIX, **kwargs)
    model = first.run()

    # auto: the newest matching run already finished -> nothing to do
    again = xwq.get_runner(*MATRIX, **kwargs)
    assert again.run(resume="auto") == model
    # auto, longer running_steps: the finished run is extended from its final checkpoint
    longer = xwq.get_runner(*MATRIX, **kwargs | {"running_steps": 96})
    assert longer.run(resume="auto").parent.name == first.run_dir.name
    assert longer.agents.env_steps == 96
    summary = json.loads((first.run_dir / "summary.json").read_text())
    assert summary["env_steps"] == 96 and summary["resumed_from"][-1].endswith("ckpt_64.pth")

    # a different learning rate is another experiment: auto passes over it, a path refuses
    with caplog.at_level("INFO", logger="xwq"):
        other = xwq.get_runner(*MATRIX, **kwargs | {"learning_rate": 1e-3})
        other.run(resume="auto")
    assert other.run_dir != first.run_dir and "passing over" in caplog.text
    with pytest.raises(xwq.ConfigError, match="learning_rate: 0.0005 -> 0.001"):
        xwq.get_runner(*MATRIX, **kwargs | {"learning_rate": 1e-3}).run(
            resume=first.run_dir / "checkpoints" / "ckpt_96.pth")

    # a benchmark checkpoint is not a run checkpoint; a missing path is an error
    bench = xwq.get_runner(*MATRIX, **kwargs).benchmark()
    with pytest.raises(ValueError, match=r"written by benchmark\(\)"):
        xwq.get_runner(*MATRIX, **kwargs).run(resume=bench["run_dir"])
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        xwq.get_runner(*MATRIX, **kwargs).run(resume=tmp_path / "nope.pth")
    with pytest.raises(ValueError, match="resume must be 'auto'"):
        xwq.get_runner(*MATRIX, **kwargs).benchmark(seeds=[1, 2], resume=bench["run_dir"])

    # a multi-seed benchmark resumed with auto reuses the finished seed
    result = xwq.get_runner(*MATRIX, **kwargs).benchmark(seeds=[1, 2], resume="auto")
    assert result["runs"][0]["run_dir"] == bench["run_dir"]
    assert result["runs"][1]["seed"] == 2


# --- failure -------------------------------------------------------------------------------------
def nan_env_class(counting_env_class, after: int):
    class NaNAfter(counting_env_class):
        """The counting env whose rewards turn huge after ``after`` steps of this instance:
        finite (xwq refuses NaN rewards at the env), but the loss overflows float32."""

        steps = 0

        def step(self, actions):
            obs, rewards, terminated, truncated, info = super().step(actions)
            self.steps += 1
            if self.steps > after:
                rewards = {agent: 1e38 for agent in rewards}
            return obs, rewards, terminated, truncated, info

    return NaNAfter


def test_non_finite_loss_stops_and_keeps_the_last_good_checkpoint(tmp_path, counting_env_class):
    xwq.register_env("nan_after", nan_env_class(counting_env_class, after=40))
    runner = xwq.get_runner("qmix", "nan_after", "x", parallels=2, batch_size=4,
                            training_frequency=4, running_steps=400, save_interval=16,
                            keep_checkpoints=1, save_buffer=True, **dirs(tmp_path))
    with pytest.raises(NonFiniteLossError, match=r"training stopped at env step \d+") as error:
        runner.run()
    message = str(error.value)
    assert "non-finite loss" in message and "ckpt_" in message
    checkpoints = list_checkpoints(runner.run_dir)
    assert len(checkpoints) == 1 and str(checkpoints[0]) in message
    state = load_checkpoint(checkpoints[0])["agents"]
    assert all(torch.isfinite(p).all() for p in state["policy"].values())
    assert state["counters"]["env_steps"] < int(message.split("env step ")[1].split(":")[0])
    assert not (runner.run_dir / "summary.json").exists()
    assert not list((tmp_path / "models").rglob("final_model.pth"))
    assert np.isfinite([json.loads(line)["loss"] for line in
                        (runner.run_dir / "train.jsonl").read_text().splitlines()
                        if "loss" in json.loads(line)]).all()
