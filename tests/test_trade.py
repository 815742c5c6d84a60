"""The trade session (spec 7): whole flows, deadlines, and every state x event."""

from __future__ import annotations

from collections.abc import Callable

import pytest

import shinyo
from shinyo import (
    ACCEPT_WINDOW,
    COMMIT_WINDOW,
    RESPONSE_WINDOW,
    TRANSITIONS,
    Action,
    Entry,
    Event,
    LocalProtocolError,
    Participant,
    Propose,
    TradeRuleViolation,
    TradeSession,
    TradeState,
)
from shinyo._constants import GENESIS_PREV

from .conftest import CTX, T0, Pair, identity, nonce, terms

P, A = identity(1), identity(2)


def test_full_flow_both_views(pair: Pair) -> None:
    t = pair.agree()
    assert pair.a.next_step(t, now=T0 + 100).action is Action.COMMIT
    pair.rate(t, 5, 3)
    sa, sb = pair.a.session(t), pair.b.session(t)
    assert sa.state is sb.state is TradeState.COMPLETE
    assert (sa.rating_given(), sa.rating_received()) == (5, 3)
    assert (sb.rating_given(), sb.rating_received()) == (3, 5)
    assert sa.next_step(T0).action is Action.NONE


def test_acceptor_commits_first(pair: Pair) -> None:
    t = pair.agree()
    pair.step(pair.b.commit(t, stars=4, nonce=nonce(3), timestamp=T0 + 100))
    assert pair.a.session(t).state is TradeState.THEY_COMMITTED
    pair.step(pair.a.commit(t, stars=2, nonce=nonce(4), timestamp=T0 + 200))
    assert pair.a.next_step(t, now=T0 + 300).action is Action.WAIT
    with pytest.raises(LocalProtocolError, match="acknowledge"):
        pair.a.reveal(t, timestamp=T0 + 300)
    assert pair.b.next_step(t, now=T0 + 300).action is Action.REVEAL
    pair.step(pair.b.reveal(t, timestamp=T0 + 300))
    pair.step(pair.a.reveal(t, timestamp=T0 + 400))
    assert pair.a.session(t).rating_received() == 4


def test_commit_race_proposer_reveals_first(pair: Pair) -> None:
    t = pair.agree()
    ca = pair.a.commit(t, stars=5, nonce=nonce(1), timestamp=T0 + 100)
    cb = pair.b.commit(t, stars=1, nonce=nonce(2), timestamp=T0 + 100)
    pair.deliver(ca)
    pair.deliver(cb)
    assert pair.a.session(t).state is TradeState.I_REVEAL_FIRST
    assert pair.b.session(t).state is TradeState.THEY_REVEAL_FIRST
    assert pair.a.next_step(t, now=T0 + 200).action is Action.REVEAL
    assert pair.b.next_step(t, now=T0 + 200).action is Action.WAIT
    pair.step(pair.a.reveal(t, timestamp=T0 + 200))
    pair.step(pair.b.reveal(t, timestamp=T0 + 300))
    assert pair.a.session(t).rating_received() == 1


def test_cancel_retract_and_response(pair: Pair) -> None:
    t = pair.agree()
    pair.rate(t, 2, 5)
    pair.step(pair.a.respond(t, text=bytes(32), timestamp=T0 + 9000))
    with pytest.raises(LocalProtocolError):
        pair.a.respond(t, text=bytes(32), timestamp=T0 + 9001)
    pair.step(pair.b.retract(t, timestamp=T0 + 9100))
    assert pair.a.session(t).rating_received() is None
    with pytest.raises(LocalProtocolError):
        pair.b.retract(t, timestamp=T0 + 9200)
    assert pair.b.session(t).rating_given() is None
    u = pair.agree(T0 + 10_000)
    pair.step(pair.b.cancel(u, timestamp=T0 + 10_100))
    assert pair.a.session(u).state is TradeState.CANCELLED
    with pytest.raises(LocalProtocolError):
        pair.a.commit(u, stars=3, nonce=nonce(1), timestamp=T0 + 10_200)


