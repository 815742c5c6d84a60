"""``shinyo demo``: the whole mission on real daemons on 127.0.0.1.

Theory of operation.  Five ``shinyo node run`` processes (alice, bob, carol,
dave, eve) start in a temporary directory, each with its own Argon2id-encrypted
identity key (the passphrase comes from ``$SHINYO_PASSPHRASE``; the demo makes
one up when it is unset) and its own SQLite store.  They find each other from
one bootstrap address by peer exchange.  Every trade step is a command on the
acting node's control socket (docs/CONTROL.md, exactly what the ``shinyo``
command sends); the demo then waits until the counterparty's node has the
entry by gossip, so every step really crosses the network.

The story: a blind rating completes across nodes; a proposal is cancelled; a
rating is retracted after a public response; a rating is withheld (and the
verifier shows what that costs once the deadline passes); eve runs her key on
a second machine and signs two different histories, and the fork proof reaches
every node.  Then a third party's node exports alice's proof, ``shinyo
verify`` checks it offline, and a copy with one flipped bit fails with exit 1.

Nothing is left running: every daemon is stopped on the way out, whatever
happens.  ``--keep`` leaves the network up until Ctrl-C and prints commands
to try by hand.
"""

from __future__ import annotations

import argparse
import base64
import datetime as dt
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

import shinyo
from shinyo.node._control import ControlClient, ControlError
from shinyo.node._daemon import Ready
from shinyo.node._keystore import PASSPHRASE_ENV, create_keyfile

__all__ = ["DemoError", "run_demo"]

T = TypeVar("T")

CAST: tuple[str, ...] = ("alice", "bob", "carol", "dave", "eve")
WAIT: float = 20.0
"""Seconds any one step may take to cross the network before the demo gives up."""
POLL: float = 0.1
DAY: int = 86_400


class DemoError(shinyo.ShinyoError):
    """A step of the demo did not happen in time, or a daemon failed."""


@dataclass
class Daemon:
    """One ``shinyo node run`` child process and the way to talk to it."""

    name: str
    home: Path
    proc: subprocess.Popen[str]
    address: str
    pseudonym: str
    client: ControlClient = field(init=False)

    def __post_init__(self) -> None:
        self.client = ControlClient(self.home, timeout=30.0)

    def call(self, command: str, **args: Any) -> Any:
        return self.client.call(command, **args)

    @property
    def log(self) -> Path:
        return self.home.with_name(self.home.name + ".log")

    def stop(self) -> int:
        """Ask politely (control ``stop``), then SIGTERM, then SIGKILL."""
        if self.proc.poll() is None:
            try:
                self.call("stop")
                return self.proc.wait(timeout=10)
            except (ControlError, subprocess.TimeoutExpired):
                pass
        for sig in (signal.SIGTERM, signal.SIGKILL):
            if self.proc.poll() is not None:
                break
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                continue
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        return self.proc.wait()


class Story:
    """What the demo prints: numbered scenes and timed progress lines."""

    def __init__(self) -> None:
        self.start = time.monotonic()
        self.scene = 0

    def title(self, text: str) -> None:
        self.scene += 1
        print(f"\n{self.scene}. {text}", flush=True)

    def say(self, text: str) -> None:
        print(f"   [{time.monotonic() - self.start:5.1f}s] {text}", flush=True)

    def show(self, text: str) -> None:
        for line in text.rstrip("\n").splitlines():
            print(f"        {line}", flush=True)


def _shinyo_command() -> list[str]:
    """How to run ``shinyo`` with this interpreter (no reliance on PATH)."""
    return [sys.executable, "-m", "shinyo.tools.cli"]


def _printable_command() -> str:
    script = Path(sys.executable).with_name("shinyo")
    return str(script) if script.exists() else f"{sys.executable} -m shinyo.tools.cli"


