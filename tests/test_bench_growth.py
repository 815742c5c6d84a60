"""Judging benchmark figures (tools/bench_growth.py): linear growth and targets.

Synthetic figures only: these are the rules ``shinyo bench`` applies to what
it measures, and they must be able to say no.
"""

from __future__ import annotations

import math

import pytest

from shinyo.tools.bench_growth import (
    CRITERION,
    LINEAR_LIMIT,
    BenchError,
    Compare,
    Growth,
    Target,
    nearest,
)

SIZES = (1000, 10_000, 100_000)


def _growth(*per_entry_us: float, limit: float = LINEAR_LIMIT) -> Growth:
    return Growth(what="x", sizes=SIZES[: len(per_entry_us)],
                  per_entry_s=tuple(t / 1e6 for t in per_entry_us), limit=limit)


def test_constant_time_per_entry_is_linear() -> None:
    g = _growth(50, 50, 50)
    assert g.relative == pytest.approx((1, 1, 1))
    assert g.steps == pytest.approx((1, 1))
    assert g.linear is True
    assert g.verdict == "yes (worst step 1.00x, limit 1.50x)"


def test_fixed_costs_at_small_sizes_do_not_hide_growth() -> None:
    # 1k carries connection set-up (per entry 3x dearer); from 10k to 100k the
    # time per entry doubles.  Against the 1k figure that would look fine
    # (0.67x); against the best smaller figure it is a 2x step.
    g = _growth(150, 50, 100)
    assert g.relative == pytest.approx((1, 1 / 3, 2 / 3))
    assert g.steps == pytest.approx((1 / 3, 2))
    assert g.worst == pytest.approx(2)
    assert g.linear is False
    assert g.verdict.startswith("NO (worst step 2.00x")


def test_a_creeping_cost_passes_and_n_squared_fails() -> None:
    creeping = _growth(10, 12, 14.4)  # a fifth more per tenfold
    assert creeping.linear is True
    # n log n over two tenfolds: ln(100k) / ln(1k) = 1.67x, over the limit.
    n_log_n = Growth(what="sort", sizes=SIZES,
                     per_entry_s=tuple(math.log(n) * 1e-6 for n in SIZES))
    assert n_log_n.worst == pytest.approx(5 / 3)
    assert n_log_n.linear is False
    quadratic = Growth(what="pairs", sizes=SIZES, per_entry_s=tuple(n * 1e-9 for n in SIZES))
    assert quadratic.steps == pytest.approx((10, 100))  # each against the 1k figure
    assert quadratic.linear is False


def test_the_limit_is_inclusive() -> None:
    assert _growth(10, 15).linear is True
    assert _growth(10, 15.001).linear is False
    assert _growth(10, 12, limit=1.2).linear is True
    assert _growth(10, 12.01, limit=1.2).linear is False


def test_one_size_is_not_judged() -> None:
    g = _growth(42)
    assert (g.steps, g.worst, g.linear) == ((), None, None)
    assert g.verdict == "not judged (one size)"
    assert g.to_json()["linear"] is None


def test_baseline_growth_is_reported_alongside() -> None:
    g = Growth(what="store", sizes=(1000, 10_000), per_entry_s=(7e-6, 8e-6),
               baseline_per_entry_s=(4e-6, 5e-6))
    assert g.baseline_relative == pytest.approx((1, 1.25))
    doc = g.to_json()
    assert doc == {
        "what": "store", "sizes": [1000, 10_000], "per_entry_us": [7.0, 8.0],
        "relative": [1.0, pytest.approx(1.143)], "baseline_per_entry_us": [4.0, 5.0],
        "baseline_relative": [1.0, 1.25], "worst_step": pytest.approx(1.143),
        "limit": LINEAR_LIMIT, "linear": True, "criterion": CRITERION,
    }
    assert _growth(1, 2).baseline_relative is None


@pytest.mark.parametrize(("sizes", "times", "message"), [
    ((), (), "no sizes"),
    ((1000, 2000), (1e-6,), "one time per entry per size"),
    ((2000, 1000), (1e-6, 1e-6), "strictly ascending"),
    ((1000, 1000), (1e-6, 1e-6), "strictly ascending"),
    ((0, 1000), (1e-6, 1e-6), "positive and strictly ascending"),
    ((1000,), (0.0,), "must be positive, got 0.0"),
    ((1000,), (math.nan,), "must be positive"),
    ((1000,), (math.inf,), "must be positive"),
])
def test_figures_that_cannot_be_judged(sizes: tuple[int, ...], times: tuple[float, ...],
                                       message: str) -> None:
    with pytest.raises(BenchError, match=message):
        Growth(what="x", sizes=sizes, per_entry_s=times)


def test_baseline_and_limit_are_checked() -> None:
    with pytest.raises(BenchError, match="one time per entry per size"):
        Growth(what="x", sizes=(1, 2), per_entry_s=(1.0, 1.0), baseline_per_entry_s=(1.0,))
    with pytest.raises(BenchError, match="must be positive"):
        Growth(what="x", sizes=(1,), per_entry_s=(1.0,), baseline_per_entry_s=(-1.0,))
    with pytest.raises(BenchError, match="at least 1"):
        Growth(what="x", sizes=(1,), per_entry_s=(1.0,), limit=0.99)


def test_targets_are_met_at_their_bounds() -> None:
    def target(measured: float, compare: Compare, goal: float) -> Target:
        return Target(name="t", measured=measured, compare=compare, goal=goal, unit="x",
                      where="here")

    assert target(0.85, Compare.AT_LEAST, 0.85).met
    assert not target(0.849, Compare.AT_LEAST, 0.85).met
    assert target(1024, Compare.AT_MOST, 1024).met
    assert not target(1024.1, Compare.AT_MOST, 1024).met
    assert target(0.4212, Compare.AT_LEAST, 0.7).to_json() == {
        "name": "t", "measured": 0.421, "compare": ">=", "goal": 0.7, "unit": "x",
        "where": "here", "met": False}
    with pytest.raises(BenchError, match="finite"):
        target(math.nan, Compare.AT_LEAST, 1)


def test_nearest_size_on_a_log_scale() -> None:
    assert nearest([1002, 6000, 10_002], 6000) == 1
    assert nearest([1000, 4000], 10_000) == 1
    assert nearest([100, 3000], 1000) == 1  # 3x above is nearer than 10x below
    assert nearest([500, 2000], 1000) == 1  # a tie goes to the larger
    assert nearest([7], 1000) == 0
    with pytest.raises(BenchError, match="no sizes"):
        nearest([], 1000)
