"""The node's QUIC transport: aioquic's sans-IO ``QuicConnection`` driven from trio.

One task reads datagrams in batches and feeds each to its connection
(``receive_datagram`` with ``now = trio.current_time()``); every connection
touched by a batch has its events drained once and then transmits.  Each
connection has one timer task whose deadline is ``get_timer()``.  All times
are trio's clock, so tests run on ``MockClock(autojump_threshold=0)``.

Peers authenticate with node keys over the TLS channel binding before any
stream reaches the application (spec/transport.md 4); streams are trio
``HalfCloseableStream`` objects with bounded buffers both ways (spec 5).

This module is the endpoint: the socket and its receive loop, the timers,
``connect``/``accept``/``serve``, peer authentication and closing.  The rest
of the transport is in modules of its own, whose names it re-exports:

* ``_quic_limits.py`` -- :class:`TransportLimits` and :class:`EndpointStats`;
* ``_quic_errors.py`` -- :class:`CloseReason` and the exceptions;
* ``_quic_adapter.py`` -- the ``QuicConnection`` subclass (stream limit,
  credit on read, channel binding);
* ``_quic_conn.py`` -- :class:`PeerConnection`, one connection's state;
* ``_quic_stream.py`` -- :class:`QuicStream`;
* ``_quic_admission.py`` -- which unknown datagrams may start a connection,
  and the stateless answers to the rest.
"""

from __future__ import annotations

import logging
import math
import ssl
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager
from typing import Final, Self

import trio
from aioquic._buffer import Buffer  # aioquic.buffer re-exports it implicitly (mypy --strict)
from aioquic.quic import events
from aioquic.quic.configuration import SMALLEST_MAX_DATAGRAM_SIZE, QuicConfiguration
from aioquic.quic.packet import (
    QuicErrorCode,
    QuicHeader,
    QuicPacketType,
    QuicProtocolVersion,
    pull_quic_header,
)

from shinyo import LocalProtocolError, Pseudonym, SigningIdentity

from ._netsim import Address, DatagramTransport, open_udp_transport
from ._peerauth import (
    ALPN,
    ErrorCode,
    PeerAuthError,
    PeerRole,
    make_auth_message,
    make_tls_certificate,
    verify_auth_message,
)
from ._quic_adapter import _QuicAdapter
from ._quic_admission import _connection_refused, _inbound_refusal, _version_negotiation
from ._quic_conn import AUTH_STREAM_ID, PeerConnection
from ._quic_errors import (
    CloseReason,
    ConnectionClosed,
    ConnectionLimitReached,
    ConnectionRefused,
    HandshakeTimeout,
    StreamReset,
)
from ._quic_limits import _CID_LENGTH, EndpointStats, TransportLimits
from ._quic_stream import QuicStream

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

TIMER_GRANULARITY: Final = 1e-6
"""Seconds after a QUIC timer fired before it can fire again (see ``_run_timer``)."""
_MAX_REASON: Final = 200


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
            full = _inbound_refusal(self.limits, self._connections, address)
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
