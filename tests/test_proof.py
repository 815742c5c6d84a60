"""Proof bundles (spec/proof.md): build, verify, completeness, forks, limits, CLI."""

from __future__ import annotations

import contextlib
import subprocess
import sys
import tracemalloc
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cbor2
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import shinyo
from shinyo import (
    COMMIT_WINDOW,
    RESPONSE_WINDOW,
    DecodeError,
    Entry,
    Forked,
    ForkProof,
    Incomplete,
    Outcome,
    Oversize,
    VerificationError,
    build_proof,
    verify_proof,
)
from shinyo._constants import MAX_PROOF_ENTRIES, MAX_PROOF_SIZE, PROOF_MAGIC
from shinyo._proof_file import pack_entries

from .conftest import CTX, T0, Pair, identity, nonce, terms

DAY = 86_400
LATER = T0 + 400 * DAY


def history(pair: Pair, n: int = 3) -> list[bytes]:
    trades = []
    for i in range(n):
        t = pair.agree(T0 + i * 10 * DAY)
        pair.rate(t, 5, 3 + i % 3, t=T0 + i * 10 * DAY + 3600)
        trades.append(t)
    return trades


def proof_of(pair: Pair) -> bytes:
    return build_proof(pair.a.chain, pair.a.others)


def fields(data: bytes) -> list:  # type: ignore[type-arg]
    """A proof's fields with its entries unpacked (spec/proof.md 1.1), for
    cases that drop or add whole entries; :func:`rebuild` packs them again."""
    f = cbor2.loads(data[len(PROOF_MAGIC):])
    (_, own), *groups = shinyo.read_proof_file(data).unpacked()
    f[2], f[3] = own, [[key, items] for key, items in groups]
    return f  # type: ignore[no-any-return]


def rebuild(f: list) -> bytes:  # type: ignore[type-arg]
    def packed(items: list[bytes]) -> list[bytes]:
        return pack_entries([Entry.decode(raw) for raw in items])
    return PROOF_MAGIC + cbor2.dumps([*f[:2], packed(f[2]),
                                      [[key, packed(items)] for key, items in f[3]], *f[4:]],
                                     canonical=True)


def test_round_trip_and_json_is_stable(pair: Pair) -> None:
    history(pair)
    data = proof_of(pair)
    r = verify_proof(data, now=LATER)
    assert r.subject == pair.a.pseudonym and r.head_seq == len(pair.a.chain)
    assert [t.outcome for t in r.trades] == [Outcome.RATED] * 3
    assert r.scores.scores["mean"] == 4.0
    assert verify_proof(data, now=LATER).to_json_obj() == r.to_json_obj()


def test_dropping_a_received_rating_shows_it_withheld(pair: Pair) -> None:
    history(pair)
    f = fields(proof_of(pair))
    reveals = [(gi, i) for gi, (_, items) in enumerate(f[3]) for i, raw in enumerate(items)
               if Entry.decode(raw).kind is shinyo.Kind.RATE_REVEAL]
    assert reveals
    for gi, i in reveals:
        g = cbor2.loads(cbor2.dumps(f))
        del g[3][gi][1][i]
        r = verify_proof(rebuild(g), now=LATER)
        assert Outcome.WITHHELD in [t.outcome for t in r.trades]
        assert r.scores.counts["withheld"] == 1


def test_second_revealer_dropping_the_first_reveal_is_incomplete(pair: Pair) -> None:
    history(pair, 1)
    data = build_proof(pair.b.chain, pair.b.others)  # b revealed second
    f = fields(data)
    f[3][0][1] = [raw for raw in f[3][0][1]
                  if Entry.decode(raw).kind is not shinyo.Kind.RATE_REVEAL]
    with pytest.raises(Incomplete, match="revealed after"):
        verify_proof(rebuild(f), now=LATER)


def test_dropping_an_acknowledged_commitment_is_incomplete(pair: Pair) -> None:
    history(pair, 1)
    f = fields(proof_of(pair))
    items = f[3][0][1]
    commit = next(i for i, raw in enumerate(items)
                  if Entry.decode(raw).kind is shinyo.Kind.RATE_COMMIT)
    del items[commit]
    with pytest.raises(Incomplete, match="acknowledged"):
        verify_proof(rebuild(f), now=LATER)


def test_acceptor_proof_needs_the_proposal(pair: Pair) -> None:
    history(pair, 1)
    data = build_proof(pair.b.chain, pair.b.others)
    assert verify_proof(data, now=LATER).trades[0].role is shinyo.Role.ACCEPTOR
    f = fields(data)
    f[3][0][1] = [raw for raw in f[3][0][1]
                  if Entry.decode(raw).kind is not shinyo.Kind.TRADE_PROPOSE]
    with pytest.raises(Incomplete, match="proposal"):
        verify_proof(rebuild(f), now=LATER)


