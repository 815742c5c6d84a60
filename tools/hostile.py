"""A malicious-peer campaign against a real node daemon (issue 7).

    python -m shinyo.tools.hostile --seconds 20 --seed 1 [--json] [--no-baseline] [--no-leaks]

Every attack of :mod:`.hostile_attacks` runs at once, round after round (each
round bounded in count and time), from its own loopback host (127.0.0.20 and
up: one source per attacker) against a *target*, ``shinyo node run`` in a
subprocess, whose memory is measured from outside: ``/proc/PID/status``
VmRSS every 0.1 s, and VmHWM.  Honest nodes, in a process of their own and
with peer exchange off (the target is their only peer), use it meanwhile:

* **A** connects before the attacks and proposes ``publish`` trades, which
  reach the target by push;
* **B** dials the target as the attacks start, empty, and must end up with
  every chain the target started with (a few thousand entries) and A's new
  entries -- through the target;
* **C** does the same ``join_delay`` seconds later, while the connection
  floods hold the target's slots: they start ``ramp`` seconds in, once B has
  its session (B is the peer that was in before them, C one that comes during).

The attack phase lasts ``seconds``; the honest nodes then have ``grace``
more seconds, so that one kept out by the attacks is told from one that
cannot sync.  A *baseline* phase runs the same without attacks, and a
*leaks* phase runs the ``UNBOUNDED`` attacks alone, each holding one session
for the whole phase, to show the growth rate they cause.

A phase reports, per attack, what it sent and how the node reacted (Bye
codes, refused connections, and bans counted in the daemon's log by source
host); when each honest node had its session and all the entries; that the
daemon answered its control socket throughout and exits 0 on SIGTERM; and
its peak RSS against its RSS at idle after startup and :func:`memory_bound`,
the stated bound.  :func:`worst_case` computes the bound the code's
constants imply for a full connection table.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import re
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any, Final

import trio

from shinyo import Entry, Pseudonym, ShinyoError, SigningIdentity
from shinyo._sync import MAX_HELD_BYTES, MAX_HELD_ENTRIES, MAX_OUTSTANDING_WANTS, SEEN_CAPACITY
from shinyo._wire import MAX_HEADS, MAX_WANT_SPAN
from shinyo.node._config import NodeConfig, parse_address
from shinyo.node._control import ControlClient
from shinyo.node._daemon import Ready
from shinyo.node._keystore import create_keyfile
from shinyo.node._node import STORE_FILE, Node, open_node
from shinyo.node._peer import (
    INGEST_DEPTH,
    MAX_PROOF_ANSWERS,
    MAX_QUEUED_FORKS,
    PUSH_QUEUE,
)
from shinyo.node._quic import TransportLimits
from shinyo.node._store import Store
from shinyo.wire import MAX_FRAME_SIZE

from .hostile_attacks import ATTACKS, HOLD, UNBOUNDED, Material, Strike, run_attack
from .hostile_peer import proposals, stranger

__all__ = ["STANDARD", "CampaignError", "campaign", "honest_chains", "memory_bound",
           "print_report", "run_phase", "worst_case"]

KIB: Final = 1024
MIB: Final = 1024 * KIB
SAMPLE_EVERY: Final = 0.1
"""Seconds between two RSS samples of the target."""
IDLE_SETTLE: Final = 1.0
"""Seconds after "ready" before the idle RSS is taken."""
CONTROL_EVERY: Final = 1.0
"""Seconds between two ``status`` calls on the target's control socket."""
CONTROL_TIMEOUT: Final = 10.0
STEP_TIMEOUT: Final = 60.0
"""Seconds any one orchestration step may take before the run is stuck (a hang, not a timing)."""
ENTRY_MEMORY: Final = 2 * KIB
"""Bytes of the target's memory per entry it stores: the ledger keeps every chain in
memory (measured 1.2-1.4 KiB with Python's overhead; 2 KiB with margin)."""
QUIC_CONNECTION_MEMORY: Final = 256 * KIB
"""aioquic's state per connection beyond stream buffers (TLS, crypto, packet spaces):
measured about 195 KiB per authenticated connection of a full table."""
READ_SIZE: Final = 65536
"""Bytes a session reads from its stream at once (node/_peer.py)."""
FIXED_ALLOWANCE: Final = 32 * MIB
"""The rest of the stated bound: allocator slack, SQLite's page cache, Python objects of
sessions, the seen-set and held entries while they fill (see worst_case)."""
STANDARD: Final = tuple(name for name in ATTACKS if name not in UNBOUNDED)
FLOODS: Final = ("connection-flood", "handshake-flood")
"""Attacks that take the node's connection slots; they start ``ramp`` seconds late."""
HONEST: Final = ("A", "B", "C")
RECONNECT_MAX: Final = 2.0
"""Seconds between an honest joiner's dials at most (the default backs off to 60)."""
CONTEXT: Final = "hostile.example/honest"
_BAN_LINE = re.compile(r"dropping \S+ at ([0-9.]+):\d+")


