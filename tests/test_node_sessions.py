"""Session rules that take minutes of protocol time, run on the seeded memory
network under trio's autojump clock (no real waiting)."""

from __future__ import annotations

from pathlib import Path

import trio

from shinyo import Participant
from shinyo.node._netsim import MemoryNetwork
from shinyo.node._node import open_node
from shinyo.node._peer import SILENCE_TIMEOUT
from shinyo.node._quic import QuicEndpoint
from shinyo.wire import Bye, FrameDecoder, Hello, Push, encode_frame

from ._hostile import hostile_identity
from ._nodes import identity, node_config

T0 = 1_800_000_000
VIRTUAL_WAIT = 600.0  # seconds of the autojump clock: a missing event fails, never hangs


async def test_a_peer_that_stalls_mid_frame_is_let_go(tmp_path: Path,
                                                      autojump_clock: trio.abc.Clock) -> None:
    net = MemoryNetwork(seed=1)
    config = node_config(tmp_path, 1, sync_interval=30.0, idle_timeout=60.0)
    async with open_node(config, identity=identity(1), datagrams=net.attach(),
                         clock=lambda: T0 + trio.current_time(), seed=1) as node, \
            QuicEndpoint.open(node_identity=hostile_identity(1), datagrams=net.attach()) as ep:
        conn = await ep.connect(node.address, expect_key=node.node_key)
        stream = await conn.open_stream()
        await stream.send_all(encode_frame(Hello()) + (1000).to_bytes(4, "big") + b"partial")
        await node.wait_until(lambda: ep.node_key in node.sessions, timeout=VIRTUAL_WAIT)
        started = trio.current_time()
        decoder, messages = FrameDecoder(), []
        while not any(isinstance(m, Bye) for m in messages):
            data = await stream.receive_some()  # our QUIC stack keeps acknowledging
            assert data, "the node finished its stream without a Bye"
            messages += decoder.feed(data)
        bye = next(m for m in messages if isinstance(m, Bye))
        assert bye.code == "normal" and "no message" in bye.reason
        assert SILENCE_TIMEOUT <= trio.current_time() - started <= SILENCE_TIMEOUT + 2 * 33
        await conn.aclose()


async def test_a_peer_connecting_after_a_fork_still_learns_it(
        tmp_path: Path, autojump_clock: trio.abc.Clock) -> None:
    """Fork proofs are gossiped once, when stored; a session that opens later
    gets every proof the node holds (wire.md 8.3)."""
    net = MemoryNetwork(seed=2)
    cheat = Participant(hostile_identity(9))
    twin = Participant(hostile_identity(9))
    a = cheat.propose(identity(1).pseudonym, context="x", terms=bytes(32), timestamp=T0)
    b = twin.propose(identity(1).pseudonym, context="y", terms=bytes(32), timestamp=T0)
    clock = lambda: T0 + 100 + trio.current_time()  # noqa: E731
    async with open_node(node_config(tmp_path, 1), identity=identity(1), clock=clock,
                         datagrams=net.attach(), seed=1) as one, \
            QuicEndpoint.open(node_identity=hostile_identity(2), datagrams=net.attach()) as ep:
        conn = await ep.connect(one.address, expect_key=one.node_key)
        stream = await conn.open_stream()
        await stream.send_all(encode_frame(Hello()) + encode_frame(Push(entries=(
            a.encode(), b.encode()))))
        await one.wait_until(lambda: one.store.is_forked(cheat.pseudonym), timeout=VIRTUAL_WAIT)
        await conn.aclose()
        # A node that was not there when the proof was stored:
        async with open_node(node_config(tmp_path, 2, bootstrap=(one,)), identity=identity(2),
                             clock=clock, datagrams=net.attach(), seed=2) as two:
            await two.wait_until(lambda: len(two.sessions) == 1, timeout=VIRTUAL_WAIT)
            # Longer than any anti-entropy round: the proof is not on the way by chance.
            await two.wait_until(lambda: two.store.is_forked(cheat.pseudonym),
                                 timeout=VIRTUAL_WAIT)
