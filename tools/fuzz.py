"""The hostile-input campaign over every decoder of untrusted bytes (issue 7).

    python -m shinyo.tools.fuzz --seconds 300 [--seed S] [--target NAME ...] [--json]
    python -m shinyo.tools.fuzz --cases 2000 --out fuzz-findings/
    python -m shinyo.tools.fuzz --replay fuzz-findings/entry-escape-1a2b3c4d5e.json

Each *target* drives one public decoder the way a node or a verifier does with
bytes from elsewhere.  Its contract: whatever the bytes, it returns or raises
an exception of its documented family -- :class:`shinyo.WireError` from the
wire decoders, :class:`shinyo.VerificationError` from entries, fork proofs,
chains and proofs, :class:`shinyo.InvalidPseudonym` from a pseudonym's text.
A *finding* is any other outcome: an exception that is no
:class:`shinyo.ShinyoError` at all (``escape``), one of the wrong family
(``contract``), a failed oracle (``oracle``: accepted bytes that do not encode
back to themselves, a verdict that depends on how a stream was cut), a case
that uses more than ``cpu_limit`` seconds of CPU (``slow``) or never returns
(``hang``, stopped by SIGALRM), or one whose allocations peak above
``memory_limit`` (``memory``; tracemalloc on every ``memory_every``-th case).

Seeds (:mod:`shinyo.tools.fuzz_seeds`) are every encoded object in
spec/vectors/*.json, nested ones included, and objects built fresh.  Case
``i`` of a target is a function of (seed, target, i) alone, so a run is
reproducible from its seed and case counts, and any case from its number.
The first cases of a target run every seed unchanged, the next ones every
seed mutated; one case in eight cuts a seed short, from both ends inwards,
until every cut of every seed has run.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import hashlib
import json
import resource
import signal
import sys
import threading
import time
import traceback
import tracemalloc
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path
from random import Random
from typing import Any

import cbor2

import shinyo
from shinyo import Chain, Entry, ForkProof, LocalProtocolError, Pseudonym, VerificationError, wire
from shinyo._chain import Role

from .fuzz_mutate import Mutator
from .fuzz_seeds import VECTORS, Seed, seeds, story_chains

__all__ = ["FIXED_NOW", "TARGETS", "Campaign", "Finding", "Hang", "Mismatch", "Report", "Skip",
           "Stats", "Target", "main", "write_findings"]

FIXED_NOW = 1_817_280_000
"""The verifier's clock wherever a target needs one: most proof vectors' ``now``."""
_WRAPPED = frozenset({"chain", "trade"})  # harness formats: CBOR arrays of entries
_PACKAGE = Path(shinyo.__file__).resolve().parent


class Skip(Exception):
    """The input lacks the shape a harness needs to drive its decoder (no verdict)."""


class Mismatch(AssertionError):
    """An oracle failed: a decoder accepted what it must not, or disagreed with itself."""


class Hang(BaseException):
    """Raised by the alarm in a case that ran too long: a BaseException, so that no
    ``except Exception`` in the code under test can swallow it."""


# -- targets ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class Target:
    """A decoder driven on bytes, its seeds' kind, and the exceptions it may raise."""

    name: str
    kind: str
    run: Callable[[bytes], object]
    allowed: tuple[type[BaseException], ...]


def _same(again: bytes, data: bytes, what: str) -> None:
    if again != data:  # spec 3.1: one encoding per value; no other may be accepted
        raise Mismatch(f"{what}: accepted bytes that do not encode back to themselves")


def _peek(data: bytes) -> None:
    got = wire.peek_id(data)  # runs before verification (wire.md 8.2): must never raise
    with suppress(VerificationError):
        if got != Entry.decode(data).id:
            raise Mismatch("peek_id disagrees with the id of a valid entry")


def _verify(data: bytes) -> None:
    json.dumps(shinyo.verify_proof(data, now=FIXED_NOW).to_json_obj())


