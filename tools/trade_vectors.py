"""The two-party trade suite of spec/vectors/trades.json (spec 12.4).

Each vector is one trade's entries from both chains, in delivery order; it is
valid when every entry fits its author's chain (spec 6.5) and the two-party
rules (spec 7.3, 7.7) accept the sequence.
"""

from __future__ import annotations

import contextlib
from typing import Any

import shinyo
from shinyo import Entry, Propose, Pseudonym, SigningIdentity, VerificationError
from shinyo._constants import GENESIS_PREV

from .craft import CTX, T0, ident, nonce


def judge_trade(raws: list[bytes]) -> tuple[str, dict[str, Any] | None]:
    """Spec 12.4: run one trade's entries, in delivery order, through both views.

    Every entry must fit its author's chain (spec 6.5), and the two-party rules
    (spec 7.3, 7.7) are judged by the party that did *not* write it.
    """
    try:
        entries = [Entry.decode(r) for r in raws]
        chains: dict[Pseudonym, shinyo.Chain] = {}
        views: list[shinyo.TradeSession] = []
        for e in entries:
            chain = chains.setdefault(e.author, shinyo.Chain(e.author))
            chain.append(e)
            if not views:
                assert isinstance(e.body, Propose)
                views = [shinyo.TradeSession(me=e.author, proposal=e),
                         shinyo.TradeSession(me=e.body.counterparty, proposal=e)]
                continue
            for view in views:
                if view.me == e.author:
                    # acc rule broken by its author is reported by the other view.
                    with contextlib.suppress(shinyo.LocalProtocolError):
                        view.receive(e)
                else:
                    view.receive(e)
    except VerificationError as exc:
        return exc.failure_class, None
    p, a = views
    return "valid", {
        "state": p.state.value,
        "proposer_received": p.rating_received(),
        "acceptor_received": a.rating_received(),
    }


