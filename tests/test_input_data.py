"""Memory and scale follow the data: observation and state dtypes from the env's spaces to the
buffer and the networks, input scaling from the spaces' bounds, the replay buffer refused before
the envs are built, and the state taken from the observations."""

import re

import numpy as np
import pytest
import torch
from gymnasium import spaces

import xwq
from xwq.agents.buffer import BufferTooLargeError, EpisodeBuffer, check_buffer_memory
from xwq.environment.adapters.array_env import ArrayEnv
from xwq.environment.interfaces import EnvSpec, storage_dtype
from xwq.errors import EnvMismatchError
from xwq.policies import InputNormalizer, MixingQNetwork, QMixer, WeightedMixingQNetwork
from xwq.policies.normalization import affine_from_bounds


@pytest.fixture
def pixel_env_class(benchmark_script):
    """The fake pixel env of benchmarks/pixel_inputs.py, registered as env 'pixels'."""
    env_class = benchmark_script("pixel_inputs").PixelEnv
    xwq.register_env("pixels", env_class)
    return env_class


def pixel_runner(run_dirs, **overrides):
    values = dict(env_kwargs={"size": 4}, parallels=2, batch_size=2, buffer_size=8,
                  training_frequency=5, vectorize="serial", running_steps=200,
                  save_interval=0, **run_dirs) | overrides
    return xwq.get_runner("qmix", "pixels", "pixels", **values)


# --- dtypes ----------------------------------------------------------------------------------
def test_storage_dtype_keeps_integers_and_makes_the_rest_float32():
    assert storage_dtype([np.uint8]) == "uint8" and storage_dtype([bool]) == "bool"
    assert storage_dtype([np.uint8, np.uint8]) == "uint8"
    assert storage_dtype([np.uint8, np.int8]) == "int16"
    assert storage_dtype([np.uint8, np.float32]) == "float32"
    assert storage_dtype([np.float64]) == "float32" and storage_dtype([np.int64]) == "float32"


@pytest.mark.parametrize("vectorize", ["serial", "subprocess"])
def test_uint8_observations_stay_uint8_from_the_env_to_the_buffer(pixel_env_class, run_dirs,
                                                                   vectorize):
    runner = pixel_runner(run_dirs, vectorize=vectorize)
    try:
        envs, agents = runner.envs, runner.agents
        assert envs.spec.obs_dtype == envs.spec.state_dtype == "uint8"
        obs, state, _ = envs.reset(seed=0)
        assert obs.dtype == np.uint8 and state.dtype == np.uint8 and obs.max() > 1
        while agents.buffer.size < 4:
            agents.collect()
        stored = agents.buffer.data
        assert stored["obs"].dtype == np.uint8 and stored["state"].dtype == np.uint8
        assert stored["obs"].max() > 1  # raw pixels: the buffer is never scaled
        batch = agents.buffer.sample(4, np.random.default_rng(0))
        assert batch["obs"].dtype == batch["state"].dtype == torch.float32
        assert batch["obs"].max() > 1  # float, still raw: the policy scales
    finally:
        runner.finish()


def test_pixel_buffer_takes_a_quarter_of_the_float32_memory():
    float_spec = EnvSpec(("a", "b"), 3072, 12288, 4, 25)
    uint8_spec = EnvSpec(("a", "b"), 3072, 12288, 4, 25, obs_dtype="uint8", state_dtype="uint8")
    float_buffer, uint8_buffer = EpisodeBuffer(10, float_spec), EpisodeBuffer(10, uint8_spec)
    assert uint8_buffer.data["obs"].dtype == np.uint8
    image_bytes = 26 * (2 * 3072 + 12288)
    assert float_buffer.nbytes - uint8_buffer.nbytes == 10 * 3 * image_bytes


def test_fractional_values_in_an_integer_space_are_an_env_mismatch(pixel_env_class):
    class Lying(pixel_env_class):
        def _observe(self):
            obs = super()._observe()
            self._obs = {a: value.astype(np.float32) + 0.5 for a, value in obs.items()}
            return self._obs

    env = ArrayEnv(Lying())
    with pytest.raises(EnvMismatchError, match=r"camera_0.*fractional values.*uint8"):
        env.reset(seed=0)


