"""The node's QUIC transport: aioquic's sans-IO ``QuicConnection`` driven from trio.

One task reads datagrams in batches and feeds each to its connection
(``receive_datagram`` with ``now = trio.current_time()``); every connection
touched by a batch has its events drained once and then transmits.  Each
connection has one timer task whose deadline is ``get_timer()``.  All times
are trio's clock, so tests run on ``MockClock(autojump_threshold=0)``.

Peers authenticate with node keys over the TLS channel binding before any
stream reaches the application (spec/transport.md 4); streams are trio
``HalfCloseableStream`` objects with bounded buffers both ways (spec 5).
"""

from __future__ import annotations

import ipaddress
import logging
import math
import os
import ssl
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from typing import Final, Self

import trio
from aioquic import tls
from aioquic._buffer import Buffer  # aioquic.buffer re-exports it implicitly (mypy --strict)
from aioquic.quic import events
from aioquic.quic.configuration import SMALLEST_MAX_DATAGRAM_SIZE, QuicConfiguration
from aioquic.quic.connection import (
    MAX_STREAM_DATA_FRAME_CAPACITY,
    TRANSPORT_CLOSE_FRAME_CAPACITY,
    QuicConnection,
)
from aioquic.quic.crypto import CryptoPair
from aioquic.quic.packet import (
    QuicErrorCode,
    QuicFrameType,
    QuicHeader,
    QuicPacketType,
    QuicProtocolVersion,
    encode_quic_version_negotiation,
    pull_quic_header,
)
from aioquic.quic.packet_builder import QuicPacketBuilder
from aioquic.quic.recovery import QuicPacketSpace
from aioquic.quic.stream import QuicStream as _AioquicStream

from shinyo import LocalProtocolError, Pseudonym, SigningIdentity

from ._netsim import MAX_UDP_PAYLOAD, Address, DatagramTransport, open_udp_transport
from ._peerauth import (
    ALPN,
    AUTH_MESSAGE_SIZE,
    ErrorCode,
    PeerAuthError,
    PeerRole,
    TransportError,
    channel_binding,
    make_auth_message,
    make_tls_certificate,
    verify_auth_message,
)

__all__ = [
    "CloseReason",
    "ConnectionClosed",
    "ConnectionLimitReached",
    "ConnectionRefused",
    "EndpointStats",
    "HandshakeTimeout",
    "PeerConnection",
    "QuicEndpoint",
    "QuicStream",
    "StreamReset",
    "TransportLimits",
    "open_endpoint",
]

logger = logging.getLogger("shinyo.node.quic")

AUTH_STREAM_ID: Final = 0
"""The first client-initiated bidirectional stream carries the AUTH messages (spec 4.4)."""
_CID_LENGTH: Final = 8
TIMER_GRANULARITY: Final = 1e-6
"""Seconds after a QUIC timer fired before it can fire again (see ``_run_timer``)."""
_MAX_REASON: Final = 200


@dataclass(frozen=True, kw_only=True, slots=True)
class TransportLimits:
    """Every bound of the transport, validated on construction (spec/transport.md 6).

    Worst-case receive memory is ``max_connections * max_streams *
    stream_receive_buffer``; send memory adds ``stream_send_buffer`` per
    stream on top of what the peer's flow control lets fly.
    """

    max_connections: int = 64
    """Open connections, both directions; an inbound one beyond it is refused."""
    max_inbound_per_host: int | None = None
    """Inbound connections from one source at once (an IPv4 address, an IPv6 /64);
    more are refused like a full table (spec 9.3).  None: no limit."""
    reserved_outbound: int = 0
    """Slots of ``max_connections`` only outbound connections may take, so that
    inbound ones cannot stop the node from dialling (an eclipse defence)."""
    max_streams: int = 16
    """Concurrent bidirectional streams a peer may open (QUIC MAX_STREAMS)."""
    idle_timeout: float = 60.0
    """Seconds without a packet from the peer before the connection is dropped."""
    handshake_timeout: float = 10.0
    """Seconds from the first packet to a completed handshake *and* peer authentication."""
    stream_send_buffer: int = 256 * 1024
    """Bytes queued but not yet sent per stream before ``send_all`` waits."""
    stream_receive_buffer: int = 256 * 1024
    """Bytes received but not yet read per stream; also the stream's flow-control window."""
    max_datagram_size: int = SMALLEST_MAX_DATAGRAM_SIZE
    """Largest UDP payload sent; 1200 fits every IPv6 path, loopback takes far more."""

    def __post_init__(self) -> None:
        for name, low in (
            ("max_connections", 1),
            ("max_streams", 1),
            ("stream_send_buffer", 1024),
            ("stream_receive_buffer", 1024),
        ):
            value = getattr(self, name)
            if type(value) is not int or value < low:
                raise LocalProtocolError(
                    f"TransportLimits.{name} is an integer >= {low}; got {value!r}"
                )
        per_host = self.max_inbound_per_host
        if per_host is not None and (type(per_host) is not int or per_host < 1):
            raise LocalProtocolError(
                f"TransportLimits.max_inbound_per_host is None or an integer >= 1; got {per_host!r}"
            )
        reserved = self.reserved_outbound
        if type(reserved) is not int or not 0 <= reserved < self.max_connections:
            raise LocalProtocolError(
                "TransportLimits.reserved_outbound is an integer from 0 to max_connections - 1; "
                f"got {reserved!r}"
            )
        size = self.max_datagram_size
        if type(size) is not int or not SMALLEST_MAX_DATAGRAM_SIZE <= size <= MAX_UDP_PAYLOAD:
            raise LocalProtocolError(
                "TransportLimits.max_datagram_size is an integer from "
                f"{SMALLEST_MAX_DATAGRAM_SIZE} (QUIC's minimum) to {MAX_UDP_PAYLOAD}; got {size!r}"
            )
        for name in ("idle_timeout", "handshake_timeout"):
            value = getattr(self, name)
            if type(value) not in (int, float) or not (math.isfinite(value) and value > 0):
                raise LocalProtocolError(
                    f"TransportLimits.{name} is a finite number of seconds > 0; got {value!r}"
                )


