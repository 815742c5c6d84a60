"""The node's QUIC transport (spec/transport.md): aioquic from trio, peer auth, limits."""

from __future__ import annotations

import hashlib
import logging
import math
import random
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager

import pytest
import trio
from aioquic.quic import events
from aioquic.quic.configuration import QuicConfiguration
from aioquic.quic.connection import QuicConnection
from aioquic.quic.packet import QuicErrorCode
from cryptography.hazmat.primitives import hashes

from shinyo import LocalProtocolError
from shinyo.node._netsim import MemoryNetwork, MemoryTransport, open_udp_transport
from shinyo.node._peerauth import (
    ALPN,
    ErrorCode,
    PeerAuthError,
    PeerRole,
    _hkdf_expand_label,
    auth_payload,
    channel_binding,
    make_auth_message,
    verify_auth_message,
)
from shinyo.node._quic import (
    CloseReason,
    ConnectionClosed,
    ConnectionLimitReached,
    ConnectionRefused,
    HandshakeTimeout,
    PeerConnection,
    QuicEndpoint,
    QuicStream,
    StreamReset,
    TransportLimits,
    open_endpoint,
)

from .conftest import identity

Handler = Callable[[PeerConnection], Awaitable[object]]


# -- helpers ----------------------------------------------------------------------------


async def read_all(stream: QuicStream) -> bytes:
    data = bytearray()
    while chunk := await stream.receive_some():
        data += chunk
    return bytes(data)


async def echo(conn: PeerConnection) -> None:
    """Echo every stream the peer opens until the connection ends."""

    async def one(stream: QuicStream) -> None:
        async with stream:
            try:
                while data := await stream.receive_some():
                    await stream.send_all(data)
                await stream.send_eof()
            except trio.BrokenResourceError:
                pass

    async with trio.open_nursery() as nursery:
        while True:
            try:
                stream = await conn.accept_stream()
            except ConnectionClosed:
                return
            nursery.start_soon(one, stream)


async def round_trip(conn: PeerConnection, payload: bytes) -> bytes:
    stream = await conn.open_stream()
    await stream.send_all(payload)
    await stream.send_eof()
    echoed = await read_all(stream)
    await stream.aclose()
    return echoed


@asynccontextmanager
async def serving(endpoint: QuicEndpoint, handler: Handler = echo) -> AsyncIterator[trio.Nursery]:
    async with trio.open_nursery() as nursery:
        await nursery.start(endpoint.serve, handler)
        yield nursery
        nursery.cancel_scope.cancel()


def on(
    net: MemoryNetwork,
    n: int,
    limits: TransportLimits | None = None,
    cls: type[QuicEndpoint] = QuicEndpoint,
) -> AbstractAsyncContextManager[QuicEndpoint]:
    """An endpoint with node identity ``n`` on the memory network."""
    return cls.open(node_identity=identity(n), datagrams=net.attach(), limits=limits)


# -- end to end ---------------------------------------------------------------------------


async def test_udp_echo_both_ways_and_clean_close() -> None:
    tasks_before = trio.lowlevel.current_statistics().tasks_living
    server_conns: list[PeerConnection] = []

    async def handler(conn: PeerConnection) -> None:
        server_conns.append(conn)
        stream = await conn.open_stream()  # the server opens one too
        await stream.send_all(b"from the server")
        await stream.send_eof()
        await echo(conn)

    with trio.fail_after(20):
        async with (
            open_endpoint(node_identity=identity(1)) as server,
            open_endpoint(node_identity=identity(2)) as client,
            serving(server, handler),
        ):
            assert server.address[0] == "127.0.0.1"
            conn = await client.connect(server.address, expect_key=identity(1).pseudonym)
            assert conn.peer_key == identity(1).pseudonym
            assert conn.remote_address == server.address
            assert conn._quic.tls.alpn_negotiated == ALPN == "shinyo/1"

            pushed = await conn.accept_stream()
            assert await read_all(pushed) == b"from the server"
            await pushed.aclose()

            async def one(i: int) -> None:
                payload = bytes([i]) * (100_000 + i)
                assert await round_trip(conn, payload) == payload

            async with trio.open_nursery() as nursery:
                for i in range(5):
                    nursery.start_soon(one, i)

            assert server_conns[0].peer_key == identity(2).pseudonym
            assert server.connections == (server_conns[0],)
            await conn.aclose()
            reason = await server_conns[0].wait_closed()
            assert (reason.error_code, reason.application, reason.local) == (0, True, False)
            assert (await conn.wait_closed()).local
            with pytest.raises(ConnectionClosed):
                await conn.open_stream()
    assert trio.lowlevel.current_statistics().tasks_living == tasks_before


