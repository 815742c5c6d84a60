"""Evidence selected from a store that passes the limits (spec/trust.md 2.5).

The chains are real (``Market``: every entry signed, every trade through the
two-party rules).  The reference for each cut is the definition itself: the
longest prefix of the order (by hop, then key) whose evidence, taken with
:meth:`TrustEvidence.add_chains`, fits the limits.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import pytest

from shinyo import (
    Chain,
    Commit,
    LocalProtocolError,
    Propose,
    Pseudonym,
    Reveal,
    rating_commitment,
)
from shinyo import _trust as trust
from shinyo._body import Accept
from shinyo._trust import (
    MAX_TRUST_ROOTS,
    TRUST_STEPS,
    TrustEvidence,
    TrustLimits,
    TrustOversize,
    TrustSelection,
    TrustWeights,
    trust_weights,
)
from shinyo._trust_policy import trust_score
from shinyo.tools.trust_vectors import Market

from .conftest import CTX, T0, identity, nonce, terms
from .test_trust import NOW, rated

R = 100
GAMES = "market.example/games"


def p(m: Market, n: int) -> Pseudonym:
    return m.who(n).pseudonym


def figures(w: TrustWeights) -> tuple[object, ...]:
    """What a selection within the limits keeps exactly; the graph's counts (nodes, edges,
    ``left_out``) are of the evidence taken."""
    return (dict(w.mass), w.theta, dict(w.weights), w.operations)


def whole(chains: Mapping[Pseudonym, Chain], forked: Sequence[Pseudonym] = ()) -> TrustEvidence:
    """Every chain held, as ``shinyo verify --with-store`` takes them (no selection)."""
    ev = TrustEvidence()
    ev.add_chains(chains.values())
    for f in forked:
        ev.add_forked(f)
    return ev


def random_market(seed: int, people: int = 14, trades: int = 26) -> Market:
    rng = random.Random(seed)
    m = Market()
    members = [R, *range(1, people)]
    for _ in range(trades):
        i, j = rng.sample(members, 2)
        reveal = rng.random() < 0.9
        tid = m.trade(i, j, rng.randint(1, 5), rng.randint(1, 5),
                      ctx=GAMES if rng.random() < 0.1 else "market.example/books",
                      reveal=reveal)
        if reveal and rng.random() < 0.1:
            m.retract(tid, i)
    for _ in range(3):
        i, j = rng.sample(members, 2)
        m.vouch(i, j)
    return m


# -- within the limits the selection changes no weight -----------------------------------


@pytest.mark.parametrize("seed", range(4))
def test_within_the_limits_the_weights_are_those_of_the_whole_store(seed: int) -> None:
    m = random_market(seed)
    chains = m.chains()
    roots = [p(m, R)]
    selected = TrustEvidence.select(chains, roots)
    assert selected.selection is not None and not selected.selection.cut
    full = whole(chains)
    for subject in [*chains, p(m, 77)]:  # every chain's author, and a stranger
        mine = trust_weights(selected.graph(), roots, subject=subject)
        assert figures(mine) == figures(trust_weights(full.graph(), roots, subject=subject))
    assert selected.graph().edges <= full.graph().edges


def test_chains_more_than_trust_steps_hops_out_are_not_taken() -> None:
    m = Market()
    line = [R, *range(1, TRUST_STEPS + 4)]
    for a, b in itertools.pairwise(line):
        m.trade(a, b)
    chains = m.chains()
    ev = TrustEvidence.select(chains, [p(m, R)])
    s = ev.selection
    assert s is not None and s.hops == TRUST_STEPS and not s.cut
    assert [p(m, n) for n in line[:TRUST_STEPS + 1]] == [who for who, _ in s.taken]
    assert s.chains == TRUST_STEPS + 1 and s.held == len(line)
    # The chains left out could not have changed a mass: the walk has TRUST_STEPS steps.
    for subject in (p(m, line[-1]), p(m, 5)):
        assert figures(trust_weights(ev.graph(), [p(m, R)], subject=subject)) == \
            figures(trust_weights(whole(chains).graph(), [p(m, R)], subject=subject))


def test_the_subset_does_not_depend_on_the_order_of_the_chains() -> None:
    m = random_market(7)
    chains = m.chains()
    roots = [p(m, R), p(m, 3)]
    limits = TrustLimits(max_edges=20)
    first = TrustEvidence.select(chains, roots, limits=limits)
    items = list(chains.items())
    for seed in range(3):
        random.Random(seed).shuffle(items)
        again = TrustEvidence.select(dict(items), roots[::-1], limits=limits)
        assert again.selection == first.selection
        assert again.graph() == first.graph()


# -- each limit, hit through the selection ---------------------------------------------------


def _prefix_fits(chains: list[Chain], limits: TrustLimits) -> tuple[bool, str | None]:
    ev = TrustEvidence()
    ev.add_chains(chains)
    if ev.nodes > limits.max_nodes:
        return False, "MAX_TRUST_NODES"
    if ev.items > limits.max_edges:
        return False, "MAX_TRUST_EDGES"
    return True, None


@pytest.mark.parametrize("limit", ["max_nodes", "max_edges"])
def test_each_limit_cuts_at_the_longest_prefix_that_fits(limit: str) -> None:
    m = random_market(11)
    chains = m.chains()
    roots = [p(m, R)]
    full = TrustEvidence.select(chains, roots).selection
    assert full is not None
    order = [chains[who] for who, _ in full.taken]
    hits = 0
    top = whole(chains).nodes if limit == "max_nodes" else whole(chains).items
    for value in range(1, top + 1):
        limits = TrustLimits(**{limit: value})
        ev = TrustEvidence.select(chains, roots, limits=limits)
        s = ev.selection
        assert s is not None
        k = 0
        while k < len(order) and _prefix_fits(order[:k + 1], limits)[0]:
            k += 1
        assert [who for who, _ in s.taken] == [c.author for c in order[:k]], value
        if k < len(order):
            hits += 1
            assert s.stopped_at == order[k].author and s.stopped_hop == full.taken[k][1]
            assert s.stopped_by == _prefix_fits(order[:k + 1], limits)[1]
            assert s.stopped_by == ("MAX_TRUST_NODES" if limit == "max_nodes"
                                    else "MAX_TRUST_EDGES")
        else:
            assert not s.cut
        assert ev.nodes <= limits.max_nodes and ev.items <= limits.max_edges
    assert hits > 3  # the limit cut the selection at several places


def test_the_report_says_where_the_evidence_was_cut() -> None:
    m = random_market(11)
    chains = m.chains()
    subject = p(m, 5)
    ev = TrustEvidence.select(chains, [p(m, R)], limits=TrustLimits(max_edges=12))
    w = trust_weights(ev.graph(), [p(m, R)], subject=subject)
    obj = trust_score(subject, [rated(subject, p(m, 4), 5, 1)], as_of=NOW,
                      weights=w).to_json_obj()
    s = ev.selection
    assert s is not None and s.cut and s.stopped_at is not None
    assert obj["selection"] == {
        "chains": s.chains, "held": len(chains), "hops": s.taken[-1][1],
        "stopped_by": "MAX_TRUST_EDGES", "stopped_at": s.stopped_at.to_text(),
        "stopped_hop": s.stopped_hop}


def test_forked_roots_alone_past_the_node_limit_are_oversize() -> None:
    m = random_market(1)
    roots = [p(m, R), p(m, 1)]
    limits = TrustLimits(max_nodes=1)
    with pytest.raises(TrustOversize, match="more than 1 pseudonyms"):
        TrustEvidence.select(m.chains(), roots, forked=roots, limits=limits)
    ev = TrustEvidence.select(m.chains(), roots, forked=roots[:1], limits=limits)
    # R, forked, is the one node; 1's chain alone adds nothing (a trade needs both
    # chains), and the next chain would add a second node.
    assert ev.nodes == 1 and ev.selection is not None
    assert ev.selection.taken == ((p(m, 1), 0),)
    assert ev.selection.stopped_by == "MAX_TRUST_NODES" and ev.selection.stopped_hop == 1


def test_the_roots_limit_and_no_roots() -> None:
    m = random_market(1)
    with pytest.raises(LocalProtocolError, match="no trust roots"):
        TrustEvidence.select(m.chains(), [])
    many = [Pseudonym(key=i.to_bytes(32, "big")) for i in range(MAX_TRUST_ROOTS + 1)]
    with pytest.raises(LocalProtocolError, match=f"at most {MAX_TRUST_ROOTS}"):
        TrustEvidence.select(m.chains(), many)
    assert TrustEvidence.select(m.chains(), many[:-1]).selection is not None


# -- what is followed ----------------------------------------------------------------------


def test_forked_chains_are_not_taken_and_not_followed() -> None:
    m = Market()
    m.trade(R, 1)
    m.trade(1, 70)
    m.trade(70, 2)  # 2 is reached only through the forked 70
    m.vouch(1, 70)
    chains = m.chains()
    forked = [p(m, 70)]
    ev = TrustEvidence.select(chains, [p(m, R)], forked=forked)
    s = ev.selection
    assert s is not None and [who for who, _ in s.taken] == [p(m, R), p(m, 1)]
    g = ev.graph()
    assert g.forked == {p(m, 70).key} and p(m, 70) not in g and p(m, 2) not in g
    assert g.out_edges(p(m, 1)) == {p(m, R): 1}  # the vouch for 70 counts for nothing
    subject = p(m, 1)
    assert figures(trust_weights(g, [p(m, R)], subject=subject)) == \
        figures(trust_weights(whole(chains, forked).graph(), [p(m, R)], subject=subject))
    # A forked subject is shown forked, named by the evidence or not (2.3).
    stranger = p(m, 71)
    ev = TrustEvidence.select(chains, [p(m, R)], subject=stranger, forked=[*forked, stranger])
    report = trust_score(stranger, [], as_of=NOW,
                         weights=trust_weights(ev.graph(), [p(m, R)], subject=stranger))
    assert report.forked and stranger.key in ev.graph().forked
    # A forked root is dropped (4.1): its chain is not taken either.
    ev = TrustEvidence.select(chains, [p(m, 70)], forked=forked)
    assert ev.selection is not None and ev.selection.taken == ()
    assert trust_weights(ev.graph(), [p(m, 70)]).dropped_roots == (p(m, 70),)


def test_names_are_rated_trades_and_active_vouches_in_the_contexts_kept() -> None:
    m = Market()
    m.trade(R, 1)
    m.trade(R, 2, reveal=False)  # R never rated 2: no edge out of R, so not followed
    m.trade(R, 3, ctx=GAMES)
    m.vouch(R, 4)
    m.vouch(R, 5)
    m.vouch(R, 5, active=False)  # revoked: not followed
    m.trade(4, 6)
    m.trade(2, 7)  # 2 and 5 hold chains, but nothing followed leads to them
    m.trade(5, 8)
    ev = TrustEvidence.select(m.chains(), [p(m, R)])
    assert ev.selection is not None
    assert {who for who, _ in ev.selection.taken} == {p(m, n) for n in (R, 1, 3, 4, 6)}
    ev = TrustEvidence.select(m.chains(), [p(m, R)], contexts=["market.example/books"])
    assert ev.selection is not None
    assert {who for who, _ in ev.selection.taken} == {p(m, n) for n in (R, 1, 4, 6)}


class Reads(Mapping[Pseudonym, Chain]):
    """The chains, counting which are read: the selection reads only what it reaches."""

    def __init__(self, chains: dict[Pseudonym, Chain]) -> None:
        self.chains = chains
        self.read: list[Pseudonym] = []

    def __getitem__(self, key: Pseudonym) -> Chain:
        self.read.append(key)
        return self.chains[key]

    def __iter__(self) -> Iterator[Pseudonym]:
        raise AssertionError("the selection never lists the store")

    def __len__(self) -> int:
        return len(self.chains)


def test_a_cut_reads_no_chain_past_it_and_checks_each_trade_once(
        monkeypatch: pytest.MonkeyPatch) -> None:
    m = Market()
    m.trade(R, 1)
    m.trade(R, 2)
    for s in range(30, 60):  # a Sybil crowd behind 2
        m.trade(2, s)
        m.trade(s, s + 100)
    store = Reads(m.chains())
    checks: list[Any] = []
    complete = trust._complete

    def counted(*args: Any) -> Any:
        checks.append(args)
        return complete(*args)

    monkeypatch.setattr(trust, "_complete", counted)
    ev = TrustEvidence.select(store, [p(m, R)], limits=TrustLimits(max_edges=40))
    s = ev.selection
    assert s is not None and s.stopped_hop == 2
    hops = dict(s.taken)
    assert set(store.read) <= {*hops, s.stopped_at}  # nothing at hop 3 was read
    assert len(store.read) == len(set(store.read))  # each once
    # One two-party check per trade, when its second chain comes (the last one's
    # trades were checked, then left out with it).
    assert len({args[0].id for args in checks}) == len(checks) >= ev.items // 2


def test_a_selection_validates_itself() -> None:
    a, b = Pseudonym(key=bytes(32)), Pseudonym(key=bytes([1]) * 32)
    TrustSelection(taken=((a, 0), (b, 0)), held=2)
    with pytest.raises(LocalProtocolError, match="by hop"):
        TrustSelection(taken=((b, 0), (a, 0)), held=2)
    with pytest.raises(LocalProtocolError, match="at most"):
        TrustSelection(taken=((a, 0),), held=0)
    with pytest.raises(LocalProtocolError, match="names its limit"):
        TrustSelection(taken=(), held=0, stopped_by="MAX_TRUST_NODES")
    with pytest.raises(LocalProtocolError, match="select takes"):
        TrustEvidence.select({a: Chain(b)}, [a])
    for bad in [dict(taken=(), held=-1), dict(taken=(), held=True),
                dict(taken=((a, -1),), held=1), dict(taken=((a.key, 0),), held=1),
                dict(taken=((a, 0), (a, 1)), held=2),
                dict(taken=(), held=1, stopped_by="MAX_TRUST_NODES", stopped_at=a.key,
                     stopped_hop=0),
                dict(taken=(), held=1, stopped_by="MAX_TRUST_NODES", stopped_at=a,
                     stopped_hop=-1)]:
        with pytest.raises(LocalProtocolError):
            TrustSelection(**bad)  # type: ignore[arg-type]


def test_a_trade_that_breaks_the_two_party_rules_is_no_evidence_here_either() -> None:
    # Each chain valid alone, but the acceptance names another context (shinyo.md 7.7).
    a, b = identity(1), identity(2)
    prop, acc = Chain(a.pseudonym), Chain(b.pseudonym)
    proposal = prop.append_new(a, timestamp=T0, body=Propose(
        counterparty=b.pseudonym, context=CTX, terms=terms()))
    acc.append_new(b, timestamp=T0 + 1, body=Accept(trade=proposal.id, proposer=a.pseudonym,
                                                    context=GAMES))
    ids = []
    for chain, me, them, ctx, ack in ((prop, a, b, CTX, None), (acc, b, a, GAMES, "mine")):
        c = rating_commitment(trade=proposal.id, context=ctx, rater=me.pseudonym,
                              ratee=them.pseudonym, stars=5, nonce=nonce(3), tags=(),
                              comment=None)
        ids.append(chain.append_new(me, timestamp=T0 + 2, body=Commit(
            trade=proposal.id, commitment=c, ack=ids[0].id if ack else None)))
    prop.append_new(a, timestamp=T0 + 3, body=Reveal(trade=proposal.id, stars=5,
                                                     nonce=nonce(3), ack=ids[1].id))
    acc.append_new(b, timestamp=T0 + 4, body=Reveal(trade=proposal.id, stars=5,
                                                    nonce=nonce(3)))
    empty = Chain(identity(3).pseudonym)  # a store may list an author with no entry yet
    held = {a.pseudonym: prop, b.pseudonym: acc, empty.author: empty}
    ev = TrustEvidence.select(held, [a.pseudonym, empty.author])
    assert ev.selection is not None and ev.selection.chains == 2 and ev.items == 0
    with pytest.raises(LocalProtocolError, match="cut by"):
        TrustSelection(taken=(), held=0, stopped_by="MAX_TRUST_BUNDLES",  # type: ignore[arg-type]
                       stopped_at=a.pseudonym, stopped_hop=0)
