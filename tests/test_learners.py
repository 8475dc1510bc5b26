"""The learners: weighting formulas on hand-made tensors, targets, masking, composition."""

import copy

import numpy as np
import pytest
import torch

import xwq
from xwq.agents.buffer import BufferTooLargeError, EpisodeBuffer
from xwq.environment.interfaces import EnvSpec
from xwq.learners import (
    NonFiniteLossError,
    QMIXLearner,
    WeightingContext,
    WQMIXLearner,
    cw_weights,
    ow_weights,
)
from xwq.policies import MixingQNetwork, WeightedMixingQNetwork

SPEC = EnvSpec(agents=("a", "b"), obs_dim=3, state_dim=4, n_actions=3, max_episode_steps=4)


def _context(alpha, td_error=None, targets=None, actions=None, greedy_actions=None,
             q_star_at_greedy=None):
    """A WeightingContext with the fields a test gives; the rest zeros (unused by that rule)."""
    steps = (td_error if td_error is not None else targets).shape
    zeros, no_actions = torch.zeros(steps), torch.zeros(*steps, 1, dtype=torch.long)

    def given(value, default):
        return default if value is None else value

    return WeightingContext(
        td_error=given(td_error, zeros), targets=given(targets, zeros),
        actions=given(actions, no_actions), greedy_actions=given(greedy_actions, no_actions),
        q_star_at_greedy=given(q_star_at_greedy, zeros), alpha=alpha,
        mask=torch.ones(steps, dtype=torch.bool))


def test_ow_weights():
    td = torch.tensor([-2.0, -1e-6, 0.0, 3.0])
    np.testing.assert_allclose(ow_weights(_context(0.1, td_error=td)), [1.0, 1.0, 0.1, 0.1])


def test_cw_weights_full_when_every_agent_is_greedy_only():
    actions = torch.tensor([[[0, 1], [0, 1], [2, 1]]])  # [B=1, T=3, n=2]
    greedy = torch.tensor([[[0, 1], [0, 2], [0, 2]]])
    targets = torch.zeros(1, 3)
    q_star = torch.ones(1, 3)  # target below Q̂*(s, û): second condition false
    context = _context(0.3, targets=targets, actions=actions, greedy_actions=greedy,
                       q_star_at_greedy=q_star)
    np.testing.assert_allclose(cw_weights(context), [[1.0, 0.3, 0.3]])


def test_cw_weights_full_when_target_beats_q_star_at_greedy_action():
    actions = torch.tensor([[[2, 2], [2, 2], [2, 2]]])
    greedy = torch.zeros(1, 3, 2, dtype=torch.long)  # never greedy
    targets = torch.tensor([[1.0, 0.5, 2.0]])
    q_star = torch.tensor([[0.5, 0.5, 2.5]])  # strictly greater only in the first step
    context = _context(0.1, targets=targets, actions=actions, greedy_actions=greedy,
                       q_star_at_greedy=q_star)
    np.testing.assert_allclose(cw_weights(context), [[1.0, 0.1, 0.1]])


def _batch(B=5, T=4, seed=0):
    rng = np.random.default_rng(seed)
    filled = np.ones((B, T), bool)
    filled[0, 2:] = False  # a short episode, padded
    terminated = np.zeros((B, T), bool)
    terminated[0, 1] = True
    avail = rng.random((B, T + 1, 2, 3)) < 0.7
    avail[..., 0] = True
    avail[0, 3:] = False  # padding has no available action
    return {
        "obs": torch.tensor(rng.normal(size=(B, T + 1, 2, 3)), dtype=torch.float32),
        "state": torch.tensor(rng.normal(size=(B, T + 1, 4)), dtype=torch.float32),
        "avail": torch.tensor(avail),
        "actions": torch.tensor(rng.integers(0, 3, (B, T, 2))),
        "reward": torch.tensor(rng.normal(size=(B, T)), dtype=torch.float32),
        "terminated": torch.tensor(terminated), "filled": torch.tensor(filled),
    }


