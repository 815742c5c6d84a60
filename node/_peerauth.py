"""Peer authentication for node connections (spec/transport.md section 4).

TLS certificates are self-signed and never checked; who a peer *is* comes from
its node key.  After the QUIC handshake each side signs the connection's TLS
channel binding (RFC 9266 ``tls-exporter``) with its node key, so a proof made
on one connection means nothing on any other -- in particular not on the
second leg of a man in the middle.

This module holds the pure parts: constants, the exporter computation, the
AUTH message, and the throwaway TLS certificate.  The QUIC driver in
``_quic.py`` moves the bytes.
"""

from __future__ import annotations

import datetime
import enum
from typing import Final

import nacl.bindings
from cryptography import x509
from cryptography.hazmat.primitives import hashes, hmac
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from shinyo import Pseudonym, ShinyoError, SigningIdentity

__all__ = [
    "ALPN",
    "AUTH_MESSAGE_SIZE",
    "BINDING_SIZE",
    "DST_PEER_AUTH",
    "ErrorCode",
    "PeerAuthError",
    "PeerRole",
    "TransportError",
    "auth_payload",
    "channel_binding",
    "make_auth_message",
    "make_tls_certificate",
    "tls_exporter",
    "verify_auth_message",
]

# -- Constants (spec/transport.md 2 and 4) ----------------------------------------
ALPN: Final = "shinyo/1"
"""The ALPN protocol name: the node protocol and its major version (spec 2.1)."""

DST_PEER_AUTH: Final = b"shinyo/v1/peer-auth\x00"
"""Domain separation tag of the AUTH signature (spec 4.3); ASCII, NUL-terminated."""

EXPORTER_LABEL: Final = b"EXPORTER-Channel-Binding"
"""RFC 9266 section 2: the ``tls-exporter`` channel binding's label (empty context)."""

BINDING_SIZE: Final = 32
AUTH_MESSAGE_SIZE: Final = 32 + 64
"""An AUTH message is the node key (32 bytes) then its Ed25519 signature (64 bytes)."""


class PeerRole(enum.IntEnum):
    """Which end of the QUIC connection signs (spec 4.3): one byte in the signed payload."""

    CLIENT = 0x01
    SERVER = 0x02


class ErrorCode(enum.IntEnum):
    """QUIC application error codes of ``shinyo/1`` (spec/transport.md 7).

    Codes below 0x10 close a connection (CONNECTION_CLOSE of type 0x1d);
    codes from 0x10 end one stream (RESET_STREAM, STOP_SENDING).
    """

    NO_ERROR = 0x00
    AUTH_FAILED = 0x01
    AUTH_TIMEOUT = 0x02
    WRONG_PEER = 0x03
    PROTOCOL_ERROR = 0x04
    INTERNAL_ERROR = 0x05
    STREAM_CLOSED = 0x10


class TransportError(ShinyoError):
    """Root of the errors of the node's QUIC transport."""


class PeerAuthError(TransportError):
    """A peer failed authentication (spec 4.5); ``code`` is sent in the CONNECTION_CLOSE."""

    def __init__(self, message: str, *, code: ErrorCode = ErrorCode.AUTH_FAILED) -> None:
        super().__init__(message)
        self.code = code


# -- TLS exporter (RFC 8446 section 7.5, RFC 9266) ----------------------------------


def _hkdf_expand_label(
    algorithm: hashes.HashAlgorithm, secret: bytes, label: bytes, context: bytes, length: int
) -> bytes:
    # RFC 8446 7.1: HkdfLabel = uint16 length || opaque label<7..255> = "tls13 " + label
    # || opaque context<0..255>; then HKDF-Expand (RFC 5869 2.3).
    full_label = b"tls13 " + label
    info = (
        length.to_bytes(2, "big")
        + bytes([len(full_label)])
        + full_label
        + bytes([len(context)])
        + context
    )
    out = b""
    block = b""
    counter = 1
    while len(out) < length:
        mac = hmac.HMAC(secret, algorithm)
        mac.update(block + info + bytes([counter]))
        block = mac.finalize()
        out += block
        counter += 1
    return out[:length]


