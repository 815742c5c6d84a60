"""Judging ``shinyo bench``'s figures: linear growth and the issue's targets.

Both are pure functions of measured numbers, kept apart from the measuring
so the tests can feed them synthetic figures (a benchmark's own logic must
be able to fail a test; its speed must not).

*Linear growth* (DESIGN.md 5: "cost grows linearly with history length"):
a cost is linear when the time per entry does not grow with the number of
entries.  Measured figures scatter, and small runs carry fixed costs
(connecting, the first round trips) that make their time per entry *higher*,
so the check is one-sided and takes the best figure seen so far:

    at every size, the time per entry is at most LINEAR_LIMIT times the
    lowest time per entry measured at any smaller size.

With LINEAR_LIMIT = 1.5, 100 times the entries may take at most 150 times
as long: the time per entry may creep up by a fifth per tenfold (a B-tree
a level deeper, caches missed more often), not by 10x as an n**2 cost would.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Any, Final

from shinyo import ShinyoError

__all__ = ["CRITERION", "LINEAR_LIMIT", "BenchError", "Compare", "Growth", "Target", "nearest"]

LINEAR_LIMIT: Final = 1.5
"""The most the time per entry may grow over the best at a smaller size."""
CRITERION: Final = (f"time per entry at every size <= {LINEAR_LIMIT}x the lowest time per "
                    f"entry at any smaller size")


class BenchError(ShinyoError):
    """The benchmark could not run, its figures cannot be judged, or the nodes did not
    converge on the entries (a fast wrong result never reports a figure)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Growth:
    """How the time per entry of one measurement changes with the number of entries."""

    what: str
    sizes: tuple[int, ...]
    """Entries at each measured point, strictly ascending."""
    per_entry_s: tuple[float, ...]
    """Seconds per entry at each size (shinyo)."""
    baseline_per_entry_s: tuple[float, ...] | None = None
    """Seconds per entry of the raw baseline at each size, if it was measured per size."""
    limit: float = LINEAR_LIMIT

    def __post_init__(self) -> None:
        if not self.sizes:
            raise BenchError(f"{self.what}: no sizes to judge")
        if len(self.per_entry_s) != len(self.sizes) or (
                self.baseline_per_entry_s is not None
                and len(self.baseline_per_entry_s) != len(self.sizes)):
            raise BenchError(f"{self.what}: one time per entry per size is needed")
        if any(type(n) is not int or n < 1 for n in self.sizes) or any(
                b <= a for a, b in zip(self.sizes, self.sizes[1:], strict=False)):
            raise BenchError(f"{self.what}: sizes must be positive and strictly ascending, "
                                   f"got {list(self.sizes)}")
        for t in (*self.per_entry_s, *(self.baseline_per_entry_s or ())):
            if not (math.isfinite(t) and t > 0):
                raise BenchError(f"{self.what}: a time per entry must be positive, got {t}")
        if not self.limit >= 1:
            raise BenchError("the linear limit must be at least 1")

    @property
    def relative(self) -> tuple[float, ...]:
        """Time per entry at each size over that at the smallest size."""
        return tuple(t / self.per_entry_s[0] for t in self.per_entry_s)

    @property
    def baseline_relative(self) -> tuple[float, ...] | None:
        """The same for the raw baseline: how much the limit itself grows."""
        b = self.baseline_per_entry_s
        return None if b is None else tuple(t / b[0] for t in b)

    @property
    def steps(self) -> tuple[float, ...]:
        """At each size after the first: time per entry over the lowest at a smaller size."""
        return tuple(self.per_entry_s[i] / min(self.per_entry_s[:i])
                     for i in range(1, len(self.sizes)))

    @property
    def worst(self) -> float | None:
        """The largest step; None with a single size."""
        return max(self.steps, default=None)

    @property
    def linear(self) -> bool | None:
        """True if every step is within ``limit``; None (not judged) with a single size."""
        worst = self.worst
        return None if worst is None else worst <= self.limit

    @property
    def verdict(self) -> str:
        linear = self.linear
        if linear is None:
            return "not judged (one size)"
        return (f"{'yes' if linear else 'NO'} (worst step {self.worst:.2f}x, "
                f"limit {self.limit:.2f}x)")

    def to_json(self) -> dict[str, Any]:
        return {
            "what": self.what,
            "sizes": list(self.sizes),
            "per_entry_us": [round(t * 1e6, 3) for t in self.per_entry_s],
            "relative": [round(r, 3) for r in self.relative],
            "baseline_per_entry_us": None if self.baseline_per_entry_s is None else
            [round(t * 1e6, 3) for t in self.baseline_per_entry_s],
            "baseline_relative": None if self.baseline_relative is None else
            [round(r, 3) for r in self.baseline_relative],
            "worst_step": None if self.worst is None else round(self.worst, 3),
            "limit": self.limit,
            "linear": self.linear,
            "criterion": CRITERION,
        }


class Compare(Enum):
    AT_LEAST = ">="
    AT_MOST = "<="


@dataclass(frozen=True, slots=True, kw_only=True)
class Target:
    """One of the issue's targets against the figure this run measured for it."""

    name: str
    measured: float
    compare: Compare
    goal: float
    unit: str
    """How ``measured`` and ``goal`` read: "x raw" for ratios, "bytes" for sizes."""
    where: str
    """What was measured, e.g. "bundle of 1000 trades (6000 entries)"."""

    def __post_init__(self) -> None:
        if not math.isfinite(self.measured) or not math.isfinite(self.goal):
            raise BenchError(f"{self.name}: a target needs finite figures")

    @property
    def met(self) -> bool:
        if self.compare is Compare.AT_LEAST:
            return self.measured >= self.goal
        return self.measured <= self.goal

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "measured": round(self.measured, 3),
                "compare": self.compare.value, "goal": self.goal, "unit": self.unit,
                "where": self.where, "met": self.met}


def nearest(sizes: Sequence[int], reference: int) -> int:
    """The index of the size nearest ``reference`` on a log scale (ties: the larger)."""
    if not sizes:
        raise BenchError("no sizes were measured")
    return min(range(len(sizes)),
               key=lambda i: (abs(math.log(sizes[i] / reference)), -sizes[i]))
