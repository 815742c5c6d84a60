"""A malicious peer against a real node over real QUIC on 127.0.0.1.

Each test runs a *target* node with an honest node connected to it, attacks
the target from a hostile endpoint (its own node key, see ``_hostile.py``),
checks the target's reaction as spec/wire.md prescribes -- the Bye code
(6.3), penalty points and bans (10.2), rates (10.1), what was stored (7.5,
8.2) -- and then checks the honest node still gets through.

The tests in section 5 pin node defects this harness found (since fixed).
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager, suppress
from pathlib import Path
from typing import Any

import pytest
import trio

from shinyo import Entry, Participant, Pseudonym
from shinyo.node import Node, NodeConfig, open_node
from shinyo.node._node import BAN_TIME
from shinyo.node._peer import PeerSession
from shinyo.node._peerauth import TransportError
from shinyo.node._quic import ConnectionRefused, PeerConnection, QuicEndpoint
from shinyo.tools.hostile_peer import SessionEnded
from shinyo.wire import (
    MAX_FRAME_SIZE,
    Bye,
    Entries,
    Heads,
    Hello,
    Message,
    Push,
    Unknown,
    Want,
    encode_frame,
)

from ._hostile import Hostile, attack, hostile_endpoint, hostile_identity, poll, stranger
from ._nodes import WAIT, holds, identity, running

CTX = "market.example/hostile"
MAX_OUTSTANDING_WANTS = 16  # wire.md 5
MESSAGE_BURST = 200  # wire.md 5
RATE_POINTS, INVALID_POINTS, UNSOLICITED_POINTS, DROP_SCORE = 5, 25, 10, 100  # wire.md 10.2


# -- helpers ---------------------------------------------------------------------------


@asynccontextmanager
async def target_and_honest(tmp: Path, **options: Any) -> AsyncIterator[tuple[Node, Node]]:
    """Node 1 (the target) and node 2 (honest, dialling node 1), in session."""
    async with running(tmp, 1, **options) as target, \
            running(tmp, 2, bootstrap=(target,)) as honest:
        # Both on one connection: a start can dial twice and then each side may
        # keep a different one, and drop both (see the last tests); a fork
        # proof stored meanwhile would reach nobody (8.3 pushes it once).
        await poll(lambda: in_session(target, honest))
        yield target, honest


def in_session(a: Node, b: Node) -> bool:
    """``a`` and ``b`` each hold a session with the other over the same
    connection (the TLS channel binding is alike at both ends, transport.md 4)."""
    sa, sb = a.sessions.get(b.node_key), b.sessions.get(a.node_key)
    return (sa is not None and sb is not None
            and sa.conn.channel_binding == sb.conn.channel_binding)


async def converges(target: Node, honest: Node) -> None:
    """The honest node still gets through: its new proposal reaches the target."""
    entry = honest.propose(target.pseudonym, context=CTX, terms=b"after the attack")
    await target.wait_until(lambda: holds(target, honest.pseudonym, entry.seq), timeout=WAIT)


def chain(owner: Participant, n: int) -> list[Entry]:
    """``n`` valid entries of ``owner``'s chain (proposals to a bystander), in
    the past of every node's clock (shinyo.md 6.5: no future timestamps)."""
    bystander = stranger(200).pseudonym
    now = int(time.time()) - 60
    return [owner.propose(bystander, context=CTX, terms=bytes([i]) * 32, timestamp=now + i)
            for i in range(n)]


def broken_signature(entry: Entry) -> bytes:
    """``entry`` with a flipped bit in its signature, the envelope's last 64
    bytes (shinyo.md 6.1): same id, fails verification (6.4)."""
    raw = bytearray(entry.encode())
    raw[-1] ^= 0x01
    return bytes(raw)


def frame(body: bytes) -> bytes:
    """A frame around any bytes (wire.md 3.1)."""
    return len(body).to_bytes(4, "big") + body


def nobody(n: int) -> Pseudonym:
    """An author no node holds: a Want for it is answered empty."""
    return stranger(100 + n).pseudonym


async def session_of(node: Node, hostile: Hostile) -> PeerSession:
    """The node's session with ``hostile`` once its Hello is in."""
    await node.wait_until(lambda: hostile.key in node.sessions, timeout=WAIT)
    return node.sessions[hostile.key]


