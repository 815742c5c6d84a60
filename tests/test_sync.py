"""Sans-IO sync logic (spec/wire.md 7-10): replicas converge, and every bound holds."""

from __future__ import annotations

import functools
from collections.abc import Iterable
from dataclasses import dataclass, field
from random import Random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shinyo import (
    BadSignature,
    Chain,
    Entry,
    ForkProof,
    FutureTimestamp,
    InvalidFork,
    LocalProtocolError,
    Propose,
    Pseudonym,
    SeqGap,
    VerificationError,
)
from shinyo._constants import GENESIS_PREV
from shinyo._framing import FrameDecoder, SessionGuard, encode_frame
from shinyo._ratelimit import Offence, PenaltyScore, RateLimiter, TokenBucket, offence_for
from shinyo._sync import (
    MAX_OUTSTANDING_WANTS,
    Behind,
    PeerSync,
    Placement,
    Reassembly,
    SeenSet,
    WantClaims,
    check_answer,
    encoded_size,
    heads_pages,
    peek_id,
    place,
    push_targets,
)
from shinyo._wire import (
    MAX_FRAME_SIZE,
    MAX_WANT_SPAN,
    BadAnswer,
    BadMessage,
    Bye,
    Entries,
    Head,
    Heads,
    Hello,
    IncompatibleVersion,
    Message,
    ProtocolViolation,
    Push,
    Unsolicited,
    Want,
)

from .conftest import CTX, T0, identity

# -- a pool of chains, signed once -----------------------------------------------------

AUTHORS = [identity(n) for n in range(20, 24)]
LENGTH = 12


@functools.cache
def pool() -> dict[Pseudonym, tuple[Entry, ...]]:
    out = {}
    for who in AUTHORS:
        chain = Chain(who.pseudonym)
        for i in range(LENGTH):
            chain.append_new(who, timestamp=T0 + i, body=Propose(
                counterparty=identity(1).pseudonym, context=CTX, terms=bytes([i]) * 32))
        out[who.pseudonym] = chain.entries
    return out


@functools.cache
def forked() -> tuple[tuple[Entry, ...], tuple[Entry, ...]]:
    """One author's two histories: the same entries 1..2, then different ones 3..5."""
    who = identity(30)
    a, b = Chain(who.pseudonym), Chain(who.pseudonym)
    for i in range(5):
        for chain, tag in ((a, 0), (b, 1 if i >= 2 else 0)):
            chain.append_new(who, timestamp=T0 + i, body=Propose(
                counterparty=identity(1).pseudonym, context=CTX, terms=bytes([i, tag]) * 16))
    return a.entries, b.entries


# -- an in-memory replica: the daemon's sync loop, minus I/O ----------------------------


class Replica:
    """Chains in memory, validated by the protocol core; implements LocalView."""

    def __init__(self, entries: Iterable[Entry] = ()) -> None:
        self.chains: dict[Pseudonym, Chain] = {}
        self.forks: set[bytes] = set()
        self.held = Reassembly()
        self.stored = 0  # entries stored from peers
        for e in entries:
            self.chains.setdefault(e.author, Chain(e.author)).append(e)

    def head(self, author: Pseudonym) -> tuple[int, bytes] | None:
        c = self.chains.get(author)
        return None if c is None or c.head is None else (len(c), c.head.id)

    def id_at(self, author: Pseudonym, seq: int) -> bytes:
        return self.chains[author][seq].id

    def heads(self) -> list[Head]:
        return [Head(author=a, seq=len(c), id=c[len(c)].id)
                for a, c in sorted(self.chains.items(), key=lambda kv: kv[0].key)]

    def heads_between(self, after: bytes | None, through: bytes | None) -> Iterable[Head]:
        return [h for h in self.heads() if (after is None or h.author.key > after)
                and (through is None or h.author.key <= through)]

    def seqs(self) -> dict[Pseudonym, int]:
        return {a: len(c) for a, c in self.chains.items()}

    def receive(self, e: Entry, sync: PeerSync) -> None:
        """wire.md 7.5: place a verified entry, store it, release what it unblocks."""
        where = place(e, self)
        if where is Placement.APPEND:
            self.chains.setdefault(e.author, Chain(e.author)).append(e)
            self.stored += 1
            for later in self.held.ready(e.author, len(self.chains[e.author])):
                self.receive(later, sync)
        elif where is Placement.AHEAD:
            head = self.head(e.author)
            held = self.held.hold(e, head_seq=0 if head is None else head[0])
            if held.conflict is not None:
                self.forks.add(ForkProof.from_entries(held.conflict, e).encode())
            sync.note(e.author, e.seq)
        elif where is Placement.FORK:
            self.forks.add(ForkProof.from_entries(self.chains[e.author][e.seq], e).encode())
        elif where is Placement.LINK_CONFLICT:
            sync.fetch(e.author, e.seq - 1)


