"""The trust graph and the walk over it (spec/trust.md 3-5).

1. *Graph* (:class:`TrustGraph`, 3).  Built by :meth:`TrustEvidence.graph`:
   pseudonyms sorted by key and weighted edges in compressed rows.  An edge
   u -> v is made of u's own signed statements about v, so a Sybil adds
   edges only out of pseudonyms it controls.
2. *Walk* (:func:`trust_weights`, 4).  ``TRUST_STEPS`` steps of a random
   walk with restart from the roots: each step passes ``CONTINUE`` (four
   fifths) of a node's mass on, split by edge weight, each edge at most
   ``w / OUT_FLOOR`` of it, so mass entering a Sybil region shrinks every
   step and cannot multiply (4.4).  Given ``subject=`` it is the subject's
   view (4.5): the subject keeps its mass and passes none on.
3. *Weights* (:class:`TrustWeights`, 5).  A rater's visit mass against the
   level theta (:func:`_theta`) the mass distribution sets, capped at one
   full rater (``WEIGHT_ONE``).

Integers and floor division in a fixed order throughout, so a second
implementation reproduces every mass and weight bit for bit.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from itertools import pairwise
from typing import Literal

from ._errors import LocalProtocolError
from ._identity import Pseudonym
from ._trust_params import (
    CONTINUE,
    OUT_FLOOR,
    THETA_SHARE,
    TRUST_ONE,
    TRUST_STEPS,
    WEIGHT_ONE,
    TrustLimits,
    _key,
)
from ._trust_select import TrustSelection

__all__ = ["TrustGraph", "TrustWeights", "trust_weights"]

View = Literal["subject", "shared"]
"""Whose walk weights are: one subject's view (spec/trust.md 4.5) or the shared walk."""


@dataclass(frozen=True, slots=True, kw_only=True)
class TrustGraph:
    """Pseudonyms (sorted by key) and weighted edges, in compressed rows.

    The out-edges of ``nodes[i]`` are ``targets[offsets[i]:offsets[i + 1]]``
    (ascending) with ``weights`` alongside.  Forked pseudonyms are not nodes.
    """

    nodes: tuple[bytes, ...]
    offsets: tuple[int, ...]
    targets: tuple[int, ...]
    weights: tuple[int, ...]
    forked: frozenset[bytes] = frozenset()
    # How the evidence was selected from a store (spec/trust.md 2.5); None: it was not.
    selection: TrustSelection | None = field(default=None, compare=False)
    index: Mapping[bytes, int] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        n = len(self.nodes)
        if len(self.offsets) != n + 1 or self.offsets[0] != 0 \
                or self.offsets[-1] != len(self.targets) or len(self.targets) != len(self.weights):
            raise LocalProtocolError("a trust graph's rows do not match its nodes")
        if any(a > b for a, b in pairwise(self.offsets)):
            raise LocalProtocolError("a trust graph's row offsets never decrease")
        if any(t >= n or t < 0 for t in self.targets) or any(w <= 0 for w in self.weights):
            raise LocalProtocolError("a trust graph's edges need known targets and weights > 0")
        # Rows ascending and distinct, as documented: the walk adds each edge's
        # share while out_edges() merges by target, so a repeat would split them.
        for u in range(n):
            row = self.targets[self.offsets[u]:self.offsets[u + 1]]
            if any(a >= b for a, b in pairwise(row)):
                raise LocalProtocolError("a trust graph's rows list distinct targets, ascending")
        object.__setattr__(self, "index", {k: i for i, k in enumerate(self.nodes)})
        if len(self.index) != n or any(k in self.forked for k in self.nodes):
            raise LocalProtocolError("a trust graph's nodes are distinct and never forked")

    @property
    def edges(self) -> int:
        return len(self.targets)

    def __contains__(self, who: object) -> bool:
        return isinstance(who, Pseudonym) and who.key in self.index

    def out_edges(self, who: Pseudonym) -> dict[Pseudonym, int]:
        """The edges leaving ``who``, by target: what its own signed statements give."""
        i = self.index.get(who.key)
        if i is None:
            return {}
        lo, hi = self.offsets[i], self.offsets[i + 1]
        return {Pseudonym(key=self.nodes[self.targets[k]]): self.weights[k] for k in range(lo, hi)}


