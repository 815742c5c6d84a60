"""aioquic's sans-IO ``QuicConnection``, adapted to what spec/transport.md needs.

The endpoint drives one :class:`_QuicAdapter` per connection exactly as it
would a ``QuicConnection`` (``receive_datagram``, ``next_event``,
``datagrams_to_send``, ``handle_timer``); the subclass adds the three things
aioquic has no public interface for (spec 11): the peer's stream limit and no
unidirectional streams (spec 3.3, 5.1), stream credit granted as the
application reads rather than as data arrives (spec 5.2), and the TLS
exporter for the channel binding (spec 4.2).  Each reaches into aioquic
internals, so each is pinned by tests/test_quic.py, and the exporter is
re-derived against the key being installed: a different aioquic fails to
authenticate instead of giving a wrong binding.  It requires aioquic 1.7 or
later (the first to raise MAX_STREAMS as streams finish).

Streams tell it how far the application has read (``track_reads``); it says
when that is enough to send more credit (``credit_due``), so the stream can ask
the endpoint to transmit at once.
"""

from __future__ import annotations

from aioquic import tls
from aioquic.quic.configuration import QuicConfiguration
from aioquic.quic.connection import MAX_STREAM_DATA_FRAME_CAPACITY, QuicConnection
from aioquic.quic.packet import QuicFrameType
from aioquic.quic.packet_builder import QuicPacketBuilder
from aioquic.quic.recovery import QuicPacketSpace
from aioquic.quic.stream import QuicStream as _AioquicStream

from ._peerauth import channel_binding


class _QuicAdapter(QuicConnection):
    """aioquic's ``QuicConnection`` plus what shinyo needs and aioquic has no public knob for.

    Each item reaches into aioquic internals; tests/test_quic.py pins every one:

    * the number of streams a peer may open (aioquic hardcodes 128) -- spec 5.1;
    * receive credit returned as the application reads instead of as data
      arrives, so a slow reader bounds memory -- spec 5.2;
    * the TLS exporter master secret, read from the key schedule when the
      1-RTT keys are installed, for the channel binding -- spec 4.2.
    """

    def __init__(
        self,
        *,
        configuration: QuicConfiguration,
        max_peer_streams: int,
        receive_window: int,
        original_destination_connection_id: bytes | None = None,
    ) -> None:
        super().__init__(
            configuration=configuration,
            original_destination_connection_id=original_destination_connection_id,
        )
        self.channel_binding: bytes | None = None
        self.binding_error: str | None = None
        self._window = receive_window
        self._read_offsets: dict[int, int] = {}
        # Set before the transport parameters are serialised (at connect or at
        # the first datagram).  No unidirectional streams in shinyo/1.
        self._local_max_streams_bidi.value = self._local_max_streams_bidi.sent = max_peer_streams
        self._local_max_streams_uni.value = self._local_max_streams_uni.sent = 0

    def track_reads(self, stream_id: int, offset: int) -> None:
        """The application has read ``offset`` bytes of this stream."""
        self._read_offsets[stream_id] = offset

    def untrack(self, stream_id: int) -> None:
        self._read_offsets.pop(stream_id, None)

    def credit_due(self, stream_id: int) -> bool:
        """Whether the application has read enough to raise this stream's credit."""
        stream = self._streams.get(stream_id)
        return stream is not None and self._raise_due(stream)

    def _raise_due(self, stream: _AioquicStream) -> bool:
        # RFC 9000 4.2: the credit is the bytes read plus one window, raised once
        # half a window has been read since the last raise.
        read = None if stream.stream_id is None else self._read_offsets.get(stream.stream_id)
        window = self._window
        return read is not None and read + window >= stream.max_stream_data_local + window // 2

    def unsent_bytes(self, stream_id: int, written: int) -> int:
        stream = self._streams.get(stream_id)
        return 0 if stream is None else written - stream.sender.highest_offset

    def has_stream(self, stream_id: int) -> bool:
        return stream_id in self._streams

    def _write_stream_limits(
        self, builder: QuicPacketBuilder, space: QuicPacketSpace, stream: _AioquicStream
    ) -> None:
        # Replaces aioquic's rule, which doubles the window as data *arrives* and
        # so lets a fast peer fill memory behind a slow reader (spec 5.2).
        sid = stream.stream_id
        if sid is None or stream.max_stream_data_local == 0 or stream.receiver.is_finished:
            return
        if self._raise_due(stream):
            stream.max_stream_data_local = self._read_offsets[sid] + self._window
        if stream.max_stream_data_local_sent != stream.max_stream_data_local:
            buf = builder.start_frame(
                QuicFrameType.MAX_STREAM_DATA,
                capacity=MAX_STREAM_DATA_FRAME_CAPACITY,
                handler=self._on_max_stream_data_delivery,
                handler_args=(stream,),
            )
            buf.push_uint_var(sid)
            buf.push_uint_var(stream.max_stream_data_local)
            stream.max_stream_data_local_sent = stream.max_stream_data_local

    def _update_traffic_key(
        self,
        direction: tls.Direction,
        epoch: tls.Epoch,
        cipher_suite: tls.CipherSuite,
        secret: bytes,
    ) -> None:
        first = self.channel_binding is None and self.binding_error is None
        if epoch == tls.Epoch.ONE_RTT and first:
            self._capture_binding(secret)
        super()._update_traffic_key(direction, epoch, cipher_suite, secret)

    def _capture_binding(self, first_application_secret: bytes) -> None:
        # The first 1-RTT secret either side installs is the server's application
        # traffic secret, derived like exporter_master_secret from the master
        # secret over the transcript through the server Finished (RFC 8446 7.1).
        # Re-deriving it proves the key schedule is at exactly that point.
        schedule = self.tls.key_schedule
        if schedule is None or schedule.derive_secret(b"s ap traffic") != first_application_secret:
            self.binding_error = "the TLS key schedule is not where this aioquic version was"
            return
        exporter_master_secret = schedule.derive_secret(b"exp master")
        self.channel_binding = channel_binding(schedule.algorithm, exporter_master_secret)