async def test_lossy_network_large_transfer(autojump_clock: trio.abc.Clock) -> None:
    net = MemoryNetwork(seed=7, loss=0.05, reorder=0.1, duplicate=0.05, delay=0.005)
    payload = random.Random(1).randbytes(2 * 1024 * 1024)

    async def digest(conn: PeerConnection) -> None:
        stream = await conn.accept_stream()
        await stream.send_all(hashlib.sha256(await read_all(stream)).digest())
        await stream.send_eof()
        await conn.wait_closed()

    async with on(net, 1) as server, on(net, 2) as client, serving(server, digest):
        conn = await client.connect(server.address, expect_key=identity(1).pseudonym)
        assert await round_trip(conn, payload) == hashlib.sha256(payload).digest()
        await conn.aclose()
    stats = net.stats
    assert stats.lost > 50 and stats.reordered > 50 and stats.duplicated > 50


async def test_leaving_the_endpoint_closes_its_connections(autojump_clock: trio.abc.Clock) -> None:
    net = MemoryNetwork(seed=14, delay=0.002)
    tasks_before = trio.lowlevel.current_statistics().tasks_living
    async with on(net, 2) as client:
        async with on(net, 1) as server:
            conn = await client.connect(server.address)
            accepted = await server.accept()
            stream = await conn.open_stream()
            await stream.send_all(b"in flight")
            assert await (await accepted.accept_stream()).receive_some() == b"in flight"
        start = trio.current_time()
        reason = await conn.wait_closed()  # told by CONNECTION_CLOSE, not an idle timeout
        assert trio.current_time() - start < 1
        assert reason == CloseReason(
            error_code=ErrorCode.NO_ERROR,
            reason="endpoint shutting down",
            application=True,
            local=False,
        )
    assert trio.lowlevel.current_statistics().tasks_living == tasks_before


async def test_a_ping_acknowledged_too_late_leaves_nothing_behind(
        autojump_clock: trio.abc.Clock) -> None:
    net = MemoryNetwork(seed=15, delay=0.05)  # a round trip of 0.1 s
    async with on(net, 2) as client, on(net, 1) as server:
        conn = await client.connect(server.address)
        await server.accept()
        assert await conn.ping(1.0)
        for _ in range(10):
            assert not await conn.ping(0.01)  # each ack comes after the wait ended
        await trio.sleep(1.0)
        assert not conn._pings_waiting and not conn._pings_acked
        assert await conn.ping(1.0)


async def test_stream_semantics(autojump_clock: trio.abc.Clock) -> None:
    net = MemoryNetwork(seed=3)
    accepted: list[QuicStream] = []

    async def hold(conn: PeerConnection) -> None:
        while True:
            accepted.append(await conn.accept_stream())

    async with on(net, 1) as server, on(net, 2) as client, serving(server, hold):
        conn = await client.connect(server.address)
        stream = await conn.open_stream()
        await stream.send_all(b"x")
        await trio.sleep(1)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(stream.receive_some)
            await trio.sleep(0.1)
            with pytest.raises(trio.BusyResourceError):
                await stream.receive_some()
            nursery.cancel_scope.cancel()
        with pytest.raises(ValueError):
            await stream.receive_some(0)
        # The peer closes its end without reading: our writes fail (STOP_SENDING).
        await accepted[0].aclose()
        with pytest.raises(StreamReset) as info, trio.fail_after(5):
            while True:
                await stream.send_all(b"more")
                await trio.sleep(0.1)
        assert info.value.error_code == ErrorCode.STREAM_CLOSED
        assert isinstance(info.value, trio.BrokenResourceError)
        await stream.aclose()
        with pytest.raises(trio.ClosedResourceError):
            await stream.send_all(b"")
        # send_eof is idempotent; writing after it is an error.
        other = await conn.open_stream()
        await other.send_eof()
        await other.send_eof()
        with pytest.raises(trio.ClosedResourceError):
            await other.send_all(b"late")


