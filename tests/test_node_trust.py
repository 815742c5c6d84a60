"""A node answers trust queries from its own store (the control command ``trust``).

Real nodes on 127.0.0.1 (``tests/_nodes.py``) whose stores were filled with
real chains before they opened (``Market``: every entry signed, every trade
through the two-party rules).  Scenario, by test identity: 1 is the node's own
pseudonym and the default root; 1 trades with 2 and 8, who both trade with the
subject 3 (4 stars each); the subject trades with its Sybils 4 and 5 (who
trade with nobody else) and with 6, who trades with 7 too: 4, 5 and 6 are
reached only through the subject, so in its view (spec/trust.md 4.5) they
weigh nothing.
"""

from __future__ import annotations

import base64
import json
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import trio

from shinyo import (
    Entry,
    ForkProof,
    LocalProtocolError,
    Participant,
    Propose,
    Pseudonym,
    TrustEvidence,
    TrustLimits,
    trust_score,
    trust_weights,
    verify_proof,
)
from shinyo.node import _commands
from shinyo.node._commands import ControlCommands
from shinyo.node._control import serve_control, write_token
from shinyo.node._node import STORE_FILE, Node, NodeError
from shinyo.node._store import Store
from shinyo.tools import cli
from shinyo.tools.trust_vectors import Market

from ._nodes import WAIT, holds, identity, running

START = int(time.time()) - 30 * 86_400  # entries in the past: verify refuses future ones
SUBJECT = 3


def p(n: int) -> Pseudonym:
    return identity(n).pseudonym


def market() -> Market:
    m = Market(start=START)
    m.trade(1, 2)
    m.trade(1, 8)
    m.trade(2, SUBJECT, 4, 5)  # 2 gives the subject 4 stars
    m.trade(8, SUBJECT, 4, 5)
    m.trade(SUBJECT, 4)
    m.trade(5, SUBJECT)
    m.trade(6, SUBJECT, 1, 5)  # 6 gives it 1
    m.trade(6, 7)
    return m


def fill(tmp: Path, n: int, m: Market, *, forks: tuple[ForkProof, ...] = ()) -> None:
    """Put every chain of ``m`` into node ``n``'s store, before it opens."""
    (tmp / f"node{n}").mkdir(parents=True, exist_ok=True)
    with Store.open(tmp / f"node{n}" / STORE_FILE) as store:
        for chain in m.chains().values():
            store.add_many(chain.entries)
        for fork in forks:
            store.add_fork(fork)


async def ask(node: Node, limits: TrustLimits | None = None, **args: Any) -> Any:
    answer = await ControlCommands(node, trust_limits=limits)("trust", args)
    assert json.loads(json.dumps(answer)) == answer  # what the socket carries
    return answer


def weights(answer: dict[str, Any]) -> dict[str, float]:
    return {r["counterparty"]: r["weight"] for r in answer["trust"]["raters"]}


async def test_a_subjects_raters_weighed_from_the_nodes_own_pseudonym(tmp_path: Path) -> None:
    m = market()
    fill(tmp_path, 1, m)
    async with running(tmp_path, 1) as node:
        r = await ask(node, pseudonym=p(SUBJECT).to_text())
        assert r["valid"] and r["default_roots"] and r["roots"] == [p(1).to_text()]
        assert not r["fetched"] and r["gate"] is None
        trust = r["trust"]
        assert trust["weighted"] and trust["view"] == "subject"
        assert trust["roots"] == [p(1).to_text()]
        w = weights(r)
        assert w[p(2).to_text()] > 0 and w[p(8).to_text()] > 0  # reached from the root
        assert w[p(4).to_text()] == w[p(5).to_text()] == w[p(6).to_text()] == 0.0
        assert trust["graph"]["left_out"] == 5  # the subject's ratings of 2, 4, 5, 6, 8
        assert trust["selection"]["stopped_by"] is None
        assert trust["selection"]["held"] == len(m.chains())
        assert r["proof"]["subject"] == p(SUBJECT).to_text()
        assert r["proof"]["counts"]["rated"] == 5 and "trades" not in r["proof"]
        # The same as a verifier with the whole store as evidence (spec/trust.md 2.5: no cut).
        bundle = node.proof(p(SUBJECT))
        report = verify_proof(bundle, now=r["as_of"])
        ev = TrustEvidence()
        ev.add_chains(m.chains().values())
        view = trust_weights(ev.graph(), [p(1)], subject=p(SUBJECT))
        mine = trust_score(p(SUBJECT), report.trades, as_of=r["as_of"], weights=view)
        expected = mine.to_json_obj()
        assert {**trust, "selection": None} == expected


