"""The attacks of a malicious peer, one bounded round each.

:data:`ATTACKS` names the attacks, each one *round*: a bounded number of
messages or connections, held for at most a few seconds.  A :class:`Strike`
gives a round its means -- a fresh node key per connection (keys are free,
and a ban is per key), its own source host, the shared valid entries of a
:class:`Material` -- and counts in its :class:`Tally` what was sent and how
the node reacted; :func:`run_attack` repeats rounds until cancelled.  The
parts they are built from (hostile endpoints and sessions, raw frames, valid
and broken entries) are in :mod:`.hostile_peer`; the campaign that runs them
all against a daemon is tools/hostile.py.

    >>> material = Material.make(seed=1, now=now)                   # doctest: +SKIP
    >>> async with trio.open_nursery() as nursery:
    ...     for i, (name, attack) in enumerate(ATTACKS.items()):
    ...         s = Strike(name, node_address, host=f"127.0.0.{10 + i}", material=material,
    ...                    first_key=1000 * i, rng=random.Random(name))
    ...         nursery.start_soon(run_attack, s, attack)  # rounds until cancelled
"""

from __future__ import annotations

import itertools
import random
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, Final

import trio

from shinyo import Entry, Pseudonym
from shinyo import _cbor as cbor
from shinyo._ratelimit import MESSAGE_BURST
from shinyo._sync import MAX_OUTSTANDING_WANTS
from shinyo._wire import MAX_HEADS, MAX_WANT_SPAN
from shinyo.node._netsim import Address
from shinyo.node._peerauth import TransportError
from shinyo.node._quic import ConnectionRefused, PeerConnection, QuicEndpoint, TransportLimits
from shinyo.wire import (
    MAX_PUSH_ENTRIES,
    Bye,
    Entries,
    Head,
    Heads,
    ProofRequest,
    Push,
    Unknown,
    Want,
    encode_frame,
)

from .hostile_peer import (
    HostileSession,
    SessionEnded,
    SilentEndpoint,
    broken_signature,
    forked_pair,
    frame,
    hostile_endpoint,
    largest_frame,
    open_session,
    oversize_length,
    phantom_heads,
    proposals,
    stranger,
)

__all__ = [
    "ATTACKS",
    "HOLD",
    "STUFFED_STREAMS",
    "UNBOUNDED",
    "Attack",
    "Material",
    "Strike",
    "Tally",
    "run_attack",
]


# -- attacks: one bounded round each ---------------------------------------------------------

GARBAGE_SIZE: Final = 64
LARGEST_FRAMES: Final = 12
"""Frames of MAX_FRAME_SIZE per round (3.2 MB): three times BYTE_BURST."""
REPLAYS: Final = 150
"""Pushes of the same entries per round, under MESSAGE_BURST (10.1: duplicates are free)."""
WANTS_PER_ROUND: Final = 200
UNSOLICITED: Final = 12
"""Unasked Entries per round: at 10 points each the 10th reaches DROP_SCORE."""
INVALID: Final = 6
"""Entries with a broken signature per round: at 25 points each the 4th drops."""
SLOW_SESSIONS: Final = 6
HOLD: Final = 5.0
"""Seconds a slow, flooding or stuffing connection is held per round."""
FLOOD_CONNECTIONS: Final = 128
"""Connections a flood may hold at once: twice the node's default limit (64)."""
FLOOD_WORKERS: Final = 32
FLOOD_ATTEMPTS: Final = 2000
"""Connection attempts per flood round, refused ones included."""
FLOOD_RETRY: Final = 0.02
"""Seconds before a flood worker tries again after a refusal."""
HANDSHAKES: Final = 48
PHANTOM_PAGES_PER_SECOND: Final = 40
"""Pages of 1,024 made-up heads (73 KB) per second: 2.9 MB/s, inside BYTE_RATE."""
WITHIN_RATE: Final = 90
"""Charged messages per second that stay inside MESSAGE_RATE (100/s)."""
STUFFED_STREAMS: Final = 15
"""Streams beyond the session stream (spec/transport.md 5.1 allows 16 at once)."""


