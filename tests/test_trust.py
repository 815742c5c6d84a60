"""Trust from the verifier's point of view (spec/trust.md): graph, walk, weights, gates."""

from __future__ import annotations

import itertools
import json
import random
import re
from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shinyo import (
    Chain,
    Commit,
    LocalProtocolError,
    Outcome,
    Participant,
    Policy,
    Propose,
    Pseudonym,
    Reveal,
    Role,
    TradeOutcome,
    VerificationError,
    build_proof,
    meets,
    rating_commitment,
    score,
)
from shinyo import _trust as trust
from shinyo._body import Accept
from shinyo._trust import (
    MAX_EVIDENCE_BUNDLES,
    MAX_TRUST_EDGES,
    MAX_TRUST_NODES,
    MAX_TRUST_ROOTS,
    TRUST_STEPS,
    WEIGHT_ONE,
    TrustEvidence,
    TrustGraph,
    TrustLimits,
    TrustOversize,
    TrustWeights,
    trust_weights,
)
from shinyo._trust_policy import (
    WEIGHTED_POLICIES,
    TrustReport,
    parse_policy,
    trust_score,
    weighted_meets,
)
from shinyo.tools import trust_vectors

from .conftest import CTX, T0, identity, nonce, terms

DAY = 86_400
NOW = T0 + 400 * DAY
SPEC = Path(__file__).resolve().parent.parent / "spec"


def key(n: int) -> Pseudonym:
    """A synthetic pseudonym: the graph never checks that a key is a curve point."""
    return Pseudonym(key=n.to_bytes(32, "big"))


def tid(n: int) -> bytes:
    return (0x5452 << 240 | n).to_bytes(32, "big")


_TRADES = itertools.count(1)


class Facts:
    """Evidence as facts, each trade with a fresh id (a simulator's view)."""

    def __init__(self, evidence: TrustEvidence | None = None) -> None:
        self.ev = evidence or TrustEvidence()

    def trade(self, p: Pseudonym, a: Pseudonym, ps: int = 5, as_: int = 5,
              ctx: str = CTX) -> bytes:
        t = tid(next(_TRADES))
        self.ev.add_trade(trade=t, context=ctx, proposer=p, acceptor=a, proposer_stars=ps,
                          acceptor_stars=as_)
        return t


def rated(subject: Pseudonym, rater: Pseudonym, stars: int, n: int, *, at: int | None = None,
          kind: Outcome = Outcome.RATED) -> TradeOutcome:
    return TradeOutcome(
        trade=tid(10**6 + n), subject=subject, counterparty=rater, context=CTX,
        role=Role.ACCEPTOR, outcome=kind, stars=stars if kind is not Outcome.EXPIRED else None,
        given=5, at=NOW - (n % 60) * DAY if at is None else at, reason="test",
        cancelled_by=subject if kind is Outcome.CANCELLED else None)


# -- real entries: a small world where everyone hears everything ---------------------


class World:
    """Participants that broadcast every entry, so each holds every chain in order."""

    def __init__(self, n: int) -> None:
        self.people = [Participant(identity(i + 1)) for i in range(n)]
        self.t = T0

    def post(self, entry: Any) -> Any:
        for p in self.people:
            if p.pseudonym != entry.author:
                p.receive(entry)
        return entry

    def tick(self) -> int:
        self.t += 60
        return self.t

    def trade(self, i: int, j: int, si: int = 5, sj: int = 5, *, reveal: bool = True) -> bytes:
        a, b = self.people[i], self.people[j]
        p = self.post(a.propose(b.pseudonym, context=CTX, terms=terms(), timestamp=self.tick()))
        self.post(b.accept(p.id, timestamp=self.tick()))
        self.post(a.commit(p.id, stars=si, nonce=nonce(1), timestamp=self.tick()))
        self.post(b.commit(p.id, stars=sj, nonce=nonce(2), timestamp=self.tick()))
        if reveal:
            self.post(a.reveal(p.id, timestamp=self.tick()))
            self.post(b.reveal(p.id, timestamp=self.tick()))
        return bytes(p.id)

    def chains(self) -> list[Chain]:
        return [p.chain for p in self.people]

    def bundle(self, i: int) -> bytes:
        me = self.people[i]
        return build_proof(me.chain, {p.pseudonym: p.chain for p in self.people if p is not me})

    def who(self, i: int) -> Pseudonym:
        return self.people[i].pseudonym


def test_a_completed_trade_is_an_edge_each_way_whatever_the_stars() -> None:
    w = World(3)
    w.trade(0, 1, 5, 1)
    w.trade(1, 2, reveal=False)  # committed, never revealed: no evidence
    ev = TrustEvidence()
    assert ev.add_chains(w.chains()) == 1
    g = ev.graph()
    assert g.out_edges(w.who(0)) == {w.who(1): 1}
    assert g.out_edges(w.who(1)) == {w.who(0): 1}
    assert w.who(2) not in g and g.edges == 2


def test_bundles_and_chains_give_the_same_graph() -> None:
    w = World(4)
    w.trade(0, 1)
    w.trade(1, 2, 4, 3)
    w.trade(2, 3, 2, 5)
    w.trade(3, 1)
    w.post(w.people[0].vouch(w.who(3), context=CTX, timestamp=w.tick()))
    from_chains = TrustEvidence()
    from_chains.add_chains(w.chains())
    from_bundles = TrustEvidence()
    for i in (3, 0, 2, 1):  # any order
        report = from_bundles.add_proof(w.bundle(i), now=w.t + DAY)
        assert report.subject == w.who(i)
    assert from_bundles.graph() == from_chains.graph()
    assert from_chains.graph().out_edges(w.who(0)) == {w.who(1): 1, w.who(3): trust.VOUCH_WEIGHT}


