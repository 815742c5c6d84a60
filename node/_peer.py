"""One wire session with one peer (spec/wire.md) over one QUIC stream.

Theory of operation
-------------------
A session is a reader, an ingest task and a writer around the connection's
session stream (spec/transport.md 5.1: the client's first stream after
authentication).

The *reader* decodes frames, checks their order (wire.md 6.2), counts Wants
(7.3) and charges the rate limit (10.1).  For a Push or an expected answer
it also parses the entries (:meth:`Replica.prepare`) and, for a batch worth
it, starts their signature check off the event loop (in the node's worker
processes, ``_verifier.py``, or a thread).  It hands each message
to the *ingest task* over a channel of :data:`INGEST_DEPTH`, which acts on
them in the order read: it waits for a batch's check, then places and stores
it (:meth:`Replica.commit`), plans Wants, queues answers.  So one message's
signatures are checked on another core while the next is parsed and the one
before is stored (the costly step is 55 % of a node's ingest; BENCHMARKS.md),
and when the ingest falls behind, the full channel stops the reader and QUIC
flow control stops the peer.  Neither task waits for the writer, so two nodes
busy answering each other's Wants cannot deadlock on each other's flow control.

The *writer* sends what the session owes, in this order:

====  ==================  ==================================================
1     Hello               first, once
2     Bye                 then finishes the stream; nothing after it
3     Wants               planned by :class:`~shinyo.wire.PeerSync`, <= 16 out
4     answers             the peer's Wants, each read from the store only when
                          its turn comes: one answer in memory at a time
5     Fork, Peers         charged messages (paced, below)
6     Push                batches of <= 64 new entries
7     Heads               pages of an anti-entropy round or a proof answer
====  ==================  ==================================================

Every queue is bounded.  Wants and answers are bounded by the protocol (16
each way); pushes by :data:`PUSH_QUEUE`, and a queue that overflows is
dropped in favour of an anti-entropy round (the peer then pulls what it
lacks, which costs a few Heads pages instead of thousands of Pushes); fork
proofs and proof answers by small constants.  Charged messages are paced to
90 % of the peer's default budget (10.1), so an honest node never trips it.

Misbehaviour costs penalty points (10.2); at ``DROP_SCORE`` the session sends
Bye, finishes, and asks the host to ban the peer's node key.
"""

from __future__ import annotations

import logging
import random
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Final, Protocol

import trio

from shinyo import ForkProof, Pseudonym, VerificationError
from shinyo._ratelimit import BYTE_BURST, BYTE_RATE, MESSAGE_BURST, MESSAGE_RATE
from shinyo.wire import (
    MAX_PUSH_ENTRIES,
    Bye,
    Entries,
    Fork,
    FrameDecoder,
    Heads,
    Hello,
    IncompatibleVersion,
    Message,
    Offence,
    PeerAddress,
    Peers,
    PeerSync,
    PenaltyScore,
    ProofRequest,
    Push,
    RateLimiter,
    SessionGuard,
    Unknown,
    Unsolicited,
    Want,
    WireError,
    encode_frame,
    heads_pages,
    offence_for,
)

from ._peerauth import TransportError
from ._quic import PeerConnection, QuicStream
from ._replica import Batch, Received, Replica
from ._verifier import SignatureWorkers

__all__ = ["PUSH_QUEUE", "PeerSession", "SessionHost"]

logger = logging.getLogger("shinyo.node")

