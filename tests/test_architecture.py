"""The seams of the package: the sweep (specs, backends, aggregation), the run folder's lock,
process-wide settings at the entry point, a reusable Runner, and a package that imports without
torch and without import cycles."""

from __future__ import annotations

import ast
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import xwq
from xwq.common.config import get_configs
from xwq.runners import Experiment, ProcessBackend, RunSpec, SerialBackend, Sweep, grid
from xwq.runners.run_folder import FolderLock, RunInUseError

REPO = Path(__file__).resolve().parent.parent
MATRIX = ("cw_qmix", "matrix_game", "nonmonotonic")


def small(run_dirs: dict, **extra) -> dict:
    return dict(running_steps=64, eval_interval=32, parallels=8, batch_size=8, test_parallels=4,
                test_episode=4, save_interval=32, **run_dirs) | extra


# --- the sweep ---------------------------------------------------------------------------------
def test_a_run_spec_is_plain_picklable_data_and_resolves_to_its_config(run_dirs):
    spec = RunSpec(*MATRIX, seed=3, overrides=small(run_dirs))
    again = pickle.loads(pickle.dumps(spec))
    assert again == spec and again.resolve() == spec.resolve()
    config = spec.resolve()
    assert (config.method, config.seed, config.running_steps) == ("cw_qmix", 3, 64)
    # from a resolved config and back: the same config with another seed
    assert RunSpec.from_config(config, seed=5).resolve() == get_configs(
        method="cw_qmix", env="matrix_game", env_id="nonmonotonic",
        overrides={**small(run_dirs), "seed": 5})


@pytest.mark.parametrize("fields, message", [
    ({"kind": "evaluate"}, "kind must be one of"),
    ({"resume": "/some/checkpoint.pth"}, "resume must be None or 'auto'"),
    ({"overrides": {"seed": 2}}, "give the seed as RunSpec"),
])
def test_bad_run_specs_are_refused(fields, message):
    with pytest.raises(xwq.UsageError, match=message):
        RunSpec(*MATRIX, seed=1, **fields)


def test_grid_is_every_combination():
    specs = grid(["qmix", "cw_qmix"], [("matrix_game", "nonmonotonic"), ("mpe", "x")],
                 seeds=[1, 2], overrides={"running_steps": 10}, search={"batch_size": [8, 16]})
    assert len(specs) == 2 * 2 * 2 * 2
    assert {(s.method, s.env, s.overrides["batch_size"], s.seed) for s in specs} == {
        (m, e, b, s) for m in ("qmix", "cw_qmix") for e in ("matrix_game", "mpe")
        for b in (8, 16) for s in (1, 2)}
    assert all(s.overrides["running_steps"] == 10 for s in specs)
    # seeds of one configuration form one aggregation group
    assert len({s.group for s in specs}) == 8


def test_a_sweep_refuses_duplicates_and_bad_configs_before_running(run_dirs):
    spec = RunSpec(*MATRIX, seed=1, overrides=small(run_dirs))
    with pytest.raises(xwq.UsageError, match="appears twice"):
        Sweep([spec, spec])
    with pytest.raises(xwq.UsageError, match="at least one run"):
        Sweep([])
    bad = RunSpec(*MATRIX, seed=2, overrides=small(run_dirs, learning_rat=1.0))
    ran = []

    class Recording(SerialBackend):
        def run(self, specs, progress=True):
            ran.append(specs)
            return super().run(specs, progress)

    with pytest.raises(xwq.ConfigError, match="learning_rat"):
        Sweep([spec, bad], Recording()).run()
    assert ran == []  # nothing started


def test_a_sweep_grid_matches_single_runs_and_aggregates_each_group(run_dirs, tmp_path):
    specs = grid(["qmix", "cw_qmix"], [("matrix_game", "nonmonotonic")], seeds=[1, 2],
                 overrides=small(run_dirs))
    result = Sweep(specs, SerialBackend(), progress=False).run()
    assert [r.spec for r in result["runs"]] == specs
    assert set(result["aggregates"]) == {"qmix matrix_game/nonmonotonic",
                                         "cw_qmix matrix_game/nonmonotonic"}
    for label, aggregate in result["aggregates"].items():
        assert aggregate["final_test_return"]["n"] == 2
        assert Path(aggregate["dir"]).parent.parent.parent.name == label.split()[0]
    # one run of the sweep is the run a user gets from get_runner with the same values
    alone = xwq.get_runner("qmix", "matrix_game", "nonmonotonic", seed=2,
                           **small(run_dirs)).benchmark()
    swept = next(r for r in result["runs"] if r.spec.method == "qmix" and r.spec.seed == 2)
    for key in ("final_test_return", "best_test_return", "updates", "env_steps"):
        assert swept.summary[key] == alone[key], key
    assert Path(swept.run_dir).is_dir() and swept.run_dir == swept.summary["run_dir"]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="forked workers")
