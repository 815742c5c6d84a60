"""The subject's view (spec/trust.md 4.5): a subject's raters are weighed without its out-edges."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shinyo import LocalProtocolError, TrustEvidence, TrustWeights
from shinyo._trust import TRUST_STEPS, WEIGHT_ONE, trust_weights
from shinyo._trust_policy import parse_policy, trust_score, weighted_meets
from shinyo.tools import cli

from .conftest import CTX
from .test_trust import NOW, SPEC, Facts, World, _attack_bound, _evidence, facts, key, line, rated
from .test_trust import vouches as vouch_lists


def figures(w: TrustWeights) -> tuple[object, ...]:
    return w.mass, w.weights, w.theta, w.operations


def _without_out_edges(trades: list[tuple[int, int, int, int, bool]],
                       vs: list[tuple[int, int, int, bool]], x: int) -> TrustEvidence:
    """The same evidence, with every rating and vouch of ``x`` withdrawn by real entries'
    rules: its ratings retracted, its vouches revoked by a later seq (spec/trust.md 2)."""
    ev = _evidence(trades, vs)
    for n, (p, a, _, _, _) in enumerate(trades):
        if p != a and x in (p, a):
            ev.add_retraction(trade=(0x5452 << 240 | n).to_bytes(32, "big"), rater=key(x))
    for v, s, _, _ in vs:
        if v == x and s != x:
            ev.add_vouch(voucher=key(x), subject=key(s), context=CTX, active=False, seq=99)
    return ev


@given(trades=facts, vs=vouch_lists, x=st.integers(0, 11), roots=st.sets(
    st.integers(0, 11), min_size=1, max_size=3))
@settings(max_examples=80, deadline=None)
def test_the_view_is_the_walk_on_the_graph_without_the_subjects_out_edges(
        trades: list[tuple[int, int, int, int, bool]], vs: list[tuple[int, int, int, bool]],
        x: int, roots: set[int]) -> None:
    """spec/trust.md 4.5, against an independent construction of the same graph."""
    named = [key(r) for r in roots]
    graph = _evidence(trades, vs).graph()
    view = trust_weights(graph, named, subject=key(x))
    cut = _without_out_edges(trades, vs, x).graph()
    assert cut.nodes == graph.nodes and cut.out_edges(key(x)) == {}
    assert figures(view) == figures(trust_weights(cut, named))
    assert view.left_out == len(graph.out_edges(key(x))) and view.subject == key(x)
    assert view.view == "subject" and view.operations <= TRUST_STEPS * (graph.edges
                                                                          - view.left_out)
    if not graph.out_edges(key(x)):  # nothing left out: the shared walk's figures
        assert figures(view) == figures(trust_weights(graph, named))


def test_pseudonyms_that_deal_only_with_the_subject_change_nothing_in_its_view() -> None:
    subject = key(500)
    before = line(5)
    Facts(before).trade(key(3), subject, 2, 5)
    ev = line(5)
    f = Facts(ev)
    f.trade(key(3), subject, 2, 5)
    for j in range(50):  # 50 Sybils: each trades with the subject, 10 vouched for by it
        f.trade(key(1000 + j), subject)
        if j < 10:
            ev.add_vouch(voucher=subject, subject=key(1000 + j), context=CTX, active=True,
                         seq=j + 1)
    one = trust_weights(before.graph(), [key(0)], subject=subject)
    many = trust_weights(ev.graph(), [key(0)], subject=subject)
    assert (one.mass, one.weights, one.theta) == (many.mass, many.weights, many.theta)
    assert many.left_out == 51
    # In the shared walk the subject lends them its mass.
    shared = trust_weights(ev.graph(), [key(0)])
    assert all(shared.weight(key(1000 + j)) > 0 for j in range(50))
    assert all(many.weight(key(1000 + j)) == 0 for j in range(50))


@given(st.data())
@settings(max_examples=40, deadline=None)
def test_the_sybil_bound_holds_for_the_subjects_own_sybils(data: st.DataObject) -> None:
    """spec/trust.md 4.4 in the subject's view: the subject's edges into its region are
    not attack edges any more, whatever their number and weight."""
    honest = data.draw(st.integers(2, 10))
    s = data.draw(st.integers(1, 25))
    f = Facts()
    for a, b in data.draw(st.lists(st.tuples(st.integers(0, honest - 1),
                                             st.integers(0, honest - 1)), max_size=25)):
        if a != b:
            f.trade(key(a), key(b))
    for a, b in data.draw(st.lists(st.tuples(st.integers(0, s - 1), st.integers(0, s - 1)),
                                   max_size=40)):
        if a != b:
            f.trade(key(1000 + a), key(1000 + b))
    for u, j in data.draw(st.lists(st.tuples(st.integers(0, honest - 1), st.integers(0, s - 1)),
                                   max_size=3)):
        f.trade(key(u), key(1000 + j))  # honest attack edges
    subject = key(999)
    for u in data.draw(st.lists(st.integers(0, honest - 1), min_size=1, max_size=4)):
        f.trade(key(u), subject)  # the subject's honest trades: it is reached
    for j in data.draw(st.lists(st.integers(0, s - 1), min_size=1, max_size=40)):
        f.trade(subject, key(1000 + j))  # and its own dealings with its Sybils
        f.ev.add_vouch(voucher=subject, subject=key(1000 + j), context=CTX, active=True,
                       seq=1 + j)
    g = f.ev.graph()
    w = trust_weights(g, [key(0)], subject=subject)
    region = {key(1000 + j).key for j in range(s)}
    bound = _attack_bound(g, w, region, without=subject)
    assert sum(m for k, m in w.mass.items() if k in region) <= bound
    if w.theta is not None:
        assert sum(v for k, v in w.weights.items() if k in region) <= \
            WEIGHT_ONE * bound / w.theta


def test_a_subject_that_is_a_root_keeps_its_mass() -> None:
    ev = line(3)
    outs = [rated(key(0), key(1), 5, 1)]
    alone = trust_weights(ev.graph(), [key(0)], subject=key(0))
    assert alone.weights == {key(0).key: WEIGHT_ONE} and alone.theta is None
    report = trust_score(key(0), outs, as_of=NOW, weights=alone)
    assert report.trusted_rated == 0.0 and not weighted_meets(report)
    Facts(ev).trade(key(9), key(1))
    two = trust_weights(ev.graph(), [key(0), key(9)], subject=key(0))
    assert two.weight(key(1)) > 0 and two.weight(key(0)) == WEIGHT_ONE


def test_trust_score_refuses_weights_walked_for_another_view() -> None:
    ev = line(3)
    bayes = parse_policy("weighted-bayes")
    outs = [rated(key(2), key(1), 4, 1), rated(key(2), key(3), 5, 2)]
    shared = trust_weights(ev.graph(), [key(0)])
    with pytest.raises(LocalProtocolError, match=r"shared walk.*subject=subject"):
        trust_score(key(2), outs, as_of=NOW, weights=shared)
    with pytest.raises(LocalProtocolError, match="view, not"):
        trust_score(key(2), outs, as_of=NOW,
                    weights=trust_weights(ev.graph(), [key(0)], subject=key(1)))
    with pytest.raises(LocalProtocolError, match="view, not"):  # even when asked to share
        trust_score(key(2), outs, as_of=NOW, shared_walk=True,
                    weights=trust_weights(ev.graph(), [key(0)], subject=key(1)))
    approx = trust_score(key(2), outs, as_of=NOW, weights=shared, shared_walk=True)
    exact = trust_score(key(2), outs, as_of=NOW,
                        weights=trust_weights(ev.graph(), [key(0)], subject=key(2)))
    assert (approx.view, exact.view) == ("shared", "subject")
    assert approx.to_json_obj()["view"] == "shared" and exact.graph is not None
    assert exact.graph["left_out"] == 2 and approx.graph is not None
    assert approx.graph["left_out"] == 0
    # key(2) passes mass on to key(3) in the shared walk only: 3 weighs more there.
    assert dict(approx.raters)[key(3)] > dict(exact.raters)[key(3)]
    assert approx.scores[str(bayes)] is not None and exact.scores[str(bayes)] is not None
    # The shared walk decides no gate (spec/trust.md 4.5); the view does, and a
    # policy the report lacks is computed with the report's own walk.
    with pytest.raises(LocalProtocolError, match="decides no gate"):
        weighted_meets(approx)
    assert weighted_meets(exact, min_score=1, policy="weighted-last:n=1")
    assert trust_score(key(2), outs, as_of=NOW, weights=None).view is None
    with pytest.raises(LocalProtocolError, match="Pseudonym"):
        trust_weights(ev.graph(), [key(0)], subject=b"\x00" * 32)  # type: ignore[arg-type]


def test_shared_and_view_agree_for_a_subject_with_no_out_edges() -> None:
    ev = line(4)
    stranger = key(777)
    a = trust_weights(ev.graph(), [key(0)], subject=stranger)
    b = trust_weights(ev.graph(), [key(0)])
    assert figures(a) == figures(b) and a.left_out == 0 and a.subject == stranger


# -- vectors: the subject's own edges matter ---------------------------------------------


def _vectors() -> list[dict[str, Any]]:
    doc = json.loads((SPEC / "vectors" / "trust.json").read_text(encoding="utf-8"))
    vectors: list[dict[str, Any]] = doc["vectors"]
    return vectors


def test_vectors_show_where_the_view_differs_from_the_shared_walk() -> None:
    differ = [v for v in _vectors() if v["result"]["shared"] is not None]
    same = [v for v in _vectors() if v["result"]["shared"] is None]
    assert len(differ) >= 8 and same
    for v in differ:
        r = v["result"]
        assert (r["mass"], r["theta"], r["weights"]) != (
            r["shared"]["mass"], r["shared"]["theta"], r["shared"]["weights"]), v["comment"]
        assert r["trust"]["graph"]["left_out"] > 0, v["comment"]
        assert r["trust"]["view"] == "subject"
    stuffed = [v for v in differ if "its own Sybils" in v["comment"]]
    assert len(stuffed) == 1
    r = stuffed[0]["result"]
    sybil_raters = [x for x in r["trust"]["raters"] if x["weight"] == 0.0]
    assert len(sybil_raters) == 5  # in the subject's view ...
    assert all(r["shared"]["weights"].get(x["counterparty"], 0) > 0 for x in sybil_raters)
    # ... and the shared walk would have given each of them weight.


# -- shinyo verify weighs the subject in its own view ------------------------------------


def test_verify_weighs_the_subjects_raters_in_its_view(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # 0 is the root; 1 trades with the root and with the subject 2; the subject
    # trades with its Sybils 3 and 4, who trade with nobody else.
    w = World(5)
    w.trade(0, 1)
    w.trade(1, 2, 5, 2)
    w.trade(2, 3)
    w.trade(4, 2)
    files = {}
    for i in (1, 2):
        files[i] = tmp_path / f"p{i}.proof"
        files[i].write_bytes(w.bundle(i))
    as_of = w.t + 86_400
    when = dt.datetime.fromtimestamp(as_of, dt.UTC).isoformat()
    args = ["verify", str(files[2]), "--policy", "weighted-bayes", "--trust-root",
            w.who(0).to_text(), "--with-bundle", str(files[1]), "--as-of", when]
    assert cli.main(args) == 0
    assert "weighted from 1 root(s) in the subject's view (3 own edge(s) left out)" in \
        capsys.readouterr().out
    assert cli.main([*args, "--json"]) == 0
    trust = json.loads(capsys.readouterr().out)["trust"]
    weights = {x["counterparty"]: x["weight"] for x in trust["raters"]}
    assert weights[w.who(1).to_text()] > 0
    assert weights[w.who(3).to_text()] == weights[w.who(4).to_text()] == 0.0
    assert trust["view"] == "subject" and trust["graph"]["left_out"] == 3
    # The same evidence through the library, the one path of trust_score's docstring.
    ev = TrustEvidence()
    report = ev.add_proof(files[2].read_bytes(), now=as_of)
    ev.add_proof(files[1].read_bytes(), now=as_of)
    view = trust_weights(ev.graph(), [w.who(0)], subject=report.subject)
    mine = trust_score(report.subject, report.trades, as_of=as_of, weights=view,
                       policies=[parse_policy("weighted-bayes")])
    assert mine.to_json_obj() == trust
    shared = trust_weights(ev.graph(), [w.who(0)])
    assert shared.weight(w.who(3)) > 0  # what the subject would have lent them
