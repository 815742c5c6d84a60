"""The attack simulator (tools/sim.py, issue 6): small markets, the targets at small scale.

The full run (10,000 traders, 100,000 trades) is docs/SIMULATION.md's; these
markets are a few hundred traders so the file runs in seconds.  Every run is
seeded, so each assertion holds or fails the same way every time.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import math
import random
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from shinyo import RESPONSE_WINDOW, TrustEvidence, meets, score, trust_weights
from shinyo.tools import sim
from shinyo.tools import sim_scenarios as scen
from shinyo.tools.sim import DAY, STEP_SECONDS, T0, Market, SimConfig, SimError
from shinyo.tools.sim_plot import (
    Plot,
    PlotsUnavailable,
    Result,
    kendall_tau,
    to_json_obj,
    write_plots,
)

SMALL = SimConfig(traders=300, trades=3000, sybil_counts=(10, 1000), attack_edges=(1, 10),
                  malicious=(0.0, 0.3), identities=4, real_traders=12, real_trades=60)


def _table(result: Result, starts: str) -> list[tuple[Any, ...]]:
    (table,) = [t for t in result.tables if t.title.startswith(starts)]
    return list(table.rows)


# -- Kendall tau ---------------------------------------------------------------------------


def _tau_b_brute(xs: list[float], ys: list[float]) -> float:
    conc = disc = tx = ty = 0
    for i, j in itertools.combinations(range(len(xs)), 2):
        dx, dy = xs[i] - xs[j], ys[i] - ys[j]
        if dx == 0 and dy == 0:
            continue
        if dx == 0:
            tx += 1
        elif dy == 0:
            ty += 1
        elif dx * dy > 0:
            conc += 1
        else:
            disc += 1
    return (conc - disc) / math.sqrt((conc + disc + tx) * (conc + disc + ty))


def test_kendall_tau_matches_the_definition_with_ties() -> None:
    rng = random.Random(3)
    for n in (2, 3, 10, 57, 200):
        xs = [float(rng.randrange(6)) for _ in range(n)]  # many ties on both sides
        ys = [float(rng.randrange(4)) for _ in range(n)]
        if len(set(xs)) > 1 and len(set(ys)) > 1:
            assert kendall_tau(xs, ys) == pytest.approx(_tau_b_brute(xs, ys), abs=1e-12)
    assert kendall_tau([1, 2, 3, 4], [10, 20, 30, 40]) == 1.0
    assert kendall_tau([1, 2, 3, 4], [4, 3, 2, 1]) == -1.0
    assert math.isnan(kendall_tau([1, 1, 1], [1, 2, 3]))  # no untied pair in x
    with pytest.raises(SimError):
        kendall_tau([1, 2], [1])


# -- the two paths agree -------------------------------------------------------------------


def _every_case() -> tuple[Market, list[sim.Trade], int]:
    """A market whose trades hit every outcome the simulator models (see test below)."""
    m = Market("test-every-case")
    for q in (4.0, 3.0, 2.0, 5.0):
        m.add_trader(q)

    def trade(p: int, a: int, at: int, reveals: int, first: bool = False) -> sim.Trade:
        return m.add_trade(proposer=p, acceptor=a, at=at, proposer_stars=4, acceptor_stars=2,
                           reveals=reveals, acceptor_first=first)

    trades = [
        trade(0, 1, T0, 2),  # rated; 0 trades on past 30 days: 1's rating is confirmed
        trade(0, 2, T0 + 3600, 1),  # 2 withholds; 2 trades on: 0's trade expires
        trade(1, 3, T0 + 7200, 0, first=True),  # 3 (first) withholds, so 1 cannot reveal
        trade(2, 3, T0 + 10 * DAY, 2),
        trade(3, 0, T0 + 20 * DAY, 1),  # 0 withholds and goes quiet: 3's trade is withheld
        trade(0, 1, T0 + 33 * DAY, 2),  # 0's last entries, before that deadline passes
        trade(1, 2, T0 + 39 * DAY, 1),  # 2 withholds, still inside the window: pending
    ]
    return m, trades, T0 + 40 * DAY


def test_facts_path_classifies_like_verify_proof_on_signed_entries() -> None:
    market, trades, as_of = _every_case()
    people = sim.run_real(market, trades)
    reports = sim.real_reports(people, as_of=as_of)
    last = Market.last_entries(trades)
    seen = set()
    for who, (_, report) in enumerate(reports):
        fast = market.outcomes(who, trades, as_of=as_of, last_entry=last)
        assert [sim._normal(o) for o in fast] == [sim._normal(o) for o in report.trades]
        assert score(fast, as_of=as_of) == report.scores
        seen |= {(o.outcome.value, o.confirmed) for o in fast}
    # The market covers every class the simulator plays, confirmed or not.
    assert {c for c, _ in seen} == {"rated", "stalled", "expired", "withheld", "pending"}
    assert ("rated", True) in seen and ("rated", False) in seen


def test_a_withholder_is_rated_until_its_own_deadline_passes() -> None:
    market, trades, _ = _every_case()
    late = trades[-1]  # 2 withheld its reveal at T0 + 39 days
    at = late.at + 4 + RESPONSE_WINDOW
    before = market.outcome(late, 2, as_of=at, last_entry={})
    after = market.outcome(late, 2, as_of=at + 1, last_entry={})
    assert (before.outcome.value, before.stars) == ("rated", late.proposer_stars)
    assert (after.outcome.value, after.stars, after.at) == ("stalled", 1, at)
    with pytest.raises(SimError, match="after its steps"):
        market.outcome(late, 2, as_of=late.at + STEP_SECONDS - 1, last_entry={})


def test_agreement_scenario_checks_outcomes_scores_and_weights() -> None:
    result = sim.agreement(SMALL)
    (check,) = result.checks
    assert check.ok, check.detail
    (row,) = _table(result, "disagreements")
    assert row == (0, 0, 0, 0)
    facts, entries = _table(result, f"{SMALL.real_traders} traders")
    assert (facts[0], entries[0]) == ("facts", "entries") and facts[1:-1] == entries[1:-1]
    classes = dict(zip(result.tables[0].columns[1:-1], facts[1:-1], strict=True))
    assert classes["rated"] and classes["stalled"] and classes["expired"]


def test_trust_weights_from_facts_chains_and_proofs_are_equal() -> None:
    market, draws = sim.base_market(SMALL, traders=20, trades=90)
    played, _, _, _ = scen.strategic_market(market, draws, random.Random(1), first=3,
                                            withhold=0.1, retaliate=0.2)
    people = sim.run_real(market, played)
    as_of = T0 + SMALL.span_days * DAY + 30 * DAY
    chains, proofs = TrustEvidence(), TrustEvidence()
    chains.add_chains(p.chain for p in people)
    for data, _ in sim.real_reports(people, as_of=as_of):
        proofs.add_proof(data, now=as_of)
    roots = market.keys[:3]
    facts = sim.walk(market, played, SMALL)
    for evidence in (chains, proofs):
        weights = trust_weights(evidence.graph(), roots)
        assert (weights.weights, weights.mass, weights.theta) == (
            facts.weights, facts.mass, facts.theta)
    assert facts.edges < 2 * len(played)  # withheld trades are no edges


def test_the_graph_ignores_stars_so_one_walk_serves_every_rater_mix() -> None:
    market, draws = sim.base_market(SMALL, traders=100, trades=600)
    honest = sim.play(market, draws, sim.honest_rater(market))
    mouthing = sim.play(market, draws, lambda r, t, x: 1)
    a, b = sim.walk(market, honest, SMALL), sim.walk(market, mouthing, SMALL)
    assert a.weights == b.weights


# -- the targets, at small scale -------------------------------------------------------------


@pytest.fixture(scope="module")
def sybil_result() -> Result:
    return scen.sybil(SMALL)


def test_sybil_gain_is_flat_in_the_number_of_sybils(sybil_result: Result) -> None:
    star, ring = sybil_result.checks
    assert star.ok and ring.ok, (star.detail, ring.detail)
    rows = _table(sybil_result, "attacker")
    for g in SMALL.attack_edges:
        few, many = [r for r in rows if r[0] == g]
        assert many[3] > few[3] + 1  # unweighted bayes: more Sybils, more score
        for k in (5, 7):  # weighted bayes, Sybils rating only the attacker or in a ring
            assert abs(many[k] - few[k]) / few[k] < 0.001  # flat: the attacker's view
            assert many[k] < 3.5  # the true quality is 2: nowhere near a passing score
        # S >= g: the Sybils behind the attack edges hold the same weight, however many.
        assert (few[6], few[8]) == (many[6], many[8])
    # More attack edges carry more trust in (spec/trust.md 4.4) ...
    assert rows[-1][6] > rows[1][6] and rows[-1][8] > rows[1][8]
    # ... and edges among the Sybils keep more of it in the region.
    assert all(r[8] > r[6] for r in rows)
    flat = _table(sybil_result, "flatness")
    assert all(abs(r[k]) < 0.1 for r in flat for k in (3, 4, 7, 8))


def test_the_shared_walk_lends_the_attackers_mass_to_its_sybils(sybil_result: Result) -> None:
    rows = _table(sybil_result, "g=")
    assert {r[0] for r in rows} == {"star", "ring"} and len(rows) == 4
    for _, _, shared_bayes, shared_weight, view_bayes, view_weight in rows:
        assert shared_bayes > view_bayes and shared_weight > view_weight
    # In the shared walk the gain grows with S; in the view it does not.
    for kind in ("star", "ring"):
        few, many = [r for r in rows if r[0] == kind]
        assert many[2] > few[2] and abs(many[4] - few[4]) < 0.001


def test_the_shared_walk_is_close_for_honest_traders(sybil_result: Result) -> None:
    ((n, median_diff, largest, change, _),) = _table(sybil_result, "the shared walk against")
    assert n == scen.HONEST_VIEWS and median_diff < 0.01 and largest < 0.05 and change < 1


def test_bad_mouthing_keeps_the_ranking_with_weights() -> None:
    result = scen.badmouth(SMALL)
    (check,) = result.checks
    assert check.ok, check.detail
    clean, mouthed = _table(result, "Kendall")
    assert clean[0] == 0.0 and mouthed[0] == 0.3
    assert all(m < c for c, m in zip(clean[1:], mouthed[1:], strict=True))  # it costs something


def test_whitewashing_and_fresh_pseudonyms() -> None:
    result = scen.whitewash(SMALL)
    rows = {(r[0], r[1], r[2]): r for r in _table(result, f"{SMALL.identities} identities")}
    for gate in ("default bar (no condition)", "bayes >= 4.0, 5 rated", "tier silver"):
        # Sybils with no honest trades never get an identity past a weighted gate ...
        assert rows[gate, "Sybil build", "weighted"][3:6] == ("never", "-", SMALL.identities)
        # ... while they do past the unweighted one.
        assert rows[gate, "Sybil build", "unweighted"][5] == 0
    # The default weighted bar has no score in it: cheating never trips it.
    assert rows["default bar (no condition)", "honest build", "weighted"][6] == SMALL.identities
    verdicts = dict(_table(result, "a fresh pseudonym"))
    assert not any(v for k, v in verdicts.items() if k != "meets() with no condition")
    # The check says whether the unweighted meets() with no condition lets a
    # fresh pseudonym through (spec/trust.md 12, question 4).
    (check,) = result.checks
    assert check.ok is not meets(score([], as_of=T0)).ok
    assert verdicts["meets() with no condition"] is meets(score([], as_of=T0)).ok


def test_milking_trips_sooner_under_recent_policies() -> None:
    result = scen.onoff(dataclasses.replace(SMALL, identities=2))
    victims = {r[0]: float(str(r[1]).split()[0]) for r in _table(result, "milking")}
    assert victims["last"] < victims["window"] < victims["mean"]
    assert victims["decay"] < victims["mean"]
    shares = {r[0]: r[1] for r in _table(result, "on-off")}
    assert all(0 < s < 1 for s in shares.values())
    assert shares["last"] < shares["mean"]


def test_withholding_never_pays() -> None:
    result = scen.nonreveal(SMALL)
    (check,) = result.checks
    assert check.ok, check.detail
    rows = {r[0]: r for r in _table(result, "means over")}
    assert rows["withholders"][6] == 0.0 and rows["withholders"][7] == 1.0  # reveal rates
    assert rows["withholders"][3] < -0.5 and rows["withholders"][5] < -0.5
    assert 0 < rows["retaliators"][6] < 1
    classes = {r[0]: r for r in _table(result, "outcome classes")}
    assert classes["withholders"][1] == 0  # never rated: every trade stalls


def test_a_run_is_the_same_every_time() -> None:
    config = dataclasses.replace(SMALL, traders=120, trades=800, sybil_counts=(10, 50),
                                 attack_edges=(2,))

    def strip(result: Result) -> dict[str, object]:
        return to_json_obj(dataclasses.replace(result, seconds=0.0))

    assert strip(scen.sybil(config)) == strip(scen.sybil(config))
    other = dataclasses.replace(config, seed=2)
    assert strip(scen.sybil(config)) != strip(scen.sybil(other))


# -- configuration, command line, plots ------------------------------------------------------


@pytest.mark.parametrize(("change", "ok"), [
    ({"traders": 100, "trades": 100}, True), ({"traders": 99}, False),
    ({"traders": 200_000, "trades": 200_000}, True), ({"traders": 200_001}, False),
    ({"traders": 300, "trades": 299}, False), ({"trades": 2_000_001}, False),
    ({"span_days": 1, "trades": DAY // STEP_SECONDS}, True),
    ({"span_days": 1, "trades": DAY // STEP_SECONDS + 1}, False),
    ({"roots": 0}, False), ({"roots": 64, "real_traders": 64}, True), ({"roots": 65}, False),
    ({"real_traders": 64}, True), ({"real_traders": 65}, False), ({"real_traders": 1}, False),
    ({"roots": 3, "real_traders": 3}, True), ({"roots": 4, "real_traders": 3}, False),
    ({"malicious": (0.0, 1.0)}, False),
])
def test_config_bounds(change: dict[str, object], ok: bool) -> None:
    base = {"traders": 300, "trades": 3000}
    if ok:
        SimConfig(**{**base, **change})  # type: ignore[arg-type]
    else:
        with pytest.raises(SimError):
            SimConfig(**{**base, **change})  # type: ignore[arg-type]


def test_trades_and_real_runs_refuse_what_the_protocol_would() -> None:
    market = Market("test-refusals")
    a, b = market.add_trader(3.0), market.add_trader(3.0)
    for bad in ({"acceptor": a}, {"proposer_stars": 0}, {"acceptor_stars": 6}, {"reveals": 3}):
        with pytest.raises(SimError):
            market.add_trade(**{"proposer": a, "acceptor": b, "at": T0, "proposer_stars": 3,
                                "acceptor_stars": 3, **bad})  # type: ignore[arg-type]
    one = market.add_trade(proposer=a, acceptor=b, at=T0, proposer_stars=3, acceptor_stars=3)
    two = market.add_trade(proposer=b, acceptor=a, at=T0 + STEP_SECONDS - 1, proposer_stars=3,
                           acceptor_stars=3)
    with pytest.raises(SimError, match="STEP_SECONDS"):
        sim.run_real(market, [one, two])
    assert one.id != two.id


def test_command_line_json(capsys: pytest.CaptureFixture[str]) -> None:
    code = sim.main(["--scenario", "real", "--traders", "100", "--trades", "500", "--json",
                     "--jobs", "1"])
    out = json.loads(capsys.readouterr().out)
    assert code == 0 and out["schema"] == "shinyo-sim/1" and out["missed"] == []
    (scenario,) = out["scenarios"]
    assert scenario["name"] == "real" and scenario["checks"][0]["ok"] is True


def test_command_line_rejects_bad_sizes(capsys: pytest.CaptureFixture[str]) -> None:
    assert sim.main(["--traders", "5"]) == 2
    assert "--traders must be" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        sim.main(["--scenario", "nonesuch"])


@pytest.fixture
def no_matplotlib(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name in [n for n in sys.modules if n == "matplotlib" or n.startswith("matplotlib.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import fails
    yield


def _plotted() -> Result:
    example = Plot(name="example", title="t", xlabel="x", ylabel="y", logx=True,
                   series=(("unweighted", ((1.0, 2.0), (10.0, 3.0))),
                           ("weighted", ((1.0, 2.0), (10.0, 2.1)))))
    return Result(name="example", title="t", path="p", tables=(), plots=(example,))


def test_plots_without_matplotlib_say_how_to_get_them(no_matplotlib: None, tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(PlotsUnavailable, match=r"pip install shinyo\[plots\]"):
        write_plots([_plotted()], tmp_path)
    code = sim.main(["--scenario", "real", "--traders", "100", "--trades", "500", "--jobs", "1",
                     "--plots", str(tmp_path)])
    assert code == 0 and "pip install shinyo[plots]" in capsys.readouterr().err


def test_plots_with_matplotlib(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    (path,) = write_plots([_plotted()], tmp_path / "plots")
    assert path.name == "example.png" and path.read_bytes().startswith(b"\x89PNG")
