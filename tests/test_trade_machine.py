"""Random interleavings of two honest participants (hypothesis state machine).

Each party follows ``next_step`` (with random stars, random cancels and random
delays); entries travel in per-author FIFO queues delivered in random order.
Whatever the interleaving: no honest step is ever refused, every chain stays
valid from its bytes, and once both ratings are revealed each side sees the
other's exact stars.
"""

from __future__ import annotations

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from shinyo import Action, Chain, Entry, Participant, TradeState

from .conftest import CTX, T0, identity, terms


class TwoTraders(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.parties = [Participant(identity(1)), Participant(identity(2))]
        self.queues: list[list[Entry]] = [[], []]  # entries on their way *to* party i
        self.now = T0
        self.trades: list[bytes] = []
        self.stars: dict[tuple[int, bytes], int] = {}
        self.counter = 0

    def _send(self, sender: int, entry: Entry) -> None:
        self.queues[1 - sender].append(entry)

    @rule(sender=st.integers(0, 1), dt=st.integers(0, 3600))
    @precondition(lambda self: len(self.trades) < 4)
    def propose(self, sender: int, dt: int) -> None:
        self.now += dt
        me, them = self.parties[sender], self.parties[1 - sender]
        self.counter += 1
        e = me.propose(them.pseudonym, context=CTX, terms=terms(self.counter), timestamp=self.now)
        self.trades.append(e.id)
        self._send(sender, e)

    @rule(to=st.integers(0, 1))
    @precondition(lambda self: any(self.queues))
    def deliver(self, to: int) -> None:
        if self.queues[to]:
            self.parties[to].receive(self.queues[to].pop(0))

    @rule(who=st.integers(0, 1), pick=st.integers(0, 3), stars=st.integers(1, 5),
          cancel=st.booleans(), dt=st.integers(0, 3600))
    @precondition(lambda self: bool(self.trades))
    def act(self, who: int, pick: int, stars: int, cancel: bool, dt: int) -> None:
        trade = self.trades[pick % len(self.trades)]
        me = self.parties[who]
        if trade not in me.sessions:
            return  # the offer has not reached this party yet
        self.now += dt
        step = me.next_step(trade, now=self.now)
        entry: Entry | None = None
        if step.action is Action.ACCEPT:
            entry = me.accept(trade, timestamp=self.now)
        elif step.action is Action.COMMIT:
            if cancel:
                entry = me.cancel(trade, timestamp=self.now)
            else:
                self.stars[(who, trade)] = stars
                nonce = bytes([self.counter % 256, who, stars]) + bytes(13)
                entry = me.commit(trade, stars=stars, nonce=nonce, timestamp=self.now)
        elif step.action is Action.REVEAL:
            entry = me.reveal(trade, timestamp=self.now)
        elif step.action is Action.WITHDRAW:
            entry = me.cancel(trade, timestamp=self.now)
        if entry is not None:
            self._send(who, entry)

    @invariant()
    def chains_verify_from_bytes(self) -> None:
        for p in self.parties:
            if len(p.chain):
                Chain.from_entries([Entry.decode(e.encode()) for e in p.chain.entries])

    @invariant()
    def views_agree(self) -> None:
        a, b = self.parties
        for t in self.trades:
            sa, sb = a.sessions.get(t), b.sessions.get(t)
            if sa is None or sb is None:
                continue
            if sa.state is TradeState.COMPLETE and sb.state is TradeState.COMPLETE:
                assert sa.rating_received() == self.stars[(1, t)]
                assert sb.rating_received() == self.stars[(0, t)]
            if not any(self.queues):
                # Fully delivered: a cancellation is seen by both.
                assert (sa.state is TradeState.CANCELLED) == (sb.state is TradeState.CANCELLED)


TwoTraders.TestCase.settings = settings(max_examples=60, stateful_step_count=40,
                                        deadline=None)
test_two_traders = TwoTraders.TestCase
