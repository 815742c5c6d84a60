"""The identity key file (node/_keystore.py)."""

from __future__ import annotations

import io
import json
import os
import pty
import stat
from pathlib import Path
from typing import Any, TypedDict

import pytest
from nacl.pwhash import argon2id

from shinyo import LocalProtocolError, ShinyoError
from shinyo.node._keystore import (
    DEFAULT_MEMLIMIT,
    DEFAULT_OPSLIMIT,
    MAX_KEYFILE_SIZE,
    MAX_MEMLIMIT,
    PASSPHRASE_ENV,
    KeyfileError,
    PassphraseRequired,
    WrongPassphrase,
    create_keyfile,
    load_keyfile,
    passphrase_from_env_or_prompt,
    read_keyfile_info,
)

from .conftest import identity

SEED = bytes(range(32))


class Limits(TypedDict):
    opslimit: int
    memlimit: int


FAST: Limits = {"opslimit": argon2id.OPSLIMIT_MIN, "memlimit": argon2id.MEMLIMIT_MIN}
"""The cheapest Argon2id parameters: keeps these tests fast (one test uses the defaults)."""


def make(path: Path) -> Path:
    create_keyfile(path, SEED, passphrase="correct horse", **FAST)
    return path


def edit(path: Path, **changes: Any) -> None:
    """Rewrite members of a key file (keeping its 0600 mode)."""
    doc = json.loads(path.read_text())
    doc.update(changes)
    path.write_text(json.dumps(doc))


def test_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "key.json"
    who = create_keyfile(path, SEED, passphrase="correct horse", **FAST)
    loaded = load_keyfile(path, passphrase="correct horse")
    assert loaded.identity.seed == SEED and loaded.pseudonym == who
    assert not loaded.insecure_plaintext
    info = read_keyfile_info(path)  # no passphrase needed
    assert info.pseudonym == who and info.encrypted
    assert (info.opslimit, info.memlimit) == (FAST["opslimit"], FAST["memlimit"])
    text = path.read_text()
    assert SEED.hex() not in text and who.to_text() in text


def test_round_trip_at_default_limits(tmp_path: Path) -> None:
    path = tmp_path / "key.json"
    create_keyfile(path, SEED, passphrase="pässwörd")  # the real, interactive cost
    info = read_keyfile_info(path)
    assert (info.opslimit, info.memlimit) == (DEFAULT_OPSLIMIT, DEFAULT_MEMLIMIT)
    # The passphrase is NFC-normalised: the decomposed spelling opens it too.
    assert load_keyfile(path, passphrase="pa\u0308sswo\u0308rd").identity.seed == SEED


def test_wrong_passphrase(tmp_path: Path) -> None:
    path = make(tmp_path / "key.json")
    with pytest.raises(WrongPassphrase, match=PASSPHRASE_ENV):
        load_keyfile(path, passphrase="correct horse!")
    with pytest.raises(PassphraseRequired, match=PASSPHRASE_ENV):
        load_keyfile(path, passphrase=None)


@pytest.mark.parametrize(
    ("changes", "error", "match"),
    [
        ({"ciphertext": "00" * 48}, WrongPassphrase, "altered"),
        ({"nonce": "11" * 24}, WrongPassphrase, "altered"),
        ({"salt": "22" * 16}, WrongPassphrase, "altered"),
        ({"opslimit": argon2id.OPSLIMIT_MIN + 1}, WrongPassphrase, "altered"),
        ({"pseudonym": identity(7).pseudonym.to_text()}, KeyfileError, "altered"),
        ({"pseudonym": "sy1nope"}, KeyfileError, "pseudonym"),
        ({"nonce": "AB" * 24}, KeyfileError, "lowercase hex"),
        ({"salt": "00" * 15}, KeyfileError, "16 bytes"),
        ({"memlimit": MAX_MEMLIMIT + 1}, KeyfileError, "memlimit"),
        ({"opslimit": 0}, KeyfileError, "opslimit"),
        ({"opslimit": True}, KeyfileError, "opslimit"),
        ({"version": 2}, KeyfileError, "unsupported version"),
        ({"format": "other"}, KeyfileError, "not a shinyo key file"),
        ({"protection": "rot13"}, KeyfileError, "unknown protection"),
        ({"extra": 1}, KeyfileError, "unexpected"),
        ({"seed": SEED.hex()}, KeyfileError, "unexpected"),
    ],
)
def test_tampered_file(tmp_path: Path, changes: dict[str, Any], error: type[Exception],
                       match: str) -> None:
    path = make(tmp_path / "key.json")
    edit(path, **changes)
    with pytest.raises(error, match=match):
        load_keyfile(path, passphrase="correct horse")


