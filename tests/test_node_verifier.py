"""Signature checks in worker processes (node/_verifier.py, node/_sigworker.py):
the entries a worker checks are the entries a thread checks; a broken worker
costs no entry; workers are gone with their node, even a node killed with
SIGKILL; and a worker does not run the program that started the node."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import trio

from shinyo import BadSignature, Entry
from shinyo._entry import step_seven_failure
from shinyo.node._replica import Batch, Replica
from shinyo.node._sigworker import decode_answer, encode_request
from shinyo.node._verifier import PROCESS_MIN_ENTRIES
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
        assert target.verifier.pids
        for pid in target.verifier.pids:  # the workers die (the OOM killer, an operator)
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
        assert target.verifier.stats["batches_in_processes"] == 0


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
    deadline = time.monotonic() + WAIT
    while any(alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not any(alive(p) for p in pids), "orphaned signature workers"


async def test_no_pool_when_processes_is_zero(tmp_path: Path) -> None:
    async with running(tmp_path, 1, processes=0) as node:
        node.verifier.start()
        with trio.fail_after(WAIT):
            await node.verifier.wait_started()
        assert not node.verifier.running


def test_a_worker_reports_the_same_failures_as_the_node_itself() -> None:
    # A worker answers (index, what failed); the error is built in the node
    # from its own entry, so class and message are a thread's.
    entries = chain(stranger(72), 3)
    raws = [e.encode() for e in entries]
    raws[1] = broken_signature(entries[1])
    parsed = [Entry._parse(r) for r in raws]
    request = encode_request([(e.author.key, e.payload, e.signature) for e in parsed])
    done = subprocess.run([sys.executable, "-m", "shinyo.node._sigworker"], input=request,
                          capture_output=True, timeout=60, check=True)
    assert done.stdout[:1] == b"R"
    answer = done.stdout[1:]
    failures = decode_answer(answer[4:4 + int.from_bytes(answer[:4], "big")])
    assert failures == [(1, 2)]  # entry 1: the signature (2)
    batch = Batch(answer=None)
    batch.items = list(parsed)
    Replica.check(batch)
    assert [type(i) for i in batch.items] == [Entry, BadSignature, Entry]
    assert str(batch.items[1]) == str(step_seven_failure(parsed[1], 2))


def test_a_worker_given_a_broken_request_exits_and_says_why() -> None:
    done = subprocess.run([sys.executable, "-m", "shinyo.node._sigworker"],
                          input=(10).to_bytes(4, "big") + b"\x00" * 3, capture_output=True,
                          timeout=60, check=False)
    assert done.returncode == 2 and b"ended early" in done.stderr


def test_a_worker_does_not_run_the_program_that_started_it(tmp_path: Path) -> None:
    # An unguarded script (no `if __name__ == "__main__":`) opening a node:
    # multiprocessing's spawn would run it again in every worker.
    marker = tmp_path / "runs"
    script = tmp_path / "app.py"
    script.write_text(textwrap.dedent(f"""
        from pathlib import Path
        import trio
        from shinyo.node import NodeConfig, open_node
        from shinyo import SigningIdentity

        with open({str(marker)!r}, "a") as f:
            f.write("run\\n")

        async def main():
            config = NodeConfig(home=Path({str(tmp_path / "home")!r}), listen="127.0.0.1:0",
                                insecure_plaintext_key=True, processes=2)
            async with open_node(config, identity=SigningIdentity.from_seed(b"k" * 32)) as n:
                await n.verifier.wait_started()
                assert n.verifier.running

        trio.run(main)
    """))
    subprocess.run([sys.executable, str(script)], timeout=120, check=True)
    assert marker.read_text().splitlines() == ["run"]
