"""The node's SQLite store (node/_store.py): entries, forks, peers, secrets, schema, crashes."""

from __future__ import annotations

import functools
import hashlib
import os
import random
import signal
import sqlite3
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from nacl.bindings import crypto_scalarmult_ed25519_base_noclamp

from shinyo import Chain, Entry, ForkProof, LocalProtocolError, Propose
from shinyo._constants import DST_ENTRY_SIG
from shinyo.node._store import (
    APPLICATION_ID,
    MAX_FORK_PROOFS_PER_AUTHOR,
    MAX_PEERS,
    MAX_SECRET_SIZE,
    SCHEMA_VERSION,
    AddStatus,
    PeerSource,
    Store,
    StoreError,
    migrate,
)
from shinyo.tools.craft import envelope

from .conftest import CTX, T0, identity

ROOT = Path(__file__).resolve().parents[1]
THEM = identity(200).pseudonym


def body(n: int) -> Propose:
    return Propose(counterparty=THEM, context=CTX, terms=n.to_bytes(32, "big"))


def chain(n: int, length: int) -> list[Entry]:
    """``length`` real, valid, signed entries of identity(n)'s chain."""
    me = identity(n)
    c = Chain(me.pseudonym)
    for i in range(length):
        c.append_new(me, timestamp=T0 + i, body=body(i))
    return list(c.entries)


def sibling(e: Entry, n: int) -> Entry:
    """Another entry at ``e``'s (author, seq): a fork."""
    return Entry.create(identity(n), seq=e.seq, prev=e.prev, timestamp=e.timestamp,
                        body=body(10_000 + e.seq))


def resigned(e: Entry, n: int) -> Entry:
    """``e`` (written by identity(n)) with another valid signature over the same payload.

    Ed25519 lets a signer pick any nonce, so one payload -- one id (spec 6.2) --
    can travel in different bytes.
    """
    order = 2**252 + 27742317777372353535851937790883648493
    h = hashlib.sha512(bytes([n]) * 32).digest()  # identity(n)'s seed, RFC 8032 5.1.5
    clamped = bytearray(h[:32])
    clamped[0] &= 248
    clamped[31] = (clamped[31] & 127) | 64
    secret = int.from_bytes(clamped, "little") % order
    message = DST_ENTRY_SIG + e.payload
    r = int.from_bytes(hashlib.sha512(b"another nonce" + message).digest(), "little") % order
    big_r = crypto_scalarmult_ed25519_base_noclamp(r.to_bytes(32, "little"))
    k = int.from_bytes(hashlib.sha512(big_r + e.author.key + message).digest(), "little") % order
    s = (r + k * secret) % order
    other = Entry.decode(envelope(e.payload, big_r + s.to_bytes(32, "little")))
    assert other.id == e.id and other.encode() != e.encode()
    return other


A, B, C = chain(1, 6), chain(2, 4), chain(3, 5)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with Store.open(tmp_path / "store.db") as s:
        yield s


# -- entries -------------------------------------------------------------------


def test_round_trip_and_reopen(tmp_path: Path) -> None:
    path = tmp_path / "store.db"
    with Store.open(path) as s:
        results = s.add_many(A + B)
        assert [r.status for r in results] == [AddStatus.ADDED] * 10
        assert [r.id for r in results] == [e.id for e in A + B]
    with Store.open(path) as s:
        assert s.schema_version == SCHEMA_VERSION
        for e in A + B:
            assert s.get(e.id) == e.encode()
        assert s.get(bytes(32)) is None
        assert s.head(A[0].author) == (6, A[-1].id)
        assert s.head(C[0].author) is None
        assert s.heads() == {A[0].author: (6, A[-1].id), B[0].author: (4, B[-1].id)}
        assert list(s.iter_chain(A[0].author)) == A
        assert list(s.iter_chain(C[0].author)) == []
        assert s.count() == 10 and s.count(A[0].author) == 6 and s.count(C[0].author) == 0
        assert s.authors() == sorted([A[0].author, B[0].author])


