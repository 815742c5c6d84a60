"""A node answers trust queries from its own store (spec/trust.md 2.5, 9).

Theory of operation
-------------------
The control command ``trust`` (``_commands.py``) asks how a pseudonym's
ratings weigh from some trust roots -- by default the node's own pseudonym.
The node:

1. builds the subject's proof bundle from the chains it holds, fetching the
   missing ones from its peers first, as the ``proof`` command does;
2. takes a :class:`Snapshot` on the event loop: the bundle, every chain's
   entries (a tuple copy; chains only grow, so a copy is a valid chain) and
   the pseudonyms it holds fork proofs for;
3. in a worker thread, verifies the bundle (its classified trades are what
   is scored), selects the evidence nearest the roots from the snapshot's
   chains (spec/trust.md 2.5: a store past the limits of section 7 is cut,
   never refused) and weighs the subject's raters in its view (4.5).

The answer is ``shinyo verify --json``'s ``trust`` object, the proof report
without its list of trades, and the verdict of a weighted gate if one was
asked for.  Why a thread: verifying the bundle checks its signatures again
and the selection rebuilds each chain it reads, ~125 ms for a store of
10,000 entries by 1,000 authors (docs/CONTROL.md) -- too long for the event
loop that serves every peer.  Only step 2's copies (~2 ms there) run on it.
The control interface runs one query at a time (``ControlCommands``), so at
most one evidence set, within the limits, is in memory.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from shinyo import (
    MAX_TRUST_ROOTS,
    Chain,
    Entry,
    LocalProtocolError,
    Policy,
    Pseudonym,
    ShinyoError,
    TrustEvidence,
    TrustLimits,
    VerificationError,
    is_weighted,
    parse_policy,
    trust_score,
    trust_weights,
    verify_proof,
    weighted_meets,
)
from shinyo._constants import MAX_TIMESTAMP
from shinyo._scoring import TIER_ORDER

from ._node import Node, NodeError

__all__ = ["Gate", "Snapshot", "TrustQuery", "answer", "snapshot"]

GATE_KEYS: Final = ("min_score", "policy", "min_trades", "tier")


def _pseudonym(value: object, what: str) -> Pseudonym:
    if not isinstance(value, str):
        raise NodeError(f"{what} must be a pseudonym's text (sy1...)")
    try:
        return Pseudonym.from_text(value)
    except ShinyoError:
        raise NodeError(f"{what} {value!r} is not a pseudonym (they look like sy1...; "
                        "`shinyo id show` prints one)") from None


def _strings(args: Mapping[str, Any], name: str) -> list[str] | None:
    value = args.get(name)
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise NodeError(f"argument {name!r} must be a list of strings")
    return value


def _number(value: object, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) \
            or not math.isfinite(value) or value < 0:
        raise NodeError(f"{what} must be a number >= 0")
    return float(value)


@dataclass(frozen=True, slots=True, kw_only=True)
class Gate:
    """A weighted bar (spec/trust.md 6.3): :func:`shinyo.weighted_meets`'s conditions.

    No condition is the default bar, one fully trusted rating's worth.
    """

    min_score: float | None = None
    policy: str | None = None  # the weighted policy ``min_score`` applies to
    min_trades: float | None = None
    tier: str | None = None

    @classmethod
    def from_json(cls, value: object) -> Gate:
        if not isinstance(value, dict):
            raise NodeError("argument 'gate' must be an object with any of "
                            f"{', '.join(GATE_KEYS)}")
        unknown = sorted(set(value) - set(GATE_KEYS))
        if unknown:
            raise NodeError(f"gate: unknown condition {unknown[0]!r}; the conditions are "
                            f"{', '.join(GATE_KEYS)}")
        for name in ("policy", "tier"):
            if value.get(name) is not None and not isinstance(value[name], str):
                raise NodeError(f"gate: {name} must be a string")
        if value.get("tier") is not None and value["tier"] not in TIER_ORDER:
            raise NodeError(f"gate: unknown tier {value['tier']!r}; one of "
                            f"{', '.join(TIER_ORDER)}")
        gate = cls(
            min_score=None if value.get("min_score") is None
            else _number(value["min_score"], "gate: min_score"),
            policy=value.get("policy"),
            min_trades=None if value.get("min_trades") is None
            else _number(value["min_trades"], "gate: min_trades"),
            tier=value.get("tier"))
        if gate.policy is not None:
            try:
                chosen = parse_policy(gate.policy)
            except LocalProtocolError as exc:
                raise NodeError(f"gate: {exc}") from None
            if not is_weighted(chosen):
                raise NodeError(f"gate: {chosen} is not a weighted policy; use "
                                f"weighted-{chosen.name}")
        return gate

    def to_json_obj(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in GATE_KEYS}


@dataclass(frozen=True, slots=True, kw_only=True)
class TrustQuery:
    """One ``trust`` command, its arguments checked (docs/CONTROL.md)."""

    subject: Pseudonym
    roots: tuple[Pseudonym, ...]
    default_roots: bool  # no roots were named: the node's own pseudonym is the root
    policies: tuple[Policy, ...]  # weighted ones score the trust; others the proof
    as_of: int
    contexts: tuple[str, ...] | None
    gate: Gate | None = None
    limits: TrustLimits = field(default_factory=TrustLimits)

    @classmethod
    def from_args(cls, args: Mapping[str, Any], *, me: Pseudonym, now: int,
                  limits: TrustLimits | None = None) -> TrustQuery:
        """Check the control command's arguments; a :class:`NodeError` says what to fix."""
        known = {"pseudonym", "roots", "policies", "as_of", "contexts", "gate"}
        unknown = sorted(set(args) - known)
        if unknown:
            raise NodeError(f"unknown argument {unknown[0]!r} (trust takes "
                            f"{', '.join(sorted(known))})")
        if "pseudonym" not in args:
            raise NodeError("missing argument 'pseudonym'")
        subject = _pseudonym(args["pseudonym"], "subject")
        texts = _strings(args, "roots")
        roots = [] if texts is None else [_pseudonym(t, "trust root") for t in texts]
        if len(set(roots)) > MAX_TRUST_ROOTS:
            raise NodeError(f"{len(set(roots))} trust roots; at most {MAX_TRUST_ROOTS} "
                            "(spec/trust.md 7)")
        policies = []
        for text in _strings(args, "policies") or []:
            try:
                policies.append(parse_policy(text))
            except LocalProtocolError as exc:
                raise NodeError(f"argument 'policies': {exc}") from None
        as_of = args.get("as_of", now)
        if type(as_of) is not int or not 0 <= as_of <= MAX_TIMESTAMP:
            raise NodeError("argument 'as_of' must be a time in whole seconds since 1970 "
                            "(UTC), like 1800000000")
        contexts = _strings(args, "contexts")
        try:
            # The same checks the evidence will make, made now with a clear message.
            TrustEvidence(contexts=contexts)
        except LocalProtocolError as exc:
            raise NodeError(f"argument 'contexts': {exc}") from None
        gate = None if args.get("gate") is None else Gate.from_json(args["gate"])
        return cls(subject=subject, roots=tuple(sorted(set(roots or [me]), key=lambda p: p.key)),
                   default_roots=not roots, policies=tuple(policies), as_of=as_of,
                   contexts=None if contexts is None else tuple(contexts), gate=gate,
                   limits=limits or TrustLimits())


