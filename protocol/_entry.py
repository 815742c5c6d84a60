"""Entries: the signed unit of every chain (spec 6).

Wire form (spec 6.1)::

    entry   = [payload: bstr, signature: bstr .size 64]
    payload = canonical CBOR of [version, author, seq, prev, timestamp, kind, body]

The signature is Ed25519 over ``DST_ENTRY_SIG || payload``, and the entry id is
``SHA-256(DST_ENTRY_ID || payload)``.  Signing the payload bytes exactly as they
travel means a verifier checks what it received, with no re-serialisation in
front of the signature check; the canonical re-encode is a separate, cheap step.
The id covers the payload only, so the id does not depend on which of the
(equally valid) signatures an author might make over the same payload.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

import cbor2

from ._body import Body, Kind, Propose, body_from_cbor
from ._cbor import encode, has_value_sharing, may_share_values
from ._constants import (
    DST_ENTRY_ID,
    DST_ENTRY_SIG,
    GENESIS_PREV,
    HASH_SIZE,
    KEY_SIZE,
    MAX_ENTRY_SIZE,
    MAX_SEQ,
    MAX_TIMESTAMP,
    PROTOCOL_VERSION,
    SIGNATURE_SIZE,
)
from ._errors import (
    BadSignature,
    BrokenLink,
    DecodeError,
    InvalidBody,
    InvalidPseudonym,
    LocalProtocolError,
    NonCanonical,
    Oversize,
    UnsupportedVersion,
    VerificationError,
)
from ._identity import Pseudonym, SigningIdentity, is_valid_key, verify_signature

__all__ = ["Entry", "entry_id"]

_KINDS = {int(k): k for k in Kind}


_SIG_HEAD = b"\x58\x40"  # bstr of 64 bytes
_BAD_KEY = "author is not a valid Ed25519 key in the prime-order subgroup"


def _envelope_head(payload_len: int) -> bytes:
    """0x82 (array of 2), then the shortest bstr head for ``payload_len``."""
    if payload_len < 24:
        return bytes((0x82, 0x40 | payload_len))
    if payload_len < 0x100:
        return bytes((0x82, 0x58, payload_len))
    return b"\x82\x59" + payload_len.to_bytes(2, "big")  # entries are < 64 KiB


def entry_id(payload: bytes) -> bytes:
    """SHA-256(DST_ENTRY_ID || payload) (spec 6.2)."""
    return hashlib.sha256(DST_ENTRY_ID + payload).digest()


def _uint(value: object, name: str, lo: int, hi: int) -> int:
    if type(value) is not int or not lo <= value <= hi:
        raise DecodeError(f"{name} must be an unsigned integer in {lo}..{hi}")
    return value


@dataclass(frozen=True, slots=True, kw_only=True)
class Entry:
    """One signed, hash-linked record in an author's chain.

    An ``Entry`` that exists is well-formed and its signature verified: build one
    with :meth:`create` (signs) or :meth:`decode` (verifies).  Whether it fits
    the chain it claims to extend is :class:`shinyo.Chain`'s job.
    """

    version: int
    author: Pseudonym
    seq: int
    prev: bytes
    timestamp: int
    body: Body
    signature: bytes = field(repr=False)
    payload: bytes = field(repr=False, compare=False)
    id: bytes = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "id", entry_id(self.payload))

    @property
    def kind(self) -> Kind:
        return self.body.kind

    @property
    def trade(self) -> bytes | None:
        """The trade this entry belongs to: its own id for a proposal, the body's
        ``trade`` for the other trade kinds, None for a vouch (spec 6.2)."""
        if isinstance(self.body, Propose):
            return self.id
        trade = getattr(self.body, "trade", None)
        return trade if isinstance(trade, bytes) else None

    # -- building -------------------------------------------------------------

    @staticmethod
    def _check_header(*, seq: int, prev: bytes, timestamp: int) -> None:
        _uint(seq, "seq", 1, MAX_SEQ)
        if type(prev) is not bytes or len(prev) != HASH_SIZE:
            raise DecodeError(f"prev must be a {HASH_SIZE}-byte hash")
        if (seq == 1) != (prev == GENESIS_PREV):
            raise BrokenLink(
                "prev must be the genesis value (32 zero bytes) exactly when seq is 1", seq=seq
            )
        _uint(timestamp, "timestamp", 0, MAX_TIMESTAMP)

    @classmethod
    def create(
        cls,
        identity: SigningIdentity,
        *,
        seq: int,
        prev: bytes,
        timestamp: int,
        body: Body,
    ) -> Entry:
        """Sign a new entry.  Prefer :meth:`shinyo.Chain.append_new`, which also
        checks that the entry fits the chain."""
        try:
            cls._check_header(seq=seq, prev=prev, timestamp=timestamp)
        except VerificationError as exc:
            raise LocalProtocolError(str(exc)) from None
        payload = encode(
            [
                PROTOCOL_VERSION,
                identity.pseudonym.key,
                seq,
                prev,
                timestamp,
                int(body.kind),
                body.to_cbor(),
            ]
        )
        if len(payload) + SIGNATURE_SIZE + 8 > MAX_ENTRY_SIZE:
            raise LocalProtocolError(f"entry would exceed {MAX_ENTRY_SIZE} bytes")
        return cls(
            version=PROTOCOL_VERSION,
            author=identity.pseudonym,
            seq=seq,
            prev=prev,
            timestamp=timestamp,
            body=body,
            signature=identity.sign(DST_ENTRY_SIG + payload),
            payload=payload,
        )

    # -- wire -----------------------------------------------------------------

    def encode(self) -> bytes:
        return encode([self.payload, self.signature])

    @classmethod
    def decode(cls, data: bytes) -> Entry:
        """Parse and verify one encoded entry, following spec 6.4 steps 1-7.

        Raises a :class:`shinyo.VerificationError` subclass, and nothing else,
        on any input.
        """
        entry = cls._parse(data)
        entry._check_signature()
        return entry

    def _check_signature(self) -> None:
        """Spec 6.4 step 7b: the one costly step, separate so it can run in parallel."""
        if not self.author.verify(DST_ENTRY_SIG + self.payload, self.signature):
            raise _bad_signature(self)

    @classmethod
    def _parse(cls, data: bytes) -> Entry:
        """Spec 6.4 steps 1-7a.  The result's signature is NOT yet checked: private."""
        if type(data) is not bytes:
            raise DecodeError(f"entry: expected bytes, got {type(data).__name__}")
        if len(data) > MAX_ENTRY_SIZE:  # 1
            raise Oversize(f"entry: {len(data)} bytes exceeds the limit of {MAX_ENTRY_SIZE}")
        # Refuse value-sharing DAG bombs before decoding (found by review).  The
        # payload lies inside ``data``, so one prefilter pass covers both.
        suspicious = may_share_values(data)
        if suspicious and has_value_sharing(data):  # 2
            raise NonCanonical("entry: shared values (CBOR tags 28/29) are not allowed")
        try:
            envelope = cbor2.loads(data)  # 2
        except Exception as exc:
            raise DecodeError(f"entry: not well-formed CBOR ({exc})") from None
        if (
            type(envelope) is not list
            or len(envelope) != 2
            or type(envelope[0]) is not bytes
            or type(envelope[1]) is not bytes
        ):
            raise DecodeError("entry must be an array [payload: bstr, signature: bstr]")
        payload, signature = envelope
        if len(signature) != SIGNATURE_SIZE:
            raise DecodeError(f"signature must be {SIGNATURE_SIZE} bytes")
        # The only canonical encoding of the envelope: its head, the payload's
        # head and bytes, and the signature's head and bytes -- nothing after.
        if data != _envelope_head(len(payload)) + payload + _SIG_HEAD + signature:
            raise NonCanonical(
                "entry envelope is not in deterministic encoding (non-shortest length, "
                "indefinite length, or trailing bytes)"
            )
        if suspicious and has_value_sharing(payload):
            raise NonCanonical("entry payload: shared values (CBOR tags 28/29) are not allowed")
        entry = cls._parse_payload(payload, signature)  # 3-6
        if not is_valid_key(entry.author.key):  # 7a: as the text form requires (spec 4.1)
            raise InvalidPseudonym(_BAD_KEY, seq=entry.seq)
        return entry

    @classmethod
    def _from_parts(cls, payload: bytes, signature: bytes, author: Pseudonym,
                    id: bytes | None = None) -> Entry:
        """Spec 6.4 steps 1-6 for an envelope given as its two byte strings, by
        ``author`` (a proof's packed entries, spec/proof.md 1.1), whose entry id
        may be known already.  Neither the key (7a) nor the signature (7b) is
        checked yet: :func:`key_and_signature_failures` does both, possibly in
        parallel."""
        # 1: the envelope _parse would see is 82, the payload's head (1 to 3 bytes)
        # and bytes, 58 40 and the signature (spec 6.1).
        n = len(payload)
        size = n + len(signature) + (4 if n < 24 else 5 if n < 0x100 else 6)
        if size > MAX_ENTRY_SIZE:
            raise Oversize(f"entry: {size} bytes exceeds the limit of {MAX_ENTRY_SIZE}")
        if may_share_values(payload) and has_value_sharing(payload):
            raise NonCanonical("entry payload: shared values (CBOR tags 28/29) are not allowed")
        return cls._parse_payload(payload, signature, author, id)

    @classmethod
    def _parse_payload(cls, payload: bytes, signature: bytes,
                       author_as: Pseudonym | None = None, id: bytes | None = None) -> Entry:
        """Steps 3-6 of spec 6.4 on an envelope's two byte strings (7a is the caller's).

        ``author_as`` is used as the entry's author when its key is the payload's:
        a proof's array names one author for all its entries.  ``id``, if given,
        is the payload's entry id, already computed.
        """
        try:
            fields: Any = cbor2.loads(payload)  # 3
        except Exception as exc:
            raise DecodeError(f"entry payload is not well-formed CBOR ({exc})") from None
        if type(fields) is not list or len(fields) != 7:
            raise DecodeError("entry payload must be an array of 7 fields")
        version, author, seq, prev, timestamp, kind, body = fields
        if type(version) is not int or version != PROTOCOL_VERSION:  # 4
            raise UnsupportedVersion(
                f"entry version is not {PROTOCOL_VERSION}, the only one this implementation speaks"
            )
        if type(author) is not bytes or len(author) != KEY_SIZE:  # 5a
            raise DecodeError("author must be a 32-byte public key")
        # 5b-5e in one test for the usual case; _check_header raises the first
        # failure, in the spec's order, for any other.
        if not (type(seq) is int and 1 <= seq <= MAX_SEQ
                and type(prev) is bytes and len(prev) == HASH_SIZE
                and (seq == 1) == (prev == GENESIS_PREV)
                and type(timestamp) is int and 0 <= timestamp <= MAX_TIMESTAMP):
            cls._check_header(seq=seq, prev=prev, timestamp=timestamp)
        known = _KINDS.get(kind) if type(kind) is int else None
        if known is None:  # 5f
            raise InvalidBody("unknown entry kind (1-8 are defined)", seq=seq)
        try:
            parsed = body_from_cbor(known, body)  # 5g
        except InvalidBody as exc:
            raise InvalidBody(str(exc), seq=seq) from None
        # Every field passed its type check, so no maps or floats remain and the
        # plain encoder's output is the deterministic one (spec 3.1).
        if cbor2.dumps(fields) != payload:  # 6
            raise NonCanonical("entry payload is not in deterministic encoding", seq=seq)
        who = author_as if author_as is not None and author_as.key == author \
            else Pseudonym(key=author)
        return _assemble(version, who, seq, prev, timestamp, parsed, signature, payload,
                         entry_id(payload) if id is None else id)


