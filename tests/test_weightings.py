"""Weighting functions as registry entries: the built-ins, a user's own, and the errors."""

import re
from pathlib import Path

import pytest
import torch

import xwq
from xwq.environment.interfaces import EnvSpec
from xwq.learners import WQMIXLearner, cw_weights, ow_weights
from xwq.learners.qmix import masked_mean
from xwq.policies import WeightedMixingQNetwork

README = Path(__file__).resolve().parent.parent / "README.md"
SPEC = EnvSpec(agents=("a", "b"), obs_dim=3, state_dim=4, n_actions=3, max_episode_steps=4)


@pytest.fixture
def registered():
    """Names a test registers in REGISTRY_WEIGHTING, removed afterwards."""
    names = []
    yield names
    for name in names:
        xwq.REGISTRY_WEIGHTING.pop(name, None)


def _learner(**overrides):
    config = xwq.get_configs(method="wqmix", overrides=overrides)
    torch.manual_seed(0)
    return WQMIXLearner(config, WeightedMixingQNetwork(config, SPEC))


def _batch(B=3, T=4):
    generator = torch.Generator().manual_seed(0)
    filled = torch.ones(B, T, dtype=torch.bool)
    filled[0, 2:] = False
    return {"obs": torch.randn(B, T + 1, 2, 3, generator=generator),
            "state": torch.randn(B, T + 1, 4, generator=generator),
            "avail": torch.ones(B, T + 1, 2, 3, dtype=torch.bool),
            "actions": torch.randint(0, 3, (B, T, 2), generator=generator),
            "reward": torch.randn(B, T, generator=generator),
            "terminated": torch.zeros(B, T, dtype=torch.bool), "filled": filled}


def test_ow_and_cw_are_built_in_entries_the_learner_looks_up():
    assert xwq.REGISTRY_WEIGHTING["ow"] is ow_weights
    assert xwq.REGISTRY_WEIGHTING["cw"] is cw_weights
    assert _learner(weighting="cw").weighting is cw_weights
    assert _learner(weighting="ow").weighting is ow_weights


def test_an_unknown_weighting_lists_the_registered_ones_when_the_learner_is_built():
    config = xwq.get_configs(method="wqmix", overrides={"weighting": "xw"})  # any string
    pattern = (r"unknown weighting 'xw' \(config key 'weighting'\); choose one of "
               r"\['cw', 'ow'\]\. Register your own with @xwq\.REGISTRY_WEIGHTING\.register")
    with pytest.raises(xwq.UnknownNameError, match=pattern) as error:
        WQMIXLearner(config, WeightedMixingQNetwork(config, SPEC))
    assert isinstance(error.value, KeyError)
    with pytest.raises(xwq.UnknownNameError, match=r"choose one of \['cw', 'ow'\]"):
        xwq.REGISTRY_WEIGHTING["xw"]


def test_a_registered_weighting_is_selected_by_name_and_its_weights_make_the_loss(registered):
    seen = []

    @xwq.REGISTRY_WEIGHTING.register("quarter")
    def quarter(context):
        seen.append(context)
        return torch.full_like(context.td_error, 0.25)

    registered.append("quarter")
    learner = _learner(weighting="quarter")
    batch = _batch()
    loss, stats = learner.loss(batch)
    assert len(seen) == 1 and stats["weights_mean"].item() == 0.25
    context = seen[0]
    assert context.alpha == learner.alpha and torch.equal(context.mask, batch["filled"])
    assert torch.equal(context.actions, batch["actions"])
    assert context.td_error.shape == context.targets.shape == context.q_star_at_greedy.shape \
        == batch["reward"].shape and context.greedy_actions.shape == batch["actions"].shape
    assert not context.td_error.requires_grad
    unweighted_qmix = masked_mean(context.td_error.pow(2), batch["filled"])
    torch.testing.assert_close(stats["qmix_loss"], 0.25 * unweighted_qmix)
    torch.testing.assert_close(loss.detach(), stats["qmix_loss"] + stats["q_star_loss"])


@pytest.mark.parametrize("returned, got", [
    (lambda context: context.td_error[:, 0], r"returned \(3,\)"),
    (lambda context: 0.5, r"returned <class 'float'>"),
])
def test_a_weighting_must_return_one_weight_per_step(registered, returned, got):
    xwq.REGISTRY_WEIGHTING["broken"] = returned
    registered.append("broken")
    learner = _learner(weighting="broken")
    with pytest.raises(xwq.UsageError, match=rf"weighting 'broken' {got}; .*\[B, T\] = \(3, 4\)"):
        learner.update(_batch())
    assert learner.updates == 0


def _readme_example() -> str:
    section = README.read_text().split("## Your own weighting\n")[1].split("\n## ")[0]
    (code,) = re.findall(r"```python\n(.*?)```", section, re.S)
    return code


def test_the_readme_weighting_example_trains_with_its_weights(tmp_path, monkeypatch, registered):
    """Runs the README's "Your own weighting" example as written: the registered function is
    the one the learner calls at every update, and its weights are those in the loss."""
    calls, updates = [], []
    weights, update = WQMIXLearner.weights, WQMIXLearner.update

    def spy_weights(self, context):
        result = weights(self, context)
        calls.append((self.weighting, result, context.mask))
        return result

    def spy_update(self, batch, episodes=None):
        updates.append(update(self, batch, episodes))
        return updates[-1]

    monkeypatch.setattr(WQMIXLearner, "weights", spy_weights)
    monkeypatch.setattr(WQMIXLearner, "update", spy_update)
    monkeypatch.chdir(tmp_path)  # the example writes ./logs and ./models
    registered.append("my_w")
    namespace = {"__name__": "readme_example"}
    exec(compile(_readme_example(), str(README), "exec"), namespace)

    function = namespace["ow_or_greedy"]
    assert xwq.REGISTRY_WEIGHTING["my_w"] is function
    learner = namespace["runner"].agents.learner
    assert learner.weighting is function and learner.config.running_steps == 640
    assert len(calls) == len(updates) == learner.updates > 300
    for (called, result, mask), stats in zip(calls, updates):
        assert called is function
        assert all(w == 1.0 or w == pytest.approx(learner.alpha) for w in result.unique().tolist())
        assert stats["weights_mean"] == pytest.approx(masked_mean(result, mask).item())
    assert any(stats["weights_mean"] < 1.0 for stats in updates)  # alpha was used, too
    assert (tmp_path / "models").is_dir()
