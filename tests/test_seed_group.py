"""Seeds as a batch dimension: stacked networks, the stacked update, and a seed group whose
members train exactly as each seed alone (to float rounding)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

import xwq
from xwq.agents.seed_group import GroupAbortedError, SeedGroup
from xwq.learners import NonFiniteLossError
from xwq.learners.stacked import StackedLearner, stack_batches
from xwq.policies.stacked import MatmulGRU, StackedModules, vmappable

TOLERANCE = 1e-5


def make_agents(tmp_path, seed: int, method: str = "qmix", **overrides):
    runner = xwq.get_runner(method, "mpe", "simple_spread_v3", progress_bar=False,
                            vectorize="native", log_dir=str(tmp_path / "logs"), seed=seed,
                            parallels=2, batch_size=4, **overrides)
    return runner.agents


def fill(agents, episodes: int = 6) -> None:
    while agents.buffer.size < episodes:
        agents.collect()


def max_difference(a: nn.Module, b: nn.Module) -> float:
    return max((p - q).abs().max().item() for p, q in zip(a.parameters(), b.parameters()))


def shorter(batch: dict, steps: int) -> dict:
    """The same episodes cut to their first ``steps`` steps (a batch of another length)."""
    return {key: value[:, :steps + 1] if key in ("obs", "state", "avail") else value[:, :steps]
            for key, value in batch.items()}


# --- the networks --------------------------------------------------------------------------
def test_matmul_gru_is_nn_gru():
    torch.manual_seed(0)
    gru = nn.GRU(8, 16, batch_first=True)
    mine = MatmulGRU(gru)
    x, h0 = torch.randn(5, 7, 8, requires_grad=True), torch.randn(1, 5, 16)
    (out, h), (out2, h2) = gru(x, h0), mine(x, h0)
    assert torch.allclose(out, out2, atol=1e-6) and torch.allclose(h, h2, atol=1e-6)
    grads = torch.autograd.grad(out.pow(2).sum(), [x, gru.weight_hh_l0])
    grads2 = torch.autograd.grad(out2.pow(2).sum(), [x, mine.weight_hh_l0])
    assert all(torch.allclose(a, b, atol=1e-5) for a, b in zip(grads, grads2))
    assert torch.allclose(gru(x)[0], mine(x)[0], atol=1e-6)  # from a zero hidden state


def test_vmappable_keeps_parameter_names_and_numbers(tmp_path):
    policy = make_agents(tmp_path, 1).policy
    template = vmappable(policy)
    assert [n for n, _ in template.named_parameters()] == [n for n, _ in policy.named_parameters()]
    assert not any(isinstance(m, nn.GRU) for m in template.modules())
    inputs = torch.randn(3, 4, policy.n_agents, policy.input_dim)
    assert torch.allclose(template.agent(inputs)[0], policy.agent(inputs)[0], atol=1e-6)


def test_stacked_modules_views_write_through():
    seeds = [nn.Linear(3, 2) for _ in range(4)]
    stack = StackedModules(seeds)
    with torch.no_grad():
        stack.params["bias"][2].fill_(7.0)
    assert torch.equal(seeds[2].bias, torch.full((2,), 7.0))
    seeds[1].load_state_dict({"weight": torch.ones(2, 3), "bias": torch.zeros(2)})
    assert torch.equal(stack.params["weight"][1], torch.ones(2, 3))
    assert torch.equal(stack.state([1, 3])["weight"][0], torch.ones(2, 3))


# --- the stacked update --------------------------------------------------------------------
@pytest.mark.parametrize("method, overrides", [
    ("qmix", {}), ("vdn", {}), ("iql", {}), ("cw_qmix", {}), ("ow_qmix", {}),
    ("qmix", {"optimizer": "adam", "sync_frequency": 2, "grad_clip_norm": 0.5}),
])
def test_stacked_update_is_each_seeds_own_update(tmp_path, method, overrides):
    """S learners updated separately and the same S updated as one stack end with the same
    parameters, targets, statistics and optimiser state — with batches of different lengths
    (padded in the stack)."""
    seeds = [1, 2, 3]
    alone = [make_agents(tmp_path, s, method, **overrides) for s in seeds]
    stacked = [make_agents(tmp_path, s, method, **overrides) for s in seeds]
    for agents in alone:
        fill(agents)
    learner = StackedLearner(stacked[0].config, [a.learner for a in stacked])
    for update in range(4):
        batches = [shorter(a.buffer.sample(4, a.rng), steps) for a, steps
                   in zip(alone, (25, 17, 25))]
        expected = [a.learner.update(b, episodes=update * 3) for a, b in zip(alone, batches)]
        got = learner.update(batches, [update * 3] * len(seeds))
        for want, have in zip(expected, got):
            assert want.keys() == have.keys()
            assert all(math.isclose(want[k], have[k], rel_tol=1e-4, abs_tol=1e-5) for k in want)
    for a, b in zip(alone, stacked):
        assert max_difference(a.policy, b.policy) < TOLERANCE
        assert max_difference(a.learner.targets, b.learner.targets) < TOLERANCE
        assert a.learner.updates == b.learner.updates == 4
        learner.export_optimizer(stacked.index(b))
        state_a = a.learner.optimizer.state_dict()["state"]
        state_b = b.learner.optimizer.state_dict()["state"]
        assert state_a.keys() == state_b.keys()
        for index, values in state_a.items():
            assert values.keys() == state_b[index].keys()
            for key, value in values.items():
                assert value.dtype == state_b[index][key].dtype
                assert torch.allclose(value, state_b[index][key], atol=1e-6), key


def test_a_round_updates_only_the_seeds_given_a_batch(tmp_path):
    agents = [make_agents(tmp_path, s) for s in (1, 2)]
    for a in agents:
        fill(a)
    learner = StackedLearner(agents[0].config, [a.learner for a in agents])
    before = [p.detach().clone() for p in agents[1].policy.parameters()]
    learner.update([agents[0].buffer.sample(4, agents[0].rng), None], [0, 0])
    assert agents[0].learner.updates == 1 and agents[1].learner.updates == 0
    assert all(torch.equal(p, q) for p, q in zip(before, agents[1].policy.parameters()))
    assert learner.optimizer.steps == [1, 0]


def test_a_diverged_seed_fails_alone(tmp_path):
    agents = [make_agents(tmp_path, s) for s in (1, 2)]
    for a in agents:
        fill(a)
    learner = StackedLearner(agents[0].config, [a.learner for a in agents])
    before = [p.detach().clone() for p in agents[0].policy.parameters()]
    bad = agents[0].buffer.sample(4, agents[0].rng)
    bad["reward"] = torch.full_like(bad["reward"], float("nan"))
    results = learner.update([bad, agents[1].buffer.sample(4, agents[1].rng)], [0, 0])
    assert isinstance(results[0], NonFiniteLossError) and "non-finite loss" in str(results[0])
    assert isinstance(results[1], dict) and agents[1].learner.updates == 1
    assert all(torch.equal(p, q) for p, q in zip(before, agents[0].policy.parameters()))


def test_stack_batches_pads_with_unfilled_steps():
    batch = {"obs": torch.ones(2, 4, 3, 5), "filled": torch.ones(2, 3, dtype=torch.bool)}
    short = {"obs": torch.ones(2, 2, 3, 5), "filled": torch.ones(2, 1, dtype=torch.bool)}
    stacked = stack_batches([batch, short])
    assert stacked["obs"].shape == (2, 2, 4, 3, 5) and stacked["filled"].shape == (2, 2, 3)
    assert not stacked["filled"][1, :, 1:].any() and not stacked["obs"][1, :, 2:].any()


# --- the group -----------------------------------------------------------------------------
@pytest.mark.parametrize("method, overrides", [
    ("qmix", {}), ("ow_qmix", {"sync_frequency": 4}), ("vdn", {"representation": "Basic_MLP"}),
])
def test_a_seed_trained_in_a_group_is_that_seed_trained_alone(tmp_path, method, overrides):
    alone = make_agents(tmp_path, 2, method, **overrides)
    members = [make_agents(tmp_path, s, method, **overrides) for s in (5, 2, 9)]
    group = SeedGroup(members)
    alone.train(150)
    group.run([lambda a=a: a.train(150) for a in members])
    member = members[1]
    assert member.env_steps == alone.env_steps == 300
    assert member.learner.updates == alone.learner.updates > 0
    # the same ε draws and actions, so the same episodes in the buffer
    for key, array in alone.buffer.data.items():
        assert np.array_equal(array, member.buffer.data[key]), key
    assert member.rng.bit_generator.state == alone.rng.bit_generator.state
    assert max_difference(alone.policy, member.policy) < TOLERANCE
    assert max_difference(alone.learner.targets, member.learner.targets) < TOLERANCE
    assert not np.array_equal(members[0].buffer.data["actions"], alone.buffer.data["actions"])


def test_a_members_checkpoint_is_its_own_and_loads_back(tmp_path):
    alone = make_agents(tmp_path, 2)
    members = [make_agents(tmp_path, s) for s in (1, 2)]
    group = SeedGroup(members)
    alone.train(100)
    group.run([lambda a=a: a.train(100) for a in members])
    mine, theirs = members[1].state_dict(include_buffer=True), alone.state_dict(include_buffer=True)
    weight = next(iter(mine["policy"].values()))
    assert weight.untyped_storage().nbytes() == weight.nbytes  # a copy, not a view of the stack
    assert mine["learner"]["updates"] == theirs["learner"]["updates"]
    for index, values in theirs["learner"]["optimizer"]["state"].items():
        for key, value in values.items():
            assert torch.allclose(value, mine["learner"]["optimizer"]["state"][index][key],
                                  atol=1e-6)
    # loading a single run's checkpoint into a member writes its rows of the stack
    members[0].load_state_dict(theirs)
    assert max_difference(members[0].policy, alone.policy) == 0.0
    assert group.learner.optimizer.steps[0] == theirs["learner"]["updates"]


def test_a_group_refuses_seeds_of_different_configs(tmp_path):
    with pytest.raises(xwq.UsageError, match="learning_rate"):
        SeedGroup([make_agents(tmp_path, 1), make_agents(tmp_path, 2, learning_rate=1e-3)])
    with pytest.raises(xwq.UsageError, match="distinct"):
        SeedGroup([make_agents(tmp_path, 1), make_agents(tmp_path, 1)])


def test_a_failing_member_leaves_and_the_others_finish(tmp_path):
    members = [make_agents(tmp_path, s) for s in (1, 2)]
    group = SeedGroup(members)

    def broken():
        members[0].train(10)
        raise RuntimeError("env crashed")

    with pytest.raises(RuntimeError, match="env crashed"):
        group.run([broken, lambda: members[1].train(100)])
    assert members[1].env_steps == 200 and members[1].learner.updates > 0


def test_an_error_in_a_batched_step_reaches_every_member(tmp_path):
    members = [make_agents(tmp_path, s) for s in (1, 2)]
    group = SeedGroup(members)
    group.greedy = None  # the batched acting step now fails
    with pytest.raises(GroupAbortedError, match="batched step"):
        group.run([lambda a=a: a.train(5) for a in members])


def test_a_group_runs_again_after_its_members_left(tmp_path):
    members = [make_agents(tmp_path, s) for s in (1, 2)]
    alone = make_agents(tmp_path, 2)
    group = SeedGroup(members)
    group.run([lambda a=a: a.train(60) for a in members])
    group.run([lambda a=a: a.train(60) for a in members])
    alone.train(120)
    assert members[1].learner.updates == alone.learner.updates > 0
    assert max_difference(alone.policy, members[1].policy) < TOLERANCE


def test_a_stopped_group_stops_every_member_at_its_next_step(tmp_path):
    members = [make_agents(tmp_path, s) for s in (1, 2)]
    group = SeedGroup(members)
    group.rendezvous.stop(GroupAbortedError("stopped"))
    with pytest.raises(GroupAbortedError, match="stopped"):
        group.rendezvous.call(0, "act", None)
    group.run([lambda a=a: a.train(5) for a in members])  # a new run starts afresh
    assert members[0].env_steps == 10


def test_ctrl_c_stops_every_member(tmp_path):
    import signal
    import threading

    members = [make_agents(tmp_path, s) for s in (1, 2)]
    group = SeedGroup(members)
    steps = 20_000  # far more than the members reach once stopped; bounded if they are not

    def interrupted():
        members[0].train(5)
        # Ctrl-C: SIGINT to the main thread, which waits in group.run
        signal.pthread_kill(threading.main_thread().ident, signal.SIGINT)
        return members[0].train(steps)

    # Python's own handler, whatever an earlier test or library installed (a C-level handler
    # that swallows SIGINT would make this test train to the end)
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        with pytest.raises(KeyboardInterrupt):
            group.run([interrupted, lambda: members[1].train(steps)])
    finally:
        signal.signal(signal.SIGINT, previous)
    assert members[0].env_steps < steps // 2 and members[1].env_steps < steps // 2