@dataclass(kw_only=True, slots=True)
class Tally:
    """What one attack sent, round after round, and how the node answered."""

    rounds: int = 0
    """Rounds started (the last may have been cut short by the end of the campaign)."""
    connections: int = 0
    """Connections the node accepted (handshake and authentication done)."""
    refused: int = 0
    """Connections the node refused (CONNECTION_REFUSED: it was full)."""
    frames: int = 0
    bytes: int = 0
    byes: Counter[str] = field(default_factory=Counter)
    """The node's Bye codes (wire.md 6.3), the reaction to most attacks."""
    closed: int = 0
    """Sessions the node ended without a Bye (e.g. a banned node key, 10.2)."""
    answered: int = 0
    """Probes the node answered with the session still up: no drop."""
    errors: Counter[str] = field(default_factory=Counter)
    """Rounds cut short, by exception type (transport errors, hangs)."""
    extra: Counter[str] = field(default_factory=Counter)
    """Attack-specific counts (Wants, entries received, seconds held, ...)."""

    def note(self, reply: Entries | Bye | None) -> None:
        if isinstance(reply, Bye):
            self.byes[reply.code] += 1
        elif reply is None:
            self.closed += 1
        else:
            self.answered += 1

    def as_dict(self) -> dict[str, Any]:
        return {"rounds": self.rounds, "connections": self.connections, "refused": self.refused,
                "frames": self.frames, "bytes": self.bytes, "byes": dict(self.byes),
                "closed_without_bye": self.closed, "answered": self.answered,
                "errors": dict(self.errors), **dict(self.extra)}


class Strike:
    """One attack's means: fresh node keys, its own loopback host, shared
    material (valid entries to replay or fork), and its :class:`Tally`."""

    def __init__(self, name: str, target: Address, *, host: str, first_key: int,
                 material: Material, rng: random.Random, hold: float = HOLD) -> None:
        self.name = name
        self.target = target
        self.host = host
        self.hold = hold
        """Seconds a round holds what it took (connections, a slow or flooding session)."""
        self.material = material
        self.rng = rng
        self.tally = Tally()
        self.refused_last = False
        """The last round ended on a refused connection (the node was full)."""
        self._keys = itertools.count(first_key)

    @asynccontextmanager
    async def endpoint(self, *, kind: type[QuicEndpoint] = QuicEndpoint,
                       connections: int = 64) -> AsyncIterator[QuicEndpoint]:
        """An endpoint with a node key never used before (bans are per key)."""
        limits = TransportLimits(max_connections=connections)
        async with hostile_endpoint(next(self._keys), host=self.host, limits=limits,
                                    kind=kind) as ep:
            yield ep

    @asynccontextmanager
    async def session(self) -> AsyncIterator[HostileSession]:
        """A session from a fresh endpoint, counted in the tally."""
        async with AsyncExitStack() as stack:
            endpoint = await stack.enter_async_context(self.endpoint())
            try:
                h = await stack.enter_async_context(open_session(endpoint, self.target))
            except ConnectionRefused:
                self.tally.refused += 1
                raise
            self.tally.connections += 1
            try:
                yield h
            finally:
                self.tally.frames += h.sent_frames
                self.tally.bytes += h.sent_bytes


@dataclass(frozen=True, kw_only=True, slots=True)
class Material:
    """Valid entries the attacks share, signed once per campaign."""

    forks: tuple[tuple[Entry, Entry], ...]
    """Pairs of entries that prove their author forked (a pool, used in turn)."""
    replay: tuple[Entry, ...]
    """A stranger's valid chain, pushed again and again."""
    invalid: tuple[bytes, ...]
    """Another stranger's chain with every signature broken (never sent valid, so
    the seen-set cannot skip them, wire.md 8.2)."""

    @classmethod
    def make(cls, *, seed: int, now: int, forks: int = 32, replay: int = 4) -> Material:
        base = 1000 * (seed + 1)
        return cls(forks=tuple(forked_pair(base + i, now=now) for i in range(forks)),
                   replay=tuple(proposals(stranger(base - 1), replay, now=now)),
                   invalid=tuple(broken_signature(e)
                                 for e in proposals(stranger(base - 2), INVALID, now=now)))


Attack = Callable[[Strike], Awaitable[None]]

ROUND_ENDERS: Final = (TransportError, trio.BrokenResourceError, trio.ClosedResourceError,
                       trio.TooSlowError, SessionEnded)
"""What ends a round early: the node closed the connection, refused it, or hung."""


def _probe(author: Pseudonym) -> Want:
    return Want(author=author, first=1, last=1)


async def garbage(s: Strike) -> None:
    """Not CBOR after Hello: ``malformed``, 100 points, dropped at once (3.3, 10.2)."""
    async with s.session() as h:
        await h.hello()
        await h.send(frame(b"\xff" + s.rng.randbytes(GARBAGE_SIZE - 1)))
        s.tally.note(await h.bye())


