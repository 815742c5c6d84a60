"""``shinyo bench`` (tools/bench.py): plans, the verify figure, targets, a whole tiny run.

Measured speeds are never asserted: a run must be consistent (every ratio is
the quotient it claims, every size was measured) and the targets must be
judged from the figures, whatever they are.
"""

from __future__ import annotations

import json
from dataclasses import replace
from functools import partial
from typing import Any

import pytest
import trio

from shinyo import _identity
from shinyo.tools import bench, bench_quic
from shinyo.tools.bench import PRESETS, Plan, plan_for, trades_for
from shinyo.tools.bench_growth import BenchError
from shinyo.tools.cli import build_parser

# -- plans --------------------------------------------------------------------


def test_plans_for_sizes_verify_the_reference_bundle_too() -> None:
    plan = Plan.for_sizes([10_000, 1000, 1000], quic_megabytes=8)
    assert plan.store_entries == plan.sync_entries == (1000, 10_000)
    assert plan.verify_trades == (167, 1000, 1667)  # 1,002 and 10,002 entries; 1,000 trades
    assert [trades_for(n) for n in (1, 6, 7, 100_000)] == [1, 1, 2, 16_667]


def test_presets_grow_from_quick_to_growth() -> None:
    quick, default, growth = PRESETS["quick"], PRESETS["default"], PRESETS["growth"]
    assert max(quick.sync_entries) < max(default.sync_entries) == 10_000
    assert max(growth.sync_entries) == max(growth.store_entries) == 100_000
    assert max(growth.verify_trades) * bench.TRADE_ENTRIES >= 100_000
    for plan in PRESETS.values():
        assert bench.REFERENCE_TRADES in plan.verify_trades
        assert min(plan.sync_entries) == 1000
        assert plan.convergence_nodes == 5


def test_plan_options_override_the_preset() -> None:
    plan = plan_for("growth", sync_entries=[10_000, 1000])
    assert plan.sync_entries == (1000, 10_000)
    assert plan.store_entries == PRESETS["growth"].store_entries
    plan = plan_for("quick", sizes=[50, 500], trades=[5], store_entries=[20],
                    quic_megabytes=1, convergence_entries=0)
    assert (plan.verify_trades, plan.store_entries, plan.sync_entries) == ((5,), (20,), (50, 500))
    assert (plan.quic_megabytes, plan.convergence_entries, plan.repeat) == (1, 0, 2)
    with pytest.raises(BenchError, match="no preset 'slow'"):
        plan_for("slow")


@pytest.mark.parametrize(("changes", "message"), [
    ({"sync_entries": (10, 5)}, "ascending without repeats"),
    ({"store_entries": (5, 5)}, "ascending without repeats"),
    ({"verify_trades": ()}, "one or more positive integers"),
    ({"verify_trades": (0, 5)}, "one or more positive integers"),
    ({"quic_megabytes": 0}, "quic_megabytes must be a positive integer"),
    ({"convergence_nodes": 1}, "at least 2 nodes"),
    ({"convergence_entries": -1}, "0 \\(skip\\) or a positive integer"),
    ({"repeat": 0}, "repeat must be a positive integer"),
])
def test_plan_bounds(changes: dict[str, Any], message: str) -> None:
    with pytest.raises(BenchError, match=message):
        replace(PRESETS["quick"], **changes)
    # No convergence run: its node count does not matter.
    replace(PRESETS["quick"], convergence_nodes=1, convergence_entries=0)


def test_command_line_presets_exclude_each_other(capsys: pytest.CaptureFixture[str]) -> None:
    args = build_parser().parse_args(["bench", "--growth", "--sync-entries", "1000", "10000"])
    assert (args.growth, args.quick, args.sync_entries) == (True, False, [1000, 10_000])
    with pytest.raises(SystemExit):
        build_parser().parse_args(["bench", "--quick", "--growth"])
    assert "not allowed with argument" in capsys.readouterr().err


# -- proof verification ------------------------------------------------------------


def test_verify_figures_are_consistent() -> None:
    r = bench.bench_verify(4, repeat=1)
    assert (r["trades"], r["entries"]) == (4, 4 * bench.TRADE_ENTRIES)
    assert r["bytes_per_trade"] == pytest.approx(r["bytes"] / 4, abs=0.05)
    assert r["ratio"] == pytest.approx(
        r["verify_entries_per_s"] / r["raw_pynacl_verify_per_s"], abs=2e-3)
    assert r["ratio_all_cores"] == pytest.approx(
        r["verify_all_cores_entries_per_s"] / r["raw_pynacl_verify_per_s"], abs=2e-3)
    assert r["raw_all_cores_scaling"] == pytest.approx(
        r["raw_all_cores_verify_per_s"] / r["raw_pynacl_verify_per_s"], abs=2e-3)
    assert r["cores"] >= 1
    with pytest.raises(BenchError, match="positive"):
        bench.bench_verify(0)


def test_each_verification_starts_cold() -> None:
    # The per-author key checks a verifier caches are forgotten before each
    # timed run: a stranger's bundle is checked from scratch.
    _identity.is_valid_key(bench._ident("someone").pseudonym.key)
    assert _identity.is_valid_key.cache_info().currsize > 0
    bench._cold()
    assert _identity.is_valid_key.cache_info().currsize == 0
    assert _identity._verify_key.cache_info().currsize == 0