def test_silent_counterparty_expired_with_evidence_withheld_without(pair: Pair) -> None:
    t = pair.agree()
    c = pair.step(pair.a.commit(t, stars=4, nonce=nonce(1), timestamp=T0 + 100))
    due = max(T0 + 60 + COMMIT_WINDOW, c.timestamp + RESPONSE_WINDOW)
    # b never commits, but its chain goes on (vouches elsewhere) past the deadline.
    for k, when in enumerate((T0 + 10 * DAY, T0 + 20 * DAY, due + 3600)):
        pair.step(pair.b.vouch(identity(20 + k).pseudonym, context=CTX, timestamp=when))
    data = proof_of(pair)
    r = verify_proof(data, now=due + DAY)
    assert r.trades[0].reason.startswith("the counterparty's chain shows no commit")
    assert r.trades[0].outcome is Outcome.EXPIRED
    f = fields(data)
    f[3][0][1] = f[3][0][1][:1]  # keep only b's acceptance: no evidence
    assert verify_proof(rebuild(f), now=due + DAY).trades[0].outcome is Outcome.WITHHELD


def test_forks(pair: Pair) -> None:
    history(pair, 1)
    me = pair.a.identity
    twin = Entry.create(me, seq=1, prev=bytes(32), timestamp=T0,
                        body=shinyo.Propose(counterparty=pair.b.pseudonym, context="x",
                                            terms=terms(9)))
    own_fork = ForkProof.from_entries(pair.a.chain[1], twin)
    with pytest.raises(Forked):
        verify_proof(build_proof(pair.a.chain, pair.a.others, forks=[own_fork]), now=LATER)
    theirs = Entry.create(pair.b.identity, seq=1, prev=bytes(32), timestamp=T0,
                          body=shinyo.Cancel(trade=bytes(32)))
    their_fork = ForkProof.from_entries(pair.b.chain[1], theirs)
    r = verify_proof(build_proof(pair.a.chain, pair.a.others, forks=[their_fork]), now=LATER)
    assert r.forked_counterparties == (pair.b.pseudonym,)


@pytest.mark.parametrize(
    ("mutate", "error"),
    [
        (lambda f: [2, *f[1:]], shinyo.UnsupportedVersion),
        (lambda f: f[:4], DecodeError),
        (lambda f: [f[0], b"x", *f[2:]], DecodeError),
        (lambda f: [*f[:2], [], *f[3:]], Incomplete),
        (lambda f: [*f[:2], "own", *f[3:]], DecodeError),
        (lambda f: [*f[:3], [f[3][0], f[3][0]], f[4]], DecodeError),  # repeated group
        (lambda f: [*f[:3], [[f[1], []]], f[4]], DecodeError),  # subject under others
        (lambda f: [*f[:4], [1]], DecodeError),
        (lambda f: [*f[:4], [b"b", b"a"]], DecodeError),
        (lambda f: [*f[:2], f[2][1:], *f[3:]], shinyo.SeqGap),
        (lambda f: [*f[:2], f[2][:1] + f[2][2:], *f[3:]], shinyo.SeqGap),
        (lambda f: [*f[:3], [[f[3][0][0], list(reversed(f[3][0][1]))]], f[4]], shinyo.SeqGap),
        (lambda f: [*f[:3], [[f[3][0][0], [7]]], f[4]], DecodeError),
    ],
)
def test_structural_errors(pair: Pair, mutate: object, error: type[Exception]) -> None:
    history(pair, 1)
    f = fields(proof_of(pair))
    with pytest.raises(error):
        verify_proof(rebuild(mutate(f)), now=LATER)  # type: ignore[operator]


def test_magic_and_limits() -> None:
    with pytest.raises(DecodeError, match="SHINYO-PROOF"):
        verify_proof(b"%PDF-1.7", now=T0)
    with pytest.raises(Oversize):
        verify_proof(PROOF_MAGIC + bytes(MAX_PROOF_SIZE), now=T0)
    many = [1, identity(1).pseudonym.key, [b""] * (MAX_PROOF_ENTRIES + 1), [], []]
    with pytest.raises(Oversize, match="items"):
        verify_proof(PROOF_MAGIC + cbor2.dumps(many), now=T0)


KEY = identity(1).pseudonym.key
HEAD = PROOF_MAGIC + b"\x85\x01\x58\x20" + KEY  # [5 items, version 1, subject, ...


