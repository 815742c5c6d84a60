"""CI's bounded hostile-input campaign (issue 7); the long one is `python -m shinyo.tools.fuzz`.

Three parts: valid objects built by hypothesis strategies, then mutated and
fed to every decoder that reads them; every spec vector mutated by the
campaign engine with a fixed seed; and the engine's own detectors, each shown
to fire on a target broken on purpose, so the campaign cannot pass by
catching nothing.
"""

from __future__ import annotations

import functools
import json
import time
from pathlib import Path
from random import Random
from typing import Any

import cbor2
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import shinyo
from shinyo import (
    Accept,
    Cancel,
    Commit,
    DecodeError,
    Entry,
    ForkProof,
    LocalProtocolError,
    Participant,
    Propose,
    Response,
    Retract,
    Reveal,
    SigningIdentity,
    VerificationError,
    Vouch,
    build_proof,
    verify_proof,
)
from shinyo._constants import GENESIS_PREV, MAX_SEQ, MAX_TIMESTAMP
from shinyo.tools import fuzz, fuzz_seeds
from shinyo.tools.fuzz import Campaign, Mismatch, Skip, Target
from shinyo.tools.fuzz_cbor import emit, join_frames, split_frames
from shinyo.tools.fuzz_mutate import Mutator
from shinyo.wire import Bye, Entries, Head, Heads, Hello, Message, Push, Want, encode_frame

from .conftest import T0, identity, nonce, terms

