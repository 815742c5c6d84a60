"""Generate the test vectors of spec/vectors/ (spec 12), deterministically.

    python -m shinyo.tools.gen_vectors spec/vectors

Every key, nonce, salt and time is fixed (see ``craft.py``), so the files are
byte-identical on every run; the tests regenerate them and compare.  Invalid
vectors break exactly one rule, re-signed where needed, so each fails at the
step its ``expect`` names and no earlier.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import cbor2

import shinyo
from shinyo import Entry, ForkProof, Participant, Propose, Pseudonym
from shinyo._constants import DST_ENTRY_SIG, GENESIS_PREV, PROTOCOL_VERSION

from .craft import (
    CTX,
    T0,
    describe,
    envelope,
    fields_of,
    ident,
    mixed_order_entry,
    nonce,
    resign,
    sign_payload,
    story,
    verdict,
)
from .proof_vectors import proof_vectors
from .scoring_vectors import scoring_vectors
from .trade_vectors import trade_vectors
from .trust_vectors import trust_vectors
from .wire_vectors import wire_vectors

SCHEMA = "shinyo-vectors/1"


def entry_vectors() -> list[dict[str, Any]]:
    alice, bob, carol, _, _ = story()
    out: list[dict[str, Any]] = []

    def add(comment: str, raw: bytes, expect: str | None = None) -> None:
        got = verdict(lambda: Entry.decode(raw))
        if expect is not None and got != expect:
            raise AssertionError(f"vector {comment!r}: expected {expect}, got {got}")
        v: dict[str, Any] = {"comment": comment, "input": raw.hex(), "expect": got}
        if got == "valid":
            v["result"] = describe(Entry.decode(raw))
        out.append(v)

    for p in (alice, bob, carol):
        for e in p.chain.entries:
            add(f"{e.kind.label} by {p.pseudonym.short()} seq {e.seq}", e.encode(), "valid")

    a1 = alice.chain[1]
    a3 = alice.chain[3]
    f = fields_of(a1)
    ra = ident(1)
    add("payload signed without the domain separation tag",
        envelope(a1.payload, ra.sign(a1.payload)), "bad-signature")
    add("signature by another key", envelope(a1.payload, ident(2).sign(DST_ENTRY_SIG + a1.payload)),
        "bad-signature")
    sig = bytearray(a1.signature)
    sig[0] ^= 1
    add("one bit of the signature flipped", envelope(a1.payload, bytes(sig)), "bad-signature")
    add("author replaced by another key, original signature",
        envelope(bytes(cbor2.dumps([f[0], ident(2).pseudonym.key, *f[2:]])), a1.signature),
        "bad-signature")
    mixed, _ = mixed_order_entry(lambda key, ts: [*f[:1], key, *f[2:4], ts, *f[5:]])
    add("author key with a small-order component; its signature verifies under libsodium",
        mixed, "bad-pseudonym")
    add("empty input", b"", "malformed")
    add("truncated by one byte", a1.encode()[:-1], "malformed")
    add("not CBOR at all (a break byte)", b"\xff", "malformed")
    add("envelope is a map", bytes(cbor2.dumps({1: a1.payload, 2: a1.signature})), "malformed")
    add("envelope is a map with a duplicate key",
        b"\xa2\x01" + bytes(cbor2.dumps(a1.payload)) + b"\x01" + bytes(cbor2.dumps(a1.signature)),
        "malformed")
    add("envelope with three items",
        bytes(cbor2.dumps([a1.payload, a1.signature, b""])), "malformed")
    add("signature of 63 bytes", envelope(a1.payload, a1.signature[:63]), "malformed")
    add("trailing byte after the envelope", a1.encode() + b"\x00", "non-canonical")
    add("envelope length in a non-shortest head",
        b"\x98\x02" + a1.encode()[1:], "non-canonical")
    add("indefinite-length envelope", b"\x9f" + a1.encode()[1:] + b"\xff", "non-canonical")
    add("entry larger than 1024 bytes",
        envelope(a1.payload + bytes(1024), a1.signature), "oversize")
    add("payload: version in a non-shortest head (0x18 0x01)",
        sign_payload(ra, a1.payload[:1] + b"\x18" + a1.payload[1:]), "non-canonical")
    add("payload: indefinite-length array",
        sign_payload(ra, b"\x9f" + a1.payload[1:] + b"\xff"), "non-canonical")
    add("payload: trailing byte", sign_payload(ra, a1.payload + b"\x00"), "non-canonical")
    add("payload: version 2", resign(ra, [2, *f[1:]]), "unsupported-version")
    add("payload: version 0", resign(ra, [0, *f[1:]]), "unsupported-version")
    add("payload: six fields", resign(ra, f[:6]), "malformed")
    add("payload: seq 0", resign(ra, [*f[:2], 0, *f[3:]]), "malformed")
    add("payload: seq 2**32", resign(ra, [*f[:2], 2**32, *f[3:]]), "malformed")
    add("payload: seq 1 with a non-genesis prev",
        resign(ra, [*f[:3], b"\x01" * 32, *f[4:]]), "broken-link")
    f3 = fields_of(a3)
    add("payload: seq 3 with the genesis prev",
        resign(ra, [*f3[:3], GENESIS_PREV, *f3[4:]]), "broken-link")
    add("payload: prev of 31 bytes", resign(ra, [*f[:3], b"\x00" * 31, *f[4:]]), "malformed")
    add("payload: negative timestamp", resign(ra, [*f[:4], -1, *f[5:]]), "malformed")
    add("payload: timestamp 2**40", resign(ra, [*f[:4], 2**40, *f[5:]]), "malformed")
    add("payload: timestamp as a float", resign(ra, [*f[:4], 1.5e9, *f[5:]]), "malformed")
    add("payload: author of 31 bytes", resign(ra, [f[0], f[1][:31], *f[2:]]), "malformed")
    add("payload: unknown kind 9", resign(ra, [*f[:5], 9, f[6]]), "invalid-body")
    add("payload: kind 0", resign(ra, [*f[:5], 0, f[6]]), "invalid-body")
    add("propose: context with upper case",
        resign(ra, [*f[:6], [f[6][0], "Market", f[6][2]]]), "invalid-body")
    add("propose: context of 65 characters",
        resign(ra, [*f[:6], [f[6][0], "m" * 65, f[6][2]]]), "invalid-body")
    add("propose: counterparty of 33 bytes",
        resign(ra, [*f[:6], [f[6][0] + b"\x00", f[6][1], f[6][2]]]), "invalid-body")
    add("propose: body with an extra field", resign(ra, [*f[:6], [*f[6], None]]), "invalid-body")
    add("propose: body is a map",
        resign(ra, [*f[:6], {0: f[6][0], 1: f[6][1], 2: f[6][2]}]), "invalid-body")
    reveal = next(e for e in alice.chain.entries if e.kind is shinyo.Kind.RATE_REVEAL)
    fr = fields_of(reveal)
    body = fr[6]
    add("reveal: 6 stars", resign(ra, [*fr[:6], [body[0], 6, *body[2:]]]), "invalid-body")
    add("reveal: 0 stars", resign(ra, [*fr[:6], [body[0], 0, *body[2:]]]), "invalid-body")
    add("reveal: stars as true", resign(ra, [*fr[:6], [body[0], True, *body[2:]]]), "invalid-body")
    add("reveal: nonce of 15 bytes",
        resign(ra, [*fr[:6], [*body[:2], body[2][:15], *body[3:]]]), "invalid-body")
    add("reveal: tags not sorted",
        resign(ra, [*fr[:6], [*body[:3], ["friendly", "fast"], *body[4:]]]), "invalid-body")
    add("reveal: duplicate tag",
        resign(ra, [*fr[:6], [*body[:3], ["fast", "fast"], *body[4:]]]), "invalid-body")
    add("reveal: nine tags",
        resign(ra, [*fr[:6], [*body[:3], [f"t{i}" for i in range(9)], *body[4:]]]),
        "invalid-body")
    add("reveal: ack of 31 bytes",
        resign(ra, [*fr[:6], [*body[:5], b"\x00" * 31]]), "invalid-body")
    vouch = next(e for e in alice.chain.entries if e.kind is shinyo.Kind.VOUCH)
    fv = fields_of(vouch)
    add("vouch: active as 1", resign(ra, [*fv[:6], [*fv[6][:2], 1]]), "invalid-body")
    return out


def chain_vectors() -> list[dict[str, Any]]:
    alice, bob, carol, _trade, _ = story()
    out: list[dict[str, Any]] = []

    def add(comment: str, entries: Iterable[bytes], expect: str,
            now: int | None = None) -> None:
        raws = list(entries)

        def run() -> None:
            shinyo.Chain.from_entries([Entry.decode(r) for r in raws], now=now)

        got = verdict(run)
        if got != expect:
            raise AssertionError(f"chain vector {comment!r}: expected {expect}, got {got}")
        v: dict[str, Any] = {"comment": comment, "input": [r.hex() for r in raws],
                             "expect": got}
        if now is not None:
            v["now"] = now
        out.append(v)

    for p in (alice, bob, carol):
        add(f"{p.pseudonym.short()}'s whole chain", [e.encode() for e in p.chain.entries],
            "valid")
    a = [e.encode() for e in alice.chain.entries]
    b = [e.encode() for e in bob.chain.entries]
    add("alice's chain judged at its last entry's time", a, "valid",
        now=alice.chain.entries[-1].timestamp)
    add("alice's chain judged 11 minutes before its last entry", a, "future-timestamp",
        now=alice.chain.entries[-1].timestamp - 660)
    add("seq 2 missing", [a[0], *a[2:]], "seq-gap")
    add("seq 1 twice", [a[0], a[0]], "seq-gap")
    add("bob's entry inside alice's chain", [a[0], b[1]], "wrong-author")

    ra = ident(1)
    a2 = fields_of(alice.chain[2])
    add("seq 2 whose prev is not seq 1's id",
        [a[0], resign(ra, [*a2[:3], b"\x11" * 32, *a2[4:]])], "broken-link")
    add("seq 2 older than seq 1",
        [a[0], resign(ra, [*a2[:4], T0 - 1, *a2[5:]])], "timestamp-regression")

    # Chains built by hand from bodies, each breaking one rule of spec 7.5.
    bp = bob.pseudonym
    other = Participant(ident(9))
    foreign = other.propose(bp, context=CTX, terms=bytes(32), timestamp=T0).id

    def build(*bodies: shinyo.Body) -> list[bytes]:
        entries: list[Entry] = []
        prev = GENESIS_PREV
        for i, body in enumerate(bodies, start=1):
            e = Entry.create(ra, seq=i, prev=prev, timestamp=T0 + i, body=body)
            entries.append(e)
            prev = e.id
        return [e.encode() for e in entries]

    def with_trade(*later: Callable[[bytes], shinyo.Body]) -> list[bytes]:
        p = Entry.create(ra, seq=1, prev=GENESIS_PREV, timestamp=T0,
                         body=Propose(counterparty=bp, context=CTX, terms=bytes(32)))
        entries = [p]
        for i, make in enumerate(later, start=2):
            entries.append(Entry.create(ra, seq=i, prev=entries[-1].id, timestamp=T0 + i,
                                        body=make(p.id)))
        return [e.encode() for e in entries]

    alice_key = alice.pseudonym
    commitment = shinyo.rating_commitment(
        trade=bytes(32), context=CTX, rater=alice_key, ratee=bp, stars=5, nonce=nonce(1))

    def opening(trade: bytes, stars: int = 5) -> bytes:
        return shinyo.rating_commitment(trade=trade, context=CTX, rater=alice_key, ratee=bp,
                                        stars=stars, nonce=nonce(1))

    add("propose to oneself",
        build(Propose(counterparty=alice_key, context=CTX, terms=bytes(32))), "trade-rule")
    add("accept one's own proposal",
        with_trade(lambda t: shinyo.Accept(trade=t, proposer=alice_key, context=CTX)),
        "trade-rule")
    add("accept naming oneself as proposer",
        build(shinyo.Accept(trade=foreign, proposer=alice_key, context=CTX)), "trade-rule")
    add("accept the same trade twice",
        build(shinyo.Accept(trade=foreign, proposer=other.pseudonym, context=CTX),
              shinyo.Accept(trade=foreign, proposer=other.pseudonym, context=CTX)),
        "trade-rule")
    add("commit to a trade never proposed or accepted",
        build(shinyo.Commit(trade=foreign, commitment=commitment)), "unknown-trade")
    add("cancel an unknown trade", build(shinyo.Cancel(trade=foreign)), "unknown-trade")
    add("cancel twice",
        with_trade(lambda t: shinyo.Cancel(trade=t), lambda t: shinyo.Cancel(trade=t)),
        "trade-rule")
    add("commit after cancel",
        with_trade(lambda t: shinyo.Cancel(trade=t),
                   lambda t: shinyo.Commit(trade=t, commitment=opening(t))), "trade-rule")
    add("cancel after commit",
        with_trade(lambda t: shinyo.Commit(trade=t, commitment=opening(t)),
                   lambda t: shinyo.Cancel(trade=t)), "trade-rule")
    add("commit twice",
        with_trade(lambda t: shinyo.Commit(trade=t, commitment=opening(t)),
                   lambda t: shinyo.Commit(trade=t, commitment=opening(t))), "trade-rule")
    add("reveal without commit",
        with_trade(lambda t: shinyo.Reveal(trade=t, stars=5, nonce=nonce(1), ack=bytes(32))),
        "trade-rule")
    add("reveal with no acknowledgment anywhere",
        with_trade(lambda t: shinyo.Commit(trade=t, commitment=opening(t)),
                   lambda t: shinyo.Reveal(trade=t, stars=5, nonce=nonce(1))), "trade-rule")
    add("acknowledged twice (commit and reveal)",
        with_trade(lambda t: shinyo.Commit(trade=t, commitment=opening(t), ack=b"\x22" * 32),
                   lambda t: shinyo.Reveal(trade=t, stars=5, nonce=nonce(1), ack=b"\x22" * 32)),
        "trade-rule")
    add("reveal with other stars than committed",
        with_trade(lambda t: shinyo.Commit(trade=t, commitment=opening(t, 2)),
                   lambda t: shinyo.Reveal(trade=t, stars=5, nonce=nonce(1), ack=bytes(32))),
        "commitment-mismatch")
    add("reveal with another nonce",
        with_trade(lambda t: shinyo.Commit(trade=t, commitment=opening(t)),
                   lambda t: shinyo.Reveal(trade=t, stars=5, nonce=nonce(2), ack=bytes(32))),
        "commitment-mismatch")
    add("commitment made for another trade (replay)",
        with_trade(lambda t: shinyo.Commit(trade=t, commitment=commitment),
                   lambda t: shinyo.Reveal(trade=t, stars=5, nonce=nonce(1), ack=bytes(32))),
        "commitment-mismatch")
    add("reveal twice",
        with_trade(lambda t: shinyo.Commit(trade=t, commitment=opening(t)),
                   lambda t: shinyo.Reveal(trade=t, stars=5, nonce=nonce(1), ack=bytes(32)),
                   lambda t: shinyo.Reveal(trade=t, stars=5, nonce=nonce(1), ack=bytes(32))),
        "trade-rule")
    add("retract before reveal",
        with_trade(lambda t: shinyo.Commit(trade=t, commitment=opening(t)),
                   lambda t: shinyo.Retract(trade=t)), "trade-rule")
    add("retract twice",
        with_trade(lambda t: shinyo.Commit(trade=t, commitment=opening(t)),
                   lambda t: shinyo.Reveal(trade=t, stars=5, nonce=nonce(1), ack=bytes(32)),
                   lambda t: shinyo.Retract(trade=t), lambda t: shinyo.Retract(trade=t)),
        "trade-rule")
    add("response before acknowledging any rating",
        with_trade(lambda t: shinyo.Response(trade=t, text=bytes(32))), "trade-rule")
    add("response twice",
        with_trade(lambda t: shinyo.Commit(trade=t, commitment=opening(t), ack=b"\x22" * 32),
                   lambda t: shinyo.Response(trade=t, text=bytes(32)),
                   lambda t: shinyo.Response(trade=t, text=bytes(32))), "trade-rule")
    add("vouch for oneself",
        build(shinyo.Vouch(subject=alice_key, context=CTX)), "trade-rule")
    add("vouch twice", build(shinyo.Vouch(subject=bp, context=CTX),
                             shinyo.Vouch(subject=bp, context=CTX)), "trade-rule")
    add("revoke a vouch never made",
        build(shinyo.Vouch(subject=bp, context=CTX, active=False)), "trade-rule")
    add("vouch, revoke, vouch again",
        build(shinyo.Vouch(subject=bp, context=CTX),
              shinyo.Vouch(subject=bp, context=CTX, active=False),
              shinyo.Vouch(subject=bp, context=CTX)), "valid")
    return out


def fork_vectors() -> list[dict[str, Any]]:
    ra = ident(1)
    bp = ident(2).pseudonym
    one = Entry.create(ra, seq=1, prev=GENESIS_PREV, timestamp=T0,
                       body=Propose(counterparty=bp, context=CTX, terms=bytes(32)))
    two = Entry.create(ra, seq=1, prev=GENESIS_PREV, timestamp=T0,
                       body=Propose(counterparty=bp, context=CTX, terms=b"\x01" * 32))
    other = Entry.create(ident(2), seq=1, prev=GENESIS_PREV, timestamp=T0,
                         body=Propose(counterparty=ra.pseudonym, context=CTX, terms=bytes(32)))
    later = Entry.create(ra, seq=2, prev=one.id, timestamp=T0,
                         body=Propose(counterparty=bp, context=CTX, terms=bytes(32)))
    proof = ForkProof.from_entries(one, two)
    lo, hi = proof.first.encode(), proof.second.encode()
    out: list[dict[str, Any]] = []

    def add(comment: str, raw: bytes, expect: str) -> None:
        got = verdict(lambda: ForkProof.decode(raw))
        if got != expect:
            raise AssertionError(f"fork vector {comment!r}: expected {expect}, got {got}")
        v: dict[str, Any] = {"comment": comment, "input": raw.hex(), "expect": got}
        if got == "valid":
            fp = ForkProof.decode(raw)
            v["result"] = {"author": fp.author.to_text(), "seq": fp.seq,
                           "ids": [fp.first.id.hex(), fp.second.id.hex()]}
        out.append(v)

    def enc(*items: object) -> bytes:
        return bytes(cbor2.dumps(list(items)))

    add("two different entries at seq 1", proof.encode(), "valid")
    p2 = ForkProof.from_entries(later, Entry.create(ra, seq=2, prev=two.id, timestamp=T0 + 5,
                                                    body=Propose(counterparty=bp, context=CTX,
                                                                 terms=bytes(32))))
    add("two entries at seq 2 with different prev", p2.encode(), "valid")
    add("entries in the wrong order", enc(PROTOCOL_VERSION, hi, lo), "invalid-fork-proof")
    add("the same entry twice", enc(PROTOCOL_VERSION, lo, lo), "invalid-fork-proof")
    a, b = sorted([one, other], key=lambda e: e.id)
    add("different authors", enc(PROTOCOL_VERSION, a.encode(), b.encode()), "invalid-fork-proof")
    a, b = sorted([one, later], key=lambda e: e.id)
    add("different seqs", enc(PROTOCOL_VERSION, a.encode(), b.encode()), "invalid-fork-proof")
    add("version 2", enc(2, lo, hi), "unsupported-version")
    add("only one entry", enc(PROTOCOL_VERSION, lo), "malformed")
    add("a map with a duplicate key", b"\xa2\x01" + bytes(cbor2.dumps(lo)) + b"\x01"
        + bytes(cbor2.dumps(hi)), "non-canonical")
    add("entries as arrays, not byte strings",
        enc(PROTOCOL_VERSION, cbor2.loads(lo), cbor2.loads(hi)), "malformed")
    bad = bytearray(hi)
    bad[-1] ^= 1
    add("second entry's signature broken", enc(PROTOCOL_VERSION, lo, bytes(bad)), "bad-signature")
    add("oversize", enc(PROTOCOL_VERSION, lo, hi + bytes(2048)), "oversize")
    return out


def pseudonym_vectors() -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []

    def add(comment: str, text: str, expect: str) -> None:
        got = verdict(lambda: Pseudonym.from_text(text))
        if got != expect:
            raise AssertionError(f"pseudonym vector {comment!r}: expected {expect}, got {got}")
        v: dict[str, Any] = {"comment": comment, "input": text, "expect": got}
        if got == "valid":
            v["result"] = {"key": Pseudonym.from_text(text).key.hex()}
        out.append(v)

    for n in (1, 2, 3):
        add(f"identity from seed {n:02x}*32", ident(n).pseudonym.to_text(), "valid")
    good = ident(1).pseudonym.to_text()
    add("upper case", good.upper(), "valid")
    add("one character changed", good[:10] + ("q" if good[10] != "q" else "p") + good[11:],
        "bad-pseudonym")
    add("two characters swapped", good[:20] + good[21] + good[20] + good[22:], "bad-pseudonym")
    add("mixed case", good[:30] + good[30:].upper(), "bad-pseudonym")
    add("wrong human-readable part", "sz" + good[2:], "bad-pseudonym")
    add("truncated", good[:-1], "bad-pseudonym")
    kelvin = good.upper().replace("K", "\u212a", 1)
    assert kelvin != good.upper()
    add("upper case with U+212A KELVIN SIGN for K (lower() would fold it)", kelvin,
        "bad-pseudonym")
    mixed_key = mixed_order_entry(lambda key, ts: [1, key, 1, bytes(32), ts, 3, [bytes(32)]])[1]
    add("key with a small-order component, valid checksum",
        Pseudonym(key=mixed_key).to_text(), "bad-pseudonym")
    add("small-order point with valid checksum",
        Pseudonym(key=bytes([1]) + bytes(31)).to_text(), "bad-pseudonym")
    return out


SUITES: dict[str, tuple[str, Callable[[], list[dict[str, Any]]]]] = {
    "entries.json": ("entry", entry_vectors),
    "chains.json": ("chain", chain_vectors),
    "fork_proofs.json": ("fork-proof", fork_vectors),
    "pseudonyms.json": ("pseudonym", pseudonym_vectors),
    "trades.json": ("trade", trade_vectors),
    "proofs.json": ("proof", proof_vectors),
    "scoring.json": ("scoring", scoring_vectors),
    "trust.json": ("trust", trust_vectors),
    "wire.json": ("wire", wire_vectors),
}


def render(name: str) -> str:
    suite, make = SUITES[name]
    vectors = make()
    for i, v in enumerate(vectors, start=1):
        v["id"] = i
    doc = {
        "schema": SCHEMA,
        "suite": suite,
        "protocol_version": PROTOCOL_VERSION,
        "generator": "python -m shinyo.tools.gen_vectors",
        "numberOfVectors": len(vectors),
        "vectors": [{"id": v.pop("id"), **v} for v in vectors],
    }
    return json.dumps(doc, indent=1, ensure_ascii=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    out = Path(args[0] if args else "spec/vectors")
    out.mkdir(parents=True, exist_ok=True)
    for name in SUITES:
        (out / name).write_text(render(name), encoding="utf-8")
        print(f"wrote {out / name}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