def _feed(data: bytes, cuts: Iterable[int]) -> tuple[list[wire.Message], wire.WireError | None]:
    decoder, msgs, lo = wire.FrameDecoder(), [], 0
    try:
        for hi in [*cuts, len(data)]:
            msgs += decoder.feed(data[lo:hi])
            lo = hi
        decoder.eof()
    except wire.WireError as exc:
        with suppress(wire.WireError):  # errors are final (wire.md 3.2)
            decoder.feed(b"\x00")
            raise Mismatch("a FrameDecoder took more bytes after an error") from None
        return msgs, exc
    return msgs, None


def _frames(data: bytes) -> None:
    """Whole, in small pieces, and cut in two around each length prefix: one verdict.

    Byte by byte, and at every boundary, for inputs up to 8 KiB; larger ones in
    97-byte pieces and at fewer cuts, so that a case stays a few decodes.
    """
    msgs, error = _feed(data, ())
    small = len(data) <= 8192
    marks: set[int] = set(Random(data).sample(range(1, len(data)), min(4, len(data) - 1))
                          if data else ())
    i = 0
    while i < len(data) and len(marks) < (20 if small else 8):  # in and around a prefix
        marks.update(range(i + 1, min(i + 5, len(data))))
        i += 4 + int.from_bytes(data[i : i + 4], "big")
    for cuts in [range(1 if small else 97, len(data), 1 if small else 97),
                 *([m] for m in sorted(marks))]:
        again, err = _feed(data, cuts)
        # A feed() that raises returns nothing, so the messages before an error
        # depend on the cuts; the error must not.
        if (error is None and again != msgs) or repr(err) != repr(error):
            raise Mismatch(f"cutting the stream at {list(cuts)[:4]}... changed the verdict")
    if error is not None:
        raise error
    _same(b"".join(wire.encode_frame(m) for m in msgs), data, "wire stream")


class _View:
    """A store's heads for the planner (wire.LocalView), from fixed chains."""

    def __init__(self, chains: Iterable[Chain]) -> None:
        self.ids = {c.author: [e.id for e in c.entries] for c in chains}

    def head(self, author: Pseudonym) -> tuple[int, bytes] | None:
        ids = self.ids.get(author)
        return (len(ids), ids[-1]) if ids else None

    def id_at(self, author: Pseudonym, seq: int) -> bytes:
        return self.ids[author][seq - 1]

    def heads_between(self, after: bytes | None, through: bytes | None) -> Iterator[wire.Head]:
        for a in sorted(self.ids, key=lambda p: p.key):
            if (after is None or a.key > after) and (through is None or a.key <= through):
                yield wire.Head(author=a, seq=len(self.ids[a]), id=self.ids[a][-1])


def _session(data: bytes, *, answer: bool = False) -> None:
    """What a node does with each message of a session (wire.md 6-8), sans-IO.  With
    ``answer``, the first message is a Want this side sent, and no Hello comes."""
    decoder = wire.FrameDecoder()
    msgs = decoder.feed(data)
    decoder.eof()
    sync, view, guard = wire.PeerSync(), _View(story_chains()), wire.SessionGuard()
    if answer:
        want = msgs.pop(0) if msgs else None
        if not isinstance(want, wire.Want):
            raise Skip
        sync.expect(want)
    for msg in msgs:
        if not answer:
            guard.receive(msg)
        if isinstance(msg, wire.Heads):
            sync.on_heads(msg, view)
        elif isinstance(msg, wire.Want):
            sync.accept_want(msg)
        elif isinstance(msg, wire.Entries):
            sync.on_entries(msg)
            decoded = [Entry.decode(raw) for raw in msg.entries]
            wire.check_answer(msg, decoded)
            for e in decoded:
                wire.place(e, view)
        elif isinstance(msg, wire.Push):
            for raw in msg.entries:
                wire.place(Entry.decode(raw), view)
        elif isinstance(msg, wire.Fork):
            ForkProof.decode(msg.proof)


def _entries(data: bytes) -> list[Entry]:
    try:
        raws = cbor2.loads(data)
    except Exception:
        raise Skip from None
    if type(raws) is not list or not raws or any(type(r) is not bytes for r in raws):
        raise Skip
    return [Entry.decode(raw) for raw in raws]


