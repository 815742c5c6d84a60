"""The identity key file: the node's 32-byte Ed25519 seed, encrypted at rest.

Format (version 1).  One JSON object in UTF-8, written once and never edited
in place.  JSON rather than CBOR because a person opens this file: ``cat``
shows the pseudonym and, for a plaintext key, the warning.  Byte strings are
lowercase hex.  Parsing is strict: exactly the members listed, no duplicates.

Encrypted (the default)::

    {"format": "shinyo-keyfile", "version": 1,
     "pseudonym": "sy1...",                  # in clear, so `shinyo id show` needs no passphrase
     "protection": "argon2id+secretbox",
     "salt": hex(16), "opslimit": int, "memlimit": int,   # Argon2id v1.3 parameters
     "nonce": hex(24), "ciphertext": hex(48)}            # SecretBox(seed), 32 + 16-byte tag

    key        = Argon2id(NFC(passphrase) as UTF-8, salt, opslimit, memlimit), 32 bytes
    ciphertext = XSalsa20-Poly1305(key, nonce).encrypt(seed)   # PyNaCl SecretBox

Plaintext (only with ``insecure_plaintext=True``, for throwaway demo nodes)::

    {"format": "shinyo-keyfile", "version": 1, "pseudonym": "sy1...",
     "protection": "plaintext", "warning": "INSECURE: ...", "seed": hex(32)}

The clear fields are bound to the secret without associated data: changing the
KDF parameters, salt, nonce or ciphertext makes decryption fail, and after
decryption the pseudonym is derived from the seed and compared with the file's.

The file is created mode 0600 through a temporary file and ``link``, so it
appears complete or not at all, and never replaces an existing key.  A key
file that others can read or write is refused (like ssh does).
"""

from __future__ import annotations

import getpass as _getpass
import json
import os
import re
import sys
import unicodedata
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import nacl.exceptions
import nacl.secret
from nacl.pwhash import argon2id

from shinyo import (
    InvalidPseudonym,
    LocalProtocolError,
    Pseudonym,
    ShinyoError,
    SigningIdentity,
)

__all__ = [
    "DEFAULT_MEMLIMIT",
    "DEFAULT_OPSLIMIT",
    "KEYFILE_VERSION",
    "PASSPHRASE_ENV",
    "KeyfileError",
    "KeyfileInfo",
    "KeystoreError",
    "LoadedKey",
    "PassphraseRequired",
    "WrongPassphrase",
    "create_keyfile",
    "load_keyfile",
    "passphrase_from_env_or_prompt",
    "read_keyfile_info",
]

KEYFILE_FORMAT = "shinyo-keyfile"
KEYFILE_VERSION = 1
PASSPHRASE_ENV = "SHINYO_PASSPHRASE"
ENCRYPTED = "argon2id+secretbox"
PLAINTEXT = "plaintext"
PLAINTEXT_WARNING = ("INSECURE: this identity key is stored unencrypted; anyone who reads this "
                     "file can sign as this pseudonym. Use it only for throwaway demo nodes.")

DEFAULT_OPSLIMIT: int = argon2id.OPSLIMIT_INTERACTIVE
DEFAULT_MEMLIMIT: int = argon2id.MEMLIMIT_INTERACTIVE
# Bounds on what we write and what we are willing to run when reading: a
# tampered file must not make us allocate gigabytes or spin for minutes.
MIN_OPSLIMIT: int = argon2id.OPSLIMIT_MIN
MAX_OPSLIMIT: int = 4 * argon2id.OPSLIMIT_SENSITIVE
MIN_MEMLIMIT: int = argon2id.MEMLIMIT_MIN
MAX_MEMLIMIT: int = argon2id.MEMLIMIT_SENSITIVE
MAX_KEYFILE_SIZE = 4096
"""A version 1 file is about 400 bytes; anything much larger is not a key file."""

SEED_SIZE = 32
_HEX = re.compile(r"[0-9a-f]*")
_ENCRYPTED_FIELDS = frozenset(
    {"format", "version", "pseudonym", "protection", "salt", "opslimit", "memlimit", "nonce",
     "ciphertext"})
