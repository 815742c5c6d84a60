"""Selecting evidence from a store of chains (spec/trust.md 2.5).

A node answering from what it holds may hold more chains than the limits of
spec/trust.md 7 admit.  Instead of stopping with ``oversize`` it may take
the chains nearest the roots -- the same ones whatever order it holds them
in, so two implementations compute the same weights:

1. *Names* (step 1).  A chain names the counterparties of the trades its
   author rated and the subjects it vouches for, in the contexts kept:
   every edge out of its author goes to one of them.
2. *Hops* (step 2).  The roots have hop 0; the names of a chain taken at
   hop h that have no hop yet get hop h + 1, up to ``TRUST_STEPS`` -- a
   chain farther out cannot change a mass.  The hops start at the roots
   only, so a subject cannot fill the limits with its Sybils' chains.
3. *Order and cut* (steps 3-5).  Chains are taken by hop, then by key, and
   the selection stops before the first whose evidence, with the chains
   taken so far, would pass ``MAX_TRUST_NODES`` or ``MAX_TRUST_EDGES``.
   :class:`TrustSelection` records what was taken and where it was cut,
   for the report (spec/trust.md 8).

The entry point is :meth:`TrustEvidence.select`, which runs
:func:`select_chains` on fresh evidence.  The split of the work: this
module decides which chains, in what order, and where to stop; the
evidence (:mod:`shinyo._trust`) reads each chain (``_chain_facts``: its
completed trades, vouches and names), counts against the limits
(``_would_pass``) and takes (``_take_trade``, ``_add_vouch_entry``,
``add_forked``), so the two-party check of 2.1 and the counts of 7 stay in
one place.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from ._chain import Chain
from ._errors import LocalProtocolError
from ._identity import Pseudonym
from ._trust_params import TRUST_STEPS, _key

if TYPE_CHECKING:
    from ._trust import TrustEvidence

__all__ = ["TrustSelection", "select_chains"]

Limit = Literal["MAX_TRUST_NODES", "MAX_TRUST_EDGES"]
"""The limit that cut a selection of evidence (spec/trust.md 2.5)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class TrustSelection:
    """Which of a store's chains a :meth:`TrustEvidence.select` took (spec/trust.md 2.5).

    ``stopped_by`` is None when no limit cut the selection: every chain within
    ``TRUST_STEPS`` hops of the roots was taken, and the masses and weights
    are those of all the chains held.  Otherwise ``stopped_at`` is the first
    chain left out, at hop ``stopped_hop``, and it and every chain after it in
    the order of 2.5 (by hop, then key) were left out.
    """

    taken: tuple[tuple[Pseudonym, int], ...]  # the chains taken and their hops, in order
    held: int  # chains offered to the selection
    stopped_by: Limit | None = None
    stopped_at: Pseudonym | None = None
    stopped_hop: int | None = None

    def __post_init__(self) -> None:
        if type(self.held) is not int or self.held < 0:
            raise LocalProtocolError("a selection's held chains are an int >= 0")
        if any(not isinstance(who, Pseudonym) or type(hop) is not int or hop < 0
               for who, hop in self.taken):
            raise LocalProtocolError("a selection takes (Pseudonym, hop >= 0) pairs")
        if len({who for who, _ in self.taken}) != len(self.taken):
            raise LocalProtocolError("a selection takes each chain once")
        if (self.stopped_at is not None and not isinstance(self.stopped_at, Pseudonym)) \
                or (self.stopped_hop is not None and (type(self.stopped_hop) is not int
                                                     or self.stopped_hop < 0)):
            raise LocalProtocolError("a cut is at a Pseudonym, at a hop >= 0")
        if len(self.taken) > self.held:
            raise LocalProtocolError("a selection takes at most the chains it was offered")
        if any(a[1] > b[1] or (a[1] == b[1] and a[0].key >= b[0].key)
               for a, b in zip(self.taken, self.taken[1:], strict=False)):
            raise LocalProtocolError("a selection takes chains by hop, then by key")
        if (self.stopped_by is None) != (self.stopped_at is None) \
                or (self.stopped_by is None) != (self.stopped_hop is None):
            raise LocalProtocolError("a cut names its limit, its first chain and its hop")
        if self.stopped_by not in (None, "MAX_TRUST_NODES", "MAX_TRUST_EDGES"):
            raise LocalProtocolError("a selection is cut by MAX_TRUST_NODES or MAX_TRUST_EDGES")

    @property
    def chains(self) -> int:
        """Chains taken."""
        return len(self.taken)

    @property
    def hops(self) -> int | None:
        """The hop of the farthest chain taken; None if none was."""
        return self.taken[-1][1] if self.taken else None

    @property
    def cut(self) -> bool:
        """True if a limit left out chains the walk could have reached."""
        return self.stopped_by is not None

    def to_json_obj(self) -> dict[str, Any]:
        """The ``selection`` object of the report (spec/trust.md 8)."""
        return {"chains": self.chains, "held": self.held, "hops": self.hops,
                "stopped_by": self.stopped_by,
                "stopped_at": None if self.stopped_at is None else self.stopped_at.to_text(),
                "stopped_hop": self.stopped_hop}