async def banned(node: Node, hostile: Hostile) -> bool:
    """The node ended its session with ``hostile`` and refuses its node key
    for ``BAN_TIME`` (10.2)."""
    await node.wait_until(lambda: hostile.key not in node.sessions, timeout=WAIT)
    until = node._banned.get(hostile.key.key)
    return until is not None and until > trio.current_time() + BAN_TIME - WAIT


def drops_after(points: int) -> int:
    """How many offences of ``points`` each end a session: those that reach
    DROP_SCORE (10.2)."""
    return -(-DROP_SCORE // points)


async def offend_until_dropped(h: Hostile, session: PeerSession, offences: list[Message], *,
                               points: int, probe: Pseudonym) -> tuple[int, Bye]:
    """Send ``offences`` one at a time, each checked with a probe, until the
    node ends the session; how many it took, and its Bye.  Before the drop
    the session is up and its score is the points charged so far (10.2)."""
    for n, msg in enumerate(offences, 1):
        reply = await h.exchange(msg, probe=probe)
        if isinstance(reply, Bye):
            return n, reply
        assert reply.entries == (), "an offending message stored something"
        assert session.stats["offences"] == n
        assert n * points - 1 < session.penalty.value(trio.current_time()) <= n * points
    raise AssertionError(f"still in session after {len(offences)} offences")


async def drain(hostile: Hostile) -> list[Message]:
    """Whatever the node sent before the connection ended."""
    with suppress(SessionEnded):
        await hostile.read_until(lambda m: False)
    return hostile.received


# -- 1. framing and order (wire.md 3.3, 6.2) ---------------------------------------------


async def test_garbage_is_malformed_and_bans_the_node_key(tmp_path: Path) -> None:
    async with target_and_honest(tmp_path) as (target, honest), hostile_endpoint(1) as ep:
        async with attack(ep, target) as h:
            await h.hello()
            await h.send(frame(b"\xff\xfe garbage, not CBOR"))
            bye = await h.bye()
            assert bye.code == "malformed"
            await h.closed()
        assert await banned(target, h)

        # The same node key again: refused, no session (10.2, BAN_TIME).
        try:
            async with attack(ep, target) as again:
                await again.hello()
                assert not (await again.closed()).local  # the node closed it
                sent = await drain(again)
        except TransportError:
            sent = []  # closed before the stream could even open
        assert all(isinstance(m, (Hello, Bye)) for m in sent), sent
        assert await banned(target, h)
        await converges(target, honest)


async def test_an_oversize_length_is_refused_before_its_body(tmp_path: Path) -> None:
    async with target_and_honest(tmp_path) as (target, honest), hostile_endpoint(2) as ep:
        async with attack(ep, target) as h:
            await h.hello()
            # The largest frame is fine (a message the node ignores, wire.md 11) ...
            pad = MAX_FRAME_SIZE - len(Unknown(code=10, fields=(b"",)).encode()) - 4
            largest = Unknown(code=10, fields=(b"\x00" * pad,))
            assert len(largest.encode()) == MAX_FRAME_SIZE
            await h.send(largest)
            assert (await h.barrier(nobody(2))).entries == ()
            # ... one byte more is refused after the 4 length bytes alone.
            await h.send((MAX_FRAME_SIZE + 1).to_bytes(4, "big"))
            assert (await h.bye()).code == "frame-too-large"
        assert await banned(target, h)
        await converges(target, honest)


async def test_messages_out_of_order_are_protocol_errors(tmp_path: Path) -> None:
    async with target_and_honest(tmp_path) as (target, honest), \
            hostile_endpoint(3) as before, hostile_endpoint(4) as twice:
        async with attack(before, target) as h:
            await h.send(Heads())  # before Hello (6.2)
            assert (await h.bye()).code == "protocol"
        assert await banned(target, h)
        async with attack(twice, target) as h2:
            await h2.hello()
            await h2.send(Hello(port=None, software="again"))
            assert (await h2.bye()).code == "protocol"
        assert await banned(target, h2)
        await converges(target, honest)


# -- 2. entries: verification, forks, duplicates (7.5, 8.2, 8.3) ----------------------------


async def test_bad_signatures_cost_25_points_each_and_are_never_stored(
        tmp_path: Path) -> None:
    author = stranger(4)
    entries = chain(author, 6)
    async with target_and_honest(tmp_path) as (target, honest), \
            hostile_endpoint(5) as ep, hostile_endpoint(6) as later:
        async with attack(ep, target) as h:
            await h.hello()
            session = await session_of(target, h)
            n, bye = await offend_until_dropped(
                h, session, [Push(entries=(broken_signature(e),)) for e in entries],
                points=INVALID_POINTS, probe=author.pseudonym)
            assert bye.code == "misbehaviour"
        assert n == drops_after(INVALID_POINTS)
        assert await banned(target, h)
        assert target.store.count(author.pseudonym) == 0
        # The seen-set kept none of the broken copies' ids (8.2): the valid
        # entries, with the same ids, are taken from the next peer.
        async with attack(later, target) as h2:
            await h2.hello()
            await h2.send(Push(entries=tuple(e.encode() for e in entries)))
            await target.wait_until(lambda: holds(target, author.pseudonym, len(entries)),
                                    timeout=WAIT)
        await converges(target, honest)


async def test_a_relayed_fork_is_stored_unpunished_and_forwarded(tmp_path: Path) -> None:
    now = int(time.time()) - 60
    one, other = stranger(5), stranger(5)  # one key, two chains
    first = one.propose(nobody(0), context=CTX, terms=b"\x01" * 32, timestamp=now)
    second = other.propose(nobody(0), context=CTX, terms=b"\x02" * 32, timestamp=now)
    assert first.seq == second.seq == 1 and first.id != second.id
    forker = first.author
    async with target_and_honest(tmp_path) as (target, honest), hostile_endpoint(7) as ep:
        async with attack(ep, target) as h:
            await h.hello()
            session = await session_of(target, h)
            await h.send(Push(entries=(first.encode(),)), Push(entries=(second.encode(),)))
            assert (await h.barrier(forker)).entries == (first.encode(),)
            assert target.store.is_forked(forker)
            # The author's fault, not the relay's (10.2).
            assert session.stats["offences"] == 0
            assert session.penalty.value(trio.current_time()) == 0
            assert target.sessions.get(h.key) is session
            # Forwarded as a Fork (8.3): the honest node has the proof too.
            await honest.wait_until(lambda: honest.store.is_forked(forker), timeout=WAIT)
        await converges(target, honest)


async def test_replayed_pushes_are_free_and_stored_once(tmp_path: Path) -> None:
    author = stranger(6)
    entry = chain(author, 1)[0]
    replay = Push(entries=(entry.encode(),))
    async with target_and_honest(tmp_path) as (target, honest), hostile_endpoint(8) as ep:
        async with attack(ep, target) as h:
            await h.hello()
            session = await session_of(target, h)
            seen = len(target.replica.seen)
            # MESSAGE_BURST copies: the whole budget, none over it (10.1).
            await h.send(*[replay] * MESSAGE_BURST)
            answer = await h.barrier(author.pseudonym)
            assert answer.entries == (entry.encode(),)
            assert session.stats["offences"] == 0
            assert session.stats["entries_in"] == 1
            assert target.store.count(author.pseudonym) == 1
            assert len(target.replica.seen) == seen + 1
            assert len(target.replica.held) == 0
            assert target.sessions.get(h.key) is session
        await converges(target, honest)


# -- 3. requests and rates (7.3, 7.4, 10.1) -------------------------------------------------


async def test_more_than_16_unanswered_wants_is_a_protocol_error(tmp_path: Path) -> None:
    async with target_and_honest(tmp_path) as (target, honest), hostile_endpoint(9) as ep:
        async with attack(ep, target) as h:
            await h.hello()
            session = await session_of(target, h)
            # One write, so the node's reader holds them all before its writer
            # answers any: the bound itself is fine ...
            await h.send(*[Want(author=nobody(i), first=1, last=1)
                           for i in range(MAX_OUTSTANDING_WANTS)])
            await h.read_until(lambda m: isinstance(m, Entries)
                               and m.author == nobody(MAX_OUTSTANDING_WANTS - 1))
            assert session.stats["offences"] == 0
            # ... one more is not (7.3).
            await h.send(*[Want(author=nobody(i), first=1, last=1)
                           for i in range(MAX_OUTSTANDING_WANTS + 1)])
            assert (await h.bye()).code == "protocol"
        assert await banned(target, h)
        await converges(target, honest)


async def test_a_flood_of_charged_messages_is_dropped_for_rate(tmp_path: Path) -> None:
    async with target_and_honest(tmp_path) as (target, honest), hostile_endpoint(10) as ep:
        async with attack(ep, target) as h:
            await h.hello()
            session = await session_of(target, h)
            # One write: the burst is spent long before the budget refills.
            await h.send(*[Heads()] * (2 * MESSAGE_BURST))
            assert (await h.bye()).code == "misbehaviour"
        # Every offence was `rate`, 5 points each, up to the drop score.
        assert session.stats["offences"] == drops_after(RATE_POINTS)
        assert await banned(target, h)
        await converges(target, honest)


async def test_unsolicited_entries_cost_10_points_and_are_not_stored(tmp_path: Path) -> None:
    author = stranger(7)
    entry = chain(author, 1)[0]
    unasked = Entries(author=author.pseudonym, first=1, last=1, entries=(entry.encode(),))
    async with target_and_honest(tmp_path) as (target, honest), hostile_endpoint(11) as ep:
        async with attack(ep, target) as h:
            await h.hello()
            session = await session_of(target, h)
            n, bye = await offend_until_dropped(
                h, session, [unasked] * (DROP_SCORE // UNSOLICITED_POINTS + 2),
                points=UNSOLICITED_POINTS, probe=author.pseudonym)
            # Penalised rather than fatal: it closes only at the drop score (6.3).
            assert bye.code == "unsolicited"
        assert n == drops_after(UNSOLICITED_POINTS)
        assert await banned(target, h)
        assert target.store.count(author.pseudonym) == 0
        await converges(target, honest)


@pytest.mark.parametrize("kind", ["invalid", "rate", "unsolicited"])
async def test_the_drop_comes_with_the_offence_that_reaches_the_drop_score(
        tmp_path: Path, kind: str) -> None:
    author = stranger(8)
    entries = chain(author, 4)
    attacks: dict[str, tuple[int, list[Message]]] = {
        "invalid": (INVALID_POINTS, [Push(entries=(broken_signature(e),)) for e in entries]),
        "rate": (RATE_POINTS, [Heads()] * (2 * MESSAGE_BURST)),
        "unsolicited": (UNSOLICITED_POINTS, [Entries(
            author=author.pseudonym, first=1, last=1, entries=(entries[0].encode(),))]
            * (DROP_SCORE // UNSOLICITED_POINTS)),
    }
    points, messages = attacks[kind]
    async with running(tmp_path, 1) as target, hostile_endpoint(15) as ep:
        async with attack(ep, target) as h:
            await h.hello()
            session = await session_of(target, h)
            # In quick succession (one write): no time for the score to decay.
            reply = await h.exchange(*messages, probe=author.pseudonym)
            assert isinstance(reply, Bye), f"still in session after {len(messages)} offences"
        assert session.stats["offences"] == DROP_SCORE // points


# -- 4. resources (3.2, 12) -------------------------------------------------------------------


async def test_a_slow_partial_frame_does_not_stall_the_node(tmp_path: Path) -> None:
    # No peer exchange: node 3 knows only the target, so what it gets of node
    # 2's chain came through the target.
    async with target_and_honest(tmp_path, peer_exchange=False) as (target, honest), \
            running(tmp_path, 3, bootstrap=(target,)) as third, hostile_endpoint(12) as ep:
        async with attack(ep, target) as h:
            await h.hello()
            session = await session_of(target, h)
            await h.send((1000).to_bytes(4, "big") + b"0123456789")
            # The node read the 14 bytes into its one incomplete frame ...
            await poll(lambda: session.stream.buffered == 0)
            # ... and serves everyone else meanwhile: node 2's chain reaches
            # node 3 through the target.
            await converges(target, honest)
            await third.wait_until(lambda: holds(third, honest.pseudonym, 1), timeout=WAIT)
            assert target.sessions.get(h.key) is session
            assert session.stats["offences"] == 0
            # Ending the stream inside the frame is `truncated` (3.3 step 2).
            await h.stream.send_eof()
            assert (await h.bye()).code == "truncated"
        assert await banned(target, h)


async def test_the_per_host_cap_is_the_configured_one(tmp_path: Path) -> None:
    # Peers behind one NAT address share a source host: the operator raises the cap.
    async with running(tmp_path, 1, max_inbound_per_host=3) as target, \
            AsyncExitStack() as stack:
        assert target.endpoint.limits.max_inbound_per_host == 3
        ep = await stack.enter_async_context(hostile_endpoint(50, host="127.0.0.50"))
        for _ in range(3):
            await stack.enter_async_context(aclosing_conn(await ep.connect(target.address)))
        with pytest.raises(ConnectionRefused):
            await ep.connect(target.address)


@asynccontextmanager
async def aclosing_conn(conn: PeerConnection) -> AsyncIterator[PeerConnection]:
    try:
        yield conn
    finally:
        await conn.aclose()


async def test_a_connection_flood_is_refused_at_the_limit(tmp_path: Path) -> None:
    async with target_and_honest(tmp_path, max_peers=2, peer_exchange=False) as (target, honest):
        limits = target.endpoint.limits
        assert limits.max_connections == 8  # max(2 * max_peers, 8)
        assert (limits.max_inbound_per_host, limits.reserved_outbound) == (2, 1)
        # Only the honest node's connection (a second one of a double dial is gone).
        await poll(lambda: len(target.endpoint._connections) == 1)
        async with AsyncExitStack() as stack:
            # Flooding hosts 127.0.0.40 and up (every 127.x.y.z is loopback).
            eps = [await stack.enter_async_context(
                QuicEndpoint.open(node_identity=hostile_identity(40 + i), host=f"127.0.0.{40 + i}"))
                for i in range(4)]
            flood: list[PeerConnection] = []
            for ep in eps[:3]:  # two per host (transport.md 9.3) ...
                flood += [await ep.connect(target.address) for _ in range(2)]
                with pytest.raises(ConnectionRefused):
                    await ep.connect(target.address)
            # ... up to the slots not kept for outbound connections: 8 - 1 - honest.
            assert len(flood) == 6
            with pytest.raises(ConnectionRefused):
                await eps[3].connect(target.address)
            # The session that was there before the flood still works.
            await converges(target, honest)
            for conn in flood:
                await conn.aclose()
            await poll(lambda: not any(c._remote[0] != "127.0.0.1"
                                       for c in target.endpoint._connections))
        # After the flood, a new node gets in and syncs through the target.
        async with running(tmp_path, 3, bootstrap=(target,)) as third:
            await target.wait_until(lambda: third.node_key in target.sessions,
                                    timeout=WAIT)
            await third.wait_until(lambda: holds(third, honest.pseudonym, 1),
                                   timeout=WAIT)


# -- 5. found on the way ----------------------------------------------------------------------


async def test_a_node_dials_its_bootstrap_peer_once(tmp_path: Path) -> None:
    accepted: list[PeerConnection] = []

    async def answer(conn: PeerConnection) -> None:
        """A minimal peer: Hello, then read until the node finishes, then finish."""
        accepted.append(conn)
        stream = await conn.accept_stream()
        await stream.send_all(encode_frame(Hello()))
        while await stream.receive_some(65536):
            pass
        await stream.send_eof()

    async with hostile_endpoint(16) as server, trio.open_nursery() as nursery:
        await nursery.start(server.serve, answer)
        address = f"{server.address[0]}:{server.address[1]}"
        # The race goes either way (trio shuffles its run queue): 20 starts
        # miss it with probability 2**-20.
        for n in range(1, 21):
            config = NodeConfig(home=tmp_path / f"dialer{n}", listen="127.0.0.1:0",
                                bootstrap=(address,), processes=0)  # 20 starts: no workers
            async with open_node(config, identity=identity(n), seed=n) as node:
                await node.wait_until(lambda: server.node_key in node.sessions, timeout=WAIT)
                await poll(lambda: not node._dialing)
        nursery.cancel_scope.cancel()
    dials = Counter(conn.peer_key for conn in accepted)
    assert len(dials) == 20
    assert set(dials.values()) == {1}, f"{sum(dials.values()) - 20} of 20 starts dialled twice"


async def test_a_node_shutting_down_starts_no_new_session(tmp_path: Path) -> None:
    stop = trio.Event()

    async def node_until_stop(*, task_status: trio.TaskStatus[Node]) -> None:
        async with running(tmp_path, 1) as node:
            task_status.started(node)
            await stop.wait()  # then shut down (in the task that opened it)

    async with hostile_endpoint(17) as first_ep, hostile_endpoint(18) as late_ep, \
            trio.open_nursery() as nursery:
        node: Node = await nursery.start(node_until_stop)
        async with attack(first_ep, node) as first:
            await first.hello()
            await session_of(node, first)
            stop.set()
            # `first` holds the shutdown open: it does not finish its stream
            # after the node's Bye (the node waits CLOSE_GRACE for it).
            assert (await first.bye()).code == "normal"
            async with attack(late_ep, node) as late:
                await late.hello()
                await poll(lambda: late.key in node.sessions
                           or late.conn.close_reason is not None)
                registered = late.key in node.sessions
            await first.stream.send_eof()
    assert not registered, "a session started while the node was shutting down"
