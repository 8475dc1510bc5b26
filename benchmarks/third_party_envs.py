"""Real third-party PettingZoo envs through xwq, unchanged: ``check_env`` and a tiny training.

For each env (PettingZoo 1.27's sisl and butterfly families — pursuit is v5
there, cooperative_pong v6, waterworld gone —, every mpe2 env, classic rps, pogema) this builds
the ParallelEnv with only its natural kwargs (``max_cycles`` and the like), runs
``xwq.check_env(env)``, then ``xwq.register_env(name, factory)`` and
``get_runner("qmix", name, ...).run()`` for a few episodes. Each env runs in its own subprocess
(with a timeout), so a crash or a memory refusal in one is recorded and the rest still run.
Outcomes: ``ok`` (checked and trained), ``error`` (an xwq error: its one-line message is the
result; continuous-action envs are expected here), ``diverged`` (training stopped on a
non-finite loss, e.g. unnormalised pixels), ``crash`` (anything else: a bug to fix),
``not installed``.

These packages are not installed in CI: ``pip install "pettingzoo[sisl,butterfly]"``; pogema
pins gymnasium 0.28 and numpy<2, so it runs from its own venv (``--python``) and the results
are merged into the same file.

    python benchmarks/third_party_envs.py                          # every env, results/…json
    /tmp/pogema-venv/bin/python benchmarks/third_party_envs.py --envs pogema
"""

from __future__ import annotations

import argparse
import importlib
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results" / "third_party_envs.json"

#: name -> (module, constructor, natural kwargs); every one is a ParallelEnv constructor
ENVS: dict[str, tuple[str, str, dict[str, Any]]] = {
    "pursuit_v5": ("pettingzoo.sisl.pursuit_v5", "parallel_env", {"max_cycles": 25}),
    "multiwalker_v9": ("pettingzoo.sisl.multiwalker_v9", "parallel_env", {"max_cycles": 25}),
    "cooperative_pong_v6": ("pettingzoo.butterfly.cooperative_pong_v6", "parallel_env",
                            {"max_cycles": 25}),
    "pistonball_v6": ("pettingzoo.butterfly.pistonball_v6", "parallel_env",
                      {"max_cycles": 25, "continuous": False}),
    "knights_archers_zombies_v11": ("pettingzoo.butterfly.knights_archers_zombies_v11",
                                    "parallel_env", {"max_cycles": 25}),
    "rps_v2": ("pettingzoo.classic.rps_v2", "parallel_env", {"max_cycles": 15}),
    **{name: (f"mpe2.{name}", "parallel_env", {"max_cycles": 25}) for name in (
        "simple_v3", "simple_spread_v3", "simple_reference_v3", "simple_speaker_listener_v4",
        "simple_adversary_v3", "simple_crypto_v3", "simple_push_v3", "simple_tag_v3",
        "simple_world_comm_v3", "collect_treasure_v1", "simple_formation_v1",
        "simple_line_v1")},
    "simple_spread_v3_continuous": ("mpe2.simple_spread_v3", "parallel_env",
                                    {"max_cycles": 25, "continuous_actions": True}),
    "pogema": ("pogema", "pogema_v0", {}),
}


def _pogema_kwargs() -> dict[str, Any]:
    from pogema import GridConfig

    # its natural way: a GridConfig (the time limit lives in grid_config.max_episode_steps)
    return {"grid_config": GridConfig(num_agents=4, size=8, max_episode_steps=32,
                                      integration="PettingZoo", seed=None)}


def make(name: str, **overrides: Any) -> Any:
    module, constructor, kwargs = ENVS[name]
    if name == "pogema":
        kwargs = _pogema_kwargs()
    return getattr(importlib.import_module(module), constructor)(**{**kwargs, **overrides})


def _first_line(error: BaseException) -> str:
    return f"{type(error).__name__}: " + " | ".join(str(error).splitlines())[:400]