# -- peer authentication ------------------------------------------------------------------


class ForgingEndpoint(QuicEndpoint):
    """Signs a binding that is not this connection's (a relayed or replayed proof)."""

    def _send_auth(self, conn: PeerConnection, role: PeerRole, binding: bytes) -> None:
        super()._send_auth(conn, role, bytes([binding[0] ^ 1]) + binding[1:])


class SilentEndpoint(QuicEndpoint):
    """Completes the handshake and never sends its AUTH message."""

    def _send_auth(self, conn: PeerConnection, role: PeerRole, binding: bytes) -> None:
        pass


async def test_channel_binding_matches_across_one_connection(
    autojump_clock: trio.abc.Clock,
) -> None:
    net = MemoryNetwork(seed=1)
    server_conns: list[PeerConnection] = []

    async def keep(conn: PeerConnection) -> None:
        server_conns.append(conn)
        await conn.wait_closed()

    async with on(net, 1) as server, on(net, 2) as client, serving(server, keep):
        first = await client.connect(server.address)
        second = await client.connect(server.address)
        await trio.sleep(0.1)
        bindings = [c._quic.channel_binding for c in (first, second, *server_conns)]
        assert all(b is not None and len(b) == 32 for b in bindings)
        assert bindings[0] == bindings[2] and bindings[1] == bindings[3]
        assert bindings[0] != bindings[1]


async def test_wrong_expected_key_is_dropped(
    autojump_clock: trio.abc.Clock, caplog: pytest.LogCaptureFixture
) -> None:
    net = MemoryNetwork(seed=2)
    caplog.set_level(logging.WARNING, logger="shinyo.node.quic")
    async with on(net, 1) as server, on(net, 2) as client, serving(server):
        with pytest.raises(PeerAuthError, match="expected node") as info:
            await client.connect(server.address, expect_key=identity(9).pseudonym)
        assert info.value.code == ErrorCode.WRONG_PEER
        assert "peer authentication failed on connection to" in caplog.text
        assert "WRONG_PEER" in caplog.text
        assert client.stats.auth_failures == 1
        conn = await client.connect(server.address, expect_key=identity(1).pseudonym)
        assert await round_trip(conn, b"still served") == b"still served"


@pytest.mark.parametrize("forger", ["client", "server"])
async def test_signature_over_another_binding_is_dropped(
    autojump_clock: trio.abc.Clock, caplog: pytest.LogCaptureFixture, forger: str
) -> None:
    net = MemoryNetwork(seed=3)
    caplog.set_level(logging.WARNING, logger="shinyo.node.quic")
    server_cls = ForgingEndpoint if forger == "server" else QuicEndpoint
    client_cls = ForgingEndpoint if forger == "client" else QuicEndpoint
    async with (
        on(net, 1, cls=server_cls) as server,
        on(net, 2, cls=client_cls) as client,
        on(net, 3) as honest,
        serving(server),
    ):
        if forger == "client":
            with pytest.raises(ConnectionClosed) as closed:
                await client.connect(server.address)
            assert closed.value.reason.error_code == ErrorCode.AUTH_FAILED
            assert server.stats.auth_failures == 1
            assert "inbound connection from" in caplog.text
            conn = await honest.connect(server.address)
            assert await round_trip(conn, b"honest") == b"honest"
        else:
            with pytest.raises(PeerAuthError, match="does not verify") as info:
                await client.connect(server.address)
            assert info.value.code == ErrorCode.AUTH_FAILED
            assert client.stats.auth_failures == 1
        assert "peer authentication failed" in caplog.text
        assert "AUTH signature does not verify" in caplog.text


