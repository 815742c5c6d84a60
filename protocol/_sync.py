"""Sans-IO synchronisation between nodes (spec/wire.md sections 7-10).

The daemon owns the store, the sockets and the clock; this module owns the
decisions.  It reads the store only through a :class:`LocalView` the daemon
passes in, takes time as an argument, and returns what to send.

* :class:`PeerSync` -- anti-entropy with one peer: from its Heads, the Wants to
  send (bounded span, bounded number in flight), the chains it lacks, and the
  heads that disagree with ours (fork suspicions).
* :class:`WantClaims` -- the ranges in flight to any peer, so that the planners
  of several peers split a chain between them instead of each fetching all of
  it (wire.md 7.3).
* :func:`place` -- where a verified entry goes: append, duplicate, hold, fork.
* :class:`Reassembly` -- entries that arrived ahead of a gap, bounded per author
  and in total, released in order.
* :class:`SeenSet`, :func:`push_targets` -- gossip duplicate suppression and
  bounded fan-out.

Per-peer rates and penalties are in ``_ratelimit.py``.
"""

from __future__ import annotations

import enum
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from random import Random
from typing import Final, Protocol, TypeVar

from ._constants import GENESIS_PREV, MAX_ENTRY_SIZE, SIGNATURE_SIZE
from ._entry import Entry, _envelope_head, entry_id
from ._errors import LocalProtocolError
from ._identity import Pseudonym
from ._wire import (
    MAX_HEADS,
    MAX_WANT_SPAN,
    BadAnswer,
    Entries,
    Head,
    Heads,
    ProtocolViolation,
    Unsolicited,
    Want,
)

__all__ = [
    "Behind",
    "Held",
    "LocalView",
    "PeerSync",
    "Placement",
    "Plan",
    "Reassembly",
    "SeenSet",
    "WantClaims",
    "check_answer",
    "encoded_size",
    "heads_pages",
    "is_news",
    "peek_id",
    "place",
    "push_targets",
]

# -- Limits and defaults (wire.md 5) --------------------------------------------------
MAX_OUTSTANDING_WANTS: Final = 16
"""Unanswered Wants per peer and direction."""
MAX_HELD_PER_AUTHOR: Final = 1024
MAX_HELD_ENTRIES: Final = 8192
MAX_HELD_BYTES: Final = 4 * 1024 * 1024
HOLD_WINDOW: Final = 1024
"""An entry more than this many seqs past our head is not held at all."""
SEEN_CAPACITY: Final = 65536
MAX_TRACKED_AUTHORS: Final = 4 * MAX_HEADS
"""Authors one peer's sync planner keeps state for (wire.md 12: per-peer state is
bounded).  Heads of further authors are skipped; a later round lists them again."""
GOSSIP_FANOUT: Final = 8
PUSH_HORIZON: Final = 600
"""Seconds: an entry older than this is not news, and is not pushed (wire.md 8.1)."""
ANTI_ENTROPY_INTERVAL: Final = 60.0
PEX_INTERVAL: Final = 300.0


class LocalView(Protocol):
    """What the planner may read of the local store (the daemon implements it)."""

    def head(self, author: Pseudonym) -> tuple[int, bytes] | None:
        """(seq, id) of our last entry of ``author``'s chain, None if we hold none."""

    def id_at(self, author: Pseudonym, seq: int) -> bytes:
        """The id of our entry ``seq`` of ``author`` (1 <= seq <= our head seq)."""

    def heads_between(self, after: bytes | None, through: bytes | None) -> Iterable[Head]:
        """Our heads with author key in (after, through], None bounds open."""


