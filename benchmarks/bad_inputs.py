"""A battery of bad inputs and faults: each must end in a clear one-line error or be survived
with nothing lost.

    python benchmarks/bad_inputs.py [--only CATEGORY[,CATEGORY]] [--case TEXT] [--fast]
                                    [--jobs 2] [--list]

Each case is a small function registered with ``@case(category, expect, keyword, ...)``. It runs
in its own temporary folder (the working directory of every process it starts), through the
command line (``python -m xwq ...`` in a subprocess, with logs, models and results kept in that
folder) or a Python snippet run in a subprocess, always under a timeout. Then it is judged,
mechanically:

- ``expect="error"``: **clear** when it ends with one line naming what to fix. On the command
  line: exit status 2 (1 for ``status=1`` cases: a diverged run), no ``Traceback`` in stderr,
  and the last line of stderr starts with ``xwq`` (the command's own line, or argparse's usage
  error) and contains every ``keyword`` (case-insensitive). In Python: the snippet raised an
  ``xwq.XwqError`` (or one of the case's ``allowed`` built-in types) whose message is one line
  and contains every keyword. **silent**: it finished without an error (unless ``warn`` and the
  keyword appears in a logged warning). Anything else is **raw**.
- ``expect="survive"``: **survived** when it finished without an error. A case that refuses
  with a clear line instead is **raw** (it should have worked).
- ``expect="either"``: either of the two is fine (e.g. an env whose loss may or may not blow up).
- any case may have a ``check`` that looks for lost data afterwards (earlier run folders,
  checkpoints, logs, results identical to an unbroken run): a problem found makes it **lost**.
- a timeout is a **hang**.

Results: a table on stdout, and ``benchmarks/results/bad_inputs.json`` and ``.md`` (only when
the whole battery runs). ``--fast`` runs the cheap subset that ``tests/test_bad_inputs.py``
runs in CI. Cases needing root (tmpfs mounts for full and read-only disks) are skipped
elsewhere.
"""

import argparse
import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"

MATRIX = ["--method", "qmix", "--env", "matrix_game", "--env-id", "nonmonotonic"]
MPE = ["--method", "qmix", "--env", "mpe", "--env-id", "simple_spread_v3"]
# a tiny run of each: a few seconds, one update at least, checkpoints and evaluations on the way
SMALL = ["running_steps=64", "parallels=8", "batch_size=2", "buffer_size=8", "test_parallels=2",
         "test_episode=2", "eval_interval=32", "save_interval=32", "log_interval=32"]
SMALL_MPE = ["running_steps=40", "parallels=2", "batch_size=2", "buffer_size=8",
             "max_episode_steps=5", "training_frequency=5", "test_parallels=2",
             "test_episode=2", "eval_interval=20", "save_interval=20", "fc_hidden_sizes=[16]"]
SMALL_CUSTOM = ["running_steps=40", "parallels=2", "batch_size=2", "buffer_size=8",
                "training_frequency=4", "test_parallels=2", "test_episode=2",
                "eval_interval=20", "save_interval=20", "vectorize=serial"]
# a run long enough to be interrupted after its first checkpoint
LONG = ["running_steps=1024", "save_interval=128", "save_buffer=true", "parallels=8",
        "batch_size=4", "buffer_size=64", "training_frequency=4", "log_interval=96",
        "keep_checkpoints=2"]

OUTCOMES = ("clear", "survived", "raw", "silent", "lost", "hang", "skipped")
GOOD = ("clear", "survived")


# --- running things -------------------------------------------------------------------------
@dataclass
class Done:
    """What one process did."""

    rc: int | None  # None: timed out
    out: str = ""
    err: str = ""
    seconds: float = 0.0
    raised: dict | None = None  # Python snippets: the exception, if any
    python: bool = False  # a Python snippet (judged by its exception), not a command line

    @property
    def last_line(self) -> str:
        lines = [line for line in self.err.splitlines() if line.strip()]
        return lines[-1].strip() if lines else ""


class Context:
    """A case's temporary folder and the ways to run things in it."""

    def __init__(self, folder: Path, timeout: float) -> None:
        self.dir = folder
        self.timeout = timeout
        self.mounts: list[Path] = []
        self.env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(HERE), str(REPO)]),
                        MPLBACKEND="Agg", OMP_NUM_THREADS="1", PYTHONWARNINGS="ignore")

    # files
    def path(self, name: str) -> Path:
        return self.dir / name

    def write(self, name: str, text: str | bytes) -> Path:
        path = self.dir / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(text, bytes):
            path.write_bytes(text)
        else:
            path.write_text(textwrap.dedent(text))
        return path

    def dirs(self, root: str = "") -> list[str]:
        base = self.dir / root if root else self.dir
        return [f"log_dir={base / 'logs'}", f"model_dir={base / 'models'}",
                f"results_dir={base / 'results'}", "progress_bar=false"]

    # processes
    def run(self, argv: list[str], timeout: float | None = None) -> Done:
        start = time.perf_counter()
        try:
            done = subprocess.run(argv, cwd=self.dir, env=self.env, capture_output=True,
                                  text=True, timeout=timeout or self.timeout)
        except subprocess.TimeoutExpired as expired:
            return Done(None, _text(expired.stdout), _text(expired.stderr),
                        time.perf_counter() - start)
        return Done(done.returncode, done.stdout, done.stderr, time.perf_counter() - start)

    def xwq(self, command: str, *args: str, sets: list[str] | None = None, dirs: bool = True,
            root: str = "", timeout: float | None = None) -> Done:
        """``python -m xwq COMMAND ARGS --set <dirs> <sets>``."""
        extra = (self.dirs(root) if dirs else []) + list(sets or [])
        argv = [sys.executable, "-m", "xwq", command, *args]
        if extra:
            argv += ["--set", *extra]
        return self.run(argv, timeout)

    def start_xwq(self, command: str, *args: str, sets: list[str] | None = None,
                  root: str = "") -> subprocess.Popen:
        argv = [sys.executable, "-m", "xwq", command, *args, "--set", *self.dirs(root),
                *(sets or [])]
        # Ctrl-C must reach it even when this script runs in the background (where a shell
        # starts it with SIGINT ignored, which its children would inherit)
        return subprocess.Popen(argv, cwd=self.dir, env=self.env, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True,
                                preexec_fn=_default_sigint)  # noqa: PLW1509

    def blocked_xwq(self, modules: list[str], command: str, *args: str,
                    sets: list[str] | None = None) -> Done:
        """The command line in a process where importing ``modules`` fails (a missing
        optional package)."""
        argv = [command, *args, "--set", *self.dirs(), *(sets or [])]
        code = (f"import sys\nfor name in {modules!r}:\n    sys.modules[name] = None\n"
                f"from xwq.cli import main\nsys.exit(main({argv!r}))\n")
        return self.run([sys.executable, "-c", code])

    def python(self, code: str, timeout: float | None = None) -> Done:
        """Run ``code`` in a subprocess; ``Done.raised`` is the exception it raised (type, whether
        it is an XwqError, message), None when it finished."""
        script = self.write("case_code.py", code)
        result = self.dir / "case_result.json"
        wrapper = textwrap.dedent(f"""
            import json, sys, traceback
            sys.path.insert(0, {str(self.dir)!r})
            report = None
            try:
                source = open({str(script)!r}).read()
                exec(compile(source, "case_code.py", "exec"), {{"__name__": "__main__"}})
            except BaseException as error:
                from xwq.errors import XwqError
                report = {{"type": type(error).__name__,
                          "bases": [cls.__name__ for cls in type(error).__mro__],
                          "xwq": isinstance(error, XwqError), "message": str(error),
                          "traceback": traceback.format_exc()}}
            with open({str(result)!r}, "w") as handle:
                json.dump(report, handle)
            """)
        done = self.run([sys.executable, "-c", wrapper], timeout)
        done.python = True
        if result.is_file():
            done.raised = json.loads(result.read_text())
        elif done.rc is not None:
            done.raised = {"type": "(process died)", "bases": [], "xwq": False,
                           "message": done.last_line, "traceback": done.err}
        return done

    # file systems
    def mount_tmpfs(self, name: str, size: str = "1M", read_only: bool = False) -> Path | None:
        """A small tmpfs at ``name`` (root only; None where mounting is not allowed)."""
        point = self.dir / name
        point.mkdir(parents=True, exist_ok=True)
        options = f"size={size}" + (",ro" if read_only else "")
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(point)],
                              capture_output=True)
        if done.returncode != 0:
            return None
        self.mounts.append(point)
        return point

    def cleanup(self) -> None:
        for point in self.mounts:
            subprocess.run(["umount", "-l", str(point)], capture_output=True)
        shutil.rmtree(self.dir, ignore_errors=True)


def _default_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _text(data: bytes | str | None) -> str:
    if data is None:
        return ""
    return data.decode(errors="replace") if isinstance(data, bytes) else data


class Skip(Exception):
    """The case cannot run here (e.g. no permission to mount a tmpfs)."""


# --- what was there before ------------------------------------------------------------------
def fingerprint(folder: Path, skip: tuple[str, ...] = (".lock",)) -> dict[str, str]:
    """sha256 of every file under ``folder`` (relative names)."""
    if not folder.exists():
        return {}
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file() and p.name not in skip}


def unchanged(before: dict[str, str], folder: Path) -> str | None:
    """None if every file of ``before`` is still in ``folder`` with the same content."""
    after = fingerprint(folder)
    gone = [name for name in before if name not in after]
    changed = [name for name in before if name in after and after[name] != before[name]]
    if gone or changed:
        return f"lost: {len(gone)} files gone {gone[:3]}, {len(changed)} changed {changed[:3]}"
    return None


def run_dirs(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("seed_*") if p.is_dir())


def jsonl_rows(path: Path, drop: tuple[str, ...] = ("steps_per_second", "wall_time")) -> list:
    if not path.is_file():
        return []
    return [{k: v for k, v in json.loads(line).items() if k not in drop}
            for line in path.read_text().splitlines() if line.strip()]


def same_model(a: Path, b: Path) -> bool:
    import torch

    pa = torch.load(a, weights_only=True)["policy"]
    pb = torch.load(b, weights_only=True)["policy"]
    return pa.keys() == pb.keys() and all(torch.equal(pa[k], pb[k]) for k in pa)