def eventually(what: str, check: Callable[[], T | None], *, timeout: float = WAIT) -> T:
    """Poll ``check`` until it returns something truthy; a timeout names the step."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise DemoError(f"timed out after {timeout:.0f} s waiting until {what}")
        time.sleep(POLL)


class Network:
    """The daemons of the demo, created under ``root`` and always stopped."""

    def __init__(self, root: Path, passphrase: str) -> None:
        self.root = root
        self.passphrase = passphrase
        self.daemons: dict[str, Daemon] = {}

    def create(self, name: str, *, key_from: str | None = None) -> Path:
        """A home with an encrypted identity key: new, or a copy of ``key_from``'s."""
        home = self.root / name
        home.mkdir(mode=0o700)
        if key_from is None:
            create_keyfile(home / "identity.key", secrets.token_bytes(32),
                           passphrase=self.passphrase)
        else:
            shutil.copy2(self.root / key_from / "identity.key", home / "identity.key")
        return home

    def start(self, names: Sequence[str], *, bootstrap: str | None = None) -> list[Daemon]:
        """Start daemons in parallel and wait for each one's ready line."""
        env = {**os.environ, PASSPHRASE_ENV: self.passphrase}
        started: list[tuple[str, subprocess.Popen[str]]] = []
        for name in names:
            home = self.root / name
            args = [*_shinyo_command(), "node", "run", "--home", str(home),
                    "--listen", "127.0.0.1:0"]
            if bootstrap is not None:
                args += ["--bootstrap", bootstrap]
            # The log goes to a file: a pipe nobody reads would fill and stall the daemon.
            with home.with_name(name + ".log").open("a") as log:
                proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=log, text=True,
                                        env=env, stdin=subprocess.DEVNULL)
            started.append((name, proc))
        out: list[Daemon] = []
        for name, proc in started:
            assert proc.stdout is not None
            line = proc.stdout.readline()
            ready = Ready.parse(line)
            if ready is None:
                proc.kill()
                proc.wait()
                tail = (self.root / f"{name}.log").read_text()[-2000:]
                raise DemoError(f"the {name} daemon did not start: {line.strip()!r}\n{tail}")
            daemon = Daemon(name=name, home=self.root / name, proc=proc, address=ready.address,
                            pseudonym=ready.pseudonym)
            self.daemons[name] = daemon
            out.append(daemon)
        return out

    def stop(self, name: str) -> int:
        return self.daemons.pop(name).stop()

    def stop_all(self) -> list[str]:
        stopped = []
        for name in list(self.daemons):
            self.stop(name)
            stopped.append(name)
        return stopped


@contextmanager
def network(root: Path, passphrase: str) -> Iterator[Network]:
    net = Network(root, passphrase)
    try:
        yield net
    finally:
        net.stop_all()


# -- the scenes ------------------------------------------------------------------------------


def _trade_row(node: Daemon, trade: str) -> dict[str, Any] | None:
    for row in node.call("trades"):
        if row["trade"] == trade:
            return dict(row)
    return None


def _sees(node: Daemon, trade: str, predicate: Callable[[dict[str, Any]], bool]
          ) -> Callable[[], dict[str, Any] | None]:
    def check() -> dict[str, Any] | None:
        row = _trade_row(node, trade)
        return row if row is not None and predicate(row) else None
    return check


def _propose(story: Story, a: Daemon, b: Daemon, *, context: str, terms: str) -> str:
    r = a.call("propose", **{"with": b.pseudonym, "context": context,
                             "terms": terms.encode().hex()})
    trade: str = r["trade"]
    story.say(f"{a.name} proposes to {b.name} in {context}: {terms!r} "
              f"(trade {trade[:8]}; only a salted digest of the terms is published)")
    eventually(f"{b.name}'s node receives the proposal", _sees(b, trade, lambda r: True))
    story.say(f"{b.name}'s node has it by gossip")
    return trade


def _accept(story: Story, b: Daemon, a: Daemon, trade: str) -> None:
    b.call("accept", trade=trade)
    eventually(f"{a.name}'s node sees the acceptance",
               _sees(a, trade, lambda r: r["state"] != "offered-out"))
    story.say(f"{b.name} accepts; {a.name}'s node sees it")


