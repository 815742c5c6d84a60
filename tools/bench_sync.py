"""Node sync speed as ratios to the raw parts, measured in one run (issues 5 and 7).

Two figures, each between real nodes (``open_node``: real QUIC on 127.0.0.1,
real SQLite stores, the whole ledger):

* **sync**: node A holds N entries (the valid chains of several authors, who
  trade with each other), node B starts empty and dials A; the time from B's
  session start (A's Hello registered at B) until B holds all N.  Set against
  a raw aioquic stream carrying as many bytes as B's session stream did
  (both directions: Hello, Wants, Entries frames; ``bench_quic``'s driver,
  sender and receiver in two processes) and raw PyNaCl verification of the
  same entries' signatures, both measured in the same run.
* **convergence**: 5 nodes, 10,000 entries spread across them (each author's
  chain pre-filled in one node's store); the time from the moment every node
  is told its bootstrap peer until every node holds every entry.  Its limit:
  each entry is checked once by each of the other 4 nodes, at best at the raw
  PyNaCl rate of all the machine's cores together.

    python -m shinyo.tools.bench_sync [--entries 1000 10000] [--json] [--profile DIR]

Design decisions
----------------
*A child process per node* (default), as deployed: one node per machine.
Measured on this 2-core machine, the choice matters little for the two-node
sync -- B's ingest is the bottleneck and A's share (one range read and one
frame per Want) is small, so B's rate with both nodes in one process was
within 10 % of two processes (5.5-5.7k against 5.5-6.0k entries/s at 10k).
It matters a lot for convergence: five nodes in one process share one core
and took 9.5-10.5 s, against 5.3-5.8 s with a process each (1.8 of 2 cores
busy).  ``one_process=True`` measures the other way.  The parent only
orchestrates: it spawns the children, which open their nodes and say
"ready"; it then says "go" (with each node's bootstrap addresses) and waits
for each child's "done".  Children time themselves with ``time.monotonic``
(CLOCK_MONOTONIC, one clock for every process on the machine) and report
the CPU time they used, so a result says whether a node was busy (``B busy``
near 1.0: its own work bounds the sync) or waiting.

*Entries are signed before, not during, the measurement.*  ``make_chains``
runs whole trades (propose, accept, two blind commits, two reveals) between
random pairs of authors with :class:`shinyo.Chain` and
:class:`shinyo.TradeSession` -- the two halves :class:`shinyo.Participant`
glues together; a Participant per author would have to follow every
counterparty's *whole* chain in order, which is the node's job, not the
generator's.  Every entry passes the chain rules as it is written (spec 6.5)
and the trade rules (7.7); timestamps are 10 s apart and end an hour before
``time.time()``.  The chains go into the stores with ``Store.add_many``
before the nodes open, so ``Ledger.open`` re-validates them inside
``open_node`` -- before "ready", outside the measurement.

*Convergence topology*: a line of bootstraps (node i dials node i-1).  Peer
exchange is on (the default configuration), so the line becomes a mesh
within the first round trips; ``peer_exchange=False`` keeps it a line.

*Reading the figures*: ratios are taken in one run because absolute speeds
drift with the machine and with other load on it; a low ``cores_busy`` in a
convergence run on an idle machine means the nodes waited on each other.

*Checks*: a run fails (:class:`BenchError`) unless every node ends up holding
exactly the generated entries (count, a digest of their ids, and the sum of
their encoded sizes), so a fast wrong sync cannot report a figure.
"""

from __future__ import annotations

import argparse
import cProfile
import hashlib
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from concurrent.futures import Executor, ThreadPoolExecutor
from contextlib import AsyncExitStack
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, Final

import nacl.signing
import trio

from shinyo import (
    Body,
    Chain,
    Entry,
    Propose,
    SigningIdentity,
    TradeSession,
)
from shinyo._constants import DST_ENTRY_SIG
from shinyo.node._config import NodeConfig
from shinyo.node._node import STORE_FILE, Node, open_node
from shinyo.node._store import Store

from .bench_growth import BenchError, Growth
from .bench_quic import Lines, reap, stream_rate

__all__ = [
    "BenchError",
    "make_chains",
    "measure_convergence",
    "measure_sync",
    "print_convergence",
    "print_sync",
    "raw_verify_rate",
    "raw_verify_seconds",
    "sync_growth",
]

