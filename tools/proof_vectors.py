"""The proof-bundle suite of spec/vectors/proofs.json (spec/proof.md 6).

Valid vectors carry the whole expected JSON report at their ``now``, so a
second implementation checks its classification and scoring byte for byte;
invalid ones carry their failure class.
"""

from __future__ import annotations

from typing import Any

import cbor2

import shinyo
from shinyo import Entry, ForkProof, Participant, build_proof, verify_proof
from shinyo._constants import (
    COMMIT_WINDOW,
    DAY,
    PROOF_MAGIC,
    RESPONSE_WINDOW,
    RETRACT_WINDOW,
)
from shinyo._proof_file import pack_entries

from .craft import T0, ident, story, verdict

NOW = T0 + 200 * 86_400


def _fields(data: bytes) -> list[Any]:
    """A valid proof's fields, its entries unpacked (spec/proof.md 1.1) so that
    cases can drop or add whole entries; :func:`_file` packs them again."""
    value: list[Any] = cbor2.loads(data[len(PROOF_MAGIC):])
    (_, own), *groups = shinyo.read_proof_file(data).unpacked()
    value[2] = own
    value[3] = [[key, items] for key, items in groups]
    return value


def _raw_fields(data: bytes) -> list[Any]:
    value: list[Any] = cbor2.loads(data[len(PROOF_MAGIC):])
    return value


def _file_raw(fields: list[Any]) -> bytes:
    return PROOF_MAGIC + bytes(cbor2.dumps(fields, canonical=True))


def _file(fields: list[Any]) -> bytes:
    packed = [*fields[:2], pack_entries([Entry.decode(r) for r in fields[2]]),
              [[key, pack_entries([Entry.decode(r) for r in items])] for key, items in fields[3]],
              *fields[4:]]
    return PROOF_MAGIC + bytes(cbor2.dumps(packed, canonical=True))


def proof_vectors() -> list[dict[str, Any]]:
    alice, bob, carol, _trade, _ = story()
    out: list[dict[str, Any]] = []

    def add(comment: str, data: bytes, expect: str, now: int = NOW) -> None:
        got = verdict(lambda: verify_proof(data, now=now))
        if got != expect:
            raise AssertionError(f"proof vector {comment!r}: expected {expect}, got {got}")
        v: dict[str, Any] = {"comment": comment, "input": data.hex(), "now": now, "expect": got}
        if got == "valid":
            v["result"] = verify_proof(data, now=now).to_json_obj()
        out.append(v)

    proofs = {p: build_proof(p.chain, p.others) for p in (alice, bob, carol)}
    add("alice: a retracted rating received, a trade cancelled by the counterparty",
        proofs[alice], "valid")
    add("bob: rated 5 stars by alice", proofs[bob], "valid")
    add("carol: one cancelled trade", proofs[carol], "valid")
    add("bob judged just after his last entry, inside every window",
        proofs[bob], "valid", now=T0 + 100_000)

    f = _fields(proofs[bob])
    items = f[3][0][1]
    no_reveal = [raw for raw in items if Entry.decode(raw).kind is not shinyo.Kind.RATE_REVEAL]
    add("bob revealed second; his proof without alice's reveal is incomplete",
        _file([*f[:3], [[f[3][0][0], no_reveal]], f[4]]), "incomplete")
    dave, erin = Participant(ident(4)), Participant(ident(5))
    t = dave.propose(erin.pseudonym, context="market.example/books", terms=bytes(32),
                     timestamp=T0)
    erin.receive(t)

    def send(e: Entry) -> None:
        (dave if e.author == erin.pseudonym else erin).receive(e)

    send(erin.accept(t.id, timestamp=T0 + 60))
    send(dave.commit(t.id, stars=4, nonce=bytes(16), timestamp=T0 + 120))
    send(erin.commit(t.id, stars=2, nonce=bytes(16), timestamp=T0 + 180))
    send(dave.reveal(t.id, timestamp=T0 + 240))
    send(erin.reveal(t.id, timestamp=T0 + 300))
    fd = _fields(build_proof(dave.chain, dave.others))
    add("dave revealed first; his proof without erin's reveal shows it withheld",
        _file([*fd[:3], [[fd[3][0][0], fd[3][0][1][:-1]]], fd[4]]), "valid")
    fa = _fields(proofs[alice])
    group = next(i for i, g in enumerate(fa[3]) if g[0] == bob.pseudonym.key)
    fa[3][group][1] = [r for r in fa[3][group][1]
                       if Entry.decode(r).kind is not shinyo.Kind.RATE_REVEAL]
    add("alice responded to bob's rating; her proof without it is incomplete", _file(fa),
        "incomplete")
    no_commit = [raw for raw in items if Entry.decode(raw).kind is not shinyo.Kind.RATE_COMMIT]
    add("bob's proof without the commitment his chain acknowledged",
        _file([*f[:3], [[f[3][0][0], no_commit]], f[4]]), "incomplete")
    add("bob's proof without alice's proposal, which bob accepted",
        _file([*f[:3], [[f[3][0][0], [r for r in items
                                       if Entry.decode(r).kind is not shinyo.Kind.TRADE_PROPOSE]]],
               f[4]]), "incomplete")
    twin = Entry.create(ident(2), seq=1, prev=bytes(32), timestamp=T0,
                        body=shinyo.Cancel(trade=bytes(32)))
    fork = ForkProof.from_entries(bob.chain[1], twin)
    add("bob's proof carrying a fork proof of bob", _file([*f[:4], [fork.encode()]]), "forked")
    add("bob's proof with the subject's first entry missing", _file([*f[:2], f[2][1:], *f[3:]]),
        "seq-gap")
    tampered = bytearray(proofs[bob])
    tampered[-30] ^= 1
    add("one bit flipped near the end", bytes(tampered), "bad-signature")
    add("wrong magic", b"SHINYO-PROOX\x00" + proofs[bob][len(PROOF_MAGIC):], "malformed")
    add("proof version 2", _file([2, *f[1:]]), "unsupported-version")
    add("judged a year before the entries were made", proofs[bob], "future-timestamp",
        now=T0 - 365 * 86_400)
    for comment, data, expect in _timing_cases():
        add(comment, data, expect, now=LATER)
    head = PROOF_MAGIC + b"\x85\x01\x58\x20" + bytes(ident(2).pseudonym.key)
    add("own's length in a non-shortest head", head + b"\x98\x01\x40\x80\x80",
        "non-canonical")
    add("a byte after the proof's CBOR item", proofs[bob] + b"\x00", "non-canonical")
    add("an empty array where an entry belongs", head + b"\x81\x80\x80\x80", "malformed")
    add("own claims 2^40 entries", head + b"\x9b" + (2**40).to_bytes(8, "big"), "oversize")
    # Packed entries (spec/proof.md 1.1).
    raw = _raw_fields(proofs[bob])
    add("the subject's first entry dropped from the packed array: seq 2's prev can't be derived",
        _file_raw([*raw[:2], raw[2][1:], *raw[3:]]), "malformed")
    first = bob.chain[1]
    spelled = b"\x86" + first.payload[1:2] + first.payload[36:] + first.signature
    add("a packed entry that spells out a prev it could leave out",
        _file_raw([*raw[:2], [spelled, *raw[2][1:]], *raw[3:]]), "non-canonical")
    add("a packed entry no longer than a signature",
        _file_raw([*raw[:2], [bytes(64)], *raw[3:]]), "malformed")
    add("version 2 of another shape: the version is judged first",
        PROOF_MAGIC + b"\x81\x02", "unsupported-version")
    return out


