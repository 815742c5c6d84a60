"""Weighted scores and gates (spec/trust.md 6): each rating counts for its rater's weight.

The weighted policies are the policies of spec/scoring.md with ``weighted-``
in front (``weighted-bayes:prior=3.5,weight=10``).  They run over the same
samples -- one per counterparty per week, newest first -- but each sample
counts for its counterparty's trust weight (:mod:`shinyo._trust`), a fraction
from 0 (unknown, forked, a Sybil far from the roots) to 1 (a fully trusted
rater).  Counts become sums of weights: ``trusted_rated`` is how many fully
trusted ratings the subject's rated trades amount to.

Without trust roots there are no weights: every weighted policy falls back to
its unweighted twin, and the report says so (``weighted`` false, ``fallback``).

The weights that score a subject are those of *its view* (spec/trust.md 4.5):
the walk leaves the subject's own out-edges out, so it cannot lend its trust
to raters it made itself.  :func:`trust_score` checks that the weights it is
given were walked for the subject it scores.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any, Final

from ._constants import DAY
from ._errors import LocalProtocolError
from ._identity import Pseudonym
from ._outcome import Outcome, TradeOutcome
from ._scoring import (
    POLICIES,
    REGULAR,
    TIER_ORDER,
    TIERS,
    Policy,
    Sample,
    Tier,
    Verdict,
    round4,
    score,
)
from ._trust import TRUST_STEPS, WEIGHT_ONE, TrustWeights, View

__all__ = [
    "WEIGHTED_POLICIES", "TrustReport", "is_weighted", "parse_policy", "trust_score",
    "weighted_meets",
]

PREFIX: Final = "weighted-"

#: Every weighted policy and its default parameters: the unweighted ones, renamed.
WEIGHTED_POLICIES: dict[str, dict[str, float]] = {
    PREFIX + name: dict(params) for name, params in POLICIES.items()
}

FALLBACK: Final = "no trust roots: every score is unweighted (spec/trust.md 6.4)"
DEFAULT_MIN_TRADES: Final = 1
"""The bar :func:`weighted_meets` sets when given none (spec/trust.md 6.3)."""


def is_weighted(policy: Policy) -> bool:
    return policy.name.startswith(PREFIX)


def parse_policy(text: str) -> Policy:
    """Parse any policy, unweighted (``bayes``) or weighted (``weighted-bayes:weight=5``).

    A weighted policy takes the same parameters as its twin, checked the same
    way; its canonical text is the twin's with the prefix.
    """
    if not text.startswith(PREFIX):
        return Policy.parse(text)
    name = text[len(PREFIX):].partition(":")[0]
    if name not in POLICIES:
        choices = ", ".join(sorted(WEIGHTED_POLICIES))
        raise LocalProtocolError(f"unknown policy {PREFIX + name!r}; choose one of {choices}")
    twin = Policy.parse(text[len(PREFIX):])
    return Policy(name=PREFIX + twin.name, params=twin.params)


def _twin(policy: Policy) -> Policy:
    return Policy(name=policy.name[len(PREFIX):], params=policy.params)


def _frac(value: float) -> Fraction:
    # Parameters are read as the nearest fraction with a denominator of at most
    # 1000, as scoring.md 3 reads the Bayesian prior and weight.
    return Fraction(value).limit_denominator(1000)


# A sample and its rater's weight in millionths (WEIGHT_ONE): integers keep the
# sums cheap; only the final quotient is a Fraction, exact as scoring.md 5 asks.
Weighted = Sequence[tuple[Sample, int]]


def _dot(pairs: Weighted) -> Fraction:
    """The sum of weight x stars (in millionths of a star)."""
    whole = 0
    part = Fraction(0)
    for s, w in pairs:
        if s.stars.denominator == 1:
            whole += w * s.stars.numerator
        else:
            part += w * s.stars  # a merged sample (scoring.md 1.2)
    return whole + part


def _mean(pairs: Weighted) -> Fraction | None:
    total = sum(w for _, w in pairs)
    if not total:
        return None  # no trusted weight: no score, however many samples
    return _dot(pairs) / total


def _trimmed(pairs: Weighted, pct: Fraction) -> Fraction | None:
    """Drop ``pct`` % of the total weight from each end of the stars (spec/trust.md 6.1).

    Positions along the weight axis are scaled by ``100 * pct.denominator`` so
    every cut falls on an integer.
    """
    scale = 100 * pct.denominator
    total = sum(w for _, w in pairs)
    lo = total * pct.numerator
    hi = total * scale - lo
    if hi <= lo:
        return None
    kept: list[tuple[Sample, int]] = []
    at = 0
    for s, w in sorted(pairs, key=lambda p: p[0].stars):  # equal stars: order is moot
        part = min((at + w) * scale, hi) - max(at * scale, lo)
        if part > 0:
            kept.append((s, part))
        at += w
    return _dot(kept) / (hi - lo)


def _apply(policy: Policy, pairs: Weighted, as_of: int) -> Fraction | None:
    name = policy.name[len(PREFIX):]
    if name == "mean":
        return _mean(pairs)
    if name == "window":
        since = as_of - int(policy.get("days") * DAY)
        return _mean([p for p in pairs if p[0].at > since])
    if name == "last":
        return _mean(pairs[: int(policy.get("n"))])
    if name == "trimmed":
        return _trimmed(pairs, _frac(policy.get("pct")))
    assert name == "bayes"
    total = sum(w for _, w in pairs)
    if not total:
        return None  # a prior alone is not a score (scoring.md 3)
    prior, weight = _frac(policy.get("prior")), _frac(policy.get("weight"))
    return (prior * weight * WEIGHT_ONE + _dot(pairs)) / (weight * WEIGHT_ONE + total)


def _round(value: Fraction | None) -> float | None:
    return None if value is None else round4(value)


@dataclass(frozen=True, slots=True, kw_only=True)
class TrustReport:
    """A subject's weighted scores as seen from the verifier's roots (spec/trust.md 6, 8)."""

    subject: Pseudonym
    as_of: int
    weighted: bool  # False: no roots, every score is the unweighted twin's
    fallback: str | None  # why the scores are unweighted, if they are
    roots: tuple[Pseudonym, ...]
    dropped_roots: tuple[Pseudonym, ...]  # named but forked
    forked: bool  # the evidence shows the subject forked: it passes no bar
    scores: dict[str, float | None]
    trusted_rated: float  # sum of the weights of rated trades (fallback: rated trades)
    completion_rate: float | None
    window_mean: float | None
    window_weight: float
    tier: str
    raters: tuple[tuple[Pseudonym, int], ...]  # each counterparty's weight, millionths
    graph: dict[str, int | None] | None  # None in the fallback
    view: View | None  # "subject" (normative, 4.5), "shared" (approximation); None: fallback
    outcomes: tuple[TradeOutcome, ...] = field(repr=False)
    weights: TrustWeights | None = field(repr=False)

    def to_json_obj(self) -> dict[str, Any]:
        """The ``trust`` object of the verifier's JSON (spec/trust.md 8)."""
        return {
            "weighted": self.weighted,
            "fallback": self.fallback,
            "roots": [p.to_text() for p in self.roots],
            "dropped_roots": [p.to_text() for p in self.dropped_roots],
            "subject_forked": self.forked,
            "scores": self.scores,
            "trusted_rated": self.trusted_rated,
            "completion_rate": self.completion_rate,
            "window_mean": self.window_mean,
            "window_weight": self.window_weight,
            "tier": self.tier,
            "raters": [{"counterparty": p.to_text(), "weight": round4(Fraction(w, WEIGHT_ONE))}
                       for p, w in self.raters],
            "graph": self.graph,
            "view": self.view,
            "selection": (None if self.weights is None or self.weights.selection is None
                          else self.weights.selection.to_json_obj()),
        }


