"""A signature worker: ``python -m shinyo.node._sigworker`` (node/_verifier.py).

It reads requests on stdin and writes one answer per request on stdout, until
stdin ends -- which is also how it learns that its node is gone, however the
node ended (even ``kill -9``).  It imports nothing of the program that started
it (unlike a multiprocessing worker, which imports the parent's main module).

Wire format (all integers big-endian; the parent is the only writer, so a
malformed request is a bug and ends the worker, exit 2):

* ready: the worker writes one byte ``R`` once its imports are done;
* request: ``u32 length`` of the body; the body is ``u32 n`` and then ``n``
  checks, each ``key[32] signature[64] u32 payload_length payload``;
* answer: ``u32 length`` of the body; the body is ``u32 m`` and then ``m``
  failures in index order, each ``u32 index u8 what`` (what: 1 the key fails
  spec 4.1, 2 the signature fails spec 6.4 step 7b).
"""

from __future__ import annotations

import struct
import sys
from typing import BinaryIO, Final

from shinyo._entry import _key_and_signature_failures

__all__ = ["MAX_REQUEST", "decode_answer", "encode_request", "main"]

MAX_REQUEST: Final = 16 * 1024 * 1024
"""Bytes of one request body at most: a batch is one message's entries."""
_HEAD = struct.Struct(">I")
_CHECK = struct.Struct(">32s64sI")
_FAILURE = struct.Struct(">IB")


def encode_request(checks: list[tuple[bytes, bytes, bytes]]) -> bytes:
    """A request for ``checks``: (author key, payload, signature) each."""
    parts = [_HEAD.pack(len(checks))]
    for key, payload, signature in checks:
        parts += (_CHECK.pack(key, signature, len(payload)), payload)
    body = b"".join(parts)
    return _HEAD.pack(len(body)) + body


def decode_answer(body: bytes) -> list[tuple[int, int]]:
    """The failures of an answer's body: (index, what)."""
    (m,) = _HEAD.unpack_from(body)
    if len(body) != _HEAD.size + m * _FAILURE.size:
        raise ValueError("a signature worker's answer has the wrong length")
    return [_FAILURE.unpack_from(body, _HEAD.size + i * _FAILURE.size) for i in range(m)]


def _read(stream: BinaryIO, n: int) -> bytes | None:
    data = stream.read(n)
    if not data:
        return None
    while len(data) < n:
        more = stream.read(n - len(data))
        if not more:
            raise EOFError("a request ended early")
        data += more
    return data


def _checks(body: bytes) -> list[tuple[bytes, bytes, bytes]]:
    (n,) = _HEAD.unpack_from(body)
    at, out = _HEAD.size, []
    for _ in range(n):
        key, signature, length = _CHECK.unpack_from(body, at)
        at += _CHECK.size
        out.append((key, body[at : at + length], signature))
        at += length
    if at != len(body):
        raise ValueError("a request's checks do not fill its body")
    return out


def main() -> int:
    stdin, stdout = sys.stdin.buffer, sys.stdout.buffer
    stdout.write(b"R")
    stdout.flush()
    while True:
        head = _read(stdin, _HEAD.size)
        if head is None:
            return 0  # the node closed our stdin, or is gone
        (length,) = _HEAD.unpack(head)
        if length > MAX_REQUEST:
            raise ValueError(f"a request of {length} bytes")
        body = _read(stdin, length)
        if body is None:
            raise EOFError("a request ended early")
        failures = _key_and_signature_failures(_checks(body))
        answer = _HEAD.pack(len(failures)) + b"".join(_FAILURE.pack(i, w) for i, w in failures)
        stdout.write(_HEAD.pack(len(answer)) + answer)
        stdout.flush()


if __name__ == "__main__":
    try:
        sys.exit(main())
    except (ValueError, EOFError, struct.error) as exc:
        print(f"shinyo signature worker: {exc}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        sys.exit(0)