def test_tampered_structure(tmp_path: Path) -> None:
    path = make(tmp_path / "key.json")
    good = path.read_bytes()
    cases = {
        good[: len(good) // 2]: "truncated",  # a half-written file
        b"": "truncated",
        b"\xff\xfe" + good: "truncated",  # not UTF-8
        b"[1, 2]": "not a shinyo key file",
        good.replace(b'"version": 1,', b'"version": 1, "version": 1,'): "duplicate",
        b" " * (MAX_KEYFILE_SIZE + 1): "larger than",
    }
    for data, match in cases.items():
        path.write_bytes(data)
        with pytest.raises(KeyfileError, match=match):
            load_keyfile(path, passphrase="correct horse")
    path.write_bytes(good + b" " * (MAX_KEYFILE_SIZE - len(good)))  # the size bound itself
    assert load_keyfile(path, passphrase="correct horse").identity.seed == SEED


def test_plaintext_is_labelled(tmp_path: Path) -> None:
    path = tmp_path / "key.json"
    who = create_keyfile(path, SEED, passphrase=None, insecure_plaintext=True)
    doc = json.loads(path.read_text())
    assert doc["protection"] == "plaintext" and doc["warning"].startswith("INSECURE")
    loaded = load_keyfile(path, passphrase=None)
    assert loaded.insecure_plaintext and loaded.identity.seed == SEED
    assert not read_keyfile_info(path).encrypted and read_keyfile_info(path).pseudonym == who
    edit(path, seed="ff" * 32)  # the seed no longer matches the pseudonym
    with pytest.raises(KeyfileError, match="altered"):
        load_keyfile(path, passphrase=None)


def test_create_argument_checks(tmp_path: Path) -> None:
    path = tmp_path / "key.json"
    with pytest.raises(PassphraseRequired, match="insecure-plaintext-key"):
        create_keyfile(path, SEED, passphrase=None)
    with pytest.raises(PassphraseRequired, match="empty"):
        create_keyfile(path, SEED, passphrase="", **FAST)
    with pytest.raises(LocalProtocolError, match="not both"):
        create_keyfile(path, SEED, passphrase="x", insecure_plaintext=True)
    with pytest.raises(LocalProtocolError):
        create_keyfile(path, SEED[:31], passphrase="x", **FAST)
    with pytest.raises(KeyfileError, match="opslimit"):
        create_keyfile(path, SEED, passphrase="x", opslimit=0, memlimit=FAST["memlimit"])
    with pytest.raises(KeyfileError, match="memlimit"):
        create_keyfile(path, SEED, passphrase="x", opslimit=1, memlimit=1024)
    with pytest.raises(KeyfileError, match="memlimit"):
        create_keyfile(path, SEED, passphrase="x", opslimit=1, memlimit=MAX_MEMLIMIT + 1)
    with pytest.raises(KeyfileError, match="directory"):
        create_keyfile(tmp_path / "nope" / "key.json", SEED, passphrase="x", **FAST)
    with pytest.raises(LocalProtocolError, match="str"):
        create_keyfile(path, SEED, passphrase=b"bytes", **FAST)  # type: ignore[arg-type]
    assert list(tmp_path.iterdir()) == []  # nothing half-made was left behind
    with pytest.raises(KeyfileError, match="no key file"):
        load_keyfile(path, passphrase="x")
    with pytest.raises(KeyfileError, match="cannot read"):
        load_keyfile(tmp_path, passphrase="x")  # a directory


def test_refuses_to_overwrite(tmp_path: Path) -> None:
    path = make(tmp_path / "key.json")
    before = path.read_bytes()
    with pytest.raises(KeyfileError, match="refusing to overwrite"):
        create_keyfile(path, bytes(32), passphrase=None, insecure_plaintext=True)
    dangling = tmp_path / "link.json"
    dangling.symlink_to(tmp_path / "elsewhere.json")
    with pytest.raises(KeyfileError, match="refusing to overwrite"):
        make(dangling)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["key.json", "link.json"]


def test_permissions(tmp_path: Path) -> None:
    old = os.umask(0)  # even with a permissive umask the file is private
    try:
        path = make(tmp_path / "key.json")
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    for mode in (0o640, 0o604, 0o620):
        path.chmod(mode)
        with pytest.raises(KeyfileError, match=f"{mode:04o}.*chmod 600"):
            load_keyfile(path, passphrase="correct horse")
        with pytest.raises(KeyfileError, match="chmod 600"):
            read_keyfile_info(path)
    path.chmod(0o400)  # read-only for the owner is fine
    assert load_keyfile(path, passphrase="correct horse").identity.seed == SEED


def test_errors_share_the_root() -> None:
    for cls in (KeyfileError, WrongPassphrase, PassphraseRequired):
        assert issubclass(cls, ShinyoError)


# -- the passphrase helper ---------------------------------------------------------


def test_passphrase_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(PASSPHRASE_ENV, "from env")
    assert passphrase_from_env_or_prompt(stdin=io.StringIO()) == "from env"
    monkeypatch.setenv(PASSPHRASE_ENV, "")
    with pytest.raises(PassphraseRequired, match="empty"):
        passphrase_from_env_or_prompt(stdin=io.StringIO())


def test_no_terminal_no_passphrase(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(PASSPHRASE_ENV, raising=False)
    with pytest.raises(PassphraseRequired, match=PASSPHRASE_ENV):
        passphrase_from_env_or_prompt(stdin=io.StringIO())
    monkeypatch.setattr("sys.stdin", io.StringIO())  # the default: the process's own stdin
    with pytest.raises(PassphraseRequired, match="terminal"):
        passphrase_from_env_or_prompt()


def test_prompt_on_a_terminal() -> None:
    master, slave = pty.openpty()  # a real terminal, so isatty() is true
    asked: list[str] = []

    def ask(prompt: str) -> str:
        asked.append(prompt)
        return "typed" if len(asked) == 1 else "typo"

    try:
        with open(slave, closefd=True) as tty:
            assert passphrase_from_env_or_prompt(env={}, stdin=tty, ask=ask) == "typed"
            assert len(asked) == 1
            asked.clear()
            with pytest.raises(PassphraseRequired, match="differ"):
                passphrase_from_env_or_prompt(env={}, stdin=tty, ask=ask, confirm=True)
            assert len(asked) == 2
    finally:
        os.close(master)
