"""The cheap part of the bad-input battery (``benchmarks/bad_inputs.py``): each case must end in
a clear one-line error naming what to fix, or finish. Plus, in this process, the command line's
one line for an error raised in the user's own env or factory and for SIGTERM."""

from __future__ import annotations

import os
import signal

import pytest

import xwq
from xwq.cli import main

# cheap cases (config errors, mostly answered before torch is imported) that tests/test_cli.py
# does not already cover
FAST = [
    "seeds_not_ints", "resume_path_with_several_seeds", "unknown_env_id_matrix",
    "address_without_ray", "ray_without_seeds", "workers_negative",
    "set_empty_key", "set_null_seed", "set_bool_seed", "set_running_steps_float",
    "set_learning_rate_nan", "set_learning_rate_inf", "set_gamma_nan", "set_fc_hidden_empty",
    "set_greedy_inverted", "set_mixer_lowercase", "set_alpha_for_qmix", "set_yaml_python_tag",
    "set_method_conflicts", "set_env_name_conflicts",
    "config_yaml_syntax_error", "config_tab_indentation", "config_is_a_list",
    "config_random_bytes", "config_duplicate_key", "config_python_tag", "config_nested_section",
    "config_env_kwargs_not_mapping", "config_unknown_method",
    "sweep_grid_yaml_error", "sweep_grid_seeds_not_ints",
    "api_config_path_number", "api_overrides_dict_for_list", "plot_empty_folder",
]


@pytest.fixture(scope="module")
def battery(benchmark_script):
    return benchmark_script("bad_inputs")


@pytest.mark.parametrize("name", FAST)
def test_a_bad_input_ends_in_one_clear_line(name, battery, tmp_path):
    case = next(c for c in battery.CASES if c.name == name)
    result = battery.run_case(case, tmp_path)
    assert result.outcome in battery.GOOD, f"{result.outcome}: {result.detail}"


def test_the_fast_cases_are_marked_fast(battery):
    fast = {c.name for c in battery.CASES if c.fast}
    assert set(FAST) <= fast
    assert len(battery.CASES) >= 120


def test_the_judge_tells_clear_from_raw_and_silent(battery, tmp_path):
    """The battery's own verdicts: a one-line status-2 error with the keyword is clear; a
    traceback, a missing keyword or a finished run are not."""
    case = battery.Case("x", "cli", lambda ctx: None, keyword=("learning_rate",))
    ctx = battery.Context(tmp_path, 10)
    line = "xwq train: error: config key 'learning_rate' = -1 (from --set): must be in (0, inf]"
    assert battery.judge(case, ctx, battery.Done(2, err=f"[xwq] info\n{line}\n"))[0] == "clear"
    assert battery.judge(case, ctx, battery.Done(1, err=f"Traceback (most recent call last):\n"
                                                    f"{line}\n"))[0] == "raw"
    assert battery.judge(case, ctx, battery.Done(2, err="xwq train: error: bad\n"))[0] == "raw"
    assert battery.judge(case, ctx, battery.Done(0))[0] == "silent"
    assert battery.judge(case, ctx, battery.Done(None))[0] == "hang"


# --- errors raised in the user's code, and SIGTERM, on the command line ------------------------
def small_custom(tmp_path, env: str) -> list[str]:
    values = [f"log_dir={tmp_path / 'logs'}", f"model_dir={tmp_path / 'models'}",
              "progress_bar=false", "running_steps=40", "parallels=2", "batch_size=2",
              "buffer_size=8", "save_interval=20", "vectorize=serial"]
    return ["train", "--method", "qmix", "--env", env, "--env-id", "x", "--set", *values]


def one_line(err: str) -> str:
    assert "Traceback" not in err, err
    return [line for line in err.splitlines() if line.strip()][-1]


def test_an_env_factory_that_raises_is_one_line_naming_the_env(tmp_path, capsys):
    def factory(env_id, **kwargs):
        raise ValueError("the map files are missing")

    xwq.register_env("raising_factory", factory)
    assert main(small_custom(tmp_path, "raising_factory")) == 2
    line = one_line(capsys.readouterr().err)
    assert line.startswith("xwq train: error: your code raised ValueError: the map files are "
                           "missing (raised in ")
    assert "test_bad_inputs.py" in line and "building env 'raising_factory'" in line
    with pytest.raises(ValueError, match="the map files"):  # --debug: the real exception
        main([*small_custom(tmp_path, "raising_factory"), "--debug"])