def trust_score(
    subject: Pseudonym,
    outcomes: Iterable[TradeOutcome],
    *,
    as_of: int,
    weights: TrustWeights | None,
    policies: Sequence[Policy] = (),
    tiers: Sequence[Tier] = TIERS,
    tier_window_days: int = 90,
    shared_walk: bool = False,
) -> TrustReport:
    """Score ``subject``'s classified trades, each weighted by its counterparty's weight.

    ``weights`` are the subject's view (spec/trust.md 4.5), walked for this
    very subject; the one path for scoring one pseudonym is::

        weights = trust_weights(evidence.graph(), roots, subject=subject) if roots else None
        report = trust_score(subject, outcomes, as_of=now, weights=weights)

    ``weights`` None (no roots) gives the unweighted scores, flagged as such
    (spec/trust.md 6.4).  Weights walked for another subject are refused; the
    shared walk (``trust_weights`` without ``subject``) only with
    ``shared_walk=True``: an informative approximation for ranking many
    subjects, which overstates a subject that lends trust to its own raters.
    Its report says ``view == "shared"`` and :func:`weighted_meets` refuses
    it.  ``policies`` are weighted policies (:func:`parse_policy`); all five
    by default.
    """
    items = tuple(outcomes)
    if any(o.subject != subject for o in items):
        raise LocalProtocolError(f"every outcome must be one of {subject.short()}'s trades")
    if weights is not None:
        _check_view(subject, weights, shared_walk)
    chosen = list(policies) or [parse_policy(name) for name in WEIGHTED_POLICIES]
    for p in chosen:
        if not is_weighted(p):
            raise LocalProtocolError(f"{p} is not a weighted policy; use weighted-{p.name}")
    counterparties = sorted({o.counterparty for o in items}, key=lambda p: p.key)
    if weights is None:
        plain = score(items, as_of=as_of, policies=[_twin(p) for p in chosen], tiers=tiers,
                      tier_window_days=tier_window_days)
        return TrustReport(
            subject=subject, as_of=as_of, weighted=False, fallback=FALLBACK, roots=(),
            dropped_roots=(), forked=False,
            scores={str(p): plain.scores[str(_twin(p))] for p in chosen},
            trusted_rated=float(plain.counts["rated"]), completion_rate=plain.completion_rate,
            window_mean=plain.window_mean, window_weight=float(plain.window_count),
            tier=plain.tier, raters=tuple((p, WEIGHT_ONE) for p in counterparties), graph=None,
            view=None, outcomes=items, weights=None,
        )
    forked = subject.key in weights.forked
    graph: dict[str, int | None] = {
        "nodes": weights.nodes, "edges": weights.edges, "steps": TRUST_STEPS,
        "theta": weights.theta, "operations": weights.operations,
        "left_out": weights.left_out}
    raters = tuple((p, weights.weight(p)) for p in counterparties)
    if forked:
        # A forked pseudonym passes no bar (spec/trust.md 2.3, 6.2): nothing counts.
        return TrustReport(
            subject=subject, as_of=as_of, weighted=True, fallback=None, roots=weights.roots,
            dropped_roots=weights.dropped_roots, forked=True,
            scores={str(p): None for p in chosen}, trusted_rated=0.0, completion_rate=None,
            window_mean=None, window_weight=0.0, tier=REGULAR, raters=raters, graph=graph,
            view=weights.view, outcomes=items, weights=weights,
        )
    pairs = _pairs(items, as_of, weights)

    def total(kinds: tuple[Outcome, ...]) -> int:
        return sum(weights.weight(o.counterparty) for o in items if o.outcome in kinds)

    # scoring.md 2, each trade counted for its counterparty's weight.
    completed = total((Outcome.RATED, Outcome.RETRACTED, Outcome.EXPIRED))
    unresolved = total((Outcome.STALLED, Outcome.WITHHELD)) + sum(
        weights.weight(o.counterparty) for o in items if o.cancelled_by == o.subject)
    completion = (_round(Fraction(completed, completed + unresolved))
                  if completed + unresolved else None)
    since = as_of - tier_window_days * DAY
    in_window = [p for p in pairs if p[0].at > since]
    wmean = _mean(in_window)
    wweight = Fraction(sum(w for _, w in in_window), WEIGHT_ONE)
    tier = REGULAR
    for t in tiers:
        if (wmean is not None and wmean >= _frac(t.min_mean) and wweight >= t.min_count
                and completion is not None and completion >= t.min_completion):
            tier = t.name
            break
    return TrustReport(
        subject=subject, as_of=as_of, weighted=True, fallback=None, roots=weights.roots,
        dropped_roots=weights.dropped_roots, forked=False,
        scores={str(p): _round(_apply(p, pairs, as_of)) for p in chosen},
        trusted_rated=round4(Fraction(total((Outcome.RATED,)), WEIGHT_ONE)),
        completion_rate=completion,
        window_mean=_round(wmean), window_weight=round4(wweight), tier=tier, raters=raters,
        graph=graph, view=weights.view, outcomes=items, weights=weights,
    )


