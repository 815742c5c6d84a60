"""Datagram transports under the QUIC endpoint: a UDP socket, and a seeded simulated network.

The endpoint only needs "send this datagram, best effort" and "give me the
datagrams that have arrived"; :class:`DatagramTransport` is that contract.
Three implementations:

* :func:`open_udp_transport` -- a real non-blocking UDP socket.
* :class:`MemoryNetwork` -- an in-process network with seeded loss, delay,
  reordering and duplication, on trio's clock so tests run under
  ``autojump_clock``.
* :func:`impair` -- the same seeded impairments in front of any transport
  (for instance a real socket).

Impairment decisions are a pure function of the seed and the order in which
datagrams are offered, so a run that offers the same datagrams in the same
order sees the same losses, delays and copies.
"""

from __future__ import annotations

import errno
import heapq
import itertools
import logging
import math
import random
import socket
from collections import deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Final, Protocol

import trio

from shinyo import LocalProtocolError

__all__ = [
    "Address",
    "Datagram",
    "DatagramTransport",
    "ImpairedTransport",
    "Impairment",
    "MemoryNetwork",
    "MemoryTransport",
    "NetworkStats",
    "UdpTransport",
    "impair",
    "open_udp_transport",
]

logger = logging.getLogger("shinyo.node.quic")

Address = tuple[str, int]
Datagram = tuple[bytes, Address]

MAX_BATCH: Final = 64
"""Datagrams handed over per ``receive()``: large enough to amortise a wakeup,
small enough that timers and other connections are not starved."""
MAX_UDP_PAYLOAD: Final = 65527
_SEND_BACKLOG: Final = 1024
_SOCKET_BUFFER: Final = 4 * 1024 * 1024


class DatagramTransport(Protocol):
    """Best-effort datagrams, as UDP gives them."""

    @property
    def local_address(self) -> Address: ...

    def send(self, data: bytes, address: Address) -> None:
        """Queue one datagram; never blocks, may drop (as UDP may)."""

    async def receive(self) -> list[Datagram]:
        """Wait for at least one datagram; return up to :data:`MAX_BATCH`.

        Cancel-safe: a cancelled call has consumed nothing.
        """

    def close(self) -> None:
        """Stop sending and receiving; idempotent."""


# -- UDP --------------------------------------------------------------------------------


class UdpTransport:
    """A non-blocking UDP socket driven by trio's I/O readiness (LIMITS.md pattern)."""

    def __init__(self, sock: socket.socket) -> None:
        sock.setblocking(False)
        self._sock = sock
        host, port = sock.getsockname()[:2]
        self._address: Address = (host, port)
        self._backlog: deque[Datagram] = deque()
        self._backlog_ready = trio.Event()
        self.dropped = 0

    @property
    def local_address(self) -> Address:
        return self._address

    def send(self, data: bytes, address: Address) -> None:
        if self._sock.fileno() < 0:
            return
        if not self._backlog:
            try:
                self._sock.sendto(data, address)
                return
            except BlockingIOError:
                pass
            except OSError as exc:
                # ICMP errors surface on a later call (ECONNREFUSED and kin):
                # a datagram socket shrugs them off, QUIC recovers.
                logger.debug("UDP send to %s failed: %s", address, exc)
                return
        if len(self._backlog) >= _SEND_BACKLOG:
            self.dropped += 1
            return
        self._backlog.append((data, address))
        self._backlog_ready.set()

    async def receive(self) -> list[Datagram]:
        while True:
            batch: list[Datagram] = []
            while len(batch) < MAX_BATCH:
                try:
                    data, address = self._sock.recvfrom(MAX_UDP_PAYLOAD)
                except BlockingIOError:
                    break
                except OSError as exc:
                    if exc.errno in (errno.ECONNREFUSED, errno.EHOSTUNREACH, errno.ENETUNREACH):
                        continue
                    raise
                batch.append((data, (address[0], address[1])))
            if batch:
                # Yield to the scheduler, but never lose what was read.
                await trio.lowlevel.cancel_shielded_checkpoint()
                return batch
            await trio.lowlevel.wait_readable(self._sock)

    async def _flush_backlog(self) -> None:
        while True:
            await self._backlog_ready.wait()
            while self._backlog and self._sock.fileno() >= 0:
                await trio.lowlevel.wait_writable(self._sock)
                self._drain_backlog()
            self._backlog_ready = trio.Event()

    def _drain_backlog(self) -> None:
        while self._backlog:
            data, address = self._backlog[0]
            try:
                self._sock.sendto(data, address)
            except BlockingIOError:
                return
            except OSError as exc:
                logger.debug("UDP send to %s failed: %s", address, exc)
            self._backlog.popleft()

    def close(self) -> None:
        if self._sock.fileno() >= 0:
            # Best effort: what is queued (a CONNECTION_CLOSE, say) leaves first.
            self._drain_backlog()
            trio.lowlevel.notify_closing(self._sock)
            self._sock.close()