def test_duplicates_change_nothing(store: Store) -> None:
    assert store.add(A[0]).status is AddStatus.ADDED
    again = store.add(A[0])
    assert again.status is AddStatus.DUPLICATE and again.id == A[0].id and again.existing is None
    assert store.add_many([]) == []
    results = store.add_many([A[1], A[1], A[0]])
    assert [r.status for r in results] == [AddStatus.ADDED, AddStatus.DUPLICATE,
                                           AddStatus.DUPLICATE]
    assert store.count() == 2 and store.head(A[0].author) == (2, A[1].id)


def test_the_same_entry_in_other_bytes_is_a_duplicate_and_overwrites_nothing(
        store: Store) -> None:
    # Same payload, another signature: the same id, so the same entry (spec 6.2).
    # Whichever bytes came first stay, whether the second comes alone or batched.
    twin0, twin1 = resigned(A[0], 1), resigned(A[1], 1)
    store.add(A[0])
    store.add(twin1)
    again = store.add(twin0)
    assert again.status is AddStatus.DUPLICATE and again.existing is None
    results = store.add_many([A[1], twin0, A[2], resigned(A[2], 1)])
    assert [r.status for r in results] == [AddStatus.DUPLICATE, AddStatus.DUPLICATE,
                                           AddStatus.ADDED, AddStatus.DUPLICATE]
    assert store.range(A[0].author, 1, 9, limit=9) == [A[0].encode(), twin1.encode(),
                                                       A[2].encode()]
    assert store.get(A[1].id) == twin1.encode() and store.count() == 3


def test_conflict_hands_back_the_stored_sibling(store: Store) -> None:
    store.add_many(A[:3])
    fork = sibling(A[1], 1)
    result = store.add(fork)
    assert result.status is AddStatus.CONFLICT and result.id == fork.id
    assert result.existing == A[1]
    assert store.get(fork.id) is None and store.count() == 3
    assert store.range(A[0].author, 2, 2, limit=1) == [A[1].encode()]  # not overwritten
    proof = ForkProof.from_entries(fork, result.existing)
    assert not store.is_forked(A[0].author)
    assert store.add_fork(proof) is True
    assert store.add_fork(proof) is False
    assert store.is_forked(A[0].author) and not store.is_forked(B[0].author)
    assert store.forks(A[0].author) == [proof] and store.forks() == [proof]
    assert store.forks(B[0].author) == []


def test_conflict_inside_one_batch(store: Store) -> None:
    fork = sibling(B[0], 2)
    results = store.add_many([B[0], fork, B[1]])
    assert [r.status for r in results] == [AddStatus.ADDED, AddStatus.CONFLICT, AddStatus.ADDED]
    assert results[1].existing == B[0]
    assert store.range(B[0].author, 1, 9, limit=9) == [B[0].encode(), B[1].encode()]


def test_fork_proofs_per_author_are_bounded(store: Store) -> None:
    first = ForkProof.from_entries(A[0], sibling(A[0], 1))
    second = ForkProof.from_entries(A[2], sibling(A[2], 1))
    other = ForkProof.from_entries(B[0], sibling(B[0], 2))
    assert MAX_FORK_PROOFS_PER_AUTHOR == 1
    assert store.add_fork(first) and not store.add_fork(second)  # the bound: one convicts
    assert store.add_fork(other)
    assert store.forks() == sorted([first, other], key=lambda p: p.author)


def test_fork_proofs_are_counted_and_listed_without_decoding_them_all(store: Store) -> None:
    proofs = sorted([ForkProof.from_entries(A[0], sibling(A[0], 1)),
                     ForkProof.from_entries(B[0], sibling(B[0], 2))], key=lambda p: p.author)
    assert store.fork_authors() == set() and store.fork_count() == 0
    for proof in proofs:
        store.add_fork(proof)
    assert store.fork_authors() == {A[0].author, B[0].author} and store.fork_count() == 2
    assert store.forks(limit=0) == [] and store.forks(limit=1) == proofs[:1]
    assert store.forks(limit=2) == proofs == store.forks(limit=5)
    for bad in (-1, 1.5, "2"):
        with pytest.raises(LocalProtocolError, match="limit"):
            store.forks(limit=bad)  # type: ignore[arg-type]