@dataclass
class End:
    """One side of a session with a peer."""

    replica: Replica
    sync: PeerSync
    page_size: int = 3
    decoder: FrameDecoder = field(default_factory=FrameDecoder)
    guard: SessionGuard = field(default_factory=SessionGuard)
    outbox: list[bytes] = field(default_factory=list)
    received: int = 0  # entries received in Entries answers

    def send(self, *msgs: Message) -> None:
        self.outbox += [encode_frame(m) for m in msgs]

    def open(self) -> None:
        self.send(Hello())
        self.announce()

    def announce(self) -> None:
        self.send(*heads_pages(self.replica.heads(), page_size=self.page_size))

    def handle(self, frame: bytes) -> None:
        r, s = self.replica, self.sync
        for msg in self.decoder.feed(frame):
            self.guard.receive(msg)
            if isinstance(msg, Heads):
                self.send(*s.on_heads(msg, r).wants)
            elif isinstance(msg, Want):
                s.accept_want(msg)
                chain = r.chains.get(msg.author)
                have = 0 if chain is None else len(chain)
                raws = [chain[q].encode() for q in range(msg.first, min(msg.last, have) + 1)] \
                    if chain is not None else []
                self.send(Entries.answering(msg, raws))
                s.answered()
            elif isinstance(msg, Entries):
                s.on_entries(msg)
                decoded = [Entry.decode(raw) for raw in msg.entries]
                check_answer(msg, decoded)
                self.received += len(decoded)
                for e in decoded:
                    r.receive(e, s)
                self.send(*s.next_wants(r))
            elif isinstance(msg, Push):
                for raw in msg.entries:
                    r.receive(Entry.decode(raw), s)
                self.send(*s.next_wants(r))


def session(x: Replica, y: Replica, *, span: int = 4, outstanding: int = 2,
            page_size: int = 3) -> tuple[End, End]:
    """Run one anti-entropy session between two replicas until nothing is in flight."""
    a = End(x, PeerSync(max_span=span, max_outstanding=outstanding), page_size)
    b = End(y, PeerSync(max_span=span, max_outstanding=outstanding), page_size)
    a.open()
    b.open()
    for _ in range(10_000):
        if not a.outbox and not b.outbox:
            break
        for src, dst in ((a, b), (b, a)):
            frames, src.outbox = src.outbox, []
            for f in frames:
                dst.handle(f)
        assert len(a.sync.outstanding) <= outstanding and len(b.sync.outstanding) <= outstanding
    else:  # pragma: no cover
        raise AssertionError("the session did not settle")
    return a, b


def prefixes(draw: st.DrawFn) -> Replica:
    lengths = draw(st.lists(st.integers(0, LENGTH), min_size=len(AUTHORS),
                            max_size=len(AUTHORS)))
    return Replica(e for (_, chain), n in zip(pool().items(), lengths, strict=True)
                   for e in chain[:n])


# -- convergence ----------------------------------------------------------------------


