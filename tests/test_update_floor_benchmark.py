"""benchmarks/update_floor.py: its GEMM recorder sees forward and backward multiplies and counts
their FLOPs exactly, and the script reports every figure (no timing assertions)."""

import json

import torch
from torch import nn


def test_recorder_counts_forward_and_backward_gemm_flops(benchmark_script):
    floor = benchmark_script("update_floor")
    torch.manual_seed(0)
    layer, x = nn.Linear(8, 5), torch.randn(7, 8, requires_grad=True)
    rnn = nn.GRU(5, 6, batch_first=True)
    recorder = floor.GemmRecorder()
    with recorder:
        out, _ = rnn(layer(x).unsqueeze(0))
        out.sum().backward()
    flops = sum(n * floor.gemm_flops(f, ops) for (f, ops, _), n in recorder.calls.items())
    # Linear: forward x·Wᵀ, backward grad_x and grad_W: 3 × 2·7·8·5.
    # GRU over 7 steps, batch 1: input and hidden projections forward (2·7·5·18 + 2·7·6·18),
    # and backward twice that (grads of inputs/hidden and of both weight matrices), less the
    # hidden-state grad into h0, which needs none (2·6·18).
    linear = 3 * 2 * 7 * 8 * 5
    gru = 3 * (2 * 7 * 5 * 18 + 2 * 7 * 6 * 18) - 2 * 6 * 18
    assert flops == linear + gru
    assert recorder.other_ops > recorder.compute_ops > 0  # the GRU's gates, the transposes


def test_update_floor_reports_every_figure(tmp_path, benchmark_script):
    floor = benchmark_script("update_floor")
    out = tmp_path / "floor.json"
    rows = floor.main(["--methods", "qmix", "--repeats", "1", "--out", str(out)])
    report = json.loads(out.read_text())
    assert report["rows"] == rows and [r["method"] for r in rows] == ["qmix"]
    row = rows[0]
    for key in ("update_ms", "gemm_floor_ms", "flop_floor_ms", "gflop_per_update",
                "gemm_calls", "other_ops", "compute_ops", "gemm_share"):
        assert row[key] > 0, (key, row)
    assert row["target_ms"] == 12.0
    assert report["peak_gemm_gflops"] > 0 and report["machine"]["torch_threads"] == 1


def test_replayed_operands_keep_the_recorded_layout(benchmark_script):
    floor = benchmark_script("update_floor")
    gen = torch.Generator().manual_seed(0)
    bias = floor._operand((4, 3), (0, 1), gen)  # a bias broadcast over the rows
    assert bias.shape == (4, 3) and bias.stride() == (0, 1)
    assert torch.equal(bias[0], bias[3])
    transposed = floor._operand((5, 2), (1, 5), gen)  # a transposed weight
    assert transposed.stride() == (1, 5) and not transposed.is_contiguous()
    seconds = floor.replay_seconds(torch.ops.aten.addmm.default,
                                   (((4, 3), (0, 1)), ((4, 5), (5, 1)), ((5, 3), (1, 5))), (),
                                   repeats=2)
    assert seconds > 0