def test_out_of_order_adds_keep_the_highest_head(store: Store) -> None:
    store.add(A[4])
    assert store.head(A[0].author) == (5, A[4].id)
    store.add_many([A[1], A[0]])
    assert store.head(A[0].author) == (5, A[4].id) and store.count(A[0].author) == 3
    assert store.range(A[0].author, 1, 6, limit=10) == [e.encode() for e in (A[0], A[1], A[4])]
    # Below the head each entry is looked up: both verdicts still come out right.
    results = store.add_many([A[1], sibling(A[3], 1), A[3]])
    assert [r.status for r in results] == [AddStatus.DUPLICATE, AddStatus.ADDED,
                                           AddStatus.CONFLICT]


def test_ranges_and_limits(store: Store) -> None:
    store.add_many(A)
    who = A[0].author
    raw = [e.encode() for e in A]
    assert store.range(who, 1, 6, limit=100) == raw
    assert store.range(who, 2, 4, limit=100) == raw[1:4]
    assert store.range(who, 2, 6, limit=2) == raw[1:3]
    assert store.range(who, 0, 1, limit=1) == raw[:1]
    assert store.range(who, 6, 99, limit=100) == raw[5:]
    assert store.range(who, 7, 99, limit=100) == []
    assert store.range(who, 4, 2, limit=100) == []
    assert store.range(who, 1, 6, limit=0) == []
    assert store.range(B[0].author, 1, 6, limit=100) == []
    for bad in ((-1, 2, 1), (1, 2, -1), (1, True, 1)):
        with pytest.raises(LocalProtocolError):
            store.range(who, bad[0], bad[1], limit=bad[2])


def test_iter_chain_reads_past_a_page(store: Store) -> None:
    long = chain(4, 300)  # more than one page of 256
    store.add_many(long)
    assert [e.id for e in store.iter_chain(long[0].author)] == [e.id for e in long]


def test_add_many_takes_only_entries(store: Store) -> None:
    with pytest.raises(LocalProtocolError, match=r"shinyo\.Entry"):
        store.add_many([A[0], A[1].encode()])  # type: ignore[list-item]
    assert store.count() == 0


def test_a_corrupted_row_is_reported_as_corruption(tmp_path: Path) -> None:
    path = tmp_path / "store.db"
    with Store.open(path) as s:
        s.add_many(A[:2])
    raw = sqlite3.connect(path)
    with raw:
        bad = A[1].encode()[:-1] + bytes([A[1].encode()[-1] ^ 1])  # flip a signature bit
        raw.execute("UPDATE entries SET raw = ? WHERE id = ?", (bad, A[1].id))
    raw.close()
    with Store.open(path) as s, pytest.raises(StoreError, match="corrupt"):
        list(s.iter_chain(A[0].author))


# -- schema ----------------------------------------------------------------------


def test_an_empty_file_is_migrated(tmp_path: Path) -> None:
    path = tmp_path / "store.db"
    path.write_bytes(b"")
    with Store.open(path) as s:
        assert s.schema_version == SCHEMA_VERSION
        s.set_meta("k", b"v")
    raw = sqlite3.connect(path)
    assert raw.execute("PRAGMA application_id").fetchone()[0] == APPLICATION_ID
    assert raw.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    raw.close()


def test_a_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "store.db"
    Store.open(path).close()
    raw = sqlite3.connect(path)
    raw.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    raw.close()
    with pytest.raises(StoreError, match=r"newer shinyo.*Upgrade shinyo") as info:
        Store.open(path)
    assert str(path) in str(info.value)