def _hash(algorithm: hashes.HashAlgorithm, data: bytes) -> bytes:
    digest = hashes.Hash(algorithm)
    digest.update(data)
    return digest.finalize()


def tls_exporter(
    algorithm: hashes.HashAlgorithm,
    exporter_master_secret: bytes,
    label: bytes,
    context: bytes,
    length: int,
) -> bytes:
    """TLS-Exporter(label, context, length) of RFC 8446 section 7.5.

    ``algorithm`` is the hash of the negotiated cipher suite and
    ``exporter_master_secret`` the connection's ``exp master`` secret.
    """
    # Derive-Secret(Secret, label, "") = HKDF-Expand-Label(Secret, label, Hash(""), Hash.length)
    inner = _hkdf_expand_label(
        algorithm, exporter_master_secret, label, _hash(algorithm, b""), algorithm.digest_size
    )
    return _hkdf_expand_label(algorithm, inner, b"exporter", _hash(algorithm, context), length)


def channel_binding(algorithm: hashes.HashAlgorithm, exporter_master_secret: bytes) -> bytes:
    """The RFC 9266 ``tls-exporter`` channel binding: 32 bytes, empty context (spec 4.2)."""
    return tls_exporter(algorithm, exporter_master_secret, EXPORTER_LABEL, b"", BINDING_SIZE)


# -- The AUTH message (spec 4.3) --------------------------------------------------------


def auth_payload(role: PeerRole, binding: bytes) -> bytes:
    """The bytes an AUTH signature covers: tag, role byte, channel binding (53 bytes)."""
    if len(binding) != BINDING_SIZE:
        raise ValueError(f"a channel binding is {BINDING_SIZE} bytes, not {len(binding)}")
    return DST_PEER_AUTH + bytes([role]) + binding


def make_auth_message(identity: SigningIdentity, role: PeerRole, binding: bytes) -> bytes:
    """Our AUTH message on a connection with this binding: node key || signature."""
    return identity.pseudonym.key + identity.sign(auth_payload(role, binding))


def verify_auth_message(message: bytes, role: PeerRole, binding: bytes) -> Pseudonym:
    """Check a peer's AUTH message (spec 4.5); return the node key it proves.

    ``role`` is the *peer's* role.  Raises :class:`PeerAuthError` saying what was wrong.
    """
    if len(message) != AUTH_MESSAGE_SIZE:
        raise PeerAuthError(
            f"an AUTH message is exactly {AUTH_MESSAGE_SIZE} bytes; the peer sent {len(message)}"
        )
    key, signature = message[:32], message[32:]
    # Pseudonym.verify alone would accept nothing forged, but a key outside the
    # prime-order subgroup must not become a peer identity at all (spec 4.5).
    if not nacl.bindings.crypto_core_ed25519_is_valid_point(key):
        raise PeerAuthError("the peer's node key is not a valid Ed25519 public key")
    peer = Pseudonym(key=key)
    if not peer.verify(auth_payload(role, binding), signature):
        raise PeerAuthError(
            f"the {role.name.lower()}'s AUTH signature does not verify over this connection's "
            "channel binding (a relayed or forged proof)"
        )
    return peer


# -- The TLS certificate (spec 2.2) ---------------------------------------------------


def make_tls_certificate() -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    """A fresh self-signed ECDSA P-256 certificate for one endpoint's TLS.

    P-256 because every TLS 1.3 stack must accept it (RFC 8446 9.1).  The key
    is not the node key and proves nothing; the validity period is RFC 5280's
    "no well-defined expiration" so no clock is read.
    """
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "shinyo node")])
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(datetime.datetime(2000, 1, 1, tzinfo=datetime.UTC))
        .not_valid_after(datetime.datetime(9999, 12, 31, 23, 59, 59, tzinfo=datetime.UTC))
        .sign(key, hashes.SHA256())
    )
    return certificate, key
