"""Crash safety of the node daemon (issue 7): ``kill -9`` during sync and between
trade steps, then restart on the same home.

The bounded CI run of ``tools/crash.py``: real ``shinyo node run`` daemons
with encrypted keys on 127.0.0.1, driven through their control sockets.  The
campaign's checks (acknowledged entries kept, chains valid, no fork against
the peer, stale control files harmless, the trade and the sync resume) are
first shown to fail on stores that lost or broke something, so the daemon
rounds passing means something; ``--self-test`` shows the same end to end.
The long seeded campaign is ``python -m shinyo.tools.crash --rounds 50``.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from pathlib import Path

import pytest

from shinyo import Entry, Participant
from shinyo.node._node import STORE_FILE
from shinyo.node._store import Store
from shinyo.tools.crash import CampaignConfig, CrashError, Plan, run_campaign
from shinyo.tools.crash_checks import (
    audit_store,
    check_peer,
    lose_newest_entry,
    missing_acknowledged,
    read_ids,
)

from .conftest import CTX, T0, identity, nonce, terms

WAIT = 60.0
"""Seconds a round may take to resume: a hang cut short, never a timing assertion."""
ENTRIES = 2000
"""B's prefill: enough that A is still syncing when it has said it holds 10 %."""
OWNER = identity(1)


def config(*, self_test: bool = False) -> CampaignConfig:
    return CampaignConfig(rounds=0, seed=3, entries=ENTRIES, wait=WAIT, calibrate=False,
                          self_test=self_test)


# -- the daemons ---------------------------------------------------------------------------


def test_kill_during_sync_and_between_trade_steps_loses_nothing(tmp_path: Path) -> None:
    plans = [
        # A killed a few ms after it said it held 10 % of B's 2000 entries, and killed
        # again 0.3 s into its restart (before it is ready, unless the machine is fast).
        Plan(round=0, mode="sync", victims=("a",), sync_at=0.1, race_delay=0.003, again=0.3),
        # A and B killed between A's rating (answered: the commitment and its opening
        # must survive, or A never reveals) and B's.
        Plan(round=1, mode="trade", victims=("a", "b"), step=2, stars=(2, 5)),
    ]
    report = run_campaign(config(), plans=plans, directory=tmp_path)
    assert report.failures == (), report.summary()["failures"]
    sync_kill, second_kill, *trade_kills = report.kills
    assert sync_kill.mode == "sync" and sync_kill.node == "a" and sync_kill.during_sync
    assert second_kill.second and second_kill.node == "a"
    assert {(k.mode, k.node, k.racing) for k in trade_kills} == {("trade", "a", False),
                                                                ("trade", "b", False)}
    assert len(report.resume) == len(plans)  # every round finished its trade and its sync
    assert report.directory is None and not any(tmp_path.iterdir())  # cleaned up


def test_the_campaign_catches_a_store_that_loses_a_committed_entry(tmp_path: Path) -> None:
    """--self-test: each killed A's newest acknowledged entry is deleted before the checks."""
    plan = Plan(round=0, mode="trade", victims=("a",), step=0)
    report = run_campaign(config(self_test=True), plans=[plan], directory=tmp_path)
    found = {(f.check, f.node) for f in report.failures}
    assert ("acknowledged", "a") in found
    assert report.directory is not None  # kept, for a look
    # The replay command carries every option that shapes a round.
    replay = report.reproduce(0)
    assert "--start 0 --rounds 1" in replay and replay.endswith(" --self-test")
    assert f"--wait {report.config.wait:g}" in replay


# -- the checks, on stores that lost or broke something --------------------------------------


def own_chain(path: Path, n: int) -> list[Entry]:
    """A store holding OWNER's chain of ``n`` proposals, with their terms (as the node keeps)."""
    p = Participant(OWNER)
    entries = [p.propose(identity(2).pseudonym, context=CTX, terms=terms(i), timestamp=T0 + i)
               for i in range(n)]
    with Store.open(path) as store:
        store.add_many(entries)
        for e in entries:
            store.set_meta(f"terms:{e.id.hex()}", bytes(16) + b"item")
    return entries


def acked(entries: Sequence[Entry]) -> dict[int, bytes]:
    return {e.seq: e.id for e in entries}


def test_a_whole_store_passes(tmp_path: Path) -> None:
    entries = own_chain(tmp_path / STORE_FILE, 5)
    audit = audit_store(tmp_path / STORE_FILE, owner=OWNER.pseudonym)
    assert audit.problems == () and audit.total == 5
    assert missing_acknowledged(audit, OWNER.pseudonym.key, ids=acked(entries), entries=5,
                                own=5) == []


