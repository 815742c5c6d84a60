"""Fork proofs: two signed entries that prove an author equivocated (spec 8).

An honest author has one entry per sequence number.  Two valid entries with the
same author and seq and different ids are therefore self-verifying evidence of
equivocation: anyone can check them with no other context, and every verifier
reports the author as forked.  The encoding is unique: the entry with the
smaller id comes first.

    fork-proof = [version: 1, first: bstr, second: bstr]   ; each an encoded entry
"""

from __future__ import annotations

from dataclasses import dataclass

from ._cbor import decode_canonical, encode
from ._constants import MAX_FORK_PROOF_SIZE, PROTOCOL_VERSION
from ._entry import Entry
from ._errors import DecodeError, InvalidFork, UnsupportedVersion
from ._identity import Pseudonym

__all__ = ["ForkProof"]


@dataclass(frozen=True, slots=True, kw_only=True)
class ForkProof:
    """Proof that ``first.author`` signed two different entries at one seq."""

    first: Entry
    second: Entry

    def __post_init__(self) -> None:
        a, b = self.first, self.second
        if a.author != b.author:
            raise InvalidFork("the two entries have different authors")
        if a.seq != b.seq:
            raise InvalidFork(f"the two entries have different seqs ({a.seq} and {b.seq})")
        if a.id == b.id:
            raise InvalidFork("the two entries are the same entry")
        if not a.id < b.id:
            raise InvalidFork("entries must be ordered by id, smaller first (spec 8.1)")

    @classmethod
    def from_entries(cls, a: Entry, b: Entry) -> ForkProof:
        """Order two conflicting entries and build the proof."""
        first, second = (a, b) if a.id < b.id else (b, a)
        return cls(first=first, second=second)

    @property
    def author(self) -> Pseudonym:
        return self.first.author

    @property
    def seq(self) -> int:
        return self.first.seq

    def encode(self) -> bytes:
        return encode([PROTOCOL_VERSION, self.first.encode(), self.second.encode()])

    @classmethod
    def decode(cls, data: bytes) -> ForkProof:
        """Parse and check a fork proof (spec 8.2); only VerificationErrors escape."""
        obj = decode_canonical(data, max_size=MAX_FORK_PROOF_SIZE, what="fork proof")
        if type(obj) is not list or len(obj) != 3:
            raise DecodeError("fork proof must be an array [version, first, second]")
        version, first, second = obj
        if type(version) is not int or version != PROTOCOL_VERSION:
            # Never repr an untrusted value: a huge integer cannot even be printed.
            raise UnsupportedVersion(
                f"fork proof version is not {PROTOCOL_VERSION}, the only one supported")
        if type(first) is not bytes or type(second) is not bytes:
            raise DecodeError("fork proof entries must be byte strings")
        return cls(first=Entry.decode(first), second=Entry.decode(second))
