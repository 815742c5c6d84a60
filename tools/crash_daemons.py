"""The crash campaign's daemons: real ``shinyo node run`` processes to kill (issue 7).

:class:`_Daemon` spawns one node daemon on a fixed home (and, after its first
start, a fixed port), reads its ready line, calls its control socket, and
kills it with SIGKILL or stops it with SIGTERM; :func:`_make_home` writes the
home (an encrypted key, a config with short network timers, see :mod:`.crash`);
:func:`_leftovers` is check 4 of the campaign before a restart (stale control
files fool no client, the lock is free); :class:`_Poller` asks every live node
for its ``status`` every :data:`POLL` s and records each answer as an
acknowledgement.  :mod:`.crash` drives them round after round.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import select
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Final

from shinyo import SigningIdentity
from shinyo.node._config import CONFIG_FILE
from shinyo.node._control import ControlClient, ControlError
from shinyo.node._daemon import LOCK_FILE, Ready
from shinyo.node._keystore import PASSPHRASE_ENV, create_keyfile

from .crash_checks import _Acks

__all__ = ["CALL_TIMEOUT", "POLL", "START_TIMEOUT"]

START_TIMEOUT: Final = 60.0
"""Seconds a daemon may take to say it is ready (it re-validates its whole store)."""
CALL_TIMEOUT: Final = 30.0
POLL: Final = 0.02
"""Seconds between the poller's status requests to each node."""


class _Daemon:
    """One ``shinyo node run`` process on a fixed home (and, after its first start, port)."""

    def __init__(self, name: str, home: Path, *, identity: SigningIdentity,
                 passphrase: str, bootstrap: str | None = None,
                 log_level: str = "info") -> None:
        self.name = name
        self.log_level = log_level
        self.home = home
        self.identity = identity
        self.passphrase = passphrase
        self.bootstrap = bootstrap
        self.port = 0
        self.log = home.with_name(home.name + ".log")
        self.proc: subprocess.Popen[str] | None = None
        self.ready = False

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def spawn(self) -> None:
        self.ready = False
        extra = ["--bootstrap", self.bootstrap] if self.bootstrap else []
        with self.log.open("a") as log:
            # Its own session: a ^C meant for the campaign must not reach the daemons.
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "shinyo.tools.cli", "node", "run", "--home",
                 str(self.home), "--listen", self.address, "--log-level", self.log_level,
                 *extra],
                stdout=subprocess.PIPE, stderr=log, stdin=subprocess.DEVNULL, text=True,
                env={**os.environ, PASSPHRASE_ENV: self.passphrase}, start_new_session=True)

    def read_ready(self, timeout: float) -> bool:
        """Wait up to ``timeout`` for the ready line; False if it did not come."""
        assert self.proc is not None and self.proc.stdout is not None
        readable, _, _ = select.select([self.proc.stdout], [], [], timeout)
        line = self.proc.stdout.readline() if readable else ""
        ready = Ready.parse(line)
        if ready is None:
            return False
        self.port = ready.port
        self.ready = True
        return True

    def start(self) -> str | None:
        """Spawn and wait until ready; the reason (with the log's tail) if it did not start."""
        self.spawn()
        if self.read_ready(START_TIMEOUT):
            return None
        self.kill()
        return f"did not start:\n{self.log_tail()}"

    def kill(self) -> bool:
        """SIGKILL it and reap it; True if it had said it was ready."""
        if self.alive:
            assert self.proc is not None
            self.proc.send_signal(signal.SIGKILL)
        self._reap()
        return self.ready

    def stop(self) -> int:
        assert self.proc is not None
        if self.alive:
            self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=CALL_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.kill()
            return -1
        return self._reap()

    def _reap(self) -> int:
        if self.proc is None:
            return 0
        code = self.proc.wait()
        if self.proc.stdout is not None and not self.proc.stdout.closed:
            if not self.ready:
                self.read_ready(0)  # a ready line written just before the end
            self.proc.stdout.close()
        return code

    def call(self, command: str, **args: Any) -> Any:
        return ControlClient(self.home, timeout=CALL_TIMEOUT).call(command, **args)

    def log_tail(self, lines: int = 12) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"


def _make_home(home: Path, seed: bytes, passphrase: str, *, idle_timeout: float,
               sync_interval: float) -> SigningIdentity:
    home.mkdir(mode=0o700, parents=True)
    create_keyfile(home / "identity.key", seed, passphrase=passphrase)
    (home / CONFIG_FILE).write_text(
        f"[network]\nidle_timeout = {idle_timeout}\nsync_interval = {sync_interval}\n"
        "reconnect_min = 0.2\nreconnect_max = 2.0\n", encoding="utf-8")
    return SigningIdentity.from_seed(seed)


def _leftovers(home: Path) -> list[str]:
    """Check 4 before a restart: stale control files fool no client, the lock is free."""
    problems = []
    began = time.monotonic()
    try:
        ControlClient(home, timeout=5.0).call("status")
        problems.append("a control client got an answer from a killed node")
    except ControlError:
        if time.monotonic() - began > 2.0:
            problems.append("a control client took over 2 s to find the node gone")
    fd = os.open(home / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        problems.append(f"{LOCK_FILE} is still locked after the kill")
    finally:
        os.close(fd)
    return problems


class _Poller:
    """Asks each live node for its status every :data:`POLL` s; every answer is an
    acknowledgement (the counts it reports must survive a kill)."""

    def __init__(self, acks: _Acks, daemons: Sequence[_Daemon]) -> None:
        self._acks = acks
        self._daemons = daemons
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(POLL):
            for d in self._daemons:
                if d.alive:
                    with contextlib.suppress(ControlError, KeyError, TypeError):
                        self._acks.status(d.name, d.call("status"))

    def __enter__(self) -> _Poller:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def _kill_all(daemons: Sequence[_Daemon]) -> None:
    for d in daemons:  # all signals first: "both" means at the same moment
        if d.alive:
            assert d.proc is not None
            d.proc.send_signal(signal.SIGKILL)
    for d in daemons:
        d.kill()


def _rows(daemon: _Daemon) -> dict[str, dict[str, Any]]:
    return {r["trade"]: r for r in daemon.call("trades")}
