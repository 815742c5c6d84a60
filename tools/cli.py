"""The ``shinyo`` command.

Commands so far:

* ``shinyo demo``      -- five ``shinyo node run`` daemons on 127.0.0.1 trade,
  rate blind, cancel, retract, withhold and equivocate; a proof is exported
  and verified (tools/demo.py).  ``--in-process``: one trade and its checks
  without daemons.
* ``shinyo vectors``   -- regenerate spec/vectors/*.json.
* ``shinyo inspect``   -- decode and verify entries or a fork proof given as hex.
* ``shinyo sim``       -- the seeded attack simulation of issue 6 (tools/sim.py,
  docs/SIMULATION.md): every scenario's tables; ``--plots DIR`` for PNGs.

Exit status: 0 success, 1 verification failed, 2 usage error.  Errors are one
line, never a traceback.
"""

from __future__ import annotations

import argparse
import datetime as dt
import gc
import hashlib
import json
import os
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor

import shinyo
from shinyo import Chain, Entry, ForkProof, Participant, ShinyoError, SigningIdentity

from . import gen_vectors
from .cli_id import add_id_commands
from .cli_node import add_node_commands, add_proof_export
from .sim import add_arguments as add_sim_arguments
from .sim import run_command as cmd_sim

EXIT_OK, EXIT_INVALID, EXIT_USAGE = 0, 1, 2


def _say(msg: str = "") -> None:
    print(msg, flush=True)


def cmd_demo(args: argparse.Namespace) -> int:
    """The network demo (tools/demo.py), or a whole trade in-process (spec 7.1)."""
    if not args.in_process:
        from .demo import run_demo  # noqa: PLC0415 - only this command needs it
        return run_demo(keep=args.keep, directory=args.dir)
    seed = args.seed
    rnd = os.urandom if seed is None else _seeded(seed)
    alice = Participant(SigningIdentity.from_seed(rnd(32)))
    bob = Participant(SigningIdentity.from_seed(rnd(32)))
    carol = Participant(SigningIdentity.from_seed(rnd(32)))
    everyone = [alice, bob, carol]
    names = {alice.pseudonym: "alice", bob.pseudonym: "bob", carol.pseudonym: "carol"}
    t = 1_800_000_000

    def gossip(e: Entry) -> Entry:
        for p in everyone:
            if p.pseudonym != e.author:
                p.receive(e)
        who = names[e.author]
        _say(f"  {who:>5} seq {e.seq:<2} {e.kind.label:<14} {e.id.hex()[:16]}…  "
             f"({len(e.encode())} bytes)")
        return e

    _say("shinyo demo: three pseudonyms trade and rate each other blind\n")
    for p in everyone:
        _say(f"  {names[p.pseudonym]:>5} is {p.pseudonym}")
    _say("\n1. alice offers bob a used bicycle in market.example/bikes; bob accepts")
    terms = shinyo.terms_digest(b"used bicycle, 120 EUR", salt=rnd(16))
    trade = gossip(alice.propose(bob.pseudonym, context="market.example/bikes", terms=terms,
                                 timestamp=t)).id
    gossip(bob.accept(trade, timestamp=t + 300))
    _say("\n2. after the handover each commits a hidden rating; bob's commit acknowledges "
         "alice's")
    gossip(alice.commit(trade, stars=5, nonce=rnd(16), tags=["smooth"], timestamp=t + 86_400))
    gossip(bob.commit(trade, stars=4, nonce=rnd(16), timestamp=t + 90_000))
    _say("\n3. alice reveals (acknowledging bob's commitment), then bob reveals")
    gossip(alice.reveal(trade, timestamp=t + 90_100))
    gossip(bob.reveal(trade, timestamp=t + 90_200))
    _say(f"   alice received {alice.session(trade).rating_received()} stars, "
         f"bob received {bob.session(trade).rating_received()} stars")
    _say("\n4. carol proposes a trade to alice, then cancels it before the rating phase")
    other = gossip(carol.propose(alice.pseudonym, context="shop.example", terms=rnd(32),
                                 timestamp=t + 100_000)).id
    gossip(alice.accept(other, timestamp=t + 100_060))
    gossip(carol.cancel(other, timestamp=t + 100_120))
    _say("\n5. bob retracts his rating of alice; alice vouches for carol")
    gossip(bob.retract(trade, timestamp=t + 200_000))
    gossip(alice.vouch(carol.pseudonym, context="shop.example", timestamp=t + 200_100))

    _say("\n6. a verifier with nothing but the bytes checks every chain")
    for p in everyone:
        raws = [e.encode() for e in p.chain.entries]
        chain = Chain.from_entries([Entry.decode(r) for r in raws], now=t + 200_200)
        _say(f"   {names[p.pseudonym]:>5}: {len(chain)} entries, "
             f"{sum(map(len, raws))} bytes, valid")
    raws = [e.encode() for e in alice.chain.entries]
    tampered = bytearray(raws[3])
    tampered[-70] ^= 0x01  # one bit inside the signed payload of alice's reveal
    try:
        Chain.from_entries([Entry.decode(bytes(r)) for r in [*raws[:3], tampered]])
    except shinyo.VerificationError as exc:
        _say(f"   alice with one bit flipped in seq 4: rejected [{exc.failure_class}] {exc}")
    else:  # pragma: no cover - would be a bug in the core
        _say("   BUG: a tampered chain verified")
        return EXIT_INVALID
    fork = Entry.create(carol.identity, seq=1, prev=bytes(32), timestamp=t + 100_000,
                        body=shinyo.Propose(counterparty=bob.pseudonym, context="shop.example",
                                            terms=rnd(32)))
    proof = ForkProof.from_entries(carol.chain[1], fork)
    ForkProof.decode(proof.encode())
    _say(f"   carol signs a second seq 1: fork proof of {len(proof.encode())} bytes verifies"
         " -> carol is equivocating")
    _say("\n7. bob hands anyone one file proving his history; it is checked offline")
    bundle = shinyo.build_proof(bob.chain, bob.others)
    report = shinyo.verify_proof(bundle, now=t + 200_200)
    (outcome,) = report.trades
    _say(f"   proof of {len(bundle)} bytes: valid; trade {outcome.outcome.value} "
         f"({outcome.stars} stars from alice); tier {report.scores.tier}")
    gate = shinyo.meets(report.scores, min_trades=20)
    _say(f"   a shop requiring 20 rated trades says: {'yes' if gate else 'no'} "
         f"({'; '.join(gate.reasons) or 'all conditions met'})")
    _say("\ndone: every step above was signed, hash-linked and verified.")
    return EXIT_OK