@dataclass(frozen=True, slots=True, kw_only=True)
class TrustWeights:
    """Every pseudonym's mass and rater weight as seen from ``roots`` (spec/trust.md 4-5).

    ``subject`` says whose view the walk was: that pseudonym's out-edges were
    left out (spec/trust.md 4.5), so these weights score that subject and no
    other.  ``None`` is the shared walk over the whole graph.
    """

    roots: tuple[Pseudonym, ...]  # the roots used, by key
    dropped_roots: tuple[Pseudonym, ...]  # named roots that are forked: not used
    forked: frozenset[bytes]
    mass: Mapping[bytes, int]  # nonzero visit mass, in units of TRUST_ONE
    weights: Mapping[bytes, int]  # nonzero weights, in millionths (WEIGHT_ONE)
    theta: int | None  # None: no non-root node was reached
    nodes: int
    edges: int
    operations: int  # edge relaxations done: at most TRUST_STEPS x edges
    subject: Pseudonym | None = None  # whose view (4.5); None: the shared walk
    left_out: int = 0  # the subject's out-edges the walk did not take
    selection: TrustSelection | None = None  # the graph's (2.5); None: evidence not selected

    def __post_init__(self) -> None:
        if any(not isinstance(r, Pseudonym) for r in (*self.roots, *self.dropped_roots)) \
                or (self.subject is not None and not isinstance(self.subject, Pseudonym)):
            raise LocalProtocolError("trust weights name pseudonyms")
        counts = (self.nodes, self.edges, self.operations, self.left_out)
        if any(type(c) is not int or c < 0 for c in counts):
            raise LocalProtocolError("trust weights count nodes, edges, operations and "
                                     "left-out edges as ints >= 0")
        if self.left_out and self.subject is None:
            raise LocalProtocolError("only a subject's view leaves edges out")
        if self.theta is not None and (type(self.theta) is not int or self.theta <= 0):
            raise LocalProtocolError("theta is None or an int > 0")
        if any(type(m) is not int or m <= 0 for m in self.mass.values()) \
                or any(type(w) is not int or not 0 < w <= WEIGHT_ONE
                       for w in self.weights.values()):
            raise LocalProtocolError("trust weights hold nonzero masses and weights in "
                                     f"(0, {WEIGHT_ONE}]")

    @property
    def view(self) -> View:
        """``"subject"`` for one subject's view (normative), ``"shared"`` for the shared walk."""
        return "shared" if self.subject is None else "subject"

    def weight(self, who: Pseudonym) -> int:
        """``who``'s weight in millionths: 0 if unreached or forked."""
        return self.weights.get(who.key, 0)

    def share(self, who: Pseudonym) -> Fraction:
        """``who``'s weight as an exact fraction of one fully trusted rater."""
        return Fraction(self.weight(who), WEIGHT_ONE)