async def test_named_roots_policies_and_a_gate(tmp_path: Path) -> None:
    fill(tmp_path, 1, market())
    async with running(tmp_path, 1) as node:
        subject = p(SUBJECT).to_text()
        r = await ask(node, pseudonym=subject, roots=[p(6).to_text()],
                      policies=["weighted-mean", "bayes"], as_of=START + 86_400,
                      gate={"min_trades": 0.5})
        assert not r["default_roots"] and r["roots"] == [p(6).to_text()]
        assert list(r["trust"]["scores"]) == ["weighted-mean"]
        assert list(r["proof"]["scores"]) == ["bayes:prior=3.5,weight=10"]
        assert r["as_of"] == START + 86_400
        assert weights(r)[p(6).to_text()] == 1.0 and weights(r)[p(2).to_text()] == 0.0
        assert r["trust"]["scores"]["weighted-mean"] == 1.0  # 6 gave one star
        assert r["gate"] == {"bar": {"min_score": None, "min_trades": 0.5, "policy": None,
                                     "tier": None}, "ok": True, "reasons": []}
        r = await ask(node, pseudonym=subject, gate={"min_score": 4.5,
                                                     "policy": "weighted-mean"})
        assert not r["gate"]["ok"] and "weighted-mean score 4.0 is below 4.5" in \
            r["gate"]["reasons"][0]
        r = await ask(node, pseudonym=subject, gate={})  # the default bar
        assert r["gate"]["ok"] is (r["trust"]["trusted_rated"] >= 1)
        # The subject is its own only root: no rater counts (spec/trust.md 4.5).
        r = await ask(node, pseudonym=p(1).to_text())
        assert r["valid"] and set(weights(r).values()) == {0.0}


async def test_a_subject_the_node_lacks_comes_from_a_peer(tmp_path: Path) -> None:
    m = market()
    fill(tmp_path, 2, m)
    async with running(tmp_path, 2) as holder, \
            running(tmp_path, 20, bootstrap=(holder,)) as node:
        assert node.ledger.chain(p(SUBJECT)) is None  # opened with an empty store
        await node.wait_until(lambda: bool(node.sessions), timeout=WAIT)
        lacked = node.ledger.chain(p(SUBJECT)) is None  # unless the sync was quicker
        r = await ask(node, pseudonym=p(SUBJECT).to_text(), roots=[p(1).to_text()])
        assert r["valid"] and r["fetched"] is lacked and r["proof"]["head_seq"] >= 1
        # What the answer weighs is what had arrived; once every chain is in, the same.
        chains = m.chains()
        await node.wait_until(lambda: all(holds(node, a, len(c)) for a, c in chains.items()),
                              timeout=WAIT)
        r = await ask(node, pseudonym=p(SUBJECT).to_text(), roots=[p(1).to_text()])
        assert not r["fetched"] and weights(r)[p(2).to_text()] > 0
        assert r["trust"]["selection"]["held"] == len(m.chains())


async def test_a_subject_nobody_holds_is_a_clear_error(tmp_path: Path) -> None:
    async with running(tmp_path, 1) as node:
        with pytest.raises(LocalProtocolError, match="holds no entries of"):
            await ask(node, pseudonym=p(SUBJECT).to_text())


