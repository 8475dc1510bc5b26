"""Sweeps: a grid of runs (method, env, env_id, seed, config overrides), executed by a backend and
aggregated across seeds.

The contract every backend relies on, and the seam a distributed backend plugs into:

- a run is described by a :class:`RunSpec` — plain, picklable data (names, a seed, a dict of
  config overrides), resolved to a config only where it runs;
- :func:`execute` runs one spec in whatever process it is called in (process-wide settings,
  envs, agents, training, results folder) and returns a :class:`RunResult`: the run's folder and
  its small summary. Every random source is seeded from the spec, so where a run executes never
  changes its numbers on CPU;
- a backend (:class:`Backend`) maps ``execute`` over specs and returns the results in the specs'
  order, raising the first failure. :class:`SerialBackend` runs them one after another here;
  :class:`xwq.runners.process_backend.ProcessBackend` runs up to ``workers`` at once in local
  processes.

:class:`Sweep` puts them together: ``Sweep(specs, backend).run()`` executes every spec, then
writes one aggregate folder per group of runs that differ only in their seed.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import logging
import numbers
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from xwq.common.config import Config, get_configs
from xwq.common.process import default_logging
from xwq.errors import UsageError
from xwq.runners.experiment import Experiment
from xwq.runners.results import aggregate_runs
from xwq.runners.run_folder import new_run_dir, read_summary

logger = logging.getLogger(__name__)

KINDS = ("benchmark", "train")


@dataclass(frozen=True)
class RunSpec:
    """One run, as plain data that crosses process and machine boundaries.

    Attributes:
        method, env, env_id: select the packaged configs (as ``get_runner``'s arguments).
        seed: the run's seed.
        overrides: config keys applied last (validated like ``get_runner``'s keywords).
        config_path: an optional user YAML file, read where the run executes.
        kind: ``"benchmark"`` (periodic greedy evaluation, results folder) or ``"train"``.
        resume: None (a new run) or ``"auto"`` (continue this spec's newest unfinished run;
            a finished one is reported as it is).
    """

    method: str
    env: str
    env_id: str
    seed: int
    overrides: Mapping[str, Any] = field(default_factory=dict)
    config_path: str | None = None
    kind: str = "benchmark"
    resume: str | None = None

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise UsageError(f"RunSpec kind must be one of {KINDS}, got {self.kind!r}")
        if self.resume not in (None, "auto"):
            raise UsageError(f"RunSpec resume must be None or 'auto', got {self.resume!r} (a "
                             "checkpoint path resumes one run: get_runner(...).run(resume=PATH))")
        if "seed" in self.overrides:
            raise UsageError("give the seed as RunSpec(seed=...), not in overrides")

    @classmethod
    def from_config(cls, config: Config, seed: int | None = None, **changes: Any) -> RunSpec:
        """The spec of a resolved config (every key an override), with another ``seed``."""
        values = config.to_dict()
        values.pop("seed")
        return cls(config.method, config.env_name, config.env_id,
                   config.seed if seed is None else int(seed), values, **changes)

    def resolve(self) -> Config:
        """The validated config of this run."""
        return get_configs(self.config_path, method=self.method, env=self.env,
                           env_id=self.env_id, overrides={**self.overrides, "seed": self.seed})

    def with_overrides(self, **overrides: Any) -> RunSpec:
        return dataclasses.replace(self, overrides={**self.overrides, **overrides})

    @property
    def group(self) -> str:
        """What the runs aggregated together share: everything but the seed."""
        extra = json.dumps(dict(self.overrides), sort_keys=True, default=str)
        return f"{self.method}|{self.env}|{self.env_id}|{self.config_path}|{self.kind}|{extra}"

    def __str__(self) -> str:
        return f"{self.method} {self.env}/{self.env_id} seed {self.seed}"


@dataclass(frozen=True)
class RunResult:
    """A finished run: its spec, its folder and its summary (``summary.json``)."""

    spec: RunSpec
    run_dir: str
    summary: dict


def execute(spec: RunSpec) -> RunResult:
    """Run one spec here, in this process, and return its result. Backends call this."""
    default_logging()  # a spawned or remote worker starts with no logging set up
    return run_experiment(spec, Experiment.build(spec.resolve()))


def run_experiment(spec: RunSpec, experiment: Experiment) -> RunResult:
    """Run ``spec``'s benchmark or training on ``experiment``, built for it, and return its
    result (:func:`execute`; a seed group runs its members' with it)."""
    if spec.kind == "benchmark":
        summary = experiment.benchmark(resume=spec.resume)
    else:
        experiment.train(resume=spec.resume)  # a finished run found by resume="auto" too
        summary = read_summary(experiment.run_dir)
    return RunResult(spec, summary["run_dir"], summary)


class Backend(Protocol):
    """Runs specs; returns their results in the order of ``specs`` and raises the first
    failure (after stopping what still runs)."""

    def run(self, specs: Sequence[RunSpec], progress: bool = True) -> list[RunResult]: ...


class SerialBackend:
    """One run after another, in this process."""

    def run(self, specs: Sequence[RunSpec], progress: bool = True) -> list[RunResult]:
        results = []
        for index, spec in enumerate(specs, 1):
            logger.info("%s %s (%d of %d)", spec.kind, spec, index, len(specs))
            results.append(execute(spec))
        return results


def grid(methods: Iterable[str], scenarios: Iterable[tuple[str, str]], seeds: Iterable[int],
         overrides: Mapping[str, Any] | None = None, search: Mapping[str, Iterable[Any]] | None
         = None, **spec_fields: Any) -> list[RunSpec]:
    """Every combination of ``methods`` × ``scenarios`` (``(env, env_id)`` pairs) × ``search``
    values (``{key: [value, ...]}``) × ``seeds``, with ``overrides`` on all of them."""
    search = dict(search or {})
    keys = list(search)
    specs = []
    for method, (env, env_id), values in itertools.product(
            list(methods), list(scenarios), itertools.product(*(list(search[k]) for k in keys))):
        for seed in seeds:
            specs.append(RunSpec(method, env, env_id, int(seed),
                                 {**(overrides or {}), **dict(zip(keys, values))},
                                 **spec_fields))
    return specs


class Sweep:
    """Execute specs with a backend and aggregate each group of seeds.

    >>> specs = grid(["qmix", "cw_qmix"], [("matrix_game", "nonmonotonic")], seeds=[1, 2],
    ...              overrides={"running_steps": 2000})
    >>> result = Sweep(specs, backend=SerialBackend()).run()       # doctest: +SKIP
    >>> result["aggregates"]["qmix matrix_game/nonmonotonic"]["dir"]  # doctest: +SKIP
    """

    def __init__(self, specs: Sequence[RunSpec], backend: Backend | None = None,
                 progress: bool = True) -> None:
        specs = list(specs)
        if not specs:
            raise UsageError("a sweep needs at least one run")
        seen: set[tuple[str, int]] = set()
        for spec in specs:
            if (spec.group, spec.seed) in seen:
                raise UsageError(f"{spec} appears twice in the sweep; seeds must be distinct")
            seen.add((spec.group, spec.seed))
        self.specs = specs
        self.backend = backend or SerialBackend()
        self.progress = progress

    def run(self) -> dict[str, Any]:
        """``{"runs": [RunResult, ...], "aggregates": {label: aggregate}}``; a group of one
        run gets no aggregate."""
        for spec in self.specs:  # every config error before the first run starts
            spec.resolve()
        results = self.backend.run(self.specs, progress=self.progress)
        return {"runs": results, "aggregates": aggregate_results(results)}


def aggregate_results(results: Sequence[RunResult]) -> dict[str, dict]:
    """``{label: aggregate}`` for each group of two or more runs that differ only in their
    seed; the label is ``"<method> <env>/<env_id>"``, followed by the overrides that tell the
    groups of a searched grid apart (``"qmix mpe/simple_spread_v3 learning_rate=0.001"``)."""
    groups: dict[str, list[RunResult]] = {}
    for result in results:
        groups.setdefault(result.spec.group, []).append(result)
    firsts = [members[0].spec for members in groups.values()]
    varying = sorted({key for spec in firsts for key in spec.overrides
                      if len({json.dumps(other.overrides.get(key), sort_keys=True, default=str)
                              for other in firsts}) > 1})
    aggregates = {}
    for members in groups.values():
        if len(members) > 1:
            label, aggregate = aggregate_group(members)
            spec = members[0].spec
            extra = " ".join(f"{key}={spec.overrides.get(key)}" for key in varying)
            aggregates[f"{label} {extra}" if extra else label] = aggregate
    return aggregates


def aggregate_group(results: Sequence[RunResult]) -> tuple[str, dict]:
    """Write ``aggregate_<timestamp>/`` beside the runs of one group (seeds of one config)."""
    config = results[0].spec.resolve()
    root = config.results_dir if results[0].spec.kind == "benchmark" else config.log_dir
    out_dir = new_run_dir(root, config, prefix="aggregate")
    label = f"{config.method} {config.env_name}/{config.env_id}"
    return label, aggregate_runs([result.run_dir for result in results], out_dir)


def check_seeds(seeds: Any) -> list[int]:
    """``seeds`` as a non-empty list of distinct non-negative ints (a string, a fraction or a
    negative number is an error, not converted)."""
    if isinstance(seeds, str | bytes) or not isinstance(seeds, Iterable):
        raise UsageError(f"seeds must be a list of integers, e.g. [1, 2, 3], got {seeds!r}")
    seeds = list(seeds)
    wrong = [seed for seed in seeds if isinstance(seed, bool)
             or not isinstance(seed, numbers.Integral) or seed < 0]
    if wrong:
        raise UsageError(f"seeds must be non-negative integers, got {wrong[0]!r} in {seeds}")
    seeds = [int(seed) for seed in seeds]
    if not seeds or len(set(seeds)) != len(seeds):
        raise UsageError(f"seeds must be distinct and not empty, got {seeds}")
    return seeds


__all__ = ["Backend", "RunResult", "RunSpec", "SerialBackend", "Sweep", "aggregate_results",
           "execute", "grid", "check_seeds", "run_experiment"]

