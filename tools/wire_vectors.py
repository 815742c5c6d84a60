"""The wire suite, spec/vectors/wire.json (spec/wire.md 14).

Each vector is a byte stream received on one direction of a session and a
``check`` saying what the receiver runs on it:

* ``decode``: frame decoding (wire.md 3.3), then end of stream.  ``result`` lists
  the decoded messages as JSON (:func:`describe_message`).
* ``session``: ``decode``, then the order rules and version negotiation (6.1,
  6.2) with the receiver speaking ``versions``.  ``result.version`` is the
  version agreed.
* ``answer``: the receiver sent ``want`` (a Want frame, hex) and receives the
  stream; it matches each Entries message to the Want, then decodes its entries
  and checks they are the ones asked for (7.4).  ``result`` gives the ids and
  the last seq the peer holds when the answer is short.

Keys, entries and fork proofs come from the fixed story of ``craft.py``, so the
file is byte-identical on every run.
"""

from __future__ import annotations

import dataclasses
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cbor2

from shinyo import Cancel, Entry, ForkProof, Pseudonym, VerificationError
from shinyo._constants import GENESIS_PREV, MAX_ENTRY_SIZE, MAX_FORK_PROOF_SIZE, PROTOCOL_VERSION
from shinyo._framing import FrameDecoder, SessionGuard, encode_frame
from shinyo._sync import PeerSync, check_answer
from shinyo._wire import (
    MAX_FRAME_SIZE,
    MAX_HEADS,
    MAX_PEERS,
    MAX_PUSH_ENTRIES,
    MAX_SOFTWARE_LEN,
    MAX_WANT_SPAN,
    Bye,
    Entries,
    Fork,
    Head,
    Heads,
    Hello,
    Message,
    PeerAddress,
    Peers,
    ProofRequest,
    Push,
    Want,
)

from .craft import T0, ident, story

SCHEMA = "shinyo-vectors/1"


# -- running a vector ------------------------------------------------------------------


def _json(value: Any) -> Any:
    if isinstance(value, Pseudonym):
        return value.key.hex()
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, (tuple, list)):
        return [_json(v) for v in value]
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _json(getattr(value, f.name)) for f in dataclasses.fields(value)}
    return value


def describe_message(msg: Message) -> dict[str, Any]:
    """A message as JSON: its type name and fields; keys and bytes in hex."""
    out: dict[str, Any] = {"type": msg.NAME}
    out.update(_json(msg))
    return out


def _decode(stream: bytes) -> list[Message]:
    d = FrameDecoder()
    msgs = d.feed(stream)
    d.eof()
    return msgs


def run_vector(v: dict[str, Any]) -> tuple[str, dict[str, Any] | None]:
    """Run one vector; return its verdict ("valid" or a failure class) and result."""
    stream = bytes.fromhex(v["input"])
    try:
        msgs = _decode(stream)
        if v["check"] == "decode":
            return "valid", {"messages": [describe_message(m) for m in msgs]}
        if v["check"] == "session":
            guard = SessionGuard(versions=v["versions"])
            for m in msgs:
                guard.receive(m)
            return "valid", {"version": guard.version}
        (want,) = _decode(bytes.fromhex(v["want"]))
        assert isinstance(want, Want)
        sync = PeerSync()
        sync.expect(want)
        ids: list[str] = []
        held_through = None
        for m in msgs:
            assert isinstance(m, Entries), "answer vectors hold Entries messages"
            sync.on_entries(m)
            decoded: list[Entry] = []
            for raw in m.entries:
                decoded.append(Entry.decode(raw))
                check_answer(m, decoded)
            ids += [e.id.hex() for e in decoded]
            if len(m.entries) < m.want.span:
                held_through = m.first + len(m.entries) - 1
        return "valid", {"ids": ids, "held_through": held_through}
    except VerificationError as exc:
        return exc.failure_class, None


# -- the suite ----------------------------------------------------------------------------


def _frame_of(body: bytes) -> bytes:
    return len(body).to_bytes(4, "big") + body


def _enc(*items: Any) -> bytes:
    return bytes(cbor2.dumps(list(items), canonical=True))