STEP: Final = 10
"""Seconds between consecutive generated entries."""
TRADE_ENTRIES: Final = 6
"""Entries of one whole trade: propose, accept, commit, commit, reveal, reveal."""
AUTHORS_PER_NODE: Final = 10
"""Authors whose chains each convergence node starts with."""
VERIFY_SAMPLE: Final = 20_000
"""Entries whose signatures the raw verify baseline checks (a prefix of the same entries)."""
TIMEOUT: Final = 600.0
"""Seconds a run may take before it is reported as stuck."""
_CONTEXT: Final = "bench.example/sync"


# -- entries ---------------------------------------------------------------------


def _author(i: int) -> SigningIdentity:
    return SigningIdentity.from_seed(hashlib.sha256(b"shinyo-bench-sync/author/%d" % i).digest())


def make_chains(*, entries: int, authors: int, now: int, seed: int = 0) -> list[list[Entry]]:
    """``entries`` valid entries in ``authors`` chains (each in seq order), all before ``now``.

    Whole trades between random pairs of authors, 6 entries each; the last
    ``entries % 6`` are lone proposals.  The same arguments and ``seed`` give
    the same entries but for their timestamps (relative to ``now``), and the
    same sizes for any ``now`` from 1971 to 2106 (a timestamp takes 5 bytes).
    """
    if type(authors) is not int or authors < 2:
        raise BenchError("authors must be at least 2: the chains are trades between authors")
    if type(entries) is not int or entries < 1:
        raise BenchError("entries must be a positive integer")
    rng = random.Random(seed)
    ids = [_author(i) for i in range(authors)]
    chains = [Chain(i.pseudonym) for i in ids]
    t = now - 3600 - STEP * entries

    def write(who: int, body: Body) -> Entry:
        nonlocal t
        t += STEP
        return chains[who].append_new(ids[who], timestamp=t, body=body)

    for _ in range(entries // TRADE_ENTRIES):
        a, b = rng.sample(range(authors), 2)
        proposal = write(a, Propose(counterparty=ids[b].pseudonym, context=_CONTEXT,
                                    terms=rng.randbytes(32)))
        mine = TradeSession(me=ids[a].pseudonym, proposal=proposal)
        theirs = TradeSession(me=ids[b].pseudonym, proposal=proposal)
        # Each party's session sees both parties' entries, in the order written.
        for who, step in ((b, "accept"), (a, "commit"), (b, "commit"), (a, "reveal"),
                          (b, "reveal")):
            s = mine if who == a else theirs
            body: Body = (s.accept_body() if step == "accept" else s.reveal_body()
                          if step == "reveal" else
                          s.commit_body(stars=rng.randint(1, 5), nonce=rng.randbytes(16)))
            e = write(who, body)
            mine.receive(e)
            theirs.receive(e)
    for _ in range(entries % TRADE_ENTRIES):
        a, b = rng.sample(range(authors), 2)
        write(a, Propose(counterparty=ids[b].pseudonym, context=_CONTEXT,
                         terms=rng.randbytes(32)))
    return [list(c.entries) for c in chains if len(c)]


def _digest(entries: Sequence[Entry]) -> str:
    return hashlib.sha256(b"".join(sorted(e.id for e in entries))).hexdigest()


def _prefill(home: Path, chains: Sequence[Sequence[Entry]]) -> None:
    home.mkdir(mode=0o700, parents=True, exist_ok=True)
    with Store.open(home / STORE_FILE) as store:
        for chain in chains:
            for i in range(0, len(chain), 1000):
                store.add_many(chain[i : i + 1000])


# -- raw baselines -------------------------------------------------------------------


_RAW_CHUNK: Final = 256
"""Signatures per task when the raw baseline uses several threads (as ``decode_all``)."""


def _verify_chunk(chunk: Sequence[tuple[nacl.signing.VerifyKey, bytes, bytes]]) -> int:
    for key, message, signature in chunk:
        key.verify(message, signature)
    return len(chunk)


def raw_verify_seconds(entries: Sequence[Entry], *, pool: Executor | None = None) -> float:
    """Seconds raw PyNaCl takes to verify these entries' signatures once: on this
    thread, or spread over ``pool`` (PyNaCl releases the GIL, so threads scale).

    The message is the signed one, domain prefix included; keys, messages and
    chunks are made before the clock starts, so only ``VerifyKey.verify`` is timed.
    """
    keys = {e.author: nacl.signing.VerifyKey(e.author.key) for e in entries}
    work = [(keys[e.author], DST_ENTRY_SIG + e.payload, e.signature) for e in entries]
    if pool is None:
        start = time.perf_counter()
        _verify_chunk(work)
        return time.perf_counter() - start
    chunks = [work[i : i + _RAW_CHUNK] for i in range(0, len(work), _RAW_CHUNK)]
    start = time.perf_counter()
    done = sum(pool.map(_verify_chunk, chunks))
    elapsed = time.perf_counter() - start
    assert done == len(work)
    return elapsed


def raw_verify_rate(entries: Sequence[Entry], *, repeat: int = 3, sample: int = VERIFY_SAMPLE,
                    pool: Executor | None = None) -> float:
    """Raw PyNaCl verifies/s of these entries' signatures (the first ``sample``), best of
    ``repeat``; see :func:`raw_verify_seconds`."""
    _check_repeat(repeat)
    chosen = entries[:sample]
    return len(chosen) / min(raw_verify_seconds(chosen, pool=pool) for _ in range(repeat))


def _check_repeat(repeat: int) -> None:
    if type(repeat) is not int or repeat < 1:
        raise BenchError(f"repeat must be a positive integer, got {repeat!r}")


# -- the children: nodes in their own processes ------------------------------------------


def _say(msg: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(msg) + "\n")
    sys.stdout.flush()


def _held(node: Node) -> int:
    p = node.ledger.participant
    return len(p.chain) + sum(len(c) for c in p.others.values())


async def _watch(node: Node, expect: int, report: dict[str, Any]) -> None:
    """Record when ``node``'s first session starts and when it holds ``expect`` entries,
    and the bytes its session streams carried until then."""
    if _held(node) < expect:
        await node.wait_until(lambda: bool(node.sessions))
        report["session"] = time.monotonic()
    await node.wait_until(lambda: _held(node) >= expect)
    report["done"] = time.monotonic()
    # The stream's own counters (bytes read by the session, bytes given to
    # send_all): what a raw stream must carry to be compared with this sync.
    # QuicStream has no public counter yet (proposed in the bench's notes).
    streams = [s.stream for s in node.sessions.values()]
    report["stream_read"] = sum(s._read for s in streams)
    report["stream_written"] = sum(s._written for s in streams)
    # Entries this node sent in answers and in pushes, over its sessions at
    # the end (peers stay connected through a run): the duplicates of gossip.
    report["sent"] = sum(s.stats["entries_out"] + s.stats["pushed"]
                         for s in node.sessions.values())
    report["pushed"] = sum(s.stats["pushed"] for s in node.sessions.values())


def _workers_cpu(nodes: Sequence[Node]) -> float:
    """CPU seconds the nodes' signature worker processes used so far (Linux /proc:
    live children are not in ``getrusage``)."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0
    for node in nodes:
        for pid in node.verifier.pids:
            try:
                with open(f"/proc/{pid}/stat", encoding="ascii") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
            except OSError:
                continue  # gone: its time is lost to the figure, not to the sync
            total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / tick


async def _child(spec: dict[str, Any]) -> None:
    """Open the spec's nodes, say ready, dial on "go", say done, stay up until "quit"."""
    stdin = Lines(trio.lowlevel.FdStream(os.dup(sys.stdin.fileno())))
    async with AsyncExitStack() as stack:
        nodes = []
        for n in spec["nodes"]:
            config = NodeConfig(home=Path(n["home"]), listen="127.0.0.1:0",
                                peer_exchange=spec["peer_exchange"])
            identity = SigningIdentity.from_seed(bytes.fromhex(n["identity"]))
            nodes.append(await stack.enter_async_context(
                open_node(config, identity=identity, seed=n["index"])))
        for node in nodes:  # a running daemon's signature workers are up (~0.5 s of spawning)
            await node.verifier.wait_started()
        _say({"ready": [list(node.address) for node in nodes]})
        line = await stdin.read()
        if line is None:
            return
        go = json.loads(line)["go"]
        reports: list[dict[str, Any]] = [{} for _ in nodes]
        profiler = cProfile.Profile() if spec["profile"] else None
        if profiler is not None:
            profiler.enable()
        cpu = time.process_time() + _workers_cpu(nodes)
        try:
            with trio.fail_after(spec["timeout"]):
                async with trio.open_nursery() as nursery:
                    for node, peers, report in zip(nodes, go, reports, strict=True):
                        for host, port in peers:
                            node.add_peer((host, port))
                        nursery.start_soon(_watch, node, spec["expect"], report)
        except trio.TooSlowError:
            _say({"error": f"after {spec['timeout']:.0f} s the nodes held "
                           f"{[_held(n) for n in nodes]} of {spec['expect']} entries"})
            return
        finally:
            if profiler is not None:
                profiler.disable()
                profiler.dump_stats(spec["profile"])
        cpu = time.process_time() + _workers_cpu(nodes) - cpu  # the workers' CPU counts too
        for node, report in zip(nodes, reports, strict=True):
            held = [e for c in (node.ledger.participant.chain,
                                *node.ledger.participant.others.values()) for e in c.entries]
            report.update(entries=len(held), bytes=sum(len(e.encode()) for e in held),
                          digest=_digest(held))
        _say({"done": reports, "cpu": cpu})
        await stdin.read()  # "quit", or EOF if the parent is gone


@dataclass(frozen=True, slots=True, kw_only=True)
class _Group:
    """One child process and the node indexes it hosts."""

    proc: trio.Process
    lines: Lines
    members: tuple[int, ...]
    log: Path

    def failed(self, what: object) -> BenchError:
        tail = self.log.read_text(errors="replace")[-2000:]
        return BenchError(f"nodes {list(self.members)}: {what}\n{tail}")

    async def send(self, msg: dict[str, Any]) -> None:
        assert self.proc.stdin is not None
        try:
            await self.proc.stdin.send_all((json.dumps(msg) + "\n").encode())
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            raise self.failed("the node process exited") from None

    async def receive(self, kind: str) -> dict[str, Any]:
        line = await self.lines.read()
        msg = json.loads(line) if line else {"error": "the node process exited"}
        if kind not in msg:
            raise self.failed(msg.get("error", msg))
        return dict(msg)


@dataclass(frozen=True, slots=True, kw_only=True)
class _Run:
    start: float
    """``time.monotonic()`` just before the first "go"."""
    nodes: list[dict[str, Any]]
    """Per node: ``session``, ``done`` (monotonic), ``entries``, ``bytes``, ``digest``."""
    cpu: list[float]
    """Per child process: CPU seconds from "go" until all its nodes were done."""


async def _run_nodes(work: Path, homes: Sequence[Path], *, expect: int,
                     groups: Sequence[Sequence[int]], links: Sequence[Sequence[int]],
                     peer_exchange: bool = True, timeout: float = TIMEOUT,
                     open_timeout: float = TIMEOUT,
                     profile: dict[int, Path] | None = None) -> _Run:
    """Run node i (home ``homes[i]``) in the child process of its group; on "go"
    node i dials ``links[i]``; wait until every node holds ``expect`` entries.
    ``open_timeout`` bounds the nodes' opening, ``timeout`` their converging."""
    started: list[_Group] = []
    try:
        for g, members in enumerate(groups):
            spec = {
                "nodes": [{"home": str(homes[i]), "index": i, "identity": hashlib.sha256(
                    b"shinyo-bench-sync/node/%d" % i).hexdigest()} for i in members],
                "expect": expect, "timeout": timeout, "peer_exchange": peer_exchange,
                "profile": str((profile or {}).get(g, "")) or None,
            }
            log = work / f"child{g}.log"
            with log.open("wb") as err:
                proc = await trio.lowlevel.open_process(
                    [sys.executable, "-m", "shinyo.tools.bench_sync", "--child",
                     json.dumps(spec)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                    stderr=err)
            assert proc.stdout is not None
            started.append(_Group(proc=proc, lines=Lines(proc.stdout),
                                  members=tuple(members), log=log))
        addresses: dict[int, list[Any]] = {}
        with trio.move_on_after(open_timeout):
            for group in started:
                ready = (await group.receive("ready"))["ready"]
                addresses.update(zip(group.members, ready, strict=True))
        if len(addresses) < len(homes):
            raise BenchError(f"the nodes did not open within {open_timeout:g} s")
        start = time.monotonic()
        for group in started:
            await group.send({"go": [[addresses[j] for j in links[i]] for i in group.members]})
        reports: dict[int, dict[str, Any]] = {}
        cpu = []
        with trio.move_on_after(timeout + 60):  # the children report their own timeout first
            for group in started:
                done = await group.receive("done")
                reports.update(zip(group.members, done["done"], strict=True))
                cpu.append(done["cpu"])
        if len(reports) < len(homes):
            raise BenchError(f"the nodes did not report within {timeout + 60:.0f} s")
        for group in started:
            await group.send({"quit": True})
        with trio.move_on_after(30):
            for group in started:
                await group.proc.wait()
    finally:
        for group in started:
            await reap(group.proc)
    return _Run(start=start, nodes=[reports[i] for i in range(len(homes))], cpu=cpu)


def _check_held(run: _Run, entries: Sequence[Entry]) -> int:
    """Every node holds exactly ``entries``; returns their total encoded size."""
    size, digest = sum(len(e.encode()) for e in entries), _digest(entries)
    for i, r in enumerate(run.nodes):
        if (r["entries"], r["bytes"], r["digest"]) != (len(entries), size, digest):
            raise BenchError(f"node {i} holds {r['entries']} entries ({r['bytes']} bytes), "
                             f"not the {len(entries)} generated ({size} bytes)")
    return size


# -- the measurements -----------------------------------------------------------------


def measure_sync(*, entries: int, authors: int, one_process: bool = False,
                 profile: Path | None = None, timeout: float = TIMEOUT,
                 repeat: int = 3) -> dict[str, float]:
    """Sync of ``entries`` entries of ``authors`` chains from node A to an empty node B.

    Returns entries/s and bytes/s from B's session start until B holds all,
    the raw stream and raw verify rates measured in the same run, and the
    ratios.  ``profile``: write B's cProfile stats (go to done) there.
    ``repeat``: tries of each raw baseline, the best counts (the sync runs once:
    it is the slow part, and a few seconds long from 10,000 entries on).
    """
    _check_repeat(repeat)
    chains = make_chains(entries=entries, authors=authors, now=int(time.time()))
    flat = [e for c in chains for e in c]
    with tempfile.TemporaryDirectory(prefix="shinyo-bench-sync-") as tmp:
        work = Path(tmp)
        homes = [work / "a", work / "b"]
        _prefill(homes[0], chains)
        homes[1].mkdir(mode=0o700)
        groups = [[0, 1]] if one_process else [[0], [1]]
        run = trio.run(partial(_run_nodes, work, homes, expect=entries, groups=groups,
                               links=[[], [0]], timeout=timeout,
                               profile=None if profile is None else {len(groups) - 1: profile}))
    size = _check_held(run, flat)
    b = run.nodes[1]
    seconds = b["done"] - b["session"]
    # Both directions of B's session stream, Hello to the last Entries: the
    # raw stream carries exactly as many bytes (in one direction).
    carried = b["stream_read"] + b["stream_written"]
    if carried < size:
        raise BenchError(f"node B's stream carried {carried} bytes, fewer than the "
                         f"{size} bytes of the entries it holds")
    stream = trio.run(partial(stream_rate, carried, repeat=repeat))
    verify = raw_verify_rate(flat, repeat=repeat)
    return {
        "entries": entries,
        "authors": authors,
        "processes": len(groups),
        "bytes": size,
        "stream_bytes": carried,
        "connect_s": b["session"] - run.start,
        "sync_s": seconds,
        "sync_entries_per_s": entries / seconds,
        "sync_bytes_per_s": size / seconds,
        "sync_stream_bytes_per_s": carried / seconds,
        "raw_stream_bytes_per_s": stream,
        # Both rates carry the same bytes: sync time over raw stream time.
        "ratio_stream": carried / seconds / stream,
        "raw_verify_per_s": verify,
        "ratio_verify": entries / seconds / verify,
        # Share of one core B's process used from "go" to done: near 1.0, B's
        # own work bounds the sync; well below, it waits on A or the network.
        "receiver_busy": run.cpu[-1] / (b["done"] - run.start),
        "profiled": float(profile is not None),  # cProfile slows B: not a benchmark figure
    }


def measure_convergence(*, nodes: int = 5, entries: int = 10_000, one_process: bool = False,
                        peer_exchange: bool = True, profile: Path | None = None,
                        timeout: float = TIMEOUT, repeat: int = 3) -> dict[str, float]:
    """``nodes`` nodes in a line of bootstraps, ``entries`` spread across their stores
    (``AUTHORS_PER_NODE`` whole chains each); the time until every node holds all.
    ``profile``: a directory for each child's cProfile stats (go to done)."""
    if type(nodes) is not int or nodes < 2:
        raise BenchError("convergence needs at least 2 nodes")
    _check_repeat(repeat)
    authors = AUTHORS_PER_NODE * nodes
    if entries < authors:
        raise BenchError(f"give at least {authors} entries: one per author")
    chains = make_chains(entries=entries, authors=authors, now=int(time.time()))
    flat = [e for c in chains for e in c]
    with tempfile.TemporaryDirectory(prefix="shinyo-bench-sync-") as tmp:
        work = Path(tmp)
        homes = [work / f"n{i}" for i in range(nodes)]
        for i, home in enumerate(homes):
            _prefill(home, chains[i::nodes])
        groups = [list(range(nodes))] if one_process else [[i] for i in range(nodes)]
        run = trio.run(partial(
            _run_nodes, work, homes, expect=entries, groups=groups,
            links=[[]] + [[i - 1] for i in range(1, nodes)], peer_exchange=peer_exchange,
            timeout=timeout,
            profile=None if profile is None else {
                g: profile / f"convergence-{g}.prof" for g in range(len(groups))}))
    size = _check_held(run, flat)
    done = [r["done"] - run.start for r in run.nodes]
    delivered = entries * (nodes - 1)  # each entry starts at one node and reaches the others
    # The limit: every delivered entry is one signature check somewhere, and
    # the machine's cores can do raw checks at this rate between them.
    cores = os.cpu_count() or 1
    with ThreadPoolExecutor(max_workers=cores) as pool:
        verify_all = raw_verify_rate(flat, pool=pool, repeat=repeat)
    return {
        "nodes": nodes,
        "entries": entries,
        "authors": authors,
        "processes": len(groups),
        "bytes": size,
        "first_node_s": min(done),
        "convergence_s": max(done),
        "delivered_entries_per_s": delivered / max(done),
        "raw_verify_all_cores_per_s": verify_all,
        "ratio_verify_all_cores": delivered / max(done) / verify_all,
        # Cores the node processes kept busy until each was done, of os.cpu_count().
        "cores": cores,
        "cores_busy": sum(run.cpu) / max(done),
        # Entries sent between nodes, for each one delivered (1.0: no duplicates).
        "sent_per_delivered": sum(r["sent"] for r in run.nodes) / delivered,
        "pushed_per_delivered": sum(r["pushed"] for r in run.nodes) / delivered,
        "peer_exchange": float(peer_exchange),
        "profiled": float(profile is not None),
    }


# -- command line ------------------------------------------------------------------------


def sync_growth(results: Sequence[dict[str, Any]]) -> Growth:
    """How sync time per entry grows over :func:`measure_sync` results (sizes ascending);
    the baseline is raw verification of the same entries, measured with each."""
    return Growth(what="sync", sizes=tuple(int(r["entries"]) for r in results),
                  per_entry_s=tuple(r["sync_s"] / r["entries"] for r in results),
                  baseline_per_entry_s=tuple(1 / r["raw_verify_per_s"] for r in results))


def print_sync(results: Sequence[dict[str, Any]]) -> None:
    """Human output of :func:`measure_sync` results, sizes ascending, and their growth."""
    r0 = results[0]
    print(f"sync: node A -> empty node B, {r0['authors']:.0f} authors, "
          f"{'one process' if r0['processes'] == 1 else 'a process per node'}, 127.0.0.1; "
          f"against a raw aioquic stream carrying the same bytes and raw PyNaCl verify "
          f"of the same entries:")
    print(f"  {'entries':>8} {'MB':>6} {'wire MB':>7} {'sync s':>7} {'entries/s':>9} "
          f"{'MB/s':>6} {'raw MB/s':>8} {'ratio':>6} {'verify/s':>8} {'ratio':>6} {'B busy':>6}")
    for r in results:
        print(f"  {r['entries']:>8.0f} {r['bytes'] / 1e6:>6.2f} {r['stream_bytes'] / 1e6:>7.2f} "
              f"{r['sync_s']:>7.2f} {r['sync_entries_per_s']:>9.0f} "
              f"{r['sync_stream_bytes_per_s'] / 1e6:>6.2f} "
              f"{r['raw_stream_bytes_per_s'] / 1e6:>8.1f} {r['ratio_stream']:>6.3f} "
              f"{r['raw_verify_per_s']:>8.0f} {r['ratio_verify']:>6.3f} "
              f"{r['receiver_busy']:>6.2f}")
    print("  (MB: the entries; wire MB: both directions of B's session stream, which the raw "
          "stream carries too; sync s: from B's session start until B holds every entry)")
    if len(results) > 1:
        g = sync_growth(results)
        print(f"  time per entry relative to {g.sizes[0]}: "
              + ", ".join(f"{n}: {r:.2f}x" for n, r in zip(g.sizes, g.relative, strict=True))
              + f"; linear: {g.verdict}")


def print_convergence(c: dict[str, Any]) -> None:
    """Human output of a :func:`measure_convergence` result."""
    print(f"convergence: {c['nodes']:.0f} nodes (line of bootstraps, peer exchange "
          f"{'on' if c['peer_exchange'] else 'off'}), {c['entries']:.0f} entries of "
          f"{c['authors']:.0f} authors spread across them:")
    print(f"  every node holds every entry after {c['convergence_s']:.2f} s (first node "
          f"{c['first_node_s']:.2f} s); {c['delivered_entries_per_s']:.0f} entries/s "
          f"delivered in all = {c['ratio_verify_all_cores']:.3f} of raw verify on all "
          f"cores ({c['raw_verify_all_cores_per_s']:.0f}/s); "
          f"{c['cores_busy']:.2f} of {c['cores']:.0f} cores busy; "
          f"{c['sent_per_delivered']:.2f} entries sent per entry delivered "
          f"({c['pushed_per_delivered']:.2f} pushed)")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, nargs="+", default=[1000, 10_000],
                        help="sync sizes (two or more also check linear growth)")
    parser.add_argument("--authors", type=int, default=10)
    parser.add_argument("--nodes", type=int, default=5, help="convergence nodes (0: skip)")
    parser.add_argument("--convergence-entries", type=int, default=10_000)
    parser.add_argument("--no-peer-exchange", action="store_true",
                        help="keep the convergence line a line")
    parser.add_argument("--one-process", action="store_true",
                        help="all nodes in one process (default: one per node)")
    parser.add_argument("--profile", type=Path, metavar="DIR",
                        help="write cProfile stats of the receiving nodes here (profiling "
                             "slows them: the figures of such a run are not comparable)")
    parser.add_argument("--repeat", type=int, default=3,
                        help="tries of each raw baseline; the best counts")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child is not None:
        trio.run(_child, json.loads(args.child))
        return
    if args.profile is not None:
        args.profile.mkdir(parents=True, exist_ok=True)
    sync = [measure_sync(entries=n, authors=args.authors, one_process=args.one_process,
                         profile=None if args.profile is None
                         else args.profile / f"sync-{n}.prof", repeat=args.repeat)
            for n in sorted(set(args.entries))]
    convergence = None
    if args.nodes:
        convergence = measure_convergence(
            nodes=args.nodes, entries=args.convergence_entries, one_process=args.one_process,
            peer_exchange=not args.no_peer_exchange, profile=args.profile, repeat=args.repeat)
    if args.json:
        print(json.dumps({"schema": "shinyo-bench-sync/2", "sync": sync,
                          "growth": sync_growth(sync).to_json(), "convergence": convergence},
                         sort_keys=True))
        return
    print_sync(sync)
    if convergence is not None:
        print_convergence(convergence)

if __name__ == "__main__":
    main()
