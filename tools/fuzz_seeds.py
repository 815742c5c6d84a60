"""The corpus of the hostile-input campaign (issue 7): seeds, by the kind of input.

:func:`vector_seeds` takes every encoded object in spec/vectors/*.json and
what is nested in it (the entries in a proof or a fork proof, the bodies of a
wire stream, a document inside a byte string), each under its kind ("entry",
"fork", "proof", "stream", "body", "chain", "trade", "answer", "pseudonym",
"policy") and with the vectors it came from.  :func:`fresh_seeds` adds objects
built here, signed by keys the mutator can sign for again
(:data:`shinyo.tools.fuzz_mutate.KNOWN_SEEDS`); :func:`story_chains` gives
valid chains for a store's view.
"""

from __future__ import annotations

import functools
import json
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cbor2

import shinyo
from shinyo import SigningIdentity, wire
from shinyo._constants import PROOF_MAGIC

from .craft import story
from .fuzz_cbor import join_frames, split_frames

__all__ = ["VECTORS", "Seed", "fresh_seeds", "seeds", "story_chains", "vector_seeds"]

VECTORS = Path(__file__).resolve().parent.parent / "spec" / "vectors"


@dataclass(frozen=True, slots=True, kw_only=True)
class Seed:
    data: bytes
    origins: tuple[str, ...]
    """Where it came from: ``entries.json#3`` (a vector), ``fresh:proof`` (built here)."""


_Found = dict[str, dict[bytes, list[str]]]  # kind -> data -> origins


def _add(found: _Found, kind: str, data: bytes, origin: str) -> None:
    origins = found.setdefault(kind, {}).setdefault(data, [])
    if origin not in origins:
        origins.append(origin)


def _nested(found: _Found, data: bytes, origin: str, depth: int = 0) -> None:
    """``data`` and every entry, fork proof and proof inside it, each under its kind."""
    if data.startswith(PROOF_MAGIC):
        _add(found, "proof", data, origin)
        with suppress(shinyo.ShinyoError):
            parts = shinyo.read_proof_file(data)
            for raw in [r for _, rs in parts.unpacked() for r in rs] + parts.forks:
                if isinstance(raw, bytes):
                    _nested(found, raw, origin, depth + 1)
        return
    try:
        value = cbor2.loads(data)
    except Exception:
        return
    if type(value) is list and len(value) == 2 and all(type(v) is bytes for v in value):
        _add(found, "entry", data, origin)
    elif type(value) is list and len(value) == 3 and value[0] == 1:
        _add(found, "fork", data, origin)
    for inner in _byte_strings(value) if depth < 4 else ():
        if len(inner) > 8:
            _nested(found, inner, origin, depth + 1)


def _byte_strings(value: Any, limit: int = 4000) -> list[bytes]:
    """The byte strings inside ``value`` (not ``value`` itself) among its first
    ``limit`` nodes, in the order the mutator's walk visits them: depth first,
    last child first."""
    out: list[bytes] = []
    stack, seen = [value], 0
    while stack and seen < limit:
        node = stack.pop()
        if seen and type(node) is bytes:
            out.append(node)
        seen += 1
        if isinstance(node, list):
            stack.extend(node)
        elif isinstance(node, dict):
            stack.extend(node[k] for k in node)
    return out


def _stream(found: _Found, stream: bytes, origin: str) -> None:
    _add(found, "stream", stream, origin)
    for body in split_frames(stream) or ():
        _add(found, "body", body, origin)
        _nested(found, body, origin)


def _seeds(found: _Found) -> dict[str, list[Seed]]:
    return {k: [Seed(data=d, origins=tuple(o)) for d, o in v.items()] for k, v in found.items()}


