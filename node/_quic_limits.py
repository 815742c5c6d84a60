"""The QUIC transport's bounds (spec/transport.md 6) and the counters of what they turned away.

Every bound is a field of :class:`TransportLimits`, checked when the value is
made, so an endpoint never runs with a limit it cannot honour.  The endpoint
(``_quic.py``) applies them: ``max_connections``, ``reserved_outbound`` and
``max_inbound_per_host`` when a connection starts (``_quic_admission.py``);
``max_streams``, ``stream_receive_buffer``, ``idle_timeout`` and
``max_datagram_size`` through aioquic's configuration, the stream limit and
credit on read (spec 3.3, 5.2; ``_quic_adapter.py``); ``stream_send_buffer``
in ``QuicStream.send_all``; ``handshake_timeout`` as the deadline of
``connect`` and of an inbound connection's authentication.  Every term of the
worst-case memory is one of these fields, so it is bounded.

:class:`EndpointStats` counts what the endpoint dropped or refused, for status
displays and tests.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Final

from aioquic.quic.configuration import SMALLEST_MAX_DATAGRAM_SIZE

from shinyo import LocalProtocolError

from ._netsim import MAX_UDP_PAYLOAD

_CID_LENGTH: Final = 8
"""Length of the connection IDs the endpoint issues (not a limit, but fixed for
every endpoint: the header parser needs it to find a short header's destination
connection ID, and the stateless CONNECTION_REFUSED answer uses it too)."""


@dataclass(frozen=True, kw_only=True, slots=True)
class TransportLimits:
    """Every bound of the transport, validated on construction (spec/transport.md 6).

    Worst-case receive memory is ``max_connections * max_streams *
    stream_receive_buffer``; send memory adds ``stream_send_buffer`` per
    stream on top of what the peer's flow control lets fly.
    """

    max_connections: int = 64
    """Open connections, both directions; an inbound one beyond it is refused."""
    max_inbound_per_host: int | None = None
    """Inbound connections from one source at once (an IPv4 address, an IPv6 /64);
    more are refused like a full table (spec 9.3).  None: no limit."""
    reserved_outbound: int = 0
    """Slots of ``max_connections`` only outbound connections may take, so that
    inbound ones cannot stop the node from dialling (an eclipse defence)."""
    max_streams: int = 16
    """Concurrent bidirectional streams a peer may open (QUIC MAX_STREAMS)."""
    idle_timeout: float = 60.0
    """Seconds without a packet from the peer before the connection is dropped."""
    handshake_timeout: float = 10.0
    """Seconds from the first packet to a completed handshake *and* peer authentication."""
    stream_send_buffer: int = 256 * 1024
    """Bytes queued but not yet sent per stream before ``send_all`` waits."""
    stream_receive_buffer: int = 256 * 1024
    """Bytes received but not yet read per stream; also the stream's flow-control window."""
    max_datagram_size: int = SMALLEST_MAX_DATAGRAM_SIZE
    """Largest UDP payload sent; 1200 fits every IPv6 path, loopback takes far more."""

    def __post_init__(self) -> None:
        for name, low in (
            ("max_connections", 1),
            ("max_streams", 1),
            ("stream_send_buffer", 1024),
            ("stream_receive_buffer", 1024),
        ):
            value = getattr(self, name)
            if type(value) is not int or value < low:
                raise LocalProtocolError(
                    f"TransportLimits.{name} is an integer >= {low}; got {value!r}"
                )
        per_host = self.max_inbound_per_host
        if per_host is not None and (type(per_host) is not int or per_host < 1):
            raise LocalProtocolError(
                f"TransportLimits.max_inbound_per_host is None or an integer >= 1; got {per_host!r}"
            )
        reserved = self.reserved_outbound
        if type(reserved) is not int or not 0 <= reserved < self.max_connections:
            raise LocalProtocolError(
                "TransportLimits.reserved_outbound is an integer from 0 to max_connections - 1; "
                f"got {reserved!r}"
            )
        size = self.max_datagram_size
        if type(size) is not int or not SMALLEST_MAX_DATAGRAM_SIZE <= size <= MAX_UDP_PAYLOAD:
            raise LocalProtocolError(
                "TransportLimits.max_datagram_size is an integer from "
                f"{SMALLEST_MAX_DATAGRAM_SIZE} (QUIC's minimum) to {MAX_UDP_PAYLOAD}; got {size!r}"
            )
        for name in ("idle_timeout", "handshake_timeout"):
            value = getattr(self, name)
            if type(value) not in (int, float) or not (math.isfinite(value) and value > 0):
                raise LocalProtocolError(
                    f"TransportLimits.{name} is a finite number of seconds > 0; got {value!r}"
                )



@dataclass(kw_only=True, slots=True)
class EndpointStats:
    """Counters for status displays and tests."""

    datagrams_received: int = 0
    datagrams_dropped: int = 0
    """Datagrams that matched no connection and started none (garbage, stray, too small)."""
    connections_refused: int = 0
    auth_failures: int = 0
    handshake_timeouts: int = 0
