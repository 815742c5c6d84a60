"""Trade sessions: the two-party trade and blind-rating protocol (spec 7).

Theory of operation
-------------------
A :class:`TradeSession` follows one trade from one party's side ("me", the
counterparty is "them").  It is sans-IO: it never signs, stores or sends.

* Facts go in through :meth:`TradeSession.receive`: every entry of either party
  that belongs to the trade, in each author's chain order (the app has already
  validated each entry against its author's :class:`shinyo.Chain`).  The session
  checks the rules that need *both* chains (spec 7.7) and moves the trade
  through :data:`TRANSITIONS`, an explicit table of (state, event) -> state.
  A counterparty entry that breaks a rule raises a :class:`VerificationError`;
  one of my own raises :class:`LocalProtocolError`.

* Advice comes out of :meth:`TradeSession.next_step`, given ``now``: what I
  should append next (accept, commit, reveal, withdraw) and by when, or what I
  am waiting for.  The ``*_body`` methods build the body for that step; the app
  appends it to its chain and feeds the resulting entry back to ``receive``.

The rating dance (spec 7.1, 7.3): whoever commits first commits without an ack;
the second commits with ``ack`` = the first's commit id; the first then reveals
with ``ack`` = the second's commit id; only then does the second reveal.  So
each party's chain acknowledges the rating it receives before it can know it.
If both commit without an ack (a race), the proposer reveals first.  The
table differs by role only there and in how the trade opens.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass

from ._body import Accept, Cancel, Commit, Propose, Response, Retract, Reveal
from ._chain import Role
from ._constants import ACCEPT_WINDOW, COMMIT_WINDOW, RESPONSE_WINDOW, RETRACT_WINDOW
from ._digest import rating_commitment
from ._entry import Entry
from ._errors import (
    CommitmentMismatch,
    LocalProtocolError,
    TimestampRegression,
    TradeRuleViolation,
    VerificationError,
)
from ._identity import Pseudonym

__all__ = [
    "Action",
    "Event",
    "RatingOpening",
    "Side",
    "Step",
    "TradeSession",
    "TradeState",
    "feed_in_order",
]


class TradeState(enum.Enum):
    """Where the trade stands, seen from my side."""

    OFFERED_OUT = "offered-out"  # I proposed; waiting for their accept
    OFFERED_IN = "offered-in"  # they proposed to me; I may accept
    AGREED = "agreed"  # accepted; nobody has committed a rating
    I_COMMITTED = "i-committed"  # my commit (no ack); waiting for theirs
    THEY_COMMITTED = "they-committed"  # their commit (no ack); I should commit with ack
    I_REVEAL_FIRST = "i-reveal-first"  # they acked my commit; I reveal (with ack)
    THEY_REVEAL_FIRST = "they-reveal-first"  # I acked theirs; waiting for their reveal
    I_REVEALED = "i-revealed"  # I revealed first; waiting for their reveal
    THEY_REVEALED = "they-revealed"  # they revealed first (acking mine); I reveal
    COMPLETE = "complete"  # both ratings revealed
    CANCELLED = "cancelled"


class Event(enum.Enum):
    """An entry of the trade, by who wrote it; a commit also by whether it acks.

    Whether a commit carries an ack decides who reveals first, so it is part of
    the event.  Whether a reveal carries one is fixed by its author's commit
    (exactly once, spec 7.3), so it is a guard on the entry, not an event.
    """

    MY_ACCEPT = "my-accept"
    THEIR_ACCEPT = "their-accept"
    MY_CANCEL = "my-cancel"
    THEIR_CANCEL = "their-cancel"
    MY_COMMIT = "my-commit"
    MY_COMMIT_ACK = "my-commit+ack"
    THEIR_COMMIT = "their-commit"
    THEIR_COMMIT_ACK = "their-commit+ack"
    MY_REVEAL = "my-reveal"
    THEIR_REVEAL = "their-reveal"


S, E = TradeState, Event

# Both roles share most of the protocol; they differ in how a trade opens and in
# who reveals first after a commit race (spec 7.3: the proposer).
_SHARED: dict[tuple[TradeState, Event], TradeState] = {
    (S.AGREED, E.MY_COMMIT): S.I_COMMITTED,
    (S.AGREED, E.THEIR_COMMIT): S.THEY_COMMITTED,
    (S.AGREED, E.MY_CANCEL): S.CANCELLED,
    (S.AGREED, E.THEIR_CANCEL): S.CANCELLED,
    (S.I_COMMITTED, E.THEIR_COMMIT_ACK): S.I_REVEAL_FIRST,
    (S.I_COMMITTED, E.THEIR_CANCEL): S.CANCELLED,  # spec 7.8: the cancel stands
    (S.THEY_COMMITTED, E.MY_COMMIT_ACK): S.THEY_REVEAL_FIRST,
    (S.THEY_COMMITTED, E.MY_CANCEL): S.CANCELLED,
    (S.I_REVEAL_FIRST, E.MY_REVEAL): S.I_REVEALED,
    (S.THEY_REVEAL_FIRST, E.THEIR_REVEAL): S.THEY_REVEALED,
    (S.I_REVEALED, E.THEIR_REVEAL): S.COMPLETE,
    (S.THEY_REVEALED, E.MY_REVEAL): S.COMPLETE,
    # Entries that crossed a cancellation in flight are void: the cancel stands
    # (spec 7.8).  Found by the interleaving tests: an honest commit sent before
    # the cancel arrived must not be called a violation.
    (S.CANCELLED, E.THEIR_COMMIT): S.CANCELLED,
    (S.CANCELLED, E.THEIR_CANCEL): S.CANCELLED,
}

#: The whole protocol as seen from each role: any (state, event) pair not listed
#: is a violation.  A listed pair still has its entry's content checked by the
#: guards of spec 7.7 (``_cross_check``).  Retractions and responses do not move
#: the state; they are checked separately (:meth:`TradeSession.receive`).
TRANSITIONS: dict[Role, dict[tuple[TradeState, Event], TradeState]] = {
    Role.PROPOSER: {
        **_SHARED,
        (S.OFFERED_OUT, E.THEIR_ACCEPT): S.AGREED,
        (S.OFFERED_OUT, E.MY_CANCEL): S.CANCELLED,  # withdraw an unanswered offer
        (S.I_COMMITTED, E.THEIR_COMMIT): S.I_REVEAL_FIRST,  # race: I reveal first
        (S.THEY_COMMITTED, E.MY_COMMIT): S.I_REVEAL_FIRST,  # race: I reveal first
        (S.CANCELLED, E.THEIR_ACCEPT): S.CANCELLED,  # an accept that crossed my withdrawal
    },
    Role.ACCEPTOR: {
        **_SHARED,
        (S.OFFERED_IN, E.MY_ACCEPT): S.AGREED,
        (S.OFFERED_IN, E.THEIR_CANCEL): S.CANCELLED,  # the proposer withdrew
        (S.I_COMMITTED, E.THEIR_COMMIT): S.THEY_REVEAL_FIRST,  # race: they reveal first
        (S.THEY_COMMITTED, E.MY_COMMIT): S.THEY_REVEAL_FIRST,  # race: they reveal first
    },
}


class Action(enum.Enum):
    ACCEPT = "accept"  # an offer awaits my decision (ignore it to decline)
    COMMIT = "commit"  # rate the trade: commit my hidden rating
    REVEAL = "reveal"  # open my commitment
    WITHDRAW = "withdraw"  # my offer was never accepted: cancel it
    WAIT = "wait"  # the counterparty owes the next step
    NONE = "none"  # nothing more to do


@dataclass(frozen=True, slots=True, kw_only=True)
class Step:
    """What :meth:`TradeSession.next_step` advises."""

    action: Action
    deadline: int | None  # when the step is due (spec 7.6); None if none applies
    late: bool  # the deadline has passed
    reason: str


@dataclass(frozen=True, slots=True, kw_only=True)
class RatingOpening:
    """The secret half of a commitment: what the reveal will show.

    Keep it (the node stores it) from commit until reveal; ``nonce`` is 16
    random bytes from the caller.
    """

    stars: int
    nonce: bytes
    tags: tuple[str, ...] = ()
    comment: bytes | None = None

    def __post_init__(self) -> None:
        # Reuse the reveal body's field checks (spec 5.5).
        Reveal(trade=bytes(32), stars=self.stars, nonce=self.nonce, tags=self.tags,
               comment=self.comment)


@dataclass(slots=True)
class Side:
    """One party's entries for a trade, as held so far (read them; do not edit)."""

    opened: Entry | None = None
    cancel: Entry | None = None
    commit: Entry | None = None
    reveal: Entry | None = None
    retract: Entry | None = None
    response: Entry | None = None