# --- cases ----------------------------------------------------------------------------------
@dataclass
class Case:
    name: str
    category: str
    body: Callable[[Context], Done]
    expect: str = "error"  # error | survive | either
    keyword: tuple[str, ...] = ()
    status: int = 2  # the exit status of a clear command-line error
    allowed: tuple[str, ...] = ()  # built-in exception types that count as clear in Python
    warn: bool = False  # a logged warning with the keyword also counts (the run may finish)
    check: Callable[[Context, Done], str | None] | None = None
    timeout: float = 180
    fast: bool = False  # cheap: in tests/test_bad_inputs.py
    doc: str = ""


CASES: list[Case] = []


def case(category: str, expect: str = "error", keyword: str | tuple[str, ...] = (),
         **options) -> Callable:
    def register(function: Callable[[Context], Done]) -> Callable:
        keywords = (keyword,) if isinstance(keyword, str) else tuple(keyword)
        CASES.append(Case(function.__name__, category, function, expect, keywords,
                          doc=(function.__doc__ or "").strip().splitlines()[0]
                          if function.__doc__ else "", **options))
        return function
    return register


def simple(name: str, category: str, command: str, args: list[str], keyword, expect="error",
           **options) -> None:
    """A case that is one command line."""
    def body(ctx: Context) -> Done:
        sets = [a for a in args if not a.startswith("-") and a not in MATRIX]
        rest = [a for a in args if a not in sets]
        return ctx.xwq(command, *rest, sets=[*SMALL, *sets])

    body.__name__ = name
    case(category, expect, keyword, **options)(body)


# ---- command-line arguments ---------------------------------------------------------------
@case("cli", keyword="required", fast=True)
def no_subcommand(ctx):
    return ctx.run([sys.executable, "-m", "xwq"])


@case("cli", keyword="invalid choice", fast=True)
def misspelt_subcommand(ctx):
    return ctx.run([sys.executable, "-m", "xwq", "trian", *MATRIX])


@case("cli", keyword="unrecognized arguments", fast=True)
def unknown_flag(ctx):
    return ctx.run([sys.executable, "-m", "xwq", "train", *MATRIX, "--lr", "0.1"])


@case("cli", keyword="invalid int value", fast=True)
def seeds_not_ints(ctx):
    return ctx.xwq("train", *MATRIX, "--seeds", "one")


@case("cli", keyword=("seed", "1"), fast=True)
def seeds_repeated(ctx):
    return ctx.xwq("train", *MATRIX, "--seeds", "1", "1")


@case("cli", keyword="seed", fast=True)
def seed_negative(ctx):
    return ctx.xwq("train", *MATRIX, "--seeds", "-1", sets=SMALL)


@case("cli", keyword="workers", fast=True)
def workers_zero(ctx):
    return ctx.xwq("benchmark", *MATRIX, "--seeds", "1", "2", "--workers", "0")


@case("cli", keyword="workers", fast=True)
def workers_negative(ctx):
    return ctx.xwq("benchmark", *MATRIX, "--seeds", "1", "2", "--workers", "-3")


@case("cli", keyword="seeds", fast=True)
def workers_without_seeds(ctx):
    return ctx.xwq("benchmark", *MATRIX, "--workers", "2")


@case("cli", expect="survive")
def workers_more_than_seeds(ctx):
    """--workers 4 for 2 seeds: both runs finish (at most one worker per seed)."""
    return ctx.xwq("benchmark", *MATRIX, "--seeds", "1", "2", "--workers", "4", sets=SMALL)


@case("cli", keyword="--backend ray", fast=True)
def address_without_ray(ctx):
    return ctx.xwq("benchmark", *MATRIX, "--seeds", "1", "2", "--address", "auto")


@case("cli", keyword="seeds", fast=True)
def ray_without_seeds(ctx):
    return ctx.xwq("benchmark", *MATRIX, "--backend", "ray")


@case("cli", keyword=("ray", "pip install"))
def ray_missing(ctx):
    return ctx.blocked_xwq(["ray"], "benchmark", *MATRIX, "--seeds", "1", "2", "--backend",
                           "ray", sets=SMALL)


@case("cli", keyword="unrecognized arguments", fast=True)
def resume_on_test(ctx):
    return ctx.xwq("test", *MATRIX, "--resume", "auto")


@case("cli", keyword="--resume", fast=True)
def resume_path_with_several_seeds(ctx):
    ckpt = ctx.write("run/checkpoints/ckpt_32.pth", b"x")
    return ctx.xwq("train", *MATRIX, "--seeds", "1", "2", "--resume", str(ckpt))


@case("cli", keyword=("env_id", "nonmonotnic"), fast=True)
def unknown_env_id_matrix(ctx):
    return ctx.xwq("train", "--method", "qmix", "--env", "matrix_game", "--env-id",
                   "nonmonotnic")


@case("cli", keyword=("simple_sprea_v3",))
def unknown_env_id_mpe(ctx):
    return ctx.xwq("train", "--method", "qmix", "--env", "mpe", "--env-id", "simple_sprea_v3")


@case("cli", keyword="--import", fast=True)
def import_missing_module(ctx):
    return ctx.xwq("train", *MATRIX, "--import", "no_such_battery_module")


@case("cli", keyword=("--import", "broken_on_import"))
def import_module_that_raises(ctx):
    ctx.write("broken_on_import.py", "raise RuntimeError('this module is broken')\n")
    return ctx.xwq("train", *MATRIX, "--import", "broken_on_import", sets=SMALL)


@case("cli", keyword=("--import", "syntax_error_module"))
def import_module_with_syntax_error(ctx):
    ctx.write("syntax_error_module.py", "def f(:\n    pass\n")
    return ctx.xwq("train", *MATRIX, "--import", "syntax_error_module", sets=SMALL)


@case("cli", keyword=("env_id", "mpe"))
def no_method_no_env_for_custom_id(ctx):
    """--env-id alone, of another env: the default env (mpe) has no such scenario."""
    return ctx.xwq("train", "--env-id", "nonmonotonic")


# ---- --set pairs --------------------------------------------------------------------------
SET_ERRORS = [
    # name, pair(s), keywords
    ("set_empty_key", ["=3"], "KEY=VALUE"),
    ("set_no_equals", ["learning_rate"], "KEY=VALUE"),
    ("set_null_seed", ["seed="], "seed"),
    ("set_float_seed", ["seed=1.5"], "seed"),
    ("set_bool_seed", ["seed=true"], "seed"),
    ("set_seed_negative", ["seed=-1"], "seed"),
    ("set_env_kwargs_list", ["env_kwargs=[1,2]"], "env_kwargs"),
    ("set_running_steps_float", ["running_steps=1e3"], "running_steps"),
    ("set_learning_rate_negative", ["learning_rate=-1"], "learning_rate"),
    ("set_learning_rate_zero", ["learning_rate=0"], "learning_rate"),
    ("set_learning_rate_nan", ["learning_rate=.nan"], "learning_rate"),
    ("set_learning_rate_inf", ["learning_rate=.inf"], "learning_rate"),
    ("set_gamma_above_1", ["gamma=1.5"], "gamma"),
    ("set_gamma_nan", ["gamma=.nan"], "gamma"),
    ("set_batch_size_zero", ["batch_size=0"], "batch_size"),
    ("set_buffer_size_negative", ["buffer_size=-5"], "buffer_size"),
    ("set_parallels_zero", ["parallels=0"], "parallels"),
    ("set_threads_zero", ["threads=0"], "threads"),
    ("set_fc_hidden_empty", ["fc_hidden_sizes=[]"], "fc_hidden_sizes"),
    ("set_fc_hidden_zero", ["fc_hidden_sizes=[0]"], "fc_hidden_sizes"),
    ("set_fc_hidden_int", ["fc_hidden_sizes=64"], "fc_hidden_sizes"),
    ("set_fc_hidden_strings", ["fc_hidden_sizes=[a, b]"], "fc_hidden_sizes"),
    ("set_greedy_inverted", ["start_greedy=0.5", "end_greedy=0.9"], "end_greedy"),
    ("set_optimizer_unknown", ["optimizer=sgd"], "optimizer"),
    ("set_mixer_lowercase", ["mixer=qmix"], ("mixer", "QMIX")),
    ("set_device_tpu", ["device=tpu"], "device"),
    ("set_device_cuda_7", ["device=cuda:7"], "device"),
    ("set_alpha_for_qmix", ["alpha=0.5"], "alpha"),
    ("set_agent_unknown", ["agent=FOO"], ("agent", "FOO")),
    ("set_representation_unknown", ["representation=CNN"], ("representation", "CNN")),
    ("set_learner_unknown", ["learner=SGD_Learner"], ("learner",)),
    ("set_policy_unknown", ["policy=Other_Q"], ("policy",)),
    ("set_log_interval_zero", ["log_interval=0"], "log_interval"),
    ("set_eval_interval_zero", ["eval_interval=0"], "eval_interval"),
    ("set_test_episode_zero", ["test_episode=0"], "test_episode"),
    ("set_save_interval_negative", ["save_interval=-1"], "save_interval"),
    ("set_keep_checkpoints_zero", ["keep_checkpoints=0"], "keep_checkpoints"),
    ("set_max_episode_steps_zero", ["max_episode_steps=0"], "max_episode_steps"),
    ("set_training_frequency_zero", ["training_frequency=0"], "training_frequency"),
    ("set_sync_frequency_zero", ["sync_frequency=0"], "sync_frequency"),
    ("set_hypernet_layers_3", ["hypernet_layers=3"], "hypernet_layers"),
    ("set_rmsprop_alpha_zero", ["rmsprop_alpha=0"], "rmsprop_alpha"),
    ("set_test_parallels_zero", ["test_parallels=0"], "test_parallels"),
    ("set_log_dir_null", ["log_dir="], "log_dir"),
    ("set_log_dir_number", ["log_dir=5"], "log_dir"),
    ("set_method_conflicts", ["method=vdn"], "method"),
    ("set_env_name_conflicts", ["env_name=mpe"], ("env_name",)),
    ("set_vectorize_unknown", ["vectorize=gpu"], "vectorize"),
    ("set_team_reward_unknown", ["team_reward=max"], "team_reward"),
    ("set_start_greedy_above_1", ["start_greedy=2"], "start_greedy"),
    ("set_grad_clip_zero", ["grad_clip_norm=0"], "grad_clip_norm"),
    ("set_ray_num_cpus_zero", ["ray_num_cpus=0"], "ray_num_cpus"),
    ("set_model_path_list", ["model_path=[a]"], "model_path"),
    ("set_double_q_string", ["double_q=maybe"], "double_q"),
    ("set_eval_metric_number", ["eval_metric=3"], "eval_metric"),
    ("set_yaml_python_tag", ["seed=!!python/object/apply:os.getpid []"], "seed"),
]