def test_deadlines(pair: Pair) -> None:
    p = pair.step(pair.a.propose(pair.b.pseudonym, context=CTX, terms=terms(), timestamp=T0))
    t = p.id
    wait = pair.a.next_step(t, now=T0)
    assert (wait.action, wait.deadline, wait.late) == (Action.WAIT, T0 + ACCEPT_WINDOW, False)
    assert pair.a.next_step(t, now=T0 + ACCEPT_WINDOW + 1).action is Action.WITHDRAW
    assert pair.b.next_step(t, now=T0 + 1).action is Action.ACCEPT
    assert pair.b.next_step(t, now=T0 + ACCEPT_WINDOW + 1).action is Action.NONE
    pair.step(pair.b.accept(t, timestamp=T0 + 10))
    step = pair.a.next_step(t, now=T0 + COMMIT_WINDOW + 11)
    assert step.action is Action.COMMIT and step.late and step.deadline == T0 + 10 + COMMIT_WINDOW
    c = pair.step(pair.b.commit(t, stars=3, nonce=nonce(1), timestamp=T0 + COMMIT_WINDOW))
    # A late counterparty commit extends my commit deadline to its time + 14 days.
    assert pair.a.next_step(t, now=T0).deadline == c.timestamp + RESPONSE_WINDOW
    assert pair.b.next_step(t, now=T0).deadline == c.timestamp + RESPONSE_WINDOW
    pair.step(pair.a.commit(t, stars=3, nonce=nonce(2), timestamp=c.timestamp + 5))
    r = pair.step(pair.b.reveal(t, timestamp=c.timestamp + 10))
    assert pair.a.next_step(t, now=T0).deadline == r.timestamp + RESPONSE_WINDOW
    assert pair.b.next_step(t, now=T0).deadline == r.timestamp + RESPONSE_WINDOW


def test_session_guards() -> None:
    a, b, c = Participant(P), Participant(A), Participant(identity(3))
    p = a.propose(b.pseudonym, context=CTX, terms=terms(), timestamp=T0)
    with pytest.raises(LocalProtocolError):
        TradeSession(me=c.pseudonym, proposal=p)
    acc = Entry.create(A, seq=1, prev=GENESIS_PREV, timestamp=T0,
                       body=shinyo.Accept(trade=p.id, proposer=a.pseudonym, context=CTX))
    with pytest.raises(LocalProtocolError):
        TradeSession(me=a.pseudonym, proposal=acc)
    s = TradeSession(me=a.pseudonym, proposal=p)
    stranger = Entry.create(identity(3), seq=1, prev=GENESIS_PREV, timestamp=T0,
                            body=shinyo.Cancel(trade=p.id))
    with pytest.raises(TradeRuleViolation, match="not a party"):
        s.receive(stranger)
    other = Entry.create(A, seq=1, prev=GENESIS_PREV, timestamp=T0,
                         body=shinyo.Cancel(trade=bytes(32)))
    with pytest.raises(TradeRuleViolation, match="does not belong"):
        s.receive(other)
    vouch = Entry.create(A, seq=1, prev=GENESIS_PREV, timestamp=T0,
                         body=shinyo.Vouch(subject=a.pseudonym, context=CTX))
    with pytest.raises(TradeRuleViolation):
        s.receive(vouch)
    with pytest.raises(LocalProtocolError):
        s.accept_body()
    with pytest.raises(LocalProtocolError):
        a.session(bytes(32))
    with pytest.raises(LocalProtocolError):
        a.receive(p)


def test_participant_ignores_unrelated_entries() -> None:
    a, b, c = Participant(P), Participant(A), Participant(identity(3))
    p = c.propose(b.pseudonym, context=CTX, terms=terms(), timestamp=T0)
    assert a.receive(p) is None  # a proposal between others: followed, no session
    assert a.receive(c.vouch(b.pseudonym, context=CTX, timestamp=T0)) is None
    assert len(a.others[c.pseudonym]) == 2


def test_reveal_needs_the_opening() -> None:
    pair = Pair(Participant(P), Participant(A))
    t = pair.agree()
    pair.step(pair.a.commit(t, stars=5, nonce=nonce(1), timestamp=T0 + 100))
    pair.step(pair.b.commit(t, stars=4, nonce=nonce(2), timestamp=T0 + 200))
    pair.a.session(t).opening = None  # e.g. lost across a restart without storage
    with pytest.raises(LocalProtocolError, match="opening"):
        pair.a.reveal(t, timestamp=T0 + 300)


# -- every state x every event ------------------------------------------------------