def trust_weights(graph: TrustGraph, roots: Iterable[Pseudonym], *,
                  limits: TrustLimits | None = None,
                  subject: Pseudonym | None = None) -> TrustWeights:
    """Run the walk of spec/trust.md 4 from ``roots`` and weigh every rater (5).

    ``subject``: the pseudonym whose raters these weights are for.  The walk
    then leaves its out-edges out (spec/trust.md 4.5, the subject's view):
    it may receive mass but passes none on, so it cannot lend its own trust
    to the Sybils that rate it.  This is the normative walk for scoring one
    subject -- pass these weights to :func:`shinyo.trust_score` for that
    same subject.  Without ``subject`` the walk is the shared one over the
    whole graph, an approximation for ranking many subjects at one walk's
    cost.  A subject that is not a node (unknown, forked) or has no
    out-edges gets the shared walk's figures, marked as its view.

    Raises :class:`LocalProtocolError` with no roots (score unweighted instead,
    spec/trust.md 6) or more than ``max_roots``.  Forked roots are dropped;
    if every root is forked, every weight is 0.
    """
    limits = limits or TrustLimits()
    x = -1 if subject is None else graph.index.get(_key(subject, "subject"), -1)
    named = sorted({_key(r, "a trust root") for r in roots})
    if not named:
        raise LocalProtocolError("no trust roots: without roots the scores are unweighted "
                                 "(spec/trust.md 6)")
    if len(named) > limits.max_roots:
        raise LocalProtocolError(f"{len(named)} trust roots; at most {limits.max_roots}")
    used = [k for k in named if k not in graph.forked]
    n, off, targets, weights = len(graph.nodes), graph.offsets, graph.targets, graph.weights
    mass = [0] * n
    for k in used:
        if k in graph.index:
            mass[graph.index[k]] = TRUST_ONE // len(used)
    visits = list(mass)
    floor_den = [CONTINUE[1] * max(sum(weights[off[u]:off[u + 1]]), OUT_FLOOR)
                 for u in range(n)]
    operations = 0
    frontier = [u for u in range(n) if mass[u]]
    for _ in range(TRUST_STEPS):
        nxt = [0] * n
        for u in frontier:
            if u == x:
                continue  # the subject's view: its mass stays with it (4.5)
            # floor(m * c * w / (d * D)) per edge (4.2): integer, order-free.
            q, den = mass[u] * CONTINUE[0], floor_den[u]
            lo, hi = off[u], off[u + 1]
            for j in range(lo, hi):
                nxt[targets[j]] += q * weights[j] // den
            operations += hi - lo
        mass = nxt
        frontier = [v for v in range(n) if nxt[v]]
        for v in frontier:
            visits[v] += nxt[v]
    root_index = {graph.index[k] for k in used if k in graph.index}
    theta = _theta(sorted((visits[i] for i in range(n) if i not in root_index and visits[i]),
                          reverse=True))
    out: dict[bytes, int] = {k: WEIGHT_ONE for k in used}
    if theta is not None:
        for i in range(n):
            if i not in root_index and visits[i]:
                w = WEIGHT_ONE if visits[i] >= theta else visits[i] * WEIGHT_ONE // theta
                if w:
                    out[graph.nodes[i]] = w
    return TrustWeights(
        roots=tuple(Pseudonym(key=k) for k in used),
        dropped_roots=tuple(Pseudonym(key=k) for k in named if k in graph.forked),
        forked=graph.forked,
        mass={graph.nodes[i]: v for i, v in enumerate(visits) if v},
        weights=out, theta=theta, nodes=n, edges=graph.edges, operations=operations,
        subject=subject, left_out=0 if x < 0 else off[x + 1] - off[x],
        selection=graph.selection,
    )


def _theta(masses: Sequence[int]) -> int | None:
    """The least t >= 1 with sum(min(p, t)) >= ceil(total * THETA_SHARE) (spec/trust.md 5).

    ``masses`` are positive and descending.  On [p[k], p[k-1]] the sum is
    ``k * t + (sum of p[k:])``, so one pass from the smallest upward finds t.
    """
    total = sum(masses)
    if not total:
        return None
    need = -(-total * THETA_SHARE[0] // THETA_SHARE[1])
    below = 0  # sum of masses[k:]
    for k in range(len(masses), 0, -1):
        lo = masses[k] if k < len(masses) else 0
        hi = masses[k - 1]
        if k * hi + below >= need:
            return max(lo, 1, -(-(need - below) // k))
        below += hi
    raise AssertionError("unreachable: the sum at the largest mass is the total")