@dataclass(frozen=True, kw_only=True, slots=True)
class CloseReason:
    """Why a connection ended.

    ``application`` tells the two code spaces apart: True for a shinyo/1
    :class:`ErrorCode` (CONNECTION_CLOSE type 0x1d), False for a QUIC transport
    error such as FLOW_CONTROL_ERROR, CONNECTION_REFUSED or an idle timeout.
    ``local`` is True when this endpoint closed the connection.
    """

    error_code: int
    reason: str
    application: bool
    local: bool


class ConnectionClosed(TransportError, trio.BrokenResourceError):
    """The connection is closed; ``reason`` says by whom and why."""

    def __init__(self, reason: CloseReason) -> None:
        who = "this endpoint" if reason.local else "the peer (or a timeout)"
        space = "application" if reason.application else "transport"
        super().__init__(
            f"connection closed by {who}: {space} code 0x{reason.error_code:x}"
            + (f", {reason.reason!r}" if reason.reason else "")
        )
        self.reason = reason


class StreamReset(TransportError, trio.BrokenResourceError):
    """The peer abandoned this stream (RESET_STREAM or STOP_SENDING) with ``error_code``."""

    def __init__(self, message: str, *, error_code: int) -> None:
        super().__init__(message)
        self.error_code = error_code


class HandshakeTimeout(TransportError):
    """No QUIC handshake completed within ``TransportLimits.handshake_timeout``."""


class ConnectionRefused(TransportError):
    """The server refused the connection (CONNECTION_REFUSED: it is full)."""


class ConnectionLimitReached(TransportError):
    """This endpoint already has ``TransportLimits.max_connections`` connections."""


@dataclass(kw_only=True, slots=True)
class EndpointStats:
    """Counters for status displays and tests."""

    datagrams_received: int = 0
    datagrams_dropped: int = 0
    """Datagrams that matched no connection and started none (garbage, stray, too small)."""
    connections_refused: int = 0
    auth_failures: int = 0
    handshake_timeouts: int = 0


class _QuicAdapter(QuicConnection):
    """aioquic's ``QuicConnection`` plus what shinyo needs and aioquic has no public knob for.

    Each item reaches into aioquic internals; tests/test_quic.py pins every one:

    * the number of streams a peer may open (aioquic hardcodes 128) -- spec 5.1;
    * receive credit returned as the application reads instead of as data
      arrives, so a slow reader bounds memory -- spec 5.2;
    * the TLS exporter master secret, read from the key schedule when the
      1-RTT keys are installed, for the channel binding -- spec 4.2.
    """

    def __init__(
        self,
        *,
        configuration: QuicConfiguration,
        max_peer_streams: int,
        receive_window: int,
        original_destination_connection_id: bytes | None = None,
    ) -> None:
        super().__init__(
            configuration=configuration,
            original_destination_connection_id=original_destination_connection_id,
        )
        self.channel_binding: bytes | None = None
        self.binding_error: str | None = None
        self._window = receive_window
        self._read_offsets: dict[int, int] = {}
        # Set before the transport parameters are serialised (at connect or at
        # the first datagram).  No unidirectional streams in shinyo/1.
        self._local_max_streams_bidi.value = self._local_max_streams_bidi.sent = max_peer_streams
        self._local_max_streams_uni.value = self._local_max_streams_uni.sent = 0

    def track_reads(self, stream_id: int, offset: int) -> None:
        """The application has read ``offset`` bytes of this stream."""
        self._read_offsets[stream_id] = offset

    def untrack(self, stream_id: int) -> None:
        self._read_offsets.pop(stream_id, None)

    def credit_due(self, stream_id: int) -> bool:
        """Whether the application has read enough to raise this stream's credit."""
        stream = self._streams.get(stream_id)
        return stream is not None and self._raise_due(stream)

    def _raise_due(self, stream: _AioquicStream) -> bool:
        # RFC 9000 4.2: the credit is the bytes read plus one window, raised once
        # half a window has been read since the last raise.
        read = None if stream.stream_id is None else self._read_offsets.get(stream.stream_id)
        window = self._window
        return read is not None and read + window >= stream.max_stream_data_local + window // 2

    def unsent_bytes(self, stream_id: int, written: int) -> int:
        stream = self._streams.get(stream_id)
        return 0 if stream is None else written - stream.sender.highest_offset

    def has_stream(self, stream_id: int) -> bool:
        return stream_id in self._streams

    def _write_stream_limits(
        self, builder: QuicPacketBuilder, space: QuicPacketSpace, stream: _AioquicStream
    ) -> None:
        # Replaces aioquic's rule, which doubles the window as data *arrives* and
        # so lets a fast peer fill memory behind a slow reader (spec 5.2).
        sid = stream.stream_id
        if sid is None or stream.max_stream_data_local == 0 or stream.receiver.is_finished:
            return
        if self._raise_due(stream):
            stream.max_stream_data_local = self._read_offsets[sid] + self._window
        if stream.max_stream_data_local_sent != stream.max_stream_data_local:
            buf = builder.start_frame(
                QuicFrameType.MAX_STREAM_DATA,
                capacity=MAX_STREAM_DATA_FRAME_CAPACITY,
                handler=self._on_max_stream_data_delivery,
                handler_args=(stream,),
            )
            buf.push_uint_var(sid)
            buf.push_uint_var(stream.max_stream_data_local)
            stream.max_stream_data_local_sent = stream.max_stream_data_local

    def _update_traffic_key(
        self,
        direction: tls.Direction,
        epoch: tls.Epoch,
        cipher_suite: tls.CipherSuite,
        secret: bytes,
    ) -> None:
        first = self.channel_binding is None and self.binding_error is None
        if epoch == tls.Epoch.ONE_RTT and first:
            self._capture_binding(secret)
        super()._update_traffic_key(direction, epoch, cipher_suite, secret)

    def _capture_binding(self, first_application_secret: bytes) -> None:
        # The first 1-RTT secret either side installs is the server's application
        # traffic secret, derived like exporter_master_secret from the master
        # secret over the transcript through the server Finished (RFC 8446 7.1).
        # Re-deriving it proves the key schedule is at exactly that point.
        schedule = self.tls.key_schedule
        if schedule is None or schedule.derive_secret(b"s ap traffic") != first_application_secret:
            self.binding_error = "the TLS key schedule is not where this aioquic version was"
            return
        exporter_master_secret = schedule.derive_secret(b"exp master")
        self.channel_binding = channel_binding(schedule.algorithm, exporter_master_secret)