def heads_pages(
    heads: Iterable[Head], *, scope: Pseudonym | None = None, page_size: int = MAX_HEADS
) -> Iterator[Heads]:
    """Cut heads, sorted by author key, into Heads messages covering all keys (7.2).

    Each page claims the interval after the previous page's last author
    through its own last author; the final page runs to the end of the key
    space.  No heads at all is one empty page, "I hold nothing".
    """
    if not 1 <= page_size <= MAX_HEADS:
        raise LocalProtocolError(f"page_size must be in 1..{MAX_HEADS}")
    page: list[Head] = []
    after: bytes | None = None
    for h in heads:
        if len(page) == page_size:
            through = page[-1].author.key
            yield Heads(scope=scope, after=after, through=through, heads=tuple(page))
            after, page = through, []
        page.append(h)
    yield Heads(scope=scope, after=after, through=None, heads=tuple(page))


# -- Placing a received entry (wire.md 7.5) -------------------------------------------


class Placement(enum.Enum):
    APPEND = "append"
    """The next entry of our chain copy: run the chain rules, then store it."""
    DUPLICATE = "duplicate"
    """We hold this very entry."""
    AHEAD = "ahead"
    """Beyond our head + 1: hold it (:class:`Reassembly`) and fetch the gap."""
    FORK = "fork"
    """We hold a different entry at this seq: the two are a fork proof."""
    LINK_CONFLICT = "link-conflict"
    """The next seq, but ``prev`` is not our head: the sender's entry at our head's
    seq differs from ours.  Fetch it; the two are a fork proof."""


def place(entry: Entry, view: LocalView) -> Placement:
    """Where a verified entry (shinyo.md 6.4 passed) goes, given our copy of its chain."""
    head = view.head(entry.author)
    have = 0 if head is None else head[0]
    if entry.seq == have + 1:
        expected = GENESIS_PREV if head is None else head[1]
        return Placement.APPEND if entry.prev == expected else Placement.LINK_CONFLICT
    if entry.seq > have + 1:
        return Placement.AHEAD
    assert head is not None
    ours = head[1] if entry.seq == have else view.id_at(entry.author, entry.seq)
    return Placement.DUPLICATE if ours == entry.id else Placement.FORK


def check_answer(msg: Entries, entries: Sequence[Entry], *, start: int = 0) -> None:
    """Check decoded ``entries`` (``msg.entries[start:]`` or a prefix of it, in
    order) are the ones asked for: ``msg.author``'s, at seqs first, first + 1,
    ... (7.4)."""
    if start < 0 or start + len(entries) > len(msg.entries):
        raise LocalProtocolError("more decoded entries than the message holds")
    for i, e in enumerate(entries, start):
        if e.author != msg.author:
            raise BadAnswer(f"answer for {msg.author.short()} holds an entry by {e.author.short()}")
        if e.seq != msg.first + i:
            raise BadAnswer(f"answer entry {i} has seq {e.seq}, expected {msg.first + i}")


def peek_id(raw: bytes) -> bytes | None:
    """The entry id of an encoded entry, from its envelope alone (no signature
    check); None if ``raw`` is not a canonical envelope (shinyo.md 6.1).  For the
    seen-set check before verifying (wire.md 8.2): only verified ids are *added*."""
    if type(raw) is not bytes or len(raw) > MAX_ENTRY_SIZE:
        return None
    for head_len in (2, 3, 4):  # 0x82, then a 1-, 2- or 3-byte bstr head
        n = len(raw) - head_len - 2 - SIGNATURE_SIZE
        if n >= 0 and len(head := _envelope_head(n)) == head_len and raw.startswith(head) \
                and raw[head_len + n : head_len + n + 2] == b"\x58\x40":
            return entry_id(raw[head_len : head_len + n])
    return None


def encoded_size(entry: Entry) -> int:
    """Length of ``entry.encode()``, without encoding it (shinyo.md 6.1)."""
    n = len(entry.payload)
    return (2 if n < 24 else 3 if n < 256 else 4) + n + 2 + len(entry.signature)


# -- Anti-entropy planning (wire.md 7.2-7.4) --------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class Behind:
    """A chain of ours the peer lacks (``theirs`` = 0) or holds a shorter copy of."""

    author: Pseudonym
    theirs: int
    ours: int


