"""What a crash campaign does: its options, and each round's plan drawn from the seed (issue 7).

:class:`CampaignConfig` holds the options of ``python -m shinyo.tools.crash``
and :class:`Plan` one round's decisions: *sync* or *trade* mode, whom to kill
(A, B or both), where (at a fraction of the sync, or at a trade step of
:data:`STEPS`, just after its answer or while it is in flight), whether to
kill A again soon after its restart, whether to cancel a trade still only
offered, and the stars each side gives.  Both validate on construction and
raise :class:`CrashError`, the campaign's one error.  :meth:`Plan.draw` is a
function of the seed and the round number only, so ``--start R --rounds 1``
replays round R; tests write plans by hand.  The campaign itself is described
in :mod:`.crash`.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Final

from shinyo import ShinyoError

__all__ = ["MODES", "STEPS", "CampaignConfig", "CrashError", "Plan"]

MODES: Final = ("sync", "trade")
STEPS: Final = ("propose", "accept", "rate-a", "rate-b")
"""The trade's steps in order: A proposes, B accepts, A rates, B rates."""


class CrashError(ShinyoError):
    """The campaign could not run (bad options, a daemon that never started)."""


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
