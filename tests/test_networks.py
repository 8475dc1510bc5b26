"""Mixers, agent bodies and the policies: shapes, monotonicity, masks."""

import doctest

import numpy as np
import pytest
import torch

import xwq
from xwq.environment.interfaces import EnvSpec
from xwq.policies import (
    EpsilonSchedule,
    FeedForwardMixer,
    Mixer,
    MixingQNetwork,
    QMixer,
    VDNMixer,
    WeightedMixingQNetwork,
    epsilon_greedy,
    masked_argmax,
    mixers,
)
from xwq.policies.exploration import masked_argmax_numpy
from xwq.representations import Basic_MLP, Basic_RNN

SPEC = EnvSpec(agents=("a", "b", "c"), obs_dim=6, state_dim=10, n_actions=4,
               max_episode_steps=5)


@pytest.mark.parametrize("mixer_class", [VDNMixer, QMixer, FeedForwardMixer])
def test_mixer_shapes_over_any_leading_dims(mixer_class):
    mixer = mixer_class(n_agents=3, state_dim=10)
    assert mixer(torch.randn(7, 3), torch.randn(7, 10)).shape == (7,)
    assert mixer(torch.randn(4, 5, 3), torch.randn(4, 5, 10)).shape == (4, 5)


@pytest.mark.parametrize("mixer_class", [VDNMixer, QMixer, FeedForwardMixer])
def test_mixer_rejects_malformed_input(mixer_class):
    mixer = mixer_class(n_agents=3, state_dim=10)
    assert isinstance(mixer, Mixer)
    with pytest.raises(ValueError, match=r"expects agent_qs \[\*B, 3\]"):
        mixer(torch.randn(4, 2), torch.randn(4, 10))
    with pytest.raises(ValueError, match="disagree on the leading"):
        mixer(torch.randn(4, 3), torch.randn(5, 10))


@pytest.mark.parametrize("mixer_class", [VDNMixer, QMixer, FeedForwardMixer])
@pytest.mark.parametrize("agent_qs, state, message", [
    ((4, 4), (4, 10), r"expects agent_qs \[\*B, 3\] and state \[\*B, 10\], got \(4, 4\)"),
    ((4, 3), (4, 9), r"and state \[\*B, 10\], got \(4, 3\) and \(4, 9\)"),
    ((), (10,), r"got \(\) and \(10,\)"),
    ((4, 3), (10,), r"agent_qs \(4, 3\) and state \(10,\) disagree on the leading"),
    ((2, 5, 3), (5, 2, 10), r"\(2, 5, 3\) and state \(5, 2, 10\) disagree on the leading"),
    ((2, 5, 3), (2, 10), "disagree on the leading"),
])
def test_each_mixer_names_the_expected_shapes_of_malformed_input(mixer_class, agent_qs, state,
                                                                 message):
    mixer = mixer_class(n_agents=3, state_dim=10)
    with pytest.raises(ValueError, match=message) as error:
        mixer(torch.randn(agent_qs), torch.randn(state))
    if "expects" in message:
        assert str(error.value).startswith(mixer_class.__name__)


def test_mixer_is_abstract_and_its_docstring_example_runs():
    with pytest.raises(TypeError, match="abstract"):
        Mixer(n_agents=3, state_dim=10)
    results = doctest.testmod(mixers, raise_on_error=False)
    assert results.attempted >= 3 and results.failed == 0


@pytest.mark.parametrize("layers", [1, 2])
def test_qmix_is_monotonic_in_every_agent_q(layers):
    torch.manual_seed(0)
    mixer = QMixer(n_agents=3, state_dim=10, hypernet_layers=layers)
    qs = torch.randn(256, 3, requires_grad=True)
    mixer(qs, torch.randn(256, 10)).sum().backward()
    assert (qs.grad >= 0).all()


def test_feed_forward_mixer_is_not_constrained_to_be_monotonic():
    torch.manual_seed(0)
    mixer = FeedForwardMixer(n_agents=3, state_dim=10)
    qs = torch.randn(256, 3, requires_grad=True)
    mixer(qs, torch.randn(256, 10)).sum().backward()
    assert (qs.grad < 0).any() and (qs.grad > 0).any()