for _name, _pairs, _keyword in SET_ERRORS:
    simple(_name, "set", "train", [*MATRIX, *_pairs], _keyword, fast=True)


@case("set", keyword="device")
def set_device_cuda_without_gpu(ctx):
    import torch

    if torch.cuda.is_available():
        raise Skip("a GPU is here")
    return ctx.xwq("train", *MATRIX, sets=["device=cuda", *SMALL])


@case("set", keyword=("running_steps",))
def set_running_steps_zero(ctx):
    return ctx.xwq("train", *MATRIX, sets=[*SMALL, "running_steps=0"])


@case("set", keyword=("batch_size", "buffer_size"))
def set_batch_above_buffer(ctx):
    return ctx.xwq("train", *MATRIX, sets=[*SMALL, "batch_size=16", "buffer_size=8"])


@case("set", keyword=("buffer",))
def set_huge_buffer(ctx):
    return ctx.xwq("train", *MPE, sets=[*SMALL_MPE, "buffer_size=100000000"])


@case("set", keyword=("start_training",))
def set_start_training_beyond_budget(ctx):
    return ctx.xwq("train", *MATRIX, sets=[*SMALL, "start_training=1000000"])


@case("set", keyword=("eval_metric", "battle_won"))
def set_eval_metric_not_reported(ctx):
    return ctx.xwq("benchmark", *MATRIX, sets=[*SMALL, "eval_metric=battle_won"])


@case("set", keyword=("vectorize",))
def set_vectorize_native_for_custom(ctx):
    return ctx.xwq("train", "--method", "qmix", "--env", "bat_good", "--env-id", "x",
                   "--import", "battery_envs", sets=[*SMALL_CUSTOM, "vectorize=native"])


@case("set", keyword=("env_kwargs",))
def set_env_kwargs_unknown_for_mpe(ctx):
    return ctx.xwq("train", *MPE, sets=[*SMALL_MPE, "env_kwargs={colour: red}"])


@case("set", keyword=("N",))
def set_env_kwargs_zero_agents_mpe(ctx):
    return ctx.xwq("train", *MPE, sets=[*SMALL_MPE, "env_kwargs={N: 0}"])


@case("set", keyword=("payoff",))
def set_matrix_payoff_not_square(ctx):
    return ctx.xwq("train", *MATRIX, sets=[*SMALL, "env_kwargs={payoff: [[1, 2], [3]]}"])


@case("set", expect="either", keyword=("seed",))
def set_seed_beyond_32_bits(ctx):
    return ctx.xwq("train", *MATRIX, sets=[*SMALL, "seed=99999999999"])


@case("set", expect="survive")
def set_decay_step_zero(ctx):
    """decay_step_greedy: 0 means epsilon is end_greedy from the start."""
    return ctx.xwq("train", *MPE, sets=[*SMALL_MPE, "decay_step_greedy=0"])


@case("set", expect="survive")
def set_eval_interval_beyond_running_steps(ctx):
    return ctx.xwq("benchmark", *MATRIX, sets=[*SMALL, "eval_interval=100000"])


@case("set", expect="survive")
def set_several_pairs_and_repeats(ctx):
    return ctx.xwq("train", *MATRIX, "--set", "learning_rate=1e-3", "--set",
                   "learning_rate=2e-3", sets=SMALL)


# ---- config files --------------------------------------------------------------------------
@case("config", keyword=("folder",), fast=True)
def config_is_a_directory(ctx):
    (ctx.dir / "conf").mkdir()
    return ctx.xwq("train", *MATRIX, "--config", "conf")


@case("config", keyword=("no_such.yaml",), fast=True)
def config_missing(ctx):
    return ctx.xwq("train", *MATRIX, "--config", "no_such.yaml")


@case("config", keyword=("bad.yaml", "YAML", "line"), fast=True)
def config_yaml_syntax_error(ctx):
    ctx.write("bad.yaml", "learning_rate: 0.001\nfc_hidden_sizes: [64, 64\nseed: 2\n")
    return ctx.xwq("train", *MATRIX, "--config", "bad.yaml")


@case("config", keyword=("tabs.yaml", "YAML"), fast=True)
def config_tab_indentation(ctx):
    ctx.write("tabs.yaml", "env_kwargs:\n\tN: 3\n")
    return ctx.xwq("train", *MATRIX, "--config", "tabs.yaml")


@case("config", keyword=("list.yaml", "mapping"), fast=True)
def config_is_a_list(ctx):
    ctx.write("list.yaml", "- learning_rate: 0.1\n- seed: 2\n")
    return ctx.xwq("train", *MATRIX, "--config", "list.yaml")


@case("config", keyword=("scalar.yaml", "mapping"), fast=True)
def config_is_a_scalar(ctx):
    ctx.write("scalar.yaml", "just some text\n")
    return ctx.xwq("train", *MATRIX, "--config", "scalar.yaml")


@case("config", expect="survive")
def config_empty_file(ctx):
    ctx.write("empty.yaml", "")
    return ctx.xwq("train", *MATRIX, "--config", "empty.yaml", sets=SMALL)


@case("config", keyword=("learning_rat", "learning_rate"), fast=True)
def config_misspelt_key(ctx):
    ctx.write("typo.yaml", "learning_rat: 0.001\n")
    return ctx.xwq("train", *MATRIX, "--config", "typo.yaml")


@case("config", keyword=("batch_size",), fast=True)
def config_wrong_type(ctx):
    ctx.write("types.yaml", "batch_size: thirty-two\n")
    return ctx.xwq("train", *MATRIX, "--config", "types.yaml")


@case("config", keyword=("seed",), fast=True)
def config_seed_as_string(ctx):
    ctx.write("seed.yaml", "seed: '1'\n")
    return ctx.xwq("train", *MATRIX, "--config", "seed.yaml")


@case("config", keyword=("binary.yaml",), fast=True)
def config_random_bytes(ctx):
    ctx.write("binary.yaml", bytes(range(256)) * 4)
    return ctx.xwq("train", *MATRIX, "--config", "binary.yaml")


@case("config", keyword=("model.pth",))
def config_is_a_model_file(ctx):
    import torch

    torch.save({"policy": {"w": torch.ones(3)}}, ctx.path("model.pth"))
    return ctx.xwq("train", *MATRIX, "--config", "model.pth")


@case("config", keyword=("unknown method", "qmx"), fast=True)
def config_unknown_method(ctx):
    ctx.write("method.yaml", "method: qmx\n")
    return ctx.xwq("train", "--config", "method.yaml")


@case("config", keyword=("method",), fast=True)
def config_method_not_a_string(ctx):
    ctx.write("method.yaml", "method: 3\n")
    return ctx.xwq("train", "--config", "method.yaml")


@case("config", keyword=("unknown env", "matrix_gam"))
def config_unknown_env(ctx):
    ctx.write("env.yaml", "method: qmix\nenv_name: matrix_gam\nenv_id: nonmonotonic\n")
    return ctx.xwq("train", "--config", "env.yaml")


@case("config", keyword=("learning_rate", "twice"), fast=True)
def config_duplicate_key(ctx):
    ctx.write("dup.yaml", "learning_rate: 0.001\nseed: 3\nlearning_rate: 0.1\n")
    return ctx.xwq("train", *MATRIX, "--config", "dup.yaml")


@case("config", keyword=("python.yaml",), fast=True)
def config_python_tag(ctx):
    ctx.write("python.yaml", "seed: !!python/object/apply:os.system ['touch pwned']\n")
    return ctx.xwq("train", *MATRIX, "--config", "python.yaml")


@case("config", keyword=("learning",), fast=True)
def config_nested_section(ctx):
    ctx.write("nested.yaml", "learning:\n  rate: 0.001\n")
    return ctx.xwq("train", *MATRIX, "--config", "nested.yaml")


@case("config", keyword=("env_kwargs",), fast=True)
def config_env_kwargs_not_mapping(ctx):
    ctx.write("kw.yaml", "env_kwargs: [1, 2]\n")
    return ctx.xwq("train", *MATRIX, "--config", "kw.yaml")


@case("config", keyword=("weighting",))
def config_weighting_unknown(ctx):
    ctx.write("w.yaml", "weighting: xx\n")
    return ctx.xwq("train", "--method", "cw_qmix", "--env", "matrix_game", "--env-id",
                   "nonmonotonic", "--config", "w.yaml", sets=SMALL)


@case("config", keyword=("config.yaml",))
def config_not_utf8_latin1(ctx):
    ctx.write("config.yaml", "env_id: \xe9t\xe9\n".encode("latin-1"))
    return ctx.xwq("train", *MATRIX, "--config", "config.yaml")


@case("config", expect="survive")
def config_from_an_earlier_run(ctx):
    """A run's own config.yaml reused as --config: the same experiment again."""
    first = ctx.xwq("train", *MATRIX, sets=SMALL)
    if first.rc != 0:
        return first
    saved = next((ctx.dir / "logs").rglob("config.yaml"))
    return ctx.xwq("train", "--config", str(saved), sets=SMALL)


@case("config", expect="survive")
def config_relative_dirs_and_spaces(ctx):
    """Run folders with spaces and non-ASCII characters in their names."""
    return ctx.xwq("train", *MATRIX, sets=[*SMALL, "log_dir=my logs/é", "model_dir=mod els"],
                   dirs=False)


# ---- where runs write ----------------------------------------------------------------------
@case("files", keyword=("Not a directory",))
def results_dir_under_a_file(ctx):
    ctx.write("a_file", "x")
    return ctx.xwq("benchmark", *MATRIX, sets=[*SMALL, f"results_dir={ctx.path('a_file')}/r"])


@case("files", keyword=("a_file",))
def log_dir_is_a_file(ctx):
    ctx.write("a_file", "x")
    return ctx.xwq("train", *MATRIX, sets=[*SMALL, f"log_dir={ctx.path('a_file')}"])


@case("files", keyword=("model_dir",), check=lambda ctx, done: _checkpoint_kept(ctx))
def model_dir_under_a_file(ctx):
    """The final model cannot be written: clear error, and the run's checkpoints stay."""
    ctx.write("a_file", "x")
    return ctx.xwq("train", *MATRIX, sets=[*SMALL, f"model_dir={ctx.path('a_file')}/m"])


def _checkpoint_kept(ctx):
    runs = run_dirs(ctx.dir / "logs")
    if not runs or not list((runs[0] / "checkpoints").glob("ckpt_*.pth")):
        return "lost: no checkpoint left to resume from"
    return None


