"""The node's ledger: its participant and its store, kept in step.

Every entry the node holds -- the user's own and every one it receives -- is
first judged by the protocol core (:class:`shinyo.Participant`, which runs the
chain rules of spec 6.5 and 7 and the two-party rules of 7.7) and then written
to the store, which commits before returning.  Only then is an entry
acknowledged or forwarded, so an acknowledged entry survives ``kill -9``.

The ledger does no networking and reads no clock: ``now`` is an argument, and
the nonce of a rating commitment comes from the caller.  The daemon calls it
from its trio thread; each call is short (one entry, one transaction).

Secrets.  A rating commitment is useless without its opening (stars, nonce,
tags, comment).  The opening is stored *before* the commit entry: a crash
between the two leaves an unused secret, never a commitment that can no longer
be revealed (which would count as ``stalled`` against the user, spec 7.8).
"""

from __future__ import annotations

import contextlib
import enum
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import cbor2

from shinyo import (
    Action,
    Chain,
    Entry,
    ForkProof,
    LocalProtocolError,
    Participant,
    Pseudonym,
    RatingOpening,
    SigningIdentity,
    TradeSession,
    VerificationError,
    build_proof,
)

from ._store import AddStatus, Store

__all__ = ["IngestStatus", "Ingested", "Ledger"]


class IngestStatus(enum.Enum):
    ADDED = "added"  # valid, stored: forward it
    DUPLICATE = "duplicate"  # already held
    FORK = "fork"  # conflicts with a held entry: ``fork`` is the proof, stored
    GAP = "gap"  # valid signature, but entries before it are missing: fetch ``need``
    INVALID = "invalid"  # breaks a rule: ``error`` says which; penalise the sender
    OWN = "own"  # an entry of this node's pseudonym that this node did not write


@dataclass(frozen=True, slots=True, kw_only=True)
class Ingested:
    status: IngestStatus
    entry: Entry | None = None
    fork: ForkProof | None = None
    error: VerificationError | None = None
    need: tuple[Pseudonym, int, int] | None = None  # author, first and last missing seq
    # Set when the entry is valid in its chain but breaks a two-party rule
    # (spec 7.7): it is stored -- it was signed -- but its trade ignores it.
    trade_error: VerificationError | None = None


def _encode_opening(o: RatingOpening) -> bytes:
    return cbor2.dumps([o.stars, o.nonce, list(o.tags), o.comment], canonical=True)


def _decode_opening(blob: bytes) -> RatingOpening:
    stars, nonce, tags, comment = cbor2.loads(blob)
    return RatingOpening(stars=stars, nonce=nonce, tags=tuple(tags), comment=comment)


