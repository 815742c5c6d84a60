"""Crash campaign: ``kill -9`` real node daemons during sync and during trades (issue 7).

    python -m shinyo.tools.crash --rounds 50 --seed 1 [--entries 4000] [--json]

Two ``shinyo node run`` daemons on 127.0.0.1, each with an encrypted key (the
passphrase from ``SHINYO_PASSPHRASE``, as deployed).  B's store starts with
``--entries`` valid entries (whole trades among several authors, from
``bench_sync.make_chains``).  Every round starts a fresh A -- a new pseudonym,
an empty store -- that dials B and so syncs all of them, and A and B trade
through the control socket: A proposes, B accepts, A rates, B rates; the
reveals follow by themselves (spec 7.3).  At a moment drawn from the seed,
SIGKILL goes to A, B or both: *sync* rounds kill once A has said (``status``)
that it holds a drawn fraction of B's entries, a few drawn milliseconds later;
*trade* rounds kill at a drawn step, either just after its command answered
(between steps) or while it is in flight.
Some rounds kill A a second time soon after its restart, before or after it
says it is ready.

What a node acknowledged, and so must still hold after the kill:

* the entry (``seq``, ``id``) a successful control command reported;
* the ``entries`` and ``own_entries`` counts of any ``status`` answer (a poller
  thread asks each node every few milliseconds and keeps every answer);
* whatever a peer holds of the node's own chain: the peer can only have had it
  from the node, and a node that lost it would sign a fork at that seq.

Checks after every kill, on a copy of the dead node's store taken before the
restart (database and WAL, as the kill left them; SQLite rebuilds its index
from the WAL as after a reboot):

1. *acknowledged*: every acknowledged entry is there, at its seq;
2. *valid*: every stored chain rebuilds with :class:`shinyo.Chain` (spec 6.5),
   the store's ``chains`` table agrees with its entries, and every own rating
   commitment not yet revealed still has its opening (the ledger stores the
   opening first, so the commitment can always be revealed) and every own
   proposal its terms;
3. *peers*: for every author, the peer's copy and this node's copy are one a
   prefix of the other (no fork), and the peer holds no more of this node's own
   chain than the node does;
4. *restart*: the stale ``control.token`` and ``control.sock`` make a client fail
   at once (not hang, not succeed), ``node.lock`` is free, and the daemon starts
   again on the same home and port.

Then the round *resumes*: the interrupted trade is finished -- or, when it is
still only offered and the plan says so, cancelled -- within ``--wait``
seconds; A must come to hold exactly the entries B holds, no node may hold a
fork proof, both trade rows must show the planned stars (or both
``cancelled``), the acknowledged entries must be in the final stores (whose
chains must verify), and A must stop cleanly on SIGTERM (exit 0, control files
removed).  Any miss is a failure, reported with the round and seed; the
campaign exits 1 if there was one.

Design decisions
----------------
*Fresh A, lasting B.*  A new A per round makes every round a full sync from
B without rebuilding B; B carries the campaign's history (every A's trade and
every B kill) and gets a full audit after each of its kills and at the end.
A reuses one port so B's peer table does not fill with dead addresses.

*Progress, not a clock, places sync kills.*  A kill "at 40 % of the sync"
is triggered by A's own status answer, so it lands mid-sync however loaded
the machine is; the drawn extra delay moves it off the instant of that answer
(into an ingest transaction, say).

*Checks on copies.*  The dead node's files are copied before the restart, so
the checks see what the kill left and the restart runs on the same files
untouched; a live peer is read through SQLite's online backup.

*Short network timers by default.*  The node keeps a session whose peer was
killed until the QUIC idle timeout (60 s by default), and refuses the peer's
new connection as a duplicate meanwhile when the tie-break of transport.md 6
favours the dead one.  ``--idle-timeout 4 --sync-interval 1`` (the defaults
here; the interval keeps live connections busy) bound that stall, so a round
takes seconds; pass ``--idle-timeout 60 --sync-interval 30`` to see it.

*Reproducing.*  A round's plan is a function of ``--seed`` and its number;
``--start R --rounds 1`` replays round R's plan against a fresh B.  Timing is
not deterministic (it is a crash test), so a failure may need a few tries.

``--self-test`` deletes the newest acknowledged own entry from each killed A's
store (fixing the ``chains`` table up, as a store that lost its last
transaction would look) before the checks, and ends each round there: the
campaign must then fail, which shows it catches a store that loses a
committed entry.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import random
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from shinyo import ShinyoError
from shinyo.node._control import ControlError
from shinyo.node._keystore import PASSPHRASE_ENV
from shinyo.node._node import STORE_FILE
from shinyo.node._store import Store

from .bench_sync import make_chains
from .crash_checks import (
    StoreAudit,
    _Acks,
    audit_store,
    check_peer,
    copy_store,
    lose_newest_entry,
    read_ids,
)
from .crash_daemons import CALL_TIMEOUT, _Daemon, _kill_all, _leftovers, _make_home, _Poller, _rows

__all__ = [
    "MODES",
    "STEPS",
    "CampaignConfig",
    "CrashError",
    "Failure",
    "Kill",
    "Plan",
    "Report",
    "run_campaign",
]

MODES: Final = ("sync", "trade")
STEPS: Final = ("propose", "accept", "rate-a", "rate-b")
"""The trade's steps in order: A proposes, B accepts, A rates, B rates."""
DEFAULT_PASSPHRASE: Final = "shinyo crash campaign"