@asynccontextmanager
async def open_udp_transport(host: str = "127.0.0.1", port: int = 0) -> AsyncIterator[UdpTransport]:
    """Bind a UDP socket and run its send-backlog task for the context's lifetime."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_DGRAM)
    try:
        for option in (socket.SO_RCVBUF, socket.SO_SNDBUF):
            # Bulk transfers overrun the default buffers; the kernel caps the ask.
            sock.setsockopt(socket.SOL_SOCKET, option, _SOCKET_BUFFER)
        sock.bind((host, port))
    except BaseException:
        sock.close()
        raise
    transport = UdpTransport(sock)
    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(transport._flush_backlog)
            try:
                yield transport
            finally:
                nursery.cancel_scope.cancel()
    finally:
        transport.close()


# -- Impairments ------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True, slots=True)
class Impairment:
    """What a simulated link does to each datagram.

    ``loss``, ``reorder`` and ``duplicate`` are probabilities.  Every datagram
    is delayed ``delay`` seconds; a reordered one (or a duplicate copy) is held
    back a further uniform(0, ``reorder_window``) seconds, so later datagrams
    overtake it.
    """

    loss: float = 0.0
    reorder: float = 0.0
    duplicate: float = 0.0
    delay: float = 0.0
    reorder_window: float = 0.01

    def __post_init__(self) -> None:
        for name in ("loss", "reorder", "duplicate"):
            value = getattr(self, name)
            if not 0.0 <= value < 1.0:
                raise LocalProtocolError(f"{name} is a probability in [0, 1); got {value!r}")
        for name in ("delay", "reorder_window"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0.0):
                raise LocalProtocolError(
                    f"{name} is a finite number of seconds >= 0; got {value!r}"
                )


@dataclass(kw_only=True, slots=True)
class NetworkStats:
    """What the impairments did, so a test can check they really happened."""

    offered: int = 0
    delivered: int = 0
    lost: int = 0
    reordered: int = 0
    duplicated: int = 0
    oversize: int = 0
    overflow: int = 0
    unroutable: int = 0


class _Planner:
    """Turns each offered datagram into zero, one or two delivery times."""

    def __init__(self, seed: int, impairment: Impairment, stats: NetworkStats) -> None:
        self._rng = random.Random(seed)
        self._imp = impairment
        self._stats = stats

    def plan(self, now: float) -> list[float]:
        imp, rng = self._imp, self._rng
        # Always draw the same five numbers, so one decision never shifts the
        # random stream of the next datagram's decisions.
        r_loss, r_reorder, r_hold, r_dup, r_dup_hold = (rng.random() for _ in range(5))
        self._stats.offered += 1
        if r_loss < imp.loss:
            self._stats.lost += 1
            return []
        at = now + imp.delay
        times = [at + r_hold * imp.reorder_window if r_reorder < imp.reorder else at]
        if r_reorder < imp.reorder:
            self._stats.reordered += 1
        if r_dup < imp.duplicate:
            self._stats.duplicated += 1
            times.append(at + r_dup_hold * imp.reorder_window)
        return times


class _Inbox:
    """Datagrams in flight to one receiver, ordered by arrival time."""

    def __init__(self, limit: int) -> None:
        self._heap: list[tuple[float, int, bytes, Address]] = []
        self._order = itertools.count()
        self._limit = limit
        self._wakeup = trio.Event()

    def put(self, at: float, data: bytes, source: Address) -> bool:
        if len(self._heap) >= self._limit:
            return False
        heapq.heappush(self._heap, (at, next(self._order), data, source))
        self._wakeup.set()
        return True

    def take_due(self, now: float) -> list[Datagram]:
        batch: list[Datagram] = []
        while self._heap and self._heap[0][0] <= now and len(batch) < MAX_BATCH:
            _, _, data, source = heapq.heappop(self._heap)
            batch.append((data, source))
        return batch

    def next_due(self) -> float:
        return self._heap[0][0] if self._heap else math.inf

    def rearm(self) -> trio.Event:
        self._wakeup = trio.Event()
        return self._wakeup


class MemoryNetwork:
    """An in-process datagram network with seeded impairments (for tests and simulation).

    Every link shares one :class:`Impairment` and one random stream.  Time is
    trio's clock, so it runs under ``trio.testing.MockClock(autojump_threshold=0)``.
    Datagrams larger than ``mtu`` are dropped, as is anything beyond
    ``queue_limit`` datagrams waiting for one receiver.
    """

    def __init__(
        self,
        seed: int,
        *,
        loss: float = 0.0,
        reorder: float = 0.0,
        duplicate: float = 0.0,
        delay: float = 0.0,
        reorder_window: float = 0.01,
        mtu: int = MAX_UDP_PAYLOAD,
        queue_limit: int = 4096,
    ) -> None:
        impairment = Impairment(
            loss=loss,
            reorder=reorder,
            duplicate=duplicate,
            delay=delay,
            reorder_window=reorder_window,
        )
        if not 1 <= mtu <= MAX_UDP_PAYLOAD:
            raise LocalProtocolError(f"mtu is between 1 and {MAX_UDP_PAYLOAD} bytes; got {mtu}")
        if queue_limit < 1:
            raise LocalProtocolError(f"queue_limit is at least 1; got {queue_limit}")
        self.stats = NetworkStats()
        self.mtu = mtu
        self._planner = _Planner(seed, impairment, self.stats)
        self._queue_limit = queue_limit
        self._inboxes: dict[Address, _Inbox] = {}
        self._hosts = itertools.count(1)

    def attach(self, address: Address | None = None) -> MemoryTransport:
        """A new transport on this network, at ``address`` or a fresh one."""
        if address is None:
            n = next(self._hosts)
            address = (f"10.0.{n // 250}.{n % 250 + 1}", 4433)
        if address in self._inboxes:
            raise LocalProtocolError(f"address {address} is already in use on this network")
        inbox = _Inbox(self._queue_limit)
        self._inboxes[address] = inbox
        return MemoryTransport(self, address, inbox)

    def _send(self, source: Address, data: bytes, destination: Address) -> None:
        if len(data) > self.mtu:
            self.stats.oversize += 1
            return
        now = trio.current_time()
        for at in self._planner.plan(now):
            inbox = self._inboxes.get(destination)
            if inbox is None:
                self.stats.unroutable += 1
            elif inbox.put(at, data, source):
                self.stats.delivered += 1
            else:
                self.stats.overflow += 1

    def _detach(self, address: Address) -> None:
        self._inboxes.pop(address, None)


class MemoryTransport:
    """One endpoint's attachment to a :class:`MemoryNetwork`."""

    def __init__(self, network: MemoryNetwork, address: Address, inbox: _Inbox) -> None:
        self._network = network
        self._address = address
        self._inbox = inbox
        self._closed = False
        self.sent_sizes: list[int] = []
        """Size of every datagram this transport sent (tests check datagram limits)."""

    @property
    def local_address(self) -> Address:
        return self._address

    def send(self, data: bytes, address: Address) -> None:
        if not self._closed:
            self.sent_sizes.append(len(data))
            self._network._send(self._address, bytes(data), address)

    async def receive(self) -> list[Datagram]:
        while True:
            if self._closed:
                raise trio.ClosedResourceError("this memory transport was closed")
            batch = self._inbox.take_due(trio.current_time())
            if batch:
                await trio.lowlevel.cancel_shielded_checkpoint()
                return batch
            wakeup = self._inbox.rearm()
            with trio.move_on_at(self._inbox.next_due()):
                await wakeup.wait()

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._network._detach(self._address)


