"""``shinyo bench``: shinyo's speed as ratios to the raw parts, measured in one run (issue 7).

Every figure is set against the limit on this machine, measured in the same
run and process layout, so the ratios hold across machines and loads where
absolute speeds do not:

==============  =============================================  =====================================
figure          shinyo                                         raw baseline (the limit)
==============  =============================================  =====================================
proof verify    ``verify_proof`` entries/s, one core and all   PyNaCl ``VerifyKey.verify`` of the
                cores (``map=`` a thread pool's ``map``)        same signatures, one core (and all)
bundle size     proof file bytes per trade                     (target: 1 KiB)
store           ``Store.add_many`` entries/s, 1,000 per txn    ``executemany`` of the same rows
sync            entries/s from an empty node B's session        a raw aioquic stream carrying the
                start until it holds all of node A's            bytes B's session stream carried;
                                                               raw PyNaCl verify of the entries
convergence     5 nodes, 10,000 entries spread across them     raw verify on all cores of every
                                                               entry each other node must check
growth          time per entry from 1k to 10k (100k with       ``bench_growth.CRITERION``
                ``--growth``) entries: verify, store, sync
==============  =============================================  =====================================

Proof verification starts from cold caches each time (the key checks that
``shinyo._identity`` caches per author): a verifier meets a stranger's bundle
once, and its counterparties are strangers too.  The bundles hold one
subject's rated trades, each with a distinct counterparty -- the worst case
for those caches, and what a seller with many one-off buyers hands out.  The
history a bundle is built from is frozen out of the collector's sight while
verifications are timed (a verifier's heap does not hold it).

    shinyo bench [--quick | --growth] [--json]
"""

from __future__ import annotations

import contextlib
import datetime
import gc
import hashlib
import json
import math
import os
import platform
import sqlite3
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, replace
from importlib import metadata
from typing import Any, Final

import nacl.signing

from shinyo import (
    Body,
    Chain,
    Participant,
    SigningIdentity,
    TradeSession,
    VerificationError,
    _entry,
    _identity,
    _proof,
    build_proof,
    read_proof_file,
    verify_proof,
)
from shinyo._constants import DST_ENTRY_SIG
from shinyo._proof_file import parse_payloads, unpack_payloads

from . import bench_quic, bench_store, bench_sync
from .bench_growth import CRITERION, BenchError, Compare, Growth, Target, nearest

__all__ = ["PRESETS", "Plan", "bench_verify", "growths", "history", "plan_for", "print_report",
           "print_stages", "run", "targets", "verify_stages"]

DAY: Final = 86_400
T0: Final = 1_800_000_000
TRADE_ENTRIES: Final = 6
"""Entries a rated trade puts in a bundle: three of the subject's, three of the counterparty's."""

# The targets (issue 7), and where each is read.
VERIFY_ONE_CORE: Final = 0.85
"""verify_proof on one core, entries/s over raw PyNaCl verifies/s (one core)."""
VERIFY_ALL_CORES: Final = 1.6
"""verify_proof on all cores over raw PyNaCl on ONE core ("1.6x raw with two")."""
SYNC_OF_VERIFY: Final = 0.7
"""sync entries/s over raw PyNaCl verifies/s (one core)."""
BYTES_PER_TRADE: Final = 1024
REFERENCE_TRADES: Final = 1000
"""Bundle size the verify and bytes targets are read at (the nearest measured)."""
REFERENCE_SYNC: Final = 10_000
"""Sync size the sync target is read at (the nearest measured)."""


# -- proof verification --------------------------------------------------------------


def _ident(label: str) -> SigningIdentity:
    return SigningIdentity.from_seed(hashlib.sha256(label.encode()).digest())