class CrashError(ShinyoError):
    """The campaign could not run (bad options, a daemon that never started)."""


# -- plans ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class Plan:
    """One round's decisions, drawn from the seed (:meth:`draw`) or written by a test."""

    round: int
    mode: str
    victims: tuple[str, ...]
    sync_at: float = 0.5
    """Mode sync: kill once A says it holds this fraction of B's entries (after
    ``race_delay``, so that the kill lands anywhere, not just after an answer)."""
    step: int = 0
    """Mode trade: the index in :data:`STEPS` of the step the kill comes at."""
    race: bool = False
    """Kill while the step's command is in flight (else just after it answered)."""
    race_delay: float = 0.0
    again: float | None = None
    """Kill A again this many seconds after respawning it (perhaps before it is ready)."""
    cancel: bool = False
    """If the trade is still only offered after the restart, A cancels it."""
    stars: tuple[int, int] = (5, 4)
    """Stars A gives, stars B gives."""

    def __post_init__(self) -> None:
        if type(self.round) is not int or self.round < 0:
            raise CrashError("a plan's round is a non-negative integer")
        if self.mode not in MODES:
            raise CrashError(f"mode must be one of {', '.join(MODES)}")
        if not self.victims or set(self.victims) - {"a", "b"} or len(set(self.victims)) != len(
                self.victims):
            raise CrashError("victims are 'a', 'b' or both")
        if not 0 <= self.sync_at < 1 or not 0 <= self.race_delay <= 1:
            raise CrashError("sync_at is in [0, 1), race_delay in [0, 1] s")
        if not 0 <= self.step < len(STEPS):
            raise CrashError(f"step is an index into {STEPS}")
        if self.again is not None and ("a" not in self.victims or not 0 <= self.again <= 5):
            raise CrashError("again (0..5 s) applies to rounds that kill A")
        if not all(type(s) is int and 1 <= s <= 5 for s in self.stars) or len(self.stars) != 2:
            raise CrashError("stars are two integers in 1..5")

    @classmethod
    def draw(cls, seed: int, number: int) -> Plan:
        rng = random.Random(f"shinyo-crash/{seed}/{number}")
        victims = rng.choices((("a",), ("b",), ("a", "b")), weights=(6, 2, 2))[0]
        return cls(round=number, mode=rng.choice(MODES), victims=victims,
                   sync_at=rng.uniform(0.0, 0.95), step=rng.randrange(len(STEPS)),
                   race=rng.random() < 0.5, race_delay=rng.uniform(0.0, 0.008),
                   again=rng.uniform(0.0, 1.2) if "a" in victims and rng.random() < 0.25
                   else None,
                   cancel=rng.random() < 0.3, stars=(rng.randint(1, 5), rng.randint(1, 5)))

    def describe(self) -> str:
        where = (f"at {self.sync_at:.0%} of the sync" if self.mode == "sync" else
                 f"{STEPS[self.step]} {'in flight' if self.race else 'answered'}")
        again = "" if self.again is None else f", again after {self.again:.2f} s"
        return f"{where}, kill {'+'.join(self.victims)}{again}"