@dataclass(frozen=True, slots=True, kw_only=True)
class Plan:
    """What to do after a Heads message."""

    wants: tuple[Want, ...]
    """Send these now."""
    behind: tuple[Behind, ...]
    """The peer will want these from us (it pulls; we MAY push recent ones)."""
    suspects: tuple[Head, ...]
    """Peer heads that disagree with our entry at their seq; ``wants`` fetches each."""


class WantClaims:
    """Wants in flight to all peers, by author (wire.md 7.3: a node SHOULD NOT ask
    two peers for the same range at the same time).

    Each :class:`PeerSync` given the same registry plans around the ranges the
    others have out: it starts its Want after any range another peer is
    answering.  A range is released when its answer arrives or its session
    ends.  Size: at most ``MAX_OUTSTANDING_WANTS`` per peer.
    """

    def __init__(self) -> None:
        self._out: dict[Pseudonym, dict[Want, object]] = {}

    def __len__(self) -> int:
        return sum(len(ws) for ws in self._out.values())

    def claim(self, want: Want, owner: object) -> None:
        self._out.setdefault(want.author, {})[want] = owner

    def release(self, want: Want, owner: object) -> None:
        ws = self._out.get(want.author)
        if ws is not None and ws.get(want) is owner:
            del ws[want]
            if not ws:
                del self._out[want.author]

    def claim_at(self, author: Pseudonym, seq: int) -> tuple[Want, object] | None:
        """The range in flight (and its owner) that holds ``seq``, if any."""
        for w, who in self._out.get(author, {}).items():
            if w.first <= seq <= w.last:
                return w, who
        return None

    def next_start(self, author: Pseudonym, after: int) -> int | None:
        """The lowest first seq above ``after`` of any range in flight."""
        return min((w.first for w in self._out.get(author, {}) if w.first > after), default=None)

    def first_free(self, author: Pseudonym, first: int, owner: object) -> int:
        """The first seq at or after ``first`` that no other owner has asked for."""
        ws = self._out.get(author)
        if not ws:
            return first
        moved = True
        while moved:
            moved = False
            for w, who in ws.items():
                if who is not owner and w.first <= first <= w.last:
                    first, moved = w.last + 1, True
        return first