# The dataclass __init__ of a frozen class sets each field through
# object.__setattr__ and then runs __post_init__; for fields the parser has
# already validated, setting the slots directly builds the same object in well
# under half the time (about 1 us of an entry's parse).
(_set_version, _set_author, _set_seq, _set_prev, _set_timestamp, _set_body, _set_signature,
 _set_payload, _set_id) = (
    Entry.__dict__[name].__set__
    for name in ("version", "author", "seq", "prev", "timestamp", "body", "signature",
                 "payload", "id")
)


def _assemble(version: int, author: Pseudonym, seq: int, prev: bytes, timestamp: int,
              body: Body, signature: bytes, payload: bytes, id: bytes) -> Entry:
    """``Entry(...)`` from validated fields and the payload's entry id: equal to
    it in every field."""
    entry = object.__new__(Entry)
    _set_version(entry, version)
    _set_author(entry, author)
    _set_seq(entry, seq)
    _set_prev(entry, prev)
    _set_timestamp(entry, timestamp)
    _set_body(entry, body)
    _set_signature(entry, signature)
    _set_payload(entry, payload)
    _set_id(entry, id)
    return entry


_T = TypeVar("_T")
_R = TypeVar("_R")


class MapFn(Protocol):
    """A ``map``-like function: the builtin, or an executor's ``map`` to check
    signatures in parallel (a thread pool's: PyNaCl releases the GIL)."""

    def __call__(self, fn: Callable[[_T], _R], items: Iterable[_T], /) -> Iterable[_R]: ...


