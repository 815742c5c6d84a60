"""Wire messages and framing (spec/wire.md 3-6, 11, 14)."""

from __future__ import annotations

import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cbor2
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import shinyo._wire as wire
from shinyo import LocalProtocolError, Pseudonym
from shinyo._constants import MAX_ENTRY_SIZE, MAX_FORK_PROOF_SIZE, MAX_SEQ
from shinyo._framing import FrameDecoder, SessionGuard, encode_frame, negotiate
from shinyo._wire import (
    MAX_FEATURES,
    MAX_FRAME_SIZE,
    MAX_HEADS,
    MAX_HOST_LEN,
    MAX_PEERS,
    MAX_PUSH_ENTRIES,
    MAX_REASON_LEN,
    MAX_SOFTWARE_LEN,
    MAX_TOKEN_LEN,
    MAX_VERSIONS,
    MAX_WANT_SPAN,
    BadMessage,
    Bye,
    Entries,
    Fork,
    FrameTooLarge,
    Head,
    Heads,
    Hello,
    IncompatibleVersion,
    MalformedMessage,
    Message,
    NonCanonicalMessage,
    PeerAddress,
    Peers,
    ProofRequest,
    ProtocolViolation,
    Push,
    TruncatedFrame,
    Unknown,
    Want,
    WireError,
    decode_message,
)
from shinyo.tools import wire_vectors

from .conftest import identity

VECTORS = Path(__file__).resolve().parent.parent / "spec" / "vectors"
ALICE = identity(1).pseudonym


def enc(*items: Any) -> bytes:
    return bytes(cbor2.dumps(list(items), canonical=True))


# -- strategies: every message type, valid by construction --------------------------------

keys = st.binary(min_size=32, max_size=32)
pseudonyms = keys.map(lambda k: Pseudonym(key=k))
tokens = st.from_regex(r"[a-z0-9][a-z0-9-]{0,31}", fullmatch=True)


def texts(max_bytes: int) -> st.SearchStrategy[str]:
    chars = st.characters(codec="utf-8", exclude_categories=("Cc",))
    return st.text(chars, max_size=max_bytes).filter(lambda s: len(s.encode()) <= max_bytes)


def sorted_unique(elements: st.SearchStrategy[Any],
                  **kw: Any) -> st.SearchStrategy[tuple[Any, ...]]:
    return st.lists(elements, unique=True, **kw).map(lambda xs: tuple(sorted(xs)))


hellos = st.builds(
    Hello,
    versions=sorted_unique(st.integers(1, 0xFFFF), min_size=1, max_size=MAX_VERSIONS),
    features=sorted_unique(tokens, max_size=MAX_FEATURES),
    port=st.none() | st.integers(1, 0xFFFF),
    software=texts(MAX_SOFTWARE_LEN),
)
byes = st.builds(Bye, code=tokens, reason=texts(MAX_REASON_LEN))
raw_entries = st.binary(min_size=1, max_size=MAX_ENTRY_SIZE)


@st.composite
def heads_messages(draw: st.DrawFn) -> Heads:
    ks = sorted(set(draw(st.lists(keys, max_size=12))))
    after = ks.pop(0) if ks and draw(st.booleans()) else None
    through = ks[-1] if ks and draw(st.booleans()) else None
    heads = tuple(Head(author=Pseudonym(key=k), seq=draw(st.integers(1, MAX_SEQ)),
                       id=draw(st.binary(min_size=32, max_size=32))) for k in ks)
    return Heads(scope=draw(st.none() | pseudonyms), after=after, through=through, heads=heads)


@st.composite
def ranges(draw: st.DrawFn) -> tuple[Pseudonym, int, int]:
    first = draw(st.integers(1, MAX_SEQ))
    last = draw(st.integers(first, min(MAX_SEQ, first + MAX_WANT_SPAN - 1)))
    return draw(pseudonyms), first, last


wants = ranges().map(lambda r: Want(author=r[0], first=r[1], last=r[2]))


