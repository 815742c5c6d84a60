"""A participant: one identity, its chain, the chains it follows, its trades.

This is the embedding API for apps that want the protocol without the node: it
glues :class:`Chain` (validation of every chain it sees) to :class:`TradeSession`
(the two-party rules) and signs for its owner.  Still sans-IO: each method takes
``timestamp`` (and randomness such as nonces) as an argument and returns the
new :class:`Entry`; sending it to the counterparty is the caller's business,
and the counterparty's entries come back in through :meth:`receive`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from ._body import Body, Propose, Vouch
from ._chain import Chain, Role, TradeView
from ._entry import Entry
from ._errors import LocalProtocolError
from ._identity import Pseudonym, SigningIdentity
from ._trade import RatingOpening, Step, TradeSession, feed_in_order

__all__ = ["Participant"]


def _entries_of(view: TradeView, *, skip: Entry) -> list[Entry]:
    """One party's entries for a trade, in chain order, without the proposal."""
    entries = [view.opened, view.cancel, view.commit, view.reveal, view.retract, view.response]
    return sorted((e for e in entries if e is not None and e is not skip), key=lambda e: e.seq)


class Participant:
    """Sign, validate and track trades for one pseudonym."""

    def __init__(self, identity: SigningIdentity) -> None:
        self.identity = identity
        self.pseudonym = identity.pseudonym
        self.chain = Chain(self.pseudonym)
        self.others: dict[Pseudonym, Chain] = {}
        self.sessions: dict[bytes, TradeSession] = {}

    @classmethod
    def restore(
        cls,
        identity: SigningIdentity,
        *,
        own: Iterable[Entry],
        others: Iterable[Iterable[Entry]],
        openings: Mapping[bytes, RatingOpening] | None = None,
    ) -> Participant:
        """Rebuild a participant from stored chains (each genesis first).

        Chains are validated again; trade sessions are replayed from both
        parties' entries (spec 7.7), and ``openings`` -- the secret halves of
        commitments not yet revealed, by trade id -- are given back to them.
        """
        p = cls(identity)
        for entry in own:
            p.chain.append(entry)
        for entries in others:
            for entry in entries:
                p._follow(entry)
        proposals = [v.opened for v in p.chain.trades.values() if v.role is Role.PROPOSER]
        for chain in p.others.values():
            proposals.extend(e for e in chain.entries if isinstance(e.body, Propose)
                             and e.body.counterparty == p.pseudonym)
        for proposal in proposals:
            session = p.sessions[proposal.id] = TradeSession(me=p.pseudonym, proposal=proposal)
            them = p.others.get(session.them)
            mine = p.chain.trade(proposal.id)
            theirs = None if them is None else them.trade(proposal.id)
            feed_in_order(
                session,
                [] if mine is None else _entries_of(mine, skip=proposal),
                [] if theirs is None else _entries_of(theirs, skip=proposal),
                skip_refused=True)
            session.opening = None if openings is None else openings.get(proposal.id)
        return p

    def _follow(self, entry: Entry, *, now: int | None = None) -> None:
        """Append another author's entry to its chain here (spec 6.5)."""
        if entry.author == self.pseudonym:
            raise LocalProtocolError("my own entries are made here, not received")
        chain = self.others.get(entry.author)
        if chain is None:
            chain = self.others[entry.author] = Chain(entry.author)
        chain.append(entry, now=now)

    # -- my entries -----------------------------------------------------------

    def _append(self, body: Body, timestamp: int) -> Entry:
        entry = self.chain.append_new(self.identity, timestamp=timestamp, body=body)
        if isinstance(body, Propose):
            self.sessions[entry.id] = TradeSession(me=self.pseudonym, proposal=entry)
        elif entry.trade is not None:
            self.session(entry.trade).receive(entry)
        return entry

    def session(self, trade: bytes) -> TradeSession:
        try:
            return self.sessions[trade]
        except KeyError:
            raise LocalProtocolError(f"no trade {trade.hex()[:16]}… is known here") from None

    def propose(
        self, counterparty: Pseudonym, *, context: str, terms: bytes, timestamp: int
    ) -> Entry:
        body = Propose(counterparty=counterparty, context=context, terms=terms)
        return self._append(body, timestamp)

    def accept(self, trade: bytes, *, timestamp: int) -> Entry:
        return self._append(self.session(trade).accept_body(), timestamp)

    def cancel(self, trade: bytes, *, timestamp: int) -> Entry:
        return self._append(self.session(trade).cancel_body(), timestamp)

    def commit(
        self,
        trade: bytes,
        *,
        stars: int,
        nonce: bytes,
        timestamp: int,
        tags: Sequence[str] = (),
        comment: bytes | None = None,
    ) -> Entry:
        body = self.session(trade).commit_body(stars=stars, nonce=nonce, tags=tags,
                                               comment=comment)
        return self._append(body, timestamp)

    def reveal(self, trade: bytes, *, timestamp: int) -> Entry:
        return self._append(self.session(trade).reveal_body(), timestamp)

    def retract(self, trade: bytes, *, timestamp: int) -> Entry:
        return self._append(self.session(trade).retract_body(), timestamp)

    def respond(self, trade: bytes, *, text: bytes, timestamp: int) -> Entry:
        return self._append(self.session(trade).response_body(text), timestamp)

    def vouch(
        self, subject: Pseudonym, *, context: str, timestamp: int, active: bool = True
    ) -> Entry:
        return self._append(Vouch(subject=subject, context=context, active=active), timestamp)

    def next_step(self, trade: bytes, *, now: int) -> Step:
        return self.session(trade).next_step(now)

    # -- their entries ----------------------------------------------------------

    def receive(self, entry: Entry, *, now: int | None = None) -> TradeSession | None:
        """Validate another author's next entry; route trade steps to sessions.

        Entries of one author must arrive in chain order (a node fetches the
        missing range first).  Returns the session the entry touched, if any.
        Raises :class:`shinyo.VerificationError` for an entry that breaks a rule.
        """
        self._follow(entry, now=now)
        body = entry.body
        if isinstance(body, Propose):
            if body.counterparty != self.pseudonym:
                return None
            offer = self.sessions[entry.id] = TradeSession(me=self.pseudonym, proposal=entry)
            return offer
        session = None if entry.trade is None else self.sessions.get(entry.trade)
        if session is None or session.them != entry.author:
            return None
        # An entry can be valid in its own chain yet break the two-party rules
        # (spec 7.7): it stays in the author's chain -- it *was* signed -- and
        # the error reaches the caller, who may penalise the sender.
        session.receive(entry)
        return session