def test_an_env_failing_mid_training_is_one_line_with_the_checkpoint(tmp_path, capsys,
                                                                     counting_env_class):
    class Crashing(counting_env_class):
        calls = 0

        def step(self, actions):
            Crashing.calls += 1
            if Crashing.calls == 60:
                raise RuntimeError("the simulator crashed")
            return super().step(actions)

    xwq.register_env("crashing", Crashing)
    assert main([*small_custom(tmp_path, "crashing"), "running_steps=200"]) == 2
    line = one_line(capsys.readouterr().err)
    assert "your code raised RuntimeError: the simulator crashed" in line
    assert "--resume auto continues from" in line and "ckpt_" in line


def test_an_env_failing_in_a_subprocess_worker_is_one_line_naming_its_code(
        tmp_path, capsys, counting_env_class):
    class CrashingInWorker(counting_env_class):
        def step(self, actions):
            if self.t == 3:
                raise RuntimeError("the simulator crashed in a worker")
            return super().step(actions)

    xwq.register_env("crashing_worker", CrashingInWorker)
    argv = [*small_custom(tmp_path, "crashing_worker"), "vectorize=subprocess"]
    assert main(argv) == 2
    line = one_line(capsys.readouterr().err)
    assert line.startswith("xwq train: error: your code raised RuntimeError: the simulator "
                           "crashed in a worker (raised in ")
    assert "test_bad_inputs.py" in line and ", in step)" in line
    with pytest.raises(RuntimeError, match="Traceback"):  # --debug: the worker's traceback
        main([*argv, "--debug"])


def test_an_error_inside_xwq_keeps_its_traceback(tmp_path, monkeypatch):
    """Only errors raised in the user's code become one line; xwq's own bugs do not."""
    import xwq.runners.experiment as experiment_module

    def broken(self, resume=None):
        raise RuntimeError("an internal bug")

    monkeypatch.setattr(experiment_module.Experiment, "train", broken)
    with pytest.raises(RuntimeError, match="an internal bug"):
        main(small_custom(tmp_path, "matrix_game")[:5] + ["--env-id", "nonmonotonic"])


def test_sigterm_is_one_line_and_status_143(tmp_path, capsys, monkeypatch):
    import xwq.runners.experiment as experiment_module

    def terminated(self, resume=None):
        os.kill(os.getpid(), signal.SIGTERM)

    monkeypatch.setattr(experiment_module.Experiment, "train", terminated)
    before = signal.getsignal(signal.SIGTERM)
    argv = ["train", "--method", "qmix", "--env", "matrix_game", "--env-id", "nonmonotonic",
            "--set", f"log_dir={tmp_path}", "progress_bar=false"]
    assert main(argv) == 143
    assert one_line(capsys.readouterr().err) == ("xwq train: terminated (SIGTERM); continue "
                                                 "with --resume auto")
    assert signal.getsignal(signal.SIGTERM) == before  # restored for whoever called main()


# --- values and files the battery found mishandled ---------------------------------------------
def test_numpy_values_become_plain_data_and_objects_are_refused():
    import numpy as np

    from xwq.common.config import get_configs

    config = get_configs(method="qmix", env="matrix_game", env_id="nonmonotonic",
                         overrides={"seed": np.int64(3), "learning_rate": np.float64(1e-3),
                                    "env_kwargs": {"payoff": np.eye(2), "sizes": (1, 2)}})
    assert type(config.seed) is int and type(config.learning_rate) is float
    assert config.env_kwargs == {"payoff": [[1.0, 0.0], [0.0, 1.0]], "sizes": [1, 2]}
    with pytest.raises(xwq.ConfigError, match=r"'env_kwargs.render' = .*not a function"):
        get_configs(method="qmix", env="matrix_game", env_id="nonmonotonic",
                    overrides={"env_kwargs": {"render": lambda: None}})


def fake_run(folder, config="eval_metric: return\n", summary='{"seed": 1}',
             metrics='{"env_step": 0, "test_return_mean": 1.0}\n'):
    folder.mkdir(parents=True)
    (folder / "config.yaml").write_text(config)
    (folder / "summary.json").write_text(summary)
    (folder / "metrics.jsonl").write_text(metrics)
    return folder


@pytest.mark.parametrize("damage, expected", [
    ({"summary": "{not json"}, r"summary.json: damaged, not JSON"),
    ({"config": "method: [qmix\n"}, r"config.yaml: damaged, not YAML"),
    ({"config": "- qmix\n"}, r"config.yaml: not a run's config"),
    ({"metrics": ""}, r"metrics.jsonl: no evaluation of test_return_mean"),
])
def test_plot_names_the_damaged_file_of_a_run(damage, expected, tmp_path):
    from xwq.runners.results import load_run

    run = fake_run(tmp_path / "seed_1_x", **damage)
    with pytest.raises(xwq.CheckpointError, match=expected):
        load_run(run)


