"""Mutators for the hostile-input campaign (issue 7): bytes, CBOR trees, signed entries.

Three layers, each reaching deeper than the one before:

* **Bytes**: bit flips, interesting bytes and words, CBOR heads with huge
  lengths, truncation, extension, splices of two seeds, duplicated regions.
  They test the first checks of every decoder (sizes, framing, CBOR syntax).
* **CBOR trees**: decode with cbor2, change one node (ints at width
  boundaries, byte strings one byte off, other types, tags, deep nesting,
  map keys), then re-encode with :func:`~shinyo.tools.fuzz_cbor.emit` --
  canonically, or with non-shortest heads, indefinite lengths, unsorted or
  repeated map keys and floats.  They test canonicality and the per-field
  type checks.
* **Signed entries**: an entry whose signature breaks is refused at spec 6.4
  step 7 and nothing past it runs.  The seeds are signed by keys derived from
  known seeds (``bytes([n]) * 32``, as the vectors and tests use), so the
  mutator re-signs what it changes and rewrites every reference to a changed
  entry id (``prev``, ``trade``, ``ack``) in the rest of the document, which
  keeps chains linked.  That reaches the chain rules (spec 6.5), the trade
  rules (spec 7) and the proof verifier (spec/proof.md 3) with inputs that
  are valid up to one deliberate fault.

Containers are handled whole: a proof file loses and regains its magic and
its entries are unpacked and packed again (spec/proof.md 1.1); a wire stream
(spec/wire.md 3.1) is cut into frames whose length prefixes are recomputed
after a change; byte strings that hold CBOR documents (an entry inside a fork
proof inside a Fork message) are mutated in place.  Everything is a function
of the :class:`random.Random` passed in.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence
from random import Random
from typing import Any

import cbor2

from shinyo import SigningIdentity
from shinyo._constants import (
    ACCEPT_WINDOW,
    COMMIT_WINDOW,
    DST_ENTRY_SIG,
    EVIDENCE_SPAN,
    GENESIS_PREV,
    MAX_CLOCK_SKEW,
    MAX_SEQ,
    MAX_TIMESTAMP,
    RESPONSE_WINDOW,
    RETRACT_WINDOW,
)
from shinyo._entry import entry_id
from shinyo._proof_file import unpack_entries

from .fuzz_cbor import (
    CBOR_HEADS,
    INTERESTING_BYTES,
    INTERESTING_INTS,
    emit,
    join_frames,
    on_part,
    pack_item,
    random_value,
    read_heads,
    split_frames,
    write_head,
)

__all__ = ["BYTE_OPS", "KNOWN_SEEDS", "TREE_OPS", "Mutator", "Op"]

KNOWN_SEEDS = range(1, 33)
"""Identities ``SigningIdentity.from_seed(bytes([n]) * 32)`` the mutator can sign for."""

_U64 = 2**64
_WORDS = (0, 1, 0x7F, 0x80, 0xFF, 0x100, 0x7FFF, 0xFFFF, 0x10000, 0x41000, 0x41001, 0x7FFFFFFF,
          0x80000000, 0xFFFFFFFF)  # 0x41000/0x41001: MAX_FRAME_SIZE and one more
_DELTAS = (1, 60, MAX_CLOCK_SKEW, MAX_CLOCK_SKEW + 1, ACCEPT_WINDOW, ACCEPT_WINDOW + 1,
           COMMIT_WINDOW, COMMIT_WINDOW + 1, RESPONSE_WINDOW, RESPONSE_WINDOW + 1,
           RETRACT_WINDOW, RETRACT_WINDOW + 1, EVIDENCE_SPAN, 365 * 86_400)
_SMALL_ORDER_KEY = bytes([1]) + bytes(31)  # the neutral element: a key no one can own

Op = Callable[[Random, bytes, Sequence[bytes]], bytes | None]
"""An operation: (rng, data, pool of other seeds) -> the mutant, or None if it does not apply."""


@functools.cache
def _signers() -> dict[bytes, SigningIdentity]:
    ids = (SigningIdentity.from_seed(bytes([n]) * 32) for n in KNOWN_SEEDS)
    return {i.pseudonym.key: i for i in ids}


# -- byte operations ----------------------------------------------------------------------


def _at(rng: Random, data: bytes, new: bytes, width: int = 1) -> bytes | None:
    """``data`` with ``width`` bytes at a random offset replaced by ``new``."""
    if len(data) < width or (width == 0 and not new):
        return None
    i = rng.randrange(len(data) - width + 1)
    return data[:i] + new + data[i + width :]


def _flip(rng: Random, data: bytes, pool: Sequence[bytes]) -> bytes | None:
    if not data:
        return bytes([rng.randrange(256)])
    i = rng.randrange(len(data))
    return data[:i] + bytes([data[i] ^ 1 << rng.randrange(8)]) + data[i + 1 :]


def _byte(rng: Random, data: bytes, pool: Sequence[bytes]) -> bytes | None:
    return _at(rng, data, bytes([rng.choice(INTERESTING_BYTES)]))


def _word(rng: Random, data: bytes, pool: Sequence[bytes]) -> bytes | None:
    """A 1-8 byte big-endian value: a length prefix, a head's argument."""
    w = rng.choice((1, 2, 4, 4, 8))
    value = rng.choice((*_WORDS, len(data) - 4, len(data) - 5)) % (1 << 8 * w)
    if rng.random() < 0.25 and len(data) >= w:  # the start: a frame's length prefix
        return value.to_bytes(w, "big") + data[w:]
    return _at(rng, data, value.to_bytes(w, "big"), w)