def test_the_process_backend_gives_the_serial_results(run_dirs, tmp_path):
    specs = [RunSpec(*MATRIX, seed=s, overrides=small(run_dirs)) for s in (1, 2)]
    serial = SerialBackend().run(specs)
    parallel = ProcessBackend(2).run(
        [RunSpec(*MATRIX, seed=s, overrides=small(run_dirs, results_dir=str(tmp_path / "p")))
         for s in (1, 2)], progress=False)
    for one, other in zip(serial, parallel):
        assert one.spec.seed == other.spec.seed
        for key in ("final_test_return", "best_test_return", "updates"):
            assert one.summary[key] == other.summary[key], key


def test_train_specs_run_and_report_their_summary(run_dirs):
    spec = RunSpec(*MATRIX, seed=1, overrides=small(run_dirs), kind="train")
    (result,) = SerialBackend().run([spec])
    assert result.summary["env_steps"] == 64 and Path(result.summary["final_model"]).is_file()
    assert result.run_dir.startswith(run_dirs["log_dir"])
    # executed again with resume="auto": the finished run is reported as it is, not rerun
    (again,) = SerialBackend().run([RunSpec(*MATRIX, seed=1, overrides=small(run_dirs),
                                            kind="train", resume="auto")])
    assert again.run_dir == result.run_dir and again.summary == result.summary


# --- the run folder ----------------------------------------------------------------------------
def test_a_locked_run_folder_refuses_a_second_process(run_dirs):
    runner = xwq.get_runner(*MATRIX, **small(run_dirs))
    runner.run()
    run_dir = runner.run_dir
    lock = FolderLock(run_dir)  # another "process" holds the folder
    lock.acquire()
    try:
        second = FolderLock(run_dir)
        with pytest.raises(RunInUseError, match="in use by process"):
            second.acquire()
        rows = (run_dir / "train.jsonl").read_text()
        with pytest.raises(RunInUseError, match="one process trains in a run folder at a time"):
            xwq.get_runner(*MATRIX, **small(run_dirs, running_steps=96)).run(
                resume=run_dir / "checkpoints" / "ckpt_64.pth")
        assert (run_dir / "train.jsonl").read_text() == rows  # nothing written twice
    finally:
        lock.release()
    # free again: the resume goes ahead
    xwq.get_runner(*MATRIX, **small(run_dirs, running_steps=96)).run(
        resume=run_dir / "checkpoints" / "ckpt_64.pth")


def test_a_damaged_sibling_config_does_not_block_resume_auto(run_dirs, caplog):
    runner = xwq.get_runner(*MATRIX, **small(run_dirs, running_steps=96))
    with pytest.raises(KeyboardInterrupt):
        real = runner.agents.train

        def interrupted(*args, **kwargs):
            kwargs["until_env_steps"] = 64
            real(*args, **kwargs)
            raise KeyboardInterrupt

        runner.agents.train = interrupted
        runner.run()
    damaged = runner.run_dir.parent / "seed_1_99999999-000000-000000"
    damaged.mkdir()
    (damaged / "config.yaml").write_text("method: [unclosed\n")
    resumed = xwq.get_runner(*MATRIX, **small(run_dirs, running_steps=96))
    resumed.run(resume="auto")
    assert resumed.run_dir == runner.run_dir
    assert "cannot be read" in caplog.text


# --- process-wide settings at the entry point ---------------------------------------------------
def test_building_agents_does_not_touch_the_process(run_dirs):
    config = get_configs(method="qmix", env="matrix_game", env_id="nonmonotonic",
                         overrides={**run_dirs, "threads": 2, "seed": 7})
    envs = xwq.make_envs(config)
    torch.manual_seed(123)
    np.random.seed(123)
    before = torch.get_rng_state(), np.random.get_state()[1].copy(), torch.get_num_threads()
    first = xwq.REGISTRY_AGENT["QMIX"](config, envs)
    second = xwq.REGISTRY_AGENT["QMIX"](config, envs)
    after = torch.get_rng_state(), np.random.get_state()[1].copy(), torch.get_num_threads()
    assert torch.equal(before[0], after[0]) and np.array_equal(before[1], after[1])
    assert before[2] == after[2]  # threads are the entry point's business
    # the networks' initial values follow the config's seed alone
    for a, b in zip(first.policy.parameters(), second.policy.parameters()):
        assert torch.equal(a, b)
    other = get_configs(method="qmix", env="matrix_game", env_id="nonmonotonic",
                        overrides={**run_dirs, "seed": 8})
    third = xwq.REGISTRY_AGENT["QMIX"](other, envs)
    assert not all(torch.equal(a, b) for a, b in zip(first.policy.parameters(),
                                                      third.policy.parameters()))