def _rate_both(story: Story, a: Daemon, a_stars: int, b: Daemon, b_stars: int, trade: str,
               **extra: Any) -> None:
    a.call("rate", trade=trade, stars=a_stars)
    b.call("rate", trade=trade, stars=b_stars, **extra)
    story.say(f"{a.name} rates {a_stars}★ and {b.name} rates {b_stars}★, each sealed "
              "(a commitment: neither can read the other's stars yet)")
    got_a = eventually(f"{a.name} receives {b.name}'s rating",
                       _sees(a, trade, lambda r: r["received"] is not None))
    got_b = eventually(f"{b.name} receives {a.name}'s rating",
                       _sees(b, trade, lambda r: r["received"] is not None))
    story.say(f"both commitments seen, both nodes reveal: {a.name} received "
              f"{got_a['received']}★, {b.name} received {got_b['received']}★")


def _held_forks(node: Daemon) -> int | None:
    return int(node.call("status")["forks"]) or None


def scenes(story: Story, net: Network, *, workdir: Path) -> Path:
    """Run the story; return the path of alice's exported proof."""
    story.title("five nodes start on 127.0.0.1, each with an encrypted key and its own store")
    for name in CAST:
        net.create(name)
    story.say(f"created {len(CAST)} Argon2id-encrypted identity keys "
              f"(passphrase from ${PASSPHRASE_ENV})")
    (alice,) = net.start(["alice"])
    bob, carol, dave, eve = net.start(CAST[1:], bootstrap=alice.address)
    for d in net.daemons.values():
        story.say(f"{d.name:<5} {d.pseudonym}  on {d.address}")
    everyone = list(net.daemons.values())
    eventually("every node has found two peers",
               lambda: all(d.call("status")["peers"] >= 2 for d in everyone))
    story.say("all bootstrapped from alice's address; peer exchange did the rest: "
              + ", ".join(f"{d.name} {d.call('status')['peers']}" for d in everyone) + " peers")

    story.title("alice sells bob a bicycle; they rate each other blind")
    bike = _propose(story, alice, bob, context="market.example/bikes",
                    terms="used bicycle, 120 EUR")
    _accept(story, bob, alice, bike)
    _rate_both(story, alice, 5, bob, 4, bike, tags=["as-described"])

    story.title("carol offers alice a lamp, then cancels before alice accepts")
    lamp = _propose(story, carol, alice, context="shop.example/lamps", terms="desk lamp, 15 EUR")
    carol.call("cancel", trade=lamp)
    eventually("alice's node sees the cancellation",
               _sees(alice, lamp, lambda r: r["state"] == "cancelled"))
    story.say("carol cancels; alice's node shows the trade cancelled (no rating, no score)")

    story.title("dave rates alice 2★, alice answers in public, dave retracts")
    book = _propose(story, dave, alice, context="books.example", terms="first edition, 40 EUR")
    _accept(story, alice, dave, book)
    _rate_both(story, dave, 2, alice, 5, book, comment="prompt payer")
    alice.call("respond", trade=book, text="The courier held the parcel a week; "
                                           "I refunded the postage.")
    story.say("alice publishes a response (its salted digest goes on her chain)")
    dave.call("retract", trade=book)
    eventually("alice's node sees the retraction",
               _sees(alice, book, lambda r: r["state"] == "retracted" or r["received"] is None))
    story.say("dave retracts his rating; verifiers now count that trade as retracted")

    story.title("eve rates alice, alice withholds her rating")
    vase = _propose(story, eve, alice, context="market.example/home", terms="glass vase, 25 EUR")
    _accept(story, alice, eve, vase)
    eve.call("rate", trade=vase, stars=5)
    row = eventually("alice's node holds eve's sealed rating",
                     _sees(alice, vase, lambda r: r["state"] not in ("accepted",)))
    story.say(f"eve commits 5★; alice's node shows state {row['state']!r}, next "
              f"{row['next']!r}, stars received: {row['received'] or 'sealed'}")
    story.say("alice cannot read eve's stars without committing her own; she stays silent")

    story.title("eve runs her key on a second machine and signs a different history")
    net.create("eve-laptop", key_from="eve")
    (laptop,) = net.start(["eve-laptop"], bootstrap=dave.address)
    story.say(f"eve-laptop starts with eve's key and no history ({laptop.pseudonym[:16]}…)")
    laptop.call("propose", **{"with": dave.pseudonym, "context": "market.example/home",
                              "terms": b"glass vase, 25 EUR (again)".hex()})
    story.say("eve-laptop signs a proposal to dave at a sequence number eve already used")
    for d in everyone:
        eventually(f"{d.name}'s node holds a fork proof", partial(_held_forks, d))
        story.say(f"{d.name}'s node holds the fork proof: eve signed two entries at one seq")
    net.stop("eve-laptop")
    story.say("eve-laptop stopped; the proof stays: any verifier ignores eve's evidence now")

    story.title("a bystander's node exports alice's proof; anyone can check it offline")
    proof = workdir / "alice.proof"
    r = carol.call("proof", pseudonym=alice.pseudonym)
    proof.write_bytes(base64.b64decode(r["bundle"]))
    story.say(f"carol's node wrote {proof.name} ({r['bytes']} bytes): alice's chain and the "
              "entries of her counterparties it needs")
    return proof


