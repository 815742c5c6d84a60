"""Entry kinds and their bodies (spec 5).

Each body is a frozen, keyword-only dataclass that validates itself on
construction, so a body object that exists is well-formed.  On the wire a body
is a CBOR array with the fields in the order declared here (spec 5 gives the
CDDL); ``to_cbor``/``body_from_cbor`` convert.  Rules that need the rest of the
chain (is this trade known? was it committed?) live in ``_chain.py``.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass
from typing import Any, ClassVar

from ._constants import (
    HASH_SIZE,
    KEY_SIZE,
    MAX_CONTEXT_LEN,
    MAX_STARS,
    MAX_TAG_LEN,
    MAX_TAGS,
    MIN_STARS,
    NONCE_SIZE,
)
from ._errors import InvalidBody
from ._identity import Pseudonym

__all__ = [
    "Accept",
    "Body",
    "Cancel",
    "Commit",
    "Kind",
    "Propose",
    "Response",
    "Retract",
    "Reveal",
    "Vouch",
    "body_from_cbor",
]


class Kind(enum.IntEnum):
    """Entry kinds: the integer is the wire code, ``.label`` the spec's name."""

    TRADE_PROPOSE = 1
    TRADE_ACCEPT = 2
    TRADE_CANCEL = 3
    RATE_COMMIT = 4
    RATE_REVEAL = 5
    RATE_RETRACT = 6
    RATE_RESPONSE = 7
    VOUCH = 8

    @property
    def label(self) -> str:
        return self.name.lower().replace("_", ".", 1)


# spec 5.1: a context names a community or market; lowercase ASCII so that two
# spellings of one market cannot exist.
_CONTEXT_RE = re.compile(r"[a-z0-9][a-z0-9._:/-]{0,63}")
_TAG_RE = re.compile(r"[a-z0-9][a-z0-9-]{0,23}")


def _hash(value: object, name: str) -> bytes:
    if type(value) is not bytes or len(value) != HASH_SIZE:
        raise InvalidBody(f"{name} must be a {HASH_SIZE}-byte hash")
    return value


def _opt_hash(value: object, name: str) -> bytes | None:
    return None if value is None else _hash(value, name)


def _key(value: object, name: str) -> Pseudonym:
    if isinstance(value, Pseudonym):
        return value
    if type(value) is not bytes or len(value) != KEY_SIZE:
        raise InvalidBody(f"{name} must be a {KEY_SIZE}-byte public key")
    return Pseudonym(key=value)


def check_context(value: object) -> str:
    if type(value) is not str or _CONTEXT_RE.fullmatch(value) is None:
        raise InvalidBody(
            f"context must be 1-{MAX_CONTEXT_LEN} characters of [a-z0-9._:/-], "
            f"starting with a letter or digit; got {value!r}"
        )
    return value


def _tags(value: object) -> tuple[str, ...]:
    if type(value) not in (list, tuple):
        raise InvalidBody("tags must be an array of text strings")
    assert isinstance(value, (list, tuple))
    if len(value) > MAX_TAGS:
        raise InvalidBody(f"at most {MAX_TAGS} tags; got {len(value)}")
    for t in value:
        if type(t) is not str or _TAG_RE.fullmatch(t) is None:
            raise InvalidBody(f"a tag is 1-{MAX_TAG_LEN} characters of [a-z0-9-]; got {t!r}")
    if list(value) != sorted(set(value)):
        raise InvalidBody("tags must be sorted and unique (spec 5.5)")
    return tuple(value)


@dataclass(frozen=True, slots=True, kw_only=True)
class Propose:
    """``trade.propose``: offer a trade; the entry's id is the trade id (spec 5.1)."""

    kind: ClassVar[Kind] = Kind.TRADE_PROPOSE
    counterparty: Pseudonym
    context: str
    terms: bytes  # salted digest of the terms, see shinyo.terms_digest

    def __post_init__(self) -> None:
        object.__setattr__(self, "counterparty", _key(self.counterparty, "counterparty"))
        check_context(self.context)
        _hash(self.terms, "terms")

    def to_cbor(self) -> list[Any]:
        return [self.counterparty.key, self.context, self.terms]


@dataclass(frozen=True, slots=True, kw_only=True)
class Accept:
    """``trade.accept``: agree to a proposal named by its trade id (spec 5.2).

    ``proposer`` and ``context`` repeat what the proposal says, so the
    acceptor's chain is meaningful (and its commitments checkable) alone.
    """

    kind: ClassVar[Kind] = Kind.TRADE_ACCEPT
    trade: bytes
    proposer: Pseudonym
    context: str

    def __post_init__(self) -> None:
        _hash(self.trade, "trade")
        object.__setattr__(self, "proposer", _key(self.proposer, "proposer"))
        check_context(self.context)

    def to_cbor(self) -> list[Any]:
        return [self.trade, self.proposer.key, self.context]


@dataclass(frozen=True, slots=True, kw_only=True)
class _TradeOnly:
    """A body that names a trade and nothing else."""

    trade: bytes

    def __post_init__(self) -> None:
        _hash(self.trade, "trade")

    def to_cbor(self) -> list[Any]:
        return [self.trade]


