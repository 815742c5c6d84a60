"""``shinyo sim``: a seeded market simulation of attacks on scores and trust (issue 6).

Honest traders with a hidden true quality trade and rate each other; attackers
join them.  Every score, gate, weight and outcome class comes from the protocol
core (``score``, ``meets``, ``trust_weights``, ``trust_score``,
``weighted_meets``); the simulator supplies only the trades, by one of two paths
(docs/SIMULATION.md says which scenario uses which):

* **Facts** (fast; 10,000 traders): completed trades go to
  :meth:`shinyo.TrustEvidence.add_trade`, and each trade becomes the
  :class:`shinyo.TradeOutcome` a verifier classifies it as (spec 7.8), made by
  :meth:`Market.outcome` without signing anything.
* **Entries** (small markets): :func:`run_real` plays the same trades with
  :class:`shinyo.Participant` objects signing every entry; each trader's history
  goes through ``build_proof`` and ``verify_proof``, and the trust graph is read
  from the chains and from the verified bundles.  The ``real`` scenario (and
  tests/test_sim.py) check that both paths agree exactly.

Whoever is scored one by one -- the Sybil attacker, whitewashers, milkers, each
trader of ``real`` -- is weighed in its own view, the walk without its own
out-edges (spec/trust.md 4.5), as ``shinyo verify`` weighs a subject.  The
scenarios that rank all 10,000 traders use the shared walk, the informative
approximation of spec/trust.md 4.5 (one walk instead of one per trader).

A trade's six steps are one second apart and trades start ``STEP_SECONDS``
apart, so every chain's timestamps rise.  Randomness comes from
``random.Random`` seeded with strings: a run is the same on every machine.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import random
import sys
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, replace
from typing import Final

from shinyo import (
    RESPONSE_WINDOW,
    RETRACT_WINDOW,
    Entry,
    Outcome,
    Participant,
    Policy,
    ProofReport,
    Pseudonym,
    Role,
    SigningIdentity,
    TradeOutcome,
    TrustEvidence,
    TrustWeights,
    build_proof,
    parse_policy,
    score,
    terms_digest,
    trust_score,
    trust_weights,
    verify_proof,
)

from .sim_plot import Check, PlotsUnavailable, Result, SimError, Table, render, to_json_obj

__all__ = [
    "CONTEXT", "T0", "Market", "SimConfig", "SimError", "Trade", "base_market", "main", "play",
    "run", "run_real", "scenarios", "twins", "views", "walk",
]

DAY: Final = 86_400
T0: Final = 1_800_000_000
CONTEXT: Final = "sim.example/market"
STEP_SECONDS: Final = 6
"""A trade's six steps take one second each; trades start at least this far apart."""
MIN_STARS, MAX_STARS = 1, 5
FULL_TRADERS: Final = 10_000
FULL_TRADES: Final = 100_000
UNWEIGHTED: Final = ("mean", "window", "trimmed", "bayes")
"""The unweighted policies every scenario compares with their weighted twins."""


def twins(names: Iterable[str] = UNWEIGHTED) -> list[tuple[Policy, Policy]]:
    """Each unweighted policy with its weighted twin (spec/trust.md 6.1)."""
    return [(Policy.parse(n), parse_policy("weighted-" + n)) for n in names]


# -- trades ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class Trade:
    """One trade as both parties play it.  The first committer reveals first (spec 7.3);
    ``reveals`` is 2 (both did), 1 (the second withheld) or 0 (the first withheld, so
    the second, who may reveal only after it, could not)."""

    id: bytes
    proposer: int
    acceptor: int
    at: int  # the proposal's time; the other steps follow a second apart
    proposer_stars: int  # the proposer's rating of the acceptor
    acceptor_stars: int
    reveals: int = 2
    acceptor_first: bool = False

    def __post_init__(self) -> None:
        if self.proposer == self.acceptor:
            raise SimError("a trade needs two different traders")
        for stars in (self.proposer_stars, self.acceptor_stars):
            if not MIN_STARS <= stars <= MAX_STARS:
                raise SimError(f"stars are {MIN_STARS} to {MAX_STARS}, got {stars}")
        if self.reveals not in (0, 1, 2):
            raise SimError("reveals is 0, 1 or 2")

    @property
    def first(self) -> int:
        return self.acceptor if self.acceptor_first else self.proposer

    @property
    def second(self) -> int:
        return self.proposer if self.acceptor_first else self.acceptor

    def other(self, who: int) -> int:
        return self.acceptor if who == self.proposer else self.proposer

    def stars_by(self, who: int) -> int:
        return self.proposer_stars if who == self.proposer else self.acceptor_stars

    def revealed(self, who: int) -> bool:
        return self.reveals >= (1 if who == self.first else 2)

    def last_entry(self, who: int) -> int:
        """When ``who`` made its last entry in this trade."""
        first = who == self.first
        if self.revealed(who):
            return self.at + (4 if first else 5)
        return self.at + (2 if first else 3)  # its commit