@st.composite
def entries_messages(draw: st.DrawFn) -> Entries:
    author, first, last = draw(ranges())
    raws = draw(st.lists(raw_entries, max_size=min(4, last - first + 1)))
    return Entries(author=author, first=first, last=last, entries=tuple(raws))


pushes = st.lists(raw_entries, min_size=1, max_size=4).map(lambda r: Push(entries=tuple(r)))
forks = st.binary(min_size=1, max_size=MAX_FORK_PROOF_SIZE).map(lambda b: Fork(proof=b))
hosts = st.from_regex(r"[a-z0-9.:-]{1,40}", fullmatch=True)
peers_messages = st.lists(
    st.builds(PeerAddress, host=hosts, port=st.integers(1, 0xFFFF), node=keys),
    max_size=6, unique_by=lambda p: p.node,
).map(lambda ps: Peers(peers=tuple(ps)))
proof_requests = st.builds(ProofRequest, subject=pseudonyms)
subset_values = st.recursive(
    st.none() | st.booleans() | st.integers(0, 2**64 - 1) | st.binary(max_size=16)
    | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4), max_leaves=12)
unknowns = st.builds(Unknown, code=st.integers(10, 2**64 - 1),
                     fields=st.lists(subset_values, max_size=4).map(tuple))

messages: st.SearchStrategy[Message] = st.one_of(
    hellos, byes, heads_messages(), wants, entries_messages(), pushes, forks, peers_messages,
    proof_requests, unknowns)


# -- round trips ------------------------------------------------------------------------


@given(messages)
def test_every_message_round_trips(msg: Message) -> None:
    body = msg.encode()
    assert decode_message(body) == msg
    assert FrameDecoder().feed(encode_frame(msg)) == [msg]
    assert len(body) <= MAX_FRAME_SIZE


@given(st.lists(messages, max_size=5), st.data())
def test_byte_by_byte_and_any_chunking_equal_all_at_once(msgs: list[Message],
                                                          data: st.DataObject) -> None:
    stream = b"".join(encode_frame(m) for m in msgs)
    whole = FrameDecoder()
    assert whole.feed(stream) == msgs
    whole.eof()
    one = FrameDecoder()
    got = [m for i in range(len(stream)) for m in one.feed(stream[i : i + 1])]
    one.eof()
    assert got == msgs
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=6)))
    chunked = FrameDecoder()
    got = []
    for lo, hi in zip([0, *cuts], [*cuts, len(stream)], strict=True):
        got += chunked.feed(memoryview(stream)[lo:hi])
    chunked.eof()
    assert got == msgs


def decode_stream(stream: bytes) -> list[Message]:
    d = FrameDecoder()
    msgs = d.feed(stream)
    d.eof()
    return msgs


def assert_typed_or_exact(stream: bytes) -> None:
    """Either a WireError, or messages whose frames are exactly ``stream`` (canonical)."""
    try:
        msgs = decode_stream(stream)
    except WireError:
        return
    assert b"".join(encode_frame(m) for m in msgs) == stream


@settings(suppress_health_check=[HealthCheck.too_slow])
@given(messages, st.data())
def test_mutated_frames_give_a_typed_error_or_another_valid_message(
        msg: Message, data: st.DataObject) -> None:
    frame = encode_frame(msg)
    cut = data.draw(st.integers(0, len(frame) - 1))
    assert_typed_or_exact(frame[:cut])
    assert_typed_or_exact(frame + data.draw(st.binary(min_size=1, max_size=16)))
    i = data.draw(st.integers(0, len(frame) - 1))
    flipped = bytearray(frame)
    flipped[i] = data.draw(st.integers(0, 255).filter(lambda b: b != frame[i]))
    assert_typed_or_exact(bytes(flipped))


@given(st.binary(max_size=300))
def test_arbitrary_bytes_never_raise_anything_but_wire_errors(junk: bytes) -> None:
    assert_typed_or_exact(junk)
    assert_typed_or_exact(len(junk).to_bytes(4, "big") + junk)