class PeerSync:
    """Anti-entropy state for one peer, both directions (wire.md 7).

    As requester: :meth:`on_heads` records the peer's heads and plans Wants;
    :meth:`on_entries` matches an answer to its Want; after storing what the
    answer held, call :meth:`next_wants` to fill the freed slots.  Never more
    than ``max_outstanding`` Wants are in flight, none spans more than
    ``max_span`` seqs, and within one round (between two Heads for an author)
    no seq is asked twice.  Only authors with work pending are remembered.

    As responder: :meth:`accept_want` / :meth:`answered` count the peer's
    unanswered Wants and refuse more than ``max_outstanding``.

    With ``claims`` shared between the planners of all peers, a range another
    peer is answering is skipped: the next Want starts after it.  If that
    answer falls short, the rest is fetched in a later round; if it never comes
    (that peer's session ended, or its Want expired), the skipped range is a
    *hole* this planner asks for as soon as no one has it in flight.  Call
    :meth:`release` when the session ends.
    """

    def __init__(
        self,
        *,
        max_span: int = MAX_WANT_SPAN,
        max_outstanding: int = MAX_OUTSTANDING_WANTS,
        follow: Callable[[Pseudonym], bool] | None = None,
        claims: WantClaims | None = None,
        max_tracked: int = MAX_TRACKED_AUTHORS,
    ) -> None:
        if not 1 <= max_span <= MAX_WANT_SPAN or max_outstanding < 1 or max_tracked < 1:
            raise LocalProtocolError(
                f"max_span must be in 1..{MAX_WANT_SPAN}, max_outstanding and max_tracked "
                "at least 1")
        self._span = max_span
        self._max = max_outstanding
        self._max_tracked = max_tracked
        self._follow = follow
        self._claims = claims
        self._peer: dict[Pseudonym, int] = {}  # the seq the peer holds, as far as we know
        self._asked: dict[Pseudonym, int] = {}  # highest seq asked in this round
        self._needy: dict[Pseudonym, None] = {}  # authors that may need Wants, round-robin
        self._urgent: deque[Want] = deque()  # single-entry fetches for fork evidence
        self._out: dict[Want, None] = {}  # in flight, in order sent
        self._answered: set[Pseudonym] = set()  # to settle once their entries are stored
        self._late: dict[Want, None] = {}  # expired, still taken if answered (oldest first)
        self._holes: dict[Pseudonym, tuple[int, int]] = {}  # skipped for others' claims
        self._incoming = 0

    @property
    def outstanding(self) -> tuple[Want, ...]:
        return tuple(self._out)

    def tracked(self) -> int:
        """Authors this planner holds state for (memory follows pending work)."""
        return len(self._peer.keys() | self._asked.keys() | self._needy.keys()
                   | self._holes.keys())

    def peer_seq(self, author: Pseudonym) -> int:
        """How far the peer holds ``author``'s chain beyond our copy, as far as we
        know; 0 when there is nothing to fetch from it.  Only authors with work
        pending are remembered, so memory follows the work, not the peer's chains."""
        return self._peer.get(author, 0)

    def on_heads(self, msg: Heads, view: LocalView) -> Plan:
        """Compare a Heads page with our chains; start a new round for its authors."""
        behind: list[Behind] = []
        suspects: list[Head] = []
        for h in msg.heads:
            a = h.author
            if msg.scope is None and self._follow is not None and not self._follow(a):
                continue
            head = view.head(a)
            have = 0 if head is None else head[0]
            if h.seq > have:
                if self._full(a):
                    continue  # listed again next round, when earlier authors are done
                self._peer[a] = h.seq
                self._asked[a] = max((w.last for w in self._out if w.author == a), default=0)
                self._needy[a] = None
                continue
            self._needy.pop(a, None)  # a new round, and nothing to fetch in it
            self._peer.pop(a, None)
            if not any(w.author == a for w in self._out):
                self._asked.pop(a, None)
            if view.id_at(a, h.seq) != h.id:
                suspects.append(h)
                self.fetch(a, h.seq)
            elif h.seq < have:
                behind.append(Behind(author=a, theirs=h.seq, ours=have))
        if msg.scope is None:
            listed = {h.author for h in msg.heads}
            for ours in view.heads_between(msg.after, msg.through):
                if ours.author not in listed:
                    behind.append(Behind(author=ours.author, theirs=0, ours=ours.seq))
        return Plan(wants=self.next_wants(view), behind=tuple(behind), suspects=tuple(suspects))

    def _settle(self, author: Pseudonym, have: int) -> None:
        """Forget ``author`` once nothing is pending: no Want out, and our copy has
        reached every seq asked this round (else forgetting would let a push make
        us ask again for entries we were sent but could not store)."""
        if not any(w.author == author for w in self._out) and have >= self._asked.get(author, 0):
            self._peer.pop(author, None)
            self._asked.pop(author, None)

    def _full(self, author: Pseudonym) -> bool:
        """No room for state about one more author (``max_tracked``)."""
        return author not in self._peer and author not in self._asked and (
            max(len(self._peer), len(self._asked)) >= self._max_tracked)

    def note(self, author: Pseudonym, seq: int) -> None:
        """The peer showed it holds ``author``'s entry ``seq`` (it pushed it)."""
        if seq > self._peer.get(author, 0) and not self._full(author):
            self._peer[author] = seq
            self._needy[author] = None

    def fetch(self, author: Pseudonym, seq: int) -> None:
        """Queue a Want for the peer's entry ``seq`` alone: fork evidence (7.5)."""
        w = Want(author=author, first=seq, last=seq)
        if len(self._urgent) < self._max_tracked and w not in self._out and w not in self._urgent:
            self._urgent.append(w)

    def expect(self, want: Want) -> None:
        """Record a Want sent outside the planner; it takes a slot like the others."""
        if len(self._out) >= self._max:
            raise LocalProtocolError(f"already {self._max} wants in flight to this peer")
        self._send(want)

    def _send(self, want: Want) -> None:
        self._out[want] = None
        if self._claims is not None:
            self._claims.claim(want, self)

    def release(self) -> None:
        """The session ended: give up every claim (its Wants will not be answered)."""
        if self._claims is not None:
            for w in self._out:
                self._claims.release(w, self)
        self._out.clear()

    def expire(self, wants: Iterable[Want]) -> list[Want]:
        """Give up on those of ``wants`` still unanswered (the caller's timeout):
        their ranges are released, so other peers' planners may ask for them,
        and their authors are not asked of this peer again before its next
        Heads.  A late answer is still taken, not unsolicited.  Returns the
        Wants given up.  Without a timeout a peer that never answers would keep
        its ranges claimed for as long as its session lasts (wire.md 7.3)."""
        gone = [w for w in wants if w in self._out]
        for w in gone:
            del self._out[w]
            if self._claims is not None:
                self._claims.release(w, self)
            self._late[w] = None
            self.abandon(w.author)
        while len(self._late) > self._max:  # what a peer may still be answering
            del self._late[next(iter(self._late))]
        return gone

    def abandon(self, author: Pseudonym) -> None:
        """Ask the peer nothing more about ``author`` until its next Heads (e.g. it
        sent an invalid entry of that chain)."""
        self._needy.pop(author, None)
        self._peer.pop(author, None)

    def next_wants(self, view: LocalView) -> tuple[Want, ...]:
        """Wants to send now, as slots are free: fork evidence first, then ranges,
        one per author in turn."""
        for a in self._answered:
            if a not in self._needy:
                head = view.head(a)
                self._settle(a, 0 if head is None else head[0])
        self._answered.clear()
        out: list[Want] = []
        while len(self._out) < self._max and self._urgent:
            w = self._urgent.popleft()
            self._send(w)
            out.append(w)
        for a in list(self._holes):
            if len(self._out) >= self._max:
                break
            hole = self._fill(a, view)
            if hole is not None:
                self._send(hole)
                out.append(hole)
        deferred: list[Pseudonym] = []
        while len(self._out) < self._max and self._needy:
            a = next(iter(self._needy))
            del self._needy[a]
            head = view.head(a)
            have = 0 if head is None else head[0]
            first = max(have, self._asked.get(a, 0)) + 1
            peer = self._peer.get(a, 0)
            if first > peer:
                self._settle(a, have)
                continue
            if self._claims is not None:
                free = self._claims.first_free(a, first, self)
                # Other peers are fetching the rest, or what is left lies too far
                # ahead to be held (7.5): ask again later (their answer may fall short).
                if free != first and (free > peer or free + self._span - 1 > have + HOLD_WINDOW):
                    deferred.append(a)
                    continue
                if free != first:  # [first, free) is other peers' to answer
                    lo, hi = self._holes.get(a, (first, free - 1))
                    self._holes[a] = (min(lo, first), max(hi, free - 1))
                first = free
            w = Want(author=a, first=first, last=min(peer, first + self._span - 1))
            self._asked[a] = w.last
            self._send(w)
            out.append(w)
            if w.last < peer:
                self._needy[a] = None  # to the back of the queue
        for a in deferred:
            self._needy[a] = None
        return tuple(out)

    def _fill(self, author: Pseudonym, view: LocalView) -> Want | None:
        """A Want for the start of ``author``'s hole once no other peer has it in
        flight (their session ended or their Want expired unanswered); None while
        one does, or once the hole is filled."""
        lo, hi = self._holes[author]
        head = view.head(author)
        lo = max(lo, (0 if head is None else head[0]) + 1)
        assert self._claims is not None  # holes come only from claims
        while lo <= hi and (held := self._claims.claim_at(author, lo)) is not None:
            want, owner = held
            if owner is not self:
                self._holes[author] = (lo, hi)
                return None  # still another peer's to answer
            lo = want.last + 1  # our own Want covers it
        if lo > hi:
            del self._holes[author]
            return None
        if author not in self._peer:
            self._holes[author] = (lo, hi)
            return None  # abandoned until the peer's next Heads
        nxt = self._claims.next_start(author, lo)
        last = min(hi, lo + self._span - 1, self._peer[author], hi if nxt is None else nxt - 1)
        if last < hi:
            self._holes[author] = (last + 1, hi)
        else:
            del self._holes[author]
        return Want(author=author, first=lo, last=last)

    def expects(self, msg: Entries) -> bool:
        """Whether :meth:`on_entries` would take ``msg`` now; changes nothing (a
        node may skip the work on an answer that will be refused)."""
        return msg.want in self._out or msg.want in self._late

    def on_entries(self, msg: Entries) -> None:
        """Match an answer to its Want (raise :class:`Unsolicited` if none); a short
        answer means the peer holds no more of that chain."""
        w = msg.want
        if w not in self._out and w in self._late:
            del self._late[w]
            self._answered.add(w.author)
            return
        if w not in self._out:
            raise Unsolicited(
                f"entries {w.first}..{w.last} of {w.author.short()} were not asked for")
        del self._out[w]
        if self._claims is not None:
            self._claims.release(w, self)
        self._answered.add(w.author)
        if len(msg.entries) < w.span:
            held = w.first + len(msg.entries) - 1
            if w.author in self._peer:
                self._peer[w.author] = min(self._peer[w.author], held)
            # Nothing beyond ``held`` was there to ask for: once our copy reaches
            # it, _settle forgets the author (a peer that claims heads it does
            # not hold leaves no state behind).
            if self._asked.get(w.author, 0) > held:
                self._asked[w.author] = held

    def accept_want(self, want: Want) -> None:
        """Count a Want received from the peer; raise if it has too many unanswered."""
        if self._incoming >= self._max:
            raise ProtocolViolation(f"more than {self._max} unanswered wants")
        self._incoming += 1

    def answered(self) -> None:
        """We sent the answer to one of the peer's Wants."""
        if self._incoming == 0:
            raise LocalProtocolError("answered() without an accepted want")
        self._incoming -= 1


