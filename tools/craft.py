"""Fixed keys, a fixed story, and byte-level crafting, for vectors and tests.

Everything here is deterministic: seeds, nonces, salts and times are constants,
so the vectors built from it are byte-identical on every run.  The crafting
helpers re-sign deliberately broken payloads, so that an invalid vector fails
at exactly the check it targets.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import cbor2

import shinyo
from shinyo import Entry, Participant, SigningIdentity, VerificationError
from shinyo._constants import DST_ENTRY_SIG

T0 = 1_800_000_000
CTX = "market.example/books"


def ident(n: int) -> SigningIdentity:
    return SigningIdentity.from_seed(bytes([n]) * 32)


def nonce(n: int) -> bytes:
    return bytes([n]) * 16


def salt(n: int) -> bytes:
    return bytes([0x50 + n]) * 16


# -- crafting (also used by the tests) -----------------------------------------


def fields_of(entry: Entry) -> list[Any]:
    """The decoded payload array of ``entry``, for editing."""
    value: list[Any] = cbor2.loads(entry.payload)
    return value


def envelope(payload: bytes, signature: bytes) -> bytes:
    return bytes(cbor2.dumps([payload, signature]))


def sign_payload(who: SigningIdentity, payload: bytes) -> bytes:
    """An envelope whose signature is valid over arbitrary payload bytes."""
    return envelope(payload, who.sign(DST_ENTRY_SIG + payload))


def resign(who: SigningIdentity, fields: list[Any]) -> bytes:
    return sign_payload(who, bytes(cbor2.dumps(fields)))


def story() -> tuple[Participant, Participant, Participant, bytes, bytes]:
    """Alice and Bob complete a rated trade; Carol cancels one with Alice."""
    alice, bob, carol = Participant(ident(1)), Participant(ident(2)), Participant(ident(3))

    everyone = (alice, bob, carol)

    def send(e: Entry, _to: Participant) -> Entry:
        # Gossip: every other participant sees every entry, in chain order.
        for p in everyone:
            if p.pseudonym != e.author:
                p.receive(e)
        return e

    p = send(alice.propose(bob.pseudonym, context=CTX,
                           terms=shinyo.terms_digest(b"a used bicycle", salt=salt(1)),
                           timestamp=T0), bob)
    trade = p.id
    send(bob.accept(trade, timestamp=T0 + 60), alice)
    send(alice.commit(trade, stars=5, nonce=nonce(1), timestamp=T0 + 86_400,
                      tags=["fast", "friendly"]), bob)
    send(bob.commit(trade, stars=4, nonce=nonce(2), timestamp=T0 + 90_000,
                    comment=shinyo.text_digest("Good bike.", salt=salt(2))), alice)
    send(alice.reveal(trade, timestamp=T0 + 90_100), bob)
    send(bob.reveal(trade, timestamp=T0 + 90_200), alice)
    send(alice.respond(trade, text=shinyo.text_digest("Thanks!", salt=salt(3)),
                       timestamp=T0 + 90_300), bob)
    q = send(carol.propose(alice.pseudonym, context="shop.example",
                           terms=shinyo.terms_digest(b"two chairs", salt=salt(4)),
                           timestamp=T0 + 100), alice)
    send(alice.accept(q.id, timestamp=T0 + 90_400), carol)
    send(carol.cancel(q.id, timestamp=T0 + 90_500), alice)
    send(alice.vouch(carol.pseudonym, context="shop.example", timestamp=T0 + 90_600), bob)
    send(alice.vouch(carol.pseudonym, context="shop.example", timestamp=T0 + 90_700,
                     active=False), bob)
    send(bob.retract(trade, timestamp=T0 + 90_800), alice)
    return alice, bob, carol, trade, q.id


# -- the suites ----------------------------------------------------------------------


def verdict(fn: Callable[[], object]) -> str:
    try:
        fn()
    except VerificationError as exc:
        return exc.failure_class
    return "valid"


def describe(e: Entry) -> dict[str, Any]:
    return {
        "id": e.id.hex(),
        "author": e.author.to_text(),
        "seq": e.seq,
        "timestamp": e.timestamp,
        "kind": e.kind.label,
    }