def test_an_invalid_bundle_adds_nothing() -> None:
    w = World(2)
    w.trade(0, 1)
    data = bytearray(w.bundle(0))
    data[-10] ^= 1  # in the signature of the last packed entry (forks, 0x80, follow)
    ev = TrustEvidence()
    with pytest.raises(VerificationError) as exc:
        ev.add_proof(bytes(data), now=w.t + DAY)
    assert exc.value.failure_class == "bad-signature"
    assert ev.items == 0 and ev.graph().edges == 0


def test_a_retracted_rating_removes_its_own_edge_only() -> None:
    w = World(2)
    t = w.trade(0, 1)
    w.post(w.people[0].retract(t, timestamp=w.tick()))
    by_chains, by_bundle = TrustEvidence(), TrustEvidence()
    by_chains.add_chains(w.chains())
    by_bundle.add_proof(w.bundle(1), now=w.t + DAY)
    for ev in (by_chains, by_bundle):
        g = ev.graph()
        assert g.out_edges(w.who(0)) == {}
        assert g.out_edges(w.who(1)) == {w.who(0): 1}


@pytest.mark.parametrize("theirs", [CTX, "market.example/games"])
def test_a_trade_that_breaks_the_two_party_rules_gives_no_edge(theirs: str) -> None:
    # Chains built by hand.  With another context in the acceptance than in the
    # proposal each chain is valid alone, but shinyo.md 7.7 refuses the trade.
    p, a = identity(1), identity(2)
    prop = Chain(p.pseudonym)
    proposal = prop.append_new(p, timestamp=T0, body=Propose(
        counterparty=a.pseudonym, context=CTX, terms=terms()))
    acc = Chain(a.pseudonym)
    acc.append_new(a, timestamp=T0 + 10, body=Accept(
        trade=proposal.id, proposer=p.pseudonym, context=theirs))

    def commit(chain: Chain, who: Any, rater: Pseudonym, ratee: Pseudonym, ctx: str,
               ack: bytes | None, t: int) -> Any:
        c = rating_commitment(trade=proposal.id, context=ctx, rater=rater, ratee=ratee,
                              stars=5, nonce=nonce(3), tags=(), comment=None)
        return chain.append_new(who, timestamp=t, body=Commit(
            trade=proposal.id, commitment=c, ack=ack))

    pc = commit(prop, p, p.pseudonym, a.pseudonym, CTX, None, T0 + 20)
    ac = commit(acc, a, a.pseudonym, p.pseudonym, theirs, pc.id, T0 + 30)
    prop.append_new(p, timestamp=T0 + 40, body=Reveal(
        trade=proposal.id, stars=5, nonce=nonce(3), tags=(), comment=None, ack=ac.id))
    acc.append_new(a, timestamp=T0 + 50, body=Reveal(
        trade=proposal.id, stars=5, nonce=nonce(3), tags=(), comment=None, ack=None))
    ev = TrustEvidence()
    valid = theirs == CTX
    assert ev.add_chains([prop, acc]) == int(valid)
    assert ev.graph().edges == 2 * int(valid)


def test_vouches_the_latest_entry_decides_in_any_order() -> None:
    a, b = key(1), key(2)
    entries = [(3, True), (5, False), (8, True), (9, False)]
    for order in (entries, entries[::-1], [entries[2], entries[0], entries[3], entries[1]]):
        ev = TrustEvidence()
        for seq, active in order:
            ev.add_vouch(voucher=a, subject=b, context=CTX, active=active, seq=seq)
        assert ev.graph().out_edges(a) == {}
    ev.add_vouch(voucher=a, subject=b, context=CTX, active=True, seq=10)
    ev.add_vouch(voucher=a, subject=b, context="market.example/games", active=True, seq=11)
    assert ev.graph().out_edges(a) == {b: trust.VOUCH_WEIGHT}  # once for two contexts


def test_two_vouches_at_one_seq_are_a_fork() -> None:
    a, b = key(1), key(2)
    ev = TrustEvidence()
    ev.add_vouch(voucher=a, subject=b, context=CTX, active=True, seq=4)
    ev.add_vouch(voucher=a, subject=b, context=CTX, active=False, seq=4)
    assert a not in ev.graph() and ev.graph().forked == {a.key}


def test_two_reveals_for_one_trade_are_a_fork_of_that_rater() -> None:
    ev = TrustEvidence()
    a, b = key(1), key(2)
    ev.add_trade(trade=tid(1), context=CTX, proposer=a, acceptor=b, proposer_stars=5,
                 acceptor_stars=4)
    ev.add_trade(trade=tid(1), context=CTX, proposer=a, acceptor=b, proposer_stars=5,
                 acceptor_stars=4)  # the same trade from the other party's bundle
    assert ev.items == 2 and not ev.graph().forked
    ev.add_trade(trade=tid(1), context=CTX, proposer=a, acceptor=b, proposer_stars=5,
                 acceptor_stars=2)
    assert ev.graph().forked == {b.key}
    with pytest.raises(LocalProtocolError, match="parties"):
        ev.add_trade(trade=tid(1), context=CTX, proposer=b, acceptor=a, proposer_stars=5,
                     acceptor_stars=5)


