"""Entries: encoding round trips, canonical-form rejection, and hostile bytes (spec 3, 6)."""

from __future__ import annotations

import contextlib
import multiprocessing
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor

import cbor2
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import shinyo
from shinyo import (
    Accept,
    Body,
    Cancel,
    Commit,
    Entry,
    LocalProtocolError,
    Propose,
    Response,
    Retract,
    Reveal,
    VerificationError,
    Vouch,
)
from shinyo._constants import GENESIS_PREV, MAX_ENTRY_SIZE
from shinyo.tools.craft import fields_of, resign, sign_payload

from .conftest import T0, identity

hashes = st.binary(min_size=32, max_size=32)
contexts = st.from_regex(r"[a-z0-9][a-z0-9._:/-]{0,63}", fullmatch=True)
tag_lists = st.lists(st.from_regex(r"[a-z0-9][a-z0-9-]{0,23}", fullmatch=True),
                     max_size=8, unique=True).map(sorted)
keys = st.integers(1, 255).map(lambda n: identity(n).pseudonym)

bodies: st.SearchStrategy[Body] = st.one_of(
    st.builds(Propose, counterparty=keys, context=contexts, terms=hashes),
    st.builds(Accept, trade=hashes, proposer=keys, context=contexts),
    st.builds(Cancel, trade=hashes),
    st.builds(Commit, trade=hashes, commitment=hashes, ack=st.none() | hashes),
    st.builds(Reveal, trade=hashes, stars=st.integers(1, 5),
              nonce=st.binary(min_size=16, max_size=16), tags=tag_lists.map(tuple),
              comment=st.none() | hashes, ack=st.none() | hashes),
    st.builds(Retract, trade=hashes),
    st.builds(Response, trade=hashes, text=hashes),
    st.builds(Vouch, subject=keys, context=contexts, active=st.booleans()),
)

ME = identity(200)


@given(body=bodies, seq=st.integers(1, 2**32 - 1), ts=st.integers(0, 2**40 - 1),
       prev=hashes)
@settings(max_examples=300)
def test_round_trip(body: Body, seq: int, ts: int, prev: bytes) -> None:
    prev = GENESIS_PREV if seq == 1 else (prev if prev != GENESIS_PREV else b"\x01" * 32)
    e = Entry.create(ME, seq=seq, prev=prev, timestamp=ts, body=body)
    raw = e.encode()
    assert len(raw) <= MAX_ENTRY_SIZE
    again = Entry.decode(raw)
    assert again == e and again.id == e.id and again.body == body
    assert again.encode() == raw


@given(body=bodies, data=st.data())
@settings(max_examples=200)
def test_any_single_byte_change_is_rejected(
    body: Body, data: st.DataObject
) -> None:
    raw = Entry.create(ME, seq=1, prev=GENESIS_PREV, timestamp=T0, body=body).encode()
    i = data.draw(st.integers(0, len(raw) - 1))
    b = data.draw(st.integers(0, 255).filter(lambda v: v != raw[i]))
    mutated = raw[:i] + bytes([b]) + raw[i + 1 :]
    with pytest.raises(VerificationError):
        Entry.decode(mutated)


@given(st.binary(max_size=1200))
@settings(max_examples=500)
def test_arbitrary_bytes_raise_only_verification_errors(raw: bytes) -> None:
    with contextlib.suppress(VerificationError):
        Entry.decode(raw)


@given(st.recursive(st.none() | st.booleans() | st.integers() | st.binary(max_size=40)
                    | st.text(max_size=10) | st.floats(),
                    lambda kids: st.lists(kids, max_size=8)
                    | st.dictionaries(st.integers(0, 9), kids, max_size=4),
                    max_leaves=30))
@settings(max_examples=500)
def test_signed_structured_garbage_is_a_typed_error(obj: object) -> None:
    """Well-formed, validly signed CBOR of any shape never crashes the decoder."""
    raw = sign_payload(ME, cbor2.dumps(obj, canonical=True))
    if len(raw) > MAX_ENTRY_SIZE:
        return
    with pytest.raises(VerificationError):
        Entry.decode(raw)


def test_structured_fields_with_wrong_types() -> None:
    e = Entry.create(ME, seq=1, prev=GENESIS_PREV, timestamp=T0,
                     body=Cancel(trade=bytes(32)))
    f = fields_of(e)
    for i, bad in [(0, "1"), (1, "key"), (2, True), (3, None), (4, None), (5, "3"), (6, None)]:
        g = list(f)
        g[i] = bad
        with pytest.raises(VerificationError):
            Entry.decode(resign(ME, g))


def test_decode_rejects_non_bytes() -> None:
    with pytest.raises(shinyo.DecodeError):
        Entry.decode("abc")  # type: ignore[arg-type]