def wire_vectors() -> list[dict[str, Any]]:
    alice, bob, carol, _trade, _ = story()
    a, b, c = alice.pseudonym, bob.pseudonym, carol.pseudonym
    ak, bk = a.key, b.key
    out: list[dict[str, Any]] = []

    def add(comment: str, stream: bytes, expect: str, check: str = "decode",
            **extra: Any) -> None:
        v: dict[str, Any] = {"comment": comment, "check": check, **extra,
                             "input": stream.hex()}
        got, result = run_vector(v)
        if got != expect:
            raise AssertionError(f"wire vector {comment!r}: expected {expect}, got {got}")
        v["expect"] = got
        if got == "valid":
            v["result"] = result
        out.append(v)

    def frame(*msgs: Message) -> bytes:
        return b"".join(encode_frame(m) for m in msgs)

    def raw(*items: Any) -> bytes:
        """A frame around a hand-built message, deterministically encoded."""
        return _frame_of(_enc(*items))

    heads = tuple(sorted(Head(author=p.pseudonym, seq=len(p.chain), id=p.chain.head.id)
                          for p in (alice, bob, carol) if p.chain.head is not None))
    bob_raws = tuple(e.encode() for e in bob.chain.entries)
    fork_proof = _fork_proof()

    # -- valid messages (wire.md 4) --
    add("hello, minimal", frame(Hello()), "valid")
    add("hello with features, port and software",
        frame(Hello(versions=(1, 2), features=("x-example", "x-other"), port=7400,
                    software="shinyo/0.1.0")), "valid")
    add("bye, normal close", frame(Bye()), "valid")
    add("bye with a code and a reason",
        frame(Bye(code="misbehaviour", reason="too many invalid entries")), "valid")
    add("heads: the sender holds nothing", frame(Heads()), "valid")
    add("heads: three chains, all keys", frame(Heads(heads=heads)), "valid")
    add("heads: a page covering (after, through]",
        frame(Heads(after=heads[0].author.key, through=heads[2].author.key,
                    heads=heads[1:])), "valid")
    add("heads: the answer to a proof request about bob",
        frame(Heads(scope=b, heads=tuple(h for h in heads if h.author in (a, b)))), "valid")
    add("want one entry", frame(Want(author=b, first=2, last=2)), "valid")
    add(f"want the widest span, {MAX_WANT_SPAN} entries",
        frame(Want(author=b, first=1, last=MAX_WANT_SPAN)), "valid")
    add("entries: all of bob's chain",
        frame(Entries(author=b, first=1, last=len(bob_raws), entries=bob_raws)), "valid")
    add("entries: nothing to send", frame(Entries(author=c, first=9, last=20)), "valid")
    add("push one new entry", frame(Push(entries=bob_raws[-1:])), "valid")
    add("fork proof", frame(Fork(proof=fork_proof)), "valid")
    add("peers", frame(Peers(peers=(
        PeerAddress(host="127.0.0.1", port=7400, node=ident(7).pseudonym.key),
        PeerAddress(host="::1", port=7401, node=ident(8).pseudonym.key),
        PeerAddress(host="node.example", port=443, node=ident(9).pseudonym.key)))), "valid")
    add("proof request", frame(ProofRequest(subject=b)), "valid")
    add("a message of unknown type 99 is passed on, to be ignored",
        raw(99, [1, b"\x01"], "future"), "valid")
    add("two frames in one stream", frame(Hello(), Want(author=a, first=1, last=3)), "valid")

    # -- framing (wire.md 3) --
    add("length prefix of 2 GiB (refused before reading the body)",
        (2**31).to_bytes(4, "big"), "frame-too-large")
    add(f"length prefix of MAX_FRAME_SIZE + 1 ({MAX_FRAME_SIZE + 1})",
        (MAX_FRAME_SIZE + 1).to_bytes(4, "big") + bytes(16), "frame-too-large")
    add("stream ends inside the length prefix", b"\x00\x00", "truncated")
    add("stream ends after the length prefix", b"\x00\x00\x00\x05", "truncated")
    add("stream ends one byte short of the body", frame(Bye())[:-1], "truncated")
    add("a valid frame, then a partial one", frame(Bye()) + b"\x00\x00\x00\x09\x82",
        "truncated")
    add("empty frame", b"\x00\x00\x00\x00", "malformed")

    # -- decoding (wire.md 3.3) --
    want = _enc(4, bk, 1, 3)
    add("body is not CBOR (a break byte)", _frame_of(b"\xff"), "malformed")
    add("body is a CBOR item cut short", _frame_of(want[:-1]), "malformed")
    add("body is a map", _frame_of(bytes(cbor2.dumps({4: bk}))), "malformed")
    add("body is an empty array", _frame_of(b"\x80"), "malformed")
    add("type code is text", raw("want", bk, 1, 3), "malformed")
    add("tagged message (tag 1)", _frame_of(b"\xc1" + want), "malformed")
    add("value-sharing tag inside", _frame_of(b"\x84\x04\xd8\x1c" + want[2:]), "malformed")
    add("negative integer field", raw(4, bk, -1, 3), "malformed")
    add("float field", raw(4, bk, 1.0, 3), "malformed")
    add("invalid UTF-8 in a text field", _frame_of(b"\x83\x02\x66normal\x61\xff"), "malformed")
    add("unknown type holding a map", raw(99, {1: 2}), "malformed")
    add("401 nested arrays", _frame_of(b"\x82\x18\x63" + b"\x81" * 400 + b"\x00"),
        "malformed")
    add("first in a non-shortest head (0x18 0x01)",
        _frame_of(want[:-2] + b"\x18\x01\x03"), "non-canonical")
    add("indefinite-length array", _frame_of(b"\x9f" + want[1:] + b"\xff"), "non-canonical")
    add("a byte after the message, inside the frame", _frame_of(want + b"\x00"),
        "non-canonical")
    add("a map with a duplicate key", _frame_of(b"\xa2\x01\x01\x01\x02"), "non-canonical")

    # -- message fields (wire.md 4) --
    add("want: last before first", raw(4, bk, 5, 4), "bad-message")
    add(f"want: span of {MAX_WANT_SPAN + 1}", raw(4, bk, 1, MAX_WANT_SPAN + 1), "bad-message")
    add("want: seq 0", raw(4, bk, 0, 3), "bad-message")
    add("want: author of 31 bytes", raw(4, bk[:31], 1, 3), "bad-message")
    add("want: an extra field", raw(4, bk, 1, 3, 0), "bad-message")
    add("want: last is a boolean", raw(4, bk, 1, True), "bad-message")
    add("hello: no versions", raw(1, [], [], None, ""), "bad-message")
    add("hello: versions not ascending", raw(1, [2, 1], [], None, ""), "bad-message")
    add("hello: features repeated", raw(1, [1], ["x", "x"], None, ""), "bad-message")
    add("hello: feature in upper case", raw(1, [1], ["X"], None, ""), "bad-message")
    add("hello: port 0", raw(1, [1], [], 0, ""), "bad-message")
    add(f"hello: software of {MAX_SOFTWARE_LEN + 1} bytes",
        raw(1, [1], [], None, "s" * (MAX_SOFTWARE_LEN + 1)), "bad-message")
    add("hello: software with a control character", raw(1, [1], [], None, "a\x1b[2J"),
        "bad-message")
    add("bye: code in upper case", raw(2, "Normal", ""), "bad-message")
    hk = [[h.author.key, h.seq, h.id] for h in heads]
    add("heads: authors not ascending", raw(3, None, None, None, hk[::-1]), "bad-message")
    add("heads: an author outside (after, through]",
        raw(3, None, hk[1][0], None, hk), "bad-message")
    add("heads: after not below through", raw(3, None, hk[1][0], hk[0][0], []), "bad-message")
    add("heads: head id of 31 bytes", raw(3, None, None, None, [[ak, 1, bytes(31)]]),
        "bad-message")
    many = [[i.to_bytes(32, "big"), 1, bytes(32)] for i in range(MAX_HEADS + 1)]
    add(f"heads: {MAX_HEADS + 1} heads", raw(3, None, None, None, many), "bad-message")
    add("entries: more entries than the range",
        raw(5, bk, 1, 1, list(bob_raws[:2])), "bad-message")
    add(f"entries: an entry of {MAX_ENTRY_SIZE + 1} bytes",
        raw(5, bk, 1, 1, [bytes(MAX_ENTRY_SIZE + 1)]), "bad-message")
    add("entries: an empty byte string as entry", raw(5, bk, 1, 1, [b""]), "bad-message")
    add("push: no entries", raw(6, []), "bad-message")
    add(f"push: {MAX_PUSH_ENTRIES + 1} entries (one byte each: only counted at decoding)",
        raw(6, [b"\x00"] * (MAX_PUSH_ENTRIES + 1)), "bad-message")
    add(f"fork: proof of {MAX_FORK_PROOF_SIZE + 1} bytes",
        raw(7, bytes(MAX_FORK_PROOF_SIZE + 1)), "bad-message")
    node = ident(7).pseudonym.key
    add("peers: host in upper case", raw(8, [["Node.Example", 1, node]]), "bad-message")
    add("peers: a node key twice", raw(8, [["a", 1, node], ["b", 2, node]]), "bad-message")
    add(f"peers: {MAX_PEERS + 1} peers",
        raw(8, [["h", 1, i.to_bytes(32, "big")] for i in range(MAX_PEERS + 1)]),
        "bad-message")
    add("proof request: subject missing", raw(9), "bad-message")

    # -- session (wire.md 6) --
    add("hello, then a want", frame(Hello(), Want(author=a, first=1, last=1)), "valid",
        check="session", versions=[1])
    add("hello offering versions 1 and 2 to a node speaking 1",
        frame(Hello(versions=(1, 2))), "valid", check="session", versions=[1])
    add("bye before hello", frame(Bye(code="overloaded")), "valid", check="session",
        versions=[1])
    add("want before hello", frame(Want(author=a, first=1, last=1)), "protocol",
        check="session", versions=[1])
    add("two hellos", frame(Hello(), Hello()), "protocol", check="session", versions=[1])
    add("a message after bye", frame(Hello(), Bye(), Heads()), "protocol", check="session",
        versions=[1])
    add("no common version", frame(Hello(versions=(2, 3))), "unsupported-version",
        check="session", versions=[1])

    # -- answers (wire.md 7.4) --
    w = Want(author=b, first=1, last=3)
    wf = frame(w).hex()
    add("a full answer", frame(Entries.answering(w, bob_raws[:3])), "valid", check="answer",
        want=wf)
    add("a short answer: the peer holds entries 1..2 only",
        frame(Entries.answering(w, bob_raws[:2])), "valid", check="answer", want=wf)
    add("nothing to send", frame(Entries.answering(w, ())), "valid", check="answer", want=wf)
    add("an answer to a range not asked for",
        frame(Entries(author=b, first=2, last=3, entries=bob_raws[1:3])), "unsolicited",
        check="answer", want=wf)
    add("two answers to one want", frame(Entries.answering(w, ()), Entries.answering(w, ())),
        "unsolicited", check="answer", want=wf)
    add("an entry by another author",
        frame(Entries.answering(w, (alice.chain[1].encode(),))), "bad-answer",
        check="answer", want=wf)
    add("entries 1 and 3, seq 2 skipped",
        frame(Entries.answering(w, (bob_raws[0], bob_raws[2]))), "bad-answer",
        check="answer", want=wf)
    broken = bytearray(bob_raws[1])
    broken[-1] ^= 1
    add("an entry whose signature does not verify",
        frame(Entries.answering(w, (bob_raws[0], bytes(broken)))), "bad-signature",
        check="answer", want=wf)
    add("an entry that is not CBOR", frame(Entries.answering(w, (b"\xff",))), "malformed",
        check="answer", want=wf)
    return out


def _fork_proof() -> bytes:
    """Two cancels at seq 1 by one key: the smallest fork proof."""
    ra = ident(1)
    one = Entry.create(ra, seq=1, prev=GENESIS_PREV, timestamp=T0, body=Cancel(trade=bytes(32)))
    two = Entry.create(ra, seq=1, prev=GENESIS_PREV, timestamp=T0,
                       body=Cancel(trade=bytes(31) + b"\x01"))
    return ForkProof.from_entries(one, two).encode()


def render(make: Callable[[], list[dict[str, Any]]] = wire_vectors) -> str:
    """The JSON document, laid out as tools/gen_vectors.py lays out every suite."""
    vectors = make()
    doc = {
        "schema": SCHEMA,
        "suite": "wire",
        "protocol_version": PROTOCOL_VERSION,
        "generator": "python -m shinyo.tools.gen_vectors",
        "numberOfVectors": len(vectors),
        "vectors": [{"id": i, **v} for i, v in enumerate(vectors, start=1)],
    }
    return json.dumps(doc, indent=1, ensure_ascii=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    out = Path(args[0] if args else "spec/vectors") / "wire.json"
    out.write_text(render(), encoding="utf-8")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