def reveals_first(role: Role, mine: Entry | None, theirs: Entry | None) -> bool | None:
    """Does the party with ``role`` and commit ``mine`` reveal first (spec 7.3)?

    Whoever committed without an ack reveals first; after a commit race (both
    commits without one) the proposer does.  None until both commits exist.
    """
    if mine is None or theirs is None:
        return None
    assert isinstance(mine.body, Commit) and isinstance(theirs.body, Commit)
    if mine.body.ack is None and theirs.body.ack is None:
        return role is Role.PROPOSER
    return mine.body.ack is None


class TradeSession:
    """One trade, from ``me``'s side.  Start it from the proposal entry."""

    def __init__(self, *, me: Pseudonym, proposal: Entry) -> None:
        body = proposal.body
        if not isinstance(body, Propose):
            raise LocalProtocolError("a trade session starts from a trade.propose entry")
        if me not in (proposal.author, body.counterparty):
            raise LocalProtocolError(f"{me.short()} is not a party to this proposal")
        self.me = me
        self.proposal = proposal
        self.trade = proposal.id
        self.proposer = proposal.author
        self.them = body.counterparty if me == proposal.author else proposal.author
        self.context = body.context
        self.role = Role.PROPOSER if me == proposal.author else Role.ACCEPTOR
        self._mine = Side()
        self._theirs = Side()
        if me == self.proposer:
            self._mine.opened = proposal
            self.state = TradeState.OFFERED_OUT
        else:
            self._theirs.opened = proposal
            self.state = TradeState.OFFERED_IN
        self.opening: RatingOpening | None = None

    @property
    def mine(self) -> Side:
        return self._mine

    @property
    def theirs(self) -> Side:
        return self._theirs

    @property
    def i_am_proposer(self) -> bool:
        return self.role is Role.PROPOSER

    # -- facts in -------------------------------------------------------------

    def receive(self, entry: Entry) -> TradeState:
        """Take one entry of this trade (mine or theirs); return the new state."""
        mine = entry.author == self.me
        if not mine and entry.author != self.them:
            raise TradeRuleViolation(f"{entry.author.short()} is not a party to this trade")
        error = LocalProtocolError if mine else TradeRuleViolation
        body = entry.body
        trade = getattr(body, "trade", None)
        if trade != self.trade:
            raise error(f"{entry.kind.label} does not belong to trade {self.trade.hex()[:16]}…")
        side = self._mine if mine else self._theirs
        other = self._theirs if mine else self._mine

        if isinstance(body, Retract):
            if side.reveal is None or side.retract is not None:
                raise error("retract: needs a revealed, unretracted rating")
            if entry.timestamp > side.reveal.timestamp + RETRACT_WINDOW:
                raise error("retract: the retraction window after the reveal has closed")
            side.retract = entry
            return self.state
        if isinstance(body, Response):
            if other.reveal is None or side.response is not None:
                raise error("response: needs the counterparty's revealed rating, once")
            side.response = entry
            return self.state

        event = self._event(entry, mine)
        new = TRANSITIONS[self.role].get((self.state, event))
        if new is None:
            raise error(
                f"{event.value} is not allowed when the trade is {self.state.value} (spec 7)"
            )
        self._cross_check(entry, side, other, error)
        if isinstance(body, Accept):
            side.opened = entry
        elif isinstance(body, Cancel):
            side.cancel = entry
        elif isinstance(body, Commit):
            side.commit = entry
        else:
            side.reveal = entry
        self.state = new
        return new

    def _event(self, entry: Entry, mine: bool) -> Event:
        body = entry.body
        if isinstance(body, Accept):
            name = "ACCEPT"
        elif isinstance(body, Cancel):
            name = "CANCEL"
        elif isinstance(body, Commit):
            name = "COMMIT_ACK" if body.ack is not None else "COMMIT"
        elif isinstance(body, Reveal):
            name = "REVEAL"
        else:
            kind = entry.kind.label
            raise (LocalProtocolError if mine else TradeRuleViolation)(
                f"{kind} is not a trade step"
            )
        return Event[("MY_" if mine else "THEIR_") + name]

    def _cross_check(
        self, entry: Entry, side: Side, other: Side, error: type[Exception]
    ) -> None:
        """Rules that need both chains (spec 7.7)."""
        body = entry.body
        if isinstance(body, Accept):
            if body.proposer != self.proposer or body.context != self.context:
                raise error("accept: proposer or context differ from the proposal")
            if not self.proposal.timestamp <= entry.timestamp:
                raise TimestampRegression("accept is older than the proposal it accepts")
            if entry.timestamp > self.proposal.timestamp + ACCEPT_WINDOW:
                raise error("accept: came after the proposal's accept window (spec 7.6)")
        ack = getattr(body, "ack", None)
        if ack is not None:
            if other.commit is None or ack != other.commit.id:
                raise error("ack does not name the counterparty's rate.commit entry")
            if entry.timestamp < other.commit.timestamp:
                raise TimestampRegression("an ack is older than the commitment it acknowledges")
        if isinstance(body, Reveal):
            # spec 7.3: the counterparty's commitment is acknowledged exactly once.
            assert side.commit is not None and isinstance(side.commit.body, Commit)
            if (side.commit.body.ack is None) == (body.ack is None):
                raise error("reveal: the ack belongs in the commit or the reveal, exactly once")
            # spec 7.4: the reveal opens its author's commitment.  A Chain checks
            # this too, but a verifier may hold only some of a counterparty's
            # entries (a proof bundle), so the session checks it itself.
            ratee = self.them if entry.author == self.me else self.me
            opened = rating_commitment(
                trade=self.trade, context=self.context, rater=entry.author, ratee=ratee,
                stars=body.stars, nonce=body.nonce, tags=body.tags, comment=body.comment)
            if opened != side.commit.body.commitment:
                raise CommitmentMismatch(
                    "the reveal does not open its author's commitment", seq=entry.seq)

    # -- advice out -----------------------------------------------------------

    def _accept_time(self) -> int:
        accept = self._theirs.opened if self.i_am_proposer else self._mine.opened
        assert accept is not None
        return accept.timestamp

    def _commit_deadline(self, their_commit: Entry | None) -> int:
        due = self._accept_time() + COMMIT_WINDOW
        if their_commit is not None:
            due = max(due, their_commit.timestamp + RESPONSE_WINDOW)
        return due

    def next_step(self, now: int) -> Step:
        """What to do next, judged at ``now`` (spec 7.6)."""
        st, mine, theirs = self.state, self._mine, self._theirs

        def step(action: Action, deadline: int | None, reason: str) -> Step:
            late = deadline is not None and now > deadline
            return Step(action=action, deadline=deadline, late=late, reason=reason)

        if st is S.OFFERED_OUT:
            due = self.proposal.timestamp + ACCEPT_WINDOW
            if now > due:
                return step(Action.WITHDRAW, due, "never accepted: withdraw the offer")
            return step(Action.WAIT, due, "waiting for the counterparty to accept")
        if st is S.OFFERED_IN:
            due = self.proposal.timestamp + ACCEPT_WINDOW
            if now > due:
                return step(Action.NONE, due, "the offer expired unanswered")
            return step(Action.ACCEPT, due, "an offer awaits: accept it or let it expire")
        if st in (S.AGREED, S.THEY_COMMITTED):
            return step(Action.COMMIT, self._commit_deadline(theirs.commit), "rate the trade")
        if st is S.I_COMMITTED:
            assert mine.commit is not None
            return step(Action.WAIT, self._commit_deadline(mine.commit),
                        "waiting for the counterparty's commitment")
        if st is S.I_REVEAL_FIRST:
            assert mine.commit is not None and theirs.commit is not None
            able = max(mine.commit.timestamp, theirs.commit.timestamp)
            return step(Action.REVEAL, able + RESPONSE_WINDOW, "reveal and acknowledge theirs")
        if st is S.THEY_REVEAL_FIRST:
            assert mine.commit is not None and theirs.commit is not None
            able = max(mine.commit.timestamp, theirs.commit.timestamp)
            return step(Action.WAIT, able + RESPONSE_WINDOW,
                        "waiting for the counterparty to acknowledge and reveal")
        if st is S.I_REVEALED:
            assert mine.reveal is not None
            return step(Action.WAIT, mine.reveal.timestamp + RESPONSE_WINDOW,
                        "waiting for the counterparty's reveal")
        if st is S.THEY_REVEALED:
            assert theirs.reveal is not None
            return step(Action.REVEAL, theirs.reveal.timestamp + RESPONSE_WINDOW,
                        "the counterparty revealed: reveal yours")
        return step(Action.NONE, None, f"the trade is {st.value}")

    # -- bodies for my next entry ------------------------------------------------

    def _require(self, *states: TradeState, what: str) -> None:
        if self.state not in states:
            raise LocalProtocolError(
                f"cannot {what} while the trade is {self.state.value}; "
                f"next: {self.next_step(0).action.value}"
            )

    def accept_body(self) -> Accept:
        self._require(S.OFFERED_IN, what="accept")
        return Accept(trade=self.trade, proposer=self.proposer, context=self.context)

    def cancel_body(self) -> Cancel:
        self._require(S.OFFERED_OUT, S.AGREED, S.THEY_COMMITTED, what="cancel")
        return Cancel(trade=self.trade)

    def commit_body(
        self,
        *,
        stars: int,
        nonce: bytes,
        tags: Sequence[str] = (),
        comment: bytes | None = None,
    ) -> Commit:
        """Commit my rating; remember the opening for the reveal."""
        self._require(S.AGREED, S.THEY_COMMITTED, what="commit")
        opening = RatingOpening(stars=stars, nonce=nonce, tags=tuple(tags), comment=comment)
        commitment = rating_commitment(
            trade=self.trade, context=self.context, rater=self.me, ratee=self.them,
            stars=stars, nonce=nonce, tags=opening.tags, comment=comment,
        )
        self.opening = opening
        theirs = self._theirs.commit
        return Commit(trade=self.trade, commitment=commitment,
                      ack=None if theirs is None else theirs.id)

    def reveal_body(self) -> Reveal:
        if self.next_step(0).action is not Action.REVEAL:
            raise LocalProtocolError(
                f"cannot reveal while the trade is {self.state.value}: the counterparty "
                "must acknowledge my commitment first (spec 7.3)"
            )
        if self.opening is None:
            raise LocalProtocolError("the rating opening is unknown; restore it first")
        mine = self._mine.commit
        assert mine is not None and isinstance(mine.body, Commit)
        ack = None
        if mine.body.ack is None:
            assert self._theirs.commit is not None
            ack = self._theirs.commit.id
        o = self.opening
        return Reveal(trade=self.trade, stars=o.stars, nonce=o.nonce, tags=o.tags,
                      comment=o.comment, ack=ack)

    def retract_body(self) -> Retract:
        if self._mine.reveal is None or self._mine.retract is not None:
            raise LocalProtocolError("only my revealed, unretracted rating can be retracted")
        return Retract(trade=self.trade)

    def response_body(self, text: bytes) -> Response:
        if self._theirs.reveal is None or self._mine.response is not None:
            raise LocalProtocolError("a response answers the counterparty's revealed rating, once")
        return Response(trade=self.trade, text=text)

    # -- results ----------------------------------------------------------------

    def rating_received(self) -> int | None:
        """Stars the counterparty gave me, once revealed and not retracted."""
        r = self._theirs.reveal
        if r is None or self._theirs.retract is not None:
            return None
        assert isinstance(r.body, Reveal)
        return r.body.stars

    def rating_given(self) -> int | None:
        r = self._mine.reveal
        if r is None or self._mine.retract is not None:
            return None
        assert isinstance(r.body, Reveal)
        return r.body.stars