def history(trades: int) -> tuple[Participant, dict[Any, Any]]:
    """``trades`` fully rated trades between one subject and distinct counterparties."""
    me = Participant(_ident("subject"))
    t = T0
    for i in range(trades):
        # The counterparty signs through its own Chain and TradeSession; the
        # subject validates each of its entries as a Participant does.
        ident = _ident(f"counterparty-{i}")
        theirs = Chain(ident.pseudonym)
        p = me.propose(ident.pseudonym, context="bench.example", terms=bytes(32), timestamp=t)
        session = TradeSession(me=ident.pseudonym, proposal=p)

        def them(body: Body, ts: int, session: TradeSession = session,
                 theirs: Chain = theirs, ident: SigningIdentity = ident) -> None:
            e = theirs.append_new(ident, timestamp=ts, body=body)
            session.receive(e)
            me.receive(e)

        them(session.accept_body(), t + 60)
        session.receive(me.commit(p.id, stars=5, nonce=i.to_bytes(16, "big"), timestamp=t + 120))
        them(session.commit_body(stars=4 + i % 2, nonce=bytes(16)), t + 180)
        session.receive(me.reveal(p.id, timestamp=t + 240))
        them(session.reveal_body(), t + 300)
        t += 3600
    return me, me.others


def _cold() -> None:
    """Forget the per-author key checks, as a fresh verifier has never made them."""
    _identity.is_valid_key.cache_clear()
    _identity._verify_key.cache_clear()


@contextlib.contextmanager
def _history_frozen() -> Iterator[None]:
    """The bench's own objects (the history a bundle was built from) out of the
    cyclic collector's sight while verifications are timed: a verifier's heap does
    not hold them, and walking them on each full collection cost about 8 µs per
    entry at 1,000 trades.  What a verification allocates is collected as usual."""
    gc.collect()
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


def bench_verify(trades: int, *, repeat: int = 3) -> dict[str, float]:
    """``verify_proof`` of a bundle of ``trades`` trades against raw PyNaCl, best of
    ``repeat`` rounds; each round times the four runs back to back, so drift and
    other load hit them alike."""
    if type(trades) is not int or trades < 1:
        raise BenchError("trades must be a positive integer")
    cores = os.cpu_count() or 1
    me, others = history(trades)
    data = build_proof(me.chain, others)
    now = T0 + trades * 3600 + 30 * DAY
    entries = verify_proof(data, now=now).entries
    signed = [*me.chain.entries, *(e for c in others.values() for e in c.entries)]
    if len(signed) != entries:
        raise BenchError(f"the bundle holds {entries} entries, not the {len(signed)} signed")
    best = dict.fromkeys(("ours", "ours_all", "raw", "raw_all"), math.inf)
    with ThreadPoolExecutor(max_workers=cores) as pool, _history_frozen():
        for _ in range(repeat):
            _cold()
            start = time.perf_counter()
            verify_proof(data, now=now)
            best["ours"] = min(best["ours"], time.perf_counter() - start)
            _cold()
            start = time.perf_counter()
            verify_proof(data, now=now, map=pool.map)
            best["ours_all"] = min(best["ours_all"], time.perf_counter() - start)
            best["raw"] = min(best["raw"], bench_sync.raw_verify_seconds(signed))
            best["raw_all"] = min(best["raw_all"],
                                  bench_sync.raw_verify_seconds(signed, pool=pool))
    ours, ours_all = entries / best["ours"], entries / best["ours_all"]
    raw, raw_all = entries / best["raw"], entries / best["raw_all"]
    return {
        "trades": trades,
        "entries": entries,
        "bytes": len(data),
        "bytes_per_trade": round(len(data) / trades, 1),
        "verify_entries_per_s": round(ours),
        "raw_pynacl_verify_per_s": round(raw),
        "ratio": round(ours / raw, 3),
        "cores": cores,
        "verify_all_cores_entries_per_s": round(ours_all),
        # Against raw on ONE core, as the target reads ("1.6x raw with two").
        "ratio_all_cores": round(ours_all / raw, 3),
        "raw_all_cores_verify_per_s": round(raw_all),
        # What the threads give raw PyNaCl itself: the all-core limit.
        "raw_all_cores_scaling": round(raw_all / raw, 3),
        "ratio_all_cores_to_raw_all_cores": round(ours_all / raw_all, 3),
    }


