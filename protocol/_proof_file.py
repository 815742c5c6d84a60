"""The proof file's byte layout, read by a schema-directed walk (spec/proof.md 1, 3).

A proof can be 64 MiB of someone else's bytes.  Handing that to a general CBOR
decoder builds a Python object per data item before anything can be checked:
K bytes of empty arrays become K lists, about 80 times the file in memory
(review finding F7).  The layout is fixed, so it is read the other way round:
one CBOR *head* at a time, each checked against the type the layout expects,
and every array's length added to the item budget before a single element is
read.  Byte strings are sliced out without being looked into; they are entries
and fork proofs, which have decoders of their own.

What the walk accepts is exactly the deterministic encoding of the layout
(spec 3.1): shortest-form heads, definite lengths, nothing after the item.  It
reports the first failure in byte order, with the class spec/proof.md step 3
names for it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar

from ._cbor import encode
from ._constants import (
    GENESIS_PREV,
    KEY_SIZE,
    MAX_PROOF_ENTRIES,
    MAX_PROOF_SIZE,
    PROOF_MAGIC,
    PROOF_VERSION,
    SIGNATURE_SIZE,
)
from ._entry import Entry, entry_id
from ._errors import DecodeError, NonCanonical, Oversize, UnsupportedVersion, VerificationError
from ._identity import Pseudonym

__all__ = ["ProofFile", "pack_entries", "parse_payloads", "read_proof_file", "unpack_entries",
           "unpack_payloads"]

T = TypeVar("T")

_UINT, _BYTES, _ARRAY = 0, 2, 4
_MAJOR_NAMES = ("integer", "negative integer", "byte string", "text string", "array", "map",
                "tag", "simple value or float")


@dataclass(frozen=True, slots=True, kw_only=True)
class ProofFile:
    """The parts of a proof file, still undecoded (spec/proof.md 1)."""

    subject: bytes
    own: list[bytes]
    others: list[tuple[bytes, list[bytes]]]
    forks: list[bytes]

    @property
    def items(self) -> int:
        """Own entries, groups, their entries and forks: what MAX_PROOF_ENTRIES bounds."""
        return (len(self.own) + len(self.others) + sum(len(g) for _, g in self.others)
                + len(self.forks))

    def unpacked(self) -> list[tuple[bytes, list[bytes | VerificationError]]]:
        """Each array of entries with its author's key, the subject's first, as
        entry bytes or the error unpacking an item raised (section 1.1)."""
        return [(self.subject, unpack_entries(self.subject, self.own)),
                *((key, unpack_entries(key, items)) for key, items in self.others)]

    def encode(self) -> bytes:
        body = [PROOF_VERSION, self.subject, self.own,
                [[key, items] for key, items in self.others], self.forks]
        return PROOF_MAGIC + encode(body)


class _Walk:
    __slots__ = ("budget", "data", "pos")

    def __init__(self, data: bytes, pos: int) -> None:
        self.data = data
        self.pos = pos
        self.budget = MAX_PROOF_ENTRIES

    def head(self, major: int, what: str) -> int:
        """Read one head of type ``major``; return its argument (a length or a value)."""
        data, pos = self.data, self.pos
        if pos >= len(data):
            raise DecodeError(f"proof: truncated before {what}")
        initial = data[pos]
        got, info = initial >> 5, initial & 0x1F
        if got != major:
            raise DecodeError(f"proof: {what} must be a CBOR {_MAJOR_NAMES[major]}, "
                              f"found a {_MAJOR_NAMES[got]}")
        if info < 24:
            self.pos = pos + 1
            return info
        if info == 31:
            raise NonCanonical(f"proof: {what} has an indefinite length")
        if info > 27:
            raise DecodeError(f"proof: {what} has a reserved head (additional info {info})")
        size = 1 << (info - 24)
        end = pos + 1 + size
        if end > len(data):
            raise DecodeError(f"proof: truncated inside the head of {what}")
        value = int.from_bytes(data[pos + 1:end], "big")
        if value < (24 if size == 1 else 1 << (4 * size)):
            raise NonCanonical(f"proof: {what} has a non-shortest head")
        self.pos = end
        return value

    def array(self, what: str, *, counted: bool = True) -> int:
        n = self.head(_ARRAY, what)
        if counted:
            # Charged before any element is read: memory and time stay bounded
            # by the limit, whatever the heads claim (spec/proof.md 3 step 3).
            self.budget -= n
            if self.budget < 0:
                raise Oversize(f"proof holds more than {MAX_PROOF_ENTRIES} items")
        return n

    def bstr(self, what: str, *, size: int | None = None) -> bytes:
        n = self.head(_BYTES, what)
        if size is not None and n != size:
            raise DecodeError(f"proof: {what} must be {size} bytes, not {n}")
        start, end = self.pos, self.pos + n
        if end > len(self.data):
            raise DecodeError(f"proof: truncated inside {what}")
        self.pos = end
        return self.data[start:end]

    def byte_strings(self, what: str) -> list[bytes]:
        out = []
        data = self.data
        for _ in range(self.array(f"the array of {what}s")):
            # The usual item, an entry of 24 to 65,535 bytes, read inline; any
            # other head (and every fault) goes through bstr(), which judges it.
            pos = self.pos
            initial = data[pos] if pos < len(data) else 0
            if initial == 0x58 and pos + 1 < len(data) and data[pos + 1] >= 24:
                start = pos + 2
                end = start + data[pos + 1]
            elif initial == 0x59 and pos + 2 < len(data) \
                    and (n := data[pos + 1] << 8 | data[pos + 2]) >= 0x100:
                start = pos + 3
                end = start + n
            else:
                out.append(self.bstr(what))
                continue
            if end > len(data):
                out.append(self.bstr(what))  # truncated: raises
                continue
            self.pos = end
            out.append(data[start:end])
        return out


def read_proof_file(data: bytes) -> ProofFile:
    """Check the file's size, magic and layout; return its parts (spec/proof.md 3 steps 1-3)."""
    if type(data) is not bytes:
        raise DecodeError("a proof is bytes")
    if len(data) > MAX_PROOF_SIZE:
        raise Oversize(f"proof of {len(data)} bytes exceeds {MAX_PROOF_SIZE}")
    if not data.startswith(PROOF_MAGIC):
        raise DecodeError("not a shinyo proof file (it does not start with SHINYO-PROOF)")
    w = _Walk(data, len(PROOF_MAGIC))
    fields = w.array("the proof", counted=False)
    if fields == 0:
        raise DecodeError("proof: an empty array")
    # The version comes first and is judged before the shape, so that a later
    # version may change everything after it (spec/proof.md 3 step 3).
    version = w.head(_UINT, "the proof version")
    if version != PROOF_VERSION:
        raise UnsupportedVersion(f"proof version {version} is not supported (only "
                                 f"{PROOF_VERSION} is)")
    if fields != 5:
        raise DecodeError("proof must be [version, subject, own, others, forks]")
    subject = w.bstr("the subject", size=KEY_SIZE)
    own = w.byte_strings("subject entry")
    others = []
    for _ in range(w.array("the counterparty groups")):
        if w.array("a counterparty group", counted=False) != 2:
            raise DecodeError("proof: each counterparty group is [key, [entries]]")
        key = w.bstr("a counterparty key", size=KEY_SIZE)
        others.append((key, w.byte_strings("counterparty entry")))
    forks = w.byte_strings("fork proof")
    if w.pos != len(data):
        raise NonCanonical(f"proof: {len(data) - w.pos} bytes after the proof's CBOR item")
    return ProofFile(subject=subject, own=own, others=others, forks=forks)