def _head_insert(rng: Random, data: bytes, pool: Sequence[bytes]) -> bytes | None:
    width = rng.choice((0, 0, 1, 3))  # insert, or overwrite a few bytes
    return _at(rng, data, rng.choice(CBOR_HEADS), width)


def _head_edit(rng: Random, data: bytes, pool: Sequence[bytes]) -> bytes | None:
    """Rewrite one CBOR head in place: wider, huge, indefinite, another major, +-1."""
    def edit(part: bytes, _proof: bool) -> bytes | None:
        heads = read_heads(part)
        if not heads:
            return None
        pos, major, arg, size = rng.choice(heads)
        new, choice = bytearray(), rng.randrange(5)
        if choice == 0 and arg is not None:
            write_head(new, major, arg, rng)
        elif choice == 1:
            write_head(new, major, rng.choice((2**32 - 1, 2**63, _U64 - 1, len(part))))
        elif choice == 2:
            new.append(major << 5 | 31)
        elif choice == 3:
            new += bytes([rng.randrange(8) << 5 | (part[pos] & 31)]) + part[pos + 1 : pos + size]
        elif arg is not None:
            write_head(new, major, max(0, arg + rng.choice((-1, 1))))
        return part[:pos] + bytes(new) + part[pos + size :] if new else None
    return on_part(rng, data, edit)


def _truncate(rng: Random, data: bytes, pool: Sequence[bytes]) -> bytes | None:
    return data[: rng.randrange(len(data))] if data else None


def _extend(rng: Random, data: bytes, pool: Sequence[bytes]) -> bytes | None:
    return data + rng.choice((b"\x00", b"\xff", bytes(rng.randrange(1, 64)), rng.randbytes(8),
                              data[-16:], rng.choice(pool)))


def _delete(rng: Random, data: bytes, pool: Sequence[bytes]) -> bytes | None:
    return _at(rng, data, b"", rng.randrange(1, min(32, len(data)) + 1)) if data else None


def _duplicate(rng: Random, data: bytes, pool: Sequence[bytes]) -> bytes | None:
    if not data:
        return None
    i = rng.randrange(len(data))
    j = min(len(data), i + rng.randrange(1, 129))
    return data[:j] + data[i:j] * rng.choice((1, 1, 2, 16)) + data[j:]


def _splice(rng: Random, data: bytes, pool: Sequence[bytes]) -> bytes | None:
    other = rng.choice(pool)
    return data[: rng.randrange(len(data) + 1)] + other[rng.randrange(len(other) + 1) :]


def _case(rng: Random, data: bytes, pool: Sequence[bytes]) -> bytes | None:
    """Flip an ASCII letter's case: bech32 text is one case or the other (spec 4.2)."""
    letters = [i for i, c in enumerate(data) if 0x41 <= (c | 0x20) - 0x20 <= 0x5A]
    if not letters:
        return None
    i = rng.choice(letters)
    return data[:i] + bytes([data[i] ^ 0x20]) + data[i + 1 :]