PUSH_QUEUE: Final = 1024
"""Entries waiting to be pushed to one peer; beyond it, a Heads round instead."""
MAX_QUEUED_FORKS: Final = 64
MAX_PROOF_ANSWERS: Final = 4
"""Proof requests answered at once per peer; while that many are queued, more are
dropped unanswered (a queued answer per request would let a peer that stops
reading grow the queue without bound, wire.md 12)."""
PEX_INTERVAL: Final = 300.0
HELLO_TIMEOUT: Final = 10.0
"""Seconds a peer has to send its Hello (wire.md 6.2): until then its session
holds a connection slot and can do nothing else."""
WRITE_TIMEOUT: Final = 60.0
"""Seconds one frame may wait for the peer to read (transport.md 5.2): a peer
that stops reading holds its session's writer, so the session is aborted."""
SILENCE_TIMEOUT: Final = 300.0
"""A peer that sends no complete message for this long is gone (or holding a
slot with a partial frame): its session ends (wire.md 6.3; 5 x ANTI_ENTROPY_INTERVAL)."""
CLOSE_GRACE: Final = 2.0
"""Seconds to wait for the peer to finish its stream after our Bye."""
PACE: Final = 0.9
"""Our charged messages use this share of the peer's default budget (10.1)."""
SOFTWARE: Final = "shinyo/0.1.0"
INGEST_DEPTH: Final = 4
"""Admitted messages waiting for the ingest task; with the reader's one in hand,
at most this + 1 messages' entries are held parsed, and at most as many
signature checks run at once for one peer (bounded memory: wire.md 12)."""
THREAD_MIN_ENTRIES: Final = 8
"""Signatures worth a worker thread: below it, the hand-off costs more than the
check (one is ~60 µs; LIMITS.md), so the ingest task checks them itself."""

_CHARGED = (Heads, Push, Fork, Peers, ProofRequest, Unknown)


class SessionHost(Protocol):
    """What a session needs from its node (``_node.Node`` implements it)."""

    replica: Replica
    listen_port: int | None
    sync_interval: float
    verifier: SignatureWorkers
    """Checks entry signatures off the event loop, node-wide (``_verifier.py``)."""

    @property
    def node_key(self) -> Pseudonym: ...

    def wall_time(self) -> int: ...
    def on_hello(self, session: PeerSession) -> str | None:
        """Register the session; a reason string refuses it (e.g. a duplicate)."""
    def on_session_end(self, session: PeerSession) -> None: ...
    def on_peers(self, session: PeerSession, msg: Peers) -> None: ...
    def peer_hints(self, session: PeerSession) -> list[PeerAddress]: ...
    def gossip(self, received: Received, *, source: PeerSession | None) -> None: ...
    def ban(self, session: PeerSession, reason: str) -> None: ...
    def wants_released(self) -> None:
        """Ranges in flight were given up: every session plans its Wants again."""


@dataclass(slots=True, eq=False)
class _Inbound:
    """A message the reader admitted, on its way to the ingest task."""

    msg: Message
    batch: Batch | None = None
    """Its entries, parsed (Push, Entries): :meth:`Replica.commit` stores them."""
    checking: trio.Event | None = None
    """Set when the batch's signatures are checked (``SignatureWorkers.check``)."""


class _Stalled(Exception):
    """The writer stops: the peer has not read a frame for ``WRITE_TIMEOUT``."""


class _Dropped(Exception):
    """The reader stops: the session is ending (raised by :meth:`PeerSession.offend`)."""