async def test_silent_peer_times_out(
    autojump_clock: trio.abc.Clock, caplog: pytest.LogCaptureFixture
) -> None:
    net = MemoryNetwork(seed=4)
    caplog.set_level(logging.WARNING, logger="shinyo.node.quic")
    patient = TransportLimits(handshake_timeout=30)
    async with (
        on(net, 1, TransportLimits(handshake_timeout=2)) as server,
        on(net, 2, patient, cls=SilentEndpoint) as silent,
        on(net, 3) as honest,
        serving(server),
    ):
        start = trio.current_time()
        with pytest.raises(ConnectionClosed) as closed:
            await silent.connect(server.address)
        assert closed.value.reason.error_code == ErrorCode.AUTH_TIMEOUT
        assert closed.value.reason.application
        assert 2 <= trio.current_time() - start < 3
        assert "no AUTH message within 2 s" in caplog.text and "AUTH_TIMEOUT" in caplog.text
        conn = await honest.connect(server.address)
        assert await round_trip(conn, b"honest") == b"honest"


# The spec/transport.md 8 vectors.  EMS values come from OpenSSL 3.0 (key log
# EXPORTER_SECRET with s_client -keymatexport); RFC 8448's from section 3 of it.
RFC8448_MASTER = "18df06843d13a08bf2a449844c5f8a478001bc4d4c627984d5a41da8d0402919"
RFC8448_TRANSCRIPT = "9608102a0f1ccc6db6250b7b7e417b1a000eaada3daae4777a7686c9ff83df13"
OPENSSL_VECTORS = [
    (
        hashes.SHA256(),
        "8fd07afa82ce8fe5b5dce4af5c7de78e4fc20f01172322bb22fe57e1dc389deb",
        "b6c5eb5fe9e4997fc307cd25099f7dfbb3f58f9bc3bf0b586bdf559ad1b69638",
    ),
    (
        hashes.SHA384(),
        "df7fa9e4400ae781643733a6b92ee5d19714459bfb128a0490e3609d"
        "2a8d5a25e1ae5fd9bec7eb77b49a55feab7661ad",
        "8968d775be9c8d4bdfe2c83a34a803ffe6d276ab94b966495475cbf33145e184",
    ),
]
CLIENT_AUTH = (
    "8a88e3dd7409f195fd52db2d3cba5d72ca6709bf1d94121bf3748801b40f6f5c"
    "70a89de965d5e2506d976388fe000e20837bbdfece3a98193edf483f7bbe86ce"
    "9649f286b2545bf1ef390efb3e244d529883e6a83cda1656e1c3f5b82b8cf907"
)
SERVER_AUTH = (
    "8139770ea87d175f56a35466c34c7ecccb8d8a91b4ee37a25df60f5b8fc9b394"
    "d5c0f840618f830663433579edf150961af421bf4a13318e9be78b8164c886af"
    "343787b37547bfce73e4bd7295601d92bd9a039b8c238c41684c6e4f9081ba0b"
)


def test_key_schedule_matches_rfc8448() -> None:
    master, transcript = bytes.fromhex(RFC8448_MASTER), bytes.fromhex(RFC8448_TRANSCRIPT)

    def derive(label: bytes) -> bytes:
        return _hkdf_expand_label(hashes.SHA256(), master, label, transcript, 32)

    assert derive(b"s ap traffic").hex() == (
        "a11af9f05531f856ad47116b45a950328204b4f44bfb6b3a4b4f1f3fcb631643"
    )
    assert derive(b"exp master").hex() == (
        "fe22f881176eda18eb8f44529e6792c50c9a3f89452f68d8ae311b4309d3cf50"
    )


@pytest.mark.parametrize(("algorithm", "ems", "binding"), OPENSSL_VECTORS)
def test_channel_binding_matches_openssl(
    algorithm: hashes.HashAlgorithm, ems: str, binding: str
) -> None:
    assert channel_binding(algorithm, bytes.fromhex(ems)).hex() == binding