@pytest.mark.parametrize("kwargs", [
    {"trade": b"short"}, {"proposer": "sy1"}, {"acceptor": key(1)},
    {"proposer_stars": 6}, {"acceptor_stars": True}, {"context": "Not A Context"},
])
def test_add_trade_refuses_bad_facts(kwargs: dict[str, Any]) -> None:
    args: dict[str, Any] = {"trade": tid(1), "context": CTX, "proposer": key(1),
                            "acceptor": key(2), "proposer_stars": 5, "acceptor_stars": 5}
    with pytest.raises(LocalProtocolError):
        TrustEvidence().add_trade(**{**args, **kwargs})


def test_a_context_filter_ignores_other_markets() -> None:
    ev = TrustEvidence(contexts=[CTX])
    f = Facts(ev)
    f.trade(key(1), key(2))
    f.trade(key(1), key(3), ctx="market.example/games")
    ev.add_vouch(voucher=key(1), subject=key(4), context="market.example/games", active=True,
                 seq=1)
    g = ev.graph()
    assert g.out_edges(key(1)) == {key(2): 1} and key(3) not in g and key(4) not in g


def test_the_pair_cap() -> None:
    f = Facts()
    for _ in range(trust.PAIR_CAP + 3):
        f.trade(key(1), key(2))
    assert f.ev.graph().out_edges(key(1)) == {key(2): trust.PAIR_CAP}


# -- the walk and the weights ------------------------------------------------------------


def line(n: int) -> TrustEvidence:
    f = Facts()
    for i in range(n):
        f.trade(key(i), key(i + 1))
    return f.ev


def test_mass_fades_with_every_hop_and_roots_weigh_one() -> None:
    w = trust_weights(line(6).graph(), [key(0)])
    masses = [w.mass.get(key(i).key, 0) for i in range(7)]
    assert all(masses[i] > masses[i + 1] for i in range(1, 6))
    assert w.weight(key(0)) == WEIGHT_ONE and w.roots == (key(0),)
    assert w.weight(key(99)) == 0  # not a node
    assert 0 < w.weight(key(6)) < WEIGHT_ONE


def test_the_out_floor_caps_a_lone_edge() -> None:
    # Root 0 and node 1 share one edge each way, of weight 1 < OUT_FLOOR, so each
    # step passes 4/5 x 1/4 of a node's mass across (spec/trust.md 4.2).
    w = trust_weights(line(1).graph(), [key(0)])
    root, node, total = trust.TRUST_ONE, 0, [trust.TRUST_ONE, 0]
    for _ in range(TRUST_STEPS):
        root, node = node * 4 // (5 * trust.OUT_FLOOR), root * 4 // (5 * trust.OUT_FLOOR)
        total = [total[0] + root, total[1] + node]
    assert (w.mass[key(0).key], w.mass[key(1).key]) == tuple(total)
    assert w.operations == TRUST_STEPS  # one edge relaxed per step


def test_a_forked_pseudonym_weighs_nothing_and_passes_nothing() -> None:
    ev = line(4)
    ev.add_forked(key(2))
    w = trust_weights(ev.graph(), [key(0)])
    assert w.weight(key(2)) == 0 and w.weight(key(3)) == 0 and w.weight(key(4)) == 0
    assert w.weight(key(1)) > 0


def test_forked_roots_are_dropped_and_all_forked_weighs_nothing() -> None:
    ev = line(3)
    ev.add_forked(key(0))
    w = trust_weights(ev.graph(), [key(0), key(3)])
    assert w.roots == (key(3),) and w.dropped_roots == (key(0),) and w.weight(key(2)) > 0
    w = trust_weights(ev.graph(), [key(0)])
    assert w.roots == () and w.weights == {} and w.theta is None


def test_roots_are_required_and_bounded() -> None:
    g = line(2).graph()
    with pytest.raises(LocalProtocolError, match="no trust roots"):
        trust_weights(g, [])
    roots = [key(1000 + i) for i in range(MAX_TRUST_ROOTS)]
    assert len(trust_weights(g, roots).roots) == MAX_TRUST_ROOTS
    with pytest.raises(LocalProtocolError, match=f"at most {MAX_TRUST_ROOTS}"):
        trust_weights(g, [*roots, key(5000)])
    assert len(trust_weights(g, [key(0)] * 100).roots) == 1  # distinct roots count


facts = st.lists(st.tuples(st.integers(0, 11), st.integers(0, 11), st.integers(1, 5),
                           st.integers(1, 5), st.booleans()), max_size=40)
vouches = st.lists(st.tuples(st.integers(0, 11), st.integers(0, 11), st.integers(1, 9),
                             st.booleans()), max_size=10)


def _evidence(trades: list[tuple[int, int, int, int, bool]],
              vs: list[tuple[int, int, int, bool]], order: random.Random | None = None,
              forked: tuple[int, ...] = ()) -> TrustEvidence:
    items: list[Any] = []
    for n, (p, a, ps, as_, retract) in enumerate(trades):
        if p != a:
            items.append(("t", tid(n), key(p), key(a), ps, as_))
            if retract:
                items.append(("r", tid(n), key(a)))
    items.extend(("v", key(v), key(s), seq, act) for v, s, seq, act in vs if v != s)
    items.extend(("f", key(k)) for k in forked)
    if order is not None:
        order.shuffle(items)
    ev = TrustEvidence()
    for item in items:
        if item[0] == "t":
            ev.add_trade(trade=item[1], context=CTX, proposer=item[2], acceptor=item[3],
                         proposer_stars=item[4], acceptor_stars=item[5])
        elif item[0] == "r":
            ev.add_retraction(trade=item[1], rater=item[2])
        elif item[0] == "v":
            ev.add_vouch(voucher=item[1], subject=item[2], context=CTX, seq=item[3],
                         active=item[4])
        else:
            ev.add_forked(item[1])
    return ev