def _learner(method, **overrides):
    config = xwq.get_configs(method=method, overrides={"sync_frequency": 3, **overrides})
    policy_class = WeightedMixingQNetwork if config.learner == "WQMIX_Learner" else MixingQNetwork
    torch.manual_seed(0)
    policy = policy_class(config, SPEC)
    learner_class = WQMIXLearner if config.learner == "WQMIX_Learner" else QMIXLearner
    return learner_class(config, policy)


def test_qmix_target_is_double_q_through_target_networks_and_stops_at_termination():
    learner = _learner("qmix", gamma=0.5)
    batch = _batch()
    with torch.no_grad():  # make the target networks differ from the online ones
        for p in learner.targets.parameters():
            p.add_(0.3)
    policy = learner.policy
    actions = batch["actions"]
    inputs = policy.build_inputs(batch["obs"], torch.cat(
        [torch.full_like(actions[:, :1], -1), actions], dim=1))
    with torch.no_grad():
        q_online, _ = policy.agent(inputs)
        q_target, _ = learner.targets["agent"](inputs)
        allowed = batch["avail"] | ~batch["avail"].any(-1, keepdim=True)
        greedy = q_online.masked_fill(~allowed, -np.inf).argmax(-1)
        chosen = greedy[:, 1:]
        next_q = q_target[:, 1:].gather(-1, chosen.unsqueeze(-1)).squeeze(-1)
        next_tot = learner.targets["mixer"](next_q, batch["state"][:, 1:])
        expected = batch["reward"] + 0.5 * (1 - batch["terminated"].float()) * next_tot
        targets, _ = learner.compute_targets(batch, inputs, greedy)
    torch.testing.assert_close(targets, expected)
    assert targets[0, 1] == batch["reward"][0, 1]  # terminated: no bootstrap
    assert avail_ok(chosen, batch["avail"][:, 1:])


def avail_ok(actions, avail):
    has_any = avail.any(-1)
    picked = avail.gather(-1, actions.unsqueeze(-1)).squeeze(-1)
    return bool((picked | ~has_any).all())


def _forward(learner, batch):
    """The online pass of ``QMIXLearner.update``: inputs, all Qs, Q_tot at the taken actions."""
    policy, actions = learner.policy, batch["actions"]
    inputs = policy.build_inputs(batch["obs"], torch.cat(
        [torch.full_like(actions[:, :1], -1), actions], dim=1))
    q_all, _ = policy.agent(inputs)
    q_tot = policy.mix(q_all[:, :-1].gather(-1, actions.unsqueeze(-1)).squeeze(-1),
                       batch["state"][:, :-1])
    return inputs, q_all, q_tot


def test_padded_steps_do_not_change_the_loss():
    learner = _learner("qmix")
    batch = _batch()
    other = copy.deepcopy(batch)
    other["reward"][0, 2:] = 1e6  # garbage in padding
    other["obs"][0, 3:] = -1e3

    def loss_of(b):
        inputs, q_all, q_tot = _forward(learner, b)
        with torch.no_grad():
            greedy = xwq.policies.masked_argmax(q_all, b["avail"])
            targets, aux = learner.compute_targets(b, inputs, greedy)
        return learner.compute_loss(b, inputs, q_all, q_tot, targets, aux)[0]

    torch.testing.assert_close(loss_of(batch), loss_of(other))


@pytest.mark.parametrize("method", ["iql", "vdn", "qmix", "cw_qmix", "ow_qmix"])
def test_update_runs_steps_and_syncs_targets(method):
    learner = _learner(method)
    before = [p.clone() for p in learner.policy.parameters()]
    for update in range(3):
        stats = learner.update(_batch(seed=update))
        assert np.isfinite(stats["loss"])
        if update < 2:  # targets differ from the online nets until the sync at update 3
            online = dict(learner.policy.named_parameters())
            assert any(not torch.equal(p, online[f"{name}"])
                       for name, p in learner.targets.named_parameters())
    assert any(not torch.equal(a, b) for a, b in zip(before, learner.policy.parameters()))
    for name, target in learner.targets.items():
        for a, b in zip(target.parameters(), getattr(learner.policy, name).parameters()):
            assert torch.equal(a, b)
    if method.endswith("_qmix"):
        assert set(learner.targets) == {"star_agent", "star_mixer"}
        assert {"q_star_loss", "weights_mean", "qmix_loss"} <= set(stats)
        assert stats["loss"] == pytest.approx(stats["qmix_loss"] + stats["q_star_loss"])
        assert 0.1 <= stats["weights_mean"] <= 1.0