def _seeded(seed: int) -> Callable[[int], bytes]:
    counter = 0

    def rnd(n: int) -> bytes:
        nonlocal counter
        counter += 1
        return hashlib.sha256(f"{seed}/{counter}".encode()).digest()[:n]

    return rnd


def cmd_vectors(args: argparse.Namespace) -> int:
    return gen_vectors.main([args.out])


def cmd_inspect(args: argparse.Namespace) -> int:
    """Decode and verify hex-encoded entries (one per argument) or a fork proof."""
    try:
        items = [bytes.fromhex(h) for h in args.hex]
    except ValueError:
        _say("shinyo inspect: arguments must be hex strings")
        return EXIT_USAGE
    if args.fork:
        proof = ForkProof.decode(items[0])
        _say(f"valid fork proof: {proof.author} signed two entries at seq {proof.seq}")
        return EXIT_OK
    entries = [Entry.decode(raw) for raw in items]
    for e in entries:
        _say(f"seq {e.seq} {e.kind.label} by {e.author} at {e.timestamp}: id {e.id.hex()}")
        _say(f"    {e.body}")
    if len(entries) > 1:
        Chain.from_entries(entries)
        _say(f"a valid chain of {len(entries)} entries")
    return EXIT_OK


def _as_of(text: str | None) -> int:
    """--as-of ISO-8601 (a date, or a date and time; UTC unless it says otherwise)."""
    if text is None:
        return int(time.time())
    try:
        moment = dt.datetime.fromisoformat(text)
    except ValueError:
        raise ShinyoError(f"--as-of wants an ISO-8601 time like 2027-01-31T12:00:00Z, "
                          f"got {text!r}") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return int(moment.timestamp())


def _read(path: str) -> bytes:
    try:
        with open(path, "rb") as f:
            data = f.read(shinyo.MAX_PROOF_SIZE + 1)
    except OSError as exc:
        raise ShinyoError(f"cannot read {path}: {exc.strerror}") from None
    return data


def _when(ts: int | None) -> str:
    if ts is None:
        return "-"
    return dt.datetime.fromtimestamp(ts, dt.UTC).strftime("%Y-%m-%d %H:%M")