# -- Out-of-order entries (wire.md 7.5) ---------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class Held:
    """The outcome of :meth:`Reassembly.hold`."""

    dropped: tuple[Entry, ...] = ()
    """Entries evicted to keep the bounds (may be the one offered)."""
    conflict: Entry | None = None
    """An entry already held at the same author and seq with another id: with the
    one offered, a fork proof.  The offered entry is not held."""


class Reassembly:
    """Entries received ahead of a gap in our copy of their chain.

    Bounded three ways: per author, entries in total and bytes in total; and an
    entry more than ``window`` seqs past our head is refused.  On overflow the
    author's farthest entry goes first (it waits longest), then the oldest held
    entry overall.  Every eviction is reported; anti-entropy fetches it again.
    """

    def __init__(
        self,
        *,
        max_per_author: int = MAX_HELD_PER_AUTHOR,
        max_entries: int = MAX_HELD_ENTRIES,
        max_bytes: int = MAX_HELD_BYTES,
        window: int = HOLD_WINDOW,
    ) -> None:
        if min(max_per_author, max_entries, max_bytes, window) < 1:
            raise LocalProtocolError("reassembly bounds must be positive")
        self._per_author = max_per_author
        self._max_entries = max_entries
        self._max_bytes = max_bytes
        self._window = window
        self._by_author: dict[Pseudonym, dict[int, Entry]] = {}
        self._order: OrderedDict[tuple[Pseudonym, int], int] = OrderedDict()  # -> size
        self._bytes = 0

    def __len__(self) -> int:
        return len(self._order)

    @property
    def nbytes(self) -> int:
        return self._bytes

    def held(self, author: Pseudonym) -> int:
        return len(self._by_author.get(author, ()))

    def hold(self, entry: Entry, *, head_seq: int) -> Held:
        """Keep ``entry`` (placed AHEAD of our head ``head_seq``) until its gap fills."""
        if entry.seq <= head_seq + 1:
            raise LocalProtocolError("hold() takes entries beyond the next seq (Placement.AHEAD)")
        if entry.seq > head_seq + self._window:
            return Held(dropped=(entry,))
        mine = self._by_author.setdefault(entry.author, {})
        old = mine.get(entry.seq)
        if old is not None:
            return Held(conflict=None if old.id == entry.id else old)
        size = encoded_size(entry)
        mine[entry.seq] = entry
        self._order[(entry.author, entry.seq)] = size
        self._bytes += size
        dropped: list[Entry] = []
        if len(mine) > self._per_author:
            dropped.append(self._remove(entry.author, max(mine)))
        while len(self._order) > self._max_entries or self._bytes > self._max_bytes:
            dropped.append(self._remove(*next(iter(self._order))))
        return Held(dropped=tuple(dropped))

    def ready(self, author: Pseudonym, head_seq: int) -> list[Entry]:
        """Remove and return ``author``'s held entries up to ``head_seq + 1``, in seq
        order: the next one to append, and any the chain has since passed (to
        place again: duplicates, or fork evidence)."""
        mine = self._by_author.get(author)
        if not mine or min(mine) > head_seq + 1:
            return []
        return [self._remove(author, s) for s in sorted(s for s in mine if s <= head_seq + 1)]

    def _remove(self, author: Pseudonym, seq: int) -> Entry:
        mine = self._by_author[author]
        entry = mine.pop(seq)
        if not mine:
            del self._by_author[author]
        self._bytes -= self._order.pop((author, seq))
        return entry