@case("files", keyword=("read-only",))
def results_dir_read_only(ctx):
    point = ctx.mount_tmpfs("ro", read_only=True)
    if point is None:
        raise Skip("cannot mount a tmpfs here")
    return ctx.xwq("benchmark", *MATRIX, sets=[*SMALL, f"results_dir={point}/results"])


@case("files", keyword=("No space left",))
def disk_full_from_the_start(ctx):
    point = ctx.mount_tmpfs("full", size="64k")
    if point is None:
        raise Skip("cannot mount a tmpfs here")
    with contextlib.suppress(OSError):
        (point / "filler").write_bytes(b"x" * 10**6)
    return ctx.xwq("train", *MATRIX, sets=[*SMALL, f"log_dir={point}/logs"])


@case("files", keyword=("No space left",), check=lambda ctx, done: _full_disk_check(ctx))
def disk_full_mid_run(ctx):
    """The disk fills up between checkpoints: a clear error, no half file under a checkpoint's
    name, and after space is freed --resume auto finishes the run."""
    point = ctx.mount_tmpfs("full", size="1M")
    if point is None:
        raise Skip("cannot mount a tmpfs here")
    sets = [*LONG, f"log_dir={point}/logs", "save_buffer=true",
            "buffer_size=512"]
    ctx.full_sets = sets
    ctx.full_point = point
    filler = point / "filler"
    # leave room for the logs and a checkpoint or two
    free = shutil.disk_usage(point).free
    filler.write_bytes(b"x" * max(0, free - 300_000))
    return ctx.xwq("train", *MATRIX, sets=sets)


def _full_disk_check(ctx):
    point = getattr(ctx, "full_point", None)
    if point is None:
        return None
    for path in point.rglob("ckpt_*.pth"):
        try:
            import torch

            torch.load(path, weights_only=True)
        except Exception as error:  # noqa: BLE001
            return f"lost: damaged checkpoint {path.name} ({type(error).__name__})"
    (point / "filler").unlink()
    resumed = ctx.xwq("train", *MATRIX, "--resume", sets=ctx.full_sets)
    if resumed.rc != 0:
        return f"resume after freeing space failed: {resumed.last_line}"
    return None


@case("files", expect="survive")
def empty_string_results_dir(ctx):
    """results_dir: '' is the working directory."""
    return ctx.xwq("benchmark", *MATRIX, sets=[*SMALL, "results_dir=''"])


@case("files", expect="survive", check=lambda ctx, done: _two_folders(ctx))
def two_runs_at_once_same_seed(ctx):
    """Two fresh runs of the same seed at the same time: two folders, both complete."""
    first = ctx.start_xwq("train", *MATRIX, sets=SMALL)
    second = ctx.start_xwq("train", *MATRIX, sets=SMALL)
    out1, err1 = first.communicate(timeout=ctx.timeout)
    out2, err2 = second.communicate(timeout=ctx.timeout)
    rc = first.returncode or second.returncode
    return Done(rc, out1 + out2, err1 + err2)


def _two_folders(ctx):
    runs = run_dirs(ctx.dir / "logs")
    finished = [r for r in runs if (r / "summary.json").is_file()]
    return None if len(finished) == 2 else f"lost: {len(finished)} finished run folders, not 2"


@case("files", expect="survive", check=lambda ctx, done: unchanged(ctx.before, ctx.dir / "logs"))
def second_run_keeps_the_first(ctx):
    """Running the same command twice leaves the first run's folder untouched."""
    first = ctx.xwq("train", *MATRIX, sets=SMALL)
    if first.rc != 0:
        return first
    ctx.before = fingerprint(ctx.dir / "logs")
    return ctx.xwq("train", *MATRIX, sets=SMALL)


# ---- models for test -----------------------------------------------------------------------
def trained(ctx, method_args=MATRIX, sets=SMALL, root="") -> Path:
    done = ctx.xwq("train", *method_args, sets=sets, root=root)
    if done.rc != 0:
        raise RuntimeError(f"could not train the model the case needs: {done.last_line}")
    return next((ctx.dir / root / "models").rglob("final_model.pth"))


@case("model", keyword=("folder",))
def model_is_a_directory(ctx):
    (ctx.dir / "somedir").mkdir()
    return ctx.xwq("test", *MATRIX, "--model", "somedir", sets=SMALL)


@case("model", keyword=("missing.pth",))
def model_missing(ctx):
    return ctx.xwq("test", *MATRIX, "--model", "missing.pth", sets=SMALL)


@case("model", keyword=("cut.pth", "damaged"))
def model_truncated(ctx):
    data = trained(ctx).read_bytes()
    ctx.write("cut.pth", data[: len(data) // 2])
    return ctx.xwq("test", *MATRIX, "--model", "cut.pth", sets=SMALL)


@case("model", keyword=("noise.pth", "damaged"))
def model_random_bytes(ctx):
    ctx.write("noise.pth", os.urandom(4096))
    return ctx.xwq("test", *MATRIX, "--model", "noise.pth", sets=SMALL)


@case("model", keyword=("empty.pth",))
def model_empty_file(ctx):
    ctx.write("empty.pth", b"")
    return ctx.xwq("test", *MATRIX, "--model", "empty.pth", sets=SMALL)


@case("model", keyword=("evil.pth", "code"),
      check=lambda ctx, done: "lost: the pickle ran code" if ctx.path("pwned").exists() else None)
def model_malicious_pickle(ctx):
    code = f"""
        import os, torch
        class Evil:
            def __reduce__(self):
                return (os.system, ("touch {ctx.path('pwned')}",))
        torch.save({{"policy": Evil(), "config": {{}}}}, "evil.pth")
        """
    ctx.python(code)
    return ctx.xwq("test", *MATRIX, "--model", "evil.pth", sets=SMALL)


@case("model", keyword=("plain.pkl",),
      check=lambda ctx, done: "lost: the pickle ran code" if ctx.path("pwned").exists() else None)
def model_plain_pickle_with_code(ctx):
    code = f"""
        import os, pickle
        class Evil:
            def __reduce__(self):
                return (os.system, ("touch {ctx.path('pwned')}",))
        pickle.dump(Evil(), open("plain.pkl", "wb"))
        """
    ctx.python(code)
    return ctx.xwq("test", *MATRIX, "--model", "plain.pkl", sets=SMALL)


@case("model", keyword=("trained with", "vdn"))
def model_of_another_method(ctx):
    model = trained(ctx, ["--method", "vdn", *MATRIX[2:]])
    return ctx.xwq("test", *MATRIX, "--model", str(model), sets=SMALL)


@case("model", keyword=("trained with", "matrix_game"))
def model_of_another_env(ctx):
    model = trained(ctx)
    return ctx.xwq("test", *MPE, "--model", str(model), sets=SMALL_MPE)


@case("model", keyword=("trained with", "fc_hidden_sizes"))
def model_of_another_network_size(ctx):
    model = trained(ctx, sets=[*SMALL, "fc_hidden_sizes=[32]"])
    return ctx.xwq("test", *MATRIX, "--model", str(model), sets=SMALL)


@case("model", keyword=("trained with", "env_kwargs"))
def model_of_another_agent_count(ctx):
    model = trained(ctx, MPE, sets=[*SMALL_MPE, "env_kwargs={N: 4}"])
    return ctx.xwq("test", *MPE, "--model", str(model), sets=[*SMALL_MPE, "env_kwargs={N: 3}"])


@case("model", expect="survive")
def model_is_a_checkpoint(ctx):
    trained(ctx)
    checkpoint = next((ctx.dir / "logs").rglob("ckpt_*.pth"))
    return ctx.xwq("test", *MATRIX, "--model", str(checkpoint), sets=SMALL)


@case("model", keyword=("tensor.pth", "not an xwq model"))
def model_plain_tensor(ctx):
    ctx.python("import torch\ntorch.save(torch.ones(3), 'tensor.pth')\n")
    return ctx.xwq("test", *MATRIX, "--model", "tensor.pth", sets=SMALL)


@case("model", keyword=("model.json",))
def model_json_text(ctx):
    ctx.write("model.json", '{"policy": {}}\n')
    return ctx.xwq("test", *MATRIX, "--model", "model.json", sets=SMALL)


@case("model", keyword=("no trained model",))
def model_none_trained(ctx):
    return ctx.xwq("test", *MATRIX, sets=SMALL)


@case("model", expect="survive", warn=True)
def render_env_that_cannot_draw(ctx):
    """--render on the matrix game, which has no frames: a warning, no GIF, the test runs."""
    trained(ctx)
    return ctx.xwq("test", *MATRIX, "--render", sets=SMALL)


@case("model", keyword=("format",))
def model_of_a_future_checkpoint_format(ctx):
    trained(ctx)
    checkpoint = next((ctx.dir / "logs").rglob("ckpt_*.pth"))
    ctx.python(f"""
        import torch
        payload = torch.load({str(checkpoint)!r}, weights_only=True)
        payload["format"] = 99
        torch.save(payload, "future.pth")
        """)
    return ctx.xwq("train", *MATRIX, "--resume", "future.pth", sets=SMALL)


# ---- resume --------------------------------------------------------------------------------
def interrupted_run(ctx, command="train", args=MATRIX, sets=SMALL, stop_after=32) -> Path:
    """A run stopped (SIGKILL) right after its checkpoint at ``stop_after`` env steps: trains
    a longer run and kills it once that checkpoint exists."""
    process = ctx.start_xwq(command, *args, sets=[*LONG])
    logs = ctx.dir / ("results" if command == "benchmark" else "logs")
    deadline = time.monotonic() + ctx.timeout / 2
    try:
        while not list(logs.rglob("ckpt_*.pth")):
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the run to interrupt ended or stalled: "
                                   + (process.stderr.read() if process.poll() is not None
                                      else "timeout"))
            time.sleep(0.02)
        process.send_signal(signal.SIGKILL)
    finally:
        process.kill()
        process.wait()
    return run_dirs(logs)[0]


@case("resume", expect="survive", warn=True)
def resume_auto_with_nothing(ctx):
    """--resume auto with no earlier run starts a new one."""
    return ctx.xwq("train", *MATRIX, "--resume", sets=SMALL)


@case("resume", keyword=("nope.pth",))
def resume_missing_path(ctx):
    return ctx.xwq("train", *MATRIX, "--resume", "nope.pth", sets=SMALL)


@case("resume", keyword=("no checkpoint",))
def resume_folder_without_checkpoints(ctx):
    (ctx.dir / "emptyrun").mkdir()
    return ctx.xwq("train", *MATRIX, "--resume", "emptyrun", sets=SMALL)


@case("resume", keyword=("damaged",), check=lambda ctx, done: unchanged(ctx.before, ctx.run_dir))
def resume_damaged_checkpoint_by_path(ctx):
    run_dir = interrupted_run(ctx)
    newest = sorted((run_dir / "checkpoints").glob("ckpt_*.pth"))[-1]
    newest.write_bytes(newest.read_bytes()[:200])
    ctx.before, ctx.run_dir = fingerprint(run_dir), run_dir
    return ctx.xwq("train", "--resume", str(newest), sets=LONG)


@case("resume", expect="survive", check=lambda ctx, done: _resumed_from_older(ctx))
def resume_auto_damaged_newest(ctx):
    """--resume auto passes over a damaged newest checkpoint for the one before it."""
    run_dir = interrupted_run(ctx)
    process = ctx.start_xwq("train", *MATRIX, "--resume", sets=LONG)
    # let it write a second checkpoint, then kill it again and damage the newest
    deadline = time.monotonic() + 60
    while len(list((run_dir / "checkpoints").glob("ckpt_*.pth"))) < 2 \
            and time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.02)
    process.kill()
    process.wait()
    checkpoints = sorted((run_dir / "checkpoints").glob("ckpt_*.pth"),
                         key=lambda p: int(p.stem.split("_")[1]))
    if len(checkpoints) < 2:
        raise RuntimeError("the resumed run wrote no second checkpoint")
    checkpoints[-1].write_bytes(checkpoints[-1].read_bytes()[:300])
    ctx.older, ctx.run_dir = checkpoints[-2], run_dir
    return ctx.xwq("train", *MATRIX, "--resume", sets=LONG)