def vector_seeds(directory: Path = VECTORS) -> dict[str, list[Seed]]:
    """Every encoded object of the vector files in ``directory``, by kind: the inputs
    and what is nested in them, each with the vectors it came from."""
    found: _Found = {}
    for path in sorted(directory.glob("*.json")):
        doc = json.loads(path.read_text(encoding="utf-8"))
        for v in doc["vectors"]:
            origin, data, suite = f"{path.name}#{v['id']}", v.get("input"), doc["suite"]
            if suite == "pseudonym":
                _add(found, "pseudonym", data.encode(), origin)
            elif suite == "scoring":
                for policy in v.get("policies", ()):
                    _add(found, "policy", policy.encode(), origin)
                for outcome in data:
                    _add(found, "pseudonym", outcome["counterparty"].encode(), origin)
            elif suite == "trust":  # facts, not encodings: their texts are the inputs
                for policy in data.get("policies", ()):
                    _add(found, "policy", policy.encode(), origin)
                for text in (data["subject"], *data.get("roots", ())):
                    _add(found, "pseudonym", text.encode(), origin)
            elif suite == "wire":
                _stream(found, bytes.fromhex(data), origin)
                if "want" in v:
                    _add(found, "answer", bytes.fromhex(v["want"] + data), origin)
            elif isinstance(data, list):  # chains and trades: lists of entries
                raws = [bytes.fromhex(h) for h in data]
                _add(found, "trade" if suite == "trade" else "chain", cbor2.dumps(raws), origin)
                for raw in raws:
                    _nested(found, raw, origin)
            else:
                kind = {"proof": "proof", "fork-proof": "fork", "entry": "entry"}.get(suite)
                if kind is not None:  # even when it is not what its name says
                    _add(found, kind, bytes.fromhex(data), origin)
                _nested(found, bytes.fromhex(data), origin)
    return _seeds(found)


