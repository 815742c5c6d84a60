"""The node: one identity, its store, its QUIC endpoint and its peer sessions.

Theory of operation
-------------------
:func:`open_node` opens the store, loads the identity, rebuilds the ledger
(every stored chain re-validated), opens the QUIC endpoint and starts four
kinds of task in one nursery:

* the endpoint's accept loop: each authenticated inbound connection waits for
  the client's session stream and runs a :class:`~._peer.PeerSession`;
* the *dialer*: keeps up to ``max_peers`` sessions, dialling known peers
  (config, inbound, peer exchange) with exponential backoff per address;
* the *ticker*: once a second, makes the user's due steps (reveals) and
  gossips them;
* the control socket, if asked (``_commands.py`` maps its commands).

The node is the sessions' host (:class:`~._peer.SessionHost`): it registers a
session once its Hello arrives, keeps one session per peer node key (of two
connections between the same pair, both sides keep the one the lower node key
opened, transport.md 6), gossips what a session stored to a sample of the others (wire.md
8.1), keeps and hands out peer hints (9), and bans a peer that reached the
drop score (10.2) by node key and by address.

All of it runs in one trio thread: the store and the ledger are only touched
between checkpoints, so no lock is needed.  The user's steps are plain methods
(``propose``, ``rate``, ...) that commit before they return and then gossip.
"""

from __future__ import annotations

import logging
import os
import random
import time
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from typing import Any, Final

import trio

from shinyo import (
    Entry,
    LocalProtocolError,
    Pseudonym,
    ShinyoError,
    SigningIdentity,
    terms_digest,
    text_digest,
)
from shinyo._constants import NONCE_SIZE
from shinyo._ratelimit import BAN_TIME as _BAN_SECONDS
from shinyo._wire import MAX_PEERS as MAX_PEER_HINTS
from shinyo.wire import Bye, PeerAddress, Peers, is_news, push_targets

from ._config import NodeConfig
from ._keystore import load_keyfile
from ._ledger import Ledger
from ._netsim import Address, DatagramTransport
from ._peer import PeerSession
from ._peerauth import TransportError
from ._quic import PeerConnection, QuicEndpoint, TransportLimits
from ._replica import Received, Replica
from ._store import PeerSource, Store
from ._verifier import SignatureWorkers

__all__ = ["BAN_TIME", "MAX_BANS", "Node", "NodeError", "open_node"]

logger = logging.getLogger("shinyo.node")

BAN_TIME: Final = int(_BAN_SECONDS)
MAX_BANS: Final = 4096
"""Node keys refused at once (wire.md 10.2).  Node keys cost nothing to make, so
without a bound every misbehaving session would leave a ban behind for an hour."""
STORE_FILE: Final = "store.sqlite"
SESSION_STREAM_TIMEOUT: Final = 10.0
"""Seconds an inbound connection may take to open its session stream."""
DIAL_TICK: Final = 1.0
PROBE_TIMEOUT: Final = 3.0
"""Seconds a peer has to acknowledge a PING on a session it seems to have replaced
(a live peer answers within a round trip; this leaves room for lost packets)."""
_NODE_SEED: Final = "node_seed"


class NodeError(ShinyoError):
    """The node cannot start or do what was asked (a local error)."""


