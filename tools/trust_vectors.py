"""The trust suite of spec/vectors/trust.json (spec/trust.md 11), deterministically.

    python -m shinyo.tools.trust_vectors spec/vectors

Each vector is evidence (completed trades, retractions, vouches, forked
pseudonyms, a context filter) -- or a node's ``store`` of real chains, from
which the evidence is selected (spec/trust.md 2.5) under lowered ``limits`` --
trust roots, and one subject's classified trades; ``result`` is the graph's
edges, every mass, theta and every weight in the subject's view (spec/trust.md
4.5: the walk without the subject's own out-edges), and the ``trust`` report,
exactly as spec/trust.md computes them.
``shared`` is the shared walk's masses, theta and weights where they differ
from the subject's view (informative), else null.  Keys are fixed
(``craft.ident``), so the file is byte-identical on every run.
"""

from __future__ import annotations

import json
import random
import sys
from collections.abc import Sequence
from itertools import count
from pathlib import Path
from typing import Any

from shinyo import Chain, Entry, Participant, Pseudonym, terms_digest
from shinyo._constants import PROTOCOL_VERSION
from shinyo._trust import TrustEvidence, TrustLimits, TrustWeights, trust_weights
from shinyo._trust_policy import WEIGHTED_POLICIES, parse_policy, trust_score

from .craft import CTX, T0, ident, nonce, salt
from .scoring_vectors import outcomes_from_json

DAY = 86_400
NOW = T0 + 400 * DAY
SCHEMA = "shinyo-vectors/1"
GENERATOR = "python -m shinyo.tools.gen_vectors"


def _text(p: Pseudonym) -> str:
    return p.to_text()


def run(inp: dict[str, Any]) -> dict[str, Any]:
    """What spec/trust.md computes for one vector's ``input`` (the tests use this too)."""
    if "store" in inp:
        return _run_selected(inp)
    ev = TrustEvidence(contexts=inp["contexts"])
    for t in inp["trades"]:
        ev.add_trade(trade=bytes.fromhex(t["trade"]), context=t["context"],
                     proposer=Pseudonym.from_text(t["proposer"]),
                     acceptor=Pseudonym.from_text(t["acceptor"]),
                     proposer_stars=t["proposer_stars"], acceptor_stars=t["acceptor_stars"])
    for r in inp["retractions"]:
        ev.add_retraction(trade=bytes.fromhex(r["trade"]), rater=Pseudonym.from_text(r["rater"]))
    for v in inp["vouches"]:
        ev.add_vouch(voucher=Pseudonym.from_text(v["voucher"]),
                     subject=Pseudonym.from_text(v["subject"]), context=v["context"],
                     active=v["active"], seq=v["seq"])
    for f in inp["forked"]:
        ev.add_forked(Pseudonym.from_text(f))
    return _result(ev, inp)


def _run_selected(inp: dict[str, Any]) -> dict[str, Any]:
    """A vector over a store: select its evidence (spec/trust.md 2.5), then as above."""
    chains: dict[Pseudonym, Chain] = {}
    for raws in inp["store"]["chains"]:
        chain = Chain.from_entries(Entry.decode(bytes.fromhex(h)) for h in raws)
        chains[chain.author] = chain
    limits = inp["limits"]
    ev = TrustEvidence.select(
        chains, [Pseudonym.from_text(r) for r in inp["roots"]],
        subject=Pseudonym.from_text(inp["subject"]),
        forked=[Pseudonym.from_text(f) for f in inp["store"]["forked"]],
        contexts=inp["contexts"], limits=None if limits is None else TrustLimits(**limits))
    assert ev.selection is not None
    return {"selected": [[_text(p), hop] for p, hop in ev.selection.taken],
            **_result(ev, inp)}


def _result(ev: TrustEvidence, inp: dict[str, Any]) -> dict[str, Any]:
    graph = ev.graph()
    roots = [Pseudonym.from_text(r) for r in inp["roots"]]
    subject = Pseudonym.from_text(inp["subject"])
    weights = trust_weights(graph, roots, subject=subject) if roots else None
    report = trust_score(subject, outcomes_from_json(inp["outcomes"], subject),
                         as_of=inp["as_of"], weights=weights,
                         policies=[parse_policy(p) for p in inp["policies"]])
    name = {k: _text(Pseudonym(key=k)) for k in graph.nodes}
    edges = [[name[graph.nodes[u]], name[graph.nodes[graph.targets[j]]], graph.weights[j]]
             for u in range(len(graph.nodes))
             for j in range(graph.offsets[u], graph.offsets[u + 1])]
    view = _figures(weights)
    shared = None if weights is None else _figures(trust_weights(graph, roots))
    return {
        "edges": edges,
        **view,
        "shared": None if shared == view else shared,
        "trust": report.to_json_obj(),
    }