_CHUNK = 256  # entries per task: large enough to amortise a thread hand-off


def decode_all(
    raws: Iterable[bytes], *, map: MapFn = map
) -> dict[bytes, Entry | VerificationError]:
    """Decode many entries; each result is the entry or the error ``Entry.decode`` raises.

    Keys and signatures, the costly part (spec 6.4 step 7), are checked in
    chunks through ``map``, as plain bytes: the builtin by default, or an
    executor's ``map`` -- threads (PyNaCl releases the GIL between calls, but
    the caller's own Python holds it) or processes (what the node uses,
    node/_verifier.py).  Results are keyed by the encoded bytes, so callers walk
    their own order and report the same first failure a sequential decode would.

        with ProcessPoolExecutor() as pool:
            results = shinyo.decode_all(raws, map=pool.map)
    """
    results: dict[bytes, Entry | VerificationError] = {}
    for raw in raws:
        if raw in results:
            continue
        try:
            results[raw] = Entry._parse(raw)
        except VerificationError as exc:
            results[raw] = exc
    checked = check_signatures(list(results.values()), map=map)
    return dict(zip(results, checked, strict=True))


def check_signatures(
    parsed: list[Entry | VerificationError], *, map: MapFn = map
) -> list[Entry | VerificationError]:
    """Spec 6.4 step 7 (key, then signature) for entries parsed but not yet
    verified (``_parse``, ``_from_parts``): each is kept, or replaced by its
    error.  Errors pass through.  Chunks go through ``map`` as plain bytes
    (:func:`key_and_signature_failures`), so an executor's ``map`` may run them
    in threads or in other processes."""
    step = StepSeven(parsed)
    return step.results(key_and_signature_failures(step.checks, map=map))