class Node:
    """A running node; get one from :func:`open_node`."""

    def __init__(self, *, config: NodeConfig, store: Store, ledger: Ledger,
                 endpoint: QuicEndpoint, nursery: trio.Nursery,
                 clock: Callable[[], float], rng: random.Random) -> None:
        self.config = config
        self.store = store
        self.ledger = ledger
        self.replica = Replica(ledger)
        self.endpoint = endpoint
        self._nursery = nursery
        self._clock = clock
        self._rng = rng
        self.sessions: dict[Pseudonym, PeerSession] = {}
        self._all_sessions: set[PeerSession] = set()
        self._dialing: set[Address] = set()
        self._next_dial: dict[Address, tuple[float, int]] = {}  # -> (not before, failures)
        self._self_addresses: set[Address] = set()
        self._banned: dict[bytes, float] = {}  # node key -> trio time the ban ends
        self._changed = trio.lowlevel.ParkingLot()
        self._dial_wake = trio.Event()
        self._probing: set[PeerSession] = set()
        self._started = trio.current_time()
        self._closing = False  # shutting down: no new session, no new dial
        self.listen_port: int | None = endpoint.address[1]
        self.sync_interval = config.sync_interval
        # Entry signatures are checked off the event loop (``_verifier.py``).
        self.verifier = SignatureWorkers(processes=config.resolved_verify_processes,
                                         nursery=nursery)

    # -- identity ---------------------------------------------------------------

    @property
    def pseudonym(self) -> Pseudonym:
        return self.ledger.pseudonym

    @property
    def node_key(self) -> Pseudonym:
        return self.endpoint.node_key

    @property
    def address(self) -> Address:
        return self.endpoint.address

    def wall_time(self) -> int:
        return int(self._clock())

    # -- the user's steps (shinyo.md 7), each committed and then gossiped --------

    def propose(self, counterparty: Pseudonym, *, context: str, terms: bytes = b"") -> Entry:
        """Propose a trade; the chain carries only a salted digest of ``terms``
        (shinyo.md 5.1).  The salt and terms stay in the store, under
        ``terms:<digest>``, for the user to show the counterparty."""
        salt = os.urandom(16)
        digest = terms_digest(terms, salt=salt)
        # Stored before the entry, like a rating's opening (_ledger.py): a crash
        # between the two leaves unused terms, never a proposal on the chain whose
        # terms nobody can show any more.  (The trade id is not known yet; the
        # digest is, and the proposal carries it.)
        self.store.set_meta(f"terms:{digest.hex()}", salt + terms)
        entry = self.ledger.propose(counterparty, context=context, now=self.wall_time(),
                                    terms=digest)
        return self._local(entry)

    def accept(self, trade: bytes) -> Entry:
        return self._local(self.ledger.accept(trade, now=self.wall_time()))

    def cancel(self, trade: bytes) -> Entry:
        return self._local(self.ledger.cancel(trade, now=self.wall_time()))

    def rate(self, trade: bytes, *, stars: int, tags: Sequence[str] = (),
             comment: str | None = None) -> Entry:
        """Commit a blind rating; the reveal follows by itself when due.  The chain
        carries a salted digest of ``comment`` (shinyo.md 5.3); the text and salt
        stay in the store, for the user to publish where the trade happened."""
        digest = None
        if comment is not None:
            salt = os.urandom(16)
            digest = text_digest(comment, salt=salt)
            self.store.set_meta(f"comment:{trade.hex()}", salt + comment.encode())
        return self._local(self.ledger.rate(trade, stars=stars, nonce=os.urandom(NONCE_SIZE),
                                            tags=tags, comment=digest, now=self.wall_time()))

    def retract(self, trade: bytes) -> Entry:
        return self._local(self.ledger.retract(trade, now=self.wall_time()))

    def respond(self, trade: bytes, *, text: str) -> Entry:
        """Answer the rating received; like a comment, only a salted digest of
        ``text`` goes on the chain (shinyo.md 5)."""
        salt = os.urandom(16)
        self.store.set_meta(f"response:{trade.hex()}", salt + text.encode())
        return self._local(self.ledger.respond(trade, text=text_digest(text, salt=salt),
                                               now=self.wall_time()))

    def advance(self) -> list[Entry]:
        """Make the steps that are due and need no decision (reveals), now."""
        made = self.ledger.advance(now=self.wall_time())
        for entry in made:
            self._local(entry)
        return made

    def _local(self, entry: Entry) -> Entry:
        self.replica.seen.add(entry.id)
        self.gossip(Received(stored=[entry]), source=None)
        return entry

    # -- reading ------------------------------------------------------------------

    def trades(self) -> list[dict[str, Any]]:
        return self.ledger.trades(now=self.wall_time())

    def proof(self, subject: Pseudonym) -> bytes:
        return self.ledger.proof(subject)

    def status(self) -> dict[str, Any]:
        held = self.replica.held
        out = self.ledger.status()
        out.update({
            "node_key": self.node_key.to_text(),
            "listen": f"{self.address[0]}:{self.address[1]}",
            "uptime": round(trio.current_time() - self._started, 1),
            "peers": len(self.sessions),
            "known_peers": len(self.store.peers()),
            "sync": {
                "wants_in_flight": sum(len(s.sync.outstanding) for s in self.sessions.values()),
                "held_entries": len(held),
                "held_bytes": held.nbytes,
            },
            "verify": {"processes": self.verifier.processes,
                       "running": self.verifier.running, **self.verifier.stats},
        })
        return out

    def peers(self) -> list[dict[str, Any]]:
        now = trio.current_time()
        rows = []
        for s in sorted(self.sessions.values(), key=lambda s: s.peer_key.key):
            listen = s.listen_address
            rows.append({
                "node": s.peer_key.to_text(),
                "address": f"{s.address[0]}:{s.address[1]}",
                "listen": None if listen is None else f"{listen[0]}:{listen[1]}",
                "direction": "out" if s.outbound else "in",
                "connected_for": round(now - s.started, 1),
                "penalty": round(s.penalty.value(now), 1),
                **s.stats,
            })
        return rows

    def known_peers(self) -> list[dict[str, Any]]:
        now = self.wall_time()
        return [{"address": f"{r.host}:{r.port}", "source": r.source.value,
                 "node": None if r.node_key is None else Pseudonym(key=r.node_key).to_text(),
                 "failures": r.failures, "banned": r.banned(now)}
                for r in self.store.peers()]

    # -- waiting (tests and apps) ---------------------------------------------------

    async def wait_until(self, predicate: Callable[[], bool], *,
                         timeout: float | None = None) -> None:
        """Wait until ``predicate()`` holds; it is checked after every change
        (entries stored, sessions opened or closed).  Raises trio.TooSlowError
        after ``timeout`` seconds."""
        with trio.fail_after(float("inf") if timeout is None else timeout):
            while not predicate():
                await self._changed.park()

    def _notify(self) -> None:
        self._changed.unpark_all()

    # -- peers -----------------------------------------------------------------------

    def add_peer(self, address: Address) -> None:
        """Remember ``address`` as an operator-given peer and dial it soon."""
        host, port = address
        self.store.upsert_peer(host, port, now=self.wall_time(), source=PeerSource.CONFIG)
        self._next_dial.pop((host, port), None)
        self._dial_wake.set()

    def anti_entropy(self) -> None:
        """Start an anti-entropy round with every peer now (wire.md 7.2)."""
        for s in self.sessions.values():
            s.anti_entropy()

    def request_proof(self, subject: Pseudonym) -> int:
        """Ask every peer for the chains a proof about ``subject`` needs (7.6)."""
        for s in self.sessions.values():
            s.request_proof(subject)
        return len(self.sessions)

    # -- SessionHost --------------------------------------------------------------------

    def on_hello(self, session: PeerSession) -> str | None:
        if self._closing:
            return "shutting down"
        key = session.peer_key
        if key == self.node_key:
            if session.outbound:
                self._self_addresses.add(session.address)
            return "a connection to itself"
        if self._is_banned(key.key):
            return "banned"
        old = self.sessions.get(key)
        if old is not None:
            # Both sides keep the connection the lower node key opened (transport.md
            # 6); of two the same node opened, the one with the lower channel
            # binding, which both ends share.  ("Keep the older" is not enough:
            # each end sees the Hellos in its own order and may keep the other.)
            if ((old.client_key, old.conn.channel_binding)
                    <= (session.client_key, session.conn.channel_binding)):
                # The rule assumes both connections are alive.  A peer that was
                # killed and restarted dials again while its old connection still
                # looks open here (until the idle timeout): check that the old one
                # still answers, so the peer's next dial is kept if it does not.
                self._probe(old)
                return "duplicate connection"
            old.close(Bye(code="normal", reason="duplicate connection"))
        self.sessions[key] = session
        address = session.dial_address
        if session.listen_address is not None and address is not None:
            now = self.wall_time()
            # An outbound session was dialled from a row of the table, which keeps
            # its source (upsert_peer keeps the stronger): a dialled hint stays a
            # hint, ranked and re-checked as one (wire.md 9).
            source = PeerSource.EXCHANGE if session.outbound else PeerSource.INBOUND
            host, port = address
            try:
                if self.store.upsert_peer(host, port, now=now, source=source, node_key=key.key):
                    self.store.record_success(host, port, now=now, node_key=key.key)
            except LocalProtocolError:
                pass  # an address the peer table cannot hold; the session still runs
            self._next_dial.pop((host, port), None)
        logger.info("session with %s at %s:%d (%s)", key.short(), *session.address,
                    "outbound" if session.outbound else "inbound")
        self._notify()
        return None

    def _probe(self, session: PeerSession) -> None:
        if session not in self._probing and not self._closing:
            self._probing.add(session)
            self._nursery.start_soon(self._probe_session, session)

    async def _probe_session(self, session: PeerSession) -> None:
        try:
            alive = await session.conn.ping(PROBE_TIMEOUT)
        finally:
            self._probing.discard(session)
        if not alive and self.sessions.get(session.peer_key) is session:
            logger.info("session with %s: no answer to a probe in %.0f s; the peer is gone",
                        session.peer_key.short(), PROBE_TIMEOUT)
            # Unregistered now, not when its Bye grace ends: the peer's next Hello
            # must find no session to lose against.
            del self.sessions[session.peer_key]
            session.close(Bye(code="normal", reason="no answer to a probe"))
            self._notify()

    def on_session_end(self, session: PeerSession) -> None:
        self._all_sessions.discard(session)
        if self.sessions.get(session.peer_key) is session:
            del self.sessions[session.peer_key]
            logger.info("session with %s ended: %s", session.peer_key.short(),
                        session.closed_because or "closed")
            if session.outbound:
                self._next_dial[session.address] = (
                    trio.current_time() + self.config.reconnect_min, 0)
            self._dial_wake.set()
        self.wants_released()  # the session's claims went with it
        self._notify()

    def wants_released(self) -> None:
        for s in self.sessions.values():
            s.replan()

    def on_peers(self, session: PeerSession, msg: Peers) -> None:
        if not self.config.peer_exchange:
            return
        now = self.wall_time()
        for hint in msg.peers:
            if hint.node == self.node_key.key or (hint.host, hint.port) in self._self_addresses:
                continue
            try:
                self.store.upsert_peer(hint.host, hint.port, now=now,
                                       source=PeerSource.EXCHANGE, node_key=hint.node)
            except LocalProtocolError:
                continue
        self._dial_wake.set()

    def peer_hints(self, session: PeerSession) -> list[PeerAddress]:
        if not self.config.peer_exchange:
            return []
        hints = []
        for s in self.sessions.values():
            address = s.dial_address
            if s is session or s.listen_address is None or address is None:
                continue
            try:
                hints.append(PeerAddress(host=address[0], port=address[1], node=s.peer_key.key))
            except ShinyoError:
                continue  # a host the wire cannot carry (e.g. a zone index)
        self._rng.shuffle(hints)
        return hints[:MAX_PEER_HINTS]

    def gossip(self, received: Received, *, source: PeerSession | None) -> None:
        peers = list(self.sessions.values())
        now = self.wall_time()
        raws = [e.encode() for e in received.stored if is_news(e, now=now)]  # wire.md 8.1
        if raws:
            # A session still waiting for its peer's Hello is not in ``sessions``,
            # but its opening Heads round (wire.md 7.2) may already be out, taken
            # before these entries: push to it as well, or the peer learns of them
            # only at the next round, ``sync_interval`` later.  (If its Hello is
            # refused, the push is dropped with it.)
            opening = [s for s in self._all_sessions if not s.registered and s is not source]
            for s in [*push_targets(peers, source=source, rng=self._rng), *opening]:
                s.push(raws)
        for proof in received.forks:
            for s in push_targets(peers, source=source, rng=self._rng):
                s.push_fork(proof)
        if received.stored or received.forks:
            self._notify()

    def _ban(self, node_key: bytes, until: float) -> None:
        banned = self._banned
        banned.pop(node_key, None)
        if len(banned) >= MAX_BANS:
            now = trio.current_time()
            for key in [k for k, end in banned.items() if end <= now]:
                del banned[key]
            while len(banned) >= MAX_BANS:  # the ban ending first is lifted early
                del banned[min(banned, key=banned.__getitem__)]
        banned[node_key] = until

    def _is_banned(self, node_key: bytes) -> bool:
        return self._banned.get(node_key, 0.0) > trio.current_time()

    def ban(self, session: PeerSession, reason: str) -> None:
        logger.warning("dropping %s at %s:%d: %s", session.peer_key.short(), *session.address,
                       reason)
        self._ban(session.peer_key.key, trio.current_time() + BAN_TIME)
        address = session.dial_address
        if address is not None and self.store.peer(*address) is not None:
            self.store.ban(*address, until=self.wall_time() + BAN_TIME)

    # -- tasks ------------------------------------------------------------------------

    async def _serve_inbound(self, conn: PeerConnection) -> None:
        if self._is_banned(conn.peer_key.key):
            return  # closed by serve() when we return
        stream = None
        with trio.move_on_after(SESSION_STREAM_TIMEOUT):
            try:
                stream = await conn.accept_stream()
            except (TransportError, trio.BrokenResourceError, trio.ClosedResourceError):
                return
        if stream is not None:
            await self._run_session(conn, stream, outbound=False)

    async def _run_session(self, conn: PeerConnection, stream: Any, *, outbound: bool) -> None:
        session = PeerSession(self, conn, stream, outbound=outbound,
                              rng=random.Random(self._rng.getrandbits(64)))
        self._all_sessions.add(session)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(_refuse_streams, conn)
            await session.run()
            nursery.cancel_scope.cancel()

    async def _dial(self, address: Address, expect_key: Pseudonym | None) -> None:
        failures = self._next_dial.get(address, (0.0, 0))[1]
        try:
            try:
                conn = await self.endpoint.connect(address, expect_key=expect_key)
                stream = await conn.open_stream()
            except (TransportError, OSError, trio.BrokenResourceError) as exc:
                failures += 1
                delay = min(self.config.reconnect_max,
                            self.config.reconnect_min * 2 ** min(failures, 20))
                self._next_dial[address] = (
                    trio.current_time() + delay * self._rng.uniform(0.5, 1.0), failures)
                logger.info("cannot reach %s:%d (%s); next try in %.0f s", *address, exc, delay)
                if self.store.peer(*address) is not None:
                    self.store.record_failure(*address)
                return
            self._next_dial.pop(address, None)
        finally:
            self._dialing.discard(address)
        await self._run_session(conn, stream, outbound=True)

    async def _dialer(self) -> None:
        while True:
            self._dial_candidates()
            with trio.move_on_after(DIAL_TICK):
                await self._dial_wake.wait()
            self._dial_wake = trio.Event()

    def _dial_candidates(self) -> None:
        # Up to max_peers sessions; and however many inbound ones there are, at
        # least min_outbound of our own choosing (inbound peers may all be one
        # attacker's, spec/transport.md 9.3).
        outbound = sum(1 for s in self.sessions.values() if s.outbound)
        room = max(self.config.max_peers - len(self.sessions),
                   min_outbound(self.config) - outbound) - len(self._dialing)
        if room <= 0 or self._closing:
            return
        now = trio.current_time()
        connected = {s.address for s in self._all_sessions}
        connected |= {a for s in self._all_sessions if (a := s.listen_address) is not None}
        keys = {s.peer_key.key for s in self.sessions.values()}
        for record in self.store.dial_candidates(now=self.wall_time(), limit=room * 4 + 16):
            address = (record.host, record.port)
            if room <= 0:
                break
            if (address in connected or address in self._dialing
                    or address in self._self_addresses or address == self.address
                    or record.node_key in keys or record.node_key == self.node_key.key
                    or self._next_dial.get(address, (0.0, 0))[0] > now):
                continue
            if record.node_key is not None and self._is_banned(record.node_key):
                continue
            expect = (Pseudonym(key=record.node_key)
                      if record.source is PeerSource.EXCHANGE and record.node_key else None)
            room -= 1
            # Marked now, not when the task starts: the next tick may come first.
            self._dialing.add(address)
            self._nursery.start_soon(self._dial, address, expect)

    async def _ticker(self) -> None:
        while True:
            await trio.sleep(1.0)
            try:
                self.advance()
            except ShinyoError as exc:  # pragma: no cover - a reveal the core refuses
                logger.error("could not make a due step: %s", exc)

    async def _shutdown(self) -> None:
        self._closing = True
        for s in list(self._all_sessions):
            s.close(Bye(code="normal", reason="shutting down"))
        with trio.move_on_after(3.0):
            while self._all_sessions:
                await self._changed.park()
        await self.verifier.aclose()


