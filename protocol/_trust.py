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
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any, ClassVar, Final, Literal

from ._body import Propose, Reveal, Vouch, check_context
from ._chain import Chain, Role, TradeView
from ._constants import HASH_SIZE, MAX_SEQ, MAX_STARS, MIN_STARS
from ._entry import Entry, MapFn
from ._errors import InvalidBody, LocalProtocolError, VerificationError
from ._identity import Pseudonym
from ._proof import ProofReport, verify_proof_entries
from ._scoring import Policy
from ._trade import TradeSession, TradeState, feed_in_order

__all__ = [
    "MAX_EVIDENCE_BUNDLES", "MAX_TRUST_EDGES", "MAX_TRUST_NODES", "MAX_TRUST_ROOTS",
    "TRUST_STEPS", "WEIGHT_ONE", "TrustEvidence", "TrustGraph", "TrustLimits", "TrustOversize",
    "TrustSelection", "TrustWeights", "trust_weights",
]

View = Literal["subject", "shared"]
"""Whose walk weights are: one subject's view (spec/trust.md 4.5) or the shared walk."""
Limit = Literal["MAX_TRUST_NODES", "MAX_TRUST_EDGES"]
"""The limit that cut a selection of evidence (spec/trust.md 2.5)."""

# -- spec/trust.md 3-5: the method's constants (normative) ---------------------------
PAIR_CAP: Final = 4
"""Most one rater's trades can add to its edge to one ratee: four trades."""
VOUCH_WEIGHT: Final = 2
"""What an active vouch adds to the voucher's edge: as much as two trades."""
OUT_FLOOR: Final = 4
"""An edge carries at most ``w / OUT_FLOOR`` of its source's onward mass."""
TRUST_ONE: Final = 2**40
"""The mass the roots start with, shared equally."""
TRUST_STEPS: Final = 16
"""Steps of the walk: a fixed count, so the cost is fixed too."""
CONTINUE: Final = (4, 5)
"""The share of a node's mass passed on at each step (transitivity decay)."""
THETA_SHARE: Final = (1, 2)
"""theta keeps this share of the non-root mass when every node is capped at it."""
WEIGHT_ONE: Final = 1_000_000
"""A rater's weight is in millionths of a fully trusted rater."""

# -- spec/trust.md 7: limits ------------------------------------------------------------
MAX_TRUST_ROOTS: Final = 64
MAX_TRUST_NODES: Final = 2**20
MAX_TRUST_EDGES: Final = 2**22
MAX_EVIDENCE_BUNDLES: Final = 64


class TrustOversize(VerificationError):
    """The evidence passes a limit of spec/trust.md 7: give fewer bundles or chains."""

    failure_class: ClassVar[str] = "oversize"


@dataclass(frozen=True, slots=True, kw_only=True)
class TrustLimits:
    """Limits on evidence (spec/trust.md 7).  A verifier MAY lower them, never raise them."""

    max_roots: int = MAX_TRUST_ROOTS
    max_nodes: int = MAX_TRUST_NODES
    max_edges: int = MAX_TRUST_EDGES
    max_bundles: int = MAX_EVIDENCE_BUNDLES

    def __post_init__(self) -> None:
        for name, ceiling in (("max_roots", MAX_TRUST_ROOTS), ("max_nodes", MAX_TRUST_NODES),
                              ("max_edges", MAX_TRUST_EDGES),
                              ("max_bundles", MAX_EVIDENCE_BUNDLES)):
            value = getattr(self, name)
            if type(value) is not int or not 1 <= value <= ceiling:
                raise LocalProtocolError(f"{name} must be an integer from 1 to {ceiling}")


def _key(value: object, what: str) -> bytes:
    if not isinstance(value, Pseudonym):
        raise LocalProtocolError(f"{what} must be a shinyo.Pseudonym")
    return value.key


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
        ev._selection = TrustSelection(
            taken=tuple(order), held=len(chains),
            stopped_by=None if cut is None else cut[0],
            stopped_at=None if cut is None else Pseudonym(key=cut[1]),
            stopped_hop=None if cut is None else cut[2])
        return ev

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
        if any(t >= n or t < 0 for t in self.targets) or any(w <= 0 for w in self.weights):
            raise LocalProtocolError("a trust graph's edges need known targets and weights > 0")
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