def test_auth_message_vectors_and_rejections() -> None:
    binding = bytes.fromhex(OPENSSL_VECTORS[0][2])
    client, server = identity(1), identity(2)
    assert auth_payload(PeerRole.CLIENT, binding) == (
        b"shinyo/v1/peer-auth\x00" + b"\x01" + binding
    )
    assert make_auth_message(client, PeerRole.CLIENT, binding).hex() == CLIENT_AUTH
    assert make_auth_message(server, PeerRole.SERVER, binding).hex() == SERVER_AUTH
    message = bytes.fromhex(CLIENT_AUTH)
    assert verify_auth_message(message, PeerRole.CLIENT, binding) == client.pseudonym
    with pytest.raises(PeerAuthError, match="does not verify"):
        verify_auth_message(message, PeerRole.SERVER, binding)  # reflected
    with pytest.raises(PeerAuthError, match="does not verify"):
        verify_auth_message(message, PeerRole.CLIENT, bytes(32))  # relayed
    with pytest.raises(PeerAuthError, match="exactly 96 bytes"):
        verify_auth_message(message[:-1], PeerRole.CLIENT, binding)
    small_order = bytes([1]) + bytes(31)  # the neutral point
    with pytest.raises(PeerAuthError, match="not a valid Ed25519"):
        verify_auth_message(small_order + message[32:], PeerRole.CLIENT, binding)


# -- limits ---------------------------------------------------------------------------------


async def test_connection_cap_refuses_inbound_and_outbound(autojump_clock: trio.abc.Clock) -> None:
    net = MemoryNetwork(seed=5)
    inbound: list[PeerConnection] = []

    async def keep(conn: PeerConnection) -> None:
        inbound.append(conn)
        await echo(conn)

    async with (
        on(net, 1, TransportLimits(max_connections=2)) as server,
        on(net, 2) as a,
        on(net, 3) as b,
        on(net, 4, TransportLimits(max_connections=1)) as c,
        serving(server, keep),
    ):
        first = await a.connect(server.address)
        await b.connect(server.address)
        with pytest.raises(ConnectionRefused, match="server full"):
            await c.connect(server.address)
        assert server.stats.connections_refused >= 1
        await first.aclose()
        await inbound[0].wait_closed()
        conn = await c.connect(server.address)  # a slot is free again
        assert await round_trip(conn, b"in") == b"in"
        with pytest.raises(ConnectionLimitReached):
            await c.connect(a.address)


async def test_stream_cap_holds_extra_streams_back(autojump_clock: trio.abc.Clock) -> None:
    net = MemoryNetwork(seed=6)
    accepted: list[QuicStream] = []

    async def hold(conn: PeerConnection) -> None:
        while True:
            accepted.append(await conn.accept_stream())

    async with (
        on(net, 1, TransportLimits(max_streams=2)) as server,
        on(net, 2) as client,
        serving(server, hold),
    ):
        conn = await client.connect(server.address)
        streams = [await conn.open_stream() for _ in range(3)]
        for stream in streams:
            await stream.send_all(b"x")
        await trio.sleep(2)
        assert len(accepted) == 2
        assert streams[2].unsent == 1  # MAX_STREAMS holds it back at the sender
        # Finish one stream both ways: the peer may open one more.
        await streams[0].send_eof()
        assert await read_all(accepted[0]) == b"x"
        await accepted[0].send_eof()
        assert await read_all(streams[0]) == b""
        await accepted[0].aclose()
        await streams[0].aclose()
        await trio.sleep(2)
        assert len(accepted) == 3
        assert await accepted[2].receive_some() == b"x"


async def test_send_backpressure_and_receive_bound(autojump_clock: trio.abc.Clock) -> None:
    net = MemoryNetwork(seed=7)
    limits = TransportLimits(stream_send_buffer=16 * 1024, stream_receive_buffer=32 * 1024)
    accepted: list[QuicStream] = []

    async def hold(conn: PeerConnection) -> None:
        accepted.append(await conn.accept_stream())
        await conn.wait_closed()

    payload = random.Random(2).randbytes(1024 * 1024)
    async with on(net, 1, limits) as server, on(net, 2, limits) as client, serving(server, hold):
        conn = await client.connect(server.address)
        stream = await conn.open_stream()
        done = trio.Event()

        async def send() -> None:
            await stream.send_all(payload)
            await stream.send_eof()
            done.set()

        async with trio.open_nursery() as nursery:
            nursery.start_soon(send)
            await trio.sleep(5)  # the reader reads nothing meanwhile
            assert not done.is_set()
            # send_all tops the queue up to the bound, then waits for it to halve.
            assert limits.stream_send_buffer // 2 < stream.unsent <= limits.stream_send_buffer
            assert accepted[0].buffered == limits.stream_receive_buffer
            received = await read_all(accepted[0])
            await done.wait()
        assert received == payload


