"""Trade outcomes (spec 7.8): every row of the table, from both sides."""

from __future__ import annotations

import pytest

from shinyo import (
    ACCEPT_WINDOW,
    COMMIT_WINDOW,
    RESPONSE_WINDOW,
    LocalProtocolError,
    Outcome,
    TradeOutcome,
    classify,
)
from shinyo._constants import MIN_STARS

from .conftest import CTX, T0, Pair, nonce, terms

ACC = T0 + 60  # Pair.agree accepts at T0 + 60
FAR = T0 + 10 * 365 * 86_400


def out(pair: Pair, who: str, trade: bytes, now: int, silent_until: int | None = None
        ) -> TradeOutcome:
    p = pair.a if who == "a" else pair.b
    return classify(p.session(trade), now=now, silent_until=silent_until)


def test_rated_both_ways_and_given(pair: Pair) -> None:
    t = pair.agree()
    pair.rate(t, 5, 3)
    a, b = out(pair, "a", t, FAR), out(pair, "b", t, FAR)
    assert (a.outcome, a.stars, a.given) == (Outcome.RATED, 3, 5)
    assert (b.outcome, b.stars, b.given) == (Outcome.RATED, 5, 3)
    assert a.counterparty == pair.b.pseudonym and a.context == CTX


def test_retracted_and_retracted_given(pair: Pair) -> None:
    t = pair.agree()
    pair.rate(t, 5, 3)
    pair.step(pair.b.retract(t, timestamp=T0 + 99_999))
    a, b = out(pair, "a", t, FAR), out(pair, "b", t, FAR)
    assert (a.outcome, a.stars) == (Outcome.RETRACTED, None)
    assert (b.outcome, b.stars, b.given) == (Outcome.RATED, 5, None)


@pytest.mark.parametrize("canceller", ["a", "b"])
def test_cancelled(pair: Pair, canceller: str) -> None:
    t = pair.agree()
    p = pair.a if canceller == "a" else pair.b
    pair.step(p.cancel(t, timestamp=T0 + 100))
    for who in "ab":
        o = out(pair, who, t, FAR)
        assert (o.outcome, o.stars, o.at) == (Outcome.CANCELLED, None, T0 + 100)
    assert ("subject" in out(pair, canceller, t, FAR).reason)


def test_pending_then_both_stall_when_nobody_commits(pair: Pair) -> None:
    t = pair.agree()
    due = ACC + COMMIT_WINDOW
    assert out(pair, "a", t, due).outcome is Outcome.PENDING
    for who in "ab":
        o = out(pair, who, t, due + 1)
        assert (o.outcome, o.stars, o.at) == (Outcome.STALLED, MIN_STARS, due)


def test_counterparty_never_commits_withheld_or_expired(pair: Pair) -> None:
    t = pair.agree()
    c = pair.step(pair.a.commit(t, stars=4, nonce=nonce(1), timestamp=ACC + 100))
    due = max(ACC + COMMIT_WINDOW, c.timestamp + RESPONSE_WINDOW)
    assert out(pair, "a", t, due).outcome is Outcome.PENDING
    w = out(pair, "a", t, due + 1)
    assert (w.outcome, w.stars, w.at) == (Outcome.WITHHELD, MIN_STARS, due)
    assert out(pair, "a", t, due + 1, silent_until=due).outcome is Outcome.WITHHELD
    e = out(pair, "a", t, due + 1, silent_until=due + 1)
    assert (e.outcome, e.stars) == (Outcome.EXPIRED, None)
    assert out(pair, "b", t, due + 1).outcome is Outcome.STALLED  # b's own commit


