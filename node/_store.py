"""The node's embedded store: one SQLite file in WAL mode (stdlib ``sqlite3``).

What it holds: every entry the node has accepted, keyed by (author, seq);
fork proofs; known peer addresses; the local user's rating secrets for trades
still in progress; and a small key/value ``meta`` table.

What it promises, and what it leaves to the caller:

* **Uniqueness.**  At most one entry per (author, seq), and so per id: an id
  hashes the payload, which names author and seq (spec 6.2).  The same entry
  again is a no-op (:attr:`AddStatus.DUPLICATE`; the bytes stored first stay).
  A different entry at a stored (author, seq) is refused and the stored sibling
  handed back (:attr:`AddStatus.CONFLICT`), so the caller can build a
  :class:`shinyo.ForkProof` (spec 8); a stored entry is never overwritten.
  The store does *not* run the chain rules (spec 6.5): the caller validates
  with :class:`shinyo.Chain` before adding.
* **Durability.**  Every write method commits before it returns; nothing is
  buffered in memory.  So an entry the node acknowledged survives ``kill -9``
  of the process: with the default ``synchronous="NORMAL"`` the committed
  WAL frames are in the operating system's page cache when ``add`` returns,
  which a process crash cannot lose.  Only a power loss or kernel crash can
  then roll back the last transactions (never corrupt the file); open with
  ``synchronous="FULL"`` to fsync the WAL on every commit and survive those
  too (measured on a 2-vCPU VM: ``add`` 18k/s with NORMAL, 3.9k/s with FULL).
* **No clock.**  Times (peers) are arguments in whole seconds.

Use from one thread at a time: the daemon owns one ``Store`` and serialises its
calls (it may hop to a worker thread, hence ``check_same_thread=False``).  Each
call is one short transaction; batch entries with :meth:`Store.add_many`.

Schema versions live in ``PRAGMA user_version``; :data:`_MIGRATIONS` is the
ordered list of steps, each applied in its own transaction.  A crash or error
during a step leaves the file at the version before it, and the next open runs
the step again.  A file marked with a newer version than this code knows is
refused rather than guessed at.
"""

from __future__ import annotations

import contextlib
import enum
import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

from shinyo import Entry, ForkProof, LocalProtocolError, Pseudonym, ShinyoError, VerificationError

__all__ = [
    "MAX_FORK_PROOFS_PER_AUTHOR",
    "MAX_PEERS",
    "MAX_SECRET_SIZE",
    "SCHEMA_VERSION",
    "AddResult",
    "AddStatus",
    "PeerRecord",
    "PeerSource",
    "Store",
    "StoreError",
]

APPLICATION_ID = 0x5359_4E31  # "SYN1" in the file header: tells our stores from other SQLite files
MAX_PEERS = 1000
"""Peer rows kept; beyond it the worst row is evicted (see :meth:`Store.upsert_peer`)."""
MAX_FORK_PROOFS_PER_AUTHOR = 1
"""One proof convicts an author (spec 8); more would let a forker fill our disk."""
MAX_SECRET_SIZE = 16 * 1024
"""Largest trade secret blob (a rating opening is well under 1 KiB)."""
MAX_HOST_LEN = 255
_PAGE = 256  # rows per page when iterating a chain: bounded memory, no long-lived read cursor

