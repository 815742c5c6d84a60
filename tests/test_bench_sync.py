"""The node sync benchmark (tools/bench_sync.py) at small sizes.

Real nodes in child processes on 127.0.0.1, as in the full benchmark.  The
tests check that a run is consistent -- every entry arrived, bytes are the
sum of the entries' encoded sizes, ratios are the quotients they claim to be
-- and never how fast anything was.
"""

from __future__ import annotations

import json
import pstats
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from functools import partial
from pathlib import Path

import nacl.exceptions
import pytest
import trio

from shinyo import Chain, Participant, Reveal, SigningIdentity
from shinyo.tools import bench_sync
from shinyo.tools.bench_sync import (
    BenchError,
    make_chains,
    measure_convergence,
    measure_sync,
)


def _sizes(entries: int, authors: int) -> int:
    chains = make_chains(entries=entries, authors=authors, now=int(time.time()))
    return sum(len(e.encode()) for c in chains for e in c)


def test_chains_are_valid_trades_in_the_past() -> None:
    now = int(time.time())
    chains = make_chains(entries=301, authors=3, now=now)
    flat = [e for c in chains for e in c]
    assert len(flat) == 301
    assert len({c[0].author for c in chains}) == 3
    assert all(e.timestamp < now for e in flat)
    # Whole trades (two reveals each), then 301 % 6 lone proposals.
    assert sum(isinstance(e.body, Reveal) for e in flat) == 2 * (301 // 6)
    for c in chains:
        Chain.from_entries(c, now=now)
    # A third party following every chain, as a node does, accepts every entry.
    follower = Participant(SigningIdentity.from_seed(b"\x99" * 32))
    for c in chains:
        for e in c:
            follower.receive(e, now=now)


def test_chain_generation_bounds() -> None:
    with pytest.raises(BenchError, match="at least 2"):
        make_chains(entries=10, authors=1, now=int(time.time()))
    with pytest.raises(BenchError, match="positive"):
        make_chains(entries=0, authors=2, now=int(time.time()))
    assert sum(map(len, make_chains(entries=1, authors=2, now=int(time.time())))) == 1


def test_sync_between_two_node_processes() -> None:
    r = measure_sync(entries=300, authors=3, repeat=1)
    assert r["entries"] == 300
    assert r["processes"] == 2
    assert r["bytes"] == _sizes(300, 3)
    for key in ("connect_s", "sync_s", "raw_stream_bytes_per_s", "raw_verify_per_s",
                "receiver_busy"):
        assert r[key] > 0
    # B's stream carried the entries plus framing, Hello and Wants: a little more.
    assert r["bytes"] < r["stream_bytes"] < 1.2 * r["bytes"]
    assert r["sync_entries_per_s"] == pytest.approx(300 / r["sync_s"])
    assert r["sync_bytes_per_s"] == pytest.approx(r["bytes"] / r["sync_s"])
    assert r["sync_stream_bytes_per_s"] == pytest.approx(r["stream_bytes"] / r["sync_s"])
    # The raw stream carried the stream's bytes, so the ratio is of like to like.
    assert r["ratio_stream"] == pytest.approx(
        r["sync_stream_bytes_per_s"] / r["raw_stream_bytes_per_s"])
    assert r["ratio_verify"] == pytest.approx(r["sync_entries_per_s"] / r["raw_verify_per_s"])


def test_sync_in_one_process_with_a_profile(tmp_path: Path) -> None:
    out = tmp_path / "b.prof"
    r = measure_sync(entries=120, authors=2, one_process=True, profile=out, repeat=1)
    assert r["processes"] == 1
    assert r["bytes"] == _sizes(120, 2)
    # The profile covers the receiving side's work from "go" to "done".
    assert "receive" in pstats.Stats(str(out)).get_stats_profile().func_profiles


def test_convergence_of_three_nodes() -> None:
    r = measure_convergence(nodes=3, entries=300)
    assert (r["nodes"], r["entries"], r["authors"], r["processes"]) == (3, 300, 30, 3)
    assert r["bytes"] == _sizes(300, 30)
    assert 0 < r["first_node_s"] <= r["convergence_s"]
    assert r["delivered_entries_per_s"] == pytest.approx(300 * 2 / r["convergence_s"])
    assert r["ratio_verify_all_cores"] == pytest.approx(
        r["delivered_entries_per_s"] / r["raw_verify_all_cores_per_s"])
    assert r["cores_busy"] > 0


def test_convergence_bounds() -> None:
    with pytest.raises(BenchError, match="at least 2 nodes"):
        measure_convergence(nodes=1, entries=100)
    with pytest.raises(BenchError, match="at least 20 entries"):
        measure_convergence(nodes=2, entries=19)
    with pytest.raises(BenchError, match="repeat must be a positive integer, got 0"):
        measure_convergence(nodes=2, entries=20, repeat=0)
    with pytest.raises(BenchError, match="repeat must be a positive integer, got 0"):
        measure_sync(entries=20, authors=2, repeat=0)


def test_raw_verify_baseline_on_one_thread_and_a_pool() -> None:
    chains = make_chains(entries=40, authors=2, now=int(time.time()))
    flat = [e for c in chains for e in c]
    assert bench_sync.raw_verify_seconds(flat) > 0
    with ThreadPoolExecutor(max_workers=2) as pool:
        assert bench_sync.raw_verify_seconds(flat, pool=pool) > 0
        assert bench_sync.raw_verify_rate(flat, repeat=1, sample=10, pool=pool) > 0
    # A baseline that checked a bad signature would not be a baseline.
    bad = replace(flat[0], signature=bytes(64))
    with pytest.raises(nacl.exceptions.BadSignatureError):
        bench_sync.raw_verify_seconds([bad])
    with ThreadPoolExecutor(max_workers=2) as pool, pytest.raises(
            nacl.exceptions.BadSignatureError):
        bench_sync.raw_verify_seconds([*flat, bad], pool=pool)


def test_nodes_that_never_converge_fail_the_run(tmp_path: Path) -> None:
    # Two nodes that are never linked: the child gives up at its timeout and
    # the run raises instead of reporting a figure.
    homes = [tmp_path / "a", tmp_path / "b"]
    bench_sync._prefill(homes[0], make_chains(entries=12, authors=2, now=int(time.time())))
    homes[1].mkdir()
    run = partial(bench_sync._run_nodes, tmp_path, homes, expect=12, groups=[[0], [1]],
                  links=[[], []], timeout=1.0)
    with pytest.raises(BenchError, match=r"nodes \[1\]: after 1 s the nodes held \[0\] of 12"):
        trio.run(run)


def test_a_node_holding_other_entries_fails_the_run() -> None:
    chains = make_chains(entries=12, authors=2, now=int(time.time()))
    flat = [e for c in chains for e in c]
    right = {"entries": 12, "bytes": sum(len(e.encode()) for e in flat),
             "digest": bench_sync._digest(flat)}
    one = bench_sync._Run(start=0.0, nodes=[right], cpu=[])
    assert bench_sync._check_held(one, flat) == right["bytes"]
    wrong = dict(right, digest=bench_sync._digest(flat[:-1] + flat[:1]))
    with pytest.raises(BenchError, match="node 1 holds 12 entries"):
        bench_sync._check_held(bench_sync._Run(start=0.0, nodes=[right, wrong], cpu=[]), flat)


def test_command_line_json(capsys: pytest.CaptureFixture[str]) -> None:
    bench_sync.main(["--entries", "120", "60", "--authors", "2", "--nodes", "2",
                     "--convergence-entries", "40", "--repeat", "1", "--json"])
    out = json.loads(capsys.readouterr().out)
    assert out["schema"] == "shinyo-bench-sync/2"
    assert [r["entries"] for r in out["sync"]] == [60, 120]
    growth = out["growth"]
    a, b = out["sync"]
    assert growth["sizes"] == [60, 120]
    assert growth["relative"][1] == pytest.approx((b["sync_s"] / 120) / (a["sync_s"] / 60),
                                                  abs=1e-3)
    assert growth["linear"] in (True, False)
    assert out["convergence"]["nodes"] == 2
    assert out["convergence"]["peer_exchange"] == 1.0


def test_nodes_that_do_not_open_in_time_fail_the_run(tmp_path: Path) -> None:
    # No Python starts, let alone opens a node, within a millisecond.
    homes = [tmp_path / "a"]
    homes[0].mkdir()
    run = partial(bench_sync._run_nodes, tmp_path, homes, expect=1, groups=[[0]], links=[[]],
                  open_timeout=0.001)
    with pytest.raises(BenchError, match="did not open within"):
        trio.run(run)


def test_human_output(capsys: pytest.CaptureFixture[str]) -> None:
    sync = [{"entries": n, "authors": 3, "processes": 2, "bytes": 230 * n,
             "stream_bytes": 233 * n, "connect_s": 0.01, "sync_s": s,
             "sync_entries_per_s": n / s, "sync_bytes_per_s": 230 * n / s,
             "sync_stream_bytes_per_s": 233 * n / s, "raw_stream_bytes_per_s": 4e7,
             "ratio_stream": 233 * n / s / 4e7, "raw_verify_per_s": 17e3,
             "ratio_verify": n / s / 17e3, "receiver_busy": 0.9}
            for n, s in ((1000, 0.2), (10_000, 3.0), (100_000, 40.0))]
    growth = bench_sync.sync_growth(sync)
    assert growth.relative == pytest.approx((1.0, 1.5, 2.0))
    assert growth.steps == pytest.approx((1.5, 2.0))
    assert growth.linear is False
    bench_sync.print_sync(sync)
    bench_sync.print_convergence({"nodes": 5, "entries": 10_000, "authors": 50,
                                  "peer_exchange": 0.0, "convergence_s": 5.0,
                                  "first_node_s": 4.0, "delivered_entries_per_s": 8000.0,
                                  "raw_verify_all_cores_per_s": 32000.0,
                                  "ratio_verify_all_cores": 0.25, "cores": 2,
                                  "cores_busy": 1.8, "sent_per_delivered": 1.25,
                                  "pushed_per_delivered": 0.25})
    out = capsys.readouterr().out
    assert "a process per node" in out
    assert "1000: 1.00x, 10000: 1.50x, 100000: 2.00x; linear: NO (worst step 2.00x" in out
    assert "5 nodes (line of bootstraps, peer exchange off)" in out
    assert "after 5.00 s (first node 4.00 s)" in out
    assert "= 0.250 of raw verify on all cores (32000/s); 1.80 of 2 cores busy" in out
    assert "1.25 entries sent per entry delivered (0.25 pushed)" in out