@dataclass(frozen=True, slots=True, kw_only=True)
class CampaignConfig:
    rounds: int
    seed: int
    start: int = 0
    entries: int = 4000
    authors: int = 8
    idle_timeout: float = 4.0
    sync_interval: float = 1.0
    wait: float = 60.0
    """Seconds the resumption (trade finished, sync converged) may take."""
    calibrate: bool = True
    """Time a clean full sync first (a sanity check, and a figure for the report)."""
    self_test: bool = False
    keep: bool = False
    log_level: str = "info"
    """The daemons' log level (their logs are kept with a failed round's files)."""

    def __post_init__(self) -> None:
        if type(self.rounds) is not int or not 0 <= self.rounds <= 100_000:
            raise CrashError("rounds must be an integer in 0..100000")
        if type(self.start) is not int or self.start < 0:
            raise CrashError("start must be a non-negative round number")
        if type(self.entries) is not int or not 12 <= self.entries <= 1_000_000:
            raise CrashError("entries must be an integer in 12..1000000")
        if type(self.authors) is not int or not 2 <= self.authors <= 1000:
            raise CrashError("authors must be an integer in 2..1000")
        if not 0.5 <= self.idle_timeout <= 600 or not 0.2 <= self.sync_interval <= 600:
            raise CrashError("idle_timeout is in [0.5, 600] s, sync_interval in [0.2, 600] s")
        if not 1 <= self.wait <= 3600:
            raise CrashError("wait is in [1, 3600] s")
        if self.log_level not in ("debug", "info", "warning", "error"):
            raise CrashError("log_level is debug, info, warning or error")


# -- results ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class Failure:
    round: int
    check: str
    """acknowledged, valid, peers, restart, resume, converge, trade, forks or stop."""
    node: str
    detail: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Kill:
    node: str
    mode: str
    during_sync: bool
    """At the kill, A held fewer entries than B had when the round began."""
    racing: bool
    second: bool
    before_ready: bool


@dataclass(frozen=True, slots=True, kw_only=True)
class Report:
    config: CampaignConfig
    rounds: int
    sync_estimate: float
    kills: tuple[Kill, ...]
    resume: tuple[float, ...]
    """Seconds from the last restart of a round to its trade done and sync converged."""
    failures: tuple[Failure, ...]
    elapsed: float
    directory: str | None

    def reproduce(self, number: int) -> str:
        """The command that replays round ``number`` (or, for -1, the whole campaign)."""
        c = self.config
        rounds = (f"--start {number} --rounds 1" if number >= 0 else
                  f"--start {c.start} --rounds {self.rounds}")
        return (f"python -m shinyo.tools.crash --seed {c.seed} {rounds} --entries {c.entries} "
                f"--authors {c.authors} --idle-timeout {c.idle_timeout:g} "
                f"--sync-interval {c.sync_interval:g}")

    def summary(self) -> dict[str, Any]:
        k = self.kills
        return {
            "seed": self.config.seed, "rounds": self.rounds, "entries": self.config.entries,
            "sync_estimate_s": round(self.sync_estimate, 3),
            "kills": {
                "total": len(k), "a": sum(x.node == "a" for x in k),
                "b": sum(x.node == "b" for x in k),
                "planned_sync": sum(x.mode == "sync" for x in k),
                "planned_trade": sum(x.mode == "trade" for x in k),
                "during_sync": sum(x.during_sync for x in k),
                "command_in_flight": sum(x.racing for x in k),
                "second_kills": sum(x.second for x in k),
                "before_ready": sum(x.before_ready for x in k),
            },
            "resume_s": ({"median": round(statistics.median(self.resume), 2),
                          "max": round(max(self.resume), 2)} if self.resume else None),
            "failures": [{"round": f.round, "check": f.check, "node": f.node,
                          "detail": f.detail,
                          "reproduce": self.reproduce(f.round)}
                         for f in self.failures],
            "elapsed_s": round(self.elapsed, 1),
            "directory": self.directory,
        }