# --- spec bounds -----------------------------------------------------------------------------
def test_spec_bounds_are_compact_and_compared_by_value():
    spec = EnvSpec(("a", "b"), 3, 2, 2, 5, obs_low=np.zeros((2, 3)), obs_high=np.full((2, 3), 255),
                   state_low=[-1, -2], state_high=[1, 2])
    assert spec.obs_low.shape == (1, 1) and spec.state_low.shape == (2,)
    assert spec.obs_bounds()[1].shape == (2, 3) and spec.obs_bounds()[1].max() == 255
    assert spec == EnvSpec(("a", "b"), 3, 2, 2, 5, obs_low=0, obs_high=255,
                           state_low=[-1, -2], state_high=[1, 2])
    assert spec != EnvSpec(("a", "b"), 3, 2, 2, 5, obs_low=0, obs_high=254,
                           state_low=[-1, -2], state_high=[1, 2])
    unbounded = EnvSpec(("a", "b"), 3, 2, 2, 5, obs_low=-np.inf, obs_high=np.inf)
    assert unbounded.obs_low is None and unbounded == EnvSpec(("a", "b"), 3, 2, 2, 5)
    assert spec.to_dict()["obs_range"] == [0.0, 255.0]


def test_heterogeneous_agents_keep_their_own_bounds_and_padding_is_unbounded():
    class Mixed(xwq.MultiAgentEnv):
        def __init__(self):
            self.agents = ["big", "small"]
            self.observation_space = {"big": spaces.Box(0, 100, (3,)),
                                      "small": spaces.Box(0, 1, (1,))}
            self.action_space = dict.fromkeys(self.agents, spaces.Discrete(2))
            self.state_space = spaces.Box(-np.inf, np.inf, (2,))
            self.max_episode_steps = 3

        def state(self):
            return np.zeros(2, dtype=np.float32)

    low, high = ArrayEnv(Mixed()).spec.obs_bounds()
    np.testing.assert_array_equal(high, [[100, 100, 100], [1, np.inf, np.inf]])
    np.testing.assert_array_equal(low, [[0, 0, 0], [0, -np.inf, -np.inf]])


# --- normalisation ---------------------------------------------------------------------------
def test_normalization_maps_the_bounds_to_zero_and_one_exactly():
    low = np.array([0.0, -50.0, 3.0, -1.0, -np.inf, 7.0])
    high = np.array([255.0, 200.0, 1e6, 1.0, np.inf, 7.0])
    norm = InputNormalizer.from_bounds(low, high, integer=False, mode="bounds")
    at_low, at_high = norm(torch.tensor(low[None])), norm(torch.tensor(high[None]))
    assert at_low[0, :4].tolist() == [0.0] * 4 and at_high[0, :4].tolist() == [1.0] * 4
    assert torch.isinf(at_low[0, 4]) and at_low[0, 5] == 0.0  # unbounded: as is; constant: 0
    middle = norm(torch.tensor([[127.5, 75.0, 3.0, 0.0, 5.0, 7.0]]))
    assert middle[0, [0, 1, 3]].tolist() == [0.5, 0.5, 0.5] and middle[0, 4] == 5.0


def test_auto_scales_integers_and_wide_bounds_only():
    low, high = np.array([0.0, -1.0, 0.0, -np.inf]), np.array([1.0, 1.0, 30.0, np.inf])
    offset, span = affine_from_bounds(low, high, integer=False, mode="auto")
    assert span.tolist() == [1.0, 1.0, 30.0, 1.0] and offset.tolist() == [0.0, 0.0, 0.0, 0.0]
    offset, span = affine_from_bounds(low, high, integer=True, mode="auto")
    assert span.tolist() == [1.0, 2.0, 30.0, 1.0] and offset.tolist() == [0.0, -1.0, 0.0, 0.0]
    offset, span = affine_from_bounds(low, high, integer=True, mode="none")
    assert span.tolist() == [1.0] * 4 and offset.tolist() == [0.0] * 4


