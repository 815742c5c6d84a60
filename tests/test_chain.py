"""Chain bookkeeping and the local-user guard (spec 6.5)."""

from __future__ import annotations

import pytest

from shinyo import Cancel, Chain, Entry, LocalProtocolError, Participant, Role, Vouch

from .conftest import CTX, T0, Pair, identity, nonce


def test_accessors_after_a_trade(pair: Pair) -> None:
    t = pair.agree()
    pair.rate(t, 5, 4)
    chain = pair.a.chain
    assert len(chain) == 3 and chain.head is chain[3] and chain.entries[0] is chain[1]
    with pytest.raises(KeyError):
        chain[0]
    with pytest.raises(KeyError):
        chain[4]
    view = chain.trade(t)
    assert view is not None and view.role is Role.PROPOSER
    assert view.counterparty == pair.b.pseudonym and view.context == CTX
    assert view.ack == pair.b.session(t)._mine.commit.id  # type: ignore[union-attr]
    assert list(chain.trades) == [t]
    assert chain.trade(bytes(32)) is None
    other = pair.b.chain.trade(t)
    assert other is not None and other.role is Role.ACCEPTOR


def test_append_new_guards() -> None:
    me, other = identity(1), identity(2)
    chain = Chain(me.pseudonym)
    with pytest.raises(LocalProtocolError, match="does not own"):
        chain.append_new(other, timestamp=T0, body=Cancel(trade=bytes(32)))
    with pytest.raises(LocalProtocolError, match="invalid entry"):
        chain.append_new(me, timestamp=T0, body=Cancel(trade=bytes(32)))
    chain.append_new(me, timestamp=T0, body=Vouch(subject=other.pseudonym, context=CTX))
    with pytest.raises(LocalProtocolError, match="backwards"):
        chain.append_new(me, timestamp=T0 - 1,
                         body=Vouch(subject=other.pseudonym, context=CTX, active=False))
    assert len(chain) == 1  # nothing invalid was kept
    assert [e.seq for e in chain.active_vouches()] == [1]


def test_from_entries_needs_one_entry() -> None:
    with pytest.raises(LocalProtocolError):
        Chain.from_entries([])


def test_chain_grows_linearly_and_round_trips() -> None:
    p = Participant(identity(7))
    for i in range(200):
        p.vouch(identity(100 + i % 50).pseudonym, context=f"c{i // 50}", timestamp=T0 + i,
                active=True)
    raws = [e.encode() for e in p.chain.entries]
    again = Chain.from_entries([Entry.decode(r) for r in raws])
    assert [e.id for e in again.entries] == [e.id for e in p.chain.entries]
    assert len(again.active_vouches()) == 200


def test_a_participant_restored_from_its_chains_carries_on(pair: Pair) -> None:
    """Participant.restore: what a node does at start-up from its store."""
    t1, t2 = pair.agree(T0), pair.agree(T0 + 1000)
    pair.step(pair.a.commit(t1, stars=4, nonce=nonce(1), timestamp=T0 + 2000))
    pair.step(pair.b.commit(t1, stars=3, nonce=nonce(2), timestamp=T0 + 2100))
    pair.step(pair.b.cancel(t2, timestamp=T0 + 2200))
    opening = pair.a.session(t1).opening
    assert opening is not None
    a = Participant.restore(pair.a.identity, own=pair.a.chain.entries,
                            others=[c.entries for c in pair.a.others.values()],
                            openings={t1: opening})
    assert {t: s.state for t, s in a.sessions.items()} == {
        t: s.state for t, s in pair.a.sessions.items()}
    reveal = a.reveal(t1, timestamp=T0 + 2300)  # the restored secret opens the commitment
    pair.b.receive(reveal)
    assert pair.b.session(t1).rating_received() == 4
    forgetful = Participant.restore(pair.a.identity, own=pair.a.chain.entries,
                                    others=[c.entries for c in pair.a.others.values()])
    with pytest.raises(LocalProtocolError):
        forgetful.reveal(t1, timestamp=T0 + 2300)