def verify_stages(trades: int, *, repeat: int = 5) -> dict[str, float]:
    """Where one verified entry's time goes, on one core from cold caches: µs per
    entry for each stage of ``verify_proof`` timed on its own, best of ``repeat``
    (the breakdown in docs/BENCHMARKS.md).  ``rules`` is what is left of the
    whole: chain, trade rules, classification and scoring."""
    if type(trades) is not int or trades < 1:
        raise BenchError("trades must be a positive integer")
    if type(repeat) is not int or repeat < 1:
        raise BenchError("repeat must be a positive integer")
    me, others = history(trades)
    data = build_proof(me.chain, others)
    now = T0 + trades * 3600 + 30 * DAY
    parts = read_proof_file(data)
    arrays = [(parts.subject, parts.own), *parts.others]
    unpacked = [unpack_payloads(key, items) for key, items in arrays]
    checks = [(key, u[0], u[1]) for (key, _), us in zip(arrays, unpacked, strict=True)
              for u in us if not isinstance(u, VerificationError)]
    keys = {key: nacl.signing.VerifyKey(key) for key, _, _ in checks}
    signed = [(keys[key], DST_ENTRY_SIG + payload, sig) for key, payload, sig in checks]

    def raw() -> None:
        for key, message, signature in signed:
            key.verify(message, signature)

    def key_checks() -> None:
        _identity.is_valid_key.cache_clear()
        for key in keys:
            _identity.is_valid_key(key)

    def step_seven() -> None:
        _cold()
        if any(True for _ in _entry.key_and_signature_failures(checks)):
            raise BenchError("a signature of the bench bundle does not verify")

    def decode() -> None:
        _cold()
        _proof._decode_entries(parts, map)

    def whole() -> None:
        _cold()
        verify_proof(data, now=now)

    stages: dict[str, Callable[[], object]] = {
        "raw_signature": raw,
        "key_checks": key_checks,
        "walk": lambda: read_proof_file(data),
        "unpack": lambda: [unpack_payloads(key, items) for key, items in arrays],
        "parse": lambda: [parse_payloads(key, us)
                          for (key, _), us in zip(arrays, unpacked, strict=True)],
        "checks": step_seven,
        "decode": decode,
        "verify_proof": whole,
    }
    best = dict.fromkeys(stages, math.inf)
    with _history_frozen():
        for _ in range(repeat):
            for name, run in stages.items():
                start = time.perf_counter()
                run()
                best[name] = min(best[name], time.perf_counter() - start)
    us = {name: seconds / len(checks) * 1e6 for name, seconds in best.items()}
    return {
        "trades": trades,
        "entries": len(checks),
        "authors": len(keys),
        "raw_signature": round(us["raw_signature"], 1),
        "around_signature": round(us["checks"] - us["raw_signature"] - us["key_checks"], 1),
        "key_checks": round(us["key_checks"], 1),
        "walk": round(us["walk"], 1),
        "unpack": round(us["unpack"], 1),
        "parse": round(us["parse"], 1),
        "decode_glue": round(us["decode"] - us["unpack"] - us["parse"] - us["checks"], 1),
        "rules": round(us["verify_proof"] - us["walk"] - us["decode"], 1),
        "verify_proof": round(us["verify_proof"], 1),
        "ratio": round(us["raw_signature"] / us["verify_proof"], 3),
    }


def print_stages(r: dict[str, float]) -> None:
    print(f"verify_proof, one core, cold caches, bundle of {r['trades']} trades "
          f"({r['entries']} entries, {r['authors']} authors): µs per entry")
    for name in ("raw_signature", "around_signature", "key_checks", "walk", "unpack", "parse",
                 "decode_glue", "rules", "verify_proof"):
        print(f"  {name:<18} {r[name]:>6.1f}")
    print(f"  {'ratio to raw':<18} {r['ratio']:>6.3f}")


# -- the whole run ---------------------------------------------------------------------


def _sizes(name: str, values: Sequence[int]) -> tuple[int, ...]:
    if not values or any(type(v) is not int or v < 1 for v in values):
        raise BenchError(f"{name}: give one or more positive integers, got {list(values)}")
    return tuple(sorted(set(values)))


