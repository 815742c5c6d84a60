"""``shinyo bench``: shinyo's speed as ratios to the raw parts, measured in one run.

So far: proof verification.  A subject completes N rated trades with N
distinct counterparties; the proof is built and verified, and the same
signatures are verified with raw PyNaCl in the same process, so the ratio
(shinyo entries/s over raw verifies/s) does not depend on the machine's speed.
More figures (sync, store, convergence) arrive with the node.
"""

from __future__ import annotations

import hashlib
import os
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import nacl.signing

from shinyo import (
    Body,
    Chain,
    Participant,
    SigningIdentity,
    TradeSession,
    build_proof,
    verify_proof,
)
from shinyo._constants import DST_ENTRY_SIG

DAY = 86_400
T0 = 1_800_000_000


def _ident(label: str) -> SigningIdentity:
    return SigningIdentity.from_seed(hashlib.sha256(label.encode()).digest())


def history(trades: int) -> tuple[Participant, dict[Any, Any]]:
    """``trades`` fully rated trades between one subject and distinct counterparties."""
    me = Participant(_ident("subject"))
    t = T0
    for i in range(trades):
        # The counterparty signs through its own Chain and TradeSession; the
        # subject validates each of its entries as a Participant does.
        ident = _ident(f"counterparty-{i}")
        theirs = Chain(ident.pseudonym)
        p = me.propose(ident.pseudonym, context="bench.example", terms=bytes(32), timestamp=t)
        session = TradeSession(me=ident.pseudonym, proposal=p)

        def them(body: Body, ts: int, session: TradeSession = session,
                 theirs: Chain = theirs, ident: SigningIdentity = ident) -> None:
            e = theirs.append_new(ident, timestamp=ts, body=body)
            session.receive(e)
            me.receive(e)

        them(session.accept_body(), t + 60)
        session.receive(me.commit(p.id, stars=5, nonce=i.to_bytes(16, "big"), timestamp=t + 120))
        them(session.commit_body(stars=4 + i % 2, nonce=bytes(16)), t + 180)
        session.receive(me.reveal(p.id, timestamp=t + 240))
        them(session.reveal_body(), t + 300)
        t += 3600
    return me, me.others


def bench_verify(trades: int, *, repeat: int = 3) -> dict[str, float]:
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        return _bench_verify(trades, repeat, pool)


def _bench_verify(trades: int, repeat: int, pool: ThreadPoolExecutor) -> dict[str, float]:
    me, others = history(trades)
    data = build_proof(me.chain, others)
    now = T0 + trades * 3600 + 30 * DAY
    report = verify_proof(data, now=now)
    entries = report.entries
    signed = [e for e in me.chain.entries] + [e for c in others.values() for e in c.entries]
    keys = {e.author: nacl.signing.VerifyKey(e.author.key) for e in signed}
    best_ours = best_all = best_raw = float("inf")
    for _ in range(repeat):  # interleaved, best of each, so drift hits all alike
        start = time.perf_counter()
        verify_proof(data, now=now)
        best_ours = min(best_ours, time.perf_counter() - start)
        start = time.perf_counter()
        verify_proof(data, now=now, map=pool.map)
        best_all = min(best_all, time.perf_counter() - start)
        start = time.perf_counter()
        for e in signed:
            keys[e.author].verify(DST_ENTRY_SIG + e.payload, e.signature)
        best_raw = min(best_raw, time.perf_counter() - start)
    ours, raw = entries / best_ours, len(signed) / best_raw
    all_cores = entries / best_all
    return {
        "trades": trades,
        "entries": entries,
        "bytes": len(data),
        "bytes_per_trade": round(len(data) / trades, 1),
        "verify_entries_per_s": round(ours),
        "raw_pynacl_verify_per_s": round(raw),
        "ratio": round(ours / raw, 3),
        "cores": os.cpu_count() or 1,
        "verify_all_cores_entries_per_s": round(all_cores),
        "ratio_all_cores": round(all_cores / raw, 3),
    }