class CampaignError(ShinyoError):
    """The campaign could not run (a process did not start or answer)."""


# -- memory ---------------------------------------------------------------------------------


def rss_kib(pid: int) -> tuple[int, int]:
    """``(VmRSS, VmHWM)`` of process ``pid`` in KiB, from /proc (Linux)."""
    values = {}
    with open(f"/proc/{pid}/status", encoding="ascii") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                values[key] = int(value.split()[0])
    return values["VmRSS"], values["VmHWM"]


def children_rss_kib(pid: int) -> list[int]:
    """VmRSS in KiB of each child of process ``pid`` -- a daemon's signature
    workers (node/_verifier.py) -- from /proc (Linux); [] if there are none or
    it is gone."""
    out = []
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return []
    for task in tasks:
        try:
            with open(f"/proc/{pid}/task/{task}/children", encoding="ascii") as f:
                children = [int(c) for c in f.read().split()]
        except OSError:
            continue
        for child in children:
            try:
                out.append(rss_kib(child)[0])
            except (OSError, KeyError):
                continue  # gone meanwhile
    return out


def worst_case(limits: TransportLimits | None = None) -> dict[str, int]:
    """The node's memory bound in bytes, term by term, from the code's constants,
    for a full connection table (spec/transport.md 6, wire.md 12), once the
    unbounded per-session state the campaign found is bounded (see the
    ``UNBOUNDED`` attacks).  Not counted: what stored data costs
    (``ENTRY_MEMORY`` per entry, unbounded by design) and the allocator's slack."""
    limits = limits or TransportLimits()
    per_connection = {
        # Every stream a peer may open holds up to one window unread; the node
        # reads only the session stream, so the other 15 stay full.
        "receive_streams": limits.max_streams * limits.stream_receive_buffer,
        "frame_decoder": MAX_FRAME_SIZE,  # one partial frame per session (wire.md 3.2)
        # Queued unsent, plus sent and unacknowledged up to the peer's credit.
        "send_stream": limits.stream_send_buffer + limits.stream_receive_buffer,
        "one_answer": MAX_FRAME_SIZE,  # read from the store when its turn comes
        # Read ahead of the ingest (node/_peer.py): INGEST_DEPTH messages queued,
        # one being stored and one read's frames, each frame's bytes plus the
        # parsed entries (their payloads copied, ~600 bytes of objects each).
        "ingest_pipeline": 2 * ((INGEST_DEPTH + 1) * MAX_FRAME_SIZE + READ_SIZE)
        + ((INGEST_DEPTH + 1) * MAX_WANT_SPAN + READ_SIZE // 100) * 600,
        "push_queue": PUSH_QUEUE * 8,  # references: the raws are shared by the sessions
        "fork_queue": MAX_QUEUED_FORKS * 2100,
        "proof_answers": MAX_PROOF_ANSWERS * MAX_FRAME_SIZE,
        "wants": 2 * MAX_OUTSTANDING_WANTS * 200,
        # Authors the peer's Heads listed: 4 * MAX_HEADS once bounded (a patch the
        # campaign proposes; unbounded now), about 230 bytes each (measured).
        "sync_planner": 4 * MAX_HEADS * 230,
        "quic_state": QUIC_CONNECTION_MEMORY,
    }
    connection = sum(per_connection.values())
    node = {
        "connections": limits.max_connections * connection,
        "seen_set": SEEN_CAPACITY * 100,  # a 32-byte bytes object plus its set slot
        "held_entries": MAX_HELD_BYTES + MAX_HELD_ENTRIES * 600,  # bytes + Entry objects
    }
    return {**{f"per_connection.{k}": v for k, v in per_connection.items()},
            "per_connection": connection, **{f"node.{k}": v for k, v in node.items()},
            "total": sum(node.values())}


def memory_bound(*, idle_kib: int, stored_entries: int, stuffed_connections: int,
                 limits: TransportLimits | None = None) -> int:
    """The stated bound on the target's peak RSS in KiB: its idle RSS, plus
    ``ENTRY_MEMORY`` for every entry it stored during the run, plus the
    spec's per-connection receive worst case (``max_streams *
    stream_receive_buffer``, 4 MiB) for every connection the attacks stuffed
    -- each, not only those at once: glibc keeps most of it after the
    connection is gone --, plus ``QUIC_CONNECTION_MEMORY`` for each slot of a
    full connection table, plus ``FIXED_ALLOWANCE``."""
    limits = limits or TransportLimits()
    stuffed = stuffed_connections * limits.max_streams * limits.stream_receive_buffer
    table = limits.max_connections * QUIC_CONNECTION_MEMORY
    return idle_kib + (stored_entries * ENTRY_MEMORY + stuffed + table
                       + FIXED_ALLOWANCE) // KIB


# -- processes --------------------------------------------------------------------------------


class _Lines:
    """JSON documents, one per line, over a child's pipes."""

    def __init__(self, proc: trio.Process, what: str) -> None:
        assert proc.stdout is not None
        self._proc = proc
        self._out = proc.stdout
        self._buf = b""
        self._what = what

    async def read(self, timeout: float = STEP_TIMEOUT) -> str:
        with trio.move_on_after(timeout):
            while b"\n" not in self._buf:
                chunk = await self._out.receive_some(65536)
                if not chunk:
                    raise CampaignError(f"the {self._what} exited")
                self._buf += chunk
        if b"\n" not in self._buf:
            raise CampaignError(f"the {self._what} said nothing for {timeout:.0f} s")
        line, _, self._buf = self._buf.partition(b"\n")
        return line.decode()

    async def send(self, doc: Any) -> None:
        assert self._proc.stdin is not None
        await self._proc.stdin.send_all((json.dumps(doc) + "\n").encode())


async def _stop(proc: trio.Process, *, sig: int = signal.SIGKILL) -> int:
    """Stop ``proc`` with ``sig`` if it still runs and wait for it; its exit code."""
    with trio.CancelScope(shield=True):
        if proc.returncode is None:
            proc.send_signal(sig)
        with trio.move_on_after(STEP_TIMEOUT):
            await proc.wait()
        if proc.returncode is None:
            proc.kill()
        code = await proc.wait()
    return code


class Target:
    """``shinyo node run`` on a prepared home, in a subprocess."""

    def __init__(self, home: Path, proc: trio.Process, address: str, log: Path) -> None:
        self.home = home
        self.proc = proc
        self.address = parse_address(address)
        self.log = log
        self.control = ControlClient(home, timeout=CONTROL_TIMEOUT)

    @classmethod
    async def start(cls, home: Path) -> Target:
        log = home.with_name(home.name + ".log")
        with log.open("ab") as err:  # a file, not a pipe nobody reads
            proc = await trio.lowlevel.open_process(
                [sys.executable, "-m", "shinyo.tools.cli", "node", "run", "--home", str(home),
                 "--listen", "127.0.0.1:0", "--log-level", "warning"],
                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=err)
        try:
            line = await _Lines(proc, "target daemon").read()
        except BaseException:
            await _stop(proc)
            raise
        ready = Ready.parse(line)
        if ready is None:
            await _stop(proc)
            raise CampaignError(f"the target did not start: {line!r}")
        return cls(home, proc, ready.address, log)

    async def call(self, command: str) -> Any:
        return await trio.to_thread.run_sync(self.control.call, command)

    def bans_by_host(self) -> Counter[str]:
        """Node keys the daemon dropped and banned (wire.md 10.2), by source host."""
        text = self.log.read_text(encoding="utf-8", errors="replace")
        return Counter(m.group(1) for m in _BAN_LINE.finditer(text))


def _prefill(home: Path, chains: Sequence[Sequence[Entry]]) -> None:
    home.mkdir(mode=0o700, parents=True, exist_ok=True)
    with Store.open(home / STORE_FILE) as store:
        for chain in chains:
            store.add_many(chain)


def honest_chains(*, entries: int, authors: int, seed: int, now: int) -> list[list[Entry]]:
    """``entries`` valid entries in ``authors`` chains of proposals, all in the
    past of ``now``: what the target holds at start (independent of the
    attackers' pseudonyms for any seed)."""
    if authors < 1 or entries < authors:
        raise CampaignError("need at least one entry per author")
    base = -1_000_000 * (seed + 1)
    return [proposals(stranger(base - i), entries // authors + (i < entries % authors), now=now)
            for i in range(authors)]


def _identity_seed(name: str, seed: int) -> bytes:
    return hashlib.sha256(f"shinyo-hostile/honest/{name}/{seed}".encode()).digest()


# -- the honest nodes' process ---------------------------------------------------------------


def _say(doc: Any) -> None:
    sys.stdout.write(json.dumps(doc) + "\n")
    sys.stdout.flush()


def _holds(node: Node, expect: Sequence[tuple[Pseudonym, int]]) -> int:
    """How many of the ``expect`` chains (author, length) ``node`` holds in full."""
    return sum(1 for author, n in expect
               if (c := node.ledger.chain(author)) is not None and len(c) >= n)


async def _honest(spec: dict[str, Any]) -> None:
    """Honest nodes A, B and C (see the module header), driven over stdin."""
    commands = trio.wrap_file(sys.stdin)
    async with AsyncExitStack() as stack:
        nodes: dict[str, Node] = {}
        for name in HONEST:
            # reconnect_max: a node that keeps trying, so that "not in" means "kept out".
            config = NodeConfig(home=Path(spec["homes"][name]), listen="127.0.0.1:0",
                                peer_exchange=False, reconnect_max=RECONNECT_MAX)
            identity = SigningIdentity.from_seed(_identity_seed(name, spec["seed"]))
            nodes[name] = await stack.enter_async_context(
                open_node(config, identity=identity, seed=spec["seed"]))
        a = nodes["A"]
        _say({"ready": True})
        target = parse_address(json.loads(await commands.readline())["connect"])
        a.add_peer(target)
        await a.wait_until(lambda: bool(a.sessions))
        for i in range(spec["publish"]):
            a.propose(nodes["B"].pseudonym, context=CONTEXT, terms=b"%d" % i)
        _say({"connected": True})
        go = json.loads(await commands.readline())["go"]
        whole = [*((Pseudonym.from_text(t), n) for t, n in spec["expect"]),
                 (a.pseudonym, spec["publish"])]
        start = time.monotonic()
        report: dict[str, dict[str, Any]] = {"B": {}, "C": {}}

        async def join(name: str, delay: float) -> None:
            node, out = nodes[name], report[name]
            await trio.sleep(delay)
            node.add_peer(target)
            await node.wait_until(lambda: bool(node.sessions))
            out["session"] = round(time.monotonic() - start, 2)
            if name == "B":
                _say({"session": name})  # the floods may start
            await node.wait_until(lambda: _holds(node, whole) == len(whole))
            out["converged"] = round(time.monotonic() - start, 2)

        with trio.move_on_after(go["timeout"]):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(join, "B", 0.0)
                nursery.start_soon(join, "C", go["join_delay"])
        for name, out in report.items():
            out.update(chains=len(whole), held=_holds(nodes[name], whole))
        _say({"done": report})
        await commands.readline()  # "quit", or EOF: the campaign is gone


# -- one phase -----------------------------------------------------------------------------------


async def _sample(pid: int, samples: list[tuple[float, int]]) -> None:
    while True:
        try:
            samples.append((trio.current_time(), rss_kib(pid)[0]))
        except (OSError, KeyError):
            return  # the process is gone
        await trio.sleep(SAMPLE_EVERY)


async def _watch_control(target: Target, out: dict[str, Any]) -> None:
    """Call ``status`` once a second; record the slowest answer and the peers seen."""
    while True:
        started = trio.current_time()
        try:
            with trio.fail_after(CONTROL_TIMEOUT):
                status = await target.call("status")
            out["answered"] += 1
            out["max_peers_seen"] = max(out["max_peers_seen"], status["peers"])
        except (ShinyoError, trio.TooSlowError, OSError) as exc:
            out["failed"] += 1
            out["last_error"] = str(exc)
        out["slowest"] = round(max(out["slowest"], trio.current_time() - started), 3)
        await trio.sleep(CONTROL_EVERY)


async def run_phase(work: Path, *, attacks: Sequence[str], seconds: float, seed: int,
                    chains: Sequence[Sequence[Entry]], publish: int = 200, ramp: float = 1.0,
                    join_delay: float = 2.0, grace: float = 30.0) -> dict[str, Any]:
    """One target, the honest nodes, and ``attacks`` (none: a baseline); the
    phase's report (see the module header)."""
    work.mkdir(parents=True)
    home = work / "target"
    _prefill(home, chains)
    create_keyfile(home / "identity.key", os.urandom(32), passphrase=None,
                   insecure_plaintext=True)
    prefilled = sum(len(c) for c in chains)
    target = await Target.start(home)
    honest_proc: trio.Process | None = None
    samples: list[tuple[float, int]] = []
    control = {"answered": 0, "failed": 0, "slowest": 0.0, "max_peers_seen": 0}
    strikes: dict[str, Strike] = {}
    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(_sample, target.proc.pid, samples)
            await trio.sleep(IDLE_SETTLE)
            idle = rss_kib(target.proc.pid)[0]
            spec = {"homes": {name: str(work / name) for name in HONEST}, "seed": seed,
                    "publish": publish,
                    "expect": [[c[0].author.to_text(), len(c)] for c in chains]}
            with (work / "honest.log").open("ab") as err:
                honest_proc = await trio.lowlevel.open_process(
                    [sys.executable, "-m", "shinyo.tools.hostile", "--honest", json.dumps(spec)],
                    stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=err)
            honest = _Lines(honest_proc, "honest nodes' process")
            json.loads(await honest.read())["ready"]
            await honest.send({"connect": f"{target.address[0]}:{target.address[1]}"})
            json.loads(await honest.read())["connected"]
            with trio.fail_after(STEP_TIMEOUT):  # A's new entries are in the target
                while (await target.call("status"))["entries"] < prefilled + publish:
                    await trio.sleep(SAMPLE_EVERY)
            nursery.start_soon(_watch_control, target, control)

            material = Material.make(seed=seed, now=int(time.time()))
            started = trio.current_time()
            async with trio.open_nursery() as attackers:
                for i, name in enumerate(attacks):
                    # An unbounded attack holds one session for the whole phase: the
                    # node's memory then grows for as long as the phase lasts.
                    strikes[name] = Strike(
                        name, target.address, host=_host(i), material=material,
                        first_key=1_000_000 * (seed + 1) + 10_000 * i,
                        rng=random.Random(f"{seed}/{name}"),
                        hold=seconds if name in UNBOUNDED else HOLD)
                    if name not in FLOODS:
                        attackers.start_soon(run_attack, strikes[name], ATTACKS[name])
                await honest.send({"go": {"join_delay": join_delay,
                                          "timeout": seconds + grace}})
                # The floods wait for B's session (and ``ramp``): B is the node that
                # was in before them, C the one that comes during them.
                said = json.loads(await honest.read(seconds + grace + STEP_TIMEOUT))
                done = said.get("done")  # B never got in, and the honest nodes gave up
                if done is None:
                    await trio.sleep_until(started + ramp)
                    for name in attacks:
                        if name in FLOODS:
                            attackers.start_soon(run_attack, strikes[name], ATTACKS[name])
                await trio.sleep_until(started + seconds)
                attackers.cancel_scope.cancel()
            attack_seconds = trio.current_time() - started
            if done is None:
                done = json.loads(await honest.read(grace + STEP_TIMEOUT))["done"]
            await trio.sleep(IDLE_SETTLE)  # connections close, sessions end
            status = await _final_status(target)
            alive = target.proc.returncode is None
            try:
                rss_after, hwm = rss_kib(target.proc.pid)
            except (OSError, KeyError):  # it died: the samples are all there is
                rss_after, hwm = 0, 0
            # Not in the bound: a fixed cost, each worker holding one batch at a time.
            workers = children_rss_kib(target.proc.pid)
            nursery.cancel_scope.cancel()
        await honest.send({"quit": True})
        exit_code = await _stop(target.proc, sig=signal.SIGTERM)
    finally:
        if honest_proc is not None:
            await _stop(honest_proc)
        await _stop(target.proc)
    bans = target.bans_by_host()
    stuffed = strikes["stream-stuffing"].tally.connections if "stream-stuffing" in strikes else 0
    for out in done.values():
        out["converged_under_attack"] = bool(attacks) and out.get("converged", 1e9) <= seconds
    peak = max(rss for _, rss in samples)
    return {
        "attacks": {name: {**s.tally.as_dict(), "bans": bans.get(s.host, 0)}
                    for name, s in strikes.items()},
        "attack_seconds": round(attack_seconds, 1),
        "honest": done,
        "target": {"alive_after": alive and "error" not in status,
                   "exit_code_on_sigterm": exit_code, "entries": status["entries"],
                   "forks": status["forks"], "peers_after": status["peers"],
                   "status_error": status.get("error"), "control": control},
        "memory_kib": {
            "idle": idle, "peak": peak, "hwm": hwm, "after": rss_after, "growth": peak - idle,
            "bound": None if set(attacks) & set(UNBOUNDED) else memory_bound(
                idle_kib=idle, stored_entries=max(0, status["entries"] - prefilled),
                stuffed_connections=stuffed),
            "growth_per_second": round(_slope(samples, started), 1),
            "children": workers,
            "timeline": _timeline(samples, started)},
    }


async def _final_status(target: Target) -> dict[str, Any]:
    """The target's ``status`` after the attacks, or -1s and the error if it
    does not answer (then the report says so, rather than the campaign failing)."""
    try:
        with trio.fail_after(CONTROL_TIMEOUT):
            status: dict[str, Any] = await target.call("status")
            return status
    except (ShinyoError, OSError, trio.TooSlowError) as exc:
        return {"entries": -1, "forks": -1, "peers": -1, "error": str(exc)}


def _host(i: int) -> str:
    """The loopback address of attack ``i``: one source host per attack."""
    return f"127.0.0.{20 + i}"


def _timeline(samples: Sequence[tuple[float, int]], start: float, *,
              every: float = 5.0) -> list[tuple[float, int]]:
    """The highest RSS (KiB) in each ``every`` seconds from ``start``: how it grew."""
    peaks: dict[int, int] = {}
    for t, rss in samples:
        if t >= start:
            slot = int((t - start) // every)
            peaks[slot] = max(peaks.get(slot, 0), rss)
    return [(slot * every, rss) for slot, rss in sorted(peaks.items())]


def _slope(samples: Sequence[tuple[float, int]], start: float) -> float:
    """Least-squares RSS growth in KiB/s over the samples after ``start``."""
    pts = [(t, r) for t, r in samples if t >= start]
    if len(pts) < 2:
        return 0.0
    mt = sum(t for t, _ in pts) / len(pts)
    mr = sum(r for _, r in pts) / len(pts)
    var = sum((t - mt) ** 2 for t, _ in pts)
    return sum((t - mt) * (r - mr) for t, r in pts) / var if var else 0.0


# -- the campaign ---------------------------------------------------------------------------


def campaign(*, seconds: float, seed: int, entries: int = 3000, authors: int = 20,
             attacks: Sequence[str] = STANDARD, baseline: bool = True, leaks: bool = True,
             work: Path | None = None, grace: float = 30.0) -> dict[str, Any]:
    """Run the phases and return the report (see the module header)."""
    unknown = set(attacks) - set(ATTACKS)
    if unknown:
        raise CampaignError(f"unknown attacks {sorted(unknown)}; known: {', '.join(ATTACKS)}")
    chains = honest_chains(entries=entries, authors=authors, seed=seed, now=int(time.time()))

    async def main(root: Path) -> dict[str, Any]:
        report: dict[str, Any] = {"seconds": seconds, "seed": seed, "entries": entries,
                                  "worst_case_bytes": worst_case()}
        phases = {"baseline": (), "attack": attacks, "leaks": UNBOUNDED}
        for name, chosen in phases.items():
            if (name == "baseline" and not baseline) or (name == "leaks" and not leaks):
                continue
            report[name] = await run_phase(root / name, attacks=chosen, seconds=seconds,
                                           seed=seed, chains=chains, grace=grace)
        return report

    if work is not None:
        return trio.run(main, work)
    with tempfile.TemporaryDirectory(prefix="shinyo-hostile-") as tmp:
        return trio.run(main, Path(tmp))


_SHOWN: Final = frozenset({"rounds", "connections", "refused", "frames", "bytes", "bans", "byes",
                           "answered"})


def print_report(report: dict[str, Any]) -> None:
    for phase in ("baseline", "attack", "leaks"):
        if phase not in report:
            continue
        r = report[phase]
        mem, honest, target = r["memory_kib"], r["honest"], r["target"]
        print(f"== {phase}: {r['attack_seconds']:.0f} s")
        for name, h in honest.items():
            if "converged" in h:
                outcome = f"converged at {h['converged']:.2f} s"
            else:
                outcome = f"DID NOT CONVERGE (held {h['held']} of {h['chains']} chains)"
            print(f"   honest {name}: {outcome}, session at {h.get('session', float('nan')):.2f}"
                  f" s{'' if h['converged_under_attack'] else ' (after the attacks)'}")
        print(f"   target: alive {target['alive_after']}, exit {target['exit_code_on_sigterm']},"
              f" control answered {target['control']['answered']} (failed "
              f"{target['control']['failed']}, slowest {target['control']['slowest']} s)")
        print(f"   RSS idle {mem['idle'] / 1024:.1f} MiB, peak {mem['peak'] / 1024:.1f} MiB,"
              f" HWM {mem['hwm'] / 1024:.1f} MiB, growth {mem['growth'] / 1024:.1f} MiB"
              + (f", bound {mem['bound'] / 1024:.1f} MiB" if mem["bound"] else "")
              + f", slope {mem['growth_per_second']:.0f} KiB/s")
        print("   RSS by 5 s (MiB): " + " ".join(f"{r / 1024:.0f}" for _, r in mem["timeline"]))
        workers = mem.get("children") or []
        print(f"   signature worker processes {len(workers)}, RSS "
              + (" + ".join(f"{w / 1024:.1f}" for w in workers) or "-") + " MiB (not in the bound)")
        for name, t in r["attacks"].items():
            print(f"   {name:19} rounds {t['rounds']:4} conns {t['connections']:4} refused "
                  f"{t['refused']:4} frames {t['frames']:6} bytes {t['bytes']:10} bans "
                  f"{t['bans']:3} byes {t['byes']} answered {t['answered']}"
                  + "".join(f" {k} {v}" for k, v in t.items() if k not in _SHOWN))
    wc = report["worst_case_bytes"]
    print(f"worst case from constants: {wc['per_connection'] / MIB:.1f} MiB per connection, "
          f"{wc['total'] / MIB:.0f} MiB for a full table")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=20.0, help="attack phase length")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--entries", type=int, default=3000,
                        help="entries the target holds at start (B must get them all)")
    parser.add_argument("--attacks", default=",".join(STANDARD),
                        help=f"comma-separated, of: {', '.join(ATTACKS)}")
    parser.add_argument("--no-baseline", action="store_true")
    parser.add_argument("--no-leaks", action="store_true", help=f"skip {', '.join(UNBOUNDED)}")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--honest", help=argparse.SUPPRESS)  # the honest nodes' process
    args = parser.parse_args(argv)
    if args.honest:
        trio.run(_honest, json.loads(args.honest))
        return
    report = campaign(seconds=args.seconds, seed=args.seed, entries=args.entries,
                      attacks=tuple(a for a in args.attacks.split(",") if a),
                      baseline=not args.no_baseline, leaks=not args.no_leaks)
    if args.json:
        print(json.dumps(report, indent=2, sort_keys=True))
    else:
        print_report(report)


if __name__ == "__main__":
    main()
