"""One QUIC connection to another node, between the endpoint and its streams.

A :class:`PeerConnection` runs no task of its own: the endpoint's receive
loop and its timer task for this connection feed it aioquic's events
(``_handle``), and it routes them to its streams, to the authentication state
and to the tasks parked on it.  It holds:

* the authentication state the endpoint's ``_authenticate`` waits on: the
  handshake done (with ALPN ``shinyo/1``), and the AUTH message and FIN on
  stream 0, at most ``AUTH_MESSAGE_SIZE`` bytes (spec/transport.md 4.4);
* the streams by ID.  Streams the peer opens are buffered (bounded by flow
  control) and handed out by :meth:`~PeerConnection.accept_stream` only after
  authentication, as the endpoint returns the connection only then (spec 4.4);
* PINGs and their acknowledgements, to tell a live peer from a killed one
  (spec 6);
* aioquic's next timer deadline, which the endpoint's timer task for this
  connection sleeps until (``_rearm_timer`` moves it after every transmit);
* the close reason, set once, by whichever side ended it first.

Two parking lots wake waiting tasks: ``_state`` (handshake, AUTH bytes, new
streams, PING acks, close) and ``_progress`` (after every transmit, so that
writers see their queues drain).  Sending, closing and the end of a
connection go through the endpoint (``_transmit``, ``_close``,
``_terminated``, ``_map_cid``), which owns the socket and the tables.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Final

import trio
from aioquic.quic import events

from shinyo import LocalProtocolError, Pseudonym

from ._netsim import Address
from ._peerauth import ALPN, AUTH_MESSAGE_SIZE, ErrorCode, PeerRole
from ._quic_errors import CloseReason, ConnectionClosed
from ._quic_stream import QuicStream

if TYPE_CHECKING:
    from ._quic import QuicEndpoint
    from ._quic_adapter import _QuicAdapter

AUTH_STREAM_ID: Final = 0
"""The first client-initiated bidirectional stream carries the AUTH messages (spec 4.4)."""


def _peer_initiated(stream_id: int, role: PeerRole) -> bool:
    # Bit 0 of a stream ID is 0 for client-initiated streams (RFC 9000 2.1).
    return (stream_id & 1 == 0) == (role is PeerRole.SERVER)


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
        self._pings_waiting: set[int] = set()  # ids a ping() call still waits for
        self._pings_acked: set[int] = set()  # of those, the acknowledged

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
        self._pings_waiting.add(uid)
        self._quic.send_ping(uid)
        self._endpoint._transmit(self)
        try:
            with trio.move_on_after(timeout):
                while uid not in self._pings_acked:
                    if self._close_reason is not None:
                        return False
                    await self._state.park()
                return True
            return False
        finally:
            # An ack after the timeout then finds nobody waiting, and is not kept.
            self._pings_waiting.discard(uid)
            self._pings_acked.discard(uid)

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
            if event.uid in self._pings_waiting:
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