def feed_in_order(session: TradeSession, mine: list[Entry], theirs: list[Entry], *,
                  skip_refused: bool = False) -> None:
    """Deliver both parties' entries in an order the session accepts (spec 7.7).

    The earlier entry goes first; if the session refuses it, the other party's
    next entry is tried: a verifier accepts the trade if such an order exists.
    With ``skip_refused`` a counterparty entry that fits no order is passed over
    instead of failing the whole: a participant restoring its state keeps such
    entries in their chains (they were signed) but out of the session, as
    :meth:`Participant.receive` did when they arrived.
    """
    i = j = 0
    while i < len(mine) or j < len(theirs):
        options = []
        if i < len(mine):
            options.append((mine[i].timestamp, 0))
        if j < len(theirs):
            options.append((theirs[j].timestamp, 1))
        options.sort()
        first_error: Exception | None = None
        for _, side in options:
            entry = mine[i] if side == 0 else theirs[j]
            try:
                session.receive(entry)
            except (VerificationError, LocalProtocolError) as exc:
                first_error = first_error or exc
                continue
            if side == 0:
                i += 1
            else:
                j += 1
            break
        else:
            assert first_error is not None
            if skip_refused and j < len(theirs):
                j += 1
                continue
            if isinstance(first_error, LocalProtocolError):
                raise TradeRuleViolation(f"the subject's entry breaks a two-party rule: "
                                         f"{first_error}")
            raise first_error