def test_empty_counterparty_groups_count_toward_the_item_limit() -> None:
    """Review finding F7: groups are items too, or [key, []] pairs were free."""
    own = [b""] * (MAX_PROOF_ENTRIES - 2)
    groups = [[bytes([k]) * 32, []] for k in range(1, 4)]
    with pytest.raises(Oversize, match="items"):
        verify_proof(PROOF_MAGIC + cbor2.dumps([1, KEY, own, groups, []]), now=T0)
    with pytest.raises(DecodeError):  # two groups fit; the empty entries then fail to decode
        verify_proof(PROOF_MAGIC + cbor2.dumps([1, KEY, own, groups[:2], []]), now=T0)


def test_a_length_is_charged_before_any_element_is_read() -> None:
    claim = HEAD + b"\x9b" + (2**40).to_bytes(8, "big")  # own: an array of 2^40 items
    with pytest.raises(Oversize):
        verify_proof(claim, now=T0)


@pytest.mark.parametrize(("tail", "error", "match"), [
    (b"\x98\x01\x40\x80\x80", shinyo.NonCanonical, "non-shortest"),
    (b"\x9f\x40\xff\x80\x80", shinyo.NonCanonical, "indefinite"),
    (b"\x81\x40\x80\x80\x00", shinyo.NonCanonical, "after"),
    (b"\x81\xc2\x40\x80\x80", DecodeError, "byte string"),
    (b"\x81\x80\x80\x80", DecodeError, "byte string"),
    (b"\x81\x5a\x00\x01", DecodeError, "truncated"),
    (b"\x81\x41", DecodeError, "truncated"),
    (b"\x80\x81\x83", DecodeError, "group"),
    (b"\x80\x80\xa0", DecodeError, "array"),
])
def test_the_layout_walk_reports_the_first_fault_in_byte_order(
        tail: bytes, error: type[Exception], match: str) -> None:
    with pytest.raises(error, match=match):
        verify_proof(HEAD + tail, now=T0)


def test_the_version_is_judged_before_the_shape() -> None:
    with pytest.raises(shinyo.UnsupportedVersion):
        verify_proof(PROOF_MAGIC + cbor2.dumps([2]), now=T0)
    with pytest.raises(shinyo.UnsupportedVersion):
        verify_proof(PROOF_MAGIC + cbor2.dumps([2**64 - 1, "anything", {}]), now=T0)
    with pytest.raises(DecodeError, match="must be"):
        verify_proof(PROOF_MAGIC + cbor2.dumps([1]), now=T0)


def test_hostile_shapes_cost_no_more_memory_than_the_file() -> None:
    """Review finding F7: 2 MiB of empty arrays where entries belong had built a
    Python list per byte; the walk stops at the first one."""
    data = HEAD + b"\x9a" + (2**17).to_bytes(4, "big") + b"\x80" * 2**21
    tracemalloc.start()
    try:
        with pytest.raises(DecodeError, match="byte string"):
            verify_proof(data, now=T0)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < len(data)


@given(st.data())
@settings(max_examples=150, deadline=None)
def test_any_single_byte_change_is_rejected_or_judged_the_same(data: st.DataObject) -> None:
    pair = Pair(shinyo.Participant(identity(1)), shinyo.Participant(identity(2)))
    history(pair, 2)
    raw = proof_of(pair)
    want = verify_proof(raw, now=LATER).to_json_obj()
    i = data.draw(st.integers(0, len(raw) - 1))
    b = data.draw(st.integers(0, 255).filter(lambda v: v != raw[i]))
    try:
        got = verify_proof(raw[:i] + bytes([b]) + raw[i + 1 :], now=LATER).to_json_obj()
    except VerificationError:
        return
    want.pop("bytes")
    got.pop("bytes")
    assert got == want


@given(st.data())
@settings(max_examples=60, deadline=None)
def test_parallel_signature_checks_give_the_same_verdict(data: st.DataObject) -> None:
    pair = Pair(shinyo.Participant(identity(1)), shinyo.Participant(identity(2)))
    history(pair, 2)
    raw = bytearray(proof_of(pair))
    for _ in range(data.draw(st.integers(0, 3))):  # 0-3 byte changes
        raw[data.draw(st.integers(0, len(raw) - 1))] = data.draw(st.integers(0, 255))

    def judged(**kw: object) -> object:
        try:
            return verify_proof(bytes(raw), now=LATER, **kw).to_json_obj()  # type: ignore[arg-type]
        except VerificationError as exc:
            return (exc.failure_class, str(exc))

    with ThreadPoolExecutor(max_workers=2) as pool:
        assert judged(map=pool.map) == judged()


