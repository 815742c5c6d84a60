"""Node-to-node wire messages (spec/wire.md 4), their limits and their errors.

Sans-IO: :func:`decode_message` turns a frame body into a message object,
``msg.encode()`` turns it back; framing on a stream is ``_framing.py``'s job.

A message is a deterministic CBOR array ``[type, *fields]`` in the same CBOR
subset as entries (shinyo.md 3.1), so there is one encoding per message and a
vector suite can pin every byte.  Entries and fork proofs travel as the byte
strings their authors signed: the receiver verifies exactly what it got.

Errors: every defect in received bytes raises a :class:`WireError`, whose
``code`` goes into the Bye message the node answers with (wire.md 6.3).  Each
message class validates its fields on construction and raises
:class:`LocalProtocolError` for a caller's mistake; decoding turns that into
:class:`BadMessage`, the peer's mistake.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Final, NoReturn

from ._cbor import decode_canonical, encode
from ._constants import HASH_SIZE, KEY_SIZE, MAX_ENTRY_SIZE, MAX_FORK_PROOF_SIZE, MAX_SEQ
from ._errors import DecodeError, LocalProtocolError, NonCanonical, Oversize, VerificationError
from ._identity import Pseudonym

__all__ = [
    "WIRE_VERSION",
    "BadAnswer",
    "BadMessage",
    "Bye",
    "Entries",
    "Fork",
    "FrameTooLarge",
    "Head",
    "Heads",
    "Hello",
    "IncompatibleVersion",
    "MalformedMessage",
    "Message",
    "NonCanonicalMessage",
    "PeerAddress",
    "Peers",
    "ProofRequest",
    "ProtocolViolation",
    "Push",
    "TruncatedFrame",
    "Unknown",
    "Unsolicited",
    "Want",
    "WireError",
    "decode_message",
]

# -- Limits (wire.md 5) -------------------------------------------------------------
WIRE_VERSION: Final = 1
"""The wire protocol version this module speaks (Hello.versions)."""
SUPPORTED_VERSIONS: Final = (WIRE_VERSION,)
FRAME_HEADER_SIZE: Final = 4
MAX_FRAME_SIZE: Final = 256 * 1024 + 4096
"""Largest message body in a frame: a full Entries answer (256 entries of 1024
bytes, 262,961 bytes encoded) fits with room to spare."""
MAX_VERSIONS: Final = 8
MAX_FEATURES: Final = 16
MAX_TOKEN_LEN: Final = 32
MAX_SOFTWARE_LEN: Final = 64
MAX_REASON_LEN: Final = 256
MAX_HEADS: Final = 1024
MAX_WANT_SPAN: Final = 256
MAX_PUSH_ENTRIES: Final = 64
MAX_PEERS: Final = 32
MAX_HOST_LEN: Final = 253
_UINT64_MAX: Final = 2**64 - 1

_TOKEN = re.compile(r"[a-z0-9][a-z0-9-]*")
_HOST = re.compile(r"[a-z0-9.:-]+")
# C0 and C1 controls and DEL: a peer's text ends up in logs and terminals.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


# -- Errors (wire.md 6.3) -----------------------------------------------------------


class WireError(VerificationError):
    """A peer sent bytes or messages that break spec/wire.md.

    ``code`` (equal to ``failure_class``) is machine-readable: it is the code of
    the Bye message a node sends before closing, and the ``expect`` value of the
    invalid wire test vectors.
    """

    failure_class: ClassVar[str] = "wire"

    @property
    def code(self) -> str:
        return self.failure_class


class FrameTooLarge(WireError):
    """A frame's length prefix exceeds MAX_FRAME_SIZE (checked before buffering)."""

    failure_class = "frame-too-large"


class TruncatedFrame(WireError):
    """The stream ended inside a frame."""

    failure_class = "truncated"