def _digest(*parts: object) -> bytes:
    return hashlib.sha256("/".join(map(str, parts)).encode()).digest()


class Market:
    """Traders -- pseudonyms with a hidden true quality -- and trades among them.

    Keys are real Ed25519 keys derived from the seed, so a market can be
    replayed with signed entries (:func:`run_real`) under the very same keys:
    the trust graph orders nodes by key, and the rounding of the walk
    (spec/trust.md 4.2) follows that order.
    """

    def __init__(self, seed: str) -> None:
        self.seed = seed
        self.keys: list[Pseudonym] = []
        self.quality: list[float] = []
        self._made = 0  # trades made: each gets its own id

    def identity(self, who: int) -> SigningIdentity:
        return SigningIdentity.from_seed(_digest(self.seed, "trader", who))

    def add_trader(self, quality: float) -> int:
        self.keys.append(self.identity(len(self.keys)).pseudonym)
        self.quality.append(quality)
        return len(self.keys) - 1

    def add_trade(self, *, proposer: int, acceptor: int, at: int, proposer_stars: int,
                  acceptor_stars: int, reveals: int = 2, acceptor_first: bool = False) -> Trade:
        """A trade between two traders, with a fresh id (the market does not keep it)."""
        self._made += 1
        return Trade(id=_digest(self.seed, "trade", self._made), proposer=proposer,
                     acceptor=acceptor, at=at, proposer_stars=proposer_stars,
                     acceptor_stars=acceptor_stars, reveals=reveals,
                     acceptor_first=acceptor_first)

    # -- the facts path ------------------------------------------------------------

    def evidence(self, trades: Iterable[Trade], into: TrustEvidence | None = None
                 ) -> TrustEvidence:
        """Completed trades as facts for the trust graph (spec/trust.md 2.1)."""
        evidence = TrustEvidence() if into is None else into
        keys = self.keys
        for t in trades:
            if t.reveals == 2:
                evidence.add_trade(trade=t.id, context=CONTEXT, proposer=keys[t.proposer],
                                   acceptor=keys[t.acceptor], proposer_stars=t.proposer_stars,
                                   acceptor_stars=t.acceptor_stars)
        return evidence

    @staticmethod
    def last_entries(trades: Iterable[Trade]) -> dict[int, int]:
        """Each trader's latest entry time: how far its chain shows it alive."""
        last: dict[int, int] = {}
        for t in trades:
            for who in (t.proposer, t.acceptor):
                at = t.last_entry(who)
                if at > last.get(who, 0):
                    last[who] = at
        return last

    def outcome(self, trade: Trade, who: int, *, as_of: int,
                last_entry: Mapping[int, int]) -> TradeOutcome:
        """What a verifier holding both chains classifies ``trade`` as for ``who`` (spec 7.8).

        Only the cases the simulator plays are modelled -- both reveal, the
        second revealer withholds, the first withholds -- and the ``real``
        scenario checks them against :func:`shinyo.classify` on real entries.
        ``last_entry`` says how far each chain goes: a counterparty whose
        chain runs past a missed deadline has its silence shown (build_proof
        ships that stretch as evidence), so the trade expires instead of
        counting as withheld.
        """
        if trade.at + STEP_SECONDS > as_of:
            raise SimError("classify a trade only after its steps are done")
        them = trade.other(who)
        first = who == trade.first
        given = trade.stars_by(who) if trade.revealed(who) else None
        their_reveal = trade.at + (5 if first else 4)
        outcome, stars, at, confirmed = Outcome.PENDING, None, None, None
        reason = "inside the rating windows"
        mine = trade.revealed(who)
        if trade.revealed(them):
            if not mine and as_of > trade.at + 4 + RESPONSE_WINDOW:
                # I revealed second and never did: my own step, missed.
                outcome, stars, at = Outcome.STALLED, MIN_STARS, trade.at + 4 + RESPONSE_WINDOW
                reason = "the subject's reveal was missed"
            else:
                outcome, stars, at = Outcome.RATED, trade.stars_by(them), their_reveal
                confirmed = last_entry.get(them, 0) > their_reveal + RETRACT_WINDOW
                reason = "rated by the counterparty"
        else:
            # Theirs is missing: due after my reveal (I was first and revealed),
            # else after both commits (the first revealer never revealed).
            due = trade.at + (4 if mine else 3) + RESPONSE_WINDOW
            if as_of <= due:
                pass  # still pending
            elif first and not mine:
                outcome, stars, at = Outcome.STALLED, MIN_STARS, due
                reason = "the subject's reveal was missed"
            elif last_entry.get(them, 0) > due:
                outcome, at = Outcome.EXPIRED, due
                reason = "the counterparty's chain shows no reveal by the deadline"
            else:
                outcome, stars, at = Outcome.WITHHELD, MIN_STARS, due
                reason = "the counterparty's reveal is missing and its silence is not shown"
        return TradeOutcome(
            trade=trade.id, subject=self.keys[who], counterparty=self.keys[them],
            context=CONTEXT, role=Role.PROPOSER if who == trade.proposer else Role.ACCEPTOR,
            outcome=outcome, stars=stars, given=given, at=at, reason=reason,
            confirmed=confirmed)

    def outcomes(self, who: int, trades: Iterable[Trade], *, as_of: int,
                 last_entry: Mapping[int, int] | None = None) -> list[TradeOutcome]:
        """``who``'s outcomes over ``trades`` (those it is not party to are skipped)."""
        chosen = [t for t in trades if who in (t.proposer, t.acceptor)]
        last = self.last_entries(chosen) if last_entry is None else last_entry
        return [self.outcome(t, who, as_of=as_of, last_entry=last) for t in chosen]