async def oversize_length_prefix(s: Strike) -> None:
    """A length over MAX_FRAME_SIZE: ``frame-too-large`` after 4 bytes (3.3 step 1)."""
    async with s.session() as h:
        await h.hello()
        await h.send(oversize_length())
        s.tally.note(await h.bye())


async def oversize_messages(s: Strike) -> None:
    """Every other round, one message over its field limits (a Push of 65
    entries: ``bad-message``, 3.3 step 9, dropped at once); else frames of
    exactly MAX_FRAME_SIZE, each held whole by the node before it is decoded
    (3.1), three times BYTE_BURST in a row: the ones over the byte budget are
    discarded, and 20 of them drop the session (10.1) -- unless the node
    reads them slower than BYTE_RATE refills, which on loopback it may."""
    async with s.session() as h:
        await h.hello()
        if s.tally.rounds % 2:
            raw = s.material.replay[0].encode()
            await h.send(frame(cbor.encode([Push.TYPE, [raw] * (MAX_PUSH_ENTRIES + 1)])))
            s.tally.note(await h.bye())
            return
        big = encode_frame(largest_frame())
        for _ in range(LARGEST_FRAMES):
            try:
                await h.send(big)
            except ROUND_ENDERS:
                break  # dropped: the Bye is waiting in the stream
        s.tally.note(await h.answer(probe=_probe(s.material.replay[0].author)))


async def forked_entries(s: Strike) -> None:
    """Two valid entries at one seq of one author (a fork): stored as a proof
    and forwarded, the relay unpunished (8.3, 10.2)."""
    first, second = s.material.forks[s.tally.rounds % len(s.material.forks)]
    async with s.session() as h:
        await h.hello()
        s.tally.note(await h.answer(Push(entries=(first.encode(),)),
                                    Push(entries=(second.encode(),)), probe=_probe(first.author)))


async def invalid_signatures(s: Strike) -> None:
    """Entries whose signature fails, one Push each: 25 points each (``invalid``),
    the 4th reaches DROP_SCORE; never stored (shinyo.md 6.4, wire.md 10.2)."""
    async with s.session() as h:
        await h.hello()
        pushes = [Push(entries=(raw,)) for raw in s.material.invalid]
        s.tally.note(await h.answer(*pushes, probe=_probe(s.material.replay[0].author)))


async def replays(s: Strike) -> None:
    """The same valid Push again and again, inside the rate: stored once, the
    rest skipped by the seen-set before any signature check (8.2)."""
    push = Push(entries=tuple(e.encode() for e in s.material.replay))
    async with s.session() as h:
        await h.hello()
        s.tally.note(await h.answer(*[push] * REPLAYS, probe=_probe(s.material.replay[0].author)))


async def want_ranges(s: Strike) -> None:
    """Wants of the widest span for the node's longest chains, each answered
    one replaced at once, 16 always in flight: uncharged (10.1), so the node
    serves as fast as the peer reads (an Entries answer is up to 5,700 times
    its Want, wire.md 12)."""
    async with s.session() as h:
        await h.hello()
        page = await h.read_until(lambda m: isinstance(m, Heads))
        assert isinstance(page, Heads)
        chains = sorted(page.heads, key=lambda head: -head.seq)[:8]
        if not chains:
            chains = [Head(author=s.material.replay[0].author, seq=1, id=bytes(32))]

        def want(i: int) -> Want:
            head = chains[i % len(chains)]
            first = s.rng.randint(1, max(1, head.seq - MAX_WANT_SPAN + 1))
            return Want(author=head.author, first=first, last=first + MAX_WANT_SPAN - 1)

        await h.send(*[want(i) for i in range(MAX_OUTSTANDING_WANTS)])
        s.tally.extra["wants"] += MAX_OUTSTANDING_WANTS
        for i in range(MAX_OUTSTANDING_WANTS, WANTS_PER_ROUND):
            msg = await h.read_until(lambda m: isinstance(m, (Entries, Bye)))
            if isinstance(msg, Bye):
                s.tally.note(msg)
                return
            assert isinstance(msg, Entries)
            s.tally.extra["entries_received"] += len(msg.entries)
            await h.send(want(i))
            s.tally.extra["wants"] += 1
        s.tally.answered += 1