def test_other_files_are_refused(tmp_path: Path) -> None:
    foreign = tmp_path / "foreign.db"
    raw = sqlite3.connect(foreign)
    raw.execute("CREATE TABLE t (x)")
    raw.close()
    with pytest.raises(StoreError, match="not a shinyo store"):
        Store.open(foreign)
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"definitely not SQLite, just some bytes " * 200)
    with pytest.raises(StoreError, match="corrupt"):
        Store.open(junk)
    with pytest.raises(StoreError, match="cannot open"):
        Store.open(tmp_path / "missing-dir" / "store.db")


def test_migrations_run_in_order_one_transaction_each(tmp_path: Path) -> None:
    db = sqlite3.connect(tmp_path / "m.db", isolation_level=None)
    steps = [("CREATE TABLE a (x)",), ("CREATE TABLE b (x)", "INSERT INTO b VALUES (1)")]
    assert migrate(db, steps[:1], path=tmp_path) == 0
    assert migrate(db, steps, path=tmp_path) == 1
    assert db.execute("PRAGMA user_version").fetchone()[0] == 2
    broken = [*steps, ("CREATE TABLE c (x)", "INSERT INTO nowhere VALUES (1)")]
    with pytest.raises(sqlite3.OperationalError):
        migrate(db, broken, path=tmp_path)
    # The failed step left nothing behind: version and tables as before.
    assert db.execute("PRAGMA user_version").fetchone()[0] == 2
    tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert tables == {"a", "b"}
    db.close()


def test_options_and_closed_store(tmp_path: Path) -> None:
    with pytest.raises(LocalProtocolError, match="OFF could lose"):
        Store.open(tmp_path / "s.db", synchronous="OFF")
    with pytest.raises(LocalProtocolError):
        Store.open(tmp_path / "s.db", max_peers=0)
    s = Store.open(tmp_path / "s.db", synchronous="FULL")
    s.add(A[0])
    s.close()
    with pytest.raises(StoreError, match="closed"):
        s.add(A[1])
    with pytest.raises(StoreError, match="closed"):
        s.get(A[0].id)


# -- peers -----------------------------------------------------------------------


def test_peer_bookkeeping(store: Store) -> None:
    key = identity(9).pseudonym.key
    assert store.upsert_peer("10.0.0.1", 4433, now=100, source=PeerSource.EXCHANGE)
    assert store.upsert_peer("10.0.0.1", 4433, now=150, source=PeerSource.CONFIG, node_key=key)
    assert store.upsert_peer("10.0.0.1", 4433, now=120, source=PeerSource.INBOUND)
    p = store.peer("10.0.0.1", 4433)
    assert p is not None
    assert (p.source, p.node_key, p.first_seen, p.last_seen) == (PeerSource.CONFIG, key, 100, 150)
    store.record_failure("10.0.0.1", 4433)
    store.record_failure("10.0.0.1", 4433)
    assert store.peer("10.0.0.1", 4433).failures == 2  # type: ignore[union-attr]
    store.record_success("10.0.0.1", 4433, now=200)
    p = store.peer("10.0.0.1", 4433)
    assert p is not None and (p.failures, p.last_success, p.last_seen) == (0, 200, 200)
    assert store.penalise("10.0.0.1", 4433, 5) == 5 and store.penalise("10.0.0.1", 4433, 3) == 8
    store.ban("10.0.0.1", 4433, until=500)
    p = store.peer("10.0.0.1", 4433)
    assert p is not None and p.banned(499) and not p.banned(500)
    assert store.peer("10.0.0.2", 4433) is None
    with pytest.raises(LocalProtocolError, match="unknown peer"):
        store.record_failure("10.0.0.2", 4433)
    assert store.forget_peer("10.0.0.1", 4433) and not store.forget_peer("10.0.0.1", 4433)
    for host, port in (("", 1), ("h", 0), ("h", 65536), ("x" * 256, 1), ("a\x00b", 1)):
        with pytest.raises(LocalProtocolError):
            store.upsert_peer(host, port, now=1, source=PeerSource.INBOUND)
    with pytest.raises(LocalProtocolError):
        store.upsert_peer("h", 1, now=-1, source=PeerSource.INBOUND)
    with pytest.raises(LocalProtocolError):
        store.upsert_peer("h", 1, now=1, source=PeerSource.INBOUND, node_key=b"short")