def _arith(rng: Random, data: bytes, pool: Sequence[bytes]) -> bytes | None:
    if not data:
        return None
    i = rng.randrange(len(data))
    return data[:i] + bytes([(data[i] + rng.choice((-2, -1, 1, 2))) % 256]) + data[i + 1 :]


BYTE_OPS: tuple[tuple[str, Op, int], ...] = (
    ("flip", _flip, 6), ("byte", _byte, 5), ("word", _word, 3),
    ("head-insert", _head_insert, 4), ("head-edit", _head_edit, 5), ("truncate", _truncate, 4),
    ("extend", _extend, 2), ("delete", _delete, 3), ("duplicate", _duplicate, 2),
    ("splice", _splice, 3), ("case", _case, 1), ("arith", _arith, 2),
)
"""(name, operation, weight) of each plain byte edit."""


# -- documents: CBOR trees with signed entries and nested documents inside ----------------


class _Env:
    """An entry found in a document, its payload decoded so that it can be edited and
    signed again.  ``packed`` is its original item if it sits packed in a proof."""

    __slots__ = ("fields", "new", "packed", "raw", "sig", "touched")

    def __init__(self, fields: list[Any], raw: bytes, sig: bytes) -> None:
        self.fields, self.raw, self.sig, self.touched = fields, raw, sig, False
        self.new = b""
        self.packed: bytes | None = None

    def payload(self) -> bytes:
        value: bytes = cbor2.loads(self.raw)[0]
        return value


class _Nest:
    """A byte string that holds a CBOR document of its own (a fork proof in a message)."""

    __slots__ = ("box", "raw", "touched")

    def __init__(self, value: Any, raw: bytes) -> None:
        self.box, self.raw, self.touched = [value], raw, False


def _wrap(value: Any, depth: int = 0) -> Any:
    """``value`` with its entry envelopes and nested documents wrapped, to be edited."""
    if isinstance(value, list):
        return [_wrap(x, depth) for x in value]
    if not isinstance(value, bytes) or len(value) < 3 or not 0x80 <= value[0] <= 0x9B:
        return value
    try:
        inner = cbor2.loads(value)
        whole = len(cbor2.dumps(inner)) == len(value)  # not a prefix (a packed entry)
        fields = cbor2.loads(inner[0]) if len(inner) == 2 and type(inner[0]) is bytes else None
    except Exception:
        return value
    if type(fields) is list and len(fields) == 7 and type(inner[1]) is bytes \
            and len(inner[1]) == 64:
        return _Env(fields, value, inner[1])
    if type(inner) is list and depth < 3 and whole:
        return _Nest(_wrap(inner, depth + 1), value)
    return value


_Spot = tuple[Any, Any, tuple[Any, ...]]  # (container, key, enclosing wrappers)


def _positions(root: list[Any], limit: int = 4000) -> list[_Spot]:
    """Every node under ``root`` (root included) as a place to put a new value."""
    out: list[_Spot] = []
    stack: list[_Spot] = [(root, 0, ())]
    while stack and len(out) < limit:
        container, key, up = spot = stack.pop()
        out.append(spot)
        node = container[key]
        if isinstance(node, _Env):
            stack.extend((node.fields, i, (*up, node)) for i in range(len(node.fields)))
        elif isinstance(node, _Nest):
            stack.append((node.box, 0, (*up, node)))
        elif isinstance(node, (list, dict)):
            stack.extend((node, k, up) for k in (range(len(node)) if isinstance(node, list)
                                                 else node))
    return out