# -- the entries path ---------------------------------------------------------------------


def run_real(market: Market, trades: Sequence[Trade]) -> list[Participant]:
    """Play ``trades`` with real signed entries, one :class:`Participant` per trader.

    Each entry goes to the counterparty as soon as it is made; a counterparty
    first catches up on the author's chain, as a node fetches a missing range
    (the entries pass between objects: every signature is checked later, by
    :func:`shinyo.verify_proof`).
    """
    people = [Participant(market.identity(i)) for i in range(len(market.keys))]
    by_key = {p.pseudonym: p for p in people}

    def send(entry: Entry, to: Participant) -> None:
        held = to.others.get(entry.author)
        source = by_key[entry.author].chain
        for seq in range(1 if held is None else len(held) + 1, entry.seq + 1):
            to.receive(source[seq])

    previous = None
    for t in trades:
        if previous is not None and t.at < previous + STEP_SECONDS:
            raise SimError("real trades must be in time order, STEP_SECONDS apart")
        previous = t.at
        p, a = people[t.proposer], people[t.acceptor]
        offer = p.propose(a.pseudonym, context=CONTEXT, timestamp=t.at,
                          terms=terms_digest(t.id, salt=bytes(16)))
        send(offer, a)
        send(a.accept(offer.id, timestamp=t.at + 1), p)
        first, second = (a, p) if t.acceptor_first else (p, a)
        for i, (me, you) in enumerate(((first, second), (second, first))):
            who = t.first if me is first else t.second
            nonce = _digest(market.seed, "nonce", t.id.hex(), i)[:16]
            send(me.commit(offer.id, stars=t.stars_by(who), nonce=nonce,
                           timestamp=t.at + 2 + i), you)
        if t.reveals >= 1:
            send(first.reveal(offer.id, timestamp=t.at + 4), second)
        if t.reveals == 2:
            send(second.reveal(offer.id, timestamp=t.at + 5), first)
    return people


def real_reports(people: Sequence[Participant], *, as_of: int,
                 policies: Sequence[Policy] = ()) -> list[tuple[bytes, ProofReport]]:
    """Each trader's proof bundle, built and verified: (bundle, report) per trader."""
    chains = {p.pseudonym: p.chain for p in people}
    out = []
    for p in people:
        data = build_proof(p.chain, chains)
        out.append((data, verify_proof(data, now=as_of, policies=policies)))
    return out