# -- Impairing any transport -----------------------------------------------------------------


@dataclass(eq=False)
class ImpairedTransport:
    """Another transport, with seeded impairments applied to what it receives."""

    inner: DatagramTransport
    seed: int
    impairment: Impairment
    stats: NetworkStats = field(default_factory=NetworkStats)

    def __post_init__(self) -> None:
        self._planner = _Planner(self.seed, self.impairment, self.stats)
        self._inbox = _Inbox(limit=4096)

    @property
    def local_address(self) -> Address:
        return self.inner.local_address

    def send(self, data: bytes, address: Address) -> None:
        self.inner.send(data, address)

    async def receive(self) -> list[Datagram]:
        while True:
            batch = self._inbox.take_due(trio.current_time())
            if batch:
                await trio.lowlevel.cancel_shielded_checkpoint()
                return batch
            # The inner receive is cancel-safe, so giving up on it when the
            # next held-back datagram falls due loses nothing.
            with trio.move_on_at(self._inbox.next_due()):
                arrived = await self.inner.receive()
                now = trio.current_time()
                for data, source in arrived:
                    for at in self._planner.plan(now):
                        if self._inbox.put(at, data, source):
                            self.stats.delivered += 1
                        else:
                            self.stats.overflow += 1

    def close(self) -> None:
        self.inner.close()


def impair(
    transport: DatagramTransport,
    *,
    seed: int,
    loss: float = 0.0,
    reorder: float = 0.0,
    duplicate: float = 0.0,
    delay: float = 0.0,
    reorder_window: float = 0.01,
) -> ImpairedTransport:
    """Wrap ``transport`` so that what it receives is lost, delayed, reordered and
    duplicated as a seeded :class:`Impairment` says (impair both ends to impair
    both directions)."""
    impairment = Impairment(
        loss=loss, reorder=reorder, duplicate=duplicate, delay=delay, reorder_window=reorder_window
    )
    return ImpairedTransport(inner=transport, seed=seed, impairment=impairment)
