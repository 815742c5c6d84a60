"""Signature checks in worker processes (node/_verifier.py): the entries a
pool checks are the entries a thread checks; a broken pool costs no entry; a
pool is gone with its node, even a node killed with SIGKILL."""

from __future__ import annotations

import multiprocessing
import os
import signal
import subprocess
import sys
import textwrap
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import pytest
import trio

from shinyo import BadSignature, Entry
from shinyo.node._replica import Batch, Replica
from shinyo.node._verifier import PARENT_POLL, PROCESS_MIN_ENTRIES
from shinyo.wire import MAX_PUSH_ENTRIES, Entries, Push

from ._hostile import attack, hostile_endpoint, poll, stranger
from ._nodes import WAIT, holds, running
from .test_node_hostile import broken_signature, chain, session_of

assert MAX_PUSH_ENTRIES >= PROCESS_MIN_ENTRIES  # one Push can take the process path


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is dead too: it only waits for its parent to read its status.
    with open(f"/proc/{pid}/stat", encoding="ascii") as f:
        return f.read().rsplit(")", 1)[1].split()[0] != "Z"


async def test_a_pool_checks_what_a_thread_would(tmp_path: Path) -> None:
    author = stranger(70)
    entries = chain(author, MAX_PUSH_ENTRIES)
    raws = [e.encode() for e in entries]
    raws[40] = broken_signature(entries[40])
    async with running(tmp_path, 1, processes=2) as target, hostile_endpoint(70) as ep, \
            attack(ep, target) as h:
        await target.verifier.wait_started()
        assert target.verifier.running
        await h.hello()
        session = await session_of(target, h)
        reply = await h.exchange(Push(entries=tuple(raws)), probe=author.pseudonym)
        assert isinstance(reply, Entries)
        assert target.verifier.stats["batches_in_processes"] == 1
        assert target.store.count(author.pseudonym) == 40  # the rest waits for seq 41
        assert session.stats["offences"] == 1
        await h.send(Push(entries=(entries[40].encode(),)))
        await target.wait_until(lambda: holds(target, author.pseudonym, len(entries)),
                                timeout=WAIT)


async def test_a_broken_pool_costs_no_entry(tmp_path: Path,
                                            caplog: pytest.LogCaptureFixture) -> None:
    author = stranger(71)
    entries = chain(author, 2 * MAX_PUSH_ENTRIES)
    async with running(tmp_path, 1, processes=1) as target, hostile_endpoint(71) as ep, \
            attack(ep, target) as h:
        await target.verifier.wait_started()
        pool = target.verifier._pool
        assert pool is not None
        for pid in list(pool._processes):  # a worker dies (the OOM killer, an operator)
            os.kill(pid, signal.SIGKILL)
        await h.hello()
        await session_of(target, h)
        for i in (0, MAX_PUSH_ENTRIES):
            await h.send(Push(entries=tuple(e.encode() for e in entries[i:i + MAX_PUSH_ENTRIES])))
        await target.wait_until(lambda: holds(target, author.pseudonym, len(entries)),
                                timeout=WAIT)
        assert not target.verifier.running and target.verifier.stats["pool_failures"] == 1
        assert "checking in threads" in caplog.text
        assert target.verifier.stats["batches_in_threads"] == 2


async def test_the_workers_end_with_their_node(tmp_path: Path) -> None:
    async with running(tmp_path, 1, processes=2) as node:
        await node.verifier.wait_started()
        pids = node.verifier.pids
        assert len(pids) == 2 and all(alive(p) for p in pids)
    await poll(lambda: not any(alive(p) for p in pids))


def test_the_workers_of_a_killed_node_exit(tmp_path: Path) -> None:
    # kill -9 shuts no pool down: the workers must notice on their own.
    script = textwrap.dedent(f"""
        from pathlib import Path
        import trio
        from shinyo.node import NodeConfig, open_node
        from shinyo import SigningIdentity

        async def main():
            config = NodeConfig(home=Path({str(tmp_path)!r}), listen="127.0.0.1:0",
                                insecure_plaintext_key=True, processes=2)
            async with open_node(config, identity=SigningIdentity.from_seed(b"k" * 32)) as n:
                await n.verifier.wait_started()
                print(*n.verifier.pids, flush=True)
                await trio.sleep_forever()

        trio.run(main)
    """)
    with subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE,
                          text=True) as proc:
        try:
            assert proc.stdout is not None
            pids = [int(p) for p in proc.stdout.readline().split()]
            assert len(pids) == 2 and all(alive(p) for p in pids)
        finally:
            proc.kill()
            proc.wait()
    deadline = time.monotonic() + WAIT + 4 * PARENT_POLL
    while any(alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(PARENT_POLL / 5)
    assert not any(alive(p) for p in pids), "orphaned signature workers"


async def test_no_pool_when_processes_is_zero(tmp_path: Path) -> None:
    async with running(tmp_path, 1, processes=0) as node:
        node.verifier.start()
        with trio.fail_after(WAIT):
            await node.verifier.wait_started()
        assert not node.verifier.running


def test_a_pool_reports_the_same_failures_as_the_process_itself() -> None:
    # A worker answers (index, what failed); the error is built in the node
    # from its own entry, so class and message are a thread's.
    entries = chain(stranger(72), 3)
    raws = [e.encode() for e in entries]
    raws[1] = broken_signature(entries[1])
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        results = []
        for mapper in (map, pool.map):
            batch = Batch(answer=None)
            batch.items = [Entry._parse(r) for r in raws]
            Replica.check(batch, map=mapper)
            results.append([(type(i), str(i)) for i in batch.items])
    assert results[0] == results[1]
    assert [kind for kind, _ in results[0]] == [Entry, BadSignature, Entry]
