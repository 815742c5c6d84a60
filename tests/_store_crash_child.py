"""Child process for the store's crash-safety test (tests/test_store.py).

Adds real signed entries one ``Store.add`` at a time, round-robin over a few
authors, and prints each entry's id (hex) only after ``add`` has returned --
that line is the acknowledgement.  Then it waits to be killed.

    python -m tests._store_crash_child DB_PATH SYNCHRONOUS AUTHORS LENGTH
"""

from __future__ import annotations

import sys
from pathlib import Path

from shinyo import Entry, Propose
from shinyo._constants import GENESIS_PREV
from shinyo.node._store import Store

from .conftest import CTX, T0, identity


def chain(n: int, length: int) -> list[Entry]:
    me, them = identity(n), identity(200).pseudonym
    out: list[Entry] = []
    for seq in range(1, length + 1):
        out.append(Entry.create(me, seq=seq, prev=out[-1].id if out else GENESIS_PREV,
                                timestamp=T0 + seq,
                                body=Propose(counterparty=them, context=CTX,
                                             terms=seq.to_bytes(32, "big"))))
    return out


def main() -> None:
    path, synchronous, authors, length = sys.argv[1], sys.argv[2], *map(int, sys.argv[3:5])
    chains = [chain(10 + a, length) for a in range(authors)]
    with Store.open(Path(path), synchronous=synchronous) as store:
        for seq in range(length):
            for c in chains:
                store.add(c[seq])
                sys.stdout.write(c[seq].id.hex() + "\n")
                sys.stdout.flush()
        sys.stdout.write("done\n")
        sys.stdout.flush()
        sys.stdin.read()  # wait for the parent's SIGKILL


if __name__ == "__main__":
    main()
