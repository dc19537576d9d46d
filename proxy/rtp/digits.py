"""Key presses in one received RTP stream: RFC 4733 telephone-events and in-band G.711 tones.

A ``DigitListener`` is fed every packet a party sends and returns the key presses it makes
known, each once, with how it was heard and how long before the end of what was heard the key
went down (``since_onset_s``): a press is reported when it begins, not when the key is released,
so that it can be judged by when it was pressed. Telephone-event packets (on the negotiated
payload type) go to a ``TelephoneEventReceiver``, which reports an event at the first of its
packets that arrives (its duration field says how long the key had been down then, RFC 4733
§2.5.1.2) and nothing for the later ones, not for the retransmitted end packets either
(§2.5.1.4). Audio packets of PCMU or PCMA go to the Goertzel ``InbandDtmfDetector``. A phone that
sends telephone-events may also leave the tones in its audio; once the stream has carried one
event, in-band detection stops so a press is never counted twice.

In-band audio is judged ``INBAND_BATCH_SAMPLES`` at a time (80 ms: four 20 ms packets), not
packet by packet: the detector's work is a few array operations per call, whatever the length,
so this costs about a quarter as much, and a press is reported up to 80 ms later. A run of packets
whose timestamps do not follow on is judged at the break, and the detector finds the same
presses in any chunking. The detector reports a tone once it has lasted its minimum and passed
its checks (``InbandDtmfDetector(at_onset=True)``), with the onset it estimates; the press then
went down ``since_onset_s`` before the end of the audio judged. A process with many listeners
does better still: fed with ``judge`` false, they gather their audio, and ``judge_together``
judges all of it in one pass.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

import numpy as np
import numpy.typing as npt

from proxy.rtp.dtmf import DigitDetected, TelephoneEvent, TelephoneEventReceiver
from proxy.rtp.errors import RtpError
from proxy.rtp.g711 import alaw_decode, ulaw_decode
from proxy.rtp.inband import InbandDigit, InbandDtmfDetector, feed_many
from proxy.rtp.packet import RTP_HEADER_LEN, peek_header
from proxy.rtp.seqnum import ts_diff

__all__ = ["INBAND_BATCH_SAMPLES", "DigitListener", "HeardDigit", "judge_together"]

INBAND_BATCH_SAMPLES: Final = 640
"""In-band audio judged at a time (80 ms at 8 kHz); see the module docstring."""

RFC4733: Final = "rfc4733"
INBAND: Final = "inband"
_G711 = ("pcmu", "pcma")
_CLOCK_HZ: Final = 8000  # the RTP clock of PCMU, PCMA, G.722 (RFC 3551 §4.5.2) and their events


@dataclass(frozen=True, slots=True, kw_only=True)
class HeardDigit:
    """A key press: the digit, ``rfc4733`` or ``inband``, and how long the key had been down at
    the end of the packet or audio that made it known (``since_onset_s``)."""

    digit: str
    mechanism: str
    since_onset_s: float = 0.0


class DigitListener:
    """Key presses in one party's RTP. ``codec`` is ``pcmu``, ``pcma`` or ``g722``."""

    __slots__ = (
        "_audio_end",
        "_audio_pt",
        "_codec",
        "_event_pt",
        "_events",
        "_inband",
        "_pending",
        "_pending_samples",
        "_pending_timestamp",
        "events_seen",
    )

    def __init__(
        self, *, codec: str, audio_payload_type: int, event_payload_type: int | None, inband: bool
    ) -> None:
        self._codec = codec
        self._audio_pt = audio_payload_type
        self._event_pt = event_payload_type
        self._events = TelephoneEventReceiver(at_onset=True)
        self._inband = InbandDtmfDetector(at_onset=True) if inband and codec in _G711 else None
        self.events_seen = False
        # G.711 payloads not yet judged in-band: one run of timestamps, from _pending_timestamp.
        self._pending: list[bytes] = []
        self._pending_samples = 0
        self._pending_timestamp = 0
        self._audio_end = 0  # the RTP timestamp just after the last audio judged

    @property
    def audio_waiting(self) -> bool:
        """In-band audio is gathered and not yet judged."""
        return bool(self._pending)

    def feed(self, data: bytes, *, judge: bool = True) -> list[HeardDigit]:
        """The presses one received packet makes known (malformed packets are ignored).

        With ``judge`` false, in-band audio waits until ``judge_together`` judges it (with other
        listeners' audio), but for a run that a break in the timestamps ends here."""
        try:
            payload_type, _sequence, timestamp, _ssrc, _marker = peek_header(data)
        except RtpError:
            return []
        payload = _payload(data)
        if payload is None:
            return []
        if payload_type == self._event_pt and self._event_pt is not None:
            try:
                event = TelephoneEvent.parse(payload)
            except RtpError:
                return []
            if not self.events_seen:
                # From now on the phone signals by RFC 4733; a tone it left in its audio must not be
                # reported again, not even a half-heard one at flush().
                self.events_seen = True
                self._inband = None
                self._pending.clear()
            return _heard_events(self._events.receive(timestamp, event))
        if payload_type == self._audio_pt and self._inband is not None:
            heard: list[HeardDigit] = []
            if self._pending and timestamp != (self._pending_timestamp + self._pending_samples) & 0xFFFFFFFF:
                heard = self._judge_pending()  # a break in the run: lost, late or a jump
            if not self._pending:
                self._pending_timestamp = timestamp
            self._pending.append(payload)
            self._pending_samples += len(payload)  # G.711: one sample per octet
            if judge and self._pending_samples >= INBAND_BATCH_SAMPLES:
                heard += self._judge_pending()
            return heard
        return []

    def _judge_pending(self) -> list[HeardDigit]:
        waiting = self._take_pending()
        if waiting is None:
            return []
        detector, pcm, timestamp = waiting
        return self._heard_inband(detector.feed(pcm, timestamp))

    def _heard_inband(self, presses: Sequence[InbandDigit]) -> list[HeardDigit]:
        return [
            HeardDigit(
                digit=d.digit,
                mechanism=INBAND,
                since_onset_s=max(0, ts_diff(self._audio_end, d.rtp_timestamp)) / _CLOCK_HZ,
            )
            for d in presses
        ]

    def _take_pending(self) -> tuple[InbandDtmfDetector, npt.NDArray[np.int16], int] | None:
        # The run of audio waiting, decoded, with its detector and first timestamp; None if none.
        detector = self._inband
        payload = b"".join(self._pending)
        self._pending.clear()
        self._pending_samples = 0
        if detector is None or not payload:
            return None
        pcm = ulaw_decode(payload) if self._codec == "pcmu" else alaw_decode(payload)
        self._audio_end = (self._pending_timestamp + len(pcm)) & 0xFFFFFFFF
        return detector, pcm, self._pending_timestamp

    def flush(self) -> list[HeardDigit]:
        """Presses still open when the stream ends (an event whose end packets were lost)."""
        heard = _heard_events(self._events.flush())
        if self._inband is not None:
            heard += self._judge_pending()
            heard += self._heard_inband(self._inband.flush())
        return heard