def test_vdn_is_the_sum():
    qs = torch.tensor([[1.0, 2.0, -0.5]])
    assert VDNMixer(3, 10)(qs, torch.zeros(1, 10)).item() == pytest.approx(2.5)


def test_gru_body_one_call_equals_step_by_step():
    torch.manual_seed(0)
    body = Basic_RNN(input_dim=5, fc_hidden_sizes=[16], recurrent_hidden_size=8)
    x = torch.randn(2, 6, 3, 5)
    whole, h_whole = body(x)
    hidden, steps = None, []
    for t in range(6):
        out, hidden = body(x[:, t:t + 1], hidden)
        steps.append(out)
    torch.testing.assert_close(torch.cat(steps, dim=1), whole)
    torch.testing.assert_close(hidden, h_whole)
    assert whole.shape == (2, 6, 3, 8) and h_whole.shape == (6, 8)


def test_mlp_body_shape():
    body = Basic_MLP(input_dim=5, fc_hidden_sizes=[16, 12])
    out, hidden = body(torch.randn(2, 6, 3, 5))
    assert out.shape == (2, 6, 3, 12) and hidden is None


def _config(**overrides):
    return xwq.get_configs(method="wqmix", overrides=overrides)


def test_policy_inputs_are_obs_last_action_and_agent_id():
    policy = MixingQNetwork(_config(), SPEC)
    assert policy.input_dim == 6 + 4 + 3
    obs = torch.zeros(1, 2, 3, 6)
    prev = torch.tensor([[[-1, -1, -1], [2, 0, 3]]])
    inputs = policy.build_inputs(obs, prev)
    assert inputs[0, 0, :, 6:10].sum() == 0  # no previous action at the start
    np.testing.assert_array_equal(inputs[0, 1, 0, 6:10], [0, 0, 1, 0])
    np.testing.assert_array_equal(inputs[0, 1, 2, 10:], [0, 0, 1])  # agent index one-hot
    no_extras = MixingQNetwork(_config(obs_last_action=False, obs_agent_id=False), SPEC)
    assert no_extras.input_dim == 6


def test_weighted_policy_has_its_own_q_star_networks():
    policy = WeightedMixingQNetwork(_config(), SPEC)
    assert isinstance(policy.mixer, QMixer) and isinstance(policy.star_mixer, FeedForwardMixer)
    own = {id(p) for p in policy.agent.parameters()}
    assert not own & {id(p) for p in policy.star_agent.parameters()}
    assert MixingQNetwork(_config(mixer=None), SPEC).mixer is None


def _widths(module):
    return [tuple(p.shape) for p in module.parameters()]


@pytest.mark.parametrize("representation", ["Basic_RNN", "Basic_MLP"])
def test_q_star_widths_are_their_own_keys_defaulting_to_the_paper(representation):
    config = _config(representation=representation, fc_hidden_sizes=[32, 16],
                     recurrent_hidden_size=48)
    assert (config.hidden_dim_star_agent, config.hidden_dim_ff_mix_net) == (64, 256)
    policy = WeightedMixingQNetwork(config, SPEC)
    star = policy.star_agent
    assert [layer.out_features for layer in star.body.net if hasattr(layer, "out_features")] \
        == [64, 64]  # the QMIX agent's depth, Q̂*'s own width
    assert star.body.output_dim == 64 and star.head.in_features == 64
    assert policy.agent.body.output_dim == (48 if representation == "Basic_RNN" else 16)
    assert policy.star_mixer.net[0].out_features == 256

    narrow = WeightedMixingQNetwork(_config(representation=representation,
                                            hidden_dim_star_agent=8,
                                            hidden_dim_ff_mix_net=16), SPEC)
    assert narrow.star_agent.body.output_dim == 8 and narrow.star_mixer.net[0].out_features == 16
    assert _widths(narrow.agent) == _widths(WeightedMixingQNetwork(
        _config(representation=representation), SPEC).agent)  # QMIX's own agent unchanged