@dataclass(frozen=True, slots=True, kw_only=True)
class Cancel(_TradeOnly):
    """``trade.cancel``: end a trade before this party's rating (spec 5.3)."""

    kind: ClassVar[Kind] = Kind.TRADE_CANCEL


@dataclass(frozen=True, slots=True, kw_only=True)
class Commit:
    """``rate.commit``: a hidden rating, and maybe an ack (spec 5.4).

    ``ack`` is the entry id of the counterparty's ``rate.commit`` when it is
    already known; otherwise null and the ack comes with the reveal.
    """

    kind: ClassVar[Kind] = Kind.RATE_COMMIT
    trade: bytes
    commitment: bytes
    ack: bytes | None = None

    def __post_init__(self) -> None:
        _hash(self.trade, "trade")
        _hash(self.commitment, "commitment")
        _opt_hash(self.ack, "ack")

    def to_cbor(self) -> list[Any]:
        return [self.trade, self.commitment, self.ack]


@dataclass(frozen=True, slots=True, kw_only=True)
class Reveal:
    """``rate.reveal``: open the commitment (spec 5.5)."""

    kind: ClassVar[Kind] = Kind.RATE_REVEAL
    trade: bytes
    stars: int
    nonce: bytes
    tags: tuple[str, ...] = ()
    comment: bytes | None = None  # text digest of a comment kept off-chain
    ack: bytes | None = None

    def __post_init__(self) -> None:
        _hash(self.trade, "trade")
        if type(self.stars) is not int or not MIN_STARS <= self.stars <= MAX_STARS:
            raise InvalidBody(f"stars must be an integer {MIN_STARS}..{MAX_STARS}")
        if type(self.nonce) is not bytes or len(self.nonce) != NONCE_SIZE:
            raise InvalidBody(f"nonce must be {NONCE_SIZE} bytes")
        object.__setattr__(self, "tags", _tags(self.tags))
        _opt_hash(self.comment, "comment")
        _opt_hash(self.ack, "ack")

    def to_cbor(self) -> list[Any]:
        return [self.trade, self.stars, self.nonce, list(self.tags), self.comment, self.ack]


@dataclass(frozen=True, slots=True, kw_only=True)
class Retract(_TradeOnly):
    """``rate.retract``: the rater withdraws its revealed rating (spec 5.6)."""

    kind: ClassVar[Kind] = Kind.RATE_RETRACT


@dataclass(frozen=True, slots=True, kw_only=True)
class Response:
    """``rate.response``: the rated party's public reply, as a digest (spec 5.7)."""

    kind: ClassVar[Kind] = Kind.RATE_RESPONSE
    trade: bytes
    text: bytes

    def __post_init__(self) -> None:
        _hash(self.trade, "trade")
        _hash(self.text, "text")

    def to_cbor(self) -> list[Any]:
        return [self.trade, self.text]


@dataclass(frozen=True, slots=True, kw_only=True)
class Vouch:
    """``vouch``: introduce (or, with ``active=False``, stop vouching for) a pseudonym."""

    kind: ClassVar[Kind] = Kind.VOUCH
    subject: Pseudonym
    context: str
    active: bool = True

    def __post_init__(self) -> None:
        object.__setattr__(self, "subject", _key(self.subject, "subject"))
        check_context(self.context)
        if type(self.active) is not bool:
            raise InvalidBody("active must be a boolean")

    def to_cbor(self) -> list[Any]:
        return [self.subject.key, self.context, self.active]


Body = Propose | Accept | Cancel | Commit | Reveal | Retract | Response | Vouch

_ARITY: dict[Kind, int] = {
    Kind.TRADE_PROPOSE: 3,
    Kind.TRADE_ACCEPT: 3,
    Kind.TRADE_CANCEL: 1,
    Kind.RATE_COMMIT: 3,
    Kind.RATE_REVEAL: 6,
    Kind.RATE_RETRACT: 1,
    Kind.RATE_RESPONSE: 2,
    Kind.VOUCH: 3,
}


def body_from_cbor(kind: Kind, fields: object) -> Body:
    """Build the body of ``kind`` from its decoded CBOR array (spec 5)."""
    if type(fields) is not list or len(fields) != _ARITY[kind]:
        raise InvalidBody(f"{kind.label} body must be an array of {_ARITY[kind]} fields")
    f = fields
    try:
        if kind is Kind.TRADE_PROPOSE:
            return Propose(counterparty=f[0], context=f[1], terms=f[2])
        if kind is Kind.TRADE_ACCEPT:
            return Accept(trade=f[0], proposer=f[1], context=f[2])
        if kind is Kind.TRADE_CANCEL:
            return Cancel(trade=f[0])
        if kind is Kind.RATE_COMMIT:
            return Commit(trade=f[0], commitment=f[1], ack=f[2])
        if kind is Kind.RATE_REVEAL:
            return Reveal(trade=f[0], stars=f[1], nonce=f[2], tags=f[3], comment=f[4], ack=f[5])
        if kind is Kind.RATE_RETRACT:
            return Retract(trade=f[0])
        if kind is Kind.RATE_RESPONSE:
            return Response(trade=f[0], text=f[1])
        return Vouch(subject=f[0], context=f[1], active=f[2])
    except InvalidBody as exc:
        raise InvalidBody(f"{kind.label}: {exc}") from None