class MalformedMessage(WireError):
    """A frame body that is not a well-formed message: empty, not CBOR, a tag, not
    an array starting with a type code, or items outside the CBOR subset."""

    failure_class = "malformed"


class NonCanonicalMessage(WireError):
    """Well-formed CBOR, but not its deterministic encoding (shinyo.md 3.1)."""

    failure_class = "non-canonical"


class BadMessage(WireError):
    """A message of a known type whose fields break the rules of wire.md 4."""

    failure_class = "bad-message"


class IncompatibleVersion(WireError):
    """The two nodes' Hello messages share no wire version."""

    failure_class = "unsupported-version"


class ProtocolViolation(WireError):
    """Messages out of order (wire.md 6.2) or too many unanswered Wants (7.3)."""

    failure_class = "protocol"


class Unsolicited(WireError):
    """An Entries message that answers no Want we sent (wire.md 7.4)."""

    failure_class = "unsolicited"


class BadAnswer(WireError):
    """An Entries answer whose entries are not the author and seqs asked for."""

    failure_class = "bad-answer"


# -- Field checks: raise LocalProtocolError; decoding maps it to BadMessage -------------


def _fail(msg: str) -> NoReturn:
    raise LocalProtocolError(msg)


def _uint(value: object, name: str, lo: int, hi: int) -> int:
    if type(value) is not int or not lo <= value <= hi:
        _fail(f"{name} must be an unsigned integer in {lo}..{hi}")
    return value


def _bstr(value: object, name: str, lo: int, hi: int) -> bytes:
    if type(value) is not bytes or not lo <= len(value) <= hi:
        _fail(f"{name} must be a byte string of {lo}..{hi} bytes")
    return value


def _key(value: object, name: str) -> bytes:
    if type(value) is not bytes or len(value) != KEY_SIZE:
        _fail(f"{name} must be a {KEY_SIZE}-byte key")
    return value


def _text(value: object, name: str, max_bytes: int) -> str:
    try:
        size = len(value.encode()) if type(value) is str else -1
    except UnicodeEncodeError:  # lone surrogates: not encodable as UTF-8
        size = -1
    if not 0 <= size <= max_bytes or _CONTROL.search(str(value)):
        _fail(f"{name} must be text of at most {max_bytes} UTF-8 bytes, without control characters")
    assert isinstance(value, str)
    return value


def _token(value: object, name: str) -> str:
    if type(value) is not str or len(value) > MAX_TOKEN_LEN or not _TOKEN.fullmatch(value):
        _fail(f"{name} must match [a-z0-9][a-z0-9-]* and have at most {MAX_TOKEN_LEN} characters")
    return value


def _tuple(value: object, name: str, lo: int, hi: int) -> tuple[Any, ...]:
    if not isinstance(value, tuple) or not lo <= len(value) <= hi:
        _fail(f"{name} must be a tuple of {lo}..{hi} items")
    return value


def _ascending(items: Sequence[Any], name: str) -> None:
    if any(a >= b for a, b in itertools.pairwise(items)):
        _fail(f"{name} must be strictly ascending (sorted, no repeats)")


def _array(value: object, name: str, size: int | None = None) -> list[Any]:
    """A decoded CBOR array (a list), of ``size`` items if given."""
    if type(value) is not list or (size is not None and len(value) != size):
        _fail(f"{name} must be an array" + ("" if size is None else f" of {size} items"))
    return value


def _author(value: object, name: str) -> Pseudonym:
    return Pseudonym(key=_key(value, name))


# -- Messages (wire.md 4) -----------------------------------------------------------


class _Message:
    """Shared encoding: the CBOR array ``[TYPE, *fields]``."""

    __slots__ = ()
    TYPE: ClassVar[int]
    NAME: ClassVar[str]

    def _fields(self) -> list[Any]:
        raise NotImplementedError

    def encode(self) -> bytes:
        """The message's deterministic CBOR encoding (a frame body)."""
        return encode([self.TYPE, *self._fields()])


