"""Shared fixtures: seeded identities and a helper that runs whole trades."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pytest

import shinyo
from shinyo import Participant, SigningIdentity

T0 = 1_800_000_000  # a fixed "now" for deterministic tests
CTX = "market.example/books"


def identity(n: int) -> SigningIdentity:
    return SigningIdentity.from_seed(bytes([n]) * 32)


def nonce(n: int) -> bytes:
    return bytes([n]) * 16


def terms(n: int = 0) -> bytes:
    return shinyo.terms_digest(f"item {n}".encode(), salt=bytes(16))


@dataclass
class Pair:
    """Two participants who deliver each other's entries at once."""

    a: Participant
    b: Participant

    def deliver(self, entry: shinyo.Entry) -> None:
        (self.b if entry.author == self.a.pseudonym else self.a).receive(entry)

    def step(self, entry: shinyo.Entry) -> shinyo.Entry:
        self.deliver(entry)
        return entry

    def agree(self, t: int = T0) -> bytes:
        p = self.step(self.a.propose(self.b.pseudonym, context=CTX, terms=terms(), timestamp=t))
        self.step(self.b.accept(p.id, timestamp=t + 60))
        return p.id

    def rate(self, trade: bytes, stars_a: int, stars_b: int, t: int = T0 + 3600) -> None:
        """The usual order: a commits first, b commits with ack, a reveals, b reveals."""
        self.step(self.a.commit(trade, stars=stars_a, nonce=nonce(1), timestamp=t))
        self.step(self.b.commit(trade, stars=stars_b, nonce=nonce(2), timestamp=t + 10))
        self.step(self.a.reveal(trade, timestamp=t + 20))
        self.step(self.b.reveal(trade, timestamp=t + 30))


@pytest.fixture
def pair() -> Pair:
    return Pair(Participant(identity(1)), Participant(identity(2)))


@pytest.fixture
def make_pair() -> Callable[[int, int], Pair]:
    return lambda x, y: Pair(Participant(identity(x)), Participant(identity(y)))