def test_q_star_width_keys_are_validated():
    with pytest.raises(xwq.ConfigError, match="hidden_dim_star_agent"):
        _config(hidden_dim_star_agent=0)


def test_masked_argmax_never_picks_unavailable_actions():
    q = torch.tensor([[5.0, 1.0, 9.0, 0.0]])
    assert masked_argmax(q, torch.tensor([[True, True, False, True]])).item() == 0
    # padding rows with nothing available fall back to the plain argmax
    assert masked_argmax(q, torch.zeros(1, 4, dtype=torch.bool)).item() == 2


def test_greedy_acting_respects_masks():
    torch.manual_seed(0)
    policy = MixingQNetwork(_config(), SPEC)
    avail = torch.zeros(50, 3, 4, dtype=torch.bool)
    avail[..., 1] = True
    avail[:25, :, 3] = True
    actions, hidden = policy.greedy(torch.randn(50, 3, 6), torch.full((50, 3), -1), avail, None)
    assert actions.shape == (50, 3) and hidden.shape == (150, 64)
    assert avail.gather(-1, actions.unsqueeze(-1)).all()


PIXEL_SPEC = EnvSpec(agents=("a", "b"), obs_dim=6, state_dim=4, n_actions=3,
                     max_episode_steps=5, obs_dtype="uint8", obs_low=np.zeros(1),
                     obs_high=np.full(1, 255.0))


@pytest.mark.parametrize("spec, obs_dtype, overrides", [
    (SPEC, np.float32, {}),
    (SPEC, np.float64, {"representation": "Basic_MLP", "fc_hidden_sizes": [16, 8]}),
    (SPEC, np.float32, {"obs_last_action": False, "obs_agent_id": False}),
    (SPEC, np.float32, {"obs_last_action": True, "obs_agent_id": False,
                        "fc_hidden_sizes": [32, 16]}),
    (PIXEL_SPEC, np.uint8, {}),  # scaled by the policy's input normalisation
    (PIXEL_SPEC, np.uint8, {"input_normalization": "none"}),
])
def test_acting_path_gives_greedys_actions_and_hidden_bit_for_bit(spec, obs_dtype, overrides):
    """``greedy_actions`` (numpy in and out, functional calls) is the acting loop's form of
    ``greedy``: over several steps, masks with unavailable actions and padding rows, and a
    change of the number of envs, its actions and hidden states are exactly ``greedy``'s."""
    torch.manual_seed(0)
    policy = MixingQNetwork(_config(**overrides), spec)
    rng = np.random.default_rng(0)
    n, A = spec.n_agents, spec.n_actions
    for K in (7, 7, 3):
        hidden = policy.agent.initial_hidden(K * n, torch.device("cpu"))
        prev = torch.full((K, n), -1)
        for _ in range(4):
            obs = (rng.integers(0, 256, (K, n, spec.obs_dim)) if obs_dtype == np.uint8
                   else rng.normal(size=(K, n, spec.obs_dim)) * 3).astype(obs_dtype)
            avail = rng.random((K, n, A)) < 0.6
            avail[0, 0] = False  # a padding row: every action allowed
            expected, expected_hidden = policy.greedy(torch.as_tensor(obs), prev,
                                                      torch.as_tensor(avail), hidden)
            actions, hidden = policy.greedy_actions(obs, prev, avail, hidden)
            assert actions.dtype == np.int64 and actions.shape == (K, n)
            np.testing.assert_array_equal(actions, expected.numpy())
            if expected_hidden is None:
                assert hidden is None
            else:
                assert torch.equal(hidden, expected_hidden)
            prev = torch.as_tensor(actions)
            prev[1] = -1  # env 1 starts a new episode