@given(trades=facts, vs=vouches, seed=st.integers(0, 2**32), forked=st.sets(st.integers(0, 11),
                                                                            max_size=2))
@settings(max_examples=60, deadline=None)
def test_weights_do_not_depend_on_the_order_of_evidence(
        trades: list[tuple[int, int, int, int, bool]], vs: list[tuple[int, int, int, bool]],
        seed: int, forked: set[int]) -> None:
    f = tuple(sorted(forked))
    one = trust_weights(_evidence(trades, vs, None, f).graph(), [key(0), key(1)])
    two = trust_weights(_evidence(trades, vs, random.Random(seed), f).graph(), [key(1), key(0)])
    assert (one.mass, one.weights, one.theta) == (two.mass, two.weights, two.theta)
    assert one.operations <= TRUST_STEPS * one.edges
    assert all(0 <= w <= WEIGHT_ONE for w in one.weights.values())


@given(st.lists(st.integers(1, 2**42), min_size=1, max_size=30))
@settings(max_examples=200)
def test_theta_is_the_least_level_that_keeps_half(masses: list[int]) -> None:
    ordered = sorted(masses, reverse=True)
    theta = trust._theta(ordered)
    need = -(-sum(masses) // 2)
    assert theta is not None and theta >= 1

    def kept(t: int) -> int:
        return sum(min(p, t) for p in masses)

    assert kept(theta) >= need and (theta == 1 or kept(theta - 1) < need)
    assert trust._theta([]) is None


def _sybil_world(s: int, g: int, *, honest: int = 40, seed: int = 3) -> tuple[
        TrustEvidence, Pseudonym, list[Pseudonym], list[TradeOutcome]]:
    """An honest community, an attacker with two honest trades, s Sybils behind g attack edges.

    Ids: honest 0..honest-1 (0 is the root), attacker 10**6, Sybils 10**6 + 1 + j.
    """
    rng = random.Random(seed)
    f = Facts()
    for i in range(honest):
        f.trade(key(i), key((i + 1) % honest))
        f.trade(key(i), key((i + rng.randrange(2, honest - 1)) % honest))
    attacker = key(10**6)
    sybils = [key(10**6 + 1 + j) for j in range(s)]
    outcomes = []
    for n, h in enumerate((5, 17)):
        f.trade(key(h), attacker, 2, 5)
        outcomes.append(rated(attacker, key(h), 2, n))
    for j in range(g):
        f.trade(key(3 + 11 * j), sybils[j % s])  # an honest member rates a Sybil well
    for j, sy in enumerate(sybils):
        f.trade(sy, attacker)
        f.trade(sy, sybils[(j + 1) % s])
        outcomes.append(rated(attacker, sy, 5, 2 + j))
    return f.ev, attacker, sybils, outcomes


@pytest.mark.parametrize("g", [1, 3])
def test_sybil_gain_is_flat_in_the_number_of_sybils(g: int) -> None:
    weighted, shared, unweighted = {}, {}, {}
    sybil_weight: dict[int, int] = {}
    bounds: dict[int, Fraction] = {}
    bayes = parse_policy("weighted-bayes")
    for s in (10, 100, 1000):
        ev, attacker, sybils, outcomes = _sybil_world(s, g)
        g_ = ev.graph()
        w = trust_weights(g_, [key(0)], subject=attacker)  # the attacker's view (4.5)
        weighted[s] = trust_score(attacker, outcomes, as_of=NOW, weights=w,
                                  policies=[bayes]).scores[str(bayes)]
        shared[s] = trust_score(attacker, outcomes, as_of=NOW, policies=[bayes],
                                weights=trust_weights(g_, [key(0)]),
                                shared_walk=True).scores[str(bayes)]
        unweighted[s] = trust_score(attacker, outcomes, as_of=NOW, weights=None,
                                    policies=[bayes]).scores[str(bayes)]
        # In the attacker's view the region is its Sybils alone, and its attack
        # edges are the g honest ratings of Sybils: the attacker's own edges into
        # it are not walked (spec/trust.md 4.5).
        region = {x.key for x in sybils}
        assert w.theta is not None and w.left_out == s + 2  # one edge per counterparty
        bounds[s] = WEIGHT_ONE * _attack_bound(g_, w, region, without=attacker) / w.theta
        sybil_weight[s] = sum(w.weight(x) for x in sybils)
        assert sybil_weight[s] <= bounds[s]
    low, high = min(weighted.values()), max(weighted.values())
    assert low is not None and high is not None
    assert high / low - 1 < 0.01, weighted
    # The bound itself does not grow with the Sybils (their inside does not count).
    assert max(bounds.values()) / min(bounds.values()) < 1.01, bounds
    u10, u1000 = unweighted[10], unweighted[1000]
    assert u10 is not None and u1000 is not None  # what weighting prevents:
    assert u1000 - u10 > 0.5 and u1000 - high > 1, (unweighted, weighted)
    # The shared walk lets the attacker lend its mass to its Sybils: more score.
    assert all((shared[s] or 0) > (weighted[s] or 0) for s in weighted), (shared, weighted)


def _attack_bound(g: TrustGraph, w: TrustWeights, region: set[bytes], *,
                  without: Pseudonym | None = None) -> Fraction:
    """spec/trust.md 4.4: 4 x the sum over attack edges (u, s) of pi(u) w(u, s) / D(u).

    ``without``: a subject whose out-edges the walk left out (its view, 4.5).
    """
    bound = Fraction(0)
    for i, k in enumerate(g.nodes):
        if k in region or (without is not None and k == without.key):
            continue
        lo, hi = g.offsets[i], g.offsets[i + 1]
        out = max(sum(g.weights[lo:hi]), trust.OUT_FLOOR)
        for j in range(lo, hi):
            if g.nodes[g.targets[j]] in region:
                bound += Fraction(w.mass.get(k, 0) * g.weights[j], out)
    return 4 * bound


@given(st.data())
@settings(max_examples=40, deadline=None)
def test_a_regions_mass_is_bounded_by_its_attack_edges(data: st.DataObject) -> None:
    """spec/trust.md 4.4, on random graphs and regions, whatever their inside."""
    honest = data.draw(st.integers(2, 12))
    s = data.draw(st.integers(1, 30))
    h_edges = data.draw(st.lists(st.tuples(st.integers(0, honest - 1),
                                           st.integers(0, honest - 1)), max_size=30))
    x_edges = data.draw(st.lists(st.tuples(st.integers(0, s - 1), st.integers(0, s - 1)),
                                 max_size=60))
    attack = data.draw(st.lists(st.tuples(st.integers(0, honest - 1), st.integers(0, s - 1),
                                          st.booleans()), min_size=1, max_size=4))
    f = Facts()
    for a, b in h_edges:
        if a != b:
            f.trade(key(a), key(b))
    for a, b in x_edges:
        if a != b:
            f.trade(key(1000 + a), key(1000 + b))
    for u, x, vouch in attack:
        if vouch:
            f.ev.add_vouch(voucher=key(u), subject=key(1000 + x), context=CTX, active=True,
                           seq=1 + x)
        else:
            f.trade(key(u), key(1000 + x))
    g = f.ev.graph()
    w = trust_weights(g, [key(0)])
    region = {key(1000 + j).key for j in range(s)}
    bound = _attack_bound(g, w, region)
    assert sum(m for k, m in w.mass.items() if k in region) <= bound
    if w.theta is not None:  # spec/trust.md 5: and so is its weight
        assert sum(v for k, v in w.weights.items() if k in region) <= \
            WEIGHT_ONE * bound / w.theta


def test_hostile_graph_cost_is_bounded_by_steps_times_edges() -> None:
    # A Sybil clique of 120 (14,280 edges) behind one attack edge, and an honest line.
    ev = line(20)
    f = Facts(ev)
    clique = [key(5000 + i) for i in range(120)]
    for i, a in enumerate(clique):
        for b in clique[i + 1:]:
            f.trade(a, b)
    f.trade(key(10), clique[0])
    w = trust_weights(ev.graph(), [key(0)])
    assert w.edges == 2 * (20 + 120 * 119 // 2 + 1)
    assert 0 < w.operations <= TRUST_STEPS * w.edges
    # However dense inside, the clique holds what one attack edge lets in.
    assert sum(w.weight(c) for c in clique) < 2 * WEIGHT_ONE


# -- limits (spec/trust.md 7) --------------------------------------------------------------


def test_limits_are_the_spec_values_and_can_only_be_lowered() -> None:
    text = (SPEC / "trust.md").read_text(encoding="utf-8")
    for name, value in (("MAX_TRUST_ROOTS", MAX_TRUST_ROOTS), ("MAX_TRUST_NODES", MAX_TRUST_NODES),
                        ("MAX_TRUST_EDGES", MAX_TRUST_EDGES),
                        ("MAX_EVIDENCE_BUNDLES", MAX_EVIDENCE_BUNDLES),
                        ("TRUST_STEPS", TRUST_STEPS), ("PAIR_CAP", trust.PAIR_CAP),
                        ("VOUCH_WEIGHT", trust.VOUCH_WEIGHT), ("OUT_FLOOR", trust.OUT_FLOOR)):
        row = re.search(rf"^\| `{name}` \| ([0-9,]+)", text, re.M)
        assert row is not None and int(row.group(1).replace(",", "")) == value, name
    assert "| `TRUST_ONE` | 2^40 |" in text and trust.TRUST_ONE == 2**40
    assert "| 4 / 5 |" in text and trust.CONTINUE == (4, 5)
    assert "| 1 / 2 |" in text and trust.THETA_SHARE == (1, 2)
    assert f"| {WEIGHT_ONE:,} |" in text
    with pytest.raises(LocalProtocolError):
        TrustLimits(max_nodes=MAX_TRUST_NODES + 1)
    with pytest.raises(LocalProtocolError):
        TrustLimits(max_edges=0)


def test_the_node_limit() -> None:
    ev = TrustEvidence(limits=TrustLimits(max_nodes=10))
    f = Facts(ev)
    for i in range(4):
        f.trade(key(2 * i), key(2 * i + 1))
    f.trade(key(8), key(0))  # one new node: 9
    ev.add_forked(key(9))  # 10
    f.trade(key(9), key(1))  # known nodes only
    with pytest.raises(TrustOversize, match="more than 10 pseudonyms") as exc:
        f.trade(key(10), key(1))
    assert exc.value.failure_class == "oversize"
    assert ev.nodes == 10


def test_the_node_limit_at_its_spec_value() -> None:
    ev = TrustEvidence()
    for i in range(MAX_TRUST_NODES):
        ev.add_forked(Pseudonym(key=i.to_bytes(32, "big")))
    with pytest.raises(TrustOversize):
        ev.add_forked(key(MAX_TRUST_NODES))


def test_the_edge_limit() -> None:
    ev = TrustEvidence(limits=TrustLimits(max_edges=5))
    f = Facts(ev)
    first = f.trade(key(1), key(2))
    f.trade(key(1), key(3))  # 4 items
    ev.add_retraction(trade=first, rater=key(1))  # 5
    with pytest.raises(TrustOversize, match="more than 5 edge items"):
        ev.add_vouch(voucher=key(1), subject=key(4), context=CTX, active=True, seq=1)
    with pytest.raises(TrustOversize):
        f.trade(key(2), key(3))
    ev.add_retraction(trade=first, rater=key(1))  # held already: no new item
    assert ev.items == 5 and key(4) not in ev.graph()


def test_the_bundle_limit_is_checked_before_reading() -> None:
    ev = TrustEvidence()
    for _ in range(MAX_EVIDENCE_BUNDLES):
        with pytest.raises(VerificationError) as exc:
            ev.add_proof(b"not a proof", now=NOW)
        assert exc.value.failure_class == "malformed"
    with pytest.raises(TrustOversize, match=f"more than {MAX_EVIDENCE_BUNDLES}"):
        ev.add_proof(b"not a proof", now=NOW)


def test_trust_weights_validate_themselves() -> None:
    good: dict[str, Any] = dict(roots=(key(1),), dropped_roots=(), forked=frozenset(),
                                mass={key(1).key: 5}, weights={key(2).key: WEIGHT_ONE},
                                theta=3, nodes=2, edges=1, operations=16)
    TrustWeights(**good)
    for change in [dict(roots=(key(1).key,)), dict(subject=key(1).key), dict(nodes=-1),
                   dict(operations=1.5), dict(left_out=1), dict(theta=0),
                   dict(mass={key(1).key: 0}), dict(weights={key(2).key: WEIGHT_ONE + 1})]:
        with pytest.raises(LocalProtocolError):
            TrustWeights(**{**good, **change})
    TrustWeights(**{**good, "subject": key(1), "left_out": 1})


def test_the_trust_graph_validates_itself() -> None:
    with pytest.raises(LocalProtocolError):
        TrustGraph(nodes=(b"a",), offsets=(0, 1), targets=(3,), weights=(1,))
    with pytest.raises(LocalProtocolError):
        TrustGraph(nodes=(b"a",), offsets=(0,), targets=(), weights=())
    with pytest.raises(LocalProtocolError):
        TrustGraph(nodes=(b"a",), offsets=(0, 0), targets=(), weights=(), forked=frozenset({b"a"}))
    three = (b"a", b"b", b"c")
    with pytest.raises(LocalProtocolError, match="never decrease"):  # rows overlap
        TrustGraph(nodes=three, offsets=(0, 2, 1, 2), targets=(1, 2), weights=(1, 1))
    with pytest.raises(LocalProtocolError, match="distinct targets"):  # a repeated edge
        TrustGraph(nodes=three, offsets=(0, 2, 2, 2), targets=(1, 1), weights=(1, 1))
    with pytest.raises(LocalProtocolError, match="distinct targets"):  # out of order
        TrustGraph(nodes=three, offsets=(0, 2, 2, 2), targets=(2, 1), weights=(1, 1))
    TrustGraph(nodes=three, offsets=(0, 2, 2, 2), targets=(1, 2), weights=(1, 1))


# -- weighted policies and gates (spec/trust.md 6) -------------------------------------


SUBJECT = key(500)


def everyone_a_root(outcomes: list[TradeOutcome]) -> TrustWeights:
    """Weights of one for every rater: each is a root.  SUBJECT's view."""
    f = Facts()
    f.trade(key(1), key(2))
    return trust_weights(f.ev.graph(), [o.counterparty for o in outcomes], subject=SUBJECT)


def test_with_unit_weights_the_weighted_policies_equal_their_twins() -> None:
    outs = [rated(SUBJECT, key(10 + i), s, i, at=NOW - i * 8 * DAY)
            for i, s in enumerate([5, 4, 3, 5, 1, 5, 4, 5, 5, 5])]
    w = everyone_a_root(outs)
    names = ["mean", "window:days=30", "last:n=3", "trimmed:pct=20", "bayes:prior=4,weight=2.5"]
    plain = score(outs, as_of=NOW, policies=[Policy.parse(n) for n in names])
    weighted = trust_score(SUBJECT, outs, as_of=NOW, weights=w,
                           policies=[parse_policy("weighted-" + n) for n in names])
    for n in names:  # 10 x 20 % is a whole number of samples, so trimming agrees too
        assert weighted.scores["weighted-" + str(Policy.parse(n))] == plain.scores[
            str(Policy.parse(n))], n
    assert weighted.trusted_rated == 10.0 and weighted.tier == plain.tier
    assert weighted.completion_rate == plain.completion_rate


def test_weighted_trimmed_cuts_weight_fractionally() -> None:
    outs = [rated(SUBJECT, key(10 + i), s, i) for i, s in enumerate([1, 2, 3, 4, 5])]
    w = everyone_a_root(outs)
    # 5 x 30 % = 1.5 samples off each end: half of the 2 and half of the 4 stay.
    r = trust_score(SUBJECT, outs, as_of=NOW, weights=w,
                    policies=[parse_policy("weighted-trimmed:pct=30"),
                              parse_policy("weighted-trimmed:pct=50")])
    assert r.scores == {"weighted-trimmed:pct=30": 3.0, "weighted-trimmed:pct=50": None}
    assert score(outs, as_of=NOW, policies=[Policy.parse("trimmed:pct=30")]).scores[
        "trimmed:pct=30"] == 3.0


def test_weighted_bayes_counts_each_rating_for_its_weight() -> None:
    ev = line(3)
    w = trust_weights(ev.graph(), [key(0)], subject=SUBJECT)
    outs = [rated(SUBJECT, key(0), 5, 1), rated(SUBJECT, key(3), 1, 2),
            rated(SUBJECT, key(77), 1, 3)]  # key(77) is not in the graph
    r = trust_score(SUBJECT, outs, as_of=NOW, weights=w, policies=[parse_policy(
        "weighted-bayes:prior=3,weight=2")])
    w3 = Fraction(w.weight(key(3)), WEIGHT_ONE)
    exact = (3 * 2 + 5 + w3 * 1) / (2 + 1 + w3)
    assert r.scores["weighted-bayes:prior=3,weight=2"] == float(round(exact * 10_000) / 10_000)
    assert r.raters == ((key(0), WEIGHT_ONE), (key(3), w.weight(key(3))), (key(77), 0))
    assert r.trusted_rated == float(round((1 + w3) * 10_000) / 10_000)


def test_parse_policy() -> None:
    assert str(parse_policy("weighted-bayes")) == "weighted-bayes:prior=3.5,weight=10"
    assert str(parse_policy("weighted-bayes:weight=5,prior=4")) == \
        "weighted-bayes:prior=4,weight=5"
    assert parse_policy("mean") == Policy.parse("mean")
    assert sorted(WEIGHTED_POLICIES) == sorted("weighted-" + n for n in
                                               ("mean", "window", "last", "trimmed", "bayes"))
    for bad in ("weighted-median", "weighted-bayes:k=1", "weighted-window:days=-1"):
        with pytest.raises(LocalProtocolError):
            parse_policy(bad)
    with pytest.raises(LocalProtocolError, match="not a weighted policy"):
        trust_score(SUBJECT, [], as_of=NOW, weights=None, policies=[parse_policy("mean")])
    with pytest.raises(LocalProtocolError, match="trades"):
        trust_score(SUBJECT, [rated(key(1), key(2), 5, 1)], as_of=NOW, weights=None)


def test_without_roots_the_scores_are_unweighted_and_say_so() -> None:
    outs = [rated(SUBJECT, key(10 + i), s, i) for i, s in enumerate([5, 4, 2])]
    r = trust_score(SUBJECT, outs, as_of=NOW, weights=None)
    plain = score(outs, as_of=NOW)
    assert not r.weighted and r.fallback is not None and "unweighted" in r.fallback
    assert r.scores == {"weighted-" + k: v for k, v in plain.scores.items()}
    assert r.trusted_rated == 3.0 and r.tier == plain.tier and r.graph is None
    obj = r.to_json_obj()
    assert obj["weighted"] is False and obj["roots"] == [] and obj["graph"] is None
    assert all(x["weight"] == 1.0 for x in obj["raters"])


FRESH = key(9999)


@pytest.mark.parametrize("bar", [
    {}, {"min_score": 1}, {"min_score": 0, "policy": "weighted-mean"}, {"min_trades": 1},
    {"tier": "bronze"}, {"tier": "regular", "min_trades": 0.5},
])
def test_a_fresh_pseudonym_never_passes(bar: dict[str, Any]) -> None:
    w = trust_weights(line(3).graph(), [key(0)], subject=FRESH)
    for weights in (w, None):
        report = trust_score(FRESH, [], as_of=NOW, weights=weights)
        verdict = weighted_meets(report, **bar)
        assert not verdict and verdict.reasons


def test_ratings_from_strangers_to_the_roots_pass_no_gate() -> None:
    w = trust_weights(line(3).graph(), [key(0)], subject=SUBJECT)
    outs = [rated(SUBJECT, key(7000 + i), 5, i) for i in range(30)]
    r = trust_score(SUBJECT, outs, as_of=NOW, weights=w)
    assert r.trusted_rated == 0.0 and set(r.scores.values()) == {None} and r.tier == "regular"
    assert not weighted_meets(r) and not weighted_meets(r, min_score=3)
    plain = score(outs, as_of=NOW)
    assert meets(plain, min_trades=20, min_score=4)  # the unweighted gate is fooled


def test_a_forked_subject_passes_nothing() -> None:
    ev = line(3)
    ev.add_forked(SUBJECT)
    w = trust_weights(ev.graph(), [key(0)], subject=SUBJECT)
    outs = [rated(SUBJECT, key(1), 5, 1), rated(SUBJECT, key(0), 5, 2)]
    r = trust_score(SUBJECT, outs, as_of=NOW, weights=w)
    assert r.forked and set(r.scores.values()) == {None} and r.to_json_obj()["subject_forked"]
    verdict = weighted_meets(r, tier="regular")
    assert not verdict and "forked" in verdict.reasons[0]


def test_weighted_meets_reasons_and_tiers() -> None:
    outs = [rated(SUBJECT, key(10 + i), 5, i, at=NOW - i * DAY) for i in range(12)]
    w = everyone_a_root(outs)
    r = trust_score(SUBJECT, outs, as_of=NOW, weights=w)
    assert r.tier == "gold" and r.window_weight == 12.0
    assert weighted_meets(r, tier="gold", min_trades=12, min_score=4)
    verdict = weighted_meets(r, tier="platinum", min_trades=13, min_score=4.9)
    assert len(verdict.reasons) == 3
    # A policy the report does not hold is computed from its samples.
    assert weighted_meets(r, min_score=5, policy="weighted-last:n=2")
    with pytest.raises(LocalProtocolError):
        weighted_meets(r, tier="diamond")
    with pytest.raises(LocalProtocolError, match="not a weighted policy"):
        weighted_meets(r, min_score=1, policy="bayes")


def test_weighted_completion_counts_trades_by_weight() -> None:
    outs = [rated(SUBJECT, key(1), 5, 1), rated(SUBJECT, key(3), 1, 2, kind=Outcome.STALLED),
            rated(SUBJECT, key(77), 1, 3, kind=Outcome.WITHHELD)]
    w = trust_weights(line(3).graph(), [key(1)], subject=SUBJECT)
    r = trust_score(SUBJECT, outs, as_of=NOW, weights=w)
    w3 = Fraction(w.weight(key(3)), WEIGHT_ONE)
    assert r.completion_rate == float(round(1 / (1 + w3) * 10_000) / 10_000)


def test_the_report_json_shape() -> None:
    w = trust_weights(line(3).graph(), [key(0)], subject=SUBJECT)
    r = trust_score(SUBJECT, [rated(SUBJECT, key(2), 4, 1)], as_of=NOW, weights=w)
    obj = r.to_json_obj()
    assert sorted(obj) == ["completion_rate", "dropped_roots", "fallback", "graph", "raters",
                           "roots", "scores", "selection", "subject_forked", "tier",
                           "trusted_rated", "view", "weighted", "window_mean", "window_weight"]
    assert obj["selection"] is None  # facts, not chains selected from a store (2.5)
    assert sorted(obj["graph"]) == ["edges", "left_out", "nodes", "operations", "steps",
                                    "theta"]
    assert obj["view"] == "subject" and obj["graph"]["left_out"] == 0  # not a node
    assert json.loads(json.dumps(obj, sort_keys=True)) == obj
    assert isinstance(r, TrustReport) and obj["roots"] == [key(0).to_text()]


# -- bad-mouthing: weighting must not cost ranking quality --------------------------------


def _kendall(xs: list[float], ys: list[float]) -> float:
    c = d = 0
    for i in range(len(xs)):
        for j in range(i + 1, len(xs)):
            s = (xs[i] - xs[j]) * (ys[i] - ys[j])
            c += s > 0
            d += s < 0
    return (c - d) / (c + d)


def test_with_30_percent_bad_mouthers_the_weighted_ranking_holds() -> None:
    """300 traders, 40 trades each; 30 % of raters give one star to everyone."""
    rng = random.Random(11)
    n = 300
    quality = [rng.uniform(1, 5) for _ in range(n)]
    bad = set(rng.sample(range(n), n * 3 // 10))

    def stars(rater: int, ratee: int) -> int:
        return 1 if rater in bad else min(5, max(1, round(quality[ratee] + rng.gauss(0, 0.5))))

    f = Facts()
    received: dict[int, list[TradeOutcome]] = {i: [] for i in range(n)}
    for k in range(n * 20):
        a, b = rng.sample(range(n), 2)
        sa, sb = stars(a, b), stars(b, a)
        t = f.trade(key(a), key(b), sa, sb)
        at = NOW - rng.randrange(300) * DAY
        for subject, rater, s in ((b, a, sa), (a, b, sb)):
            received[subject].append(TradeOutcome(
                trade=t, subject=key(subject), counterparty=key(rater), context=CTX,
                role=Role.PROPOSER, outcome=Outcome.RATED, stars=s, given=5, at=at,
                reason=str(k)))
    roots = [i for i in range(n) if i not in bad][:3]
    # A ranking of 297 subjects: the shared walk, spec/trust.md 4.5's approximation.
    w = trust_weights(f.ev.graph(), [key(r) for r in roots])
    subjects = [i for i in range(n) if i not in roots]
    mean = parse_policy("weighted-mean")
    scores = [trust_score(key(i), received[i], as_of=NOW, weights=w, shared_walk=True,
                          policies=[mean]).scores[str(mean)] or 0.0 for i in subjects]
    plain = [trust_score(key(i), received[i], as_of=NOW, weights=None,
                         policies=[mean]).scores[str(mean)] or 0.0 for i in subjects]
    truth = [quality[i] for i in subjects]
    weighted_tau, plain_tau = _kendall(scores, truth), _kendall(plain, truth)
    assert weighted_tau >= 0.8, (weighted_tau, plain_tau)
    assert weighted_tau >= plain_tau - 0.02


# -- vectors (spec/vectors/trust.json) ---------------------------------------------------


def test_the_vector_file_is_current() -> None:
    assert (SPEC / "vectors" / "trust.json").read_text(encoding="utf-8") == \
        trust_vectors.render(), "spec/vectors/trust.json is stale: python -m " \
        "shinyo.tools.trust_vectors spec/vectors"


def _vectors() -> list[dict[str, Any]]:
    doc = json.loads((SPEC / "vectors" / "trust.json").read_text(encoding="utf-8"))
    assert doc["schema"] == "shinyo-vectors/1" and doc["suite"] == "trust"
    assert doc["numberOfVectors"] == len(doc["vectors"])
    vectors: list[dict[str, Any]] = doc["vectors"]
    return vectors


@pytest.mark.parametrize("v", _vectors(), ids=lambda v: str(v["id"]))
def test_trust_vector(v: dict[str, Any]) -> None:
    assert v["expect"] == "valid"
    assert trust_vectors.run(v["input"]) == v["result"], v["comment"]