def _trade(data: bytes) -> None:
    """Both parties' views of one trade, as spec 12.4 judges a trade vector."""
    entries = _entries(data)
    p = entries[0]
    if not isinstance(p.body, shinyo.Propose):
        raise Skip
    chains = {p.author: Chain(p.author)}
    chains[p.author].append(p, now=FIXED_NOW)
    views = [shinyo.TradeSession(me=who, proposal=p) for who in (p.author, p.body.counterparty)]
    for e in entries[1:]:
        chains.setdefault(e.author, Chain(e.author)).append(e, now=FIXED_NOW)
        for view in views:
            if view.me == e.author:  # a party's own step is judged by the other view
                with suppress(LocalProtocolError):
                    view.receive(e)
            else:
                view.receive(e)
    for view in views:
        view.next_step(FIXED_NOW)
        if view.role is Role.PROPOSER or view.mine.opened is not None:
            shinyo.classify(view, now=FIXED_NOW)


def _text(data: bytes) -> str:
    return data.decode("utf-8", "surrogateescape")


def _pseudonym(data: bytes) -> None:
    if Pseudonym.from_text(_text(data)).to_text() != _text(data).lower():
        raise Mismatch("a pseudonym's text parsed to another pseudonym")


def _policy(data: bytes) -> None:
    policy = shinyo.Policy.parse(_text(data))
    if shinyo.Policy.parse(str(policy)) != policy:
        raise Mismatch("a policy does not parse back from its own text")


_VERIFY, _WIRE = (VerificationError,), (wire.WireError,)
TARGETS: tuple[Target, ...] = tuple(Target(name=n, kind=k, run=r, allowed=a) for n, k, r, a in (
    ("entry", "entry", lambda d: _same(Entry.decode(d).encode(), d, "entry"), _VERIFY),
    ("peek-id", "entry", _peek, ()),
    ("fork-proof", "fork", lambda d: _same(ForkProof.decode(d).encode(), d, "fork"), _VERIFY),
    ("proof-file", "proof", lambda d: _same(shinyo.read_proof_file(d).encode(), d, "proof"),
     _VERIFY),
    ("verify-proof", "proof", _verify, _VERIFY),
    ("message", "body", lambda d: _same(wire.decode_message(d).encode(), d, "message"), _WIRE),
    ("frames", "stream", _frames, _WIRE),
    ("session", "stream", _session, _VERIFY),
    ("answer", "answer", lambda d: _session(d, answer=True), _VERIFY),
    ("chain", "chain", lambda d: Chain.from_entries(_entries(d), now=FIXED_NOW), _VERIFY),
    ("trade", "trade", _trade, _VERIFY),
    ("pseudonym", "pseudonym", _pseudonym, (shinyo.InvalidPseudonym,)),
    ("policy", "policy", _policy, (LocalProtocolError,)),
))
"""Every decoder of bytes from elsewhere, with its contract."""


# -- the engine -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class Finding:
    """One distinct failure: the first input that showed it, and a smaller one."""

    target: str
    kind: str
    signature: str
    error: str
    traceback: str
    data: bytes
    minimal: bytes
    case: int
    ops: tuple[str, ...]
    seed: int

    def to_json_obj(self) -> dict[str, Any]:
        obj = dataclasses.asdict(self)
        obj["input"], obj["minimal"] = obj.pop("data").hex(), self.minimal.hex()
        return obj


@dataclass(slots=True, kw_only=True)
class Stats:
    """One target's counts: every case is accepted, rejected, skipped or a finding."""

    cases: int = 0
    accepted: int = 0
    rejected: int = 0
    skipped: int = 0
    findings: int = 0
    seconds: float = 0.0
    covered: set[str] = field(default_factory=set)
    """Origins of the seeds that ran mutated."""
    verdicts: dict[str, int] = field(default_factory=dict)
    """How often each failure class (or exception type) rejected a case: how deep it got."""

    @property
    def rate(self) -> float:
        return round(self.cases / self.seconds, 1) if self.seconds else 0.0

    def to_json_obj(self) -> dict[str, Any]:
        obj = dataclasses.asdict(self)
        obj.update(covered=len(self.covered), cases_per_second=self.rate,
                   seconds=round(self.seconds, 3))
        return obj


