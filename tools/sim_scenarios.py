"""The scenarios of ``shinyo sim`` (issue 6); docs/SIMULATION.md explains each one.

Each starts from one honest market (:func:`base_market`), adds its attackers, and
scores whom it looks at with unweighted policies and their weighted twins.
"""

from __future__ import annotations

import itertools
import math
import random
from collections.abc import Callable, Iterable, Mapping, Sequence
from fractions import Fraction
from statistics import mean, median
from typing import Final

import shinyo
from shinyo import WEIGHT_ONE, Policy, meets, parse_policy, score, trust_score, weighted_meets
from shinyo._constants import MAX_STARS, MIN_STARS
from shinyo._scoring import Sample

from .sim import (
    DAY,
    STEP_SECONDS,
    T0,
    Draw,
    Market,
    SimConfig,
    Trade,
    base_market,
    clip_stars,
    honest_rater,
    index,
    play,
    rng_for,
    twins,
    views,
    walk,
)
from .sim_plot import Check, Plot, Result, Table, kendall_tau, quantile

FACTS: Final = ("facts path: TrustEvidence.add_trade facts and TradeOutcomes classified by the "
                "simulator (checked against signed entries by 'real'); scores by the core")
SHARED: Final = ("the shared walk for ranking every trader (spec/trust.md 4.5, informative: "
                 "one walk, not one per trader)")
VIEWS: Final = "each scored identity weighed in its own view (spec/trust.md 4.5)"


def _both(market: Market, who: int, outcomes: Sequence[shinyo.TradeOutcome], *, as_of: int,
          weights: shinyo.TrustWeights, pairs: Sequence[tuple[Policy, Policy]]
          ) -> tuple[shinyo.ScoreReport, shinyo.TrustReport]:
    """``who``'s unweighted report and its weighted twin, from the core.

    ``weights`` are ``who``'s view, or the shared walk of a ranking scenario.
    """
    plain = score(outcomes, as_of=as_of, policies=[p for p, _ in pairs])
    weighted = trust_score(market.keys[who], outcomes, as_of=as_of, weights=weights,
                           policies=[w for _, w in pairs], shared_walk=weights.subject is None)
    return plain, weighted


def _mine(views: Mapping[int, shinyo.TrustWeights] | None, who: int
          ) -> shinyo.TrustWeights | None:
    """``who``'s view, or None to score unweighted."""
    return None if views is None else views[who]


def _deal(market: Market, who: int, partner: int, at: int, *, to_who: int, by_who: int
          ) -> shinyo.TradeOutcome:
    """One completed trade of ``who`` with ``partner``, as ``who``'s outcome."""
    t = market.add_trade(proposer=partner, acceptor=who, at=at, proposer_stars=to_who,
                         acceptor_stars=by_who)
    return market.outcome(t, who, as_of=at + STEP_SECONDS, last_entry={})


def _pct(values: Sequence[float]) -> str:
    return f"{median(values):.4g} ({quantile(values, 0.1):.4g}-{quantile(values, 0.9):.4g})"


# -- Sybil region ----------------------------------------------------------------------