class _Doc:
    """A decoded document; :meth:`encode` signs and links again what was changed.

    In a proof the packed entries of ``own`` and of each group are unpacked by
    the proof reader, edited as entries, and packed again.
    """

    def __init__(self, part: bytes, value: Any, rng: Random, odd: float, proof: bool) -> None:
        whole = _wrap(part)
        self.root = [whole if isinstance(whole, _Env) else _wrap(value)]
        self.rng, self.odd = rng, odd
        self.packed: list[list[Any]] = []
        top = self.root[0]
        if proof and isinstance(top, list) and len(top) == 5:
            self._open(top[1], top[2])
            for group in top[3] if isinstance(top[3], list) else ():
                if isinstance(group, list) and len(group) == 2:
                    self._open(group[0], group[1])

    def _open(self, key: Any, items: Any) -> None:
        if type(key) is not bytes or not isinstance(items, list) \
                or any(type(x) is not bytes for x in items):
            return
        for i, entry in enumerate(unpack_entries(key, items)):
            env = _wrap(entry) if isinstance(entry, bytes) else None
            if isinstance(env, _Env):
                env.packed, items[i] = items[i], env
        self.packed.append(items)

    def envs(self) -> list[_Env]:
        """The entries in the document, in document order."""
        found = [c[k] for c, k, _ in _positions(self.root) if isinstance(c[k], _Env)]
        return found[::-1]  # _positions walks a stack: last child first

    def ids(self) -> list[bytes]:
        return [entry_id(env.payload()) for env in self.envs()]

    def encode(self) -> bytes:
        """Sign changed entries again; rewrite references to their old ids, which
        changes those entries in turn, until no id changes (ids are hashes: no cycles)."""
        envs = self.envs()
        remap: dict[bytes, bytes] = {}
        pending = {id(e) for e in envs if e.touched}
        for _ in range(len(envs) + 1):
            grew = False
            for env in envs:
                if remap and _replace(env.fields, remap):
                    env.touched = True
                    pending.add(id(env))
                if id(env) in pending:
                    pending.discard(id(env))
                    old = entry_id(env.new or env.payload())
                    self._seal(env)
                    if entry_id(env.new) != old:
                        remap[old], grew = entry_id(env.new), True
            if not grew:
                break
        for env in envs:
            if env.touched:
                env.raw = cbor2.dumps([env.new, env.sig])
        value, _ = self._pack(self.root[0])
        if isinstance(self.root[0], _Env):  # the document is one entry
            return bytes(value)
        return emit(value, self.rng, odd=self.odd)

    def _seal(self, env: _Env) -> None:
        signer = _signers().get(env.fields[1]) if type(env.fields[1]) is bytes else None
        if signer is None and self.rng.random() < 0.5:  # make it someone's valid entry
            signer = self.rng.choice(list(_signers().values()))
            env.fields[1] = signer.pseudonym.key
        # A packed entry is a splice of its payload, so its payload stays canonical.
        env.new = emit(env.fields, self.rng, odd=0 if env.packed else self.odd / 4)
        if signer is not None:
            env.sig = signer.sign(DST_ENTRY_SIG + env.new)

    def _pack(self, node: Any) -> tuple[Any, bool]:
        """The plain value of ``node``, and whether anything in it changed."""
        if isinstance(node, _Env):
            return node.raw, node.touched
        if isinstance(node, _Nest):
            inner, changed = self._pack(node.box[0])
            if changed or node.touched:
                return emit(inner, self.rng, odd=self.odd), True
            return node.raw, False
        if not isinstance(node, list):
            return node, False
        if not any(node is p for p in self.packed):
            packed = [self._pack(x) for x in node]
            return [v for v, _ in packed], any(c for _, c in packed)
        out, changed = [], False
        before: tuple[int, bytes] | None = None  # the item before, unpacked: (seq, id)
        for x in node:
            if not isinstance(x, _Env):
                value, c = self._pack(x)
                out.append(value)
                changed, before = changed or c, None
                continue
            payload, seq = x.payload(), x.fields[2]
            item = pack_item(payload, x.sig, before)
            if x.packed is not None and not x.touched:  # as it was, even if not canonical
                out.append(x.packed)
                before = (seq, entry_id(payload)) if type(seq) is int else None
            else:
                out.append(x.raw if item is None else item[0])
                before = None if item is None else item[1]
            changed = changed or x.touched
        return out, changed


def _replace(value: Any, remap: dict[bytes, bytes]) -> bool:
    """Rewrite every byte string in ``value`` found in ``remap``; True if any was."""
    changed = False
    for i, x in enumerate(value if isinstance(value, list) else ()):
        if type(x) is bytes and x in remap:
            value[i], changed = remap[x], True
        elif isinstance(x, list):
            changed = _replace(x, remap) or changed
    return changed


def _document(part: bytes, rng: Random, odd: float, proof: bool) -> _Doc | None:
    try:
        value = cbor2.loads(part)
    except Exception:
        return None
    return _Doc(part, value, rng, odd, proof)


