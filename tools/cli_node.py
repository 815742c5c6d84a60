"""The node commands: ``shinyo node run|status|stop|trust``, ``peers``, ``trade``,
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


TRUST_TIMEOUT = 120.0
"""Seconds ``node trust`` waits: a proof fetch (up to 20 s) and a selection from a
large store (~9 s per million entries taken, docs/CONTROL.md)."""


def _client(args: argparse.Namespace, *, timeout: float = 30.0) -> ControlClient:
    home = _home(args)
    config = load_config(home)
    return ControlClient(home, socket_name=config.control_socket, timeout=timeout)


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
    v = s["verify"]
    workers = (f"{v['processes']} worker process(es) " + ("up" if v["running"] else "not up")
               if v["processes"] else "threads only")
    print(f"verify     {workers}; batches checked in processes {v['batches_in_processes']}, "
          f"in threads {v['batches_in_threads']}")
    return 0


def cmd_node_stop(args: argparse.Namespace) -> int:
    _call(args, "stop")
    print("stopping")
    return 0


def cmd_node_trust(args: argparse.Namespace) -> int:
    """A pseudonym's ratings weighed from trust roots by a running node (spec/trust.md 9).

    Exit status 0; 1 if the subject's proof is invalid (a forked subject) or
    the gate (``--min-score``, ``--min-trades``, ``--tier``) fails.
    """
    # cli.py imports this module: its helpers are imported when a command runs.
    from .cli import _as_of, _pct, _print_scores  # noqa: PLC0415

    query: dict[str, Any] = {"pseudonym": args.pseudonym}
    if args.trust_root:
        query["roots"] = args.trust_root
    if args.policy:
        query["policies"] = args.policy
    if args.as_of is not None:
        query["as_of"] = _as_of(args.as_of)
    if args.trust_context:
        query["contexts"] = args.trust_context
    gate = {name: value for name, value in (("min_score", args.min_score),
                                            ("min_trades", args.min_trades),
                                            ("tier", args.tier)) if value is not None}
    if gate:
        query["gate"] = gate
    r = _client(args, timeout=TRUST_TIMEOUT).call("trust", **query)
    failed = not r["valid"] or (r["gate"] is not None and not r["gate"]["ok"])
    if args.json:
        _print_json(r)
        return 1 if failed else 0
    if not r["valid"]:
        print(f"INVALID [{r['failure_class']}] {r['message']}")
        return 1
    proof, trust = r["proof"], r["trust"]
    print(f"{r['pseudonym']}   as of {_when(r['as_of'])} UTC"
          + ("   (chains fetched from peers)" if r["fetched"] else ""))
    c = proof["counts"]
    print(f"  proof: chain head seq {proof['head_seq']}, {proof['entries']} entries; "
          f"trades {c['trades']}, rated {c['rated']}; unweighted tier {proof['tier']}, "
          f"completion {_pct(proof['completion_rate'])}")
    whose = "this node's own pseudonym" if r["default_roots"] else "--trust-root"
    left = trust["graph"]["left_out"]
    print(f"  trust: weighted from {len(trust['roots'])} root(s) ({whose}) in the subject's "
          f"view ({left} own edge(s) left out); {trust['trusted_rated']:g} trusted rated "
          f"trades, tier {trust['tier']}" + ("; SUBJECT FORKED" if trust["subject_forked"]
                                             else ""))
    print(f"  evidence: {_evidence(trust['selection'])}")
    _print_scores(trust["scores"])
    if r["gate"] is not None:
        g = r["gate"]
        print("  gate: " + ("passes" if g["ok"] else "fails: " + "; ".join(g["reasons"])))
    return 1 if failed else 0


def _evidence(s: dict[str, Any]) -> str:
    """The selection of spec/trust.md 2.5, in words."""
    took = f"{s['chains']} of the {s['held']} chains held"
    if not s["chains"] and s["stopped_by"] is None:
        return f"{took}: the node holds no chain of a root, so no rater is reached"
    if s["stopped_by"] is None:
        return (f"{took}, to hop {s['hops']}: every chain the roots reach (the whole store's "
                "weights)")
    return (f"{took}, to hop {s['hops']}; CUT at hop {s['stopped_hop']} by {s['stopped_by']} "
            f"(first left out: {s['stopped_at'][:20]}…); raters past it weigh 0")


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
    trust = _with_home(nsub.add_parser(
        "trust", help="weigh a pseudonym's ratings from trust roots with the node's store",
        description="The node builds the pseudonym's proof from what it holds (fetching "
        "missing chains from peers), verifies it and weighs each rating by its rater's trust "
        "from the roots, with its own chains as evidence (spec/trust.md 2.5, 9). Exit 1 if "
        "the proof is invalid or the gate fails."))
    trust.add_argument("pseudonym")
    trust.add_argument("--trust-root", action="append", default=[], metavar="PSEUDONYM",
                       help="a trust root (repeatable; default: the node's own pseudonym)")
    trust.add_argument("--policy", action="append", default=[],
                       help="weighted-NAME[:k=v,...] (repeatable; default: all five "
                            "weighted policies); unweighted ones score the proof")
    trust.add_argument("--as-of", help="judge at this ISO-8601 time (default: now)")
    trust.add_argument("--trust-context", action="append", default=[], metavar="CONTEXT",
                       help="only trades and vouches in this context are evidence")
    trust.add_argument("--min-score", type=float,
                       help="gate: weighted-bayes score at least this")
    trust.add_argument("--min-trades", type=float,
                       help="gate: at least this many trusted rated trades")
    trust.add_argument("--tier", help="gate: at least this weighted tier")
    trust.add_argument("--json", action="store_true", help="the node's answer as JSON")
    trust.set_defaults(func=cmd_node_trust)

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
