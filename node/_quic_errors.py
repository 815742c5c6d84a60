"""How a QUIC connection or stream ends, as the application sees it.

:class:`CloseReason` says who ended a connection and with which code, in which
of two code spaces: a shinyo/1 :class:`ErrorCode` (spec/transport.md 7) or a
QUIC transport error.  The exceptions are :class:`TransportError` subclasses,
so :class:`shinyo.ShinyoError` ones.  The two that stream operations raise,
:class:`ConnectionClosed` and :class:`StreamReset`, are also
``trio.BrokenResourceError``, what code written against trio streams already
handles; a STOP_SENDING or RESET_STREAM is an error of that stream only (spec
5.3).  The other three come from ``QuicEndpoint.connect``.
"""

from __future__ import annotations

from dataclasses import dataclass

import trio

from ._peerauth import TransportError


@dataclass(frozen=True, kw_only=True, slots=True)
class CloseReason:
    """Why a connection ended.

    ``application`` tells the two code spaces apart: True for a shinyo/1
    :class:`ErrorCode` (CONNECTION_CLOSE type 0x1d), False for a QUIC transport
    error such as FLOW_CONTROL_ERROR, CONNECTION_REFUSED or an idle timeout.
    ``local`` is True when this endpoint closed the connection.
    """

    error_code: int
    reason: str
    application: bool
    local: bool


class ConnectionClosed(TransportError, trio.BrokenResourceError):
    """The connection is closed; ``reason`` says by whom and why."""

    def __init__(self, reason: CloseReason) -> None:
        who = "this endpoint" if reason.local else "the peer (or a timeout)"
        space = "application" if reason.application else "transport"
        super().__init__(
            f"connection closed by {who}: {space} code 0x{reason.error_code:x}"
            + (f", {reason.reason!r}" if reason.reason else "")
        )
        self.reason = reason


class StreamReset(TransportError, trio.BrokenResourceError):
    """The peer abandoned this stream (RESET_STREAM or STOP_SENDING) with ``error_code``."""

    def __init__(self, message: str, *, error_code: int) -> None:
        super().__init__(message)
        self.error_code = error_code


class HandshakeTimeout(TransportError):
    """No QUIC handshake completed within ``TransportLimits.handshake_timeout``."""


class ConnectionRefused(TransportError):
    """The server refused the connection (CONNECTION_REFUSED: it is full)."""


class ConnectionLimitReached(TransportError):
    """This endpoint already has ``TransportLimits.max_connections`` connections."""
