"""Deterministic CBOR (RFC 8949 section 4.2.1), strictly decoded.

Everything shinyo signs or hashes is built from arrays, unsigned integers, byte
strings, text strings, booleans and null (spec 3.1) -- no maps, floats or tags
-- so "canonical" reduces to: definite lengths, shortest-form heads, and no
trailing bytes.  We get that by decoding with cbor2 and insisting that
re-encoding the result gives back the very same bytes.  The round trip also
rejects duplicate map keys (the decoded dict has fewer items), indefinite
lengths, non-minimal integers and bignum/other tags that collapse to plain
values.  Types are then checked field by field by each structure's own parser.
"""

from __future__ import annotations

import re
from typing import Any

import cbor2

from ._errors import DecodeError, NonCanonical, Oversize

__all__ = ["decode_canonical", "encode", "has_value_sharing"]


def encode(obj: object) -> bytes:
    """Encode ``obj`` deterministically (spec 3.1)."""
    return cbor2.dumps(obj, canonical=True)


def decode_canonical(data: bytes, *, max_size: int, what: str) -> Any:
    """Decode one canonical CBOR data item of at most ``max_size`` bytes.

    ``what`` names the object for error messages ("entry", "fork proof").
    Raises :class:`Oversize`, :class:`DecodeError` or :class:`NonCanonical`;
    never anything else, whatever the bytes.
    """
    if not isinstance(data, bytes):
        raise DecodeError(f"{what}: expected bytes, got {type(data).__name__}")
    if len(data) > max_size:
        raise Oversize(f"{what}: {len(data)} bytes exceeds the limit of {max_size}")
    if not data:
        raise DecodeError(f"{what}: empty input")
    if has_value_sharing(data):
        raise NonCanonical(f"{what}: shared values (CBOR tags 28/29) are not allowed")
    try:
        obj = cbor2.loads(data)
    except Exception as exc:  # cbor2 raises several unrelated types on bad input
        raise DecodeError(f"{what}: not well-formed CBOR ({exc})") from None
    if not _fits(obj, len(data)):
        raise NonCanonical(f"{what}: shared or repeated values (CBOR tags 28/29) are not allowed")
    try:
        again = cbor2.dumps(obj, canonical=True)
    except Exception:  # e.g. a decoded tag value that cannot be re-encoded
        raise NonCanonical(f"{what}: holds CBOR values outside the spec's subset") from None
    if again != data:
        raise NonCanonical(
            f"{what}: not in deterministic encoding (RFC 8949 4.2.1): indefinite length, "
            "non-shortest integer, duplicate map key, tag, or trailing bytes"
        )
    return obj


def _fits(obj: object, budget: int) -> bool:
    """True if ``obj``, walked as a tree, has at most ``budget`` nodes.

    Every CBOR data item takes at least one byte, so a canonical encoding of n
    bytes decodes to at most n nodes.  More means the decoder built a DAG from
    value-sharing tags (28/29), which re-encoding would expand exponentially:
    refuse it in time linear in the input instead.
    """
    stack = [obj]
    while stack:
        budget -= 1
        if budget < 0:
            return False
        x = stack.pop()
        # Every container cbor2 can build: arrays become lists, or tuples inside
        # sets (tag 258) and map keys; sets and frozensets; maps; other tags.
        if isinstance(x, (list, tuple, set, frozenset)):
            stack.extend(x)
        elif isinstance(x, dict):
            stack.extend(x.keys())
            stack.extend(x.values())
        elif isinstance(x, cbor2.CBORTag):
            stack.append(x.value)
    return True


# The heads of tags 28 (shareable) and 29 (sharedref).
_SHARING = re.compile(b"\xd8[\x1c\x1d]")


def may_share_values(data: bytes) -> bool:
    """Cheap prefilter: False guarantees no value-sharing tag anywhere in ``data``."""
    return _SHARING.search(data) is not None


def has_value_sharing(data: bytes) -> bool:
    """True if ``data`` holds a CBOR value-sharing tag (28 or 29) at item level.

    Without those tags a CBOR tree of n nodes needs n bytes.  With them a few
    hundred bytes decode into a DAG whose expansion -- by re-encoding, or by
    hashing it into a set while decoding -- is exponential.  So shared values
    are refused before cbor2 builds anything.  CBOR is a prefix-order sequence
    of heads in which only string contents are opaque, so one linear pass over
    the heads finds every tag; a substring test skips the pass for almost
    every input.  Malformed input returns False and is left to the decoder.
    """
    if not may_share_values(data):
        return False
    i, n = 0, len(data)
    while i < n:
        head = data[i]
        major, info = head >> 5, head & 31
        i += 1
        if info < 24:
            arg = info
        elif info <= 27:
            size = 1 << (info - 24)
            if i + size > n:
                return False
            arg = int.from_bytes(data[i : i + size], "big")
            i += size
        else:
            arg = -1  # indefinite length, break, or reserved: no argument bytes
        if major == 6 and arg in (28, 29):
            return True
        if major in (2, 3) and arg >= 0:
            i += arg  # skip a definite string's contents
        elif major == 7 and info in (25, 26, 27):
            pass  # a float: its bytes were the argument, already skipped
    return False