def _figures(weights: TrustWeights | None) -> dict[str, Any]:
    """A walk's masses, theta and weights, by pseudonym text."""
    mass = {} if weights is None else weights.mass
    weight = {} if weights is None else weights.weights
    return {
        "mass": {_text(Pseudonym(key=k)): mass[k] for k in sorted(mass)},
        "theta": None if weights is None else weights.theta,
        "weights": {_text(Pseudonym(key=k)): weight[k] for k in sorted(weight)},
    }


def _p(n: int) -> str:
    return ident(n).pseudonym.to_text()


class _Builder:
    """Evidence for one vector, written the way the spec speaks of it."""

    def __init__(self) -> None:
        self.trades: list[dict[str, Any]] = []
        self.retractions: list[dict[str, Any]] = []
        self.vouches: list[dict[str, Any]] = []
        self.forked: list[str] = []
        self._n = 0

    def trade(self, p: int, a: int, ps: int = 5, as_: int = 5, ctx: str = CTX) -> str:
        self._n += 1
        tid = (0x7472 << 240 | self._n).to_bytes(32, "big").hex()
        self.trades.append({"trade": tid, "context": ctx, "proposer": _p(p), "acceptor": _p(a),
                            "proposer_stars": ps, "acceptor_stars": as_})
        return tid

    def retract(self, tid: str, rater: int) -> None:
        self.retractions.append({"trade": tid, "rater": _p(rater)})

    def vouch(self, voucher: int, subject: int, seq: int, active: bool = True,
              ctx: str = CTX) -> None:
        self.vouches.append({"voucher": _p(voucher), "subject": _p(subject), "context": ctx,
                             "active": active, "seq": seq})

    def input(self, *, roots: list[int], subject: int, outcomes: list[dict[str, Any]],
              policies: list[str] | None = None, contexts: list[str] | None = None
              ) -> dict[str, Any]:
        return {"trades": self.trades, "retractions": self.retractions,
                "vouches": self.vouches, "forked": self.forked, "contexts": contexts,
                "roots": [_p(r) for r in roots], "subject": _p(subject), "outcomes": outcomes,
                "as_of": NOW,
                "policies": list(WEIGHTED_POLICIES) if policies is None else policies}


class Market:
    """Participants (``ident(n)``) trading for real: every entry signed, every chain valid.

    Every entry reaches everyone, in chain order, so each participant could
    hold every chain; :meth:`chains` gives each author's own.  Nonces, salts
    and times are fixed, so the chains are byte-identical on every run.
    """

    def __init__(self, *, start: int = T0) -> None:
        self.people: dict[int, Participant] = {}
        self._clock = count(1)
        self._start = start

    def who(self, n: int) -> Participant:
        if n not in self.people:
            self.people[n] = Participant(ident(n))
            for other in self.people.values():  # the newcomer hears every chain so far
                if other is not self.people[n]:
                    for e in other.chain.entries:
                        self.people[n].receive(e)
        return self.people[n]

    def _post(self, entry: Entry) -> Entry:
        for p in self.people.values():
            if p.pseudonym != entry.author:
                p.receive(entry)
        return entry

    def _t(self) -> int:
        return self._start + 60 * next(self._clock)

    def trade(self, i: int, j: int, si: int = 5, sj: int = 5, *, ctx: str = CTX,
              reveal: bool = True) -> bytes:
        """``i`` proposes to ``j``; both rate (``si`` is i's rating of j) and reveal."""
        a, b = self.who(i), self.who(j)
        n = next(self._clock)
        p = self._post(a.propose(b.pseudonym, context=ctx, timestamp=self._t(),
                                 terms=terms_digest(b"item %d" % n, salt=salt(n % 100))))
        self._post(b.accept(p.id, timestamp=self._t()))
        if reveal:
            self._post(a.commit(p.id, stars=si, nonce=nonce(1), timestamp=self._t()))
            self._post(b.commit(p.id, stars=sj, nonce=nonce(2), timestamp=self._t()))
            self._post(a.reveal(p.id, timestamp=self._t()))
            self._post(b.reveal(p.id, timestamp=self._t()))
        return bytes(p.id)

    def vouch(self, i: int, j: int, *, active: bool = True, ctx: str = CTX) -> None:
        self._post(self.who(i).vouch(self.who(j).pseudonym, context=ctx, active=active,
                                     timestamp=self._t()))

    def retract(self, trade: bytes, i: int) -> None:
        self._post(self.who(i).retract(trade, timestamp=self._t()))

    def chains(self) -> dict[Pseudonym, Chain]:
        return {p.pseudonym: p.chain for p in self.people.values() if len(p.chain)}

    def store(self, *, forked: Sequence[int] = ()) -> dict[str, Any]:
        """The ``store`` of a vector's input: every chain as hex entries, by author key."""
        chains = sorted(self.chains().values(), key=lambda c: c.author.key)
        return {"chains": [[e.encode().hex() for e in c.entries] for c in chains],
                "forked": [_p(n) for n in forked]}