# -- results ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class SimConfig:
    """How big and which attacks; the defaults are the full run of docs/SIMULATION.md."""

    seed: int = 1
    traders: int = FULL_TRADERS
    trades: int = FULL_TRADES
    noise: float = 0.5  # an honest rating is round(quality + N(0, noise)), clipped
    roots: int = 3
    span_days: int = 360
    sybil_counts: tuple[int, ...] = (10, 100, 1_000, 10_000)
    attack_edges: tuple[int, ...] = (1, 2, 5, 10, 20, 50)
    malicious: tuple[float, ...] = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5)
    identities: int = 20  # whitewashers, newcomers and milkers, each
    real_traders: int = 40
    real_trades: int = 300

    def __post_init__(self) -> None:
        if not 100 <= self.traders <= 200_000:
            raise SimError("--traders must be from 100 to 200,000")
        if not self.traders <= self.trades <= 2_000_000:
            raise SimError("--trades must be at least --traders and at most 2,000,000")
        if self.span_days * DAY // self.trades < STEP_SECONDS:
            raise SimError("too many trades for the span: trades must start "
                           f"{STEP_SECONDS} s apart")
        if not 1 <= self.roots <= 64 or self.roots * 4 > self.traders:
            raise SimError("roots must be from 1 to 64 and a small share of the traders")
        if any(not 0 <= f < 1 for f in self.malicious):
            raise SimError("malicious shares are in [0, 1)")
        if not max(2, self.roots) <= self.real_traders <= 64:  # a bundle each (trust.md 7)
            raise SimError("real_traders is at least the roots, 2 or more, and at most 64")

    @property
    def as_of(self) -> int:
        """The verifier's now: past every deadline of the last trade's reveals."""
        return T0 + self.span_days * DAY + RESPONSE_WINDOW + DAY


# -- the honest market ------------------------------------------------------------------

Draw = tuple[int, int, int, float, float]  # proposer, acceptor, time, noise of each rating
Rater = Callable[[int, int, float], int]  # (rater, ratee, noise) -> stars


def rng_for(config: SimConfig, tag: str) -> random.Random:
    return random.Random(f"shinyo-sim/{config.seed}/{tag}")  # str seeds: the same everywhere


def clip_stars(x: float) -> int:
    return min(MAX_STARS, max(MIN_STARS, math.floor(x + 0.5)))  # round half up, 1..5


def base_market(config: SimConfig, *, traders: int | None = None, trades: int | None = None
                ) -> tuple[Market, list[Draw]]:
    """The honest population and who trades with whom, when, with what rating noise."""
    n, m = traders or config.traders, trades or config.trades
    rng = rng_for(config, f"base/{n}/{m}")
    market = Market(f"shinyo-sim/{config.seed}/{n}")
    for _ in range(n):
        market.add_trader(rng.uniform(1.0, 5.0))
    spacing = config.span_days * DAY // m
    draws = []
    for i in range(m):
        p = rng.randrange(n)
        a = rng.randrange(n - 1)
        a += a >= p
        draws.append((p, a, T0 + i * spacing, rng.gauss(0, config.noise),
                      rng.gauss(0, config.noise)))
    return market, draws


def honest_rater(market: Market) -> Rater:
    q = market.quality
    return lambda rater, ratee, noise: clip_stars(q[ratee] + noise)


def play(market: Market, draws: Iterable[Draw], rate: Rater) -> list[Trade]:
    """The drawn trades, each side rated by ``rate``."""
    return [market.add_trade(proposer=p, acceptor=a, at=at, proposer_stars=rate(p, a, x),
                             acceptor_stars=rate(a, p, y)) for p, a, at, x, y in draws]


def index(trades: Iterable[Trade]) -> dict[int, list[Trade]]:
    """Each trader's trades."""
    by: dict[int, list[Trade]] = {}
    for t in trades:
        by.setdefault(t.proposer, []).append(t)
        by.setdefault(t.acceptor, []).append(t)
    return by


def walk(market: Market, trades: Iterable[Trade], config: SimConfig) -> TrustWeights:
    """The shared walk from the roots (the first ``config.roots`` traders) over ``trades``.

    For ranking every trader at once (spec/trust.md 4.5, informative); score a
    single trader with :func:`views` instead.
    """
    roots = [market.keys[r] for r in range(config.roots)]
    return trust_weights(market.evidence(trades).graph(), roots)


def views(market: Market, trades: Iterable[Trade], config: SimConfig, who: Iterable[int]
          ) -> dict[int, TrustWeights]:
    """Each of ``who`` in its own view (spec/trust.md 4.5): one graph, one walk each."""
    roots = [market.keys[r] for r in range(config.roots)]
    graph = market.evidence(trades).graph()
    return {i: trust_weights(graph, roots, subject=market.keys[i]) for i in who}


# -- the agreement of the two paths ---------------------------------------------------------