# -- values near others ------------------------------------------------------------------


def _tweak(rng: Random, v: Any, ids: Sequence[bytes]) -> Any:
    """A value near ``v``: off by one, at a width boundary, of another type, another id."""
    if rng.random() < 0.15:
        return random_value(rng)
    if isinstance(v, bool) or v is None:
        return rng.choice((None, True, False, 0, 1, *ids[:1]))
    if isinstance(v, int):
        big = abs(v) >= 2**1000  # float() and str() refuse it
        near: list[Callable[[], Any]] = [
            lambda: v + rng.choice((1, -1)), lambda: -v, lambda: rng.choice(INTERESTING_INTS),
            lambda: v + rng.choice((1, -1)) * rng.choice(_DELTAS),
            lambda: rng.choice((MAX_SEQ, MAX_SEQ + 1, MAX_TIMESTAMP, MAX_TIMESTAMP + 1)),
            lambda: math.inf if big else float(v), lambda: "9" * 99 if big else str(v)]
        return rng.choice(near)()
    if isinstance(v, bytes):
        i = rng.randrange(len(v)) if v else 0
        return rng.choice((
            v[:i] + bytes([v[i] ^ 1 << rng.randrange(8)]) + v[i + 1 :] if v else b"\x00",
            v[:-1], v + b"\x00", rng.choice(ids) if ids else v[::-1], GENESIS_PREV,
            _SMALL_ORDER_KEY, b"", b"\xff" * 32, rng.choice(list(_signers())), v.hex(), [v]))
    if isinstance(v, str):
        return rng.choice(("", v.upper(), v + "\x07", v * 3, v[:-1], v + "é", v + " ",
                           "a" * 64, "a" * 65, v.encode()))
    if isinstance(v, list):
        w, choice = list(v), rng.randrange(6)
        if choice == 0 and w:
            del w[rng.randrange(len(w))]
        elif choice == 1 and w:
            w.insert(rng.randrange(len(w) + 1), rng.choice(w))
        elif choice == 2 and len(w) > 1:
            i, j = rng.sample(range(len(w)), 2)
            w[i], w[j] = w[j], w[i]
        elif choice == 3:
            w.append(random_value(rng))
        else:
            return rng.choice((tuple(w), dict(enumerate(w)), [w]))
        return w
    if isinstance(v, dict):
        return list(v.values()) if rng.random() < 0.5 else {**v, random_value(rng, 3): 0}
    return random_value(rng)


# -- structure-aware operations -------------------------------------------------------------


def _inner(rng: Random, data: bytes, pool: Sequence[bytes]) -> bytes | None:
    """A byte edit of one byte string inside the document (an entry in a fork proof,
    a packed entry in a proof), the rest encoded again as it was."""
    def edit(part: bytes, _proof: bool) -> bytes | None:
        try:
            box = [cbor2.loads(part)]
        except Exception:
            return None
        spots = [(c, k) for c, k, _ in _positions(box) if isinstance(c[k], bytes)
                 and len(c[k]) >= 8]
        if not spots:
            return None
        container, key = rng.choice(spots)
        ((_, op, _),) = rng.choices(BYTE_OPS, [w for _, _, w in BYTE_OPS])
        new = op(rng, container[key], pool)
        if new is None:
            return None
        container[key] = new
        return emit(box[0])
    return on_part(rng, data, edit)


def _cbor(rng: Random, data: bytes, pool: Sequence[bytes], odd: float = 0.0) -> bytes | None:
    """Change one node of the decoded tree, nested documents included."""
    def edit(part: bytes, proof: bool) -> bytes | None:
        doc = _document(part, rng, odd, proof)
        if doc is None:
            return None
        container, key, up = rng.choice(_positions(doc.root))
        node = container[key]
        container[key] = _tweak(rng, node.raw if isinstance(node, (_Env, _Nest)) else node,
                                doc.ids())
        for wrapper in up:
            wrapper.touched = True
        return doc.encode()
    return on_part(rng, data, edit)