def _peer_initiated(stream_id: int, role: PeerRole) -> bool:
    # Bit 0 of a stream ID is 0 for client-initiated streams (RFC 9000 2.1).
    return (stream_id & 1 == 0) == (role is PeerRole.SERVER)


class QuicStream(trio.abc.HalfCloseableStream):
    """One bidirectional QUIC stream as a trio stream.

    ``send_all`` waits while more than ``stream_send_buffer`` bytes are queued
    but unsent; at most ``stream_receive_buffer`` unread bytes are ever held,
    because the peer gets credit only as they are read (spec 5.2).
    """

    def __init__(self, connection: PeerConnection, stream_id: int) -> None:
        self._conn = connection
        self.stream_id = stream_id
        self._received = bytearray()
        self._read = 0
        self._eof_received = False
        self._reset_code: int | None = None
        self._written = 0
        self._eof_sent = False
        self._stop_code: int | None = None
        self._closed = False
        self._sending = False
        self._receiving = False
        self._readable = trio.lowlevel.ParkingLot()

    @property
    def buffered(self) -> int:
        """Bytes received and not yet read."""
        return len(self._received)

    @property
    def unsent(self) -> int:
        """Bytes given to ``send_all`` that have not been sent yet."""
        return self._conn._quic.unsent_bytes(self.stream_id, self._written)

    def _check_writable(self) -> None:
        if self._closed:
            raise trio.ClosedResourceError("this stream was closed")
        if self._eof_sent:
            raise trio.ClosedResourceError("send_eof() was called on this stream")
        if self._stop_code is not None:
            raise StreamReset(
                f"the peer stopped reading stream {self.stream_id} (code 0x{self._stop_code:x})",
                error_code=self._stop_code,
            )
        self._conn._raise_if_closed()

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        if self._sending:
            raise trio.BusyResourceError("another task is sending on this stream")
        self._sending = True
        try:
            await trio.lowlevel.checkpoint()
            bound = self._conn._endpoint.limits.stream_send_buffer
            view = memoryview(data).cast("B")
            while True:
                self._check_writable()
                if not view:
                    return
                unsent = self.unsent
                if unsent < bound:
                    chunk = view[: bound - unsent]
                    view = view[len(chunk) :]
                    self._written += len(chunk)
                    self._conn._quic.send_stream_data(self.stream_id, chunk.tobytes())
                    self._conn._endpoint._transmit(self._conn)
                    continue
                # Full: wait for the queue to drain to half, not to one byte
                # of room, so writes stay large.
                while self.unsent > bound // 2:
                    self._check_writable()
                    await self._conn._progress.park()
        finally:
            self._sending = False

    async def wait_send_all_might_not_block(self) -> None:
        await trio.lowlevel.checkpoint()
        bound = self._conn._endpoint.limits.stream_send_buffer
        while True:
            self._check_writable()
            if self.unsent < bound:
                return
            await self._conn._progress.park()

    async def send_eof(self) -> None:
        if self._sending:
            raise trio.BusyResourceError("another task is sending on this stream")
        await trio.lowlevel.checkpoint()
        if self._eof_sent and not self._closed:
            return
        self._check_writable()
        self._eof_sent = True
        self._conn._quic.send_stream_data(self.stream_id, b"", end_stream=True)
        self._conn._endpoint._transmit(self._conn)

    async def receive_some(self, max_bytes: int | None = None) -> bytes:
        if max_bytes is not None and max_bytes < 1:
            raise ValueError("max_bytes must be at least 1")
        if self._receiving:
            raise trio.BusyResourceError("another task is receiving on this stream")
        self._receiving = True
        try:
            await trio.lowlevel.checkpoint()
            while not self._received:
                if self._closed:
                    raise trio.ClosedResourceError("this stream was closed")
                if self._reset_code is not None:
                    raise StreamReset(
                        f"the peer reset stream {self.stream_id} (code 0x{self._reset_code:x})",
                        error_code=self._reset_code,
                    )
                if self._eof_received:
                    return b""
                self._conn._raise_if_closed()
                await self._readable.park()
            if self._closed:
                raise trio.ClosedResourceError("this stream was closed")
            n = len(self._received) if max_bytes is None else min(max_bytes, len(self._received))
            data = bytes(self._received[:n])
            del self._received[:n]
            self._read += n
            quic = self._conn._quic
            quic.track_reads(self.stream_id, self._read)
            if quic.credit_due(self.stream_id):
                self._conn._endpoint._transmit(self._conn)  # MAX_STREAM_DATA goes out now
            return data
        finally:
            self._receiving = False

    async def aclose(self) -> None:
        if not self._closed:
            self._closed = True
            self._received.clear()
            self._conn._stream_closed(self)
            self._readable.unpark_all()
        await trio.lowlevel.checkpoint()

    # -- events from the connection --

    def _on_data(self, data: bytes, end_stream: bool) -> None:
        if self._closed or self._reset_code is not None:
            return
        self._received += data
        self._eof_received = self._eof_received or end_stream
        self._readable.unpark_all()

    def _on_reset(self, error_code: int) -> None:
        self._reset_code = error_code
        self._received.clear()
        self._readable.unpark_all()

    def _on_stop_sending(self, error_code: int) -> None:
        self._stop_code = error_code
        self._conn._progress.unpark_all()


