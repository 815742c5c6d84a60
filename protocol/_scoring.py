"""Scores from classified trades (spec/scoring.md), deterministic and as-of a time.

Input: the :class:`TradeOutcome` of every trade of one subject, classified at
``as_of``.  Output: a :class:`ScoreReport` with counts and every policy's score,
so a report is the same bytes wherever it is computed.

Theory of operation
-------------------
1. *Samples.*  A trade counts for the subject's score when its outcome carries
   stars: ``rated`` (the counterparty's stars), ``stalled`` and ``withheld``
   (``MIN_STARS``: hiding or stalling never pays).  ``expired``, ``retracted``,
   ``cancelled`` and ``pending`` carry none.
2. *One per counterparty per period.*  Samples from one counterparty whose
   settle times fall in the same ``DEDUPE_DAYS``-day bucket (counted from the
   Unix epoch) merge into one sample, their mean, timed at the latest; so
   repeat trades with one partner cannot inflate a score or bury a bad rating.
3. *Policies* reduce the samples to a number; :func:`meets` checks a report
   against an app's bar.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from fractions import Fraction

from ._constants import DAY
from ._errors import LocalProtocolError
from ._outcome import Outcome, TradeOutcome

__all__ = [
    "POLICIES", "TIERS", "Policy", "Sample", "ScoreReport", "Tier", "Verdict", "meets", "score",
]

DEDUPE_DAYS = 7


@dataclass(frozen=True, slots=True, kw_only=True)
class Sample:
    """One counted rating: its stars (a merged sample may be fractional) and time."""

    stars: Fraction
    at: int
    counterparty: bytes


@dataclass(frozen=True, slots=True, kw_only=True)
class Tier:
    name: str
    min_mean: float  # the window mean must reach this
    min_count: int  # samples inside the window
    min_completion: float  # completed / accepted


#: Default rank tiers, best first (spec/scoring.md 4).  The window is 90 days.
TIERS: tuple[Tier, ...] = (
    Tier(name="platinum", min_mean=4.8, min_count=20, min_completion=0.98),
    Tier(name="gold", min_mean=4.6, min_count=10, min_completion=0.95),
    Tier(name="silver", min_mean=4.3, min_count=5, min_completion=0.90),
    Tier(name="bronze", min_mean=4.0, min_count=1, min_completion=0.80),
)
REGULAR = "regular"
TIER_ORDER = (*(t.name for t in TIERS), REGULAR)


@dataclass(frozen=True, slots=True, kw_only=True)
class Policy:
    """A named scoring policy with its parameters (``name:key=value,...``)."""

    name: str
    params: tuple[tuple[str, float], ...] = ()

    def get(self, key: str) -> float:
        return dict(self.params)[key]

    @classmethod
    def parse(cls, text: str) -> Policy:
        """Parse ``"window:days=30"``; unknown names or keys raise LocalProtocolError."""
        name, _, rest = text.partition(":")
        if name not in POLICIES:
            raise LocalProtocolError(
                f"unknown policy {name!r}; choose one of {', '.join(sorted(POLICIES))}")
        params = dict(POLICIES[name])
        for item in filter(None, rest.split(",")):
            key, eq, value = item.partition("=")
            if key not in params or not eq:
                raise LocalProtocolError(
                    f"policy {name} takes {', '.join(sorted(params)) or 'no parameters'}; "
                    f"got {item!r}")
            try:
                number = float(value)
            except ValueError:
                raise LocalProtocolError(f"{name}:{key} must be a number, got {value!r}") from None
            if not math.isfinite(number) or number < 0:
                raise LocalProtocolError(f"{name}:{key} must be a finite number >= 0")
            params[key] = number
        return cls(name=name, params=tuple(sorted(params.items())))

    def __str__(self) -> str:
        args = ",".join(f"{k}={_num(v)}" for k, v in self.params)
        return f"{self.name}:{args}" if args else self.name


#: Every policy and its default parameters (spec/scoring.md 3).
POLICIES: dict[str, dict[str, float]] = {
    "mean": {},
    "window": {"days": 90},
    "last": {"n": 50},
    "trimmed": {"pct": 10},
    "bayes": {"prior": 3.5, "weight": 10},
}


def _num(v: float) -> str:
    return str(int(v)) if float(v).is_integer() else repr(v)


@dataclass(frozen=True, slots=True, kw_only=True)
class ScoreReport:
    """Counts and scores for one subject as of one time."""

    as_of: int
    counts: dict[str, int]
    completion_rate: float | None
    reveal_rate: float | None
    scores: dict[str, float | None]  # policy text -> score (None: no samples)
    tier: str
    window_mean: float | None
    window_count: int
    samples: tuple[Sample, ...] = field(repr=False)


def _merge(outcomes: Iterable[TradeOutcome]) -> list[Sample]:
    buckets: dict[tuple[bytes, int], list[TradeOutcome]] = {}
    for o in outcomes:
        if o.stars is None:
            continue
        assert o.at is not None
        key = (o.counterparty.key, o.at // (DEDUPE_DAYS * DAY))
        buckets.setdefault(key, []).append(o)
    samples = [
        Sample(stars=Fraction(sum(o.stars or 0 for o in group), len(group)),
               at=max(o.at or 0 for o in group), counterparty=key[0])
        for key, group in buckets.items()
    ]
    # Newest first; ties broken by counterparty so the order is total.
    samples.sort(key=lambda s: (-s.at, s.counterparty))
    return samples


def _mean(xs: Sequence[Fraction]) -> Fraction | None:
    return sum(xs, Fraction(0)) / len(xs) if xs else None


def _apply(policy: Policy, samples: Sequence[Sample], as_of: int) -> Fraction | None:
    stars = [s.stars for s in samples]
    if policy.name == "mean":
        return _mean(stars)
    if policy.name == "window":
        since = as_of - int(policy.get("days") * DAY)
        return _mean([s.stars for s in samples if s.at > since])
    if policy.name == "last":
        return _mean(stars[: int(policy.get("n"))])
    if policy.name == "trimmed":
        ordered = sorted(stars)
        cut = math.floor(len(ordered) * policy.get("pct") / 100)
        return _mean(ordered[cut : len(ordered) - cut] if len(ordered) > 2 * cut else [])
    assert policy.name == "bayes"
    prior = Fraction(policy.get("prior")).limit_denominator(1000)
    weight = Fraction(policy.get("weight")).limit_denominator(1000)
    if not stars:
        return None  # a prior alone is not a score: a fresh pseudonym has none
    return (prior * weight + sum(stars, Fraction(0))) / (weight + len(stars))


def round4(value: Fraction) -> float:
    """The exact rational rounded to 4 decimals, ties to even (spec/scoring.md 5)."""
    return float(Fraction(round(value * 10_000), 10_000))


def _rate(num: int, den: int) -> float | None:
    return round4(Fraction(num, den)) if den else None


def score(
    outcomes: Iterable[TradeOutcome],
    *,
    as_of: int,
    policies: Sequence[Policy] = (),
    tiers: Sequence[Tier] = TIERS,
    tier_window_days: int = 90,
) -> ScoreReport:
    """Count, score under each policy (all defaults if none given), and rank."""
    items = list(outcomes)
    by = Counter(i.outcome for i in items)
    cancelled_by_subject = sum(1 for i in items if i.cancelled_by == i.subject)
    counts = {
        "trades": len(items),
        "rated": by[Outcome.RATED],
        "counterparties": len({i.counterparty for i in items}),
        "cancelled": by[Outcome.CANCELLED],
        "cancelled_by_subject": cancelled_by_subject,
        "stalled": by[Outcome.STALLED],
        "withheld": by[Outcome.WITHHELD],
        "expired": by[Outcome.EXPIRED],
        "retracted": by[Outcome.RETRACTED],
        "pending": by[Outcome.PENDING],
        "given": sum(1 for i in items if i.given is not None),
        "unconfirmed": sum(1 for i in items if i.outcome is Outcome.RATED and not i.confirmed),
    }
    # A withheld trade is not completed: without evidence a verifier cannot tell
    # it from the subject's own stall, and hiding must never pay (review F4).
    completed = by[Outcome.RATED] + by[Outcome.RETRACTED] + by[Outcome.EXPIRED]
    unresolved = by[Outcome.STALLED] + by[Outcome.WITHHELD] + cancelled_by_subject
    completion = _rate(completed, completed + unresolved)
    reveal = _rate(counts["given"], counts["given"] + by[Outcome.STALLED])
    samples = _merge(items)
    chosen = list(policies) or [Policy.parse(name) for name in POLICIES]
    scores = {str(p): _rounded(p, samples, as_of) for p in chosen}
    window = Policy.parse(f"window:days={tier_window_days}")
    in_window = [s for s in samples if s.at > as_of - tier_window_days * DAY]
    wmean = _apply(window, samples, as_of)
    tier = REGULAR
    for t in tiers:
        if (wmean is not None and wmean >= Fraction(t.min_mean).limit_denominator(1000)
                and len(in_window) >= t.min_count
                and completion is not None and completion >= t.min_completion):  # 4 decimals
            tier = t.name
            break
    return ScoreReport(
        as_of=as_of, counts=counts, completion_rate=completion, reveal_rate=reveal,
        scores=scores, tier=tier, window_mean=None if wmean is None else round4(wmean),
        window_count=len(in_window), samples=tuple(samples),
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class Verdict:
    ok: bool
    reasons: tuple[str, ...]

    def __bool__(self) -> bool:
        return self.ok


def meets(
    report: ScoreReport,
    *,
    min_score: float | None = None,
    policy: str | None = None,
    min_trades: int | None = None,
    tier: str | None = None,
) -> Verdict:
    """Does ``report`` clear an app's bar?  Every failed condition is a reason.

    ``min_score`` applies to ``policy`` (default: the Bayesian average, so a
    handful of perfect ratings cannot clear a high bar).  ``min_trades`` counts
    rated trades.  A bar with no condition is the default bar, ``min_trades=1``
    (spec/scoring.md 6): a fresh pseudonym with no history never passes.
    """
    if min_score is None and min_trades is None and tier is None:
        min_trades = 1
    reasons = []
    if min_score is not None:
        key = str(Policy.parse(policy or "bayes"))
        value = report.scores.get(key)
        if value is None:
            value = _rounded(Policy.parse(key), report.samples, report.as_of)
        if value is None or value < min_score:
            reasons.append(f"{key} score {value} is below {min_score}")
    if min_trades is not None and report.counts["rated"] < min_trades:
        reasons.append(f"{report.counts['rated']} rated trades, fewer than {min_trades}")
    if tier is not None:
        if tier not in TIER_ORDER:
            raise LocalProtocolError(f"unknown tier {tier!r}; one of {', '.join(TIER_ORDER)}")
        if TIER_ORDER.index(report.tier) > TIER_ORDER.index(tier):
            reasons.append(f"tier {report.tier} is below {tier}")
    return Verdict(ok=not reasons, reasons=tuple(reasons))


def _rounded(policy: Policy, samples: Sequence[Sample], as_of: int) -> float | None:
    value = _apply(policy, samples, as_of)
    return None if value is None else round4(value)

