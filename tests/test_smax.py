"""Env "smax": JaxMARL's SMAX as a native vectorised env.

The tests that step SMAX need jaxmarl (``pip install "xwq[smax]"``) and skip without it; they
share one small env (3m, 4 battles, 16-step limit, enemies that do not shoot) so that CI
compiles SMAX's step once (~15 s). The missing-package and unknown-map tests run everywhere.
"""

from __future__ import annotations

import os
import sys

import numpy as np
import pytest

import xwq
from xwq.errors import UnknownNameError

K, LIMIT = 4, 16
SETTINGS = {"max_steps": LIMIT, "enemy_shoots": False}
N_ALLIES, N_ENEMIES, UNIT_FEATURES = 3, 3, 10  # 3m; world state: 10 features per unit first


@pytest.fixture(scope="module")
def smax_env():
    pytest.importorskip("jaxmarl.environments.smax", reason='needs pip install "xwq[smax]"')
    from xwq.environment.envs.smax import SMAXVecEnv

    env = SMAXVecEnv("3m", K, **SETTINGS)
    yield env
    env.close()


def attack_or_advance(avail: np.ndarray) -> np.ndarray:
    """Attack the first enemy in range (actions 5+), else move east (action 1) towards them."""
    can_attack = avail[..., 5:]
    return np.where(can_attack.any(-1), 5 + can_attack.argmax(-1), 1)


def health(state: np.ndarray, first: int, count: int) -> np.ndarray:
    """Units' health fractions ``[K, count]`` from SMAX's world state."""
    return state[:, [UNIT_FEATURES * (first + i) for i in range(count)]]


