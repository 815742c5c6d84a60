"""``shinyo demo`` (the README's main job): real daemons, the whole story, nothing left running."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

DEMO_TIMEOUT = 120  # generous: CI runs other jobs on the same two cores


def _running_under(root: Path) -> list[str]:
    """Command lines of live processes that mention ``root`` (the demo's daemons)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            state = (entry / "stat").read_text().split(")")[-1].split()[0]
        except (OSError, IndexError):
            continue
        if str(root) in cmdline and state != "Z":
            found.append(cmdline)
    return found


def _env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "SHINYO_PASSPHRASE"}
    env["TMPDIR"] = str(tmp_path)  # where the demo makes its temporary homes
    return env


def test_the_demo_tells_the_whole_story_and_cleans_up(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "shinyo.tools.cli", "demo"],
                          capture_output=True, text=True, timeout=DEMO_TIMEOUT, check=False,
                          env=_env(tmp_path), stdin=subprocess.DEVNULL)
    out = done.stdout
    assert done.returncode == 0, out + done.stderr
    assert "Traceback" not in out + done.stderr
    # A blind rating completed across nodes, both ways.
    assert "alice received 4★, bob received 5★" in out
    assert "alice's node shows the trade cancelled" in out
    assert "dave retracts his rating" in out
    assert "stars received: sealed" in out  # eve's rating, withheld from alice
    # The fork proof reached every one of the five nodes.
    for name in ("alice", "bob", "carol", "dave", "eve"):
        assert f"{name}'s node holds the fork proof" in out
    # The exported proof verifies; 31 days on, alice's silence is a stalled trade;
    # a tampered copy fails with exit 1 and its failure class.
    assert "VALID  sy1" in out
    assert "stalled 1" in out
    assert "trust: weighted from 1 root(s)" in out  # bob's view, from carol's store
    assert "INVALID [" in out and "exit status 1" in out
    assert "refused [forked]" in out  # eve's own proof carries her fork
    assert "stopped alice, bob, carol, dave, eve; nothing is left running" in out
    assert not list(tmp_path.iterdir()), "the temporary homes were not removed"
    assert _running_under(tmp_path) == []


def test_keep_leaves_a_network_to_try_until_ctrl_c(tmp_path: Path) -> None:
    root = tmp_path / "net"
    proc = subprocess.Popen([sys.executable, "-m", "shinyo.tools.cli", "demo", "--keep",
                             "--dir", str(root)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env=_env(tmp_path), stdin=subprocess.DEVNULL)
    assert proc.stdout is not None
    try:
        seen = []
        for line in proc.stdout:
            seen.append(line)
            if line.startswith("Logs:"):
                break
        text = "".join(seen)
        assert "keeps running until you press Ctrl-C" in text, text
        assert f"node status --home {root / 'alice'}" in text
        # The printed commands work against the live network.
        status = subprocess.run([sys.executable, "-m", "shinyo.tools.cli", "node", "status",
                                 "--home", str(root / "alice")], capture_output=True,
                                text=True, timeout=60, check=False)
        assert status.returncode == 0, status.stderr
        assert "peers      4 connected" in status.stdout
        assert "verify     " in status.stdout and "batches checked in processes" in status.stdout
        proc.send_signal(signal.SIGINT)
        rest = proc.stdout.read()
        assert proc.wait(timeout=60) == 0, rest
        assert "nothing is left running" in rest
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()
    assert _running_under(root) == []
    assert (root / "alice.proof").exists()  # --dir is kept for the user
    assert not (root / "alice" / "control.sock").exists()
