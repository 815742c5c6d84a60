"""The control interface: JSON lines over a Unix socket, token-checked."""

from __future__ import annotations

import json
import stat
from pathlib import Path
from typing import Any

import pytest
import trio

from shinyo import LocalProtocolError
from shinyo.node._control import (
    MAX_REQUEST,
    ControlClient,
    ControlError,
    serve_control,
    write_token,
)


async def handler(command: str, args: dict[str, Any]) -> Any:
    if command == "echo":
        return args
    raise LocalProtocolError(f"unknown command {command!r}")


async def roundtrip(path: Path, *lines: bytes) -> list[dict[str, Any]]:
    stream = await trio.open_unix_socket(str(path))
    async with stream:
        for line in lines:
            await stream.send_all(line)
        await stream.send_eof()
        data = b""
        while True:  # until the node closes: one answer per line, or a refusal
            chunk = await stream.receive_some(65536)
            if not chunk:
                break
            data += chunk
    return [json.loads(x) for x in data.splitlines()]


async def test_requests_answers_and_refusals(tmp_path: Path) -> None:
    token = write_token(tmp_path)
    assert stat.S_IMODE((tmp_path / "control.token").stat().st_mode) == 0o600
    sock = tmp_path / "control.sock"
    async with trio.open_nursery() as nursery:
        await nursery.start(serve_control, sock, token, handler)
        assert stat.S_IMODE(sock.stat().st_mode) == 0o600
        client = ControlClient(tmp_path)
        assert await trio.to_thread.run_sync(lambda: client.call("echo", x=1)) == {"x": 1}
        with pytest.raises(ControlError, match="unknown command") as info:
            await trio.to_thread.run_sync(lambda: client.call("nope"))
        assert info.value.kind == "LocalProtocolError"
        good = json.dumps({"token": token, "command": "echo", "args": {"y": 2}}).encode()
        answers = await roundtrip(sock, b"not json\n", good + b"\n")
        assert answers[0]["ok"] is False and answers[1]["result"] == {"y": 2}
        bad = json.dumps({"token": "0" * 64, "command": "echo"}).encode()
        answers = await roundtrip(sock, bad + b"\n")
        assert answers == [{"ok": False, "error": {"type": "ControlError",
                                                   "message": "bad token (see control.token)"}}]
        answers = await roundtrip(sock, b"x" * (MAX_REQUEST + 1))
        assert "longer than" in answers[0]["error"]["message"]
        nursery.cancel_scope.cancel()
    assert not sock.exists()


def test_no_node_running(tmp_path: Path) -> None:
    with pytest.raises(ControlError, match="no node is running"):
        ControlClient(tmp_path).call("status")
    write_token(tmp_path)
    with pytest.raises(ControlError, match="cannot reach the node"):
        ControlClient(tmp_path).call("status")