@settings(max_examples=40, deadline=None)
@given(st.data())
def test_two_replicas_converge_and_fetch_only_what_is_missing(data: st.DataObject) -> None:
    x, y = prefixes(data.draw), prefixes(data.draw)
    span = data.draw(st.integers(1, 5))
    outstanding = data.draw(st.integers(1, 3))
    before_x, before_y = x.seqs(), y.seqs()
    a, b = session(x, y, span=span, outstanding=outstanding, page_size=data.draw(
        st.integers(1, 4)))
    want = {k: max(before_x.get(k, 0), before_y.get(k, 0)) for k in before_x | before_y}
    assert x.seqs() == y.seqs() == {k: v for k, v in want.items() if v}
    assert a.received == sum(v - before_x.get(k, 0) for k, v in want.items())
    assert b.received == sum(v - before_y.get(k, 0) for k, v in want.items())
    assert not x.forks and not y.forks and len(x.held) == 0
    assert a.sync.tracked() == b.sync.tracked() == 0  # nothing pending, nothing kept


@settings(max_examples=15, deadline=None)
@given(st.data())
def test_three_replicas_converge_across_a_partition(data: st.DataObject) -> None:
    """x and z never meet; y syncs with each in turn, and rounds repeat."""
    x, y, z = prefixes(data.draw), prefixes(data.draw), prefixes(data.draw)
    top = {k: max(r.seqs().get(k, 0) for r in (x, y, z)) for r in (x, y, z) for k in r.seqs()}
    session(x, y)
    session(y, z)
    session(x, y)
    assert x.seqs() == y.seqs() == z.seqs() == {k: v for k, v in top.items() if v}


def test_a_second_round_with_nothing_new_moves_no_entries() -> None:
    x = Replica(pool()[AUTHORS[0].pseudonym])
    y = Replica()
    session(x, y)
    a, b = session(x, y)
    assert a.received == b.received == 0


# -- forks (wire.md 7.5) ----------------------------------------------------------------


def test_a_fork_at_the_same_head_seq_is_found_from_heads() -> None:
    one, two = forked()
    x, y = Replica(one[:3]), Replica(two[:3])
    session(x, y)
    proof = ForkProof.from_entries(one[2], two[2]).encode()
    assert x.forks == y.forks == {proof}
    assert ForkProof.decode(proof).seq == 3


def test_a_fork_below_the_peers_head_is_found_through_the_broken_link() -> None:
    one, two = forked()
    x, y = Replica(one[:3]), Replica(two)  # y is ahead on the other history
    session(x, y)
    assert ForkProof.from_entries(one[2], two[2]).encode() in x.forks
    assert len(x.chains[one[0].author]) == 3  # x keeps its own copy


def test_place_reports_every_outcome() -> None:
    chain = pool()[AUTHORS[0].pseudonym]
    one, two = forked()
    r = Replica([*chain[:3], *one[:3]])
    assert place(chain[3], r) is Placement.APPEND
    assert place(chain[1], r) is Placement.DUPLICATE
    assert place(chain[2], r) is Placement.DUPLICATE
    assert place(chain[5], r) is Placement.AHEAD
    assert place(two[2], r) is Placement.FORK
    assert place(two[3], r) is Placement.LINK_CONFLICT
    assert place(pool()[AUTHORS[1].pseudonym][0], r) is Placement.APPEND
    assert place(pool()[AUTHORS[1].pseudonym][1], r) is Placement.AHEAD


# -- the planner's bounds (wire.md 7.3) ---------------------------------------------------

P = [Pseudonym(key=bytes([i]) * 32) for i in range(1, 5)]


def heads(*pairs: tuple[Pseudonym, int]) -> Heads:
    return Heads(heads=tuple(Head(author=a, seq=s, id=bytes(32)) for a, s in sorted(pairs)))


def answer(w: Want, n: int | None = None) -> Entries:
    return Entries.answering(w, [b"e"] * (w.span if n is None else n))


