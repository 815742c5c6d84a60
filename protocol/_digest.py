"""Hashes that name what they cover (spec 3.4): commitments and digests.

Terms, comments and responses never enter a chain in clear: only a salted
digest does, so the public trade graph carries no amounts, items or words
(spec 11, privacy).  The salt is the caller's randomness, passed in.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

from ._cbor import encode
from ._constants import (
    DST_COMMITMENT,
    DST_TERMS,
    DST_TEXT,
    HASH_SIZE,
    NONCE_SIZE,
    SALT_SIZE,
)
from ._errors import LocalProtocolError
from ._identity import Pseudonym

__all__ = ["rating_commitment", "terms_digest", "text_digest"]


def _salted(dst: bytes, salt: bytes, data: bytes) -> bytes:
    if type(salt) is not bytes or len(salt) != SALT_SIZE:
        raise LocalProtocolError(f"salt must be {SALT_SIZE} random bytes")
    return hashlib.sha256(dst + salt + data).digest()


def terms_digest(terms: bytes, *, salt: bytes) -> bytes:
    """SHA-256(DST_TERMS || salt || terms): what ``trade.propose`` carries (spec 5.1)."""
    return _salted(DST_TERMS, salt, terms)


def text_digest(text: str, *, salt: bytes) -> bytes:
    """SHA-256(DST_TEXT || salt || UTF-8 text): a comment or response kept off-chain."""
    return _salted(DST_TEXT, salt, text.encode("utf-8"))


def rating_commitment(
    *,
    trade: bytes,
    context: str,
    rater: Pseudonym,
    ratee: Pseudonym,
    stars: int,
    nonce: bytes,
    tags: Sequence[str] = (),
    comment: bytes | None = None,
) -> bytes:
    """The commitment a ``rate.commit`` carries (spec 7.4).

    It binds the trade, the context and both pseudonyms, so a rating can not be
    moved to another trade, market, rater or ratee, and everything the reveal
    will show, so nothing can be changed after the counterparty's rating is seen.
    """
    if type(nonce) is not bytes or len(nonce) != NONCE_SIZE:
        raise LocalProtocolError(f"nonce must be {NONCE_SIZE} random bytes")
    if len(trade) != HASH_SIZE:
        raise LocalProtocolError(f"trade id must be {HASH_SIZE} bytes")
    opening = encode([trade, context, rater.key, ratee.key, stars, nonce, list(tags), comment])
    return hashlib.sha256(DST_COMMITMENT + opening).digest()