def _arity(cls: type[_Message], fields: list[Any], n: int) -> None:
    if len(fields) != n:
        _fail(f"{cls.NAME} has {n} fields after its type, not {len(fields)}")


@dataclass(frozen=True, slots=True, kw_only=True)
class Hello(_Message):
    """First message in each direction (wire.md 4.1)."""

    TYPE: ClassVar[int] = 1
    NAME: ClassVar[str] = "hello"
    versions: tuple[int, ...] = SUPPORTED_VERSIONS
    features: tuple[str, ...] = ()
    port: int | None = None
    software: str = ""

    def __post_init__(self) -> None:
        for v in _tuple(self.versions, "versions", 1, MAX_VERSIONS):
            _uint(v, "a version", 1, 0xFFFF)
        _ascending(self.versions, "versions")
        for f in _tuple(self.features, "features", 0, MAX_FEATURES):
            _token(f, "a feature")
        _ascending(self.features, "features")
        if self.port is not None:
            _uint(self.port, "port", 1, 0xFFFF)
        _text(self.software, "software", MAX_SOFTWARE_LEN)

    def _fields(self) -> list[Any]:
        return [list(self.versions), list(self.features), self.port, self.software]

    @classmethod
    def _from(cls, f: list[Any]) -> Hello:
        _arity(cls, f, 4)
        return cls(versions=tuple(_array(f[0], "versions")),
                   features=tuple(_array(f[1], "features")), port=f[2], software=f[3])


@dataclass(frozen=True, slots=True, kw_only=True)
class Bye(_Message):
    """Last message: why the sender closes (wire.md 4.2, codes in 6.3)."""

    TYPE: ClassVar[int] = 2
    NAME: ClassVar[str] = "bye"
    code: str = "normal"
    reason: str = ""

    def __post_init__(self) -> None:
        _token(self.code, "code")
        _text(self.reason, "reason", MAX_REASON_LEN)

    @classmethod
    def for_error(cls, exc: WireError) -> Bye:
        """The Bye that reports ``exc`` to the peer, its text cut to fit."""
        reason = _CONTROL.sub(" ", str(exc)).encode()[:MAX_REASON_LEN]
        return cls(code=exc.code, reason=reason.decode(errors="ignore"))

    def _fields(self) -> list[Any]:
        return [self.code, self.reason]

    @classmethod
    def _from(cls, f: list[Any]) -> Bye:
        _arity(cls, f, 2)
        return cls(code=f[0], reason=f[1])


@dataclass(frozen=True, slots=True, kw_only=True, order=True)
class Head:
    """One chain's head: its author, last seq and that entry's id."""

    author: Pseudonym
    seq: int
    id: bytes

    def __post_init__(self) -> None:
        if not isinstance(self.author, Pseudonym):
            _fail("author must be a Pseudonym")
        _uint(self.seq, "seq", 1, MAX_SEQ)
        _bstr(self.id, "id", HASH_SIZE, HASH_SIZE)