# -- the campaign ------------------------------------------------------------------------


class _Abort(Exception):
    """The round cannot go on; its failure is recorded.  ``fatal``: nor can the campaign."""

    def __init__(self, *, fatal: bool = False) -> None:
        super().__init__()
        self.fatal = fatal


@dataclass(slots=True)
class _Trade:
    context: str
    id: str | None = None



class _Campaign:
    def __init__(self, config: CampaignConfig, root: Path, passphrase: str,
                 say: Callable[[str], None]) -> None:
        self.config = config
        self.root = root
        self.passphrase = passphrase
        self.say = say
        self.acks = _Acks()
        self.failures: list[Failure] = []
        self.kills: list[Kill] = []
        self.resume: list[float] = []
        self.sync_estimate = 0.0
        self.a_port = 0
        self._pool = ThreadPoolExecutor(max_workers=1)
        self._live: list[_Daemon] = []
        self.b = self._daemon("b", "b")

    # -- plumbing --

    def _daemon(self, name: str, label: str, bootstrap: str | None = None) -> _Daemon:
        seed = hashlib.sha256(f"shinyo-crash/{self.config.seed}/{label}".encode()).digest()
        home = self.root / label
        identity = _make_home(home, seed, self.passphrase, idle_timeout=self.config.idle_timeout,
                              sync_interval=self.config.sync_interval)
        d = _Daemon(name, home, identity=identity, passphrase=self.passphrase,
                    bootstrap=bootstrap, log_level=self.config.log_level)
        self._live.append(d)
        return d

    def _fail(self, number: int, check: str, node: str, detail: str) -> None:
        self.failures.append(Failure(round=number, check=check, node=node, detail=detail))
        self.say(f"  FAIL round {number} [{check}] node {node}: {detail}")

    def _until(self, check: Callable[[], Any], timeout: float, pause: float = 0.05) -> Any:
        """Poll ``check`` until it returns something true; None after ``timeout``."""
        deadline = time.monotonic() + timeout
        while True:
            with contextlib.suppress(ControlError):
                value = check()
                if value:
                    return value
            if time.monotonic() > deadline:
                return None
            time.sleep(pause)

    def close(self) -> None:
        for d in self._live:
            d.kill()
        self._pool.shutdown(wait=False, cancel_futures=True)

    # -- setup and end --

    def setup(self) -> None:
        c = self.config
        with Store.open(self.b.home / STORE_FILE) as store:
            for chain in make_chains(entries=c.entries, authors=c.authors,
                                     now=int(time.time()), seed=c.seed):
                for i in range(0, len(chain), 1000):
                    store.add_many(chain[i : i + 1000])
        if (reason := self.b.start()) is not None:
            raise CrashError(f"node B {reason}")
        if not c.calibrate:
            return
        # Calibration: a clean full sync, timed; kills in sync rounds are placed in it.
        a = self._daemon("a", "a-calibrate", self.b.address)
        total = self.b.call("status")["entries"]
        if (reason := a.start()) is not None:
            raise CrashError(f"node A {reason}")
        began = time.monotonic()
        if not self._until(lambda: a.call("status")["entries"] >= total, c.wait):
            raise CrashError(f"calibration: A did not sync B's {total} entries in {c.wait} s "
                             f"without any kill:\n{a.log_tail()}")
        self.sync_estimate = max(time.monotonic() - began, 0.05)
        self.a_port = a.port
        if a.stop() != 0:
            raise CrashError(f"calibration: A did not stop cleanly:\n{a.log_tail()}")
        self._live.remove(a)
        self.say(f"B holds {total} entries; a full sync took {self.sync_estimate:.2f} s")

    def finish(self) -> None:
        """The end: B stops cleanly and its whole store verifies."""
        if not self.b.alive:
            return
        if self.b.stop() != 0:
            self._fail(-1, "stop", "b", f"B did not stop cleanly:\n{self.b.log_tail()}")
        audit = audit_store(copy_store(self.b.home, self.root / "snap" / "b-final"),
                            owner=self.b.identity.pseudonym)
        for p in audit.problems:
            self._fail(-1, "valid", "b", p)
        for p in self.acks.check("b", self.b.identity.pseudonym.key, audit):
            self._fail(-1, "acknowledged", "b", p)

    # -- one round --

    def round(self, plan: Plan) -> None:
        number = plan.round
        failed = len(self.failures)
        a = self._daemon("a", f"a-{number}", self.b.address)
        a.port = self.a_port
        self.acks.reset("a")
        trade = _Trade(context=f"crash/{self.config.seed}/{number}")
        if not self.b.alive and (reason := self.b.start()) is not None:
            self._fail(number, "restart", "b", reason)
            raise _Abort(fatal=True)
        b_before = self.b.call("status")["entries"]
        if (reason := a.start()) is not None:
            raise CrashError(f"round {number}: a fresh A {reason}")
        self.a_port = self.a_port or a.port
        stopped = False
        resumed: float | None = None
        try:
            with _Poller(self.acks, (a, self.b)):
                killed, racing = self._strike(plan, a, trade, b_before)
                self._after_kill(plan, a, killed, b_before, racing=racing, second=False,
                                 restart_a=plan.again is None)
                if self.config.self_test:
                    raise _Abort  # the checks above had to fail; resuming shows no more
                if plan.again is not None:
                    # The restart is itself killed, maybe while it re-validates its store.
                    a.spawn()
                    time.sleep(plan.again)
                    ready = a.kill()
                    self._after_kill(plan, a, [a], b_before, racing=False, second=True,
                                     before_ready=not ready)
                began = time.monotonic()
                self._finish_trade(plan, a, trade)
                self._converge(number, a)
                resumed = time.monotonic() - began
                self.resume.append(resumed)
                self._final_checks(plan, a, trade)
            stopped = True
            self._stop_a(number, a)
        except _Abort as abort:
            if abort.fatal:
                raise
        finally:
            if not stopped:
                a.kill()
            self._live.remove(a)
            ok = len(self.failures) == failed
            self.say(f"round {number}: {plan.mode:<5} {plan.describe()}: "
                     f"{'ok' if ok else 'FAILED'}"
                     + ("" if resumed is None else f" (resumed in {resumed:.1f} s)"))
            if ok and not self.config.keep:
                shutil.rmtree(a.home, ignore_errors=True)
                a.log.unlink(missing_ok=True)

    def _strike(self, plan: Plan, a: _Daemon, trade: _Trade,
                b_before: int) -> tuple[list[_Daemon], bool]:
        """Run the round up to its kill; the nodes killed, and whether a command was in
        flight at one of them."""
        victims = [a if v == "a" else self.b for v in plan.victims]
        if plan.mode == "sync":
            def far_enough() -> bool:
                status = a.call("status")
                self.acks.status("a", status)
                return bool(status["entries"] >= plan.sync_at * b_before)

            if not self._until(far_enough, self.config.wait, pause=0.002):
                self._fail(plan.round, "converge", "a", f"A did not get {plan.sync_at:.0%} "
                           f"of B's entries in {self.config.wait} s, before any kill")
                raise _Abort
            time.sleep(plan.race_delay)
            _kill_all(victims)
            return victims, False
        for index in range(plan.step + 1):
            self._ready_for(plan, index, a, trade)
            if index < plan.step or not plan.race:
                try:
                    self._step(index, plan, a, trade)
                except ControlError as exc:
                    self._fail(plan.round, "trade", "a" if index % 2 == 0 else "b",
                               f"{STEPS[index]} refused before any kill: {exc.kind}: {exc}")
                    raise _Abort from None
                continue
            pending = self._pool.submit(self._step, index, plan, a, trade)
            time.sleep(plan.race_delay)
            _kill_all(victims)
            with contextlib.suppress(ControlError):
                pending.result(timeout=CALL_TIMEOUT)  # an answer that came is acknowledged
            commanded = "a" if index % 2 == 0 else "b"
            return victims, commanded in plan.victims
        _kill_all(victims)
        return victims, False

    def _ready_for(self, plan: Plan, index: int, a: _Daemon, trade: _Trade) -> None:
        """Wait until step ``index`` can be taken (its node has seen the step before)."""
        checks: dict[int, Callable[[], bool]] = {
            1: lambda: trade.id in _rows(self.b),
            2: lambda: _rows(a)[trade.id or ""]["state"] == "agreed",
            3: lambda: _rows(self.b)[trade.id or ""]["state"] == "they-committed",
        }
        if index in checks and not self._until(
                lambda: _suppress_key(checks[index]), self.config.wait):
            self._fail(plan.round, "trade", "a" if index % 2 == 0 else "b",
                       f"{STEPS[index]} never became possible before any kill")
            raise _Abort

    def _step(self, index: int, plan: Plan, a: _Daemon, trade: _Trade) -> None:
        if index == 0:
            result = a.call("propose", **{"with": self.b.identity.pseudonym.to_text(),
                                          "context": trade.context,
                                          "terms": trade.context.encode().hex()})
            trade.id = result["trade"]
        elif index == 1:
            result = self.b.call("accept", trade=trade.id)
        else:
            who = a if index == 2 else self.b
            result = who.call("rate", trade=trade.id, stars=plan.stars[index - 2])
        self.acks.entry("a" if index % 2 == 0 else "b", result)

    def _after_kill(self, plan: Plan, a: _Daemon, killed: Sequence[_Daemon], b_before: int, *,
                    racing: bool, second: bool, before_ready: bool = False,
                    restart_a: bool = True) -> None:
        """Checks 1-4 on each killed node (module docstring), then its restart."""
        snap = self.root / "snap"
        for d in killed:
            owner = d.identity.pseudonym
            newest = self.acks.newest(d.name)
            if self.config.self_test and d is a and newest is not None:
                lose_newest_entry(d.home / STORE_FILE, owner.key, newest)
            audit = audit_store(copy_store(d.home, snap / d.name), owner=owner)
            other = self.b if d is a else a
            theirs = read_ids(copy_store(other.home, snap / f"{other.name}-peer",
                                         live=other.alive))
            problems = ([("valid", p) for p in audit.problems]
                        + [("acknowledged", p) for p in self.acks.check(d.name, owner.key,
                                                                       audit)]
                        + [("peers", p) for p in check_peer(owner.key, audit.chains, theirs)]
                        + [("restart", p) for p in _leftovers(d.home)])
            for check, p in problems:
                self._fail(plan.round, check, d.name, p)
            a_held = audit.total if d is a else sum(len(c) for c in theirs.values())
            self.kills.append(Kill(node=d.name, mode=plan.mode, during_sync=a_held < b_before,
                                   racing=racing, second=second, before_ready=before_ready))
        for d in killed:
            if d is a and not restart_a:
                continue
            if (reason := d.start()) is not None:
                self._fail(plan.round, "restart", d.name, reason)
                raise _Abort(fatal=d is self.b)

    def _finish_trade(self, plan: Plan, a: _Daemon, trade: _Trade) -> None:
        deadline = time.monotonic() + self.config.wait
        last = ""
        while time.monotonic() < deadline:
            try:
                if self._advance_trade(plan, a, trade):
                    return
            except ControlError as exc:
                last = f"; last refusal {exc.kind}: {exc}"
            time.sleep(0.05)
        rows = {}
        with contextlib.suppress(ControlError):
            rows = {"a": _rows(a).get(trade.id or ""), "b": _rows(self.b).get(trade.id or "")}
        self._fail(plan.round, "resume", "a", f"the trade did not finish in {self.config.wait} "
                   f"s after the restart: {rows}{last}")
        raise _Abort

    def _advance_trade(self, plan: Plan, a: _Daemon, trade: _Trade) -> bool:
        """Take the next step the trade needs; True once both ends see it finished."""
        mine = _rows(a)
        if trade.id is None:  # the proposal was never acknowledged: is it there anyway?
            found = [t for t, r in mine.items() if r["context"] == trade.context]
            if not found:
                self._step(0, plan, a, trade)
                return False
            trade.id = found[0]
        ra = mine.get(trade.id)
        if ra is None:
            self._fail(plan.round, "resume", "a", f"A no longer knows trade {trade.id[:16]}")
            raise _Abort
        rb = _rows(self.b).get(trade.id)
        b_state = None if rb is None else rb["state"]
        if ra["state"] in ("cancelled", "complete"):
            return bool(b_state == ra["state"])
        if ra["state"] == "offered-out" and plan.cancel and b_state in (None, "offered-in"):
            self.acks.entry("a", a.call("cancel", trade=trade.id))
        elif b_state == "offered-in":
            self._step(1, plan, a, trade)
        elif ra["next"] == "commit":
            self._step(2, plan, a, trade)
        elif b_state == "they-committed":
            self._step(3, plan, a, trade)
        return False

    def _converge(self, number: int, a: _Daemon) -> None:
        snap = self.root / "snap"

        def same() -> bool:
            sa, sb = a.call("status"), self.b.call("status")
            if (sa["entries"], sa["chains"]) != (sb["entries"], sb["chains"]):
                return False
            return (read_ids(copy_store(a.home, snap / "a-live", live=True))
                    == read_ids(copy_store(self.b.home, snap / "b-live", live=True)))

        if not self._until(same, self.config.wait):
            counts = {}
            with contextlib.suppress(ControlError):
                counts = {"a": a.call("status")["entries"], "b": self.b.call("status")["entries"]}
            self._fail(number, "converge", "a", f"A and B did not come to hold the same entries "
                       f"in {self.config.wait} s: {counts}")
            raise _Abort

    def _final_checks(self, plan: Plan, a: _Daemon, trade: _Trade) -> None:
        number = plan.round
        for d in (a, self.b):
            if forks := d.call("forks"):
                self._fail(number, "forks", d.name, f"{len(forks)} fork proofs: "
                           f"{[(f['author'][:12], f['seq']) for f in forks]}")
        audit = audit_store(copy_store(a.home, self.root / "snap" / "a-end", live=True),
                            owner=a.identity.pseudonym)
        for p in audit.problems:
            self._fail(number, "valid", "a", p)
        for p in self.acks.check("a", a.identity.pseudonym.key, audit):
            self._fail(number, "acknowledged", "a", p)
        b_ids = read_ids(copy_store(self.b.home, self.root / "snap" / "b-end", live=True))
        for p in self.acks.check("b", self.b.identity.pseudonym.key,
                                 StoreAudit(chains=b_ids, problems=())):
            self._fail(number, "acknowledged", "b", p)
        ra, rb = _rows(a)[trade.id or ""], _rows(self.b)[trade.id or ""]
        got = (ra["state"], ra["given"], ra["received"], rb["state"], rb["given"], rb["received"])
        sa, sb = plan.stars
        want = (("cancelled", None, None) * 2 if ra["state"] == "cancelled" else
                ("complete", sa, sb, "complete", sb, sa))
        if got != want:
            self._fail(number, "trade", "a", f"trade rows (state, given, received) for A, B: "
                       f"{got}, expected {want}")

    def _stop_a(self, number: int, a: _Daemon) -> None:
        code = a.stop()
        left = [n for n in ("control.sock", "control.token") if (a.home / n).exists()]
        if code != 0 or left:
            self._fail(number, "stop", "a", f"SIGTERM: exit {code}, left {left}:\n"
                       f"{a.log_tail()}")


