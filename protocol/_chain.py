"""Chains: one author's append-only, hash-linked history (spec 6.5 and 7).

A :class:`Chain` is a validator that accumulates.  ``append`` runs the chain
rules against everything seen so far and either accepts the entry or raises the
first violation; ``from_entries`` does that over a whole history.  The same
rules guard the local user: ``append_new`` builds and signs an entry and then
refuses (with :class:`LocalProtocolError`) anything a verifier would reject.

Only what the author's own chain can show is checked here.  Rules that need the
counterparty's entries too (the acceptance names the right people, the ack
names the real commitment, deadlines) are checked by the trade session and the
proof verifier, which see both chains (spec 7.7).
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass

from ._body import (
    Accept,
    Body,
    Cancel,
    Commit,
    Propose,
    Response,
    Retract,
    Reveal,
    Vouch,
)
from ._constants import DAY, GENESIS_PREV, MAX_CLOCK_SKEW, RETRACT_WINDOW
from ._digest import rating_commitment
from ._entry import Entry
from ._errors import (
    BrokenLink,
    CommitmentMismatch,
    FutureTimestamp,
    LocalProtocolError,
    SeqGap,
    TimestampRegression,
    TradeRuleViolation,
    UnknownTrade,
    VerificationError,
    WrongAuthor,
)
from ._identity import Pseudonym, SigningIdentity

__all__ = ["Chain", "Role", "TradeView"]


class Role(enum.Enum):
    PROPOSER = "proposer"
    ACCEPTOR = "acceptor"


@dataclass(slots=True)
class TradeView:
    """What one party's chain says about one trade (spec 7.2)."""

    trade: bytes
    role: Role
    counterparty: Pseudonym
    context: str
    opened: Entry  # the author's trade.propose or trade.accept
    cancel: Entry | None = None
    commit: Entry | None = None
    reveal: Entry | None = None
    retract: Entry | None = None
    response: Entry | None = None

    @property
    def ack(self) -> bytes | None:
        """The counterparty commitment this chain acknowledged, if any."""
        for e in (self.commit, self.reveal):
            if e is not None:
                assert isinstance(e.body, (Commit, Reveal))
                if e.body.ack is not None:
                    return e.body.ack
        return None


def _violation(entry: Entry, msg: str) -> TradeRuleViolation:
    return TradeRuleViolation(f"{entry.kind.label}: {msg}", seq=entry.seq)