async def test_peer_ignoring_flow_control_is_dropped(autojump_clock: trio.abc.Clock) -> None:
    net = MemoryNetwork(seed=8)
    limits = TransportLimits(stream_receive_buffer=32 * 1024)
    accepted: list[QuicStream] = []

    async def hold(conn: PeerConnection) -> None:
        accepted.append(await conn.accept_stream())
        await conn.wait_closed()

    async with on(net, 1, limits) as server, on(net, 2) as greedy, serving(server, hold):
        conn = await greedy.connect(server.address)
        stream = await conn.open_stream()
        await stream.send_all(b"a")
        await trio.sleep(1)
        # Make the sender believe it may send without limit, and send past the window.
        raw = conn._quic._streams[stream.stream_id]
        raw.max_stream_data_remote = conn._quic._remote_max_data = 1 << 30
        conn._quic.send_stream_data(stream.stream_id, bytes(4 * limits.stream_receive_buffer))
        greedy._transmit(conn)
        reason = await conn.wait_closed()
        assert reason.error_code == QuicErrorCode.FLOW_CONTROL_ERROR
        assert not (reason.application or reason.local)
        assert accepted[0].buffered <= limits.stream_receive_buffer


async def test_idle_timeout(autojump_clock: trio.abc.Clock) -> None:
    net = MemoryNetwork(seed=9, delay=0.001)
    limits = TransportLimits(idle_timeout=5)
    async with on(net, 1, limits) as server, on(net, 2, limits) as client, serving(server):
        conn = await client.connect(server.address)
        start = trio.current_time()
        reason = await conn.wait_closed()
        assert 5 <= trio.current_time() - start < 6
        assert (reason.reason, reason.application, reason.local) == ("Idle timeout", False, False)


async def test_handshake_timeout(autojump_clock: trio.abc.Clock) -> None:
    net = MemoryNetwork(seed=10)
    nobody = net.attach()  # attached, never answers
    async with on(net, 2, TransportLimits(handshake_timeout=3)) as client:
        start = trio.current_time()
        with pytest.raises(HandshakeTimeout):
            await client.connect(nobody.local_address)
        assert trio.current_time() - start == pytest.approx(3)
        assert client.stats.handshake_timeouts == 1
        assert client.connections == ()


@pytest.mark.parametrize("size", [1200, 1452])
async def test_max_datagram_size(autojump_clock: trio.abc.Clock, size: int) -> None:
    net = MemoryNetwork(seed=11, mtu=size)
    limits = TransportLimits(max_datagram_size=size)
    async with on(net, 1, limits) as server, on(net, 2, limits) as client, serving(server):
        conn = await client.connect(server.address)
        payload = bytes(200_000)
        assert await round_trip(conn, payload) == payload
        transports = [client._datagrams, server._datagrams]
        assert all(isinstance(t, MemoryTransport) for t in transports)
        sizes = [s for t in transports if isinstance(t, MemoryTransport) for s in t.sent_sizes]
        assert max(sizes) == size
    assert net.stats.oversize == 0


@pytest.mark.parametrize(
    "kwargs",
    [
        {"max_connections": 0},
        {"max_streams": True},
        {"idle_timeout": 0},
        {"handshake_timeout": float("inf")},
        {"stream_send_buffer": 100},
        {"stream_receive_buffer": 1.5},
        {"max_datagram_size": 1199},
        {"max_datagram_size": 70_000},
    ],
)
def test_limits_are_validated(kwargs: dict[str, object]) -> None:
    with pytest.raises(LocalProtocolError, match="TransportLimits"):
        TransportLimits(**kwargs)  # type: ignore[arg-type]


# -- hostile input ---------------------------------------------------------------------------


def real_client_initial(address: tuple[str, int]) -> bytes:
    quic = QuicConnection(configuration=QuicConfiguration(is_client=True, alpn_protocols=[ALPN]))
    quic.connect(address, now=0.0)
    return quic.datagrams_to_send(now=0.0)[0][0]


