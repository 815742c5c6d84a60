"""Several nodes at once: relaying, restarts, a lossy network, peer exchange,
duplicate connections, reconnection, forks and partitions (spec/wire.md 6-9).

Real nodes on 127.0.0.1 (``tests/_nodes.py``) unless a test says otherwise;
the lossy-network test runs on the seeded memory network under trio's
autojump clock.  Every wait is bounded by ``WAIT``: a failure is a hang cut
short, never a timing assertion.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from functools import partial
from pathlib import Path
from typing import Any

import pytest
import trio

from shinyo import Entry, Participant, Pseudonym, SigningIdentity, terms_digest
from shinyo.node._netsim import MemoryNetwork
from shinyo.node._node import STORE_FILE, Node, open_node
from shinyo.node._store import Store
from shinyo.wire import Head

from ._nodes import WAIT, holds, identity, node_config, running

T0 = 1_800_000_000
"""Wall-clock seconds at trio time 0 on the memory network (entry timestamps)."""
SYNC = 0.5
"""A short anti-entropy interval, for the tests where periodic rounds matter."""
REAL_WAIT = 10.0
"""Real seconds before a test on the autojump clock gives up (it takes well under one)."""
DUPLICATE_ROUNDS = 8
"""Tries of a race that went wrong one time in two (were it back: missed 1 run in 256)."""


# -- helpers ---------------------------------------------------------------------------------


@asynccontextmanager
async def node_as(tmp: Path, n: int, *, trading: SigningIdentity | None = None,
                  listen: str | None = None, bootstrap: tuple[Node, ...] = (),
                  **options: Any) -> AsyncIterator[Node]:
    """Like ``running``, but with another trading identity or a fixed listen address."""
    config = node_config(tmp, n, bootstrap=bootstrap, **options)
    if listen is not None:
        config = config.replace(listen=listen)
    async with open_node(config, identity=trading or identity(n), seed=n) as node:
        yield node


def heads(node: Node) -> list[Head]:
    return node.replica.all_heads()


def converged(nodes: Sequence[Node], *, chains: int) -> bool:
    """Every node holds the same heads, of ``chains`` chains."""
    first = heads(nodes[0])
    return len(first) == chains and all(heads(n) == first for n in nodes[1:])


async def wait_for(nodes: Sequence[Node], predicate: Callable[[], bool]) -> None:
    """Wait until ``predicate`` holds, re-checking it after a change on any of ``nodes``
    (``Node.wait_until`` only wakes for its own node's changes)."""
    with trio.fail_after(WAIT):
        async with trio.open_nursery() as nursery:
            async def one(node: Node) -> None:
                await node.wait_until(predicate)
                nursery.cancel_scope.cancel()

            for node in nodes:
                nursery.start_soon(one, node)


async def wait_converged(nodes: Sequence[Node], *, chains: int) -> None:
    await wait_for(nodes, lambda: converged(nodes, chains=chains))


async def poll_until(predicate: Callable[[], bool], *, timeout: float = WAIT) -> None:
    """For conditions no node notifies about (e.g. a QUIC connection closing)."""
    with trio.fail_after(timeout):
        while not predicate():
            await trio.sleep(0.05)


async def within_real_seconds(seconds: float, body: Callable[[], Awaitable[None]]) -> None:
    """Run ``body``, failing if it takes ``seconds`` of *real* time.

    Under trio's autojump clock a deadline is virtual: if some task keeps
    running at one instant, the clock never moves and ``fail_after`` never
    fires.  A thread's sleep is real time, so this cuts such a spin short.
    """
    finished = False

    async with trio.open_nursery() as nursery:
        async def run() -> None:
            nonlocal finished
            await body()
            finished = True
            nursery.cancel_scope.cancel()

        async def watchdog() -> None:
            await trio.to_thread.run_sync(time.sleep, seconds, abandon_on_cancel=True)
            nursery.cancel_scope.cancel()

        nursery.start_soon(run)
        nursery.start_soon(watchdog)
    if not finished:
        pytest.fail(f"still running after {seconds} s of real time, at trio time "
                    f"{trio.current_time():.6f}: the clock stopped (a task spinning at one "
                    "instant)")


def row(node: Node, trade: bytes) -> dict[str, Any] | None:
    return next((r for r in node.trades() if r["trade"] == trade.hex()), None)


def in_state(node: Node, trade: bytes, state: str) -> bool:
    r = row(node, trade)
    return r is not None and r["state"] == state


async def complete_trade(proposer: Node, acceptor: Node, *, stars: tuple[int, int],
                         context: str = "market/books") -> bytes:
    """Propose, accept and rate blind; return once each side sees the other's stars."""
    trade = proposer.propose(acceptor.pseudonym, context=context, terms=b"one atlas").id
    await acceptor.wait_until(lambda: in_state(acceptor, trade, "offered-in"), timeout=WAIT)
    acceptor.accept(trade)
    await proposer.wait_until(lambda: in_state(proposer, trade, "agreed"), timeout=WAIT)
    proposer.rate(trade, stars=stars[0])
    acceptor.rate(trade, stars=stars[1])
    for node in (proposer, acceptor):
        await node.wait_until(partial(in_state, node, trade, "complete"), timeout=WAIT)
    assert (row(proposer, trade) or {})["received"] == stars[1]
    assert (row(acceptor, trade) or {})["received"] == stars[0]
    assert (row(proposer, trade) or {})["given"] == stars[0]
    return trade


def connected(a: Node, b: Node) -> bool:
    return b.node_key in a.sessions and a.node_key in b.sessions


def one_connection(a: Node, b: Node) -> bool:
    """``a`` and ``b`` have one open connection and one session, with each other only."""
    return (connected(a, b) and len(a.endpoint.connections) == len(b.endpoint.connections) == 1
            and len(a._all_sessions) == len(b._all_sessions) == 1)


# -- 1. relaying along a line ------------------------------------------------------------------


async def test_five_nodes_in_a_line_relay_a_trade_end_to_end(tmp_path: Path) -> None:
    # Topology: a line 1 - 2 - 3 - 4 - 5 (each node bootstraps to the previous
    # one, peer exchange off so it stays a line): every entry between 1 and 5
    # crosses three relays, by push (8.1) or anti-entropy (7.2).
    async with AsyncExitStack() as stack:
        nodes: list[Node] = []
        for n in range(1, 6):
            nodes.append(await stack.enter_async_context(running(
                tmp_path, n, bootstrap=tuple(nodes[-1:]), peer_exchange=False,
                sync_interval=SYNC)))
        neighbours = [{m.node_key for m in nodes[max(i - 1, 0):i + 2] if m is not node}
                      for i, node in enumerate(nodes)]

        def line() -> bool:
            return all(set(n.sessions) == k for n, k in zip(nodes, neighbours, strict=True))

        await wait_for(nodes, line)

        first, last = nodes[0], nodes[-1]
        await complete_trade(first, last, stars=(5, 3))
        await wait_converged(nodes, chains=2)
        for relay in nodes[1:-1]:
            assert relay.ledger.status()["own_entries"] == 0
            assert {h.author for h in heads(relay)} == {first.pseudonym, last.pseudonym}
        assert line()  # nothing was delivered by a shortcut


# -- 2. a restart in the middle of a sync -------------------------------------------------------


def proposals(author: int, counterparty: int, n: int, *, start: int) -> list[Entry]:
    """A valid chain of ``n`` proposals by test identity ``author``."""
    p = Participant(identity(author))
    them = identity(counterparty).pseudonym
    return [p.propose(them, context="market/bulk",
                      terms=terms_digest(b"item %d" % i, salt=bytes(16)), timestamp=start + i)
            for i in range(n)]


def stored_chains(home: Path, authors: Sequence[Pseudonym]) -> dict[Pseudonym, list[bytes]]:
    """The entry ids a (stopped) node's store holds, per author, in seq order."""
    with Store.open(home / STORE_FILE) as store:
        return {a: [e.id for e in store.iter_chain(a)] for a in authors}


async def test_restart_mid_sync_keeps_what_was_stored_and_catches_up(tmp_path: Path) -> None:
    # Per chain: six Wants of at most 256 (wire.md 5), twelve answers in all -- more
    # than a stopping node's session still stores of what it had read (INGEST_DEPTH).
    n = 1500
    start = int(time.time()) - 86_400  # in the past: a peer refuses future timestamps
    chains = {11: proposals(11, 12, n, start=start), 12: proposals(12, 11, n, start=start)}
    authors = [identity(a).pseudonym for a in chains]
    (tmp_path / "node1").mkdir()
    with Store.open(tmp_path / "node1" / STORE_FILE) as store:
        for entries in chains.values():
            store.add_many(entries)
    total = 2 * n

    def held(node: Node) -> int:
        return sum(len(c) for a in authors if (c := node.ledger.chain(a)) is not None)

    async with running(tmp_path, 1) as a:
        assert held(a) == total
        async with running(tmp_path, 2, bootstrap=(a,)) as b:
            await b.wait_until(lambda: held(b) > 0, timeout=WAIT)
        # b stopped: what its store holds is what it acknowledged.
        before = stored_chains(tmp_path / "node2", authors)
        count = sum(map(len, before.values()))
        assert 0 < count < total, "the sync was not cut short; stop it earlier"

        async with running(tmp_path, 2, bootstrap=(a,)) as b:
            # Reopened: the stored prefix is back before any sync.
            for author, ids in before.items():
                chain = b.ledger.chain(author)
                assert [e.id for e in (chain.entries if chain else [])][:len(ids)] == ids
            await b.wait_until(lambda: held(b) == total, timeout=WAIT)
            for author, entries in zip(authors, chains.values(), strict=True):
                chain = b.ledger.chain(author)
                assert chain is not None
                assert [e.id for e in chain.entries] == [e.id for e in entries]
            assert heads(b) == heads(a)


# -- 3. a lossy, reordering, duplicating network ----------------------------------------------


async def test_three_nodes_trade_over_a_lossy_network(
    tmp_path: Path, autojump_clock: trio.abc.Clock
) -> None:
    network = MemoryNetwork(seed=5, loss=0.05, reorder=0.1, duplicate=0.05)
    await within_real_seconds(REAL_WAIT, lambda: _trade_on(network, tmp_path))
    stats = network.stats
    assert stats.lost > 0 and stats.reordered > 0 and stats.duplicated > 0


async def _trade_on(network: MemoryNetwork, tmp_path: Path) -> None:
    transports = [network.attach() for _ in range(3)]

    def clock() -> float:
        return T0 + trio.current_time()

    async with AsyncExitStack() as stack:
        nodes: list[Node] = []
        for n, transport in enumerate(transports, start=1):
            # Topology: 2 -> 1, 3 -> 2 (3 may learn 1 by peer exchange).
            previous = transports[n - 2].local_address if n > 1 else None
            config = node_config(tmp_path, n, sync_interval=SYNC).replace(
                bootstrap=() if previous is None else (f"{previous[0]}:{previous[1]}",))
            nodes.append(await stack.enter_async_context(open_node(
                config, identity=identity(n), datagrams=transport, clock=clock, seed=n)))
        a, b, c = nodes
        await wait_for(nodes, lambda: connected(a, b) and connected(b, c))
        await complete_trade(a, c, stars=(4, 2))
        await wait_converged(nodes, chains=2)


# -- 4. peer exchange ---------------------------------------------------------------------------


async def test_peer_exchange_introduces_a_third_node(tmp_path: Path) -> None:
    # Topology: 2 -> 1, then 3 -> 2 only; 2's Peers message (wire.md 9) names 1.
    async with running(tmp_path, 1) as a, running(tmp_path, 2, bootstrap=(a,)) as b:
        await wait_for((a, b), lambda: connected(a, b))
        async with running(tmp_path, 3, bootstrap=(b,)) as c:
            await wait_for((a, c), lambda: connected(a, c))
            assert c.sessions[a.node_key].outbound  # c dialled a
            hint = f"{a.address[0]}:{a.address[1]}"
            (learned,) = [p for p in c.known_peers() if p["address"] == hint]
            assert learned["node"] == a.node_key.to_text()


async def test_a_dialled_hint_stays_an_exchange_hint(tmp_path: Path) -> None:
    # The source orders eviction (a flood of hints must not outrank configured
    # peers) and decides whether a redial checks the node key (wire.md 9).
    async with running(tmp_path, 1) as a, running(tmp_path, 2, bootstrap=(a,)) as b:
        await wait_for((a, b), lambda: connected(a, b))
        async with running(tmp_path, 3, bootstrap=(b,)) as c:
            await wait_for((a, c), lambda: connected(a, c))
            sources = {p["address"]: p["source"] for p in c.known_peers()}
            assert sources == {f"{b.address[0]}:{b.address[1]}": "config",
                               f"{a.address[0]}:{a.address[1]}": "exchange"}


async def test_without_peer_exchange_hints_are_ignored(tmp_path: Path) -> None:
    async with running(tmp_path, 1) as a, running(tmp_path, 2, bootstrap=(a,)) as b:
        await wait_for((a, b), lambda: connected(a, b))
        async with running(tmp_path, 3, bootstrap=(b,), peer_exchange=False) as c:
            await wait_for((b, c), lambda: connected(b, c))
            # b queued its Peers for c when c's Hello arrived; charged messages
            # go out in order, so once c holds an entry b pushes *now*, c has
            # read (and ignored) that Peers message.
            entry = b.propose(a.pseudonym, context="market/books")
            await c.wait_until(lambda: holds(c, b.pseudonym, entry.seq), timeout=WAIT)
            hint = f"{a.address[0]}:{a.address[1]}"
            assert hint not in {p["address"] for p in c.known_peers()}
            assert a.node_key not in c.sessions and c.node_key not in a.sessions


# -- 5. duplicate connections --------------------------------------------------------------------


async def test_nodes_dialling_each_other_keep_one_connection(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="shinyo.node")
    async with running(tmp_path, 1, sync_interval=0.25) as a, \
            running(tmp_path, 2, sync_interval=0.25) as b:
        # Both dial at once, before either knows of the other: two connections.
        a.add_peer(b.address)
        b.add_peer(a.address)
        await wait_for((a, b), lambda: connected(a, b))
        dialled = {r.args[0] for r in caplog.records
                   if r.msg == "connected to %s, node %s" and isinstance(r.args, tuple)}
        assert {a.address, b.address} <= dialled, "the two dials did not overlap"

        await poll_until(lambda: one_connection(a, b))
        kept_a, kept_b = a.sessions[b.node_key], b.sessions[a.node_key]
        # The same connection, seen from its two ends: the one the lower key opened.
        assert kept_a.outbound != kept_b.outbound
        assert kept_a.client_key == kept_b.client_key == min(a.node_key.key, b.node_key.key)
        await trio.sleep(4 * 0.25)  # a few anti-entropy rounds: nothing redials or drops
        assert a.sessions == {b.node_key: kept_a} and b.sessions == {a.node_key: kept_b}
        assert one_connection(a, b)


async def test_an_address_is_dialled_once_at_a_time(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="shinyo.node.quic")
    async with running(tmp_path, 1) as a, running(tmp_path, 2) as b:
        b.add_peer(a.address)
        # Two passes of the dialer before the dial task has run, as when it
        # wakes again at once: the address was dialled twice (found by the
        # five-node test, one run in two; fixed in e33264a).
        b._dial_candidates()
        b._dial_candidates()
        await wait_for((a, b), lambda: connected(a, b))
        await poll_until(lambda: not b._dialing)
        accepted = [r for r in caplog.records if r.msg.startswith("accepted node")]
        assert len(accepted) == 1


async def test_two_connections_one_node_opened_leave_one_session(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # A node can open two connections to one peer at once (it knows the peer
    # under two addresses).  Which Hello each end reads first is a race: when
    # the tie-break compared only the openers' keys, each end could keep a
    # different connection, both ended and a third had to be dialled.
    caplog.set_level(logging.INFO, logger="shinyo.node")

    def connects(since: int) -> int:
        return sum(r.msg == "connected to %s, node %s" for r in caplog.records[since:])

    def both_dialled(since: int) -> bool:
        return connects(since) >= 2

    async with running(tmp_path, 1) as a:
        for n in range(2, 2 + DUPLICATE_ROUNDS):
            async with running(tmp_path, n, reconnect_min=0.1) as b:
                mark = len(caplog.records)
                b._nursery.start_soon(b._dial, a.address, None)
                b._nursery.start_soon(b._dial, a.address, None)
                await poll_until(partial(both_dialled, mark))
                await poll_until(partial(one_connection, a, b))
                assert connects(mark) == 2  # both ends kept the same one: no redial


async def test_a_stopping_node_takes_no_new_session(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # Found by the restart test: a peer redialled the node as soon as its Bye
    # arrived, the node accepted, and that session synced on for the 3 s
    # _shutdown waits (a stopped node kept storing entries).
    caplog.set_level(logging.INFO, logger="shinyo.node")
    async with running(tmp_path, 1) as a, running(tmp_path, 2) as b:
        await b._shutdown()  # the first step of leaving b's context
        a.add_peer(b.address)

        def refused() -> bool:  # a's session with b ended (b sends Hello, then Bye)
            return any(r.msg.startswith("session with %s ended") and isinstance(r.args, tuple)
                       and r.args[0] == b.node_key.short() for r in caplog.records)

        await wait_for((a, b), lambda: a.node_key in b.sessions or refused())
        assert a.node_key not in b.sessions


# -- 6. reconnecting ----------------------------------------------------------------------------


async def test_reconnects_after_the_peer_restarts(tmp_path: Path) -> None:
    async with running(tmp_path, 2, reconnect_min=0.1, reconnect_max=0.5) as b:
        async with running(tmp_path, 1) as a:
            port = a.address[1]
            key = a.node_key
            b.add_peer(a.address)
            await b.wait_until(lambda: key in b.sessions, timeout=WAIT)
        await b.wait_until(lambda: not b.sessions, timeout=WAIT)
        offer = b.propose(identity(1).pseudonym, context="market/books")  # made while apart
        # a would redial b from its peer table; make it forget b, so that the
        # reconnection below can only be b's doing.
        with Store.open(tmp_path / "node1" / STORE_FILE) as store:
            assert store.forget_peer(*b.address)
            assert not store.peers()
        async with node_as(tmp_path, 1, listen=f"127.0.0.1:{port}") as a:
            assert a.node_key == key and not a.sessions
            counter = a.propose(b.pseudonym, context="market/books")  # also while apart
            await b.wait_until(lambda: key in b.sessions, timeout=WAIT)
            assert b.sessions[key].outbound
            await a.wait_until(lambda: holds(a, b.pseudonym, offer.seq), timeout=WAIT)
            await b.wait_until(lambda: holds(b, a.pseudonym, counter.seq), timeout=WAIT)
            await wait_converged([a, b], chains=2)


# -- 7. equivocation -------------------------------------------------------------------------


async def test_a_fork_is_detected_by_a_third_node_and_reaches_every_node(
    tmp_path: Path,
) -> None:
    # Nodes 1 and 2 run the SAME trading identity (a copied key) and each sign
    # a different entry at seq 1.  They only reach each other through node 3.
    forker = identity(1)
    p = forker.pseudonym
    async with running(tmp_path, 3, peer_exchange=False, sync_interval=SYNC) as c, \
            node_as(tmp_path, 1, trading=forker, peer_exchange=False,
                    sync_interval=SYNC) as x, \
            node_as(tmp_path, 2, trading=forker, peer_exchange=False,
                    sync_interval=SYNC) as y:
        first = x.propose(c.pseudonym, context="market/books", terms=b"an atlas")
        second = y.propose(c.pseudonym, context="market/books", terms=b"a globe")
        assert first.seq == second.seq and first.id != second.id
        x.add_peer(c.address)
        y.add_peer(c.address)
        await c.wait_until(lambda: c.store.is_forked(p), timeout=WAIT)
        for node in (x, y):
            await node.wait_until(partial(node.store.is_forked, p), timeout=WAIT)
        for node in (c, x, y):
            (proof,) = node.store.forks(p)
            assert proof.seq == first.seq
            assert {proof.first.id, proof.second.id} == {first.id, second.id}
        assert x.node_key not in y.sessions  # the proof travelled through c


# -- 8. a partition heals -------------------------------------------------------------------


async def test_groups_converge_after_a_partition(tmp_path: Path) -> None:
    async with AsyncExitStack() as stack:
        a = await stack.enter_async_context(running(tmp_path, 1, sync_interval=SYNC))
        b = await stack.enter_async_context(running(tmp_path, 2, bootstrap=(a,),
                                                    sync_interval=SYNC))
        c = await stack.enter_async_context(running(tmp_path, 3, sync_interval=SYNC))
        d = await stack.enter_async_context(running(tmp_path, 4, bootstrap=(c,),
                                                    sync_interval=SYNC))
        # Apart: each group trades within itself, and c makes an offer to a.
        t1 = a.propose(b.pseudonym, context="market/books").id
        t2 = c.propose(d.pseudonym, context="market/books").id
        offer = c.propose(a.pseudonym, context="market/maps").id
        await b.wait_until(lambda: in_state(b, t1, "offered-in"), timeout=WAIT)
        await d.wait_until(lambda: in_state(d, t2, "offered-in"), timeout=WAIT)
        b.accept(t1)
        d.accept(t2)
        await wait_converged([a, b], chains=2)
        await wait_converged([c, d], chains=2)
        assert a.ledger.chain(c.pseudonym) is None and c.ledger.chain(a.pseudonym) is None

        b.add_peer(c.address)  # the partition heals
        everyone = [a, b, c, d]
        await wait_converged(everyone, chains=4)
        await a.wait_until(lambda: in_state(a, offer, "offered-in"), timeout=WAIT)
        a.accept(offer)  # a trade across the old partition completes
        await c.wait_until(lambda: in_state(c, offer, "agreed"), timeout=WAIT)
        await wait_converged(everyone, chains=4)
