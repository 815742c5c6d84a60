"""The one exception hierarchy of shinyo.

Two families, as in h11:

* :class:`LocalProtocolError` -- *you* (the caller) asked for something the
  protocol forbids: appending an entry that would break your own chain, firing
  a trade-session event that is not allowed in the current state, passing a
  malformed argument.  Fix the calling code.

* :class:`VerificationError` -- bytes or objects that came from elsewhere (a
  peer, a file, a proof bundle) failed a check of spec/shinyo.md.  Each subclass
  carries a ``failure_class`` string; it is exactly the ``expect`` value of the
  invalid test vectors in ``spec/vectors/``, so two implementations can compare
  verdicts mechanically.

Every message says what was wrong and, where it helps, what would be right.
"""

from __future__ import annotations

from typing import ClassVar

__all__ = [
    "BadSignature",
    "BrokenLink",
    "CommitmentMismatch",
    "DecodeError",
    "Forked",
    "FutureTimestamp",
    "Incomplete",
    "InvalidBody",
    "InvalidFork",
    "InvalidPseudonym",
    "LocalProtocolError",
    "NonCanonical",
    "Oversize",
    "SeqGap",
    "ShinyoError",
    "TimestampRegression",
    "TradeRuleViolation",
    "UnknownTrade",
    "UnsupportedVersion",
    "VerificationError",
    "WrongAuthor",
]


class ShinyoError(Exception):
    """Root of every exception this package raises on purpose."""


class LocalProtocolError(ShinyoError):
    """The caller asked for something the protocol does not allow."""


class VerificationError(ShinyoError):
    """Untrusted input failed a check of the spec.

    ``failure_class`` names the check (spec section 9, "Failure classes").
    ``seq`` is the sequence number of the offending entry when one is known,
    so a user can find it in a long chain.
    """

    failure_class: ClassVar[str] = "invalid"

    def __init__(self, message: str, *, seq: int | None = None) -> None:
        if seq is not None:
            message = f"entry seq={seq}: {message}"
        super().__init__(message)
        self.seq = seq


class DecodeError(VerificationError):
    """Not well-formed CBOR, or not the structure the spec defines."""

    failure_class = "malformed"


class NonCanonical(DecodeError):
    """Well-formed CBOR, but not in the deterministic encoding (spec 3.1)."""

    failure_class = "non-canonical"


class Oversize(DecodeError):
    """An encoded object is larger than its limit (spec 3.3).

    A field out of its range is ``malformed`` or ``invalid-body`` instead.
    """

    failure_class = "oversize"


class UnsupportedVersion(DecodeError):
    """A version number this implementation does not speak."""

    failure_class = "unsupported-version"


class InvalidPseudonym(DecodeError):
    """A pseudonym's text is mistyped, or a key is not a valid point (spec 4)."""

    failure_class = "bad-pseudonym"


class InvalidBody(DecodeError):
    """An entry body has the wrong shape or a field out of range (spec 5)."""

    failure_class = "invalid-body"


class BadSignature(VerificationError):
    """The signature does not verify under the entry's author key."""

    failure_class = "bad-signature"


class WrongAuthor(VerificationError):
    """An entry in a chain is signed by a different pseudonym than the chain's."""

    failure_class = "wrong-author"


class SeqGap(VerificationError):
    """Sequence numbers are not 1, 2, 3, ... without gaps or repeats."""

    failure_class = "seq-gap"


class BrokenLink(VerificationError):
    """``prev`` is not the hash of the previous entry (or the genesis value)."""

    failure_class = "broken-link"


class TimestampRegression(VerificationError):
    """An entry is older than the entry it follows or references (spec 6.5, 7.7)."""

    failure_class = "timestamp-regression"


class FutureTimestamp(VerificationError):
    """An entry claims a time beyond the verifier's clock plus the allowed skew."""

    failure_class = "future-timestamp"


class UnknownTrade(VerificationError):
    """A trade entry names a trade its author's chain never proposed or accepted."""

    failure_class = "unknown-trade"


class TradeRuleViolation(VerificationError):
    """A trade or rating entry breaks the order rules of spec section 7."""

    failure_class = "trade-rule"


class CommitmentMismatch(VerificationError):
    """A reveal does not open the commitment its author made (spec 7.4)."""

    failure_class = "commitment-mismatch"


class Incomplete(VerificationError):
    """A proof leaves out an entry that an included entry depends on (spec proof.md 3)."""

    failure_class = "incomplete"


class Forked(VerificationError):
    """The proof's subject signed two different entries at one seq (spec 8)."""

    failure_class = "forked"


class InvalidFork(VerificationError):
    """A fork proof does not prove a fork (spec 8)."""

    failure_class = "invalid-fork-proof"
