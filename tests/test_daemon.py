"""Real daemons (``shinyo node run`` subprocesses) driven by the real CLI.

Two nodes on 127.0.0.1 complete a blind rating through the CLI alone; the
proof exported from one verifies offline; the home lock refuses a second
daemon; SIGTERM stops cleanly; a daemon killed with SIGKILL restarts with
everything it acknowledged.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from shinyo.node import NodeConfig
from shinyo.node._daemon import Ready

PASS = "correct horse battery staple"
WAIT = 30.0


def shinyo(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "SHINYO_PASSPHRASE": PASS}
    done = subprocess.run([sys.executable, "-m", "shinyo.tools.cli", *args], check=False,
                          capture_output=True,
                          text=True, timeout=60, env=env, stdin=subprocess.DEVNULL)
    if check and done.returncode != 0:
        raise AssertionError(f"shinyo {' '.join(args)} -> {done.returncode}\n{done.stderr}")
    return done


def call(home: Path, *args: str) -> Any:
    return json.loads(shinyo(*args, "--home", str(home), "--json").stdout)


class Daemon:
    def __init__(self, home: Path, *extra: str) -> None:
        self.home = home
        env = {**os.environ, "SHINYO_PASSPHRASE": PASS}
        # The log goes to a file: a pipe nobody reads would fill and block the daemon.
        self.log = home.with_name(home.name + ".log")
        with self.log.open("a") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "shinyo.tools.cli", "node", "run", "--home", str(home),
                 "--listen", "127.0.0.1:0", "--log-level", "debug", *extra],
                stdout=subprocess.PIPE, stderr=log, text=True, env=env,
                stdin=subprocess.DEVNULL)
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()  # blocks until ready (or the process died)
        ready = Ready.parse(line)
        if ready is None:
            self.stop(signal.SIGKILL)
            raise AssertionError(f"daemon did not start: {line!r}\n{self.log.read_text()}")
        self.address = ready.address

    def wait(self) -> int:
        code = self.proc.wait(timeout=WAIT)
        assert self.proc.stdout is not None
        self.proc.stdout.close()
        return code

    def stop(self, sig: int = signal.SIGTERM) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        return self.wait()


@pytest.fixture
def daemons() -> Iterator[list[Daemon]]:
    running: list[Daemon] = []
    yield running
    for d in running:
        d.stop(signal.SIGKILL)


def eventually(check: Callable[[], Any]) -> Any:
    deadline = time.monotonic() + WAIT
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached")
        time.sleep(0.2)


def test_cli_drives_two_daemons_through_a_blind_rating(tmp_path: Path,
                                                        daemons: list[Daemon]) -> None:
    a_home, b_home = tmp_path / "a", tmp_path / "b"
    shinyo("id", "new", "--home", str(a_home))  # encrypted, passphrase from the environment
    shinyo("id", "new", "--home", str(b_home), "--insecure-plaintext-key")
    alice = call(a_home, "id", "show")["pseudonym"]
    bob = call(b_home, "id", "show")["pseudonym"]
    a = Daemon(a_home)
    daemons.append(a)
    b = Daemon(b_home, "--bootstrap", a.address)
    daemons.append(b)

    eventually(lambda: call(a_home, "node", "status")["peers"] == 1)
    terms = tmp_path / "terms.txt"
    terms.write_text("one bicycle, 120 EUR")
    trade = call(a_home, "trade", "propose", "--with", bob, "--context", "market/bikes",
                 "--terms-file", str(terms))["trade"]
    eventually(lambda: call(b_home, "trades"))
    shinyo("trade", "accept", trade[:12], "--home", str(b_home))
    eventually(lambda: call(a_home, "trades")[0]["state"] != "offered-out")
    shinyo("rate", trade[:12], "--stars", "5", "--home", str(a_home))
    shinyo("rate", trade[:12], "--stars", "2", "--comment", "late", "--home", str(b_home))
    rows = eventually(lambda: [r for r in call(a_home, "trades") if r["received"] is not None])
    assert rows[0]["received"] == 2
    eventually(lambda: call(b_home, "trades")[0]["received"] == 5)

    status = call(b_home, "node", "status")
    assert status["pseudonym"] == bob and status["peers"] == 1 and status["chains"] == 2
    # The daemon's default: a signature worker per core (one-entry batches: threads).
    cores = NodeConfig(home=b_home).resolved_verify_processes
    assert status["verify"]["processes"] == cores and status["verify"]["pool_failures"] == 0
    eventually(lambda: call(b_home, "node", "status")["verify"]["running"] is bool(cores))
    peers = call(b_home, "peers")
    assert peers["connected"][0]["direction"] == "out"

    # B exports a proof about Alice from what it holds; it verifies offline.
    out = tmp_path / "alice.proof"
    shinyo("proof", "export", alice, "-o", str(out), "--home", str(b_home))
    report = json.loads(shinyo("verify", str(out), "--json").stdout)
    assert report["subject"] == alice
    tampered = bytearray(out.read_bytes())
    tampered[len(tampered) // 2] ^= 0x01
    bad = tmp_path / "tampered.proof"
    bad.write_bytes(bytes(tampered))
    assert shinyo("verify", str(bad), check=False).returncode == 1

    # One daemon per home.
    second = shinyo("node", "run", "--home", str(a_home), "--listen", "127.0.0.1:0", check=False)
    assert second.returncode == 2 and "another node" in second.stderr

    # SIGTERM: a clean exit that removes the control files.
    assert a.stop() == 0
    assert not (a_home / "control.sock").exists() and not (a_home / "control.token").exists()
    down = shinyo("node", "status", "--home", str(a_home), check=False)
    assert down.returncode == 2 and "node run" in down.stderr

    # SIGKILL: the restarted daemon holds everything it acknowledged.
    b.stop(signal.SIGKILL)
    b2 = Daemon(b_home)
    daemons.append(b2)
    rows = call(b_home, "trades")
    assert rows[0]["trade"] == trade and rows[0]["given"] == 2 and rows[0]["received"] == 5
    shinyo("node", "stop", "--home", str(b_home))
    assert b2.wait() == 0


def test_node_run_without_an_identity_says_how_to_make_one(tmp_path: Path) -> None:
    done = shinyo("node", "run", "--home", str(tmp_path / "empty"), "--listen", "127.0.0.1:0",
                  check=False)
    assert done.returncode == 2
    assert "shinyo id new" in done.stderr


def test_the_ready_line_reads_back_what_the_daemon_wrote() -> None:
    from shinyo.node._daemon import ready_line  # noqa: PLC0415

    for host in ("127.0.0.1", "::1"):
        ready = Ready(pseudonym="sy1example", host=host, port=4433, control="/run/x/control.sock")
        assert Ready.parse(ready_line(ready) + "\n") == ready
    assert Ready.parse("Traceback (most recent call last):") is None
    assert Ready.parse("") is None