def _run_cli(story: Story, *args: str, expect: int) -> None:
    shown = " ".join(a if "/" not in a else Path(a).name for a in args)
    story.say(f"$ shinyo {shown}")
    done = subprocess.run([*_shinyo_command(), *args], capture_output=True, text=True,
                          timeout=60, check=False, stdin=subprocess.DEVNULL)
    story.show(done.stdout + done.stderr)
    if done.returncode != expect:
        raise DemoError(f"`shinyo {shown}` exited {done.returncode}, expected {expect}")
    story.say(f"exit status {done.returncode}")


def verify_scenes(story: Story, net: Network, proof: Path) -> None:
    _run_cli(story, "verify", str(proof), "--trades", expect=0)
    later = dt.datetime.now(dt.UTC) + dt.timedelta(days=31)
    story.title("the same proof judged 31 days from now: alice's silence has a price")
    _run_cli(story, "verify", str(proof), "--as-of", later.strftime("%Y-%m-%dT%H:%M:%SZ"),
             expect=0)
    story.say("withholding counts as the minimum against the withholder (spec/shinyo.md 7.8)")
    story.title("bob's own view: ratings weighed by how far each rater is from him")
    bob = net.daemons["bob"]
    _run_cli(story, "verify", str(proof), "--policy", "weighted-bayes", "--trust-root",
             bob.pseudonym, "--with-store", str(net.daemons["carol"].home), expect=0)
    story.say("a rater's weight comes from real trades and vouches seen from bob "
              "(spec/trust.md): a thousand fresh pseudonyms would add next to nothing")
    story.title("one flipped bit: the verifier refuses the copy and says why")
    tampered = proof.with_name("alice-tampered.proof")
    data = bytearray(proof.read_bytes())
    data[len(data) // 2] ^= 0x01
    tampered.write_bytes(bytes(data))
    _run_cli(story, "verify", str(tampered), expect=1)


def summary(story: Story, net: Network) -> None:
    story.title("what each node sees, and every pseudonym's score as carol's node knows it")
    print(f"        {'node':<6} {'peers':>5} {'chains':>6} {'entries':>7} {'trades':>6} "
          f"{'forks':>5}")
    for d in net.daemons.values():
        s = d.call("status")
        print(f"        {d.name:<6} {s['peers']:>5} {s['chains']:>6} {s['entries']:>7} "
              f"{s['trades']:>6} {s['forks']:>5}")
    carol = net.daemons["carol"]
    now = int(time.time())
    print(f"\n        {'who':<6} {'trades':>6} {'rated':>5} {'mean':>5} {'tier':<8} notes")
    for d in net.daemons.values():
        bundle = base64.b64decode(carol.call("proof", pseudonym=d.pseudonym)["bundle"])
        try:
            report = shinyo.verify_proof(bundle, now=now)
        except shinyo.VerificationError as exc:
            print(f"        {d.name:<6} {'-':>6} {'-':>5} {'-':>5} {'-':<8} "
                  f"refused [{exc.failure_class}]")
            continue
        c = report.scores.counts
        mean = report.scores.scores.get("mean")
        notes = ", ".join(f"{n} {c[n]}" for n in ("cancelled", "retracted", "pending") if c[n])
        forked = [p.short() for p in report.forked_counterparties]
        if forked:
            notes += (", " if notes else "") + "forked counterparty " + ", ".join(forked)
        print(f"        {d.name:<6} {c['trades']:>6} {c['rated']:>5} "
              f"{'-' if mean is None else f'{mean:.2f}':>5} {report.scores.tier:<8} {notes}")


def _keep(net: Network) -> None:
    cmd = _printable_command()
    names = {n: d.home for n, d in net.daemons.items()}
    print("\nThe network keeps running until you press Ctrl-C. Try, in another terminal:")
    print(f"    {cmd} node status --home {names['alice']}")
    print(f"    {cmd} peers --home {names['bob']}")
    print(f"    {cmd} trades --home {names['alice']}")
    print(f"    {cmd} trade propose --with {net.daemons['carol'].pseudonym} "
          f"--context market.example --home {names['bob']}")
    print(f"    {cmd} trades --home {names['carol']}      "
          "# then: trade accept ID --home …/carol")
    print(f"    {cmd} rate ID --stars 5 --home {names['bob']}")
    print(f"    {cmd} proof export {net.daemons['bob'].pseudonym} -o bob.proof "
          f"--home {names['dave']}")
    print(f"    {cmd} verify bob.proof --trades")
    print(f"Logs: {net.root}/*.log")
    try:
        while all(d.proc.poll() is None for d in net.daemons.values()):
            time.sleep(0.5)
        print("a daemon exited; stopping the rest")
    except KeyboardInterrupt:
        print()


def run_demo(*, keep: bool = False, directory: str | None = None) -> int:
    passphrase = os.environ.get(PASSPHRASE_ENV) or secrets.token_urlsafe(12)
    root = Path(directory) if directory else Path(tempfile.mkdtemp(prefix="shinyo-demo-"))
    root.mkdir(parents=True, exist_ok=True)
    story = Story()
    print(f"shinyo demo: five nodes on 127.0.0.1 trade, rate blind and check each other "
          f"(homes in {root})")
    # SIGTERM ends the demo the way Ctrl-C does, so the daemons are stopped either way.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        with network(root, passphrase) as net:
            proof = scenes(story, net, workdir=root)
            verify_scenes(story, net, proof)
            summary(story, net)
            if keep:
                _keep(net)
            story.title("stopping every daemon")
            stopped = net.stop_all()
            story.say(f"stopped {', '.join(stopped)}; nothing is left running")
    except (DemoError, ControlError) as exc:
        print(f"\ndemo failed: {exc}", file=sys.stderr)
        print(f"daemon logs are in {root}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\ninterrupted; every daemon was stopped", file=sys.stderr)
        return 130
    if not keep and not directory:
        shutil.rmtree(root, ignore_errors=True)
    print(f"\ndone in {time.monotonic() - story.start:.1f} s: every step was signed, "
          "hash-linked, gossiped over QUIC and verified.")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m shinyo.tools.demo", description=__doc__)
    p.add_argument("--keep", action="store_true")
    p.add_argument("--dir")
    args = p.parse_args(argv)
    return run_demo(keep=args.keep, directory=args.dir)


if __name__ == "__main__":
    raise SystemExit(main())
