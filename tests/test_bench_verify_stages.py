"""The verify breakdown of ``shinyo bench`` (tools/bench.py ``verify_stages``) and the
frozen bench heap its timings run under.  Speeds are never asserted: the stages must
be the ones docs/BENCHMARKS.md tabulates, and add up to the whole they are cut from."""

from __future__ import annotations

import gc
import json
import subprocess
import sys

import pytest

from shinyo.tools import bench
from shinyo.tools.bench_growth import BenchError

STAGES = ("raw_signature", "around_signature", "key_checks", "walk", "unpack", "parse",
          "decode_glue", "rules")


def test_the_stages_add_up_to_the_whole() -> None:
    r = bench.verify_stages(3, repeat=1)
    assert (r["trades"], r["entries"], r["authors"]) == (3, 3 * bench.TRADE_ENTRIES, 4)
    # The residual stages are defined so the parts are the whole (up to rounding).
    assert sum(r[name] for name in STAGES) == pytest.approx(r["verify_proof"], abs=0.6)
    assert r["ratio"] == pytest.approx(r["raw_signature"] / r["verify_proof"], abs=2e-3)
    for name in ("raw_signature", "key_checks", "parse", "verify_proof"):
        assert r[name] > 0


@pytest.mark.parametrize("bad", [{"trades": 0}, {"trades": 2, "repeat": 0}])
def test_the_stages_refuse_nonsense(bad: dict[str, int]) -> None:
    trades = bad.pop("trades")
    with pytest.raises(BenchError, match="positive"):
        bench.verify_stages(trades, **bad)


def test_timings_run_with_the_bench_history_frozen() -> None:
    before = gc.get_freeze_count()
    kept = [[] for _ in range(1000)]  # objects the bench made before timing
    with bench._history_frozen():
        assert gc.get_freeze_count() >= before + len(kept)
        fresh = [[] for _ in range(10)]
        assert all(gc.is_tracked(x) for x in fresh)
    assert gc.get_freeze_count() == 0


def test_the_module_prints_the_breakdown() -> None:
    out = subprocess.run([sys.executable, "-m", "shinyo.tools.bench", "--trades", "2",
                          "--repeat", "1", "--json"],
                         capture_output=True, text=True, timeout=120, check=True).stdout
    assert set(STAGES) <= set(json.loads(out))