@dataclass(frozen=True, slots=True, kw_only=True)
class Snapshot:
    """What a query reads of the node, copied on the event loop (see the module docstring)."""

    bundle: bytes
    chains: Mapping[Pseudonym, tuple[Entry, ...]]
    forked: frozenset[Pseudonym]
    fetched: bool  # the node held none of the subject's entries when asked


def snapshot(node: Node, bundle: bytes, *, fetched: bool) -> Snapshot:
    """Copy what the worker reads; call it on the event loop, right after the bundle."""
    me = node.ledger.participant
    chains = {who: chain.entries for who, chain in me.others.items() if len(chain)}
    if len(me.chain):
        chains[me.pseudonym] = me.chain.entries
    return Snapshot(bundle=bundle, chains=chains,
                    forked=frozenset(node.store.fork_authors()), fetched=fetched)


class _Chains(Mapping[Pseudonym, Chain]):
    """The snapshot's chains, each rebuilt (chain rules only) when the selection reads it."""

    def __init__(self, entries: Mapping[Pseudonym, tuple[Entry, ...]]) -> None:
        self._entries = entries
        self._built: dict[Pseudonym, Chain] = {}

    def __getitem__(self, who: Pseudonym) -> Chain:
        chain = self._built.get(who)
        if chain is None:
            chain = self._built[who] = Chain.from_entries(self._entries[who])
        return chain

    def __iter__(self) -> Iterator[Pseudonym]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)


def answer(query: TrustQuery, snap: Snapshot) -> dict[str, Any]:
    """The answer to ``query`` from ``snap``; runs in a worker thread (no node access)."""
    head: dict[str, Any] = {"pseudonym": query.subject.to_text(), "as_of": query.as_of,
                            "fetched": snap.fetched}
    plain = [p for p in query.policies if not is_weighted(p)]
    weighted = [p for p in query.policies if is_weighted(p)]
    try:
        report = verify_proof(snap.bundle, now=query.as_of, policies=plain)
    except VerificationError as exc:
        # A verdict, not an error: a forked subject is the answer (spec/proof.md 4).
        return {**head, "valid": False, "failure_class": exc.failure_class,
                "message": str(exc)}
    evidence = TrustEvidence.select(_Chains(snap.chains), query.roots, subject=query.subject,
                                    forked=snap.forked, contexts=query.contexts,
                                    limits=query.limits)
    weights = trust_weights(evidence.graph(), query.roots, subject=query.subject,
                            limits=query.limits)
    trust = trust_score(query.subject, report.trades, as_of=query.as_of, weights=weights,
                        policies=weighted)
    proof = report.to_json_obj()
    del proof["trades"]  # one row per trade: `shinyo proof export` + `verify --trades`
    out = {**head, "valid": True, "roots": [p.to_text() for p in query.roots],
           "default_roots": query.default_roots, "proof": proof, "trust": trust.to_json_obj(),
           "gate": None}
    if query.gate is not None:
        g = query.gate
        try:
            verdict = weighted_meets(trust, min_score=g.min_score, policy=g.policy,
                                     min_trades=g.min_trades, tier=g.tier)
        except LocalProtocolError as exc:
            raise NodeError(f"gate: {exc}") from None
        out["gate"] = {"bar": g.to_json_obj(), "ok": verdict.ok,
                       "reasons": list(verdict.reasons)}
    return out
