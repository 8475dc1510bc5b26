"""Training checkpoint files: write, prune, list, load, and compare their configs.

A checkpoint ``<run_dir>/checkpoints/ckpt_<env_steps>.pth`` is a plain dict of tensors and
Python scalars, written atomically and read with ``torch.load(weights_only=True)`` (so loading
one never runs code from the file):

``{"format": 1, "kind": "run"|"benchmark", "agents": MARLAgents.state_dict(...),
"runner": {"curve", "best", "best_step", "elapsed", "train_seconds", "log_rows",
"resumed_from"}, "versions": {...}}``

The envs need no saving: a checkpoint is written right after the training episodes in flight
were ended (``MARLAgents.truncate_episodes``), and every env's next episode is reset with a seed
derived from the run seed, the env's index and its episode count (saved with the counters);
evaluation episodes use fixed seeds.
The logs need one thing: rows written after the checkpoint by a run that was then killed must go,
so the checkpoint records how many rows each ``<stream>.jsonl`` had (``log_rows``; the run folder,
:mod:`xwq.runners.run_folder`, cuts them back on resume).
"""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path
from typing import Any

from xwq.common.checkpoint import atomic_save, safe_load
from xwq.errors import CheckpointError, ConfigError

logger = logging.getLogger(__name__)

CHECKPOINT_FORMAT = 1
CHECKPOINT_DIR = "checkpoints"
_NAME = re.compile(r"^ckpt_(\d+)\.pth$")

#: config keys that may differ between a checkpoint and the run resuming it: where files go, how
#: long it runs, how it reports and evaluates, and how fast it computes (not what it learns).
RESUME_FREE_KEYS = frozenset({
    "running_steps", "log_dir", "model_dir", "results_dir", "save_interval", "keep_checkpoints",
    "save_buffer", "progress_bar", "render", "render_fps", "model_path", "device", "threads",
    "log_interval", "eval_interval", "test_episode", "test_parallels",
    "buffer_memory_budget_mb", "ray_num_cpus", "ray_num_gpus",
})


def checkpoint_path(run_dir: str | os.PathLike, env_steps: int) -> Path:
    return Path(run_dir) / CHECKPOINT_DIR / f"ckpt_{int(env_steps)}.pth"


def list_checkpoints(run_dir: str | os.PathLike) -> list[Path]:
    """The run's checkpoints, oldest (fewest env steps) first."""
    folder = Path(run_dir) / CHECKPOINT_DIR
    if not folder.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in folder.iterdir() if (m := _NAME.match(p.name))]
    return [path for _, path in sorted(found)]


def save_checkpoint(payload: dict, run_dir: str | os.PathLike, env_steps: int,
                    keep: int) -> Path:
    """Write ``ckpt_<env_steps>.pth`` atomically, then delete all but the newest ``keep``."""
    path = atomic_save({"format": CHECKPOINT_FORMAT, **payload},
                       checkpoint_path(run_dir, env_steps))
    for old in list_checkpoints(run_dir)[:-keep]:
        old.unlink(missing_ok=True)
    return path


def load_checkpoint(path: str | os.PathLike, device: Any = "cpu") -> dict:
    """Read a checkpoint with ``weights_only=True``; a file that is damaged, holds code or is
    not a training checkpoint raises CheckpointError."""
    payload = safe_load(path, device)
    found = payload.get("format") if isinstance(payload, dict) else None
    if isinstance(found, int) and found != CHECKPOINT_FORMAT and "agents" in payload:
        raise CheckpointError(f"{path} is a checkpoint in format {found}; this xwq reads "
                              f"format {CHECKPOINT_FORMAT}: resume it with the xwq version that "
                              "wrote it")
    if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(f"{path} is not an xwq training checkpoint (a saved model? resume "
                              "needs <run_dir>/checkpoints/ckpt_<env_steps>.pth)")
    return payload


#: config keys that decide whether a saved policy fits (its networks' shapes and kinds; the
#: env's kwargs can change its agents, observations and actions)
MODEL_KEYS = ("method", "env_name", "env_id", "env_kwargs", "agent", "policy", "mixer",
              "representation", "fc_hidden_sizes", "recurrent_hidden_size", "obs_last_action",
              "obs_agent_id", "hidden_dim_mixing_net", "hidden_dim_hyper_net", "hypernet_layers",
              "hidden_dim_ff_mix_net", "hidden_dim_star_agent")


def read_model(path: str | os.PathLike, config: Any, device: Any = "cpu") -> dict:
    """The policy parameters in a saved model (``save_model``) or a training checkpoint
    (``checkpoints/ckpt_<env_steps>.pth``) and the config they were trained with:
    ``{"policy": state_dict, "config": dict}``. A file that is neither raises CheckpointError."""
    payload = safe_load(path, device)
    state = payload.get("agents") if isinstance(payload, dict) and "format" in payload \
        else payload
    if not (isinstance(state, dict) and isinstance(state.get("policy"), dict)
            and isinstance(state.get("config"), dict)):
        raise CheckpointError(f"{path} is not an xwq model or checkpoint (no policy parameters "
                              "and config in it)")
    return {"policy": state["policy"], "config": state["config"]}


def load_policy(policy: Any, saved: dict, config: Any, path: str | os.PathLike) -> None:
    """Load ``saved`` (from :func:`read_model`) into ``policy``; a model that does not fit is
    explained by what it was trained with, not by torch's list of missing keys."""
    trained = saved["config"]
    wanted = config.to_dict()
    differences = [f"{key} {trained.get(key)!r} (here {wanted[key]!r})" for key in MODEL_KEYS
                   if key in trained and trained.get(key) != wanted[key]]
    try:
        policy.load_state_dict(saved["policy"])
    except RuntimeError as error:
        detail = "; ".join(differences) if differences else str(error).splitlines()[0]
        raise CheckpointError(
            f"{path} does not fit this run: the model was trained with method "
            f"{trained.get('method')!r} on env {trained.get('env_name')!r}/"
            f"{trained.get('env_id')!r} ({detail}). Test it with the method, env and env_id "
            "it was trained with (or that run's config.yaml: --config)") from None
    if differences:
        logger.warning("%s was trained with %s; loaded into this run all the same", path,
                       "; ".join(differences))


def config_differences(saved: dict, config: Any) -> list[str]:
    """``"key: saved -> now"`` for every key (outside RESUME_FREE_KEYS) whose value changed."""
    current = config.to_dict()
    return [f"{key}: {saved[key]!r} -> {current[key]!r}"
            for key in sorted(set(saved) & set(current))
            if key not in RESUME_FREE_KEYS and saved[key] != current[key]]


def check_resumable(saved: dict, config: Any, path: str | os.PathLike) -> None:
    differences = config_differences(saved, config)
    if differences:
        raise ConfigError(
            f"cannot resume {path}: it was made with a different config "
            f"({'; '.join(differences)}); resume with the run's own config.yaml "
            "(xwq train --resume PATH reads it) or start a new run")