def test_dial_candidates_order_and_bans(store: Store) -> None:
    for i in range(5):
        store.upsert_peer(f"h{i}", 1, now=10, source=PeerSource.EXCHANGE)
    store.record_success("h1", 1, now=50)
    store.record_success("h2", 1, now=60)
    store.record_failure("h3", 1)
    store.ban("h4", 1, until=100)
    names = [p.host for p in store.dial_candidates(now=99, limit=10)]
    assert names == ["h2", "h1", "h0", "h3"]
    names = [p.host for p in store.dial_candidates(now=100, limit=10)]  # the ban is over
    assert names == ["h2", "h1", "h0", "h4", "h3"]
    assert len(store.dial_candidates(now=100, limit=2)) == 2


def test_peer_table_bound_evicts_the_worst(tmp_path: Path) -> None:
    with Store.open(tmp_path / "s.db", max_peers=3) as s:
        s.upsert_peer("config", 1, now=1, source=PeerSource.CONFIG)
        s.upsert_peer("good", 1, now=1, source=PeerSource.EXCHANGE)
        s.record_success("good", 1, now=2)
        s.upsert_peer("flaky", 1, now=1, source=PeerSource.EXCHANGE)
        s.record_failure("flaky", 1)
        assert s.upsert_peer("new", 1, now=3, source=PeerSource.EXCHANGE)
        assert {p.host for p in s.peers()} == {"config", "good", "new"}  # flaky went
        # A flood of exchanged addresses churns among themselves; the configured
        # peer and the one that ever worked stay.
        for i in range(10):
            assert s.upsert_peer(f"flood{i}", 1, now=4 + i, source=PeerSource.EXCHANGE)
        assert {p.host for p in s.peers()} == {"config", "good", "flood9"}
        assert s.upsert_peer("inbound", 1, now=20, source=PeerSource.INBOUND)  # stronger source
        assert {p.host for p in s.peers()} == {"config", "good", "inbound"}
        # Now the newcomer is itself the worst row: it is the one not kept.
        assert not s.upsert_peer("late", 1, now=30, source=PeerSource.EXCHANGE)
        assert {p.host for p in s.peers()} == {"config", "good", "inbound"}
        s.ban("good", 1, until=100)  # banned: evicted first, whatever it did before
        assert s.upsert_peer("late", 1, now=40, source=PeerSource.EXCHANGE)
        assert {p.host for p in s.peers()} == {"config", "inbound", "late"}


def test_peer_table_default_bound(store: Store) -> None:
    for i in range(MAX_PEERS + 1):
        store.upsert_peer(f"10.1.{i // 256}.{i % 256}", 4433, now=i, source=PeerSource.EXCHANGE)
    peers = store.peers()
    assert len(peers) == MAX_PEERS
    assert "10.1.0.0" not in {p.host for p in peers}  # the longest unseen went


# -- secrets and meta ----------------------------------------------------------------