def _normal(o: TradeOutcome) -> tuple[object, ...]:
    """An outcome without its trade id (the paths name trades differently)."""
    return (o.subject.key, o.counterparty.key, o.role.value, o.outcome.value, o.stars, o.given,
            o.at, o.reason, o.confirmed, o.context)


def agreement(config: SimConfig) -> Result:
    """One small market with withholders, through both paths: do they agree exactly?"""
    from .sim_scenarios import FACTS, strategic_market  # noqa: PLC0415

    market, draws = base_market(config, traders=config.real_traders, trades=config.real_trades)
    played, _, _, _ = strategic_market(market, draws, random.Random(f"sim/{config.seed}/real"),
                                       first=config.roots, withhold=0.1, retaliate=0.2)
    as_of = T0 + config.span_days * DAY + 7 * DAY  # the last week's withholds are pending
    plain = [Policy.parse(n) for n in UNWEIGHTED]
    twins_ = [parse_policy("weighted-" + n) for n in UNWEIGHTED]
    clock = time.perf_counter()
    everyone = range(len(market.keys))
    weights = views(market, played, config, everyone)
    by, last = index(played), Market.last_entries(played)
    fast = [market.outcomes(i, by.get(i, []), as_of=as_of, last_entry=last) for i in everyone]
    fast_scores = [score(o, as_of=as_of, policies=plain) for o in fast]
    fast_trust = [trust_score(market.keys[i], o, as_of=as_of, weights=weights[i],
                              policies=twins_) for i, o in enumerate(fast)]
    fast_s = time.perf_counter() - clock
    clock = time.perf_counter()
    people = run_real(market, played)
    proofs = real_reports(people, as_of=as_of, policies=plain)
    roots = [market.keys[r] for r in range(config.roots)]
    from_chains, from_proofs = TrustEvidence(), TrustEvidence()
    from_chains.add_chains(p.chain for p in people)
    for data, _ in proofs:
        from_proofs.add_proof(data, now=as_of)
    # Every trader's view, from each graph: as shinyo verify weighs each subject.
    real_w = [[trust_weights(g, roots, subject=k) for k in market.keys]
              for g in (from_chains.graph(), from_proofs.graph())]
    real_trust = [trust_score(market.keys[i], r.trades, as_of=as_of, weights=real_w[1][i],
                              policies=twins_) for i, (_, r) in enumerate(proofs)]
    real_s = time.perf_counter() - clock

    def figures(w: TrustWeights) -> tuple[object, ...]:
        return w.weights, w.mass, w.theta, w.left_out

    wrong = {
        "outcomes": sum(sorted(map(_normal, f)) != sorted(map(_normal, r.trades))
                        for f, (_, r) in zip(fast, proofs, strict=True)),
        "score reports": sum(f != r.scores for f, (_, r) in zip(fast_scores, proofs,
                                                                 strict=True)),
        "trust weights": sum(figures(w) != figures(weights[i])
                             for ws in real_w for i, w in enumerate(ws)),
        "weighted reports": sum(f.to_json_obj() != r.to_json_obj()
                                for f, r in zip(fast_trust, real_trust, strict=True)),
    }
    classes = [o.value for o in Outcome]
    held = [sum(o.outcome.value == c for f in fast for o in f) for c in classes]
    real_held = [sum(o.outcome.value == c for _, r in proofs for o in r.trades) for c in classes]
    entries = sum(len(p.chain) for p in people)
    return Result(
        name="real", title="The facts path against signed entries, Participants and proof "
        "bundles", path="both paths: " + FACTS + "; against Participants signing every entry, "
        "build_proof and verify_proof per trader, and trust evidence read from the chains "
        "(add_chains) and from the verified bundles (add_proof); every trader weighed in "
        "its own view (spec/trust.md 4.5)",
        tables=(
            Table(title=f"{len(people)} traders, {len(played)} trades ({entries:,} signed "
                  "entries), 10 % withholders and 20 % retaliators, as of a week after the "
                  "last trade", columns=("path", *classes, "seconds"),
                  rows=(("facts", *held, round(fast_s, 3)),
                        ("entries", *real_held, round(real_s, 3)))),
            Table(title="disagreements between the paths", columns=tuple(wrong),
                  rows=(tuple(wrong.values()),)),
        ),
        checks=(Check(target="the facts path and the signed-entries path give the same "
                      "outcomes, score reports, trust weights (every trader's view, from the "
                      "chains and from the bundles) and weighted reports",
                      ok=not any(wrong.values()),
                      detail=f"{sum(wrong.values())} disagreements over {len(people)} traders"),),
    )