def trades_for(entries: int) -> int:
    """Trades whose bundle holds at least ``entries`` entries."""
    return -(-entries // TRADE_ENTRIES)


@dataclass(frozen=True, slots=True, kw_only=True)
class Plan:
    """What one ``shinyo bench`` run measures."""

    verify_trades: tuple[int, ...]
    """Bundle sizes, in trades (a trade is ``TRADE_ENTRIES`` entries)."""
    store_entries: tuple[int, ...]
    sync_entries: tuple[int, ...]
    quic_megabytes: int
    """Bytes for the bulk raw stream figure (the sync's own baseline carries its bytes)."""
    convergence_nodes: int = 5
    convergence_entries: int = 10_000
    """0 skips the convergence run."""
    repeat: int = 3
    """Rounds of each in-process measurement; the best counts."""

    def __post_init__(self) -> None:
        for name in ("verify_trades", "store_entries", "sync_entries"):
            values = getattr(self, name)
            if _sizes(name, values) != values:
                raise BenchError(f"{name}: sizes must be ascending without repeats")
        if type(self.quic_megabytes) is not int or self.quic_megabytes < 1:
            raise BenchError("quic_megabytes must be a positive integer")
        if type(self.convergence_entries) is not int or self.convergence_entries < 0:
            raise BenchError("convergence_entries must be 0 (skip) or a positive integer")
        if self.convergence_entries and self.convergence_nodes < 2:
            raise BenchError("convergence needs at least 2 nodes")
        if type(self.repeat) is not int or self.repeat < 1:
            raise BenchError("repeat must be a positive integer")

    @classmethod
    def for_sizes(cls, sizes: Sequence[int], **options: Any) -> Plan:
        """Every growth series at ``sizes`` entries; verify also at 1,000 trades."""
        sizes = _sizes("sizes", sizes)
        trades = {trades_for(n) for n in sizes} | {REFERENCE_TRADES}
        return cls(verify_trades=tuple(sorted(trades)), store_entries=sizes,
                   sync_entries=sizes, **options)


PRESETS: Final[dict[str, Plan]] = {
    # About 15 s on 2 cores: every figure, growth over a small span.
    "quick": Plan.for_sizes([1000, 4000], quic_megabytes=16, convergence_entries=2000,
                            repeat=2),
    # About 30 s: growth from 1k to 10k entries.
    "default": Plan.for_sizes([1000, 10_000], quic_megabytes=64),
    # About 3 min: growth from 1k to 100k entries (100k: a 23 MB sync, a 16,667-trade bundle).
    "growth": Plan.for_sizes([1000, 10_000, 100_000], quic_megabytes=64),
}


def plan_for(preset: str = "default", *, sizes: Sequence[int] | None = None,
             trades: Sequence[int] | None = None, store_entries: Sequence[int] | None = None,
             sync_entries: Sequence[int] | None = None, quic_megabytes: int | None = None,
             convergence_entries: int | None = None) -> Plan:
    """A preset, with ``sizes`` for every growth series, then each option given."""
    if preset not in PRESETS:
        raise BenchError(f"no preset {preset!r}: choose one of {', '.join(PRESETS)}")
    plan = PRESETS[preset]
    if sizes is not None:
        plan = Plan.for_sizes(sizes, quic_megabytes=plan.quic_megabytes,
                              convergence_nodes=plan.convergence_nodes,
                              convergence_entries=plan.convergence_entries, repeat=plan.repeat)
    return replace(
        plan,
        verify_trades=plan.verify_trades if trades is None else _sizes("trades", trades),
        store_entries=(plan.store_entries if store_entries is None
                       else _sizes("store entries", store_entries)),
        sync_entries=(plan.sync_entries if sync_entries is None
                      else _sizes("sync entries", sync_entries)),
        quic_megabytes=plan.quic_megabytes if quic_megabytes is None else quic_megabytes,
        convergence_entries=(plan.convergence_entries if convergence_entries is None
                             else convergence_entries),
    )


def machine() -> dict[str, Any]:
    """What the run ran on: CPU, cores, Python and library versions."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            cpu = next((line.split(":", 1)[1].strip() for line in f
                        if line.startswith("model name")), cpu)
    except OSError:
        pass
    versions = {name: metadata.version(name)
                for name in ("PyNaCl", "cbor2", "trio", "aioquic", "shinyo")}
    return {"cpu": cpu, "cores": os.cpu_count() or 1,
            "python": platform.python_version(), "system": platform.platform(),
            "sqlite": sqlite3.sqlite_version, **versions}


def _load() -> float:
    try:
        return round(os.getloadavg()[0], 2)
    except OSError:
        return -1.0


def run(plan: Plan, *, progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Measure everything ``plan`` names; the JSON report (``schema`` shinyo-bench/2)."""
    say = progress or (lambda _: None)
    started = time.monotonic()
    report: dict[str, Any] = {
        "schema": "shinyo-bench/2",
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "load_before": _load(),
        "plan": {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(plan).items()},
    }
    verify = []
    for trades in plan.verify_trades:
        say(f"verify: a bundle of {trades} trades")
        verify.append(bench_verify(trades, repeat=plan.repeat))
    stores = []
    for n in plan.store_entries:
        say(f"store: {n} entries")
        stores.append(bench_store.bench_store(n, repeat=plan.repeat))
    say(f"raw QUIC stream: {plan.quic_megabytes} MB")
    quic = bench_quic.measure_stream_throughput(megabytes=plan.quic_megabytes)
    sync = []
    for n in plan.sync_entries:
        say(f"sync: {n} entries")
        sync.append(bench_sync.measure_sync(entries=n, authors=10, repeat=plan.repeat))
    convergence = None
    if plan.convergence_entries:
        say(f"convergence: {plan.convergence_nodes} nodes, {plan.convergence_entries} entries")
        convergence = bench_sync.measure_convergence(nodes=plan.convergence_nodes,
                                                     entries=plan.convergence_entries,
                                                     repeat=plan.repeat)
    report.update(verify=verify, store=stores[-1], store_series=stores,
                  raw_quic_stream_mb_per_s=round(quic, 1), sync=sync, convergence=convergence)
    report["growth"] = {k: g.to_json() for k, g in growths(report).items()}
    report["targets"] = [t.to_json() for t in targets(report)]
    report["load_after"] = _load()
    report["seconds"] = round(time.monotonic() - started, 1)
    return report


def growths(report: dict[str, Any]) -> dict[str, Growth]:
    """Time per entry against size for verify, store and sync, from a report's rows."""
    verify, stores = report["verify"], report["store_series"]
    return {
        "verify": Growth(what="verify", sizes=tuple(r["entries"] for r in verify),
                         per_entry_s=tuple(1 / r["verify_entries_per_s"] for r in verify),
                         baseline_per_entry_s=tuple(1 / r["raw_pynacl_verify_per_s"]
                                                    for r in verify)),
        "store": Growth(what="store", sizes=tuple(int(r["entries"]) for r in stores),
                        per_entry_s=tuple(1 / r["store_add_many_per_s"] for r in stores),
                        baseline_per_entry_s=tuple(1 / r["raw_executemany_per_s"]
                                                   for r in stores)),
        "sync": bench_sync.sync_growth(report["sync"]),
    }


def targets(report: dict[str, Any]) -> list[Target]:
    """The issue's targets, each read at the measured size nearest its reference size."""
    verify, sync = report["verify"], report["sync"]
    v = verify[nearest([r["trades"] for r in verify], REFERENCE_TRADES)]
    s = sync[nearest([int(r["entries"]) for r in sync], REFERENCE_SYNC)]
    bundle = f"bundle of {v['trades']} trades ({v['entries']} entries)"
    out = [
        Target(name="proof verify, one core", measured=v["ratio"], compare=Compare.AT_LEAST,
               goal=VERIFY_ONE_CORE, unit="x raw verify (1 core)", where=bundle),
        Target(name=f"proof verify, all {v['cores']} cores", measured=v["ratio_all_cores"],
               compare=Compare.AT_LEAST, goal=VERIFY_ALL_CORES, unit="x raw verify (1 core)",
               where=bundle),
        Target(name="sync between two nodes", measured=s["ratio_verify"],
               compare=Compare.AT_LEAST, goal=SYNC_OF_VERIFY, unit="x raw verify (1 core)",
               where=f"{s['entries']:.0f} entries"),
        Target(name="bundle bytes per trade", measured=v["bytes_per_trade"],
               compare=Compare.AT_MOST, goal=BYTES_PER_TRADE, unit="bytes",
               where=f"{v['trades']} trades"),
    ]
    for name, g in growths(report).items():
        if g.worst is not None:
            out.append(Target(name=f"{name} grows linearly", measured=g.worst,
                              compare=Compare.AT_MOST, goal=g.limit, unit="x (worst step)",
                              where=f"{g.sizes[0]} to {g.sizes[-1]} entries"))
    return out


# -- human output --------------------------------------------------------------------------


def print_report(report: dict[str, Any]) -> None:
    m = report["machine"]
    print(f"shinyo bench, {report['date']}: {m['cpu']}, {m['cores']} cores, Python "
          f"{m['python']}, PyNaCl {m['PyNaCl']}, cbor2 {m['cbor2']}, aioquic {m['aioquic']}, "
          f"trio {m['trio']}, SQLite {m['sqlite']}; load average {report['load_before']} "
          f"before, {report['load_after']} after; {report['seconds']:.0f} s")
    print()
    print("proof verification (verify_proof, cold caches) vs raw PyNaCl verify of the same "
          "signatures:")
    print(f"  {'trades':>7} {'entries':>8} {'bytes/trade':>11} {'1 core/s':>9} {'raw/s':>7} "
          f"{'ratio':>6} {'all cores/s':>11} {'ratio':>6} {'raw all/s':>9} {'raw x':>6}")
    for r in report["verify"]:
        print(f"  {r['trades']:>7} {r['entries']:>8} {r['bytes_per_trade']:>11} "
              f"{r['verify_entries_per_s']:>9} {r['raw_pynacl_verify_per_s']:>7} "
              f"{r['ratio']:>6.3f} {r['verify_all_cores_entries_per_s']:>11} "
              f"{r['ratio_all_cores']:>6.3f} {r['raw_all_cores_verify_per_s']:>9} "
              f"{r['raw_all_cores_scaling']:>6.2f}")
    print("  (ratio: over raw on one core; raw x: what the thread pool gives raw PyNaCl)")
    print("store inserts (batches of 1,000) vs raw SQLite executemany of the same rows:")
    for r in report["store_series"]:
        print(f"  {r['entries']:>8} entries: store {r['store_add_many_per_s']:>9.0f}/s, "
              f"raw {r['raw_executemany_per_s']:>9.0f}/s, ratio {r['ratio']:.3f}")
    print(f"raw aioquic stream, two processes on loopback, {report['plan']['quic_megabytes']} "
          f"MB: {report['raw_quic_stream_mb_per_s']} MB/s")
    bench_sync.print_sync(report["sync"])
    if report["convergence"] is not None:
        bench_sync.print_convergence(report["convergence"])
    print()
    print(f"growth, time per entry relative to the smallest size (linear: {CRITERION}):")
    for g in growths(report).values():
        rel = ", ".join(f"{n}: {r:.2f}x" for n, r in zip(g.sizes, g.relative, strict=True))
        base = g.baseline_relative
        raw = "" if base is None else " (raw: " + ", ".join(f"{r:.2f}x" for r in base) + ")"
        print(f"  {g.what:<7} {rel}{raw}; linear: {g.verdict}")
    print()
    print("targets (issue 7):")
    for t in targets(report):
        measured = f"{t.measured:.1f}" if t.unit == "bytes" else f"{t.measured:.3f}"
        print(f"  {t.name:<28} {measured:>8} {t.compare.value} {t.goal:<6g} "
              f"{t.unit:<22} {'met' if t.met else 'NOT MET':<8} at {t.where}")


def progress_to_stderr(message: str) -> None:
    print(f"shinyo bench: {message} ...", file=sys.stderr, flush=True)


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(
        prog="python -m shinyo.tools.bench",
        description="Where verify_proof's time goes, stage by stage (docs/BENCHMARKS.md).")
    parser.add_argument("--trades", type=int, default=REFERENCE_TRADES)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--json", action="store_true")
    options = parser.parse_args()
    stages = verify_stages(options.trades, repeat=options.repeat)
    if options.json:
        print(json.dumps(stages, sort_keys=True))
    else:
        print_stages(stages)