def test_wants_respect_span_and_outstanding_and_never_repeat_in_a_round() -> None:
    s, empty = PeerSync(), Replica()
    plan = s.on_heads(heads((P[0], 10_000)), empty)
    assert [(w.first, w.last) for w in plan.wants] == [
        (1 + 256 * i, 256 * (i + 1)) for i in range(MAX_OUTSTANDING_WANTS)]
    assert s.next_wants(empty) == ()  # every slot taken
    s.on_entries(answer(plan.wants[0]))
    (w,) = s.next_wants(empty)  # the slot freed, and the entries were not stored:
    assert w.first == 256 * MAX_OUTSTANDING_WANTS + 1  # nothing asked twice this round
    with pytest.raises(Unsolicited):
        s.on_entries(answer(plan.wants[0]))  # answered already
    with pytest.raises(Unsolicited):
        s.on_entries(answer(Want(author=P[1], first=1, last=1)))


def test_authors_take_turns_and_a_new_round_asks_again() -> None:
    s, empty = PeerSync(max_span=100, max_outstanding=4), Replica()
    plan = s.on_heads(heads((P[0], 1000), (P[1], 1000)), empty)
    assert [(w.author, w.first) for w in plan.wants] == [
        (P[0], 1), (P[1], 1), (P[0], 101), (P[1], 101)]
    for w in plan.wants:
        s.on_entries(answer(w))
    again = s.on_heads(heads((P[0], 1000)), empty)  # nothing was stored: start over
    assert again.wants[0] == Want(author=P[0], first=1, last=100)


def test_a_short_answer_means_the_peer_has_no_more() -> None:
    s, empty = PeerSync(max_span=10, max_outstanding=1), Replica()
    (w,) = s.on_heads(heads((P[0], 50)), empty).wants
    s.on_entries(answer(w, 4))
    assert s.peer_seq(P[0]) == 4
    assert s.next_wants(empty) == ()


def test_two_planners_sharing_claims_split_a_chain() -> None:
    # wire.md 7.3: a node SHOULD NOT ask two peers for the same range at once.
    claims, empty = WantClaims(), Replica()
    a = PeerSync(max_span=10, max_outstanding=2, claims=claims)
    b = PeerSync(max_span=10, max_outstanding=2, claims=claims)
    wa = a.on_heads(heads((P[0], 100)), empty).wants
    wb = b.on_heads(heads((P[0], 100)), empty).wants
    assert [(w.first, w.last) for w in wa] == [(1, 10), (11, 20)]
    assert [(w.first, w.last) for w in wb] == [(21, 30), (31, 40)]
    assert len(claims) == 4
    a.on_entries(answer(wa[0]))
    assert len(claims) == 3
    (w,) = a.next_wants(empty)  # after its own asks and b's claims
    assert (w.first, w.last) == (41, 50)


def test_a_session_that_ends_releases_its_claims_for_the_others() -> None:
    claims, empty = WantClaims(), Replica()
    a = PeerSync(max_span=10, max_outstanding=1, claims=claims)
    b = PeerSync(max_span=10, max_outstanding=1, claims=claims)
    (wa,) = a.on_heads(heads((P[0], 10)), empty).wants
    assert b.on_heads(heads((P[0], 10)), empty).wants == ()  # all of it is a's to answer
    a.release()  # a's session ended before its answer came
    assert len(claims) == 0 and a.outstanding == ()
    (wb,) = b.next_wants(empty)  # the deferred author is tried again
    assert wb == wa


def test_a_range_skipped_for_another_peer_is_asked_once_that_peer_is_gone() -> None:
    # a's peer was killed: its Want is never answered.  b planned around it; the
    # skipped range must not wait for b's next Heads round (tools/crash.py).
    claims, empty = WantClaims(), Replica()
    a = PeerSync(max_span=10, max_outstanding=1, claims=claims)
    b = PeerSync(max_span=10, max_outstanding=2, claims=claims)
    (wa,) = a.on_heads(heads((P[0], 25)), empty).wants
    wb = b.on_heads(heads((P[0], 25)), empty).wants
    assert [(w.first, w.last) for w in wb] == [(11, 20), (21, 25)]  # around a's 1..10
    assert b.next_wants(empty) == ()  # a still has it
    for w in wb:
        b.on_entries(answer(w))
    a.release()  # a's session ended unanswered
    assert b.next_wants(empty) == (wa,)
    b.on_entries(answer(wa))
    assert b.next_wants(empty) == () and b.tracked() <= 1