def run_one(name: str, running_steps_episodes: int) -> dict[str, Any]:
    """Check and train one env in this process; the outcome as a dict."""
    import xwq
    from xwq.errors import XwqError
    from xwq.learners.qmix import NonFiniteLossError

    out: dict[str, Any] = {"env": name}
    try:
        env = make(name)
    except ImportError as error:
        return {**out, "outcome": "not installed", "message": _first_line(error)}
    except Exception as error:  # noqa: BLE001 - the env's own constructor failed
        return {**out, "outcome": "crash", "stage": "make", "message": _first_line(error)}
    started = time.perf_counter()
    try:
        summary = xwq.check_env(env, steps=60)
        out["check_env"] = {key: summary[key] for key in (
            "obs_dim", "state_dim", "n_actions", "max_episode_steps", "state_source",
            "adaptations", "statistics")} | {"n_agents": len(summary["agents"])}
    except XwqError as error:
        return {**out, "outcome": "error", "stage": "check_env", "message": _first_line(error)}
    except Exception as error:  # noqa: BLE001 - a raw failure is the finding
        return {**out, "outcome": "crash", "stage": "check_env", "message": _first_line(error)}
    out["check_env_s"] = round(time.perf_counter() - started, 1)
    xwq.register_env(f"tp_{name}", lambda env_id, **kwargs: make(name, **kwargs))
    limit = summary["max_episode_steps"]
    steps = running_steps_episodes * limit
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as folder:
        try:
            runner = xwq.get_runner(
                "qmix", f"tp_{name}", "default", running_steps=steps, parallels=1,
                batch_size=2, buffer_size=8, training_frequency=limit, test_episode=1,
                log_dir=f"{folder}/logs", model_dir=f"{folder}/models",
                results_dir=f"{folder}/results", progress_bar=False)
            runner.run()
        except XwqError as error:
            return {**out, "outcome": "error", "stage": "train", "message": _first_line(error)}
        except NonFiniteLossError as error:  # a clean stop; the loss scale is not the adapter's
            return {**out, "outcome": "diverged", "stage": "train",
                    "message": _first_line(error)}
        except Exception as error:  # noqa: BLE001
            return {**out, "outcome": "crash", "stage": "train", "message": _first_line(error)}
    out["train"] = {"running_steps": steps, "seconds": round(time.perf_counter() - started, 1)}
    return {**out, "outcome": "ok"}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--envs", nargs="+", default=list(ENVS), choices=list(ENVS))
    parser.add_argument("--episodes", type=int, default=4,
                        help="running_steps = this many time limits of env steps")
    parser.add_argument("--timeout", type=float, default=600, help="seconds per env")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:  # one env, in a subprocess of the parent below
        print(json.dumps(run_one(args.envs[0], args.episodes)))
        return {}

    from xwq.runners.results import environment_report, write_json

    report = json.loads(args.out.read_text()) if args.out.exists() else {"envs": {}}
    print(f"{'env':30} {'outcome':14} {'obs':>7} {'n':>3} {'acts':>4} {'T':>4}  detail")
    for name in args.envs:
        command = [sys.executable, __file__, "--child", "--envs", name,
                   "--episodes", str(args.episodes)]
        try:
            done = subprocess.run(command, capture_output=True, text=True,
                                  timeout=args.timeout)
            lines = done.stdout.strip().splitlines()
            result = json.loads(lines[-1]) if done.returncode == 0 and lines else {
                "env": name, "outcome": "crash",
                "message": f"exit {done.returncode}: " + done.stderr.strip()[-400:]}
        except subprocess.TimeoutExpired:
            result = {"env": name, "outcome": "crash", "message": f"timeout {args.timeout}s"}
        result["python"] = sys.executable
        result["versions"] = environment_report()["versions"]
        report["envs"][name] = result
        check = result.get("check_env", {})
        detail = result.get("message") or (
            f"trained {result['train']['running_steps']} steps in "
            f"{result['train']['seconds']}s; state: {check.get('state_source')}")
        print(f"{name:30} {result['outcome']:14} {check.get('obs_dim', ''):>7} "
              f"{check.get('n_agents', ''):>3} {check.get('n_actions', ''):>4} "
              f"{check.get('max_episode_steps', ''):>4}  {detail[:160]}")
        write_json(report, args.out)
    print(f"wrote {args.out}")
    return report


if __name__ == "__main__":
    main()
