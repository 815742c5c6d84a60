"""Nodes on 127.0.0.1: sessions, sync, gossip and trades across nodes (real QUIC)."""

from __future__ import annotations

from pathlib import Path

from shinyo.node._node import Node

from ._nodes import WAIT, holds, running


async def test_two_nodes_complete_a_blind_rating(tmp_path: Path) -> None:
    async with running(tmp_path, 1) as a, running(tmp_path, 2, bootstrap=(a,)) as b:
        await a.wait_until(lambda: len(a.sessions) == 1, timeout=WAIT)
        proposal = a.propose(b.pseudonym, context="market/books", terms=b"one atlas")
        trade = proposal.trade
        assert trade is not None
        await b.wait_until(lambda: holds(b, a.pseudonym, 1), timeout=WAIT)
        t = b.ledger.find_trade(trade.hex()[:16])
        b.accept(t)
        await a.wait_until(lambda: holds(a, b.pseudonym, 1), timeout=WAIT)
        a.rate(t, stars=5)
        b.rate(t, stars=4)

        def rated(node: Node) -> bool:
            rows = node.trades()
            return bool(rows) and rows[0]["given"] is not None and rows[0]["received"] is not None

        await a.wait_until(lambda: rated(a), timeout=WAIT)
        await b.wait_until(lambda: rated(b), timeout=WAIT)
        assert a.trades()[0]["received"] == 4
        assert b.trades()[0]["received"] == 5