def test_claims_never_push_a_want_past_the_hold_window() -> None:
    claims, empty = WantClaims(), Replica()
    far = PeerSync(max_span=MAX_WANT_SPAN, claims=claims)
    near = PeerSync(max_span=MAX_WANT_SPAN, claims=claims)
    far.on_heads(heads((P[0], 10_000)), empty)  # 16 Wants: seqs 1..4096
    # Skipping past them would ask for entries too far ahead to be held (7.5).
    assert near.on_heads(heads((P[0], 10_000)), empty).wants == ()
    assert claims.first_free(P[0], 1, near) == MAX_OUTSTANDING_WANTS * MAX_WANT_SPAN + 1
    assert claims.first_free(P[0], 1, far) == 1  # its own claims do not block it


def test_follow_filter_pushes_fetch_and_abandon() -> None:
    s, empty = PeerSync(max_span=10, follow=lambda a: a != P[1]), Replica()
    plan = s.on_heads(heads((P[0], 5), (P[1], 5)), empty)
    assert {w.author for w in plan.wants} == {P[0]}
    s.note(P[2], 7)  # the peer pushed entry 7 of P[2]: fetch the gap
    assert s.next_wants(empty) == (Want(author=P[2], first=1, last=7),)
    s.fetch(P[3], 9)
    s.fetch(P[3], 9)  # queued once
    s.note(P[1], 3)
    assert s.next_wants(empty)[0] == Want(author=P[3], first=9, last=9)  # evidence first
    s.abandon(P[1])
    assert s.peer_seq(P[1]) == 0


def test_behind_lists_what_the_peer_lacks_in_the_page_interval() -> None:
    x = Replica([*pool()[AUTHORS[0].pseudonym][:5], *pool()[AUTHORS[1].pseudonym][:5]])
    mine = x.heads()
    s = PeerSync()
    page = Heads(heads=(Head(author=mine[0].author, seq=2, id=x.id_at(mine[0].author, 2)),))
    plan = s.on_heads(page, x)
    assert set(plan.behind) == {Behind(author=mine[0].author, theirs=2, ours=5),
                                Behind(author=mine[1].author, theirs=0, ours=5)}
    bounded = Heads(through=mine[0].author.key)  # says nothing about the second chain
    assert s.on_heads(bounded, x).behind == (Behind(author=mine[0].author, theirs=0, ours=5),)
    scoped = Heads(scope=P[0])  # a proof answer: not a statement about all chains
    assert s.on_heads(scoped, x).behind == ()


def test_responder_refuses_more_unanswered_wants_than_the_limit() -> None:
    s = PeerSync(max_outstanding=2)
    w = Want(author=P[0], first=1, last=1)
    s.accept_want(w)
    s.accept_want(w)
    with pytest.raises(ProtocolViolation):
        s.accept_want(w)
    s.answered()
    s.accept_want(w)
    s.answered()
    s.answered()
    with pytest.raises(LocalProtocolError):
        s.answered()


def test_expect_takes_a_slot() -> None:
    s = PeerSync(max_outstanding=1)
    s.expect(Want(author=P[0], first=1, last=1))
    with pytest.raises(LocalProtocolError):
        s.expect(Want(author=P[0], first=2, last=2))
    with pytest.raises(LocalProtocolError):
        PeerSync(max_span=257)


def test_heads_pages_cover_the_whole_key_space_once() -> None:
    hs = [Head(author=p, seq=1, id=bytes(32)) for p in P]
    pages = list(heads_pages(hs, page_size=3))
    assert [(p.after, p.through, len(p.heads)) for p in pages] == [
        (None, P[2].key, 3), (P[2].key, None, 1)]
    assert list(heads_pages([], scope=P[0])) == [Heads(scope=P[0])]
    assert len(list(heads_pages(hs, page_size=4))) == 1
    with pytest.raises(LocalProtocolError):
        list(heads_pages(hs, page_size=0))
    with pytest.raises(LocalProtocolError):  # unsorted input
        list(heads_pages(hs[::-1], page_size=4))


