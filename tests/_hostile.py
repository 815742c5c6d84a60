"""A malicious peer for tests: a real QUIC endpoint with its own node key that
speaks raw frames to a running node (spec/wire.md 3, 6, 10).

The hostile side uses the node's own transport (``QuicEndpoint``) and the wire
codec (``encode_frame``, ``FrameDecoder``) only to build and read bytes; what
it sends is chosen by the test, valid or not, in any order.  It never answers
the node: a test that needs an answer reads it with :meth:`Hostile.read_until`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import trio

from shinyo import Participant, Pseudonym, SigningIdentity
from shinyo.node import Node
from shinyo.node._quic import CloseReason, PeerConnection, QuicEndpoint, QuicStream
from shinyo.wire import Bye, Entries, FrameDecoder, Hello, Message, Want, encode_frame

from ._nodes import WAIT

__all__ = ["Hostile", "attack", "hostile_endpoint", "hostile_identity", "poll", "stranger"]

POLL: float = 0.01
"""Seconds between two looks at a node's state that signals no change (penalties)."""


def hostile_identity(n: int) -> SigningIdentity:
    """Node key ``n`` of a hostile peer (deterministic, unlike any test node's)."""
    return SigningIdentity.from_seed(bytes([0xA5, n]) * 16)


def stranger(n: int) -> Participant:
    """A pseudonym the hostile peer owns, to sign valid entries with."""
    return Participant(SigningIdentity.from_seed(bytes([0x5A, n]) * 16))


async def poll(predicate: Callable[[], bool], *, timeout: float = WAIT) -> None:
    """Wait until ``predicate()`` holds, for state ``Node.wait_until`` is not
    woken by (penalty scores, bans); a hang fails after ``timeout``."""
    with trio.fail_after(timeout):
        while not predicate():
            await trio.sleep(POLL)


@asynccontextmanager
async def hostile_endpoint(n: int) -> AsyncIterator[QuicEndpoint]:
    """A QUIC endpoint on 127.0.0.1 proving hostile node key ``n``."""
    async with QuicEndpoint.open(node_identity=hostile_identity(n), host="127.0.0.1") as ep:
        yield ep


class Hostile:
    """One hostile session to a node: the connection, its session stream and
    what the node sent on it (spec/transport.md 5.1: the client's first stream)."""

    def __init__(self, conn: PeerConnection, stream: QuicStream, *, key: Pseudonym) -> None:
        self.key = key
        """This side's node key, as the node knows it."""
        self.conn = conn
        self.stream = stream
        self.received: list[Message] = []
        self.eof = False
        self._cursor = 0  # received[:_cursor] were passed to read_until
        self._decoder = FrameDecoder()

    async def send(self, *items: Message | bytes) -> None:
        """Send messages (framed) and raw bytes (as they are), in one write."""
        data = b"".join(i if isinstance(i, bytes) else encode_frame(i) for i in items)
        await self.stream.send_all(data)

    async def hello(self) -> None:
        await self.send(Hello(port=None, software="hostile"))

    async def read_until(self, predicate: Callable[[Message], bool]) -> Message:
        """Read the node's messages, in order, until one satisfies ``predicate``;
        the ones before it are passed over.  Fails at the end of the stream or
        after ``WAIT`` seconds."""
        with trio.fail_after(WAIT):
            while True:
                while self._cursor < len(self.received):
                    msg = self.received[self._cursor]
                    self._cursor += 1
                    if predicate(msg):
                        return msg
                if self.eof:
                    raise AssertionError(f"the node finished its stream; it sent "
                                         f"{[type(m).__name__ for m in self.received]}")
                data = await self.stream.receive_some(65536)
                if not data:
                    self._decoder.eof()
                    self.eof = True
                else:
                    self.received.extend(self._decoder.feed(data))

    async def bye(self) -> Bye:
        """The node's Bye (wire.md 6.3)."""
        msg = await self.read_until(lambda m: isinstance(m, Bye))
        assert isinstance(msg, Bye)
        return msg

    async def exchange(self, *items: Message | bytes, probe: Pseudonym) -> Entries | Bye:
        """Send ``items``, then a Want for ``probe``'s entry 1, in one write, and
        return the answer to that Want -- or the node's Bye if it ended the
        session first.  The node's reader acts on messages in order, so the
        answer means it has acted on ``items`` (and Wants are not charged, 10.1)."""
        await self.send(*items, Want(author=probe, first=1, last=1))
        msg = await self.read_until(
            lambda m: isinstance(m, Bye) or (isinstance(m, Entries) and m.author == probe))
        assert isinstance(msg, (Entries, Bye))
        return msg

    async def barrier(self, probe: Pseudonym) -> Entries:
        """:meth:`exchange` of nothing: the node's answer about ``probe``'s entry 1."""
        msg = await self.exchange(probe=probe)
        assert isinstance(msg, Entries), f"the node said {msg}"
        return msg

    async def closed(self) -> CloseReason:
        """Wait for the connection to end (a failure after ``WAIT`` seconds)."""
        with trio.fail_after(WAIT):
            return await self.conn.wait_closed()


@asynccontextmanager
async def attack(endpoint: QuicEndpoint, node: Node) -> AsyncIterator[Hostile]:
    """Connect ``endpoint`` to ``node`` and open the session stream.  Nothing is
    sent: the node learns of the stream with its first byte."""
    conn = await endpoint.connect(node.address, expect_key=node.node_key)
    try:
        stream = await conn.open_stream()
        yield Hostile(conn, stream, key=endpoint.node_key)
    finally:
        await conn.aclose()