def _heard_events(presses: Sequence[DigitDetected]) -> list[HeardDigit]:
    # Telephone-event presses, each with how long its key had been down at the packet that told.
    return [
        HeardDigit(digit=d.digit, mechanism=RFC4733, since_onset_s=d.duration / _CLOCK_HZ) for d in presses
    ]


def judge_together(listeners: Sequence[DigitListener]) -> list[list[HeardDigit]]:
    """The presses the in-band audio waiting in each of ``listeners`` (each at most once) makes
    known, all of it judged together (``feed_many``): what each would find alone."""
    waiting = [listener._take_pending() for listener in listeners]
    feeds = [item for item in waiting if item is not None]
    found = iter(feed_many(feeds))
    return [
        [] if item is None else listener._heard_inband(next(found))
        for listener, item in zip(listeners, waiting, strict=True)
    ]


def _payload(data: bytes) -> bytes | None:
    """The payload after the fixed header, CSRCs and extension, without padding (RFC 3550 §5.1)."""
    first = data[0]
    offset = RTP_HEADER_LEN + 4 * (first & 0x0F)
    if first & 0x10:
        if len(data) < offset + 4:
            return None
        offset += 4 + 4 * int.from_bytes(data[offset + 2 : offset + 4], "big")
    end = len(data)
    if end < offset:
        return None
    if first & 0x20:
        # The last octet counts the padding, itself included: never zero, never past the header.
        padding = data[-1]
        if padding == 0 or padding > end - offset:
            return None
        end -= padding
    return data[offset:end]