async def test_a_forked_subject_is_an_answer_not_an_error(tmp_path: Path) -> None:
    m = market()
    first = m.who(SUBJECT).chain[1]
    other = Entry.create(identity(SUBJECT), seq=1, prev=bytes(32), timestamp=first.timestamp,
                         body=Propose(counterparty=p(9), context="market.example/books",
                                      terms=bytes(32)))
    fill(tmp_path, 1, m, forks=(ForkProof.from_entries(first, other),))
    async with running(tmp_path, 1) as node:
        r = await ask(node, pseudonym=p(SUBJECT).to_text())
        assert r["valid"] is False and r["failure_class"] == "forked"
        assert "seq 1" in r["message"]


@pytest.mark.parametrize(("args", "message"), [
    ({}, "missing argument 'pseudonym'"),
    ({"pseudonym": "sy1nope"}, "is not a pseudonym"),
    ({"pseudonym": 3}, "must be a pseudonym's text"),
    ({"roots": "sy1"}, "'roots' must be a list of strings"),
    ({"roots": ["x"]}, "trust root 'x' is not a pseudonym"),
    ({"roots": [identity(100 + i).pseudonym.to_text() for i in range(65)]},
     "65 trust roots; at most 64"),
    ({"policies": ["weighted-best"]}, "unknown policy 'weighted-best'"),
    ({"as_of": "2027-01-01"}, "'as_of' must be a time in whole seconds"),
    ({"as_of": True}, "'as_of' must be a time in whole seconds"),
    ({"contexts": ["Not A Context"]}, "argument 'contexts'"),
    ({"gate": {"min_score": -1}}, "min_score must be a number >= 0"),
    ({"gate": {"best": 1}}, "unknown condition 'best'"),
    ({"gate": {"tier": "legend"}}, "unknown tier 'legend'"),
    ({"gate": {"policy": "bayes"}}, "is not a weighted policy; use weighted-bayes"),
    ({"gate": []}, "'gate' must be an object"),
    ({"root": ["x"]}, "unknown argument 'root'"),
])
async def test_bad_arguments_say_what_to_fix(tmp_path: Path, args: dict[str, Any],
                                             message: str) -> None:
    async with running(tmp_path, 1) as node:
        full = {"pseudonym": p(SUBJECT).to_text(), **args} if args else {}
        with pytest.raises(NodeError, match=message):
            await ask(node, **full)


@pytest.mark.parametrize("limit", ["max_nodes", "max_edges"])
async def test_a_store_past_the_limits_is_answered_from_a_subset(tmp_path: Path,
                                                                 limit: str) -> None:
    m = market()
    fill(tmp_path, 1, m)
    async with running(tmp_path, 1) as node:
        whole = await ask(node, pseudonym=p(SUBJECT).to_text())
        # Lowered limits (a verifier MAY lower them): 1's chain and the first of
        # 2 and 8 (by key) fit, the second does not; as a rater it then weighs 0.
        limits = TrustLimits(**{limit: 2})
        r = await ask(node, limits, pseudonym=p(SUBJECT).to_text())
        s = r["trust"]["selection"]
        assert s["stopped_by"] == ("MAX_TRUST_NODES" if limit == "max_nodes"
                                   else "MAX_TRUST_EDGES")
        expected = TrustEvidence.select(m.chains(), [p(1)], subject=p(SUBJECT),
                                        limits=limits).selection
        assert expected is not None and expected.stopped_at is not None
        assert s == expected.to_json_obj()
        assert s["chains"] == 2 and s["stopped_hop"] == 1 and s["held"] == len(m.chains())
        assert s["stopped_at"] in (p(2).to_text(), p(8).to_text())
        assert r["trust"]["graph"]["nodes"] == 2
        assert weights(whole)[s["stopped_at"]] > 0 and weights(r)[s["stopped_at"]] == 0.0


