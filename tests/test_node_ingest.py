"""The node's ingest path: a message's entries are parsed as read, their
signatures checked in a worker thread, and placed and stored in order
(node/_replica.py stages, node/_peer.py pipeline; wire.md 7.4, 7.5, 12)."""

from __future__ import annotations

import math
import time
from pathlib import Path

import pytest
import trio

from shinyo import BadSignature, Entry, LocalProtocolError
from shinyo.node._ledger import Ledger
from shinyo.node._peer import INGEST_DEPTH, THREAD_MIN_ENTRIES
from shinyo.node._replica import Batch, Replica
from shinyo.node._store import Store
from shinyo.wire import MAX_PUSH_ENTRIES, PUSH_HORIZON, Entries, Push, encode_frame, is_news

from ._hostile import attack, hostile_endpoint, poll, stranger
from ._nodes import WAIT, holds, identity, running
from .test_node_hostile import CTX, broken_signature, chain, session_of, target_and_honest

NOW = 2_000_000_000  # later than every entry's timestamp (chain() signs them in the past)


def open_replica(home: Path) -> Replica:
    home.mkdir(parents=True, exist_ok=True)
    return Replica(Ledger.open(Store.open(home / "node.db"), identity(1)))


def answer(entries: list[Entry], raws: list[bytes] | None = None) -> Entries:
    return Entries(author=entries[0].author, first=entries[0].seq,
                   last=entries[0].seq + len(entries) - 1,
                   entries=tuple(raws if raws is not None else [e.encode() for e in entries]))


# -- the three stages --------------------------------------------------------------------------


def test_the_stages_store_what_one_receive_stores(tmp_path: Path) -> None:
    entries = chain(stranger(30), 6)
    staged, whole = open_replica(tmp_path / "a"), open_replica(tmp_path / "b")
    batch = staged.prepare([e.encode() for e in entries])
    assert batch.unchecked == 6 and not batch.checked
    Replica.check(batch)
    assert batch.unchecked == 0
    out = staged.commit(batch, now=NOW)
    assert [e.id for e in out.stored] == [e.id for e in entries]
    assert out.stored == whole.receive([e.encode() for e in entries], now=NOW).stored


def test_commit_refuses_a_batch_whose_signatures_were_not_checked(tmp_path: Path) -> None:
    replica = open_replica(tmp_path)
    batch = replica.prepare([e.encode() for e in chain(stranger(31), 2)])
    with pytest.raises(LocalProtocolError, match="check"):
        replica.commit(batch, now=NOW)
    assert replica.ledger.chain(stranger(31).pseudonym) is None


def test_held_entries_and_seen_ids_skip_the_signature_check(tmp_path: Path) -> None:
    entries = chain(stranger(32), 4)
    replica = open_replica(tmp_path)
    replica.receive([e.encode() for e in entries[:2]], now=NOW)
    # A Push: ids in the seen-set are skipped before parsing (8.2) ...
    pushed = replica.prepare([e.encode() for e in entries])
    assert pushed.skipped == 2 and pushed.unchecked == 2
    # ... an answer is parsed and checked against its Want, and a payload we
    # hold is dropped before its signature is checked.
    answered = replica.prepare([e.encode() for e in entries], answer=answer(entries))
    assert answered.skipped == 2 and answered.unchecked == 2


def test_a_batch_prepared_while_another_stores_the_same_entries_stores_them_once(
        tmp_path: Path) -> None:
    # Two peers' copies of the same entries in flight at once: both checked
    # (the skip read the replica before either stored), stored once.
    entries = chain(stranger(33), 5)
    replica = open_replica(tmp_path)
    first = replica.prepare([e.encode() for e in entries])
    second = replica.prepare([e.encode() for e in entries], answer=answer(entries))
    Replica.check(second)
    Replica.check(first)
    assert len(replica.commit(first, now=NOW).stored) == 5
    late = replica.commit(second, now=NOW)
    assert late.stored == [] and late.errors == [] and not late.failed_authors
    assert len(replica.ledger.chain(stranger(33).pseudonym) or []) == 5


def test_an_answer_ends_at_its_first_bad_signature(tmp_path: Path) -> None:
    entries = chain(stranger(34), 6)
    raws = [e.encode() for e in entries]
    raws[3] = broken_signature(entries[3])
    replica = open_replica(tmp_path)
    batch = replica.prepare(raws, answer=answer(entries, raws))
    assert batch.unchecked == 6  # the signature is stage 2's
    Replica.check(batch)
    out = replica.commit(batch, now=NOW)
    assert [e.seq for e in out.stored] == [1, 2, 3]  # 7.4 step 2: the rest discarded
    assert [type(e) for e in out.errors] == [BadSignature]
    assert out.failed_authors == {stranger(34).pseudonym}


def test_a_push_goes_on_past_a_bad_signature(tmp_path: Path) -> None:
    entries = chain(stranger(35), 4)
    raws = [e.encode() for e in entries]
    raws[1] = broken_signature(entries[1])
    replica = open_replica(tmp_path)
    batch = replica.prepare(raws)
    Replica.check(batch)
    out = replica.commit(batch, now=NOW)
    assert [e.seq for e in out.stored] == [1]
    assert out.ahead == [(stranger(35).pseudonym, 3), (stranger(35).pseudonym, 4)]
    assert len(out.errors) == 1 and not out.failed_authors


