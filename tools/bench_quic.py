"""Raw QUIC stream throughput: one stream between two processes on loopback.

The baseline ``shinyo bench`` sets sync throughput against: the same trio
driver and aioquic as the node, with no framing, no CBOR and no signatures.
The receiver runs in a child process so each side has its own core.

    python -m shinyo.tools.bench_quic [--megabytes 64] [--datagram-size 1200]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from typing import Final

import trio

from shinyo import Pseudonym, SigningIdentity
from shinyo.node._quic import PeerConnection, TransportLimits, open_endpoint

__all__ = ["measure_stream_throughput"]

_CHUNK: Final = 64 * 1024


async def _serve(limits: TransportLimits) -> None:
    identity = SigningIdentity.from_seed(os.urandom(32))
    async with open_endpoint(node_identity=identity, limits=limits) as endpoint:
        host, port = endpoint.address
        print(host, port, identity.pseudonym.to_text(), flush=True)
        conn = await endpoint.accept()
        stream = await conn.accept_stream()
        total = 0
        while chunk := await stream.receive_some():
            total += len(chunk)
        await stream.send_all(total.to_bytes(8, "big"))
        await stream.send_eof()
        await conn.wait_closed()


async def _send(
    address: tuple[str, int], key: Pseudonym, total: int, limits: TransportLimits
) -> float:
    identity = SigningIdentity.from_seed(os.urandom(32))
    chunk = os.urandom(_CHUNK)
    async with open_endpoint(node_identity=identity, limits=limits) as endpoint:
        conn: PeerConnection = await endpoint.connect(address, expect_key=key)
        stream = await conn.open_stream()
        start = trio.current_time()
        sent = 0
        while sent < total:
            piece = chunk[: min(_CHUNK, total - sent)]
            await stream.send_all(piece)
            sent += len(piece)
        await stream.send_eof()
        echoed = b""
        while part := await stream.receive_some():
            echoed += part
        elapsed = trio.current_time() - start
        if int.from_bytes(echoed, "big") != total:
            raise RuntimeError(f"the receiver counted {echoed!r}, not {total} bytes")
        await conn.aclose()
        return elapsed


def measure_stream_throughput(*, megabytes: int = 64, max_datagram_size: int = 1200) -> float:
    """Bulk throughput of one stream, sender here and receiver in a child process, in MB/s
    (10**6 bytes per second), from the first byte sent to the receiver's byte count."""
    limits = TransportLimits(max_datagram_size=max_datagram_size)
    child = subprocess.Popen(
        [sys.executable, "-m", "shinyo.tools.bench_quic", "--serve", str(max_datagram_size)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None
        host, port, key = child.stdout.readline().split()
        total = megabytes * 1_000_000
        elapsed = trio.run(_send, (host, int(port)), Pseudonym.from_text(key), total, limits)
        child.wait(timeout=30)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    return total / elapsed / 1e6


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--megabytes", type=int, default=64)
    parser.add_argument("--datagram-size", type=int, default=1200)
    parser.add_argument("--serve", type=int, metavar="DATAGRAM_SIZE", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve is not None:
        trio.run(_serve, TransportLimits(max_datagram_size=args.serve))
        return
    rate = measure_stream_throughput(megabytes=args.megabytes, max_datagram_size=args.datagram_size)
    print(
        f"raw QUIC stream: {rate:.1f} MB/s "
        f"({args.megabytes} MB, {args.datagram_size}-byte datagrams, two processes)"
    )


if __name__ == "__main__":
    main()