@dataclass(frozen=True, slots=True, kw_only=True)
class Heads(_Message):
    """The sender's chain heads with author keys in (after, through] (wire.md 4.3).

    ``None`` bounds are open: ``after=None`` starts below every key,
    ``through=None`` ends above every key.  The claim is complete for that
    interval: a chain of the scope whose author falls in it and is not listed is
    one the sender does not hold.  ``scope`` is None for all the sender's chains
    (anti-entropy), or a subject key for the chains a proof needs (7.6).
    """

    TYPE: ClassVar[int] = 3
    NAME: ClassVar[str] = "heads"
    scope: Pseudonym | None = None
    after: bytes | None = None
    through: bytes | None = None
    heads: tuple[Head, ...] = ()

    def __post_init__(self) -> None:
        if self.scope is not None and not isinstance(self.scope, Pseudonym):
            _fail("scope must be a Pseudonym or None")
        if self.after is not None:
            _key(self.after, "after")
        if self.through is not None:
            _key(self.through, "through")
        if self.after is not None and self.through is not None and self.after >= self.through:
            _fail("after must be below through")
        for h in _tuple(self.heads, "heads", 0, MAX_HEADS):
            if not isinstance(h, Head):
                _fail("heads must hold Head objects")
            if (self.after is not None and h.author.key <= self.after) or (
                    self.through is not None and h.author.key > self.through):
                _fail("every head's author must lie in (after, through]")
        _ascending([h.author.key for h in self.heads], "head authors")

    def _fields(self) -> list[Any]:
        return [None if self.scope is None else self.scope.key, self.after, self.through,
                [[h.author.key, h.seq, h.id] for h in self.heads]]

    @classmethod
    def _from(cls, f: list[Any]) -> Heads:
        _arity(cls, f, 4)
        heads = []
        for item in _array(f[3], "heads"):
            author, seq, id_ = _array(item, "a head", 3)
            heads.append(Head(author=_author(author, "author"), seq=seq, id=id_))
        return cls(scope=None if f[0] is None else _author(f[0], "scope"),
                   after=f[1], through=f[2], heads=tuple(heads))


def _check_range(author: object, first: object, last: object) -> None:
    if not isinstance(author, Pseudonym):
        _fail("author must be a Pseudonym")
    _uint(first, "first", 1, MAX_SEQ)
    assert isinstance(first, int)
    _uint(last, "last", first, min(MAX_SEQ, first + MAX_WANT_SPAN - 1))


@dataclass(frozen=True, slots=True, kw_only=True, order=True)
class Want(_Message):
    """Ask for ``author``'s entries ``first..last`` (wire.md 4.4)."""

    TYPE: ClassVar[int] = 4
    NAME: ClassVar[str] = "want"
    author: Pseudonym
    first: int
    last: int

    def __post_init__(self) -> None:
        _check_range(self.author, self.first, self.last)

    @property
    def span(self) -> int:
        return self.last - self.first + 1

    def _fields(self) -> list[Any]:
        return [self.author.key, self.first, self.last]

    @classmethod
    def _from(cls, f: list[Any]) -> Want:
        _arity(cls, f, 3)
        return cls(author=_author(f[0], "author"), first=f[1], last=f[2])


def _raw_entries(value: object, name: str, hi: int, *, lo: int = 0) -> tuple[bytes, ...]:
    for raw in _tuple(value, name, lo, hi):
        _bstr(raw, "an encoded entry", 1, MAX_ENTRY_SIZE)
    assert isinstance(value, tuple)
    return value


@dataclass(frozen=True, slots=True, kw_only=True)
class Entries(_Message):
    """The answer to ``Want(author, first, last)`` (wire.md 4.5).

    ``entries`` are the sender's encoded entries with seqs first, first+1, ...:
    every one of the range it holds, so fewer than asked means it holds no more
    (an empty list is the explicit "nothing to send").
    """

    TYPE: ClassVar[int] = 5
    NAME: ClassVar[str] = "entries"
    author: Pseudonym
    first: int
    last: int
    entries: tuple[bytes, ...] = ()

    def __post_init__(self) -> None:
        _check_range(self.author, self.first, self.last)
        _raw_entries(self.entries, "entries", self.last - self.first + 1)

    @classmethod
    def answering(cls, want: Want, entries: Sequence[bytes]) -> Entries:
        """The answer to ``want``: ``entries`` from seq ``want.first`` on."""
        return cls(author=want.author, first=want.first, last=want.last, entries=tuple(entries))

    @property
    def want(self) -> Want:
        """The Want this message answers."""
        return Want(author=self.author, first=self.first, last=self.last)

    def _fields(self) -> list[Any]:
        return [self.author.key, self.first, self.last, list(self.entries)]

    @classmethod
    def _from(cls, f: list[Any]) -> Entries:
        _arity(cls, f, 4)
        return cls(author=_author(f[0], "author"), first=f[1], last=f[2],
                   entries=tuple(_array(f[3], "entries")))