def test_a_lost_transaction_is_an_acknowledged_entry_missing(tmp_path: Path) -> None:
    path = tmp_path / STORE_FILE
    entries = own_chain(path, 5)
    assert not lose_newest_entry(path, OWNER.pseudonym.key, entries[2].id)  # only the head
    assert lose_newest_entry(path, OWNER.pseudonym.key, entries[-1].id)
    audit = audit_store(path, owner=OWNER.pseudonym)
    assert audit.problems == ()  # a consistent store -- that forgot what it acknowledged
    problems = missing_acknowledged(audit, OWNER.pseudonym.key, ids=acked(entries), entries=5,
                                    own=5)
    assert len(problems) == 3 and "seq 5" in problems[0]


def test_a_hole_or_a_flipped_byte_is_an_invalid_chain(tmp_path: Path) -> None:
    path = tmp_path / STORE_FILE
    entries = own_chain(path, 5)
    with sqlite3.connect(path) as db:
        db.execute("DELETE FROM entries WHERE id = ?", (entries[2].id,))
    problems = audit_store(path, owner=OWNER.pseudonym).problems
    assert len(problems) == 1 and "does not verify" in problems[0]

    path = tmp_path / "flipped" / STORE_FILE
    path.parent.mkdir()
    entries = own_chain(path, 5)
    raw = bytearray(entries[3].encode())
    raw[-1] ^= 1  # in the signature
    with sqlite3.connect(path) as db:
        db.execute("UPDATE entries SET raw = ? WHERE id = ?", (bytes(raw), entries[3].id))
    problems = audit_store(path, owner=OWNER.pseudonym).problems
    assert len(problems) == 1 and "does not verify" in problems[0]


def test_the_secret_halves_of_own_entries_must_survive(tmp_path: Path) -> None:
    me, them = Participant(OWNER), Participant(identity(2))
    proposal = me.propose(them.pseudonym, context=CTX, terms=terms(), timestamp=T0)
    them.receive(proposal)
    me.receive(them.accept(proposal.id, timestamp=T0 + 1))
    commit = me.commit(proposal.id, stars=4, nonce=nonce(1), timestamp=T0 + 2)
    path = tmp_path / STORE_FILE
    with Store.open(path) as store:
        store.add_many([proposal, commit])  # no terms, no opening
    problems = audit_store(path, owner=OWNER.pseudonym).problems
    assert len(problems) == 2
    assert "seq 1 lost its terms" in problems[0] and "seq 2 has no stored opening" in problems[1]
    with Store.open(path) as store:
        store.put_secret(proposal.id, b"opening")
        store.set_meta(f"terms:{proposal.id.hex()}", b"terms")
    assert audit_store(path, owner=OWNER.pseudonym).problems == ()


def test_a_peer_that_holds_more_of_our_chain_or_another_entry_is_a_problem(
        tmp_path: Path) -> None:
    entries = own_chain(tmp_path / STORE_FILE, 4)
    ours = read_ids(tmp_path / STORE_FILE)
    key = OWNER.pseudonym.key
    assert check_peer(key, ours, {key: ours[key][:2]}) == []  # a peer behind is fine
    other = Participant(identity(3)).propose(identity(2).pseudonym, context=CTX,
                                             terms=terms(), timestamp=T0)
    (more,) = check_peer(key, {key: ours[key][:3]}, ours)
    assert "lost entries it had sent" in more
    (fork,) = check_peer(key, ours, {key: (entries[0].id, other.id)})
    assert "differs at seq 2" in fork


# -- plans and options ------------------------------------------------------------------------


def test_plans_are_drawn_from_the_seed_and_checked() -> None:
    assert Plan.draw(5, 17) == Plan.draw(5, 17)
    drawn = {Plan.draw(5, n) for n in range(200)}
    assert {p.mode for p in drawn} == {"sync", "trade"}
    assert {p.victims for p in drawn} == {("a",), ("b",), ("a", "b")}
    assert any(p.race for p in drawn) and any(p.again is not None for p in drawn)
    with pytest.raises(CrashError, match="victims"):
        Plan(round=0, mode="sync", victims=("c",))
    with pytest.raises(CrashError, match="sync_at"):
        Plan(round=0, mode="sync", victims=("a",), sync_at=1.0)
    with pytest.raises(CrashError, match="again"):
        Plan(round=0, mode="sync", victims=("b",), again=0.5)
    with pytest.raises(CrashError, match="entries"):
        CampaignConfig(rounds=1, seed=0, entries=11)