_MIGRATIONS: tuple[tuple[str, ...], ...] = (
    # 1: the first schema.  ``entries`` is a rowid table (measured fastest to
    # fill and fast enough to scan); ``id`` and ``(author, seq)`` are both
    # unique keys, the latter the index behind range scans.  ``chains`` keeps
    # each author's head and count, so ``heads()`` (anti-entropy, on every
    # connect) reads one row per author instead of scanning every entry.
    (
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
    ),
    # 2: no key on ``id``.  An id is a random hash, so its unique index sent
    # every insert to a random page: once a store outgrew the page cache, time
    # per entry grew with the store (2.2x from 1k to 100k entries against the
    # 1.5x of issue 7's linear target; docs/BENCHMARKS.md, "Store").  Nothing
    # needs it: ``add_many`` finds duplicates and forks by (author, seq), a key
    # that makes the id unique too (spec 6.2); ``get`` by id now scans.  The
    # table stays a rowid table, so rows are appended and only the (author,
    # seq) index takes inserts in its middle, each at the end of its author's
    # run.  (WITHOUT ROWID clustered on (author, seq) measured the same for
    # chains stored one after another, but about 3x slower when many authors'
    # entries come interleaved.)  SQLite cannot drop a constraint, so the table
    # is rebuilt, in this step's one transaction: the old one renamed aside,
    # its rows copied in (author, seq) order -- each chain's rows end up
    # together -- and dropped: about 1 s on open per 100k entries.
    (
        "ALTER TABLE entries RENAME TO entries_v1",
        """CREATE TABLE entries (
            id        BLOB    NOT NULL,
            author    BLOB    NOT NULL,
            seq       INTEGER NOT NULL,
            timestamp INTEGER NOT NULL,
            kind      INTEGER NOT NULL,
            raw       BLOB    NOT NULL,
            UNIQUE (author, seq))""",
        "INSERT INTO entries (id, author, seq, timestamp, kind, raw) "
        "SELECT id, author, seq, timestamp, kind, raw FROM entries_v1 ORDER BY author, seq",
        "DROP TABLE entries_v1",
    ),
)
SCHEMA_VERSION = len(_MIGRATIONS)


class StoreError(ShinyoError):
    """The store cannot be used: corrupt, newer than this code, locked, disk full, closed."""


class AddStatus(enum.Enum):
    ADDED = "added"
    DUPLICATE = "duplicate"  # this very entry (same id) was already stored
    CONFLICT = "conflict"  # a different entry holds its (author, seq): a fork


@dataclass(frozen=True, slots=True, kw_only=True)
class AddResult:
    """What :meth:`Store.add` did with one entry.

    ``existing`` is the stored sibling for :attr:`AddStatus.CONFLICT` (build
    the proof with ``ForkProof.from_entries(entry, result.existing)``), else None.
    """

    status: AddStatus
    id: bytes
    existing: Entry | None = None

    def __post_init__(self) -> None:
        if (self.status is AddStatus.CONFLICT) != (self.existing is not None):
            raise LocalProtocolError("an AddResult has an existing entry exactly for a conflict")


class PeerSource(enum.Enum):
    """Where we learned an address; a stronger source is never downgraded."""

    EXCHANGE = "exchange"  # a peer told us (peer exchange): least trusted
    INBOUND = "inbound"  # it connected to us
    CONFIG = "config"  # the operator listed it (config file or command line)


_SOURCE_RANK = {PeerSource.EXCHANGE: 0, PeerSource.INBOUND: 1, PeerSource.CONFIG: 2}


@dataclass(frozen=True, slots=True, kw_only=True)
class PeerRecord:
    """One row of the peer table, as read (the store checked it when writing)."""

    host: str
    port: int
    node_key: bytes | None
    source: PeerSource
    first_seen: int
    last_seen: int
    last_success: int | None
    failures: int
    banned_until: int
    penalty: int

    def banned(self, now: int) -> bool:
        return self.banned_until > now


_PEER_COLUMNS = (
    "host, port, node_key, source, first_seen, last_seen, last_success, failures, "
    "banned_until, penalty"
)
# Eviction order, worst first: banned now; weakest source; most penalised; most
# failing; never reached (a flood of exchanged addresses cannot push out peers
# that ever worked); longest unseen.
_WORST_FIRST = (
    "banned_until > :now DESC, "
    "CASE source WHEN 'config' THEN 2 WHEN 'inbound' THEN 1 ELSE 0 END, "
    "penalty DESC, failures DESC, last_success IS NOT NULL, last_success, last_seen, host, port"
)


def _peer(row: Sequence[Any]) -> PeerRecord:
    host, port, key, source, first, last, success, failures, banned, penalty = row
    return PeerRecord(host=host, port=port, node_key=key, source=PeerSource(source),
                      first_seen=first, last_seen=last, last_success=success,
                      failures=failures, banned_until=banned, penalty=penalty)


def _check_time(value: object, name: str) -> int:
    if type(value) is not int or value < 0:
        raise LocalProtocolError(f"{name} must be a non-negative integer number of seconds")
    return value


def _check_addr(host: object, port: object) -> tuple[str, int]:
    if not isinstance(host, str) or not 0 < len(host) <= MAX_HOST_LEN or "\x00" in host:
        raise LocalProtocolError(
            f"a peer host is a name or address of 1..{MAX_HOST_LEN} characters")
    if type(port) is not int or not 0 < port < 65536:
        raise LocalProtocolError("a peer port is an integer in 1..65535")
    return host, port


