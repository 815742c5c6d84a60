"""One bidirectional QUIC stream as a trio ``HalfCloseableStream`` (spec/transport.md 5).

A :class:`QuicStream` runs no task and touches no socket.  Its connection
hands it what the endpoint's receive loop decoded (``_on_data``,
``_on_reset``, ``_on_stop_sending``) and it wakes its reader; a writer gives
bytes to the connection's ``_QuicAdapter`` and has the endpoint transmit them
at once.  Bounded both ways (spec 5.2): ``send_all`` waits while more than
``stream_send_buffer`` bytes are queued but unsent (the connection's
``_progress`` lot wakes it after every transmit), and at most
``stream_receive_buffer`` unread bytes are ever held, because the peer gets
credit only as they are read (``track_reads``/``credit_due`` of the adapter).
Closing it early ends our half with FIN and theirs with
STOP_SENDING(STREAM_CLOSED) (spec 5.3): ``PeerConnection._stream_closed``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import trio

from ._quic_errors import StreamReset

if TYPE_CHECKING:
    from ._quic_conn import PeerConnection


class QuicStream(trio.abc.HalfCloseableStream):
    """One bidirectional QUIC stream as a trio stream.

    ``send_all`` waits while more than ``stream_send_buffer`` bytes are queued
    but unsent; at most ``stream_receive_buffer`` unread bytes are ever held,
    because the peer gets credit only as they are read (spec 5.2).
    """

    def __init__(self, connection: PeerConnection, stream_id: int) -> None:
        self._conn = connection
        self.stream_id = stream_id
        self._received = bytearray()
        self._read = 0
        self._eof_received = False
        self._reset_code: int | None = None
        self._written = 0
        self._eof_sent = False
        self._stop_code: int | None = None
        self._closed = False
        self._sending = False
        self._receiving = False
        self._readable = trio.lowlevel.ParkingLot()

    @property
    def buffered(self) -> int:
        """Bytes received and not yet read."""
        return len(self._received)

    @property
    def unsent(self) -> int:
        """Bytes given to ``send_all`` that have not been sent yet."""
        return self._conn._quic.unsent_bytes(self.stream_id, self._written)

    def _check_writable(self) -> None:
        if self._closed:
            raise trio.ClosedResourceError("this stream was closed")
        if self._eof_sent:
            raise trio.ClosedResourceError("send_eof() was called on this stream")
        if self._stop_code is not None:
            raise StreamReset(
                f"the peer stopped reading stream {self.stream_id} (code 0x{self._stop_code:x})",
                error_code=self._stop_code,
            )
        self._conn._raise_if_closed()

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        if self._sending:
            raise trio.BusyResourceError("another task is sending on this stream")
        self._sending = True
        try:
            await trio.lowlevel.checkpoint()
            bound = self._conn._endpoint.limits.stream_send_buffer
            view = memoryview(data).cast("B")
            while True:
                self._check_writable()
                if not view:
                    return
                unsent = self.unsent
                if unsent < bound:
                    chunk = view[: bound - unsent]
                    view = view[len(chunk) :]
                    self._written += len(chunk)
                    self._conn._quic.send_stream_data(self.stream_id, chunk.tobytes())
                    self._conn._endpoint._transmit(self._conn)
                    continue
                # Full: wait for the queue to drain to half, not to one byte
                # of room, so writes stay large.
                while self.unsent > bound // 2:
                    self._check_writable()
                    await self._conn._progress.park()
        finally:
            self._sending = False

    async def wait_send_all_might_not_block(self) -> None:
        await trio.lowlevel.checkpoint()
        bound = self._conn._endpoint.limits.stream_send_buffer
        while True:
            self._check_writable()
            if self.unsent < bound:
                return
            await self._conn._progress.park()

    async def send_eof(self) -> None:
        if self._sending:
            raise trio.BusyResourceError("another task is sending on this stream")
        await trio.lowlevel.checkpoint()
        if self._eof_sent and not self._closed:
            return
        self._check_writable()
        self._eof_sent = True
        self._conn._quic.send_stream_data(self.stream_id, b"", end_stream=True)
        self._conn._endpoint._transmit(self._conn)

    async def receive_some(self, max_bytes: int | None = None) -> bytes:
        if max_bytes is not None and max_bytes < 1:
            raise ValueError("max_bytes must be at least 1")
        if self._receiving:
            raise trio.BusyResourceError("another task is receiving on this stream")
        self._receiving = True
        try:
            await trio.lowlevel.checkpoint()
            while not self._received:
                if self._closed:
                    raise trio.ClosedResourceError("this stream was closed")
                if self._reset_code is not None:
                    raise StreamReset(
                        f"the peer reset stream {self.stream_id} (code 0x{self._reset_code:x})",
                        error_code=self._reset_code,
                    )
                if self._eof_received:
                    return b""
                self._conn._raise_if_closed()
                await self._readable.park()
            if self._closed:
                raise trio.ClosedResourceError("this stream was closed")
            n = len(self._received) if max_bytes is None else min(max_bytes, len(self._received))
            data = bytes(self._received[:n])
            del self._received[:n]
            self._read += n
            quic = self._conn._quic
            quic.track_reads(self.stream_id, self._read)
            if quic.credit_due(self.stream_id):
                self._conn._endpoint._transmit(self._conn)  # MAX_STREAM_DATA goes out now
            return data
        finally:
            self._receiving = False

    async def aclose(self) -> None:
        if not self._closed:
            self._closed = True
            self._received.clear()
            self._conn._stream_closed(self)
            self._readable.unpark_all()
        await trio.lowlevel.checkpoint()

    # -- events from the connection --

    def _on_data(self, data: bytes, end_stream: bool) -> None:
        if self._closed or self._reset_code is not None:
            return
        self._received += data
        self._eof_received = self._eof_received or end_stream
        self._readable.unpark_all()

    def _on_reset(self, error_code: int) -> None:
        self._reset_code = error_code
        self._received.clear()
        self._readable.unpark_all()

    def _on_stop_sending(self, error_code: int) -> None:
        self._stop_code = error_code
        self._conn._progress.unpark_all()