class StepSeven:
    """The spec 6.4 step 7 work of a list of parsed entries and errors, as plain
    bytes for whoever runs it (``map``, a worker process), and its results put
    back in place: one mapping for every way the checks are run."""

    def __init__(self, parsed: list[Entry | VerificationError]) -> None:
        self._parsed = parsed
        self._at = [i for i, p in enumerate(parsed) if isinstance(p, Entry)]
        self._entries = [p for p in parsed if isinstance(p, Entry)]
        self.checks = [(e.author.key, e.payload, e.signature) for e in self._entries]
        """(author key, payload, signature) of each entry, in order."""

    def results(self, failures: Iterable[tuple[int, int]]) -> list[Entry | VerificationError]:
        """``parsed`` with each failure -- (index into :attr:`checks`, what
        failed), as :func:`key_and_signature_failures` yields them -- in place."""
        out = list(self._parsed)
        for k, what in failures:
            out[self._at[k]] = step_seven_failure(self._entries[k], what)
        return out


# -- the proof verifier's checks (spec 6.4 step 7, spec/proof.md 3) ------------------

_Check = tuple[bytes, bytes, bytes]
"""One entry's step 7: author key, payload, signature.  Plain bytes, so a chunk
costs nothing to hand to a thread and little to pickle for a process."""
_KEY_FAILS, _SIGNATURE_FAILS = 1, 2


def _key_and_signature_failures(checks: list[_Check]) -> list[tuple[int, int]]:
    """Spec 6.4 steps 7a then 7b for each entry of a chunk: (index, what failed)
    for each that fails.  Runs in a worker: one key check per author (cached),
    then the signature; both release the GIL."""
    failures = []
    for i, (key, payload, signature) in enumerate(checks):
        if not is_valid_key(key):
            failures.append((i, _KEY_FAILS))
        elif not verify_signature(key, DST_ENTRY_SIG + payload, signature):
            failures.append((i, _SIGNATURE_FAILS))
    return failures


def key_and_signature_failures(checks: list[_Check], *, map: MapFn = map
                               ) -> Iterator[tuple[int, int]]:
    """Spec 6.4 step 7 for entries given as (author key, payload, signature):
    (index, what failed) for each that fails, in index order, for
    :func:`step_seven_failure`.  Chunks go through ``map``: an executor's starts
    on all of them at once, so the caller may parse the entries (steps 1-6) while
    they run and read the failures after; the builtin checks them as they are read."""
    starts = range(0, len(checks), _CHUNK)
    results = map(_key_and_signature_failures, [checks[i : i + _CHUNK] for i in starts])
    return ((start + k, what)
            for start, failures in zip(starts, results, strict=True) for k, what in failures)


def step_seven_failure(entry: Entry, what: int) -> VerificationError:
    """The error for a failure :func:`key_and_signature_failures` reported."""
    if what == _KEY_FAILS:
        return InvalidPseudonym(_BAD_KEY, seq=entry.seq)
    return _bad_signature(entry)


def _bad_signature(entry: Entry) -> BadSignature:
    return BadSignature(f"signature does not verify under author {entry.author.short()}",
                        seq=entry.seq)