class PeerConnection:
    """An authenticated connection to another node (made by :class:`QuicEndpoint`)."""

    def __init__(
        self,
        endpoint: QuicEndpoint,
        quic: _QuicAdapter,
        role: PeerRole,
        remote_address: Address,
        created_at: float,
    ) -> None:
        self._endpoint = endpoint
        self._quic = quic
        self._role = role
        self._remote = remote_address
        self._deadline = created_at + endpoint.limits.handshake_timeout
        self._peer_key: Pseudonym | None = None
        self._streams: dict[int, QuicStream] = {}
        self._closed_streams: list[QuicStream] = []
        self._incoming: deque[QuicStream] = deque()
        self._handshake_done = False
        self._auth_bytes = bytearray()
        self._auth_fin = False
        self._auth_error: str | None = None
        self._close_reason: CloseReason | None = None
        self._terminated = False
        self._closed = trio.Event()
        self._state = trio.lowlevel.ParkingLot()  # handshake, AUTH bytes, new streams, close
        self._progress = trio.lowlevel.ParkingLot()  # after every transmit
        self._timer_at: float | None = None
        self._timer_scope: trio.CancelScope | None = None
        self._cids: set[bytes] = set()
        self._pings = 0  # PING ids sent
        self._pings_acked: set[int] = set()

    @property
    def peer_key(self) -> Pseudonym:
        """The peer's node key, proven over this connection's channel binding."""
        if self._peer_key is None:
            raise LocalProtocolError("the peer has not authenticated yet")
        return self._peer_key

    @property
    def remote_address(self) -> Address:
        address = self._quic.get_peer_address()
        return self._remote if address is None else (address[0], address[1])

    @property
    def channel_binding(self) -> bytes:
        """The TLS channel binding (spec 4.3): alike at both ends, unique per connection."""
        binding = self._quic.channel_binding
        if binding is None:
            raise LocalProtocolError("the handshake has not completed")
        return binding

    @property
    def close_reason(self) -> CloseReason | None:
        """Why the connection ended, or None while it is open."""
        return self._close_reason

    async def wait_closed(self) -> CloseReason:
        """Wait until the connection has ended, by either side or a timeout."""
        await self._closed.wait()
        assert self._close_reason is not None
        return self._close_reason

    async def open_stream(self) -> QuicStream:
        """A new bidirectional stream; the peer learns of it with its first byte."""
        await trio.lowlevel.checkpoint()
        self._raise_if_closed()
        stream_id = self._quic.get_next_available_stream_id()
        self._quic.send_stream_data(stream_id, b"")  # creates it, so the next ID moves on
        return self._add_stream(stream_id)

    async def accept_stream(self) -> QuicStream:
        """Wait for the peer to open a stream."""
        await trio.lowlevel.checkpoint()
        while not self._incoming:
            self._raise_if_closed()
            await self._state.park()
        return self._incoming.popleft()

    async def ping(self, timeout: float) -> bool:
        """Send a QUIC PING; True if the peer acknowledges it within ``timeout`` seconds.

        False if it does not, or if the connection ends: a peer process that was
        killed leaves its connections open at our end until the idle timeout, and
        a restarted one drops their packets unanswered (transport.md 6).
        """
        if self._close_reason is not None:
            return False
        self._pings += 1
        uid = self._pings
        self._quic.send_ping(uid)
        self._endpoint._transmit(self)
        with trio.move_on_after(timeout):
            while uid not in self._pings_acked:
                if self._close_reason is not None:
                    return False
                await self._state.park()
            self._pings_acked.discard(uid)
            return True
        return False

    async def aclose(self) -> None:
        """Close gracefully (CONNECTION_CLOSE with NO_ERROR); idempotent."""
        self._endpoint._close(self, ErrorCode.NO_ERROR, "closed by the application")
        await trio.lowlevel.checkpoint()

    def __repr__(self) -> str:
        who = self._peer_key.short() if self._peer_key else "unauthenticated"
        return f"<PeerConnection {self._role.name.lower()} {who} at {self._remote}>"

    # -- internals --

    def _raise_if_closed(self) -> None:
        if self._close_reason is not None:
            raise ConnectionClosed(self._close_reason)

    async def _wait_until(self, predicate: Callable[[], bool]) -> None:
        while not predicate():
            self._raise_if_closed()
            await self._state.park()

    def _add_stream(self, stream_id: int) -> QuicStream:
        stream = QuicStream(self, stream_id)
        self._streams[stream_id] = stream
        self._quic.track_reads(stream_id, 0)
        return stream

    def _stream_closed(self, stream: QuicStream) -> None:
        sid = stream.stream_id
        self._quic.untrack(sid)
        self._closed_streams.append(stream)
        if self._close_reason is not None:
            return
        if not stream._eof_sent and stream._stop_code is None:
            # A graceful end of our half: what is queued is still delivered.
            self._quic.send_stream_data(sid, b"", end_stream=True)
        if not stream._eof_received and stream._reset_code is None:
            self._quic.stop_stream(sid, ErrorCode.STREAM_CLOSED)
        self._endpoint._transmit(self)

    def _prune_streams(self) -> None:
        # Forget closed streams once aioquic has discarded them too; until then
        # late frames for them must not look like new streams.
        if self._closed_streams:
            gone = [s for s in self._closed_streams if not self._quic.has_stream(s.stream_id)]
            for stream in gone:
                self._streams.pop(stream.stream_id, None)
                self._closed_streams.remove(stream)

    def _wake_all(self) -> None:
        self._state.unpark_all()
        self._progress.unpark_all()
        for stream in self._streams.values():
            stream._readable.unpark_all()

    def _rearm_timer(self) -> None:
        self._timer_at = self._quic.get_timer()
        if self._timer_scope is not None:
            self._timer_scope.deadline = math.inf if self._timer_at is None else self._timer_at

    def _handle(self, event: events.QuicEvent) -> None:
        if isinstance(event, events.StreamDataReceived):
            self._on_stream_data(event)
        elif isinstance(event, events.StreamReset):
            if event.stream_id == AUTH_STREAM_ID and self._peer_key is None:
                self._auth_error = "the peer reset the authentication stream"
                self._state.unpark_all()
            elif (stream := self._streams.get(event.stream_id)) is not None:
                stream._on_reset(event.error_code)
        elif isinstance(event, events.StopSendingReceived):
            if (stream := self._streams.get(event.stream_id)) is not None:
                stream._on_stop_sending(event.error_code)
        elif isinstance(event, events.HandshakeCompleted):
            if event.alpn_protocol != ALPN:
                self._endpoint._close(
                    self, ErrorCode.PROTOCOL_ERROR, f"ALPN {event.alpn_protocol!r} is not {ALPN!r}"
                )
            else:
                self._handshake_done = True
                self._state.unpark_all()
        elif isinstance(event, events.PingAcknowledged):
            self._pings_acked.add(event.uid)
            self._state.unpark_all()
        elif isinstance(event, events.ConnectionIdIssued):
            self._endpoint._map_cid(event.connection_id, self)
        elif isinstance(event, events.ConnectionIdRetired):
            self._endpoint._unmap_cid(event.connection_id, self)
        elif isinstance(event, events.ConnectionTerminated):
            self._endpoint._terminated(self, event)

    def _on_stream_data(self, event: events.StreamDataReceived) -> None:
        sid = event.stream_id
        if sid == AUTH_STREAM_ID:
            # Only the AUTH message and its FIN travel here (spec 4.4).
            if len(self._auth_bytes) + len(event.data) > AUTH_MESSAGE_SIZE:
                self._auth_error = (
                    f"more than {AUTH_MESSAGE_SIZE} bytes on the authentication stream"
                )
            else:
                self._auth_bytes += event.data
            self._auth_fin = self._auth_fin or event.end_stream
            self._state.unpark_all()
            return
        stream = self._streams.get(sid)
        if stream is None:
            if not _peer_initiated(sid, self._role):
                return
            # Buffered (bounded by flow control) and handed out only after
            # authentication: accept_stream is reachable only then (spec 4.4).
            stream = self._add_stream(sid)
            self._incoming.append(stream)
            self._state.unpark_all()
        stream._on_data(event.data, event.end_stream)


