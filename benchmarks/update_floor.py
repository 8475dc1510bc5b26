"""How far one update is from what this CPU can do: the matrix-multiply floor of an update.

For each method on MPE simple_spread_v3 (packaged networks; 32 episodes × 25 steps, 3 agents,
GRU 64; WQMIX adds Q̂*'s own GRU and its 3 × 256 feed-forward mixer) this:

1. records every matrix multiply one update performs — forward, targets and backward — with
   its shapes and strides (a TorchDispatchMode sees what autograd runs too);
2. times each one alone, on inputs of the same shapes and layout, one thread: their sum is the
   **GEMM floor**, the update's time if everything but its matrix multiplies were free;
3. counts the update's multiply-add FLOPs and divides by the best rate this machine's BLAS
   reaches on a large square product: the **FLOP floor**, the time at peak GEMM speed;
4. times the real update (median) and prints it beside both floors and the issue's target,
   with the share of the update the GEMM floor accounts for, the number of other aten calls,
   and of those that compute (elementwise, reductions, copies; views left out): what is left
   when the GEMMs are taken away, and the time per such call that remains.

A target below the GEMM floor cannot be met by any rewrite of the loop in fp32 on this machine;
only less arithmetic (different networks), lower precision or other hardware would.

    python benchmarks/update_floor.py                 # qmix and wqmix
    python benchmarks/update_floor.py --methods iql vdn qmix cw_qmix ow_qmix wqmix
"""

from __future__ import annotations

import argparse
import tempfile
from collections import Counter
from pathlib import Path

import torch
from throughput import first_batch, make_runner, median_time  # sibling script in benchmarks/
from torch.utils._python_dispatch import TorchDispatchMode

from xwq.runners.results import environment_report, write_json

RESULTS = Path(__file__).resolve().parent / "results" / "update_floor.json"
TARGET_MS = {"qmix": 12.0, "wqmix": 25.0, "cw_qmix": 25.0, "ow_qmix": 25.0}
_aten = torch.ops.aten
GEMMS = {_aten.mm.default, _aten.addmm.default, _aten.bmm.default, _aten.baddbmm.default}


def _layout(t: torch.Tensor) -> tuple[tuple[int, ...], tuple[int, ...]]:
    return tuple(t.shape), tuple(t.stride())


class GemmRecorder(TorchDispatchMode):
    """Counts every mm/addmm/bmm/baddbmm call by (op, operand layouts, scalar arguments), and
    the other aten calls: all of them, and those that compute (not views such as t, select,
    view, expand or detach, which only make a new tensor header)."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: Counter = Counter()
        self.other_ops = 0
        self.compute_ops = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.other_ops += func not in GEMMS
        self.compute_ops += func not in GEMMS and not func.is_view
        if func in GEMMS:
            operands = tuple(_layout(a) if isinstance(a, torch.Tensor) else a for a in args)
            self.calls[(func, operands, tuple(sorted((kwargs or {}).items())))] += 1
        return func(*args, **(kwargs or {}))


def gemm_flops(func, operands) -> int:
    """2·m·k·n (times the batch for bmm) of one recorded call; bias additions ignored."""
    shapes = [shape for shape, _ in (o for o in operands if isinstance(o, tuple))]
    a, b = shapes[-2], shapes[-1]  # addmm/baddbmm: (bias, a, b); mm/bmm: (a, b)
    batch = a[0] if len(a) == 3 else 1
    return 2 * batch * a[-2] * a[-1] * b[-1]


def _operand(shape: tuple[int, ...], stride: tuple[int, ...], gen: torch.Generator):
    """Random tensor with this exact layout (stride 0 included: a broadcast bias)."""
    storage = 1 + sum((size - 1) * step for size, step in zip(shape, stride))
    return torch.randn(storage, generator=gen).as_strided(shape, stride)


def replay_seconds(func, operands, kwargs, repeats: int) -> float:
    """Median time of one call with fresh operands of the recorded shapes and strides."""
    gen = torch.Generator().manual_seed(0)
    args = [_operand(*o, gen) if isinstance(o, tuple) else o for o in operands]
    return median_time(lambda: func(*args, **dict(kwargs)), repeats, warmup=1)


def peak_gflops(size: int = 1024, repeats: int = 5) -> float:
    a, b = torch.randn(size, size), torch.randn(size, size)
    return 2 * size**3 / median_time(lambda: a @ b, repeats, warmup=1) / 1e9


def measure(method: str, repeats: int, workdir: str, peak: float) -> dict:
    runner = make_runner(method, "native", workdir)
    batch, learner = first_batch(runner), runner.agents.learner
    update_s = median_time(lambda: learner.update(batch), repeats, warmup=1)
    recorder = GemmRecorder()
    with recorder:
        learner.update(batch)
    runner.finish()
    flops, floor_s = 0, 0.0
    for (func, operands, kwargs), count in recorder.calls.items():
        flops += count * gemm_flops(func, operands)
        floor_s += count * replay_seconds(func, operands, kwargs, repeats)
    return {"method": method, "update_ms": 1000 * update_s, "gemm_floor_ms": 1000 * floor_s,
            "flop_floor_ms": 1000 * flops / (peak * 1e9), "gflop_per_update": flops / 1e9,
            "gemm_calls": sum(recorder.calls.values()), "other_ops": recorder.other_ops,
            "compute_ops": recorder.compute_ops,
            "non_gemm_ms_per_compute_op": 1000 * (update_s - floor_s) / recorder.compute_ops,
            "gemm_share": floor_s / update_s, "target_ms": TARGET_MS.get(method)}


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--methods", nargs="+", default=["qmix", "wqmix"])
    parser.add_argument("--repeats", type=int, default=30, help="timings per median")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    peak = peak_gflops()
    print(f"peak fp32 GEMM (1024^3, one thread): {peak:.1f} GFLOP/s")
    print(f"{'method':8s} {'update':>9s} {'GEMM floor':>11s} {'FLOP floor':>11s} "
          f"{'GFLOP':>6s} {'GEMMs':>6s} {'others':>6s} {'compute':>7s} {'share':>6s} "
          f"{'target':>7s}")
    rows = []
    with tempfile.TemporaryDirectory() as workdir:
        for method in args.methods:
            row = measure(method, args.repeats, workdir, peak)
            rows.append(row)
            target = "-" if row["target_ms"] is None else f"{row['target_ms']:.0f} ms"
            print(f"{method:8s} {row['update_ms']:6.1f} ms {row['gemm_floor_ms']:8.1f} ms "
                  f"{row['flop_floor_ms']:8.1f} ms {row['gflop_per_update']:6.2f} "
                  f"{row['gemm_calls']:6d} {row['other_ops']:6d} {row['compute_ops']:7d} "
                  f"{row['gemm_share']:6.2f} "
                  f"{target:>7s}", flush=True)
    report = {"rows": rows, "peak_gemm_gflops": peak, "repeats": args.repeats,
              "cpu_capability": torch.backends.cpu.get_cpu_capability(), **environment_report()}
    print(f"wrote {write_json(report, args.out)}")
    return rows


if __name__ == "__main__":
    main()