def _resumed_from_older(ctx):
    summary = json.loads((ctx.run_dir / "summary.json").read_text())
    if summary["env_steps"] != 1024:
        return f"lost: the resumed run ended at {summary['env_steps']}"
    if not summary["resumed_from"][-1].endswith(ctx.older.name):
        return f"resumed from {summary['resumed_from'][-1]}, not {ctx.older.name}"
    return None


@case("resume", keyword=("every checkpoint", "damaged"))
def resume_auto_all_damaged(ctx):
    run_dir = interrupted_run(ctx)
    for path in (run_dir / "checkpoints").glob("ckpt_*.pth"):
        path.write_bytes(b"")
    return ctx.xwq("train", *MATRIX, "--resume", sets=LONG)


@case("resume", keyword=("final_model.pth", "checkpoint"))
def resume_from_a_model_file(ctx):
    model = trained(ctx)
    return ctx.xwq("train", *MATRIX, "--resume", str(model), sets=SMALL)


@case("resume", keyword=("benchmark",))
def resume_benchmark_checkpoint_with_train(ctx):
    done = ctx.xwq("benchmark", *MATRIX, sets=SMALL)
    if done.rc != 0:
        return done
    checkpoint = next((ctx.dir / "results").rglob("ckpt_*.pth"))
    return ctx.xwq("train", *MATRIX, "--resume", str(checkpoint), sets=SMALL)


@case("resume", keyword=("learning_rate",),
      check=lambda ctx, done: unchanged(ctx.before, ctx.run_dir))
def resume_with_another_learning_rate(ctx):
    run_dir = interrupted_run(ctx)
    checkpoint = sorted((run_dir / "checkpoints").glob("ckpt_*.pth"))[-1]
    ctx.before, ctx.run_dir = fingerprint(run_dir), run_dir
    return ctx.xwq("train", *MATRIX, "--resume", str(checkpoint),
                   sets=[*LONG, "learning_rate=0.01"])


@case("resume", expect="survive", warn=True,
      check=lambda ctx, done: unchanged(ctx.before, ctx.sibling))
def resume_auto_damaged_sibling_config(ctx):
    """A sibling run folder whose config.yaml is damaged is passed over (with a warning)."""
    run_dir = interrupted_run(ctx)
    sibling = run_dir.parent / "seed_1_20990101-000000-000000"
    sibling.mkdir()
    (sibling / "config.yaml").write_text("method: [qmix\n")
    ctx.before, ctx.sibling = fingerprint(sibling), sibling
    return ctx.xwq("train", *MATRIX, "--resume", sets=LONG)


@case("resume", keyword=("config.yaml",))
def resume_path_with_damaged_run_config(ctx):
    """--resume PATH alone reads the run's config.yaml: a damaged one is named."""
    run_dir = interrupted_run(ctx)
    (run_dir / "config.yaml").write_text("method: [qmix\n")
    checkpoint = sorted((run_dir / "checkpoints").glob("ckpt_*.pth"))[-1]
    return ctx.xwq("train", "--resume", str(checkpoint), sets=LONG)


@case("resume", keyword=("config.yaml",))
def resume_path_with_list_run_config(ctx):
    run_dir = interrupted_run(ctx)
    (run_dir / "config.yaml").write_text("- qmix\n- mpe\n")
    return ctx.xwq("train", "--resume", str(run_dir), sets=LONG)


@case("resume", expect="survive")
def resume_path_without_run_config(ctx):
    """The run's config.yaml was deleted: --resume PATH with the method/env given works."""
    run_dir = interrupted_run(ctx)
    (run_dir / "config.yaml").unlink()
    return ctx.xwq("train", *MATRIX, "--resume", str(run_dir), sets=LONG)


@case("resume", expect="survive", check=lambda ctx, done: _one_finished(ctx, done))
def two_resumes_at_once(ctx):
    """Two --resume auto of one interrupted run at the same time: one continues it, the other
    says it is in use (or finds it finished); the run ends complete, its logs not doubled."""
    run_dir = interrupted_run(ctx)
    ctx.run_dir = run_dir
    first = ctx.start_xwq("train", *MATRIX, "--resume", sets=LONG)
    second = ctx.start_xwq("train", *MATRIX, "--resume", sets=LONG)
    out1, err1 = first.communicate(timeout=ctx.timeout)
    out2, err2 = second.communicate(timeout=ctx.timeout)
    ctx.pair = [(first.returncode, err1), (second.returncode, err2)]
    rc = 0 if 0 in (first.returncode, second.returncode) else first.returncode
    return Done(rc, out1 + out2, err1 + "\n" + err2)


def _one_finished(ctx, done):
    for rc, err in ctx.pair:
        last = [line for line in err.splitlines() if line.strip()]
        if rc not in (0, 2) or "Traceback" in err or (rc == 2 and "in use" not in last[-1]):
            return f"the other resume ended badly (status {rc}): {last[-1] if last else ''}"
    summary = json.loads((ctx.run_dir / "summary.json").read_text())
    rows = [row["env_step"] for row in jsonl_rows(ctx.run_dir / "train.jsonl")]
    if summary["env_steps"] != 1024 or len(rows) != len(set(rows)):
        return f"lost: env_steps {summary['env_steps']}, duplicated log rows {len(rows)}"
    return None


@case("resume", expect="survive", check=lambda ctx, done: _extended(ctx))
def resume_finished_run_longer(ctx):
    """--resume auto with a larger running_steps extends a finished run in place."""
    trained(ctx)
    return ctx.xwq("train", *MATRIX, "--resume", sets=[*SMALL, "running_steps=96"])


def _extended(ctx):
    runs = run_dirs(ctx.dir / "logs")
    summary = json.loads((runs[0] / "summary.json").read_text())
    return None if len(runs) == 1 and summary["env_steps"] == 96 else \
        f"{len(runs)} run folders, env_steps {summary['env_steps']}"


@case("resume", expect="survive")
def resume_with_leftover_temporary_files(ctx):
    """Stray files in checkpoints/ (a temp file of a killed write, an odd name) are ignored."""
    run_dir = interrupted_run(ctx)
    (run_dir / "checkpoints" / ".ckpt_512.pth.abc.tmp").write_bytes(b"half")
    (run_dir / "checkpoints" / "ckpt_abc.pth").write_bytes(b"?")
    (run_dir / "checkpoints" / "notes.txt").write_text("hi")
    return ctx.xwq("train", *MATRIX, "--resume", sets=LONG)


@case("resume", expect="survive", check=lambda ctx, done: _no_duplicate_rows(ctx))
def resume_after_damaged_metrics_tail(ctx):
    """A killed benchmark's metrics.jsonl ends in half a row: the resume cuts it back."""
    run_dir = interrupted_run(ctx, "benchmark")
    with open(run_dir / "metrics.jsonl", "a") as handle:
        handle.write('{"env_step": 9999, "test_ret')
    ctx.run_dir = run_dir
    return ctx.xwq("benchmark", *MATRIX, "--resume", sets=[*LONG, "eval_interval=512",
                                                           "test_episode=2"])


def _no_duplicate_rows(ctx):
    for stream in ("metrics", "train"):
        try:
            rows = [row["env_step"] for row in jsonl_rows(ctx.run_dir / f"{stream}.jsonl")]
        except json.JSONDecodeError as error:
            return f"lost: {stream}.jsonl damaged after resume ({error})"
        if len(rows) != len(set(rows)):
            return f"lost: {stream}.jsonl has duplicated rows"
    return None


# ---- signals: interrupted, then resumed, must equal an unbroken run ------------------------
def _signal_case(ctx, sig: int, command: str = "train") -> Done:
    args, sets = MATRIX, list(LONG)
    if command == "benchmark":
        sets += ["eval_interval=512", "test_episode=2", "test_parallels=2"]
    reference = ctx.xwq(command, *args, sets=sets, root="reference")
    if reference.rc != 0:
        raise RuntimeError(f"reference run failed: {reference.last_line}")
    process = ctx.start_xwq(command, *args, sets=sets, root="broken")
    folder = ctx.dir / "broken" / ("results" if command == "benchmark" else "logs")
    deadline = time.monotonic() + 90
    try:
        while not list(folder.rglob("ckpt_*.pth")):
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the run to interrupt ended or stalled")
            time.sleep(0.02)
        time.sleep(0.2)  # mid-way between checkpoints
        process.send_signal(sig)
        _, err = process.communicate(timeout=60)
    finally:
        process.kill()
        process.wait()
    ctx.interrupt = (process.returncode, err)
    ctx.command, ctx.folder = command, folder
    return ctx.xwq(command, *args, "--resume", sets=sets, root="broken")


