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

Modules
-------
:mod:`.crash_plans` (the options and each round's plan), :mod:`.crash_rounds`
(the rounds: kills, checks, restarts, resumption), :mod:`.crash_daemons` (the
node processes), :mod:`.crash_checks` (the store checks and the
acknowledgements) and :mod:`.crash_report` (what was found).  This module runs
the rounds (:func:`run_campaign`) and is the command line.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Final

from shinyo.node._keystore import PASSPHRASE_ENV

from .crash_plans import MODES, STEPS, CampaignConfig, CrashError, Plan
from .crash_report import Failure, Kill, Report
from .crash_rounds import _Abort, _Campaign

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

DEFAULT_PASSPHRASE: Final = "shinyo crash campaign"


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