async def _refuse_streams(conn: PeerConnection) -> None:
    """Close every stream the peer opens besides the session's (spec/transport.md
    5.1 allows it): unread, each would hold a flow-control window of its bytes
    (256 KiB) for as long as the connection lasts."""
    while True:
        try:
            stream = await conn.accept_stream()
        except (TransportError, trio.BrokenResourceError, trio.ClosedResourceError):
            return
        await stream.aclose()  # STOP_SENDING with STREAM_CLOSED; its bytes are dropped


def min_outbound(config: NodeConfig) -> int:
    """Sessions the node dials itself and keeps room for, whatever dials it."""
    return max(1, config.max_peers // 4)


def _node_identity(store: Store) -> SigningIdentity:
    """The node key (transport.md 4): random, kept in the store, not the pseudonym."""
    seed = store.get_meta(_NODE_SEED)
    if seed is None:
        seed = os.urandom(32)
        store.set_meta(_NODE_SEED, seed)
    return SigningIdentity.from_seed(seed)


def load_identity(config: NodeConfig, passphrase: str | None) -> SigningIdentity:
    path = config.path(config.key_file)
    if not path.exists():
        raise NodeError(f"no identity key at {path}; create one with "
                        f"`shinyo id new --home {config.home}`")
    loaded = load_keyfile(path, passphrase=passphrase)
    if loaded.insecure_plaintext:
        logger.warning("INSECURE: the identity key %s is stored UNENCRYPTED; "
                       "use this node for demos only", path)
    return loaded.identity


@asynccontextmanager
async def open_node(
    config: NodeConfig,
    *,
    identity: SigningIdentity | None = None,
    passphrase: str | None = None,
    datagrams: DatagramTransport | None = None,
    clock: Callable[[], float] = time.time,
    seed: int | None = None,
) -> AsyncIterator[Node]:
    """Run a node for the duration of the ``async with`` block.

    The identity comes from ``identity`` or the config's key file (with
    ``passphrase``).  ``datagrams`` replaces the UDP socket (tests use a
    :class:`~._netsim.MemoryNetwork`); ``clock`` gives wall-clock seconds for
    entry timestamps; ``seed`` makes gossip sampling and jitter reproducible.
    """
    config.home.mkdir(mode=0o700, parents=True, exist_ok=True)
    if identity is None:
        identity = load_identity(config, passphrase)
    store = Store.open(config.path(STORE_FILE), synchronous=config.synchronous)
    try:
        ledger = Ledger.open(store, identity)
        host, port = config.listen_address
        # Inbound connections cannot take every slot (spec/transport.md 9.3): a
        # cap per source host, and room kept for the node's own dials.
        limits = TransportLimits(idle_timeout=config.idle_timeout,
                                 max_connections=config.max_connections,
                                 max_inbound_per_host=config.inbound_per_host,
                                 reserved_outbound=min_outbound(config))
        endpoint_args: dict[str, Any] = (
            {"datagrams": datagrams} if datagrams is not None else {"host": host, "port": port})
        async with QuicEndpoint.open(node_identity=_node_identity(store), limits=limits,
                                     **endpoint_args) as endpoint, trio.open_nursery() as nursery:
            node = Node(config=config, store=store, ledger=ledger, endpoint=endpoint,
                        nursery=nursery, clock=clock,
                        rng=random.Random(seed if seed is not None else os.urandom(16)))
            for h, p in config.bootstrap_addresses:
                node.add_peer((h, p))
            node.verifier.start()
            await nursery.start(endpoint.serve, node._serve_inbound)
            nursery.start_soon(node._dialer)
            nursery.start_soon(node._ticker)
            logger.info("node %s (pseudonym %s) listening on %s:%d",
                        node.node_key.short(), node.pseudonym.short(), *node.address)
            try:
                yield node
            finally:
                with trio.CancelScope(shield=True):
                    await node._shutdown()
                nursery.cancel_scope.cancel()
    finally:
        store.close()