def test_uint8_pixels_reach_the_networks_in_zero_one(run_dirs):
    spec = EnvSpec(("a", "b"), 4, 6, 3, 5, obs_dtype="uint8", state_dtype="uint8",
                   obs_low=0, obs_high=255, state_low=0, state_high=255)
    config = xwq.get_configs(method="wqmix", env="matrix_game", env_id="nonmonotonic",
                             overrides=run_dirs)
    policy = WeightedMixingQNetwork(config, spec)
    pixels = torch.tensor([[[[0, 51, 255, 255], [255, 0, 0, 0]]]], dtype=torch.uint8)
    inputs = policy.build_inputs(pixels, torch.full((1, 1, 2), -1))
    assert inputs.dtype == torch.float32
    expected = torch.tensor([[[[0.0, 0.2, 1.0, 1.0], [1.0, 0.0, 0.0, 0.0]]]])
    assert torch.equal(inputs[..., :4], expected)
    for mixer in (policy.mixer, policy.star_mixer):
        scaled = mixer.state_normalizer(torch.full((6,), 255, dtype=torch.uint8))
        assert scaled.tolist() == [1.0] * 6
    none = xwq.get_configs(method="wqmix", env="matrix_game", env_id="nonmonotonic",
                           overrides={**run_dirs, "input_normalization": "none"})
    raw = MixingQNetwork(none, spec).build_inputs(pixels, torch.full((1, 1, 2), -1))
    assert raw[..., :4].max() == 255.0


def test_mixer_targets_scale_the_state_as_the_online_mixer(run_dirs):
    config = xwq.get_configs(method="qmix", env="matrix_game", env_id="nonmonotonic",
                             overrides=run_dirs)
    spec = EnvSpec(("a", "b"), 2, 3, 3, 4, state_low=0, state_high=1000)
    learner = xwq.REGISTRY_LEARNER["QMIX_Learner"](config, MixingQNetwork(config, spec))
    target = learner.targets["mixer"]
    assert torch.equal(target.state_normalizer.span, learner.policy.mixer.state_normalizer.span)
    state, qs = torch.rand(5, 3) * 1000, torch.randn(5, 2)
    assert torch.allclose(target(qs, state), learner.policy.mixer(qs, state))
    assert QMixer(2, 3).state_normalizer.identity  # a mixer built alone: no scaling


def test_normalization_buffers_are_saved_and_loaded_with_the_model(run_dirs, tmp_path):
    spec = EnvSpec(("a", "b"), 4, 6, 3, 5, obs_dtype="uint8", state_dtype="uint8",
                   obs_low=0, obs_high=255, state_low=0, state_high=255)
    auto = xwq.get_configs(method="qmix", env="matrix_game", env_id="nonmonotonic",
                           overrides=run_dirs)
    trained = MixingQNetwork(auto, spec)
    saved = trained.state_dict()
    assert saved["obs_normalizer.span"].item() == 255.0
    assert saved["mixer.state_normalizer.span"].item() == 255.0
    path = tmp_path / "model.pth"
    torch.save(saved, path)
    # a policy built without scaling takes the model's own scaling with its parameters
    none = xwq.get_configs(method="qmix", env="matrix_game", env_id="nonmonotonic",
                           overrides={**run_dirs, "input_normalization": "none"})
    loaded = MixingQNetwork(none, spec)
    assert loaded.obs_normalizer.identity
    loaded.load_state_dict(torch.load(path, weights_only=True))
    assert not loaded.obs_normalizer.identity
    assert loaded.mixer.state_normalizer.span.item() == 255.0
    pixels = torch.randint(0, 256, (1, 1, 2, 4), dtype=torch.uint8)
    no_action = torch.full((1, 1, 2), -1)
    assert torch.equal(loaded.build_inputs(pixels, no_action),
                       trained.build_inputs(pixels, no_action))
    # a model saved before input scaling existed fed raw inputs: it loads unscaled
    old = {k: v for k, v in saved.items() if "normalizer" not in k}
    fresh = MixingQNetwork(auto, spec)
    fresh.load_state_dict(old)
    assert fresh.obs_normalizer.identity and fresh.mixer.state_normalizer.identity


def test_a_pixel_env_trains_with_finite_losses(pixel_env_class, run_dirs):
    runner = pixel_runner(run_dirs, env_kwargs={"size": 8}, training_frequency=2)
    try:
        agents = runner.agents
        assert not agents.policy.obs_normalizer.identity
        losses = []
        while agents.learner.updates < 30:
            stats = agents.train(n_steps=1)
            if stats:
                losses.append(stats["loss"])
                assert np.isfinite(stats["grad_norm"])
        assert np.isfinite(losses).all()
    finally:
        runner.finish()