def _rated(cp: int, stars: int, days_ago: int) -> dict[str, Any]:
    return {"outcome": "rated", "stars": stars, "at": NOW - days_ago * DAY, "given": 5,
            "counterparty": _p(cp), "confirmed": True}


R, R2 = 100, 99  # roots
SUBJECT = 50


def trust_vectors() -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []

    def add(comment: str, inp: dict[str, Any]) -> None:
        out.append({"comment": comment, "input": inp, "expect": "valid", "result": run(inp)})

    # A line from the root, and a subject rated by two of its members and a stranger.
    def line() -> _Builder:
        b = _Builder()
        b.trade(R, 1)
        b.trade(1, 2)
        b.trade(2, 3)
        b.trade(3, 4)
        b.trade(2, SUBJECT, 5, 4)
        b.trade(4, SUBJECT, 5, 2)
        b.trade(66, SUBJECT, 5, 5)  # 66 traded only with the subject
        return b

    # 67's trade with the subject is not complete (the subject has not revealed):
    # it is no evidence, so 67 is not a node.
    line_outcomes = [_rated(2, 4, 10), _rated(4, 2, 20), _rated(66, 5, 30),
                     {**_rated(67, 5, 1), "given": None}]
    add("a line from the root: mass fades with every hop; 66, known only through the "
        "subject's own edge, gets none in the subject's view (some in the shared walk); 67, "
        "not in the evidence, none",
        line().input(roots=[R], subject=SUBJECT, outcomes=line_outcomes))
    add("no roots: every weighted policy is its unweighted twin, flagged as a fallback",
        line().input(roots=[], subject=SUBJECT, outcomes=line_outcomes))

    b = _Builder()
    b.trade(R, 1)
    b.retract(b.trade(1, 2), 1)  # 1 withdrew its rating of 2: 1 -> 2 goes, 2 -> 1 stays
    b.trade(2, SUBJECT, 5, 5)
    add("a retracted rating removes its own edge only: 2 is no longer reached",
        b.input(roots=[R], subject=SUBJECT, outcomes=[_rated(2, 5, 5)]))

    b = _Builder()
    b.vouch(R, 1, seq=3)
    b.vouch(R, 2, seq=4)
    b.vouch(R, 1, seq=5, active=False)
    b.trade(1, SUBJECT, 5, 1)
    b.trade(2, SUBJECT, 5, 5)
    add("vouch, then revoke: the entry with the highest seq decides; only 2 is reached",
        b.input(roots=[R], subject=SUBJECT, outcomes=[_rated(1, 1, 3), _rated(2, 5, 4)]))

    b = _Builder()
    b.trade(R, 1)
    b.trade(1, 2)
    b.trade(2, SUBJECT)
    b.trade(1, SUBJECT)
    b.forked.append(_p(1))
    add("a forked pseudonym is not a node: it weighs 0 and passes nothing on",
        b.input(roots=[R], subject=SUBJECT, outcomes=[_rated(1, 5, 3), _rated(2, 4, 4)]))

    b = _Builder()
    b.trade(R, 1)
    b.trade(1, SUBJECT)
    b.forked.append(_p(R))
    add("every root forked: every weight is 0, every score null",
        b.input(roots=[R], subject=SUBJECT, outcomes=[_rated(1, 5, 3)]))

    b = _Builder()
    for _ in range(6):
        b.trade(R, 1)
    b.trade(R, 2)
    b.vouch(R, 2, seq=9)
    b.vouch(R, 2, seq=10, ctx="market.example/games")
    b.trade(3, R)
    add("pair cap: six trades count as four; a vouch adds two, once for two contexts",
        b.input(roots=[R], subject=1, outcomes=[_rated(R, 5, 1)]))

    b = _Builder()
    b.trade(R, 1)
    b.trade(1, SUBJECT, 5, 3)
    add("out floor: a root with one trade passes a quarter of its onward mass",
        b.input(roots=[R], subject=SUBJECT, outcomes=[_rated(1, 3, 2)]))

    # Honest ring around the root; one attack edge h=3 -> s=20; the attacker 60 is
    # rated 2 by two honest members and 5 by six Sybils (20..25).
    b = _Builder()
    ring = [R, 1, 2, 3, 4, 5]
    for i, u in enumerate(ring):
        b.trade(u, ring[(i + 1) % len(ring)])
    b.trade(3, 20)
    sybils = list(range(20, 26))
    for i, s in enumerate(sybils):
        b.trade(s, sybils[(i + 1) % len(sybils)])
        b.trade(s, 60)
    b.trade(1, 60, 2, 5)
    b.trade(4, 60, 2, 5)
    attack = [_rated(1, 2, 5), _rated(4, 2, 6)] + [_rated(s, 5, 7 + k)
                                                  for k, s in enumerate(sybils)]
    add("six Sybils behind one attack edge: their weight is bounded by the edge; in the "
        "subject's view the attacker's own edges carry nothing into their ring",
        b.input(roots=[R], subject=60, outcomes=attack))

    # spec/trust.md 4.5: the subject's own out-edges.  An honest triangle R, 1, 2;
    # the subject 50 trades with 2 and with its Sybils 30..34, and vouches for 30
    # and 31.  Only the subject's edges reach the Sybils.
    def stuffed() -> _Builder:
        b = _Builder()
        b.trade(R, 1)
        b.trade(R, 2)
        b.trade(1, 2)
        b.trade(2, SUBJECT, 5, 2)
        for s in range(30, 35):
            b.trade(s, SUBJECT)
        b.vouch(SUBJECT, 30, seq=7)
        b.vouch(SUBJECT, 31, seq=8)
        return b

    stuffed_outcomes = [_rated(2, 2, 3)] + [_rated(s, 5, 4 + s - 30) for s in range(30, 35)]
    add("a subject trading with and vouching for its own Sybils: in its view they weigh 0 "
        "(the shared walk would give them the subject's mass)",
        stuffed().input(roots=[R], subject=SUBJECT, outcomes=stuffed_outcomes))
    b = stuffed()
    b.trade(3, 33)  # one attack edge, signed by 3, whom the roots reach
    b.trade(R, 3)
    add("the same with one honest attack edge into the Sybils: in the subject's view only "
        "the Sybil it reaches weighs anything",
        b.input(roots=[R], subject=SUBJECT, outcomes=stuffed_outcomes))
    add("the same evidence scoring 1: in 1's view the edges of 50 count like anyone's, so "
        "its Sybils weigh something here -- where they cannot lift 50's own score",
        stuffed().input(roots=[R], subject=1, outcomes=[_rated(R, 5, 2), _rated(2, 4, 3)]))

    b = _Builder()
    b.trade(R, 1)
    b.trade(R, 2)
    b.trade(1, 2)
    b.trade(R2, 2)
    root_outcomes = [_rated(1, 5, 1), _rated(2, 4, 2)]
    add("the subject is the only root: its mass stays with it, so its raters get none",
        b.input(roots=[R], subject=R, outcomes=root_outcomes))
    add("the subject is one of two roots: its raters count for what the other root gives",
        b.input(roots=[R, R2], subject=R, outcomes=root_outcomes))

    b = _Builder()
    b.trade(R, 1)
    b.trade(R, 2, ctx="market.example/games")
    b.trade(1, SUBJECT)
    b.trade(2, SUBJECT, ctx="market.example/games")
    add("a context filter: trades in other contexts are not evidence",
        b.input(roots=[R], subject=SUBJECT, outcomes=[_rated(1, 5, 2), _rated(2, 1, 3)],
                contexts=[CTX]))

    b = _Builder()
    for u in (1, 2, 3):
        b.trade(R, u)
    b.trade(1, 4)
    b.trade(4, 5)
    add("weighted-trimmed cuts fractional weight; weights below one; rounding",
        b.input(roots=[R], subject=SUBJECT,
                outcomes=[_rated(1, 1, 1), _rated(2, 5, 2), _rated(3, 4, 3), _rated(4, 2, 4),
                          _rated(5, 5, 5)],
                policies=["weighted-trimmed:pct=25", "weighted-trimmed:pct=10",
                          "weighted-bayes:prior=3,weight=2.5", "weighted-mean",
                          "weighted-last:n=2", "weighted-window:days=3"]))

    b = _Builder()
    for u in (1, 2, 3, 4):
        b.vouch(R, u, seq=u)
        b.vouch(R2, u, seq=u)
    add("two roots and four members with tied masses: theta and the ties",
        b.input(roots=[R, R2], subject=1, outcomes=[_rated(R, 5, 1), _rated(2, 4, 1)]))

    add("a fresh pseudonym: no outcomes, every score null, nothing trusted",
        line().input(roots=[R], subject=77, outcomes=[]))

    rng = random.Random(20260101)
    b = _Builder()
    members = [R, *range(1, 40)]
    for _ in range(120):
        p, a = rng.sample(members, 2)
        tid = b.trade(p, a, rng.randint(1, 5), rng.randint(1, 5))
        if rng.random() < 0.05:
            b.retract(tid, p)
    for k in range(10):
        b.vouch(rng.choice(members), rng.choice(range(1, 40)), seq=k + 1)
    b.vouches = [v for v in b.vouches if v["voucher"] != v["subject"]]
    outcomes = [_rated(m, rng.randint(1, 5), rng.randint(0, 120)) for m in members[1:30]]
    add("a 40-member community with pseudo-random trades (seed 20260101)",
        b.input(roots=[R], subject=SUBJECT, outcomes=outcomes))

    # spec/trust.md 2.5: evidence selected from a node's store of real chains.
    store = _store()
    chosen = [_rated(3, 4, 10), _rated(4, 2, 20), _rated(30, 5, 30)]

    def selected(roots: list[int], limits: dict[str, int] | None) -> dict[str, Any]:
        return {"store": store, "limits": limits, "contexts": None,
                "roots": [_p(r) for r in roots], "subject": _p(SUBJECT), "outcomes": chosen,
                "as_of": NOW, "policies": ["weighted-bayes", "weighted-mean"]}

    add("a store within the limits: every chain the hops reach is taken, by hop and then "
        "key; 80 and 81 (no path from the root), 70 (forked) and 82 (named by a trade the "
        "root never rated) are left out, and the weights are those of the whole store",
        selected([R], None))
    add("the same store with max_edges 10: the selection stops inside hop 2, before the "
        "first chain whose evidence would pass the limit; later chains are left out",
        selected([R], {"max_edges": 10}))
    add("the same store with max_nodes 6: the node limit cuts it at the same chain",
        selected([R], {"max_nodes": 6}))
    add("three roots, one forked: the forked root's chain is not taken; the other two "
        "start at hop 0, in key order, and 81 is reached from 80",
        selected([R, 70, 80], None))
    return out