def sybil(config: SimConfig) -> Result:
    """An attacker rated 2 stars by 10 honest partners adds S Sybils behind g attack edges.

    The attacker is weighed in its own view (spec/trust.md 4.5), as ``shinyo
    verify`` weighs it; at the middle g the shared walk is shown beside it.
    """
    market, draws = base_market(config)
    base = play(market, draws, honest_rater(market))
    rng = rng_for(config, "sybil")
    span, as_of, q = config.span_days * DAY, config.as_of, market.quality
    attacker = market.add_trader(2.0)
    honest = rng.sample(range(config.roots, config.traders), 10 + max(config.attack_edges))
    own = [market.add_trade(proposer=h, acceptor=attacker, at=T0 + rng.randrange(span),
                            proposer_stars=clip_stars(q[attacker] + rng.gauss(0, config.noise)),
                            acceptor_stars=5) for h in honest[:10]]
    sybils = [market.add_trader(5.0) for _ in range(max(config.sybil_counts))]
    stuffing = [market.add_trade(proposer=s, acceptor=attacker, at=T0 + rng.randrange(span),
                                 proposer_stars=5, acceptor_stars=5) for s in sybils]
    links = [market.add_trade(proposer=s, acceptor=t, at=T0 + rng.randrange(span),
                              proposer_stars=5, acceptor_stars=5)
             for s, t in itertools.pairwise(sybils)]
    pairs = twins(("mean", "bayes"))
    roots = [market.keys[r] for r in range(config.roots)]
    mid = sorted(config.attack_edges)[len(config.attack_edges) // 2]
    me = market.keys[attacker]

    def judge(evidence: shinyo.TrustEvidence, rated: list[Trade], *, shared: bool = False
              ) -> list[float]:
        """mean, bayes, their weighted twins, and the Sybils' total weight."""
        graph = evidence.graph()
        weights = shinyo.trust_weights(graph, roots, subject=None if shared else me)
        outs = market.outcomes(attacker, rated, as_of=as_of)
        plain, weighted = _both(market, attacker, outs, as_of=as_of, weights=weights, pairs=pairs)
        scores = [*plain.scores.values(), *weighted.scores.values()]  # none is None: rated
        mass = sum(weights.weight(market.keys[s]) for s in sybils) / WEIGHT_ONE
        return [float(x or 0) for x in scores] + [round(mass, 3)]

    b_mean, b_bayes, bw_mean, bw_bayes, _ = judge(market.evidence(base + own), own)
    honest_rows = _shared_against_views(config, market, base + own, pairs[1][1])
    rows, shared_rows = [], []
    series: dict[str, dict[int, list[tuple[float, float]]]] = {}
    for g in config.attack_edges:
        for s_count in config.sybil_counts:
            rated = own + stuffing[:s_count]
            edges = [market.add_trade(proposer=honest[10 + j], acceptor=sybils[j % s_count],
                                      at=T0 + rng.randrange(span), proposer_stars=5,
                                      acceptor_stars=5) for j in range(g)]
            evidence = market.evidence(base + edges + rated)
            star = judge(evidence, rated)
            # The shared walk, an approximation for rankings (4.5), beside the view.
            lent = judge(evidence, rated, shared=True) if g == mid else []
            ring = [*links[:s_count - 1], market.add_trade(  # closed into a ring
                proposer=sybils[s_count - 1], acceptor=sybils[0], at=T0, proposer_stars=5,
                acceptor_stars=5)] if s_count > 1 else []
            ringed = judge(market.evidence(ring, into=evidence), rated)
            rows.append((g, s_count, *star, ringed[3], ringed[4]))
            for kind, got in (("star", star), ("ring", ringed)):
                series.setdefault(kind, {}).setdefault(g, []).append((float(s_count), got[3]))
            if lent:
                ring_lent = judge(evidence, rated, shared=True)
                shared_rows += [("star", s_count, lent[3], lent[4], star[3], star[4]),
                                ("ring", s_count, ring_lent[3], ring_lent[4], ringed[3],
                                 ringed[4])]
    s_lo, s_hi = min(config.sybil_counts), max(config.sybil_counts)

    def change(a: float, b: float) -> float:
        return round(100 * (b - a) / a, 2) + 0.0  # + 0.0: no "-0"

    # kind -> (g, score at the fewest and at the most Sybils, change %, change % from the
    # first S with a Sybil for every attack edge: what more Sybils add once the attacker
    # need not stack several attack edges on one Sybil)
    flat: dict[str, list[tuple[int, float, float, float, float]]] = {}
    for kind in ("star", "ring"):
        for g in config.attack_edges:
            cells = series[kind][g]
            spread = next((v for n, v in cells if n >= g), cells[-1][1])
            flat.setdefault(kind, []).append((g, cells[0][1], cells[-1][1], change(
                cells[0][1], cells[-1][1]), change(spread, cells[-1][1])))
    checks = []
    for kind, label in (("star", "Sybils rate only the attacker"),
                        ("ring", "Sybils also trade in a ring")):
        worst = max(flat[kind], key=lambda f: abs(f[3]))
        checks.append(Check(
            target=f"Sybil gain flat in S ({label}): from S={s_lo:,} to S={s_hi:,} at fixed g "
            "the weighted score changes by < 5 %", ok=all(abs(f[3]) < 5 for f in flat[kind]),
            detail=f"largest change {worst[3]:+.2f} % at g={worst[0]} (weighted-bayes, the "
            f"subject's view); from the first S >= g at most "
            f"{max(abs(f[4]) for f in flat[kind]):.2f} %"))
    unweighted = tuple((float(r[1]), float(r[3])) for r in rows if r[0] == rows[0][0])
    return Result(
        name="sybil", title="Sybil region: the attacker's score against attack edges g and "
        "Sybils S", path=FACTS + "; the attacker weighed in its own view (spec/trust.md 4.5), "
        "as shinyo verify weighs it; the shared walk shown beside it at one g",
        tables=(
            Table(title="attacker (true quality 2, 10 honest trades); without Sybils: mean "
                  f"{b_mean}, bayes {b_bayes}; weighted mean {bw_mean}, weighted bayes {bw_bayes}",
                  columns=("g", "S", "mean", "bayes", "w-mean", "w-bayes", "Sybil weight",
                           "ring: w-bayes", "ring: Sybil weight"), rows=tuple(rows),
                  note="every Sybil rates the attacker 5 and is rated 5; g honest traders "
                  "each trade with a Sybil; 'ring': the Sybils also trade with each other in "
                  "a ring; Sybil weight: the region's total rater weight, in full raters; "
                  "weights in the attacker's view"),
            Table(title=f"flatness in S: weighted-bayes at S={s_lo:,} and S={s_hi:,}",
                  columns=("g", f"S={s_lo:,}", f"S={s_hi:,}", "change %", "from S>=g %",
                           f"ring S={s_lo:,}", f"ring S={s_hi:,}", "ring change %",
                           "ring from S>=g %"),
                  rows=tuple((*star, *ring[1:]) for star, ring in zip(
                      flat["star"], flat["ring"], strict=True)),
                  note="'from S>=g': the change from the first S with at least one Sybil per "
                  "attack edge; below it the attacker must stack several attack edges on one "
                  "Sybil, whose edges back to its honest partners let more mass out of the "
                  "region"),
            Table(title=f"g={mid}: the shared walk (an approximation for rankings, spec/trust.md "
                  "4.5) against the attacker's view", columns=(
                      "Sybils", "S", "w-bayes, shared", "Sybil weight, shared",
                      "w-bayes, view", "Sybil weight, view"), rows=tuple(shared_rows),
                  note="in the shared walk the attacker passes its own mass on to its Sybils"),
            Table(title=f"the shared walk against each one's view for {HONEST_VIEWS} random "
                  "honest traders, before the attack: weighted-bayes",
                  columns=("traders", "median |difference|", "largest |difference|",
                           "largest change %", "view above shared"), rows=(honest_rows,),
                  note="an honest trader's own out-edges lead to raters the roots reach anyway, "
                  "so the shared walk is close for them"),
        ),
        checks=tuple(checks),
        plots=tuple(Plot(
            name=name, title=f"Attacker's score vs Sybils ({kind}; true quality 2)",
            xlabel="Sybils S", ylabel="score", logx=True,
            series=(("unweighted bayes", unweighted), *(
                (f"weighted-bayes, g={g}", tuple(v)) for g, v in series[key].items())))
            for name, key, kind in (("sybil", "star", "Sybils rate only the attacker"),
                                    ("sybil-ring", "ring", "Sybils also trade in a ring"))),
    )


HONEST_VIEWS: Final = 20
"""Honest traders whose views the sybil scenario compares with the shared walk."""


def _shared_against_views(config: SimConfig, market: Market, trades: list[Trade],
                          policy: Policy) -> tuple[object, ...]:
    """How far the shared walk is from each one's view, for random honest traders."""
    chosen = rng_for(config, "sybil/views").sample(range(config.roots, config.traders),
                                                  HONEST_VIEWS)
    by = index(trades)
    roots = [market.keys[r] for r in range(config.roots)]
    graph = market.evidence(trades).graph()
    shared = shinyo.trust_weights(graph, roots)
    got: list[tuple[float, float]] = []  # (view, shared)
    for who in chosen:
        outs = market.outcomes(who, by.get(who, []), as_of=config.as_of)
        view = shinyo.trust_weights(graph, roots, subject=market.keys[who])
        mine, approx = (trust_score(market.keys[who], outs, as_of=config.as_of, weights=w,
                                    policies=[policy], shared_walk=True).scores[str(policy)]
                        for w in (view, shared))
        if mine is not None and approx is not None:
            got.append((mine, approx))
    diffs = [abs(v - a) for v, a in got]
    return (len(got), round(median(diffs), 4), round(max(diffs), 4),
            round(100 * max(abs(v - a) / a for v, a in got), 2), sum(v > a for v, a in got))


# -- ballot stuffing and bad-mouthing -----------------------------------------------------


def _raters(config: SimConfig, *, stars: int, name: str, title: str) -> Result:
    market, draws = base_market(config)
    honest_rate = honest_rater(market)
    honest = play(market, draws, honest_rate)
    # One walk serves every mix of raters: edges ignore stars (spec/trust.md 3.2).
    weights = walk(market, honest, config)
    order = rng_for(config, "raters").sample(range(config.roots, config.traders),
                                         config.traders - config.roots)
    pairs = twins(("mean", "trimmed", "bayes"))
    taus, maes = [], []
    plots_tau: dict[str, list[tuple[float, float]]] = {}
    for share in config.malicious:
        bad = set(order[:round(share * config.traders)])

        def rate(r: int, t: int, x: float, bad: set[int] = bad) -> int:
            return stars if r in bad else honest_rate(r, t, x)

        trades = play(market, draws, rate) if bad else honest
        by, last = index(trades), Market.last_entries(trades)
        got: dict[str, list[tuple[float, float]]] = {}
        for who in range(config.roots, config.traders):
            outs = [market.outcome(t, who, as_of=config.as_of, last_entry=last)
                    for t in by.get(who, [])]
            plain, weighted = _both(market, who, outs, as_of=config.as_of, weights=weights,
                                    pairs=pairs)
            for report in (plain.scores, weighted.scores):
                for key, value in report.items():
                    if value is not None:
                        got.setdefault(key, []).append((value, market.quality[who]))
        tau_row: list[object] = [share]
        mae_row = list(tau_row)
        for p, w in pairs:
            for key in (str(p), str(w)):
                xs = got.get(key, [])
                tau = kendall_tau([x for x, _ in xs], [y for _, y in xs])
                tau_row.append(round(tau, 3))
                mae_row.append(round(mean(abs(x - y) for x, y in xs), 3) if xs else math.nan)
                plots_tau.setdefault(key, []).append((share, tau))
        taus.append(tuple(tau_row))
        maes.append(tuple(mae_row))
    columns = ("malicious", *(k for p, w in pairs for k in (p.name, "w-" + p.name)))
    checks = []
    if stars == MIN_STARS and 0.3 in config.malicious:
        row = dict(zip(columns, taus[config.malicious.index(0.3)], strict=True))
        checks.append(Check(
            target="with 30 % bad-mouthing raters, Kendall tau of weighted score vs true "
            "quality >= 0.8", ok=float(row["w-mean"]) >= 0.8,  # type: ignore[arg-type]
            detail=f"weighted-mean {row['w-mean']} (the policy spec/trust.md 4.6 measures); "
            f"weighted-trimmed {row['w-trimmed']}, weighted-bayes {row['w-bayes']}"))
    return Result(
        name=name, title=title, path=FACTS + "; " + SHARED + "; one walk for all shares "
        "(edges ignore stars, spec/trust.md 3.2)",
        tables=(Table(title=f"Kendall tau (tau-b) of score vs true quality; malicious raters "
                      f"rate everyone {stars} star(s)", columns=columns, rows=tuple(taus),
                      note=f"over the {config.traders - config.roots:,} non-root traders "
                      "with a score under that policy"),
                Table(title="mean absolute error of score vs true quality (stars)",
                      columns=columns, rows=tuple(maes))),
        checks=tuple(checks),
        plots=(Plot(name=name, title=title, xlabel="share of malicious raters",
                    ylabel="Kendall tau vs true quality",
                    series=tuple((k, tuple(v)) for k, v in plots_tau.items())),),
    )


def badmouth(config: SimConfig) -> Result:
    return _raters(config, stars=MIN_STARS, name="badmouth",
                   title="Bad-mouthing: 0-50 % of raters give 1 star to everyone")


def stuffing(config: SimConfig) -> Result:
    return _raters(config, stars=MAX_STARS, name="stuffing",
                   title="Ballot stuffing: 0-50 % of raters give 5 stars to everyone")


# -- whitewashing -------------------------------------------------------------------------

Gate = tuple[str, Callable[[shinyo.ScoreReport], bool], Callable[[shinyo.TrustReport], bool]]
GATES: Final[tuple[Gate, ...]] = (
    ("default bar (no condition)", lambda r: meets(r).ok, lambda t: weighted_meets(t).ok),
    ("bayes >= 4.0, 5 rated", lambda r: meets(r, min_score=4.0, min_trades=5).ok,
     lambda t: weighted_meets(t, min_score=4.0, min_trades=5).ok),
    ("tier silver", lambda r: meets(r, tier="silver").ok,
     lambda t: weighted_meets(t, tier="silver").ok),
)
BAYES: Final = (Policy.parse("bayes"), parse_policy("weighted-bayes"))


def _passes(market: Market, who: int, outs: Sequence[shinyo.TradeOutcome],
            weights: shinyo.TrustWeights | None, gate: Gate, as_of: int) -> bool:
    if weights is None:
        return gate[1](score(outs, as_of=as_of, policies=[BAYES[0]]))
    return gate[2](trust_score(market.keys[who], outs, as_of=as_of, weights=weights,
                               policies=[BAYES[1]]))


def _enter(market: Market, who: int, build: Sequence[tuple[int, int]], cheat: Sequence[int],
           weights: shinyo.TrustWeights | None, gate: Gate, *, start: int, step: int = DAY
           ) -> tuple[int | None, int]:
    """Trade ``build`` (partner, stars received) one per ``step`` until the gate passes, then
    cheat ``cheat`` partners (1 star each) while it does: (trades to pass or None, cheats)."""
    outs: list[shinyo.TradeOutcome] = []
    day = start
    for built in range(len(build) + 1):
        if _passes(market, who, outs, weights, gate, day + 1):
            break
        if built == len(build):
            return None, 0
        day += step
        outs.append(_deal(market, who, build[built][0], day, to_who=build[built][1], by_who=5))
    done = 0
    while done < len(cheat) and _passes(market, who, outs, weights, gate, day + 1):
        day += DAY
        outs.append(_deal(market, who, cheat[done], day, to_who=1, by_who=5))
        done += 1
    return built, done


def whitewash(config: SimConfig) -> Result:
    """Fresh identities build a record (honestly or with Sybils), then cheat till the gate trips."""
    market, draws = base_market(config)
    base = play(market, draws, honest_rater(market))
    rng = rng_for(config, "whitewash")
    pool = range(config.roots, config.traders)
    build_cap, cheat_cap, n_sybils, start = 40, 100, 50, T0 + 30 * DAY
    plans: dict[str, list[tuple[int, list[tuple[int, int]], list[int]]]] = {}
    extra: list[Trade] = []
    for kind in ("honest build", "Sybil build", "newcomer"):
        for _ in range(config.identities):
            who = market.add_trader(4.8)
            if kind == "Sybil build":  # Sybils trade with nobody else: no attack edge
                build = [(market.add_trader(5.0), 5) for _ in range(n_sybils)]
            else:
                build = [(p, clip_stars(4.8 + rng.gauss(0, config.noise)))
                         for p in rng.choices(pool, k=build_cap)]
            victims = rng.choices(pool, k=cheat_cap) if kind != "newcomer" else []
            plans.setdefault(kind, []).append((who, build, victims))
            # The graph holds every trade the identity could make (edges ignore stars);
            # a Sybil-built identity's cheats need the gate to pass first.
            made = [p for p, _ in build] + (victims if kind == "honest build" else [])
            extra += [market.add_trade(proposer=p, acceptor=who, at=start, proposer_stars=5,
                                       acceptor_stars=5) for p in made]
    new = market.add_trader(3.0)  # a fresh pseudonym: no trades at all
    fresh = market.keys[new]
    # One walk per identity, each in its own view (spec/trust.md 4.5), on one graph.
    weights = views(market, base + extra, config,
                    [*(who for plan in plans.values() for who, _, _ in plan), new])
    rows, newcomer_rows = [], []
    for gate in GATES:
        for kind in ("honest build", "Sybil build"):
            for label, w in (("unweighted", None), ("weighted", weights)):
                got = [_enter(market, who, build, victims, _mine(w, who), gate, start=start)
                       for who, build, victims in plans[kind]]
                builds = [b for b, _ in got if b is not None]
                cheats = [c for b, c in got if b is not None]
                rows.append((gate[0], kind, label, _pct(builds) if builds else "never",
                             _pct(cheats) if cheats else "-", len(got) - len(builds),
                             sum(c >= cheat_cap for c in cheats)))
        if gate is GATES[0]:
            continue
        for label, w in (("unweighted", None), ("weighted", weights)):
            needed = [_enter(market, who, build, [], _mine(w, who), gate, start=start,
                             step=3 * DAY)[0] for who, build, _ in plans["newcomer"]]
            reached = [n for n in needed if n is not None]
            newcomer_rows.append((gate[0], label, _pct(reached) if reached else "never",
                                  len(needed) - len(reached)))
    report = score([], as_of=config.as_of)
    verdicts = {
        "meets() with no condition": meets(report).ok,
        "meets(min_trades=1)": meets(report, min_trades=1).ok,
        "meets(min_score=0)": meets(report, min_score=0.0).ok,
        "meets(tier='bronze')": meets(report, tier="bronze").ok,
        "weighted_meets() from roots": weighted_meets(
            trust_score(fresh, [], as_of=config.as_of, weights=weights[new])).ok,
        "weighted_meets() without roots": weighted_meets(
            trust_score(fresh, [], as_of=config.as_of, weights=None)).ok,
    }
    defaults = ("meets() with no condition", "weighted_meets() from roots",
                "weighted_meets() without roots")
    return Result(
        name="whitewash", title="Whitewashing: cheats per identity before the gate trips; "
        "honest newcomers' way in", path=FACTS + "; " + VIEWS + ", over one graph of the "
        "market plus every trade the identities could make (edges ignore stars)",
        tables=(
            Table(title=f"{config.identities} identities per row; build: up to {build_cap} honest "
                  f"trades (true quality 4.8) or {n_sybils} Sybil 5-star ratings, one a day; "
                  f"then one cheat (1 star) a day while the gate passes (at most {cheat_cap})",
                  columns=("gate", "strategy", "scores", "build cost", "cheats before trip",
                           "never passed", "never tripped"), rows=tuple(rows),
                  note="median (10th-90th percentile) over identities; build cost in trades "
                  "or Sybil ratings; Sybils have no trades with honest traders"),
            Table(title=f"honest newcomers (true quality 4.8, one trade every 3 days, at most "
                  f"{build_cap}): trades until the gate passes",
                  columns=("gate", "scores", "trades", "never passed"), rows=tuple(newcomer_rows)),
            Table(title="a fresh pseudonym with no trades", columns=("gate", "passes"),
                  rows=tuple(verdicts.items())),
        ),
        checks=(Check(target="a fresh pseudonym with no trades never passes a default meets() "
                      "gate, weighted or not", ok=not any(verdicts[k] for k in defaults),
                      detail="; ".join(f"{k}: {'passes' if v else 'fails'}"
                                       for k, v in verdicts.items())),),
    )


# -- on-off and milking -------------------------------------------------------------------

MILK: Final = ("mean", "window", "last", "bayes", "decay")
HALF_LIFE: Final = 30 * DAY
_MEAN: Final = Policy.parse("mean")


def _decayed(samples: Iterable[Sample], as_of: int, weights: shinyo.TrustWeights | None
             ) -> float | None:
    """Not a protocol policy: the mean with each sample halved every HALF_LIFE of age."""
    num = den = Fraction(0)
    for s in samples:
        w = 1 if weights is None else Fraction(weights.weights.get(s.counterparty, 0), WEIGHT_ONE)
        f = w * Fraction(0.5 ** ((as_of - s.at) / HALF_LIFE))
        num, den = num + f * s.stars, den + f
    return float(round(num / den, 4)) if den else None


def _above(market: Market, who: int, outs: Sequence[shinyo.TradeOutcome], as_of: int,
           weights: shinyo.TrustWeights | None, name: str) -> bool:
    """Does ``who`` clear the bar ``score >= 4.0`` under policy ``name``, as of ``as_of``?"""
    if name == "decay":
        value = _decayed(score(outs, as_of=as_of, policies=[_MEAN]).samples, as_of, weights)
        return value is not None and value >= 4.0
    if weights is None:
        policy = Policy.parse(name)
        return meets(score(outs, as_of=as_of, policies=[policy]), min_score=4.0,
                     policy=str(policy)).ok
    twin = parse_policy("weighted-" + name)
    return weighted_meets(trust_score(market.keys[who], outs, as_of=as_of, weights=weights,
                                      policies=[twin]), min_score=4.0, policy=str(twin)).ok


def onoff(config: SimConfig) -> Result:
    """Milkers build 180 days of good trades, then cheat one victim a day."""
    market, draws = base_market(config)
    base = play(market, draws, honest_rater(market))
    rng = rng_for(config, "onoff")
    build, after = 180, 150
    pool = range(config.roots, config.traders)
    milkers, extra = [], []
    for _ in range(config.identities):
        who = market.add_trader(4.8)
        partners = rng.choices(pool, k=build + after)
        good = [_deal(market, who, p, T0 + i * DAY, to_who=clip_stars(4.8 + rng.gauss(0, 0.5)),
                      by_who=5) for i, p in enumerate(partners[:build])]
        milkers.append((who, partners[build:], good))
        extra += [market.add_trade(proposer=p, acceptor=who, at=T0, proposer_stars=5,
                                   acceptor_stars=5) for p in partners]
    weights = views(market, base + extra, config, [who for who, _, _ in milkers])
    start = T0 + build * DAY
    milk_rows, cycle_rows = [], []
    cycles = milkers[:max(1, config.identities // 4)]
    for name in MILK:
        victims: dict[str, list[float]] = {}
        share: dict[str, list[float]] = {}
        for label, w in (("unweighted", None), ("weighted", weights)):
            for who, later, good in milkers:
                outs = list(good)
                while len(outs) - build < after and _above(
                        market, who, outs, start + (len(outs) - build) * DAY, _mine(w, who),
                        name):
                    outs.append(_deal(market, who, later[len(outs) - build],
                                      start + (len(outs) - build) * DAY + 1, to_who=1, by_who=5))
                victims.setdefault(label, []).append(len(outs) - build)
            for who, later, good in cycles:
                outs, cheats = list(good), 0
                for day, p in enumerate(later):
                    at = start + day * DAY
                    cheat = _above(market, who, outs, at, _mine(w, who), name)
                    cheats += cheat
                    outs.append(_deal(market, who, p, at + 1, by_who=5, to_who=1 if cheat
                                      else clip_stars(4.8 + rng.gauss(0, 0.5))))
                share.setdefault(label, []).append(cheats / after)
        milk_rows.append((name, _pct(victims["unweighted"]), _pct(victims["weighted"])))
        cycle_rows.append((name, round(mean(share["unweighted"]), 3),
                           round(mean(share["weighted"]), 3)))
    return Result(
        name="onoff", title="On-off and milking: victims before the gate trips",
        path=FACTS + "; " + VIEWS + ", over one graph of the market plus every trade the "
        "milkers make or could make (edges ignore stars); 'decay' is computed by the simulator "
        "over the core's samples: it is not a protocol policy",
        tables=(
            Table(title=f"milking: {config.identities} milkers, {build} good trades (true quality "
                  "4.8, one a day), then one cheat a day while score >= 4.0",
                  columns=("policy", "victims, unweighted", "victims, weighted"),
                  rows=tuple(milk_rows),
                  note=f"median (10th-90th percentile); at most {after}; window = 90 days, "
                  f"last = 50 samples, decay = half-life {HALF_LIFE // DAY} days"),
            Table(title=f"on-off: {len(cycles)} milkers, {after} days after the build: cheat when "
                  "the gate passes, trade well when it does not",
                  columns=("policy", "cheat share, unweighted", "cheat share, weighted"),
                  rows=tuple(cycle_rows)),
        ),
    )


# -- non-reveal and retaliation -------------------------------------------------------------

RETALIATE_AT: Final = 2
"""A retaliator withholds its reveal when the stars revealed to it are at most this."""


def strategic_market(market: Market, draws: Sequence[Draw], rng: random.Random, *, first: int,
                     withhold: float, retaliate: float
                     ) -> tuple[list[Trade], list[Trade], set[int], set[int]]:
    """The market as played by withholders and retaliators, and as played fairly.

    A strategic trader commits second when it can, to reveal last (spec 7.3).  A
    withholder never reveals; a retaliator does not when rated ``RETALIATE_AT`` or less.
    """
    pool = list(range(first, len(market.keys)))
    rng.shuffle(pool)
    nw, nr = round(withhold * len(pool)), round(retaliate * len(pool))
    withholders, retaliators = set(pool[:nw]), set(pool[nw:nw + nr])
    strategic = withholders | retaliators
    rate = honest_rater(market)
    played: list[Trade] = []
    fair: list[Trade] = []
    for p, a, at, x, y in draws:
        ps, as_ = rate(p, a, x), rate(a, p, y)
        swap = p in strategic and a not in strategic
        one, two = (a, p) if swap else (p, a)
        reveals = 0 if one in withholders else 1 if two in withholders or (
            two in retaliators and (ps if one == p else as_) <= RETALIATE_AT) else 2
        for into, r in ((played, reveals), (fair, 2)):
            into.append(market.add_trade(proposer=p, acceptor=a, at=at, proposer_stars=ps,
                                         acceptor_stars=as_, reveals=r, acceptor_first=swap))
    return played, fair, withholders, retaliators


def nonreveal(config: SimConfig) -> Result:
    """5 % withhold every reveal, 10 % withhold when rated 2 stars or less."""
    market, draws = base_market(config)
    played, fair, withholders, retaliators = strategic_market(
        market, draws, rng_for(config, "nonreveal"), first=config.roots, withhold=0.05,
        retaliate=0.10)
    stats: dict[str, dict[int, tuple[float | None, ...]]] = {"played": {}, "fair": {}}
    counts: dict[int, dict[str, int]] = {}  # as played
    for label, trades in (("played", played), ("fair", fair)):
        weights = walk(market, trades, config)
        by, last = index(trades), Market.last_entries(trades)
        for who in range(config.roots, config.traders):
            outs = [market.outcome(t, who, as_of=config.as_of, last_entry=last)
                    for t in by.get(who, [])]
            plain, weighted = _both(market, who, outs, as_of=config.as_of, weights=weights,
                                    pairs=[BAYES])
            stats[label][who] = (
                plain.scores[str(BAYES[0])], weighted.scores[str(BAYES[1])],
                plain.reveal_rate, plain.completion_rate)
            counts[who] = plain.counts if label == "played" else counts[who]
    strategic = withholders | retaliators
    met = {t.other(s) for t in played if t.reveals < 2 for s in (t.first, t.second)
           if s in strategic} - strategic - set(range(config.roots))
    groups = (("withholders", withholders), ("retaliators", retaliators),
              ("honest, met a withholding", met),
              ("honest, others", set(range(config.roots, config.traders)) - strategic - met))
    rows, outcome_rows, gains = [], [], {}

    def avg(values: Iterable[float | None]) -> float:
        return round(mean(x for x in values if x is not None), 4)

    for name, members in groups:
        played_s = [stats["played"][m] for m in sorted(members)]
        fair_s = [stats["fair"][m] for m in sorted(members)]
        deltas = [[x - y for a, b in zip(played_s, fair_s, strict=True)
                   if (x := a[k]) is not None and (y := b[k]) is not None] for k in (0, 1)]
        gains[name] = [sum(d > 0 for d in ds) for ds in deltas]
        rows.append((name, len(members), avg(s[0] for s in played_s), avg(deltas[0]),
                     avg(s[1] for s in played_s), avg(deltas[1]), avg(s[2] for s in played_s),
                     avg(s[2] for s in fair_s), avg(s[3] for s in played_s)))
        outcome_rows.append((name, *(sum(counts[m][k] for m in members)
                                     for k in ("rated", "stalled", "withheld", "expired",
                                               "pending"))))
    worse = all(r[3] <= 0 and r[5] <= 0 for r in rows[:2])
    return Result(
        name="nonreveal", title="Non-reveal and retaliation: what withholding does to scores "
        "and reveal rates", path=FACTS + "; " + SHARED + "; outcome classes (stalled, "
        "withheld, expired) checked against verify_proof by the 'real' scenario",
        tables=(
            Table(title="means over each group; delta = played minus the same market played "
                  "fairly (everyone reveals)",
                  columns=("group", "traders", "bayes", "delta", "w-bayes", "w-delta",
                           "reveal rate", "fair reveal rate", "completion"), rows=tuple(rows),
                  note=f"a retaliator withholds when rated {RETALIATE_AT} stars or less; "
                  "strategic traders commit second so they reveal last"),
            Table(title="outcome classes of each group's trades (as subject), as played",
                  columns=("group", "rated", "stalled", "withheld", "expired", "pending"),
                  rows=tuple(outcome_rows),
                  note="withheld: the other side's reveal is missing and no later entry of "
                  "its chain shows its silence; expired: its chain shows it"),
        ),
        checks=(Check(target="withholding never pays: withholders' and retaliators' mean "
                      "score is not above the fair market's, weighted or not", ok=worse,
                      detail="traders whose score rose (unweighted, weighted): "
                      + ", ".join(f"{k} {v}" for k, v in list(gains.items())[:2])),),
    )
