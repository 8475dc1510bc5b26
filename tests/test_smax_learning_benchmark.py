"""The SMAX learning table's statistics (benchmarks/smax_learning.py), on hand-made curves."""

import numpy as np
import pytest


def _run(seed, rates, test_episodes=32):
    return {"seed": seed, "test_episodes": test_episodes,
            "curve": [[10_000 * i, rate] for i, rate in enumerate(rates)]}


def test_late_win_rates_intervals_and_permutation_test(benchmark_script):
    module = benchmark_script("smax_learning")
    runs = {"cw_qmix @80k": [_run(1, [0, 0.5, 0.25, 0.25, 0.5]),
                             _run(2, [0, 0, 0.125, 0.125, 0.125]),
                             _run(3, [0, 0, 0, 0.0625, 0.0625])],
            "qmix @80k": [_run(s, [0, 0, 0, 0, 0]) for s in (1, 2, 3)],
            "qmix @200k": [_run(1, [0, 0.5, 0.5, 0.5])]}  # another budget: not the baseline
    cw, qmix, longer = module.summarize(runs, last=3)
    assert cw["late"] == pytest.approx([1 / 3, 0.125, 0.125 / 3])
    assert cw["mean"] == pytest.approx(np.mean(cw["late"]))
    # t interval with 2 degrees of freedom: t = 4.303
    half = 4.302653 * np.std(cw["late"], ddof=1) / np.sqrt(3)
    assert cw["t_interval"] == pytest.approx((cw["mean"] - half, cw["mean"] + half), rel=1e-5)
    assert (cw["wins"], cw["battles"]) == (48, 288)  # (8+8+16) + (4+4+4) + (0+2+2) of 9 × 32
    low, high = cw["wilson_interval"]
    assert low < 48 / 288 < high and 0 < low and high < 0.25
    assert cw["p_vs_baseline"] == pytest.approx(1 / 20)  # the best of the 20 splits of 6 seeds
    assert qmix["p_vs_baseline"] is None and qmix["wins"] == 0
    assert qmix["wilson_interval"][0] == 0.0 and 0 < qmix["wilson_interval"][1] < 0.02
    assert longer["p_vs_baseline"] is None and np.isnan(longer["t_interval"][0])
    assert module.group_name("qmix", 200_000) == "qmix @200k"


def test_permutation_p_is_one_when_the_method_is_worse(benchmark_script):
    module = benchmark_script("smax_learning")
    assert module.permutation_p(np.array([0.0, 0.0]), np.array([0.5, 0.4])) == 1.0
    assert module.permutation_p(np.array([0.3, 0.1]), np.array([0.2, 0.0])) == \
        pytest.approx(2 / 6)
