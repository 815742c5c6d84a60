"""The node commands: ``shinyo node run|status|stop``, ``peers``, ``trade``,
``rate``, ``trades``, ``proof export``.

``node run`` runs the daemon in this process; the others are clients of a
running node's control socket (node/_control.py), found through ``--home``.
Read commands take ``--json`` (one JSON document on stdout, stable keys).
"""

from __future__ import annotations

import argparse
import base64
import datetime
import json
import os
from pathlib import Path
from typing import Any

from shinyo.node._config import default_home, load_config
from shinyo.node._control import ControlClient
from shinyo.node._daemon import run_daemon
from shinyo.node._keystore import PASSPHRASE_ENV, passphrase_from_env_or_prompt, read_keyfile_info

__all__ = ["add_node_commands", "add_proof_export"]


def _home(args: argparse.Namespace) -> Path:
    return Path(args.home).expanduser() if args.home else default_home()


def _client(args: argparse.Namespace) -> ControlClient:
    home = _home(args)
    config = load_config(home)
    return ControlClient(home, socket_name=config.control_socket)


def _call(args: argparse.Namespace, command: str, **kwargs: Any) -> Any:
    return _client(args).call(command, **kwargs)


def _print_json(doc: Any) -> None:
    print(json.dumps(doc, indent=2, sort_keys=True))


def _when(ts: int | None) -> str:
    if ts is None:
        return "-"
    return datetime.datetime.fromtimestamp(ts, datetime.UTC).strftime("%Y-%m-%d %H:%M")


# -- node run / status / stop ---------------------------------------------------------


def cmd_node_run(args: argparse.Namespace) -> int:
    home = _home(args)
    overrides = {"listen": args.listen, "log_level": args.log_level,
                 "log_json": True if args.log_json else None,
                 "bootstrap": tuple(args.bootstrap) if args.bootstrap else None}
    config = load_config(home, file=Path(args.config) if args.config else None,
                         overrides=overrides)
    key = config.path(config.key_file)
    passphrase = None
    if key.exists() and read_keyfile_info(key).encrypted:
        passphrase = passphrase_from_env_or_prompt(prompt=f"Passphrase for {key}: ")
    run_daemon(config, passphrase=passphrase)
    return 0


def cmd_node_status(args: argparse.Namespace) -> int:
    s = _call(args, "status")
    if args.json:
        _print_json(s)
        return 0
    print(f"pseudonym  {s['pseudonym']}")
    print(f"node key   {s['node_key']}")
    print(f"listening  {s['listen']}   up {s['uptime']:.0f} s")
    print(f"peers      {s['peers']} connected, {s['known_peers']} known")
    print(f"chains     {s['chains']} ({s['entries']} entries, {s['own_entries']} own)")
    print(f"trades     {s['trades']}   fork proofs {s['forks']}")
    sync = s["sync"]
    print(f"sync       {sync['wants_in_flight']} wants in flight, "
          f"{sync['held_entries']} entries held for gaps")
    return 0


def cmd_node_stop(args: argparse.Namespace) -> int:
    _call(args, "stop")
    print("stopping")
    return 0


# -- peers ---------------------------------------------------------------------------


def cmd_peers(args: argparse.Namespace) -> int:
    if args.peers_command == "add":
        result = _call(args, "peer_add", address=args.address)
        print(f"dialling {result['address']}")
        return 0
    doc = _call(args, "peers")
    if args.json:
        _print_json(doc)
        return 0
    if not doc["connected"]:
        print("no peers connected")
    for p in doc["connected"]:
        print(f"{p['direction']:>3} {p['address']:<22} node {p['node'][:28]}…  "
              f"in {p['entries_in']} out {p['entries_out']} entries, penalty {p['penalty']}")
    print(f"{len(doc['known'])} addresses known")
    return 0


# -- trades --------------------------------------------------------------------------


def cmd_trade(args: argparse.Namespace) -> int:
    if args.trade_command == "propose":
        terms = Path(args.terms_file).read_bytes() if args.terms_file else b""
        r = _call(args, "propose", **{"with": args.counterparty, "context": args.context,
                                      "terms": terms.hex()})
        if args.json:
            _print_json(r)
        else:
            print(f"proposed trade {r['trade']}")
        return 0
    command = args.trade_command
    extra: dict[str, Any] = {"text": args.text} if command == "respond" else {}
    r = _call(args, command, trade=args.id, **extra)
    print(f"{command}: entry {r['seq']} of trade {r['trade'][:16]}…")
    return 0


def cmd_rate(args: argparse.Namespace) -> int:
    r = _call(args, "rate", trade=args.id, stars=args.stars, tags=args.tag or [],
              **({"comment": args.comment} if args.comment is not None else {}))
    print(f"rated trade {r['trade'][:16]}… with {args.stars} stars (sealed; revealed once "
          "the counterparty has rated or its deadline passed)")
    return 0


