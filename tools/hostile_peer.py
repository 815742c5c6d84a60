"""The parts of a malicious peer: real QUIC, a node key of its own, raw frames.

A hostile peer uses the node's own transport (:class:`~shinyo.node._quic.QuicEndpoint`)
and the wire codec (``encode_frame``, ``FrameDecoder``) only to build and read
bytes; what it sends is chosen by its caller, valid or not, in any order
(spec/wire.md 3, 6, 10).  It never answers the node by itself: a caller that
needs an answer reads it with :meth:`HostileSession.read_until`.

Everything here is deterministic from small integers (node keys, the
pseudonyms it signs valid entries with), so a campaign run with one seed
sends the same bytes; only the QUIC handshakes differ (TLS randomness).

The attacks built from these parts, each one bounded *round* of messages or
connections, are in :mod:`.hostile_attacks`; the campaign that runs them all
against a daemon is tools/hostile.py.

    >>> async with hostile_endpoint(1) as ep:                      # doctest: +SKIP
    ...     async with open_session(ep, node_address) as h:
    ...         await h.hello()
    ...         await h.send(frame(b"\\xff garbage"))
    ...         assert (await h.bye()).code == "malformed"
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Final

import trio

from shinyo import Entry, Participant, Pseudonym, ShinyoError, SigningIdentity
from shinyo.node._netsim import Address
from shinyo.node._peerauth import PeerRole, TransportError
from shinyo.node._quic import (
    CloseReason,
    PeerConnection,
    QuicEndpoint,
    QuicStream,
    TransportLimits,
)
from shinyo.wire import (
    MAX_FRAME_SIZE,
    Bye,
    Entries,
    FrameDecoder,
    Head,
    Heads,
    Hello,
    Message,
    Unknown,
    Want,
    WireError,
    encode_frame,
)

__all__ = [
    "READ_TIMEOUT",
    "HostileSession",
    "SessionEnded",
    "SilentEndpoint",
    "broken_signature",
    "forked_pair",
    "frame",
    "hostile_endpoint",
    "hostile_identity",
    "largest_frame",
    "open_session",
    "oversize_length",
    "phantom_heads",
    "proposals",
    "stranger",
]

READ_TIMEOUT: Final = 30.0
"""Seconds a read waits for the node before it is a hang (never a timing check)."""
CONTEXT: Final = "hostile.example/peer"


def _seed(kind: bytes, n: int) -> bytes:
    return hashlib.sha256(b"shinyo-hostile/" + kind + b"/%d" % n).digest()


def hostile_identity(n: int) -> SigningIdentity:
    """Node key ``n`` of a hostile peer (any integer; never a test node's key).

    Keys are free, so a banned attacker simply makes a new one (wire.md 10.2
    bans a *node key*): a campaign takes a fresh ``n`` per connection."""
    return SigningIdentity.from_seed(_seed(b"node", n))


def stranger(n: int) -> Participant:
    """A pseudonym the hostile peer owns, to sign valid entries with."""
    return Participant(SigningIdentity.from_seed(_seed(b"author", n)))


# -- bytes and messages ---------------------------------------------------------------


def frame(body: bytes) -> bytes:
    """A frame around any bytes, valid message or not (wire.md 3.1)."""
    return len(body).to_bytes(4, "big") + body


def oversize_length() -> bytes:
    """The 4 length bytes of a frame one byte over ``MAX_FRAME_SIZE``: refused
    before any body byte is read (3.3 step 1, ``frame-too-large``)."""
    return (MAX_FRAME_SIZE + 1).to_bytes(4, "big")


def largest_frame() -> Unknown:
    """A message of exactly ``MAX_FRAME_SIZE`` bytes that a node ignores (an
    unknown type, wire.md 11) but charges to the rate limit (10.1)."""
    empty = len(Unknown(code=10, fields=(b"",)).encode())
    # The byte string's head grows from 1 to 5 bytes as it passes 2**16.
    pad = MAX_FRAME_SIZE - empty - 4
    msg = Unknown(code=10, fields=(b"\x00" * pad,))
    assert len(msg.encode()) == MAX_FRAME_SIZE
    return msg


def broken_signature(entry: Entry) -> bytes:
    """``entry`` with a flipped bit in its signature, the envelope's last 64
    bytes (shinyo.md 6.1): the same id, fails verification (6.4)."""
    raw = bytearray(entry.encode())
    raw[-1] ^= 0x01
    return bytes(raw)


def proposals(owner: Participant, n: int, *, now: int) -> list[Entry]:
    """``n`` more valid entries of ``owner``'s chain: proposals to a bystander,
    a minute or more in the past of every node's clock (shinyo.md 6.5)."""
    bystander = stranger(-1).pseudonym
    first = len(owner.chain)
    return [owner.propose(bystander, context=CONTEXT, terms=bytes([i % 256]) * 32,
                          timestamp=now - 60 - n + i) for i in range(first, first + n)]


def forked_pair(n: int, *, now: int) -> tuple[Entry, Entry]:
    """Two valid, different entries at seq 1 of stranger ``n``'s chain: relayed
    together they prove a fork (shinyo.md 8), the author's fault, not the relay's."""
    one, other = stranger(n), stranger(n)  # one key, two chains
    bystander = stranger(-1).pseudonym
    first = one.propose(bystander, context=CONTEXT, terms=b"\x01" * 32, timestamp=now - 60)
    second = other.propose(bystander, context=CONTEXT, terms=b"\x02" * 32, timestamp=now - 60)
    return first, second


def phantom_heads(rng: random.Random, count: int) -> Heads:
    """One anti-entropy page claiming ``count`` chains that do not exist: made-up
    authors at seq 1..1000, sorted by key as a page must be (wire.md 4.3)."""
    heads = sorted((Head(author=Pseudonym(key=rng.randbytes(32)), seq=rng.randint(1, 1000),
                         id=rng.randbytes(32)) for _ in range(count)),
                   key=lambda h: h.author.key)
    return Heads(heads=tuple(heads))


# -- endpoints and sessions ---------------------------------------------------------------


@asynccontextmanager
async def hostile_endpoint(n: int, *, host: str = "127.0.0.1",
                           limits: TransportLimits | None = None,
                           kind: type[QuicEndpoint] = QuicEndpoint) -> AsyncIterator[QuicEndpoint]:
    """A QUIC endpoint (of class ``kind``) on ``host`` proving hostile node key
    ``n``.  On Linux every 127.x.y.z is loopback, so distinct hosts model
    distinct attackers."""
    async with kind.open(node_identity=hostile_identity(n), host=host, limits=limits) as ep:
        yield ep


class SilentEndpoint(QuicEndpoint):
    """An endpoint whose client completes the QUIC handshake and then never
    sends its AUTH message (spec/transport.md 4.4): the cheapest way to hold a
    server's connection slot, for ``handshake_timeout``, without a node key."""

    def _send_auth(self, conn: PeerConnection, role: PeerRole, binding: bytes) -> None:
        if role is not PeerRole.CLIENT:
            super()._send_auth(conn, role, binding)


class HostileSession:
    """One hostile session with a node: the connection, its session stream (the
    client's first stream, spec/transport.md 5.1) and what the node sent on it."""

    def __init__(self, conn: PeerConnection, stream: QuicStream, *, key: Pseudonym) -> None:
        self.key = key
        """This side's node key, as the node knows it."""
        self.conn = conn
        self.stream = stream
        self.received: list[Message] = []
        self.eof = False
        self.sent_frames = 0
        self.sent_bytes = 0
        self._cursor = 0  # received[:_cursor] were passed to read_until
        self._decoder = FrameDecoder()

    async def send(self, *items: Message | bytes) -> None:
        """Send messages (framed) and raw bytes (as they are), in one write."""
        data = b"".join(i if isinstance(i, bytes) else encode_frame(i) for i in items)
        await self.stream.send_all(data)
        self.sent_frames += sum(not isinstance(i, bytes) for i in items)
        self.sent_bytes += len(data)

    async def hello(self) -> None:
        await self.send(Hello(port=None, software="hostile"))

    async def read_until(self, predicate: Callable[[Message], bool], *,
                         timeout: float = READ_TIMEOUT) -> Message:
        """Read the node's messages, in order, until one satisfies ``predicate``;
        the ones before it are passed over.  Raises :class:`SessionEnded` at the
        end of the stream and ``trio.TooSlowError`` after ``timeout``."""
        with trio.fail_after(timeout):
            while True:
                while self._cursor < len(self.received):
                    msg = self.received[self._cursor]
                    self._cursor += 1
                    if predicate(msg):
                        return msg
                if self.eof:
                    raise SessionEnded(self.last_bye())
                try:
                    data = await self.stream.receive_some(65536)
                except (TransportError, trio.BrokenResourceError,
                        trio.ClosedResourceError) as exc:
                    self.eof = True
                    raise SessionEnded(self.last_bye()) from exc
                if not data:
                    self.eof = True
                    continue
                try:
                    self.received.extend(self._decoder.feed(data))
                except WireError:  # the node never sends bad frames; if it did, stop here
                    self.eof = True

    def last_bye(self) -> Bye | None:
        """The node's Bye, if it sent one."""
        return next((m for m in reversed(self.received) if isinstance(m, Bye)), None)

    async def bye(self, *, timeout: float = READ_TIMEOUT) -> Bye | None:
        """The node's Bye (wire.md 6.3), or None if the connection ended without one."""
        try:
            msg = await self.read_until(lambda m: isinstance(m, Bye), timeout=timeout)
        except SessionEnded as ended:
            return ended.bye
        assert isinstance(msg, Bye)
        return msg

    async def answer(self, *items: Message | bytes, probe: Want,
                     timeout: float = READ_TIMEOUT) -> Entries | Bye | None:
        """Send ``items`` and then ``probe`` in one write; return the node's
        answer to the probe (its reader acts on messages in order, so the
        answer means it has acted on ``items``), its Bye if it ended the session
        first, or None if the connection ended without one."""
        await self.send(*items, probe)
        try:
            msg = await self.read_until(
                lambda m: isinstance(m, Bye) or (isinstance(m, Entries) and m.want == probe),
                timeout=timeout)
        except SessionEnded as ended:
            return ended.bye
        assert isinstance(msg, (Entries, Bye))
        return msg

    async def closed(self, *, timeout: float = READ_TIMEOUT) -> CloseReason:
        """Wait for the connection to end (``trio.TooSlowError`` after ``timeout``)."""
        with trio.fail_after(timeout):
            return await self.conn.wait_closed()


class SessionEnded(ShinyoError):
    """The node finished the session stream or closed the connection."""

    def __init__(self, bye: Bye | None) -> None:
        super().__init__("the node ended the session" + (f" with Bye {bye.code!r}" if bye else ""))
        self.bye = bye


@asynccontextmanager
async def open_session(endpoint: QuicEndpoint, address: Address, *,
                       expect_key: Pseudonym | None = None,
                       session: type[HostileSession] = HostileSession,
                       ) -> AsyncIterator[HostileSession]:
    """Connect to the node at ``address`` and open the session stream; nothing is
    sent (the node learns of the stream with its first byte).  ``session``: the
    class to wrap it in (a subclass may add checks).  Raises the transport's
    errors, e.g. ``ConnectionRefused`` when the node is full."""
    conn = await endpoint.connect(address, expect_key=expect_key)
    try:
        stream = await conn.open_stream()
        yield session(conn, stream, key=endpoint.node_key)
    finally:
        await conn.aclose()
