"""Proof bundles: one file that proves a pseudonym's rating history (spec/proof.md).

File layout::

    "SHINYO-PROOF" 0x00 || canonical CBOR of
    proof = [version: 1, subject: key, own: [* packed-entry-bstr],
             others: [* [key, [* packed-entry-bstr]]], forks: [* fork-proof-bstr]]

Entries are *packed* (spec/proof.md 1.1, protocol/_proof_file.py): the author
is the array's key and a prev that follows from the item before is left out.

``own`` is the subject's whole chain, seq 1 to its head.  ``others`` holds, per
counterparty (keys ascending, entries by seq ascending), every entry the
subject's trades depend on, plus *evidence*: runs of the counterparty's chain
after its last entry for a trade that show it stayed silent.  ``forks`` are
fork proofs the holder knows of.

Verification (:func:`verify_proof`) rejects anything malformed, forged,
incomplete or forked with a typed :class:`VerificationError`; otherwise it
classifies every trade of the subject (spec 7.8) and scores them.  Memory and
time are bounded by the size limits checked before any decoding.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ._body import Accept, Commit, Propose, Response, Reveal
from ._chain import Chain, Role
from ._constants import (
    EVIDENCE_SPAN,
    MAX_CLOCK_SKEW,
    MAX_PROOF_ENTRIES,
    MAX_PROOF_SIZE,
)
from ._entry import Entry, MapFn, key_and_signature_failures, step_seven_failure
from ._errors import (
    BrokenLink,
    DecodeError,
    Forked,
    FutureTimestamp,
    Incomplete,
    LocalProtocolError,
    SeqGap,
    TradeRuleViolation,
    VerificationError,
)
from ._fork import ForkProof
from ._identity import Pseudonym
from ._outcome import TradeOutcome, classify
from ._proof_file import (
    ProofFile,
    pack_entries,
    parse_payloads,
    read_proof_file,
    unpack_payloads,
)
from ._scoring import Policy, ScoreReport, score
from ._trade import TradeSession, feed_in_order, reveals_first

__all__ = ["ProofReport", "build_proof", "verify_proof"]


def _is_step(entry: Entry) -> bool:
    """A step of the rating protocol: the opening, the commit or the reveal (spec 7.8).

    Evidence of silence starts at the last step held, never at a later
    response or retraction: otherwise dropping a reveal while keeping the
    response after it would start the evidence past the missing reveal
    (review F2).
    """
    return isinstance(entry.body, (Propose, Accept, Commit, Reveal))


def _by_trade(entries: Sequence[Entry]) -> dict[bytes, list[Entry]]:
    """Group entries by the trade they belong to, in one pass (cost stays linear)."""
    groups: dict[bytes, list[Entry]] = {}
    for e in entries:
        if e.trade is not None:
            groups.setdefault(e.trade, []).append(e)
    return groups


# -- building -----------------------------------------------------------------------


def build_proof(
    subject: Chain,
    counterparties: Mapping[Pseudonym, Chain],
    *,
    forks: Sequence[ForkProof] = (),
) -> bytes:
    """The proof file for ``subject``'s chain, from the chains a holder keeps.

    Raises :class:`LocalProtocolError` if a counterparty entry the subject's
    chain depends on is not among ``counterparties`` (the proof would be
    ``incomplete``).
    """
    wanted: dict[Pseudonym, set[int]] = {}
    groups: dict[Pseudonym, dict[bytes, list[Entry]]] = {}
    for trade, view in subject.trades.items():
        them = counterparties.get(view.counterparty)
        if them is None:
            raise LocalProtocolError(
                f"the chain of counterparty {view.counterparty.short()} is needed for trade "
                f"{trade.hex()[:16]}…")
        if view.counterparty not in groups:
            groups[view.counterparty] = _by_trade(them.entries)
        seqs = wanted.setdefault(view.counterparty, set())
        theirs = groups[view.counterparty].get(trade, [])
        seqs.update(e.seq for e in theirs)
        steps = [e for e in theirs if _is_step(e)]
        if not steps:
            continue
        # Evidence of silence: the counterparty's chain after its last step for
        # the trade, far enough to pass every deadline that step could start.
        last = steps[-1]
        for seq in range(last.seq + 1, len(them) + 1):
            seqs.add(seq)
            if them[seq].timestamp > last.timestamp + EVIDENCE_SPAN:
                break
    proof = ProofFile(
        subject=subject.author.key,
        own=pack_entries(subject.entries),
        others=[(who.key, pack_entries([counterparties[who][s] for s in sorted(wanted[who])]))
                for who in sorted(wanted, key=lambda p: p.key)],
        forks=sorted(f.encode() for f in forks),
    )
    if proof.items > MAX_PROOF_ENTRIES:
        raise LocalProtocolError(f"the proof would hold {proof.items} items, more than "
                                 f"{MAX_PROOF_ENTRIES}")
    data = proof.encode()
    if len(data) > MAX_PROOF_SIZE:
        raise LocalProtocolError(f"the proof would exceed {MAX_PROOF_SIZE} bytes")
    return data


# -- verifying ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class ProofReport:
    """The verdict on a valid proof: every trade classified, and the scores."""

    subject: Pseudonym
    head_seq: int
    as_of: int
    trades: tuple[TradeOutcome, ...]
    scores: ScoreReport
    forked_counterparties: tuple[Pseudonym, ...]
    entries: int
    size: int

    def to_json_obj(self) -> dict[str, Any]:
        """The documented JSON form (spec/proof.md 5); stable key order by sorting."""
        s = self.scores
        return {
            "schema": "shinyo-verify/1",
            "valid": True,
            "subject": self.subject.to_text(),
            "as_of": self.as_of,
            "head_seq": self.head_seq,
            "entries": self.entries,
            "bytes": self.size,
            "tier": s.tier,
            "scores": s.scores,
            "window_mean": s.window_mean,
            "window_count": s.window_count,
            "completion_rate": s.completion_rate,
            "reveal_rate": s.reveal_rate,
            "counts": s.counts,
            "forked_counterparties": [p.to_text() for p in self.forked_counterparties],
            "trades": [
                {
                    "trade": t.trade.hex(),
                    "role": t.role.value,
                    "counterparty": t.counterparty.to_text(),
                    "context": t.context,
                    "status": t.outcome.value,
                    "stars": t.stars,
                    "confirmed": t.confirmed,
                    "given": t.given,
                    "at": t.at,
                    "reason": t.reason,
                }
                for t in self.trades
            ],
        }


def _decode_others(groups: list[tuple[bytes, list[Entry | VerificationError]]],
                   subject: Pseudonym,
                   now: int | None
                   ) -> dict[Pseudonym, list[Entry]]:
    others: dict[Pseudonym, list[Entry]] = {}
    previous: bytes | None = None
    for key, items in groups:
        if previous is not None and key <= previous:
            raise DecodeError("proof: counterparty groups must be sorted by key, no repeats")
        previous = key
        who = Pseudonym(key=key)
        if who == subject:
            raise DecodeError("proof: the subject's entries belong in 'own', not 'others'")
        entries = [_entry(b) for b in items]  # authored by ``key`` (1.1)
        for i, e in enumerate(entries):
            if now is not None and e.timestamp > now + MAX_CLOCK_SKEW:
                raise FutureTimestamp(f"timestamp {e.timestamp} is past now={now}", seq=e.seq)
            if i and e.seq <= entries[i - 1].seq:
                raise SeqGap("a counterparty's entries must be in ascending seq order",
                             seq=e.seq)
            if i and e.seq == entries[i - 1].seq + 1 and e.prev != entries[i - 1].id:
                raise BrokenLink("prev is not the id of the entry before it", seq=e.seq)
        others[who] = entries
    return others


def _decode_entries(parts: ProofFile, map: MapFn) -> list[list[Entry | VerificationError]]:
    """Every entry of the proof decoded (spec 6.4), array by array, the subject's
    first: each an Entry or the error it failed with.

    Up front, possibly in parallel (spec/proof.md 3, last paragraph): every item
    is unpacked, the key and signature checks (step 7) are handed to ``map``, and
    the entries are parsed (steps 1-6) while an executor runs them.  The steps of
    verification then meet each result in the spec's order.
    """
    arrays = [(parts.subject, parts.own), *parts.others]
    unpacked = [unpack_payloads(key, items) for key, items in arrays]
    at: list[int] = []  # where each check's entry sits in the flat list
    checks = []
    for i, (key, item) in enumerate((key, item) for (key, _), items in
                                    zip(arrays, unpacked, strict=True) for item in items):
        if not isinstance(item, VerificationError):
            at.append(i)
            checks.append((key, item[0], item[1]))
    failures = key_and_signature_failures(checks, map=map)  # an executor starts now
    flat = [entry for (key, _), items in zip(arrays, unpacked, strict=True)
            for entry in parse_payloads(key, items)]
    for k, what in failures:
        entry = flat[at[k]]
        if isinstance(entry, Entry):  # steps 1-6 come first
            flat[at[k]] = step_seven_failure(entry, what)
    rest = iter(flat)
    return [[next(rest) for _ in items] for items in unpacked]


def _entry(item: Entry | VerificationError) -> Entry:
    """A verified entry, or the error unpacking or decoding it raised, met now."""
    if isinstance(item, VerificationError):
        raise item
    return item


def _run_ends(entries: list[Entry]) -> dict[int, int]:
    """For each held seq, the timestamp at the end of its contiguous run (spec 7.8).

    Consecutive held entries are already checked to be hash-linked, so a run is
    a real stretch of the counterparty's chain.  ``last`` in a trade is the
    counterparty's latest entry for it, so no later entry of that trade is
    held and its evidence run ends only at a gap: one backward pass serves all
    trades (a walk per trade was quadratic; found by review).
    """
    ends: dict[int, int] = {}
    end = None
    for i in range(len(entries) - 1, -1, -1):
        e = entries[i]
        if i + 1 == len(entries) or entries[i + 1].seq != e.seq + 1:
            end = e.timestamp
        assert end is not None
        ends[e.seq] = end
    return ends


def verify_proof(
    data: bytes, *, now: int, policies: Sequence[Policy] = (), map: MapFn = map
) -> ProofReport:
    """Verify a proof file and score its subject as of ``now`` (spec/proof.md 3).

    ``map`` checks signatures in chunks: pass an executor's ``map`` to use
    several cores.  The verdict, and which failure is reported first, does not
    depend on it.
    """
    return verify_proof_entries(data, now=now, policies=policies, map=map)[0]


def verify_proof_entries(
    data: bytes, *, now: int, policies: Sequence[Policy] = (), map: MapFn = map
) -> tuple[ProofReport, Chain, dict[Pseudonym, list[Entry]]]:
    """:func:`verify_proof`, also returning what it verified: the subject's chain
    and each counterparty's entries (for trust evidence, _trust.py, which would
    otherwise parse the bundle a second time)."""
    parts = read_proof_file(data)
    forks_list = parts.forks
    subject = Pseudonym(key=parts.subject)
    if not parts.own:
        raise Incomplete("the proof holds none of the subject's entries")
    own_list, *theirs = _decode_entries(parts, map)
    groups = [(key, array) for (key, _), array in zip(parts.others, theirs, strict=True)]
    chain = Chain(subject)
    for item in own_list:
        chain.append(_entry(item), now=now)

    forked: set[Pseudonym] = set()
    for i, raw in enumerate(forks_list):
        if i and raw <= forks_list[i - 1]:
            raise DecodeError("proof: fork proofs must be sorted, no repeats")
        fork = ForkProof.decode(raw)
        if fork.author == subject:
            raise Forked(f"{subject.short()} signed two different entries at seq {fork.seq}")
        forked.add(fork.author)

    others = _decode_others(groups, subject, now)
    own_groups = _by_trade(chain.entries)
    their_groups = {who: _by_trade(entries) for who, entries in others.items()}
    run_ends = {who: _run_ends(entries) for who, entries in others.items()}
    outcomes = []
    for trade, view in chain.trades.items():
        who = view.counterparty
        outcomes.append(_judge_trade(
            subject, view.role, trade, own_groups[trade],
            their_groups.get(who, {}).get(trade, []), run_ends.get(who, {}), who in forked, now))
    report = score(outcomes, as_of=now, policies=policies)
    return ProofReport(
        subject=subject, head_seq=len(chain), as_of=now, trades=tuple(outcomes), scores=report,
        forked_counterparties=tuple(sorted(forked, key=lambda p: p.key)),
        entries=parts.items - len(parts.others), size=len(data),
    ), chain, others


def _judge_trade(subject: Pseudonym, role: Role, trade: bytes, mine: list[Entry],
                 theirs: list[Entry], run_ends: dict[int, int], forked: bool, now: int
                 ) -> TradeOutcome:
    # One pass over each side for what the checks below ask about (first of each
    # kind, in seq order; the counterparty's entries are not chain-checked, so
    # there may be more than one).
    their_ids = set()
    their_proposal = their_commit = last = None
    their_accept = their_reveal = False
    for e in theirs:
        body = e.body
        their_ids.add(e.id)
        if e.id == trade and their_proposal is None:
            their_proposal = e
        if isinstance(body, Commit):
            their_commit = their_commit or e
        elif isinstance(body, Reveal):
            their_reveal = True
        elif isinstance(body, Accept):
            their_accept = True
        if _is_step(e):
            last = e  # seqs ascend (step 7): the latest step held
    my_commit = my_reveal = my_response = None
    for e in mine:
        body = e.body
        if isinstance(body, Commit):
            my_commit = my_commit or e
        elif isinstance(body, Reveal):
            my_reveal = my_reveal or e
        elif isinstance(body, Response):
            my_response = my_response or e
    # Completeness (spec/proof.md 3): everything the subject's entries name.
    if role is Role.ACCEPTOR:
        proposal = their_proposal
        if proposal is None:
            raise Incomplete(f"trade {_short(trade)}…: the proposal the subject accepted is "
                             "missing")
        if not isinstance(proposal.body, Propose) or proposal.body.counterparty != subject:
            # Found by review: without this, TradeSession refused the subject as a
            # party with a LocalProtocolError, escaping as a crash.
            raise TradeRuleViolation(
                f"trade {_short(trade)}…: the subject accepted a proposal made to someone else")
    else:
        proposal = mine[0]
    for e in mine:
        if isinstance(e.body, (Commit, Reveal)) and e.body.ack is not None \
                and e.body.ack not in their_ids:
            raise Incomplete(f"trade {_short(trade)}…: the counterparty commitment "
                             f"acknowledged at seq {e.seq} is missing", seq=e.seq)
    # Whichever commit the subject's reveal depends on is held by now (8b), so
    # the order is known whenever the subject revealed.
    if my_reveal is not None and reveals_first(role, my_commit, their_commit) is False \
            and not their_reveal:
        # The subject revealed second, which it may only do once the counterparty's
        # reveal (acknowledging the subject's commitment) is in hand (spec 7.3).
        raise Incomplete(f"trade {_short(trade)}…: the subject revealed after the "
                         "counterparty, whose reveal is missing", seq=my_reveal.seq)
    if my_response is not None and not their_reveal:
        raise Incomplete(f"trade {_short(trade)}…: the subject responded to a rating that is "
                         "missing", seq=my_response.seq)
    if theirs and role is Role.PROPOSER and not their_accept:
        raise Incomplete(f"trade {_short(trade)}…: counterparty entries without its "
                         "acceptance")
    session = TradeSession(me=subject, proposal=proposal)
    feed_in_order(session, [e for e in mine if e is not proposal],
                  [e for e in theirs if e is not proposal])
    silent = None if forked or last is None else run_ends[last.seq]
    return classify(session, now=now, silent_until=silent)


def _short(trade: bytes) -> str:
    return trade.hex()[:16]
