"""``shinyo node run``: the node as a long-running process.

What the process adds to :func:`~._node.open_node`:

* one node per home: an exclusive ``flock`` on ``home/node.lock`` (released
  by the kernel however the process ends, so a killed daemon never leaves a
  stale lock), holding the pid for the error message;
* logs: text or JSON lines on stderr, at the configured level;
* the control socket and its token file (``_control.py``), removed on exit;
* a clean stop on SIGINT or SIGTERM or the ``stop`` command: every session
  says Bye, the store closes.  A second signal during shutdown is ignored;
  SIGKILL is safe too (every acknowledged entry is already committed).
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import re
import signal
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Final, TextIO

import trio

from ._commands import ControlCommands
from ._config import NodeConfig
from ._control import TOKEN_FILE, serve_control, write_token
from ._node import NodeError, load_identity, open_node

__all__ = ["LOCK_FILE", "READY", "Ready", "configure_logging", "home_lock", "ready_line",
           "run_daemon"]

LOCK_FILE: Final = "node.lock"
READY: Final = "shinyo node ready"
"""First word of the line on stdout that says the node is up (scripts wait for it)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Ready:
    """What the ready line says: the pseudonym, the UDP address, the control socket."""

    pseudonym: str
    host: str
    port: int
    control: str

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    @classmethod
    def parse(cls, line: str) -> Ready | None:
        """The ready line's parts; None if ``line`` is not one (the node did not start)."""
        m = _READY_LINE.fullmatch(line.strip())
        if m is None:
            return None
        return cls(pseudonym=m["pseudonym"], host=m["host"], port=int(m["port"]),
                   control=m["control"])


_READY_LINE = re.compile(re.escape(READY) + r": pseudonym (?P<pseudonym>\S+) listening on "
                         r"(?P<host>\S+):(?P<port>\d+), control (?P<control>.+)")


def ready_line(ready: Ready) -> str:
    """The line :meth:`Ready.parse` reads back."""
    return (f"{READY}: pseudonym {ready.pseudonym} listening on {ready.address}, "
            f"control {ready.control}")


class _JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        doc = {"time": round(record.created, 3), "level": record.levelname.lower(),
               "logger": record.name, "message": record.getMessage()}
        if record.exc_info:
            doc["exception"] = self.formatException(record.exc_info)
        return json.dumps(doc, sort_keys=True)


def configure_logging(config: NodeConfig, stream: TextIO = sys.stderr) -> None:
    handler = logging.StreamHandler(stream)
    handler.setFormatter(_JsonFormatter() if config.log_json else logging.Formatter(
        "%(asctime)s %(levelname)-7s %(name)s: %(message)s"))
    root = logging.getLogger("shinyo")
    root.handlers[:] = [handler]
    root.setLevel(config.log_level.upper())
    root.propagate = False
    # aioquic logs every packet-level event at INFO; its warnings are enough.
    logging.getLogger("quic").setLevel(logging.WARNING)


@contextmanager
def home_lock(home: Path) -> Iterator[None]:
    """Hold ``home/node.lock`` exclusively, or raise :class:`NodeError`."""
    home.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd = os.open(home / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            pid = os.pread(fd, 32, 0).decode("ascii", "replace").strip() or "?"
            raise NodeError(f"another node (pid {pid}) is running with home {home}; "
                            "stop it first (`shinyo node stop`)") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield
    finally:
        os.close(fd)


async def _serve(config: NodeConfig, passphrase: str | None) -> None:
    identity = load_identity(config, passphrase)
    async with open_node(config, identity=identity) as node, trio.open_nursery() as nursery:
        commands = ControlCommands(node)
        token = write_token(config.home)
        try:
            socket_path = config.path(config.control_socket)
            await nursery.start(serve_control, socket_path, token, commands)
            with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:

                async def on_signal() -> None:
                    async for signum in signals:
                        logging.getLogger("shinyo.node").info(
                            "%s: stopping", signal.Signals(signum).name)
                        commands.stopping.set()
                        return

                nursery.start_soon(on_signal)
                print(ready_line(Ready(pseudonym=node.pseudonym.to_text(), host=node.address[0],
                                       port=node.address[1], control=str(socket_path))),
                      flush=True)
                await commands.stopping.wait()
                nursery.cancel_scope.cancel()
        finally:
            (config.home / TOKEN_FILE).unlink(missing_ok=True)


def run_daemon(config: NodeConfig, *, passphrase: str | None) -> None:
    """Run the node until SIGINT, SIGTERM or the ``stop`` command."""
    configure_logging(config)
    with home_lock(config.home):
        trio.run(_serve, config, passphrase)