def test_secrets_survive_reopen(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    t1, t2 = A[0].id, B[0].id
    with Store.open(path) as s:
        s.put_secret(t1, b"one")
        s.put_secret(t2, b"two")
        s.put_secret(t1, b"uno")  # replaces
        s.put_secret(bytes(32), b"x" * MAX_SECRET_SIZE)  # the bound itself is fine
        with pytest.raises(LocalProtocolError, match="at most"):
            s.put_secret(bytes(32), b"x" * (MAX_SECRET_SIZE + 1))
        with pytest.raises(LocalProtocolError):
            s.put_secret(b"short", b"x")
    with Store.open(path) as s:
        assert s.get_secret(t1) == b"uno" and s.get_secret(t2) == b"two"
        assert s.secrets() == {t1: b"uno", t2: b"two", bytes(32): b"x" * MAX_SECRET_SIZE}
        assert s.delete_secret(t1) and not s.delete_secret(t1)
        assert s.get_secret(t1) is None


def test_meta(store: Store) -> None:
    assert store.get_meta("node.key") is None
    store.set_meta("node.key", b"a")
    store.set_meta("node.key", b"b")
    assert store.get_meta("node.key") == b"b"
    with pytest.raises(LocalProtocolError):
        store.set_meta("", b"x")
    with pytest.raises(LocalProtocolError):
        store.set_meta("k", "text")  # type: ignore[arg-type]


# -- properties ------------------------------------------------------------------


def _snapshot(s: Store) -> tuple[object, ...]:
    ranges = tuple(s.range(c[0].author, lo, hi, limit=lim)
                   for c in (A, B, C) for lo, hi, lim in ((1, 9, 9), (2, 4, 9), (1, 9, 2)))
    return s.heads(), s.count(), tuple(s.count(c[0].author) for c in (A, B, C)), ranges


@functools.cache
def reference() -> tuple[object, ...]:
    """The snapshot after adding every chain in order, in one batch."""
    with tempfile.TemporaryDirectory() as tmp, Store.open(Path(tmp) / "s.db") as s:
        s.add_many(A + B + C)
        return _snapshot(s)


@settings(max_examples=40, deadline=None)
@given(order=st.permutations(A + B + C), again=st.lists(st.sampled_from(A + B + C), max_size=5),
       cuts=st.lists(st.integers(1, 6), min_size=1, max_size=20))
def test_add_order_does_not_matter(order: list[Entry], again: list[Entry],
                                   cuts: list[int]) -> None:
    todo = order + again  # re-adding entries is harmless
    with tempfile.TemporaryDirectory() as tmp, Store.open(Path(tmp) / "s.db") as s:
        i = k = 0
        while i < len(todo):
            n = cuts[k % len(cuts)]
            batch = todo[i : i + n]
            if n == 1:
                s.add(batch[0])
            else:
                s.add_many(batch)
            i, k = i + n, k + 1
        assert _snapshot(s) == reference()


# -- crash safety ------------------------------------------------------------------


@pytest.mark.parametrize(("synchronous", "seed"), [("NORMAL", 1), ("NORMAL", 2), ("FULL", 3)])
def test_acknowledged_entries_survive_kill_9(tmp_path: Path, synchronous: str, seed: int) -> None:
    # The pipe holds ~1000 lines, so the child is at most that far ahead when killed.
    authors, length = 3, 1000
    path = tmp_path / "crash.db"
    kill_after = random.Random(seed).randrange(20, length)
    cmd = [sys.executable, "-m", "tests._store_crash_child", str(path), synchronous,
           str(authors), str(length)]
    with subprocess.Popen(cmd, cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                          text=True) as proc:
        assert proc.stdout is not None
        acked: list[str] = []
        while len(acked) < kill_after:
            line = proc.stdout.readline()
            assert line and line != "done\n", "the child ended before it could be killed"
            acked.append(line.strip())
        os.kill(proc.pid, signal.SIGKILL)
        # Lines the child wrote before dying are still in the pipe: acknowledged too.
        acked += [line.strip() for line in proc.stdout if line != "done\n"]
        assert proc.wait() == -signal.SIGKILL
    with Store.open(path) as s:
        held = {e.id.hex() for who in s.authors() for e in s.iter_chain(who)}
        assert set(acked) <= held
        # At most the one entry whose acknowledgement the kill cut off is extra.
        assert len(acked) <= s.count() <= len(acked) + 1
        assert s.count() < authors * length  # the kill landed while it was adding
        for who in s.authors():
            head = s.head(who)
            assert head is not None
            seqs = [e.seq for e in s.iter_chain(who)]
            assert seqs == list(range(1, head[0] + 1))
