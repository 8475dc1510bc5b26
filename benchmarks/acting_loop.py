"""One seed's env + acting throughput: the training loop's collection without its updates.

For each case (method × env) this times, in env steps per second (wall and CPU):

- ``collect``: ``agents.collect()`` — the env step, acting (one batched forward pass for all
  envs × agents, ε-greedy), and the rollout's bookkeeping (episodes into the buffer layout,
  statistics, finished episodes into the replay buffer); what training does between updates;
- ``env``: the vec env's ``step`` alone, each agent taking its first available action;
- ``act``: ``agents.act`` alone, on the rollout's current observations;
- ``train``: the whole training loop (``agents.train``) for the same env steps, at one update
  per ``--training-frequency`` env steps (default 200: one per 8 MPE episodes), batches of 32
  episodes: how much of the collection's gain a run keeps once updates are added.

Each measurement runs in its own process, pinned to one core (``taskset``) with one torch
thread. With ``--baseline REV`` the same measurements also run on git revision ``REV`` (checked
out into a temporary worktree and imported from there), alternating tree by tree, so that both
see the same machine load; the table reports each tree's medians and the median over repeats
of the ratio this tree / REV (each repeat's two measurements ran back to back).

    python benchmarks/acting_loop.py                          # this tree only
    python benchmarks/acting_loop.py --baseline 2814ffc --repeats 5
    python benchmarks/acting_loop.py --cases qmix:simple_spread_v3 --steps 20000
    python benchmarks/acting_loop.py --report results/acting_loop_spread.json   # the table again

Results: ``results/acting_loop.json`` (``--out`` to change), the table on stdout. The committed
runs are ``results/acting_loop_spread.json`` and ``results/acting_loop_predator_prey.json``
(their commands are inside).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).resolve().parent / "results" / "acting_loop.json"
#: method:env_id; env_id ``punishment`` is predator-prey
CASES = ["qmix:simple_spread_v3", "ow_qmix:simple_spread_v3", "qmix:punishment",
         "ow_qmix:punishment"]


PARTS = ("collect", "env", "act", "train")


def child(case: str, steps: int, training_frequency: int, train: bool) -> dict:
    """Build the case's agents and time collect, act and env, then (``train``) the training
    loop on agents of their own; runs in the measuring process."""
    import time

    import torch

    import xwq

    method, env_id = case.split(":")
    env = "predator_prey" if env_id == "punishment" else "mpe"

    def build():
        runner = xwq.get_runner(method, env, env_id, progress_bar=False, threads=1,
                                log_dir=tempfile.mkdtemp(), log_interval=10**9,
                                buffer_size=256, batch_size=32, training_unit="steps",
                                training_frequency=training_frequency)
        agents = runner.agents
        # warm-up: buffers allocated, code paths taken, a batch's worth of episodes stored
        while agents.episodes < 32 or agents.env_steps < steps // 10:
            agents.collect()
        return runner

    runner = build()
    agents, envs = runner.agents, runner.envs
    K = envs.num_envs
    rollout = agents.rollout
    vec_steps = max(1, steps // K)

    def collect() -> None:
        for _ in range(vec_steps):
            agents.collect()

    def act_only() -> None:  # draws from the agents' RNG, steps nothing
        for _ in range(vec_steps):
            agents.act(rollout.obs, rollout.avail, rollout.prev_actions, rollout.hidden)

    def env_only() -> None:  # steps the envs behind the rollout's back: the last to use them
        avail = rollout.avail
        for _ in range(vec_steps):
            avail = envs.step(avail.argmax(axis=-1), reset_seeds=rollout.next_seeds).avail

    def timed(fn) -> dict:
        wall, cpu = time.perf_counter(), time.process_time()
        fn()
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        return {"steps_per_s": vec_steps * K / wall, "cpu_steps_per_s": vec_steps * K / cpu}

    out = {"xwq": str(Path(xwq.__file__).parent), "torch_threads": torch.get_num_threads(),
           "num_envs": K}
    for name, fn in (("collect", collect), ("act", act_only), ("env", env_only)):
        out[name] = timed(fn)
    runner.finish()
    if train:  # fresh agents: the env part left the first ones' envs out of step
        runner = build()
        out["train"] = timed(lambda: runner.agents.train(vec_steps))
        runner.finish()
    return out


def measure(tree: Path, case: str, steps: int, training_frequency: int, core: int,
            train: bool) -> dict:
    env = {**os.environ, "PYTHONPATH": str(tree), "OMP_NUM_THREADS": "1",
           "SDL_NO_SIGNAL_HANDLERS": "1"}
    pin = ["taskset", "-c", str(core)] if shutil.which("taskset") else []
    command = [*pin, sys.executable, __file__, "--child", case, "--steps", str(steps),
               "--training-frequency", str(training_frequency),
               *([] if train else ["--no-train"])]
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{case} on {tree} failed:\n{done.stderr[-3000:]}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    if Path(result["xwq"]).resolve() != (tree / "xwq").resolve():
        raise RuntimeError(f"measured {result['xwq']}, not the tree {tree}")
    return result


def summarize(raw: dict) -> list[dict]:
    """Per case: each tree's median steps/s per part (wall and CPU) and, with a baseline, the
    median of the per-repeat ratios this / baseline (each repeat's pair ran back to back, so
    their ratio cancels most of the load they shared)."""
    rows = []
    for case, per_tree in raw.items():
        first = next(iter(per_tree.values()))[0]
        parts = [part for part in PARTS if part in first]  # no train part with --no-train
        row = {"case": case, "parts": parts}
        for name, runs in per_tree.items():
            for part in parts:
                for key in ("steps_per_s", "cpu_steps_per_s"):
                    row[f"{name}_{part}_{key}"] = float(np.median([r[part][key] for r in runs]))
        if "baseline" in per_tree:
            for part in parts:
                for key in ("steps_per_s", "cpu_steps_per_s"):
                    row[f"ratio_{part}_{key}"] = float(np.median([
                        this[part][key] / base[part][key]
                        for this, base in zip(per_tree["this"], per_tree["baseline"],
                                              strict=True)]))
        rows.append(row)
    return rows


def render(rows: list[dict], trees: list[str]) -> str:
    """The Markdown table of :func:`summarize`'s rows."""
    compare = "baseline" in trees
    lines = ["| case | part | " + " | ".join(f"{name} steps/s (CPU)" for name in trees)
             + (" | ratio wall / CPU |" if compare else " |"),
             "|---|---|" + "---:|" * (len(trees) + compare)]
    for row in rows:
        for part in row["parts"]:
            cells = [f"{row[f'{name}_{part}_steps_per_s']:,.0f} "
                     f"({row[f'{name}_{part}_cpu_steps_per_s']:,.0f})" for name in trees]
            if compare:
                cells.append(f"×{row[f'ratio_{part}_steps_per_s']:.2f} / "
                             f"×{row[f'ratio_{part}_cpu_steps_per_s']:.2f}")
            lines.append(f"| {row['case']} | {part} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", nargs="+", default=CASES, metavar="METHOD:ENV_ID")
    parser.add_argument("--steps", type=int, default=20_000, help="env steps per measurement")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--training-frequency", type=int, default=200,
                        help="env steps per update in the train part")
    parser.add_argument("--baseline", metavar="REV", help="git revision to compare against")
    parser.add_argument("--core", type=int, default=0, help="the core to pin to")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--no-train", action="store_true", help="skip the train part")
    parser.add_argument("--report", type=Path, metavar="JSON",
                        help="only print the table of a results file (summarised again)")
    parser.add_argument("--child", metavar="CASE", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(child(args.child, args.steps, args.training_frequency,
                               not args.no_train)))
        return {}
    if args.report:
        saved = json.loads(args.report.read_text())
        rows = summarize(saved["raw"])
        print(render(rows, list(next(iter(saved["raw"].values())))))
        return {**saved, "rows": rows}

    trees = {"this": ROOT}
    worktree = None
    if args.baseline:
        worktree = Path(tempfile.mkdtemp(prefix="xwq-baseline-")) / "tree"
        subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(worktree),
                        args.baseline], check=True, capture_output=True)
        trees["baseline"] = worktree
    try:
        raw: dict = {case: {name: [] for name in trees} for case in args.cases}
        for repeat in range(args.repeats):
            for case in args.cases:
                for name, tree in trees.items():  # alternating: both trees see the same load
                    raw[case][name].append(measure(tree, case, args.steps,
                                                   args.training_frequency, args.core,
                                                   not args.no_train))
                    print(f"repeat {repeat + 1}/{args.repeats} {case} {name}: collect "
                          f"{raw[case][name][-1]['collect']['steps_per_s']:.0f} steps/s",
                          file=sys.stderr)
    finally:
        if worktree is not None:
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force",
                            str(worktree)], check=False, capture_output=True)

    rows = summarize(raw)
    print(render(rows, list(trees)))

    result = {"command": "python benchmarks/acting_loop.py " + " ".join(argv or sys.argv[1:]),
              "baseline": args.baseline, "steps": args.steps, "repeats": args.repeats,
              "load_average": os.getloadavg(), "rows": rows, "raw": raw}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1, default=str) + "\n")
    return result


if __name__ == "__main__":
    main()