def test_wqmix_loss_is_weighted_qmix_plus_unweighted_q_star():
    learner = _learner("ow_qmix", alpha=0.25)
    batch = _batch()
    policy, actions = learner.policy, batch["actions"]
    inputs, q_all, q_tot = _forward(learner, batch)
    with torch.no_grad():
        greedy = xwq.policies.masked_argmax(q_all, batch["avail"])
        targets, aux = learner.compute_targets(batch, inputs, greedy)
    loss, stats = learner.compute_loss(batch, inputs, q_all, q_tot, targets, aux)
    mask = batch["filled"].float()
    td = (q_tot - targets).detach()
    w = torch.where(td < 0, 1.0, 0.25)
    star_q, _ = policy.star_agent(inputs)
    q_star = policy.star_mixer(star_q[:, :-1].gather(-1, actions.unsqueeze(-1)).squeeze(-1),
                               batch["state"][:, :-1])
    expected_qmix = (w * mask * td.pow(2)).sum() / mask.sum()
    expected_star = (mask * (q_star - targets).pow(2)).sum() / mask.sum()
    assert stats["qmix_loss"].item() == pytest.approx(expected_qmix.item(), rel=1e-5)
    assert stats["q_star_loss"].item() == pytest.approx(expected_star.item(), rel=1e-5)
    # the QMIX loss's gradient does not flow into Q̂*, and Q̂*'s does not reach QMIX
    policy.zero_grad()
    (expected_star).backward(retain_graph=True)
    assert all(p.grad is None or p.grad.abs().sum() == 0 for p in policy.agent.parameters())


def test_non_finite_loss_stops_with_the_update_number():
    learner = _learner("qmix")
    batch = _batch()
    batch["reward"][1, 1] = float("nan")
    with pytest.raises(NonFiniteLossError, match="at update 1"):
        learner.update(batch)


@pytest.mark.parametrize("method", ["iql", "qmix", "cw_qmix"])
def test_loss_is_apart_from_the_step_and_is_what_update_minimises(method):
    learner = _learner(method)
    batch = _batch()
    before = copy.deepcopy(learner.policy.state_dict())
    loss, stats = learner.loss(batch)
    assert loss.requires_grad and all(not v.requires_grad and v.dim() == 0
                                      for v in stats.values())
    assert learner.updates == 0 and not learner.optimizer.state  # nothing stepped
    assert all(torch.equal(before[k], v) for k, v in learner.policy.state_dict().items())
    reported = learner.update(batch)
    assert reported["loss"] == pytest.approx(loss.item(), rel=1e-6)
    assert set(reported) == set(stats) | {"grad_norm"}
    assert learner.updates == 1


def _unchanged(learner, before):
    return all(torch.equal(before[k], v) for k, v in learner.policy.state_dict().items())


@pytest.mark.parametrize("use_grad_clip", [True, False])
def test_nan_loss_stops_before_the_step(use_grad_clip):
    learner = _learner("ow_qmix", use_grad_clip=use_grad_clip)
    batch = _batch()
    batch["reward"][1, 1] = float("nan")
    before = copy.deepcopy(learner.policy.state_dict())
    with pytest.raises(NonFiniteLossError, match="non-finite loss nan at update 1; lower "
                                                 "learning_rate"):
        learner.update(batch)
    assert _unchanged(learner, before) and learner.updates == 0 and not learner.optimizer.state