def test_create_refuses_bad_headers_and_oversize() -> None:
    body = Cancel(trade=bytes(32))
    with pytest.raises(LocalProtocolError):
        Entry.create(ME, seq=0, prev=GENESIS_PREV, timestamp=T0, body=body)
    with pytest.raises(LocalProtocolError):
        Entry.create(ME, seq=2, prev=GENESIS_PREV, timestamp=T0, body=body)
    with pytest.raises(LocalProtocolError):
        Entry.create(ME, seq=1, prev=GENESIS_PREV, timestamp=-1, body=body)


def test_largest_body_fits_the_limit() -> None:
    """The biggest legal reveal (8 tags of 24 characters, comment, ack) fits 1024 bytes."""
    tags = tuple(sorted(f"{i}" + "x" * 23 for i in range(8)))
    body = Reveal(trade=bytes(32), stars=5, nonce=bytes(16), tags=tags,
                  comment=bytes(32), ack=bytes(32))
    e = Entry.create(ME, seq=2**32 - 1, prev=b"\x01" * 32, timestamp=2**40 - 1, body=body)
    assert len(e.encode()) <= MAX_ENTRY_SIZE
    assert Entry.decode(e.encode()) == e


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (lambda: Propose(counterparty=ME.pseudonym, context="", terms=bytes(32)), "context"),
        (lambda: Propose(counterparty=ME.pseudonym, context="a", terms=bytes(31)), "terms"),
        (lambda: Accept(trade=bytes(32), proposer=b"x", context="a"), "proposer"),  # type: ignore[arg-type]
        (lambda: Reveal(trade=bytes(32), stars=3, nonce=bytes(16), tags="ab"), "tags"),  # type: ignore[arg-type]
        (lambda: Reveal(trade=bytes(32), stars=3, nonce=bytes(16), tags=("A",)), "tag"),
        (lambda: Vouch(subject=ME.pseudonym, context="a", active=None), "active"),  # type: ignore[arg-type]
    ],
)
def test_bodies_validate_on_construction(make: object, match: str) -> None:
    with pytest.raises(shinyo.InvalidBody, match=match):
        make()  # type: ignore[operator]


def test_kind_labels() -> None:
    assert [k.label for k in shinyo.Kind] == [
        "trade.propose", "trade.accept", "trade.cancel", "rate.commit", "rate.reveal",
        "rate.retract", "rate.response", "vouch",
    ]


def test_digest_helpers_check_their_randomness() -> None:
    with pytest.raises(LocalProtocolError):
        shinyo.terms_digest(b"x", salt=b"short")
    with pytest.raises(LocalProtocolError):
        shinyo.rating_commitment(trade=bytes(32), context="a", rater=ME.pseudonym,
                                 ratee=ME.pseudonym, stars=3, nonce=b"short")
    with pytest.raises(LocalProtocolError):
        shinyo.rating_commitment(trade=bytes(31), context="a", rater=ME.pseudonym,
                                 ratee=ME.pseudonym, stars=3, nonce=bytes(16))
    assert shinyo.text_digest("é", salt=bytes(16)) != shinyo.text_digest("e", salt=bytes(16))


def test_decode_all_agrees_with_decode_through_threads_and_processes() -> None:
    # The public bulk path (spec 6.4): what map runs the checks on changes nothing.
    good = [Entry.create(ME, seq=i, prev=GENESIS_PREV if i == 1 else bytes([1]) * 32,
                         timestamp=T0 + i,
                         body=Vouch(subject=identity(3).pseudonym, context="x"))
            for i in range(1, 301)]
    raws = [e.encode() for e in good]
    raws[7] = raws[7][:-1] + bytes([raws[7][-1] ^ 1])  # signature
    raws[150] = b"\xff not an entry"
    raws[299] = raws[0]  # a repeat: one result
    expected: dict[bytes, object] = {}
    for raw in raws:
        try:
            expected[raw] = Entry.decode(raw)
        except shinyo.VerificationError as exc:
            expected[raw] = (type(exc), str(exc))

    def outcome(results: dict[bytes, Entry | shinyo.VerificationError]) -> dict[bytes, object]:
        return {raw: (type(r), str(r)) if isinstance(r, shinyo.VerificationError) else r
                for raw, r in results.items()}

    assert outcome(shinyo.decode_all(raws)) == expected
    with ThreadPoolExecutor(2) as threads:
        assert outcome(shinyo.decode_all(raws, map=threads.map)) == expected
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as processes:
        assert outcome(shinyo.decode_all(raws, map=processes.map)) == expected
    assert isinstance(expected[raws[7]], tuple) and expected[raws[7]][0] is shinyo.BadSignature