class Ledger:
    """One pseudonym's view of every chain the node holds."""

    def __init__(self, store: Store, participant: Participant) -> None:
        self.store = store
        self.participant = participant
        self._batch: list[Entry] | None = None

    @classmethod
    def open(cls, store: Store, identity: SigningIdentity) -> Ledger:
        """Rebuild the participant from the store (chains re-validated, spec 6.5)."""
        me = identity.pseudonym
        openings = {t: _decode_opening(blob) for t, blob in store.secrets().items()}
        participant = Participant.restore(
            identity,
            own=store.iter_chain(me),
            others=(store.iter_chain(a) for a in store.authors() if a != me),
            openings=openings,
        )
        return cls(store, participant)

    @property
    def pseudonym(self) -> Pseudonym:
        return self.participant.pseudonym

    def chain(self, author: Pseudonym) -> Chain | None:
        # Others first: the hot path of every entry from a peer.
        chain = self.participant.others.get(author)
        if chain is None and author == self.pseudonym:
            return self.participant.chain
        return chain

    # -- entries from peers -------------------------------------------------------

    def ingest(self, raw: bytes | Entry, *, now: int) -> Ingested:
        """Judge one entry from a peer, store it if valid; never raises for bad input."""
        try:
            entry = raw if isinstance(raw, Entry) else Entry.decode(raw)
        except VerificationError as exc:
            return Ingested(status=IngestStatus.INVALID, error=exc)
        chain = self.chain(entry.author)
        held = 0 if chain is None else len(chain)
        if entry.seq <= held:
            assert chain is not None
            existing = chain[entry.seq]
            if existing.id == entry.id:
                return Ingested(status=IngestStatus.DUPLICATE, entry=entry)
            fork = ForkProof.from_entries(existing, entry)
            self.store.add_fork(fork)
            return Ingested(status=IngestStatus.FORK, entry=entry, fork=fork)
        if entry.seq > held + 1:
            return Ingested(status=IngestStatus.GAP, entry=entry,
                            need=(entry.author, held + 1, entry.seq - 1))
        if entry.author == self.pseudonym:
            # Recovering one's own chain from peers (a key moved to a new node)
            # is not supported yet: refuse rather than guess.
            return Ingested(status=IngestStatus.OWN, entry=entry)
        trade_error: VerificationError | None = None
        try:
            self.participant.receive(entry, now=now)
        except VerificationError as exc:
            chain = self.chain(entry.author)
            if chain is None or len(chain) == held:
                return Ingested(status=IngestStatus.INVALID, entry=entry, error=exc)
            trade_error = exc  # appended to its chain; only its trade refused it
        if self._batch is not None:
            self._batch.append(entry)  # stored when the batch ends
        else:
            self._keep(entry)
        return Ingested(status=IngestStatus.ADDED, entry=entry, trade_error=trade_error)

    @contextlib.contextmanager
    def batch(self) -> Iterator[None]:
        """Store the entries :meth:`ingest` adds inside the block in one transaction,
        committed when the block ends -- before the caller acknowledges or forwards
        any of them, so an acknowledged entry still survives ``kill -9``.  The block
        must not checkpoint: until it ends the store lags the chains in memory."""
        if self._batch is not None:
            yield
            return
        self._batch = []
        try:
            yield
        finally:
            pending, self._batch = self._batch, None
            results = self.store.add_many(pending) if pending else []
            if any(r.status is not AddStatus.ADDED for r in results):  # pragma: no cover
                raise LocalProtocolError("the store already held entries the chains did "
                                         "not; restart the node to resync")

    def add_fork(self, fork: ForkProof) -> bool:
        """A fork proof from a peer (already decoded, so valid); True if new."""
        return self.store.add_fork(fork)

    # -- the user's own steps ---------------------------------------------------------

    def _keep(self, entry: Entry) -> Entry:
        """Store an entry the participant just accepted; committed on return."""
        result = self.store.add(entry)
        if result.status is not AddStatus.ADDED:  # pragma: no cover - memory and disk disagree
            raise LocalProtocolError(f"the store already held seq {entry.seq} of "
                                     f"{entry.author.short()}; restart the node to resync")
        return entry

    def _time(self, now: int) -> int:
        # Entry times never go backwards (spec 6.5 step 4): a clock stepped back
        # must not make the user's next step unwritable.
        head = self.participant.chain.head
        return now if head is None else max(now, head.timestamp)

    def propose(self, counterparty: Pseudonym, *, context: str, terms: bytes,
                now: int) -> Entry:
        return self._keep(self.participant.propose(
            counterparty, context=context, terms=terms, timestamp=self._time(now)))

    def accept(self, trade: bytes, *, now: int) -> Entry:
        return self._keep(self.participant.accept(trade, timestamp=self._time(now)))

    def cancel(self, trade: bytes, *, now: int) -> Entry:
        return self._keep(self.participant.cancel(trade, timestamp=self._time(now)))

    def rate(self, trade: bytes, *, stars: int, nonce: bytes, now: int,
             tags: Sequence[str] = (), comment: bytes | None = None) -> Entry:
        """Commit a blind rating; the reveal follows by itself (:meth:`advance`)."""
        session = self.participant.session(trade)
        session.commit_body(stars=stars, nonce=nonce, tags=tags, comment=comment)  # checks
        opening = RatingOpening(stars=stars, nonce=nonce, tags=tuple(tags), comment=comment)
        self.store.put_secret(trade, _encode_opening(opening))
        return self._keep(self.participant.commit(
            trade, stars=stars, nonce=nonce, tags=tags, comment=comment,
            timestamp=self._time(now)))

    def retract(self, trade: bytes, *, now: int) -> Entry:
        return self._keep(self.participant.retract(trade, timestamp=self._time(now)))

    def respond(self, trade: bytes, *, text: bytes, now: int) -> Entry:
        return self._keep(self.participant.respond(trade, text=text,
                                                   timestamp=self._time(now)))

    def advance(self, *, now: int) -> list[Entry]:
        """Make every step that is due and needs no decision: reveals (spec 7.3)."""
        made = []
        for trade, session in self.participant.sessions.items():
            if session.opening is None or session.next_step(now).action is not Action.REVEAL:
                continue
            made.append(self._keep(self.participant.reveal(trade, timestamp=self._time(now))))
            self.store.delete_secret(trade)
        return made

    # -- reading ---------------------------------------------------------------------

    def session(self, trade: bytes) -> TradeSession:
        return self.participant.session(trade)

    def find_trade(self, prefix: str) -> bytes:
        """The trade whose hex id starts with ``prefix`` (at least 8 digits)."""
        prefix = prefix.lower()
        if len(prefix) < 8:
            raise LocalProtocolError("give at least 8 hex digits of the trade id")
        found = [t for t in self.participant.sessions if t.hex().startswith(prefix)]
        if not found:
            raise LocalProtocolError(f"no trade {prefix}… is known to this node")
        if len(found) > 1:
            raise LocalProtocolError(f"{prefix}… names {len(found)} trades; give more digits")
        return found[0]

    def trades(self, *, now: int) -> list[dict[str, Any]]:
        rows = []
        for trade, s in self.participant.sessions.items():
            step = s.next_step(now)
            rows.append({
                "trade": trade.hex(),
                "role": s.role.value,
                "counterparty": s.them.to_text(),
                "context": s.context,
                "state": s.state.value,
                "next": step.action.value,
                "deadline": step.deadline,
                "given": s.rating_given(),
                "received": s.rating_received(),
                "opened": s.proposal.timestamp,
            })
        rows.sort(key=lambda r: (r["opened"], r["trade"]))
        return rows

    def status(self) -> dict[str, Any]:
        chains = [self.participant.chain, *self.participant.others.values()]
        return {
            "pseudonym": self.pseudonym.to_text(),
            "chains": sum(1 for c in chains if len(c)),
            "entries": sum(len(c) for c in chains),
            "own_entries": len(self.participant.chain),
            "trades": len(self.participant.sessions),
            "forks": self.store.fork_count(),
        }

    def proof(self, subject: Pseudonym) -> bytes:
        """A proof bundle for ``subject`` from the chains held here (spec/proof.md 2)."""
        chain = self.chain(subject)
        if chain is None or not len(chain):
            raise LocalProtocolError(f"this node holds no entries of {subject.short()}")
        chains = {p: c for p, c in self.participant.others.items() if p != subject}
        if subject != self.pseudonym:
            chains[self.pseudonym] = self.participant.chain
        # The subject's own fork proof goes in: a verifier MUST then answer
        # `forked` (spec/proof.md 4 step 6).  Of the others, only those about
        # the subject's counterparties matter; the rest would only mislead.
        relevant = {subject, *(view.counterparty for view in chain.trades.values())}
        forks = [f for author in sorted(self.store.fork_authors() & relevant,
                                        key=lambda a: a.key)
                 for f in self.store.forks(author)]
        return build_proof(chain, chains, forks=forks)