def _suppress_key(check: Callable[[], bool]) -> bool:
    """A row not there yet reads as "not yet"."""
    try:
        return check()
    except KeyError:
        return False


def run_campaign(config: CampaignConfig, *, plans: Sequence[Plan] | None = None,
                 directory: Path | None = None,
                 say: Callable[[str], None] = lambda _: None) -> Report:
    """Run the rounds (``plans``, or those drawn from the seed) and report.

    The daemons, stores and logs live in a new directory under ``directory``
    (default: the system's temporary directory), removed at the end unless a
    round failed or ``config.keep``.
    """
    if plans is None:
        plans = [Plan.draw(config.seed, n)
                 for n in range(config.start, config.start + config.rounds)]
    root = Path(tempfile.mkdtemp(prefix="shinyo-crash-", dir=directory))
    campaign = _Campaign(config, root, os.environ.get(PASSPHRASE_ENV) or DEFAULT_PASSPHRASE,
                         say)
    began = time.monotonic()
    try:
        campaign.setup()
        for plan in plans:
            try:
                campaign.round(plan)
            except _Abort:
                break  # fatal: B is gone
        campaign.finish()
    except CrashError as exc:
        raise CrashError(f"{exc}\n(files kept in {root})") from None
    finally:
        campaign.close()
    kept = config.keep or bool(campaign.failures)
    if not kept:
        shutil.rmtree(root, ignore_errors=True)
    return Report(config=config, rounds=len(plans), sync_estimate=campaign.sync_estimate,
                  kills=tuple(campaign.kills), resume=tuple(campaign.resume),
                  failures=tuple(campaign.failures),
                  elapsed=time.monotonic() - began, directory=str(root) if kept else None)


