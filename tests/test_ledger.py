"""The node's ledger: participant + store in step (no network)."""

from __future__ import annotations

from pathlib import Path

import pytest

import shinyo
from shinyo import Entry, LocalProtocolError, Outcome, verify_proof
from shinyo.node._ledger import IngestStatus, Ledger
from shinyo.node._store import Store

from .conftest import CTX, T0, identity, nonce, terms

DAY = 86_400


def open_ledger(home: Path, n: int) -> Ledger:
    return Ledger.open(Store.open(home / f"node{n}.db"), identity(n))


def relay(dst: Ledger, entries: list[Entry], now: int) -> list[Entry]:
    """Deliver entries; return the steps ``dst`` made by itself in answer."""
    for e in entries:
        got = dst.ingest(e.encode(), now=now)
        assert got.status is IngestStatus.ADDED, got
    return dst.advance(now=now)


def test_a_blind_rating_across_two_ledgers_survives_a_restart(tmp_path: Path) -> None:
    a, b = open_ledger(tmp_path, 1), open_ledger(tmp_path, 2)
    p = a.propose(b.pseudonym, context=CTX, terms=terms(), now=T0)
    assert relay(b, [p], T0) == []
    assert relay(a, [b.accept(p.id, now=T0 + 60)], T0 + 60) == []
    c1 = a.rate(p.id, stars=5, nonce=nonce(1), now=T0 + 100)
    assert relay(b, [c1], T0 + 100) == []
    # b commits, then "crashes" before anything else: its secret is on disk.
    c2 = b.rate(p.id, stars=4, nonce=nonce(2), now=T0 + 200)
    b.store.close()
    b = open_ledger(tmp_path, 2)
    assert b.advance(now=T0 + 250) == []  # b reveals second: it waits for a
    reveal_a = relay(a, [c2], T0 + 300)
    assert [e.kind for e in reveal_a] == [shinyo.Kind.RATE_REVEAL]
    reveal_b = relay(b, reveal_a, T0 + 400)
    assert [e.kind for e in reveal_b] == [shinyo.Kind.RATE_REVEAL]
    assert relay(a, reveal_b, T0 + 500) == []
    assert a.session(p.id).rating_received() == 4 and b.session(p.id).rating_received() == 5
    assert b.store.secrets() == {} and a.store.secrets() == {}
    report = verify_proof(a.proof(a.pseudonym), now=T0 + DAY)
    assert [t.outcome for t in report.trades] == [Outcome.RATED]
    # Any node can export anyone's proof from what it holds.
    assert verify_proof(a.proof(b.pseudonym), now=T0 + DAY).trades[0].stars == 5
    assert a.trades(now=T0 + DAY)[0]["state"] == "complete"


def test_duplicates_gaps_forks_and_garbage(tmp_path: Path) -> None:
    a, b = open_ledger(tmp_path, 1), open_ledger(tmp_path, 2)
    e1 = a.propose(b.pseudonym, context=CTX, terms=terms(), now=T0)
    e2 = a.propose(b.pseudonym, context=CTX, terms=terms(1), now=T0 + 10)
    e3 = a.propose(b.pseudonym, context=CTX, terms=terms(2), now=T0 + 20)
    got = b.ingest(e3.encode(), now=T0 + 30)
    assert got.status is IngestStatus.GAP and got.need == (a.pseudonym, 1, 2)
    assert b.ingest(e1.encode(), now=T0 + 30).status is IngestStatus.ADDED
    assert b.ingest(e1.encode(), now=T0 + 30).status is IngestStatus.DUPLICATE
    twin = Entry.create(identity(1), seq=1, prev=bytes(32), timestamp=T0,
                        body=shinyo.Cancel(trade=bytes(32)))
    fork = b.ingest(twin.encode(), now=T0 + 30)
    assert fork.status is IngestStatus.FORK and fork.fork is not None
    assert b.store.is_forked(a.pseudonym)
    bad = bytearray(e2.encode())
    bad[-1] ^= 1
    got = b.ingest(bytes(bad), now=T0 + 30)
    assert got.status is IngestStatus.INVALID and got.error is not None
    assert got.error.failure_class == "bad-signature"
    assert b.ingest(b"\xff" * 40, now=T0 + 30).status is IngestStatus.INVALID
    assert b.ingest(e1.encode(), now=T0).status is IngestStatus.DUPLICATE
    mine = b.propose(a.pseudonym, context=CTX, terms=terms(), now=T0)
    assert b.ingest(mine.encode(), now=T0).status is IngestStatus.DUPLICATE
    stranger = Entry.create(identity(2), seq=2, prev=mine.id, timestamp=T0 + 5,
                            body=shinyo.Cancel(trade=mine.id))
    assert b.ingest(stranger.encode(), now=T0).status is IngestStatus.OWN


def test_a_proof_carries_the_subjects_fork_and_only_relevant_others(tmp_path: Path) -> None:
    # spec/proof.md 4 step 6: a verifier given the subject's fork proof says `forked`.
    a, c, d = open_ledger(tmp_path, 1), open_ledger(tmp_path, 3), open_ledger(tmp_path, 4)
    p = a.propose(c.pseudonym, context=CTX, terms=terms(), now=T0)
    assert c.ingest(p.encode(), now=T0).status is IngestStatus.ADDED
    twin = Entry.create(identity(1), seq=p.seq, prev=p.prev, timestamp=T0 + 1,
                        body=shinyo.Propose(counterparty=d.pseudonym, context=CTX,
                                            terms=terms(1)))
    assert c.ingest(twin.encode(), now=T0 + 2).status is IngestStatus.FORK
    with pytest.raises(shinyo.VerificationError) as refused:
        verify_proof(c.proof(a.pseudonym), now=T0 + 3)
    assert refused.value.failure_class == "forked"
    # d's proof, from c: a (forked) is no counterparty of d, so its fork stays out.
    q = d.propose(c.pseudonym, context=CTX, terms=terms(2), now=T0 + 4)
    assert c.ingest(q.encode(), now=T0 + 4).status is IngestStatus.ADDED
    assert verify_proof(c.proof(d.pseudonym), now=T0 + 5).forked_counterparties == ()


def test_a_future_entry_is_invalid_and_not_stored(tmp_path: Path) -> None:
    a, b = open_ledger(tmp_path, 1), open_ledger(tmp_path, 2)
    e = a.propose(b.pseudonym, context=CTX, terms=terms(), now=T0 + DAY)
    got = b.ingest(e.encode(), now=T0)
    assert got.status is IngestStatus.INVALID and got.error is not None
    assert got.error.failure_class == "future-timestamp"
    assert b.store.count() == 0


def test_local_mistakes_are_local_errors(tmp_path: Path) -> None:
    a = open_ledger(tmp_path, 1)
    with pytest.raises(LocalProtocolError, match="8 hex"):
        a.find_trade("abc")
    with pytest.raises(LocalProtocolError, match="no trade"):
        a.find_trade("00000000")
    p = a.propose(identity(2).pseudonym, context=CTX, terms=terms(), now=T0)
    assert a.find_trade(p.id.hex()[:10]) == p.id
    with pytest.raises(LocalProtocolError):
        a.rate(p.id, stars=9, nonce=nonce(1), now=T0 + 1)
    assert a.store.secrets() == {}  # nothing kept for a refused rating
    with pytest.raises(LocalProtocolError, match="holds no entries"):
        a.proof(identity(3).pseudonym)
    # A clock stepped back still writes (entry times never go backwards).
    later = a.cancel(p.id, now=T0 - DAY)
    assert later.timestamp == T0
