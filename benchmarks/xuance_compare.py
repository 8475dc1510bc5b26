"""End-to-end WQMIX training speed on MPE simple_spread_v3: xwq versus XuanCe 1.4.4.

Both libraries train OW-QMIX (alpha 0.1) with GRU-64 agents for the same env steps, with the same
number of parallel envs and the same number of gradient updates on batches of the same number of
episodes. Every run is a fresh subprocess with one torch thread (``OMP_NUM_THREADS=1``,
``torch.set_num_threads(1)``); the runs alternate (xwq, XuanCe, xwq, ...) and the timings are
medians over repeats, so compare the ratios, which are measured side by side in one run.

xwq runs twice: with its default env backend (``vectorize: auto``, the native numpy-vectorised
simple_spread) and with ``vectorize: serial`` (mpe2 through its PettingZoo API, one env after
another, like XuanCe's ``DummyVecMultiAgentEnv`` over ``pettingzoo.mpe``), so the env-speed
advantage is separated from the learner/loop advantage.

XuanCe is not a dependency of xwq: it runs from its own virtualenv (it pins numpy<2 and
gymnasium<1.3, and its MPE import needs ``pettingzoo<1.25``). Make it once, outside the repo::

    python3 -m venv /tmp/xuance-venv
    /tmp/xuance-venv/bin/pip install torch==2.13.0            # first: the CPU wheel
    /tmp/xuance-venv/bin/pip install --no-deps xuance==1.4.4  # its deps would add torchvision
    /tmp/xuance-venv/bin/pip install "numpy<2" "gymnasium>=0.28,<1.3" "pettingzoo<1.25" \\
        scipy PyYAML tqdm "pyglet==1.5.15" wandb tensorboard pygame

(torchvision, opencv-python, moviepy and imageio are not needed to import and train its MARL
agents; XuanCe only prints a notice about opencv.) Then::

    python benchmarks/xuance_compare.py                        # N=20000, P=8, 3 repeats
    python benchmarks/xuance_compare.py --steps 20000 --parallels 8 --repeats 3

Without the venv it times the xwq half only and says so. Results go to
``benchmarks/results/xuance_compare.json``.

How the XuanCe run is matched to xwq (``xwq`` defaults in brackets):

- ``agent: OWQMIX`` [wqmix = OW-QMIX], ``alpha: 0.1``, ``double_q: True``, ``gamma: 0.99``;
- ``use_rnn: True``, ``representation: Basic_RNN``, ``rnn: GRU``, ``fc_hidden_sizes: [64]``,
  ``recurrent_hidden_size: 64``, ``q_hidden_size: []`` (a linear Q head) [Linear-ReLU-GRU-Linear];
  mixers ``hidden_dim_mixing_net 32``, ``hidden_dim_hyper_net 64``, ``hidden_dim_ff_mix_net 256``
  (the packaged values of both libraries);
- ``batch_size`` (episodes), ``buffer_size: 5000`` episodes [5000];
- updates: with ``use_rnn`` XuanCe collects one episode in each of the P envs per round and then
  runs ``n_epochs`` updates if ``current_step >= start_training`` (``training_frequency`` is not
  used). xwq makes ``P*25/training_frequency`` updates per round once the buffer holds
  ``batch_size`` episodes. So ``n_epochs = P*25/training_frequency`` and ``start_training`` = the
  env steps of the first round after which xwq's buffer holds ``batch_size`` episodes; both
  learners' update calls are counted by wrapping them, and the counts are checked equal;
- ``learning_rate: 0.0005``, ``use_grad_clip: True``, ``grad_clip_norm: 10`` [same];
  XuanCe's WQMIX learner always uses Adam, so xwq is run with ``optimizer: adam`` [rmsprop];
- epsilon 1.0 -> 0.05 over 50,000 env steps (XuanCe's QMIX family divides
  ``decay_step_greedy`` by ``parallels``, so it gets ``50000 * P``);
- ``sync_frequency: 200`` updates; ``seed: 1``; ``vectorize: DummyVecMultiAgentEnv``.

What differs and cannot be configured away is listed in ``not_like_for_like`` in the JSON.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from xwq.runners.results import environment_report, package_versions, write_json

RESULTS = Path(__file__).resolve().parent / "results" / "xuance_compare.json"
DEFAULT_VENV = Path("/tmp/xuance-venv")
EPISODE_LEN = 25  # simple_spread_v3 max_cycles

# The XuanCe half, written to a temp file and run with the venv's python. It prints one line
# "RESULT {json}". Only public XuanCe API is used: get_runner(..., parser_args=Namespace) and the
# agent's train(); the learner's update_rnn is wrapped to count and time the updates.
XUANCE_CHILD = r'''
import argparse, json, os, sys, time
import torch
torch.set_num_threads(1)
import numpy as np
import xuance

cfg = json.loads(sys.argv[1])
N, P = cfg["N"], cfg["P"]
overrides = dict(
    agent="OWQMIX", alpha=0.1, double_q=True, gamma=0.99,
    use_rnn=True, rnn="GRU", representation="Basic_RNN", N_recurrent_layers=1,
    fc_hidden_sizes=[64], recurrent_hidden_size=64, q_hidden_size=[],
    hidden_dim_mixing_net=32, hidden_dim_hyper_net=64, hidden_dim_ff_mix_net=256,
    parallels=P, running_steps=N, batch_size=cfg["batch"], buffer_size=cfg["buffer"],
    start_training=cfg["start_training"], n_epochs=cfg["n_epochs"],
    training_frequency=cfg["training_frequency"],
    learning_rate=0.0005, use_grad_clip=True, grad_clip_norm=10.0, sync_frequency=200,
    start_greedy=1.0, end_greedy=0.05, decay_step_greedy=50000 * P,
    vectorize="DummyVecMultiAgentEnv", device="cpu", render=False, logger="tensorboard",
    log_dir=os.path.join(cfg["workdir"], "logs"), model_dir=os.path.join(cfg["workdir"], "models"),
    seed=1, env_seed=1,
)
os.chdir(cfg["workdir"])
t0 = time.perf_counter()
runner = xuance.get_runner("wqmix", "mpe", "simple_spread_v3",
                           parser_args=argparse.Namespace(**overrides))
agent = runner.agent
stats = {"updates": 0, "update_s": 0.0, "update_cpu_s": 0.0}
update_rnn = agent.learner.update_rnn

def counted_update(sample):
    start, cpu = time.perf_counter(), time.process_time()
    out = update_rnn(sample)
    stats["update_s"] += time.perf_counter() - start
    stats["update_cpu_s"] += time.process_time() - cpu
    stats["updates"] += 1
    return out

agent.learner.update_rnn = counted_update
t1, c1 = time.perf_counter(), time.process_time()
agent.train(N // P)
t2, c2 = time.perf_counter(), time.process_time()
config = {k: getattr(agent.config, k) for k in sorted(overrides) if hasattr(agent.config, k)}
print("RESULT " + json.dumps(dict(
    build_s=t1 - t0, train_s=t2 - t1, train_cpu_s=c2 - c1, env_steps=int(agent.current_step),
    updates=stats["updates"], update_s=stats["update_s"], update_cpu_s=stats["update_cpu_s"],
    learner_iterations=int(agent.learner.iterations), torch_threads=torch.get_num_threads(),
    n_envs=int(agent.n_envs), episode_length=int(agent.episode_length),
    env_class=type(runner.envs).__name__, agent_class=type(agent).__name__,
    learner_class=type(agent.learner).__name__, config=config,
    versions=dict(xuance=xuance.__version__, torch=torch.__version__, numpy=np.__version__,
                  pettingzoo=__import__("pettingzoo").__version__,
                  python=sys.version.split()[0]))))
'''


def xwq_child(cfg: dict) -> dict:
    """The xwq half (runs in a fresh ``sys.executable`` subprocess)."""
    import torch

    import xwq

    t0 = time.perf_counter()
    runner = xwq.get_runner(
        "wqmix", "mpe", "simple_spread_v3", running_steps=cfg["N"], parallels=cfg["P"],
        batch_size=cfg["batch"], training_frequency=cfg["training_frequency"],
        buffer_size=cfg["buffer"], optimizer="adam", sync_unit="updates", threads=1,
        progress_bar=False,
        vectorize=cfg["vectorize"], log_dir=os.path.join(cfg["workdir"], "logs"),
        model_dir=os.path.join(cfg["workdir"], "models"), seed=1)
    agents = runner.agents
    stats = {"updates": 0, "update_s": 0.0, "update_cpu_s": 0.0}
    update = agents.learner.update

    def counted_update(batch, **kwargs):
        start, cpu = time.perf_counter(), time.process_time()
        out = update(batch, **kwargs)
        stats["update_s"] += time.perf_counter() - start
        stats["update_cpu_s"] += time.process_time() - cpu
        stats["updates"] += 1
        return out

    agents.learner.update = counted_update
    t1, c1 = time.perf_counter(), time.process_time()
    agents.train(cfg["N"] // cfg["P"])
    t2, c2 = time.perf_counter(), time.process_time()
    keys = ("method", "agent", "weighting", "alpha", "representation", "fc_hidden_sizes",
            "recurrent_hidden_size", "obs_last_action", "obs_agent_id", "mixer",
            "hidden_dim_mixing_net", "hidden_dim_hyper_net", "hidden_dim_ff_mix_net",
            "optimizer", "learning_rate", "use_grad_clip", "grad_clip_norm", "double_q",
            "gamma", "sync_frequency", "sync_unit", "batch_size", "buffer_size", "start_training",
            "training_frequency", "start_greedy", "end_greedy", "decay_step_greedy",
            "parallels", "vectorize", "threads", "running_steps", "seed")
    return dict(
        build_s=t1 - t0, train_s=t2 - t1, train_cpu_s=c2 - c1, env_steps=int(agents.env_steps),
        updates=stats["updates"], update_s=stats["update_s"], update_cpu_s=stats["update_cpu_s"],
        learner_updates=int(agents.learner.updates), torch_threads=torch.get_num_threads(),
        n_envs=int(runner.envs.num_envs), env_class=type(runner.envs).__name__,
        config={k: getattr(runner.config, k) for k in keys},
        versions=package_versions())


def child_env() -> dict:
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    env.pop("PYTHONPATH", None)
    return env


def run_child(cmd: list[str], cwd: str, log: Path) -> dict:
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=cwd, env=child_env(), capture_output=True, text=True)
    wall = time.perf_counter() - start
    log.write_text(proc.stdout + "\n--- stderr ---\n" + proc.stderr)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    if proc.returncode != 0 or not lines:
        tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-15:])
        raise RuntimeError(f"{cmd[0]} exited {proc.returncode}:\n{tail}")
    result = json.loads(lines[-1][len("RESULT "):])
    result["process_wall_s"] = wall
    return result


def update_schedule(N: int, P: int, batch: int, freq: int) -> dict:
    """xwq's update count for these settings, and XuanCe's (start_training, n_epochs) that give
    the same count."""
    round_steps = P * EPISODE_LEN
    if round_steps % freq:
        raise SystemExit(f"parallels*{EPISODE_LEN} ({round_steps}) must be a multiple of "
                         f"--training-frequency ({freq}) to match XuanCe's per-round n_epochs")
    n_rounds = math.ceil(N / round_steps)
    first_round = math.ceil(batch / P)  # after this round xwq's buffer holds >= batch episodes
    n_epochs = round_steps // freq
    return dict(n_rounds=n_rounds, n_epochs=n_epochs, start_training=first_round * round_steps,
                expected_updates=max(0, n_rounds - first_round + 1) * n_epochs)


def git_state() -> dict:
    root = Path(__file__).resolve().parents[1]
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True,
                              text=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "xwq"], cwd=root,
                               capture_output=True, text=True).stdout.split("\n")
        return {"commit": head, "xwq_files_modified": [d for d in dirty if d.strip()],
                "time": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    except OSError:
        return {}


def summarise(runs: list[dict]) -> dict:
    def med(key):
        return float(statistics.median(r[key] for r in runs))
    return dict(train_s_median=med("train_s"),
                train_cpu_s_median=med("train_cpu_s"),
                ms_per_update_cpu_median=float(statistics.median(
                    1000 * r["update_cpu_s"] / max(r["updates"], 1) for r in runs)),
                env_steps_per_s_median=float(statistics.median(
                    r["env_steps"] / r["train_s"] for r in runs)),
                update_s_median=med("update_s"),
                ms_per_update_median=float(statistics.median(
                    1000 * r["update_s"] / max(r["updates"], 1) for r in runs)),
                non_update_s_median=float(statistics.median(
                    r["train_s"] - r["update_s"] for r in runs)),
                build_s_median=med("build_s"),
                env_steps=sorted({r["env_steps"] for r in runs}),
                updates=sorted({r["updates"] for r in runs}),
                train_s_all=[r["train_s"] for r in runs],
                train_cpu_s_all=[r["train_cpu_s"] for r in runs],
                loadavg_before=[r["loadavg_before"] for r in runs])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=20_000, help="env steps per run (N)")
    parser.add_argument("--parallels", type=int, default=8, help="parallel envs (P)")
    parser.add_argument("--batch", type=int, default=32, help="episodes per update")
    parser.add_argument("--training-frequency", type=int, default=25,
                        help="xwq: env steps per update")
    parser.add_argument("--buffer", type=int, default=5000, help="replay capacity, episodes")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--venv", type=Path, default=DEFAULT_VENV,
                        help="virtualenv with xuance==1.4.4 (see the module docstring)")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--child-xwq", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.child_xwq:
        print("RESULT " + json.dumps(xwq_child(json.loads(args.child_xwq))), flush=True)
        return

    N, P = args.steps, args.parallels
    sched = update_schedule(N, P, args.batch, args.training_frequency)
    venv_python = args.venv / "bin" / "python"
    have_xuance = venv_python.exists() and subprocess.run(
        [str(venv_python), "-c", "import xuance, pettingzoo.mpe"], capture_output=True,
        env=child_env()).returncode == 0
    if not have_xuance:
        print(f"XuanCe not found in {args.venv}: timing the xwq half only "
              "(see this script's docstring to make the venv)")

    git_before = git_state()
    workroot = Path(tempfile.mkdtemp(prefix="xuance_compare_"))
    script = workroot / "xuance_child.py"
    script.write_text(XUANCE_CHILD)
    base = dict(N=N, P=P, batch=args.batch, buffer=args.buffer,
                training_frequency=args.training_frequency)
    variants = {
        "xwq-native": [sys.executable, str(Path(__file__).resolve()), "--child-xwq",
                       json.dumps(dict(base, vectorize="auto"))],
        "xwq-serial": [sys.executable, str(Path(__file__).resolve()), "--child-xwq",
                       json.dumps(dict(base, vectorize="serial"))],
        "xuance": [str(venv_python), str(script),
                   json.dumps(dict(base, start_training=sched["start_training"],
                                   n_epochs=sched["n_epochs"]))],
    }
    runs: dict[str, list[dict]] = {name: [] for name in variants}
    sequence = []
    try:
        for rep in range(args.repeats):
            order = ["xwq-native", "xuance", "xwq-serial"] if rep % 2 == 0 else \
                    ["xwq-serial", "xuance", "xwq-native"]
            for name in order:
                if name == "xuance" and not have_xuance:
                    continue
                workdir = workroot / f"{name}_{rep}"
                workdir.mkdir()
                cmd = list(variants[name])
                cmd[-1] = json.dumps(dict(json.loads(cmd[-1]), workdir=str(workdir)))
                load = os.getloadavg()
                result = run_child(cmd, str(workdir), workroot / f"{name}_{rep}.log")
                result["loadavg_before"] = [round(x, 2) for x in load]
                result["repeat"] = rep
                runs[name].append(result)
                sequence.append(name)
                print(f"[{rep}] {name:10s} train {result['train_s']:7.2f} s  "
                      f"{result['env_steps'] / result['train_s']:8.0f} env steps/s  "
                      f"updates {result['updates']}  ({result['update_s']:.2f} s in updates)  "
                      f"load {load[0]:.2f}", flush=True)
    finally:
        shutil.rmtree(workroot, ignore_errors=True)

    summary = {name: summarise(r) for name, r in runs.items() if r}
    for name, s in summary.items():
        if s["updates"] != [sched["expected_updates"]] or s["env_steps"] != [N]:
            print(f"WARNING: {name} made {s['updates']} updates over {s['env_steps']} env steps "
                  f"(expected {sched['expected_updates']} over {N})")
    ratios = {}
    if "xuance" in summary:
        for name in ("xwq-native", "xwq-serial"):
            paired = [x["train_s"] / w["train_s"] for w, x in zip(runs[name], runs["xuance"])]
            ratios[f"xuance_time / {name}_time"] = dict(
                of_medians=summary["xuance"]["train_s_median"] / summary[name]["train_s_median"],
                paired_median=float(statistics.median(paired)), paired_all=paired)
            ratios[f"xuance_cpu_time / {name}_cpu_time"] = (
                summary["xuance"]["train_cpu_s_median"] / summary[name]["train_cpu_s_median"])
        ratios["xuance_ms_per_update / xwq_ms_per_update (serial run)"] = (
            summary["xuance"]["ms_per_update_median"]
            / summary["xwq-serial"]["ms_per_update_median"])
        ratios["xuance_non_update_s / xwq-serial_non_update_s"] = (
            summary["xuance"]["non_update_s_median"]
            / summary["xwq-serial"]["non_update_s_median"])

    print(f"\nWQMIX on mpe/simple_spread_v3: N={N} env steps, P={P} envs, batch {args.batch} "
          f"episodes, {sched['expected_updates']} updates expected, {args.repeats} repeats, "
          "medians, 1 torch thread")
    print(f"{'run':12s} {'train s':>8s} {'env steps/s':>12s} {'updates':>8s} "
          f"{'ms/update':>10s} {'non-update s':>13s} {'train CPU s':>12s} {'CPU ms/upd':>11s}")
    for name, s in summary.items():
        print(f"{name:12s} {s['train_s_median']:8.2f} {s['env_steps_per_s_median']:12.0f} "
              f"{'/'.join(map(str, s['updates'])):>8s} {s['ms_per_update_median']:10.2f} "
              f"{s['non_update_s_median']:13.2f} {s['train_cpu_s_median']:12.2f} "
              f"{s['ms_per_update_cpu_median']:11.2f}")
    for key, value in ratios.items():
        if isinstance(value, dict):
            print(f"{key}: {value['of_medians']:.2f}x "
                  f"(paired median {value['paired_median']:.2f}x)")
        else:
            print(f"{key}: {value:.2f}x")

    report = dict(
        benchmark="xuance_compare", method="wqmix (OW-QMIX, alpha 0.1)", env="mpe",
        env_id="simple_spread_v3", N_env_steps=N, parallels=P, batch_size_episodes=args.batch,
        buffer_size_episodes=args.buffer, xwq_training_frequency=args.training_frequency,
        repeats=args.repeats, expected_updates=sched["expected_updates"],
        xuance_matching=dict(start_training=sched["start_training"], n_epochs=sched["n_epochs"],
                             use_rnn=True, note="with use_rnn XuanCe ignores training_frequency: "
                             "n_epochs updates after each round of P episodes"),
        timing="train() wall time only (construction excluded, reported as build_s); "
               "each run a fresh subprocess, OMP_NUM_THREADS=1, torch.set_num_threads(1); "
               "train_cpu_s is the child's process CPU time over train(), less sensitive to "
               "other jobs on a shared machine than wall time",
        command=" ".join(["python", "benchmarks/xuance_compare.py"] + sys.argv[1:]),
        order=sequence, summary=summary, ratios=ratios, runs=runs,
        versions=dict(xwq_side=runs["xwq-native"][0]["versions"],
                      xuance_side=runs["xuance"][0]["versions"] if runs.get("xuance") else None),
        xuance_available=have_xuance, machine=environment_report()["machine"],
        git=dict(before=git_before, after=git_state()),
        not_like_for_like=[
            "envs: xwq-serial steps mpe2 1.1.1 through its PettingZoo API; XuanCe steps "
            "pettingzoo.mpe from pettingzoo 1.24.4 (the same scenario code before it moved to "
            "mpe2); xwq-native is xwq's own numpy-vectorised simple_spread",
            "agent inputs: xwq appends the one-hot previous action and agent id to the GRU "
            "body's input (obs 18 + 5 + 3); XuanCe feeds the obs (18) to the body and appends "
            "the agent id to the Q head's input",
            "XuanCe decays the learning rate linearly (LinearLR to 0.5x) and logs to TensorBoard "
            "after every round; xwq logs every log_interval (2000) env steps",
            "XuanCe's tqdm progress bar cannot be turned off (TQDM_DISABLE=1 crashes its "
            "train(): 'tqdm' object has no attribute 'last_print_n'); its output goes to a pipe",
            "exploration: XuanCe replaces all envs' actions with random ones with probability "
            "epsilon per step; xwq draws epsilon-greedy per agent",
            "XuanCe samples batch episodes with replacement; xwq without",
        ],
    )
    print(f"wrote {write_json(report, args.out)}")


if __name__ == "__main__":
    main()