def _check_id(value: object, name: str) -> bytes:
    if type(value) is not bytes or len(value) != 32:
        raise LocalProtocolError(f"{name} must be 32 bytes")
    return value


def migrate(db: sqlite3.Connection, migrations: Sequence[Sequence[str]], *, path: Path) -> int:
    """Bring ``db`` (in autocommit mode) to ``len(migrations)``; return the version found.

    Each step runs in its own transaction together with its ``user_version``
    bump, so a crash or a failing step leaves the file at the previous version.
    """
    found: int = db.execute("PRAGMA user_version").fetchone()[0]
    app = db.execute("PRAGMA application_id").fetchone()[0]
    tables = db.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]
    if app != APPLICATION_ID and (app != 0 or tables or found):
        raise StoreError(f"{path}: this SQLite file is not a shinyo store; use another --home")
    if found > len(migrations):
        raise StoreError(
            f"{path}: the store has schema version {found}, but this shinyo understands at most "
            f"{len(migrations)}; it was written by a newer shinyo. Upgrade shinyo, or use "
            "another --home."
        )
    for version in range(found + 1, len(migrations) + 1):
        db.execute("BEGIN IMMEDIATE")
        try:
            for statement in migrations[version - 1]:
                db.execute(statement)
            db.execute(f"PRAGMA application_id = {APPLICATION_ID}")
            db.execute(f"PRAGMA user_version = {version}")
        except BaseException:
            # Some errors (an interrupt, a full disk) have rolled back already.
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")
    return found