# --- the buffer is refused before the envs are built ---------------------------------------
def test_refusal_names_a_buffer_size_that_fits():
    spec = EnvSpec(tuple("abcd"), 3072, 12288, 4, 25, obs_dtype="uint8", state_dtype="uint8")
    with pytest.raises(BufferTooLargeError) as refused:
        EpisodeBuffer(5000, spec, budget_mb=64)
    message = str(refused.value)
    fits = int(re.search(r"buffer_size ≤ (\d+) fits in 64 MiB", message).group(1))
    assert "one episode holds" in message and "26 steps × 4 agents × 3072 obs values" in message
    assert EpisodeBuffer(fits, spec, budget_mb=64).nbytes <= 64 * 2**20
    with pytest.raises(BufferTooLargeError):
        EpisodeBuffer(fits + 1, spec, budget_mb=64)


def test_not_even_one_episode_fitting_says_so():
    spec = EnvSpec(("a",), 10**6, 1, 2, 100)
    with pytest.raises(BufferTooLargeError, match="not even one episode fits in 1 MiB"):
        check_buffer_memory(spec, 10, 1)


def test_a_buffer_larger_than_the_available_memory_warns(monkeypatch, caplog):
    import xwq.agents.buffer as buffer_module

    spec = EnvSpec(("a", "b"), 100, 10, 2, 10)
    per_episode = buffer_module.episode_nbytes(spec)
    monkeypatch.setattr(buffer_module, "available_memory", lambda: 5 * per_episode)
    EpisodeBuffer(5, spec)
    assert "available" not in caplog.text
    EpisodeBuffer(6, spec)
    assert "more than the" in caplog.text and "lower buffer_size to 5" in caplog.text


def test_an_oversized_buffer_is_refused_before_the_parallel_envs_are_built(pixel_env_class,
                                                                           run_dirs):
    built = []

    class Counted(pixel_env_class):
        def __init__(self, *args, **kwargs):
            built.append(self)
            super().__init__(*args, **kwargs)

    xwq.register_env("counted_pixels", Counted)
    runner = xwq.get_runner("qmix", "counted_pixels", "x", parallels=6, buffer_size=10**6,
                            buffer_memory_budget_mb=16, vectorize="serial", **run_dirs)
    with pytest.raises(BufferTooLargeError, match=r"buffer_size ≤ \d+ fits in 16 MiB"):
        runner.run()
    assert len(built) == 1  # the one env the buffer size was read from, not the 6 parallels


def test_a_greedy_test_run_builds_no_probe_env_and_no_buffer(pixel_env_class, run_dirs):
    trained = pixel_runner(run_dirs, running_steps=40)
    model = trained.run()
    trained.finish()
    runner = pixel_runner(run_dirs, is_test=True, model_path=str(model), buffer_size=10**6,
                          buffer_memory_budget_mb=1, test_episode=2, test_parallels=2)
    assert np.isfinite(runner.run())
    assert runner.agents._buffer is None
    runner.finish()


# --- state from the observations -------------------------------------------------------------
def test_state_source_observations_replaces_the_env_state(pixel_env_class, run_dirs):
    pixel_env_class.state_calls = 0
    runner = pixel_runner(run_dirs, state_source="observations")
    try:
        agents = runner.agents
        n, obs_dim = agents.spec.n_agents, agents.spec.obs_dim
        assert runner.envs.spec.state_dim == 0 and pixel_env_class.state_calls == 0
        assert agents.spec.state_dim == n * obs_dim == agents.policy.mixer.state_dim
        assert agents.policy.mixer.state_normalizer.span.max() == 255.0  # the obs bounds
        agents.train(n_steps=40)
        assert agents.learner.updates > 0
        assert "state" not in agents.buffer.data and pixel_env_class.state_calls == 0
        batch = agents.buffer.sample(2, np.random.default_rng(0))
        assert torch.equal(batch["state"], batch["obs"].reshape(*batch["obs"].shape[:2], -1))
    finally:
        runner.finish()
    default = pixel_runner(run_dirs)
    assert default.agents.policy.mixer.state_dim == default.envs.spec.state_dim == 8 * 8 * 3
    default.finish()


