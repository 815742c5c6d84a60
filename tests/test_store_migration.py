"""Opening stores that older shinyo wrote: schema migrations (node/_store.py, ``_MIGRATIONS``).

The old files are built here with plain ``sqlite3`` and the DDL their schema
version had, copied below, not by calling the store: once a migration lands
the code that wrote the old schema is gone, and the test must not change with it.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path

import pytest

from shinyo import Chain, Entry, ForkProof, Propose
from shinyo.node._store import (
    _MIGRATIONS,
    APPLICATION_ID,
    SCHEMA_VERSION,
    AddStatus,
    PeerRecord,
    PeerSource,
    Store,
    migrate,
)

from .conftest import CTX, T0, identity

ROOT = Path(__file__).resolve().parents[1]
THEM = identity(200).pseudonym

# Schema 1, verbatim from node/_store.py as it was until schema 2.
V1_DDL = (
    """CREATE TABLE entries (
            id        BLOB    PRIMARY KEY NOT NULL,
            author    BLOB    NOT NULL,
            seq       INTEGER NOT NULL,
            timestamp INTEGER NOT NULL,
            kind      INTEGER NOT NULL,
            raw       BLOB    NOT NULL,
            UNIQUE (author, seq))""",
    """CREATE TABLE chains (
            author   BLOB    PRIMARY KEY NOT NULL,
            head_seq INTEGER NOT NULL,
            head_id  BLOB    NOT NULL,
            entries  INTEGER NOT NULL) WITHOUT ROWID""",
    """CREATE TABLE forks (
            first  BLOB    NOT NULL,
            second BLOB    NOT NULL,
            author BLOB    NOT NULL,
            seq    INTEGER NOT NULL,
            proof  BLOB    NOT NULL,
            PRIMARY KEY (first, second))""",
    "CREATE INDEX forks_by_author ON forks (author)",
    """CREATE TABLE peers (
            host         TEXT    NOT NULL,
            port         INTEGER NOT NULL,
            node_key     BLOB,
            source       TEXT    NOT NULL,
            first_seen   INTEGER NOT NULL,
            last_seen    INTEGER NOT NULL,
            last_success INTEGER,
            failures     INTEGER NOT NULL DEFAULT 0,
            banned_until INTEGER NOT NULL DEFAULT 0,
            penalty      INTEGER NOT NULL DEFAULT 0,
            PRIMARY KEY (host, port))""",
    "CREATE TABLE secrets (trade BLOB PRIMARY KEY NOT NULL, blob BLOB NOT NULL) WITHOUT ROWID",
    "CREATE TABLE meta (key TEXT PRIMARY KEY NOT NULL, value BLOB NOT NULL) WITHOUT ROWID",
)


def chain(n: int, length: int) -> list[Entry]:
    me = identity(n)
    c = Chain(me.pseudonym)
    for i in range(length):
        c.append_new(me, timestamp=T0 + i,
                     body=Propose(counterparty=THEM, context=CTX, terms=i.to_bytes(32, "big")))
    return list(c.entries)


def sibling(e: Entry, n: int) -> Entry:
    return Entry.create(identity(n), seq=e.seq, prev=e.prev, timestamp=e.timestamp,
                        body=Propose(counterparty=THEM, context=CTX, terms=bytes(32)))


A, B = chain(1, 40), chain(2, 30)
GAPPED = [e for e in chain(3, 5) if e.seq in (1, 2, 5)]  # a store may hold a chain with holes
BIG = chain(4, 600)  # enough rows that the copy spills pages and can be cut midway
FORK = ForkProof.from_entries(A[1], sibling(A[1], 1))
PEER = PeerRecord(host="10.0.0.7", port=4433, node_key=identity(9).pseudonym.key,
                  source=PeerSource.CONFIG, first_seen=100, last_seen=150, last_success=140,
                  failures=2, banned_until=0, penalty=3)


def interleaved(*chains: Sequence[Entry]) -> list[Entry]:
    """Round-robin over the chains: rows in arrival order, as gossip writes them."""
    return [c[i] for i in range(max(map(len, chains))) for c in chains if i < len(c)]


def v1_store(path: Path, entries: Iterable[Entry]) -> None:
    """A schema-1 store as shinyo wrote it: WAL, its application id, version 1, every table."""
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode = WAL")
    db.execute("BEGIN IMMEDIATE")
    for statement in V1_DDL:
        db.execute(statement)
    db.execute(f"PRAGMA application_id = {APPLICATION_ID}")
    db.execute("PRAGMA user_version = 1")
    heads: dict[bytes, tuple[int, bytes, int]] = {}  # author: head seq, head id, entries
    for e in entries:
        db.execute("INSERT INTO entries (id, author, seq, timestamp, kind, raw) "
                   "VALUES (?, ?, ?, ?, ?, ?)",
                   (e.id, e.author.key, e.seq, e.timestamp, int(e.kind), e.encode()))
        seq, head_id, n = heads.get(e.author.key, (0, b"", 0))
        heads[e.author.key] = (e.seq, e.id, n + 1) if e.seq > seq else (seq, head_id, n + 1)
    db.executemany("INSERT INTO chains (author, head_seq, head_id, entries) VALUES (?, ?, ?, ?)",
                   [(a, *h) for a, h in heads.items()])
    db.execute("INSERT INTO forks (first, second, author, seq, proof) VALUES (?, ?, ?, ?, ?)",
               (FORK.first.id, FORK.second.id, FORK.author.key, FORK.seq, FORK.encode()))
    db.execute("INSERT INTO peers (host, port, node_key, source, first_seen, last_seen, "
               "last_success, failures, banned_until, penalty) "
               "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
               (PEER.host, PEER.port, PEER.node_key, PEER.source.value, PEER.first_seen,
                PEER.last_seen, PEER.last_success, PEER.failures, PEER.banned_until,
                PEER.penalty))
    db.execute("INSERT INTO secrets (trade, blob) VALUES (?, ?)", (A[0].id, b"opening"))
    db.execute("INSERT INTO meta (key, value) VALUES (?, ?)", ("node.seed", b"seed"))
    db.execute("COMMIT")
    db.close()


def raw_state(path: Path) -> tuple[int, list[tuple[object, ...]], list[tuple[object, ...]]]:
    """(user_version, every entry row, the schema) read with plain sqlite3."""
    with sqlite3.connect(path) as db:
        version = db.execute("PRAGMA user_version").fetchone()[0]
        rows = db.execute("SELECT id, author, seq, timestamp, kind, raw FROM entries "
                          "ORDER BY author, seq").fetchall()
        # (Statistics tables come and go with ``PRAGMA optimize``: not the schema.)
        schema = db.execute("SELECT type, name, tbl_name, sql FROM sqlite_master "
                            "WHERE name NOT LIKE 'sqlite_stat%' ORDER BY name").fetchall()
    db.close()
    return version, rows, schema


def check_everything_survived(path: Path, entries: Sequence[Entry]) -> None:
    by_author: dict[bytes, list[Entry]] = {}
    for e in sorted(entries, key=lambda e: e.seq):
        by_author.setdefault(e.author.key, []).append(e)
    with Store.open(path) as s:
        assert s.schema_version == SCHEMA_VERSION == 2
        assert s.count() == len(entries)
        assert sorted(a.key for a in s.authors()) == sorted(by_author)
        for chain_ in by_author.values():
            who = chain_[0].author
            assert list(s.iter_chain(who)) == chain_
            assert s.head(who) == (chain_[-1].seq, chain_[-1].id)
            assert s.count(who) == len(chain_)
        for e in entries[:: max(1, len(entries) // 50)]:
            assert s.get(e.id) == e.encode()
        assert s.forks() == [FORK] and s.is_forked(A[0].author)
        assert s.peers() == [PEER]
        assert s.secrets() == {A[0].id: b"opening"}
        assert s.get_meta("node.seed") == b"seed"


def fresh_schema(tmp_path: Path) -> list[tuple[object, ...]]:
    Store.open(tmp_path / "fresh.db").close()
    return raw_state(tmp_path / "fresh.db")[2]


def test_a_schema_1_store_is_migrated_in_place(tmp_path: Path) -> None:
    path = tmp_path / "store.db"
    entries = interleaved(A, B, GAPPED)
    v1_store(path, entries)
    version, rows, schema = raw_state(path)
    assert version == 1 and len(rows) == len(entries) and schema != fresh_schema(tmp_path)

    check_everything_survived(path, entries)
    version, after, schema = raw_state(path)
    assert version == SCHEMA_VERSION and after == rows
    # Exactly the schema a new store gets: nothing of schema 1 is left behind.
    assert schema == fresh_schema(tmp_path)
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA application_id").fetchone()[0] == APPLICATION_ID
        assert db.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        # The point of schema 2: no index on the random id, the (author, seq) key kept.
        plan = " ".join(r[-1] for r in db.execute(
            "EXPLAIN QUERY PLAN SELECT raw FROM entries WHERE id = ?", (A[0].id,)))
        assert plan.startswith("SCAN entries")
        plan = " ".join(r[-1] for r in db.execute(
            "EXPLAIN QUERY PLAN SELECT raw FROM entries WHERE author = ? AND seq = ?",
            (A[0].author.key, 1)))
        assert "USING INDEX sqlite_autoindex_entries_1" in plan
    db.close()

    # The migrated store keeps the store's rules for duplicates and forks.
    with Store.open(path) as s:
        assert s.add(A[5]).status is AddStatus.DUPLICATE
        conflict = s.add(sibling(B[3], 2))
        assert conflict.status is AddStatus.CONFLICT and conflict.existing == B[3]
        gapped = chain(3, 5)
        assert [r.status for r in s.add_many(gapped)] == [
            AddStatus.DUPLICATE, AddStatus.DUPLICATE, AddStatus.ADDED, AddStatus.ADDED,
            AddStatus.DUPLICATE]
        assert s.head(gapped[0].author) == (5, gapped[-1].id) and s.count() == len(entries) + 2


def test_the_migration_gives_back_its_wal(tmp_path: Path) -> None:
    # Rebuilding the table writes it whole to the WAL; open truncates it after.
    # (SQLite keeps a WAL file at its largest for reuse unless told otherwise.)
    path = tmp_path / "store.db"
    v1_store(path, BIG)
    with Store.open(path) as s:
        assert s.schema_version == SCHEMA_VERSION
        assert Path(f"{path}-wal").stat().st_size == 0
        assert s.add(chain(5, 1)[0]).status is AddStatus.ADDED  # and it goes on as before
        assert Path(f"{path}-wal").stat().st_size > 0


def _copying(db: sqlite3.Connection) -> list[str]:
    """Note every statement ``db`` starts; the last one is running."""
    started: list[str] = []
    db.set_trace_callback(started.append)
    return started


def test_an_interrupted_migration_leaves_schema_1_whole(tmp_path: Path) -> None:
    path = tmp_path / "store.db"
    entries = interleaved(A, B, GAPPED, BIG)
    v1_store(path, entries)
    before = raw_state(path)
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode = WAL")
    started = _copying(db)
    ticks = []

    def interrupt_the_copy() -> int:
        # SQLite calls this every 100 virtual-machine steps; non-zero aborts the statement.
        if started[-1].startswith("INSERT INTO entries"):
            ticks.append(1)
        return int(len(ticks) == 20)

    db.set_progress_handler(interrupt_the_copy, 100)
    with pytest.raises(sqlite3.OperationalError, match="interrupted"):
        migrate(db, _MIGRATIONS, path=path)
    db.close()
    assert len(ticks) == 20  # it was stopped inside the copy, not before or after
    assert raw_state(path) == before  # version 1, every row, no half-built table
    check_everything_survived(path, entries)  # and the next open migrates it


def migrate_until_killed(path: str, at: int) -> None:
    """Child process: run the real migration on ``path`` and SIGKILL itself inside the
    copy, after ``at`` progress ticks.  A tiny page cache makes SQLite spill the
    transaction's pages to the WAL before the kill, as a big store would."""
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode = WAL")
    db.execute("PRAGMA cache_size = 8")
    started = _copying(db)
    ticks = 0

    def kill_in_the_copy() -> int:
        nonlocal ticks
        if started[-1].startswith("INSERT INTO entries"):
            ticks += 1
            if ticks == at:
                os.kill(os.getpid(), signal.SIGKILL)
        return 0

    db.set_progress_handler(kill_in_the_copy, 100)
    migrate(db, _MIGRATIONS, path=Path(path))
    print(f"migrated without being killed ({ticks} ticks in the copy)")


@pytest.mark.parametrize("at", [20, 120])
def test_a_migration_killed_midway_leaves_a_store_that_opens(tmp_path: Path, at: int) -> None:
    path = tmp_path / "store.db"
    entries = interleaved(A, B, GAPPED, BIG)
    v1_store(path, entries)
    before = raw_state(path)
    child = subprocess.run(
        [sys.executable, "-c", "import sys; from tests.test_store_migration import "
         "migrate_until_killed as m; m(sys.argv[1], int(sys.argv[2]))", str(path), str(at)],
        cwd=ROOT, capture_output=True, text=True, timeout=60, check=False)
    assert child.returncode == -signal.SIGKILL, child.stdout + child.stderr
    # The killed transaction had written pages to the WAL, uncommitted: recovery drops them.
    assert Path(f"{path}-wal").stat().st_size > 0
    assert raw_state(path) == before
    check_everything_survived(path, entries)