@pytest.mark.parametrize("use_grad_clip", [True, False])
@pytest.mark.parametrize("method", ["qmix", "cw_qmix"])
def test_finite_loss_with_an_infinite_gradient_stops_before_the_step(method, use_grad_clip):
    learner = _learner(method, use_grad_clip=use_grad_clip)
    learner.update(_batch(seed=1))  # one good update first: the error names the second
    before = copy.deepcopy(learner.policy.state_dict())
    optimizer_state = copy.deepcopy(learner.optimizer.state_dict())
    weight = learner.policy.agent.head.weight
    handle = weight.register_hook(lambda grad: torch.full_like(grad, float("inf")))
    pattern = (r"non-finite gradient norm inf at update 2 \(the loss, [-+0-9.e]+, was "
               r"finite\); lower learning_rate, or check the env's observations, state and "
               r"rewards for huge values")
    with pytest.raises(NonFiniteLossError, match=pattern):
        learner.update(_batch())
    handle.remove()
    assert _unchanged(learner, before) and learner.updates == 1
    assert str(learner.optimizer.state_dict()) == str(optimizer_state)


@pytest.mark.parametrize("method", ["qmix", "ow_qmix"])
def test_huge_state_values_overflow_the_gradient_before_the_loss(method):
    """A hand-made batch whose state is 1e7: the hypernetworks' Q_tot (~ state²) keeps the loss
    finite in float32, but its gradient overflows."""
    learner = _learner(method, use_grad_clip=False)
    batch = _batch()
    batch["state"][:] = 1e7
    before = copy.deepcopy(learner.policy.state_dict())
    with pytest.raises(NonFiniteLossError, match=r"non-finite gradient norm inf at update 1 "
                                                 r"\(the loss, [0-9.e+]+, was finite\)"):
        learner.update(batch)
    assert _unchanged(learner, before) and learner.updates == 0


def test_gradient_norm_is_reported_whether_or_not_it_is_clipped():
    clipped, unclipped = (_learner("qmix", use_grad_clip=flag, grad_clip_norm=1e-3)
                          for flag in (True, False))
    batch = _batch()
    norms = [learner.update(batch)["grad_norm"] for learner in (clipped, unclipped)]
    assert norms[0] == pytest.approx(norms[1]) and norms[0] > 1e-3  # the norm before clipping
    grads = {learner: [p.grad for p in learner.params if p.grad is not None]
             for learner in (clipped, unclipped)}
    total = torch.linalg.vector_norm(torch.stack(
        [torch.linalg.vector_norm(g) for g in grads[unclipped]]))
    assert total.item() == pytest.approx(norms[1], rel=1e-5)  # left as they were
    clipped_total = torch.linalg.vector_norm(torch.stack(
        [torch.linalg.vector_norm(g) for g in grads[clipped]]))
    assert clipped_total.item() == pytest.approx(1e-3, rel=1e-3)


def test_wqmix_learner_refuses_a_policy_without_q_star():
    config = xwq.get_configs(method="wqmix")
    with pytest.raises(ValueError, match="Weighted_Mixing_Q_network"):
        WQMIXLearner(config, MixingQNetwork(config, SPEC))


# --- the episode buffer -------------------------------------------------------------------
def _episodes(K, T, seed):
    rng = np.random.default_rng(seed)
    filled = np.zeros((K, T), bool)
    for k in range(K):
        filled[k, : rng.integers(1, T + 1)] = True
    return {"obs": rng.normal(size=(K, T + 1, 2, 3)).astype(np.float32),
            "state": rng.normal(size=(K, T + 1, 4)).astype(np.float32),
            "avail": rng.random((K, T + 1, 2, 3)) < 0.5,
            "actions": rng.integers(0, 3, (K, T, 2)), "reward": rng.normal(size=(K, T)),
            "terminated": rng.random((K, T)) < 0.1, "filled": filled}