class Store:
    """The node's SQLite store.  Open with :meth:`Store.open`; see the module docstring."""

    def __init__(self, db: sqlite3.Connection, path: Path, *, max_peers: int) -> None:
        self._db = db
        self.path = path
        self.max_peers = max_peers

    # -- opening and closing ---------------------------------------------------

    @classmethod
    def open(cls, path: Path, *, synchronous: str = "NORMAL",
             max_peers: int = MAX_PEERS) -> Store:
        """Create or open the store at ``path`` and bring its schema up to date.

        ``synchronous``: ``"NORMAL"`` survives a process crash, ``"FULL"`` also
        a power loss (module docstring).  ``max_peers`` exists for tests.
        """
        if synchronous not in ("NORMAL", "FULL", "EXTRA"):
            raise LocalProtocolError(
                "synchronous must be NORMAL, FULL or EXTRA; OFF could lose acknowledged entries")
        if type(max_peers) is not int or max_peers < 1:
            raise LocalProtocolError("max_peers must be a positive integer")
        path = Path(path)
        try:
            db = sqlite3.connect(path, isolation_level=None, check_same_thread=False,
                                 timeout=5.0)
        except sqlite3.Error as exc:
            raise StoreError(f"{path}: cannot open the store ({exc}); check that the "
                             "directory exists and is writable") from exc
        try:
            mode = db.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            if mode != "wal":
                raise StoreError(f"{path}: SQLite could not switch to WAL mode (got {mode!r}); "
                                 "put --home on a local filesystem")
            db.execute(f"PRAGMA synchronous = {synchronous}")
            db.execute("PRAGMA foreign_keys = ON")
            db.execute("PRAGMA busy_timeout = 5000")
            if migrate(db, _MIGRATIONS, path=path) not in (0, SCHEMA_VERSION):
                # A migration that rebuilt tables wrote them whole to the WAL;
                # give that space back now rather than keep a WAL as big as the
                # store.  Best effort: if a reader is in the way SQLite says so
                # (and does not raise), and the WAL is only reused, as before.
                db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
        except sqlite3.Error as exc:
            db.close()
            raise _translate(exc, path) from exc
        except BaseException:
            db.close()
            raise
        return cls(db, path, max_peers=max_peers)

    def close(self) -> None:
        with contextlib.suppress(sqlite3.Error):
            self._db.execute("PRAGMA optimize")
        self._db.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    @property
    def schema_version(self) -> int:
        version: int = self._one("PRAGMA user_version")[0]
        return version

    # -- plumbing -------------------------------------------------------------

    @contextlib.contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One IMMEDIATE transaction, committed before the caller's method returns."""
        db = self._db
        try:
            db.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            raise _translate(exc, self.path) from exc
        try:
            yield db
            db.execute("COMMIT")
        except BaseException as exc:
            if db.in_transaction:
                db.execute("ROLLBACK")
            if isinstance(exc, sqlite3.Error):
                raise _translate(exc, self.path) from exc
            raise

    def _all(self, sql: str, params: Sequence[object] = ()) -> list[Any]:
        try:
            return self._db.execute(sql, params).fetchall()
        except sqlite3.Error as exc:
            raise _translate(exc, self.path) from exc

    def _one(self, sql: str, params: Sequence[object] = ()) -> Any:
        """The first row, or None."""
        rows = self._all(sql, params)
        return rows[0] if rows else None

    # -- entries --------------------------------------------------------------

    def add(self, entry: Entry) -> AddResult:
        """Store one entry (committed on return); see :meth:`add_many`."""
        return self.add_many([entry])[0]

    def add_many(self, entries: Iterable[Entry]) -> list[AddResult]:
        """Store entries in one transaction, committed on return; one result per entry.

        A later entry in the batch is checked against earlier ones, so two
        siblings in one batch give ADDED then CONFLICT.  Cost is one head
        lookup per author plus one ``executemany``; only entries at or below
        an author's stored head need a lookup of their own.  The id covers the
        payload only (spec 6.2), so the same payload with another valid
        signature is a DUPLICATE and the bytes stored first are kept.
        """
        batch = list(entries)
        if not batch:
            return []
        for e in batch:
            if not isinstance(e, Entry):
                raise LocalProtocolError(f"add_many takes shinyo.Entry objects, not {type(e)}")
        results: list[AddResult] = []
        with self._write() as db:
            # Per author: [stored head seq, new head seq, new head id, entries added].
            chains: dict[bytes, list[Any]] = {}
            for key in {e.author.key for e in batch}:
                row = db.execute("SELECT head_seq FROM chains WHERE author = ?", (key,)).fetchone()
                chains[key] = [0 if row is None else row[0], 0, b"", 0]
            pending: dict[tuple[bytes, int], Entry] = {}
            rows: list[tuple[bytes, bytes, int, int, int, bytes]] = []
            for e in batch:
                author, seq = e.author.key, e.seq
                chain = chains[author]
                other = pending.get((author, seq))
                if other is None and seq <= chain[0]:
                    stored = db.execute("SELECT raw FROM entries WHERE author = ? AND seq = ?",
                                        (author, seq)).fetchone()
                    other = None if stored is None else self._decode(stored[0])
                if other is not None:
                    results.append(AddResult(status=AddStatus.DUPLICATE, id=e.id)
                                   if other.id == e.id else
                                   AddResult(status=AddStatus.CONFLICT, id=e.id, existing=other))
                    continue
                pending[(author, seq)] = e
                rows.append((e.id, author, seq, e.timestamp, int(e.kind), e.encode()))
                results.append(AddResult(status=AddStatus.ADDED, id=e.id))
                if seq > chain[1]:
                    chain[1], chain[2] = seq, e.id
                chain[3] += 1
            db.executemany("INSERT INTO entries (id, author, seq, timestamp, kind, raw) "
                           "VALUES (?, ?, ?, ?, ?, ?)", rows)
            # The head is the highest stored seq, whatever the order entries came in.
            db.executemany(
                "INSERT INTO chains (author, head_seq, head_id, entries) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (author) DO UPDATE SET "
                "entries = chains.entries + excluded.entries, "
                "head_id = CASE WHEN excluded.head_seq > chains.head_seq "
                "THEN excluded.head_id ELSE chains.head_id END, "
                "head_seq = max(chains.head_seq, excluded.head_seq)",
                [(a, top, top_id, n) for a, (_, top, top_id, n) in chains.items() if n])
        return results

    def _decode(self, raw: object) -> Entry:
        """Decode a stored entry; it was valid when stored, so failure means corruption."""
        assert isinstance(raw, bytes)
        try:
            return Entry.decode(raw)
        except VerificationError as exc:
            raise StoreError(f"{self.path}: a stored entry no longer decodes ({exc}); the file "
                             "is corrupt. Move it aside and let the node fetch entries again "
                             "from peers") from None

    def get(self, entry_id: bytes) -> bytes | None:
        """The encoded entry with this id, or None.

        For tests and tools: there is no index on ids (schema 2), so this reads
        every row.  The node finds entries by (author, seq) (:meth:`range`).
        """
        row = self._one("SELECT raw FROM entries WHERE id = ?", (entry_id,))
        raw: bytes | None = None if row is None else row[0]
        return raw

    def head(self, author: Pseudonym) -> tuple[int, bytes] | None:
        """(seq, id) of the author's highest stored entry, or None if we have none."""
        row = self._one("SELECT head_seq, head_id FROM chains WHERE author = ?", (author.key,))
        head: tuple[int, bytes] | None = None if row is None else (row[0], row[1])
        return head

    def heads(self) -> dict[Pseudonym, tuple[int, bytes]]:
        """Every author's (head seq, head id): what anti-entropy compares."""
        rows = self._all("SELECT author, head_seq, head_id FROM chains")
        return {Pseudonym(key=a): (s, i) for a, s, i in rows}

    def range(self, author: Pseudonym, first_seq: int, last_seq: int, *,
              limit: int) -> list[bytes]:
        """Encoded entries with first_seq <= seq <= last_seq, in seq order, at most ``limit``."""
        for value, name in ((first_seq, "first_seq"), (last_seq, "last_seq"), (limit, "limit")):
            if type(value) is not int or value < 0:
                raise LocalProtocolError(f"{name} must be a non-negative integer")
        rows = self._all("SELECT raw FROM entries WHERE author = ? AND seq BETWEEN ? AND ? "
                         "ORDER BY seq LIMIT ?", (author.key, first_seq, last_seq, limit))
        return [r[0] for r in rows]

    def iter_chain(self, author: Pseudonym) -> Iterator[Entry]:
        """The author's stored entries, decoded and verified, in seq order.

        Reads in pages, so no read transaction stays open between items.
        """
        after = 0
        while True:
            rows = self._all("SELECT seq, raw FROM entries WHERE author = ? AND seq > ? "
                             "ORDER BY seq LIMIT ?", (author.key, after, _PAGE))
            for seq, raw in rows:
                yield self._decode(raw)
                after = seq
            if len(rows) < _PAGE:
                return

    def authors(self) -> list[Pseudonym]:
        return [Pseudonym(key=r[0]) for r in self._all("SELECT author FROM chains ORDER BY author")]

    def count(self, author: Pseudonym | None = None) -> int:
        """Entries stored in all, or for one author."""
        if author is None:
            total: int = self._one("SELECT coalesce(sum(entries), 0) FROM chains")[0]
            return total
        row = self._one("SELECT entries FROM chains WHERE author = ?", (author.key,))
        n: int = 0 if row is None else row[0]
        return n

    # -- fork proofs (spec 8) -------------------------------------------------

    def add_fork(self, proof: ForkProof) -> bool:
        """Keep ``proof``; False if it is known or the author already has enough proofs."""
        if not isinstance(proof, ForkProof):
            raise LocalProtocolError("add_fork takes a shinyo.ForkProof")
        with self._write() as db:
            held = db.execute("SELECT count(*) FROM forks WHERE author = ?",
                              (proof.author.key,)).fetchone()[0]
            if held >= MAX_FORK_PROOFS_PER_AUTHOR:
                return False
            db.execute("INSERT INTO forks (first, second, author, seq, proof) "
                       "VALUES (?, ?, ?, ?, ?)",
                       (proof.first.id, proof.second.id, proof.author.key, proof.seq,
                        proof.encode()))
        return True

    def forks(self, author: Pseudonym | None = None, *,
              limit: int | None = None) -> list[ForkProof]:
        """Stored fork proofs (of ``author`` only, if given; the first ``limit``).

        Each is decoded and verified again (two signatures): on a hot path ask
        :meth:`fork_authors` first, or pass a ``limit``.
        """
        if limit is not None and (type(limit) is not int or limit < 0):
            raise LocalProtocolError(f"forks(limit=) takes None or an int >= 0, not {limit!r}")
        bound = -1 if limit is None else limit  # SQLite: a negative LIMIT is none
        rows = (self._all("SELECT proof FROM forks ORDER BY author, seq LIMIT ?", (bound,))
                if author is None else
                self._all("SELECT proof FROM forks WHERE author = ? ORDER BY seq LIMIT ?",
                          (author.key, bound)))
        out = []
        for (raw,) in rows:
            try:
                out.append(ForkProof.decode(raw))
            except VerificationError as exc:
                raise StoreError(f"{self.path}: a stored fork proof no longer decodes ({exc}); "
                                 "the file is corrupt") from None
        return out

    def fork_authors(self) -> set[Pseudonym]:
        """The pseudonyms a fork proof is stored about (nothing decoded)."""
        return {Pseudonym(key=key) for (key,) in self._all("SELECT DISTINCT author FROM forks")}

    def fork_count(self) -> int:
        count: int = self._one("SELECT count(*) FROM forks")[0]
        return count

    def is_forked(self, author: Pseudonym) -> bool:
        return self._one("SELECT 1 FROM forks WHERE author = ? LIMIT 1", (author.key,)) is not None

    # -- peers ----------------------------------------------------------------

    def upsert_peer(self, host: str, port: int, *, now: int, source: PeerSource,
                    node_key: bytes | None = None) -> bool:
        """Note that ``host:port`` exists (seen at ``now``); True if it is kept.

        A known row gets ``last_seen``, a stronger ``source`` and, if given, the
        node key.  When the table would exceed ``max_peers`` the worst row (in
        the order of ``_WORST_FIRST``) is evicted -- possibly this very one.
        """
        host, port = _check_addr(host, port)
        now = _check_time(now, "now")
        if not isinstance(source, PeerSource):
            raise LocalProtocolError("source must be a PeerSource")
        if node_key is not None:
            _check_id(node_key, "node_key")
        with self._write() as db:
            row = db.execute("SELECT source FROM peers WHERE host = ? AND port = ?",
                             (host, port)).fetchone()
            if row is None:
                db.execute("INSERT INTO peers (host, port, node_key, source, first_seen, "
                           "last_seen) VALUES (?, ?, ?, ?, ?, ?)",
                           (host, port, node_key, source.value, now, now))
            else:
                old = PeerSource(row[0])
                best = max(old, source, key=_SOURCE_RANK.__getitem__)
                db.execute("UPDATE peers SET last_seen = max(last_seen, ?), source = ?, "
                           "node_key = coalesce(?, node_key) WHERE host = ? AND port = ?",
                           (now, best.value, node_key, host, port))
            excess = db.execute("SELECT count(*) FROM peers").fetchone()[0] - self.max_peers
            if excess > 0:
                db.execute("DELETE FROM peers WHERE rowid IN (SELECT rowid FROM peers "
                           f"ORDER BY {_WORST_FIRST} LIMIT :excess)",
                           {"now": now, "excess": excess})
            kept = db.execute("SELECT 1 FROM peers WHERE host = ? AND port = ?",
                              (host, port)).fetchone()
        return kept is not None

    def _update_peer(self, host: str, port: int, sql: str, params: Sequence[object]) -> None:
        host, port = _check_addr(host, port)
        with self._write() as db:
            if db.execute(f"UPDATE peers SET {sql} WHERE host = ? AND port = ?",
                          (*params, host, port)).rowcount == 0:
                raise LocalProtocolError(f"unknown peer {host}:{port}; upsert_peer it first")

    def record_success(self, host: str, port: int, *, now: int,
                       node_key: bytes | None = None) -> None:
        """A connection worked (and authenticated as ``node_key``): failures reset."""
        now = _check_time(now, "now")
        if node_key is not None:
            _check_id(node_key, "node_key")
        self._update_peer(host, port, "last_success = ?, last_seen = max(last_seen, ?), "
                          "failures = 0, node_key = coalesce(?, node_key)", (now, now, node_key))

    def record_failure(self, host: str, port: int) -> None:
        """A dial failed; the failure count orders (and may evict) the peer."""
        self._update_peer(host, port, "failures = failures + 1", ())

    def penalise(self, host: str, port: int, points: int) -> int:
        """Add ``points`` for bad behaviour; return the new total (the caller bans)."""
        if type(points) is not int or points < 0:
            raise LocalProtocolError("penalty points must be a non-negative integer")
        self._update_peer(host, port, "penalty = penalty + ?", (points,))
        total: int = self._one("SELECT penalty FROM peers WHERE host = ? AND port = ?",
                               (host, port))[0]
        return total

    def ban(self, host: str, port: int, *, until: int) -> None:
        """Refuse to dial (and let the caller refuse) the peer before ``until``."""
        self._update_peer(host, port, "banned_until = ?", (_check_time(until, "until"),))

    def peer(self, host: str, port: int) -> PeerRecord | None:
        host, port = _check_addr(host, port)
        row = self._one(f"SELECT {_PEER_COLUMNS} FROM peers WHERE host = ? AND port = ?",
                        (host, port))
        return None if row is None else _peer(row)

    def peers(self) -> list[PeerRecord]:
        return [_peer(r) for r in self._all(f"SELECT {_PEER_COLUMNS} FROM peers "
                                            "ORDER BY host, port")]

    def dial_candidates(self, *, now: int, limit: int) -> list[PeerRecord]:
        """Peers not banned at ``now``: most recently successful first, then fewest failures."""
        now = _check_time(now, "now")
        if type(limit) is not int or limit < 0:
            raise LocalProtocolError("limit must be a non-negative integer")
        rows = self._all(f"SELECT {_PEER_COLUMNS} FROM peers WHERE banned_until <= ? "
                         "ORDER BY last_success IS NULL, last_success DESC, failures, "
                         "penalty, last_seen DESC, host, port LIMIT ?", (now, limit))
        return [_peer(r) for r in rows]

    def forget_peer(self, host: str, port: int) -> bool:
        host, port = _check_addr(host, port)
        with self._write() as db:
            return db.execute("DELETE FROM peers WHERE host = ? AND port = ?",
                              (host, port)).rowcount > 0

    # -- the local user's trade secrets ---------------------------------------

    def put_secret(self, trade_id: bytes, blob: bytes) -> None:
        """Keep (or replace) the opaque secret for a trade until it is revealed."""
        _check_id(trade_id, "trade_id")
        if type(blob) is not bytes or len(blob) > MAX_SECRET_SIZE:
            raise LocalProtocolError(f"a trade secret is bytes of at most {MAX_SECRET_SIZE}")
        with self._write() as db:
            db.execute("INSERT INTO secrets (trade, blob) VALUES (?, ?) "
                       "ON CONFLICT (trade) DO UPDATE SET blob = excluded.blob", (trade_id, blob))

    def get_secret(self, trade_id: bytes) -> bytes | None:
        row = self._one("SELECT blob FROM secrets WHERE trade = ?", (trade_id,))
        blob: bytes | None = None if row is None else row[0]
        return blob

    def delete_secret(self, trade_id: bytes) -> bool:
        with self._write() as db:
            return db.execute("DELETE FROM secrets WHERE trade = ?", (trade_id,)).rowcount > 0

    def secrets(self) -> dict[bytes, bytes]:
        return {t: b for t, b in self._all("SELECT trade, blob FROM secrets ORDER BY trade")}

    # -- meta -----------------------------------------------------------------

    def get_meta(self, key: str) -> bytes | None:
        row = self._one("SELECT value FROM meta WHERE key = ?", (key,))
        value: bytes | None = None if row is None else row[0]
        return value

    def set_meta(self, key: str, value: bytes) -> None:
        if not isinstance(key, str) or not key or type(value) is not bytes:
            raise LocalProtocolError("meta keys are non-empty strings and values bytes")
        with self._write() as db:
            db.execute("INSERT INTO meta (key, value) VALUES (?, ?) "
                       "ON CONFLICT (key) DO UPDATE SET value = excluded.value", (key, value))


def _translate(exc: sqlite3.Error, path: Path) -> StoreError:
    """Turn a sqlite3 error into a StoreError that says what to do."""
    text = str(exc)
    if "locked" in text or "busy" in text:
        hint = "another process holds it; is another shinyo node running with this --home?"
    elif "full" in text:
        hint = "the disk is full; free some space and restart"
    elif "not a database" in text or "malformed" in text or "corrupt" in text:
        hint = ("the file is corrupt; move it (and its -wal, -shm files) aside and restart to "
                "begin an empty store, which peers will fill again")
    elif "closed" in text:
        hint = "the store was closed"
    else:
        hint = "see the SQLite message"
    return StoreError(f"{path}: {text}: {hint}")