# -- packed entries (spec/proof.md 1.1) ---------------------------------------------
#
# An entry's payload is [version, author, seq, prev, timestamp, kind, body].  In
# a proof, the author is the key of the array the entry sits in, and prev is
# usually the id of the item before it; both are left out, which saves 68 of
# the ~230 bytes of an entry.  Unpacking splices the very bytes back, so the
# signature is checked over exactly what the author signed: a wrong splice can
# only fail verification, never pass it.

_NULL = 0xF6
_HASH_HEAD = b"\x58\x20"  # bstr of 32 bytes, in shortest form
_PACKED_HEAD, _PAYLOAD_HEAD = 0x86, 0x87  # arrays of 6 and of 7
_PAYLOAD_HEAD_BYTE = bytes((_PAYLOAD_HEAD,))


def _uint_end(data: bytes, pos: int, what: str) -> tuple[int, int]:
    """(value, end) of the unsigned integer whose head is at ``pos``."""
    # The usual version and seq, inline: a value in the head, or one or two bytes
    # after it in shortest form.  Anything else goes through _Walk.head, which
    # judges it (spec/proof.md 1.1 step 2).
    if pos + 2 < len(data):
        initial = data[pos]
        if initial < 24:
            return initial, pos + 1
        if initial == 0x18 and data[pos + 1] >= 24:
            return data[pos + 1], pos + 2
        if initial == 0x19 and (value := data[pos + 1] << 8 | data[pos + 2]) >= 0x100:
            return value, pos + 3
    w = _Walk(data, pos)
    value = w.head(_UINT, what)
    return value, w.pos


def _derived_prev(seq: int, before: tuple[int, bytes] | None) -> bytes | None:
    """The prev a packed entry may leave out: the genesis value at seq 1, or the
    id of the item before it when that item has seq - 1."""
    if seq == 1:
        return GENESIS_PREV
    if before is not None and before[0] == seq - 1:
        return before[1]
    return None


