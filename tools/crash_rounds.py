"""The crash campaign's rounds: start the nodes, kill them, check, restart, resume (issue 7).

:class:`_Campaign` owns the campaign's directory and node B, started once on a
store prefilled with ``bench_sync.make_chains`` (and, with ``calibrate``,
timed syncing a first, unkilled A).  Each round (:meth:`_Campaign.round`)
starts a fresh A on the same port and, while a :class:`_Poller` records every
``status`` answer as an acknowledgement:

* runs up to its kill (``_strike``): in a sync round until A says it holds the
  plan's fraction of B's entries; in a trade round step by step through the
  control sockets, the kill coming just after a step's answer or, on a worker
  thread, while it is in flight;
* judges each dead node with checks 1-4 of :mod:`.crash`'s docstring on a copy
  of its store, then restarts it (``_after_kill``), and perhaps kills A again;
* resumes: finishes or cancels the trade (``_finish_trade``), waits until A
  holds what B holds (``_converge``), checks forks, stores, acknowledgements
  and trade rows (``_final_checks``), and stops A with SIGTERM (``_stop_a``).

Every miss is recorded as a :class:`Failure` and the round goes on while it
can; :class:`_Abort` ends one that cannot (``fatal``: the campaign too, when B
does not restart).  :func:`.crash.run_campaign` runs the rounds in turn.
"""

from __future__ import annotations

import contextlib
import hashlib
import shutil
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from shinyo.node._control import ControlError
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
from .crash_plans import STEPS, CampaignConfig, CrashError, Plan
from .crash_report import Failure, Kill


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