@given(st.binary(max_size=3000))
@settings(max_examples=300)
def test_garbage_after_the_magic_is_a_typed_error(tail: bytes) -> None:
    with contextlib.suppress(VerificationError):
        verify_proof(PROOF_MAGIC + tail, now=T0)


def shinyo_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "shinyo.tools.cli", *args],
                          capture_output=True, text=True, timeout=120, check=False)


def test_cli_verify(pair: Pair, tmp_path: Path) -> None:
    history(pair)
    good = tmp_path / "a.proof"
    good.write_bytes(proof_of(pair))
    one = shinyo_cli("verify", str(good), "--as-of", "2027-06-01", "--json")
    two = shinyo_cli("verify", str(good), "--as-of", "2027-06-01T00:00:00+00:00", "--json")
    assert one.returncode == 0 and one.stdout == two.stdout
    human = shinyo_cli("verify", str(good), "--as-of", "2027-06-01", "--trades",
                       "--policy", "window:days=30")
    assert human.returncode == 0 and "VALID" in human.stdout and "rated" in human.stdout
    bad = tmp_path / "b.proof"
    raw = bytearray(good.read_bytes())
    raw[-40] ^= 1
    bad.write_bytes(bytes(raw))
    out = shinyo_cli("verify", str(bad), "--as-of", "2027-06-01")
    assert out.returncode == 1 and "INVALID [" in out.stdout
    assert shinyo_cli("verify", str(tmp_path / "missing")).returncode == 2
    assert shinyo_cli("verify", str(good), "--policy", "median").returncode == 2
    assert shinyo_cli("verify", str(good), "--as-of", "yesterday").returncode == 2
    ins = shinyo_cli("proof", "inspect", str(good))
    assert ins.returncode == 0 and "subject sy1" in ins.stdout
    junk = tmp_path / "junk"
    junk.write_bytes(PROOF_MAGIC + b"\x85\x01\x40\x80\x80\x80")
    for cmd in (["verify", str(junk)], ["proof", "inspect", str(junk)]):
        r = shinyo_cli(*cmd)
        assert r.returncode == 1 and "Traceback" not in r.stdout + r.stderr


def test_accepting_a_proposal_made_to_someone_else_is_a_typed_error() -> None:
    """Review finding: this used to escape as LocalProtocolError."""
    subject, proposer, third = identity(1), identity(2), identity(3)
    theirs = shinyo.Chain(proposer.pseudonym)
    p = theirs.append_new(proposer, timestamp=T0, body=shinyo.Propose(
        counterparty=third.pseudonym, context=CTX, terms=terms()))
    mine = shinyo.Chain(subject.pseudonym)
    mine.append_new(subject, timestamp=T0 + 60, body=shinyo.Accept(
        trade=p.id, proposer=proposer.pseudonym, context=CTX))
    with pytest.raises(shinyo.TradeRuleViolation, match="someone else"):
        verify_proof(build_proof(mine, {proposer.pseudonym: theirs}), now=T0 + DAY)


def test_acceptor_that_committed_first_and_revealed_first_is_not_incomplete(pair: Pair) -> None:
    """Review finding F10: the acceptor committed first (no ack), the proposer acked
    it, the acceptor revealed first; the proposer never revealed.  The acceptor's
    proof must verify (rating withheld), not be 'incomplete' forever."""
    t = pair.agree()
    pair.step(pair.b.commit(t, stars=4, nonce=nonce(1), timestamp=T0 + 100))
    pair.step(pair.a.commit(t, stars=2, nonce=nonce(2), timestamp=T0 + 200))
    pair.step(pair.b.reveal(t, timestamp=T0 + 300))
    r = verify_proof(build_proof(pair.b.chain, pair.b.others), now=LATER)
    assert r.trades[0].outcome is Outcome.WITHHELD


def _b_goes_on(pair: Pair, until: int, start: int = 50) -> None:
    """b's chain continues (vouches elsewhere) past ``until``: evidence of silence."""
    for k, when in enumerate((until - 5 * DAY, until + 3600)):
        pair.step(pair.b.vouch(identity(start + k).pseudonym, context=CTX, timestamp=when))


def _without(data: bytes, kind: shinyo.Kind) -> bytes:
    """The proof with b's entries of ``kind`` dropped."""
    f = fields(data)
    f[3][0][1] = [raw for raw in f[3][0][1] if Entry.decode(raw).kind is not kind]
    return rebuild(f)


def _b_truncated_before(pair: Pair, seq: int) -> bytes:
    """a's proof as a holder builds it who pretends b's chain ends before ``seq``."""
    b = pair.b.pseudonym
    cut = shinyo.Chain.from_entries(pair.a.others[b].entries[:seq - 1])
    return build_proof(pair.a.chain, {b: cut})