async def unsolicited_entries(s: Strike) -> None:
    """Entries that answer no Want: 10 points each, the 10th drops (7.4, 10.2)."""
    entry = s.material.replay[0]
    unasked = Entries(author=entry.author, first=1, last=1, entries=(entry.encode(),))
    async with s.session() as h:
        await h.hello()
        await h.send(*[unasked] * UNSOLICITED)
        s.tally.note(await h.bye())


async def slowloris(s: Strike) -> None:
    """Sessions that never finish a frame, one byte a second: half after Hello
    inside a frame body, half before Hello inside a length prefix.  The node
    holds at most one partial frame per session (3.2) and ends a silent
    session only after SILENCE_TIMEOUT (300 s, 6.2)."""

    async def one(i: int) -> None:
        async with s.session() as h:
            if i % 2:
                await h.hello()
                await h.send((1000).to_bytes(4, "big") + b"0123456789")
            else:
                await h.send(b"\x00\x00")
            with trio.move_on_after(s.hold):
                while h.conn.close_reason is None:
                    await trio.sleep(1.0)
                    await h.send(b"0" if i % 2 else b"")
                    s.tally.extra["seconds_held"] += 1
            if h.conn.close_reason is not None:
                s.tally.note(await h.bye())

    async with trio.open_nursery() as nursery:
        for i in range(SLOW_SESSIONS):
            nursery.start_soon(_counted, s, one, i)


async def _counted(s: Strike, fn: Callable[[int], Awaitable[None]], i: int) -> None:
    """Run one of a round's parallel parts; its transport failure ends only it."""
    try:
        await fn(i)
    except* ConnectionRefused:
        pass  # counted where it was raised
    except* ROUND_ENDERS as group:
        s.tally.errors.update(type(e).__name__ for e in _leaves(group))


def _leaves(group: BaseExceptionGroup[Any]) -> list[BaseException]:
    return [leaf for e in group.exceptions
            for leaf in (_leaves(e) if isinstance(e, BaseExceptionGroup) else [e])]


async def connection_flood(s: Strike) -> None:
    """Authenticated connections from one node key, no session stream, each
    refused one tried again at once: the node's whole ``max_connections``
    table (spec/transport.md 6) stays taken for the round, as a free slot goes
    to whichever Initial comes first.  Bare connections last until the
    node's SESSION_STREAM_TIMEOUT (10 s) or the end of the round's hold."""
    async with s.endpoint(connections=FLOOD_CONNECTIONS) as ep:
        held: list[PeerConnection] = []
        attempts = itertools.count()

        async def worker(i: int) -> None:
            while next(attempts) < FLOOD_ATTEMPTS:
                try:
                    held.append(await ep.connect(s.target))
                except ConnectionRefused:
                    s.tally.refused += 1
                    await trio.sleep(FLOOD_RETRY)
                    continue
                s.tally.connections += 1
                s.tally.extra["held_at_once"] = max(
                    s.tally.extra["held_at_once"],
                    sum(c.close_reason is None for c in held))

        with trio.move_on_after(s.hold):
            async with trio.open_nursery() as nursery:
                for i in range(FLOOD_WORKERS):
                    nursery.start_soon(_counted, s, worker, i)
            await trio.sleep_forever()  # hold what was got
        for conn in held:
            await conn.aclose()


async def handshake_flood(s: Strike) -> None:
    """QUIC handshakes that never authenticate: no node key needed, each holds
    a slot for the node's ``handshake_timeout`` (10 s; here until the round's hold)."""
    async with s.endpoint(kind=SilentEndpoint, connections=HANDSHAKES) as ep:

        async def one(i: int) -> None:
            s.tally.extra["handshakes"] += 1
            try:
                await ep.connect(s.target)
            except ConnectionRefused:
                s.tally.refused += 1

        with trio.move_on_after(s.hold):
            async with trio.open_nursery() as nursery:
                for i in range(HANDSHAKES):
                    nursery.start_soon(_counted, s, one, i)