def _identical(ctx, done):
    rc, err = ctx.interrupt
    lines = [line for line in err.splitlines() if line.strip()]
    if ctx.signal_name != "SIGKILL" and ("Traceback" in err or not lines
                                         or not lines[-1].startswith("xwq")):
        return f"interrupt not reported in one line (status {rc}): " + (lines[-1] if lines else "")
    reference_root = ctx.dir / "reference" / ctx.folder.name
    ref, run = run_dirs(reference_root)[0], run_dirs(ctx.folder)[0]
    for stream in ("train", "metrics"):
        if jsonl_rows(ref / f"{stream}.jsonl") != jsonl_rows(run / f"{stream}.jsonl"):
            return f"lost: {stream}.jsonl differs from the unbroken run"
    if ctx.command == "train":
        model_ref = next((ctx.dir / "reference" / "models").rglob("final_model.pth"))
        model_run = next((ctx.dir / "broken" / "models").rglob("final_model.pth"))
    else:
        model_ref, model_run = ref / "final_model.pth", run / "final_model.pth"
    if not same_model(model_ref, model_run):
        return "lost: final parameters differ from the unbroken run"
    return None


for _sig in ("SIGINT", "SIGTERM", "SIGKILL"):
    for _command in ("train", "benchmark"):
        def _body(ctx, _sig=_sig, _command=_command):
            ctx.signal_name = _sig
            return _signal_case(ctx, getattr(signal, _sig), _command)

        _body.__name__ = f"{_sig.lower()}_{_command}_then_resume"
        case("signals", expect="survive", check=_identical, timeout=300)(_body)


@case("signals", expect="survive", check=lambda ctx, done: _no_orphans(ctx), timeout=300)
def sigint_benchmark_workers_then_resume(ctx):
    """Ctrl-C on a 2-worker benchmark of 2 seeds: no worker left behind; --resume auto
    finishes both seeds."""
    sets = [*LONG, "eval_interval=512", "test_episode=2", "test_parallels=2"]
    process = ctx.start_xwq("benchmark", *MATRIX, "--seeds", "1", "2", "--workers", "2",
                            sets=sets)
    deadline = time.monotonic() + 120
    try:
        while len(list((ctx.dir / "results").rglob("ckpt_*.pth"))) < 2:
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the benchmark to interrupt ended or stalled")
            time.sleep(0.05)
        process.send_signal(signal.SIGINT)
        _, err = process.communicate(timeout=60)
    finally:
        process.kill()
        process.wait()
    ctx.interrupt = (process.returncode, err)
    ctx.pid = process.pid
    time.sleep(1)
    ctx.orphans = _children_of(process.pid)
    return ctx.xwq("benchmark", *MATRIX, "--seeds", "1", "2", "--workers", "2", "--resume",
                   sets=sets)


def _children_of(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError, IndexError):
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
                if int(fields[1]) == pid:
                    found.append(int(entry.name))
    return found


def _no_orphans(ctx):
    rc, err = ctx.interrupt
    if "Traceback" in err or rc != 130:
        lines = [line for line in err.splitlines() if line.strip()]
        return f"interrupt not one line / status {rc}: {lines[-1] if lines else ''}"
    if ctx.orphans:
        return f"worker processes left running: {ctx.orphans}"
    finished = [r for r in run_dirs(ctx.dir / "results") if (r / "summary.json").is_file()]
    return None if len(finished) == 2 else f"lost: {len(finished)} finished seeds, not 2"


# ---- plot ----------------------------------------------------------------------------------
def benchmarked(ctx, method="qmix") -> Path:
    done = ctx.xwq("benchmark", "--method", method, *MATRIX[2:], sets=SMALL)
    if done.rc != 0:
        raise RuntimeError(f"could not benchmark: {done.last_line}")
    return run_dirs(ctx.dir / "results")[-1]


@case("plot", keyword=("metrics.jsonl", "line"))
def plot_damaged_metrics_line(ctx):
    run = benchmarked(ctx)
    with open(run / "metrics.jsonl", "a") as handle:
        handle.write('{"env_step": 96, "test_return_m\n')
    return ctx.run([sys.executable, "-m", "xwq", "plot", str(run), "--out", "cmp"])


@case("plot", keyword=("summary.json",))
def plot_damaged_summary(ctx):
    run = benchmarked(ctx)
    (run / "summary.json").write_text("{not json")
    return ctx.run([sys.executable, "-m", "xwq", "plot", str(run), "--out", "cmp"])


@case("plot", keyword=("nowhere",), fast=True)
def plot_missing_folder(ctx):
    return ctx.run([sys.executable, "-m", "xwq", "plot", "nowhere"])


@case("plot", keyword=("empty",), fast=True)
def plot_empty_folder(ctx):
    (ctx.dir / "empty").mkdir()
    return ctx.run([sys.executable, "-m", "xwq", "plot", "empty"])


@case("plot", keyword=("metrics.jsonl",))
def plot_run_without_metrics(ctx):
    run = benchmarked(ctx)
    (run / "metrics.jsonl").unlink()
    return ctx.run([sys.executable, "-m", "xwq", "plot", str(run), "--out", "cmp"])


@case("plot", keyword=("metrics.jsonl",))
def plot_empty_metrics(ctx):
    run = benchmarked(ctx)
    (run / "metrics.jsonl").write_text("")
    return ctx.run([sys.executable, "-m", "xwq", "plot", str(run), "--out", "cmp"])


@case("plot", keyword=("a_file",))
def plot_out_is_a_file(ctx):
    run = benchmarked(ctx)
    ctx.write("a_file", "x")
    return ctx.run([sys.executable, "-m", "xwq", "plot", str(run), "--out", "a_file"])


@case("plot", keyword=("train",))
def plot_a_training_run(ctx):
    """A `train` run folder (no evaluations) given to plot."""
    trained(ctx)
    return ctx.run([sys.executable, "-m", "xwq", "plot", str(ctx.dir / "logs"), "--out", "c"])


@case("plot", expect="survive", check=lambda ctx, done: unchanged(ctx.before, ctx.dir / "results"))
def plot_two_methods(ctx):
    benchmarked(ctx, "qmix")
    benchmarked(ctx, "vdn")
    ctx.before = fingerprint(ctx.dir / "results")
    return ctx.run([sys.executable, "-m", "xwq", "plot", "results/qmix", "results/vdn", "--out",
                    "cmp"])


# ---- custom envs ---------------------------------------------------------------------------
def custom(ctx, env: str, command: str = "train", sets: list[str] | None = None,
           method: str = "qmix") -> Done:
    return ctx.xwq(command, "--method", method, "--env", f"bat_{env}", "--env-id", "x",
                   "--import", "battery_envs", sets=[*SMALL_CUSTOM, *(sets or [])])


ENV_CASES = [
    # env, expect, keywords, options
    ("good", "survive", (), {}),
    ("old_gym_step", "error", ("step", "5"), {}),
    # adapted with a warning that names it (contract.py): reset() then seeded via env.seed()
    ("reset_without_seed", "error", ("reset", "seed"), {"warn": True}),
    ("reset_obs_only", "error", ("reset",), {}),
    ("avail_none", "survive", (), {}),  # None: every action available
    ("num_agents_assigned", "survive", (), {}),  # a XuanCe habit; a wrong count is refused
    ("no_state", "survive", (), {}),
    ("state_missing_with_space", "error", ("state",), {}),
    ("obs_wrong_shape_same_size", "error", ("shape", "a"), {}),
    ("obs_wrong_size", "error", ("a", "3"), {}),
    # refused at the env (its fault, status 2), before a loss could become non-finite
    ("nan_reward", "error", ("reward", "nan"), {"status": 2}),
    ("inf_reward", "error", ("reward", "inf"), {"status": 2}),
    ("factory_raises", "error", ("bat_factory_raises", "maps"), {}),
    ("factory_none", "error", ("bat_factory_none", "None"), {}),
    ("factory_dict", "error", ("bat_factory_dict", "dict"), {}),
    ("box_actions", "error", ("Discrete", "a"), {}),
    ("multidiscrete_actions", "error", ("Discrete", "a"), {}),
    ("discrete_start_1", "survive", (), {}),  # the env checks that it gets 1..3
    ("obs_float64", "survive", (), {}),
    ("obs_lists", "either", ("obs",), {}),
    ("reward_scalar", "error", ("reward",), {}),
    ("terminated_bool", "error", ("terminated",), {}),
    ("reward_missing_agent", "error", ("b",), {}),
    ("no_time_limit", "error", ("max_episode_steps",), {}),
    ("all_unavailable", "error", ("b", "avail"), {}),
    ("avail_wrong_length", "error", ("agent 'a'", "action mask"), {}),
    ("state_wrong_shape", "error", ("state",), {}),
    ("one_agent", "survive", (), {}),
    ("mixed_sizes", "survive", (), {}),
    ("obs_space_not_dict", "error", ("observation_space",), {}),
    ("agent_dies", "error", ("b",), {}),
    ("reward_arrays", "either", ("reward",), {}),
    ("obs_nan", "error", ("obs", "NaN"), {"status": 2}),  # refused at the env: its fault
    ("step_returns_none", "error", ("step",), {}),
    ("truncation_only", "survive", (), {}),
    ("int_agent_names", "either", ("agent",), {}),
    ("reset_missing_agent", "error", ("b",), {}),
    ("scalar_obs", "either", ("obs",), {}),
    ("info_not_dict", "either", ("info",), {}),
    ("no_kwargs", "error", ("env_kwargs",), {"sets": ["env_kwargs={level: 2}"]}),
]

for _env, _expect, _keywords, _options in ENV_CASES:
    _options = dict(_options)
    _sets = _options.pop("sets", None)

    def _env_body(ctx, _env=_env, _sets=_sets):
        return custom(ctx, _env, sets=_sets)

    _env_body.__name__ = f"env_{_env}"
    case("env", _expect, _keywords, **_options)(_env_body)


@case("env", expect="survive")
def env_no_time_limit_with_max_episode_steps(ctx):
    return custom(ctx, "no_time_limit", sets=["max_episode_steps=5"])


@case("env", keyword=("simulator crashed", "resume"), status=2,
      check=lambda ctx, done: _checkpoint_kept(ctx))
def env_step_raises_mid_training(ctx):
    """The env raises in step() after some training: one line naming the env, the step and the
    checkpoint to resume from; that checkpoint is intact."""
    return custom(ctx, "step_raises", sets=["running_steps=400", "save_interval=40"])


@case("env", keyword=("simulator crashed",))
def env_step_raises_in_subprocess(ctx):
    return custom(ctx, "subproc_step_raises", sets=["vectorize=subprocess", "running_steps=200"])


@case("env", expect="either", keyword=("non-finite",), status=1, timeout=240)
def env_pixels_large_rewards(ctx):
    """uint8 pixel observations and rewards of 1000: trains, or stops with the diverged line."""
    return custom(ctx, "pixels", sets=["running_steps=400", "representation=Basic_MLP",
                                       "learning_rate=0.05", "grad_clip_norm=1e6"])


