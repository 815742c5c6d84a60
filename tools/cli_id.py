"""``shinyo id``: create and show the identity key of a node's home.

The key file format is in node/_keystore.py (and spec/node.md when the node
spec lands); the passphrase comes from ``SHINYO_PASSPHRASE`` or a prompt.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

from shinyo.node._config import default_home, load_config
from shinyo.node._keystore import (
    create_keyfile,
    passphrase_from_env_or_prompt,
    read_keyfile_info,
)

__all__ = ["add_id_commands"]


def _home(args: argparse.Namespace) -> Path:
    return Path(args.home).expanduser() if args.home else default_home()


def _key_file(home: Path) -> Path:
    """Where the home's configuration keeps the key (``[identity] key_file``)."""
    config = load_config(home)
    return config.path(config.key_file)


def cmd_id_new(args: argparse.Namespace) -> int:
    home = _home(args)
    home.mkdir(mode=0o700, parents=True, exist_ok=True)
    passphrase = None if args.insecure_plaintext_key else passphrase_from_env_or_prompt(
        prompt="Passphrase for the new identity key: ", confirm=True)
    path = _key_file(home)
    pseudonym = create_keyfile(path, os.urandom(32), passphrase=passphrase,
                               insecure_plaintext=args.insecure_plaintext_key)
    if args.insecure_plaintext_key:
        print("WARNING: the key is stored UNENCRYPTED; use this identity for demos only.")
    print(f"new identity {pseudonym} in {path}")
    return 0


def cmd_id_show(args: argparse.Namespace) -> int:
    info = read_keyfile_info(_key_file(_home(args)))
    if args.json:
        print(json.dumps({"pseudonym": info.pseudonym.to_text(), "encrypted": info.encrypted,
                          "path": str(info.path)}, sort_keys=True))
    else:
        print(info.pseudonym.to_text())
        print(f"  key file {info.path} ({'encrypted' if info.encrypted else 'UNENCRYPTED'})")
    return 0


def add_id_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    ident = sub.add_parser("id", help="create or show this home's identity")
    isub = ident.add_subparsers(dest="id_command", required=True)
    new = isub.add_parser("new", help="create a new identity key (encrypted by default)")
    new.add_argument("--home", help="data directory (default: the platform's user data dir)")
    new.add_argument("--insecure-plaintext-key", action="store_true",
                     help="store the key unencrypted (throwaway demo nodes only)")
    new.set_defaults(func=cmd_id_new)
    show = isub.add_parser("show", help="print the pseudonym (no passphrase needed)")
    show.add_argument("--home", help="data directory (default: the platform's user data dir)")
    show.add_argument("--json", action="store_true", help="one line of JSON")
    show.set_defaults(func=cmd_id_show)
