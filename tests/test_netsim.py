"""Datagram transports: the seeded memory network, the impairment shim, and real UDP."""

from __future__ import annotations

import math

import pytest
import trio

from shinyo import LocalProtocolError
from shinyo.node._netsim import (
    MAX_BATCH,
    DatagramTransport,
    Impairment,
    MemoryNetwork,
    impair,
    open_udp_transport,
)


async def collect(transport: DatagramTransport, seconds: float) -> list[tuple[float, bytes]]:
    """Everything that arrives within ``seconds``, with arrival times relative to now."""
    start = trio.current_time()
    got: list[tuple[float, bytes]] = []
    with trio.move_on_after(seconds):
        while True:
            for data, _ in await transport.receive():
                # Rounded: the clock's absolute value differs from run to run.
                got.append((round(trio.current_time() - start, 9), data))
    return got


async def test_memory_network_delays_each_datagram(autojump_clock: trio.abc.Clock) -> None:
    net = MemoryNetwork(seed=1, delay=0.05)
    a, b = net.attach(), net.attach()
    start = trio.current_time()
    a.send(b"hello", b.local_address)
    assert await b.receive() == [(b"hello", a.local_address)]
    assert trio.current_time() - start == pytest.approx(0.05)


async def _fate(seed: int) -> list[tuple[float, bytes]]:
    net = MemoryNetwork(seed=seed, loss=0.2, reorder=0.3, duplicate=0.2, delay=0.01)
    a, b = net.attach(), net.attach()
    for i in range(200):
        a.send(i.to_bytes(2, "big"), b.local_address)
    return await collect(b, 1.0)


async def test_same_seed_same_fate(autojump_clock: trio.abc.Clock) -> None:
    first, again, other = await _fate(3), await _fate(3), await _fate(4)
    assert first == again
    assert first != other


async def test_impairments_happen_at_their_rates(autojump_clock: trio.abc.Clock) -> None:
    net = MemoryNetwork(seed=11, loss=0.1, reorder=0.2, duplicate=0.1, delay=0.002)
    a, b = net.attach(), net.attach()
    n = 2000
    for i in range(n):
        a.send(i.to_bytes(2, "big"), b.local_address)
    got = [int.from_bytes(data, "big") for _, data in await collect(b, 1.0)]
    stats = net.stats
    assert stats.offered == n
    assert 150 < stats.lost < 250
    assert 150 < stats.duplicated < 250
    assert 300 < stats.reordered < 500
    assert len(got) == n - stats.lost + stats.duplicated == stats.delivered
    assert len(set(got)) == n - stats.lost  # every copy is of a real datagram
    assert got != sorted(got)  # something overtook something


async def test_mtu_and_queue_limit_drop(autojump_clock: trio.abc.Clock) -> None:
    net = MemoryNetwork(seed=1, mtu=1300, queue_limit=5)
    a, b = net.attach(), net.attach()
    a.send(bytes(1301), b.local_address)
    a.send(bytes(1300), b.local_address)
    assert net.stats.oversize == 1
    for _ in range(9):
        a.send(b"x", b.local_address)
    assert net.stats.overflow == 5
    assert len(await collect(b, 0.1)) == 5


async def test_receive_hands_over_bounded_batches(autojump_clock: trio.abc.Clock) -> None:
    net = MemoryNetwork(seed=1)
    a, b = net.attach(), net.attach()
    for i in range(MAX_BATCH + 10):
        a.send(bytes([i]), b.local_address)
    assert len(await b.receive()) == MAX_BATCH
    assert len(await b.receive()) == 10


async def test_cancelled_receive_loses_nothing(autojump_clock: trio.abc.Clock) -> None:
    net = MemoryNetwork(seed=1, delay=0.5)
    a, b = net.attach(), net.attach()
    a.send(b"late", b.local_address)
    with trio.move_on_after(0.1):
        await b.receive()
    assert await b.receive() == [(b"late", a.local_address)]


async def test_addresses_and_closing(autojump_clock: trio.abc.Clock) -> None:
    net = MemoryNetwork(seed=1)
    a = net.attach(("10.9.9.9", 1))
    with pytest.raises(LocalProtocolError, match="already in use"):
        net.attach(("10.9.9.9", 1))
    b = net.attach()
    b.close()
    a.send(b"x", b.local_address)
    assert net.stats.unroutable == 1
    with pytest.raises(trio.ClosedResourceError):
        await b.receive()


@pytest.mark.parametrize(
    "kwargs",
    [
        {"loss": 1.0},
        {"loss": -0.1},
        {"duplicate": math.nan},
        {"delay": -1.0},
        {"reorder_window": math.inf},
    ],
)
def test_impairment_is_validated(kwargs: dict[str, float]) -> None:
    with pytest.raises(LocalProtocolError):
        Impairment(**kwargs)


def test_network_bounds_are_validated() -> None:
    with pytest.raises(LocalProtocolError, match="mtu"):
        MemoryNetwork(seed=1, mtu=0)
    with pytest.raises(LocalProtocolError, match="queue_limit"):
        MemoryNetwork(seed=1, queue_limit=0)


async def test_udp_round_trip() -> None:
    with trio.fail_after(5):
        async with open_udp_transport() as a, open_udp_transport() as b:
            assert a.local_address[0] == "127.0.0.1"
            for i in range(10):
                a.send(bytes([i]) * 100, b.local_address)
            got: list[bytes] = []
            while len(got) < 10:
                got += [data for data, source in await b.receive() if source == a.local_address]
            assert sorted(got) == [bytes([i]) * 100 for i in range(10)]
            b.send(b"back", a.local_address)
            assert await a.receive() == [(b"back", b.local_address)]


async def test_impaired_real_socket() -> None:
    with trio.fail_after(5):
        async with open_udp_transport() as a, open_udp_transport() as raw_b:
            b = impair(raw_b, seed=5, loss=0.3, reorder=0.5, duplicate=0.2, delay=0.002)
            n = 300
            for i in range(n):
                a.send(i.to_bytes(2, "big"), b.local_address)
                if i % 50 == 49:
                    await trio.sleep(0.001)  # stay under the socket buffer
            got = [int.from_bytes(data, "big") for _, data in await collect(b, 0.3)]
            assert b.stats.offered == n
            assert b.stats.lost > 0 and b.stats.duplicated > 0
            assert len(got) == n - b.stats.lost + b.stats.duplicated
            assert got != sorted(got)
