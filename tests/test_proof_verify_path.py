"""The proof verifier's own entry path (issue 7): every item unpacked, its key and
signature checks (spec 6.4 step 7) handed out in chunks, possibly in parallel, and
the entries parsed (steps 1-6) meanwhile.  Every test here compares it with the
reference decoder, ``Entry.decode`` of the unpacked envelope, or pins a property
the speed-up relies on.
"""

from __future__ import annotations

import dataclasses
import gc
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from random import Random
from typing import Any

import cbor2
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import shinyo
from shinyo import Entry, SigningIdentity, VerificationError, build_proof, verify_proof
from shinyo._constants import DST_ENTRY_SIG, GENESIS_PREV, PROOF_MAGIC
from shinyo._entry import _assemble, entry_id
from shinyo._identity import is_valid_key
from shinyo._proof import _decode_entries
from shinyo._proof_file import ProofFile, unpack_entries
from shinyo.tools import cli
from shinyo.tools.craft import mixed_order_entry
from shinyo.tools.fuzz_cbor import emit

from .conftest import CTX, T0, identity, nonce

CI = settings(derandomize=True, database=None, deadline=None,
              suppress_health_check=[HealthCheck.too_slow])
LATER = T0 + 400 * 86_400
ME = identity(7)

# Payload tails (timestamp, kind, body) of every kind, valid as they stand.
TAILS: list[list[Any]] = [
    [T0, 1, [identity(2).pseudonym.key, CTX, bytes(range(32))]],
    [T0 + 5, 2, [bytes(32), identity(3).pseudonym.key, CTX]],
    [T0, 3, [bytes([1]) * 32]],
    [2**32 + 7, 4, [bytes([2]) * 32, bytes([3]) * 32, None]],
    [T0, 5, [bytes([4]) * 32, 4, nonce(1), ["fast", "kind"], bytes([5]) * 32, None]],
    [0, 6, [bytes([6]) * 32]],
    [T0, 7, [bytes([7]) * 32, bytes([8]) * 32]],
    [T0, 8, [identity(4).pseudonym.key, CTX, False]],
]


def verdict(fn: Any) -> object:
    """The entry, or the failure class and message (both must agree)."""
    try:
        result = fn()
    except VerificationError as exc:
        return (exc.failure_class, str(exc))
    if isinstance(result, VerificationError):
        return (result.failure_class, str(result))
    return result


def packed_item(who: SigningIdentity, head: bytes, tail: bytes, *, seq: bytes = b"\x01"
                ) -> bytes:
    """A packed entry (spec/proof.md 1.1), first in its array, whose payload is
    0x87, ``head`` (the version's bytes), the author, ``seq`` (its bytes), a prev
    (GENESIS_PREV, left out, at seq 1; another, written out) and ``tail``: signed
    over exactly those bytes, so only the checks before the signature can fail."""
    first = cbor2.loads(seq) == 1
    prev = GENESIS_PREV if first else bytes([9]) * 32
    payload = b"\x87" + head + b"\x58\x20" + who.pseudonym.key + seq \
        + b"\x58\x20" + prev + tail
    packed_prev = b"\xf6" if first else b"\x58\x20" + prev
    return b"\x86" + head + seq + packed_prev + tail + who.sign(DST_ENTRY_SIG + payload)


def both_paths(key: bytes, item: bytes) -> tuple[object, object]:
    """(the verifier's path, the reference decoder) on one packed item."""
    proof = ProofFile(subject=key, own=[item], others=[], forks=[])
    fast = verdict(lambda: _decode_entries(proof, map)[0][0])
    (envelope,) = unpack_entries(key, [item])
    if isinstance(envelope, VerificationError):
        return fast, verdict(lambda: envelope)
    return fast, verdict(lambda: Entry.decode(envelope))


def test_entries_are_built_as_the_dataclass_builds_them() -> None:
    e = Entry.create(ME, seq=1, prev=GENESIS_PREV, timestamp=T0,
                     body=shinyo.Cancel(trade=bytes(32)))
    fields = {f.name: getattr(e, f.name) for f in dataclasses.fields(Entry) if f.init}
    built = _assemble(**fields, id=entry_id(e.payload))
    # Every field is set (an unset slot raises), each equal to the constructor's.
    for f in dataclasses.fields(Entry):
        assert getattr(built, f.name) == getattr(e, f.name), f.name
    assert built == e and built.id == e.id and hash(built) == hash(e)
    with pytest.raises(dataclasses.FrozenInstanceError):
        built.seq = 2  # type: ignore[misc]


@pytest.mark.parametrize("tail", TAILS, ids=[str(t[1]) for t in TAILS])
def test_the_verifier_path_builds_the_reference_entry(tail: list[Any]) -> None:
    item = packed_item(ME, b"\x01", cbor2.dumps(tail)[1:])
    fast, reference = both_paths(ME.pseudonym.key, item)
    assert isinstance(fast, Entry) and isinstance(reference, Entry)
    for f in dataclasses.fields(Entry):
        assert getattr(fast, f.name) == getattr(reference, f.name), f.name
    assert fast.encode() == reference.encode()


