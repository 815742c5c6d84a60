"""Pseudonyms and their Bech32m text form (spec 4)."""

from __future__ import annotations

import cbor2
import nacl.signing
import pytest
from hypothesis import given
from hypothesis import strategies as st

from shinyo import Entry, InvalidPseudonym, LocalProtocolError, Pseudonym, SigningIdentity
from shinyo._constants import DST_ENTRY_SIG
from shinyo.tools.craft import mixed_order_entry

from .conftest import identity

CHARSET = "qpzry9x8gf2tvdw0s3jn54khce6mua7l"


@given(st.binary(min_size=32, max_size=32))
def test_text_round_trip(seed: bytes) -> None:
    p = SigningIdentity.from_seed(seed).pseudonym
    text = p.to_text()
    assert text.startswith("sy1") and len(text) == 61
    assert Pseudonym.from_text(text) == p
    assert Pseudonym.from_text(text.upper()) == p


def test_every_single_character_typo_is_rejected() -> None:
    text = identity(1).pseudonym.to_text()
    for i in range(3, len(text)):
        for c in CHARSET:
            if c == text[i]:
                continue
            typo = text[:i] + c + text[i + 1 :]
            with pytest.raises(InvalidPseudonym):
                Pseudonym.from_text(typo)


def test_adjacent_swaps_are_rejected() -> None:
    text = identity(2).pseudonym.to_text()
    for i in range(3, len(text) - 1):
        if text[i] == text[i + 1]:
            continue
        swapped = text[:i] + text[i + 1] + text[i] + text[i + 2 :]
        with pytest.raises(InvalidPseudonym):
            Pseudonym.from_text(swapped)


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "sy1",
        "bc1" + "q" * 58,
        "sy1" + "b" * 58,  # 'b' is not in the Bech32 alphabet
        "sy1" + "q" * 57,
        "sy1" + "q" * 59,
    ],
)
def test_malformed_text(bad: str) -> None:
    with pytest.raises(InvalidPseudonym):
        Pseudonym.from_text(bad)


def test_mixed_case_and_non_string() -> None:
    text = identity(3).pseudonym.to_text()
    with pytest.raises(InvalidPseudonym, match="mixed"):
        Pseudonym.from_text(text[:10] + text[10:].upper())
    with pytest.raises(InvalidPseudonym):
        Pseudonym.from_text(b"sy1" + b"q" * 58)  # type: ignore[arg-type]


def test_small_order_point_is_rejected_even_with_good_checksum() -> None:
    # The identity element of Ed25519 (encoded y=1) is a small-order point.
    weak = Pseudonym(key=bytes([1]) + bytes(31))
    with pytest.raises(InvalidPseudonym, match="not a valid Ed25519"):
        Pseudonym.from_text(weak.to_text())


def test_key_length_and_seed_length() -> None:
    with pytest.raises(InvalidPseudonym):
        Pseudonym(key=bytes(31))
    with pytest.raises(LocalProtocolError):
        SigningIdentity.from_seed(bytes(31))


def test_verify_and_short_label() -> None:
    me = identity(4)
    sig = me.sign(b"hello")
    assert me.pseudonym.verify(b"hello", sig)
    assert not me.pseudonym.verify(b"hellp", sig)
    assert not me.pseudonym.verify(b"hello", sig[:-1])
    assert "…" in me.pseudonym.short()
    assert repr(me.pseudonym).startswith("Pseudonym(sy1")
    assert str(me.pseudonym) == me.pseudonym.to_text()
    assert "seed" not in repr(me).split("pseudonym")[0] or "b'" not in repr(me)


def test_mixed_order_author_is_rejected_although_libsodium_verifies() -> None:
    raw, author = mixed_order_entry(
        lambda key, ts: [1, key, 1, bytes(32), ts, 3, [bytes(32)]])
    payload, sig = cbor2.loads(raw)
    nacl.signing.VerifyKey(author).verify(DST_ENTRY_SIG + payload, sig)  # libsodium: fine
    with pytest.raises(InvalidPseudonym, match="prime-order"):
        Entry.decode(raw)


def test_kelvin_sign_is_not_k() -> None:
    text = identity(1).pseudonym.to_text().upper()
    assert "K" in text
    with pytest.raises(InvalidPseudonym, match="ASCII"):
        Pseudonym.from_text(text.replace("K", "\u212a", 1))
