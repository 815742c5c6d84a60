"""Fork proofs (spec 8)."""

from __future__ import annotations

import cbor2
import pytest
from hypothesis import given
from hypothesis import strategies as st

import shinyo
from shinyo import Cancel, Entry, ForkProof, InvalidFork, VerificationError
from shinyo._constants import GENESIS_PREV

from .conftest import T0, identity

ME = identity(5)


def two_at_seq_1() -> tuple[Entry, Entry]:
    a = Entry.create(ME, seq=1, prev=GENESIS_PREV, timestamp=T0, body=Cancel(trade=bytes(32)))
    b = Entry.create(ME, seq=1, prev=GENESIS_PREV, timestamp=T0, body=Cancel(trade=b"\x01" * 32))
    return a, b


def test_build_order_and_round_trip() -> None:
    a, b = two_at_seq_1()
    p, q = ForkProof.from_entries(a, b), ForkProof.from_entries(b, a)
    assert p == q and p.encode() == q.encode()
    assert p.first.id < p.second.id
    assert (p.author, p.seq) == (ME.pseudonym, 1)
    assert ForkProof.decode(p.encode()) == p


def test_constructor_checks() -> None:
    a, b = two_at_seq_1()
    lo, hi = sorted([a, b], key=lambda e: e.id)
    with pytest.raises(InvalidFork, match="ordered"):
        ForkProof(first=hi, second=lo)
    with pytest.raises(InvalidFork, match="same entry"):
        ForkProof(first=a, second=a)
    other = Entry.create(identity(6), seq=1, prev=GENESIS_PREV, timestamp=T0,
                         body=Cancel(trade=bytes(32)))
    with pytest.raises(InvalidFork, match="authors"):
        ForkProof.from_entries(a, other)
    later = Entry.create(ME, seq=2, prev=a.id, timestamp=T0, body=Cancel(trade=bytes(32)))
    with pytest.raises(InvalidFork, match="seqs"):
        ForkProof.from_entries(a, later)


@given(st.binary(max_size=2200))
def test_garbage_gives_typed_errors(raw: bytes) -> None:
    with pytest.raises(VerificationError):
        ForkProof.decode(raw)


@given(st.data())
def test_single_byte_changes_are_rejected(data: st.DataObject) -> None:
    raw = ForkProof.from_entries(*two_at_seq_1()).encode()
    i = data.draw(st.integers(0, len(raw) - 1))
    b = data.draw(st.integers(0, 255).filter(lambda v: v != raw[i]))
    with pytest.raises(VerificationError):
        ForkProof.decode(raw[:i] + bytes([b]) + raw[i + 1 :])


def test_value_sharing_bomb_is_refused_before_expansion() -> None:
    """Review finding: tags 28/29 build a DAG that re-encoding expands 2^n-fold."""
    node: list[object] = []
    for _ in range(60):
        node = [node, node]  # 2^60 leaves as a tree, 60 nodes as a DAG
    bomb = cbor2.dumps([1, node, b""], value_sharing=True)
    assert len(bomb) < 1000
    with pytest.raises(shinyo.NonCanonical, match="shared"):
        ForkProof.decode(bomb)


def test_sharing_bomb_inside_a_set_and_a_bignum_version_are_typed() -> None:
    """Review findings: arrays decoded as tuples (in sets, map keys) slipped past
    the node budget; a huge bignum version crashed message formatting."""
    node: list[object] = []
    for _ in range(60):
        node = [node, node]
    # A set (tag 258) of that DAG: decoding would turn its arrays into tuples and
    # hash them, 2^60 steps, inside the decoder itself.
    bomb = cbor2.dumps([1, cbor2.CBORTag(258, [node]), b""], value_sharing=True)
    with pytest.raises(VerificationError):
        ForkProof.decode(bomb)
    big = cbor2.dumps([10**4400, b"", b""])  # > 4300 digits: str() of it raises
    assert len(big) < 2064
    with pytest.raises(VerificationError):
        ForkProof.decode(big)


@given(st.binary(max_size=300))
def test_head_scan_agrees_with_cbor2_on_sharing_tags(raw: bytes) -> None:
    """The scan never misses a 28/29 tag that cbor2 would act on."""
    from shinyo._cbor import has_value_sharing  # noqa: PLC0415

    for tag in (28, 29):
        wrapped = cbor2.dumps(cbor2.CBORTag(tag, raw)) if tag == 28 else cbor2.dumps(
            [cbor2.CBORTag(28, raw), cbor2.CBORTag(29, 0)])
        assert has_value_sharing(wrapped)
    assert not has_value_sharing(cbor2.dumps([raw, raw.hex()]))  # hidden in strings: ignored