@dataclass(frozen=True, slots=True, kw_only=True)
class Push(_Message):
    """Entries the sender has just stored, unasked (gossip, wire.md 4.6 and 8)."""

    TYPE: ClassVar[int] = 6
    NAME: ClassVar[str] = "push"
    entries: tuple[bytes, ...]

    def __post_init__(self) -> None:
        _raw_entries(self.entries, "entries", MAX_PUSH_ENTRIES, lo=1)

    def _fields(self) -> list[Any]:
        return [list(self.entries)]

    @classmethod
    def _from(cls, f: list[Any]) -> Push:
        _arity(cls, f, 1)
        return cls(entries=tuple(_array(f[0], "entries")))


@dataclass(frozen=True, slots=True, kw_only=True)
class Fork(_Message):
    """An encoded fork proof (shinyo.md 8), gossiped like an entry (wire.md 4.7)."""

    TYPE: ClassVar[int] = 7
    NAME: ClassVar[str] = "fork"
    proof: bytes

    def __post_init__(self) -> None:
        _bstr(self.proof, "proof", 1, MAX_FORK_PROOF_SIZE)

    def _fields(self) -> list[Any]:
        return [self.proof]

    @classmethod
    def _from(cls, f: list[Any]) -> Fork:
        _arity(cls, f, 1)
        return cls(proof=f[0])


@dataclass(frozen=True, slots=True, kw_only=True)
class PeerAddress:
    """Where a node listens, and the node key it proves at connection."""

    host: str
    port: int
    node: bytes

    def __post_init__(self) -> None:
        if (type(self.host) is not str or len(self.host) > MAX_HOST_LEN
                or not _HOST.fullmatch(self.host)):
            _fail(f"host must be 1..{MAX_HOST_LEN} characters of [a-z0-9.:-]")
        _uint(self.port, "port", 1, 0xFFFF)
        _key(self.node, "node key")


@dataclass(frozen=True, slots=True, kw_only=True)
class Peers(_Message):
    """Peer exchange: nodes the sender knows (wire.md 4.8 and 9)."""

    TYPE: ClassVar[int] = 8
    NAME: ClassVar[str] = "peers"
    peers: tuple[PeerAddress, ...] = ()

    def __post_init__(self) -> None:
        for p in _tuple(self.peers, "peers", 0, MAX_PEERS):
            if not isinstance(p, PeerAddress):
                _fail("peers must hold PeerAddress objects")
        if len({p.node for p in self.peers}) != len(self.peers):
            _fail("a node key appears twice in peers")

    def _fields(self) -> list[Any]:
        return [[[p.host, p.port, p.node] for p in self.peers]]

    @classmethod
    def _from(cls, f: list[Any]) -> Peers:
        _arity(cls, f, 1)
        peers = []
        for item in _array(f[0], "peers"):
            host, port, node = _array(item, "a peer", 3)
            peers.append(PeerAddress(host=host, port=port, node=node))
        return cls(peers=tuple(peers))


@dataclass(frozen=True, slots=True, kw_only=True)
class ProofRequest(_Message):
    """Ask for what a proof about ``subject`` needs; answered by Heads (wire.md 7.6)."""

    TYPE: ClassVar[int] = 9
    NAME: ClassVar[str] = "proof-request"
    subject: Pseudonym

    def __post_init__(self) -> None:
        if not isinstance(self.subject, Pseudonym):
            _fail("subject must be a Pseudonym")

    def _fields(self) -> list[Any]:
        return [self.subject.key]

    @classmethod
    def _from(cls, f: list[Any]) -> ProofRequest:
        _arity(cls, f, 1)
        return cls(subject=_author(f[0], "subject"))