@functools.cache
def _fresh() -> tuple[dict[str, list[Seed]], tuple[shinyo.Chain, ...]]:
    """Objects built here: two rated trades (each party revealing first once), with a
    response and a retraction; a cancelled trade, an open offer, vouches; a fork;
    proofs of three parties; every wire message type."""
    found: _Found = {}
    a, b, c, d = (shinyo.Participant(SigningIdentity.from_seed(bytes([n]) * 32))
                  for n in (21, 22, 23, 24))
    everyone, trades = (a, b, c, d), dict[bytes, list[shinyo.Entry]]()

    def send(e: shinyo.Entry) -> bytes:
        for p in everyone:
            if p.pseudonym != e.author:
                p.receive(e)
        trades.setdefault(e.trade or b"", []).append(e)
        return e.id

    t = 1_800_001_000
    one = send(a.propose(b.pseudonym, context="fuzz.example", terms=bytes(32), timestamp=t))
    send(b.accept(one, timestamp=t + 60))
    send(a.commit(one, stars=4, nonce=bytes(16), timestamp=t + 120, tags=["quick"],
                  comment=bytes(32)))
    send(b.commit(one, stars=2, nonce=b"\x01" * 16, timestamp=t + 180))
    for i, step in enumerate((a.reveal, b.reveal)):
        send(step(one, timestamp=t + 240 + 60 * i))
    send(b.respond(one, text=bytes(32), timestamp=t + 360))
    send(a.retract(one, timestamp=t + 420))
    two = send(c.propose(a.pseudonym, context="shop.example", terms=bytes(32), timestamp=t + 500))
    send(a.accept(two, timestamp=t + 560))
    for i, who in enumerate((c, a)):
        send(who.commit(two, stars=5 - 2 * i, nonce=bytes([i]) * 16, timestamp=t + 620 + 60 * i))
    for i, who in enumerate((c, a)):
        send(who.reveal(two, timestamp=t + 740 + 60 * i))
    send(a.cancel(send(a.propose(c.pseudonym, context="x", terms=bytes(32), timestamp=t + 900)),
                  timestamp=t + 960))
    send(d.vouch(a.pseudonym, context="fuzz.example", timestamp=t + 1000))
    send(d.vouch(a.pseudonym, context="fuzz.example", timestamp=t + 1060, active=False))
    send(d.propose(b.pseudonym, context="fuzz.example", terms=bytes(32), timestamp=t + 1100))
    other = shinyo.Entry.create(d.identity, seq=2, prev=d.chain[1].id, timestamp=t + 1070,
                                body=shinyo.Vouch(subject=c.pseudonym, context="x"))
    fork = shinyo.ForkProof.from_entries(d.chain[2], other)
    chains = {p.pseudonym: p.chain for p in everyone}
    for p in everyone:
        raws = [e.encode() for e in p.chain.entries]
        _add(found, "chain", cbor2.dumps(raws), "fresh:chain")
        _add(found, "pseudonym", p.pseudonym.to_text().encode(), "fresh:pseudonym")
        for raw in [*raws, other.encode()]:
            _add(found, "entry", raw, "fresh:entry")
    for trade, entries in trades.items():
        if trade:
            _add(found, "trade", cbor2.dumps([e.encode() for e in entries]), "fresh:trade")
    _add(found, "fork", fork.encode(), "fresh:fork")
    for p in (a, b, c):
        _add(found, "proof", shinyo.build_proof(p.chain, chains, forks=[fork]), "fresh:proof")
    heads = tuple(sorted((wire.Head(author=k, seq=len(ch), id=ch.entries[-1].id)
                          for k, ch in chains.items()), key=lambda h: h.author.key))
    want, short = (wire.Want(author=p.pseudonym, first=f, last=n) for p, f, n in ((a, 1, 13),
                                                                                   (b, 2, 9)))
    answers = [wire.Entries.answering(w, [e.encode() for e in chains[w.author].entries[
        w.first - 1 : w.first + 1 + 10 * (w is want)]]) for w in (want, short)]
    msgs: list[wire.Message] = [
        wire.Hello(features=("gossip",), port=4433, software="fuzz/1"), wire.Heads(heads=heads),
        wire.Heads(scope=a.pseudonym, after=heads[0].author.key, heads=heads[1:3]), want,
        *answers, wire.Push(entries=tuple(e.encode() for e in b.chain.entries[:3])),
        wire.Fork(proof=fork.encode()), wire.ProofRequest(subject=c.pseudonym),
        wire.Peers(peers=(wire.PeerAddress(host="127.0.0.1", port=4433, node=bytes(32)),)),
        wire.Unknown(code=99, fields=(1, [b"x"], "y")), wire.Bye(code="normal", reason="done")]
    _stream(found, join_frames([m.encode() for m in msgs]), "fresh:stream")
    for m in msgs:
        _stream(found, wire.encode_frame(m), "fresh:stream")
    for w, answer in zip((want, short), answers, strict=True):
        _add(found, "answer", wire.encode_frame(w) + wire.encode_frame(answer), "fresh:answer")
    _add(found, "pseudonym", a.pseudonym.to_text().upper().encode(), "fresh:pseudonym")
    for text in ("window:days=30", "bayes:prior=3.5,weight=10", "last:n=5", "trimmed", "mean"):
        _add(found, "policy", text.encode(), "fresh:policy")
    return _seeds(found), (*chains.values(), *(p.chain for p in story()[:3]))


def fresh_seeds() -> dict[str, list[Seed]]:
    return _fresh()[0]


def story_chains() -> tuple[shinyo.Chain, ...]:
    """Valid chains (the fresh ones and the vectors' story) for a store's view."""
    return _fresh()[1]


def seeds(directory: Path = VECTORS) -> dict[str, list[Seed]]:
    """Vector seeds, then fresh ones, by kind, without repeats."""
    out = vector_seeds(directory)
    for kind, extra in fresh_seeds().items():
        have = {s.data for s in out.setdefault(kind, [])}
        out[kind].extend(s for s in extra if s.data not in have)
    return out