LATER = T0 + 400 * DAY


def _pair(n: int) -> tuple[Participant, Participant, bytes]:
    s, c = Participant(ident(n)), Participant(ident(n + 1))
    p = s.propose(c.pseudonym, context="market.example/tools", terms=bytes(32), timestamp=T0)
    c.receive(p)
    s.receive(c.accept(p.id, timestamp=T0 + 60))
    return s, c, p.id


def _send(s: Participant, c: Participant, e: Entry) -> None:
    (s if e.author == c.pseudonym else c).receive(e)


def _goes_on(s: Participant, c: Participant, *times: int) -> None:
    """c's chain goes on with vouches: evidence of silence for s's proof."""
    for k, when in enumerate(times):
        _send(s, c, c.vouch(ident(60 + k).pseudonym, context="market.example/tools",
                            timestamp=when))


def _timing_cases() -> list[tuple[str, bytes, str]]:
    """Spec 7.8: late counterparty steps, confirmation, and evidence from the last step."""
    cases = []
    # A late reveal of the counterparty counts for nothing (review F3).
    s, c, t = _pair(10)
    _send(s, c, s.commit(t, stars=5, nonce=bytes(16), timestamp=T0 + 100))
    _send(s, c, c.commit(t, stars=1, nonce=bytes(16), timestamp=T0 + 200))
    _send(s, c, s.reveal(t, timestamp=T0 + 300))
    due = T0 + 300 + RESPONSE_WINDOW
    _goes_on(s, c, due + 3600)
    _send(s, c, c.reveal(t, timestamp=due + DAY))
    cases.append(("the counterparty revealed late: expired", build_proof(s.chain, s.others),
                  "valid"))
    # A late commit of the counterparty excuses the subject's reveal (review F4).
    s, c, t = _pair(12)
    _send(s, c, s.commit(t, stars=5, nonce=bytes(16), timestamp=T0 + 100))
    due = T0 + 60 + COMMIT_WINDOW
    _goes_on(s, c, due + 3600)
    _send(s, c, c.commit(t, stars=1, nonce=bytes(16), timestamp=due + DAY))
    cases.append(("the counterparty committed late; the subject never revealed: expired",
                  build_proof(s.chain, s.others), "valid"))
    # A rating is confirmed once the rater's chain passes the retraction window (F1);
    # the response after it does not start the evidence (F2).
    s, c, t = _pair(14)
    _send(s, c, s.commit(t, stars=5, nonce=bytes(16), timestamp=T0 + 100))
    _send(s, c, c.commit(t, stars=2, nonce=bytes(16), timestamp=T0 + 200))
    _send(s, c, s.reveal(t, timestamp=T0 + 300))
    _send(s, c, c.reveal(t, timestamp=T0 + 400))
    _send(s, c, c.respond(t, text=bytes(32), timestamp=T0 + 500))
    _goes_on(s, c, T0 + RETRACT_WINDOW + DAY, T0 + 80 * DAY)
    data = build_proof(s.chain, s.others)
    cases.append(("rated 2 stars, confirmed past the retraction window", data, "valid"))
    f = _fields(data)
    f[3][0][1] = [r for r in f[3][0][1] if Entry.decode(r).kind is not shinyo.Kind.RATE_REVEAL]
    cases.append(("the same without the reveal, the response after it kept: withheld",
                  _file(f), "valid"))
    head = c.chain.head
    assert head is not None
    late = Entry.create(c.identity, seq=head.seq + 1, prev=head.id, timestamp=T0 + 81 * DAY,
                        body=shinyo.Retract(trade=t))
    f = _fields(data)
    f[3][0][1].append(late.encode())
    cases.append(("a retraction after the retraction window", _file(f), "trade-rule"))
    return cases
