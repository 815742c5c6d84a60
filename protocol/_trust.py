"""Trust from the verifier's point of view: the trust graph and rater weights (spec/trust.md).

A rating counts for what its rater is worth to *this* verifier.  The verifier
names its trust roots (its own pseudonym, a community's founders); a rater's
weight comes from how the roots' trust reaches it through the trade graph.

Theory of operation
-------------------
1. *Evidence* (:class:`TrustEvidence`, spec/trust.md 2).  Completed trades --
   both parties revealed a rating, so both signed the trade and a rating --
   retractions, vouches (the latest state per voucher, subject and context)
   and forked pseudonyms.  Read from verified proof bundles
   (:meth:`~TrustEvidence.add_proof`), from a node's chains
   (:meth:`~TrustEvidence.add_chains`), or given as facts by a simulator
   (:meth:`~TrustEvidence.add_trade`).  Evidence is a set: the order it
   arrives in never changes the result.  A store past the limits is cut to
   the chains nearest the roots (:meth:`~TrustEvidence.select`, 2.5), the
   same chains whatever order they are held in.
2. *Graph* (:class:`TrustGraph`, spec/trust.md 3).  An edge u -> v is made of
   u's own signed statements about v: its standing ratings of v (one per
   completed trade, whatever the stars, capped per pair) and its vouch.  So a
   Sybil can add edges only *out of* pseudonyms it controls; every edge into
   its region is signed by someone else (an *attack edge*).
3. *Walk* (:func:`trust_weights`, spec/trust.md 4).  ``TRUST_STEPS`` steps of
   a random walk with restart from the roots, in integers: each step passes
   four fifths of a node's mass on, split by edge weight, each edge at most
   ``w / OUT_FLOOR`` of it.  Mass that enters a region through its attack
   edges shrinks every step and cannot multiply, so the region's total is at
   most four times what its attack edges carry, however many pseudonyms it
   holds.
4. *The subject's view* (spec/trust.md 4.5).  The raters of subject X are
   weighed by a walk that leaves X's own out-edges out: X may receive mass
   but passes none on, so it cannot lend its trust to Sybils that rate it.
   Its Sybils then get mass only through attack edges signed by others, and
   the bound of step 3 holds for them.  One walk per subject scored.
5. *Weights* (spec/trust.md 5).  A rater's weight is its mass against a level
   ``theta`` set by the mass distribution itself (so Sybils, holding little
   mass, cannot move it much), capped at one full rater.

To score one subject (``shinyo verify``, a node answering for a pseudonym)::

    graph = evidence.graph()
    weights = trust_weights(graph, roots, subject=subject) if roots else None
    report = trust_score(subject, outcomes, as_of=now, weights=weights)
    verdict = weighted_meets(report, min_score=4.0)

Without ``subject=`` the walk is the *shared* one over the whole graph: one
walk for every subject, an informative approximation for rankings that
:func:`~shinyo.trust_score` accepts only with ``shared_walk=True``.

Everything is integer arithmetic with floor division in a fixed order, so a
second implementation reproduces every mass and weight bit for bit.  Weighted
scores and gates are in :mod:`shinyo._trust_policy`.

One concept per module: the evidence is here (spec/trust.md 2); its
selection from a store in :mod:`shinyo._trust_select` (2.5); the graph and
the walk in :mod:`shinyo._trust_walk` (3-5); the constants and limits in
:mod:`shinyo._trust_params` (3-5, 7).  This module re-exports their names,
so every import from it still works.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from ._body import Propose, Reveal, Vouch, check_context
from ._chain import Chain, Role, TradeView
from ._constants import HASH_SIZE, MAX_SEQ, MAX_STARS, MIN_STARS
from ._entry import Entry, MapFn
from ._errors import InvalidBody, LocalProtocolError, VerificationError
from ._identity import Pseudonym
from ._proof import ProofReport, verify_proof_entries
from ._scoring import Policy
from ._trade import TradeSession, TradeState, feed_in_order
from ._trust_params import CONTINUE as CONTINUE  # noqa: PLC0414
from ._trust_params import (
    MAX_EVIDENCE_BUNDLES,
    MAX_TRUST_EDGES,
    MAX_TRUST_NODES,
    MAX_TRUST_ROOTS,
    PAIR_CAP,
    TRUST_STEPS,
    VOUCH_WEIGHT,
    WEIGHT_ONE,
    TrustLimits,
    TrustOversize,
    _key,
)
from ._trust_params import OUT_FLOOR as OUT_FLOOR  # noqa: PLC0414
from ._trust_params import THETA_SHARE as THETA_SHARE  # noqa: PLC0414
from ._trust_params import TRUST_ONE as TRUST_ONE  # noqa: PLC0414
from ._trust_select import Limit, TrustSelection, select_chains
from ._trust_walk import TrustGraph, TrustWeights, trust_weights
from ._trust_walk import View as View  # noqa: PLC0414
from ._trust_walk import _theta as _theta  # noqa: PLC0414

# The aliased imports above re-export names others read from this module (the tests,
# _trust_policy): a redundant alias marks a re-export for mypy --strict and ruff F401,
# which pylint's useless-alias check (PLC0414) does not know.

__all__ = [
    "MAX_EVIDENCE_BUNDLES", "MAX_TRUST_EDGES", "MAX_TRUST_NODES", "MAX_TRUST_ROOTS",
    "TRUST_STEPS", "WEIGHT_ONE", "TrustEvidence", "TrustGraph", "TrustLimits", "TrustOversize",
    "TrustSelection", "TrustWeights", "trust_weights",
]


def _stars(value: object, what: str) -> int:
    if type(value) is not int or not MIN_STARS <= value <= MAX_STARS:
        raise LocalProtocolError(f"{what} must be an integer from {MIN_STARS} to {MAX_STARS}")
    return value


def _view_entries(view: TradeView) -> list[Entry]:
    entries = (view.opened, view.cancel, view.commit, view.reveal, view.retract, view.response)
    return sorted((e for e in entries if e is not None), key=lambda e: e.seq)


# A completed trade as evidence (spec/trust.md 2.1): trade id, context, proposer,
# acceptor, the stars each gave, and the parties that retracted their rating.
_Completed = tuple[bytes, str, bytes, bytes, int, int, tuple[bytes, ...]]


def _complete(proposal: Entry, proposer_rest: list[Entry],
              acceptor: list[Entry]) -> _Completed | None:
    """Run the two-party rules (spec 7.7) over one trade; its fact if both ratings stand."""
    if not isinstance(proposal.body, Propose):
        return None
    session = TradeSession(me=proposal.author, proposal=proposal)
    try:
        feed_in_order(session, proposer_rest, acceptor)
    except (VerificationError, LocalProtocolError):
        return None  # not a trade both parties signed in order: no edge
    mine, theirs = session.mine, session.theirs
    if session.state is not TradeState.COMPLETE or mine.reveal is None \
            or theirs.reveal is None or theirs.opened is None:
        return None
    assert isinstance(mine.reveal.body, Reveal) and isinstance(theirs.reveal.body, Reveal)
    retracted = tuple(side.retract.author.key for side in (mine, theirs)
                      if side.retract is not None)
    return (session.trade, session.context, session.me.key, session.them.key,
            mine.reveal.body.stars, theirs.reveal.body.stars, retracted)


class TrustEvidence:
    """Accumulate what verified data says about trust (spec/trust.md 2).

    >>> evidence = TrustEvidence()
    >>> report = evidence.add_proof(bundle, now=now)          # doctest: +SKIP
    >>> weights = trust_weights(evidence.graph(), [root],     # doctest: +SKIP
    ...                         subject=report.subject)

    ``contexts``, if given, keeps only trades and vouches in those contexts.
    Every method checks the limits *before* storing, so memory stays bounded
    whatever the input (:class:`TrustOversize`).
    """

    __slots__ = ("_bundles", "_contexts", "_forked", "_keys", "_limits", "_retracted",
                 "_selection", "_trades", "_vouches")

    def __init__(self, *, contexts: Iterable[str] | None = None,
                 limits: TrustLimits | None = None) -> None:
        self._limits = limits or TrustLimits()
        self._contexts = None if contexts is None else frozenset(
            self._context(c) for c in contexts)
        # trade id -> (proposer, acceptor, context, proposer's stars, acceptor's stars)
        self._trades: dict[bytes, tuple[bytes, bytes, str, int, int]] = {}
        self._retracted: set[tuple[bytes, bytes]] = set()  # (trade, rater)
        # (voucher, subject, context) -> (seq of the latest vouch entry, active)
        self._vouches: dict[tuple[bytes, bytes, str], tuple[int, bool]] = {}
        self._forked: set[bytes] = set()
        self._keys: set[bytes] = set()
        self._bundles = 0
        self._selection: TrustSelection | None = None

    @staticmethod
    def _context(value: object) -> str:
        try:
            return check_context(value)
        except InvalidBody as exc:
            raise LocalProtocolError(str(exc)) from None

    # -- limits (spec/trust.md 7) -------------------------------------------------

    @property
    def items(self) -> int:
        """Edge items held: two per completed trade, one per retraction and vouch."""
        return 2 * len(self._trades) + len(self._retracted) + len(self._vouches)

    @property
    def nodes(self) -> int:
        """Distinct pseudonyms named by the evidence, forked ones included."""
        return len(self._keys)

    @property
    def selection(self) -> TrustSelection | None:
        """How :meth:`select` chose the chains; None for evidence not selected."""
        return self._selection

    def _admit(self, keys: Sequence[bytes], items: int) -> None:
        # Callers pass distinct keys, so counting the unknown ones is enough.
        new = [k for k in keys if k not in self._keys]
        if len(self._keys) + len(new) > self._limits.max_nodes:
            raise TrustOversize(f"the trust evidence names more than {self._limits.max_nodes} "
                                "pseudonyms (spec/trust.md 7); give fewer bundles or chains")
        if self.items + items > self._limits.max_edges:
            raise TrustOversize(f"the trust evidence holds more than {self._limits.max_edges} "
                                "edge items (spec/trust.md 7); give fewer bundles or chains")
        self._keys.update(new)

    def _wanted(self, context: str) -> bool:
        return self._contexts is None or context in self._contexts

    # -- facts ---------------------------------------------------------------------

    def add_trade(self, *, trade: bytes, context: str, proposer: Pseudonym,
                  acceptor: Pseudonym, proposer_stars: int, acceptor_stars: int) -> None:
        """A completed trade: each party revealed its rating of the other (spec/trust.md 2.1).

        ``proposer_stars`` are the stars the proposer gave the acceptor.  The
        adapters call this only for trades that passed the two-party rules;
        a simulator may call it directly.  A trade given twice with other stars
        by one party shows that party signed two reveals for one trade: it has
        equivocated and is treated as forked.
        """
        if type(trade) is not bytes or len(trade) != HASH_SIZE:
            raise LocalProtocolError(f"a trade id is {HASH_SIZE} bytes")
        p, a = _key(proposer, "proposer"), _key(acceptor, "acceptor")
        if p == a:
            raise LocalProtocolError("a trade has two different parties")
        context = self._context(context)
        ps, as_ = _stars(proposer_stars, "proposer_stars"), _stars(acceptor_stars, "acceptor_stars")
        if not self._wanted(context):
            return
        held = self._trades.get(trade)
        if held is not None:
            if held[:3] != (p, a, context):
                raise LocalProtocolError(f"trade {trade.hex()[:16]}… was given with other "
                                         "parties or context; a trade id names both")
            if held[3] != ps:
                self.add_forked(proposer)
            if held[4] != as_:
                self.add_forked(acceptor)
            return
        self._admit((p, a), 2)
        self._trades[trade] = (p, a, context, ps, as_)

    def add_retraction(self, *, trade: bytes, rater: Pseudonym) -> None:
        """``rater`` retracted its rating in ``trade``: that rating gives no edge."""
        if type(trade) is not bytes or len(trade) != HASH_SIZE:
            raise LocalProtocolError(f"a trade id is {HASH_SIZE} bytes")
        r = _key(rater, "rater")
        if (trade, r) in self._retracted:
            return
        self._admit((r,), 1)
        self._retracted.add((trade, r))

    def add_vouch(self, *, voucher: Pseudonym, subject: Pseudonym, context: str,
                  active: bool, seq: int) -> None:
        """A ``vouch`` entry at ``seq`` of ``voucher``'s chain (spec/trust.md 2.2).

        The entry with the highest ``seq`` for a (voucher, subject, context)
        decides; two different entries at one ``seq`` are a fork of the voucher.
        """
        v, s = _key(voucher, "voucher"), _key(subject, "subject")
        if v == s:
            raise LocalProtocolError("a pseudonym cannot vouch for itself")
        context = self._context(context)
        if type(active) is not bool:
            raise LocalProtocolError("active must be a boolean")
        if type(seq) is not int or not 1 <= seq <= MAX_SEQ:
            raise LocalProtocolError("seq must be a positive integer")
        if not self._wanted(context):
            return
        triple = (v, s, context)
        held = self._vouches.get(triple)
        if held is None:
            self._admit((v, s), 1)
            self._vouches[triple] = (seq, active)
        elif held[0] == seq and held[1] != active:
            self.add_forked(voucher)
        elif held[0] < seq:
            self._vouches[triple] = (seq, active)

    def add_forked(self, pseudonym: Pseudonym) -> None:
        """A pseudonym shown to have equivocated: it gets no weight and passes none."""
        k = _key(pseudonym, "pseudonym")
        if k not in self._keys:
            self._admit((k,), 0)
        self._forked.add(k)

    # -- adapters --------------------------------------------------------------------

    def add_proof(self, data: bytes, *, now: int, policies: Sequence[Policy] = (),
                  map: MapFn = map) -> ProofReport:
        """Verify a proof bundle and take its evidence; returns its report.

        ``now``, ``policies`` and ``map`` are :func:`shinyo.verify_proof`'s.
        Raises :class:`VerificationError` for an invalid bundle (its evidence
        is not taken) and :class:`TrustOversize` past ``max_bundles``, checked
        before the bundle is read.
        """
        if self._bundles >= self._limits.max_bundles:
            raise TrustOversize(f"more than {self._limits.max_bundles} evidence bundles "
                                "(spec/trust.md 7)")
        self._bundles += 1
        report, chain, others = verify_proof_entries(data, now=now, policies=policies, map=map)
        theirs: dict[bytes, dict[bytes, list[Entry]]] = {}
        for who, entries in others.items():
            groups = theirs.setdefault(who.key, {})
            for e in entries:
                if e.trade is not None:
                    groups.setdefault(e.trade, []).append(e)
        for who in report.forked_counterparties:
            self.add_forked(who)
        self._add_vouches(chain)
        for trade, view in chain.trades.items():
            held = theirs.get(view.counterparty.key, {}).get(trade, [])
            if view.reveal is None or not any(isinstance(e.body, Reveal) for e in held):
                continue
            mine = _view_entries(view)
            if view.role is Role.PROPOSER:
                self._add_complete(mine[0], mine[1:], held)
            else:
                self._add_complete(held[0], held[1:], mine)
        return report

    def add_chains(self, chains: Iterable[Chain]) -> int:
        """Take the evidence in whole chains a node holds (each validated from seq 1).

        A trade counts when both parties' chains are given, both revealed,
        and the trade passes the two-party rules (spec 7.7); one that fails
        them gives no edge.  Returns the number of completed trades found.
        """
        held: dict[bytes, Chain] = {}
        for chain in chains:
            if not isinstance(chain, Chain):
                raise LocalProtocolError("add_chains takes shinyo.Chain objects")
            known = held.get(chain.author.key)
            if known is None or len(chain) > len(known):
                held[chain.author.key] = chain  # the longest copy holds the latest vouches
        found = 0
        for key in sorted(held):
            chain = held[key]
            self._add_vouches(chain)
            for trade, view in chain.trades.items():
                if view.role is not Role.PROPOSER or view.reveal is None:
                    continue  # each trade once, from its proposer's chain
                other = held.get(view.counterparty.key)
                theirs = None if other is None else other.trade(trade)
                if theirs is None or theirs.reveal is None:
                    continue
                mine = _view_entries(view)
                found += self._add_complete(mine[0], mine[1:], _view_entries(theirs))
        return found

    @classmethod
    def select(cls, chains: Mapping[Pseudonym, Chain], roots: Iterable[Pseudonym], *,
               subject: Pseudonym | None = None, forked: Iterable[Pseudonym] = (),
               contexts: Iterable[str] | None = None,
               limits: TrustLimits | None = None) -> TrustEvidence:
        """The evidence of the chains nearest ``roots`` that fits the limits (spec/trust.md 2.5).

        Where :meth:`add_chains` stops with :class:`TrustOversize`, this takes
        whole chains outward from the roots -- by hop, then by key -- and stops
        before the first chain whose evidence would pass a limit.  The subset
        does not depend on the order of ``chains``.  Chains more than
        ``TRUST_STEPS`` hops out are never taken: they cannot change a mass, so
        if no limit stops it the weights are those of every chain held.
        :attr:`selection` (and every report built on this evidence) says what
        was taken and where a limit cut it.

        ``chains`` are the whole chains a node holds, by author; ``forked`` the
        pseudonyms it holds fork proofs for, of which the roots', the
        ``subject``'s (the pseudonym to be scored) and those the evidence
        names count.  A chain is read only when the hops reach it, and each
        trade's two-party check runs once: the cost is linear in the chains
        read, plus sorting each hop's pseudonyms by key.

        Raises :class:`LocalProtocolError` without roots or with more than
        ``max_roots``, and :class:`TrustOversize` only if the forked roots and
        subject alone pass ``max_nodes``.
        """
        ev = cls(contexts=contexts, limits=limits)
        ev._selection = select_chains(ev, chains, roots, subject=subject, forked=forked)
        return ev

    # -- the selection's reading of a chain and its counts (spec/trust.md 2.5) ---------
    # _trust_select.select_chains decides which chains, in what order and where to stop;
    # these keep the two-party check (2.1) and the counts of 7 with the rest of the evidence.

    def _chain_facts(self, chain: Chain, taken: Mapping[bytes, Chain]
                     ) -> tuple[list[_Completed], list[Entry], list[bytes]]:
        """What taking ``chain`` adds (spec/trust.md 2.5 step 4), and its names (step 1).

        A trade is evidence once both its chains are taken, so it is checked
        here when the second of them comes.
        """
        trades: list[_Completed] = []
        names: list[bytes] = []
        for trade, view in chain.trades.items():
            if view.reveal is None or not self._wanted(view.context):
                continue  # no rating of the author's: no edge out of it (3.2)
            names.append(view.counterparty.key)
            other = taken.get(view.counterparty.key)
            theirs = None if other is None else other.trade(trade)
            if theirs is None or theirs.reveal is None:
                continue
            mine, held = _view_entries(view), _view_entries(theirs)
            proposer, acceptor = (mine, held) if view.role is Role.PROPOSER else (held, mine)
            fact = _complete(proposer[0], proposer[1:], acceptor)
            if fact is not None:
                trades.append(fact)
        vouches = [e for e in chain.entries
                   if isinstance(e.body, Vouch) and self._wanted(e.body.context)]
        for e in chain.active_vouches():
            assert isinstance(e.body, Vouch)
            if self._wanted(e.body.context):
                names.append(e.body.subject.key)
        return trades, vouches, names

    def _would_pass(self, trades: Sequence[_Completed], vouches: Sequence[Entry]) -> Limit | None:
        """The limit the held evidence plus ``trades`` and ``vouches`` would pass, if any."""
        keys: set[bytes] = set()
        items = 0
        for trade, _, p, a, _, _, retracted in trades:
            if trade not in self._trades:
                keys.update((p, a))
                items += 2 + len(retracted)
        triples = set()
        for e in vouches:
            assert isinstance(e.body, Vouch)
            triples.add((e.author.key, e.body.subject.key, e.body.context))
        for triple in triples - self._vouches.keys():
            keys.update(triple[:2])
            items += 1
        if len(self._keys) + len(keys - self._keys) > self._limits.max_nodes:
            return "MAX_TRUST_NODES"
        if self.items + items > self._limits.max_edges:
            return "MAX_TRUST_EDGES"
        return None

    def _add_vouch_entry(self, e: Entry, forked: set[bytes]) -> None:
        assert isinstance(e.body, Vouch)
        self.add_vouch(voucher=e.author, subject=e.body.subject, context=e.body.context,
                       active=e.body.active, seq=e.seq)
        if e.body.subject.key in forked:  # step 4: the fork proofs of what it names
            self.add_forked(e.body.subject)

    def _add_vouches(self, chain: Chain) -> None:
        for e in chain.entries:
            if isinstance(e.body, Vouch):
                self.add_vouch(voucher=e.author, subject=e.body.subject,
                               context=e.body.context, active=e.body.active, seq=e.seq)

    def _add_complete(self, proposal: Entry, proposer_rest: list[Entry],
                      acceptor: list[Entry]) -> bool:
        """Run the two-party rules over one trade; take it if both ratings stand."""
        fact = _complete(proposal, proposer_rest, acceptor)
        if fact is not None:
            self._take_trade(fact)
        return fact is not None

    def _take_trade(self, fact: _Completed) -> None:
        trade, context, p, a, ps, as_, retracted = fact
        self.add_trade(trade=trade, context=context, proposer=Pseudonym(key=p),
                       acceptor=Pseudonym(key=a), proposer_stars=ps, acceptor_stars=as_)
        for rater in retracted:
            self.add_retraction(trade=trade, rater=Pseudonym(key=rater))

    # -- the graph ---------------------------------------------------------------------

    def graph(self) -> TrustGraph:
        """The trust graph of spec/trust.md 3; the same evidence gives the same graph."""
        forked = frozenset(self._forked)
        pair: dict[tuple[bytes, bytes], int] = {}
        for trade, (p, a, _, _, _) in self._trades.items():
            for rater, ratee in ((p, a), (a, p)):
                if rater in forked or ratee in forked or (trade, rater) in self._retracted:
                    continue
                # min(cap, running sum) is min(cap, total) in any order.
                pair[rater, ratee] = min(PAIR_CAP, pair.get((rater, ratee), 0) + 1)
        # A pair vouched for in several contexts gets VOUCH_WEIGHT once (3.2).
        vouched = {(v, s) for (v, s, _), (_, active) in self._vouches.items()
                   if active and v not in forked and s not in forked}
        for v, s in vouched:
            pair[v, s] = pair.get((v, s), 0) + VOUCH_WEIGHT
        nodes = tuple(sorted(k for k in self._keys if k not in forked))
        index = {k: i for i, k in enumerate(nodes)}
        out: list[list[tuple[int, int]]] = [[] for _ in nodes]
        for (u, v), w in pair.items():
            if w > 0:
                out[index[u]].append((index[v], w))
        offsets = [0]
        targets: list[int] = []
        weights: list[int] = []
        for edges in out:
            edges.sort()
            targets.extend(t for t, _ in edges)
            weights.extend(w for _, w in edges)
            offsets.append(len(targets))
        return TrustGraph(nodes=nodes, offsets=tuple(offsets), targets=tuple(targets),
                          weights=tuple(weights), forked=forked, selection=self._selection)
