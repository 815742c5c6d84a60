"""Scoring policies, tiers and meets() (spec/scoring.md)."""

from __future__ import annotations

import pytest

from shinyo import (
    LocalProtocolError,
    Outcome,
    Policy,
    Pseudonym,
    Role,
    TradeOutcome,
    classify,
    meets,
    score,
)

from .conftest import T0, Pair, identity

DAY = 86_400
ME = identity(1).pseudonym


def outcome(n: int, stars: int | None, *, at: int, kind: Outcome = Outcome.RATED,
            who: Pseudonym | None = None, given: int | None = 5) -> TradeOutcome:
    return TradeOutcome(
        trade=n.to_bytes(32, "big"), subject=ME,
        counterparty=who or identity(10 + n % 200).pseudonym, context="c",
        role=Role.PROPOSER, outcome=kind, stars=stars, given=given, at=at, reason="test",
        cancelled_by=ME if kind is Outcome.CANCELLED else None)


def weekly(stars: list[int], start: int = T0) -> list[TradeOutcome]:
    """One trade a week with distinct counterparties, oldest first."""
    return [outcome(i, s, at=start + i * 7 * DAY) for i, s in enumerate(stars)]


def test_policies_on_a_known_history() -> None:
    hist = weekly([5, 4, 3, 5, 1, 5, 4, 5, 5, 5])
    now = T0 + 10 * 7 * DAY
    r = score(hist, as_of=now, policies=[
        Policy.parse("mean"), Policy.parse("window:days=30"), Policy.parse("last:n=3"),
        Policy.parse("trimmed:pct=10"), Policy.parse("bayes:prior=3,weight=2")])
    assert r.scores == {
        "mean": 4.2,
        "window:days=30": 4.75,  # ratings 6..9 (42..63 days in) are inside 30 days of day 70
        "last:n=3": 5.0,
        "trimmed:pct=10": 4.5,  # drop one lowest (1) and one highest (5): 36 / 8
        "bayes:prior=3,weight=2": 4.0,  # (3*2 + 42) / 12
    }
    assert r.counts["rated"] == 10 and r.counts["counterparties"] == 10


def test_bayes_one_perfect_rating_does_not_beat_two_hundred_good_ones() -> None:
    one = score([outcome(1, 5, at=T0)], as_of=T0)
    many = score([outcome(i, 5 if i % 10 else 4, at=T0 + i * 8 * DAY) for i in range(200)],
                 as_of=T0 + 1700 * DAY)
    key = str(Policy.parse("bayes"))
    assert many.scores["mean"] == 4.9
    assert one.scores[key] is not None and many.scores[key] is not None
    assert one.scores[key] < many.scores[key]


def test_repeat_trades_with_one_partner_count_once_per_period() -> None:
    partner = identity(99).pseudonym
    burst = [outcome(i, 5, at=T0 + i * 3600, who=partner) for i in range(20)]
    r = score([*burst, outcome(500, 2, at=T0 + 100)], as_of=T0 + DAY)
    assert len(r.samples) == 2 and r.scores["mean"] == 3.5
    spread = [outcome(i, 5, at=T0 + i * 8 * DAY, who=partner) for i in range(3)]
    assert len(score(spread, as_of=T0 + 30 * DAY).samples) == 3


def test_withheld_and_stalled_count_as_minimum_expired_not() -> None:
    hist = [outcome(1, 5, at=T0), outcome(2, 1, at=T0 + 8 * DAY, kind=Outcome.WITHHELD),
            outcome(3, 1, at=T0 + 16 * DAY, kind=Outcome.STALLED, given=None),
            outcome(4, None, at=T0 + 24 * DAY, kind=Outcome.EXPIRED),
            outcome(5, None, at=T0 + 32 * DAY, kind=Outcome.CANCELLED)]
    r = score(hist, as_of=T0 + 40 * DAY)
    assert r.scores["mean"] == round(7 / 3, 4)
    assert r.counts["withheld"] == 1 and r.counts["stalled"] == 1
    assert r.counts["cancelled_by_subject"] == 1
    assert r.reveal_rate == round(4 / 5, 4)
    # completed: rated, expired (2) of those plus withheld, stalled and own cancel (5)
    assert r.completion_rate == round(2 / 5, 4)


def test_tiers() -> None:
    now = T0 + 100 * DAY
    plat = [outcome(i, 5, at=now - i * 3 * DAY) for i in range(25)]
    assert score(plat, as_of=now).tier == "platinum"
    assert score(plat[:12], as_of=now).tier == "gold"
    assert score(plat[:5], as_of=now).tier == "silver"
    assert score(plat[:1], as_of=now).tier == "bronze"
    assert score(plat, as_of=now + 200 * DAY).tier == "regular"  # all outside the window
    dented = [*plat, *(outcome(100 + i, 1, at=now - DAY, kind=Outcome.STALLED, given=None)
                       for i in range(2))]
    # Mean 4.70 would be gold, but completion 25/27 = 0.926 is below gold's 0.95.
    assert score(dented, as_of=now).tier == "silver"


def test_fresh_pseudonym_never_passes_a_default_gate() -> None:
    r = score([], as_of=T0)
    assert r.tier == "regular" and r.scores["mean"] is None
    assert r.scores[str(Policy.parse("bayes"))] is None  # a prior alone is not a score
    for gate in ({"min_score": 3.0}, {"min_trades": 1}, {"tier": "bronze"}):
        v = meets(r, **gate)  # type: ignore[arg-type]
        assert not v and v.reasons


def test_meets_reasons_and_custom_policy() -> None:
    r = score(weekly([5] * 30), as_of=T0 + 30 * 7 * DAY)
    assert meets(r, min_score=4.5, min_trades=20, tier="gold")
    v = meets(r, min_score=4.9, policy="mean", min_trades=40, tier="platinum")
    assert not v and v.reasons == ("30 rated trades, fewer than 40",
                                   "tier gold is below platinum")  # 13 inside 90 days
    v = meets(r, min_trades=40)
    assert not v and "fewer than 40" in v.reasons[0]
    assert meets(r, min_score=5.0, policy="last:n=2")  # computed on demand
    with pytest.raises(LocalProtocolError):
        meets(r, tier="diamond")


@pytest.mark.parametrize("bad", ["median", "window:weeks=2", "window:days", "last:n=x",
                                 "trimmed:pct=-1", "bayes:prior=inf"])
def test_bad_policy_specs(bad: str) -> None:
    with pytest.raises(LocalProtocolError):
        Policy.parse(bad)


def test_deterministic_and_from_real_trades(pair: Pair) -> None:
    for i in range(3):
        t = pair.agree(T0 + i * 30 * DAY)
        pair.rate(t, 5, 4 - i, t=T0 + i * 30 * DAY + 3600)
    now = T0 + 200 * DAY
    outs = [classify(s, now=now) for s in pair.a.sessions.values()]
    r1, r2 = score(outs, as_of=now), score(list(reversed(outs)), as_of=now)
    assert r1 == r2
    assert r1.counts["rated"] == 3 and r1.scores["mean"] == 3.0