def cmd_trades(args: argparse.Namespace) -> int:
    rows = _call(args, "trades")
    if args.json:
        _print_json(rows)
        return 0
    if not rows:
        print("no trades")
        return 0
    print(f"{'trade':<18} {'role':<9} {'state':<11} {'next':<10} {'given':>5} {'recv':>5}  "
          "counterparty / context")
    for r in rows:
        given = "-" if r["given"] is None else r["given"]
        received = "-" if r["received"] is None else r["received"]
        print(f"{r['trade'][:16]:<18} {r['role']:<9} {r['state']:<11} {r['next']:<10} "
              f"{given!s:>5} {received!s:>5}  {r['counterparty'][:30]}… {r['context']}")
    return 0


def cmd_proof_export(args: argparse.Namespace) -> int:
    r = _call(args, "proof", pseudonym=args.pseudonym)
    data = base64.b64decode(r["bundle"])
    out = Path(args.output)
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, out)
    print(f"wrote {len(data)} bytes to {out}; check it with `shinyo verify {out}`")
    return 0


# -- parsers -----------------------------------------------------------------------------


def _with_home(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
    p.add_argument("--home", help="the node's data directory (default: the platform's user "
                   "data dir)")
    return p


def add_node_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    node = sub.add_parser("node", help="run a node, or ask a running one how it is")
    nsub = node.add_subparsers(dest="node_command", required=True)
    run = _with_home(nsub.add_parser("run", help="run the node daemon until SIGINT/SIGTERM"))
    run.add_argument("--config", help="TOML config file (default: HOME/shinyo.toml)")
    run.add_argument("--listen", help="UDP address to accept peers on (host:port)")
    run.add_argument("--bootstrap", action="append", metavar="HOST:PORT",
                     help="a peer to connect to (repeatable; replaces the config's list)")
    run.add_argument("--log-level", choices=("debug", "info", "warning", "error"))
    run.add_argument("--log-json", action="store_true", help="log JSON lines")
    run.epilog = f"An encrypted key's passphrase comes from ${PASSPHRASE_ENV} or a prompt."
    run.set_defaults(func=cmd_node_run)
    status = _with_home(nsub.add_parser("status", help="identity, peers, chains, sync state"))
    status.add_argument("--json", action="store_true")
    status.set_defaults(func=cmd_node_status)
    stop = _with_home(nsub.add_parser("stop", help="stop the running node"))
    stop.set_defaults(func=cmd_node_stop)

    peers = _with_home(sub.add_parser("peers", help="connected and known peers"))
    peers.add_argument("--json", action="store_true")
    psub = peers.add_subparsers(dest="peers_command")
    add = _with_home(psub.add_parser("add", help="connect to a peer now and remember it"))
    add.add_argument("address", metavar="HOST:PORT")
    peers.set_defaults(func=cmd_peers)

    trade = sub.add_parser("trade", help="propose, accept, cancel, retract or respond")
    tsub = trade.add_subparsers(dest="trade_command", required=True)
    prop = _with_home(tsub.add_parser("propose", help="propose a trade to a pseudonym"))
    prop.add_argument("--with", dest="counterparty", required=True, metavar="PSEUDONYM")
    prop.add_argument("--context", required=True, help="where the trade happens (e.g. a market)")
    prop.add_argument("--terms-file", help="the agreed terms; only a salted digest is published")
    prop.add_argument("--json", action="store_true")
    for name, text in (("accept", "accept a proposal made to you"),
                       ("cancel", "cancel a trade before it is accepted"),
                       ("retract", "retract your rating (within 30 days)"),
                       ("respond", "publish a response to the rating you received")):
        p = _with_home(tsub.add_parser(name, help=text))
        p.add_argument("id", help="trade id (at least 8 hex digits, as `shinyo trades` shows)")
        if name == "respond":
            p.add_argument("--text", required=True)
    trade.set_defaults(func=cmd_trade)

    rate = _with_home(sub.add_parser("rate", help="rate a trade blind (1..5 stars)"))
    rate.add_argument("id", help="trade id (at least 8 hex digits)")
    rate.add_argument("--stars", type=int, required=True, choices=range(1, 6))
    rate.add_argument("--tag", action="append", help="a tag (repeatable)")
    rate.add_argument("--comment")
    rate.set_defaults(func=cmd_rate)

    trades = _with_home(sub.add_parser("trades", help="this node's trades and their state"))
    trades.add_argument("--json", action="store_true")
    trades.set_defaults(func=cmd_trades)


def add_proof_export(psub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    exp = _with_home(psub.add_parser("export", help="write a proof bundle about a pseudonym "
                                     "(from a running node)"))
    exp.add_argument("pseudonym")
    exp.add_argument("-o", "--output", required=True, metavar="FILE")
    exp.set_defaults(func=cmd_proof_export)
