"""The crash campaign's store checks and acknowledgement bookkeeping (issue 7).

:mod:`.crash` kills node daemons and then judges what the kill left with the
functions here: :func:`copy_store` takes a dead (or, through SQLite's online
backup, a live) node's store as it is; :func:`audit_store` is check 2 of the
campaign (every chain verifies, spec 6.5; unrevealed own commitments kept their
openings, spec 7.3; own proposals their terms); :func:`check_peer` is check 3
(no fork against a peer's copy, and no peer holding more of the node's own chain
than the node); :func:`missing_acknowledged` and :class:`_Acks` are check 1
(what a node acknowledged -- an entry a control command reported, the counts of
a ``status`` answer -- is still there).  :func:`lose_newest_entry` makes a store
that lost its last transaction, for ``--self-test``.  The checks themselves are
described in :mod:`.crash`'s docstring.
"""

from __future__ import annotations

import contextlib
import shutil
import sqlite3
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from shinyo import (
    Chain,
    Commit,
    LocalProtocolError,
    Propose,
    Pseudonym,
    Reveal,
    VerificationError,
)
from shinyo.node._node import STORE_FILE
from shinyo.node._store import Store, StoreError

__all__ = [
    "StoreAudit",
    "audit_store",
    "check_peer",
    "copy_store",
    "lose_newest_entry",
    "missing_acknowledged",
    "read_ids",
]


# -- stores -----------------------------------------------------------------------------


def copy_store(home: Path, dest: Path, *, live: bool = False) -> Path:
    """Copy a node's store into ``dest``; return the copy's path.

    A stopped (killed) node's files are copied as the kill left them: the
    database and its WAL, not the ``-shm`` index (SQLite rebuilds it from the
    WAL's committed frames, as after a reboot).  A ``live`` node's store is
    read through SQLite's online backup from a read-only connection, which
    sees one committed state however the node writes meanwhile.
    """
    dest.mkdir(parents=True, exist_ok=True)
    src, out = home / STORE_FILE, dest / STORE_FILE
    for suffix in ("", "-wal", "-shm"):
        Path(f"{out}{suffix}").unlink(missing_ok=True)
    if live:
        with contextlib.closing(sqlite3.connect(f"file:{src}?mode=ro", uri=True,
                                                timeout=10)) as db, \
                contextlib.closing(sqlite3.connect(out)) as copy:
            db.backup(copy)
        return out
    for suffix in ("", "-wal"):
        if Path(f"{src}{suffix}").exists():
            shutil.copyfile(f"{src}{suffix}", f"{out}{suffix}")
    return out


def read_ids(path: Path) -> dict[bytes, tuple[bytes, ...]]:
    """Entry ids per author key, in seq order, straight from the rows (no decoding)."""
    out: dict[bytes, list[bytes]] = {}
    with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as db:
        for author, entry_id in db.execute("SELECT author, id FROM entries ORDER BY author, seq"):
            out.setdefault(author, []).append(entry_id)
    return {a: tuple(ids) for a, ids in out.items()}


@dataclass(frozen=True, slots=True, kw_only=True)
class StoreAudit:
    chains: Mapping[bytes, tuple[bytes, ...]]
    """Entry ids per author key, in seq order (of the chains that decoded)."""
    problems: tuple[str, ...]

    @property
    def total(self) -> int:
        return sum(len(c) for c in self.chains.values())


def audit_store(path: Path, *, owner: Pseudonym) -> StoreAudit:
    """Check a (copied) store: every chain decodes and verifies with :class:`shinyo.Chain`
    (spec 6.5), the ``chains`` table agrees with the rows, and ``owner``'s unrevealed
    commitments and proposals kept their secrets (:mod:`.crash`, check 2)."""
    problems: list[str] = []
    chains: dict[bytes, tuple[bytes, ...]] = {}
    with Store.open(path) as store:
        for author in store.authors():
            try:
                entries = list(store.iter_chain(author))
                Chain.from_entries(entries)
            except (StoreError, VerificationError, LocalProtocolError) as exc:
                problems.append(f"the chain of {author.short()} does not verify: {exc}")
                continue
            chains[author.key] = tuple(e.id for e in entries)
            head, last = store.head(author), entries[-1]
            if head != (last.seq, last.id) or store.count(author) != len(entries):
                problems.append(f"the chains table says {author.short()} has "
                                f"{store.count(author)} entries up to {head}, the rows "
                                f"{len(entries)} up to seq {last.seq}")
            if author != owner:
                continue
            revealed = {e.trade for e in entries if isinstance(e.body, Reveal)}
            for e in entries:
                if (isinstance(e.body, Commit) and e.trade not in revealed
                        and e.trade is not None and store.get_secret(e.trade) is None):
                    problems.append(f"own commitment seq {e.seq} has no stored opening: it can "
                                    "never be revealed (spec 7.3)")
                if isinstance(e.body, Propose) and not any(
                        store.get_meta(f"terms:{key.hex()}") is not None
                        for key in (e.id, e.body.terms)):
                    problems.append(f"own proposal seq {e.seq} lost its terms")
    rows = sum(len(ids) for ids in read_ids(path).values())
    if rows != sum(len(c) for c in chains.values()) and not problems:
        problems.append(f"{rows} entry rows, but the chains hold "
                        f"{sum(len(c) for c in chains.values())}")
    return StoreAudit(chains=chains, problems=tuple(problems))