async def message_flood(s: Strike) -> None:
    """Charged messages: every other round twice MESSAGE_BURST in one write (20
    over the rate drop the session, 10.1), else WITHIN_RATE a second for the
    round's hold, which costs the node work but is no offence."""
    async with s.session() as h:
        await h.hello()
        if s.tally.rounds % 2:
            await h.send(*[Heads()] * int(2 * MESSAGE_BURST))
            s.tally.note(await h.bye())
            return
        ping = Unknown(code=10, fields=())
        end = trio.current_time() + s.hold
        while trio.current_time() < end:
            await h.send(*[ping] * (WITHIN_RATE // 10))
            await trio.sleep(0.1)
        s.tally.note(await h.answer(probe=_probe(s.material.replay[0].author)))


async def phantom_heads_flood(s: Strike) -> None:
    """Heads pages listing made-up chains, inside the rate, Wants never
    answered: no offence, and the node's sync planner remembers every listed
    author (PeerSync._peer/_asked/_needy) for as long as the session lasts."""
    async with s.session() as h:
        await h.hello()
        end = trio.current_time() + s.hold
        while trio.current_time() < end and h.conn.close_reason is None:
            await h.send(phantom_heads(s.rng, MAX_HEADS))
            s.tally.extra["phantom_authors"] += MAX_HEADS
            await trio.sleep(1 / PHANTOM_PAGES_PER_SECOND)
        s.tally.note(await h.answer(probe=_probe(s.material.replay[0].author), timeout=s.hold))


async def stalled_reader(s: Strike) -> None:
    """A peer that stops reading once the node owes it a lot (16 wide Wants),
    then sends ProofRequests inside the rate: the node's writer waits on flow
    control, and the reader queues every request's answer."""
    async with s.session() as h:
        await h.hello()
        page = await h.read_until(lambda m: isinstance(m, Heads))
        assert isinstance(page, Heads)
        if not page.heads:
            return
        head = max(page.heads, key=lambda x: x.seq)
        first = max(1, head.seq - MAX_WANT_SPAN + 1)
        await h.send(*[Want(author=head.author, first=first, last=first + MAX_WANT_SPAN - 1)]
                     * MAX_OUTSTANDING_WANTS)
        end = trio.current_time() + s.hold
        while trio.current_time() < end and h.conn.close_reason is None:
            await h.send(*[ProofRequest(subject=head.author)] * (WITHIN_RATE // 10))
            s.tally.extra["proof_requests"] += WITHIN_RATE // 10
            await trio.sleep(0.1)


async def stream_stuffing(s: Strike) -> None:
    """A session plus 15 more streams, each filled to its flow-control window
    (256 KiB) and never read by the node: spec/transport.md 6's worst case,
    ``max_streams * stream_receive_buffer`` per connection."""
    async with s.session() as h:
        await h.hello()
        window = TransportLimits().stream_receive_buffer
        for _ in range(STUFFED_STREAMS):
            stream = await h.conn.open_stream()
            await stream.send_all(b"\x00" * window)
            s.tally.bytes += window
        s.tally.extra["streams_stuffed"] += STUFFED_STREAMS
        with trio.move_on_after(s.hold):
            await h.closed(timeout=float("inf"))


ATTACKS: Final[dict[str, Attack]] = {
    "garbage": garbage,
    "oversize-length": oversize_length_prefix,
    "oversize-message": oversize_messages,
    "forked-entries": forked_entries,
    "invalid-signatures": invalid_signatures,
    "replays": replays,
    "want-ranges": want_ranges,
    "unsolicited": unsolicited_entries,
    "slowloris": slowloris,
    "connection-flood": connection_flood,
    "handshake-flood": handshake_flood,
    "message-flood": message_flood,
    "stream-stuffing": stream_stuffing,
    "phantom-heads": phantom_heads_flood,
    "stalled-reader": stalled_reader,
}
"""Every attack by name; each call is one round, bounded in count and in time."""

UNBOUNDED: Final = ("phantom-heads", "stalled-reader")
"""Attacks that make the node's memory grow for as long as they last (see
the campaign report): kept out of the default set so that the memory bound
is measured for the rest, and run on their own to show the growth."""


async def run_attack(s: Strike, attack: Attack, *, pause: float = 0.05) -> None:
    """Run rounds of ``attack`` until cancelled; each round ends after three
    times ``s.hold`` at most, or at its first transport error.  After a
    refused connection the next round waits a little longer."""
    while True:
        s.refused_last = False
        s.tally.rounds += 1
        with trio.move_on_after(3 * s.hold) as scope:
            # An error comes out of an endpoint's nurseries inside an ExceptionGroup.
            try:
                await attack(s)
            except* ConnectionRefused:
                s.refused_last = True  # counted where it was raised
            except* ROUND_ENDERS as group:
                s.tally.errors.update(type(e).__name__ for e in _leaves(group))
        if scope.cancelled_caught:
            s.tally.errors["round_limit"] += 1
        await trio.sleep(pause * 4 if s.refused_last else pause)