def _store() -> dict[str, Any]:
    """A node's store for the vectors of spec/trust.md 2.5: a root R, two hops of members,
    the subject with a Sybil, an island, a forked pseudonym and an unrated proposal."""
    m = Market()
    m.trade(R, 1)
    m.trade(2, R)
    m.trade(1, 3)
    m.trade(2, 4, 4, 5)
    m.trade(3, SUBJECT, 5, 4)
    m.retract(m.trade(4, SUBJECT, 5, 2), 4)  # 4 retracts its rating: 4 -> 50 goes
    m.trade(SUBJECT, 30)
    m.vouch(R, 5)  # 5 is reached by the vouch alone
    m.trade(5, 6)
    m.trade(2, 70)  # 70 is forked: its chain is not taken
    m.trade(80, 81)  # no path from R
    m.trade(R, 82, reveal=False)  # R never rated 82: 82 is not a name of R's chain
    return m.store(forked=[70])


def render() -> str:
    vectors = trust_vectors()
    doc = {
        "schema": SCHEMA,
        "suite": "trust",
        "protocol_version": PROTOCOL_VERSION,
        "generator": GENERATOR,
        "numberOfVectors": len(vectors),
        "vectors": [{"id": i, **v} for i, v in enumerate(vectors, start=1)],
    }
    return json.dumps(doc, indent=1, ensure_ascii=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    out = Path(args[0] if args else "spec/vectors")
    out.mkdir(parents=True, exist_ok=True)
    (out / "trust.json").write_text(render(), encoding="utf-8")
    print(f"wrote {out / 'trust.json'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