def test_the_entry_point_sets_threads_and_seeds_before_building_envs(run_dirs, monkeypatch):
    import xwq.runners.experiment as experiment_module

    seen = []
    real_make_envs = experiment_module.make_envs

    def make_envs(config, test=False):
        seen.append((torch.get_num_threads(), torch.initial_seed()))
        return real_make_envs(config, test)

    monkeypatch.setattr(experiment_module, "make_envs", make_envs)
    threads = torch.get_num_threads()
    try:
        config = get_configs(method="qmix", env="matrix_game", env_id="nonmonotonic",
                             overrides={**run_dirs, "threads": 1, "seed": 11})
        Experiment.build(config).close()
        # every env is built after the setup (the replay buffer's probe env too)
        assert seen and set(seen) == {(1, 11)}
    finally:
        torch.set_num_threads(threads)


def test_a_bad_device_fails_before_any_env_is_built(run_dirs, monkeypatch):
    import xwq.runners.experiment as experiment_module

    monkeypatch.setattr(experiment_module, "make_envs", lambda *a, **k: pytest.fail("built"))
    with pytest.raises(xwq.ConfigError, match="config key 'device' = 'gpu'"):
        xwq.get_runner(*MATRIX, device="gpu", **run_dirs).run()


# --- the Runner --------------------------------------------------------------------------------
def test_a_runner_can_be_used_again_and_builds_only_what_it_uses(run_dirs, monkeypatch):
    runner = xwq.get_runner(*MATRIX, **small(run_dirs))
    first = runner.run()
    first_dir = runner.run_dir
    trained = [p.detach().clone() for p in runner.agents.policy.parameters()]
    second = runner.run()
    assert first != second and runner.run_dir != first_dir  # a new run each call
    for a, b in zip(trained, runner.agents.policy.parameters()):
        assert torch.equal(a, b)  # same seed, same data: the same result

    builds = []
    real_build = Experiment.build

    def counting_build(config):
        builds.append(config.seed)
        return real_build(config)

    monkeypatch.setattr(Experiment, "build", staticmethod(counting_build))
    fresh = xwq.get_runner(*MATRIX, **small(run_dirs))
    assert builds == []  # get_runner validates, builds nothing
    fresh.benchmark(seeds=[1, 2])
    assert builds == [1, 2]  # one experiment per seed, none thrown away


def test_get_runner_reports_names_without_building(run_dirs, monkeypatch):
    monkeypatch.setattr(Experiment, "build", lambda config: pytest.fail("built"))
    with pytest.raises(xwq.UnknownNameError, match="unknown env 'matrx_game'"):
        xwq.get_runner("qmix", "matrx_game", "nonmonotonic", **run_dirs)
    with pytest.raises(xwq.UnknownNameError, match="unknown env_id 'nonmonotone'"):
        xwq.get_runner("qmix", "matrix_game", "nonmonotone", **run_dirs)
    with pytest.raises(xwq.UnknownNameError, match="unknown agent 'QMX'"):
        xwq.get_runner("qmix", "matrix_game", "nonmonotonic", agent="QMX", **run_dirs)


# --- the package -------------------------------------------------------------------------------
def test_import_xwq_and_cli_help_do_not_import_torch():
    code = ("import sys, xwq; assert 'torch' not in sys.modules, 'import xwq'; "
            "from xwq.cli import main\n"
            "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
            "assert 'torch' not in sys.modules, 'xwq --help'\n"
            "assert main(['train', '--method', 'qmx']) == 2\n"
            "assert 'torch' not in sys.modules, 'a config error'\n"
            "assert xwq.REGISTRY_ENV['matrix_game'] and 'torch' in sys.modules\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=REPO)
    assert done.returncode == 0, done.stderr


def _imports(path: Path) -> set[str]:
    """Modules of xwq that ``path`` imports anywhere, functions included: an import put inside
    a function to dodge a cycle is still a cycle."""
    tree = ast.parse(path.read_text())
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("xwq"):
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name.startswith("xwq"))
    return found


def test_no_import_cycles_between_modules():
    package = REPO / "xwq"
    modules = {}
    for path in package.rglob("*.py"):
        parts = path.relative_to(REPO).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        modules[name] = path
    graph = {name: {m for m in _imports(path) if m in modules and m != name}
             for name, path in modules.items()}
    # a package's __init__ re-exporting its own modules is not a cycle between concepts
    graph = {name: {m for m in deps if not (name.startswith(m + ".") and m != "xwq")}
             for name, deps in graph.items()}
    state: dict[str, int] = {}

    def visit(name: str, stack: list[str]) -> None:
        state[name] = 1
        for dep in sorted(graph[name]):
            if state.get(dep) == 1:
                raise AssertionError("import cycle: " + " -> ".join(stack + [name, dep]))
            if dep not in state:
                visit(dep, stack + [name])
        state[name] = 2

    for name in sorted(graph):
        if name not in state:
            visit(name, [])
