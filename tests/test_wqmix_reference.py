"""One full Weighted QMIX update (CW and OW) against an independent transcription of the
authors' update (oxwhirl/wqmix, ``src/learners/max_q_learner.py``, ``MAXQLearner.train``).

The expected loss, weights, gradient norm and parameters after one RMSprop step are computed
here with plain tensor operations in float64 from the networks' parameters: the agent networks
(Linear → ReLU → GRU → Linear, unrolled step by step from a zero hidden state), the QMIX
hypernetwork mixer, the feed-forward Q̂* mixer, the target with the authors' masking of
unavailable actions (-9999999), both losses, the gradient-norm clip and RMSprop's first step.
No forward pass or learner code of xwq is used for them.
"""

import pytest
import torch
from torch.nn import functional as F

import xwq
from xwq.environment.interfaces import EnvSpec
from xwq.learners import WQMIXLearner
from xwq.policies import WeightedMixingQNetwork

N_AGENTS, N_ACTIONS, OBS_DIM, STATE_DIM, T = 3, 3, 2, 3, 4
SPEC = EnvSpec(agents=("a", "b", "c"), obs_dim=OBS_DIM, state_dim=STATE_DIM,
               n_actions=N_ACTIONS, max_episode_steps=T)
GAMMA, ALPHA, CLIP, LR, RMS_ALPHA, RMS_EPS = 0.9, 0.3, 1.0, 5e-4, 0.99, 1e-5
OVERRIDES = dict(
    representation="Basic_RNN", fc_hidden_sizes=[8], recurrent_hidden_size=8,
    hidden_dim_star_agent=6, hidden_dim_ff_mix_net=12, hidden_dim_mixing_net=4,
    hidden_dim_hyper_net=5, hypernet_layers=2, obs_last_action=True, obs_agent_id=True,
    gamma=GAMMA, alpha=ALPHA, use_grad_clip=True, grad_clip_norm=CLIP, learning_rate=LR,
    optimizer="rmsprop", rmsprop_alpha=RMS_ALPHA, rmsprop_eps=RMS_EPS,
    sync_unit="updates", sync_frequency=1000)
#: steps (episode, t) whose taken joint action is made the QMIX-greedy one, so that CW's
#: first condition occurs
GREEDY_STEPS = {(0, 0), (1, 1), (1, 3), (2, 2)}


# --- the authors' update, transcribed -----------------------------------------------------
def linear(x, P, name):
    return x @ P[f"{name}.weight"].T + P[f"{name}.bias"]


def agent_q(P, prefix, inputs):
    """Q of every agent and action, ``inputs [B, T+1, n, d]`` -> ``[B, T+1, n, A]``, with a GRU
    cell written out (gates r, z, n in PyTorch's order)."""
    x = F.relu(linear(inputs, P, f"{prefix}.body.net.0"))
    w_ih, w_hh = P[f"{prefix}.body.gru.weight_ih_l0"], P[f"{prefix}.body.gru.weight_hh_l0"]
    b_ih, b_hh = P[f"{prefix}.body.gru.bias_ih_l0"], P[f"{prefix}.body.gru.bias_hh_l0"]
    h = torch.zeros(*x.shape[:1], x.shape[2], w_hh.shape[1], dtype=x.dtype)
    qs = []
    for t in range(x.shape[1]):
        i_r, i_z, i_n = (x[:, t] @ w_ih.T + b_ih).chunk(3, dim=-1)
        h_r, h_z, h_n = (h @ w_hh.T + b_hh).chunk(3, dim=-1)
        r, z = torch.sigmoid(i_r + h_r), torch.sigmoid(i_z + h_z)
        h = (1 - z) * torch.tanh(i_n + r * h_n) + z * h
        qs.append(linear(h, P, f"{prefix}.head"))
    return torch.stack(qs, dim=1)


def qmix_mixer(P, qs, state):
    """``qs [B, T, n]``, ``state [B, T, S]`` -> Q_tot ``[B, T]``."""
    hyper = lambda name: linear(F.relu(linear(state, P, f"mixer.{name}.0")),  # noqa: E731
                                P, f"mixer.{name}.2")
    w1 = hyper("hyper_w1").abs().reshape(*qs.shape, -1)  # [B, T, n, embed]
    hidden = F.elu(torch.einsum("btn,btne->bte", qs, w1) + linear(state, P, "mixer.hyper_b1"))
    w2 = hyper("hyper_w2").abs()
    value = linear(F.relu(linear(state, P, "mixer.value.0")), P, "mixer.value.2")
    return (hidden * w2).sum(-1) + value[..., 0]


