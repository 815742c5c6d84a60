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

from dataclasses import dataclass

from ._cbor import encode
from ._constants import KEY_SIZE, MAX_PROOF_ENTRIES, MAX_PROOF_SIZE, PROOF_MAGIC, PROOF_VERSION
from ._errors import DecodeError, NonCanonical, Oversize, UnsupportedVersion

__all__ = ["ProofFile", "read_proof_file"]

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
        return [self.bstr(what) for _ in range(self.array(f"the array of {what}s"))]


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