class PeerSession:
    """The session with one peer; run it with :meth:`run`."""

    def __init__(self, host: SessionHost, conn: PeerConnection, stream: QuicStream, *,
                 outbound: bool, rng: random.Random) -> None:
        self.host = host
        self.conn = conn
        self.stream = stream
        self.outbound = outbound
        self.peer_key: Pseudonym = conn.peer_key
        self.address = conn.remote_address
        self._rng = rng
        now = trio.current_time()
        self.started = now
        self._last_message = now
        self.sync = PeerSync(claims=host.replica.claims)
        self.guard = SessionGuard()
        self.limiter = RateLimiter(now=now)
        self.penalty = PenaltyScore()
        self._pace = RateLimiter(now=now, message_rate=MESSAGE_RATE * PACE,
                                 message_burst=MESSAGE_BURST * PACE,
                                 byte_rate=BYTE_RATE * PACE, byte_burst=BYTE_BURST)
        self._deferred: bytes | None = None  # a charged frame the pacing budget held back
        self._wants: deque[Want] = deque()
        self._answers: deque[Want] = deque()
        self._charged: deque[Message] = deque()
        self._push: deque[bytes] = deque()
        self._heads: Iterator[Heads] | None = None
        self._heads_due = True  # a round on open (wire.md 7.2)
        self._proof_pages: deque[Iterator[Heads]] = deque()
        self._bye: Bye | None = None
        self._finish = False  # finish our stream (after Bye, or on the peer's)
        self._wake = trio.Event()
        self._read_done = trio.Event()
        self._write_done = trio.Event()
        self._ingest_done = trio.Event()
        self._read_scope = trio.CancelScope()
        self.hello: Hello | None = None
        self.proofs_listed: dict[Pseudonym, None] = {}
        """Subjects whose proof scope the peer has listed in full (the last Heads
        page answering our ProofRequest), the latest MAX_PROOF_ANSWERS."""
        self.registered = False
        self.closed_because = ""
        self.stats = {"entries_in": 0, "entries_out": 0, "pushed": 0, "push_overflows": 0,
                      "offences": 0, "proof_requests_dropped": 0, "wants_expired": 0}

    # -- what the host reads --------------------------------------------------

    @property
    def listen_address(self) -> tuple[str, int] | None:
        """Where the peer accepts connections: its source host and its Hello port."""
        if self.hello is None or self.hello.port is None:
            return None
        return self.address[0], self.hello.port

    @property
    def dial_address(self) -> tuple[str, int] | None:
        """Where to reach the peer: the address we dialled, else its listen address."""
        return self.address if self.outbound else self.listen_address

    @property
    def client_key(self) -> bytes:
        """The node key of the side that opened the connection (duplicate tie-break)."""
        return self.host.node_key.key if self.outbound else self.peer_key.key

    def __repr__(self) -> str:
        return f"<PeerSession {self.peer_key.short()} {self.address[0]}:{self.address[1]}>"

    # -- what the host asks -----------------------------------------------------

    def push(self, raws: list[bytes]) -> None:
        """Queue new entries for this peer (8.1); overflow turns into a Heads round."""
        if self._bye is not None or self._finish:
            return
        if len(self._push) + len(raws) > PUSH_QUEUE:
            self._push.clear()
            self._heads_due = True
            self.stats["push_overflows"] += 1
        else:
            self._push.extend(raws)
        self._wake.set()

    def push_fork(self, proof: ForkProof) -> None:
        if sum(isinstance(m, Fork) for m in self._charged) < MAX_QUEUED_FORKS:
            self._charged.append(Fork(proof=proof.encode()))
            self._wake.set()

    def request_proof(self, subject: Pseudonym) -> None:
        self._charged.append(ProofRequest(subject=subject))
        self._wake.set()

    def anti_entropy(self) -> None:
        self._heads_due = True
        self._wake.set()

    def replan(self) -> None:
        """Plan Wants now (ranges other sessions had in flight may be free)."""
        if self._bye is None and not self._finish:
            self._queue_wants(self.sync.next_wants(self.host.replica))

    def close(self, bye: Bye) -> None:
        """End the session: send ``bye``, finish the stream."""
        if self._bye is None and not self._finish:
            self._bye = bye
            self.closed_because = self.closed_because or f"{bye.code}: {bye.reason}"
            self._wake.set()

    # -- running ----------------------------------------------------------------

    async def run(self) -> None:
        send, receive = trio.open_memory_channel[_Inbound](INGEST_DEPTH)
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._write_loop, nursery.cancel_scope)
                nursery.start_soon(self._tick_loop)
                nursery.start_soon(self._hello_deadline)
                nursery.start_soon(self._ingest_loop, receive)
                with self._read_scope:
                    await self._read_loop(send, nursery)
                await self._ingest_done.wait()  # what was read is acted on first
                self._read_done.set()
                self.close(Bye(code="normal", reason=""))
                await self._write_done.wait()
                nursery.cancel_scope.cancel()
        finally:
            self.sync.release()  # its Wants will not be answered: others may ask
            self.host.on_session_end(self)
            with trio.CancelScope(shield=True):
                await self.conn.aclose()

    async def _read_loop(self, send: trio.MemorySendChannel[_Inbound],
                         nursery: trio.Nursery) -> None:
        decoder = FrameDecoder()
        with send:  # closed on the way out: the ingest task drains, then ends
            try:
                while True:
                    data = await self.stream.receive_some(65536)
                    if not data:
                        decoder.eof()
                        if not self._finish and self._bye is None:
                            self.closed_because = (self.closed_because
                                                   or "peer finished its stream")
                            self._finish = True
                            self._wake.set()
                        return
                    # A read's frames are admitted with no checkpoint between them
                    # (so, e.g., a 17th Want in one write is seen before the writer
                    # answers any), then handed on; a full channel stops reading.
                    admitted = [inbound for msg, size in decoder.feed_frames(data)
                                if (inbound := self._admit(msg, size, nursery)) is not None]
                    for inbound in admitted:
                        await send.send(inbound)
            except IncompatibleVersion as exc:
                logger.info("%r: %s", self, exc)
                self.close(Bye.for_error(exc))
            except WireError as exc:
                self._wire_error(exc)
            except _Dropped:
                pass
            except (trio.BrokenResourceError, trio.ClosedResourceError, TransportError) as exc:
                self.closed_because = self.closed_because or f"connection lost ({exc})"
                self._finish = True
                self._wake.set()

    def _wire_error(self, exc: WireError) -> None:
        offence = offence_for(exc)
        if offence is not None:
            self._charge(offence, str(exc), exc.code)
        self.close(Bye.for_error(exc))

    async def _hello_deadline(self) -> None:
        await trio.sleep(HELLO_TIMEOUT)
        if self.hello is None:
            self.close(Bye(code="normal", reason=f"no Hello within {HELLO_TIMEOUT:.0f} s"))

    async def _tick_loop(self) -> None:
        interval = self.host.sync_interval
        next_pex = trio.current_time() + PEX_INTERVAL
        overdue: set[Want] = set()
        while True:
            await trio.sleep(interval * self._rng.uniform(0.9, 1.1))
            if trio.current_time() - self._last_message > SILENCE_TIMEOUT:
                self.close(Bye(code="normal", reason="no message for "
                               f"{SILENCE_TIMEOUT:.0f} s"))
                return
            # Wants unanswered for a whole round: their ranges go to other peers
            # (WantClaims, wire.md 7.3), or one that never answers holds them back.
            expired = self.sync.expire(w for w in self.sync.outstanding if w in overdue)
            overdue = set(self.sync.outstanding)
            if expired:
                self.stats["wants_expired"] += len(expired)
                self.host.wants_released()
            self.anti_entropy()
            if trio.current_time() >= next_pex and self.registered:
                self._send_peers()
                next_pex = trio.current_time() + PEX_INTERVAL

    # -- receiving ----------------------------------------------------------------

    def offend(self, exc: VerificationError) -> None:
        """Charge the peer for ``exc`` (10.2); drop it at ``DROP_SCORE``."""
        offence = offence_for(exc)
        code = exc.code if isinstance(exc, WireError) else None
        if offence is not None and self._charge(offence, str(exc), code):
            raise _Dropped

    def _charge(self, offence: Offence, what: str, code: str | None = None) -> bool:
        """Add ``offence``'s points; True if the peer is now dropped (Bye queued)."""
        self.stats["offences"] += 1
        logger.info("%r: %s (%s, %d points)", self, what, offence.value, offence.points)
        if not self.penalty.charge(offence, trio.current_time()):
            return False
        self.close(Bye(code=code or "misbehaviour",
                       reason="penalty score reached the drop threshold"))
        self.host.ban(self, f"misbehaviour (last: {what})")
        return True

    def _admit(self, msg: Message, size: int, nursery: trio.Nursery) -> _Inbound | None:
        """The reader's part: order rules, rate limit, and for entries the parse,
        with their signature check started off the event loop."""
        self._last_message = trio.current_time()
        self.guard.receive(msg)  # order rules: raises ProtocolViolation
        if self._bye is not None or self._finish:
            return None  # closing: read to the end, act on nothing
        if isinstance(msg, _CHARGED) and not self.limiter.admit(size, trio.current_time()):
            if self._charge(Offence.RATE, "over the rate limit"):
                raise _Dropped
            return None
        if isinstance(msg, Bye):
            self.closed_because = f"peer said bye ({msg.code}: {msg.reason})"
            self._finish = True
            self._wake.set()
            return None
        if isinstance(msg, Want):
            # Counted as read, with no checkpoint since the read (above): so a
            # 17th Want in one write is over the bound before any is answered.
            self.sync.accept_want(msg)  # raises ProtocolViolation beyond 16
        inbound = _Inbound(msg=msg)
        if isinstance(msg, Push) or (isinstance(msg, Entries) and self.sync.expects(msg)):
            # An answer nobody asked for is refused unparsed (by _act, in order).
            inbound.batch = batch = self.host.replica.prepare(
                msg.entries, answer=msg if isinstance(msg, Entries) else None)
            if batch.unchecked >= THREAD_MIN_ENTRIES:
                inbound.checking = trio.Event()
                nursery.start_soon(self._check, inbound)
        return inbound

    async def _check(self, inbound: _Inbound) -> None:
        assert inbound.batch is not None and inbound.checking is not None
        try:
            await self.host.verifier.check(inbound.batch)
        finally:
            inbound.checking.set()

    async def _ingest_loop(self, receive: trio.MemoryReceiveChannel[_Inbound]) -> None:
        """Act on what the reader admitted, in order (wire.md 7.4: an answer's
        entries are placed in order, and Heads are planned against them)."""
        try:
            with receive:
                async for inbound in receive:
                    if inbound.checking is not None:
                        await inbound.checking.wait()
                    try:
                        self._act(inbound)
                    except WireError as exc:
                        self._wire_error(exc)
        except _Dropped:
            self._read_scope.cancel()
        finally:
            self._ingest_done.set()

    def _act(self, inbound: _Inbound) -> None:
        msg, batch = inbound.msg, inbound.batch
        if batch is not None:
            # Entries were read before any close: they are stored (verified
            # entries are never thrown away), whatever happened since.
            if isinstance(msg, Entries):
                self._on_entries(msg, batch)
            else:
                self._store(batch)
            return
        if self._bye is not None or self._finish:
            return  # closing: act on nothing more
        if isinstance(msg, Hello):
            self._on_hello(msg)
        elif isinstance(msg, Want):
            # Queued in order: its answer follows whatever was read before it.
            self._answers.append(msg)
            self._wake.set()
        elif isinstance(msg, Entries):
            self._on_entries(msg, None)
        elif isinstance(msg, Heads):
            plan = self.sync.on_heads(msg, self.host.replica)
            self._queue_wants(plan.wants)
            if msg.scope is not None and msg.through is None:
                # The last page of the peer's answer to a ProofRequest (7.6).
                self.proofs_listed.pop(msg.scope, None)
                self.proofs_listed[msg.scope] = None
                while len(self.proofs_listed) > MAX_PROOF_ANSWERS:
                    del self.proofs_listed[next(iter(self.proofs_listed))]
        elif isinstance(msg, Fork):
            self._on_fork(msg)
        elif isinstance(msg, Peers):
            self.host.on_peers(self, msg)
        elif isinstance(msg, ProofRequest):
            self._on_proof_request(msg)
        # Unknown: ignored (wire.md 11).

    def _on_hello(self, msg: Hello) -> None:
        self.hello = msg
        refusal = self.host.on_hello(self)
        if refusal is not None:
            self.close(Bye(code="normal", reason=refusal))
            raise _Dropped
        self.registered = True
        self._send_peers()
        # Fork proofs are news only once (8.3): a peer that was away when one
        # was stored learns it here, as a session opens.
        for proof in self.host.replica.ledger.store.forks(limit=MAX_QUEUED_FORKS):
            self.push_fork(proof)

    def _on_entries(self, msg: Entries, batch: Batch | None) -> None:
        try:
            self.sync.on_entries(msg)
        except Unsolicited as exc:
            self.offend(exc)
            return
        if batch is None:  # expected now, not when it was read (a Want expired)
            batch = self.host.replica.prepare(msg.entries, answer=msg)
        self._store(batch)

    def _store(self, batch: Batch) -> None:
        """Check what no worker checked (a small batch), then place and store."""
        if not batch.checked:
            Replica.check(batch)
        self._apply(self.host.replica.commit(batch, now=self.host.wall_time()))

    def _apply(self, received: Received) -> None:
        self.stats["entries_in"] += len(received.stored)
        for a, seq in received.ahead:
            self.sync.note(a, seq)
        for a, seq in received.evidence:
            self.sync.fetch(a, seq)
        for a in received.failed_authors:
            self.sync.abandon(a)
        self.host.gossip(received, source=self)
        for exc in received.errors:
            self.offend(exc)
        self._queue_wants(self.sync.next_wants(self.host.replica))

    def _on_fork(self, msg: Fork) -> None:
        try:
            proof = ForkProof.decode(msg.proof)
        except VerificationError as exc:
            self.offend(exc)
            return
        if self.host.replica.receive_fork(proof):
            self.host.gossip(Received(forks=[proof]), source=self)

    def _on_proof_request(self, msg: ProofRequest) -> None:
        if len(self._proof_pages) >= MAX_PROOF_ANSWERS:
            self.stats["proof_requests_dropped"] += 1
            return
        replica = self.host.replica
        scope = replica.proof_scope(msg.subject)
        store = replica.ledger.store
        for author in store.fork_authors().intersection(scope):
            for proof in store.forks(author):
                self.push_fork(proof)
        self._proof_pages.append(heads_pages(replica.all_heads(scope), scope=msg.subject))
        self._wake.set()

    def _queue_wants(self, wants: tuple[Want, ...]) -> None:
        if wants:
            self._wants.extend(wants)
            self._wake.set()

    def _send_peers(self) -> None:
        hints = self.host.peer_hints(self)
        if hints:
            self._charged.append(Peers(peers=tuple(hints)))
            self._wake.set()

    # -- sending ----------------------------------------------------------------

    async def _write_loop(self, session_scope: trio.CancelScope) -> None:
        try:
            await self._send(encode_frame(Hello(port=self.host.listen_port, software=SOFTWARE)))
            while True:
                if self._bye is not None or self._finish:
                    if self._bye is not None:
                        await self._send(encode_frame(self._bye))
                    await self.stream.send_eof()
                    break
                frame = self._next_frame()
                if frame is None:
                    await self._idle()
                    continue
                await self._send(frame)
            with trio.move_on_after(CLOSE_GRACE):  # for the peer to finish its side
                await self._read_done.wait()
        except (trio.BrokenResourceError, trio.ClosedResourceError, TransportError) as exc:
            self.closed_because = self.closed_because or f"connection lost ({exc})"
        except _Stalled:
            # No Bye: a peer that reads nothing would not read it either.
            self.closed_because = (f"the peer read nothing for {WRITE_TIMEOUT:.0f} s "
                                   "(transport.md 5.2)")
            logger.info("%r: %s", self, self.closed_because)
        self._write_done.set()
        session_scope.cancel()

    async def _send(self, frame: bytes) -> None:
        with trio.move_on_after(WRITE_TIMEOUT) as waited:
            await self.stream.send_all(frame)
        if waited.cancelled_caught:
            raise _Stalled

    async def _idle(self) -> None:
        """Wait for work, or for the pacing budget to allow a charged message."""
        self._wake = trio.Event()
        with trio.move_on_after(0.05 if self._charged_pending() else float("inf")):
            await self._wake.wait()

    def _charged_pending(self) -> bool:
        return bool(self._deferred or self._charged or self._push or self._heads is not None
                    or self._heads_due or self._proof_pages)

    def _next_frame(self) -> bytes | None:
        if self._wants:
            return encode_frame(self._wants.popleft())
        if self._answers:
            return self._answer(self._answers.popleft())
        frame = self._deferred
        if frame is None:
            msg = self._next_charged()
            if msg is None:
                return None
            frame = encode_frame(msg)
        if not self._pace.admit(len(frame), trio.current_time()):
            self._deferred = frame  # waits, ahead of every other charged message
            return None
        self._deferred = None
        return frame

    def _answer(self, want: Want) -> bytes:
        raws = self.host.replica.ledger.store.range(want.author, want.first, want.last,
                                                    limit=want.span)
        self.sync.answered()
        self.stats["entries_out"] += len(raws)
        return encode_frame(Entries(author=want.author, first=want.first, last=want.last,
                                    entries=tuple(raws)))

    def _next_charged(self) -> Message | None:
        if self._charged:
            return self._charged.popleft()
        if self._push:
            batch = [self._push.popleft() for _ in range(min(MAX_PUSH_ENTRIES, len(self._push)))]
            self.stats["pushed"] += len(batch)
            return Push(entries=tuple(batch))
        if self._proof_pages:
            page = next(self._proof_pages[0], None)
            if page is None:
                self._proof_pages.popleft()
                return self._next_charged()
            return page
        if self._heads is None and self._heads_due:
            self._heads_due = False
            self._heads = heads_pages(self.host.replica.all_heads())
        if self._heads is not None:
            page = next(self._heads, None)
            if page is None:
                self._heads = None
                return self._next_charged()
            return page
        return None