def _pct(rate: float | None) -> str:
    return "-" if rate is None else f"{rate:.0%}"


def _store_evidence(evidence: shinyo.TrustEvidence, home: str) -> None:
    """A node's chains and fork proofs as trust evidence (spec/trust.md 2, 9)."""
    from pathlib import Path  # noqa: PLC0415 - only --with-store needs these

    from shinyo.node._config import load_config  # noqa: PLC0415
    from shinyo.node._node import STORE_FILE  # noqa: PLC0415
    from shinyo.node._store import Store  # noqa: PLC0415

    config = load_config(Path(home).expanduser())
    with Store.open(config.path(STORE_FILE)) as store:
        evidence.add_chains(Chain.from_entries(store.iter_chain(a)) for a in store.authors())
        for fork in store.forks():
            evidence.add_forked(fork.author)


def _trust(args: argparse.Namespace, evidence: shinyo.TrustEvidence, report: shinyo.ProofReport,
           weighted: list[shinyo.Policy], as_of: int, pool: ThreadPoolExecutor
           ) -> shinyo.TrustReport:
    """Weigh the subject's ratings from the --trust-root pseudonyms (spec/trust.md).

    The walk is the subject's view (spec/trust.md 4.5): its own out-edges are
    left out, so it cannot lend its trust to the raters it brought.
    """
    roots = [shinyo.Pseudonym.from_text(text) for text in args.trust_root]
    for path in args.with_bundle:
        try:
            evidence.add_proof(_read(path), now=as_of, map=pool.map)
        except shinyo.VerificationError as exc:
            raise ShinyoError(f"evidence bundle {path} is invalid "
                              f"[{exc.failure_class}]: {exc}") from None
    if args.with_store:
        _store_evidence(evidence, args.with_store)
    weights = (shinyo.trust_weights(evidence.graph(), roots, subject=report.subject)
               if roots else None)
    return shinyo.trust_score(report.subject, report.trades, as_of=as_of, weights=weights,
                              policies=weighted)


def _print_scores(scores: Mapping[str, float | None]) -> None:
    for name, value in scores.items():
        print(f"  {name:<28} {'-' if value is None else f'{value:.2f}'}")


def cmd_verify(args: argparse.Namespace) -> int:
    """Verify a proof file offline and score its subject (spec/proof.md, spec/trust.md)."""
    chosen = [shinyo.parse_policy(p) for p in args.policy]
    policies = [p for p in chosen if not shinyo.is_weighted(p)]
    weighted = [p for p in chosen if shinyo.is_weighted(p)]
    wants_trust = bool(weighted or args.trust_root or args.with_bundle or args.with_store)
    as_of = _as_of(args.as_of)
    data = _read(args.file)
    evidence = shinyo.TrustEvidence(contexts=args.trust_context or None)
    trust: shinyo.TrustReport | None = None
    # Everything a verification builds stays alive until its report: the cyclic
    # collector would only walk it again and again (10 % of a 100k-entry verify,
    # docs/BENCHMARKS.md).  Paused here, never in the sans-IO core.
    collecting = gc.isenabled()
    gc.disable()
    try:
        with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
            # The subject's own bundle is always evidence (spec/trust.md 9).
            report = evidence.add_proof(data, now=as_of, policies=policies, map=pool.map)
            if wants_trust:
                trust = _trust(args, evidence, report, weighted, as_of, pool)
    except shinyo.VerificationError as exc:
        if args.json:
            print(json.dumps({"schema": "shinyo-verify/1", "valid": False,
                              "failure_class": exc.failure_class, "message": str(exc)},
                             sort_keys=True))
        else:
            print(f"INVALID [{exc.failure_class}] {exc}")
        return EXIT_INVALID
    finally:
        if collecting:
            gc.enable()
    if args.json:
        obj = report.to_json_obj()
        if trust is not None:
            obj["trust"] = trust.to_json_obj()
        print(json.dumps(obj, sort_keys=True, ensure_ascii=True))
        return EXIT_OK
    color = sys.stdout.isatty()
    ok = "\033[32mVALID\033[0m" if color else "VALID"
    s = report.scores
    print(f"{ok}  {report.subject}")
    print(f"  tier {s.tier}   as of {_when(as_of)} UTC   chain head seq {report.head_seq}   "
          f"{report.entries} entries, {report.size} bytes")
    _print_scores(s.scores)
    c = s.counts
    print(f"  trades {c['trades']}: rated {c['rated']}, withheld {c['withheld']}, "
          f"stalled {c['stalled']}, expired {c['expired']}, retracted {c['retracted']}, "
          f"cancelled {c['cancelled']} ({c['cancelled_by_subject']} by subject), "
          f"pending {c['pending']}")
    print(f"  counterparties {c['counterparties']}   completion {_pct(s.completion_rate)}   "
          f"reveal rate {_pct(s.reveal_rate)}")
    if trust is not None:
        left = (trust.graph or {}).get("left_out") or 0
        seen = ("unweighted: " + (trust.fallback or "") if not trust.weighted else
                f"weighted from {len(trust.roots)} root(s) in the subject's view "
                f"({left} own edge(s) left out)")
        print(f"  trust: {seen}; {trust.trusted_rated:g} trusted rated trades, "
              f"tier {trust.tier}" + ("; SUBJECT FORKED" if trust.forked else ""))
        _print_scores(trust.scores)
    if report.forked_counterparties:
        print("  forked counterparties (their evidence ignored): "
              + ", ".join(p.short() for p in report.forked_counterparties))
    if args.trades:
        print(f"\n  {'trade':<17} {'role':<9} {'counterparty':<15} {'status':<10} stars  at")
        for t in report.trades:
            stars = "-" if t.stars is None else str(t.stars)
            print(f"  {t.trade.hex()[:16]} {t.role.value:<9} {t.counterparty.short():<15} "
                  f"{t.outcome.value:<10} {stars:<6} {_when(t.at)}")
    return EXIT_OK


