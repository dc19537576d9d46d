"""Pacing and numbering of outgoing media, without a clock.

``PacedClock`` answers "when is frame n due?" against absolute deadlines, ``start + n * interval``,
so that scheduling jitter never accumulates (a loop of ``sleep(interval)`` drifts by every late
wake-up). The caller owns the clock and passes ``now``.

``Repacketized`` cuts audio held as 20 ms frames into packets of another duration (the ``a=ptime``
a party asked for, RFC 4566 §6) as they are sent, without copying the whole of it, from any point
of it (a party that asks for another duration midway hears the rest in that one).

``RtpStreamState`` numbers one outgoing RTP stream (one SSRC) that is fed by successive sources:
frames we generate (an announcement, a beep) and packets relayed from the other leg. It keeps the
receiver's view continuous across every switch.

Contract of ``RtpStreamState``
------------------------------
* The first packet of the stream carries exactly the ``sequence`` and ``timestamp`` given to the
  constructor, with the marker bit set.
* Sequence numbers of emitted packets are consecutive (modulo 2**16) across switches: the first
  packet after a switch gets the last emitted sequence number plus one.
* Generated frames follow each other by their sample count: a frame's timestamp is the previous
  frame's timestamp plus the previous frame's ``samples``.
* The first packet after a switch is placed ``elapsed_samples`` after the last emitted packet's
  timestamp: the media time that passed between the two packets' starts, which the caller measures
  with its clock. It is raised to the last generated frame's length if less, so media never
  overlap, and to at least 1, so timestamps always move forward across a switch.
* The first packet after a switch has the marker bit set: it starts a talkspurt after a timestamp
  discontinuity (RFC 3551 §4.1). Relayed packets otherwise keep their own marker bit.
* After ``continue_from``, a relayed packet is shifted by constant offsets, so the source's own
  gaps, reordering and timestamp steps pass through unchanged. A source packet older than the one
  the switch was anchored on (reordered across the switch) maps onto sequence numbers already used;
  the caller should drop it (``seqnum.seq_newer(anchor, source_sequence)``).
  Call ``continue_from`` again whenever the source changes (new SSRC, or a restart).
* The state remembers the newest emitted sequence number and its timestamp (wrap-around compare),
  which is what the next switch continues from.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import overload

from proxy.rtp.errors import RtpError
from proxy.rtp.seqnum import seq_add, seq_newer, ts_add

__all__ = ["PacedClock", "Repacketized", "RtpStreamState"]


@dataclass(frozen=True, slots=True)
class PacedClock:
    """Absolute deadlines for frames 0, 1, 2, ...: frame ``n`` is due at ``start + n * interval_s``.

    Times are in seconds on the caller's clock (e.g. the event loop's monotonic time).
    """

    start: float
    interval_s: float

    def __post_init__(self) -> None:
        if not (self.interval_s > 0 and math.isfinite(self.interval_s)):
            raise ValueError(f"interval_s must be positive and finite, got {self.interval_s}")

    def deadline(self, n: int) -> float:
        """When frame ``n`` is due."""
        return self.start + n * self.interval_s

    def frames_due(self, now: float) -> int:
        """How many frames are due at ``now``: the count of ``n >= 0`` with ``deadline(n) <= now``.

        A sender that has sent ``sent`` frames sends frames ``sent .. frames_due(now) - 1`` now,
        then waits until ``deadline(frames_due(now))``.
        """
        if now < self.start:
            return 0
        n = int((now - self.start) // self.interval_s) + 1
        # Settle float rounding so that the answer agrees exactly with deadline().
        while self.deadline(n) <= now:
            n += 1
        while n > 0 and self.deadline(n - 1) > now:
            n -= 1
        return n

    def next_deadline(self, now: float) -> float:
        """The first deadline strictly after ``now``."""
        return self.deadline(self.frames_due(now))


class Repacketized(Sequence[bytes]):
    """The audio of ``frames`` from byte ``start`` on, cut into packets of ``packet_bytes``, each
    made when it is asked for.

    The frames are constant-bitrate audio, every one as long as the first but the last, which may
    be shorter; a byte boundary must be a sample boundary (PCMU, PCMA and G.722 at 64 kbit/s: one
    byte per tick of their 8000 Hz RTP clock, RFC 3551 §4.5.2, §4.5.14). Played once, the last
    packet holds what is left, filled up to ``packet_bytes`` with ``silence`` (one byte of the
    codec's silence, repeated) when it is given, so that every packet lasts the duration the
    receiver asked for (RFC 3551 §4.5). ``loop``: the audio repeats without a seam, and the
    packets run through it as many times as it takes to end on a packet boundary, so that
    repeating the packets repeats the audio.
    """

    __slots__ = (
        "_count",
        "_frame_bytes",
        "_frames",
        "_loop",
        "_packet_bytes",
        "_silence",
        "_start",
        "_total",
    )

    def __init__(
        self,
        frames: Sequence[bytes],
        packet_bytes: int,
        *,
        loop: bool = False,
        silence: bytes = b"",
        start: int = 0,
    ) -> None:
        if packet_bytes <= 0:
            raise ValueError(f"packet_bytes must be positive, got {packet_bytes}")
        if len(silence) > 1:
            raise ValueError(f"silence must be one byte, got {len(silence)}")
        frame_bytes = len(frames[0]) if frames else 0
        if any(len(frame) != frame_bytes for frame in frames[:-1]) or (
            frames and not 0 < len(frames[-1]) <= frame_bytes
        ):
            raise ValueError(
                "every frame but the last must be as long as the first; the last, not empty nor longer"
            )
        self._frames = frames
        self._frame_bytes = frame_bytes
        self._packet_bytes = packet_bytes
        self._loop = loop
        self._silence = silence
        self._total = (len(frames) - 1) * frame_bytes + len(frames[-1]) if frames else 0
        if not 0 <= start <= self._total or (loop and self._total and start == self._total):
            raise ValueError(f"start {start} is not within the audio's {self._total} bytes")
        self._start = start
        if loop and self._total:
            self._count = math.lcm(self._total, packet_bytes) // packet_bytes
        else:
            self._count = -(-(self._total - start) // packet_bytes)

    def __len__(self) -> int:
        return self._count

    @overload
    def __getitem__(self, index: int) -> bytes: ...

    @overload
    def __getitem__(self, index: slice) -> Sequence[bytes]: ...

    def __getitem__(self, index: int | slice) -> bytes | Sequence[bytes]:
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(self._count))]
        if index < 0:
            index += self._count
        if not 0 <= index < self._count:
            raise IndexError(f"packet {index} of {self._count}")
        start = self._start + index * self._packet_bytes
        end = start + self._packet_bytes if self._loop else min(start + self._packet_bytes, self._total)
        pieces: list[bytes] = []
        while start < end:
            frame_index, within = divmod(start % self._total, self._frame_bytes)
            frame = self._frames[frame_index]
            taken = frame[within : within + end - start]
            pieces.append(taken)
            start += len(taken)
        packet = b"".join(pieces)
        if len(packet) < self._packet_bytes and self._silence:
            packet += self._silence * (self._packet_bytes - len(packet))
        return packet


class RtpStreamState:
    """Sequence numbers, timestamps and marker bits for one outgoing RTP stream.

    Two modes: generating frames locally (``next_frame``), which is the mode at construction and
    after ``resume_local``; and relaying another source (``translate``), after ``continue_from``.
    Calling the method of the other mode raises ``RtpError``. See the module docstring for the
    contract.
    """

    __slots__ = (
        "_last_samples",
        "_last_seq",
        "_last_ts",
        "_marker_pending",
        "_next_ts",
        "_relaying",
        "_seq_offset",
        "_ssrc",
        "_started",
        "_ts_offset",
    )

    def __init__(self, *, ssrc: int, sequence: int, timestamp: int) -> None:
        if not 0 <= ssrc <= 0xFFFFFFFF:
            raise ValueError(f"ssrc out of range: {ssrc}")
        if not 0 <= sequence <= 0xFFFF:
            raise ValueError(f"sequence out of range: {sequence}")
        if not 0 <= timestamp <= 0xFFFFFFFF:
            raise ValueError(f"timestamp out of range: {timestamp}")
        self._ssrc = ssrc
        self._started = False
        self._last_seq = seq_add(sequence, -1)
        self._last_ts = timestamp
        self._last_samples = 0
        self._next_ts = timestamp
        self._marker_pending = True
        self._relaying = False
        self._seq_offset = 0
        self._ts_offset = 0

    @classmethod
    def following(cls, *, ssrc: int, sequence: int, timestamp: int, samples: int) -> RtpStreamState:
        """A stream that goes on from a packet someone else sent in it: ``(sequence, timestamp)``,
        ``samples`` long, is its last packet, and the next frame follows it with no marker."""
        state = cls(ssrc=ssrc, sequence=seq_add(sequence, 1), timestamp=ts_add(timestamp, samples))
        state._started = True
        state._last_ts = timestamp
        state._last_samples = samples
        state._marker_pending = False
        return state

    @property
    def ssrc(self) -> int:
        """The stream's SSRC: every emitted packet carries it."""
        return self._ssrc

    @property
    def last_sequence(self) -> int | None:
        """Newest emitted sequence number (``None`` before the first packet)."""
        return self._last_seq if self._started else None

    @property
    def last_timestamp(self) -> int | None:
        """Timestamp of the newest emitted packet (``None`` before the first packet)."""
        return self._last_ts if self._started else None

    @property
    def relaying(self) -> bool:
        """True after ``continue_from`` until ``resume_local``."""
        return self._relaying

    def next_frame(self, samples: int) -> tuple[int, int, bool]:
        """``(sequence, timestamp, marker)`` for the next generated frame of ``samples`` samples."""
        if self._relaying:
            raise RtpError("next_frame while relaying: call resume_local first")
        if samples <= 0:
            raise ValueError(f"samples must be positive, got {samples}")
        sequence = seq_add(self._last_seq, 1)
        timestamp = self._next_ts
        marker = self._marker_pending
        self._marker_pending = False
        self._started = True
        self._last_seq = sequence
        self._last_ts = timestamp
        self._last_samples = samples
        self._next_ts = ts_add(timestamp, samples)
        return sequence, timestamp, marker

    def resume_local(self, *, elapsed_samples: int) -> None:
        """Switch to generated frames; the next one starts ``elapsed_samples`` after the last packet."""
        self._next_ts = self._switch_timestamp(elapsed_samples)
        self._relaying = False
        self._marker_pending = True

    def continue_from(self, *, source_sequence: int, source_timestamp: int, elapsed_samples: int) -> None:
        """Relay another source from its packet ``(source_sequence, source_timestamp)`` on.

        That packet becomes the stream's next one: last sequence number plus one, and a timestamp
        ``elapsed_samples`` after the last packet's. Later source packets keep their distance to it.
        """
        first_ts = self._switch_timestamp(elapsed_samples)
        first_seq = seq_add(self._last_seq, 1)
        self._seq_offset = seq_add(first_seq, -source_sequence)
        self._ts_offset = ts_add(first_ts, -source_timestamp)
        self._relaying = True
        self._marker_pending = True

    def translate(self, source_sequence: int, source_timestamp: int, marker: bool) -> tuple[int, int, bool]:
        """``(sequence, timestamp, marker)`` to write into a relayed source packet (``rewrite_header``)."""
        if not self._relaying:
            raise RtpError("translate before continue_from")
        sequence = seq_add(source_sequence, self._seq_offset)
        timestamp = ts_add(source_timestamp, self._ts_offset)
        if self._marker_pending:
            marker = True
            self._marker_pending = False
        if not self._started or seq_newer(sequence, self._last_seq):
            self._started = True
            self._last_seq = sequence
            self._last_ts = timestamp
            self._last_samples = 0
        return sequence, timestamp, marker

    @property
    def relay_offsets(self) -> tuple[int, int]:
        """``(sequence offset, timestamp offset)`` that ``translate`` adds (modulo 2**16 and 2**32)
        to the relayed source's numbers, so that the relay can renumber packets itself.

        Only once the first relayed packet, which carries the marker, went through ``translate``;
        report what the relay sent with ``relayed_up_to``.
        """
        if not self._relaying or self._marker_pending:
            raise RtpError("relay_offsets before the first relayed packet was translated")
        return self._seq_offset, self._ts_offset

    def relayed_up_to(self, sequence: int, timestamp: int) -> None:
        """Someone else renumbered packets with ``relay_offsets``, and ``(sequence, timestamp)`` is
        the newest one it sent (it keeps the newest packet by packet): the stream continues from it.

        Taken as it is, not compared with the last packet this state saw: a relay that ran for
        long may have moved more than half the sequence space past it (RFC 1982 cannot order that).
        """
        if not self._relaying:
            raise RtpError("relayed_up_to before continue_from")
        self._started = True
        self._last_seq = sequence
        self._last_ts = timestamp
        self._last_samples = 0

    def _switch_timestamp(self, elapsed_samples: int) -> int:
        if elapsed_samples < 0:
            raise ValueError(f"elapsed_samples must not be negative, got {elapsed_samples}")
        if not self._started:
            return self._last_ts  # the constructor's timestamp
        # Never before the end of the last generated frame, and always after the last packet.
        return ts_add(self._last_ts, max(elapsed_samples, self._last_samples, 1))