def test_first_revealer_stalls(pair: Pair) -> None:
    t = pair.agree()
    pair.step(pair.a.commit(t, stars=4, nonce=nonce(1), timestamp=ACC + 100))
    cb = pair.step(pair.b.commit(t, stars=2, nonce=nonce(2), timestamp=ACC + 200))
    due = cb.timestamp + RESPONSE_WINDOW
    assert out(pair, "a", t, due).outcome is Outcome.PENDING
    assert out(pair, "a", t, due + 1).outcome is Outcome.STALLED
    b = out(pair, "b", t, due + 1)
    assert (b.outcome, b.stars) == (Outcome.WITHHELD, MIN_STARS)
    assert out(pair, "b", t, due + 1, silent_until=due + 5).outcome is Outcome.EXPIRED


def test_second_revealer_stalls(pair: Pair) -> None:
    t = pair.agree()
    pair.step(pair.a.commit(t, stars=4, nonce=nonce(1), timestamp=ACC + 100))
    pair.step(pair.b.commit(t, stars=2, nonce=nonce(2), timestamp=ACC + 200))
    ra = pair.step(pair.a.reveal(t, timestamp=ACC + 300))
    due = ra.timestamp + RESPONSE_WINDOW
    assert out(pair, "b", t, due).outcome is Outcome.RATED  # b holds a's rating
    b = out(pair, "b", t, due + 1)
    assert (b.outcome, b.stars) == (Outcome.STALLED, MIN_STARS)
    assert out(pair, "a", t, due + 1).outcome is Outcome.WITHHELD
    assert out(pair, "a", t, due + 1, silent_until=due + 1).outcome is Outcome.EXPIRED


def test_late_subject_step_is_stalled_late_counterparty_step_is_rated(pair: Pair) -> None:
    t = pair.agree()
    late = ACC + COMMIT_WINDOW + 1
    pair.step(pair.a.commit(t, stars=4, nonce=nonce(1), timestamp=late))
    pair.step(pair.b.commit(t, stars=2, nonce=nonce(2), timestamp=late + 10))
    pair.step(pair.a.reveal(t, timestamp=late + 20))
    pair.step(pair.b.reveal(t, timestamp=late + 30))
    # a committed after its deadline: stalled although b's rating is held.
    assert out(pair, "a", t, FAR).outcome is Outcome.STALLED
    # b's commit deadline moved to a's commit + 14 days: b was on time.
    assert (out(pair, "b", t, FAR).outcome, out(pair, "b", t, FAR).stars) == (Outcome.RATED, 4)


def test_unlinked_and_withdrawn_proposals(pair: Pair) -> None:
    p = pair.a.propose(pair.b.pseudonym, context=CTX, terms=terms(), timestamp=T0)
    due = T0 + ACCEPT_WINDOW + COMMIT_WINDOW
    assert out(pair, "a", p.id, due).outcome is Outcome.PENDING
    assert out(pair, "a", p.id, due + 1).outcome is Outcome.STALLED
    pair.a.cancel(p.id, timestamp=T0 + ACCEPT_WINDOW + 1)
    assert out(pair, "a", p.id, FAR).outcome is Outcome.CANCELLED


def test_an_offer_not_accepted_is_not_the_acceptors_trade(pair: Pair) -> None:
    p = pair.step(pair.a.propose(pair.b.pseudonym, context=CTX, terms=terms(), timestamp=T0))
    with pytest.raises(LocalProtocolError, match="never accepted"):
        out(pair, "b", p.id, FAR)


def test_commit_race_reveal_order(pair: Pair) -> None:
    t = pair.agree()
    ca = pair.a.commit(t, stars=5, nonce=nonce(1), timestamp=ACC + 100)
    cb = pair.b.commit(t, stars=1, nonce=nonce(2), timestamp=ACC + 100)
    pair.deliver(ca)
    pair.deliver(cb)
    due = ACC + 100 + RESPONSE_WINDOW
    # The proposer (a) reveals first in a race; missing that deadline stalls a, not b.
    assert out(pair, "a", t, due + 1).outcome is Outcome.STALLED
    assert out(pair, "b", t, due + 1).outcome is Outcome.WITHHELD