SEQS = [1, 2, 23, 24, 255, 256, 65_535, 65_536, 2**32 - 1]


@CI
@given(st.sampled_from(TAILS), st.sampled_from(SEQS), st.integers(0, 2**32 - 1),
       st.sampled_from(["version", "seq", "neither"]))
def test_non_canonical_payloads_fail_as_the_reference_decoder_fails(
        tail: list[Any], seq: int, seed: int, odd_head: str) -> None:
    # Every item of the payload (version, seq, timestamp, kind, body and its parts)
    # may be written with a longer head or an indefinite length; the verifier's
    # path must refuse exactly what Entry.decode refuses, with the same class.
    rng = Random(seed)
    version = emit(1, rng, odd=1.0) if odd_head == "version" else b"\x01"
    seq_bytes = emit(seq, rng, odd=1.0) if odd_head == "seq" else cbor2.dumps(seq)
    tail_bytes = b"".join(emit(x, rng, odd=0.3) for x in tail)
    item = packed_item(ME, version, tail_bytes, seq=seq_bytes)
    fast, reference = both_paths(ME.pseudonym.key, item)
    assert fast == reference
    canonical = version == b"\x01" and seq_bytes == cbor2.dumps(seq) \
        and tail_bytes == cbor2.dumps(tail)[1:]
    assert isinstance(fast, Entry) == canonical
    if not canonical:
        assert fast[0] == "non-canonical"  # type: ignore[index]
    if version != b"\x01" or seq_bytes != cbor2.dumps(seq):
        # Judged while unpacking (spec/proof.md 1.1 step 2), before the payload
        # is decoded: a broken body behind it cannot change the class.
        assert "non-shortest head" in fast[1]  # type: ignore[index]


@CI
@given(st.sampled_from(TAILS), st.data())
def test_mutated_payloads_fail_as_the_reference_decoder_fails(
        tail: list[Any], data: st.DataObject) -> None:
    # Changed, inserted or deleted bytes, re-signed: the structure checks (steps
    # 3-5) and the canonical check (6) meet them in the reference decoder's order.
    tail_bytes = bytearray(cbor2.dumps(tail)[1:])
    for _ in range(data.draw(st.integers(1, 3))):
        at = data.draw(st.integers(0, len(tail_bytes)))
        how = data.draw(st.sampled_from(["set", "insert", "delete"]))
        byte = data.draw(st.integers(0, 255))
        if how == "insert":
            tail_bytes[at:at] = bytes([byte])
        elif at < len(tail_bytes):
            tail_bytes[at:at + 1] = b"" if how == "delete" else bytes([byte])
    fast, reference = both_paths(ME.pseudonym.key, packed_item(ME, b"\x01", bytes(tail_bytes)))
    assert fast == reference


def test_an_oversize_entry_fails_as_the_reference_decoder_fails() -> None:
    # Around MAX_ENTRY_SIZE as an envelope: the size is judged on the envelope the
    # item unpacks to (spec 6.4 step 1), not on the shorter packed item.
    seen = set()
    for pad in range(805, 825):
        tail = cbor2.dumps([T0, 8, [identity(4).pseudonym.key, CTX, b"x" * pad]])[1:]
        fast, reference = both_paths(ME.pseudonym.key, packed_item(ME, b"\x01", tail))
        assert fast == reference
        seen.add(fast[0])  # type: ignore[index]
    assert seen == {"oversize", "invalid-body"}


def _mixed_order_proof() -> tuple[bytes, bytes]:
    """(a proof whose subject key has a small-order component, that key)."""
    raw, author = mixed_order_entry(lambda key, ts: [1, key, 1, GENESIS_PREV, ts, 8,
                                                     [identity(4).pseudonym.key, CTX, True]])
    payload, signature = cbor2.loads(raw)
    item = b"\x86\x01\x01\xf6" + payload[71:] + signature  # packed (spec/proof.md 1.1)
    return PROOF_MAGIC + cbor2.dumps([1, author, [item], [], []]), author


def test_a_mixed_order_author_is_a_bad_pseudonym_on_every_path() -> None:
    data, author = _mixed_order_proof()
    assert not is_valid_key(author)
    with ThreadPoolExecutor(max_workers=2) as pool:
        for kw in ({}, {"map": pool.map}):
            with pytest.raises(shinyo.InvalidPseudonym, match="prime-order") as info:
                verify_proof(data, now=LATER, **kw)  # type: ignore[arg-type]
            assert info.value.seq == 1


def test_the_key_is_judged_before_the_signature() -> None:
    # spec 6.4: 7a then 7b; a bad key with a bad signature is a bad pseudonym.
    data, _ = _mixed_order_proof()
    assert data.endswith(b"\x80\x80")  # others and forks: empty
    broken = data[:-3] + bytes([data[-3] ^ 1]) + data[-2:]  # the signature's last byte
    with pytest.raises(shinyo.InvalidPseudonym):
        verify_proof(broken, now=LATER)