@dataclass(frozen=True, slots=True, kw_only=True)
class Unknown(_Message):
    """A well-formed message of a type this version does not define.

    Receivers ignore it (wire.md 11), so later versions can add message types
    that older nodes skip; it is still charged to the sender's rate limit.
    """

    NAME: ClassVar[str] = "unknown"
    code: int
    fields: tuple[Any, ...] = ()

    def __post_init__(self) -> None:
        _uint(self.code, "code", 0, _UINT64_MAX)
        if self.code in _TYPES:
            _fail(f"type {self.code} is defined; build a {_TYPES[self.code].NAME} message")
        if not isinstance(self.fields, tuple) or not _in_subset(list(self.fields)):
            _fail("fields must be a tuple of CBOR-subset values (lists, uints, bytes, text, "
                  "bools, None)")

    def encode(self) -> bytes:
        return encode([self.code, *self.fields])


Message = Hello | Bye | Heads | Want | Entries | Push | Fork | Peers | ProofRequest | Unknown

_TYPES: dict[int, Any] = {
    cls.TYPE: cls
    for cls in (Hello, Bye, Heads, Want, Entries, Push, Fork, Peers, ProofRequest)
}


# -- Decoding (wire.md 3.3) ---------------------------------------------------------


def _has_tag(data: bytes) -> bool:
    """True if a CBOR tag (major type 6) heads an item anywhere in ``data``.

    Tags never occur in a message.  Refusing them before decoding keeps out
    value-sharing DAGs (shinyo.md 3.1) and bignums.  CBOR is a prefix-order
    sequence of heads in which only string contents are opaque, so one pass over
    the heads finds them; malformed input is left to the decoder.
    """
    i, n = 0, len(data)
    while i < n:
        major, info = data[i] >> 5, data[i] & 31
        i += 1
        if major == 6:
            return True
        arg = info
        if 24 <= info <= 27:
            size = 1 << (info - 24)
            arg = int.from_bytes(data[i : i + size], "big")
            i += size
        if major in (2, 3) and info < 28:
            i += arg  # a definite string's contents
    return False


def _in_subset(obj: object) -> bool:
    """Only arrays, uints, byte and text strings, booleans and null (shinyo.md 3.1)."""
    stack = [obj]
    while stack:
        x = stack.pop()
        if type(x) is list:
            stack.extend(x)
        elif not (type(x) in (bytes, str, bool) or x is None
                  or (type(x) is int and 0 <= x <= _UINT64_MAX)):
            return False
    return True


def _parse(body: bytes) -> list[Any]:
    """Steps 1-5 of wire.md 3.3: a canonical array in the subset, type code first."""
    if type(body) is not bytes or not body:
        raise MalformedMessage("a message is a non-empty byte string")
    if _has_tag(body):
        raise MalformedMessage("CBOR tags never occur in wire messages")
    try:
        obj = decode_canonical(body, max_size=MAX_FRAME_SIZE, what="wire message")
    except Oversize as exc:
        raise FrameTooLarge(str(exc)) from None
    except NonCanonical as exc:
        raise NonCanonicalMessage(str(exc)) from None
    except DecodeError as exc:
        raise MalformedMessage(str(exc)) from None
    if type(obj) is not list or not obj or type(obj[0]) is not int:
        raise MalformedMessage("a message is a CBOR array that starts with its type code")
    if not _in_subset(obj):
        raise MalformedMessage(
            "a message holds only arrays, unsigned integers, byte and text strings, "
            "booleans and null (no maps, floats or negative integers)")
    return obj


def decode_message(body: bytes) -> Message:
    """Decode one frame body (wire.md 3.3); raises only :class:`WireError`."""
    fields = _parse(body)
    cls = _TYPES.get(fields[0])
    if cls is None:
        return Unknown(code=fields[0], fields=tuple(fields[1:]))
    try:
        msg: Message = cls._from(fields[1:])
    except LocalProtocolError as exc:
        raise BadMessage(f"{cls.NAME}: {exc}") from None
    return msg
