"""Per-peer rate limits and misbehaviour penalties (spec/wire.md 10).

Sans-IO: time is an argument (seconds of any monotonic clock), so tests and
simulations run on explicit times.  The daemon keeps one :class:`RateLimiter`
and one :class:`PenaltyScore` per peer, charges every unsolicited message to
the first, and every offence (:func:`offence_for` maps an error to one) to the
second; reaching the threshold means Bye and a ban.
"""

from __future__ import annotations

import enum
import math
from typing import Final

from ._errors import FutureTimestamp, LocalProtocolError, VerificationError
from ._wire import (
    FRAME_HEADER_SIZE,
    MAX_FRAME_SIZE,
    BadAnswer,
    IncompatibleVersion,
    ProtocolViolation,
    Unsolicited,
    WireError,
)

__all__ = ["Offence", "PenaltyScore", "RateLimiter", "TokenBucket", "offence_for"]

# -- Defaults (wire.md 5) -------------------------------------------------------------
MESSAGE_RATE: Final = 100.0
MESSAGE_BURST: Final = 200.0
BYTE_RATE: Final = 4.0 * 1024 * 1024
BYTE_BURST: Final = 1024.0 * 1024
DROP_SCORE: Final = 100
PENALTY_DECAY: Final = 0.1
"""Penalty points forgiven per second."""
BAN_TIME: Final = 3600.0


class TokenBucket:
    """``rate`` tokens per second, at most ``burst`` saved.  Time is an argument
    (seconds, any monotonic clock); a clock that goes back adds nothing."""

    __slots__ = ("_at", "_tokens", "burst", "rate")

    def __init__(self, *, rate: float, burst: float, now: float) -> None:
        if not (rate > 0 and burst > 0):
            raise LocalProtocolError("a token bucket needs a positive rate and burst")
        self.rate = rate
        self.burst = burst
        self._tokens = burst
        self._at = now

    def available(self, now: float) -> float:
        if now > self._at:
            self._tokens = min(self.burst, self._tokens + (now - self._at) * self.rate)
            self._at = now
        return self._tokens

    def take(self, cost: float, now: float) -> bool:
        """Spend ``cost`` tokens if there are enough; False (nothing spent) if not."""
        if cost > self.available(now):
            return False
        self._tokens -= cost
        return True


class RateLimiter:
    """A peer's inbound budget: messages per second and bytes per second (10.1)."""

    __slots__ = ("_bytes", "_messages")

    def __init__(
        self,
        *,
        now: float,
        message_rate: float = MESSAGE_RATE,
        message_burst: float = MESSAGE_BURST,
        byte_rate: float = BYTE_RATE,
        byte_burst: float = BYTE_BURST,
    ) -> None:
        if byte_burst < MAX_FRAME_SIZE + FRAME_HEADER_SIZE:
            raise LocalProtocolError("byte_burst must admit one largest frame")
        self._messages = TokenBucket(rate=message_rate, burst=message_burst, now=now)
        self._bytes = TokenBucket(rate=byte_rate, burst=byte_burst, now=now)

    def admit(self, size: int, now: float) -> bool:
        """Charge one message of ``size`` bytes (its frame, header included); False
        means over budget: drop the message (nothing is charged)."""
        if self._messages.available(now) < 1 or self._bytes.available(now) < size:
            return False
        self._messages.take(1, now)
        self._bytes.take(size, now)
        return True


class Offence(enum.Enum):
    """Misbehaviour, with the penalty points it costs (wire.md 10.2)."""

    MALFORMED = "malformed"
    PROTOCOL = "protocol"
    INVALID = "invalid"
    BAD_ANSWER = "bad-answer"
    UNSOLICITED = "unsolicited"
    RATE = "rate"

    @property
    def points(self) -> int:
        return _POINTS[self]


_POINTS: Final = {
    Offence.MALFORMED: 100,
    Offence.PROTOCOL: 100,
    Offence.INVALID: 25,
    Offence.BAD_ANSWER: 25,
    Offence.UNSOLICITED: 10,
    Offence.RATE: 5,
}


def offence_for(exc: VerificationError) -> Offence | None:
    """The offence a peer committed by sending what raised ``exc``; None when it
    is no fault of the peer's (a version mismatch, or clocks that differ)."""
    if isinstance(exc, (IncompatibleVersion, FutureTimestamp)):
        return None
    if isinstance(exc, ProtocolViolation):
        return Offence.PROTOCOL
    if isinstance(exc, Unsolicited):
        return Offence.UNSOLICITED
    if isinstance(exc, BadAnswer):
        return Offence.BAD_ANSWER
    if isinstance(exc, WireError):
        return Offence.MALFORMED  # framing, CBOR or message fields: the stream is unusable
    return Offence.INVALID  # an entry or fork proof that fails the protocol core


class PenaltyScore:
    """A peer's misbehaviour score: points per offence, forgiven at ``decay``
    points per second; reaching ``threshold`` means drop (and ban) the peer.

    Points are forgiven whole, one per ``1 / decay`` seconds, so offences that
    add up to the threshold within that time reach it exactly (wire.md 10.2:
    four invalid entries, twenty over the rate); a continuous decay would leave
    the score a hair short on any real clock and ask for one offence more.
    """

    __slots__ = ("_at", "_score", "decay", "threshold")

    def __init__(self, *, threshold: float = DROP_SCORE, decay: float = PENALTY_DECAY) -> None:
        if threshold <= 0 or decay < 0:
            raise LocalProtocolError("threshold must be positive and decay not negative")
        self.threshold = threshold
        self.decay = decay
        self._score = 0
        self._at: float | None = None  # when the next point's forgiveness started

    def value(self, now: float) -> int:
        if self._at is None or self._score == 0:
            self._at = now if self._at is None else max(self._at, now)
            return self._score
        if self.decay > 0 and now > self._at:
            steps = min(self._score, math.floor((now - self._at) * self.decay))
            if steps:
                self._score -= steps
                self._at = now if self._score == 0 else self._at + steps / self.decay
        return self._score

    def charge(self, offence: Offence, now: float) -> bool:
        """Add ``offence``'s points; True if the peer must now be dropped."""
        self._score = self.value(now) + offence.points
        return self._score >= self.threshold