def _history(trades: int) -> tuple[bytes, int]:
    from shinyo.tools.bench import history  # noqa: PLC0415

    me, others = history(trades)
    return build_proof(me.chain, others), len(others) + 1


def test_each_author_key_is_checked_once() -> None:
    data, authors = _history(12)
    is_valid_key.cache_clear()
    verify_proof(data, now=LATER)
    assert is_valid_key.cache_info().misses == authors


def test_the_first_failure_in_the_spec_order_wins_on_every_path() -> None:
    # A bad signature in the subject's chain (step 5) comes before a bad key in a
    # counterparty group (step 7), though the group's check may finish first.
    data, _ = _history(3)
    parts = shinyo.read_proof_file(data)
    own = list(parts.own)
    own[-1] = own[-1][:-1] + bytes([own[-1][-1] ^ 1])
    _, author = _mixed_order_proof()
    mixed, _ = _mixed_order_proof()
    (mixed_item,) = shinyo.read_proof_file(mixed).own
    others = sorted([*parts.others, (author, [mixed_item])])
    bad = ProofFile(subject=parts.subject, own=own, others=others, forks=[]).encode()
    only_group = ProofFile(subject=parts.subject, own=list(parts.own), others=others,
                           forks=[]).encode()
    with ThreadPoolExecutor(max_workers=2) as pool:
        for kw in ({}, {"map": pool.map}):
            with pytest.raises(shinyo.BadSignature):
                verify_proof(bad, now=LATER, **kw)  # type: ignore[arg-type]
            with pytest.raises(shinyo.InvalidPseudonym):
                verify_proof(only_group, now=LATER, **kw)  # type: ignore[arg-type]


def test_the_cli_pauses_the_collector_only_while_it_verifies(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    data, _ = _history(3)
    good, bad = tmp_path / "good.proof", tmp_path / "bad.proof"
    good.write_bytes(data)
    bad.write_bytes(data[:-1] + b"\x00")  # forks: [] became [0]
    seen: list[bool] = []
    real = shinyo.TrustEvidence.add_proof

    def spy(self: shinyo.TrustEvidence, *args: Any, **kw: Any) -> shinyo.ProofReport:
        seen.append(gc.isenabled())
        return real(self, *args, **kw)

    monkeypatch.setattr(shinyo.TrustEvidence, "add_proof", spy)
    as_of = ["--as-of", "2030-01-01"]
    assert cli.main(["verify", str(good), *as_of]) == cli.EXIT_OK
    assert cli.main(["verify", str(bad), *as_of]) == cli.EXIT_INVALID
    assert seen == [False, False] and gc.isenabled()
    gc.disable()  # a caller's choice is left as it was
    try:
        assert cli.main(["verify", str(good), *as_of]) == cli.EXIT_OK
        assert not gc.isenabled()
    finally:
        gc.enable()
    assert "VALID" in capsys.readouterr().out


@pytest.mark.parametrize(("item", "error"), [
    (b"\x58\x05" + bytes(5), shinyo.NonCanonical),  # 5 bytes with a 1-byte length
    (b"\x59\x00\x80" + bytes(128), shinyo.NonCanonical),  # 128 bytes with a 2-byte length
    (b"\x5a\x00\x00\x01\x2c" + bytes(300), shinyo.NonCanonical),  # 300 with a 4-byte length
    (b"\x5f\x41\x00\xff", shinyo.NonCanonical),  # an indefinite length
    (b"\x58\x80" + bytes(100), shinyo.DecodeError),  # truncated inside
    (b"\x59\x01", shinyo.DecodeError),  # truncated inside the head
    (b"\x58", shinyo.DecodeError),
], ids=["1-byte", "2-byte", "4-byte", "indefinite", "truncated", "truncated-head", "no-length"])
def test_the_walk_reads_every_entry_head_as_the_layout_says(
        item: bytes, error: type[Exception]) -> None:
    # The walk reads the usual entry heads inline (spec/proof.md 3 step 3); every
    # other head, and every fault, is still judged by the general head reader.
    data, _ = _history(1)
    parts = shinyo.read_proof_file(data)
    good = ProofFile(subject=parts.subject, own=[*parts.own, bytes(70), bytes(300)],
                     others=[], forks=[]).encode()
    assert shinyo.read_proof_file(good).own[-2:] == [bytes(70), bytes(300)]
    head = len(PROOF_MAGIC) + 1 + 1 + 34  # [, version, subject
    own = good[head:]
    count = own[0] & 0x1F
    broken = good[:head] + bytes([0x80 | (count + 1)]) + own[1:-2] + item
    with pytest.raises(error) as info:
        shinyo.read_proof_file(broken + b"\x80\x80")
    assert type(info.value) is error
