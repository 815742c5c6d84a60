"""Trade outcomes: how a verifier classifies one trade of a subject (spec 7.8).

The input is a :class:`TradeSession` from the subject's side that has been fed
every entry of the trade the verifier holds (the subject's and the
counterparty's), the verifier's as-of time, and how far the verifier holds
*evidence of silence*: ``silent_until`` is the timestamp of the last entry of a
contiguous, verified segment of the counterparty's chain that starts at its
last *step* entry for the trade (opening, commit or reveal) (spec 7.8).  A
counterparty step whose deadline is before ``silent_until`` provably never
happened on time.

The rows of the spec's table are tried in order; the first that applies wins.
Stalling never pays: a subject that misses a step of its own scores the
minimum, and so does a missing counterparty step without evidence (an offline
verifier cannot tell silence from hiding).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from ._body import Commit, Reveal
from ._chain import Role
from ._constants import (
    ACCEPT_WINDOW,
    COMMIT_WINDOW,
    MIN_STARS,
    RESPONSE_WINDOW,
    RETRACT_WINDOW,
)
from ._entry import Entry
from ._errors import LocalProtocolError
from ._identity import Pseudonym
from ._trade import TradeSession, reveals_first

__all__ = ["Outcome", "TradeOutcome", "classify"]


class Outcome(enum.Enum):
    CANCELLED = "cancelled"
    STALLED = "stalled"  # the subject missed a step of its own: scored MIN_STARS
    RETRACTED = "retracted"
    RATED = "rated"
    EXPIRED = "expired"  # the counterparty provably missed a step: not scored
    WITHHELD = "withheld"  # a counterparty step is missing, no evidence: MIN_STARS
    PENDING = "pending"


@dataclass(frozen=True, slots=True, kw_only=True)
class TradeOutcome:
    """One trade as a verifier scores it for ``subject``."""

    trade: bytes
    subject: Pseudonym
    counterparty: Pseudonym
    context: str
    role: Role
    outcome: Outcome
    stars: int | None  # what the trade counts for the subject, if anything
    given: int | None  # the stars the subject revealed for the counterparty, if any
    at: int | None  # when the outcome was settled (reveal, cancel or deadline time)
    reason: str
    cancelled_by: Pseudonym | None = None
    # For ``rated``: whether the counterparty's chain is shown past the retraction
    # window without a retraction, so the rating is final (spec 7.8).
    confirmed: bool | None = None


def _missed(entry: Entry | None, due: int, now: int) -> bool:
    """Overdue (absent, deadline passed) or made late (spec 7.8)."""
    if entry is None:
        return now > due
    return entry.timestamp > due


def _stars(entry: Entry | None) -> int | None:
    if entry is None:
        return None
    assert isinstance(entry.body, Reveal)
    return entry.body.stars


def classify(session: TradeSession, *, now: int, silent_until: int | None = None) -> TradeOutcome:
    """Classify the trade for ``session.me`` at ``now`` (spec 7.8, first row that applies)."""
    s, mine, theirs = session, session.mine, session.theirs
    given = None if mine.retract is not None else _stars(mine.reveal)

    def result(outcome: Outcome, stars: int | None, at: int | None, reason: str,
               cancelled_by: Pseudonym | None = None, confirmed: bool | None = None
               ) -> TradeOutcome:
        return TradeOutcome(
            trade=s.trade, subject=s.me, counterparty=s.them, context=s.context, role=s.role,
            outcome=outcome, stars=stars, given=given, at=at, reason=reason,
            cancelled_by=cancelled_by, confirmed=confirmed,
        )

    # Row 1: a cancellation held from either side stands.
    cancel = mine.cancel or theirs.cancel
    if cancel is not None:
        who = "subject" if cancel is mine.cancel else "counterparty"
        return result(Outcome.CANCELLED, None, cancel.timestamp, f"cancelled by the {who}",
                      cancelled_by=cancel.author)

    if s.role is Role.ACCEPTOR and mine.opened is None:
        raise LocalProtocolError("not a trade of the subject: it never accepted the offer")
    accept = theirs.opened if s.role is Role.PROPOSER else mine.opened
    if accept is None:
        # A proposal of the subject with no acceptance held: it must be withdrawn
        # by the end of every window an acceptance could have opened.
        due = s.proposal.timestamp + ACCEPT_WINDOW + COMMIT_WINDOW
        if now > due:
            return result(Outcome.STALLED, MIN_STARS, due,
                          "proposal neither linked to an acceptance nor withdrawn")
        return result(Outcome.PENDING, None, None, "proposal awaiting acceptance")

    # Deadlines of C's steps (spec 7.6), from the subject's entries and C's own.
    their_commit = theirs.commit
    first = reveals_first(s.role, mine.commit, their_commit)
    their_commit_due = accept.timestamp + COMMIT_WINDOW
    if mine.commit is not None:
        their_commit_due = max(their_commit_due, mine.commit.timestamp + RESPONSE_WINDOW)
    their_reveal_due: int | None = None
    if first is False:
        assert mine.commit is not None and their_commit is not None
        their_reveal_due = max(mine.commit.timestamp, their_commit.timestamp) + RESPONSE_WINDOW
    elif first is True and mine.reveal is not None:
        their_reveal_due = mine.reveal.timestamp + RESPONSE_WINDOW
    # A late step of C ends the trade as C's fault and obliges the subject to
    # nothing more: otherwise a holder could drop a late step of C (and the
    # chain after it) to trade the obligation it starts for "expired" (review
    # F3, F4).  Held or hidden, a late step of C gives the same outcome.
    their_commit_late = their_commit is not None and their_commit.timestamp > their_commit_due
    their_reveal_late = (theirs.reveal is not None and their_reveal_due is not None
                         and theirs.reveal.timestamp > their_reveal_due)

    # Row 2: a step of the subject's own, missed.
    my_due = accept.timestamp + COMMIT_WINDOW
    # The counterparty's commit extends the subject's deadline only for a commit
    # that answers it (acks it), or while the subject has not committed: a late
    # commit is not excused by a counterparty that committed later still.
    answering = mine.commit is None or (
        isinstance(mine.commit.body, Commit) and mine.commit.body.ack is not None)
    if their_commit is not None and answering:
        my_due = max(my_due, their_commit.timestamp + RESPONSE_WINDOW)
    if _missed(mine.commit, my_due, now):
        return result(Outcome.STALLED, MIN_STARS, my_due, "the subject's commit was missed")
    reveal_due: int | None = None
    if first is True and not their_commit_late:
        assert mine.commit is not None and their_commit is not None
        reveal_due = max(mine.commit.timestamp, their_commit.timestamp) + RESPONSE_WINDOW
    elif first is False and theirs.reveal is not None and not their_reveal_late:
        reveal_due = theirs.reveal.timestamp + RESPONSE_WINDOW
    if reveal_due is not None and _missed(mine.reveal, reveal_due, now):
        return result(Outcome.STALLED, MIN_STARS, reveal_due, "the subject's reveal was missed")

    # Rows 3-5: the counterparty's rating is held: late, retracted, or standing.
    if theirs.reveal is not None:
        if their_reveal_late:
            assert their_reveal_due is not None
            return result(Outcome.EXPIRED, None, their_reveal_due,
                          "the counterparty revealed after its deadline")
        if theirs.retract is not None:
            return result(Outcome.RETRACTED, None, theirs.retract.timestamp,
                          "the counterparty retracted its rating")
        # Final once C's chain is shown past the retraction window (spec 7.8).
        final = theirs.reveal.timestamp + RETRACT_WINDOW
        return result(Outcome.RATED, _stars(theirs.reveal), theirs.reveal.timestamp,
                      "rated by the counterparty",
                      confirmed=silent_until is not None and silent_until > final)
    if their_commit_late:
        return result(Outcome.EXPIRED, None, their_commit_due,
                      "the counterparty committed after its deadline")

    # Rows 6-7: a counterparty step overdue, with or without evidence of silence.
    overdue: tuple[int, str] | None = None
    if their_commit is None and now > their_commit_due:
        overdue = (their_commit_due, "commit")
    elif their_reveal_due is not None and now > their_reveal_due:
        overdue = (their_reveal_due, "reveal")
    if overdue is not None:
        due, step = overdue
        if silent_until is not None and silent_until > due:
            return result(Outcome.EXPIRED, None, due,
                          f"the counterparty's chain shows no {step} by the deadline")
        return result(Outcome.WITHHELD, MIN_STARS, due,
                      f"the counterparty's {step} is missing and its silence is not shown")
    return result(Outcome.PENDING, None, None, "inside the rating windows")
