"""Helpers for tests that run real nodes (``shinyo.node.open_node``) on 127.0.0.1."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from shinyo import Pseudonym, SigningIdentity
from shinyo.node._config import NodeConfig
from shinyo.node._node import Node, open_node

WAIT = 30.0
"""Seconds before a wait gives up: a failure is a hang cut short, never a timing assertion."""


def identity(n: int) -> SigningIdentity:
    """The trading identity of test node ``n`` (deterministic)."""
    return SigningIdentity.from_seed(bytes([n]) * 32)


def node_config(tmp: Path, n: int, *, bootstrap: tuple[Node, ...] = (),
                **options: Any) -> NodeConfig:
    # No signature worker processes unless a test asks (``processes=``): two
    # spawned interpreters per node would cost this suite minutes of CPU; the
    # checks then run in threads, and tests/test_node_verifier.py covers the pool.
    options.setdefault("processes", 0)
    return NodeConfig(home=tmp / f"node{n}", listen="127.0.0.1:0",
                      bootstrap=tuple(f"{b.address[0]}:{b.address[1]}" for b in bootstrap),
                      **options)


@asynccontextmanager
async def running(tmp: Path, n: int, *, bootstrap: tuple[Node, ...] = (),
                  **options: Any) -> AsyncIterator[Node]:
    """Node ``n`` with its home in ``tmp/node<n>``, listening on a free loopback port."""
    config = node_config(tmp, n, bootstrap=bootstrap, **options)
    async with open_node(config, identity=identity(n), seed=n) as node:
        yield node


def holds(node: Node, author: Pseudonym, n: int) -> bool:
    """``node`` holds at least the first ``n`` entries of ``author``'s chain."""
    chain = node.ledger.chain(author)
    return chain is not None and len(chain) >= n