def test_check_answer() -> None:
    chain = pool()[AUTHORS[0].pseudonym]
    msg = Entries(author=chain[0].author, first=2, last=3,
                  entries=(chain[1].encode(), chain[2].encode()))
    check_answer(msg, chain[1:3])
    with pytest.raises(BadAnswer, match="seq"):
        check_answer(msg, chain[0:1])
    with pytest.raises(BadAnswer, match="entry by"):
        check_answer(msg, pool()[AUTHORS[1].pseudonym][1:2])
    with pytest.raises(LocalProtocolError):
        check_answer(msg, chain[1:4])


# -- reassembly (wire.md 7.5) ----------------------------------------------------------


def test_out_of_order_entries_are_released_in_order() -> None:
    chain = pool()[AUTHORS[0].pseudonym]
    r, s = Replica(), PeerSync()
    for e in reversed(chain):
        r.receive(e, s)
    assert len(r.chains[chain[0].author]) == LENGTH and len(r.held) == 0 and r.held.nbytes == 0


def test_reassembly_bound_per_author_drops_the_farthest() -> None:
    chain = pool()[AUTHORS[0].pseudonym]
    r = Reassembly(max_per_author=3)
    for e in chain[2:5]:
        assert r.hold(e, head_seq=0).dropped == ()
    assert r.hold(chain[5], head_seq=0).dropped == (chain[5],)  # itself the farthest
    assert r.hold(chain[1], head_seq=0).dropped == (chain[4],)
    assert r.held(chain[0].author) == 3
    assert r.ready(chain[0].author, 0) == []  # seq 2 waits for seq 1
    assert [e.seq for e in r.ready(chain[0].author, 1)] == [2]
    assert [e.seq for e in r.ready(chain[0].author, 3)] == [3, 4]  # 3 passed already, 4 next
    assert len(r) == 0