def ff_mixer(P, prefix, qs, state):
    """Q̂*'s mixer: three ReLU layers over [qs, state], plus V(s)."""
    x = torch.cat([qs, state], dim=-1)
    for layer in (0, 2, 4):
        x = F.relu(linear(x, P, f"{prefix}.net.{layer}"))
    value = linear(F.relu(linear(state, P, f"{prefix}.value.0")), P, f"{prefix}.value.2")
    return (linear(x, P, f"{prefix}.net.6") + value)[..., 0]


def agent_inputs(batch):
    obs, actions = batch["obs"], batch["actions"]
    B = obs.shape[0]
    previous = torch.cat([torch.zeros(B, 1, N_AGENTS, N_ACTIONS, dtype=obs.dtype),
                          F.one_hot(actions, N_ACTIONS).to(obs.dtype)], dim=1)
    ids = torch.eye(N_AGENTS, dtype=obs.dtype).expand(B, T + 1, N_AGENTS, N_AGENTS)
    return torch.cat([obs, previous, ids], dim=-1)


def authors_update(P, P_target, batch, hysteretic):
    """MAXQLearner.train: loss, weights and statistics, from parameter dicts (float64)."""
    reward, actions = batch["reward"], batch["actions"]
    terminated, avail, state = batch["terminated"].double(), batch["avail"], batch["state"]
    mask = batch["filled"].double()
    mask[:, 1:] = mask[:, 1:] * (1 - terminated[:, :-1])
    inputs = agent_inputs(batch)

    mac_out = agent_q(P, "agent", inputs)
    chosen = mac_out[:, :-1].gather(3, actions.unsqueeze(3)).squeeze(3)
    unavailable = -9999999.0
    cur_max_actions = mac_out.detach().masked_fill(~avail, unavailable).argmax(dim=3)

    central_target = agent_q(P_target, "star_agent", inputs).masked_fill(~avail, unavailable)
    central_target_max = central_target.gather(3, cur_max_actions.unsqueeze(3)).squeeze(3)
    q_tot = qmix_mixer(P, chosen, state[:, :-1])
    target_max = ff_mixer(P_target, "star_mixer", central_target_max[:, 1:], state[:, 1:])
    targets = (reward + GAMMA * (1 - terminated) * target_max).detach()
    td_error = q_tot - targets

    central_chosen = agent_q(P, "star_agent", inputs)[:, :-1].gather(
        3, actions.unsqueeze(3)).squeeze(3)
    central_q = ff_mixer(P, "star_mixer", central_chosen, state[:, :-1])
    central_loss = ((central_q - targets) * mask).pow(2).sum() / mask.sum()

    ws = torch.full_like(td_error, ALPHA)
    if hysteretic:  # OW-QMIX
        ws = torch.where(td_error < 0, torch.ones_like(ws), ws)
        conditions = {"td < 0": td_error < 0}
    else:  # CW-QMIX
        is_max_action = (actions == cur_max_actions[:, :-1]).all(dim=2)
        max_action_qtot = ff_mixer(P_target, "star_mixer", central_target_max[:, :-1],
                                   state[:, :-1])
        qtot_larger = targets > max_action_qtot
        ws = torch.where(is_max_action | qtot_larger, torch.ones_like(ws), ws)
        conditions = {"greedy": is_max_action, "y > Q*(s, greedy)": qtot_larger}
    ws = ws.detach()
    qmix_loss = (ws * (td_error * mask).pow(2)).sum() / mask.sum()
    return {"loss": qmix_loss + central_loss, "qmix_loss": qmix_loss,
            "q_star_loss": central_loss, "weights": ws, "mask": mask.bool(),
            "conditions": conditions}


def clipped_rmsprop_step(params, grads):
    """clip_grad_norm_(max_norm=CLIP) then RMSprop's first step (square average from 0)."""
    norm = torch.sqrt(sum((g ** 2).sum() for g in grads.values()))
    scale = torch.clamp(CLIP / (norm + 1e-6), max=1.0)
    stepped = {}
    for name, p in params.items():
        g = grads[name] * scale
        square_avg = (1 - RMS_ALPHA) * g * g
        stepped[name] = p - LR * g / (square_avg.sqrt() + RMS_EPS)
    return stepped, norm


