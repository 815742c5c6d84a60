"""Framing of wire messages on a QUIC stream, and the order rules of a session.

spec/wire.md 3 and 6.  Sans-IO, like h11: :class:`FrameDecoder` turns the bytes
received on one direction of a stream into message objects, and
:func:`encode_frame` turns a message into the bytes to send.  Nothing here
touches a socket or a clock.

A frame is a 4-byte big-endian length, then that many bytes: one message.  A
fixed-size prefix (rather than a CBOR head) is known complete after exactly 4
bytes, so an oversize frame is refused before any of its body is buffered and
no decoder has to parse or canonicality-check a variable-length head.
"""

from __future__ import annotations

from collections.abc import Sequence

from ._errors import LocalProtocolError
from ._wire import (
    FRAME_HEADER_SIZE,
    MAX_FRAME_SIZE,
    SUPPORTED_VERSIONS,
    Bye,
    FrameTooLarge,
    Hello,
    IncompatibleVersion,
    MalformedMessage,
    Message,
    ProtocolViolation,
    TruncatedFrame,
    WireError,
    decode_message,
)

__all__ = ["FrameDecoder", "SessionGuard", "encode_frame", "negotiate"]


def encode_frame(msg: Message) -> bytes:
    """The bytes to write on the stream for ``msg``: length, then body (wire.md 3.1)."""
    body = msg.encode()
    if len(body) > MAX_FRAME_SIZE:  # pragma: no cover - every valid message fits (wire.md 5)
        raise LocalProtocolError(f"{msg.NAME} message of {len(body)} bytes exceeds the frame")
    return len(body).to_bytes(FRAME_HEADER_SIZE, "big") + body


class FrameDecoder:
    """Incremental decoder for one direction of a stream (wire.md 3.2).

    ``feed`` takes whatever bytes arrived and returns the complete messages in
    them; at most one partial frame is held.  A length prefix over the limit is
    refused as soon as its 4 bytes are in, before any of the body is kept.
    Errors are final, as the stream has lost its framing: every later call
    raises the same error.
    """

    __slots__ = ("_buf", "_done", "_error", "_max", "_need")

    def __init__(self, *, max_frame_size: int = MAX_FRAME_SIZE) -> None:
        self._max = max_frame_size
        self._buf = bytearray()
        self._need: int | None = None  # body length of the frame being read
        self._error: WireError | None = None
        self._done = False

    @property
    def buffered(self) -> int:
        """Bytes held of the frame in progress."""
        return len(self._buf)

    def feed(self, data: bytes | bytearray | memoryview) -> list[Message]:
        return [msg for msg, _ in self.feed_frames(data)]

    def feed_frames(self, data: bytes | bytearray | memoryview) -> list[tuple[Message, int]]:
        """Like :meth:`feed`, with each message's frame size (length field
        included): what a rate limit charges (wire.md 10.1)."""
        if self._error is not None:
            raise self._error
        if self._done:
            raise LocalProtocolError("feed() after eof()")
        view = memoryview(data).cast("B")
        out: list[tuple[Message, int]] = []
        try:
            while view:
                if self._need is None:
                    take = FRAME_HEADER_SIZE - len(self._buf)
                    self._buf += view[:take]
                    view = view[take:]
                    if len(self._buf) < FRAME_HEADER_SIZE:
                        break
                    size = int.from_bytes(self._buf, "big")
                    self._buf.clear()
                    if size > self._max:
                        raise FrameTooLarge(
                            f"frame of {size} bytes announced; the limit is {self._max}")
                    if size == 0:
                        raise MalformedMessage("empty frame")
                    self._need = size
                    continue
                take = self._need - len(self._buf)
                if not self._buf and len(view) >= take:
                    body = bytes(view[:take])  # the whole body at hand: one copy
                else:
                    self._buf += view[:take]
                    if len(self._buf) < self._need:
                        break
                    body = bytes(self._buf)
                    self._buf.clear()
                view = view[take:]
                self._need = None
                out.append((decode_message(body), FRAME_HEADER_SIZE + len(body)))
        except WireError as exc:
            self._fail(exc)
            raise
        return out

    def eof(self) -> None:
        """The peer finished its side of the stream; raise if it stopped mid-frame."""
        if self._error is not None:
            raise self._error
        self._done = True
        if self._need is not None or self._buf:
            self._fail(TruncatedFrame(
                f"stream ended inside a frame ({len(self._buf)} bytes of it received)"))
            assert self._error is not None
            raise self._error

    def _fail(self, exc: WireError) -> None:
        self._error = exc
        self._buf = bytearray()
        self._need = None


# -- Session rules (wire.md 6) ---------------------------------------------------------


def negotiate(ours: Sequence[int], hello: Hello) -> int:
    """The highest wire version both sides speak (wire.md 6.1)."""
    common = set(ours) & set(hello.versions)
    if not common:
        raise IncompatibleVersion(
            f"the peer speaks wire versions {list(hello.versions)}, we speak {list(ours)}")
    return max(common)


class SessionGuard:
    """Order of received messages (wire.md 6.2): Hello first and once, nothing after Bye."""

    __slots__ = ("_versions", "closed", "hello", "version")

    def __init__(self, *, versions: Sequence[int] = SUPPORTED_VERSIONS) -> None:
        self._versions = tuple(versions)
        self.hello: Hello | None = None
        self.version: int | None = None
        self.closed = False

    def receive(self, msg: Message) -> None:
        """Check ``msg`` may come now; raise :class:`ProtocolViolation` or
        :class:`IncompatibleVersion` if not."""
        if self.closed:
            raise ProtocolViolation(f"{msg.NAME} after bye")
        if isinstance(msg, Bye):
            self.closed = True
        elif isinstance(msg, Hello):
            if self.hello is not None:
                raise ProtocolViolation("a second hello")
            self.hello = msg
            self.version = negotiate(self._versions, msg)
        elif self.hello is None:
            raise ProtocolViolation(f"{msg.NAME} before hello; hello comes first")
