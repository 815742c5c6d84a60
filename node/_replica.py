"""The node's replica: what it does with entries and fork proofs from peers.

Theory of operation (spec/wire.md 7.4, 7.5, 8.2, 8.3)
-----------------------------------------------------
Peers send raw entries in two kinds of message: an ``Entries`` answer to one
of our Wants, and an unasked ``Push``.  The replica takes either in three
stages, so that a session can run them as a pipeline (``_peer.py``):

:meth:`~Replica.prepare`, for each raw entry in order:

1. skips it if it is a pushed copy of an id we verified recently (seen-set,
   8.2; the id is read from the envelope, no signature check yet);
2. parses it (shinyo.md 6.4 steps 1-7a) -- a failure is the sender's
   offence, and ends an answer (7.4 step 2);
3. checks an answer holds the author and seqs asked for (7.4 step 2);
4. skips it if we hold that very payload (its signature was checked when
   we stored it).

:meth:`~Replica.check` verifies keys and signatures (6.4 step 7), touching
no replica state, so it may run in a worker thread (or, through ``map``, in
other processes).

:meth:`~Replica.commit`, in one transaction, for each entry in order: a bad
signature is an offence and ends an answer; a good entry's id joins the
seen-set, and the entry is placed against our copy of its chain (7.5):

   ========== ==========================================================
   append     the ledger runs the chain and trade rules and stores it
              (committed before we return): *stored*, to be gossiped;
              then entries held for that chain are placed again
   duplicate  nothing
   ahead      held in :class:`~shinyo.wire.Reassembly`; the sender holds
              the chain that far, so the session fetches the gap (*ahead*)
   fork       the ledger builds and stores the fork proof (*forks* when new)
   link       fetch the sender's entry at our head seq: fork evidence
   ========== ==========================================================

Nothing here touches the network or a clock: the session (``_peer.py``)
turns the :class:`Received` summary into penalties, Wants and gossip.  The
replica is node-wide (one seen-set and one reassembly buffer for all peers),
so its memory bounds are the node's, not a peer's.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field

from shinyo import (
    Entry,
    ForkProof,
    FutureTimestamp,
    LocalProtocolError,
    Pseudonym,
    VerificationError,
)
from shinyo._entry import MapFn, check_signatures
from shinyo.wire import (
    Entries,
    Head,
    Placement,
    Reassembly,
    SeenSet,
    WantClaims,
    check_answer,
    peek_id,
    place,
)

from ._ledger import IngestStatus, Ledger

__all__ = ["Batch", "Received", "Replica"]

logger = logging.getLogger("shinyo.node")


@dataclass(slots=True)
class Received:
    """What one message of entries did, for the session to act on."""

    stored: list[Entry] = field(default_factory=list)
    """Appended to our copies (committed): gossip them, except back to the sender."""
    forks: list[ForkProof] = field(default_factory=list)
    """Fork proofs about authors not known to have forked before: gossip them."""
    errors: list[VerificationError] = field(default_factory=list)
    """The sender's faults (bad entries, wrong answers): penalise each."""
    ahead: list[tuple[Pseudonym, int]] = field(default_factory=list)
    """(author, seq) the sender holds beyond our head: fetch the gap from it."""
    evidence: list[tuple[Pseudonym, int]] = field(default_factory=list)
    """(author, seq) to fetch from the sender alone: fork evidence (7.5)."""
    failed_authors: set[Pseudonym] = field(default_factory=set)
    """Chains the sender sent invalid entries of: ask it nothing more this round."""
    skipped: int = 0
    """Entries skipped unverified: ids in the seen-set, payloads we hold."""


@dataclass(slots=True, eq=False)
class Batch:
    """One message's entries between the stages of :class:`Replica`'s receive."""

    answer: Entries | None
    """The answer the entries came in, or None for a Push."""
    items: list[Entry | VerificationError] = field(default_factory=list)
    """Parsed entries (signatures unchecked until :meth:`Replica.check`) and the
    errors met, in message order; an answer's end at its first error."""
    skipped: int = 0
    checked: bool = False

    @property
    def unchecked(self) -> int:
        """Signatures :meth:`Replica.check` has to verify."""
        return 0 if self.checked else sum(isinstance(i, Entry) for i in self.items)