def select_chains(ev: TrustEvidence, chains: Mapping[Pseudonym, Chain],
                  roots: Iterable[Pseudonym], *, subject: Pseudonym | None,
                  forked: Iterable[Pseudonym]) -> TrustSelection:
    """Take the chains of spec/trust.md 2.5 into ``ev``, fresh evidence; what was taken.

    The algorithm of :meth:`TrustEvidence.select`, which documents the
    arguments and what it raises.
    """
    named = sorted({_key(r, "a trust root") for r in roots})
    if not named:
        raise LocalProtocolError("no trust roots: evidence is selected outward from the "
                                 "roots (spec/trust.md 2.5); without roots the scores are "
                                 "unweighted")
    if len(named) > ev._limits.max_roots:
        raise LocalProtocolError(f"{len(named)} trust roots; at most {ev._limits.max_roots}")
    bad = {_key(p, "a forked pseudonym") for p in forked}
    first = set(named) if subject is None else {*named, _key(subject, "subject")}
    for k in sorted(first & bad):  # step 4: from the start (4.1, 2.3)
        ev.add_forked(Pseudonym(key=k))
    taken: dict[bytes, Chain] = {}
    order: list[tuple[Pseudonym, int]] = []
    hop_of = dict.fromkeys(named, 0)
    layer = named
    cut: tuple[Limit, bytes, int] | None = None
    for hop in range(TRUST_STEPS + 1):
        names: list[bytes] = []
        for k in sorted(layer):  # step 3: by hop, then by key
            chain = None if k in bad else chains.get(Pseudonym(key=k))
            if chain is None:
                continue  # not held, or forked: not taken, its names not followed
            if not isinstance(chain, Chain) or chain.author.key != k:
                raise LocalProtocolError("select takes shinyo.Chain objects by author")
            if not len(chain):
                continue
            trades, vouches, follow = ev._chain_facts(chain, taken)
            over = ev._would_pass(trades, vouches)
            if over is not None:
                cut = (over, k, hop)
                break
            for fact in trades:
                ev._take_trade(fact)
            for e in vouches:
                ev._add_vouch_entry(e, bad)
            taken[k] = chain
            order.append((chain.author, hop))
            names.extend(follow)
        if cut is not None or hop == TRUST_STEPS:
            break
        layer = []
        for k in names:  # step 2: the names of hop h not seen yet are hop h + 1
            if k not in hop_of:
                hop_of[k] = hop + 1
                layer.append(k)
        if not layer:
            break
    return TrustSelection(
        taken=tuple(order), held=len(chains),
        stopped_by=None if cut is None else cut[0],
        stopped_at=None if cut is None else Pseudonym(key=cut[1]),
        stopped_hop=None if cut is None else cut[2])
