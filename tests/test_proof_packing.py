"""Packed entries in proof files (spec/proof.md 1.1): exact round trip, size, and
every way an item can fail to unpack."""

from __future__ import annotations

import cbor2
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import shinyo
from shinyo import (
    DecodeError,
    Entry,
    NonCanonical,
    build_proof,
    read_proof_file,
    verify_proof,
)
from shinyo._constants import GENESIS_PREV, PROOF_MAGIC
from shinyo._proof_file import pack_entries, unpack_entries

from .conftest import CTX, T0, Pair, identity

LATER = T0 + 400 * 86_400


def chain_of(n: int, *, who: int = 1) -> list[Entry]:
    """``n`` entries of one author (vouches: any kind will do for packing)."""
    chain = shinyo.Chain(identity(who).pseudonym)
    for i in range(n):
        chain.append_new(identity(who), timestamp=T0 + i,
                         body=shinyo.Vouch(subject=identity(50 + i).pseudonym, context=CTX))
    return list(chain.entries)


def spelled(e: Entry) -> bytes:
    """``e`` packed with its prev written out (a builder that never elides)."""
    return b"\x86" + e.payload[1:2] + e.payload[36:] + e.signature


@settings(max_examples=25, deadline=None)
@given(st.lists(st.integers(1, 12), min_size=1, max_size=12, unique=True))
def test_unpacking_restores_the_exact_entry_bytes(seqs: list[int]) -> None:
    # Any ascending subset of a chain: runs elide prev, gaps keep it.
    entries = [e for e in chain_of(12) if e.seq in sorted(seqs)]
    packed = pack_entries(entries)
    assert unpack_entries(entries[0].author.key, packed) == [e.encode() for e in entries]
    for e, item in zip(entries, packed, strict=True):
        derivable = e.seq == 1 or (e is not entries[0]
                                   and entries[entries.index(e) - 1].seq == e.seq - 1)
        assert len(item) == len(e.encode()) - 5 - 34 - (33 if derivable else 0)


def test_a_packed_entry_under_another_key_is_a_bad_signature() -> None:
    entries = chain_of(3)
    items = unpack_entries(identity(2).pseudonym.key, pack_entries(entries))
    with pytest.raises(shinyo.BadSignature):
        Entry.decode(items[0])  # type: ignore[arg-type]


def test_a_thousand_rated_trades_take_under_a_kibibyte_each() -> None:
    # Issue 7's target, checked on a smaller history: the size per trade does
    # not depend on how many trades there are (one subject, distinct counterparties).
    from shinyo.tools.bench import history  # noqa: PLC0415

    me, others = history(40)
    data = build_proof(me.chain, others)
    assert len(data) / 40 <= 1024
    assert verify_proof(data, now=T0 + 400 * 86_400).scores.counts["rated"] == 40


def _own(data: bytes, own: list[bytes]) -> bytes:
    f = cbor2.loads(data[len(PROOF_MAGIC):])
    f[2] = own
    return PROOF_MAGIC + cbor2.dumps(f, canonical=True)


def _proof(pair: Pair) -> tuple[bytes, list[bytes]]:
    t = pair.agree()
    pair.rate(t, 5, 4)
    data = build_proof(pair.a.chain, pair.a.others)
    return data, read_proof_file(data).own


@pytest.mark.parametrize(("case", "error", "message"), [
    ("empty", DecodeError, "packed payload"),
    ("only-a-signature", DecodeError, "packed payload"),
    ("full-payload", DecodeError, "packed payload"),
    ("null-after-a-gap", DecodeError, "item before is not seq - 1"),
    ("spelled-out-prev", NonCanonical, "must be left out"),
    ("long-seq-head", NonCanonical, "non-shortest"),
    ("short-prev", DecodeError, "32 bytes or null"),
    ("truncated", DecodeError, "truncated"),
])
def test_items_that_do_not_unpack(pair: Pair, case: str, error: type[Exception],
                                  message: str) -> None:
    data, own = _proof(pair)
    first = pair.a.chain[1]
    second = own[1]
    items = {
        "empty": [b"", *own[1:]],
        "only-a-signature": [bytes(64), *own[1:]],
        "full-payload": [first.payload + first.signature, *own[1:]],
        "null-after-a-gap": own[1:],
        "spelled-out-prev": [spelled(first), *own[1:]],
        # seq 1 as a two-byte head (0x18 0x01): 0x86, version, then seq.
        "long-seq-head": [second[:2] + b"\x18" + bytes([second[2]]) + second[3:], *own[2:]],
        "short-prev": [own[0], second[:3] + b"\x58\x1f" + bytes(31) + second[-64:]],
        "truncated": [b"\x86\x01" + bytes(64)],
    }[case]
    with pytest.raises(error, match=message):
        verify_proof(_own(data, items), now=LATER)


def test_an_item_after_one_that_did_not_unpack_has_no_derivable_prev() -> None:
    entries = chain_of(3)
    packed = pack_entries(entries)
    key = entries[0].author.key
    out = unpack_entries(key, [b"\x00" * 65, *packed[1:]])
    # Each later item relied on the one before it, so each fails in turn.
    assert [type(item) for item in out] == [DecodeError] * 3
    assert unpack_entries(key, [spelled(entries[1]), packed[2]])[1] == entries[2].encode()


def test_an_item_that_unpacks_but_does_not_decode_still_anchors_the_next(pair: Pair) -> None:
    # Spec 1.1: only an item that fails to *unpack* leaves the next without a
    # derivable prev; one whose entry fails to decode is reported as itself.
    data, own = _proof(pair)
    bad = bytearray(own[0])
    bad[-1] ^= 1  # the signature
    with pytest.raises(shinyo.BadSignature):
        verify_proof(_own(data, [bytes(bad), *own[1:]]), now=LATER)


def test_genesis_prev_is_always_derivable() -> None:
    (first,) = chain_of(1)
    assert first.prev == GENESIS_PREV
    (item,) = pack_entries([first])
    assert b"\xf6" in item[:40] and len(item) == len(spelled(first)) - 33
    (refused,) = unpack_entries(first.author.key, [spelled(first)])
    assert isinstance(refused, NonCanonical)
