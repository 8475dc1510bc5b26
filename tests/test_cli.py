"""The ``xwq`` command line: help, --set parsing, one-line errors with exit status 2, and the
train / test --render / benchmark --seeds / plot commands end to end."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import xwq
from xwq.cli import main, parse_set
from xwq.common.config import available_methods

REPO = Path(__file__).resolve().parent.parent
MATRIX = ["--method", "cw_qmix", "--env", "matrix_game", "--env-id", "nonmonotonic"]


def sets(tmp_path: Path, *extra: str) -> list[str]:
    values = [f"log_dir={tmp_path / 'logs'}", f"model_dir={tmp_path / 'models'}",
              f"results_dir={tmp_path / 'results'}", "progress_bar=false", *extra]
    return [item for value in values for item in ("--set", value)]


def test_help_lists_methods_and_envs(capsys):
    for argv in (["--help"], ["train", "--help"], ["benchmark", "--help"]):
        with pytest.raises(SystemExit) as done:
            main(argv)
        assert done.value.code == 0
        text = capsys.readouterr().out
        for method in available_methods():
            assert method in text
        for env in ("matrix_game", "mpe", "predator_prey", "simple_spread_v3", "punishment"):
            assert env in text
    with pytest.raises(SystemExit):
        main(["test", "--help"])
    assert "--render" in capsys.readouterr().out


def test_python_dash_m_xwq_runs():
    done = subprocess.run([sys.executable, "-m", "xwq", "--help"], capture_output=True,
                          text=True, cwd=REPO, timeout=120)
    assert done.returncode == 0 and "benchmark" in done.stdout and "cw_qmix" in done.stdout


def test_parse_set_reads_yaml_values():
    parsed = parse_set(["learning_rate=1e-3", "fc_hidden_sizes=[32,32]", "model_path=null",
                        "env_kwargs={N: 3}", "double_q=false", "optimizer=adam", "seed=3",
                        "gamma=.9", "lr_text='1e-3'", "seed=4"])
    assert parsed == {"learning_rate": 0.001, "fc_hidden_sizes": [32, 32], "model_path": None,
                      "env_kwargs": {"N": 3}, "double_q": False, "optimizer": "adam",
                      "seed": 4, "gamma": 0.9, "lr_text": "1e-3"}


@pytest.mark.parametrize("argv, expected", [
    (MATRIX + ["--set", "learning_rat=0.1"], "unknown config key 'learning_rat' (from --set). "
                                              "Did you mean 'learning_rate'?"),
    (MATRIX + ["--set", "learning_rate=abc"], "config key 'learning_rate' = 'abc' (from --set)"),
    (MATRIX + ["--set", "gamma=2"], "config key 'gamma' = 2 (from --set): must be in [0, 1]"),
    (MATRIX + ["--set", "learning_rate"], "expected KEY=VALUE"),
    (MATRIX + ["--set", "fc_hidden_sizes=[1,"], "not valid YAML"),
    (["--method", "qmx", "--env", "matrix_game", "--env-id", "nonmonotonic"],
     "unknown method 'qmx'"),
    (["--method", "qmix", "--env", "matrix_gam", "--env-id", "nonmonotonic"],
     "unknown env 'matrix_gam'"),
    (MATRIX + ["--config", "no/such.yaml"], "config file not found: no/such.yaml"),
    (["--resume", "no/such/ckpt_1.pth"], "no such checkpoint or run folder"),
    (["--method", "qmix", "--env", "empty_env", "--env-id", "x"], "the env has no agents"),
    (MATRIX + ["--set", "device=gpu"], "config key 'device' = 'gpu' is not a torch device"),
    (MATRIX + ["--set", "device=meta"], "config key 'device' = 'meta': xwq runs on cpu or cuda"),
    pytest.param(MATRIX + ["--set", "device=cuda"],
                 "config key 'device' = 'cuda' but no CUDA device is available",
                 marks=pytest.mark.skipif(torch.cuda.is_available(), reason="a GPU is here")),
])
def test_user_errors_are_one_line_and_exit_2(argv, expected, capsys, tmp_path,
                                             counting_env_class):
    class Empty(counting_env_class):
        def __init__(self, env_id="x", **kwargs):
            super().__init__(env_id, **kwargs)
            self.agents = []
            self.observation_space, self.action_space = {}, {}

    xwq.register_env("empty_env", Empty)
    assert main(["train", *argv, *sets(tmp_path)]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("xwq train: error: "), captured.err
    assert expected in lines[0]
    assert "Traceback" not in captured.err


def test_missing_model_exits_2(capsys, tmp_path):
    assert main(["test", *MATRIX, *sets(tmp_path, "seed=42")]) == 2
    assert "no trained model for seed 42" in capsys.readouterr().err


def test_debug_shows_the_traceback(tmp_path):
    with pytest.raises(xwq.ConfigError):
        main(["train", *MATRIX, "--set", "gamma=2", "--debug"])


def test_non_finite_loss_exits_1(capsys, tmp_path, counting_env_class):
    class NaNReward(counting_env_class):
        def step(self, actions):
            obs, rewards, terminated, truncated, info = super().step(actions)
            # finite (a NaN reward is refused at the env) but the loss overflows float32
            return obs, {a: 1e38 for a in rewards}, terminated, truncated, info

    xwq.register_env("nan_reward", NaNReward)
    status = main(["train", "--method", "qmix", "--env", "nan_reward", "--env-id", "x",
                   *sets(tmp_path, "parallels=2", "batch_size=2", "running_steps=64")])
    assert status == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "training stopped at env step" in err[0]


def test_train_then_test_with_render(capsys, tmp_path):
    mpe = ["--method", "qmix", "--env", "mpe", "--env-id", "simple_spread_v3"]
    small = sets(tmp_path, "parallels=2", "batch_size=2", "max_episode_steps=5",
                 "running_steps=20", "training_frequency=5", "test_parallels=2",
                 "test_episode=2", "fc_hidden_sizes=[16]", "save_interval=10")
    assert main(["train", *mpe, *small, "--seeds", "1", "2"]) == 0
    out = capsys.readouterr().out
    assert "seed 1: final model" in out and "seed 2: final model" in out
    models = sorted((tmp_path / "models").rglob("final_model.pth"))
    assert len(models) == 2

    assert main(["test", *mpe, *small, "--render"]) == 0
    out = capsys.readouterr().out
    assert "seed 1: mean greedy return" in out
    gif = Path(out.split("GIF: ")[1].strip())
    assert gif.is_file() and gif.suffix == ".gif" and gif.parent.parent.name.startswith("seed_1")

    # --resume auto on a finished run has nothing to do; --model picks a file
    assert main(["train", *mpe, *small, "--resume"]) == 0
    assert f"seed 1: final model {models[0]}" in capsys.readouterr().out  # seed_1_ sorts first
    assert main(["test", *mpe, *small, "--model", str(models[1])]) == 0
    assert "GIF" not in capsys.readouterr().out


def test_benchmark_seeds_and_plot(capsys, tmp_path, monkeypatch):
    from xwq.runners.process_backend import ProcessBackend

    calls, real = [], ProcessBackend.run

    def run(self, specs, progress=True):
        calls.append(([spec.seed for spec in specs], self.workers))
        return real(self, specs, progress)

    monkeypatch.setattr(ProcessBackend, "run", run)
    small = sets(tmp_path, "running_steps=64", "eval_interval=32", "parallels=8",
                 "batch_size=8", "test_parallels=4", "test_episode=4")
    assert main(["benchmark", *MATRIX, *small, "--seeds", "1", "2", "--workers", "2"]) == 0
    assert calls == [([1, 2], 2)]
    out = capsys.readouterr().out
    assert "| cw_qmix | 2 |" in out and "aggregate: " in out
    assert "final return mean [95% CI]" in out
    assert "seed 1: final" in out and "seed 2: final" in out
    assert main(["benchmark", *MATRIX, *small, "--workers", "2"]) == 2
    assert "workers > 1 runs several seeds at once: give seeds too" in capsys.readouterr().err
    assert main(["benchmark", *MATRIX, *small, "--seeds", "1", "--workers", "0"]) == 2
    assert "workers must be a positive integer" in capsys.readouterr().err
    assert main(["benchmark", "--method", "vdn", "--env", "matrix_game", "--env-id",
                 "nonmonotonic", *small]) == 0
    out = capsys.readouterr().out
    assert "seed 1: final greedy return" in out
    run_dir = Path(out.split("results: ")[1].strip())
    assert json.loads((run_dir / "summary.json").read_text())["method"] == "vdn"

    results = tmp_path / "results"
    assert main(["plot", str(results / "cw_qmix"), str(results / "vdn"), "--out",
                 str(tmp_path / "cmp")]) == 0
    out = capsys.readouterr().out
    assert "| cw_qmix | 2 |" in out and "| vdn | 1 |" in out
    assert (tmp_path / "cmp" / "comparison.png").is_file()
    assert main(["plot", str(tmp_path / "nothing-here")]) == 2
    assert "no such results folder" in capsys.readouterr().err


def test_resume_path_reads_the_run_config(tmp_path, capsys, monkeypatch):
    """``xwq train --resume PATH`` alone: method, env and config come from the run folder."""
    monkeypatch.chdir(tmp_path)
    small = sets(tmp_path, "running_steps=64", "save_interval=32", "parallels=8",
                 "batch_size=8")
    assert main(["train", *MATRIX, *small]) == 0
    run_dir = next((tmp_path / "logs").rglob("seed_1_*"))
    checkpoint = run_dir / "checkpoints" / "ckpt_32.pth"
    assert main(["train", "--resume", str(checkpoint), "--set", "running_steps=96"]) == 0
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["env_steps"] == 96 and summary["resumed_from"] == [str(checkpoint)]
    assert summary["method"] == "cw_qmix"


def test_envs_registered_at_run_time_are_in_help():
    from xwq.cli import build_parser

    xwq.register_env("late_env", lambda env_id, **kw: None)
    assert "late_env" in build_parser().format_help()


@pytest.mark.parametrize("setup, expected", [
    (lambda tmp: (tmp / "a_file").write_text("x") and [f"log_dir={tmp / 'a_file' / 'logs'}"],
     "Not a directory: "),
    (lambda tmp: (tmp / "ro").mkdir(mode=0o500) or [f"log_dir={tmp / 'ro' / 'logs'}",
                                                    f"model_dir={tmp / 'ro' / 'models'}"],
     "Permission denied: "),
])
def test_failed_file_operations_are_one_line_naming_the_path(setup, expected, capsys, tmp_path):
    import os

    if expected.startswith("Permission") and os.geteuid() == 0:
        # root writes anywhere: use a path under a read-only file system instead
        extra = ["log_dir=/proc/xwq-logs", "model_dir=/proc/xwq-models"]
        expected = "/proc/xwq"
    else:
        extra = setup(tmp_path)
    argv = ["train", *MATRIX, *sets(tmp_path, "running_steps=16", "parallels=8",
                                    "batch_size=8"), "--set", *extra]
    assert main(argv) == 2
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("xwq train: error: "), err
    assert expected in lines[0] and "Traceback" not in err


def test_a_directory_as_config_is_one_line(capsys, tmp_path):
    assert main(["train", *MATRIX, "--config", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and str(tmp_path) in err and "folder; give a file" in err


def test_a_bug_keeps_its_traceback(tmp_path, monkeypatch):
    """A ValueError that is not an XwqError is a bug: it is not hidden behind one line."""
    import xwq.runners.experiment as experiment_module

    def broken(self, resume=None):
        raise ValueError("an internal bug")

    monkeypatch.setattr(experiment_module.Experiment, "train", broken)
    with pytest.raises(ValueError, match="an internal bug"):
        main(["train", *MATRIX, *sets(tmp_path)])


def test_out_of_memory_is_one_line_exit_1(capsys, tmp_path, monkeypatch):
    import xwq.runners.experiment as experiment_module

    def exhausted(self, resume=None):
        raise MemoryError

    monkeypatch.setattr(experiment_module.Experiment, "train", exhausted)
    assert main(["train", *MATRIX, *sets(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "out of memory; lower buffer_size" in err


def test_set_takes_several_pairs_after_one_flag(tmp_path, capsys):
    argv = ["train", *MATRIX, "--set", f"log_dir={tmp_path / 'logs'}",
            f"model_dir={tmp_path / 'models'}", "progress_bar=false", "running_steps=16",
            "parallels=8", "batch_size=8", "learning_rate=1e-3"]
    assert main(argv) == 0
    config = next((tmp_path / "logs").rglob("config.yaml")).read_text()
    assert "running_steps: 16" in config and "learning_rate: 0.001" in config
