"""The local control interface: JSON lines over a Unix socket, with a token.

The CLI and apps in any language drive a running node through it.  Each
request is one line of JSON, each answer one line::

    -> {"token": "<hex from control.token>", "command": "status", "args": {}}
    <- {"ok": true, "result": {...}}
    <- {"ok": false, "error": {"type": "LocalProtocolError", "message": "..."}}

Access control is two locks: the socket file and the token file are created
mode 0600 in the node's home, so only the user can connect at all; and every
request carries the token, so a socket exposed by mistake (a loose directory,
a forwarded socket) still refuses strangers.  Requests are bounded in size and
a connection that sends a bad token is closed.
"""

from __future__ import annotations

import hmac
import json
import os
import secrets
import socket
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import trio

from shinyo import ShinyoError

__all__ = ["MAX_REQUEST", "ControlClient", "ControlError", "serve_control", "write_token"]

MAX_REQUEST = 64 * 1024
TOKEN_FILE = "control.token"

Handler = Callable[[str, dict[str, Any]], Awaitable[Any]]


class ControlError(ShinyoError):
    """The control interface failed: no node running, refused, or the node said no."""

    def __init__(self, message: str, *, kind: str = "ControlError") -> None:
        super().__init__(message)
        self.kind = kind


def write_token(home: Path) -> str:
    """A fresh token in ``home/control.token``, readable by the user only."""
    token = secrets.token_hex(32)
    path = home / TOKEN_FILE
    path.unlink(missing_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="ascii") as f:
        f.write(token + "\n")
    return token


def _answer(ok: bool, payload: Any) -> bytes:
    body = {"ok": True, "result": payload} if ok else {"ok": False, "error": payload}
    return json.dumps(body, sort_keys=True).encode() + b"\n"


async def _serve_one(stream: trio.SocketStream, token: str, handler: Handler) -> None:
    buffer = b""
    async with stream:
        while True:
            while b"\n" not in buffer:
                if len(buffer) > MAX_REQUEST:
                    await stream.send_all(_answer(False, {
                        "type": "ControlError",
                        "message": f"request longer than {MAX_REQUEST} bytes"}))
                    return
                data = await stream.receive_some(65536)
                if not data:
                    return
                buffer += data
            line, buffer = buffer.split(b"\n", 1)
            try:
                request = json.loads(line)
                given = request["token"]
                command = request["command"]
                args = request.get("args", {})
                if not (isinstance(given, str) and isinstance(command, str)
                        and isinstance(args, dict)):
                    raise TypeError
            except (ValueError, KeyError, TypeError):
                await stream.send_all(_answer(False, {
                    "type": "ControlError",
                    "message": 'a request is {"token": str, "command": str, "args": {...}}'}))
                continue
            if not hmac.compare_digest(given.encode(), token.encode()):
                await stream.send_all(_answer(False, {
                    "type": "ControlError", "message": "bad token (see control.token)"}))
                return
            try:
                result = await handler(command, args)
            except ShinyoError as exc:
                await stream.send_all(_answer(False, {"type": type(exc).__name__,
                                                      "message": str(exc)}))
                continue
            await stream.send_all(_answer(True, result))


async def serve_control(path: Path, token: str, handler: Handler, *,
                        task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
    """Serve the control socket at ``path`` until cancelled; removes it on exit."""
    path.unlink(missing_ok=True)
    sock = trio.socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old = os.umask(0o177)  # the socket file is created 0600
    try:
        await sock.bind(str(path))
    finally:
        os.umask(old)
    sock.listen(16)
    listener = trio.SocketListener(sock)
    try:
        async with trio.open_nursery() as nursery:
            task_status.started()
            async with listener:
                while True:
                    stream = await listener.accept()
                    nursery.start_soon(_serve_one, stream, token, handler)
    finally:
        path.unlink(missing_ok=True)


class ControlClient:
    """A blocking client (the CLI's).  ``call`` returns the result or raises ControlError."""

    def __init__(self, home: Path, *, socket_name: str = "control.sock",
                 timeout: float = 30.0) -> None:
        self.home = home
        self.path = home / socket_name
        self.timeout = timeout

    def call(self, command: str, **args: Any) -> Any:
        try:
            token = (self.home / TOKEN_FILE).read_text(encoding="ascii").strip()
        except OSError:
            raise ControlError(f"no node is running with home {self.home} (no {TOKEN_FILE}); "
                               "start one with `shinyo node run`") from None
        request = json.dumps({"token": token, "command": command, "args": args}).encode()
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
                s.settimeout(self.timeout)
                s.connect(str(self.path))
                s.sendall(request + b"\n")
                data = b""
                while not data.endswith(b"\n"):
                    chunk = s.recv(65536)
                    if not chunk:
                        break
                    data += chunk
        except OSError as exc:
            raise ControlError(f"cannot reach the node at {self.path} ({exc.strerror or exc}); "
                               "is `shinyo node run` running with this home?") from None
        try:
            answer = json.loads(data)
        except ValueError:
            raise ControlError("the node's answer was not JSON") from None
        if not answer.get("ok"):
            error = answer.get("error", {})
            raise ControlError(str(error.get("message", "refused")),
                               kind=str(error.get("type", "ControlError")))
        return answer.get("result")
