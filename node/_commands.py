"""The control commands a running node answers (over ``_control.py``'s socket).

Each command takes a JSON object of arguments and returns JSON.  Arguments are
checked here, with messages a user can act on; anything the protocol core
refuses comes back as its own error type (``LocalProtocolError``, ...).  The
CLI (``tools/cli_node.py``) is one client; any language can be another:
docs/CONTROL.md lists every command.

Trades are named by a prefix of their hex id (at least 8 digits), as the CLI
shows them.  Byte strings travel as hex, a proof bundle as base64.
"""

from __future__ import annotations

import base64
from collections.abc import Awaitable, Callable
from typing import Any, Final

import trio

from shinyo import LocalProtocolError, Pseudonym, ShinyoError, TrustLimits

from ._config import parse_address
from ._node import Node, NodeError
from ._peer import PeerSession
from ._trust_query import TrustQuery, answer, snapshot

__all__ = ["COMMANDS", "ControlCommands"]

PROOF_FETCH_TIMEOUT: Final = 20.0
"""Seconds ``proof`` may spend fetching missing chains from peers (wire.md 7.6)."""
FETCH_POLL: Final = 0.1
"""Seconds between two looks at a proof fetch's progress."""


def _arg(args: dict[str, Any], name: str, kind: type, *, default: Any = ...) -> Any:
    if name not in args:
        if default is ...:
            raise NodeError(f"missing argument {name!r}")
        return default
    value = args[name]
    if kind is int and (type(value) is not int):
        raise NodeError(f"argument {name!r} must be an integer")
    if not isinstance(value, kind):
        raise NodeError(f"argument {name!r} must be of type {kind.__name__}")
    return value


def _pseudonym(text: str, what: str) -> Pseudonym:
    try:
        return Pseudonym.from_text(text)
    except ShinyoError:
        raise NodeError(f"{what} {text!r} is not a pseudonym (they look like "
                        "sy1...; `shinyo id show` prints one)") from None


def _entry_result(node: Node, entry: Any) -> dict[str, Any]:
    return {"seq": entry.seq, "id": entry.id.hex(),
            "trade": None if entry.trade is None else entry.trade.hex(),
            "author": node.pseudonym.to_text()}


def _fetched(node: Node, subject: Pseudonym, asked: list[PeerSession]) -> bool | None:
    """Whether a fetch of ``subject``'s proof scope is done: None while an asked
    peer (still connected) has not listed the scope in full, or holds more of a
    chain in it than we do (``PeerSync.peer_seq``: a fetch is pending); then
    True if we hold the subject's chain, False if no peer had it."""
    live = [s for s in asked if s in node.sessions.values()]
    if not all(subject in s.proofs_listed for s in live):
        return None
    scope = {subject, *node.replica.proof_scope(subject)}  # the scope is [] without a chain
    if any(s.sync.peer_seq(a) for s in live for a in scope):
        return None
    chain = node.ledger.chain(subject)
    return chain is not None and len(chain) > 0