async def test_the_cli_prints_the_answer(tmp_path: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    fill(tmp_path, 1, market())
    async with running(tmp_path, 1) as node, trio.open_nursery() as nursery:
        home = node.config.home
        await nursery.start(serve_control, home / node.config.control_socket,
                            write_token(home), ControlCommands(node))
        subject = p(SUBJECT).to_text()

        def shinyo(*args: str) -> int:
            return cli.main(["node", "trust", subject, "--home", str(home), *args])

        assert await trio.to_thread.run_sync(shinyo) == 0
        out = capsys.readouterr().out
        assert "weighted from 1 root(s) (this node's own pseudonym) in the subject's view " \
            "(5 own edge(s) left out)" in out
        assert "every chain the roots reach" in out and "weighted-bayes" in out
        assert await trio.to_thread.run_sync(shinyo, "--min-trades", "50") == 1
        assert "gate: fails: " in capsys.readouterr().out
        assert await trio.to_thread.run_sync(shinyo, "--json", "--policy", "weighted-mean",
                                             "--trust-root", p(2).to_text()) == 0
        doc = json.loads(capsys.readouterr().out)
        assert doc["roots"] == [p(2).to_text()] and list(doc["trust"]["scores"]) == \
            ["weighted-mean"]
        assert await trio.to_thread.run_sync(shinyo, "--trust-root", p(30).to_text()) == 0
        assert "the node holds no chain of a root, so no rater is reached" in \
            capsys.readouterr().out
        assert await trio.to_thread.run_sync(shinyo, "--policy", "nope") == 2
        assert "unknown policy 'nope'" in capsys.readouterr().err
        nursery.cancel_scope.cancel()


async def test_one_query_computes_at_a_time(tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    # The worker's CPU and memory are bounded per node, however many clients ask.
    running_now, most = [0], [0]
    lock = threading.Lock()
    real = _commands.answer

    def counted(*args: Any) -> Any:
        with lock:
            running_now[0] += 1
            most[0] = max(most[0], running_now[0])
        try:
            time.sleep(0.05)  # long enough for the other queries to arrive meanwhile
            return real(*args)
        finally:
            with lock:
                running_now[0] -= 1

    monkeypatch.setattr(_commands, "answer", counted)
    fill(tmp_path, 1, market())
    async with running(tmp_path, 1) as node:
        commands = ControlCommands(node)
        answers: list[Any] = []

        async def one() -> None:
            answers.append(await commands("trust", {"pseudonym": p(SUBJECT).to_text()}))

        async with trio.open_nursery() as nursery:
            for _ in range(3):
                nursery.start_soon(one)
        assert len(answers) == 3 and all(a["valid"] for a in answers)
        assert most[0] == 1


async def test_a_fetched_proof_waits_for_the_whole_chain(tmp_path: Path) -> None:
    # The subject's chain takes a dozen answers (256 entries each, wire.md 5):
    # the proof must not be built from the first of them (control `proof`).
    subject = Participant(identity(SUBJECT))
    entries = [subject.vouch(p(9), context="market.example/books", timestamp=START + i,
                             active=i % 2 == 0) for i in range(3000)]
    (tmp_path / "node2").mkdir()
    with Store.open(tmp_path / "node2" / STORE_FILE) as store:
        store.add_many(entries)
    async with running(tmp_path, 2) as holder, \
            running(tmp_path, 20, bootstrap=(holder,)) as node:
        await node.wait_until(lambda: bool(node.sessions), timeout=WAIT)
        answer = await ControlCommands(node)("proof", {"pseudonym": p(SUBJECT).to_text()})
        report = verify_proof(base64.b64decode(answer["bundle"]), now=START + 10**6)
        assert report.head_seq == len(entries)


async def test_a_subject_no_peer_holds_is_refused_without_waiting_out_the_fetch(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_commands, "PROOF_FETCH_TIMEOUT", 10 * WAIT)
    async with running(tmp_path, 1) as other, \
            running(tmp_path, 20, bootstrap=(other,)) as node:
        await node.wait_until(lambda: bool(node.sessions), timeout=WAIT)
        with trio.fail_after(WAIT), pytest.raises(LocalProtocolError, match="connected peers"):
            await ControlCommands(node)("proof", {"pseudonym": p(SUBJECT).to_text()})