def test_buffer_round_trip_compact_dtypes_and_ring():
    buffer = EpisodeBuffer(6, SPEC)
    assert buffer.data["actions"].dtype == np.int8 and buffer.data["avail"].dtype == bool
    first, second = _episodes(4, 4, 0), _episodes(4, 4, 1)
    buffer.add(first)
    buffer.add(second)  # wraps: slots 4, 5, 0, 1
    assert buffer.size == 6 and buffer.position == 2
    np.testing.assert_array_equal(buffer.data["actions"][0], second["actions"][2])
    np.testing.assert_array_equal(buffer.data["obs"][3], first["obs"][3])
    batch = buffer.sample(6, np.random.default_rng(0))
    assert batch["actions"].dtype == torch.int64
    longest = int(buffer.data["filled"].any(0).nonzero()[0].max()) + 1
    assert batch["filled"].shape == (6, longest) and batch["obs"].shape[1] == longest + 1
    assert sorted(batch["reward"][:, 0].tolist()) == sorted(
        buffer.data["reward"][:, 0].tolist())  # without replacement: every episode once


def test_buffer_state_round_trip():
    buffer = EpisodeBuffer(6, SPEC)
    buffer.add(_episodes(3, 4, 2))
    other = EpisodeBuffer(6, SPEC)
    other.load_state_dict(buffer.state_dict())
    assert other.size == 3 and other.position == 3
    for key in buffer.data:
        np.testing.assert_array_equal(other.data[key], buffer.data[key])


def test_buffer_over_budget_says_how_much_it_needs():
    big = EnvSpec(agents=tuple("abcdefgh"), obs_dim=75, state_dim=200, n_actions=6,
                  max_episode_steps=200)
    pattern = r"needs 3,126 MiB .*buffer_memory_budget_mb is 1024"
    with pytest.raises(BufferTooLargeError, match=pattern):
        EpisodeBuffer(5000, big, budget_mb=1024)


def test_cw_inputs_are_the_greedy_action_and_q_star_target_there():
    """One Q̂*_target pass over every step serves both the target (t+1) and CW's test (t)."""
    learner = _learner("cw_qmix")
    batch = _batch()
    with torch.no_grad():
        for p in learner.targets.parameters():
            p.add_(0.2)
    with torch.no_grad():
        inputs, q_all, _ = _forward(learner, batch)
        greedy = xwq.policies.masked_argmax(q_all, batch["avail"])
        targets, aux = learner.compute_targets(batch, inputs, greedy)
        star_q, _ = learner.targets["star_agent"](inputs)
        now = xwq.policies.masked_argmax(q_all[:, :-1], batch["avail"][:, :-1])
        after = xwq.policies.masked_argmax(q_all[:, 1:], batch["avail"][:, 1:])
        mixer = learner.targets["star_mixer"]
        q_star_now = mixer(star_q[:, :-1].gather(-1, now.unsqueeze(-1)).squeeze(-1),
                           batch["state"][:, :-1])
        q_star_next = mixer(star_q[:, 1:].gather(-1, after.unsqueeze(-1)).squeeze(-1),
                            batch["state"][:, 1:])
    torch.testing.assert_close(aux["greedy"], now)
    torch.testing.assert_close(aux["q_star_at_greedy"], q_star_now)
    expected = batch["reward"] + learner.gamma * (1 - batch["terminated"].float()) * q_star_next
    torch.testing.assert_close(targets, expected)


@pytest.mark.parametrize("optimizer", ["rmsprop", "adam"])
def test_optimiser_uses_foreach_kernels_even_after_an_old_checkpoint(optimizer):
    learner = _learner("qmix", optimizer=optimizer)
    assert all(group["foreach"] is True for group in learner.optimizer.param_groups)
    learner.update(_batch())
    state = learner.state_dict()
    for group in state["optimizer"]["param_groups"]:
        group["foreach"] = None  # as written before foreach was asked for
    other = _learner("qmix", optimizer=optimizer)
    other.load_state_dict(state)
    assert all(group["foreach"] is True for group in other.optimizer.param_groups)
    assert other.updates == 1
