"""Agents end to end: the matrix game is solved, save/load, seeding, update ratio, every method
trains on MPE, get_runner run/test."""

import numpy as np
import pytest
import torch

import xwq
from xwq.agents import IQL_Agents, QMIX_Agents, VDN_Agents, WQMIX_Agents
from xwq.agents.tables import joint_action_tables


def _solve(method, seed, run_dirs, steps=800):
    runner = xwq.get_runner(method, "matrix_game", "nonmonotonic", seed=seed,
                            running_steps=steps, **run_dirs)
    runner.agents.train(steps // runner.config.parallels)
    greedy = runner.agents.test(runner.test_envs, 8)
    tables = joint_action_tables(runner.agents)
    runner.finish()
    return greedy, tables


@pytest.mark.parametrize("method", ["cw_qmix", "ow_qmix"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_weighted_qmix_solves_the_nonmonotonic_matrix_game(method, seed, run_dirs):
    returns, tables = _solve(method, seed, run_dirs)
    assert returns == [8.0] * 8  # greedy joint action (0, 0)
    q_tot, q_star = tables["q_tot"], tables["q_star"]
    assert q_tot[0, 0] == pytest.approx(8.0, abs=1.0)
    # Q̂* recovers the payoff matrix
    payoff = np.array([[8, -12, -12], [-12, 0, 0], [-12, 0, 0]])
    np.testing.assert_allclose(q_star, payoff, atol=1.5)
    off_optimum = np.delete(q_tot.reshape(-1), 0)
    expected = -6.0 if method == "cw_qmix" else -12 * 0.1 / 1.1  # the weighted projections
    assert np.median(off_optimum) == pytest.approx(expected, abs=1.5)


def test_qmix_settles_for_a_suboptimal_joint_action(run_dirs):
    failures = 0
    for seed in range(3):
        returns, tables = _solve("qmix", seed, run_dirs)
        failures += returns[0] != 8.0
        assert tables["q_tot"][0, 0] < 0  # the monotonic projection cannot represent the 8
    assert failures == 3


def test_same_seed_same_numbers_different_seed_different(run_dirs):
    def losses(seed):
        runner = xwq.get_runner("cw_qmix", "matrix_game", "nonmonotonic", seed=seed,
                                running_steps=128, **run_dirs)
        stats = runner.agents.train(4)
        params = torch.cat([p.flatten() for p in runner.agents.policy.parameters()])
        return stats["loss"], params

    (loss_a, params_a), (loss_b, params_b) = losses(3), losses(3)
    assert loss_a == loss_b and torch.equal(params_a, params_b)
    loss_c, params_c = losses(4)
    assert not torch.equal(params_a, params_c)


def test_update_count_follows_training_frequency_exactly(run_dirs):
    counts = {}
    for parallels in (2, 8):
        runner = xwq.get_runner("vdn", "matrix_game", "nonmonotonic", parallels=parallels,
                                batch_size=8, training_frequency=4, **run_dirs)
        runner.agents.train(400 // parallels)
        counts[parallels] = runner.agents.learner.updates
    # 1 update per 4 env steps, counted from the round in which the buffer first holds 8
    # episodes (with 2 envs that round starts after 6 steps; with 8 envs it is the first)
    assert counts[2] == (400 - 6) // 4 and counts[8] == 400 // 4


def test_epsilon_counts_env_steps_not_vectorised_steps(run_dirs):
    runner = xwq.get_runner("qmix", "mpe", "simple_spread_v3", parallels=8,
                            decay_step_greedy=400, start_greedy=1.0, end_greedy=0.0,
                            running_steps=200, **run_dirs)
    runner.agents.train(25)  # 25 vectorised steps = 200 env steps
    assert runner.agents.env_steps == 200
    assert runner.agents.epsilon(runner.agents.env_steps) == pytest.approx(0.5)


def test_save_and_load_give_identical_q_values(tmp_path, run_dirs):
    runner = xwq.get_runner("wqmix", "mpe", "simple_spread_v3", seed=1, parallels=2,
                            batch_size=2, **run_dirs)
    runner.agents.train(50)
    path = runner.agents.save_model(tmp_path / "model.pth")
    other = xwq.get_runner("wqmix", "mpe", "simple_spread_v3", seed=2, parallels=2, **run_dirs)
    obs, _, avail = runner.envs.reset(seed=0)
    inputs = torch.as_tensor(obs).unsqueeze(1)
    prev = torch.full((2, 1, 3), -1)

    def q_values(agents):
        x = agents.policy.build_inputs(inputs, prev)
        return agents.policy.agent(x)[0], agents.policy.star_agent(x)[0]

    assert not torch.equal(q_values(runner.agents)[0], q_values(other.agents)[0])
    other.agents.load_model(path)
    for a, b in zip(q_values(runner.agents), q_values(other.agents)):
        assert torch.equal(a, b)
    for a, b in zip(other.agents.learner.targets.parameters(),
                    list(other.agents.policy.star_agent.parameters())
                    + list(other.agents.policy.star_mixer.parameters())):
        assert torch.equal(a, b)


@pytest.mark.parametrize("method", ["iql", "vdn", "qmix", "wqmix", "cw_qmix", "ow_qmix"])
@pytest.mark.parametrize("env_id", ["simple_spread_v3", "simple_reference_v3",
                                    "simple_speaker_listener_v4"])
def test_every_method_trains_on_every_mpe_scenario(method, env_id, run_dirs):
    runner = xwq.get_runner(method, "mpe", env_id, parallels=4, batch_size=4,
                            running_steps=300, log_interval=100, **run_dirs)
    stats = runner.agents.train(75)
    assert runner.agents.env_steps == 300 and runner.agents.learner.updates > 0
    assert np.isfinite(stats["loss"])
    runner.finish()


def test_agent_classes_and_their_requirements(run_dirs):
    classes = {"iql": IQL_Agents, "vdn": VDN_Agents, "qmix": QMIX_Agents,
               "wqmix": WQMIX_Agents}
    for method, cls in classes.items():
        runner = xwq.get_runner(method, "matrix_game", "nonmonotonic", **run_dirs)
        assert type(runner.agents) is cls
    config = xwq.get_configs(method="qmix", env="matrix_game", env_id="nonmonotonic",
                             overrides={"mixer": "VDN"})
    with pytest.raises(ValueError, match="QMIX_Agents needs config key 'mixer' in \\['QMIX'\\]"):
        QMIX_Agents(config, xwq.make_envs(config))


def test_run_trains_saves_and_is_test_loads(run_dirs, tmp_path):
    kwargs = dict(running_steps=256, eval_interval=128, test_episode=4, **run_dirs)
    model = xwq.get_runner("ow_qmix", "matrix_game", "nonmonotonic", **kwargs).run()
    assert model.is_file() and "seed_1_" in str(model)
    assert list((tmp_path / "logs").rglob("train.csv"))
    assert list((tmp_path / "logs").rglob("events.out.tfevents.*"))
    mean = xwq.get_runner("ow_qmix", "matrix_game", "nonmonotonic", is_test=True,
                          **kwargs).run()
    assert isinstance(mean, float) and -12.0 <= mean <= 8.0
    with pytest.raises(FileNotFoundError, match="no trained model for seed 9"):
        xwq.get_runner("ow_qmix", "matrix_game", "nonmonotonic", is_test=True, seed=9,
                       **kwargs).run()


def test_custom_env_flow_from_a_config_file(tmp_path, counting_env_class, run_dirs):
    """The XuanCe-style flow: get_configs(file_dir) -> REGISTRY_ENV -> make_envs -> agents."""
    path = tmp_path / "my_env.yaml"
    path.write_text("method: wqmix\nenv_name: counting_flow\nenv_id: x\nparallels: 2\n"
                    "running_steps: 120\nbatch_size: 4\ntraining_frequency: 4\n"
                    "progress_bar: false\n"
                    f"log_dir: {tmp_path / 'logs'}\n")
    configs = xwq.get_configs(file_dir=path)
    xwq.REGISTRY_ENV[configs.env_name] = counting_env_class
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        xwq.setup_process(configs)
        assert torch.get_num_threads() == configs.threads == 1
    finally:
        torch.set_num_threads(threads)
    envs = xwq.make_envs(configs)
    agent = WQMIX_Agents(config=configs, envs=envs)
    agent.train(configs.running_steps // configs.parallels)
    assert agent.env_steps >= 120 and agent.learner.updates > 0
    saved = agent.save_model(tmp_path / "custom.pth")
    agent.finish()
    assert saved.is_file()