def test_plot_of_train_runs_says_they_do_not_evaluate(tmp_path):
    from xwq.runners.results import find_runs

    run = fake_run(tmp_path / "logs" / "seed_1_x")
    (run / "metrics.jsonl").unlink()
    with pytest.raises(xwq.MissingFileError, match="made by train, which does not evaluate"):
        find_runs([tmp_path / "logs"])


def test_a_checkpoint_of_another_format_says_so(tmp_path):
    import torch

    from xwq.runners.checkpoints import load_checkpoint

    path = tmp_path / "ckpt_8.pth"
    torch.save({"format": 99, "kind": "run", "agents": {}}, path)
    with pytest.raises(xwq.CheckpointError, match="in format 99; this xwq reads format 1"):
        load_checkpoint(path)


def test_a_factory_returning_no_env_is_named(run_dirs):
    xwq.register_env("returns_none", lambda env_id, **kwargs: None)
    with pytest.raises(xwq.EnvMismatchError, match=r"env 'returns_none' \(env_id 'x'\): an env "
                                                   r"factory returned NoneType"):
        xwq.get_runner("qmix", "returns_none", "x", vectorize="serial", **run_dirs).run()


def test_a_checkpoint_write_on_a_full_disk_is_an_os_error_naming_the_file(tmp_path,
                                                                           monkeypatch):
    """torch reports a full disk as RuntimeError("... file write failed"): the CLI's one line
    needs an OSError with the path; the previous file and the folder stay clean."""
    import errno
    from types import SimpleNamespace

    import torch

    import xwq.common.checkpoint as checkpoint

    path = checkpoint.atomic_save({"step": 1}, tmp_path / "ckpt.pth")

    monkeypatch.setattr(checkpoint.os, "statvfs",
                        lambda _: SimpleNamespace(f_bavail=0, f_frsize=4096))
    for message in ("PytorchStreamWriter failed writing file data/0: file write failed",
                    "[enforce fail at inline_container.cc:672] . unexpected pos 122368 vs 1"):
        def full(obj, stream, message=message):
            stream.write(b"partial")
            raise RuntimeError(message)

        monkeypatch.setattr(torch, "save", full)
        with pytest.raises(OSError) as error:
            checkpoint.atomic_save({"step": 2}, path)
        assert error.value.errno == errno.ENOSPC and error.value.filename == str(path)
        assert [p.name for p in tmp_path.iterdir()] == ["ckpt.pth"]
    monkeypatch.undo()
    assert checkpoint.safe_load(path) == {"step": 1}

    def failed_write(obj, stream):
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(torch, "save", failed_write)
    with pytest.raises(OSError) as error:
        checkpoint.atomic_save({"step": 3}, path)
    assert error.value.errno == errno.EIO and error.value.filename == str(path)


def test_an_env_whose_close_raises_does_not_fail_a_finished_run(run_dirs, counting_env_class,
                                                               caplog):
    class CloseRaises(counting_env_class):
        def close(self):
            raise RuntimeError("the simulator was already gone")

    xwq.register_env("close_raises", CloseRaises)
    model = xwq.get_runner("qmix", "close_raises", "x", running_steps=40, parallels=2,
                           batch_size=2, vectorize="serial", **run_dirs).run()
    assert model.is_file()
    assert "closing the training envs of close_raises/x failed (RuntimeError: the simulator " \
           "was already gone)" in caplog.text


def test_a_several_line_error_is_printed_on_one_line(capsys, monkeypatch, tmp_path):
    import xwq.cli as cli

    def problems(args, overrides):
        raise xwq.EnvMismatchError("check_env found problems:\n- reset() returns obs only\n"
                                   "- no state()")

    monkeypatch.setattr(cli, "cmd_train", problems)
    assert main(["train"]) == 2
    assert capsys.readouterr().err == ("xwq train: error: check_env found problems: - reset() "
                                       "returns obs only - no state()\n")


def test_xwq_get_runner_stays_the_function_after_the_command_line_ran(tmp_path):
    """The CLI must not import the module xwq.get_runner by name: that would make the
    package attribute xwq.get_runner the module, and xwq.get_runner(...) fail later."""
    import subprocess
    import sys

    code = ("import types, xwq\nfrom xwq.cli import main\n"
            "assert main(['train', '--method', 'qmix', '--env', 'matrix_game', '--env-id', "
            "'nonmonotonic', '--set', 'running_steps=0']) == 2\n"
            "assert not isinstance(xwq.get_runner, types.ModuleType), xwq.get_runner\n")
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr
