"""Reproduce the Weighted QMIX paper's (Rashid et al., NeurIPS 2020) two small experiments.

- ``matrix``: the one-step non-monotonic matrix game (payoff rows = agent 1
  ``[[8, -12, -12], [-12, 0, 0], [-12, 0, 0]]``, uniform exploration) for QMIX, CW-QMIX and
  OW-QMIX over several seeds: the learned Q_tot table of every seed (and Q̂* for the weighted
  methods), the element-wise median over seeds, and how many seeds' greedy joint action is the
  optimal (8) cell. Writes ``matrix_game.json`` and ``matrix_game.md``.
- ``predator_prey``: predator-prey with punishment p = -2 (8 agents, 8 prey, 10×10; the authors'
  env rules and run settings, oxwhirl/wqmix ``stag_hunt.py`` and ``pred_prey_punish.yaml``, as
  packaged) for QMIX, VDN, CW-QMIX and OW-QMIX: greedy test return against env steps (one benchmark
  :class:`xwq.runners.RunSpec` per method and seed, run by :func:`xwq.runners.execute`), median
  and quartile band over seeds. Writes ``predator_prey.json``, ``predator_prey.png`` and
  ``predator_prey.md``.

Both use the packaged configs; ``--budget F`` multiplies ``running_steps`` (predator-prey keeps
the paper's ``eval_interval``, shortened only to give at least 5 evaluations). Budget 1.0 is
the paper's length (matrix game: 2,000 updates; predator-prey: 1M env steps). Usage::

    python benchmarks/reproduce_paper.py matrix
    python benchmarks/reproduce_paper.py predator_prey --budget 0.1 --seeds 2
    python benchmarks/reproduce_paper.py all --budget 0.05 --seeds 1 --out /tmp/paper
    python benchmarks/reproduce_paper.py matrix --set learning_rate=1e-3 batch_size=16
    python benchmarks/reproduce_paper.py plot   # redraw the PNG/Markdown from the JSON

Per-run logs, models and metrics go under ``<out>/runs/`` (not meant to be committed).
Every JSON records the command, git commit, date, budget, seeds, wall time per run and package
versions.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from xwq.cli import parse_set
from xwq.errors import XwqError

if TYPE_CHECKING:
    from xwq.runners import RunSpec

os.environ.setdefault("SDL_NO_SIGNAL_HANDLERS", "1")

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUT = REPO_ROOT / "benchmarks" / "results" / "paper"

MATRIX_METHODS = ("qmix", "cw_qmix", "ow_qmix")
PP_METHODS = ("qmix", "vdn", "cw_qmix", "ow_qmix")
PAYOFF = np.array([[8.0, -12.0, -12.0], [-12.0, 0.0, 0.0], [-12.0, 0.0, 0.0]])
OPTIMAL_RETURN = 8.0
MIN_EVAL_POINTS = 5
LABELS = {"qmix": "QMIX", "vdn": "VDN", "cw_qmix": "CW-QMIX", "ow_qmix": "OW-QMIX"}


# --- provenance ------------------------------------------------------------------------------
def _git(*args: str) -> str | None:
    try:
        out = subprocess.run(["git", *args], cwd=REPO_ROOT, capture_output=True, text=True,
                             timeout=30, check=True)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip()


def provenance(command: str, budget: float, seeds: list[int]) -> dict[str, Any]:
    """Command, commit, date, budget, seeds, and the package versions and machine
    (:func:`xwq.runners.results.environment_report`) that produced a result."""
    from xwq.runners.results import environment_report

    environment = environment_report()
    dirty = _git("status", "--porcelain", "--", "xwq")
    return {
        "command": command,
        "git_commit": _git("rev-parse", "HEAD"),
        "xwq_uncommitted_changes": bool(dirty) if dirty is not None else None,
        "xwq_uncommitted_files": dirty.splitlines() if dirty else [],
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "budget": budget,
        "seeds": seeds,
        "versions": environment["versions"],
        "machine": environment["machine"],
    }


def _run_dirs(out: Path) -> dict[str, str]:
    runs = out / "runs"
    return {"log_dir": str(runs / "logs"), "model_dir": str(runs / "models"),
            "results_dir": str(runs / "results"), "progress_bar": False}


def scaled_steps(base: int, budget: float) -> int:
    return max(1, int(round(base * budget)))


def scaled_eval_interval(base_interval: int, running_steps: int) -> int:
    """The paper's ``eval_interval``, shortened only where a run would have < 5 evaluations.
    Not scaled with the budget: an evaluation costs ``test_episode`` whole episodes (16 × 200
    env steps on predator-prey), so at budget 0.1 an interval of 1,000 steps spent three
    times more env steps testing than training."""
    return max(1, min(base_interval, running_steps // MIN_EVAL_POINTS))


# --- matrix game -----------------------------------------------------------------------------
def run_matrix_seed(method: str, seed: int, budget: float, out: Path,
                    overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """Train one method on the matrix game for ``running_steps × budget`` env steps (one update
    per one-step episode), then read its tables and play greedy test episodes."""
    import xwq
    from xwq.agents.tables import joint_action_tables

    start = time.perf_counter()
    base = xwq.get_configs(method=method, env="matrix_game", env_id="nonmonotonic",
                           overrides=overrides)
    steps = scaled_steps(base.running_steps, budget)
    runner = xwq.get_runner(method, "matrix_game", "nonmonotonic", seed=seed,
                            **{**_run_dirs(out), **(overrides or {}), "running_steps": steps})
    try:
        agents = runner.agents
        agents.train(-(-steps // runner.config.parallels))
        returns = agents.test(runner.test_envs, runner.config.test_episode)
        tables = joint_action_tables(agents)
        updates = int(agents.learner.updates)
        env_steps = int(agents.env_steps)
    finally:
        runner.finish()
    greedy_return = float(np.mean(returns))
    result = {
        "seed": seed,
        "greedy_test_return": greedy_return,
        "optimal": bool(np.all(np.asarray(returns) == OPTIMAL_RETURN)),
        "greedy_joint_action": [int(a) for a in tables["greedy_actions"]],
        "q_tot": np.round(tables["q_tot"], 4).tolist(),
        "env_steps": env_steps,
        "updates": updates,
        "wall_time_s": round(time.perf_counter() - start, 2),
    }
    if "q_star" in tables:
        result["q_star"] = np.round(tables["q_star"], 4).tolist()
    return result


def summarise_matrix(method: str, runs: list[dict[str, Any]]) -> dict[str, Any]:
    q_tot = np.array([r["q_tot"] for r in runs])
    summary: dict[str, Any] = {
        "optimal_count": int(sum(r["optimal"] for r in runs)),
        "n_seeds": len(runs),
        "median_q_tot": np.round(np.median(q_tot, axis=0), 3).tolist(),
        "median_off_optimum_q_tot": round(float(np.median(
            np.median(q_tot, axis=0).reshape(-1)[1:])), 3),
    }
    if all("q_star" in r for r in runs):
        q_star = np.array([r["q_star"] for r in runs])
        median_star = np.median(q_star, axis=0)
        summary["median_q_star"] = np.round(median_star, 3).tolist()
        summary["median_q_star_max_abs_error"] = round(
            float(np.abs(median_star - PAYOFF).max()), 3)
    return summary


def _expected_off_optimum(method: str, alpha: float = 0.1) -> str:
    if method == "cw_qmix":
        return "≈ -6"
    if method == "ow_qmix":
        return f"≈ {-12 * alpha / (1 + alpha):.2f}"
    return "—"


def _md_table(table: list[list[float]], fmt: str = "{:.2f}") -> list[str]:
    n = len(table)
    lines = ["| agent 1 \\ agent 2 | " + " | ".join(f"a{j}" for j in range(n)) + " |",
             "|---|" + "---|" * n]
    for i, row in enumerate(table):
        lines.append(f"| a{i} | " + " | ".join(fmt.format(v) for v in row) + " |")
    return lines


def matrix_markdown(data: dict[str, Any]) -> str:
    meta = data["meta"]
    lines = ["# Matrix game (non-monotonic payoff), WQMIX paper §6.1", "",
             f"Command: `{meta['command']}`  ",
             f"Commit: `{meta['git_commit']}`, date {meta['date']}, budget {meta['budget']}, "
             f"seeds {meta['seeds']}", "",
             "Payoff (rows: agent 1): `[[8, -12, -12], [-12, 0, 0], [-12, 0, 0]]`; uniform "
             "exploration (ε = 1). A seed is *optimal* when its greedy test return is 8.", "",
             "| method | optimal seeds | median Q_tot(a0,a0) | median off-optimum Q_tot "
             "| expected off-optimum | max abs(median Q̂* − payoff) |",
             "|---|---|---|---|---|---|"]
    for method, summary in data["summary"].items():
        q_tot = summary["median_q_tot"]
        star = summary.get("median_q_star_max_abs_error")
        lines.append(
            f"| {LABELS.get(method, method)} | {summary['optimal_count']} / "
            f"{summary['n_seeds']} | {q_tot[0][0]:.2f} | "
            f"{summary['median_off_optimum_q_tot']:.2f} | {_expected_off_optimum(method)} | "
            f"{'—' if star is None else f'{star:.2f}'} |")
    lines.append("")
    for method, summary in data["summary"].items():
        lines += [f"## {LABELS.get(method, method)}: median Q_tot over seeds", "",
                  *_md_table(summary["median_q_tot"]), ""]
        if "median_q_star" in summary:
            lines += [f"## {LABELS.get(method, method)}: median Q̂* over seeds", "",
                      *_md_table(summary["median_q_star"]), ""]
    lines += ["## Per seed", "", "| method | seed | greedy return | greedy joint action "
              "| Q_tot(a0,a0) | wall time (s) |", "|---|---|---|---|---|---|"]
    for method, runs in data["runs"].items():
        for r in runs:
            lines.append(f"| {LABELS.get(method, method)} | {r['seed']} | "
                         f"{r['greedy_test_return']:g} | {tuple(r['greedy_joint_action'])} | "
                         f"{r['q_tot'][0][0]:.2f} | {r['wall_time_s']:.1f} |")
    return "\n".join(lines) + "\n"


def run_matrix(out: Path, budget: float = 1.0, seeds: list[int] | None = None,
               methods: list[str] | tuple[str, ...] = MATRIX_METHODS,
               overrides: dict[str, Any] | None = None, command: str = "") -> dict[str, Any]:
    """All methods × seeds on the matrix game; writes matrix_game.json/.md under ``out``."""
    from xwq.runners.results import write_json

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    seeds = list(seeds if seeds is not None else range(1, 11))
    data: dict[str, Any] = {"meta": {**provenance(command, budget, seeds), "methods": list(methods),
                                     "overrides": overrides or {}},
                            "payoff": PAYOFF.tolist(), "runs": {}, "summary": {}}
    started = time.perf_counter()
    for method in methods:
        runs = data["runs"].setdefault(method, [])
        for seed in seeds:
            runs.append(run_matrix_seed(method, seed, budget, out, overrides))
            print(f"matrix {method} seed {seed}: greedy return {runs[-1]['greedy_test_return']:g}"
                  f" ({runs[-1]['wall_time_s']:.1f} s)", flush=True)
            write_json(data, out / "matrix_game.json")
        data["summary"][method] = summarise_matrix(method, runs)
    data["meta"]["total_wall_time_s"] = round(time.perf_counter() - started, 1)
    write_json(data, out / "matrix_game.json")
    (out / "matrix_game.md").write_text(matrix_markdown(data))
    return data


# --- predator-prey ---------------------------------------------------------------------------
def predator_prey_spec(method: str, seed: int, budget: float, out: Path,
                       overrides: dict[str, Any] | None = None) -> RunSpec:
    """The benchmark :class:`xwq.runners.RunSpec` of one method and seed: the packaged
    predator-prey (p = -2) config with ``running_steps × budget`` and the paper's
    ``eval_interval`` (:func:`scaled_eval_interval`), writing under ``<out>/runs``."""
    import xwq
    from xwq.runners import RunSpec

    base = xwq.get_configs(method=method, env="predator_prey", env_id="punishment",
                           overrides=overrides)
    steps = scaled_steps(base.running_steps, budget)
    interval = scaled_eval_interval(base.eval_interval, steps)
    return RunSpec(method, "predator_prey", "punishment", seed,
                   {**_run_dirs(out), **(overrides or {}), "running_steps": steps,
                    "eval_interval": interval})


def run_predator_prey_seed(spec: RunSpec, out: Path) -> dict[str, Any]:
    """Run one spec (:func:`xwq.runners.execute`); the curve comes from its metrics.jsonl."""
    from xwq.runners import execute
    from xwq.runners.results import eval_curve

    start = time.perf_counter()
    result = execute(spec)
    summary = result.summary
    steps, returns = eval_curve(result.run_dir)
    # the env's episode statistics at the final greedy evaluation (per test episode)
    finals = {stat: (eval_curve(result.run_dir, stat)[1] or [float("nan")])[-1]
              for stat in ("captures", "punishments")}
    return {
        "seed": spec.seed,
        "running_steps": spec.overrides["running_steps"],
        "eval_interval": spec.overrides["eval_interval"],
        "env_steps": int(summary["env_steps"]),
        "updates": int(summary["updates"]),
        "curve": [[s, round(r, 4)] for s, r in zip(steps, returns)],
        "final_test_return": float(summary["final_test_return"]),
        "best_test_return": float(summary["best_test_return"]),
        "final_test_captures": round(float(finals["captures"]), 3),
        "final_test_punishments": round(float(finals["punishments"]), 3),
        "run_dir": os.path.relpath(result.run_dir, out),
        "wall_time_s": round(time.perf_counter() - start, 1),
    }


def aggregate_curves(runs: list[dict[str, Any]], grid: np.ndarray) -> dict[str, list[float]]:
    """Median and quartiles over seeds (:func:`xwq.runners.statistics.curve_band`: each curve
    linearly interpolated onto ``grid``, since evaluations land at round boundaries, a little
    past the nominal steps), under this script's JSON keys."""
    from xwq.runners.statistics import curve_band

    band = curve_band([([p[0] for p in r["curve"]], [p[1] for p in r["curve"]]) for r in runs],
                      grid)
    return {"env_steps": [int(step) for step in band["step"]],
            **{key: np.round(band[key], 3).tolist() for key in ("median", "q25", "q75")}}


def plot_predator_prey(data: dict[str, Any], path: Path) -> None:
    """Median line and quartile band per method (:func:`xwq.runners.plots.plot_bands`)."""
    from xwq.runners.plots import plot_bands

    curves = {LABELS.get(method, method): {"step": agg["env_steps"], "median": agg["median"],
                                           "q25": agg["q25"], "q75": agg["q75"]}
              for method, agg in data["aggregate"].items()}
    runs = {LABELS.get(method, method): len(data["runs"][method]) for method in data["aggregate"]}
    meta = data["meta"]
    plot_bands(curves, runs, path,
               title=f"Predator-prey, punishment -2 (budget {meta['budget']}, "
                     f"{len(meta['seeds'])} seeds: median, 25-75%)")


def env_rules(overrides: dict[str, Any]) -> str:
    """Which predator-prey rules a run used: the packaged ones (the authors') unless
    ``env_kwargs`` changed them."""
    kwargs = overrides.get("env_kwargs") or {}
    changed = {k: v for k, v in kwargs.items() if k != "punishment"}
    rules = ("the WQMIX authors' (oxwhirl/wqmix `stag_hunt.py`, `pred_prey_punish.yaml`)"
             if not changed else f"the authors' except env_kwargs {changed}")
    return rules + f", punishment {kwargs.get('punishment', -2.0)}"


def predator_prey_markdown(data: dict[str, Any]) -> str:
    meta = data["meta"]
    lines = ["# Predator-prey with punishment -2, WQMIX paper §6.2", "",
             f"Command: `{meta['command']}`  ",
             f"Commit: `{meta['git_commit']}`, date {meta['date']}, budget {meta['budget']} "
             f"({meta['running_steps']} env steps per run; the paper: 1,000,000), "
             f"seeds {meta['seeds']}", "",
             *[f"Merged from `{part['command']}` (commit `{part['git_commit']}`"
               + (f" with uncommitted {', '.join(part['xwq_uncommitted_files'])}"
                  if part.get("xwq_uncommitted_files") else "")
               + f", seeds {part['seeds']})  " for part in meta.get("merged_from", [])],
             "", f"Env rules: {env_rules(meta.get('overrides', {}))}", "",
             "Greedy test return (16 episodes per evaluation; maximum 40). Median over seeds "
             "[min, max in brackets].", "",
             "| method | final return | best return | return at half budget "
             "| final captures / episode | final punishments / episode | updates "
             "| wall time per run (s) |", "|---|---|---|---|---|---|---|---|"]

    def med(values: list[float]) -> str:
        return f"{np.median(values):.2f} [{min(values):.2f}, {max(values):.2f}]"

    for method, runs in data["runs"].items():
        agg = data["aggregate"][method]
        half = agg["median"][len(agg["median"]) // 2]
        walls = ", ".join(f"{r['wall_time_s']:.0f}" for r in runs)

        def stat(key: str, runs: list[dict[str, Any]] = runs) -> str:
            values = [r[key] for r in runs if key in r]  # older runs lack these statistics
            return med(values) if values else "n/a"

        lines.append(
            f"| {LABELS.get(method, method)} | {med([r['final_test_return'] for r in runs])} | "
            f"{med([r['best_test_return'] for r in runs])} | {half:.2f} | "
            f"{stat('final_test_captures')} | {stat('final_test_punishments')} | "
            f"{int(np.median([r['updates'] for r in runs]))} | "
            f"{walls} |")
    lines += ["", "![curves](predator_prey.png)", ""]
    return "\n".join(lines) + "\n"


def run_predator_prey(out: Path, budget: float = 1.0, seeds: list[int] | None = None,
                      methods: list[str] | tuple[str, ...] = PP_METHODS,
                      overrides: dict[str, Any] | None = None,
                      command: str = "") -> dict[str, Any]:
    """All methods × seeds on predator-prey (p = -2); writes predator_prey.json/.png/.md."""
    from xwq.runners.results import write_json
    from xwq.runners.statistics import eval_grid

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    seeds = list(seeds if seeds is not None else range(1, 3))
    # seed-major: an interrupted reproduction still has every method's first seeds
    specs = [predator_prey_spec(method, seed, budget, out, overrides)
             for seed in seeds for method in methods]
    for spec in specs:  # every config error before the first run starts
        spec.resolve()
    steps, interval = specs[0].overrides["running_steps"], specs[0].overrides["eval_interval"]
    data: dict[str, Any] = {
        "meta": {**provenance(command, budget, seeds), "methods": list(methods),
                 "running_steps": steps, "eval_interval": interval,
                 "overrides": overrides or {}},
        "runs": {method: [] for method in methods}, "aggregate": {}}
    started = time.perf_counter()
    for spec in specs:
        r = run_predator_prey_seed(spec, out)
        data["runs"][spec.method].append(r)
        print(f"predator_prey {spec.method} seed {spec.seed}: final "
              f"{r['final_test_return']:.2f}, best {r['best_test_return']:.2f} "
              f"({r['wall_time_s']:.0f} s)", flush=True)
        write_json(data, out / "predator_prey.json")
    grid = eval_grid(interval, steps)
    for method, runs in data["runs"].items():
        data["aggregate"][method] = aggregate_curves(runs, grid)
    data["meta"]["total_wall_time_s"] = round(time.perf_counter() - started, 1)
    write_json(data, out / "predator_prey.json")
    plot_predator_prey(data, out / "predator_prey.png")
    (out / "predator_prey.md").write_text(predator_prey_markdown(data))
    return data


def merge_predator_prey(sources: list[Path], out: Path, command: str = "") -> dict[str, Any]:
    """One predator-prey result from several runs of this script with the same settings and
    different seeds (e.g. ``--seed-list 1 2`` and ``--seed-list 3`` in two processes or on two
    machines): every run kept, median and quartiles recomputed over all seeds; writes
    predator_prey.json/.png/.md under ``out``."""
    from xwq.runners.results import write_json
    from xwq.runners.statistics import eval_grid

    parts = [(Path(source), json.loads((Path(source) / "predator_prey.json").read_text()))
             for source in sources]
    first = parts[0][1]["meta"]
    same = ("budget", "running_steps", "eval_interval", "methods", "overrides")
    for source, data in parts[1:]:
        differ = [key for key in same if data["meta"].get(key) != first.get(key)]
        if differ:
            raise SystemExit(f"{source}: cannot merge, its {', '.join(differ)} differ from "
                             f"{parts[0][0]}'s")
    runs: dict[str, list[dict[str, Any]]] = {method: [] for method in first["methods"]}
    for source, data in parts:
        for method, method_runs in data["runs"].items():
            for run in method_runs:
                seen = [r["seed"] for r in runs[method]]
                if run["seed"] in seen:
                    raise SystemExit(f"{source}: seed {run['seed']} of {method} is in two "
                                     "sources; merge runs of different seeds")
                where = os.path.relpath((source / run["run_dir"]).resolve(), out.resolve())
                runs[method].append({**run, "run_dir": where})
    for method_runs in runs.values():
        method_runs.sort(key=lambda run: run["seed"])
    seeds = sorted({run["seed"] for method_runs in runs.values() for run in method_runs})
    meta = {**first, "seeds": seeds, "command": command,
            "merged_from": [{"source": str(source),
                             **{key: data["meta"].get(key) for key in
                                ("command", "git_commit", "xwq_uncommitted_files", "date",
                                 "total_wall_time_s")},
                             # the seeds it holds (an interrupted run has fewer than it planned)
                             "seeds": sorted({run["seed"] for runs in data["runs"].values()
                                              for run in runs})}
                            for source, data in parts]}
    data = {"meta": meta, "runs": runs, "aggregate": {}}
    grid = eval_grid(first["eval_interval"], first["running_steps"])
    for method, method_runs in runs.items():
        data["aggregate"][method] = aggregate_curves(method_runs, grid)
    out.mkdir(parents=True, exist_ok=True)
    write_json(data, out / "predator_prey.json")
    plot_predator_prey(data, out / "predator_prey.png")
    (out / "predator_prey.md").write_text(predator_prey_markdown(data))
    return data


# --- command line ----------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="reproduce_paper.py", description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("experiment", choices=["matrix", "predator_prey", "all", "plot", "merge"],
                        help="plot: redraw predator_prey.png/.md from <out>/predator_prey.json; "
                             "merge: combine the predator-prey results of --from folders (runs "
                             "of other seeds) into --out")
    parser.add_argument("--budget", type=float, default=1.0,
                        help="fraction of the paper's running_steps (default 1.0)")
    parser.add_argument("--seeds", type=int, default=None,
                        help="number of seeds, 1..N (default: 10 matrix, 2 predator_prey)")
    parser.add_argument("--seed-list", type=int, nargs="+", default=None, metavar="SEED",
                        help="these seeds instead of 1..N (to split seeds over processes, then "
                             "merge)")
    parser.add_argument("--from", dest="sources", type=Path, nargs="+", default=[],
                        help="merge: the --out folders of the runs to combine")
    parser.add_argument("--methods", nargs="+", default=None,
                        help="subset of methods (default: qmix cw_qmix ow_qmix for the matrix "
                             "game, qmix vdn cw_qmix ow_qmix for predator-prey)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT,
                        help=f"output folder (default {DEFAULT_OUT.relative_to(REPO_ROOT)})")
    parser.add_argument("--set", dest="overrides", action="extend", nargs="+", default=[],
                        metavar="KEY=VALUE",
                        help="override config keys (several after one --set, or repeated); "
                             "VALUE is read as in config files, e.g. --set learning_rate=1e-3 "
                             "batch_size=16")
    return parser


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Run the chosen experiment(s); returns ``{"matrix": ..., "predator_prey": ...}``."""
    if argv is None:
        argv = sys.argv[1:]
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.budget <= 0:
        parser.error("--budget must be > 0")
    try:
        overrides = parse_set(args.overrides)
    except XwqError as error:
        parser.error(str(error))
    command = shlex.join(["python", "benchmarks/reproduce_paper.py", *argv])
    results: dict[str, Any] = {}
    if args.experiment == "merge":
        if len(args.sources) < 2:
            parser.error("merge needs --from with two or more result folders")
        return {"predator_prey": merge_predator_prey(args.sources, args.out, command)}
    if args.experiment == "plot":
        data = json.loads((args.out / "predator_prey.json").read_text())
        plot_predator_prey(data, args.out / "predator_prey.png")
        (args.out / "predator_prey.md").write_text(predator_prey_markdown(data))
        return {"predator_prey": data}
    if args.experiment in ("matrix", "all"):
        seeds = args.seed_list or list(range(1, (args.seeds or 10) + 1))
        results["matrix"] = run_matrix(args.out, args.budget, seeds,
                                       args.methods or MATRIX_METHODS, overrides, command)
    if args.experiment in ("predator_prey", "all"):
        seeds = args.seed_list or list(range(1, (args.seeds or 2) + 1))
        results["predator_prey"] = run_predator_prey(args.out, args.budget, seeds,
                                                     args.methods or PP_METHODS, overrides,
                                                     command)
    return results


if __name__ == "__main__":
    main()