# -- targets and growth from figures -------------------------------------------------


def _report(*, verify_ratio: float = 0.64, all_cores: float = 0.9, sync_ratio: float = 0.42,
            bytes_per_trade: float = 1414.0) -> dict[str, Any]:
    def verify(trades: int, rate: float) -> dict[str, Any]:
        return {"trades": trades, "entries": 6 * trades, "cores": 2, "ratio": verify_ratio,
                "ratio_all_cores": all_cores, "bytes_per_trade": bytes_per_trade,
                "verify_entries_per_s": rate, "raw_pynacl_verify_per_s": 17_000}

    return {
        "verify": [verify(167, 11_000), verify(1000, 11_000), verify(1667, 10_000)],
        "store_series": [{"entries": 1000, "store_add_many_per_s": 140_000,
                          "raw_executemany_per_s": 250_000},
                         {"entries": 10_000, "store_add_many_per_s": 30_000,
                          "raw_executemany_per_s": 240_000}],
        "sync": [{"entries": 1000, "sync_s": 0.2, "raw_verify_per_s": 17_000,
                  "ratio_verify": 0.3},
                 {"entries": 10_000, "sync_s": 1.4, "raw_verify_per_s": 17_000,
                  "ratio_verify": sync_ratio}],
    }


def test_targets_report_what_was_measured() -> None:
    found = {t.name: t for t in bench.targets(_report())}
    assert list(found) == ["proof verify, one core", "proof verify, all 2 cores",
                           "sync between two nodes", "bundle bytes per trade",
                           "verify grows linearly", "store grows linearly",
                           "sync grows linearly"]
    v1, v2 = found["proof verify, one core"], found["proof verify, all 2 cores"]
    assert (v1.measured, v1.goal, v1.met) == (0.64, 0.85, False)
    assert (v2.measured, v2.goal, v2.met) == (0.9, 1.6, False)
    assert v1.where == "bundle of 1000 trades (6000 entries)"
    sync = found["sync between two nodes"]
    assert (sync.measured, sync.met, sync.where) == (0.42, False, "10000 entries")
    size = found["bundle bytes per trade"]
    assert (size.measured, size.goal, size.met) == (1414.0, 1024, False)
    # verify: 11k/s, 11k/s, 10k/s: a 1.1x step.  store: 140k/s then 30k/s: 4.67x.
    assert found["verify grows linearly"].met
    assert found["verify grows linearly"].measured == pytest.approx(1.1)
    assert not found["store grows linearly"].met
    assert found["store grows linearly"].where == "1000 to 10000 entries"
    assert found["sync grows linearly"].met  # 0.2 ms then 0.14 ms per entry


def test_targets_that_are_met_say_so() -> None:
    met = bench.targets(_report(verify_ratio=0.85, all_cores=1.6, sync_ratio=0.7,
                                bytes_per_trade=1024))
    assert [t.met for t in met[:4]] == [True] * 4


def test_targets_with_one_size_leave_growth_unjudged() -> None:
    report = _report()
    report.update(verify=report["verify"][1:2], store_series=report["store_series"][:1],
                  sync=report["sync"][:1])
    names = [t.name for t in bench.targets(report)]
    assert not any("linearly" in n for n in names)
    assert next(t for t in bench.targets(report) if t.name.startswith("sync")).where == \
        "1000 entries"  # the nearest size measured, named


# -- a whole run ---------------------------------------------------------------------------


def test_a_tiny_run_end_to_end(capsys: pytest.CaptureFixture[str]) -> None:
    plan = Plan(verify_trades=(2, 5), store_entries=(30, 60), sync_entries=(60,),
                quic_megabytes=1, convergence_entries=0, repeat=1)
    said: list[str] = []
    report = bench.run(plan, progress=said.append)
    assert said[0] == "verify: a bundle of 2 trades"
    assert report["schema"] == "shinyo-bench/2"
    assert report["machine"]["cores"] >= 1 and report["machine"]["python"]
    assert [r["trades"] for r in report["verify"]] == [2, 5]
    assert [r["entries"] for r in report["store_series"]] == [30, 60]
    assert report["store"] == report["store_series"][-1]
    assert [r["entries"] for r in report["sync"]] == [60]
    assert report["convergence"] is None
    assert report["raw_quic_stream_mb_per_s"] > 0
    assert report["growth"]["verify"]["sizes"] == [12, 30]
    assert report["growth"]["sync"]["linear"] is None
    assert {t["name"] for t in report["targets"]} >= {
        "proof verify, one core", "bundle bytes per trade", "store grows linearly"}
    assert json.loads(json.dumps(report)) == report
    bench.print_report(report)
    out = capsys.readouterr().out
    assert "targets (issue 7):" in out
    assert out.count(" met ") + out.count(" NOT MET ") == len(report["targets"])
    assert "linear: not judged (one size)" in out


def test_a_raw_stream_carries_at_least_a_byte() -> None:
    with pytest.raises(BenchError, match="at least one byte"):
        trio.run(partial(bench_quic.stream_rate, 0))
