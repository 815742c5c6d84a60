"""Bounds on what a peer can hold of a node by doing nothing: a session with no
Hello, a writer the peer never reads from, and the ban list (wire.md 6.2,
10.2; transport.md 5.2).  Each limit is lowered so the test hits it quickly."""

from __future__ import annotations

from pathlib import Path

import pytest

from shinyo.node import _node, _peer
from shinyo.wire import MAX_PUSH_ENTRIES, Entries, Push, Want

from ._hostile import attack, hostile_endpoint, poll, stranger
from ._nodes import running
from .test_node_hostile import banned, chain, frame, session_of


async def test_a_session_without_hello_is_ended(tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_peer, "HELLO_TIMEOUT", 0.5)
    async with running(tmp_path, 1) as target, hostile_endpoint(60) as ep, \
            attack(ep, target) as h:
        await h.send(b"\x00\x00")  # the stream opens with a partial frame, no Hello
        await poll(lambda: len(target._all_sessions) == 1)
        bye = await h.bye()
        assert bye.code == "normal" and bye.reason.startswith("no Hello within")
        await poll(lambda: not target._all_sessions)
        assert not target._is_banned(h.key.key)  # slow is not misbehaviour


async def test_a_peer_that_reads_nothing_loses_its_session(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_peer, "WRITE_TIMEOUT", 0.5)
    author = stranger(61)
    entries = chain(author, 4 * MAX_PUSH_ENTRIES)
    async with running(tmp_path, 1) as target, hostile_endpoint(61) as ep, \
            attack(ep, target) as h:
        await h.hello()
        session = await session_of(target, h)
        for i in range(0, len(entries), MAX_PUSH_ENTRIES):
            await h.send(Push(entries=tuple(e.encode() for e in entries[i:i + MAX_PUSH_ENTRIES])))
        whole = Want(author=author.pseudonym, first=1, last=len(entries))
        assert isinstance(await h.answer(probe=whole), Entries)
        # 16 answers of ~60 KB each, never read: more than the stream's
        # credit (stream_receive_buffer) and the node's send buffer together.
        await h.send(*[whole] * 16)
        await poll(lambda: session not in target._all_sessions)
        assert "read nothing" in session.closed_because
        assert not target._is_banned(h.key.key)


async def test_the_ban_list_is_bounded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_node, "MAX_BANS", 3)
    keys = []
    async with running(tmp_path, 1) as target:
        for n in range(62, 67):
            async with hostile_endpoint(n) as ep, attack(ep, target) as h:
                await h.hello()
                await h.send(frame(b"\xff garbage"))
                assert (await h.bye()).code == "malformed"
                assert await banned(target, h)
                keys.append(h.key.key)
            assert len(target._banned) <= 3
        # The bans that ended first were lifted to make room; the last three hold.
        assert [target._is_banned(k) for k in keys] == [False, False, True, True, True]
