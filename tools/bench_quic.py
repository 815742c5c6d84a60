"""Raw QUIC stream throughput: one stream between two processes on loopback.

The baseline ``shinyo bench`` sets sync throughput against: the same trio
driver and aioquic as the node, with no framing, no CBOR and no signatures.
The receiver runs in a child process so each side has its own core.  Two
uses: a bulk figure (``measure_stream_throughput``, 64 MB) and, in
``bench_sync``, a stream carrying exactly the bytes a sync carried
(``stream_rate``).

    python -m shinyo.tools.bench_quic [--megabytes 64] [--datagram-size 1200]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from functools import partial
from typing import Final

import trio

from shinyo import Pseudonym, SigningIdentity
from shinyo.node._quic import PeerConnection, TransportLimits, open_endpoint

from .bench_growth import BenchError

__all__ = ["Lines", "measure_stream_throughput", "reap", "stream_rate"]

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
            raise BenchError(f"the receiver counted {echoed!r}, not {total} bytes")
        await conn.aclose()
        return elapsed


class Lines:
    """Newline-delimited messages over a trio receive stream (a child's stdout)."""

    def __init__(self, stream: trio.abc.ReceiveStream) -> None:
        self._stream = stream
        self._buf = b""

    async def read(self) -> bytes | None:
        while b"\n" not in self._buf:
            chunk = await self._stream.receive_some(65536)
            if not chunk:
                return None
            self._buf += chunk
        line, _, self._buf = self._buf.partition(b"\n")
        return line


async def reap(proc: trio.Process) -> None:
    """Kill ``proc`` if it still runs; close its pipes and wait for it."""
    if proc.returncode is None:
        proc.kill()
    with trio.CancelScope(shield=True):
        for pipe in (proc.stdin, proc.stdout):
            if pipe is not None:
                await pipe.aclose()
        await proc.wait()


async def stream_rate(total: int, *, repeat: int = 1,
                      limits: TransportLimits | None = None) -> float:
    """Bytes/s of one raw stream carrying ``total`` bytes, from the first byte sent to
    the receiver's count; best of ``repeat`` tries, a new receiver process each (a few
    MB take tens of milliseconds, so one try is at the mercy of the scheduler)."""
    if type(total) is not int or total < 1:
        raise BenchError("the raw stream must carry at least one byte")
    best = 0.0
    for _ in range(repeat):
        best = max(best, total / await _stream_once(total, limits or TransportLimits()))
    return best


async def _stream_once(total: int, limits: TransportLimits) -> float:
    proc = await trio.lowlevel.open_process(
        [sys.executable, "-m", "shinyo.tools.bench_quic", "--serve",
         str(limits.max_datagram_size)], stdout=subprocess.PIPE)
    try:
        assert proc.stdout is not None
        with trio.fail_after(60):
            line = await Lines(proc.stdout).read()
        if line is None:
            raise BenchError("the raw QUIC receiver exited before it listened")
        host, port, key = line.decode().split()
        elapsed = await _send((host, int(port)), Pseudonym.from_text(key), total, limits)
        with trio.fail_after(30):
            await proc.wait()
    finally:
        await reap(proc)
    return elapsed


def measure_stream_throughput(*, megabytes: int = 64, max_datagram_size: int = 1200) -> float:
    """Bulk throughput of one stream, sender here and receiver in a child process, in MB/s
    (10**6 bytes per second)."""
    limits = TransportLimits(max_datagram_size=max_datagram_size)
    return trio.run(partial(stream_rate, megabytes * 1_000_000, limits=limits)) / 1e6


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