# -- the session's pipeline --------------------------------------------------------------------


async def test_a_push_checked_in_a_worker_thread_stores_all_but_the_forged_entry(
        tmp_path: Path) -> None:
    author = stranger(36)
    entries = chain(author, 2 * THREAD_MIN_ENTRIES)
    raws = [e.encode() for e in entries]
    raws[4] = broken_signature(entries[4])
    async with running(tmp_path, 1) as target, hostile_endpoint(36) as ep, \
            attack(ep, target) as h:
        await h.hello()
        session = await session_of(target, h)
        reply = await h.exchange(Push(entries=tuple(raws)), probe=author.pseudonym)
        assert isinstance(reply, Entries)
        assert target.store.count(author.pseudonym) == 4
        assert session.stats["offences"] == 1
        # The valid copy of the forged entry, from the same peer: the seen-set
        # kept no id of the forgery (8.2), and the held rest follows it.
        await h.send(Push(entries=(entries[4].encode(),)))
        await target.wait_until(lambda: holds(target, author.pseudonym, len(entries)),
                                timeout=WAIT)


async def test_a_full_ingest_pipeline_stops_the_reader_and_loses_nothing(
        tmp_path: Path) -> None:
    # Every worker thread is taken, so no signature check finishes: the
    # session's reader must stop once INGEST_DEPTH messages wait (plus the one
    # the ingest task holds, and what one read of the stream brought), and
    # QUIC flow control then holds the rest at the sender (wire.md 12).
    authors = [stranger(40 + i) for i in range(20)]
    pushes = [Push(entries=tuple(e.encode() for e in chain(a, MAX_PUSH_ENTRIES)))
              for a in authors]
    per_read = math.ceil(65536 / min(len(encode_frame(p)) for p in pushes))
    bound = INGEST_DEPTH + 1 + per_read
    assert bound < len(pushes), "send more than the pipeline may hold"
    async with running(tmp_path, 1) as target, hostile_endpoint(37) as ep, \
            attack(ep, target) as h:
        prepared: list[Batch] = []
        prepare = target.replica.prepare

        def counting(*args: object, **kwargs: object) -> Batch:
            batch = prepare(*args, **kwargs)  # type: ignore[arg-type]
            prepared.append(batch)
            return batch

        target.replica.prepare = counting  # type: ignore[method-assign]
        limiter = target.verifier.limiter
        holders = [object() for _ in range(int(limiter.total_tokens))]
        for holder in holders:
            await limiter.acquire_on_behalf_of(holder)
        await h.hello()
        await session_of(target, h)
        for push in pushes:
            await h.send(push)
        await poll(lambda: len(prepared) >= INGEST_DEPTH + 1)
        await trio.sleep(0.2)  # time to read on, were the reader not stopped
        assert INGEST_DEPTH + 1 <= len(prepared) <= bound
        assert sum(target.store.count(a.pseudonym) for a in authors) == 0
        for holder in holders:
            limiter.release_on_behalf_of(holder)
        await target.wait_until(
            lambda: all(holds(target, a.pseudonym, MAX_PUSH_ENTRIES) for a in authors),
            timeout=WAIT)
        assert len(prepared) == len(pushes)


# -- what is pushed on (wire.md 8.1) ------------------------------------------------------------


def test_an_entry_is_news_for_push_horizon_seconds() -> None:
    entry = chain(stranger(50), 1)[0]
    t = entry.timestamp
    assert is_news(entry, now=t + PUSH_HORIZON)
    assert not is_news(entry, now=t + PUSH_HORIZON + 1)
    assert is_news(entry, now=t - 30)  # a writer's clock ahead of ours: still news


async def test_a_catch_up_is_not_pushed_on_and_news_is(tmp_path: Path) -> None:
    old, new = stranger(51), stranger(52)
    bystander = stranger(200).pseudonym
    then = int(time.time()) - 2 * PUSH_HORIZON
    history = [old.propose(bystander, context=CTX, terms=bytes([i]) * 32, timestamp=then + i)
               for i in range(5)]
    async with target_and_honest(tmp_path) as (target, honest), \
            hostile_endpoint(38) as ep, attack(ep, target) as h:
        await h.hello()
        await session_of(target, h)
        onward = target.sessions[honest.node_key]
        await h.exchange(Push(entries=tuple(e.encode() for e in history)),
                         probe=old.pseudonym)
        assert target.store.count(old.pseudonym) == 5
        assert onward.stats["pushed"] == 0  # not news: the honest node pulls it
        honest.anti_entropy()
        await honest.wait_until(lambda: holds(honest, old.pseudonym, 5), timeout=WAIT)
        await h.exchange(Push(entries=tuple(e.encode() for e in chain(new, 3))),
                         probe=new.pseudonym)
        await honest.wait_until(lambda: holds(honest, new.pseudonym, 3), timeout=WAIT)
        assert onward.stats["pushed"] == 3
