"""Train WQMIX on your own environment, XuanCe style.

Two ways to bring an environment: subclass ``xwq.MultiAgentEnv`` (below), or register any
PettingZoo ``ParallelEnv`` factory unchanged (see the end of this file).

    python examples/custom_env.py
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
from gymnasium import spaces

import xwq
from xwq.agents import WQMIX_Agents


class GatherEnv(xwq.MultiAgentEnv):
    """Two agents on a line of 7 cells must both reach the middle; each step costs 0.1.

    Actions: 0 left, 1 stay, 2 right. Terminated when both stand on cell 3. ``info["met"]``
    (1.0 once they meet) is an episode statistic: xwq logs its mean, and ``eval_metric: met``
    would rank models by it.
    """

    def __init__(self, env_id: str, size: int = 7, **_):
        self.size = size
        self.agents = ["left_agent", "right_agent"]
        self.observation_space = {a: spaces.Box(0.0, 1.0, (2,)) for a in self.agents}
        self.action_space = {a: spaces.Discrete(3) for a in self.agents}
        self.state_space = spaces.Box(0.0, 1.0, (2,))
        self.max_episode_steps = 20
        self.rng = np.random.default_rng()

    def _obs(self):
        scaled = self.pos / (self.size - 1)
        return {a: scaled.astype(np.float32) for a in self.agents}

    def reset(self, seed=None):
        if seed is not None:
            self.rng = np.random.default_rng(seed)
        self.pos = np.array([0, self.size - 1]) + self.rng.integers(0, 2, 2) * [1, -1]
        return self._obs(), {}

    def step(self, actions):
        moves = np.array([actions[a] - 1 for a in self.agents])
        self.pos = np.clip(self.pos + moves, 0, self.size - 1)
        done = bool((self.pos == self.size // 2).all())
        reward = 1.0 if done else -0.1
        return (self._obs(), {a: reward for a in self.agents}, {a: done for a in self.agents},
                {a: False for a in self.agents}, {"met": float(done)})

    def state(self):
        return (self.pos / (self.size - 1)).astype(np.float32)


def main() -> None:
    print(xwq.check_env(GatherEnv("line")))  # explains any mismatch before training

    workdir = Path(tempfile.mkdtemp(prefix="xwq_custom_"))
    config_file = workdir / "gather.yaml"
    config_file.write_text(
        "method: wqmix\nenv_name: gather\nenv_id: line\n"
        "parallels: 4\nrunning_steps: 20000\ntraining_frequency: 10\n"
        "decay_step_greedy: 10000\nrepresentation: Basic_MLP\n"
        f"log_dir: {workdir / 'logs'}\n")
    configs = xwq.get_configs(file_dir=config_file)
    xwq.register_env(configs.env_name, GatherEnv)
    xwq.setup_process(configs)  # torch threads, seeds, device check: once, before the envs
    envs = xwq.make_envs(configs)
    agent = WQMIX_Agents(config=configs, envs=envs)
    agent.train(configs.running_steps // configs.parallels)
    episodes = agent.evaluate(xwq.make_envs(configs, test=True), n_episodes=8)
    print(f"greedy test return: {np.mean(episodes.returns):.2f} (best possible is about 0.8); "
          f"met in {np.mean(episodes.statistics['met']):.0%} of the episodes")
    agent.save_model(workdir / "gather_wqmix.pth")
    agent.finish()

    # Any PettingZoo ParallelEnv works the same way, without subclassing, e.g.:
    #   from pettingzoo.classic import rps_v2
    #   xwq.register_env("rps", lambda env_id, **kwargs: rps_v2.parallel_env(**kwargs))
    #   xwq.get_runner("qmix", "rps", "default", running_steps=5000).run()


if __name__ == "__main__":
    main()