def _check_view(subject: Pseudonym, weights: TrustWeights, shared_walk: bool) -> None:
    """Refuse weights that were not walked for ``subject`` (spec/trust.md 4.5)."""
    if weights.subject is None:
        if not shared_walk:
            raise LocalProtocolError(
                f"these weights are the shared walk; to score {subject.short()} walk its own "
                "view, trust_weights(graph, roots, subject=subject) (spec/trust.md 4.5), or "
                "pass shared_walk=True to accept the shared walk as an approximation")
    elif weights.subject != subject:
        raise LocalProtocolError(
            f"these weights are {weights.subject.short()}'s view, not {subject.short()}'s; "
            "walk trust_weights(graph, roots, subject=subject) for each subject scored "
            "(spec/trust.md 4.5)")


def _pairs(items: Sequence[TradeOutcome], as_of: int, weights: TrustWeights
           ) -> list[tuple[Sample, int]]:
    """scoring.md's samples (merged per counterparty and week, newest first), weighted."""
    samples = score(items, as_of=as_of, policies=[_MEAN]).samples
    return [(s, weights.weights.get(s.counterparty, 0)) for s in samples]


_MEAN: Final = Policy.parse("mean")


def weighted_meets(
    report: TrustReport,
    *,
    min_score: float | None = None,
    policy: str | None = None,
    min_trades: float | None = None,
    tier: str | None = None,
) -> Verdict:
    """Does ``report`` clear an app's bar?  Every failed condition is a reason.

    Like :func:`shinyo.meets`, with weights: ``min_score`` applies to a
    weighted ``policy`` (default ``weighted-bayes``), ``min_trades`` to
    ``trusted_rated``, ``tier`` to the weighted tier.  A bar with no condition
    is ``min_trades=1``: one fully trusted rating's worth, so a fresh
    pseudonym -- or one rated only by strangers to the roots -- never passes.
    A forked subject passes nothing.  ``report`` must be weighed in the
    subject's view: a report from the shared walk decides no gate
    (spec/trust.md 4.5), as it overstates a subject that lends trust to its
    own raters.
    """
    if report.view == "shared":
        raise LocalProtocolError(
            f"this report of {report.subject.short()} is from the shared walk, which decides "
            "no gate (spec/trust.md 4.5); score it with trust_weights(graph, roots, "
            "subject=subject)")
    if min_score is None and min_trades is None and tier is None:
        min_trades = DEFAULT_MIN_TRADES
    if tier is not None and tier not in TIER_ORDER:
        raise LocalProtocolError(f"unknown tier {tier!r}; one of {', '.join(TIER_ORDER)}")
    reasons = []
    if report.forked:
        reasons.append(f"{report.subject.short()} is shown forked: it passes no bar")
    if min_score is not None:
        chosen = parse_policy(policy or "weighted-bayes")
        if not is_weighted(chosen):
            raise LocalProtocolError(
                f"{chosen} is not a weighted policy; use weighted-{chosen.name}")
        key = str(chosen)
        value = report.scores[key] if key in report.scores else trust_score(
            report.subject, report.outcomes, as_of=report.as_of, weights=report.weights,
            policies=[chosen]).scores[key]
        if value is None or value < min_score:
            reasons.append(f"{key} score {value} is below {min_score}")
    if min_trades is not None and report.trusted_rated < min_trades:
        what = "trusted rated trades" if report.weighted else "rated trades"
        reasons.append(f"{report.trusted_rated} {what}, fewer than {min_trades}")
    if tier is not None and TIER_ORDER.index(report.tier) > TIER_ORDER.index(tier):
        reasons.append(f"tier {report.tier} is below {tier}")
    return Verdict(ok=not reasons, reasons=tuple(reasons))