_PLAINTEXT_FIELDS = frozenset(
    {"format", "version", "pseudonym", "protection", "warning", "seed"})


class KeystoreError(ShinyoError):
    """The identity key file cannot be created or loaded."""


class KeyfileError(KeystoreError):
    """The key file is missing, corrupt, of an unsupported version, or badly protected."""


class WrongPassphrase(KeystoreError):
    """Decryption failed: the passphrase is wrong (or the ciphertext was altered)."""


class PassphraseRequired(KeystoreError):
    """A passphrase is needed and none was given."""


@dataclass(frozen=True, slots=True, kw_only=True)
class KeyfileInfo:
    """What a key file says in clear, readable without the passphrase."""

    path: Path
    pseudonym: Pseudonym
    encrypted: bool
    opslimit: int | None = None
    memlimit: int | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class LoadedKey:
    """A loaded identity; when ``insecure_plaintext`` the daemon must warn loudly."""

    identity: SigningIdentity = field(repr=False)
    insecure_plaintext: bool

    @property
    def pseudonym(self) -> Pseudonym:
        return self.identity.pseudonym


def _check_limits(opslimit: object, memlimit: object, *, where: str) -> tuple[int, int]:
    if type(opslimit) is not int or not MIN_OPSLIMIT <= opslimit <= MAX_OPSLIMIT:
        raise KeyfileError(f"{where}: opslimit must be an integer in "
                           f"{MIN_OPSLIMIT}..{MAX_OPSLIMIT}")
    if type(memlimit) is not int or not MIN_MEMLIMIT <= memlimit <= MAX_MEMLIMIT:
        raise KeyfileError(f"{where}: memlimit must be an integer number of bytes in "
                           f"{MIN_MEMLIMIT}..{MAX_MEMLIMIT}")
    return opslimit, memlimit


def _kdf(passphrase: str, salt: bytes, opslimit: int, memlimit: int) -> bytes:
    # NFC: the same passphrase typed on two systems may arrive in two Unicode forms.
    secret = unicodedata.normalize("NFC", passphrase).encode("utf-8")
    key: bytes = argon2id.kdf(nacl.secret.SecretBox.KEY_SIZE, secret, salt,
                              opslimit=opslimit, memlimit=memlimit)
    return key


# -- writing ------------------------------------------------------------------


def create_keyfile(
    path: Path,
    seed: bytes,
    *,
    passphrase: str | None,
    insecure_plaintext: bool = False,
    opslimit: int = DEFAULT_OPSLIMIT,
    memlimit: int = DEFAULT_MEMLIMIT,
) -> Pseudonym:
    """Write a new key file for ``seed`` (32 random bytes); return its pseudonym.

    Refuses to replace an existing file.  Lower ``opslimit``/``memlimit`` only
    in tests: they set how costly each passphrase guess is for a thief.
    """
    path = Path(path)
    identity = SigningIdentity.from_seed(seed)  # checks the seed's type and length
    doc: dict[str, Any] = {
        "format": KEYFILE_FORMAT,
        "version": KEYFILE_VERSION,
        "pseudonym": identity.pseudonym.to_text(),
    }
    if insecure_plaintext:
        if passphrase is not None:
            raise LocalProtocolError("give a passphrase or insecure_plaintext=True, not both")
        doc |= {"protection": PLAINTEXT, "warning": PLAINTEXT_WARNING, "seed": seed.hex()}
    else:
        if passphrase is None:
            raise PassphraseRequired(
                f"a passphrase is needed to encrypt the key; set {PASSPHRASE_ENV} or run in a "
                "terminal (or, for a throwaway demo node only, use --insecure-plaintext-key)")
        if not isinstance(passphrase, str):
            raise LocalProtocolError("the passphrase is a str (it is NFC-normalised, then UTF-8)")
        if not passphrase:
            raise PassphraseRequired("an empty passphrase protects nothing; choose a real one")
        opslimit, memlimit = _check_limits(opslimit, memlimit, where="create_keyfile")
        salt = os.urandom(argon2id.SALTBYTES)
        nonce = os.urandom(nacl.secret.SecretBox.NONCE_SIZE)
        box = nacl.secret.SecretBox(_kdf(passphrase, salt, opslimit, memlimit))
        doc |= {
            "protection": ENCRYPTED,
            "salt": salt.hex(),
            "opslimit": opslimit,
            "memlimit": memlimit,
            "nonce": nonce.hex(),
            "ciphertext": box.encrypt(seed, nonce).ciphertext.hex(),
        }
    _write_new(path, (json.dumps(doc, indent=2) + "\n").encode("utf-8"))
    return identity.pseudonym