# Fixed inputs make CI deterministic; deadline=None because the machine is shared.
CI = settings(derandomize=True, database=None, deadline=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
TARGETS = {t.name: t for t in fuzz.TARGETS}
PEOPLE = [identity(n) for n in (1, 2, 3, 4)]  # seeds the mutator can re-sign for


@functools.cache
def engine() -> Campaign:
    return Campaign(fuzz.TARGETS, fuzz_seeds.seeds(), seed=1)


def clean(data: bytes, *names: str) -> None:
    """Each named target keeps its contract on ``data``."""
    for name in names:
        _, finding = engine().check(TARGETS[name], data)
        assert finding is None, f"{finding.signature}\n{finding.traceback or finding.error}"


def mutants(data: bytes, k: int, n: int = 3) -> list[bytes]:
    m = Mutator([data])
    return [m.mutate(Random(k + i), data)[0] for i in range(n)]


# -- (a) structure-aware strategies: valid objects, then mutated --------------------------

hashes = st.binary(min_size=32, max_size=32)
people = st.sampled_from(PEOPLE)
pseudonyms = people.map(lambda p: p.pseudonym)
contexts = st.from_regex(r"[a-z0-9][a-z0-9._:/-]{0,16}", fullmatch=True)
tags = st.lists(st.from_regex(r"[a-z0-9][a-z0-9-]{0,6}", fullmatch=True), max_size=3,
                unique=True).map(lambda ts: tuple(sorted(ts)))
bodies: st.SearchStrategy[shinyo.Body] = st.one_of(
    st.builds(Propose, counterparty=pseudonyms, context=contexts, terms=hashes),
    st.builds(Accept, trade=hashes, proposer=pseudonyms, context=contexts),
    st.builds(Cancel, trade=hashes),
    st.builds(Commit, trade=hashes, commitment=hashes, ack=st.none() | hashes),
    st.builds(Reveal, trade=hashes, stars=st.integers(1, 5), nonce=st.binary(min_size=16,
              max_size=16), tags=tags, comment=st.none() | hashes, ack=st.none() | hashes),
    st.builds(Retract, trade=hashes),
    st.builds(Response, trade=hashes, text=hashes),
    st.builds(Vouch, subject=pseudonyms, context=contexts, active=st.booleans()),
)


@st.composite
def entries(draw: st.DrawFn, who: SigningIdentity | None = None, seq: int | None = None
            ) -> Entry:
    author = who or draw(people)
    n = seq or draw(st.integers(1, MAX_SEQ))
    prev = GENESIS_PREV if n == 1 else draw(hashes.filter(lambda h: h != GENESIS_PREV))
    return Entry.create(author, seq=n, prev=prev, timestamp=draw(st.integers(0, MAX_TIMESTAMP)),
                        body=draw(bodies))


@st.composite
def fork_proofs(draw: st.DrawFn) -> ForkProof:
    who, seq = draw(people), draw(st.integers(1, 1000))
    a = draw(entries(who, seq))
    b = draw(entries(who, seq).filter(lambda e: e.id != a.id))
    return ForkProof.from_entries(a, b)


@st.composite
def histories(draw: st.DrawFn) -> tuple[Participant, Participant, Participant]:
    """Three parties and 1-3 trades between them, each stopped at a drawn step."""
    a, b, c = (Participant(p) for p in PEOPLE[:3])
    everyone = (a, b, c)
    t = T0

    def send(e: Entry) -> Entry:
        for p in everyone:
            if p.pseudonym != e.author:
                p.receive(e)
        return e

    for k in range(draw(st.integers(1, 3))):
        x, y = draw(st.permutations(everyone))[:2]
        t += 400 + draw(st.integers(0, 3600))  # past every entry of the trade before
        trade = send(x.propose(y.pseudonym, context="fuzz.example", terms=terms(k),
                               timestamp=t)).id
        stop = draw(st.sampled_from(("offer", "cancel", "commit", "rated", "retract")))
        if stop == "offer":
            continue
        send(y.accept(trade, timestamp=t + 60))
        if stop == "cancel":
            send(x.cancel(trade, timestamp=t + 120))
            continue
        send(x.commit(trade, stars=draw(st.integers(1, 5)), nonce=nonce(1), timestamp=t + 120))
        if stop == "commit":
            continue
        send(y.commit(trade, stars=draw(st.integers(1, 5)), nonce=nonce(2), timestamp=t + 180))
        send(x.reveal(trade, timestamp=t + 240))
        send(y.reveal(trade, timestamp=t + 300))
        if stop == "retract":
            send(y.retract(trade, timestamp=t + 360))
    return a, b, c


@given(entries(), st.integers(0, 2**32))
@settings(CI, max_examples=150)
def test_mutated_entries_give_typed_errors_or_exact_entries(entry: Entry, k: int) -> None:
    raw = entry.encode()
    assert Entry.decode(raw) == entry  # the strategy builds valid entries
    for data in [raw, *mutants(raw, k)]:
        clean(data, "entry", "peek-id")
        # As a peer would push it, with no sender-side checks: wire type 6 is Push.
        clean(join_frames([cbor2.dumps([6, [data]])]), "frames", "session")


@given(fork_proofs(), st.integers(0, 2**32))
@settings(CI, max_examples=60)
def test_mutated_fork_proofs(proof: ForkProof, k: int) -> None:
    raw = proof.encode()
    assert ForkProof.decode(raw) == proof
    for data in [raw, *mutants(raw, k)]:
        clean(data, "fork-proof")
        clean(join_frames([cbor2.dumps([7, data])]), "session")  # type 7: Fork


@given(histories(), st.integers(0, 2**32))
@settings(CI, max_examples=50)
def test_mutated_proof_bundles(parties: tuple[Participant, ...], k: int) -> None:
    a = next(p for p in parties if p.chain.entries)
    chains = {p.pseudonym: p.chain for p in parties}
    raw = build_proof(a.chain, chains)
    assert verify_proof(raw, now=fuzz.FIXED_NOW).head_seq == len(a.chain)
    for data in [raw, *mutants(raw, k, 4)]:
        clean(data, "proof-file", "verify-proof")
    lists = [cbor2.dumps([e.encode() for e in p.chain.entries]) for p in parties if p.chain.entries]
    for data in lists:
        clean(data, "chain", "trade")
        for m in mutants(data, k, 2):
            clean(m, "chain", "trade")


@st.composite
def streams(draw: st.DrawFn) -> list[Message]:
    """A session as a node sends it: Hello, then messages built of real entries."""
    parties = draw(histories())
    chain = draw(st.sampled_from([p.chain for p in parties if p.chain.entries]))
    raws = [e.encode() for e in chain.entries]
    first = draw(st.integers(1, len(raws)))
    last = draw(st.integers(first, len(raws) + 3))
    want = Want(author=chain.author, first=first, last=last)
    heads = tuple(sorted((Head(author=p.chain.author, seq=len(p.chain), id=p.chain.entries[-1].id)
                          for p in parties if p.chain.entries), key=lambda h: h.author.key))
    pool: list[Message] = [
        want, Entries.answering(want, raws[first - 1 : last]), Push(entries=tuple(raws[:4])),
        Heads(heads=heads), Bye(code="normal", reason=draw(st.text(max_size=8).filter(
            lambda s: s.isprintable()))),
    ]
    return [Hello(), *draw(st.lists(st.sampled_from(pool), max_size=4))]


@given(streams(), st.integers(0, 2**32))
@settings(CI, max_examples=60)
def test_mutated_wire_streams(msgs: list[Message], k: int) -> None:
    stream = b"".join(encode_frame(m) for m in msgs)
    clean(stream, "frames")
    for data in [stream, *mutants(stream, k)]:
        clean(data, "frames", "session")
        for body in split_frames(data) or ():
            clean(body, "message")
    want = next((m for m in msgs if isinstance(m, Want)), None)
    if want is not None:
        answer = encode_frame(want) + b"".join(encode_frame(m) for m in msgs
                                               if isinstance(m, Entries))
        for data in [answer, *mutants(answer, k)]:
            clean(data, "answer")


# -- (b) every spec vector, mutated by the campaign engine ------------------------------


def vector_origins() -> set[str]:
    out = set()
    for path in sorted(fuzz_seeds.VECTORS.glob("*.json")):
        doc = json.loads(path.read_text(encoding="utf-8"))
        out |= {f"{path.name}#{v['id']}" for v in doc["vectors"]}
    return out


def test_every_spec_vector_is_run_and_mutated_with_no_finding() -> None:
    seeds = fuzz_seeds.vector_seeds()
    covered: set[str] = set()
    for t in fuzz.TARGETS:
        n = len(seeds[t.kind])
        # Every seed once unchanged, then once mutated; each 8th case is a cut.
        report = Campaign([t], seeds, seed=2024).run(cases=(2 * n + 1) * 8 // 7 + 8)
        assert report.findings == (), "\n\n".join(
            f"{f.signature}\nminimal input: {f.minimal.hex()}\n{f.traceback}"
            for f in report.findings)
        st = report.stats[t.name]
        assert st.accepted + st.rejected + st.skipped == st.cases
        covered |= report.covered()
    assert vector_origins() <= covered, sorted(vector_origins() - covered)[:10]


def test_cases_are_a_function_of_seed_target_and_index() -> None:
    seeds = fuzz_seeds.seeds()
    one, two, other = (Campaign(fuzz.TARGETS, seeds, seed=s) for s in (5, 5, 6))
    t = TARGETS["verify-proof"]
    n = len(seeds["proof"])
    index = range(2 * n, 2 * n + 40)
    assert [one.case(t, i) for i in index] == [two.case(t, i) for i in reversed(index)][::-1]
    assert [one.case(t, i)[0] for i in index] != [other.case(t, i)[0] for i in index]
    data, ops, seed = one.case(t, 7)  # the truncation sweep: seed 0, cut one byte short
    assert ops == (f"cut@{len(seeds['proof'][0].data) - 1}",) and data == seed.data[:-1]


def test_re_signing_mutations_reach_the_rules_behind_the_signature() -> None:
    """Byte edits stop at the signature (spec 6.4 step 7); the entry operation re-signs
    and re-links, so mutants fail the chain and trade rules, or even pass."""
    proofs = [s.data for s in fuzz_seeds.vector_seeds()["proof"]]
    valid = []
    for p in proofs:
        try:
            verify_proof(p, now=fuzz.FIXED_NOW)
            valid.append(p)
        except VerificationError:
            continue
    m, seen = Mutator(proofs), set()
    for i in range(120):
        try:
            verify_proof(m.apply("entry", Random(i), valid[i % len(valid)]) or b"",
                         now=fuzz.FIXED_NOW)
            seen.add("valid")
        except VerificationError as exc:
            seen.add(exc.failure_class)
    assert {"valid", "trade-rule", "timestamp-regression"} <= seen, seen


def test_emit_writes_canonical_cbor_and_every_non_canonical_form() -> None:
    value = [1, 24, 2**40, -25, b"x" * 30, "text", [], [True, None], {"b": 1, "aa": [2.5]}]
    assert emit(value) == cbor2.dumps(value, canonical=True)
    odd = {emit(value, Random(i), odd=1.0) for i in range(20)}
    assert len(odd) > 10 and emit(value) not in odd
    assert all(cbor2.loads(b) == value for b in odd if b.count(b"\x62aa") == 1)
    assert split_frames(join_frames([b"\x80", b"\x81\x00"])) == [b"\x80", b"\x81\x00"]
    assert split_frames(b"\x00\x00\x00\x02\x80") is None


# -- (c) the detectors fire: targets broken on purpose ------------------------------------


def fragile(data: bytes) -> None:
    """A decoder with a bug: two zero bytes anywhere crash it."""
    if b"\x00\x00" in data:
        raise KeyError("boom")
    raise DecodeError("refused, as it should be")


def campaign_of(run: Any, **kw: Any) -> Campaign:
    target = Target(name="broken", kind="entry", run=run, allowed=(VerificationError,))
    return Campaign([target], fuzz_seeds.vector_seeds(), seed=3, **kw)


def test_a_non_shinyo_exception_is_found_and_shrunk() -> None:
    report = campaign_of(fragile).run(cases=40)
    (f,) = report.findings
    assert f.kind == "escape" and "KeyError" in f.error and "boom" in f.traceback
    assert b"\x00\x00" in f.data and f.minimal == b"\x00\x00"
    assert report.stats["broken"].findings >= 1


def test_minimizing_stops_at_its_budget() -> None:
    (f,) = campaign_of(fragile, minimize=0).run(cases=40).findings
    assert f.minimal == f.data


@pytest.mark.parametrize(("error", "kind"), [
    (LocalProtocolError("a ShinyoError of the wrong family"), "contract"),
    (Mismatch("an oracle failed"), "oracle"),
    (RecursionError("deep"), "escape"),
])
def test_each_kind_of_failure_is_named(error: BaseException, kind: str) -> None:
    def run(data: bytes) -> None:
        raise error

    (f,) = campaign_of(run, minimize=5).run(cases=3).findings
    assert f.kind == kind and f.signature.startswith(f"broken:{kind}:")


def test_skips_are_counted_not_found() -> None:
    def run(data: bytes) -> None:
        raise Skip

    report = campaign_of(run).run(cases=10)
    assert report.findings == () and report.stats["broken"].skipped == 10


def test_the_cpu_limit() -> None:
    def run(data: bytes) -> None:
        end = time.process_time() + 0.03
        while time.process_time() < end:
            pass

    (f,) = campaign_of(run, cpu_limit=0.01).run(cases=2).findings
    assert f.kind == "slow" and "limit 0.01 s" in f.error
    assert campaign_of(run, cpu_limit=5.0).run(cases=2).findings == ()


def test_the_hang_limit() -> None:
    def run(data: bytes) -> None:
        time.sleep(5)

    (f,) = campaign_of(run, hang_limit=0.05, cpu_limit=5.0).run(cases=2).findings
    assert f.kind == "hang"


def test_the_memory_limit() -> None:
    def run(data: bytes) -> None:
        block = bytearray(4 << 20)
        block[-1] = 1

    (f,) = campaign_of(run, memory_limit=1 << 20, memory_every=1).run(cases=2).findings
    assert f.kind == "memory"
    assert campaign_of(run, memory_limit=64 << 20, memory_every=1).run(cases=2).findings == ()


def test_the_command_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    broken = Target(name="broken", kind="entry", run=fragile, allowed=(VerificationError,))
    out = tmp_path / "findings"
    assert fuzz.main(["--cases", "40", "--out", str(out)], targets=[broken]) == 1
    (path,) = out.iterdir()
    saved = json.loads(path.read_text(encoding="utf-8"))
    assert saved["target"] == "broken" and saved["minimal"] == "0000"
    assert "KeyError" in capsys.readouterr().out
    assert fuzz.main(["--replay", str(path)], targets=[broken]) == 1
    assert "boom" in capsys.readouterr().out
    assert fuzz.main(["--cases", "20", "--target", "message", "pseudonym", "--json",
                      "--out", str(tmp_path / "none")]) == 0
    report = json.loads(capsys.readouterr().out)
    assert set(report["targets"]) == {"message", "pseudonym"}
    assert report["targets"]["message"]["cases"] == 20 and report["findings"] == []
    assert not (tmp_path / "none").exists()