def test_acting_path_takes_a_users_body_without_step():
    """A representation registered by a user needs only ``forward``: acting goes through it."""

    class Plain(torch.nn.Module):
        recurrent = False

        def __init__(self, input_dim, fc_hidden_sizes, **_):
            super().__init__()
            self.linear = torch.nn.Linear(input_dim, fc_hidden_sizes[-1])
            self.output_dim = fc_hidden_sizes[-1]

        def initial_hidden(self, batch, device):
            return None

        def forward(self, x, hidden=None):
            return torch.tanh(self.linear(x)), None

    name = "Plain_for_acting_test"
    xwq.REGISTRY_REPRESENTATION.register(name)(Plain)
    try:
        torch.manual_seed(0)
        policy = MixingQNetwork(_config(representation=name), SPEC)
    finally:
        del xwq.REGISTRY_REPRESENTATION[name]
    obs = np.random.default_rng(0).normal(size=(5, 3, 6)).astype(np.float32)
    avail = np.ones((5, 3, 4), dtype=bool)
    prev = torch.full((5, 3), -1)
    expected, _ = policy.greedy(torch.as_tensor(obs), prev, torch.as_tensor(avail), None)
    actions, hidden = policy.greedy_actions(obs, prev, avail, None)
    np.testing.assert_array_equal(actions, expected.numpy())
    assert hidden is None


def test_numpy_masked_argmax_is_torchs_including_ties_and_nan():
    q = np.array([[[1.0, 3.0, 3.0, 0.0], [np.nan, 2.0, np.nan, 9.0], [4.0, 4.0, 4.0, 4.0],
                   [7.0, 1.0, 2.0, 3.0]]], dtype=np.float32)
    for avail in (np.ones((1, 4, 4), bool),
                  np.array([[[0, 1, 1, 1], [1, 1, 1, 0], [0, 0, 0, 0], [0, 1, 0, 1]]], bool)):
        np.testing.assert_array_equal(
            masked_argmax_numpy(q, avail),
            masked_argmax(torch.as_tensor(q), torch.as_tensor(avail)).numpy())


def test_epsilon_greedy_random_actions_are_uniform_over_available_only():
    rng = np.random.default_rng(0)
    avail = np.zeros((20000, 2, 5), dtype=bool)
    avail[:, 0, [1, 3]] = True
    avail[:, 1, :] = True
    greedy = np.full((20000, 2), 1)
    actions = epsilon_greedy(greedy, avail, 1.0, rng)
    assert set(np.unique(actions[:, 0])) == {1, 3}
    counts = np.bincount(actions[:, 1], minlength=5) / 20000
    np.testing.assert_allclose(counts, 0.2, atol=0.02)
    half = epsilon_greedy(greedy, avail, 0.5, rng)
    explored = (half[:, 1] != 1).mean()  # ε · 4/5 of draws move off the greedy action
    assert explored == pytest.approx(0.5 * 0.8, abs=0.02)
    np.testing.assert_array_equal(epsilon_greedy(greedy, avail, 0.0, rng), greedy)


def test_epsilon_schedule_is_linear_in_env_steps():
    schedule = EpsilonSchedule(1.0, 0.05, 1000)
    assert schedule(0) == 1.0 and schedule(500) == pytest.approx(0.525)
    assert schedule(1000) == pytest.approx(0.05) and schedule(10**6) == pytest.approx(0.05)
    assert EpsilonSchedule(1.0, 0.1, 0)(0) == 0.1


def test_qmix_mixer_computes_the_paper_formula():
    torch.manual_seed(1)
    mixer = QMixer(n_agents=3, state_dim=10, hidden_dim_mixing_net=8)
    qs, state = torch.randn(5, 3), torch.randn(5, 10)
    w1 = mixer.hyper_w1(state).abs().view(5, 3, 8)
    hidden = torch.nn.functional.elu(torch.bmm(qs.unsqueeze(1), w1).squeeze(1)
                                     + mixer.hyper_b1(state))
    w2 = mixer.hyper_w2(state).abs().view(5, 8, 1)
    expected = torch.bmm(hidden.unsqueeze(1), w2).view(5) + mixer.value(state).view(5)
    torch.testing.assert_close(mixer(qs, state), expected)