class Script:
    """Two hand-written chains, so any event can be produced in any state."""

    def __init__(self) -> None:
        self.heads: dict[shinyo.Pseudonym, Entry] = {}
        self.commits: dict[shinyo.Pseudonym, Entry] = {}
        self.t = T0
        self.proposal = self.put(P, Propose(counterparty=A.pseudonym, context=CTX,
                                            terms=terms()))

    def put(self, who: shinyo.SigningIdentity, body: shinyo.Body) -> Entry:
        self.t += 10
        head = self.heads.get(who.pseudonym)
        e = Entry.create(who, seq=1 if head is None else head.seq + 1,
                         prev=GENESIS_PREV if head is None else head.id,
                         timestamp=self.t, body=body)
        self.heads[who.pseudonym] = e
        if isinstance(body, shinyo.Commit):
            self.commits[who.pseudonym] = e
        return e

    def make(self, me: shinyo.SigningIdentity, event: Event) -> Entry:
        mine = event.name.startswith("MY_")
        who = me if mine else (A if me is P else P)
        other = A if who is P else P
        t = self.proposal.id
        name = event.name.split("_", 1)[1]
        their_commit = self.commits.get(other.pseudonym)
        ack = their_commit.id if their_commit is not None else b"\x77" * 32
        body: shinyo.Body
        if name == "ACCEPT":
            body = shinyo.Accept(trade=t, proposer=P.pseudonym, context=CTX)
        elif name == "CANCEL":
            body = shinyo.Cancel(trade=t)
        elif name.startswith("COMMIT"):
            commitment = shinyo.rating_commitment(
                trade=t, context=CTX, rater=who.pseudonym, ratee=other.pseudonym, stars=3,
                nonce=nonce(1))
            body = shinyo.Commit(trade=t, commitment=commitment,
                                 ack=ack if name.endswith("ACK") else None)
        else:  # a reveal acks exactly when its author's commit did not (spec 7.3)
            mine_commit = self.commits.get(who.pseudonym)
            acked = mine_commit is not None and isinstance(mine_commit.body, shinyo.Commit) \
                and mine_commit.body.ack is not None
            body = shinyo.Reveal(trade=t, stars=3, nonce=nonce(1), ack=None if acked else ack)
        return self.put(who, body)


OPEN = {shinyo.Role.PROPOSER: [("them", "ACCEPT")], shinyo.Role.ACCEPTOR: [("me", "ACCEPT")]}
AFTER_OPEN: dict[str, tuple[TradeState, list[tuple[str, str]]]] = {
    "agreed": (TradeState.AGREED, []),
    "i-committed": (TradeState.I_COMMITTED, [("me", "COMMIT")]),
    "they-committed": (TradeState.THEY_COMMITTED, [("them", "COMMIT")]),
    "i-reveal-first": (TradeState.I_REVEAL_FIRST, [("me", "COMMIT"), ("them", "COMMIT_ACK")]),
    "they-reveal-first": (TradeState.THEY_REVEAL_FIRST,
                          [("them", "COMMIT"), ("me", "COMMIT_ACK")]),
    "i-revealed": (TradeState.I_REVEALED,
                   [("me", "COMMIT"), ("them", "COMMIT_ACK"), ("me", "REVEAL")]),
    "they-revealed": (TradeState.THEY_REVEALED,
                      [("them", "COMMIT"), ("me", "COMMIT_ACK"), ("them", "REVEAL")]),
    "complete": (TradeState.COMPLETE, [("me", "COMMIT"), ("them", "COMMIT_ACK"),
                                       ("me", "REVEAL"), ("them", "REVEAL")]),
    "cancelled": (TradeState.CANCELLED, [("them", "CANCEL")]),
}


def paths(role: shinyo.Role) -> dict[str, tuple[TradeState, list[tuple[str, str]]]]:
    """Named ways into every state of ``role``'s table, commit races included."""
    proposer = role is shinyo.Role.PROPOSER
    race = [("me", "COMMIT"), ("them", "COMMIT")]
    out = {
        "offered": (TradeState.OFFERED_OUT if proposer else TradeState.OFFERED_IN, []),
        "race": (TradeState.I_REVEAL_FIRST if proposer else TradeState.THEY_REVEAL_FIRST,
                 OPEN[role] + race),
        "race-revealed": (TradeState.I_REVEALED if proposer else TradeState.THEY_REVEALED,
                          [*OPEN[role], *race, ("me" if proposer else "them", "REVEAL")]),
    }
    for name, (state, steps) in AFTER_OPEN.items():
        out[name] = (state, OPEN[role] + steps)
    return out