def pack_entries(entries: Sequence[Entry]) -> list[bytes]:
    """One author's entries, in order, in their packed form (spec/proof.md 1.1)."""
    out = []
    before: tuple[int, bytes] | None = None
    for e in entries:
        p = e.payload
        # payload = 0x87 version (0x58 0x20 author) seq (0x58 0x20 prev) rest
        _, author_at = _uint_end(p, 1, "version")
        _, prev_at = _uint_end(p, author_at + 2 + KEY_SIZE, "seq")
        rest_at = prev_at + 2 + KEY_SIZE
        prev = b"\xf6" if e.prev == _derived_prev(e.seq, before) else p[prev_at:rest_at]
        packed = bytes((_PACKED_HEAD,)) + p[1:author_at] + p[author_at + 2 + KEY_SIZE:prev_at] \
            + prev + p[rest_at:]
        out.append(packed + e.signature)
        before = (e.seq, e.id)
    return out


def _unpack(raw: bytes, key: bytes, before: tuple[int, bytes] | None
            ) -> tuple[int, bytes, bytes]:
    """(seq, payload, signature) of one packed entry, or a DecodeError / NonCanonical."""
    packed, signature = raw[:-SIGNATURE_SIZE], raw[-SIGNATURE_SIZE:]
    if len(raw) <= SIGNATURE_SIZE or packed[0] != _PACKED_HEAD:
        raise DecodeError("proof: a packed payload is [version, seq, prev or null, timestamp, "
                          "kind, body]")
    _, seq_at = _uint_end(packed, 1, "an entry's version")
    seq, prev_at = _uint_end(packed, seq_at, "an entry's seq")
    derived = _derived_prev(seq, before)
    if prev_at < len(packed) and packed[prev_at] == _NULL:
        if derived is None:
            raise DecodeError("proof: prev is left out, but the item before is not seq - 1",
                              seq=seq)
        prev, rest_at = derived, prev_at + 1
    else:
        rest_at = prev_at + 2 + KEY_SIZE
        prev = packed[prev_at + 2:rest_at]
        if packed[prev_at:prev_at + 2] != _HASH_HEAD or len(prev) != KEY_SIZE:
            raise DecodeError("proof: an entry's prev is 32 bytes or null", seq=seq)
        if prev == derived:
            raise NonCanonical("proof: a prev that can be derived must be left out", seq=seq)
    payload = b"".join((_PAYLOAD_HEAD_BYTE, packed[1:seq_at], _HASH_HEAD, key,
                        packed[seq_at:prev_at], _HASH_HEAD, prev, packed[rest_at:]))
    return seq, payload, signature


def _unpack_array(key: bytes, items: Sequence[bytes],
                  finish: Callable[[bytes, bytes], tuple[T | VerificationError, bytes]],
                  ) -> list[T | VerificationError]:
    """One array of a proof, in order: each item unpacked, then ``finish``ed
    into ``(result, entry id)``.  An item that cannot be unpacked becomes its
    error, in its place, and leaves the next item nothing to derive from."""
    out: list[T | VerificationError] = []
    before: tuple[int, bytes] | None = None
    for raw in items:
        try:
            seq, payload, signature = _unpack(raw, key, before)
        except VerificationError as exc:
            out.append(exc)
            before = None
            continue
        result, eid = finish(payload, signature)
        out.append(result)
        before = (seq, eid)
    return out




def _enveloped(payload: bytes, signature: bytes) -> tuple[bytes, bytes]:
    return encode([payload, signature]), entry_id(payload)


Unpacked = tuple[bytes, bytes, bytes]
"""An item unpacked for the verifier: payload, signature and entry id."""


def _unpacked(payload: bytes, signature: bytes) -> tuple[Unpacked, bytes]:
    eid = entry_id(payload)
    return (payload, signature, eid), eid


def unpack_payloads(key: bytes, items: Sequence[bytes]) -> list[Unpacked | VerificationError]:
    """One array of a proof unpacked (section 1.1), without building the
    envelope bytes: the verifier's first pass, cheap enough to run before the
    key and signature checks are handed out, so they can start while
    :func:`parse_payloads` parses."""
    return _unpack_array(key, items, _unpacked)


def parse_payloads(key: bytes, unpacked: Sequence[Unpacked | VerificationError]
                   ) -> list[Entry | VerificationError]:
    """Spec 6.4 steps 1-6 for the items of one array, unpacked, by ``key``.
    Neither the author's key nor the signatures are checked yet
    (:func:`shinyo._entry.key_and_signature_failures` does, possibly in parallel)."""
    author = Pseudonym(key=key)
    out: list[Entry | VerificationError] = []
    for item in unpacked:
        if isinstance(item, VerificationError):
            out.append(item)
            continue
        payload, signature, eid = item
        try:
            out.append(Entry._from_parts(payload, signature, author, eid))
        except VerificationError as exc:
            out.append(exc)
    return out


def unpack_entries(key: bytes, items: Sequence[bytes]) -> list[bytes | VerificationError]:
    """The entries of one array of a proof, as entry bytes (spec/proof.md 1.1).

    An item that cannot be unpacked becomes its error, in its place, so the
    verifier still reports failures in the spec's order.  Nothing here checks
    a signature or a chain rule: the entry decoder and the chain do.
    """
    return _unpack_array(key, items, _enveloped)
