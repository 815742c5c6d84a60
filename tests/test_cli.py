"""The shinyo command, run as a user would: through a subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from shinyo.tools.craft import story


def shinyo(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    # The passphrase variable is always set or removed explicitly: a developer's
    # own must not leak into the tests.
    base = {k: v for k, v in os.environ.items() if k != "SHINYO_PASSPHRASE"}
    return subprocess.run([sys.executable, "-m", "shinyo.tools.cli", *args],
                          capture_output=True, text=True, timeout=120, check=False,
                          env={**base, **(env or {})}, stdin=subprocess.DEVNULL)


def test_demo_is_reproducible_and_verifies() -> None:
    one = shinyo("demo", "--in-process", "--seed", "7")
    two = shinyo("demo", "--in-process", "--seed", "7")
    assert one.returncode == 0, one.stderr
    assert one.stdout == two.stdout
    assert "rejected [bad-signature]" in one.stdout
    assert "equivocating" in one.stdout
    assert "Traceback" not in one.stdout + one.stderr


def test_inspect_valid_invalid_and_usage() -> None:
    alice = story()[0]
    raws = [e.encode().hex() for e in alice.chain.entries]
    ok = shinyo("inspect", *raws)
    assert ok.returncode == 0 and f"a valid chain of {len(raws)} entries" in ok.stdout
    bad = shinyo("inspect", raws[0], raws[2])
    assert bad.returncode == 1 and "[seq-gap]" in bad.stderr
    assert "Traceback" not in bad.stderr
    junk = shinyo("inspect", "zz")
    assert junk.returncode == 2
    garbage = shinyo("inspect", "ff00")
    assert garbage.returncode == 1 and "[malformed]" in garbage.stderr
    missing = shinyo()
    assert missing.returncode == 2


def test_vectors_command_writes_current_files(tmp_path: object) -> None:
    out = shinyo("vectors", str(tmp_path))
    assert out.returncode == 0 and "trades.json" in out.stdout


def test_bench_reports_ratios() -> None:
    out = shinyo("bench", "--trades", "5", "--store-entries", "2000", "--quic-megabytes", "2",
                 "--sync-entries", "200", "--convergence-entries", "300", "--json")
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    (row,) = doc["verify"]
    assert row["trades"] == 5 and row["entries"] == 30
    assert row["ratio"] > 0 and row["bytes_per_trade"] > 0  # measured, never asserted as a bound
    assert doc["store"]["entries"] == 2000 and doc["store"]["ratio"] > 0
    assert doc["raw_quic_stream_mb_per_s"] > 0
    (sync,) = doc["sync"]
    assert sync["entries"] == 200 and sync["sync_entries_per_s"] > 0
    assert doc["convergence"]["entries"] == 300


def test_id_new_and_show(tmp_path: Path) -> None:
    home = tmp_path / "home"
    out = shinyo("id", "new", "--home", str(home), env={"SHINYO_PASSPHRASE": "correct horse"})
    assert out.returncode == 0, out.stderr
    pseudonym = out.stdout.split()[2]
    assert pseudonym.startswith("sy1")
    shown = shinyo("id", "show", "--home", str(home), "--json")
    assert json.loads(shown.stdout) == {"pseudonym": pseudonym, "encrypted": True,
                                        "path": str(home / "identity.key")}
    again = shinyo("id", "new", "--home", str(home), env={"SHINYO_PASSPHRASE": "x"})
    assert again.returncode == 2 and "Traceback" not in again.stderr
    nopass = shinyo("id", "new", "--home", str(tmp_path / "h2"))
    assert nopass.returncode == 2 and "SHINYO_PASSPHRASE" in nopass.stderr
    plain = shinyo("id", "new", "--home", str(tmp_path / "h3"), "--insecure-plaintext-key")
    assert plain.returncode == 0 and "UNENCRYPTED" in plain.stdout
