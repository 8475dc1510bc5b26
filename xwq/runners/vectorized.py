"""Several seeds in one process as one batch: the vectorised-seeds backend.

``runner.benchmark(seeds=[...], vectorize_seeds=S)``, ``xwq benchmark|sweep --vectorize-seeds
S`` and ``Sweep(specs, VectorizedBackend(S))`` run the seeds of each group of specs (specs that
differ only in their seed) S at a time as a :class:`~xwq.agents.seed_group.SeedGroup`: one
process, one :class:`~xwq.runners.experiment.Experiment` per seed — its own envs, agents, run
folder, evaluations, checkpoints and summary, exactly those of the seed run alone — while the
seeds' networks act and learn as stacked weights (:mod:`xwq.agents.seed_group`). Each seed's
training loop runs in a thread of its own, all in step; the batched steps run once all are in.

Resuming (``resume="auto"``) resumes each seed from its own newest checkpoint, as a run of that
seed alone does; a finished seed reports its summary and leaves the group. The aggregate across
seeds is the :class:`~xwq.runners.sweep.Sweep`'s, as for any backend.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Sequence

from xwq.agents.seed_group import SeedGroup
from xwq.common.process import default_logging
from xwq.errors import UsageError
from xwq.runners.experiment import Experiment
from xwq.runners.sweep import RunResult, RunSpec, execute, run_experiment

logger = logging.getLogger(__name__)


def check_vectorize_seeds(vectorize_seeds: object) -> int:
    """``vectorize_seeds`` as an int ≥ 1 (UsageError otherwise)."""
    if isinstance(vectorize_seeds, bool) or not isinstance(vectorize_seeds, int) \
            or vectorize_seeds < 1:
        raise UsageError(f"vectorize_seeds must be an integer of at least 1 (seeds trained "
                         f"together in one process), got {vectorize_seeds!r}")
    return vectorize_seeds


def execute_group(specs: Sequence[RunSpec]) -> list[RunResult]:
    """Run ``specs`` — one config but for the seed — as one seed group in this process; their
    results in order (the first failure raised once every seed has stopped)."""
    default_logging()
    groups = {spec.group for spec in specs}
    if len(groups) != 1:
        raise UsageError("a seed group runs specs that differ only in their seed; got "
                         f"{len(groups)} different configurations")
    experiments: list[Experiment] = []
    try:
        for spec in specs:
            experiments.append(Experiment.build(spec.resolve()))
        group = SeedGroup([experiment.agents for experiment in experiments])
    except BaseException:
        for experiment in experiments:
            experiment.close()
        raise
    logger.info("seed group: %s, seeds %s in one process", specs[0].kind,
                [spec.seed for spec in specs])
    return group.run([functools.partial(run_experiment, spec, experiment)
                      for spec, experiment in zip(specs, experiments)])


class VectorizedBackend:
    """Runs each group of specs that differ only in their seed ``vectorize_seeds`` seeds at a
    time, each chunk as one seed group in this process (:func:`execute_group`; a chunk of one
    seed as a plain run); results in the specs' order."""

    def __init__(self, vectorize_seeds: int) -> None:
        self.vectorize_seeds = check_vectorize_seeds(vectorize_seeds)

    def chunks(self, specs: Sequence[RunSpec]) -> list[list[int]]:
        """Positions of the specs run together: per group of seeds (in order of first
        appearance), consecutive chunks of up to ``vectorize_seeds``."""
        groups: dict[str, list[int]] = {}
        for index, spec in enumerate(specs):
            groups.setdefault(f"{spec.group}|{spec.resume}", []).append(index)
        size = self.vectorize_seeds
        return [members[start:start + size] for members in groups.values()
                for start in range(0, len(members), size)]

    def run(self, specs: Sequence[RunSpec], progress: bool = True) -> list[RunResult]:
        results: list[RunResult | None] = [None] * len(specs)
        chunks = self.chunks(specs)
        for number, chunk in enumerate(chunks, 1):
            logger.info("seed group %d of %d: %s seeds %s", number, len(chunks), specs[chunk[0]],
                        [specs[i].seed for i in chunk])
            members = [specs[i] for i in chunk]
            # one seed alone runs as a plain run: the same results, without the stacked path's
            # cost (it pays off from two seeds on; benchmarks/SPEED.md)
            outcome = [execute(members[0])] if len(members) == 1 else execute_group(members)
            for index, result in zip(chunk, outcome):
                results[index] = result
        return results  # type: ignore[return-value]