# --- the batch ----------------------------------------------------------------------------
def make_batch(seed, pick_greedy):
    """Three episodes, T = 4: (0) terminated at t = 1, then padding; (1) time-limited, filled to
    T, not terminated (bootstrap through s_T); (2) ended at t = 2 without termination, then
    padding. Padding holds garbage and nothing available, as a buffer's zeros would not."""
    g = torch.Generator().manual_seed(seed)
    B = 3
    filled = torch.zeros(B, T, dtype=torch.bool)
    filled[0, :2], filled[1, :], filled[2, :3] = True, True, True
    terminated = torch.zeros(B, T, dtype=torch.bool)
    terminated[0, 1] = True
    avail = torch.rand(B, T + 1, N_AGENTS, N_ACTIONS, generator=g) < 0.7
    avail[..., 1] = True  # at least one available action at every real step
    avail[0, 3:], avail[2, 4:] = False, False  # padded observations: nothing available
    batch = {
        "obs": torch.randn(B, T + 1, N_AGENTS, OBS_DIM, generator=g),
        "state": torch.randn(B, T + 1, STATE_DIM, generator=g),
        "avail": avail,
        "actions": torch.zeros(B, T, N_AGENTS, dtype=torch.long),
        "reward": 2 * torch.randn(B, T, generator=g),
        "terminated": terminated, "filled": filled,
    }
    for b, t in filled.nonzero().tolist():  # in time order within each episode
        if (b, t) in GREEDY_STEPS:  # Q at t depends on the actions before t only
            batch["actions"][b, t] = pick_greedy(batch, b, t)
            continue
        for i in range(N_AGENTS):
            choices = avail[b, t, i].nonzero()[:, 0]
            batch["actions"][b, t, i] = choices[torch.randint(len(choices), (), generator=g)]
    batch["actions"][~filled] = 2  # garbage in the padding
    batch["reward"][~filled] = 50.0
    batch["state"][0, 3:] = 7.0
    return batch


def float64(batch):
    return {k: v.double() if v.is_floating_point() else v for k, v in batch.items()}


@pytest.mark.parametrize("weighting", ["cw", "ow"])
def test_one_wqmix_update_matches_the_authors_update(weighting):
    config = xwq.get_configs(method=f"{weighting}_qmix", overrides=OVERRIDES)
    torch.manual_seed(3)
    learner = WQMIXLearner(config, WeightedMixingQNetwork(config, SPEC))
    with torch.no_grad():  # targets that differ from the online networks
        for p in learner.targets.parameters():
            p.add_(0.1 * torch.randn_like(p))
    P = {name: p.detach().double().clone().requires_grad_()
         for name, p in learner.policy.named_parameters()}
    P_target = {name: p.detach().double() for name, p in learner.targets.named_parameters()}

    def pick_greedy(batch, b, t):
        with torch.no_grad():
            q = agent_q(P, "agent", agent_inputs(float64(batch)))[b, t]
        return q.masked_fill(~batch["avail"][b, t], -9999999.0).argmax(-1)

    batch = make_batch(seed=5, pick_greedy=pick_greedy)
    expected = authors_update(P, P_target, float64(batch), hysteretic=weighting == "ow")
    grads = dict(zip(P, torch.autograd.grad(expected["loss"], list(P.values()),
                                            allow_unused=True)))
    grads = {name: torch.zeros_like(P[name]) if g is None else g for name, g in grads.items()}
    stepped, grad_norm = clipped_rmsprop_step(P, grads)

    mask, ws = expected["mask"], expected["weights"]
    for condition in expected["conditions"].values():  # the batch exercises every branch
        assert condition[mask].any() and not condition[mask].all()
    assert (ws[mask] == ALPHA).any() and (ws[mask] == 1).any()

    seen = []
    weighting_function = learner.weighting

    def recorded(context):
        seen.append(weighting_function(context))
        return seen[-1]

    learner.weighting = recorded
    stats = learner.update(batch)

    assert len(seen) == 1
    torch.testing.assert_close(seen[0][mask], ws[mask].float(), rtol=0, atol=0)
    for key in ("loss", "qmix_loss", "q_star_loss"):
        assert stats[key] == pytest.approx(expected[key].item(), rel=1e-6), key
    assert stats["weights_mean"] == pytest.approx(ws[mask].mean().item(), rel=1e-6)
    assert stats["grad_norm"] == pytest.approx(grad_norm.item(), rel=1e-5)
    assert grad_norm > CLIP  # the clip is part of what is compared
    for name, p in learner.policy.named_parameters():
        change = p.detach().double() - P[name].detach()
        expected_change = stepped[name].detach() - P[name].detach()
        torch.testing.assert_close(change, expected_change, rtol=0, atol=1e-6, msg=name)
    for name, p in learner.targets.named_parameters():  # no copy after one update
        assert torch.equal(p.double(), P_target[name]), name
