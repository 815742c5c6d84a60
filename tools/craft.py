"""Fixed keys, a fixed story, and byte-level crafting, for vectors and tests.

Everything here is deterministic: seeds, nonces, salts and times are constants,
so the vectors built from it are byte-identical on every run.  The crafting
helpers re-sign deliberately broken payloads, so that an invalid vector fails
at exactly the check it targets.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any

import cbor2
import nacl.bindings

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


# An Ed25519 point of order 8 (libsodium's small-order blocklist).
_TORSION8 = bytes.fromhex("c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a")
_L = 2**252 + 27742317777372353535851937790883648493


def mixed_order_entry(fields_for: Callable[[bytes, int], list[Any]]) -> tuple[bytes, bytes]:
    """An entry validly signed under a key with a small-order component.

    The key is A' = A + T8.  A signature made with A's secret scalar verifies
    under A' (cofactorless, as libsodium checks) whenever the challenge k is a
    multiple of 8, since then [k]T8 vanishes; so we vary the timestamp until it
    is.  ``fields_for(author_key, timestamp)`` builds the payload array.
    Returns (encoded entry, author key).
    """
    h = hashlib.sha512(bytes([0x42]) * 32).digest()
    scalar = bytearray(h[:32])
    scalar[0] &= 248
    scalar[31] = (scalar[31] & 127) | 64
    a = int.from_bytes(scalar, "little") % _L
    base = nacl.bindings.crypto_scalarmult_ed25519_base_noclamp(a.to_bytes(32, "little"))
    author = nacl.bindings.crypto_core_ed25519_add(base, _TORSION8)
    for ts in range(T0, T0 + 1000):
        payload = bytes(cbor2.dumps(fields_for(author, ts)))
        msg = DST_ENTRY_SIG + payload
        r = int.from_bytes(hashlib.sha512(h[32:] + msg).digest(), "little") % _L
        big_r = nacl.bindings.crypto_scalarmult_ed25519_base_noclamp(r.to_bytes(32, "little"))
        k = int.from_bytes(hashlib.sha512(big_r + author + msg).digest(), "little") % _L
        if k % 8 == 0:
            sig = big_r + ((r + k * a) % _L).to_bytes(32, "little")
            return envelope(payload, sig), author
    raise AssertionError("no timestamp gave a challenge divisible by 8")  # pragma: no cover


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