def _cbor_odd(rng: Random, data: bytes, pool: Sequence[bytes]) -> bytes | None:
    """Encode in non-canonical forms, after a change or without one."""
    if rng.random() < 0.5:
        return _cbor(rng, data, pool, odd=0.3)

    def edit(part: bytes, _proof: bool) -> bytes | None:
        try:
            value = cbor2.loads(part)
        except Exception:
            return None
        return emit(value, rng, odd=rng.choice((0.1, 0.3, 1.0)))
    return on_part(rng, data, edit)


def _entry(rng: Random, data: bytes, pool: Sequence[bytes]) -> bytes | None:
    """Change one field of one signed entry; sign it and its dependants again."""
    def edit(part: bytes, proof: bool) -> bytes | None:
        doc = _document(part, rng, 0.0, proof)
        envs = [] if doc is None else doc.envs()
        if doc is None or not envs:
            return None
        env, ids = rng.choice(envs), doc.ids()
        f, i = env.fields, rng.choice((0, 1, 2, 3, 4, 4, 4, 5, 6, 6, 6))
        if i == 4 and type(f[4]) is int:  # across a window's edge (spec 7.6)
            f[4] = max(0, f[4] + rng.choice((1, -1)) * rng.choice(_DELTAS))
        elif i == 6 and isinstance(f[6], list) and f[6]:
            j = rng.randrange(len(f[6]))
            f[6][j] = _tweak(rng, f[6][j], ids)
        elif i == 1:
            f[1] = rng.choice([*_signers(), _SMALL_ORDER_KEY])
        else:
            f[i] = _tweak(rng, f[i], ids)
        env.touched = True
        return doc.encode()
    return on_part(rng, data, edit)


def _frames(rng: Random, data: bytes, pool: Sequence[bytes]) -> bytes | None:
    """Drop, repeat, swap or import a whole frame of a wire stream."""
    bodies = split_frames(data)
    if bodies is None:
        return None
    i, choice = rng.randrange(len(bodies)), rng.randrange(4)
    if choice == 0 and len(bodies) > 1:
        del bodies[i]
    elif choice == 1:
        bodies.insert(i, bodies[i])
    elif choice == 2 and len(bodies) > 1:
        j = rng.randrange(len(bodies))
        bodies[i], bodies[j] = bodies[j], bodies[i]
    else:
        foreign = rng.choice(pool)
        bodies.insert(i, rng.choice(split_frames(foreign) or [foreign]))
    return join_frames(bodies)


TREE_OPS: tuple[tuple[str, Op, int], ...] = (
    ("inner", _inner, 8), ("cbor", _cbor, 8), ("cbor-odd", _cbor_odd, 4),
    ("entry", _entry, 16), ("frames", _frames, 3),
)


class Mutator:
    """Mutate a seed: 1-4 stacked operations drawn from ``rng``, named in the result.

    ``pool`` holds the seeds of the same kind, for splices and foreign frames.
    ``wrapped``: the seeds are a harness's own CBOR array of entries, which is
    not under test, so each byte edit goes into one of the items.
    """

    def __init__(self, pool: Sequence[bytes], *, wrapped: bool = False) -> None:
        self.pool = [p for p in pool if p] or [b"\x80"]
        self.ops = [*BYTE_OPS, *TREE_OPS]
        self.weights = [0 if wrapped and i < len(BYTE_OPS) else w
                        for i, (_, _, w) in enumerate(self.ops)]
        self.fallback = len(BYTE_OPS) if wrapped else 0  # _inner, or _flip

    def mutate(self, rng: Random, data: bytes) -> tuple[bytes, tuple[str, ...]]:
        names = []
        for _ in range(rng.choice((1, 1, 1, 2, 2, 3, 4))):
            (i,) = rng.choices(range(len(self.ops)), self.weights)
            out = self._apply(i, rng, data)
            if out is None or out == data:  # did not apply here: the fallback does
                i = self.fallback
                out = self._apply(i, rng, data) or _flip(rng, data, self.pool) or b"\x00"
            names.append(self.ops[i][0])
            data = out
        return data, tuple(names)

    def apply(self, name: str, rng: Random, data: bytes) -> bytes | None:
        """One operation by name; None where it does not apply."""
        return self._apply([n for n, _, _ in self.ops].index(name), rng, data)

    def _apply(self, i: int, rng: Random, data: bytes) -> bytes | None:
        try:
            return self.ops[i][1](rng, data, self.pool)
        except Exception:  # e.g. nesting stacked past Python's recursion limit
            return None