class Chain:
    """Validate and hold one pseudonym's chain.

    >>> chain = Chain(alice.pseudonym)
    >>> chain.append_new(alice, timestamp=t, body=Propose(...))  # doctest: +SKIP
    """

    __slots__ = ("_entries", "_trades", "_vouches", "author")

    def __init__(self, author: Pseudonym) -> None:
        self.author = author
        self._entries: list[Entry] = []
        self._trades: dict[bytes, TradeView] = {}
        self._vouches: dict[tuple[Pseudonym, str], Entry] = {}

    @classmethod
    def from_entries(cls, entries: Iterable[Entry], *, now: int | None = None) -> Chain:
        """Validate a whole history, genesis first; raise the first violation."""
        it = iter(entries)
        first = next(it, None)
        if first is None:
            raise LocalProtocolError("a chain needs at least one entry to name its author")
        chain = cls(first.author)
        chain.append(first, now=now)
        for e in it:
            chain.append(e, now=now)
        return chain

    # -- reading ------------------------------------------------------------

    @property
    def head(self) -> Entry | None:
        return self._entries[-1] if self._entries else None

    @property
    def entries(self) -> tuple[Entry, ...]:
        return tuple(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def __getitem__(self, seq: int) -> Entry:
        """The entry with sequence number ``seq`` (1-based, like the spec)."""
        if not 1 <= seq <= len(self._entries):
            raise KeyError(seq)
        return self._entries[seq - 1]

    def trade(self, trade: bytes) -> TradeView | None:
        return self._trades.get(trade)

    @property
    def trades(self) -> dict[bytes, TradeView]:
        return dict(self._trades)

    def active_vouches(self) -> list[Entry]:
        return [e for e in self._vouches.values() if isinstance(e.body, Vouch) and e.body.active]

    # -- writing ------------------------------------------------------------

    def append_new(self, identity: SigningIdentity, *, timestamp: int, body: Body) -> Entry:
        """Sign ``body`` as the next entry, check it fits, append it, return it."""
        if identity.pseudonym != self.author:
            raise LocalProtocolError("this identity does not own this chain")
        head = self.head
        if head is not None and timestamp < head.timestamp:
            raise LocalProtocolError(
                f"timestamp {timestamp} is older than the chain head's {head.timestamp}; "
                "entry times never go backwards (spec 6.5 step 4)"
            )
        entry = Entry.create(
            identity,
            seq=len(self._entries) + 1,
            prev=GENESIS_PREV if head is None else head.id,
            timestamp=timestamp,
            body=body,
        )
        try:
            self.append(entry)
        except VerificationError as exc:
            raise LocalProtocolError(f"refusing to write an invalid entry: {exc}") from None
        return entry

    def append(self, entry: Entry, *, now: int | None = None) -> None:
        """Check ``entry`` against spec 6.5 steps 1-6 and append it."""
        head = self.head
        seq = entry.seq
        if entry.author != self.author:
            raise WrongAuthor(
                f"signed by {entry.author.short()}, but this is {self.author.short()}'s chain",
                seq=seq,
            )
        expected = len(self._entries) + 1
        if seq != expected:
            raise SeqGap(f"expected seq {expected} next", seq=seq)
        if entry.prev != (GENESIS_PREV if head is None else head.id):
            raise BrokenLink("prev is not the id of the previous entry", seq=seq)
        if head is not None and entry.timestamp < head.timestamp:
            raise TimestampRegression(
                f"timestamp {entry.timestamp} is older than seq {head.seq}'s {head.timestamp}",
                seq=seq,
            )
        if now is not None and entry.timestamp > now + MAX_CLOCK_SKEW:
            raise FutureTimestamp(
                f"timestamp {entry.timestamp} is more than {MAX_CLOCK_SKEW}s past now={now}",
                seq=seq,
            )
        self._apply(entry)
        self._entries.append(entry)

    # -- spec 7: the rules each kind must satisfy in its author's chain -------

    def _known(self, entry: Entry, trade: bytes) -> TradeView:
        view = self._trades.get(trade)
        if view is None:
            raise UnknownTrade(
                f"{entry.kind.label} names trade {trade.hex()[:16]}…, which this chain "
                "never proposed or accepted",
                seq=entry.seq,
            )
        return view

    def _open(
        self, entry: Entry, trade: bytes, role: Role, counterparty: Pseudonym, context: str
    ) -> None:
        self._trades[trade] = TradeView(
            trade=trade, role=role, counterparty=counterparty, context=context, opened=entry
        )

    def _apply(self, entry: Entry) -> None:
        body = entry.body

        def violation(msg: str) -> TradeRuleViolation:
            return _violation(entry, msg)

        if isinstance(body, Propose):
            if body.counterparty == self.author:
                raise violation("a pseudonym cannot trade with itself")
            self._open(entry, entry.id, Role.PROPOSER, body.counterparty, body.context)
        elif isinstance(body, Accept):
            if body.proposer == self.author:
                raise violation("a pseudonym cannot accept its own proposal")
            if body.trade in self._trades:
                raise violation("this chain already proposed or accepted that trade")
            self._open(entry, body.trade, Role.ACCEPTOR, body.proposer, body.context)
        elif isinstance(body, Cancel):
            view = self._known(entry, body.trade)
            if view.cancel is not None:
                raise violation("the trade is already cancelled")
            if view.commit is not None:
                raise violation("a trade cannot be cancelled after its rating was committed")
            view.cancel = entry
        elif isinstance(body, Commit):
            view = self._known(entry, body.trade)
            if view.cancel is not None:
                raise violation("a cancelled trade cannot be rated")
            if view.commit is not None:
                raise violation("the rating for this trade is already committed")
            view.commit = entry
        elif isinstance(body, Reveal):
            self._apply_reveal(entry, body)
        elif isinstance(body, Retract):
            view = self._known(entry, body.trade)
            if view.reveal is None:
                raise violation("only a revealed rating can be retracted")
            if view.retract is not None:
                raise violation("the rating is already retracted; retracting twice is meaningless")
            # Bounded so that a verifier can know a rating is final (spec 7.5, 7.8).
            if entry.timestamp > view.reveal.timestamp + RETRACT_WINDOW:
                raise violation(f"a rating can be retracted only within {RETRACT_WINDOW // DAY} "
                                "days of its reveal")
            view.retract = entry
        elif isinstance(body, Response):
            view = self._known(entry, body.trade)
            if view.ack is None:
                raise violation(
                    "a response needs the counterparty's rating to have been acknowledged"
                )
            if view.response is not None:
                raise violation("this trade already has a response")
            view.response = entry
        else:
            assert isinstance(body, Vouch)
            if body.subject == self.author:
                raise violation("a pseudonym cannot vouch for itself")
            key = (body.subject, body.context)
            current = self._vouches.get(key)
            active = current is not None and isinstance(current.body, Vouch) and current.body.active
            if body.active == active:
                state = "already vouched for" if active else "not vouched for"
                raise violation(f"subject is {state} in this context")
            self._vouches[key] = entry

    def _apply_reveal(self, entry: Entry, body: Reveal) -> None:
        view = self._known(entry, body.trade)

        def violation(msg: str) -> TradeRuleViolation:
            return _violation(entry, msg)

        if view.commit is None:
            raise violation("a reveal needs a commitment earlier in the chain")
        if view.reveal is not None:
            raise violation("the rating for this trade is already revealed")
        commit = view.commit.body
        assert isinstance(commit, Commit)
        # spec 7.3: the counterparty's commitment is acknowledged exactly once,
        # in the commit or else in the reveal -- never a reveal without an ack.
        if commit.ack is None and body.ack is None:
            raise violation(
                "the counterparty's commitment must be acknowledged before or in the reveal"
            )
        if commit.ack is not None and body.ack is not None:
            raise violation("the commitment was already acknowledged in the commit")
        expected = rating_commitment(
            trade=body.trade,
            context=view.context,
            rater=self.author,
            ratee=view.counterparty,
            stars=body.stars,
            nonce=body.nonce,
            tags=body.tags,
            comment=body.comment,
        )
        if expected != commit.commitment:
            raise CommitmentMismatch(
                "the reveal does not open the commitment made at "
                f"seq {view.commit.seq} (stars, nonce, tags or comment differ)",
                seq=entry.seq,
            )
        view.reveal = entry