@case("env", expect="survive", check=lambda ctx, done: None if list(
    (ctx.dir / "models").rglob("final_model.pth")) else "lost: no final model")
def env_close_raises(ctx):
    """An env whose close() raises: the trained model is still saved."""
    return custom(ctx, "close_raises")


@case("env", expect="either", keyword=("no display",))
def env_render_raises(ctx):
    trained(ctx, ["--method", "qmix", "--env", "bat_render_raises", "--env-id", "x",
                  "--import", "battery_envs"], sets=SMALL_CUSTOM)
    return ctx.xwq("test", "--method", "qmix", "--env", "bat_render_raises", "--env-id", "x",
                   "--import", "battery_envs", "--render", sets=SMALL_CUSTOM)


@case("env", expect="survive")
def env_good_subprocess_benchmark(ctx):
    return custom(ctx, "good", "benchmark", sets=["vectorize=subprocess"])


@case("env", expect="survive")
def env_good_vdn_iql_wqmix(ctx):
    for method in ("vdn", "iql", "wqmix"):
        done = custom(ctx, "good", method=method)
        if done.rc != 0:
            return done
    return done


# ---- missing optional packages -------------------------------------------------------------
@case("deps", keyword=("jax", "pip install"))
def jax_missing_for_smax(ctx):
    return ctx.blocked_xwq(["jax", "jaxmarl"], "train", "--method", "qmix", "--env", "smax",
                           "--env-id", "3m", sets=SMALL)


@case("deps", keyword=("smac", "pip install"))
def smac_missing_for_sc2(ctx):
    return ctx.blocked_xwq(["smac", "smacv2"], "train", "--method", "qmix", "--env", "sc2",
                           "--env-id", "3m", sets=SMALL)


@case("deps", keyword=("gfootball", "pip install"))
def gfootball_missing(ctx):
    return ctx.blocked_xwq(["gfootball"], "train", "--method", "qmix", "--env", "football",
                           "--env-id", "academy_3_vs_1_with_keeper", sets=SMALL)


@case("deps", keyword=("mpe2",))
def mpe2_missing_for_serial_mpe(ctx):
    return ctx.blocked_xwq(["mpe2"], "train", *MPE, sets=[*SMALL_MPE, "vectorize=serial"])


@case("deps", expect="either", keyword=("mpe2", "pip install"))
def mpe2_missing_native_mpe_still_runs(ctx):
    """The native MPE could run without mpe2 (a core dependency: refusing is fine too)."""
    return ctx.blocked_xwq(["mpe2"], "train", *MPE, sets=SMALL_MPE)


@case("deps", keyword=("matplotlib",))
def matplotlib_missing_for_plot(ctx):
    run = benchmarked(ctx)
    code = ("import sys\nsys.modules['matplotlib'] = None\nfrom xwq.cli import main\n"
            f"sys.exit(main(['plot', {str(run)!r}, '--out', 'cmp']))\n")
    return ctx.run([sys.executable, "-c", code])


@case("deps", keyword=("tensorboardX",))
def tensorboardx_missing(ctx):
    return ctx.blocked_xwq(["tensorboardX"], "train", *MATRIX, sets=SMALL)


@case("deps", keyword=("imageio",))
def imageio_missing_for_render(ctx):
    trained(ctx, MPE, sets=SMALL_MPE)
    return ctx.blocked_xwq(["imageio", "imageio.v3"], "test", *MPE, "--render", sets=SMALL_MPE)


# ---- sweeps --------------------------------------------------------------------------------
@case("sweep", keyword=("grid.yaml",), fast=True)
def sweep_grid_missing(ctx):
    return ctx.run([sys.executable, "-m", "xwq", "sweep", "grid.yaml"])


@case("sweep", keyword=("grid.yaml", "YAML"), fast=True)
def sweep_grid_yaml_error(ctx):
    ctx.write("grid.yaml", "methods: [qmix\n")
    return ctx.run([sys.executable, "-m", "xwq", "sweep", "grid.yaml"])


@case("sweep", keyword=("metods",), fast=True)
def sweep_grid_unknown_key(ctx):
    ctx.write("grid.yaml", "metods: [qmix]\nscenarios: [matrix_game/nonmonotonic]\nseeds: [1]\n")
    return ctx.run([sys.executable, "-m", "xwq", "sweep", "grid.yaml"])


@case("sweep", keyword=("seeds",), fast=True)
def sweep_grid_empty_seeds(ctx):
    ctx.write("grid.yaml", "methods: [qmix]\nscenarios: [matrix_game/nonmonotonic]\nseeds: []\n")
    return ctx.run([sys.executable, "-m", "xwq", "sweep", "grid.yaml"])


@case("sweep", keyword=("seeds",), fast=True)
def sweep_grid_seeds_not_ints(ctx):
    ctx.write("grid.yaml", "methods: [qmix]\nscenarios: [matrix_game/nonmonotonic]\n"
                           "seeds: [one, two]\n")
    return ctx.run([sys.executable, "-m", "xwq", "sweep", "grid.yaml"])


@case("sweep", keyword=("scenario",), fast=True)
def sweep_grid_bad_scenario(ctx):
    ctx.write("grid.yaml", "methods: [qmix]\nscenarios: [matrix_game]\nseeds: [1]\n")
    return ctx.run([sys.executable, "-m", "xwq", "sweep", "grid.yaml"])


@case("sweep", keyword=("learning_rat",), fast=True)
def sweep_grid_bad_search_key(ctx):
    ctx.write("grid.yaml", "methods: [qmix]\nscenarios: [matrix_game/nonmonotonic]\n"
                           "seeds: [1]\nsearch: {learning_rat: [0.1]}\n")
    return ctx.run([sys.executable, "-m", "xwq", "sweep", "grid.yaml"])


@case("sweep", keyword=("workers",), fast=True)
def sweep_workers_zero(ctx):
    ctx.write("grid.yaml", "methods: [qmix]\nscenarios: [matrix_game/nonmonotonic]\n"
                           "seeds: [1, 2]\n")
    return ctx.run([sys.executable, "-m", "xwq", "sweep", "grid.yaml", "--workers", "0"])


@case("sweep", expect="survive")
def sweep_small_grid(ctx):
    overrides = ", ".join(f"{pair.split('=')[0]}: {pair.split('=')[1]}"
                          for pair in [*SMALL, *ctx.dirs()])
    ctx.write("grid.yaml", "methods: [qmix, vdn]\nscenarios: [matrix_game/nonmonotonic]\n"
                           f"seeds: [1, 2]\noverrides: {{{overrides}}}\n")
    return ctx.run([sys.executable, "-m", "xwq", "sweep", "grid.yaml", "--workers", "2"])


# ---- the Python API ------------------------------------------------------------------------
def api(ctx, body: str) -> Done:
    dirs = {k: v for k, v in (pair.split("=", 1) for pair in ctx.dirs())}
    dirs["progress_bar"] = False
    small = dict(running_steps=64, parallels=8, batch_size=2, buffer_size=8, test_parallels=2,
                 test_episode=2, eval_interval=32, save_interval=32)
    return ctx.python(f"import xwq\nDIRS = {dirs!r}\nSMALL = {small!r}\n"
                      + textwrap.dedent(body))


def api_case(name: str, body: str, keyword=(), expect="error", allowed=(), **options):
    def run(ctx):
        return api(ctx, body)

    run.__name__ = name
    case("api", expect, keyword, allowed=allowed, **options)(run)


api_case("api_unknown_override", """
    xwq.get_runner("qmix", "matrix_game", "nonmonotonic", learning_rat=0.1)
    """, ("learning_rat",), fast=True)
api_case("api_method_none", """
    xwq.get_runner(None, "matrix_game", "nonmonotonic", **DIRS).run()
    """, ("method",), expect="either")
api_case("api_config_path_number", """
    xwq.get_runner("qmix", "matrix_game", "nonmonotonic", config_path=123)
    """, ("config_path",), fast=True)
api_case("api_seeds_empty", """
    xwq.get_runner("qmix", "matrix_game", "nonmonotonic", **DIRS, **SMALL).benchmark(seeds=[])
    """, ("seeds",))
api_case("api_seeds_repeated", """
    xwq.get_runner("qmix", "matrix_game", "nonmonotonic", **DIRS, **SMALL).benchmark(
        seeds=[1, 1])
    """, ("seeds",))
api_case("api_seeds_a_string", """
    xwq.get_runner("qmix", "matrix_game", "nonmonotonic", **DIRS, **SMALL).benchmark(seeds="12")
    """, ("seeds",))
api_case("api_seeds_not_numbers", """
    xwq.get_runner("qmix", "matrix_game", "nonmonotonic", **DIRS, **SMALL).benchmark(
        seeds=["a", "b"])
    """, ("seeds",))
api_case("api_seeds_fractional", """
    xwq.get_runner("qmix", "matrix_game", "nonmonotonic", **DIRS, **SMALL).benchmark(
        seeds=[1.5, 2])
    """, ("seeds",))
api_case("api_resume_number", """
    xwq.get_runner("qmix", "matrix_game", "nonmonotonic", **DIRS, **SMALL).run(resume=5)
    """, ("resume",))
api_case("api_workers_negative", """
    xwq.get_runner("qmix", "matrix_game", "nonmonotonic", **DIRS, **SMALL).benchmark(
        seeds=[1, 2], workers=-1)
    """, ("workers",))
api_case("api_backend_unknown", """
    xwq.get_runner("qmix", "matrix_game", "nonmonotonic", **DIRS, **SMALL).benchmark(
        seeds=[1, 2], backend="slurm")
    """, ("backend", "slurm"))
api_case("api_register_env_not_callable", """
    xwq.register_env("x", 42)
    """, ("factory",), fast=True)
api_case("api_seed_numpy_int", """
    import numpy as np
    xwq.get_runner("qmix", "matrix_game", "nonmonotonic", seed=np.int64(3), **DIRS,
                   **SMALL).run()
    """, ("seed",), expect="either")
api_case("api_env_kwargs_numpy_array", """
    import numpy as np
    payoff = np.array([[8, -12, -12], [-12, 0, 0], [-12, 0, 0]], float)
    xwq.get_runner("qmix", "matrix_game", "nonmonotonic", env_kwargs={"payoff": payoff},
                   **DIRS, **SMALL).run()
    """, ("env_kwargs",), expect="either")