def test_dropping_a_reveal_but_keeping_the_response_after_it_is_withheld(pair: Pair) -> None:
    """Review finding F2: evidence of silence starts at the counterparty's last
    *step* (here its commit), so a gap where the reveal was shows no silence."""
    t = pair.agree()
    pair.rate(t, 5, 1)  # a revealed first; b's 1-star reveal follows
    pair.step(pair.b.respond(t, text=shinyo.text_digest("fair", salt=bytes(16)),
                             timestamp=T0 + 7200))
    _b_goes_on(pair, T0 + 60 + COMMIT_WINDOW + 2 * RESPONSE_WINDOW)
    data = proof_of(pair)
    assert verify_proof(data, now=LATER).trades[0].outcome is Outcome.RATED
    r = verify_proof(_without(data, shinyo.Kind.RATE_REVEAL), now=LATER)
    assert r.trades[0].outcome is Outcome.WITHHELD and r.trades[0].stars == 1


def test_a_late_counterparty_reveal_is_expired_held_or_dropped(pair: Pair) -> None:
    """Review finding F3: a late reveal of C counts for nothing, so truncating C's
    chain before it gains the holder nothing."""
    t = pair.agree()
    pair.step(pair.a.commit(t, stars=5, nonce=nonce(1), timestamp=T0 + 100))
    pair.step(pair.b.commit(t, stars=1, nonce=nonce(2), timestamp=T0 + 200))
    a_reveal = pair.step(pair.a.reveal(t, timestamp=T0 + 300))
    due = a_reveal.timestamp + RESPONSE_WINDOW
    pair.step(pair.b.vouch(identity(40).pseudonym, context=CTX, timestamp=due + 3600))
    late = pair.step(pair.b.reveal(t, timestamp=due + DAY))
    _b_goes_on(pair, due + 60 * DAY)
    data = proof_of(pair)
    held = verify_proof(data, now=LATER).trades[0]
    assert held.outcome is Outcome.EXPIRED and held.reason.endswith("after its deadline")
    dropped = verify_proof(_b_truncated_before(pair, late.seq), now=LATER).trades[0]
    assert dropped.outcome is Outcome.EXPIRED and dropped.stars is None


def test_a_late_counterparty_commit_excuses_the_subject(pair: Pair) -> None:
    """Review finding F4 (late variant): a committed first and never revealed; b's
    commit came late.  Held or dropped, the trade is expired, not stalled."""
    t = pair.agree()
    pair.step(pair.a.commit(t, stars=5, nonce=nonce(1), timestamp=T0 + 100))
    due = T0 + 60 + COMMIT_WINDOW
    pair.step(pair.b.vouch(identity(40).pseudonym, context=CTX, timestamp=due + 3600))
    late = pair.step(pair.b.commit(t, stars=1, nonce=nonce(2), timestamp=due + DAY))
    _b_goes_on(pair, due + 60 * DAY)
    data = proof_of(pair)
    held = verify_proof(data, now=LATER).trades[0]
    assert held.outcome is Outcome.EXPIRED and held.reason.endswith("after its deadline")
    dropped = verify_proof(_b_truncated_before(pair, late.seq), now=LATER).trades[0]
    assert dropped.outcome is Outcome.EXPIRED
    assert held.at == dropped.at == due


def test_ratings_are_confirmed_once_the_retraction_window_is_shown(pair: Pair) -> None:
    """Review finding F1: a dropped retraction cannot be told from a quiet rater,
    so a rating is 'confirmed' only with C's chain past the retraction window."""
    t = pair.agree()
    pair.rate(t, 5, 5)
    data = proof_of(pair)
    r = verify_proof(data, now=LATER)
    assert r.trades[0].outcome is Outcome.RATED and r.trades[0].confirmed is False
    assert r.scores.counts["unconfirmed"] == 1
    _b_goes_on(pair, T0 + 3600 + shinyo.RETRACT_WINDOW)
    r = verify_proof(proof_of(pair), now=LATER)
    assert r.trades[0].confirmed is True and r.scores.counts["unconfirmed"] == 0
    assert r.to_json_obj()["trades"][0]["confirmed"] is True


def test_a_retraction_after_its_window_is_refused(pair: Pair) -> None:
    t = pair.agree()
    pair.rate(t, 5, 5)
    late = T0 + 3600 + 30 + shinyo.RETRACT_WINDOW + 1
    with pytest.raises(shinyo.LocalProtocolError, match="retract"):
        pair.b.retract(t, timestamp=late)
    pair.step(pair.b.retract(t, timestamp=late - 1))