def test_reassembly_bounds_in_total_drop_the_oldest() -> None:
    c0, c1 = pool()[AUTHORS[0].pseudonym], pool()[AUTHORS[1].pseudonym]
    r = Reassembly(max_entries=3)
    for e in (c0[4], c1[4], c0[5]):
        r.hold(e, head_seq=0)
    assert r.hold(c1[5], head_seq=0).dropped == (c0[4],)
    size = encoded_size(c0[4])
    r = Reassembly(max_bytes=2 * size + size // 2)
    r.hold(c0[4], head_seq=0)
    r.hold(c0[5], head_seq=0)
    assert r.hold(c1[4], head_seq=0).dropped == (c0[4],)
    assert r.nbytes <= 2 * size + size // 2


def test_reassembly_window_duplicates_and_conflicts() -> None:
    chain = pool()[AUTHORS[0].pseudonym]
    one, two = forked()
    r = Reassembly(window=4)
    assert r.hold(chain[5], head_seq=1).dropped == (chain[5],)  # seq 6 > 1 + 4
    assert r.hold(chain[4], head_seq=1).dropped == ()
    assert r.hold(chain[4], head_seq=1) == r.hold(chain[4], head_seq=1)  # a duplicate: kept once
    assert len(r) == 1
    r.hold(one[3], head_seq=1)
    held = r.hold(two[3], head_seq=1)
    assert held.conflict == one[3]
    ForkProof.from_entries(held.conflict, two[3])  # a valid fork proof
    with pytest.raises(LocalProtocolError):
        r.hold(chain[2], head_seq=2)  # not ahead: place() said APPEND
    with pytest.raises(LocalProtocolError):
        Reassembly(max_bytes=0)


def test_encoded_size_is_exact() -> None:
    for chain in pool().values():
        for e in chain[:2]:
            assert encoded_size(e) == len(e.encode())
    tiny = Entry(version=1, author=P[0], seq=1, prev=GENESIS_PREV, timestamp=0,
                 body=chain[0].body, signature=bytes(64), payload=b"\x80")
    assert encoded_size(tiny) == len(tiny.encode())


# -- gossip (wire.md 8) --------------------------------------------------------------


def test_peek_id_reads_the_id_without_verifying() -> None:
    for chain in pool().values():
        for e in chain:
            assert peek_id(e.encode()) == e.id
    raw = pool()[AUTHORS[0].pseudonym][0].encode()
    bad_sig = raw[:-1] + bytes([raw[-1] ^ 1])
    assert peek_id(bad_sig) == pool()[AUTHORS[0].pseudonym][0].id  # same payload, same id
    for junk in (b"", b"\x82", raw[:-1], raw + b"\x00", b"\x9f" + raw[1:] + b"\xff",
                 raw[:1] + b"\x59\x00" + raw[2:3] + raw[3:], bytes(2000)):
        assert peek_id(junk) is None


@given(st.binary(max_size=300))
def test_peek_id_agrees_with_decoding(junk: bytes) -> None:
    """Whenever an envelope decodes (signature aside), peek_id gives its id."""
    got = peek_id(junk)
    try:
        entry = Entry.decode(junk)
    except VerificationError:
        return
    assert got == entry.id


def test_peek_id_on_mutations_of_real_entries() -> None:
    raw = pool()[AUTHORS[1].pseudonym][3].encode()
    for i in range(len(raw)):
        for delta in (1, 0x40):
            b = bytearray(raw)
            b[i] ^= delta
            try:
                e = Entry._parse(bytes(b))  # envelope and payload, signature aside
            except VerificationError:
                continue
            assert peek_id(bytes(b)) == e.id


def test_seen_set_is_bounded_and_remembers_the_recent_half() -> None:
    seen = SeenSet(10)
    ids = [i.to_bytes(32, "big") for i in range(100)]
    assert all(seen.add(k) for k in ids)
    assert len(seen) <= 10
    assert all(k in seen for k in ids[-5:])
    assert ids[0] not in seen
    assert not seen.add(ids[-1])
    with pytest.raises(LocalProtocolError):
        SeenSet(1)


def test_seen_set_keeps_ids_that_keep_coming() -> None:
    seen = SeenSet(4)
    hot = b"h" * 32
    seen.add(hot)
    for i in range(50):
        seen.add(i.to_bytes(32, "big"))
        assert not seen.add(hot)  # refreshed on every sighting: never forgotten
        assert len(seen) <= 4


def test_push_targets_exclude_the_source_and_bound_the_fan_out() -> None:
    peers = list(range(20))
    got = push_targets(peers, source=3, rng=Random(1), fanout=8)
    assert len(got) == 8 and 3 not in got and len(set(got)) == 8
    assert push_targets(peers, source=3, rng=Random(1), fanout=8) == got  # seeded
    assert push_targets([1, 2, 3], source=2, rng=Random(1)) == [1, 3]


def test_gossip_mesh_forwards_each_entry_once_per_peer() -> None:
    """Five nodes, all connected; forward on first sight only, to at most 2 others."""
    rng = Random(7)
    nodes = list(range(5))
    seen = [SeenSet(64) for _ in nodes]
    sent: list[tuple[int, int, bytes]] = []
    entries = pool()[AUTHORS[0].pseudonym]
    queue: list[tuple[int | None, int, bytes]] = [(None, 0, e.id) for e in entries]
    while queue:
        src, at, eid = queue.pop()
        if not seen[at].add(eid):
            continue
        for dst in push_targets([n for n in nodes if n != at], source=src, rng=rng, fanout=2):
            sent.append((at, dst, eid))
            queue.append((at, dst, eid))
    pairs = [(a, b, e) for a, b, e in sent]
    assert len(pairs) == len(set(pairs))  # each entry crosses each link direction at most once
    assert len(sent) <= len(nodes) * 2 * len(entries)
    assert all(src != dst for src, dst, _ in sent)


# -- rates and penalties (wire.md 10) -------------------------------------------------

T = 1000.0  # an arbitrary clock reading: every time below is relative to it


def test_token_bucket_with_explicit_times() -> None:
    b = TokenBucket(rate=10, burst=5, now=T)
    assert all(b.take(1, T) for _ in range(5))
    assert not b.take(1, T)
    assert b.take(1, T + 0.1)  # 0.1 s at 10/s refills one token
    assert not b.take(1, T + 0.1)
    assert b.available(T + 100) == 5  # never more than the burst
    assert not b.take(6, T + 100)  # more than the burst never passes
    assert b.available(T + 50) == 5  # a clock that goes back adds nothing
    with pytest.raises(LocalProtocolError):
        TokenBucket(rate=0, burst=1, now=T)


def test_rate_limiter_charges_messages_and_bytes_together() -> None:
    lim = RateLimiter(now=T, message_rate=1, message_burst=3, byte_rate=1000,
                      byte_burst=MAX_FRAME_SIZE + 4)
    assert lim.admit(MAX_FRAME_SIZE + 4, T)  # one largest frame always fits the burst
    assert not lim.admit(10, T)  # bytes exhausted: refused, and no message token spent
    assert all(lim.admit(10, T + 1) for _ in range(3))  # 2 left, +1 refilled, burst 3
    assert not lim.admit(10, T + 1)  # messages exhausted, bytes not
    with pytest.raises(LocalProtocolError):
        RateLimiter(now=T, byte_burst=1000)


def test_penalties_reach_the_threshold_and_decay() -> None:
    p = PenaltyScore()
    assert not any(p.charge(Offence.INVALID, T) for _ in range(3))
    assert p.charge(Offence.INVALID, T)  # 4 x 25 = 100
    q = PenaltyScore(decay=0.1)
    for i in range(3):
        assert not q.charge(Offence.INVALID, T + i * 250)  # 25 points forgiven in 250 s
    assert q.value(T + 1000) == pytest.approx(0.0)
    assert PenaltyScore().charge(Offence.MALFORMED, T)
    assert Offence.RATE.points == 5
    # Offences milliseconds apart still reach the threshold exactly: points are
    # forgiven whole, one per 10 s (wire.md 10.2).
    r = PenaltyScore()
    assert not any(r.charge(Offence.INVALID, T + i * 0.003) for i in range(3))
    assert r.charge(Offence.INVALID, T + 0.01)
    s = PenaltyScore()
    s.charge(Offence.RATE, T)
    assert s.value(T + 9.9) == 5 and s.value(T + 10) == 4 and s.value(T + 25) == 3
    with pytest.raises(LocalProtocolError):
        PenaltyScore(threshold=0)


@pytest.mark.parametrize(("exc", "offence"), [
    (BadMessage("x"), Offence.MALFORMED),
    (ProtocolViolation("x"), Offence.PROTOCOL),
    (Unsolicited("x"), Offence.UNSOLICITED),
    (BadAnswer("x"), Offence.BAD_ANSWER),
    (BadSignature("x"), Offence.INVALID),
    (SeqGap("x"), Offence.INVALID),
    (InvalidFork("x"), Offence.INVALID),
    (FutureTimestamp("x"), None),
    (IncompatibleVersion("x"), None),
])
def test_offence_for(exc: VerificationError, offence: Offence | None) -> None:
    assert offence_for(exc) is offence


def test_a_peer_sending_garbage_is_dropped_at_once() -> None:
    """The daemon's path for a decoding error: offence, drop, Bye with the code."""
    d = FrameDecoder()
    with pytest.raises(BadMessage) as info:
        d.feed(b"\x00\x00\x00\x06" + b"\x85\x01\x80\x80\xf6\x60")  # hello, no versions
    offence = offence_for(info.value)
    assert offence is Offence.MALFORMED
    assert PenaltyScore().charge(offence, T)
    assert Bye.for_error(info.value).code == "bad-message"