def _write_new(path: Path, data: bytes) -> None:
    """Create ``path`` with ``data``, mode 0600, atomically, never replacing a file."""
    if path.exists() or path.is_symlink():
        raise KeyfileError(f"{path} already exists; refusing to overwrite an identity key. "
                           "Move it aside first if you really mean to replace it")
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except OSError as exc:
        raise KeyfileError(f"cannot create {path}: {exc.strerror}; check that the directory "
                           "exists and is writable") from exc
    try:
        try:
            os.fchmod(fd, 0o600)  # whatever the umask
            os.write(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        # link() fails if ``path`` appeared meanwhile: no race can overwrite a key.
        os.link(tmp, path)
    except FileExistsError:
        raise KeyfileError(
            f"{path} already exists; refusing to overwrite an identity key") from None
    except OSError as exc:
        raise KeyfileError(f"cannot write {path}: {exc.strerror}") from exc
    finally:
        tmp.unlink(missing_ok=True)
    _fsync_dir(path.parent)


def _fsync_dir(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return  # not every platform opens directories; the file itself is synced
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


# -- reading ------------------------------------------------------------------


def _read(path: Path) -> dict[str, Any]:
    """Read and strictly parse the file; check its permissions first."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        raise KeyfileError(f"no key file at {path}; create one with `shinyo id new`") from None
    except OSError as exc:
        raise KeyfileError(f"cannot open {path}: {exc.strerror}") from exc
    try:
        st = os.fstat(fd)
        if os.name == "posix" and st.st_mode & 0o077:
            raise KeyfileError(
                f"{path} has permissions {st.st_mode & 0o777:04o}, so other users can read or "
                f"change it; run `chmod 600 {path}` (and consider the key compromised if "
                "others could read it)")
        data = os.read(fd, MAX_KEYFILE_SIZE + 1)
    except OSError as exc:  # e.g. a directory
        raise KeyfileError(f"cannot read {path}: {exc.strerror}") from exc
    finally:
        os.close(fd)
    if len(data) > MAX_KEYFILE_SIZE:
        raise KeyfileError(f"{path} is larger than {MAX_KEYFILE_SIZE} bytes: not a key file")

    def no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        out = dict(pairs)
        if len(out) != len(pairs):
            raise ValueError("duplicate member")
        return out

    try:
        doc = json.loads(data.decode("utf-8"), object_pairs_hook=no_duplicates)
    except (UnicodeDecodeError, ValueError) as exc:
        raise KeyfileError(f"{path} is not a valid key file ({exc}); it may be truncated or "
                           "damaged: restore it from your backup") from None
    if type(doc) is not dict or doc.get("format") != KEYFILE_FORMAT:
        raise KeyfileError(f"{path} is not a shinyo key file")
    version = doc.get("version")
    if type(version) is not int or version != KEYFILE_VERSION:
        raise KeyfileError(f"{path} is a key file of an unsupported version; this shinyo reads "
                           f"version {KEYFILE_VERSION}. Upgrade shinyo")
    protection = doc.get("protection")
    expected = {ENCRYPTED: _ENCRYPTED_FIELDS, PLAINTEXT: _PLAINTEXT_FIELDS}.get(
        protection if isinstance(protection, str) else "")
    if expected is None:
        raise KeyfileError(f"{path}: unknown protection; expected {ENCRYPTED!r} or {PLAINTEXT!r}")
    if set(doc) != expected:
        raise KeyfileError(f"{path}: members {sorted(set(doc) ^ expected)} are missing or "
                           "unexpected; the file is damaged")
    return doc


def _hex(doc: dict[str, Any], name: str, size: int, path: Path) -> bytes:
    value = doc[name]
    if not isinstance(value, str) or len(value) != 2 * size or not _HEX.fullmatch(value):
        raise KeyfileError(f"{path}: {name} must be {size} bytes in lowercase hex; "
                           "the file is damaged")
    return bytes.fromhex(value)


def _pseudonym(doc: dict[str, Any], path: Path) -> Pseudonym:
    try:
        return Pseudonym.from_text(doc["pseudonym"])
    except InvalidPseudonym as exc:
        raise KeyfileError(f"{path}: bad pseudonym field ({exc}); the file is damaged") from None


def read_keyfile_info(path: Path) -> KeyfileInfo:
    """The key file's clear fields (pseudonym, protection); no passphrase needed."""
    path = Path(path)
    doc = _read(path)
    who = _pseudonym(doc, path)
    if doc["protection"] == PLAINTEXT:
        return KeyfileInfo(path=path, pseudonym=who, encrypted=False)
    ops, mem = _check_limits(doc["opslimit"], doc["memlimit"], where=str(path))
    return KeyfileInfo(path=path, pseudonym=who, encrypted=True, opslimit=ops, memlimit=mem)


def load_keyfile(path: Path, *, passphrase: str | None) -> LoadedKey:
    """Load the identity; ``passphrase`` is ignored for a plaintext file."""
    path = Path(path)
    doc = _read(path)
    who = _pseudonym(doc, path)
    if doc["protection"] == PLAINTEXT:
        seed = _hex(doc, "seed", SEED_SIZE, path)
        plaintext = True
    else:
        ops, mem = _check_limits(doc["opslimit"], doc["memlimit"], where=str(path))
        salt = _hex(doc, "salt", argon2id.SALTBYTES, path)
        nonce = _hex(doc, "nonce", nacl.secret.SecretBox.NONCE_SIZE, path)
        box = _hex(doc, "ciphertext", SEED_SIZE + nacl.secret.SecretBox.MACBYTES, path)
        if passphrase is None:
            raise PassphraseRequired(
                f"{path} is encrypted; set {PASSPHRASE_ENV} or run in a terminal to be asked")
        try:
            seed = nacl.secret.SecretBox(_kdf(passphrase, salt, ops, mem)).decrypt(box, nonce)
        except nacl.exceptions.CryptoError:
            raise WrongPassphrase(
                f"wrong passphrase for {path} (or its ciphertext was altered); check "
                f"{PASSPHRASE_ENV} or type it again") from None
        plaintext = False
    identity = SigningIdentity.from_seed(seed)
    if identity.pseudonym != who:
        raise KeyfileError(f"{path}: the key does not belong to the pseudonym the file names "
                           f"({who.short()}); the file was altered")
    return LoadedKey(identity=identity, insecure_plaintext=plaintext)


# -- asking for the passphrase --------------------------------------------------


def passphrase_from_env_or_prompt(
    *,
    prompt: str = "Passphrase for the shinyo identity key: ",
    confirm: bool = False,
    env: Mapping[str, str] | None = None,
    stdin: TextIO | None = None,
    ask: Callable[[str], str] = _getpass.getpass,
) -> str:
    """``SHINYO_PASSPHRASE`` if set, else ask on the terminal, else PassphraseRequired.

    ``confirm`` asks twice (for a new key).  ``env``, ``stdin`` and ``ask``
    default to the process's own; they are parameters so callers can redirect.
    """
    env = os.environ if env is None else env
    value = env.get(PASSPHRASE_ENV)
    if value is not None:
        if not value:
            raise PassphraseRequired(f"{PASSPHRASE_ENV} is set but empty; unset it or set it "
                                     "to the passphrase")
        return value
    stdin = sys.stdin if stdin is None else stdin
    if stdin is None or not stdin.isatty():
        raise PassphraseRequired(f"no passphrase: set {PASSPHRASE_ENV}, or run in a terminal "
                                 "to be asked")
    first = ask(prompt)
    if confirm and ask("Repeat the passphrase: ") != first:
        raise PassphraseRequired("the two passphrases differ; nothing was written, try again")
    return first