async def test_garbage_datagrams_never_hurt(autojump_clock: trio.abc.Clock) -> None:
    net = MemoryNetwork(seed=12)
    rng = random.Random(1234)
    server_conns: list[PeerConnection] = []

    async def keep(conn: PeerConnection) -> None:
        server_conns.append(conn)
        await echo(conn)

    async with on(net, 1) as server, on(net, 2) as client, serving(server, keep):
        conn = await client.connect(server.address)
        attacker = net.attach()
        live_cid = next(iter(server_conns[0]._cids))
        initial = real_client_initial(server.address)
        junk: list[bytes] = [rng.randbytes(rng.randrange(0, 1500)) for _ in range(300)]
        # Well-formed Initial headers, big enough to start a connection, undecryptable.
        header = b"\xc3\x00\x00\x00\x01\x08"
        junk += [
            header
            + rng.randbytes(8)
            + b"\x08"
            + rng.randbytes(8)
            + b"\x00\x44\x9b"
            + rng.randbytes(1179)
            for _ in range(50)
        ]
        junk += [initial[:cut] for cut in range(0, len(initial), 37)]  # truncated
        packet_length = 506  # aioquic pads the datagram to 1200 *after* the packet
        assert initial[packet_length:] == bytes(len(initial) - packet_length)
        for _ in range(50):  # one bit flipped inside the protected packet
            flipped = bytearray(initial)
            flipped[rng.randrange(15, packet_length)] ^= 1 << rng.randrange(8)
            junk.append(bytes(flipped))
        junk += [
            bytes([0x40 | rng.randrange(64)]) + live_cid + rng.randbytes(60) for _ in range(50)
        ]
        junk.append(b"\xc0\x1a\x2a\x3a\x4a\x08" + bytes(8) + b"\x08" + bytes(8) + bytes(1200))
        for datagram in junk:
            attacker.send(datagram, server.address)
        await trio.sleep(1)

        assert server.stats.datagrams_dropped == len(junk) - 50  # all but the live-CID ones
        assert len(server._connections) == 1  # junk left no state behind
        replies = [data for data, _ in await attacker.receive()]
        assert replies == [replies[0]] and replies[0][1:5] == bytes(4)  # one Version Negotiation
        assert await round_trip(conn, b"alive") == b"alive"
        fresh = await client.connect(server.address)
        assert await round_trip(fresh, b"new") == b"new"


async def drive_raw(quic: QuicConnection, link: MemoryTransport) -> list[events.QuicEvent]:
    """Run a bare aioquic connection over ``link`` until it terminates; return its events."""
    seen: list[events.QuicEvent] = []
    while True:
        for data, address in quic.datagrams_to_send(now=trio.current_time()):
            link.send(data, address)
        while (event := quic.next_event()) is not None:
            seen.append(event)
            if isinstance(event, events.ConnectionTerminated):
                return seen
        timer = quic.get_timer()
        with trio.move_on_at(math.inf if timer is None else timer):
            for data, address in await link.receive():
                quic.receive_datagram(data, address, now=trio.current_time())
            continue
        quic.handle_timer(now=trio.current_time())


async def test_other_alpn_is_refused(autojump_clock: trio.abc.Clock) -> None:
    net = MemoryNetwork(seed=13)
    async with on(net, 1) as server, serving(server):
        config = QuicConfiguration(is_client=True, alpn_protocols=["h3"], verify_mode=ssl.CERT_NONE)
        quic = QuicConnection(configuration=config)
        quic.connect(server.address, now=trio.current_time())
        with trio.fail_after(30):
            seen = await drive_raw(quic, net.attach())
        assert not any(isinstance(e, events.HandshakeCompleted) for e in seen)
        end = seen[-1]
        assert isinstance(end, events.ConnectionTerminated)
        assert end.error_code == QuicErrorCode.CRYPTO_ERROR + 120  # TLS no_application_protocol
        assert server.connections == ()


async def test_garbage_over_udp() -> None:
    rng = random.Random(99)
    with trio.fail_after(10):
        async with (
            open_endpoint(node_identity=identity(1)) as server,
            open_endpoint(node_identity=identity(2)) as client,
            open_udp_transport() as attacker,
            serving(server),
        ):
            for _ in range(200):
                attacker.send(rng.randbytes(rng.randrange(1, 1400)), server.address)
            conn = await client.connect(server.address)
            assert await round_trip(conn, b"fine") == b"fine"
            assert server.stats.datagrams_dropped > 0
