"""A run's scalar log: TensorBoard events (tensorboardX) plus CSV and JSON lines per stream."""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path

from xwq.errors import CheckpointError

TRAIN_STREAM = "train"  # training scalars, every log_interval env steps
METRICS_STREAM = "metrics"  # one row per greedy evaluation of benchmark()


def read_jsonl(path: str | os.PathLike) -> list[dict]:
    """The rows of a ``<stream>.jsonl`` file (an absent file has none); a damaged line raises
    CheckpointError naming the file and the line."""
    path = Path(path)
    if not path.is_file():
        return []
    rows = []
    for number, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as error:
            raise CheckpointError(f"{path}, line {number}: not a JSON row ({error.msg}): "
                                  f"{line[:60]!r}; repair or delete that line") from None
        if not isinstance(row, dict):
            raise CheckpointError(f"{path}, line {number}: expected a JSON object, got "
                                  f"{type(row).__name__}; repair or delete that line")
        rows.append(row)
    return rows


class RunLogger:
    """Writes ``{tag: value}`` rows at an env step.

    Every row goes to TensorBoard (one event file for the run) and to ``<stream>.csv`` and
    ``<stream>.jsonl`` under ``log_dir`` (streams: e.g. ``train`` and ``metrics``). A CSV's
    columns are fixed by its first row; later extra keys still reach the JSON lines.
    """

    def __init__(self, log_dir: str | os.PathLike, tensorboard: bool = True) -> None:
        self.log_dir = Path(log_dir)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.writer = None
        if tensorboard:
            from tensorboardX import SummaryWriter

            self.writer = SummaryWriter(str(self.log_dir))
        self._columns: dict[str, list[str]] = {}

    def _csv_columns(self, stream: str, row: dict) -> tuple[list[str], bool]:
        if stream not in self._columns:
            path = self.log_dir / f"{stream}.csv"
            if path.exists() and path.stat().st_size:  # resuming: same columns, no new header
                with open(path) as handle:
                    self._columns[stream] = handle.readline().strip().split(",")
            else:
                self._columns[stream] = list(row)
                return self._columns[stream], True
        return self._columns[stream], False

    def log(self, step: int, values: dict[str, float], stream: str = "train") -> None:
        row = {"env_step": int(step), **{k: float(v) for k, v in values.items()}}
        if self.writer is not None:
            for tag, value in values.items():
                self.writer.add_scalar(f"{stream}/{tag}", value, step)
        with open(self.log_dir / f"{stream}.jsonl", "a") as handle:
            handle.write(json.dumps(row) + "\n")
        columns, header = self._csv_columns(stream, row)
        with open(self.log_dir / f"{stream}.csv", "a", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=columns, extrasaction="ignore")
            if header:
                writer.writeheader()
            writer.writerow(row)

    def flush(self) -> None:
        if self.writer is not None:
            self.writer.flush()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None