api_case("api_run_twice", """
    runner = xwq.get_runner("qmix", "matrix_game", "nonmonotonic", **DIRS, **SMALL)
    first = runner.run()
    second = runner.run()
    assert first != second and first.is_file() and second.is_file(), (first, second)
    """, expect="survive")
api_case("api_test_with_resume", """
    xwq.get_runner("qmix", "matrix_game", "nonmonotonic", is_test=True, **DIRS,
                   **SMALL).run(resume="auto")
    """, ("resume",))
api_case("api_from_config_bad_key", """
    runner = xwq.get_runner("qmix", "matrix_game", "nonmonotonic", **DIRS, **SMALL)
    xwq.runners.Runner.from_config(runner.config, gama=0.9)
    """, ("gama",))
api_case("api_benchmark_backend_without_seeds", """
    xwq.get_runner("qmix", "matrix_game", "nonmonotonic", **DIRS, **SMALL).benchmark(
        backend="local")
    """, ("seeds",))
api_case("api_check_env_on_broken_env", """
    import battery_envs
    xwq.check_env(battery_envs.OldGymStep())
    """, ("step",))
api_case("api_overrides_dict_for_list", """
    xwq.get_runner("qmix", "matrix_game", "nonmonotonic", fc_hidden_sizes={"a": 1})
    """, ("fc_hidden_sizes",), fast=True)


# --- running and judging --------------------------------------------------------------------
@dataclass
class Outcome:
    name: str
    category: str
    expect: str
    outcome: str
    seconds: float
    detail: str = ""
    fast: bool = False
    extra: dict = field(default_factory=dict)


def judge(item: Case, ctx: Context, done: Done) -> tuple[str, str]:
    if done.rc is None:
        return "hang", f"no end after {ctx.timeout:.0f} s"
    if done.python:
        failed, line = _python_error(item, done)
    else:
        failed, line = _cli_error(item, done)
    if failed is None:  # finished without an error
        if item.expect in ("survive", "either"):
            outcome, detail = "survived", "finished"
        elif item.warn and _warned(item, done):
            outcome, detail = "clear", "finished with a warning naming it"
        else:
            outcome, detail = "silent", "finished without an error"
    elif failed == "clear":
        outcome = "clear" if item.expect in ("error", "either") else "raw"
        detail = line if outcome == "clear" else f"refused where it should work: {line}"
    else:
        outcome, detail = "raw", line
    if item.check is not None and outcome != "hang":
        try:
            problem = item.check(ctx, done)
        except Exception as error:  # noqa: BLE001 (a check that cannot run is a finding)
            problem = f"check failed: {type(error).__name__}: {error}"
        if problem:
            outcome = "lost" if problem.startswith("lost") else "raw"
            detail = f"{problem} | {detail}"
    return outcome, detail


def _cli_error(item: Case, done: Done) -> tuple[str | None, str]:
    """(None: finished | "clear" | "raw", the line that decided it)."""
    if done.rc == 0:
        return None, ""
    last = done.last_line
    if "Traceback" in done.err:
        exc = [line for line in done.err.splitlines() if line and not line.startswith(" ")]
        return "raw", f"traceback (status {done.rc}): {exc[-1] if exc else last}"[:300]
    expected = item.status if item.expect != "survive" else 2
    keywords_ok = all(k.lower() in last.lower() for k in item.keyword)
    if done.rc == expected and last.startswith("xwq") and keywords_ok:
        return "clear", last[:300]
    why = (f"status {done.rc}" if done.rc != expected else
           "no one-line message" if not last.startswith("xwq") else
           f"message lacks {[k for k in item.keyword if k.lower() not in last.lower()]}")
    return "raw", f"{why}: {last}"[:300]


def _python_error(item: Case, done: Done) -> tuple[str | None, str]:
    raised = done.raised
    if raised is None:
        return None, ""
    message = raised["message"]
    line = f"{raised['type']}: {message}"
    clear_type = raised["xwq"] or raised["type"] in item.allowed
    one_line = "\n" not in message.strip()
    keywords_ok = all(k.lower() in message.lower() for k in item.keyword)
    if clear_type and one_line and keywords_ok:
        return "clear", line[:300]
    why = ("not an XwqError" if not clear_type else "several lines" if not one_line else
           f"message lacks {[k for k in item.keyword if k.lower() not in message.lower()]}")
    return "raw", f"{why}: {line}"[:300]


def _warned(item: Case, done: Done) -> bool:
    lines = done.err.lower().splitlines()
    return any(all(k.lower() in line for k in item.keyword) for line in lines) \
        if item.keyword else any("warning" in line or "passing over" in line
                                 or "starting a new run" in line for line in lines)


def run_case(item: Case, scratch: Path) -> Outcome:
    folder = Path(tempfile.mkdtemp(prefix=f"{item.name}-", dir=scratch))
    ctx = Context(folder, item.timeout)
    start = time.perf_counter()
    try:
        done = item.body(ctx)
        outcome, detail = judge(item, ctx, done)
    except Skip as skip:
        outcome, detail = "skipped", str(skip)
    except subprocess.TimeoutExpired:
        outcome, detail = "hang", "a process of the case did not end"
    except Exception as error:  # noqa: BLE001 (the case's own set-up failed: report it)
        outcome, detail = "raw", f"case set-up failed: {type(error).__name__}: {error}"[:300]
    finally:
        ctx.cleanup()
    return Outcome(item.name, item.category, item.expect, outcome,
                   round(time.perf_counter() - start, 1), detail.replace("\n", " "), item.fast)


def select(only: str | None = None, text: str | None = None, fast: bool = False) -> list[Case]:
    chosen = CASES
    if only:
        categories = set(only.split(","))
        unknown = categories - {c.category for c in CASES}
        if unknown:
            raise SystemExit(f"--only: no category {sorted(unknown)}; categories: "
                             f"{sorted({c.category for c in CASES})}")
        chosen = [c for c in chosen if c.category in categories]
    if text:
        chosen = [c for c in chosen if any(part in c.name for part in text.split(","))]
    if fast:
        chosen = [c for c in chosen if c.fast]
    return chosen


def run_all(cases: list[Case], jobs: int = 2, progress: bool = True) -> list[Outcome]:
    scratch = Path(tempfile.mkdtemp(prefix="xwq-bad-inputs-"))
    results: list[Outcome] = []
    try:
        with ThreadPoolExecutor(max_workers=jobs) as pool:
            for result in pool.map(lambda c: run_case(c, scratch), cases):
                results.append(result)
                if progress:
                    print(f"{result.outcome:>8}  {result.seconds:6.1f} s  {result.category:8} "
                          f"{result.name}  {result.detail[:110]}", flush=True)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return results


def summarise(results: list[Outcome]) -> dict:
    counts = {name: sum(r.outcome == name for r in results) for name in OUTCOMES}
    judged = len(results) - counts["skipped"]
    good = counts["clear"] + counts["survived"]
    return {"cases": len(results), "judged": judged, "counts": counts,
            "clear_or_survived_percent": round(100 * good / judged, 1) if judged else 0.0}


def markdown(results: list[Outcome], summary: dict) -> str:
    counts = summary["counts"]
    lines = ["# Bad inputs and faults: the battery", "",
             "`python benchmarks/bad_inputs.py` (each case in its own folder and process; "
             "judged mechanically, see the script's docstring).", "",
             f"**{summary['clear_or_survived_percent']} % clear or survived** of "
             f"{summary['judged']} judged cases ({summary['cases']} in all): "
             + ", ".join(f"{counts[k]} {k}" for k in OUTCOMES), "",
             "| case | category | expected | outcome | s | detail |",
             "|---|---|---|---|---:|---|"]
    for r in results:
        detail = r.detail.replace("|", "\\|")[:160]
        lines.append(f"| {r.name} | {r.category} | {r.expect} | {r.outcome} | {r.seconds} | "
                     f"{detail} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", help="categories, comma-separated: "
                                       + ", ".join(sorted({c.category for c in CASES})))
    parser.add_argument("--case", help="only cases whose name contains this text (or one of "
                                       "several, comma-separated)")
    parser.add_argument("--fast", action="store_true", help="only the cheap subset (CI)")
    parser.add_argument("--jobs", type=int, default=2, help="cases run at once")
    parser.add_argument("--list", action="store_true", help="list the cases and stop")
    parser.add_argument("--write", action="store_true",
                        help="write benchmarks/results/bad_inputs.{json,md} even when filtered")
    parser.add_argument("--update", action="store_true",
                        help="merge these results into benchmarks/results/bad_inputs.json (the "
                             "cases run now replace their earlier results) and rewrite both")
    args = parser.parse_args(argv)
    cases = select(args.only, args.case, args.fast)
    if args.list:
        for c in cases:
            print(f"{c.category:8} {c.expect:8} {'fast' if c.fast else '    '} {c.name}")
        print(f"{len(cases)} cases")
        return 0
    start = time.perf_counter()
    results = run_all(cases, args.jobs)
    wall = round(time.perf_counter() - start, 1)
    RESULTS.mkdir(exist_ok=True)
    # held until the files are written
    lock = open(Path(tempfile.gettempdir()) / "xwq_bad_inputs.lock", "w")  # noqa: SIM115
    fcntl.flock(lock, fcntl.LOCK_EX)  # several --update runs at once merge one after another
    if args.update and (RESULTS / "bad_inputs.json").is_file():
        earlier = json.loads((RESULTS / "bad_inputs.json").read_text())
        merged = {r["name"]: Outcome(**r) for r in earlier["results"]}
        merged.update({r.name: r for r in results})
        order = {c.name: i for i, c in enumerate(CASES)}
        results = sorted((r for r in merged.values() if r.name in order),
                         key=lambda r: order[r.name])
        wall += earlier.get("wall_seconds", 0.0)
    summary = summarise(results)
    summary["wall_seconds"] = wall
    summary["jobs"] = args.jobs
    print()
    print(json.dumps(summary))
    failures = [r for r in results if r.outcome not in GOOD and r.outcome != "skipped"]
    for r in failures:
        print(f"  {r.outcome:>6} {r.category}/{r.name}: {r.detail[:200]}")
    if not (args.only or args.case or args.fast) or args.write or args.update:
        RESULTS.mkdir(exist_ok=True)
        (RESULTS / "bad_inputs.json").write_text(json.dumps(
            {**summary, "results": [vars(r) for r in results]}, indent=1) + "\n")
        (RESULTS / "bad_inputs.md").write_text(markdown(results, summary))
    lock.close()
    return 0 if not failures else 1


if __name__ == "__main__":
    sys.exit(main())