def test_every_byte_of_every_vector_frame_mutated() -> None:
    """Exhaustive over positions (not values) for the valid vectors' frames."""
    for v in wire_vectors.wire_vectors():
        if v["check"] != "decode" or v["expect"] != "valid":
            continue
        stream = bytes.fromhex(v["input"])
        for i in range(0, len(stream), max(1, len(stream) // 64)):
            assert_typed_or_exact(stream[:i])
            for delta in (1, 0x80):
                b = bytearray(stream)
                b[i] ^= delta
                assert_typed_or_exact(bytes(b))


# -- framing (wire.md 3) --------------------------------------------------------------


def test_oversize_length_is_refused_before_buffering_the_body() -> None:
    rest_of_chunk = b"\x00\x00" + bytes(1 << 20)  # allocated before tracing starts
    d = FrameDecoder()
    tracemalloc.start()
    try:
        assert d.feed(b"\x80\x00") == []  # the first half of a 2 GiB length prefix
        with pytest.raises(FrameTooLarge, match="2147483648"):
            d.feed(rest_of_chunk)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert d.buffered == 0
    assert peak < 32_768  # neither the 2 GiB body nor a copy of the 1 MiB chunk
    with pytest.raises(FrameTooLarge):  # final: the stream has lost its framing
        d.feed(b"")
    with pytest.raises(FrameTooLarge):
        d.eof()


def test_frame_size_limit_is_exact() -> None:
    n = MAX_FRAME_SIZE - 8  # [99, bstr(n)]: 1 + 2 + 5 + n bytes
    biggest = Unknown(code=99, fields=(bytes(n),))
    assert len(biggest.encode()) == MAX_FRAME_SIZE
    assert FrameDecoder().feed(encode_frame(biggest)) == [biggest]
    with pytest.raises(FrameTooLarge):
        FrameDecoder().feed((MAX_FRAME_SIZE + 1).to_bytes(4, "big"))
    small = FrameDecoder(max_frame_size=10)
    with pytest.raises(FrameTooLarge):
        small.feed(encode_frame(Want(author=ALICE, first=1, last=1)))


def test_largest_message_of_each_kind_fits_a_frame() -> None:
    span = Want(author=ALICE, first=MAX_SEQ - MAX_WANT_SPAN + 1, last=MAX_SEQ)
    full = Entries.answering(span, [bytes(MAX_ENTRY_SIZE)] * MAX_WANT_SPAN)
    heads = Heads(scope=ALICE, after=bytes(32), through=b"\xff" * 32, heads=tuple(
        Head(author=Pseudonym(key=(i + 1).to_bytes(32, "big")), seq=MAX_SEQ, id=bytes(32))
        for i in range(MAX_HEADS)))
    push = Push(entries=(bytes(MAX_ENTRY_SIZE),) * MAX_PUSH_ENTRIES)
    peers = Peers(peers=tuple(PeerAddress(host="a" * MAX_HOST_LEN, port=65535,
                                          node=i.to_bytes(32, "big")) for i in range(MAX_PEERS)))
    for msg in (full, heads, push, peers, Fork(proof=bytes(MAX_FORK_PROOF_SIZE))):
        frame = encode_frame(msg)
        assert len(frame) - 4 <= MAX_FRAME_SIZE
        assert FrameDecoder().feed(frame) == [msg]
    assert len(full.encode()) == 262_961  # the figure wire.md 5 gives


def test_truncation_is_reported_at_eof_and_is_final() -> None:
    frame = encode_frame(Bye())
    for cut in range(1, len(frame)):
        d = FrameDecoder()
        assert d.feed(frame[:cut]) == []
        assert d.buffered == (cut if cut < 4 else cut - 4)
        with pytest.raises(TruncatedFrame):
            d.eof()
        with pytest.raises(TruncatedFrame):
            d.feed(frame[cut:])
    d = FrameDecoder()
    d.feed(frame)
    d.eof()
    with pytest.raises(LocalProtocolError):
        d.feed(frame)


def test_messages_before_a_bad_frame_are_not_delivered_and_the_error_sticks() -> None:
    d = FrameDecoder()
    with pytest.raises(MalformedMessage):
        d.feed(encode_frame(Bye()) + b"\x00\x00\x00\x00")
    with pytest.raises(MalformedMessage):
        d.feed(encode_frame(Bye()))


# -- limits (wire.md 5): at the limit decodes, one past it is bad-message ---------------

K = ALICE.key


def _heads(n: int) -> list[Any]:
    return [3, None, None, None, [[(i + 1).to_bytes(32, "big"), 1, bytes(32)] for i in range(n)]]


LIMITS: dict[str, tuple[int, Callable[[int], list[Any]]]] = {
    "versions": (MAX_VERSIONS, lambda n: [1, list(range(1, n + 1)), [], None, ""]),
    "version value": (0xFFFF, lambda n: [1, [n], [], None, ""]),
    "features": (MAX_FEATURES, lambda n: [1, [1], [f"f{i:02d}" for i in range(n)], None, ""]),
    "token length": (MAX_TOKEN_LEN, lambda n: [1, [1], ["a" * n], None, ""]),
    "software": (MAX_SOFTWARE_LEN, lambda n: [1, [1], [], None, "é" * (n // 2) + "s" * (n % 2)]),
    "port": (0xFFFF, lambda n: [1, [1], [], n, ""]),
    "reason": (MAX_REASON_LEN, lambda n: [2, "normal", "r" * n]),
    "bye code": (MAX_TOKEN_LEN, lambda n: [2, "c" * n, ""]),
    "heads": (MAX_HEADS, _heads),
    "want span": (MAX_WANT_SPAN, lambda n: [4, K, 1, n]),
    "want seq": (MAX_SEQ, lambda n: [4, K, n, n]),
    "entries count": (3, lambda n: [5, K, 1, 3, [b"e"] * n]),
    "entry size": (MAX_ENTRY_SIZE, lambda n: [5, K, 1, 1, [bytes(n)]]),
    "push": (MAX_PUSH_ENTRIES, lambda n: [6, [b"e"] * n]),
    "fork proof": (MAX_FORK_PROOF_SIZE, lambda n: [7, bytes(n)]),
    "peers": (MAX_PEERS, lambda n: [8, [["h", 1, i.to_bytes(32, "big")] for i in range(n)]]),
    "host": (MAX_HOST_LEN, lambda n: [8, [["h" * n, 1, K]]]),
}


@pytest.mark.parametrize("name", sorted(LIMITS))
def test_each_limit_is_hit(name: str) -> None:
    limit, fields = LIMITS[name]
    msg = decode_message(enc(*fields(limit)))
    assert msg.encode() == enc(*fields(limit))
    with pytest.raises(BadMessage):
        decode_message(enc(*fields(limit + 1)))


def test_constructors_refuse_bad_fields_as_local_errors() -> None:
    with pytest.raises(LocalProtocolError, match="ascending"):
        Hello(versions=(2, 1))
    with pytest.raises(LocalProtocolError, match=r"last must be"):
        Want(author=ALICE, first=1, last=MAX_WANT_SPAN + 1)
    with pytest.raises(LocalProtocolError, match="Pseudonym"):
        Want(author=K, first=1, last=1)  # type: ignore[arg-type]
    with pytest.raises(LocalProtocolError):
        Push(entries=())
    with pytest.raises(LocalProtocolError, match="control"):
        Bye(reason="\x07")
    with pytest.raises(LocalProtocolError):
        Bye(reason="\ud800")  # a lone surrogate is not UTF-8
    with pytest.raises(LocalProtocolError, match="defined"):
        Unknown(code=4, fields=())
    with pytest.raises(LocalProtocolError, match="subset"):
        Unknown(code=99, fields=(1.5,))
    with pytest.raises(LocalProtocolError, match="twice"):
        Peers(peers=(PeerAddress(host="a", port=1, node=K), PeerAddress(host="b", port=2, node=K)))
    with pytest.raises(LocalProtocolError, match="tuple"):
        Push(entries=[b"x"])  # type: ignore[arg-type]


def test_constructors_check_object_types() -> None:
    for build in (
        lambda: Head(author=K, seq=1, id=bytes(32)),  # type: ignore[arg-type]
        lambda: Heads(scope=K),  # type: ignore[arg-type]
        lambda: Heads(heads=((K, 1, bytes(32)),)),  # type: ignore[arg-type]
        lambda: Peers(peers=(("a", 1, K),)),  # type: ignore[arg-type]
        lambda: ProofRequest(subject=K),  # type: ignore[arg-type]
    ):
        with pytest.raises(LocalProtocolError):
            build()


def test_a_body_beyond_the_frame_limit_is_refused_unparsed() -> None:
    with pytest.raises(FrameTooLarge):
        decode_message(enc(99, bytes(MAX_FRAME_SIZE)))


def test_bye_for_error_fits_and_keeps_the_code() -> None:
    bye = Bye.for_error(BadMessage("é\n" * 400))
    assert bye.code == "bad-message"
    assert len(bye.reason.encode()) <= MAX_REASON_LEN and "\n" not in bye.reason
    assert decode_message(bye.encode()) == bye


def test_unknown_types_are_returned_for_the_caller_to_ignore() -> None:
    msg = decode_message(enc(64, "later", [1, 2]))
    assert msg == Unknown(code=64, fields=("later", [1, 2]))
    assert isinstance(msg, Unknown)


# -- session (wire.md 6) ------------------------------------------------------------


def test_version_negotiation_picks_the_highest_common() -> None:
    assert negotiate([1, 2, 3], Hello(versions=(2, 3, 9))) == 3
    with pytest.raises(IncompatibleVersion):
        negotiate([1], Hello(versions=(2,)))


def test_session_order() -> None:
    g = SessionGuard()
    with pytest.raises(ProtocolViolation, match="before hello"):
        g.receive(Want(author=ALICE, first=1, last=1))
    g.receive(Hello())
    assert g.version == 1
    g.receive(Heads())
    with pytest.raises(ProtocolViolation, match="second hello"):
        g.receive(Hello())
    g.receive(Bye())
    with pytest.raises(ProtocolViolation, match="after bye"):
        g.receive(Heads())


# -- vectors (wire.md 14) -------------------------------------------------------------

ALL = wire_vectors.wire_vectors()


@pytest.mark.parametrize("v", ALL, ids=lambda v: str(v["comment"]))
def test_vector(v: dict[str, Any]) -> None:
    assert wire_vectors.run_vector(v) == (v["expect"], v.get("result"))
    if v["check"] == "decode" and v["expect"] == "valid":
        msgs = decode_stream(bytes.fromhex(v["input"]))
        assert b"".join(encode_frame(m) for m in msgs).hex() == v["input"]


def test_vectors_cover_every_wire_error_class() -> None:
    classes = {c.failure_class for c in vars(wire).values()
               if isinstance(c, type) and issubclass(c, WireError) and c is not WireError}
    assert classes <= {v["expect"] for v in ALL}
    assert {m["type"] for v in ALL if v["expect"] == "valid" and v["check"] == "decode"
            for m in v["result"]["messages"]} >= {
        "hello", "bye", "heads", "want", "entries", "push", "fork", "peers", "proof-request",
        "unknown"}


def test_vector_file_is_what_the_generator_makes() -> None:
    assert (VECTORS / "wire.json").read_text(encoding="utf-8") == wire_vectors.render(), (
        "spec/vectors/wire.json is stale: run python -m shinyo.tools.wire_vectors spec/vectors")


def test_non_canonical_and_malformed_are_told_apart() -> None:
    body = enc(4, K, 1, 3)
    with pytest.raises(NonCanonicalMessage):
        decode_message(body + b"\x00")
    with pytest.raises(MalformedMessage):
        decode_message(body[:-1])
    with pytest.raises(MalformedMessage):
        decode_message(b"")
