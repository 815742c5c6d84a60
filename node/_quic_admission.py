"""Datagrams that match no connection: which may start one, and what the rest are told.

Datagrams that start nothing must not create state (spec/transport.md 6).  The
endpoint (``_quic.py``) lets only an Initial packet in a datagram of at least
1200 bytes (RFC 9000 14.1) start a connection, and keeps it only if it
decrypts.  Before that, :func:`_inbound_refusal` applies the connection
limits: the table is full, the free slots are kept for outbound connections
(``reserved_outbound``, an eclipse defence), or the source host -- an IPv4
address or an IPv6 /64, :func:`_source` -- is at ``max_inbound_per_host``
(spec 9.3).  A refused Initial is answered with a stateless Initial carrying
CONNECTION_CLOSE(CONNECTION_REFUSED) (:func:`_connection_refused`, RFC 9000
5.2.2), and a long header of another QUIC version with Version Negotiation
(:func:`_version_negotiation`, RFC 9000 6.1); neither keeps anything.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Collection
from typing import TYPE_CHECKING

from aioquic.quic.configuration import SMALLEST_MAX_DATAGRAM_SIZE
from aioquic.quic.connection import TRANSPORT_CLOSE_FRAME_CAPACITY
from aioquic.quic.crypto import CryptoPair
from aioquic.quic.packet import (
    QuicErrorCode,
    QuicFrameType,
    QuicHeader,
    QuicPacketType,
    QuicProtocolVersion,
    encode_quic_version_negotiation,
)
from aioquic.quic.packet_builder import QuicPacketBuilder

from ._netsim import Address
from ._peerauth import PeerRole
from ._quic_limits import _CID_LENGTH, TransportLimits

if TYPE_CHECKING:
    from ._quic_conn import PeerConnection


def _inbound_refusal(
    limits: TransportLimits, connections: Collection[PeerConnection], address: Address
) -> str | None:
    """Why a new inbound connection from ``address`` is refused, or None."""
    if len(connections) >= limits.max_connections:
        return "at the connection limit"
    inbound = [c for c in connections if c._role is PeerRole.SERVER]
    if len(inbound) >= limits.max_connections - limits.reserved_outbound:
        return "the other slots are kept for outbound connections"
    if limits.max_inbound_per_host is not None:
        source = _source(address)
        if sum(_source(c._remote) == source for c in inbound) >= limits.max_inbound_per_host:
            return "at the limit for its source host"
    return None


def _source(address: Address) -> str:
    """The source a per-host limit counts: the IPv4 address, or the IPv6 /64 (one
    host's usual allocation; counting single IPv6 addresses would limit nothing)."""
    try:
        ip = ipaddress.ip_address(address[0])
    except ValueError:
        return address[0]  # not an IP literal (a test transport's name)
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is None:
        return str(ipaddress.IPv6Network((ip, 64), strict=False))
    return str(ip.ipv4_mapped or ip) if isinstance(ip, ipaddress.IPv6Address) else str(ip)


def _version_negotiation(header: QuicHeader) -> bytes:
    return encode_quic_version_negotiation(
        source_cid=header.destination_cid,
        destination_cid=header.source_cid,
        supported_versions=[QuicProtocolVersion.VERSION_1],
    )


def _connection_refused(header: QuicHeader) -> bytes:
    """A stateless Initial carrying CONNECTION_CLOSE(CONNECTION_REFUSED) (RFC 9000 5.2.2)."""
    crypto = CryptoPair()
    version = QuicProtocolVersion.VERSION_1
    crypto.setup_initial(cid=header.destination_cid, is_client=False, version=version)
    builder = QuicPacketBuilder(
        host_cid=os.urandom(_CID_LENGTH),
        peer_cid=header.source_cid,
        version=version,
        is_client=False,
        max_datagram_size=SMALLEST_MAX_DATAGRAM_SIZE,
    )
    builder.start_packet(QuicPacketType.INITIAL, crypto)
    reason = b"server full"
    buf = builder.start_frame(
        QuicFrameType.TRANSPORT_CLOSE, capacity=TRANSPORT_CLOSE_FRAME_CAPACITY + len(reason)
    )
    buf.push_uint_var(QuicErrorCode.CONNECTION_REFUSED)
    buf.push_uint_var(QuicFrameType.PADDING)
    buf.push_uint_var(len(reason))
    buf.push_bytes(reason)
    datagrams, _ = builder.flush()
    return datagrams[0]