class QuicEndpoint:
    """A UDP endpoint that both connects to peers and accepts them (spec/transport.md).

    Make one with :func:`open_endpoint`.
    """

    def __init__(
        self,
        *,
        datagrams: DatagramTransport,
        node_identity: SigningIdentity,
        limits: TransportLimits,
        nursery: trio.Nursery,
    ) -> None:
        self._datagrams = datagrams
        self._identity = node_identity
        self.limits = limits
        self._nursery = nursery
        certificate, private_key = make_tls_certificate()
        self._client_config = self._configuration(is_client=True)
        self._server_config = self._configuration(is_client=False)
        self._server_config.certificate = certificate
        self._server_config.private_key = private_key
        self._by_cid: dict[bytes, PeerConnection] = {}
        self._connections: set[PeerConnection] = set()
        self._accepted: deque[PeerConnection] = deque()
        self._accept_lot = trio.lowlevel.ParkingLot()
        self._closing = False
        self.stats = EndpointStats()

    @classmethod
    @asynccontextmanager
    async def open(
        cls,
        *,
        host: str | None = None,
        port: int | None = None,
        node_identity: SigningIdentity,
        limits: TransportLimits | None = None,
        datagrams: DatagramTransport | None = None,
    ) -> AsyncIterator[Self]:
        """:func:`open_endpoint` for this class (subclasses included)."""
        if datagrams is not None and (host is not None or port is not None):
            raise LocalProtocolError("give either host and port, or a datagram transport, not both")
        async with AsyncExitStack() as stack:
            if datagrams is None:
                # Closed by its own context, after its backlog task has stopped.
                datagrams = await stack.enter_async_context(
                    open_udp_transport("127.0.0.1" if host is None else host, port or 0)
                )
            else:
                stack.callback(datagrams.close)
            body_error: BaseException | None = None
            async with trio.open_nursery() as nursery:
                endpoint = cls(
                    datagrams=datagrams,
                    node_identity=node_identity,
                    limits=TransportLimits() if limits is None else limits,
                    nursery=nursery,
                )
                nursery.start_soon(endpoint._receive_loop)
                try:
                    yield endpoint
                except BaseException as exc:
                    # Re-raised below, outside the nursery, so callers see their
                    # own exception rather than an ExceptionGroup around it.
                    body_error = exc
                finally:
                    endpoint._shutdown()
                    nursery.cancel_scope.cancel()
            if body_error is not None:
                raise body_error

    @property
    def address(self) -> Address:
        return self._datagrams.local_address

    @property
    def node_key(self) -> Pseudonym:
        return self._identity.pseudonym

    @property
    def connections(self) -> tuple[PeerConnection, ...]:
        """Authenticated connections that are still open."""
        return tuple(
            c for c in self._connections if c._peer_key is not None and c._close_reason is None
        )

    async def connect(
        self, address: Address, *, expect_key: Pseudonym | None = None
    ) -> PeerConnection:
        """Connect to the node at ``address`` and authenticate both ways.

        With ``expect_key`` the peer must prove that node key, else
        :class:`PeerAuthError` (code WRONG_PEER).  Also raises
        :class:`HandshakeTimeout`, :class:`ConnectionRefused`,
        :class:`ConnectionClosed` and :class:`ConnectionLimitReached`.
        """
        await trio.lowlevel.checkpoint()
        if self._closing:
            raise trio.ClosedResourceError("this endpoint is closed")
        if len(self._connections) >= self.limits.max_connections:
            raise ConnectionLimitReached(
                f"{len(self._connections)} connections are open, the limit "
                "(TransportLimits.max_connections); close one first"
            )
        now = trio.current_time()
        quic = self._new_quic(self._client_config)
        quic.connect(address, now=now)
        conn = PeerConnection(self, quic, PeerRole.CLIENT, address, now)
        self._register(conn, quic.host_cid)
        self._transmit(conn)
        try:
            with trio.move_on_at(conn._deadline):
                conn._peer_key = await self._authenticate(conn, expect_key)
                logger.info("connected to %s, node %s", address, conn._peer_key.short())
                return conn
            if not conn._handshake_done:
                self.stats.handshake_timeouts += 1
                raise HandshakeTimeout(
                    f"no QUIC handshake with {address} within {self.limits.handshake_timeout} s"
                )
            raise PeerAuthError(
                f"the server did not authenticate within {self.limits.handshake_timeout} s",
                code=ErrorCode.AUTH_TIMEOUT,
            )
        except PeerAuthError as exc:
            self._reject(conn, exc)
            raise
        except ConnectionClosed as exc:
            reason = exc.reason
            if reason.error_code == QuicErrorCode.CONNECTION_REFUSED and not reason.application:
                raise ConnectionRefused(
                    f"{address} refused the connection (reason {reason.reason!r})"
                ) from None
            raise
        finally:
            if conn._peer_key is None:
                self._close(conn, ErrorCode.NO_ERROR, "connection attempt abandoned")

    async def accept(self) -> PeerConnection:
        """Wait for the next authenticated inbound connection."""
        await trio.lowlevel.checkpoint()
        while True:
            while self._accepted:
                conn = self._accepted.popleft()
                if conn._close_reason is None:
                    return conn
            if self._closing:
                raise trio.ClosedResourceError("this endpoint is closed")
            await self._accept_lot.park()

    async def serve(
        self,
        handler: Callable[[PeerConnection], Awaitable[object]],
        *,
        task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """Run ``handler(conn)`` in its own task for each authenticated inbound
        connection, closing the connection when the handler returns.  Returns
        when the endpoint closes; a handler's exception propagates."""
        async with trio.open_nursery() as nursery:
            task_status.started()
            while True:
                try:
                    conn = await self.accept()
                except trio.ClosedResourceError:
                    return
                nursery.start_soon(self._run_handler, handler, conn)

    # -- test hook --

    def _send_auth(self, conn: PeerConnection, role: PeerRole, binding: bytes) -> None:
        """Send our AUTH message and FIN on the authentication stream (spec 4.4)."""
        conn._quic.send_stream_data(
            AUTH_STREAM_ID, make_auth_message(self._identity, role, binding), end_stream=True
        )
        self._transmit(conn)

    # -- internals --

    def _configuration(self, *, is_client: bool) -> QuicConfiguration:
        limits = self.limits
        return QuicConfiguration(
            is_client=is_client,
            alpn_protocols=[ALPN],
            # The certificate is self-signed and proves nothing; the node key
            # does, over the channel binding (spec 2.2, 4).
            verify_mode=ssl.CERT_NONE,
            idle_timeout=limits.idle_timeout,
            max_datagram_size=limits.max_datagram_size,
            max_stream_data=limits.stream_receive_buffer,
            max_data=limits.stream_receive_buffer * (limits.max_streams + 1),
            connection_id_length=_CID_LENGTH,
            supported_versions=[QuicProtocolVersion.VERSION_1],
        )

    def _new_quic(
        self, configuration: QuicConfiguration, original_destination_cid: bytes | None = None
    ) -> _QuicAdapter:
        return _QuicAdapter(
            configuration=configuration,
            max_peer_streams=self.limits.max_streams,
            receive_window=self.limits.stream_receive_buffer,
            original_destination_connection_id=original_destination_cid,
        )

    async def _authenticate(self, conn: PeerConnection, expect_key: Pseudonym | None) -> Pseudonym:
        # spec 4.4: the client sends its AUTH as soon as the handshake completes;
        # the server answers with its own only after verifying the client's.
        await conn._wait_until(lambda: conn._handshake_done)
        binding = conn._quic.channel_binding
        if binding is None:
            raise PeerAuthError(
                f"no TLS channel binding ({conn._quic.binding_error})",
                code=ErrorCode.INTERNAL_ERROR,
            )
        peer_role = PeerRole.SERVER if conn._role is PeerRole.CLIENT else PeerRole.CLIENT
        if conn._role is PeerRole.CLIENT:
            self._send_auth(conn, PeerRole.CLIENT, binding)
        await conn._wait_until(lambda: conn._auth_fin or conn._auth_error is not None)
        if conn._auth_error is not None:
            raise PeerAuthError(conn._auth_error)
        key = verify_auth_message(bytes(conn._auth_bytes), peer_role, binding)
        if expect_key is not None and key != expect_key:
            raise PeerAuthError(
                f"expected node {expect_key.short()}, but the peer proved {key.short()}",
                code=ErrorCode.WRONG_PEER,
            )
        if conn._role is PeerRole.SERVER:
            self._send_auth(conn, PeerRole.SERVER, binding)
        return key

    async def _authenticate_inbound(self, conn: PeerConnection) -> None:
        try:
            with trio.move_on_at(conn._deadline):
                conn._peer_key = await self._authenticate(conn, None)
                logger.info("accepted node %s from %s", conn._peer_key.short(), conn.remote_address)
                self._accepted.append(conn)
                self._accept_lot.unpark_all()
                return
            if conn._handshake_done:
                self._reject(
                    conn,
                    PeerAuthError(
                        f"no AUTH message within {self.limits.handshake_timeout} s",
                        code=ErrorCode.AUTH_TIMEOUT,
                    ),
                )
            else:
                self.stats.handshake_timeouts += 1
                logger.info("handshake from %s did not complete in time; dropping it", conn._remote)
                self._close(conn, ErrorCode.NO_ERROR, "handshake timeout")
        except PeerAuthError as exc:
            self._reject(conn, exc)
        except ConnectionClosed as exc:
            logger.info("connection from %s ended before authentication: %s", conn._remote, exc)

    def _reject(self, conn: PeerConnection, exc: PeerAuthError) -> None:
        self.stats.auth_failures += 1
        direction = "connection to" if conn._role is PeerRole.CLIENT else "inbound connection from"
        logger.warning(
            "peer authentication failed on %s %s: %s; closing it with %s",
            direction,
            conn._remote,
            exc,
            exc.code.name,
        )
        self._close(conn, exc.code, str(exc))

    async def _run_handler(
        self, handler: Callable[[PeerConnection], Awaitable[object]], conn: PeerConnection
    ) -> None:
        try:
            await handler(conn)
        finally:
            await conn.aclose()

    def _register(self, conn: PeerConnection, *cids: bytes) -> None:
        self._connections.add(conn)
        for cid in cids:
            self._map_cid(cid, conn)
        self._nursery.start_soon(self._run_timer, conn)

    def _map_cid(self, cid: bytes, conn: PeerConnection) -> None:
        self._by_cid[cid] = conn
        conn._cids.add(cid)

    def _unmap_cid(self, cid: bytes, conn: PeerConnection) -> None:
        if self._by_cid.get(cid) is conn:
            del self._by_cid[cid]
        conn._cids.discard(cid)

    def _close(self, conn: PeerConnection, code: ErrorCode, reason: str) -> None:
        if conn._close_reason is not None:
            return
        conn._close_reason = CloseReason(
            error_code=int(code), reason=reason, application=True, local=True
        )
        conn._quic.close(error_code=int(code), reason_phrase=reason[:_MAX_REASON])
        self._transmit(conn)  # the CONNECTION_CLOSE leaves now
        conn._wake_all()
        conn._closed.set()

    def _terminated(self, conn: PeerConnection, event: events.ConnectionTerminated) -> None:
        conn._terminated = True
        if conn._close_reason is None:
            conn._close_reason = CloseReason(
                error_code=event.error_code,
                reason=event.reason_phrase,
                application=event.frame_type is None,
                local=False,
            )
            # %r: the reason phrase is the peer's text, newlines and all.
            logger.info("connection with %s ended: %r", conn._remote, event.reason_phrase)
        for cid in list(conn._cids):
            self._unmap_cid(cid, conn)
        self._connections.discard(conn)
        if conn._timer_scope is not None:
            conn._timer_scope.cancel()
        conn._wake_all()
        conn._closed.set()

    def _shutdown(self) -> None:
        self._closing = True
        for conn in list(self._connections):
            self._close(conn, ErrorCode.NO_ERROR, "endpoint shutting down")
        self._accept_lot.unpark_all()

    def _transmit(self, conn: PeerConnection) -> None:
        for data, address in conn._quic.datagrams_to_send(now=trio.current_time()):
            self._datagrams.send(data, address)
        conn._rearm_timer()
        conn._progress.unpark_all()

    def _process(self, conn: PeerConnection) -> None:
        quic = conn._quic
        while (event := quic.next_event()) is not None:
            conn._handle(event)
        self._transmit(conn)
        conn._prune_streams()

    async def _run_timer(self, conn: PeerConnection) -> None:
        while not conn._terminated:
            with trio.CancelScope() as scope:
                conn._timer_scope = scope
                scope.deadline = math.inf if conn._timer_at is None else conn._timer_at
                await trio.sleep_forever()
            conn._timer_scope = None
            now = trio.current_time()
            if not conn._terminated and conn._timer_at is not None and now >= conn._timer_at:
                conn._quic.handle_timer(now=now)
                self._process(conn)
                # aioquic may re-arm its loss timer for this very instant: it sets
                # loss_time = sent_time + loss_delay, and its test sent_time <= now -
                # loss_delay can then fail by a rounding error.  Under a clock that
                # does not move by itself (trio's MockClock) firing again at the
                # same time would spin forever, so the next firing is a little later.
                if conn._timer_at is not None and conn._timer_at <= now:
                    conn._timer_at = now + TIMER_GRANULARITY

    async def _receive_loop(self) -> None:
        while True:
            batch = await self._datagrams.receive()
            now = trio.current_time()
            touched: dict[PeerConnection, None] = {}
            for data, address in batch:
                self.stats.datagrams_received += 1
                conn = self._on_datagram(data, address, now)
                if conn is not None:
                    touched[conn] = None
            for conn in touched:
                self._process(conn)

    def _on_datagram(self, data: bytes, address: Address, now: float) -> PeerConnection | None:
        try:
            header = pull_quic_header(Buffer(data=data), host_cid_length=_CID_LENGTH)
        except ValueError:
            self.stats.datagrams_dropped += 1
            return None
        if (
            header.version is not None
            and header.version != QuicProtocolVersion.VERSION_1
            and header.packet_type != QuicPacketType.VERSION_NEGOTIATION
        ):
            # RFC 9000 6.1: answer only datagrams big enough to start a connection.
            if len(data) >= SMALLEST_MAX_DATAGRAM_SIZE:
                self._datagrams.send(_version_negotiation(header), address)
            self.stats.datagrams_dropped += 1
            return None
        conn = self._by_cid.get(header.destination_cid)
        if conn is None:
            if (
                header.packet_type != QuicPacketType.INITIAL
                or len(data) < SMALLEST_MAX_DATAGRAM_SIZE  # RFC 9000 14.1
                or self._closing
            ):
                self.stats.datagrams_dropped += 1
                return None
            full = self._inbound_refusal(address)
            if full is not None:
                self.stats.connections_refused += 1
                logger.debug("refusing a connection from %s: %s", address, full)
                self._datagrams.send(_connection_refused(header), address)
                return None
            return self._accept_initial(data, address, header, now)
        try:
            conn._quic.receive_datagram(data, address, now=now)
        except Exception:
            # aioquic is meant never to raise here; if a peer finds a way, only
            # that peer's connection goes.
            logger.exception("aioquic failed on a datagram from %s; closing that peer", address)
            self._close(conn, ErrorCode.INTERNAL_ERROR, "internal error")
        return conn

    def _inbound_refusal(self, address: Address) -> str | None:
        """Why a new inbound connection from ``address`` is refused, or None."""
        limits = self.limits
        if len(self._connections) >= limits.max_connections:
            return "at the connection limit"
        inbound = [c for c in self._connections if c._role is PeerRole.SERVER]
        if len(inbound) >= limits.max_connections - limits.reserved_outbound:
            return "the other slots are kept for outbound connections"
        if limits.max_inbound_per_host is not None:
            source = _source(address)
            if sum(_source(c._remote) == source for c in inbound) >= limits.max_inbound_per_host:
                return "at the limit for its source host"
        return None

    def _accept_initial(
        self, data: bytes, address: Address, header: QuicHeader, now: float
    ) -> PeerConnection | None:
        quic = self._new_quic(self._server_config, header.destination_cid)
        try:
            quic.receive_datagram(data, address, now=now)
        except Exception:
            logger.exception("aioquic failed on an Initial from %s; dropping it", address)
            return None
        # aioquic adopts the sender's address only once a packet decrypts; before
        # that, datagrams_to_send() would fail.  No packet: garbage, and no state
        # is kept, so junk cannot fill the connection table.
        datagrams = [] if quic.get_peer_address() is None else quic.datagrams_to_send(now=now)
        if not datagrams:
            self.stats.datagrams_dropped += 1
            return None
        conn = PeerConnection(self, quic, PeerRole.SERVER, address, now)
        self._register(conn, header.destination_cid, quic.host_cid)
        for datagram, destination in datagrams:
            self._datagrams.send(datagram, destination)
        conn._rearm_timer()
        self._nursery.start_soon(self._authenticate_inbound, conn)
        return conn


def _source(address: Address) -> str:
    """The source a per-host limit counts: the IPv4 address, or the IPv6 /64 (one
    host's usual allocation; counting single IPv6 addresses would limit nothing)."""
    try:
        ip = ipaddress.ip_address(address[0])
    except ValueError:
        return address[0]  # not an IP literal (a test transport's name)
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is None:
        return str(ipaddress.IPv6Network((ip, 64), strict=False))
    return str(ip.ipv4_mapped or ip) if isinstance(ip, ipaddress.IPv6Address) else str(ip)


def _version_negotiation(header: QuicHeader) -> bytes:
    return encode_quic_version_negotiation(
        source_cid=header.destination_cid,
        destination_cid=header.source_cid,
        supported_versions=[QuicProtocolVersion.VERSION_1],
    )


def _connection_refused(header: QuicHeader) -> bytes:
    """A stateless Initial carrying CONNECTION_CLOSE(CONNECTION_REFUSED) (RFC 9000 5.2.2)."""
    crypto = CryptoPair()
    version = QuicProtocolVersion.VERSION_1
    crypto.setup_initial(cid=header.destination_cid, is_client=False, version=version)
    builder = QuicPacketBuilder(
        host_cid=os.urandom(_CID_LENGTH),
        peer_cid=header.source_cid,
        version=version,
        is_client=False,
        max_datagram_size=SMALLEST_MAX_DATAGRAM_SIZE,
    )
    builder.start_packet(QuicPacketType.INITIAL, crypto)
    reason = b"server full"
    buf = builder.start_frame(
        QuicFrameType.TRANSPORT_CLOSE, capacity=TRANSPORT_CLOSE_FRAME_CAPACITY + len(reason)
    )
    buf.push_uint_var(QuicErrorCode.CONNECTION_REFUSED)
    buf.push_uint_var(QuicFrameType.PADDING)
    buf.push_uint_var(len(reason))
    buf.push_bytes(reason)
    datagrams, _ = builder.flush()
    return datagrams[0]


def open_endpoint(
    *,
    host: str | None = None,
    port: int | None = None,
    node_identity: SigningIdentity,
    limits: TransportLimits | None = None,
    datagrams: DatagramTransport | None = None,
) -> AbstractAsyncContextManager[QuicEndpoint]:
    """Open a QUIC endpoint for the node: ``async with open_endpoint(...) as endpoint``.

    It binds UDP on ``host``:``port`` (default 127.0.0.1, any port) unless
    ``datagrams`` gives another transport (a :class:`MemoryNetwork` attachment,
    say), which the endpoint then owns and closes.  Leaving the context sends
    CONNECTION_CLOSE on every connection and stops every task it started.
    """
    return QuicEndpoint.open(
        host=host, port=port, node_identity=node_identity, limits=limits, datagrams=datagrams
    )
