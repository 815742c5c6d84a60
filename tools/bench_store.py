"""The store's insert rate as a ratio to raw SQLite, measured in one run.

``Store.add_many`` in batches of 1,000 entries against plain ``executemany``
inserts of the very same rows, in the same schema and with the same pragmas
(WAL, synchronous=NORMAL), each into a fresh file.  The store does more per
entry -- encodes it, checks (author, seq) against the stored head, keeps the
per-author head table -- and the ratio says what that costs.

    python -m shinyo.tools.bench_store [N ...]
"""

from __future__ import annotations

import hashlib
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

from shinyo import Entry, Propose, SigningIdentity
from shinyo._constants import GENESIS_PREV
from shinyo.node._store import _MIGRATIONS, Store, migrate

from .bench_growth import BenchError

T0 = 1_800_000_000
BATCH = 1000
AUTHORS = 10


def _entries(n: int) -> list[Entry]:
    """``n`` signed entries: AUTHORS chains, one after another (as a sync delivers them)."""
    them = SigningIdentity.from_seed(hashlib.sha256(b"bench-counterparty").digest()).pseudonym
    out: list[Entry] = []
    per = -(-n // AUTHORS)
    for a in range(AUTHORS):
        me = SigningIdentity.from_seed(hashlib.sha256(b"bench-author-%d" % a).digest())
        prev = GENESIS_PREV
        for seq in range(1, min(per, n - len(out)) + 1):
            e = Entry.create(me, seq=seq, prev=prev, timestamp=T0 + seq,
                             body=Propose(counterparty=them, context="bench.example",
                                          terms=hashlib.sha256(b"%d" % seq).digest()))
            out.append(e)
            prev = e.id
    return out


def _store_rate(path: Path, entries: list[Entry]) -> float:
    with Store.open(path) as store:
        start = time.perf_counter()
        for i in range(0, len(entries), BATCH):
            store.add_many(entries[i : i + BATCH])
        elapsed = time.perf_counter() - start
        if store.count() != len(entries):
            raise BenchError(f"the store holds {store.count()} entries, not {len(entries)}")
    return len(entries) / elapsed


def _raw_rate(path: Path, rows: list[tuple[bytes, bytes, int, int, int, bytes]]) -> float:
    db = sqlite3.connect(path, isolation_level=None)
    try:
        db.execute("PRAGMA journal_mode = WAL")
        db.execute("PRAGMA synchronous = NORMAL")
        migrate(db, _MIGRATIONS, path=path)
        start = time.perf_counter()
        for i in range(0, len(rows), BATCH):
            db.execute("BEGIN IMMEDIATE")
            db.executemany("INSERT INTO entries (id, author, seq, timestamp, kind, raw) "
                           "VALUES (?, ?, ?, ?, ?, ?)", rows[i : i + BATCH])
            db.execute("COMMIT")
        elapsed = time.perf_counter() - start
    finally:
        db.close()
    return len(rows) / elapsed


def bench_store(n: int = 20_000, *, repeat: int = 3) -> dict[str, float]:
    """Entries/s for ``Store.add_many`` and for raw inserts; best of ``repeat``, interleaved."""
    if type(n) is not int or n < 1:
        raise BenchError("store entries must be a positive integer")
    entries = _entries(n)
    rows = [(e.id, e.author.key, e.seq, e.timestamp, int(e.kind), e.encode()) for e in entries]
    best_store = best_raw = 0.0
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(repeat):
            best_store = max(best_store, _store_rate(Path(tmp) / f"store{r}.db", entries))
            best_raw = max(best_raw, _raw_rate(Path(tmp) / f"raw{r}.db", rows))
    return {
        "entries": n,
        "store_add_many_per_s": best_store,
        "raw_executemany_per_s": best_raw,
        "ratio": best_store / best_raw,
    }


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    for n in [int(a) for a in args] or [20_000]:
        result = bench_store(n)
        print(f"{n} entries: store add_many ({BATCH}/txn) "
              f"{result['store_add_many_per_s']:,.0f}/s, raw executemany "
              f"{result['raw_executemany_per_s']:,.0f}/s, ratio {result['ratio']:.2f}")


if __name__ == "__main__":
    main()