# --- without jaxmarl ---------------------------------------------------------------------------
def test_missing_jaxmarl_says_what_to_install_at_get_runner(monkeypatch, run_dirs):
    for name in [m for m in sys.modules if m == "jaxmarl" or m.startswith("jaxmarl.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "jaxmarl", None)
    with pytest.raises(ImportError, match=r'pip install "xwq\[smax\]"'):
        xwq.get_runner("wqmix", "smax", "3m", **run_dirs)


def test_unknown_map_lists_the_smax_maps(run_dirs):
    with pytest.raises(UnknownNameError, match="unknown env_id '3mm'.*Did you mean '3m'"):
        xwq.get_runner("qmix", "smax", "3mm", **run_dirs)


def test_every_map_has_a_config_file():
    from xwq.common.config import available_envs, get_configs
    from xwq.environment.envs.smax import SMAX_MAPS

    assert sorted(available_envs()["smax"]) == sorted(SMAX_MAPS)
    config = get_configs(method="qmix", env="smax", env_id="3m")
    assert config.eval_metric == "battle_won" and config.vectorize == "auto"


def test_smax_is_native_only():
    assert "smax" in xwq.REGISTRY_NATIVE_ENV and "smax" not in xwq.REGISTRY_ENV


# --- with jaxmarl ------------------------------------------------------------------------------
def test_spec_shapes_and_masks(smax_env):
    spec = smax_env.spec
    assert spec.agents == ("ally_0", "ally_1", "ally_2")
    assert (spec.n_actions, spec.max_episode_steps) == (5 + N_ENEMIES, LIMIT)
    obs, state, avail = smax_env.reset(seed=0)
    assert obs.shape == (K, N_ALLIES, spec.obs_dim) and obs.dtype == np.float32
    assert state.shape == (K, spec.state_dim) and state.dtype == np.float32
    assert avail.shape == (K, N_ALLIES, spec.n_actions) and avail.dtype == bool
    assert avail[..., 4].all()             # stop is always available
    assert not avail[..., 5:].any()        # the armies start out of range
    obs[:] = 7.0  # the arrays are the caller's own (JAX's buffers are read-only)


def test_seed_reproduces_battles(smax_env):
    first = smax_env.reset(seed=3)
    again = smax_env.reset(seed=3)
    other = smax_env.reset(seed=4)
    for a, b in zip(first, again, strict=True):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(first[0], other[0])
    assert not np.array_equal(first[0][0], first[0][1])  # env k has its own key


def test_wins_terminate_with_the_won_flag_and_keep_the_terminal_observation(smax_env):
    obs, state, avail = smax_env.reset(seed=1)
    wins = 0
    for _ in range(LIMIT):
        result = smax_env.step(attack_or_advance(avail))
        done = result.done
        np.testing.assert_array_equal(result.final_obs[~done], result.obs[~done])
        np.testing.assert_array_equal(result.final_state[~done], result.state[~done])
        enemies_dead = (health(result.final_state, N_ALLIES, N_ENEMIES) == 0).all(axis=1)
        allies_alive = (health(result.final_state, 0, N_ALLIES) > 0).any(axis=1)
        np.testing.assert_array_equal(result.info["battle_won"],
                                      (enemies_dead & allies_alive).astype(np.float32))
        np.testing.assert_array_equal(result.terminated, enemies_dead | ~allies_alive)
        for k in np.flatnonzero(result.terminated):
            wins += 1
            assert result.info["dead_enemies"][k] == N_ENEMIES
            assert result.reward[k] > 1.0  # SMAX's win bonus is in the last reward
            # the next battle starts at full health, its first observation apart from the last
            assert (health(result.state[k:k + 1], 0, N_ALLIES + N_ENEMIES) == 1).all()
            assert not np.array_equal(result.final_obs[k], result.obs[k])
        avail = result.avail
    assert wins >= 1  # enemies that do not shoot lose


def test_time_limit_truncates_and_the_next_episode_runs_its_own_length(smax_env):
    smax_env.reset(seed=2)
    stop = np.full((K, N_ALLIES), 4)
    for episode in range(2):
        for t in range(1, LIMIT + 1):
            result = smax_env.step(stop)
            assert not result.terminated.any()
            assert result.truncated.all() == (t == LIMIT), (episode, t)
            assert not result.truncated.any() or t == LIMIT
        assert (result.info["battle_won"] == 0).all()


def test_reward_scale_and_normalized_state(smax_env):
    """reward_scale multiplies every reward (the win bonus too); normalize_state puts the
    world state's positions and unit types in [0, 1]; the battles are the same."""
    from xwq.environment.envs.smax import SMAXVecEnv

    scaled = SMAXVecEnv("3m", K, reward_scale=10.0, normalize_state=True, **SETTINGS)
    obs, state, avail = smax_env.reset(seed=5)
    obs_s, state_s, avail_s = scaled.reset(seed=5)
    np.testing.assert_array_equal(obs, obs_s)
    assert state.max() > 1.0 and 0.0 <= state_s.min() and state_s.max() <= 1.0
    n_units = N_ALLIES + N_ENEMIES
    positions = [UNIT_FEATURES * u + i for u in range(n_units) for i in (1, 2)]
    np.testing.assert_allclose(state_s[:, positions], state[:, positions] / 32, rtol=1e-6)
    types = slice(UNIT_FEATURES * n_units + n_units, None)
    np.testing.assert_allclose(state_s[:, types], state[:, types] / 5, rtol=1e-6)
    rewarded = 0.0
    for _ in range(LIMIT):
        result = smax_env.step(attack_or_advance(avail))
        result_s = scaled.step(attack_or_advance(avail_s))
        np.testing.assert_allclose(result_s.reward, 10.0 * result.reward, rtol=1e-5)
        np.testing.assert_array_equal(result_s.terminated, result.terminated)
        rewarded += float(result.reward.sum())
        avail, avail_s = result.avail, result_s.avail
    assert rewarded > 1.0  # damage and a win were rewarded, so the scale was tested
    scaled.close()


def test_bad_reward_scale_is_a_config_error():
    pytest.importorskip("jaxmarl.environments.smax", reason='needs pip install "xwq[smax]"')
    from xwq.environment.envs.smax import SMAXVecEnv
    from xwq.errors import ConfigError

    with pytest.raises(ConfigError, match="reward_scale"):
        SMAXVecEnv("3m", K, reward_scale=0, **SETTINGS)


def test_actions_are_checked(smax_env):
    smax_env.reset(seed=0)
    with pytest.raises(ValueError, match="shape"):
        smax_env.step(np.zeros((K, 2), dtype=int))
    with pytest.raises(ValueError, match="0..7"):
        smax_env.step(np.full((K, N_ALLIES), 8))


def test_jax_runs_on_allowed_cores(smax_env):
    from xwq.environment.envs import smax

    assert smax._jax_started_on and set(smax._jax_started_on) <= os.sched_getaffinity(0)


def test_training_runs_through_the_runner(smax_env, run_dirs):
    """make_envs picks the native env; same settings as the fixture: no new compile."""
    runner = xwq.get_runner("qmix", "smax", "3m", parallels=K, test_parallels=K,
                            env_kwargs=SETTINGS, running_steps=96, batch_size=2,
                            training_frequency=16, eval_interval=48, test_episode=4,
                            save_interval=0, buffer_size=64, **run_dirs)
    summary = runner.benchmark()
    assert summary["env_steps"] >= 96


def test_packaged_config_benchmark_reports_the_win_rate(run_dirs):
    """``get_runner('wqmix', 'smax', '3m').benchmark()`` as a new user types it (a short
    budget only): the packaged env settings (rewards x10, normalised state, 16 env steps per
    update) train, and the summary's headline is the greedy test win rate."""
    pytest.importorskip("jaxmarl.environments.smax", reason='needs pip install "xwq[smax]"')
    runner = xwq.get_runner("wqmix", "smax", "3m", running_steps=320, eval_interval=160,
                            test_episode=8, batch_size=2, buffer_size=32, save_interval=0,
                            **run_dirs)
    assert runner.config.env_kwargs["reward_scale"] == 10
    assert runner.config.env_kwargs["normalize_state"] is True
    summary = runner.benchmark()
    assert summary["eval_metric"] == "battle_won"
    assert summary["evaluations"] == 3
    assert 0.0 <= summary["final_test_battle_won"] <= 1.0
    assert summary["final_test_battle_won"] == summary["test_battle_won_mean"]
    assert summary["updates"] > 0