def test_state_source_observations_on_a_native_env(run_dirs):
    config = xwq.get_configs(method="qmix", env="matrix_game", env_id="nonmonotonic",
                             overrides={**run_dirs, "state_source": "observations"})
    envs = xwq.make_envs(config)
    agents = xwq.REGISTRY_AGENT["QMIX"](config, envs)
    assert envs.spec.state_dim == 5 and agents.policy.mixer.state_dim == 10
    envs.close()


def test_new_keys_are_validated():
    with pytest.raises(xwq.ConfigError, match="input_normalization"):
        xwq.get_configs(method="qmix", env="matrix_game", env_id="nonmonotonic",
                        overrides={"input_normalization": "pixels"})
    with pytest.raises(xwq.ConfigError, match="state_source"):
        xwq.get_configs(method="qmix", env="matrix_game", env_id="nonmonotonic",
                        overrides={"state_source": "obs"})


def test_docstring_examples_run():
    import doctest

    from xwq.environment import interfaces
    from xwq.policies import normalization

    for module in (interfaces, normalization):
        results = doctest.testmod(module, raise_on_error=False)
        assert results.attempted > 0 and results.failed == 0, module.__name__


def test_check_env_warns_about_large_values_it_cannot_scale(pixel_env_class):
    class Unbounded(pixel_env_class):
        def __init__(self):
            super().__init__(size=2, dtype="float32")
            image = spaces.Box(-np.inf, np.inf, (2, 2, 3), dtype=np.float32)
            self.observation_space = dict.fromkeys(self.agents, image)

    warnings = xwq.check_env(Unbounded(), steps=20)["warnings"]
    assert len(warnings) == 3 and "camera_0" in warnings[0]
    assert "declare their bounds" in warnings[0]
    assert xwq.check_env(pixel_env_class(size=2), steps=20)["warnings"] == []


def test_state_built_from_observations_keeps_their_dtype_and_bounds():
    """An env without state(): the state is the concatenated observations, stored as they are
    (uint8 stays uint8) with their spaces' bounds, so the mixer's input is scaled too."""
    class NoState(xwq.MultiAgentEnv):
        def __init__(self):
            self.agents = ["a", "b"]
            self.observation_space = {"a": spaces.Box(0, 255, (2, 2), dtype=np.uint8),
                                      "b": spaces.Box(0, 255, (3,), dtype=np.uint8)}
            self.action_space = dict.fromkeys(self.agents, spaces.Discrete(2))
            self.max_episode_steps = 3

        def reset(self, seed=None):
            return {"a": np.full((2, 2), 200, np.uint8), "b": np.full(3, 7, np.uint8)}, {}

    env = ArrayEnv(NoState())
    assert env.spec.state_dim == 7 and env.spec.state_dtype == "uint8"
    _, state, _ = env.reset(seed=0)
    assert state.dtype == np.uint8 and state.tolist() == [200] * 4 + [7] * 3
    low, high = env.spec.state_low, env.spec.state_high
    assert np.broadcast_to(low, (7,)).tolist() == [0] * 7
    assert np.broadcast_to(high, (7,)).tolist() == [255] * 7


def test_a_seed_group_scales_pixels_as_each_seed_alone(pixel_env_class, run_dirs):
    """Seeds as a batch dimension (stacked networks under vmap) carry the input normalisers'
    buffers: a seed trained among others on uint8 pixels is that seed trained alone."""
    from xwq.agents.seed_group import SeedGroup

    def agents(seed):
        return pixel_runner(run_dirs, seed=seed).agents

    alone = agents(2)
    members = [agents(s) for s in (7, 2)]
    assert not alone.policy.obs_normalizer.identity  # the pixels are scaled
    alone.train(100)
    SeedGroup(members).run([lambda a=a: a.train(100) for a in members])
    member = members[1]
    assert member.learner.updates == alone.learner.updates > 0
    for key, array in alone.buffer.data.items():
        assert np.array_equal(array, member.buffer.data[key]), key
    for p, q in zip(alone.policy.parameters(), member.policy.parameters()):
        assert (p - q).abs().max().item() < 1e-5