# -- command line --------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m shinyo.tools.crash",
                                description="kill -9 node daemons during sync and trades; "
                                "check nothing acknowledged is lost (see the module docstring)")
    p.add_argument("--rounds", type=int, default=20)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--start", type=int, default=0, help="first round number (to replay one)")
    p.add_argument("--entries", type=int, default=4000, help="entries B starts with")
    p.add_argument("--authors", type=int, default=8)
    p.add_argument("--idle-timeout", type=float, default=4.0)
    p.add_argument("--sync-interval", type=float, default=1.0)
    p.add_argument("--wait", type=float, default=60.0,
                   help="seconds a round may take to resume after its kills")
    p.add_argument("--self-test", action="store_true",
                   help="lose each killed A's newest acknowledged entry: the campaign must fail")
    p.add_argument("--keep", action="store_true", help="keep the directory even if all passed")
    p.add_argument("--log-level", default="info", choices=("debug", "info", "warning", "error"),
                   help="the daemons' log level")
    p.add_argument("--dir", help="where to make the campaign's directory")
    p.add_argument("--json", action="store_true", help="the report as JSON on stdout")
    args = p.parse_args(argv)
    out = sys.stderr if args.json else sys.stdout

    def say(line: str) -> None:
        print(line, file=out, flush=True)

    try:
        config = CampaignConfig(rounds=args.rounds, seed=args.seed, start=args.start,
                                entries=args.entries, authors=args.authors,
                                idle_timeout=args.idle_timeout, sync_interval=args.sync_interval,
                                wait=args.wait, self_test=args.self_test, keep=args.keep,
                                log_level=args.log_level)
        report = run_campaign(config, directory=Path(args.dir) if args.dir else None, say=say)
    except CrashError as exc:
        print(f"crash: {exc}", file=sys.stderr)
        return 2
    summary = report.summary()
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        kills = summary["kills"]
        say(f"{report.rounds} rounds, {kills['total']} kills (A {kills['a']}, B {kills['b']}; "
            f"{kills['during_sync']} during sync, {kills['planned_trade']} in trades, "
            f"{kills['command_in_flight']} with a command in flight, "
            f"{kills['second_kills']} second kills, {kills['before_ready']} before ready); "
            f"resume {summary['resume_s']}; {len(report.failures)} failures; "
            f"{report.elapsed:.0f} s")
        for f in summary["failures"]:
            say(f"  round {f['round']} [{f['check']}] {f['node']}: {f['detail']}\n"
                f"    reproduce: {f['reproduce']}")
        if report.directory:
            say(f"kept {report.directory}")
    return 1 if report.failures else 0


if __name__ == "__main__":
    sys.exit(main())
