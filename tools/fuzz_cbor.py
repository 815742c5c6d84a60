"""CBOR as the hostile-input campaign (issue 7) writes and reads it, byte by byte.

* :func:`emit` writes any value canonically (RFC 8949 4.2.1, as
  ``shinyo._cbor.encode`` does) or, on request, in every form a canonical
  decoder must refuse: non-shortest heads, indefinite lengths whose chunks may
  split a character, unsorted or repeated map keys, wider floats.
* :func:`read_heads` reads the heads of an encoding back without decoding it, so
  that a mutator can rewrite one in place.
* :func:`random_value`, :data:`CBOR_HEADS`, :data:`INTERESTING_INTS` and
  :data:`INTERESTING_BYTES`: values, heads and bytes outside the subset of CBOR
  that entries and messages use.
* The containers CBOR comes in: :func:`on_part` reaches the CBOR inside a proof
  file (after its magic, spec/proof.md 1.1) or a wire stream (one frame's
  body, spec/wire.md 3.1), which :func:`split_frames` and :func:`join_frames`
  take apart and put together; :func:`pack_item` packs an entry as a proof
  file holds it (spec/proof.md 1.1), the inverse of
  ``shinyo._proof_file.unpack_entries``.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Callable, Sequence
from contextlib import suppress
from random import Random
from typing import Any

import cbor2

from shinyo._constants import GENESIS_PREV, PROOF_MAGIC
from shinyo._entry import entry_id

__all__ = ["CBOR_HEADS", "INTERESTING_BYTES", "INTERESTING_INTS", "emit", "join_frames",
           "on_part", "pack_item", "random_value", "read_heads", "split_frames", "write_head"]

_U64 = 2**64
INTERESTING_BYTES = (0x00, 0x01, 0x17, 0x18, 0x19, 0x1A, 0x1B, 0x1F, 0x20, 0x40, 0x57, 0x58,
                     0x5B, 0x5F, 0x60, 0x7F, 0x80, 0x81, 0x9B, 0x9F, 0xA0, 0xBB, 0xBF, 0xC0,
                     0xD8, 0xF4, 0xF6, 0xF7, 0xF9, 0xFB, 0xFF)
INTERESTING_INTS = (0, 1, 5, 6, 23, 24, 255, 256, 65535, 65536, 2**31, 2**32 - 1, 2**32,
                    2**40 - 1, 2**40, 2**53, 2**63, _U64 - 1, _U64, 3 * _U64, -1, -24, -25,
                    -_U64, -_U64 - 1, 10**4400)  # the last: more digits than str() may print
# CBOR heads a decoder must survive: huge lengths (0x9b/0xbb/0x5b/0x7b), indefinite
# starts, a stray break, value sharing, bignums, semantic tags cbor2 acts on
# (epoch datetime, decimal fraction, rational, set, regex, UUID, IP address),
# self-describe, NaN, infinity, undefined, a simple value, non-shortest ints.
CBOR_HEADS = (
    b"\x9b" + b"\xff" * 8, b"\xbb" + b"\xff" * 8, b"\x5b" + b"\xff" * 8,
    b"\x7b" + b"\xff" * 8, b"\x5b\x00\x00\x00\x01\x00\x00\x00\x00", b"\x9a\xff\xff\xff\xff",
    b"\x5a\x7f\xff\xff\xff", b"\x99\xff\xff", b"\x9f", b"\xbf", b"\x5f", b"\x7f", b"\xff",
    b"\xd8\x1c", b"\xd8\x1d\x00", b"\xc2\x49\x01" + bytes(8), b"\xc3\x40",
    b"\xc1\x1b" + b"\xff" * 8, b"\xc1\xfb\x7f\xf0\x00\x00\x00\x00\x00\x00",
    b"\xc4\x82\x1b\x7f\xff\xff\xff\xff\xff\xff\xff\x01", b"\xd8\x1e\x82\x01\x00",
    b"\xd9\x01\x02\x82\x80\x80", b"\xd8\x23\x63(((", b"\xd8\x25\x41\x00",
    b"\xd9\x01\x04\x41\x00", b"\xd9\xd9\xf7", b"\xf9\x7e\x00", b"\xfa\x7f\x80\x00\x00",
    b"\xf7", b"\xf8\x20", b"\xf8\x00", b"\x1b" + b"\xff" * 8, b"\x3b" + b"\xff" * 8,
    b"\x18\x00", b"\x19\x00\x01", b"\xc0\x74" + b"9" * 20,
)
_NEST_DEPTHS = (2, 64, 399, 400, 401, 450)  # around cbor2's container nesting limit


# -- a CBOR writer that can also write every non-canonical form ------------------------


def emit(obj: Any, rng: Random | None = None, *, odd: float = 0.0) -> bytes:
    """Encode ``obj`` as CBOR.  With ``rng`` and ``odd`` > 0, each item is written
    in a non-deterministic form (RFC 8949 4.2.1 broken) with probability ``odd``:
    a non-shortest head, an indefinite length (text chunks may split a character),
    unsorted or repeated map keys, a wider float."""
    out = bytearray()
    _emit(obj, out, rng if odd > 0 else None, odd)
    return bytes(out)


def write_head(out: bytearray, major: int, arg: int, rng: Random | None = None) -> None:
    """A head; the shortest form, or a random wide enough one when ``rng`` is given."""
    widths = [w for w in (0, 1, 2, 4, 8) if (arg < 24 if w == 0 else arg < 1 << (8 * w))]
    w = rng.choice(widths) if rng is not None else widths[0]
    out.append(major << 5 | (arg if w == 0 else 23 + w.bit_length()))
    out += arg.to_bytes(w, "big") if w else b""


def _emit(obj: Any, out: bytearray, rng: Random | None, odd: float) -> None:
    odd_rng = rng if rng is not None and rng.random() < odd else None  # this item, oddly
    if obj is None or obj is cbor2.undefined or isinstance(obj, bool):
        out.append(0xF6 if obj is None else 0xF5 if obj is True else 0xF4 if obj is False
                   else 0xF7)
    elif isinstance(obj, int) and -_U64 <= obj < _U64:
        write_head(out, 0 if obj >= 0 else 1, obj if obj >= 0 else -1 - obj, odd_rng)
    elif isinstance(obj, int):  # a bignum (tags 2 and 3)
        n = obj if obj >= 0 else -1 - obj
        write_head(out, 6, 2 if obj >= 0 else 3, odd_rng)
        _emit(n.to_bytes((n.bit_length() + 7) // 8, "big"), out, rng, odd)
    elif isinstance(obj, float):
        exact = []
        for fmt, head in ((">e", 0xF9), (">f", 0xFA), (">d", 0xFB)):
            with suppress(OverflowError):  # too large for the narrower format
                back = struct.unpack(fmt, packed := struct.pack(fmt, obj))[0]
                if back == obj or (math.isnan(obj) and math.isnan(back)):
                    exact.append(bytes([head]) + packed)
        out += odd_rng.choice(exact) if odd_rng is not None else exact[0]
    elif isinstance(obj, (bytes, bytearray, str)):
        data = obj.encode("utf-8", "surrogatepass") if isinstance(obj, str) else bytes(obj)
        major = 3 if isinstance(obj, str) else 2
        if odd_rng is not None and odd_rng.random() < 0.5:  # indefinite: chunks, then break
            cuts = sorted(odd_rng.randrange(len(data) + 1) for _ in range(odd_rng.randrange(3)))
            out.append(major << 5 | 31)
            for lo, hi in zip([0, *cuts], [*cuts, len(data)], strict=True):
                write_head(out, major, hi - lo)
                out += data[lo:hi]
            out.append(0xFF)
        else:
            write_head(out, major, len(data), odd_rng)
            out += data
    elif isinstance(obj, (list, tuple, dict)):
        if isinstance(obj, dict):  # canonical order: shorter keys first, then bytewise
            keys = sorted((emit(k), v) for k, v in obj.items())
            items: list[Any] = sorted(keys, key=lambda kv: len(kv[0]))
            if odd_rng is not None:
                odd_rng.shuffle(items)
                items += [odd_rng.choice(items)] if items and odd_rng.random() < 0.3 else []
        else:
            items = list(obj)
        major = 5 if isinstance(obj, dict) else 4
        indefinite = odd_rng is not None and odd_rng.random() < 0.5
        if indefinite:
            out.append(major << 5 | 31)
        else:
            write_head(out, major, len(items), odd_rng)
        for x in items:
            if isinstance(obj, dict):
                out += x[0]
            _emit(x[1] if isinstance(obj, dict) else x, out, rng, odd)
        out += b"\xff" if indefinite else b""
    elif isinstance(obj, cbor2.CBORTag):
        write_head(out, 6, obj.tag, odd_rng)
        _emit(obj.value, out, rng, odd)
    elif isinstance(obj, cbor2.CBORSimpleValue):
        v = int(obj.value)
        out += bytes([0xE0 | v]) if v < 24 else bytes([0xF8, v])
    else:  # what cbor2 made of a semantic tag (datetime, Decimal, set, ...)
        try:
            out += cbor2.dumps(obj)
        except Exception:
            out.append(0xF6)


# -- reading heads back ------------------------------------------------------------------


def read_heads(data: bytes) -> list[tuple[int, int, int | None, int]]:
    """(offset, major, argument or None, head size) of each CBOR head, in order."""
    out: list[tuple[int, int, int | None, int]] = []
    i = 0
    while i < len(data) and len(out) < 2000:
        major, info = data[i] >> 5, data[i] & 31
        size = 1 + (1 << (info - 24) if 24 <= info <= 27 else 0)
        if i + size > len(data):
            break
        arg = info if info < 24 else int.from_bytes(data[i + 1 : i + size]) if size > 1 else None
        out.append((i, major, arg, size))
        i += size + (arg if major in (2, 3) and arg is not None else 0)
    return out


# -- values ---------------------------------------------------------------------------------


def _deep(rng: Random) -> Any:
    deep: Any = 0
    for _ in range(rng.choice(_NEST_DEPTHS)):
        deep = [deep]
    return deep


def random_value(rng: Random, depth: int = 0) -> Any:
    """Any CBOR value, most of them outside the subset entries and messages use."""
    makers: list[Callable[[], Any]] = [
        lambda: rng.choice(INTERESTING_INTS),
        lambda: rng.randbytes(rng.choice((0, 1, 16, 31, 32, 33, 63, 64, 65))),
        lambda: rng.choice(("", "a", "A", "market.example/books", "x" * 65, "é", "\x00",
                            "\u202e")),
        lambda: rng.choice((None, True, False, cbor2.undefined, cbor2.CBORSimpleValue(99))),
        lambda: rng.choice((0.0, -0.0, 1.5, math.inf, -math.inf, math.nan, 1e300, 5.0)),
        lambda: rng.randrange(10),
        lambda: rng.randbytes(32),
    ]
    if depth < 3:
        makers += [
            lambda: cbor2.CBORTag(rng.choice((0, 1, 2, 3, 4, 5, 24, 28, 29, 30, 32, 35, 36, 37,
                                              258, 260, 55799, 99)), random_value(rng, depth + 1)),
            lambda: [random_value(rng, depth + 1) for _ in range(rng.randrange(4))],
            lambda: {random_value(rng, 3): random_value(rng, depth + 1) for _ in range(2)},
            lambda: [random_value(rng, 3) for _ in range(rng.choice((7, 8, 65, 257)))],
        ]
    if depth == 0:
        makers.append(lambda: _deep(rng))
    return rng.choice(makers)()


# -- containers: proof files, frame streams, plain CBOR ---------------------------------


def split_frames(data: bytes) -> list[bytes] | None:
    """The frame bodies of a wire stream, or None unless ``data`` is exactly whole frames."""
    bodies, i = [], 0
    while i < len(data):
        n = int.from_bytes(data[i : i + 4], "big")
        if i + 4 > len(data) or n == 0 or i + 4 + n > len(data):
            return None
        bodies.append(data[i + 4 : i + 4 + n])
        i += 4 + n
    return bodies or None


def join_frames(bodies: Sequence[bytes]) -> bytes:
    return b"".join(len(b).to_bytes(4, "big") + b for b in bodies)


def on_part(rng: Random, data: bytes, op: Callable[[bytes, bool], bytes | None]
            ) -> bytes | None:
    """Apply ``op(part, is_proof)`` to the CBOR part of ``data``: after a proof's
    magic, or one frame's body (its length prefix is then recomputed)."""
    if data.startswith(PROOF_MAGIC):
        inner = op(data[len(PROOF_MAGIC) :], True)
        return None if inner is None else PROOF_MAGIC + inner
    bodies = split_frames(data)
    if bodies is None:
        return op(data, False)
    i = rng.randrange(len(bodies))
    body = op(bodies[i], False)
    return join_frames([*bodies[:i], body, *bodies[i + 1 :]]) if body else None


def pack_item(payload: bytes, sig: bytes, before: tuple[int, bytes] | None
              ) -> tuple[bytes, tuple[int, bytes]] | None:
    """An entry packed as spec/proof.md 1.1 says, by splicing its payload: without
    the author, and with prev null when it follows from the item ``before``."""
    heads = read_heads(payload)[:5]
    if len(heads) < 5 or heads[0][:3] != (0, 4, 7) or heads[3][1] != 0 or any(
            h[1:] != (2, 32, 2) for h in (heads[2], heads[4])):
        return None
    seq, author_at, seq_at, prev_at = heads[3][2], heads[2][0], heads[3][0], heads[4][0]
    assert seq is not None
    rest_at = prev_at + 34
    derived = GENESIS_PREV if seq == 1 else before[1] if before and before[0] == seq - 1 \
        else None
    prev = b"\xf6" if payload[prev_at + 2 : rest_at] == derived else payload[prev_at:rest_at]
    packed = b"\x86" + payload[1:author_at] + payload[seq_at:prev_at] + prev + payload[rest_at:]
    return packed + sig, (seq, entry_id(payload))