class Replica:
    """Every chain copy the node holds, fed by peers (see the module header)."""

    def __init__(self, ledger: Ledger, *, seen: SeenSet | None = None,
                 held: Reassembly | None = None) -> None:
        self.ledger = ledger
        self.seen = SeenSet() if seen is None else seen
        self.held = Reassembly() if held is None else held
        self.claims = WantClaims()  # ranges in flight to any peer (wire.md 7.3)

    # -- the LocalView the sync planner reads (shinyo.wire.LocalView) ------------

    def head(self, author: Pseudonym) -> tuple[int, bytes] | None:
        chain = self.ledger.chain(author)
        if chain is None or chain.head is None:
            return None
        return len(chain), chain.head.id

    def id_at(self, author: Pseudonym, seq: int) -> bytes:
        chain = self.ledger.chain(author)
        assert chain is not None, "id_at() of a chain we hold no copy of"
        return chain[seq].id

    def heads_between(self, after: bytes | None, through: bytes | None) -> Iterator[Head]:
        for h in self.all_heads():
            if (after is None or h.author.key > after) and (through is None
                                                            or h.author.key <= through):
                yield h

    def all_heads(self, authors: Iterable[Pseudonym] | None = None) -> list[Head]:
        """Our heads, sorted by author key (for Heads pages, wire.md 7.2); only
        ``authors`` if given (a ProofRequest's scope, 7.6)."""
        p = self.ledger.participant
        if authors is None:
            chains = [p.chain, *p.others.values()]
        else:
            chains = [c for c in (self.ledger.chain(a) for a in set(authors)) if c is not None]
        heads = [Head(author=c.author, seq=len(c), id=c.head.id)
                 for c in chains if c.head is not None]
        heads.sort(key=lambda h: h.author.key)
        return heads

    def proof_scope(self, subject: Pseudonym) -> list[Pseudonym]:
        """The chains a proof about ``subject`` needs that we hold (wire.md 7.6)."""
        chain = self.ledger.chain(subject)
        if chain is None or chain.head is None:
            return []
        return [subject, *{view.counterparty for view in chain.trades.values()}]

    # -- receiving ---------------------------------------------------------------
    #
    # Three stages, so a session can check one message's signatures in a worker
    # thread while it parses the next and stores the one before (``_peer.py``):
    # prepare (parse, cheap skips), check (signatures; thread-safe, touches no
    # replica state) and commit (place and store, in message order).

    def receive(self, raws: Sequence[bytes], *, now: int,
                answer: Entries | None = None) -> Received:
        """Handle the raw entries of one Push (``answer`` None) or one answer, in
        one call: :meth:`prepare`, :meth:`check`, :meth:`commit`."""
        batch = self.prepare(raws, answer=answer)
        self.check(batch)
        return self.commit(batch, now=now)

    def prepare(self, raws: Sequence[bytes], *, answer: Entries | None = None) -> Batch:
        """Stage 1: parse each raw entry (shinyo.md 6.4 steps 1-7a), skipping the
        ones a signature check would be wasted on.

        The skips read the replica as it is now; a batch prepared while earlier
        ones are still in flight may verify an entry those store first, and
        :meth:`commit` then finds it a duplicate.  Wasted work, never a wrong
        result: a skip only ever drops bytes we hold a verified copy of.
        """
        batch = Batch(answer=answer)
        for i, raw in enumerate(raws):
            if answer is None:
                rid = peek_id(raw)
                if rid is not None and rid in self.seen:
                    batch.skipped += 1
                    continue
            try:
                entry = Entry._parse(raw)  # the signature is stage 2
                if answer is not None:
                    check_answer(answer, [entry], start=i)
            except VerificationError as exc:
                batch.items.append(exc)
                if answer is not None:
                    break  # 7.4 step 2: the entries after a failure are discarded
                continue
            if place(entry, self) is Placement.DUPLICATE:
                # We hold this very payload, its signature checked when it was
                # stored; these bytes are dropped, so the costly step is skipped.
                batch.skipped += 1
                continue
            batch.items.append(entry)
        return batch

    @staticmethod
    def check(batch: Batch, *, map: MapFn = map) -> None:
        """Stage 2: check the batch's keys and signatures (6.4 step 7), in place.
        Reads and writes nothing but ``batch``, so it may run in a worker thread;
        the checks themselves go through ``map`` as plain bytes, so an executor
        may run them in other processes."""
        batch.items = check_signatures(batch.items, map=map)
        batch.checked = True

    def commit(self, batch: Batch, *, now: int) -> Received:
        """Stage 3: place and store a checked batch (7.5) in one transaction,
        committed before the caller gossips what was stored."""
        if not batch.checked:
            raise LocalProtocolError("commit() of a batch whose signatures were not checked: "
                                     "call check() first (shinyo.md 6.4 step 7b)")
        out = Received(skipped=batch.skipped)
        with self.ledger.batch():
            for item in batch.items:
                if isinstance(item, VerificationError):
                    out.errors.append(item)
                    if batch.answer is not None:
                        out.failed_authors.add(batch.answer.author)
                        break  # 7.4 step 2, for a bad signature too
                    continue
                self.seen.add(item.id)
                self._place(item, now, out)
        return out

    def _place(self, entry: Entry, now: int, out: Received) -> None:
        placement = place(entry, self)
        if placement is Placement.APPEND:
            self._append(entry, now, out)
        elif placement is Placement.AHEAD:
            head = self.head(entry.author)
            held = self.held.hold(entry, head_seq=0 if head is None else head[0])
            if held.conflict is not None:
                self._fork(ForkProof.from_entries(held.conflict, entry), out)
            else:
                out.ahead.append((entry.author, entry.seq))
        elif placement is Placement.FORK:
            chain = self.ledger.chain(entry.author)
            assert chain is not None
            self._fork(ForkProof.from_entries(chain[entry.seq], entry), out)
        elif placement is Placement.LINK_CONFLICT:
            head = self.head(entry.author)
            assert head is not None
            out.evidence.append((entry.author, head[0]))
        # Placement.DUPLICATE: nothing to do.

    def _append(self, entry: Entry, now: int, out: Received) -> None:
        result = self.ledger.ingest(entry, now=now)
        if result.status is IngestStatus.ADDED:
            out.stored.append(entry)
            if result.trade_error is not None:
                logger.info("entry %d of %s breaks a trade rule (%s); stored, its trade "
                            "ignores it", entry.seq, entry.author.short(), result.trade_error)
            # Appended: the chain's head is this entry now.
            for later in self.held.ready(entry.author, entry.seq):
                self._place(later, now, out)
        elif result.status is IngestStatus.INVALID:
            assert result.error is not None
            # An entry from the future is explained by differing clocks (7.5):
            # dropped, unpunished, fetched again in a later round.
            if not isinstance(result.error, FutureTimestamp):
                out.errors.append(result.error)
                out.failed_authors.add(entry.author)
        elif result.status is IngestStatus.OWN:
            logger.warning("a peer sent entry %d of this node's own pseudonym, which this "
                           "node did not write; is the identity key in use elsewhere?",
                           entry.seq)

    def _fork(self, proof: ForkProof, out: Received) -> None:
        # The store keeps one proof per author, so "stored" means "news" (8.3).
        if self.ledger.add_fork(proof):
            logger.warning("fork: %s signed two entries at seq %d",
                           proof.author.short(), proof.seq)
            out.forks.append(proof)

    def receive_fork(self, proof: ForkProof) -> bool:
        """A verified fork proof from a peer; True if it is news to gossip (8.3)."""
        out = Received()
        self._fork(proof, out)
        return bool(out.forks)
