"""RFC 4733 telephone-events: payload, digit codes, a de-duplicating receiver and a sender schedule.

Theory of operation (receiver)
------------------------------
A key press reaches us as several RTP packets that all carry the same RTP timestamp, the event's
onset (RFC 4733 §2.5.1.2): a first packet (marker bit set, maybe retransmitted), updates with a
growing duration, and a final packet with the E bit, sent three times (§2.5.1.4). Any of them can be
lost, duplicated or reordered. The receiver keeps one current event, identified by its timestamp:

* a packet with the current timestamp and event code updates the duration; the first one with the
  E bit reports the digit, and everything after that for this timestamp is ignored;
* a packet whose timestamp is newer starts a new event; if the current one never saw its E bit
  (all final packets lost), it is reported first, with the longest duration seen;
* a packet whose timestamp is older than the current event is a straggler and is ignored;
* an event longer than the 16-bit duration field is sent in segments (§2.5.1.3): a packet with
  the same code whose timestamp is exactly 0xFFFF after the current segment's, while the event has
  not ended, continues the same key press;
* ``flush()`` reports a pending event whose final packets never came (call it when the stream
  stops or a timeout the caller keeps expires).

So each key press yields exactly one ``DigitDetected``, and two presses of the same key are told
apart by their timestamps. A receiver made with ``at_onset`` reports each press at the first of
its packets that arrives instead (the start packet, §2.5.1.2, or the update or end packet after it
when it was lost), with the duration that packet carries: how long the key had been down when it
was sent. Nothing after that reports the press again, not its final packets nor their
retransmissions (§2.5.1.4), nor ``flush()``. Timestamps are compared with wrap-around arithmetic
(``seqnum``). One receiver serves one RTP stream (SSRC); make a new one when the SSRC changes.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from proxy.rtp.errors import RtpError
from proxy.rtp.seqnum import ts_diff

__all__ = [
    "EVENT_FLASH",
    "FLASH_DIGIT",
    "MAX_SEGMENT_DURATION",
    "TELEPHONE_EVENT_LEN",
    "DigitDetected",
    "EventPacket",
    "TelephoneEvent",
    "TelephoneEventReceiver",
    "TelephoneEventSender",
    "digit_to_event",
    "event_to_digit",
]

TELEPHONE_EVENT_LEN = 4
MAX_SEGMENT_DURATION = 0xFFFF  # the payload's duration field is 16 bits (RFC 4733 §2.3)

# RFC 4733 §3: DTMF events 0-15, then flash.
_DTMF_DIGITS = "0123456789*#ABCD"
EVENT_FLASH = 16
FLASH_DIGIT = "!"  # the name SIP INFO application/dtmf-relay uses for a hook flash

_EVENT = struct.Struct("!BBH")  # event, E/R/volume, duration


def event_to_digit(event: int) -> str | None:
    """The digit for an event code: ``'0'-'9' '*' '#' 'A'-'D'``, ``'!'`` for flash, else ``None``."""
    if 0 <= event < len(_DTMF_DIGITS):
        return _DTMF_DIGITS[event]
    if event == EVENT_FLASH:
        return FLASH_DIGIT
    return None


def digit_to_event(digit: str) -> int:
    """The event code for a digit (``'a'-'d'`` accepted too); ``RtpError`` for anything else."""
    if digit == FLASH_DIGIT:
        return EVENT_FLASH
    if len(digit) == 1:
        index = _DTMF_DIGITS.find(digit.upper())
        if index >= 0:
            return index
    raise RtpError(f"not a DTMF digit: {digit!r}")


@dataclass(frozen=True, slots=True, kw_only=True)
class TelephoneEvent:
    """One RFC 4733 §2.3 telephone-event payload block.

    ``duration`` is in RTP timestamp units since the event's onset; ``volume`` is the power level
    in -dBm0 (0..63); ``reserved`` is the R bit, kept only so that parsing round-trips.
    """

    event: int
    end: bool = False
    volume: int = 0
    duration: int = 0
    reserved: bool = False

    def __post_init__(self) -> None:
        if not 0 <= self.event <= 0xFF:
            raise RtpError(f"telephone-event code out of range: {self.event}")
        if not 0 <= self.volume <= 0x3F:
            raise RtpError(f"telephone-event volume out of range: {self.volume}")
        if not 0 <= self.duration <= MAX_SEGMENT_DURATION:
            raise RtpError(f"telephone-event duration out of range: {self.duration}")

    @classmethod
    def parse(cls, payload: bytes) -> TelephoneEvent:
        """Parse a 4-byte payload (packed multi-event payloads, RFC 4733 §2.5.1.5, are refused)."""
        if len(payload) != TELEPHONE_EVENT_LEN:
            raise RtpError(f"telephone-event payload must be {TELEPHONE_EVENT_LEN} bytes, got {len(payload)}")
        event, flags, duration = _EVENT.unpack(payload)
        return cls(
            event=event,
            end=bool(flags & 0x80),
            volume=flags & 0x3F,
            duration=duration,
            reserved=bool(flags & 0x40),
        )

    def __bytes__(self) -> bytes:
        flags = self.volume | (0x80 if self.end else 0) | (0x40 if self.reserved else 0)
        return _EVENT.pack(self.event, flags, self.duration)


@dataclass(frozen=True, slots=True, kw_only=True)
class DigitDetected:
    """One key press: its digit, the RTP timestamp of its onset and its duration in timestamp units.

    ``end_received`` is false when no final (E bit) packet arrived and the press was inferred from
    the next event or from ``flush()``; ``duration`` is then the longest duration seen. Reported at
    its onset (``TelephoneEventReceiver(at_onset=True)``), ``duration`` is the one the first packet
    seen carried and ``end_received`` whether that packet was already a final one.
    """

    digit: str
    rtp_timestamp: int
    duration: int
    end_received: bool


_NOTHING: tuple[DigitDetected, ...] = ()


class TelephoneEventReceiver:
    """Turns telephone-event packets of one stream into one ``DigitDetected`` per key press.

    See the module docstring for the rules. Events whose code is not a digit or flash are tracked
    (they still end the previous event) but not reported. ``at_onset``: report each press at the
    first of its packets that arrives, not when it ends.
    """

    __slots__ = (
        "_active",
        "_at_onset",
        "_done",
        "_duration",
        "_event",
        "_prior",
        "_reported",
        "_segment_ts",
        "_timestamp",
    )

    def __init__(self, *, at_onset: bool = False) -> None:
        self._at_onset = at_onset
        self._active = False
        self._done = False  # the current event ended (its E bit, or the next event came)
        self._reported = False  # the current event was reported
        self._timestamp = 0  # onset of the current event
        self._segment_ts = 0  # timestamp of its current segment
        self._event = 0
        self._prior = 0  # duration of its completed segments
        self._duration = 0  # longest duration seen in the current segment

    def receive(self, timestamp: int, event: TelephoneEvent) -> tuple[DigitDetected, ...]:
        """Account for one packet (RTP timestamp and payload); return the key presses it completes."""
        if not self._active:
            return self._start(timestamp, event, _NOTHING)
        distance = ts_diff(timestamp, self._segment_ts)
        if distance == 0 and event.event == self._event:
            # Same event: retransmitted start, update or final packet (RFC 4733 §2.5.2.2).
            if self._done:
                return _NOTHING
            self._duration = max(self._duration, event.duration)
            return self._report(end_received=True) if event.end else _NOTHING
        if distance <= 0:
            return _NOTHING  # a straggler from an earlier event
        if distance == MAX_SEGMENT_DURATION and event.event == self._event and not self._done:
            # Next segment of a long event (RFC 4733 §2.5.1.3).
            self._prior += MAX_SEGMENT_DURATION
            self._segment_ts = timestamp
            self._duration = event.duration
            return self._report(end_received=True) if event.end else _NOTHING
        # A new event; the current one lost its final packets if it is still open (§2.5.2.2).
        pending = _NOTHING if self._done else self._report(end_received=False)
        return self._start(timestamp, event, pending)

    def flush(self) -> tuple[DigitDetected, ...]:
        """Report the current event if it has not been reported yet (its final packets never came)."""
        if self._active and not self._done:
            return self._report(end_received=False)
        return _NOTHING

    def _start(
        self, timestamp: int, event: TelephoneEvent, pending: tuple[DigitDetected, ...]
    ) -> tuple[DigitDetected, ...]:
        self._active = True
        self._done = False
        self._reported = False
        self._timestamp = self._segment_ts = timestamp
        self._event = event.event
        self._prior = 0
        self._duration = event.duration
        if self._at_onset:
            pending += self._detected(end_received=event.end)  # its first packet here (§2.5.1.2)
        if event.end:
            return pending + self._report(end_received=True)
        return pending

    def _report(self, *, end_received: bool) -> tuple[DigitDetected, ...]:
        self._done = True
        return self._detected(end_received=end_received)

    def _detected(self, *, end_received: bool) -> tuple[DigitDetected, ...]:
        # The current event as a key press, once.
        if self._reported:
            return _NOTHING
        self._reported = True
        digit = event_to_digit(self._event)
        if digit is None:
            return _NOTHING
        return (
            DigitDetected(
                digit=digit,
                rtp_timestamp=self._timestamp,
                duration=self._prior + self._duration,
                end_received=end_received,
            ),
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class EventPacket:
    """One telephone-event packet to send.

    ``timestamp_offset`` is added to the stream's RTP timestamp at the event's onset (non-zero only
    for the later segments of a long event); ``send_offset_ms`` is when to send it, in milliseconds
    after the onset.
    """

    payload: bytes
    marker: bool
    timestamp_offset: int
    send_offset_ms: int


@dataclass(frozen=True, slots=True, kw_only=True)
class TelephoneEventSender:
    """The packet schedule for sending a digit as RFC 4733 telephone-events (no clock involved).

    For a press of ``duration_ms``: an update every ``interval_ms`` after the onset while the key
    is down, each carrying the duration so far (so none has a zero duration), the first one with
    the marker bit (§2.5.1.2); then the final packet, E bit set and full duration, at
    ``duration_ms`` and repeated ``end_repeats - 1`` times at the same interval (§2.5.1.4). All
    packets of a segment share one timestamp; every packet needs its own RTP sequence number,
    which the caller assigns. A press longer than 0xFFFF timestamp units is split into segments
    (§2.5.1.3): the segment's last packet carries 0xFFFF, and the next segment starts 0xFFFF
    later without a marker.
    """

    clock_rate_hz: int = 8000
    interval_ms: int = 50
    volume: int = 10
    end_repeats: int = 3

    def __post_init__(self) -> None:
        if self.clock_rate_hz <= 0:
            raise ValueError(f"clock_rate_hz must be positive, got {self.clock_rate_hz}")
        if self.interval_ms <= 0:
            raise ValueError(f"interval_ms must be positive, got {self.interval_ms}")
        if not 0 <= self.volume <= 0x3F:
            raise ValueError(f"volume must be in 0..63 (-dBm0), got {self.volume}")
        if self.end_repeats < 1:
            raise ValueError(f"end_repeats must be at least 1, got {self.end_repeats}")

    def packets(self, digit: str, duration_ms: int) -> list[EventPacket]:
        """The packets for one press of ``digit`` lasting ``duration_ms`` (at least 1 ms)."""
        if duration_ms <= 0:
            raise ValueError(f"duration_ms must be positive, got {duration_ms}")
        event = digit_to_event(digit)
        out: list[EventPacket] = []
        segment_start = 0

        def emit(duration: int, *, end: bool, send_offset_ms: int) -> None:
            payload = TelephoneEvent(event=event, end=end, volume=self.volume, duration=duration)
            out.append(
                EventPacket(
                    payload=bytes(payload),
                    marker=not out,
                    timestamp_offset=segment_start,
                    send_offset_ms=send_offset_ms,
                )
            )

        def close_full_segments(elapsed: int, send_offset_ms: int) -> None:
            nonlocal segment_start
            while elapsed - segment_start > MAX_SEGMENT_DURATION:
                emit(MAX_SEGMENT_DURATION, end=False, send_offset_ms=send_offset_ms)
                segment_start += MAX_SEGMENT_DURATION

        for send_ms in range(self.interval_ms, duration_ms, self.interval_ms):
            elapsed = self._samples(send_ms)
            close_full_segments(elapsed, send_ms)
            emit(elapsed - segment_start, end=False, send_offset_ms=send_ms)
        total = self._samples(duration_ms)
        close_full_segments(total, duration_ms)
        for repeat in range(self.end_repeats):
            emit(total - segment_start, end=True, send_offset_ms=duration_ms + repeat * self.interval_ms)
        return out

    def _samples(self, milliseconds: int) -> int:
        return milliseconds * self.clock_rate_hz // 1000
