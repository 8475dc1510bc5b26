"""A run's files under bad conditions: damaged, malicious or foreign models and checkpoints,
resume past a damaged checkpoint, damaged log lines, file permissions, and envs from outside
(``--import`` and the ``xwq.envs`` entry-point group)."""

from __future__ import annotations

import os
import stat
import sys

import pytest
import torch

import xwq
from xwq.cli import main
from xwq.runners.checkpoints import list_checkpoints

MATRIX = ("cw_qmix", "matrix_game", "nonmonotonic")


def small(run_dirs: dict, **extra) -> dict:
    return dict(running_steps=64, parallels=8, batch_size=8, test_parallels=4, test_episode=4,
                save_interval=32, **run_dirs) | extra


@pytest.fixture
def trained(run_dirs):
    """A finished cw_qmix run on the matrix game: its final model and its run folder."""
    runner = xwq.get_runner(*MATRIX, **small(run_dirs))
    model = runner.run()
    return model, runner.run_dir


def _test(run_dirs, model, method=MATRIX[0], env=MATRIX[1], env_id=MATRIX[2], **extra):
    return xwq.get_runner(method, env, env_id, is_test=True, model_path=str(model),
                          **small(run_dirs), **extra).run()


# --- models for test ---------------------------------------------------------------------------
def test_damaged_random_and_malicious_files_are_refused_by_name(run_dirs, trained, tmp_path):
    model, _ = trained
    data = model.read_bytes()
    cut = tmp_path / "cut.pth"
    cut.write_bytes(data[: len(data) // 2])
    noise = tmp_path / "noise.pth"
    noise.write_bytes(os.urandom(600))
    empty = tmp_path / "empty.pth"
    empty.write_bytes(b"")
    for path in (cut, noise, empty):
        with pytest.raises(xwq.CheckpointError, match=rf"refusing to load .*{path.name}: it is "
                                                      r"damaged or not a model/checkpoint "
                                                      r"file") as error:
            _test(run_dirs, path)
        assert "weights_only=False" not in str(error.value)

    class Payload:
        def __reduce__(self):
            return (os.system, ("echo never",))

    evil = tmp_path / "evil.pth"
    torch.save({"policy": Payload(), "config": {}}, evil)
    with pytest.raises(xwq.CheckpointError, match=r"refusing to load .*evil.pth: it holds "
                                                  r"code, not plain data") as error:
        _test(run_dirs, evil)
    assert "weights_only=False" not in str(error.value)


def test_a_model_of_another_method_or_env_says_what_it_was_trained_with(run_dirs, trained):
    model, _ = trained
    with pytest.raises(xwq.CheckpointError, match=r"trained with method 'cw_qmix' on env "
                                                  r"'matrix_game'/'nonmonotonic' .*mixer 'QMIX' "
                                                  r"\(here 'VDN'\)"):
        _test(run_dirs, model, method="vdn")
    with pytest.raises(xwq.CheckpointError, match=r"trained with method 'cw_qmix' on env "
                                                  r"'matrix_game'.*env_name 'matrix_game' "
                                                  r"\(here 'predator_prey'\)"):
        _test(run_dirs, model, env="predator_prey", env_id="punishment")
    not_xwq = run_dirs["log_dir"] + "/plain.pth"
    torch.save({"weights": torch.ones(2)}, not_xwq)
    with pytest.raises(xwq.CheckpointError, match="is not an xwq model or checkpoint"):
        _test(run_dirs, not_xwq)


def test_a_training_checkpoint_can_be_tested_like_a_model(run_dirs, trained, capsys):
    model, run_dir = trained
    checkpoint = list_checkpoints(run_dir)[-1]
    assert _test(run_dirs, checkpoint) == _test(run_dirs, model)
    argv = ["test", "--method", MATRIX[0], "--env", MATRIX[1], "--env-id", MATRIX[2],
            "--model", str(checkpoint)]
    for key, value in small(run_dirs).items():
        argv += ["--set", f"{key}={value}"]
    assert main(argv) == 0
    assert "mean greedy return" in capsys.readouterr().out


# --- resume ------------------------------------------------------------------------------------
def test_resume_auto_passes_over_a_damaged_newest_checkpoint(run_dirs, caplog):
    runner = xwq.get_runner(*MATRIX, **small(run_dirs, running_steps=96, keep_checkpoints=5))
    real = runner.agents.train

    def interrupted(*args, **kwargs):
        kwargs["until_env_steps"] = min(kwargs["until_env_steps"], 64)
        real(*args, **kwargs)
        raise KeyboardInterrupt

    runner.agents.train = interrupted
    with pytest.raises(KeyboardInterrupt):
        runner.run()
    checkpoints = list_checkpoints(runner.run_dir)
    assert [p.name for p in checkpoints] == ["ckpt_32.pth", "ckpt_64.pth"]
    newest = checkpoints[-1]
    newest.write_bytes(newest.read_bytes()[:100])  # a disk that filled up mid-write
    resumed = xwq.get_runner(*MATRIX, **small(run_dirs, running_steps=96, keep_checkpoints=5))
    resumed.run(resume="auto")
    assert resumed.run_dir == runner.run_dir
    assert "ckpt_64.pth: it is damaged" in caplog.text
    summary = xwq.runners.run_folder.read_summary(resumed.run_dir)
    assert summary["env_steps"] == 96 and summary["resumed_from"][-1].endswith("ckpt_32.pth")


# --- logs --------------------------------------------------------------------------------------
def test_a_damaged_log_line_is_named_by_file_and_line(run_dirs):
    summary = xwq.get_runner(*MATRIX, **small(run_dirs, eval_interval=32)).benchmark()
    metrics = os.path.join(summary["run_dir"], "metrics.jsonl")
    with open(metrics, "a") as handle:
        handle.write('{"env_step": 96, "test_return_m\n')
    with pytest.raises(xwq.CheckpointError, match=r"metrics.jsonl, line 4: not a JSON row"):
        xwq.runners.plot_results([summary["run_dir"]], out_dir=run_dirs["log_dir"] + "/cmp")


# --- permissions -------------------------------------------------------------------------------
def test_models_and_checkpoints_get_the_permissions_of_the_logs(run_dirs):
    previous = os.umask(0o022)
    try:
        runner = xwq.get_runner(*MATRIX, **small(run_dirs))
        model = runner.run()
    finally:
        os.umask(previous)
    modes = {path.name: stat.S_IMODE(path.stat().st_mode)
             for path in (model, list_checkpoints(runner.run_dir)[-1],
                          runner.run_dir / "train.jsonl", runner.run_dir / "config.yaml")}
    assert set(modes.values()) == {0o644}, modes


# --- envs from outside -------------------------------------------------------------------------
ENV_MODULE = '''
import numpy as np
from gymnasium import spaces
import xwq


class Coin(xwq.MultiAgentEnv):
    """Two agents; reward 1 when both pick action 1."""

    def __init__(self, env_id="x", **kwargs):
        self.agents = ["a", "b"]
        self.observation_space = {a: spaces.Box(0, 1, (2,), np.float32) for a in self.agents}
        self.action_space = {a: spaces.Discrete(2) for a in self.agents}
        self.state_space = spaces.Box(0, 1, (4,), np.float32)
        self.max_episode_steps = 1

    def reset(self, seed=None):
        return {a: np.ones(2, np.float32) for a in self.agents}, {}

    def step(self, actions):
        reward = float(all(actions[a] == 1 for a in self.agents))
        obs = {a: np.ones(2, np.float32) for a in self.agents}
        return (obs, {a: reward for a in self.agents}, {a: True for a in self.agents},
                {a: False for a in self.agents}, {})

    def state(self):
        return np.ones(4, np.float32)
'''


def test_cli_import_registers_the_users_envs(tmp_path, monkeypatch, capsys):
    (tmp_path / "my_envs.py").write_text(ENV_MODULE + "\nxwq.register_env('coin', Coin)\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "my_envs", raising=False)
    base = ["train", "--method", "qmix", "--env", "coin", "--env-id", "x", "--set",
            f"log_dir={tmp_path / 'logs'}", f"model_dir={tmp_path / 'models'}",
            "progress_bar=false", "running_steps=32", "parallels=4", "batch_size=4"]
    assert main([*base, "--import", "my_envs"]) == 0
    assert main([*base, "--import", "no_such_module_here"]) == 2
    assert "--import no_such_module_here: cannot import it" in capsys.readouterr().err


def test_installed_packages_declare_envs_by_entry_point(tmp_path, monkeypatch, run_dirs):
    from xwq.components import register_entry_point_envs

    (tmp_path / "coin_pkg.py").write_text(ENV_MODULE)
    info = tmp_path / "coin_pkg-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: coin-pkg\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[xwq.envs]\ncoin_ep = coin_pkg:Coin\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "coin_pkg", raising=False)
    try:
        assert "coin_ep" in register_entry_point_envs()
        assert "coin_pkg" not in sys.modules  # imported only when used
        model = xwq.get_runner("vdn", "coin_ep", "x", running_steps=32, parallels=4,
                               batch_size=4, **run_dirs).run()
        assert model.is_file() and "coin_pkg" in sys.modules
    finally:
        xwq.REGISTRY_ENV.pop("coin_ep", None)


@pytest.mark.parametrize("env, env_id", [("matrix_game", "nonmonotonic"),
                                         ("predator_prey", "punishment"),
                                         ("mpe", "simple_spread_v3")])
@pytest.mark.parametrize("vectorize", ["auto", "serial"])
def test_env_kwargs_an_env_does_not_take_are_config_errors(env, env_id, vectorize, run_dirs):
    with pytest.raises(xwq.ConfigError, match=r"env_kwargs.*punishmnt"):
        xwq.get_runner("qmix", env, env_id, env_kwargs={"punishmnt": 1}, vectorize=vectorize,
                       **run_dirs).run()


@pytest.mark.skipif(sys.version_info < (3, 11), reason="exception notes")
def test_an_env_failing_mid_training_says_where_and_how_to_continue(run_dirs, counting_env_class):
    class Flaky(counting_env_class):
        calls = 0

        def step(self, actions):
            Flaky.calls += 1
            if Flaky.calls == 120:
                raise RuntimeError("the simulator crashed")
            return super().step(actions)

    xwq.register_env("flaky", Flaky)
    runner = xwq.get_runner("qmix", "flaky", "x", running_steps=400, save_interval=40,
                            parallels=2, batch_size=2, vectorize="serial", **run_dirs)
    with pytest.raises(RuntimeError, match="the simulator crashed") as error:
        runner.run()
    note = error.value.__notes__[-1]
    assert "flaky/x, seed 1, stopped at env step" in note and "of 400" in note
    assert "--resume auto continues from" in note and "ckpt_" in note


def test_a_greedy_test_run_allocates_no_replay_buffer(run_dirs, trained, caplog):
    model, _ = trained
    caplog.clear()
    runner = xwq.get_runner(*MATRIX, is_test=True, model_path=str(model),
                            **small(run_dirs, buffer_size=10**5, buffer_memory_budget_mb=1))
    assert isinstance(runner.run(), float)
    assert runner.agents._buffer is None and "replay buffer" not in caplog.text
    # training with the same config is refused before any run folder exists
    with pytest.raises(xwq.XwqError, match="buffer_memory_budget_mb"):
        xwq.get_runner(*MATRIX, **small(run_dirs, buffer_size=10**5, buffer_memory_budget_mb=1,
                                        log_dir=run_dirs["log_dir"] + "/big")).run()
    assert not os.path.exists(run_dirs["log_dir"] + "/big")