# -- command line ---------------------------------------------------------------------------


def scenarios() -> dict[str, Callable[[SimConfig], Result]]:
    """Every scenario by name, in the order a full run takes them."""
    from . import sim_scenarios as s  # noqa: PLC0415 - the scenarios import this module

    return {"sybil": s.sybil, "badmouth": s.badmouth, "stuffing": s.stuffing,
            "whitewash": s.whitewash, "onoff": s.onoff, "nonreveal": s.nonreveal,
            "real": agreement}


def _run_one(name: str, config: SimConfig) -> Result:
    start = time.perf_counter()
    result = scenarios()[name](config)
    return replace(result, seconds=round(time.perf_counter() - start, 2))


def run(config: SimConfig, names: Sequence[str], *, jobs: int = 1,
        progress: Callable[[Result], None] | None = None) -> list[Result]:
    """Run the named scenarios in ``jobs`` processes; results in the order named."""
    known = scenarios()
    unknown = [n for n in names if n not in known]
    if unknown:
        raise SimError(f"unknown scenario {unknown[0]!r}; choose from {', '.join(known)}")
    results: list[Result] = []
    if jobs <= 1:
        for name in names:
            results.append(_run_one(name, config))
            if progress is not None:
                progress(results[-1])
        return results
    with ProcessPoolExecutor(max_workers=jobs) as pool:
        for future in [pool.submit(_run_one, name, config) for name in names]:
            results.append(future.result())
            if progress is not None:
                progress(results[-1])
    return results


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``shinyo sim`` (tools/cli.py adds the same)."""
    parser.add_argument("--scenario", nargs="+", choices=list(scenarios()), metavar="NAME",
                        help=f"scenarios to run (default: all): {', '.join(scenarios())}")
    parser.add_argument("--seed", type=int, default=1, help="the seed of everything (1)")
    parser.add_argument("--traders", type=int, default=FULL_TRADERS,
                        help=f"honest traders ({FULL_TRADERS:,})")
    parser.add_argument("--trades", type=int, default=FULL_TRADES,
                        help=f"trades among them ({FULL_TRADES:,})")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--plots", metavar="DIR", help="write PNG plots (needs matplotlib)")
    parser.add_argument("--jobs", type=int, default=2,
                        help="worker processes, one scenario each (2)")


def run_command(args: argparse.Namespace) -> int:
    """``shinyo sim``: exit 0 when it ran (missed targets are results, not errors)."""
    try:
        config = SimConfig(seed=args.seed, traders=args.traders, trades=args.trades)
    except SimError as exc:
        print(f"shinyo sim: {exc}", file=sys.stderr)
        return 2
    names = args.scenario or list(scenarios())
    start = time.perf_counter()

    def progress(result: Result) -> None:
        if args.json:
            print(f"shinyo sim: {result.name} done in {result.seconds:.1f} s", file=sys.stderr)
        else:
            print(render(result) + "\n", flush=True)

    results = run(config, names, jobs=max(1, args.jobs), progress=progress)
    elapsed = time.perf_counter() - start
    missed = [c.target for r in results for c in r.checks if not c.ok]
    if args.json:
        print(json.dumps({"schema": "shinyo-sim/1", "config": asdict(config),
                          "seconds": round(elapsed, 1), "missed": missed,
                          "scenarios": [to_json_obj(r) for r in results]}, sort_keys=True))
    else:
        print(f"shinyo sim: {len(results)} scenarios, {config.traders:,} traders, "
              f"{config.trades:,} trades, seed {config.seed}, {max(1, args.jobs)} process(es): "
              f"{elapsed:.1f} s (issue 6: under 300 s on 2 cores); {len(missed)} target(s) "
              "missed")
    if args.plots:
        from .sim_plot import write_plots  # noqa: PLC0415 - only --plots needs it

        try:
            paths = write_plots(results, args.plots)
        except PlotsUnavailable as exc:
            print(f"shinyo sim: {exc}", file=sys.stderr)
            return 0
        for path in paths:
            print(f"shinyo sim: wrote {path}", file=sys.stderr)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="shinyo sim",
                                     description="a seeded attack simulation (issue 6)")
    add_arguments(parser)
    return run_command(parser.parse_args(argv))


if __name__ == "__main__":
    # Import by package name so the scenarios and this entry point share one module.
    from shinyo.tools.sim import main as _main

    raise SystemExit(_main())