def check_peer(owner: bytes, ours: Mapping[bytes, Sequence[bytes]],
               theirs: Mapping[bytes, Sequence[bytes]]) -> list[str]:
    """Problems between a node's chains (``ours``, its pseudonym key ``owner``) and a
    peer's copy: a fork, or the peer holding more of the node's own chain."""
    problems = []
    for author, other in theirs.items():
        mine = ours.get(author, ())
        n = min(len(mine), len(other))
        if tuple(mine[:n]) != tuple(other[:n]):
            seq = next(i + 1 for i in range(n) if mine[i] != other[i])
            problems.append(f"the peer's copy of {Pseudonym(key=author).short()} differs at "
                            f"seq {seq}: a fork")
        elif author == owner and len(other) > len(mine):
            problems.append(f"the peer holds {len(other)} entries of the node's own chain, the "
                            f"node only {len(mine)}: it lost entries it had sent")
    return problems


def lose_newest_entry(path: Path, author: bytes, entry_id: bytes) -> bool:
    """Delete ``entry_id`` (the head of ``author``'s chain) as if its transaction were
    lost, fixing the ``chains`` table up; False if it is not the head (``--self-test``)."""
    with contextlib.closing(sqlite3.connect(path, isolation_level=None)) as db:
        row = db.execute("SELECT head_seq, head_id FROM chains WHERE author = ?",
                         (author,)).fetchone()
        if row is None or row[1] != entry_id:
            return False
        seq = row[0]
        db.execute("BEGIN IMMEDIATE")
        db.execute("DELETE FROM entries WHERE id = ?", (entry_id,))
        prev = db.execute("SELECT id FROM entries WHERE author = ? AND seq = ?",
                          (author, seq - 1)).fetchone()
        if prev is None:
            db.execute("DELETE FROM chains WHERE author = ?", (author,))
        else:
            db.execute("UPDATE chains SET head_seq = ?, head_id = ?, entries = entries - 1 "
                       "WHERE author = ?", (seq - 1, prev[0], author))
        db.execute("COMMIT")
    return True


# -- acknowledgements -------------------------------------------------------------------


@dataclass(slots=True)
class _Acks:
    """What each node acknowledged; the poller thread adds to it."""

    entries: dict[str, int] = field(default_factory=dict)
    own: dict[str, int] = field(default_factory=dict)
    ids: dict[str, dict[int, bytes]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def reset(self, node: str) -> None:
        with self.lock:
            self.entries.pop(node, None)
            self.own.pop(node, None)
            self.ids.pop(node, None)

    def status(self, node: str, answer: Mapping[str, Any]) -> None:
        with self.lock:
            self.entries[node] = max(self.entries.get(node, 0), answer["entries"])
            self.own[node] = max(self.own.get(node, 0), answer["own_entries"])

    def entry(self, node: str, answer: Mapping[str, Any]) -> None:
        with self.lock:
            self.ids.setdefault(node, {})[answer["seq"]] = bytes.fromhex(answer["id"])

    def newest(self, node: str) -> bytes | None:
        with self.lock:
            ids = self.ids.get(node, {})
            return ids[max(ids)] if ids else None

    def check(self, node: str, owner: bytes, audit: StoreAudit) -> list[str]:
        with self.lock:
            ids, entries, own = dict(self.ids.get(node, {})), self.entries.get(node, 0), \
                self.own.get(node, 0)
        return missing_acknowledged(audit, owner, ids=ids, entries=entries, own=own)


def missing_acknowledged(audit: StoreAudit, owner: bytes, *, ids: Mapping[int, bytes],
                         entries: int = 0, own: int = 0) -> list[str]:
    """Check 1: the own entries acknowledged by seq and id, and the ``entries`` and
    ``own_entries`` counts a status answer gave, against a store's ``audit``."""
    mine = audit.chains.get(owner, ())
    problems = [f"acknowledged own entry seq {seq} ({i.hex()[:16]}) is missing"
                for seq, i in sorted(ids.items()) if len(mine) < seq or mine[seq - 1] != i]
    if audit.total < entries:
        problems.append(f"status acknowledged {entries} entries; the store holds {audit.total}")
    if len(mine) < own:
        problems.append(f"status acknowledged {own} own entries; the store holds {len(mine)}")
    return problems
