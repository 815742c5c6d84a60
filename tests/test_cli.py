"""The shinyo command, run as a user would: through a subprocess."""

from __future__ import annotations

import json
import subprocess
import sys

from shinyo.tools.craft import story


def shinyo(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "shinyo.tools.cli", *args],
                          capture_output=True, text=True, timeout=120, check=False)


def test_demo_is_reproducible_and_verifies() -> None:
    one, two = shinyo("demo", "--seed", "7"), shinyo("demo", "--seed", "7")
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
    out = shinyo("bench", "--trades", "5", "--json")
    assert out.returncode == 0, out.stderr
    (row,) = json.loads(out.stdout)["verify"]
    assert row["trades"] == 5 and row["entries"] == 30
    assert row["ratio"] > 0 and row["bytes_per_trade"] > 0  # measured, never asserted as a bound