def cmd_proof_inspect(args: argparse.Namespace) -> int:
    """Decode a proof file and print what it holds, without judging it.

    The layout walk bounds memory by the file size (spec/proof.md 3 step 3);
    entries are then decoded one by one and shown even when they fail.
    """
    data = _read(args.file)
    parts = shinyo.read_proof_file(data)
    print(f"proof version {shinyo.PROOF_VERSION}, {len(data)} bytes, {parts.items} items")
    print(f"subject {shinyo.Pseudonym(key=parts.subject)}")
    for key, items in parts.unpacked():
        label = ("own" if key == parts.subject
                 else f"counterparty {shinyo.Pseudonym(key=key).short()}")
        print(f"{label}: {len(items)} entries")
        for raw in items:
            try:
                if isinstance(raw, shinyo.VerificationError):
                    raise raw
                e = Entry.decode(raw)
                print(f"  seq {e.seq:<5} {e.kind.label:<14} {_when(e.timestamp)}  "
                      f"{e.id.hex()[:16]}…")
            except shinyo.VerificationError as exc:
                print(f"  (undecodable: [{exc.failure_class}] {exc})")
    print(f"fork proofs: {len(parts.forks)}")
    return EXIT_OK


def cmd_bench(args: argparse.Namespace) -> int:
    """shinyo against the raw parts, as ratios measured in this run (docs/BENCHMARKS.md)."""
    from . import bench  # noqa: PLC0415 - only this command needs it

    plan = bench.plan_for("quick" if args.quick else "growth" if args.growth else "default",
                          sizes=args.sizes, trades=args.trades,
                          store_entries=args.store_entries, sync_entries=args.sync_entries,
                          quic_megabytes=args.quic_megabytes,
                          convergence_entries=args.convergence_entries)
    report = bench.run(plan, progress=bench.progress_to_stderr)
    if args.json:
        print(json.dumps(report, sort_keys=True))
    else:
        bench.print_report(report)
    return EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="shinyo", description=__doc__.split("\n")[0])
    parser.add_argument("--version", action="version", version=f"shinyo {shinyo.__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="five daemons on 127.0.0.1 trade, rate, fork and verify")
    demo.add_argument("--keep", action="store_true",
                      help="keep the network running until Ctrl-C and print commands to try")
    demo.add_argument("--dir", help="put the nodes' homes here (kept afterwards)")
    demo.add_argument("--in-process", action="store_true",
                      help="no daemons: one trade and its checks in this process")
    demo.add_argument("--seed", type=int, default=None,
                      help="with --in-process: derive keys and nonces from this number")
    demo.set_defaults(func=cmd_demo)
    vec = sub.add_parser("vectors", help="regenerate the spec's test vectors")
    vec.add_argument("out", nargs="?", default="spec/vectors")
    vec.set_defaults(func=cmd_vectors)
    ins = sub.add_parser("inspect", help="decode and verify entries given as hex")
    ins.add_argument("hex", nargs="+")
    ins.add_argument("--fork", action="store_true", help="the argument is a fork proof")
    ins.set_defaults(func=cmd_inspect)
    ver = sub.add_parser("verify", help="verify a proof file offline and score its subject")
    ver.add_argument("file")
    ver.add_argument("--policy", action="append", default=[],
                     help="NAME[:k=v,...], repeatable: mean, window:days=90, last:n=50, "
                          "trimmed:pct=10, bayes:prior=3.5,weight=10 (default: all), or "
                          "any of them as weighted-NAME (spec/trust.md 6)")
    ver.add_argument("--trust-root", action="append", default=[], metavar="PSEUDONYM",
                     help="weigh each rating by its rater's trust from this pseudonym "
                          "(repeatable; without one, weighted policies are unweighted)")
    ver.add_argument("--with-bundle", action="append", default=[], metavar="FILE",
                     help="another proof bundle as trust evidence (repeatable)")
    ver.add_argument("--with-store", metavar="HOME",
                     help="a node's data directory: its chains and fork proofs as evidence")
    ver.add_argument("--trust-context", action="append", default=[], metavar="CONTEXT",
                     help="only trades and vouches in this context are trust evidence")
    ver.add_argument("--as-of", help="judge deadlines at this ISO-8601 time (default: now)")
    ver.add_argument("--json", action="store_true", help="stable JSON (spec/proof.md 5)")
    ver.add_argument("--trades", action="store_true", help="list every trade")
    ver.set_defaults(func=cmd_verify)
    bench = sub.add_parser("bench", help="measure shinyo against the raw parts, as ratios",
                           description="Every figure is a ratio to the raw part measured in "
                           "the same run; see docs/BENCHMARKS.md.")
    preset = bench.add_mutually_exclusive_group()
    preset.add_argument("--quick", action="store_true",
                        help="a fast subset: growth from 1k to 4k entries (~15 s)")
    preset.add_argument("--growth", action="store_true",
                        help="growth from 1k to 100k entries (~3 min; default: 1k to 10k, "
                        "~30 s)")
    bench.add_argument("--json", action="store_true", help="the report as JSON on stdout")
    bench.add_argument("--sizes", type=int, nargs="+", metavar="N",
                       help="entries for every growth series (verify, store, sync)")
    bench.add_argument("--trades", type=int, nargs="+", metavar="N",
                       help="proof bundles to verify, in trades (6 entries each)")
    bench.add_argument("--store-entries", type=int, nargs="+", metavar="N",
                       help="entries for the store insert measurement")
    bench.add_argument("--sync-entries", type=int, nargs="+", metavar="N",
                       help="entries synced between two nodes (e.g. to leave out 100k)")
    bench.add_argument("--quic-megabytes", type=int, metavar="MB",
                       help="bytes for the bulk raw aioquic stream figure (default: 64)")
    bench.add_argument("--convergence-entries", type=int, metavar="N",
                       help="entries five nodes converge on (default: 10000; 0 skips it)")
    bench.set_defaults(func=cmd_bench)
    sim = sub.add_parser("sim", help="the seeded attack simulation (docs/SIMULATION.md)",
                         description="Honest traders and attackers in one seeded market, "
                         "scored by the protocol core; see docs/SIMULATION.md.")
    add_sim_arguments(sim)
    sim.set_defaults(func=cmd_sim)
    add_id_commands(sub)
    add_node_commands(sub)
    proof = sub.add_parser("proof", help="work with proof files")
    psub = proof.add_subparsers(dest="proof_command", required=True)
    pins = psub.add_parser("inspect", help="decode and print a proof without judging it")
    pins.add_argument("file")
    pins.set_defaults(func=cmd_proof_inspect)
    add_proof_export(psub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        code: int = args.func(args)
    except shinyo.VerificationError as exc:
        print(f"shinyo: invalid [{exc.failure_class}]: {exc}", file=sys.stderr)
        return EXIT_INVALID
    except ShinyoError as exc:
        print(f"shinyo: {exc}", file=sys.stderr)
        return EXIT_USAGE
    return code


if __name__ == "__main__":
    raise SystemExit(main())