def at(role: shinyo.Role, name: str) -> tuple[Script, TradeSession, shinyo.SigningIdentity]:
    """A script and ``role``'s session, driven along the named path."""
    state, steps = paths(role)[name]
    me = P if role is shinyo.Role.PROPOSER else A
    s = Script()
    session = TradeSession(me=me.pseudonym, proposal=s.proposal)
    for who, step in steps:
        session.receive(s.make(me, Event[("MY_" if who == "me" else "THEIR_") + step]))
    assert session.state is state
    return s, session, me


def test_the_tables_cover_every_state() -> None:
    for role, table in TRANSITIONS.items():
        reached = {s for s, _ in table} | set(table.values())
        other_opening = (TradeState.OFFERED_IN if role is shinyo.Role.PROPOSER
                         else TradeState.OFFERED_OUT)
        assert reached == set(TradeState) - {other_opening}
        assert TradeState.COMPLETE not in {s for s, _ in table}
        # CANCELLED only absorbs entries that crossed the cancellation in flight.
        assert all(new is TradeState.CANCELLED for (old, _), new in table.items()
                   if old is TradeState.CANCELLED)


CASES = [(role, name, event) for role in shinyo.Role for name in paths(role) for event in Event]


@pytest.mark.parametrize(("role", "name", "event"), CASES,
                         ids=[f"{r.value}-{n}-{e.value}" for r, n, e in CASES])
def test_every_state_and_event(role: shinyo.Role, name: str, event: Event) -> None:
    """Each pair is the table's transition, or a typed error that changes nothing."""
    script, session, me = at(role, name)
    entry = script.make(me, event)
    before = session.state
    expected = TRANSITIONS[role].get((before, event))
    if expected is not None:
        assert session.receive(entry) is expected
        return
    error: type[Exception] = (LocalProtocolError if event.name.startswith("MY_")
                              else TradeRuleViolation)
    with pytest.raises(error):
        session.receive(entry)
    assert session.state is before


def test_a_reveal_must_open_the_commitment_even_without_the_chain() -> None:
    """Review finding: a bundle holds only some counterparty entries, so the
    session itself checks the commitment (a 1-star commit revealed as 5)."""
    script, session, _ = at(shinyo.Role.PROPOSER, "i-revealed")
    t = script.proposal.id
    forged = script.put(A, shinyo.Reveal(trade=t, stars=5, nonce=nonce(1)))
    with pytest.raises(shinyo.CommitmentMismatch):
        session.receive(forged)


def test_reveal_guard_ack_exactly_once() -> None:
    for ack in (True, False):
        script, session, _ = at(shinyo.Role.PROPOSER, "i-reveal-first" if ack else "race")
        # i-reveal-first: my commit had no ack -> my reveal must carry one; likewise race.
        t = script.proposal.id
        bad = script.put(P, shinyo.Reveal(trade=t, stars=3, nonce=nonce(1), ack=None))
        with pytest.raises(LocalProtocolError, match="exactly once"):
            session.receive(bad)
    script, session, _ = at(shinyo.Role.PROPOSER, "i-revealed")
    their = script.commits[A.pseudonym]
    bad = script.put(A, shinyo.Reveal(trade=script.proposal.id, stars=3, nonce=nonce(1),
                                      ack=script.commits[P.pseudonym].id))
    assert their.body.ack is not None  # type: ignore[union-attr]
    with pytest.raises(TradeRuleViolation, match="exactly once"):
        session.receive(bad)


BUILDERS: list[Callable[[TradeSession], object]] = [
    lambda s: s.accept_body(),
    lambda s: s.cancel_body(),
    lambda s: s.commit_body(stars=3, nonce=nonce(1)),
    lambda s: s.reveal_body(),
    lambda s: s.retract_body(),
    lambda s: s.response_body(bytes(32)),
]


@pytest.mark.parametrize(("role", "name"), [(r, n) for r in shinyo.Role for n in paths(r)])
def test_body_builders_work_or_refuse(role: shinyo.Role, name: str) -> None:
    """A builder either works in this state or raises LocalProtocolError."""
    for build in BUILDERS:
        _, session, _me = at(role, name)
        session.opening = shinyo.RatingOpening(stars=3, nonce=nonce(1))
        try:
            build(session)
        except LocalProtocolError:
            continue