class ControlCommands:
    """Maps command names to the node; ``stop`` sets :attr:`stopping`.

    ``trust_limits`` lowers the limits of spec/trust.md 7 for ``trust``
    queries (a verifier MAY; tests do, to reach them with small stores).
    """

    def __init__(self, node: Node, *, trust_limits: TrustLimits | None = None) -> None:
        self.node = node
        self.stopping = trio.Event()
        self.trust_limits = trust_limits or TrustLimits()
        # One trust query computes at a time: its CPU and memory stay bounded
        # however many clients ask at once; the others wait their turn.
        self._trust_limiter = trio.CapacityLimiter(1)

    async def __call__(self, command: str, args: dict[str, Any]) -> Any:
        method = COMMANDS.get(command)
        if method is None:
            raise NodeError(f"unknown command {command!r} (known: {', '.join(sorted(COMMANDS))})")
        return await method(self, args)

    def _trade(self, args: dict[str, Any]) -> bytes:
        return self.node.ledger.find_trade(_arg(args, "trade", str))

    async def status(self, args: dict[str, Any]) -> Any:
        return self.node.status()

    async def peers(self, args: dict[str, Any]) -> Any:
        return {"connected": self.node.peers(), "known": self.node.known_peers()}

    async def peer_add(self, args: dict[str, Any]) -> Any:
        address = parse_address(_arg(args, "address", str), what="peer address")
        self.node.add_peer(address)
        return {"address": f"{address[0]}:{address[1]}"}

    async def propose(self, args: dict[str, Any]) -> Any:
        counterparty = _pseudonym(_arg(args, "with", str), "counterparty")
        context = _arg(args, "context", str)
        try:
            terms = bytes.fromhex(_arg(args, "terms", str, default=""))
        except ValueError:
            raise NodeError("argument 'terms' must be hex") from None
        return _entry_result(self.node, self.node.propose(counterparty, context=context,
                                                          terms=terms))

    async def accept(self, args: dict[str, Any]) -> Any:
        return _entry_result(self.node, self.node.accept(self._trade(args)))

    async def cancel(self, args: dict[str, Any]) -> Any:
        return _entry_result(self.node, self.node.cancel(self._trade(args)))

    async def rate(self, args: dict[str, Any]) -> Any:
        stars = _arg(args, "stars", int)
        tags = _arg(args, "tags", list, default=[])
        if not all(isinstance(t, str) for t in tags):
            raise NodeError("argument 'tags' must be a list of strings")
        comment = _arg(args, "comment", str, default=None)
        entry = self.node.rate(self._trade(args), stars=stars, tags=tags,
                               comment=comment)
        return _entry_result(self.node, entry)

    async def retract(self, args: dict[str, Any]) -> Any:
        return _entry_result(self.node, self.node.retract(self._trade(args)))

    async def respond(self, args: dict[str, Any]) -> Any:
        text = _arg(args, "text", str)
        return _entry_result(self.node, self.node.respond(self._trade(args), text=text))

    async def trades(self, args: dict[str, Any]) -> Any:
        rows = self.node.trades()
        for row in rows:
            row["forked_counterparty"] = self.node.store.is_forked(
                Pseudonym.from_text(row["counterparty"]))
        return rows

    async def forks(self, args: dict[str, Any]) -> Any:
        return [{"author": f.author.to_text(), "seq": f.seq, "proof": f.encode().hex()}
                for f in self.node.store.forks()]

    async def proof(self, args: dict[str, Any]) -> Any:
        """A proof bundle about ``pseudonym``; chains this node lacks are fetched
        from its peers first (ProofRequest, wire.md 7.6)."""
        subject = _pseudonym(_arg(args, "pseudonym", str), "subject")
        bundle = await self._build_proof(subject)
        return {"pseudonym": subject.to_text(), "bytes": len(bundle),
                "bundle": base64.b64encode(bundle).decode("ascii")}

    async def _build_proof(self, subject: Pseudonym) -> bytes:
        """The node's proof about ``subject``; if it holds none, the scope is asked
        of every peer (ProofRequest, wire.md 7.6) and the proof built once each
        peer has listed the scope in full and no fetch it started is pending --
        not at the first entry in, which would export a half-synced chain."""
        node = self.node
        try:
            return node.proof(subject)
        except LocalProtocolError as first:
            asked = list(node.sessions.values())
            if not node.request_proof(subject):
                raise
            with trio.move_on_after(PROOF_FETCH_TIMEOUT):
                # Polled: a listing that brings nothing wakes no waiter.
                while (fetched := _fetched(node, subject, asked)) is None:
                    await trio.sleep(FETCH_POLL)
                if fetched:
                    return node.proof(subject)
            raise LocalProtocolError(f"{first} (not found at the {len(asked)} "
                                     "connected peers either)") from None

    async def trust(self, args: dict[str, Any]) -> Any:
        """``pseudonym``'s ratings weighed from ``roots`` (default: this node's own
        pseudonym) with this node's chains as evidence (spec/trust.md 2.5, 9)."""
        query = TrustQuery.from_args(args, me=self.node.pseudonym, now=self.node.wall_time(),
                                     limits=self.trust_limits)
        held = self.node.ledger.chain(query.subject)
        fetched = held is None or not len(held)
        bundle = await self._build_proof(query.subject)
        # No checkpoint between the bundle and the copies: they show one moment.
        snap = snapshot(self.node, bundle, fetched=fetched)
        return await trio.to_thread.run_sync(answer, query, snap, limiter=self._trust_limiter)

    async def sync(self, args: dict[str, Any]) -> Any:
        """Start an anti-entropy round with every peer now."""
        self.node.anti_entropy()
        return {"peers": len(self.node.sessions)}

    async def stop(self, args: dict[str, Any]) -> Any:
        self.stopping.set()
        return {"stopping": True}


COMMANDS: dict[str, Callable[[ControlCommands, dict[str, Any]], Awaitable[Any]]] = {
    name: getattr(ControlCommands, name)
    for name in ("status", "peers", "peer_add", "propose", "accept", "cancel", "rate", "retract",
                 "respond", "trades", "forks", "proof", "trust", "sync", "stop")
}
