"""A malicious peer for tests, on top of tools/hostile_peer.py (the campaign's).

The hostile side uses the node's own transport and wire codec only to build
and read bytes; what it sends is chosen by the test, valid or not, in any
order.  It never answers the node: a test that needs an answer reads it with
:meth:`Hostile.read_until`.  This module adds what the tests assert on: a Bye
that must come, an answer that must come, and a node to attack by object.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import trio

from shinyo import Pseudonym
from shinyo.node import Node
from shinyo.node._quic import CloseReason, QuicEndpoint
from shinyo.tools.hostile_peer import (
    HostileSession,
    hostile_endpoint,
    hostile_identity,
    open_session,
    stranger,
)
from shinyo.wire import Bye, Entries, Message, Want

from ._nodes import WAIT

__all__ = ["Hostile", "attack", "hostile_endpoint", "hostile_identity", "poll", "stranger"]

POLL: float = 0.01
"""Seconds between two looks at a node's state that signals no change (penalties)."""


async def poll(predicate: Callable[[], bool], *, timeout: float = WAIT) -> None:
    """Wait until ``predicate()`` holds, for state ``Node.wait_until`` is not
    woken by (penalty scores, bans); a hang fails after ``timeout``."""
    with trio.fail_after(timeout):
        while not predicate():
            await trio.sleep(POLL)


class Hostile(HostileSession):
    """A hostile session whose reads fail the test after ``WAIT`` seconds."""

    async def read_until(self, predicate: Callable[[Message], bool], *,
                         timeout: float = WAIT) -> Message:
        return await super().read_until(predicate, timeout=timeout)

    async def bye(self, *, timeout: float = WAIT) -> Bye:
        """The node's Bye (wire.md 6.3); the test fails if none comes."""
        msg = await super().bye(timeout=timeout)
        assert msg is not None, "the connection ended without a Bye"
        return msg

    async def exchange(self, *items: Message | bytes, probe: Pseudonym) -> Entries | Bye:
        """Send ``items``, then a Want for ``probe``'s entry 1, in one write, and
        return the answer to that Want -- or the node's Bye if it ended the
        session first.  The node's reader acts on messages in order, so the
        answer means it has acted on ``items`` (and Wants are not charged, 10.1)."""
        msg = await self.answer(*items, probe=Want(author=probe, first=1, last=1), timeout=WAIT)
        assert msg is not None, "the connection ended without a Bye"
        return msg

    async def barrier(self, probe: Pseudonym) -> Entries:
        """:meth:`exchange` of nothing: the node's answer about ``probe``'s entry 1."""
        msg = await self.exchange(probe=probe)
        assert isinstance(msg, Entries), f"the node said {msg}"
        return msg

    async def closed(self, *, timeout: float = WAIT) -> CloseReason:
        return await super().closed(timeout=timeout)


@asynccontextmanager
async def attack(endpoint: QuicEndpoint, node: Node) -> AsyncIterator[Hostile]:
    """Connect ``endpoint`` to ``node`` and open the session stream.  Nothing is
    sent: the node learns of the stream with its first byte."""
    async with open_session(endpoint, node.address, expect_key=node.node_key,
                            session=Hostile) as hostile:
        assert isinstance(hostile, Hostile)
        yield hostile
