"""Pseudonyms: Ed25519 public keys, and their checksummed text form (spec 4).

A pseudonym *is* its 32-byte Ed25519 public key; nothing personal is attached.
People copy pseudonyms by hand, so the text form is Bech32m (BIP-350) with the
human-readable part ``sy``: ``sy1`` followed by 58 characters.  Bech32m
detects any error in up to four characters, so a typo is rejected, never
silently read as someone else.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field

import nacl.bindings
import nacl.exceptions
import nacl.signing

from ._constants import KEY_SIZE, SIGNATURE_SIZE
from ._errors import InvalidPseudonym, LocalProtocolError

__all__ = ["Pseudonym", "SigningIdentity"]

HRP = "sy"
_CHARSET = "qpzry9x8gf2tvdw0s3jn54khce6mua7l"
_CHARSET_REV = {c: i for i, c in enumerate(_CHARSET)}
_BECH32M_CONST = 0x2BC830A3
_TEXT_LEN = len(HRP) + 1 + 52 + 6  # hrp, "1", 256 bits in 5-bit groups, checksum


def _polymod(values: list[int]) -> int:
    gen = (0x3B6A57B2, 0x26508E6D, 0x1EA119FA, 0x3D4233DD, 0x2A1462B3)
    chk = 1
    for v in values:
        top = chk >> 25
        chk = (chk & 0x1FFFFFF) << 5 ^ v
        for i in range(5):
            chk ^= gen[i] if (top >> i) & 1 else 0
    return chk


def _hrp_expand(hrp: str) -> list[int]:
    return [ord(c) >> 5 for c in hrp] + [0] + [ord(c) & 31 for c in hrp]


def _to_5bit(data: bytes) -> list[int]:
    acc = bits = 0
    out = []
    for b in data:
        acc = (acc << 8) | b
        bits += 8
        while bits >= 5:
            bits -= 5
            out.append((acc >> bits) & 31)
    if bits:
        out.append((acc << (5 - bits)) & 31)
    return out


def _from_5bit(groups: list[int]) -> bytes | None:
    acc = bits = 0
    out = bytearray()
    for g in groups:
        acc = (acc << 5) | g
        bits += 5
        if bits >= 8:
            bits -= 8
            out.append((acc >> bits) & 0xFF)
    # BIP-173: at most 4 padding bits, all zero.
    if bits >= 5 or (acc & ((1 << bits) - 1)):
        return None
    return bytes(out)


@functools.lru_cache(maxsize=4096)
def is_valid_key(key: bytes) -> bool:
    """On the curve, canonical, not small order, in the prime-order subgroup (spec 4.1).

    Cached: one author signs many entries, and the check costs a scalar
    multiplication.
    """
    return bool(nacl.bindings.crypto_core_ed25519_is_valid_point(key))


@functools.lru_cache(maxsize=4096)
def _verify_key(key: bytes) -> nacl.signing.VerifyKey:
    # Building a VerifyKey is cheap but not free; chains repeat one author.
    return nacl.signing.VerifyKey(key)


def verify_signature(key: bytes, message: bytes, signature: bytes) -> bool:
    """True iff ``signature`` is the Ed25519 signature of ``message`` by ``key``
    (spec 2: libsodium's rules).  Takes plain bytes, so it can run in a worker."""
    try:
        _verify_key(key).verify(message, signature)
    except (nacl.exceptions.BadSignatureError, nacl.exceptions.ValueError, ValueError):
        return False
    return True


@dataclass(frozen=True, slots=True, kw_only=True, order=True)
class Pseudonym:
    """A participant: an Ed25519 public key (spec 4.1).

    Construction checks only the length; whether the key is a valid point in
    the prime-order subgroup is checked (once per key, cached) by
    :meth:`from_text` and by entry decoding before the signature (spec 6.4).
    """

    key: bytes

    def __post_init__(self) -> None:
        if type(self.key) is not bytes or len(self.key) != KEY_SIZE:
            raise InvalidPseudonym(f"a pseudonym is a {KEY_SIZE}-byte Ed25519 public key")

    # Equal keys, equal pseudonyms, as the generated methods say, without their
    # tuples: chains and trade sessions compare and look up authors per entry.
    def __eq__(self, other: object) -> bool:
        if isinstance(other, Pseudonym):
            return self.key == other.key
        return NotImplemented

    def __hash__(self) -> int:
        return hash(self.key)

    @classmethod
    def from_text(cls, text: str) -> Pseudonym:
        """Parse ``sy1...``; raise :class:`InvalidPseudonym` on any typo."""
        if not isinstance(text, str):
            raise InvalidPseudonym("a pseudonym's text form is a string starting 'sy1'")
        if not text.isascii():
            # str.lower() would fold e.g. U+212A KELVIN SIGN into "k": a look-alike
            # string must not parse as someone's key.
            raise InvalidPseudonym("a pseudonym is plain ASCII; this text has other characters")
        if text != text.lower() and text != text.upper():
            raise InvalidPseudonym("mixed upper and lower case is not a valid pseudonym")
        s = text.lower()
        if len(s) != _TEXT_LEN or not s.startswith(HRP + "1"):
            raise InvalidPseudonym(
                f"a pseudonym is 'sy1' followed by {_TEXT_LEN - 3} characters; got {text!r}"
            )
        try:
            groups = [_CHARSET_REV[c] for c in s[len(HRP) + 1 :]]
        except KeyError as exc:
            raise InvalidPseudonym(
                f"character {exc.args[0]!r} never appears in a pseudonym (check for typos)"
            ) from None
        if _polymod(_hrp_expand(HRP) + groups) != _BECH32M_CONST:
            raise InvalidPseudonym(f"checksum mismatch in {text!r}: probably a typo")
        key = _from_5bit(groups[:-6])
        if key is None or len(key) != KEY_SIZE:
            raise InvalidPseudonym(f"{text!r} does not encode a {KEY_SIZE}-byte key")
        if not is_valid_key(key):
            raise InvalidPseudonym(f"{text!r} is not a valid Ed25519 public key")
        return cls(key=key)

    def to_text(self) -> str:
        data = _to_5bit(self.key)
        pm = _polymod([*_hrp_expand(HRP), *data, 0, 0, 0, 0, 0, 0]) ^ _BECH32M_CONST
        checksum = [(pm >> 5 * (5 - i)) & 31 for i in range(6)]
        return HRP + "1" + "".join(_CHARSET[d] for d in data + checksum)

    def verify(self, message: bytes, signature: bytes) -> bool:
        """True iff ``signature`` is this key's Ed25519 signature of ``message``."""
        return verify_signature(self.key, message, signature)

    def short(self) -> str:
        """A short label for logs and tables; never use it to identify anyone."""
        t = self.to_text()
        return t[:9] + "…" + t[-4:]

    def __str__(self) -> str:
        return self.to_text()

    def __repr__(self) -> str:
        return f"Pseudonym({self.to_text()})"


@dataclass(frozen=True, slots=True, kw_only=True)
class SigningIdentity:
    """The secret half of a pseudonym.

    The protocol core never reads randomness: make one with :meth:`from_seed`,
    giving 32 bytes from the operating system's random source (the node does) or a fixed seed (tests
    and vectors do).
    """

    seed: bytes = field(repr=False)
    pseudonym: Pseudonym = field(init=False)
    _key: nacl.signing.SigningKey = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if type(self.seed) is not bytes or len(self.seed) != KEY_SIZE:
            raise LocalProtocolError(f"a signing seed is exactly {KEY_SIZE} random bytes")
        key = nacl.signing.SigningKey(self.seed)
        object.__setattr__(self, "_key", key)
        object.__setattr__(self, "pseudonym", Pseudonym(key=bytes(key.verify_key)))

    @classmethod
    def from_seed(cls, seed: bytes) -> SigningIdentity:
        return cls(seed=seed)

    def sign(self, message: bytes) -> bytes:
        sig = self._key.sign(message).signature
        assert len(sig) == SIGNATURE_SIZE
        return sig