def trade_vectors() -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []

    def add(comment: str, entries: list[Entry], expect: str) -> None:
        raws = [e.encode() for e in entries]
        got, result = judge_trade(raws)
        if got != expect:
            raise AssertionError(f"trade vector {comment!r}: expected {expect}, got {got}")
        v: dict[str, Any] = {"comment": comment, "input": [r.hex() for r in raws], "expect": got}
        if result is not None:
            v["result"] = result
        out.append(v)

    prop, acc = ident(1), ident(2)
    pp, ap = prop.pseudonym, acc.pseudonym

    class Script:
        """Two chains written by hand, so that rule-breaking steps can be made."""

        def __init__(self) -> None:
            self.entries: list[Entry] = []
            self.heads: dict[Pseudonym, Entry] = {}
            self.t = T0

        def put(self, who: SigningIdentity, body: shinyo.Body, dt: int = 60) -> Entry:
            self.t += dt
            head = self.heads.get(who.pseudonym)
            e = Entry.create(who, seq=1 if head is None else head.seq + 1,
                             prev=GENESIS_PREV if head is None else head.id,
                             timestamp=self.t, body=body)
            self.heads[who.pseudonym] = e
            self.entries.append(e)
            return e

    def opened(ctx: str = CTX, accept_dt: int = 60) -> tuple[Script, bytes]:
        s = Script()
        t = s.put(prop, Propose(counterparty=ap, context=CTX, terms=bytes(32))).id
        s.put(acc, shinyo.Accept(trade=t, proposer=pp, context=ctx), dt=accept_dt)
        return s, t

    def commit(s: Script, who: SigningIdentity, t: bytes, stars: int,
               ack: Entry | None = None) -> Entry:
        ratee = ap if who is prop else pp
        c = shinyo.rating_commitment(trade=t, context=CTX, rater=who.pseudonym, ratee=ratee,
                                     stars=stars, nonce=nonce(stars))
        return s.put(who, shinyo.Commit(trade=t, commitment=c,
                                        ack=None if ack is None else ack.id))

    def reveal(s: Script, who: SigningIdentity, t: bytes, stars: int,
               ack: Entry | None = None, dt: int = 60) -> Entry:
        return s.put(who, shinyo.Reveal(trade=t, stars=stars, nonce=nonce(stars),
                                        ack=None if ack is None else ack.id), dt=dt)

    s, t = opened()
    add("proposal and acceptance", s.entries, "valid")
    cp = commit(s, prop, t, 5)
    ca = commit(s, acc, t, 3, ack=cp)
    reveal(s, prop, t, 5, ack=ca)
    reveal(s, acc, t, 3)
    add("proposer commits first; full blind rating", s.entries, "valid")

    s, t = opened()
    ca = commit(s, acc, t, 4)
    cp = commit(s, prop, t, 2, ack=ca)
    reveal(s, acc, t, 4, ack=cp)
    reveal(s, prop, t, 2)
    add("acceptor commits first; full blind rating", s.entries, "valid")

    s, t = opened()
    cp = commit(s, prop, t, 5)
    ca = commit(s, acc, t, 1)
    reveal(s, prop, t, 5, ack=ca)
    reveal(s, acc, t, 1, ack=cp)
    add("commit race: proposer reveals first, both ack in the reveal", s.entries, "valid")

    s, t = opened()
    s.put(acc, shinyo.Cancel(trade=t))
    add("acceptor cancels before any commit", s.entries, "valid")

    s = Script()
    t = s.put(prop, Propose(counterparty=ap, context=CTX, terms=bytes(32))).id
    s.put(prop, shinyo.Cancel(trade=t), dt=8 * 86_400)
    add("proposer withdraws an unanswered offer", s.entries, "valid")

    s, t = opened()
    cp = commit(s, prop, t, 5)
    s.put(acc, shinyo.Cancel(trade=t))
    add("acceptor cancels after the proposer's commit: the cancel stands", s.entries, "valid")

    s, t = opened(accept_dt=7 * 86_400)
    add("accepted exactly at the end of the accept window", s.entries, "valid")

    s, t = opened(accept_dt=7 * 86_400 + 1)
    add("accepted one second after the accept window", s.entries, "trade-rule")
    s, t = opened(ctx="other.example")
    add("acceptance names another context", s.entries, "trade-rule")
    s = Script()
    t = s.put(prop, Propose(counterparty=ap, context=CTX, terms=bytes(32))).id
    s.put(acc, shinyo.Accept(trade=t, proposer=ident(3).pseudonym, context=CTX))
    add("acceptance names another proposer", s.entries, "trade-rule")
    s = Script()
    t = s.put(prop, Propose(counterparty=ap, context=CTX, terms=bytes(32))).id
    s.put(ident(3), shinyo.Accept(trade=t, proposer=pp, context=CTX))
    add("accepted by someone the proposal does not name", s.entries, "trade-rule")

    s, t = opened()
    cp = commit(s, prop, t, 5)
    commit(s, acc, t, 3, ack=s.entries[0])
    add("ack names the proposal, not the commitment", s.entries, "trade-rule")

    s, t = opened()
    cp = commit(s, prop, t, 5)
    ca = commit(s, acc, t, 3, ack=cp)
    reveal(s, acc, t, 3)
    add("second committer reveals before its commitment was acknowledged", s.entries,
        "trade-rule")

    s, t = opened()
    cp = commit(s, prop, t, 5)
    ca = commit(s, acc, t, 1)
    reveal(s, acc, t, 1, ack=cp)
    add("commit race: the acceptor reveals first", s.entries, "trade-rule")

    s, t = opened()
    s.put(acc, shinyo.Cancel(trade=t))
    commit(s, prop, t, 5)
    add("a commit crossing the counterparty's cancel is void: the cancel stands", s.entries,
        "valid")

    s = Script()
    t = s.put(prop, Propose(counterparty=ap, context=CTX, terms=bytes(32))).id
    s.put(prop, shinyo.Cancel(trade=t))
    s.put(acc, shinyo.Accept(trade=t, proposer=pp, context=CTX))
    add("an acceptance crossing the proposer's withdrawal: the withdrawal stands", s.entries,
        "valid")

    s, t = opened()
    cp = commit(s, prop, t, 5)
    ca = commit(s, acc, t, 3, ack=cp)
    reveal(s, prop, t, 5, ack=ca)
    s.put(acc, shinyo.Cancel(trade=t))
    add("cancel after one's own commit", s.entries, "trade-rule")

    s = Script()
    t = s.put(prop, Propose(counterparty=ap, context=CTX, terms=bytes(32))).id
    s.t -= 120  # the acceptor's clock claims a time before the proposal
    s.put(acc, shinyo.Accept(trade=t, proposer=pp, context=CTX))
    add("acceptance older than the proposal", s.entries, "timestamp-regression")

    s, t = opened()
    cp = commit(s, prop, t, 5)
    s.t -= 600
    commit(s, acc, t, 3, ack=cp)
    add("ack older than the commitment it acknowledges", s.entries, "timestamp-regression")
    return out
