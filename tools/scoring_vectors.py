"""The scoring suite of spec/vectors/scoring.json (scoring.md).

Each vector is a list of classified trades (outcome, stars, settle time,
counterparty, stars given), an as-of time and policies; ``result`` is the
expected counts, rates, scores and tier, exactly as scoring.md computes them.
"""

from __future__ import annotations

from typing import Any

from shinyo import Outcome, Policy, Pseudonym, Role, TradeOutcome, score

from .craft import T0, ident

DAY = 86_400


def outcomes_from_json(items: list[dict[str, Any]], subject: Pseudonym) -> list[TradeOutcome]:
    """Rebuild TradeOutcomes from a vector's ``input`` (the tests use this too)."""
    out = []
    for n, it in enumerate(items):
        kind = Outcome(it["outcome"])
        cp = Pseudonym.from_text(it["counterparty"])
        by = it.get("cancelled_by")
        out.append(TradeOutcome(
            trade=n.to_bytes(32, "big"), subject=subject, counterparty=cp, context="c",
            role=Role.PROPOSER, outcome=kind, stars=it["stars"], given=it["given"],
            at=it["at"], reason=kind.value, confirmed=it.get("confirmed"),
            cancelled_by=None if by is None else (subject if by == "subject" else cp)))
    return out


def result_of(items: list[dict[str, Any]], as_of: int, policies: list[str]) -> dict[str, Any]:
    r = score(outcomes_from_json(items, ident(1).pseudonym), as_of=as_of,
              policies=[Policy.parse(p) for p in policies])
    return {"counts": r.counts, "completion_rate": r.completion_rate,
            "reveal_rate": r.reveal_rate, "scores": r.scores, "tier": r.tier,
            "window_mean": r.window_mean, "window_count": r.window_count}


def scoring_vectors() -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    cps = [ident(10 + i).pseudonym.to_text() for i in range(40)]

    def rated(i: int, stars: int, at: int, cp: int | None = None) -> dict[str, Any]:
        # Every other rating is confirmed (spec 7.8), so the vectors count both.
        return {"outcome": "rated", "stars": stars, "at": at, "given": 5,
                "counterparty": cps[i if cp is None else cp], "confirmed": i % 2 == 0}

    def add(comment: str, items: list[dict[str, Any]], as_of: int,
            policies: list[str] | None = None) -> None:
        chosen = policies if policies is not None else ["mean", "window", "last", "trimmed",
                                                         "bayes"]
        out.append({"comment": comment, "input": items, "as_of": as_of, "policies": chosen,
                    "expect": "valid", "result": result_of(items, as_of, chosen)})

    now = T0 + 400 * DAY
    add("no trades: every score is null, tier regular", [], now)
    add("one 5-star rating: the Bayesian average stays near the prior",
        [rated(0, 5, now - DAY)], now)
    ten = [rated(i, s, now - (10 - i) * 7 * DAY)
           for i, s in enumerate([5, 4, 3, 5, 1, 5, 4, 5, 5, 5])]
    add("ten ratings a week apart, all default policies", ten, now)
    add("custom parameters", ten, now,
        ["window:days=30", "last:n=3", "trimmed:pct=20", "bayes:prior=4,weight=2.5"])
    add("twenty ratings from one partner in one week merge into one sample",
        [rated(0, 5, now - DAY - i * 3600, cp=0) for i in range(20)] + [rated(1, 2, now - DAY)],
        now, ["mean"])
    add("withheld and stalled trades count one star; expired and cancelled none",
        [rated(0, 5, now - 40 * DAY),
         {"outcome": "withheld", "stars": 1, "at": now - 30 * DAY, "given": 5,
          "counterparty": cps[1]},
         {"outcome": "stalled", "stars": 1, "at": now - 20 * DAY, "given": None,
          "counterparty": cps[2]},
         {"outcome": "expired", "stars": None, "at": now - 10 * DAY, "given": 5,
          "counterparty": cps[3]},
         {"outcome": "cancelled", "stars": None, "at": now - 5 * DAY, "given": None,
          "counterparty": cps[4], "cancelled_by": "subject"},
         {"outcome": "pending", "stars": None, "at": None, "given": None,
          "counterparty": cps[5]}], now)
    plat = [rated(i, 5, now - (i + 1) * 3 * DAY) for i in range(25)]
    add("platinum: 25 five-star ratings in 90 days, all completed", plat, now, ["window"])
    add("gold: 12 of them", plat[:12], now, ["window"])
    add("silver: mean 4.70 but completion 25/27 is below gold's 0.95",
        [*plat, *({"outcome": "stalled", "stars": 1, "at": now - DAY, "given": None,
                   "counterparty": cps[30 + k]} for k in range(2))], now, ["window"])
    add("regular: the same ratings judged 200 days later", plat, now + 200 * DAY, ["window"])
    tie = [5] * 22 + [4] * 3 + [1] * 7  # 129 / 32 = 4.03125 exactly
    add("rounding: a mean of 4.03125 is reported as 4.0312 (ties to even)",
        [rated(i, st, now - DAY) for i, st in enumerate(tie)], now, ["mean"])
    add("rounding: a mean of 4/3",
        [rated(0, 1, now - DAY), rated(1, 1, now - DAY), rated(2, 2, now - DAY)], now,
        ["mean", "bayes:prior=0,weight=1"])
    return out
