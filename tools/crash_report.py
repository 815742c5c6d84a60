"""What a crash campaign found: its failures, its kills, and the report (issue 7).

A :class:`Failure` names the round, the check that missed (checks 1-4 of
:mod:`.crash`'s docstring, and those of the resumption), the node and what was
wrong.  A :class:`Kill` records what one SIGKILL hit -- a sync in progress, a
command in flight, a restart not yet ready -- so that the report shows the
campaign exercised what it claims to.  :class:`Report` sums a campaign up
(:meth:`~Report.summary`, also the ``--json`` output) and gives the command
that replays a failed round (:meth:`~Report.reproduce`).
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from typing import Any

from .crash_plans import CampaignConfig

__all__ = ["Failure", "Kill", "Report"]


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
                f"--sync-interval {c.sync_interval:g} --wait {c.wait:g}"
                + (" --self-test" if c.self_test else ""))

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