@dataclass(frozen=True, slots=True, kw_only=True)
class Report:
    seed: int
    stats: dict[str, Stats]
    findings: tuple[Finding, ...]

    def covered(self) -> set[str]:
        return {o for s in self.stats.values() for o in s.covered}

    def to_json_obj(self) -> dict[str, Any]:
        return {"schema": "shinyo-fuzz/1", "seed": self.seed,
                "targets": {n: s.to_json_obj() for n, s in self.stats.items()},
                "findings": [f.to_json_obj() for f in self.findings]}


class Campaign:
    """Run targets on mutated seeds; collect what breaks their contracts.

    ``cpu_limit``: seconds of CPU per case.  ``hang_limit``: wall seconds before
    SIGALRM stops a case (in the main thread only).  ``memory_limit``: bytes of
    peak allocation, traced every ``memory_every``-th case.  ``minimize``: runs
    spent shrinking each new finding.
    """

    def __init__(self, targets: Sequence[Target], seeds: Mapping[str, Sequence[Seed]], *,
                 seed: int = 0, cpu_limit: float = 1.0, hang_limit: float = 10.0,
                 memory_limit: int = 64 << 20, memory_every: int = 16,
                 minimize: int = 500) -> None:
        missing = [t.name for t in targets if not seeds.get(t.kind)]
        if missing:
            raise LocalProtocolError(f"no seeds for targets {missing}")
        self.targets, self.seed = list(targets), seed
        self.seeds = {t.name: list(seeds[t.kind]) for t in targets}
        self.mutators = {t.name: Mutator([s.data for s in self.seeds[t.name]],
                                         wrapped=t.kind in _WRAPPED) for t in targets}
        self.cpu_limit, self.hang_limit = cpu_limit, hang_limit
        self.memory_limit, self.memory_every, self.minimize = memory_limit, memory_every, minimize
        self.stats = {t.name: Stats() for t in targets}
        self.findings: dict[str, Finding] = {}
        self._armed = False
        self._verdict: str | None = None

    def case(self, target: Target, index: int) -> tuple[bytes, tuple[str, ...], Seed]:
        """Case ``index`` of ``target``: (input, operations, seed) from (seed, target, index)."""
        pool = self.seeds[target.name]
        n = len(pool)
        if index % 8 == 7 and target.kind not in _WRAPPED:  # cut r of seed s, ends inwards
            s, r = pool[index // 8 % n], index // 8 // n
            if r < len(s.data):
                cut = len(s.data) - 1 - r // 2 if r % 2 == 0 else r // 2
                return s.data[:cut], (f"cut@{cut}",), s
        j = index - (index + 1) // 8  # this case's number among the others
        s = pool[j % n]
        if j < n:
            return s.data, ("seed",), s
        rng = Random(f"{self.seed}/{target.name}/{index}")
        return (*self.mutators[target.name].mutate(rng, s.data), s)

    def run(self, *, cases: int | None = None, seconds: float | None = None,
            slice_seconds: float = 0.25) -> Report:
        """Run every target up to ``cases`` cases, or for ``seconds`` shared fairly
        between the targets in slices, whichever ends first."""
        if cases is None and seconds is None:
            raise LocalProtocolError("give cases, seconds or both")
        deadline = time.perf_counter() + (seconds if seconds is not None else 1e12)
        with self._alarm():
            busy = True
            while busy and time.perf_counter() < deadline:
                busy = False
                for t in self.targets:
                    st = self.stats[t.name]
                    end = min(deadline, time.perf_counter() + (
                        slice_seconds if seconds is not None else 1e12))
                    while (cases is None or st.cases < cases) and time.perf_counter() < end:
                        busy = True
                        self._one(t, st.cases)
        return Report(seed=self.seed, stats=self.stats, findings=tuple(self.findings.values()))

    def _one(self, t: Target, index: int) -> None:
        st, start = self.stats[t.name], time.perf_counter()
        data, ops, seed = self.case(t, index)
        outcome, finding = self.check(t, data, index=index, ops=ops,
                                      traced=index % self.memory_every == 0)
        st.cases += 1
        if ops != ("seed",):
            st.covered.update(seed.origins)
        if finding is None:
            setattr(st, outcome, getattr(st, outcome) + 1)
            if self._verdict is not None:
                st.verdicts[self._verdict] = st.verdicts.get(self._verdict, 0) + 1
        else:
            st.findings += 1
            if finding.signature not in self.findings:
                self.findings[finding.signature] = self._shrunk(t, finding)
        st.seconds += time.perf_counter() - start

    def check(self, t: Target, data: bytes, *, index: int = -1, ops: tuple[str, ...] = (),
              traced: bool = False) -> tuple[str, Finding | None]:
        """Run ``t`` on ``data``: ("accepted" | "rejected" | "skipped", None), or a finding."""
        tracing = traced and not tracemalloc.is_tracing()
        if tracing:
            tracemalloc.start()
        elif traced:
            tracemalloc.reset_peak()
        rss, cpu = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, time.process_time()
        error: BaseException | None = None
        outcome, self._verdict = "accepted", None
        try:
            self._arm()
            t.run(data)
        except Skip:
            outcome = "skipped"
        except t.allowed as exc:
            outcome = "rejected"
            self._verdict = getattr(exc, "failure_class", type(exc).__name__)
        except (KeyboardInterrupt, SystemExit):
            raise
        except BaseException as exc:  # everything else is what the campaign is for
            error = exc
        finally:
            self._disarm()
        cpu = time.process_time() - cpu
        peak = tracemalloc.get_traced_memory()[1] if traced else 0
        if tracing:
            tracemalloc.stop()
        peak = max(peak, (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss) * 1024)
        if error is not None:
            kind = "hang" if isinstance(error, Hang) else "oracle" if isinstance(
                error, Mismatch) else "contract" if isinstance(error, shinyo.ShinyoError) \
                else "escape"
            text = f"{type(error).__name__}: {_printable(error)[:2000]}"
            tb = "".join(traceback.format_exception(error))[-20000:]
            where = f"{type(error).__name__}@{_where(error)}"
        elif cpu > self.cpu_limit:
            kind, text, tb, where = "slow", f"{cpu:.2f} s of CPU (limit {self.cpu_limit} s)", \
                "", "slow"
        elif peak > self.memory_limit:
            kind, tb, where = "memory", "", "memory"
            text = f"{peak >> 20} MiB allocated (limit {self.memory_limit >> 20} MiB)"
        else:
            return outcome, None
        return "finding", Finding(target=t.name, kind=kind, signature=f"{t.name}:{kind}:{where}",
                                  error=text, traceback=tb, data=data, minimal=data,
                                  case=index, ops=ops, seed=self.seed)

    def _shrunk(self, t: Target, finding: Finding) -> Finding:
        """Delete ever smaller chunks while the same failure shows (ddmin, bounded)."""
        if finding.kind in ("slow", "hang", "memory"):  # costly to repeat; kept as found
            return finding
        best, budget = finding.data, self.minimize
        chunk = max(1, len(best) // 2)
        while budget > 0:
            i = 0
            while i < len(best) and budget > 0:
                candidate, budget = best[:i] + best[i + chunk :], budget - 1
                _, again = self.check(t, candidate)
                if again is not None and again.signature == finding.signature:
                    best = candidate
                else:
                    i += chunk
            if chunk == 1:
                break
            chunk //= 2
        return dataclasses.replace(finding, minimal=best)

    # SIGALRM stops a case that never returns; only the main thread receives signals.

    @contextlib.contextmanager
    def _alarm(self) -> Iterator[None]:
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        old = signal.signal(signal.SIGALRM, self._ring)
        try:
            yield
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, old)

    def _ring(self, signum: int, frame: object) -> None:
        if self._armed:
            self._armed = False
            raise Hang(f"no result after {self.hang_limit} s")

    def _arm(self) -> None:
        if threading.current_thread() is threading.main_thread() \
                and signal.getsignal(signal.SIGALRM) == self._ring:
            self._armed = True
            signal.setitimer(signal.ITIMER_REAL, self.hang_limit)

    def _disarm(self) -> None:
        if self._armed:
            self._armed = False
            signal.setitimer(signal.ITIMER_REAL, 0)


def _printable(error: BaseException) -> str:
    try:
        return str(error)
    except Exception as exc:  # e.g. an int too long to print
        return f"<unprintable: {type(exc).__name__}>"


def _where(error: BaseException) -> str:
    """The innermost frame in the shinyo package, else the innermost frame."""
    frames = traceback.extract_tb(error.__traceback__)
    ours = [f for f in frames if Path(f.filename).resolve().is_relative_to(_PACKAGE)] or frames
    return f"{Path(ours[-1].filename).name}:{ours[-1].lineno}" if ours else "?"


def write_findings(findings: Iterable[Finding], out: Path) -> list[Path]:
    """One JSON file per finding: input, minimal input (hex), error and traceback."""
    paths = []
    for f in findings:
        out.mkdir(parents=True, exist_ok=True)
        digest = hashlib.sha256(f.signature.encode()).hexdigest()[:10]
        paths.append(out / f"{f.target}-{f.kind}-{digest}.json")
        paths[-1].write_text(json.dumps(f.to_json_obj(), indent=1) + "\n", encoding="utf-8")
    return paths


# -- command line -------------------------------------------------------------------------


def _table(report: Report) -> str:
    rows = [f"{'target':<13}{'cases':>9}{'cases/s':>10}{'accepted':>10}{'rejected':>10}"
            f"{'skipped':>9}{'findings':>10}"]
    rows += [f"{name:<13}{s.cases:>9}{s.rate:>10}{s.accepted:>10}{s.rejected:>10}"
             f"{s.skipped:>9}{s.findings:>10}" for name, s in report.stats.items()]
    rows += [f"FINDING {f.signature}\n  {f.error}\n  minimal input: {f.minimal.hex()}"
             for f in report.findings]
    return "\n".join(rows)


def _limit_address_space(extra: int) -> None:
    """Cap the process, so that a decoder that allocates without bound fails instead
    of taking the machine it shares."""
    with suppress(OSError, ValueError):
        size = int(Path("/proc/self/statm").read_text().split()[0]) * resource.getpagesize()
        resource.setrlimit(resource.RLIMIT_AS, (size + extra, resource.RLIM_INFINITY))


def main(argv: Sequence[str] | None = None, *, targets: Sequence[Target] = TARGETS) -> int:
    """The campaign from the command line; exit status 1 if anything was found."""
    parser = argparse.ArgumentParser(prog="python -m shinyo.tools.fuzz",
                                     description="Hostile-input campaign over the decoders.")
    parser.add_argument("--seconds", type=float, help="run this long (default 60)")
    parser.add_argument("--cases", type=int, help="cases per target (alone or with --seconds)")
    parser.add_argument("--seed", type=int, default=0)
    names = [t.name for t in targets]
    parser.add_argument("--target", nargs="+", choices=names, metavar="NAME",
                        help=f"only these ({', '.join(names)})")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.add_argument("--out", type=Path, default=Path("fuzz-findings"))
    parser.add_argument("--vectors", type=Path, default=VECTORS)
    parser.add_argument("--cpu-limit", type=float, default=1.0, help="CPU seconds per case")
    parser.add_argument("--memory-mb", type=int, default=64, help="peak allocation per case")
    parser.add_argument("--replay", type=Path, help="run a finding file's minimal input again")
    args = parser.parse_args(argv)
    chosen = [t for t in targets if args.target is None or t.name in args.target]
    campaign = Campaign(chosen, seeds(args.vectors), seed=args.seed, cpu_limit=args.cpu_limit,
                        memory_limit=args.memory_mb << 20)
    if args.replay is not None:
        saved = json.loads(args.replay.read_text(encoding="utf-8"))
        (target,) = [t for t in targets if t.name == saved["target"]]
        with campaign._alarm():
            _, finding = campaign.check(target, bytes.fromhex(saved["minimal"]), traced=True)
        print("no longer fails" if finding is None else finding.traceback or finding.error)
        return 0 if finding is None else 1
    seconds = 60.0 if args.cases is None and args.seconds is None else args.seconds
    report = campaign.run(cases=args.cases, seconds=seconds)
    write_findings(report.findings, args.out)
    print(json.dumps(report.to_json_obj(), indent=1) if args.json else _table(report))
    return 1 if report.findings else 0


if __name__ == "__main__":
    _limit_address_space(2 << 30)  # here only: never in a process that imports this module
    sys.exit(main())