# -- Gossip (wire.md 8) ---------------------------------------------------------------


class SeenSet:
    """A bounded set of recently seen entry ids (generational, like a 2-slot LRU).

    Holds at most ``capacity`` ids and always remembers the last
    ``capacity // 2`` distinct ids added or looked up with :meth:`add`.
    """

    __slots__ = ("_half", "_new", "_old")

    def __init__(self, capacity: int = SEEN_CAPACITY) -> None:
        if capacity < 2:
            raise LocalProtocolError("a seen-set holds at least 2 ids")
        self._half = capacity // 2
        self._new: set[bytes] = set()
        self._old: set[bytes] = set()

    def __contains__(self, key: object) -> bool:
        return key in self._new or key in self._old

    def __len__(self) -> int:
        return len(self._new) + len(self._old)

    def add(self, key: bytes) -> bool:
        """Record ``key``; True if it was not already in the set."""
        if key in self._new:
            return False
        fresh = key not in self._old
        if len(self._new) >= self._half:
            self._old, self._new = self._new, set()
        self._new.add(key)
        return fresh


_T = TypeVar("_T")


def is_news(entry: Entry, *, now: int, horizon: int = PUSH_HORIZON) -> bool:
    """Whether a newly stored ``entry`` is worth pushing (wire.md 8.1): written
    within ``horizon`` seconds of ``now``.  An older one reached us by a pull
    or a catch-up, and so, most likely, every peer that follows its chain:
    pushing it would duplicate their own pulls."""
    return entry.timestamp >= now - horizon


def push_targets(
    peers: Sequence[_T], *, source: _T | None, rng: Random, fanout: int = GOSSIP_FANOUT
) -> list[_T]:
    """The peers to push a new entry to: all but ``source``, at most ``fanout`` of
    them, a random sample when there are more (wire.md 8)."""
    others = [p for p in peers if p != source]
    return others if len(others) <= fanout else rng.sample(others, fanout)
