"""The stereo call recorder core, sans-IO: RTP packets of both directions in, stereo PCM out.

The outside party is the left channel and the PBX side the right one. Output is 16-bit signed,
interleaved stereo at 8 kHz (narrowband) or 16 kHz (wideband); G.711 (PCMU, PCMA) and G.722 are
decoded, any other payload type is counted as ``other_dropped``.

Narrowband and wideband
-----------------------
A stored recording has one sample rate, so the output rate is fixed when the recorder is made:
it is wideband (16 kHz) when either channel's ``MediaFormat`` includes G.722 (payload type 9),
narrowband (8 kHz) otherwise, unless ``wideband`` says which; ``sample_rate_hz`` and
``rows_per_unit`` tell which. Either kind records every codec its formats accept, so a re-INVITE
that changes one leg's codec leaves both parties recorded when the formats accept both codecs
(or ``set_format`` follows the change):

* G.722 in a wideband recorder is decoded to 16 kHz; in a narrowband one only its lower sub-band
  is decoded, which is the 0-4 kHz audio at 8 kHz (ITU-T G.722 splits the band in two), free of
  aliasing.
* G.711 in a wideband recorder is decoded to 8 kHz and every sample is written twice. Timing stays
  exact and chunked drains stay identical; the 4-8 kHz band then holds attenuated images of the
  narrowband audio (a 3 kHz tone leaves one at 5 kHz), which costs no intelligibility.

Units
-----
Positions count units of the 8000 Hz RTP clock all three codecs share (RFC 3551 §4.5.2: G.722's
timestamps run at 8000 Hz although it samples at 16 kHz): one unit is one G.711 sample or one
G.722 payload byte. Every position, length and counter of this module (``start_at``, the reorder
window, the drift limit, pauses, masks, ``gap_samples``, ``BLOCK_SAMPLES``) is in units; only the
output of ``drain`` has ``rows_per_unit`` (1 or 2) rows per unit.

Feeding and draining
--------------------
``feed`` is the per-packet path: it classifies the packet, works out where its samples go, and
appends ``(position, payload type, payload)`` to the channel's pending list. Nothing is decoded
there. ``drain(up_to)`` decodes everything pending before ``up_to`` (G.711 in one table look-up
per channel and codec, G.722 as below), places it, applies pauses and masks, and returns exactly
``rows_per_unit * (up_to - drained)`` rows. The storage layer drains whole seconds
(``BLOCK_SAMPLES``) and should stay at least the reorder window plus the network jitter behind the
newest arrival, or reordered packets find their place already drained (they are then counted as
late).

``feed_batch`` takes whole packets (headers included, RFC 3550 §5.1), as collected between two
drains, with exactly the result of ``feed`` for each in turn; a packet that is not RTP version 2
or is malformed counts as ``other_dropped``. A run of packets that continue the channel's
timeline in order (first octet 0x80: no CSRCs, extension or padding; one length, payload type and
SSRC; sequence numbers +1 and timestamps + payload length each) is checked with numpy in one go,
the channel's state is advanced as the per-packet path would leave it (sequence tracking, newest
position, drift blocks and corrections), and the run becomes one pending entry (one more per drift
correction within it; G.722 keeps one per packet, as the drain sorts its payloads by position).
Every other packet goes through ``feed``.

G.722 is adaptive (ADPCM, ITU-T G.722): each channel keeps one decoder for the recorder's life and
feeds it its payloads in position order, sorted at drain time, one decode call per run. A gap
(loss) is drained as silence and not fed to the decoder, whose state simply continues; the first
packet of a new SSRC resets it, as that stream's encoder started afresh. A decoder that starts
mid-stream (the recording began during the call, or ``start_at`` or a late packet cut into a
payload) has not seen what came before: it adapts from its reset state, so the audio fades in
over about 100 ms before the output converges on what a warm decoder gives. Nothing before
``start_at`` is kept to warm it up.

The common sample clock
-----------------------
Positions are units (see above) on one clock shared by both channels (8000 per second). The
caller passes ``arrival``, the position on that clock at which a packet arrived (the elapsed call
time it measured, in units of 1/8000 s), or ``None`` when it has none.

* Timeline. Within one SSRC a packet's position is the newest packet's position plus the
  wrap-around timestamp distance (``seqnum.ts_diff``), so wrap needs no special case and lost
  packets leave gaps, which ``drain`` fills with silence.
* Anchor. A channel's first packet, the first packet of a new SSRC and the first after a
  sequence re-synchronisation, a timestamp jump of more than ``MAX_JUMP_SAMPLES`` or an arrival
  more than ``MAX_ARRIVAL_SKEW_SAMPLES`` from its timestamp's place (a stream that restarted its
  clock and kept sending) start a new timeline. So does a packet newer by sequence number whose
  timestamp goes back, or steps further than the packets between explain by more than the drift
  limit beyond what its arrival does (against the channel's smallest recent delay, see Drift):
  a new source behind the SSRC (RFC 3550 §5.1: the marker bit) or a restarted clock, whose audio
  continues where it arrives and overwrites none placed. A step that the arrivals match is
  silence suppression (RFC 3551 §4.1): the packet takes its place after the pause. A packet
  whose sequence number and timestamp continue the stream (the next number, the newest packet's
  length on; or as many lengths as numbers were lost) but that comes more than
  ``MAX_ARRIVAL_SKEW_SAMPLES`` late was held up by a stall: it keeps its place
  (dropped as late if drained) and its delay is not taken for drift, so the backlog and all after
  it stay in step. Only packets that go on coming that late at the stream's own pace, for longer
  than the reorder window, not catching up, mean the path's delay grew for good: then the channel
  is anchored anew at their arrival. The first packet of a channel is anchored at
  ``arrival``, or, without it, at the recorder's current position (the start of the newest packet
  of either channel, at least the drained position). A new timeline of a channel continues where
  the old one ended, so the audio neither jumps nor overlaps, unless ``arrival`` is outside the
  drift limits (below) from there.
* Drift. Each channel's media clock may run a little faster or slower than the common clock. For
  every newest packet with an ``arrival`` the recorder notes the delay ``arrival - position``;
  network jitter only ever adds to it, so the smallest delay over the last ``DRIFT_WINDOW_BLOCKS``
  blocks of ``DRIFT_BLOCK_PACKETS`` packets (2 s) measures the clock offset, and delay that comes
  and goes within them is not taken for drift. It is checked as each block ends, against limits
  wide enough for the error of the anchoring packet's own delay (it may have come early or late,
  or its sender reorders): a channel may fall behind by twice the drift limit (its clock slow, or
  the network's delay grown for good) and run ahead by three times it (its clock fast), as an
  early packet shows at once while a later one shows only once the window is past. Beyond, the
  timeline is moved back by the excess plus one drift limit, about one limit's worth each time:
  a channel behind gets that much silence inserted, a channel ahead loses the overlapped samples
  not yet drained. Each correction counts as a re-anchor. A 1 % clock difference so stays within
  the limits plus the window's drift.

Reordering, loss, duplicates
----------------------------
A packet older than the channel's newest one is placed by its timestamp if it ends no more than
the reorder window before the newest packet's end (default 160 ms: network jitter of that depth,
eight 20 ms packets); older ones are dropped and counted as late. Duplicates are recognised by sequence number
(``seqnum.ExtendedSequence``) and ignored. Telephone-event packets (RFC 4733) are never audio; with
``mask_telephone_events`` the span each event covers is masked. They take their numbers in the
stream's sequence (RFC 3550 §5.1), so a sender that sends them instead of audio while a key is
held lost nothing there.

Start gate, pauses and masks
----------------------------
Nothing before ``start_at`` is ever output: the first drained row is position ``start_at``.
``pause(reason, at=...)`` writes silence on both channels from ``at`` until ``resume(at=...)``;
the intervals are kept as ``PauseInterval`` for the evidence record. ``mask(start, stop)`` silences
a span (in-band DTMF, PCI DSS) on the chosen channels; ``mask_tone_span`` takes a ``ToneSpan`` from
``proxy.rtp.inband`` in the channel's RTP timestamps. Positions already drained cannot be changed:
a pause or mask there is clipped to the drained position.
"""

from __future__ import annotations

import enum
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import chain
from typing import Any, Final

import numpy as np
import numpy.typing as npt
from G722 import G722

from proxy.rtp.g711 import PCMA_PAYLOAD_TYPE, PCMU_PAYLOAD_TYPE, SAMPLE_RATE_HZ, alaw_decode, ulaw_decode
from proxy.rtp.inband import ToneSpan
from proxy.rtp.seqnum import ExtendedSequence, SeqStatus, ts_diff

__all__ = [
    "BLOCK_SAMPLES",
    "DEFAULT_DRIFT_LIMIT_SAMPLES",
    "DEFAULT_REORDER_WINDOW_SAMPLES",
    "DRIFT_BLOCK_PACKETS",
    "DRIFT_WINDOW_BLOCKS",
    "G711_PAYLOAD_TYPES",
    "G722_PAYLOAD_TYPE",
    "MAX_ARRIVAL_SKEW_SAMPLES",
    "MAX_JUMP_SAMPLES",
    "RECORDED_PAYLOAD_TYPES",
    "WIDEBAND_SAMPLE_RATE_HZ",
    "Channel",
    "ChannelStats",
    "MediaFormat",
    "PauseInterval",
    "SteadyFeed",
    "StereoRecorder",
    "drain_together",
    "feed_steady",
]

BLOCK_SAMPLES = SAMPLE_RATE_HZ  # one second of units: what the storage layer seals
DEFAULT_REORDER_WINDOW_SAMPLES = 1280  # 160 ms
DEFAULT_DRIFT_LIMIT_SAMPLES = 320  # 40 ms: a channel may be twice this behind, three times ahead
DRIFT_BLOCK_PACKETS = 25  # 0.5 s of 20 ms packets per drift measurement
DRIFT_WINDOW_BLOCKS = 4  # the offset is the smallest delay of the last 4 blocks (2 s)
MAX_JUMP_SAMPLES = 10 * SAMPLE_RATE_HZ  # a larger timestamp step starts a new timeline
MAX_ARRIVAL_SKEW_SAMPLES = SAMPLE_RATE_HZ  # so does an arrival this far from its place (1 s)
G711_PAYLOAD_TYPES = frozenset({PCMU_PAYLOAD_TYPE, PCMA_PAYLOAD_TYPE})
G722_PAYLOAD_TYPE: Final = 9  # RFC 3551 §6: static, 16 kHz audio on an 8000 Hz RTP clock
RECORDED_PAYLOAD_TYPES = G711_PAYLOAD_TYPES | {G722_PAYLOAD_TYPE}
WIDEBAND_SAMPLE_RATE_HZ: Final = 16000
_G722_BIT_RATE = 64000  # RFC 3551 §4.5.2: the 64 kbit/s mode

_EVENT_PAYLOAD_LEN = 4  # RFC 4733 §2.3: event, E/R/volume, 16-bit duration

_RTP_HEADER = struct.Struct("!BBHII")  # RFC 3550 §5.1: V/P/X/CC, M/PT, sequence, timestamp, SSRC
_RTP_HEADER_LEN = _RTP_HEADER.size
_RTP_HEADER_DTYPE = np.dtype([("b0", "u1"), ("b1", "u1"), ("seq", ">u2"), ("ts", ">u4"), ("ssrc", ">u4")])
_PLAIN_FIRST_OCTET = 0x80  # version 2, no padding, no extension, no CSRCs
_Arrivals = Sequence[int | None] | npt.NDArray[np.int64]  # a numpy array when every arrival is known
_MIN_BULK_RUN = 8  # shorter runs are cheaper packet by packet
_MAX_SLICED_PIECES = 8  # a drain places up to this many pieces by slices, more by one index array
_MAX_BULK_ARRIVAL = 1 << 40  # arrivals beyond this (never real) are left to the per-packet path
_MAX_BULK_GAP = 50  # packets lost in a row (1 s of 20 ms packets) that `feed_steady` still takes


class Channel(enum.IntEnum):
    """Stereo channel of a direction: the outside party is left, the PBX side right."""

    LEFT = 0
    RIGHT = 1


@dataclass(frozen=True, slots=True, kw_only=True)
class MediaFormat:
    """What one direction's SDP negotiated: audio payload types (PCMU 0, PCMA 8, G.722 9) and the
    telephone-event type."""

    audio_payload_types: frozenset[int] = G711_PAYLOAD_TYPES
    event_payload_type: int | None = None

    def __post_init__(self) -> None:
        if not self.audio_payload_types <= RECORDED_PAYLOAD_TYPES:
            raise ValueError(
                f"only PCMU (0), PCMA (8) and G.722 (9) are recorded, got {sorted(self.audio_payload_types)}"
            )
        if self.event_payload_type is not None and not 0 <= self.event_payload_type <= 0x7F:
            raise ValueError(f"payload type out of range: {self.event_payload_type}")
        if self.event_payload_type in self.audio_payload_types:
            raise ValueError(f"payload type {self.event_payload_type} cannot be audio and events")

    @property
    def wideband(self) -> bool:
        """True if G.722 may be sent: a recorder made with such a format records 16 kHz."""
        return G722_PAYLOAD_TYPE in self.audio_payload_types


@dataclass(frozen=True, slots=True, kw_only=True)
class PauseInterval:
    """Silence written from ``start`` up to ``end`` (positions); ``end`` is ``None`` while paused."""

    start: int
    end: int | None
    reason: str


@dataclass(frozen=True, slots=True, kw_only=True)
class ChannelStats:
    """Counters of one channel.

    ``packets_in`` counts every packet fed; of those, ``event_packets`` were telephone-events,
    ``other_dropped`` had a payload type that is not recorded, ``duplicates`` and ``jumps_ignored``
    (an unconfirmed sequence jump, RFC 3550 §A.1) were ignored, ``late_dropped`` came after the
    reorder window or after their position was drained, and ``gated`` lay wholly before
    ``start_at``. ``late_dropped_samples`` is the audio late packets took with them, that of
    packets partly drained included. ``lost_samples`` is the audio of sequence numbers a newer
    packet (a telephone-event's too) skipped and no later packet brought (RFC 3550 §A.3), at the
    newest packet's length each. ``gap_samples`` is the silence drained between the channel's
    first and newest packet where no packet was. ``reanchors`` counts new timelines after the
    first (SSRC change, re-synchronisation, jump) and drift corrections; of those,
    ``timestamp_jumps`` are new timelines within one SSRC (re-synchronisation, a timestamp jump,
    an arrival far from its timestamp's place for good); ``drift_silence_samples`` and
    ``drift_dropped_samples`` what the drift corrections inserted and removed. Sample counts are
    in position units (``StereoRecorder.rows_per_unit`` output rows each).
    """

    packets_in: int
    event_packets: int
    other_dropped: int
    duplicates: int
    jumps_ignored: int
    late_dropped: int
    late_dropped_samples: int
    lost_samples: int
    gated: int
    gap_samples: int
    reanchors: int
    timestamp_jumps: int
    ssrc_changes: int
    drift_silence_samples: int
    drift_dropped_samples: int


class _ChannelState:
    __slots__ = (
        "anchor_delay",
        "block_count",
        "block_lows",
        "block_min",
        "decoder_resets",
        "drift_dropped",
        "drift_silence",
        "duplicates",
        "event_packets",
        "first_pos",
        "format",
        "g722_decoder",
        "gap_samples",
        "gated",
        "high_end",
        "jumps_ignored",
        "late_dropped",
        "late_dropped_samples",
        "lost_samples",
        "other_dropped",
        "packets_in",
        "pending",
        "reanchors",
        "ref_pos",
        "ref_size",
        "ref_ts",
        "seq",
        "ssrc",
        "ssrc_changes",
        "stall_delay",
        "stall_start",
        "timeline_ssrc",
        "timestamp_jumps",
    )

    def __init__(self, media: MediaFormat) -> None:
        self.format = media
        self.ssrc: int | None = None
        self.seq = ExtendedSequence(min_sequential=1)
        self.ref_ts = 0  # timestamp of the newest packet of the current timeline
        self.ref_pos = 0  # its position
        self.ref_size = 0  # and its length: the timestamp step to the next packet
        self.stall_start: int | None = None  # arrival of the first packet held up by a stall
        self.stall_delay = 0  # and its delay
        self.high_end: int | None = None  # end of the newest packet; None: no timeline yet
        self.first_pos: int | None = None
        self.pending: list[tuple[int, int, bytes]] = []
        self.timeline_ssrc: int | None = None  # the SSRC the current timeline was anchored for
        self.g722_decoder: Any = None  # a G722 object (untyped C extension), made on first use
        self.decoder_resets: list[int] = []  # positions from which a new SSRC's audio starts
        self.block_count = 0
        self.block_min = 0
        self.block_lows: tuple[int, ...] = ()  # the smallest delays of the window's earlier blocks
        self.anchor_delay: int | None = None  # the delay of the packet the timeline was anchored at
        self.packets_in = self.event_packets = self.other_dropped = 0
        self.duplicates = self.jumps_ignored = self.late_dropped = self.gated = 0
        self.gap_samples = self.reanchors = self.ssrc_changes = 0
        self.late_dropped_samples = self.lost_samples = self.timestamp_jumps = 0
        self.drift_silence = self.drift_dropped = 0


class StereoRecorder:
    """Reassembles both directions of a call into 8 or 16 kHz stereo; see the module docstring.

    The recorder is wideband (16 kHz) if ``wideband`` is True, narrowband if it is False, and when
    it is None (the default) wideband if ``left`` or ``right`` includes G.722.
    """

    __slots__ = (
        "_ahead_limit",
        "_behind_limit",
        "_drained",
        "_drift_limit",
        "_mask_events",
        "_masks",
        "_pauses",
        "_rows_per_unit",
        "_start_at",
        "_states",
        "_window",
    )

    def __init__(
        self,
        *,
        left: MediaFormat,
        right: MediaFormat,
        start_at: int = 0,
        reorder_window_samples: int = DEFAULT_REORDER_WINDOW_SAMPLES,
        drift_limit_samples: int = DEFAULT_DRIFT_LIMIT_SAMPLES,
        mask_telephone_events: bool = False,
        wideband: bool | None = None,
    ) -> None:
        if start_at < 0:
            raise ValueError(f"start_at must not be negative, got {start_at}")
        if reorder_window_samples < 0:
            raise ValueError(f"reorder window must not be negative, got {reorder_window_samples}")
        if drift_limit_samples < 1:
            raise ValueError(f"drift limit must be positive, got {drift_limit_samples}")
        self._states = (_ChannelState(left), _ChannelState(right))
        if wideband is None:
            wideband = left.wideband or right.wideband
        self._rows_per_unit = 2 if wideband else 1
        self._start_at = start_at
        self._drained = start_at
        self._window = reorder_window_samples
        self._drift_limit = drift_limit_samples
        self._behind_limit = 2 * drift_limit_samples
        self._ahead_limit = 3 * drift_limit_samples
        self._mask_events = mask_telephone_events
        self._pauses: list[PauseInterval] = []
        self._masks: list[tuple[int, int, tuple[bool, bool]]] = []

    # -- properties ------------------------------------------------------------------------

    @property
    def sample_rate_hz(self) -> int:
        """Output sample rate of ``drain``: 8000 (narrowband) or 16000 (wideband), fixed for life."""
        return WIDEBAND_SAMPLE_RATE_HZ if self._rows_per_unit == 2 else SAMPLE_RATE_HZ

    @property
    def rows_per_unit(self) -> int:
        """Output rows per position unit: 1 (narrowband) or 2 (wideband)."""
        return self._rows_per_unit

    @property
    def start_at(self) -> int:
        """Position of the first unit the recording holds."""
        return self._start_at

    @property
    def drained(self) -> int:
        """Position up to which audio has been drained (the next ``drain`` starts here)."""
        return self._drained

    @property
    def paused(self) -> bool:
        """True between ``pause`` and ``resume``."""
        return bool(self._pauses) and self._pauses[-1].end is None

    @property
    def pauses(self) -> tuple[PauseInterval, ...]:
        """Every pause so far, in order, the open one last."""
        return tuple(self._pauses)

    def stats(self, channel: Channel) -> ChannelStats:
        """A snapshot of one channel's counters."""
        s = self._states[channel]
        return ChannelStats(
            packets_in=s.packets_in,
            event_packets=s.event_packets,
            other_dropped=s.other_dropped,
            duplicates=s.duplicates,
            jumps_ignored=s.jumps_ignored,
            late_dropped=s.late_dropped,
            late_dropped_samples=s.late_dropped_samples,
            # Never below 0: a gap is counted at the newest packet's length, a late one at its own.
            lost_samples=max(0, s.lost_samples),
            gated=s.gated,
            gap_samples=s.gap_samples,
            reanchors=s.reanchors,
            timestamp_jumps=s.timestamp_jumps,
            ssrc_changes=s.ssrc_changes,
            drift_silence_samples=s.drift_silence,
            drift_dropped_samples=s.drift_dropped,
        )

    def set_format(self, channel: Channel, media: MediaFormat) -> None:
        """Change a direction's payload types (after a re-INVITE); the timeline is kept.

        The output rate is not changed: G.722 in a narrowband recorder is recorded from its lower
        sub-band, G.711 in a wideband one by sample repetition (see the module docstring).
        """
        self._states[channel].format = media

    def heard_until(self, channel: Channel) -> int | None:
        """Where the channel's newest packet ends (``None`` before its first): audio up to here has
        come; after it, nothing yet."""
        return self._states[channel].high_end

    def position_of(self, channel: Channel, rtp_timestamp: int) -> int | None:
        """Position of an RTP timestamp of the channel's current SSRC (``None``: no packet yet)."""
        s = self._states[channel]
        if s.high_end is None:
            return None
        return s.ref_pos + ts_diff(rtp_timestamp, s.ref_ts)

    # -- per packet ------------------------------------------------------------------------

    def feed(
        self,
        channel: Channel,
        payload_type: int,
        sequence: int,
        timestamp: int,
        ssrc: int,
        payload: bytes,
        arrival: int | None = None,
    ) -> None:
        """Take one RTP packet of ``channel``; ``arrival`` is its arrival position, if known."""
        s = self._states[channel]
        s.packets_in += 1
        media = s.format
        if payload_type not in media.audio_payload_types:
            if payload_type == media.event_payload_type:
                s.event_packets += 1
                if ssrc == s.ssrc:
                    _take_event_sequence(s, sequence)
                    if self._mask_events:
                        self._mask_event(s, timestamp, payload)
            else:
                s.other_dropped += 1
            return
        size = len(payload)
        if size == 0:
            s.other_dropped += 1
            return
        new_timeline = s.high_end is None
        if ssrc != s.ssrc:
            if s.ssrc is not None:
                s.ssrc_changes += 1
            s.ssrc = ssrc
            s.seq = ExtendedSequence(min_sequential=1)
            new_timeline = True
        newest = s.seq.highest
        status = s.seq.update(sequence)
        if status is SeqStatus.DUPLICATE:
            s.duplicates += 1
            return
        if status is SeqStatus.JUMP:
            s.jumps_ignored += 1
            return
        advance = _advance(s.seq, newest)
        if advance > 1 and status is SeqStatus.IN_ORDER:
            s.lost_samples += (advance - 1) * s.ref_size  # lost until one of them comes late
        elif status is SeqStatus.LATE and _was_skipped(s.seq):
            s.lost_samples -= size
        stalled = False
        if not new_timeline:
            step = ts_diff(timestamp, s.ref_ts)
            # A restart (RFC 3550 §A.1 resync) or a step too large for any pause.
            new_timeline = status is SeqStatus.RESYNC or abs(step) > MAX_JUMP_SAMPLES
            if not new_timeline:
                if status is SeqStatus.IN_ORDER and step <= 0:
                    # The timestamp went back while the sequence went on: a new source behind the
                    # SSRC (RFC 3550 §5.1: the marker bit). It continues the audio, overwriting none.
                    new_timeline = True
                elif arrival is not None and step > 0:
                    delay = arrival - s.ref_pos - step
                    far = abs(delay) > MAX_ARRIVAL_SKEW_SAMPLES
                    if status is not SeqStatus.IN_ORDER:
                        new_timeline = far
                    elif step == s.ref_size * advance:
                        # Sequence and timestamp continue the stream. Far late, the packet was held
                        # up (a stall), not restarted: it keeps its place, unless the stream goes on
                        # coming that late (the path's delay grew for good).
                        if delay > MAX_ARRIVAL_SKEW_SAMPLES:
                            stalled = not self._late_for_good(s, arrival, delay)
                        new_timeline = far and not stalled
                    else:
                        # A timestamp step beyond the packets between: silence suppression (RFC 3551
                        # §4.1) if the arrivals paused as long. Packets that came on at their pace
                        # mean a new source behind the SSRC, or a restarted clock.
                        new_timeline = far or self._ahead_of_arrival(s, delay)
            if new_timeline:
                s.timestamp_jumps += 1
        if new_timeline:
            pos = self._anchor(s, timestamp, arrival)
            s.ref_size = size
        else:
            pos = s.ref_pos + step
            assert s.high_end is not None
            if step > 0:
                s.ref_size = size
                if not stalled:
                    s.stall_start = None
                # A stalled packet's delay came from the stall, not from the clocks.
                shift = 0 if arrival is None or stalled else self._track_drift(s, pos, arrival)
                pos += shift
                s.ref_ts, s.ref_pos = timestamp, pos
                s.high_end = pos + size if shift else max(s.high_end, pos + size)
            elif pos + size < s.high_end - self._window:
                s.late_dropped += 1
                s.late_dropped_samples += size
                return
        end = pos + size
        drained = self._drained
        if pos < drained:
            if end <= drained:
                if end <= self._start_at:
                    s.gated += 1
                else:
                    s.late_dropped += 1
                    s.late_dropped_samples += end - max(pos, self._start_at)
                return
            s.late_dropped_samples += drained - max(pos, self._start_at)
            payload = payload[drained - pos :]
            pos = drained
        s.pending.append((pos, payload_type, payload))

    def feed_batch(
        self,
        channel: Channel,
        packets: Sequence[bytes],
        arrivals: _Arrivals,
    ) -> None:
        """Take whole RTP packets of ``channel`` in arrival order; ``arrivals[i]`` is that of ``packets[i]``
        (a list, or a numpy integer array when every arrival is known).

        The result (pending audio, state, ``stats``) is exactly that of ``feed`` for each packet in
        turn, its header parsed per RFC 3550 §5.1 (CSRC list, header extension and padding
        skipped); a packet that is not RTP version 2 or is malformed counts in ``packets_in`` and
        ``other_dropped``. Neither sequence is kept.
        """
        count = len(packets)
        if len(arrivals) != count:
            raise ValueError(f"{count} packets but {len(arrivals)} arrivals")
        if count == 0:
            return
        s = self._states[channel]
        known, values = _arrival_values(arrivals)
        lengths = np.fromiter(map(len, packets), dtype=np.int64, count=count)
        edges = (np.flatnonzero(lengths[1:] != lengths[:-1]) + 1).tolist()
        for lo, hi in zip([0, *edges], [*edges, count], strict=True):
            size = int(lengths[lo])
            if hi - lo < _MIN_BULK_RUN or size <= _RTP_HEADER_LEN:
                for k in range(lo, hi):
                    self._feed_packet(s, channel, packets[k], _scalar(arrivals[k]))
            else:
                self._feed_same_size(s, channel, packets[lo:hi], arrivals[lo:hi], known[lo:hi], values[lo:hi])

    def _feed_packet(self, s: _ChannelState, channel: Channel, data: bytes, arrival: int | None) -> None:
        parsed = _parse_rtp(data)
        if parsed is None:
            s.packets_in += 1
            s.other_dropped += 1
            return
        payload_type, sequence, timestamp, ssrc, payload = parsed
        self.feed(channel, payload_type, sequence, timestamp, ssrc, payload, arrival)

    def _feed_same_size(
        self,
        s: _ChannelState,
        channel: Channel,
        packets: Sequence[bytes],
        arrivals: _Arrivals,
        known: npt.NDArray[np.bool_],
        values: npt.NDArray[np.int64],
    ) -> None:
        # Packets of one length: find the runs that need no per-packet look, take them in bulk.
        count = len(packets)
        data = np.frombuffer(b"".join(packets), dtype=np.uint8).reshape(count, -1)
        run_ends, plain = _runs(data, known)
        payloads = data[:, _RTP_HEADER_LEN:]
        k = 0
        for run_end in run_ends:
            while k < run_end:
                if run_end - k >= _MIN_BULK_RUN and plain[k]:
                    _, b1, sequence, timestamp, ssrc = _RTP_HEADER.unpack_from(packets[k])
                    done = self._feed_run(
                        s, b1 & 0x7F, sequence, timestamp, ssrc, payloads[k:run_end], values[k:run_end]
                    )
                    k += done
                    if k == run_end:
                        break
                self._feed_packet(s, channel, packets[k], _scalar(arrivals[k]))
                k += 1

    def _feed_run(
        self,
        s: _ChannelState,
        payload_type: int,
        sequence: int,
        timestamp: int,
        ssrc: int,
        payloads: npt.NDArray[np.uint8],
        arrivals: npt.NDArray[np.int64],
    ) -> int:
        # A run of one stream's packets, consecutive in sequence and timestamp. Takes the longest
        # prefix that `feed` would place in order on the current timeline, whole and undrained;
        # returns its length. The state ends as `feed` would leave it after each of them.
        base = _run_base(s, payload_type, sequence, timestamp, ssrc)  # of packet `done`, uncorrected
        if base is None:
            return 0
        count, size = payloads.shape
        drained = self._drained
        block_count, block_min, lows = s.block_count, s.block_min, s.block_lows
        if base >= drained and self._take_whole_run(s, payload_type, timestamp, payloads, arrivals, base):
            return len(payloads)
        done = 0
        piece_first, piece_pos = 0, base  # the contiguous stretch to append as one entry
        corrected = False
        while done < count and base >= drained:
            seg = min(count - done, DRIFT_BLOCK_PACKETS - block_count)
            delays = arrivals[done : done + seg] - (base + size * np.arange(seg, dtype=np.int64))
            # An arrival far from the timestamp's position starts a new timeline (see `feed`).
            far = np.flatnonzero(np.abs(delays) > MAX_ARRIVAL_SKEW_SAMPLES)
            stop = bool(far.size)
            if stop:
                seg = int(far[0])
            if not stop and block_count + seg == DRIFT_BLOCK_PACKETS:
                low = int(delays.min())
                due = self._drift_shift(lows, low if block_count == 0 else min(block_min, low))
                if due and base + size * (seg - 1) + due < drained:
                    # The corrected packet would land in drained audio: leave it to `feed`.
                    seg -= 1
                    stop = True
            if seg == 0:
                break
            low = int(delays[:seg].min())
            block_min = low if block_count == 0 else min(block_min, low)
            block_count += seg
            last = base + size * (seg - 1)
            done += seg
            base = last + size
            if block_count == DRIFT_BLOCK_PACKETS:
                block_count = 0
                shift, lows = self._block_ended(lows, block_min)
                if shift:
                    # The drift correction of `_track_drift`, at the block's last packet.
                    s.reanchors += 1
                    _append_piece(s, piece_pos, payload_type, payloads[piece_first : done - 1])
                    if shift > 0:
                        s.drift_silence += shift
                    else:
                        s.drift_dropped += -shift
                        self._truncate_pending(s, last + shift)
                    piece_first, piece_pos = done - 1, last + shift
                    base = last + shift + size
                    corrected = True
            if stop:
                break
        if done == 0:
            return 0
        _append_piece(s, piece_pos, payload_type, payloads[piece_first:done])
        s.packets_in += done
        s.seq.advance(done)  # IN_ORDER each: one past the highest
        s.ref_size, s.stall_start = size, None
        s.block_count, s.block_min, s.block_lows = block_count, block_min, lows
        s.ref_ts = (timestamp + size * (done - 1)) & 0xFFFFFFFF
        s.ref_pos = base - size
        assert s.high_end is not None  # `_run_base` found a timeline
        s.high_end = base if corrected else max(s.high_end, base)
        return done

    def _take_whole_run(
        self,
        s: _ChannelState,
        payload_type: int,
        timestamp: int,
        payloads: npt.NDArray[np.uint8],
        arrivals: npt.NDArray[np.int64],
        base: int,
    ) -> bool:
        # The common case of `_feed_run`, checked in one go: every packet of the run lands whole
        # from `base` on and no drift block it completes needs a correction. Then the run is one
        # pending entry and True is returned; otherwise nothing changes and False is returned.
        count, size = payloads.shape
        delays = arrivals - (base + size * np.arange(count, dtype=np.int64))
        if int(np.abs(delays).max()) > MAX_ARRIVAL_SKEW_SAMPLES:
            return False  # an arrival that starts a new timeline
        starts = _drift_block_starts(s, count)
        lows: list[int] = np.minimum.reduceat(delays, starts).tolist()
        return self._commit_whole_run(s, payload_type, timestamp, payloads, base, lows, starts)

    def _commit_whole_run(
        self,
        s: _ChannelState,
        payload_type: int,
        timestamp: int,
        payloads: npt.NDArray[np.uint8],
        base: int,
        lows: list[int],
        starts: list[int],
        losses: _Losses | None = None,
    ) -> bool:
        # `_take_whole_run` once its arrivals are checked: `lows` are the smallest delays of the
        # run's pieces from `starts` on (see `_drift_block_starts`). With `losses`, packets of the
        # run were lost: what `feed` does for each packet after a gap is done for it.
        count, size = payloads.shape
        block_count, block_min, window = s.block_count, s.block_min, s.block_lows
        for index, low in enumerate(lows):
            block_min = low if block_count == 0 else min(block_min, low)
            end = starts[index + 1] if index + 1 < len(starts) else count
            block_count += end - starts[index]
            if block_count == DRIFT_BLOCK_PACKETS:
                shift, window = self._block_ended(window, block_min)
                if shift:
                    return False  # a drift correction: the packet-exact path makes it
                block_count = 0
        last = count - 1  # in packets' worth of timestamp from the first
        if losses is None:
            _append_piece(s, base, payload_type, payloads)
            s.seq.advance(count)
        else:
            last = losses.last
            s.lost_samples += losses.before * s.ref_size + (last + 1 - count) * size
            for first, end, offset, lost in losses.stretches:
                _append_piece(s, base + size * offset, payload_type, payloads[first:end])
                if lost:  # IN_ORDER past a gap (`feed`)
                    s.seq.update((losses.sequence + offset) & 0xFFFF)
                    s.seq.advance(end - first - 1)
                else:
                    s.seq.advance(end - first)
        s.packets_in += count
        s.ref_size, s.stall_start = size, None
        s.block_count, s.block_min, s.block_lows = block_count, block_min, window
        s.ref_ts = (timestamp + size * last) & 0xFFFFFFFF
        s.ref_pos = base + size * last
        assert s.high_end is not None
        s.high_end = max(s.high_end, base + size * (last + 1))
        return True

    def _anchor(self, s: _ChannelState, timestamp: int, arrival: int | None) -> int:
        # A new timeline: the channel's first packet, a new SSRC, a restart.
        if s.high_end is None:
            pos = arrival if arrival is not None else self._current_position()
            s.first_pos = pos
        else:
            s.reanchors += 1
            pos = s.high_end
            if arrival is not None and not -self._ahead_limit <= arrival - pos <= self._behind_limit:
                pos = arrival
                self._truncate_pending(s, pos)
        if s.timeline_ssrc is not None and s.timeline_ssrc != s.ssrc:
            # A new stream's G.722 encoder starts from its reset state (ITU-T G.722); so must
            # the decoder, from the first position of this timeline on.
            s.decoder_resets.append(pos)
        s.timeline_ssrc = s.ssrc
        s.ref_ts, s.ref_pos = timestamp, pos
        s.high_end = pos
        s.block_count = 0
        s.block_lows = ()
        s.stall_start = None
        s.anchor_delay = None if arrival is None else arrival - pos
        return pos

    def _ahead_of_arrival(self, s: _ChannelState, delay: int) -> bool:
        # A packet placed by its timestamp would come more than the drift limit earlier than
        # the channel's recent packets did (network jitter only adds delay): its timestamp ran
        # ahead of its arrival.
        if s.block_count:
            offset: int | None = min((s.block_min, *s.block_lows))
        elif s.block_lows:
            offset = min(s.block_lows)
        else:
            offset = s.anchor_delay
        return offset is not None and delay < offset - self._drift_limit

    def _late_for_good(self, s: _ChannelState, arrival: int, delay: int) -> bool:
        # A packet that continues its stream came far late. A stall's backlog comes faster than
        # real time, its delay falling as it comes; packets that go on coming far late at the
        # stream's own pace (for longer than the reorder window) mean the path's delay grew.
        if s.stall_start is None:
            s.stall_start, s.stall_delay = arrival, delay
            return False
        elapsed = arrival - s.stall_start
        return elapsed > self._window and 2 * (s.stall_delay - delay) < elapsed

    def _current_position(self) -> int:
        position = self._drained
        for s in self._states:
            if s.high_end is not None:
                position = max(position, s.ref_pos)
        return position

    def _track_drift(self, s: _ChannelState, pos: int, arrival: int) -> int:
        # The smallest delay of a window of blocks is the clock offset; jitter only adds delay.
        delay = arrival - pos
        if s.block_count == 0 or delay < s.block_min:
            s.block_min = delay
        s.block_count += 1
        if s.block_count < DRIFT_BLOCK_PACKETS:
            return 0
        s.block_count = 0
        shift, s.block_lows = self._block_ended(s.block_lows, s.block_min)
        if not shift:
            return 0
        s.reanchors += 1
        if shift > 0:
            s.drift_silence += shift
        else:
            s.drift_dropped += -shift
            self._truncate_pending(s, pos + shift)
        return shift

    def _drift_shift(self, lows: tuple[int, ...], block_min: int) -> int:
        # The correction due as a block with smallest delay `block_min` ends, the window's earlier
        # blocks' being `lows`; 0 within the limits (see the module docstring).
        offset = min((block_min, *lows))
        if offset > self._behind_limit:
            return offset - self._behind_limit + self._drift_limit
        if offset < -self._ahead_limit:
            return offset + self._ahead_limit - self._drift_limit
        return 0

    def _block_ended(self, lows: tuple[int, ...], block_min: int) -> tuple[int, tuple[int, ...]]:
        # A drift block ended with smallest delay `block_min`: the correction due, and the window's
        # earlier blocks' smallest delays from now on, in the terms of the timeline moved by it (a
        # packet's delay is its arrival less its moved position).
        shift = self._drift_shift(lows, block_min)
        kept = (*lows, block_min)[1 - DRIFT_WINDOW_BLOCKS :]
        return shift, tuple(low - shift for low in kept) if shift else kept

    @staticmethod
    def _truncate_pending(s: _ChannelState, stop: int) -> None:
        # Later audio wins where a re-anchor makes a timeline overlap pending samples.
        kept: list[tuple[int, int, bytes]] = []
        for pos, pt, payload in s.pending:
            if pos < stop:
                kept.append((pos, pt, payload[: stop - pos]))
        s.pending = kept
        # Whatever comes from stop on is the current SSRC's.
        s.decoder_resets = [min(reset, stop) for reset in s.decoder_resets]

    def _mask_event(self, s: _ChannelState, timestamp: int, payload: bytes) -> None:
        # RFC 4733 §2.3.5: the event started at the timestamp and has lasted `duration` so far.
        if len(payload) < _EVENT_PAYLOAD_LEN or s.high_end is None:
            return
        start = s.ref_pos + ts_diff(timestamp, s.ref_ts)
        duration = int.from_bytes(payload[2:4], "big")
        self.mask(start, start + max(duration, 1))

    # -- pauses and masks ------------------------------------------------------------------

    def pause(self, reason: str, *, at: int) -> PauseInterval:
        """Write silence on both channels from position ``at`` (clipped to ``drained``) on."""
        if self.paused:
            raise ValueError("recorder is already paused")
        interval = PauseInterval(start=max(at, self._drained), end=None, reason=reason)
        self._pauses.append(interval)
        return interval

    def resume(self, *, at: int) -> PauseInterval:
        """End the open pause at position ``at`` (at least its start); return the closed interval."""
        if not self.paused:
            raise ValueError("recorder is not paused")
        open_pause = self._pauses[-1]
        closed = PauseInterval(
            start=open_pause.start, end=max(at, open_pause.start, self._drained), reason=open_pause.reason
        )
        self._pauses[-1] = closed
        return closed

    def mask(self, start: int, stop: int, *, left: bool = True, right: bool = True) -> bool:
        """Silence positions ``start``..``stop`` (exclusive) on the chosen channels when drained.

        Returns False if part of the span was drained already (and so could not be masked).
        """
        complete = start >= self._drained
        start = max(start, self._drained)
        if stop > start and (left or right):
            self._masks.append((start, stop, (left, right)))
        return complete

    def mask_tone_span(self, channel: Channel, span: ToneSpan, *, both: bool = True) -> bool:
        """``mask`` for a span of ``channel``'s RTP timestamps (from ``proxy.rtp.inband``).

        Masks both channels unless ``both`` is False. Returns False if the channel has no timeline
        or part of the span was drained already.
        """
        start = self.position_of(channel, span.rtp_timestamp)
        if start is None:
            return False
        on_left = both or channel is Channel.LEFT
        on_right = both or channel is Channel.RIGHT
        return self.mask(start, start + span.duration, left=on_left, right=on_right)

    # -- output ----------------------------------------------------------------------------

    def drain(self, up_to: int) -> npt.NDArray[np.int16]:
        """Stereo samples from ``drained`` up to position ``up_to``: shape ``(n, 2)``, int16.

        ``n`` is ``rows_per_unit * (up_to - drained)``: rows at ``sample_rate_hz``. Column 0 is the
        left channel (outside party), column 1 the right (PBX side). Positions where a channel has
        no audio, is paused or masked are zero. Returns no rows if ``up_to`` is not past
        ``drained``.
        """
        start = self._drained
        count = up_to - start
        if count <= 0:
            return np.zeros((0, 2), dtype=np.int16)
        out = np.zeros((self._rows_per_unit * count, 2), dtype=np.int16)
        for column, s in enumerate(self._states):
            covered = self._place(s, out, column, start, up_to)
            lo, hi = self._heard_span(s, start, up_to)
            if hi > lo:
                s.gap_samples += int(hi - lo - np.count_nonzero(covered[lo:hi]))
        self._finish_drain(out, up_to)
        return out

    def _heard_span(self, s: _ChannelState, start: int, up_to: int) -> tuple[int, int]:
        # The part of a drain (from `start`, 0 for its first unit) where the channel's timeline ran:
        # units in it that no audio covered are gaps.
        if s.first_pos is None or s.high_end is None:
            return 0, 0
        return max(s.first_pos, start) - start, min(s.high_end, up_to) - start

    def _finish_drain(self, out: npt.NDArray[np.int16], up_to: int) -> None:
        # The end of a drain from `_drained` to `up_to` into `out`, its audio placed: silence over
        # pauses and masks, and the drain is done.
        start, rows = self._drained, self._rows_per_unit
        for interval in self._pauses:
            lo = max(interval.start, start)
            hi = up_to if interval.end is None else min(interval.end, up_to)
            if hi > lo:
                out[rows * (lo - start) : rows * (hi - start)] = 0
        remaining: list[tuple[int, int, tuple[bool, bool]]] = []
        for lo, hi, (left, right) in self._masks:
            a, b = max(lo, start), min(hi, up_to)
            if b > a:
                if left:
                    out[rows * (a - start) : rows * (b - start), 0] = 0
                if right:
                    out[rows * (a - start) : rows * (b - start), 1] = 0
            if hi > up_to:
                remaining.append((max(lo, up_to), hi, (left, right)))
        self._masks = remaining
        self._drained = up_to

    def drain_bytes(self, up_to: int) -> bytes:
        """``drain`` as interleaved stereo s16le bytes (left sample first)."""
        return self.drain(up_to).astype("<i2", copy=False).tobytes()

    def _place(
        self, s: _ChannelState, out: npt.NDArray[np.int16], column: int, start: int, up_to: int
    ) -> npt.NDArray[np.bool_]:
        # Split the pending list at up_to, then decode and place per payload type in one go.
        # Returns which units (from start) got audio.
        pieces, s.pending = _split_pending(s.pending, up_to)
        taken: dict[int, tuple[list[int], list[bytes]]] = {}
        for pos, pt, payload in pieces:
            positions, payloads = taken.setdefault(pt, ([], []))
            positions.append(pos - start)
            payloads.append(payload)
        covered = np.zeros(up_to - start, dtype=np.bool_)
        for pt, (positions, payloads) in taken.items():
            if pt == G722_PAYLOAD_TYPE:
                self._place_g722(s, out, column, start, positions, payloads, covered)
                continue
            decode = ulaw_decode if pt == PCMU_PAYLOAD_TYPE else alaw_decode
            samples = decode(b"".join(payloads))
            # G.711 in a wideband recording: every sample twice.
            units = out if self._rows_per_unit == 1 else out.reshape(-1, 2, 2)
            if len(positions) <= _MAX_SLICED_PIECES:
                # A few long pieces (runs fed in bulk): slices, later pieces over earlier ones.
                offset = 0
                for pos, payload in zip(positions, payloads, strict=True):
                    end = pos + len(payload)
                    piece = samples[offset : offset + len(payload)]
                    if self._rows_per_unit == 1:
                        units[pos:end, column] = piece
                    else:
                        units[pos:end, :, column] = piece[:, np.newaxis]
                    covered[pos:end] = True
                    offset += len(payload)
                continue
            index = _unit_index(positions, payloads)
            if self._rows_per_unit == 1:
                units[index, column] = samples
            else:
                units[index, :, column] = samples[:, np.newaxis]
            covered[index] = True
        _pass_decoder_resets(s, up_to)
        return covered

    def _place_g722(
        self,
        s: _ChannelState,
        out: npt.NDArray[np.int16],
        column: int,
        start: int,
        positions: list[int],
        payloads: list[bytes],
        covered: npt.NDArray[np.bool_],
    ) -> None:
        # ADPCM must see its payloads in timeline order: sort them, and decode each run between
        # two decoder resets (new SSRCs) in one call. Gaps are not fed: the state carries on.
        resets = s.decoder_resets
        run_positions: list[int] = []
        run_payloads: list[bytes] = []
        for i in sorted(range(len(positions)), key=positions.__getitem__):
            pos = positions[i]
            if resets and resets[0] <= start + pos:
                self._decode_g722_run(s, out, column, run_positions, run_payloads, covered)
                run_positions, run_payloads = [], []
                s.g722_decoder = None
                while resets and resets[0] <= start + pos:
                    del resets[0]
            run_positions.append(pos)
            run_payloads.append(payloads[i])
        self._decode_g722_run(s, out, column, run_positions, run_payloads, covered)

    def _decode_g722_run(
        self,
        s: _ChannelState,
        out: npt.NDArray[np.int16],
        column: int,
        positions: list[int],
        payloads: list[bytes],
        covered: npt.NDArray[np.bool_],
    ) -> None:
        if not payloads:
            return
        if s.g722_decoder is None:
            # At 8 kHz the decoder yields the lower sub-band only: one sample per unit.
            s.g722_decoder = G722(self.sample_rate_hz, _G722_BIT_RATE)
        samples = np.frombuffer(s.g722_decoder.decode(b"".join(payloads)), dtype=np.int16)
        index = _unit_index(positions, payloads)
        if self._rows_per_unit == 1:
            out[index, column] = samples
        else:
            out.reshape(-1, 2, 2)[index, :, column] = samples.reshape(-1, 2)
        covered[index] = True


_Pending = list[tuple[int, int, bytes]]
"""A channel's pending entries: (position, payload type, payload), in the order they were fed."""
_PendingSplit = tuple[_Pending, _Pending]


def _split_pending(pending: _Pending, up_to: int) -> _PendingSplit:
    # A channel's pending entries cut at `up_to`: (what comes before it, in order; what stays).
    taken: _Pending = []
    kept: _Pending = []
    for entry in pending:
        pos, pt, payload = entry
        if pos >= up_to:
            kept.append(entry)
            continue
        cut = up_to - pos
        if len(payload) > cut:
            kept.append((up_to, pt, payload[cut:]))
            taken.append((pos, pt, payload[:cut]))
        else:
            taken.append(entry)
    return taken, kept


def _pass_decoder_resets(s: _ChannelState, up_to: int) -> None:
    # Resets passed without G.722 audio after them: what is still pending is the new SSRC's.
    # (The next G.722 run would reset anyway; this keeps the list short.)
    resets = s.decoder_resets
    if resets and resets[0] < up_to:
        s.g722_decoder = None
        while resets and resets[0] < up_to:
            del resets[0]


def _take_event_sequence(s: _ChannelState, sequence: int) -> None:
    # RFC 4733 §2.1: events travel in the audio's stream, numbered in its sequence (RFC 3550 §5.1).
    # A sender that sends them instead of audio while a key is held (as most do) lost no audio at
    # their numbers. A number skipped before one may have been audio, and counts as lost. An
    # event behind the newest number, or far ahead of it (events numbered apart), is left alone.
    highest = s.seq.highest
    if highest is None:
        return
    advance = (sequence - highest) & 0xFFFF
    if 1 <= advance <= _MAX_BULK_GAP and s.seq.update(sequence) is SeqStatus.IN_ORDER:
        s.lost_samples += (advance - 1) * s.ref_size  # lost until one of them comes late


def _one_g711_law(pieces: _Pending, start: int) -> bool:
    # Pieces of a drain from `start` that `drain_together` places: all of one G.711 law, none
    # before the start.
    return all(pt == pieces[0][1] and pt in G711_PAYLOAD_TYPES and pos >= start for pos, pt, _ in pieces)


def _covered_units(pieces: _Pending, lo: int, hi: int) -> int:
    # How many positions from `lo` to `hi` the pieces (position, payload type, G.711 payload)
    # cover, overlaps counted once.
    covered, reach = 0, lo
    for pos, _, payload in sorted(pieces, key=lambda piece: piece[0]):
        first, end = max(pos, reach), min(pos + len(payload), hi)
        if end > first:
            covered += end - first
            reach = end
    return covered


def drain_together(items: Sequence[tuple[StereoRecorder, int]]) -> list[npt.NDArray[np.int16] | None]:
    """For each ``(recorder, up_to)`` it takes, what ``recorder.drain(up_to)`` gives, leaving the
    recorder as ``drain`` would; None for the others, which are not touched (drain them alone).

    It takes the recorders at 8 kHz with something to drain whose channels each have audio of one
    G.711 law before ``up_to`` (the common case), each at its first item. Their audio is decoded
    in one table look-up per law and placed into one array: the recordings of a flush slot pay
    ``drain``'s per-call array work once. Nothing changes until all of it is placed: a failure
    leaves every recorder as it was.
    """
    # Each recorder taken: its index, first row in `out`, rows, and per channel (pieces, what stays).
    batch: list[tuple[int, int, int, list[_PendingSplit]]] = []
    total = 0
    seen: set[int] = set()
    for index, (recorder, up_to) in enumerate(items):
        start = recorder._drained
        count = up_to - start
        if count <= 0 or recorder._rows_per_unit != 1 or id(recorder) in seen:
            continue
        seen.add(id(recorder))
        splits = [_split_pending(s.pending, up_to) for s in recorder._states]
        if all(_one_g711_law(pieces, start) for pieces, _ in splits):
            batch.append((index, total, count, splits))
            total += count
    out = np.zeros((total, 2), dtype=np.int16)
    # Per law: the payloads, and where each goes (row in `out`, column).
    laws: dict[int, tuple[list[bytes], list[tuple[int, int]]]] = {}
    for index, first_row, _, splits in batch:
        start = items[index][0]._drained
        for column, (pieces, _) in enumerate(splits):
            if pieces:
                payloads, places = laws.setdefault(pieces[0][1], ([], []))
                for pos, _, payload in pieces:
                    payloads.append(payload)
                    places.append((first_row + pos - start, column))
    for law, (payloads, places) in laws.items():
        decode = ulaw_decode if law == PCMU_PAYLOAD_TYPE else alaw_decode
        samples = decode(b"".join(payloads))
        offset = 0
        for payload, (row, column) in zip(payloads, places, strict=True):
            end = offset + len(payload)
            out[row : row + len(payload), column] = samples[offset:end]  # later pieces over earlier
            offset = end
    drained: list[npt.NDArray[np.int16] | None] = [None] * len(items)
    for index, first_row, count, splits in batch:
        recorder, up_to = items[index]
        start = recorder._drained
        for s, (pieces, kept) in zip(recorder._states, splits, strict=True):
            s.pending = kept
            _pass_decoder_resets(s, up_to)
            lo, hi = recorder._heard_span(s, start, up_to)
            if hi > lo:
                s.gap_samples += hi - lo - _covered_units(pieces, start + lo, start + hi)
        block = out[first_row : first_row + count]
        recorder._finish_drain(block, up_to)
        drained[index] = block
    return drained


def _append_piece(s: _ChannelState, pos: int, payload_type: int, payloads: npt.NDArray[np.uint8]) -> None:
    # Packets placed back to back from `pos` on: one pending entry. G.722 keeps one per packet:
    # `drain` feeds its decoder in position order, and a packet placed later within the span
    # (a late one after a new timeline) must come between the same packets as with `feed`.
    count, size = payloads.shape
    if count == 0:
        return
    joined = payloads.tobytes()
    if payload_type != G722_PAYLOAD_TYPE:
        s.pending.append((pos, payload_type, joined))
        return
    s.pending.extend((pos + k * size, payload_type, joined[k * size : (k + 1) * size]) for k in range(count))


@dataclass(frozen=True, slots=True)
class _Losses:
    """Where a run ``feed_steady`` takes lost packets: ``before`` it (after the channel's newest),
    and between its ``stretches`` of consecutive packets, each ``(first row, end row, offset of the
    first in packets from the run's first, whether packets were lost just before it)``. ``last``
    is the offset of the run's last packet, ``sequence`` the first packet's number."""

    sequence: int
    before: int
    last: int
    stretches: list[tuple[int, int, int, bool]]


SteadyFeed = tuple["StereoRecorder", Channel, Sequence[bytes], npt.NDArray[np.int64]]
"""One channel's packets for ``feed_steady``: recorder, channel, the packets, their arrivals."""


def feed_steady(feeds: Sequence[SteadyFeed]) -> list[bool]:
    """Take each feed that is the steady case, for all of them in a few array operations; which
    were taken is returned. A feed is steady when its packets (at least 8, one size) are one
    plain stream in order that continues its channel's timeline, undrained and with no arrival
    far off and no drift correction due. Packets lost on the way (up to ``_MAX_BULK_GAP`` in a
    row, the timestamps stepping over them) are no obstacle: lossy networks are common. A taken
    feed leaves its recorder as ``feed_batch`` would (the same audio, state and statistics); the
    others are not touched (give them to ``feed_batch``).

    The recordings of many calls flushed together pay the per-call cost of ``feed_batch``'s array
    operations once.
    """
    taken = [False] * len(feeds)
    by_size: dict[int, list[int]] = {}
    for index, (_, _, packets, arrivals) in enumerate(feeds):
        if len(arrivals) != len(packets):
            raise ValueError(f"{len(packets)} packets but {len(arrivals)} arrivals")
        if len(packets) >= _MIN_BULK_RUN:
            size = len(packets[0])
            if size > _RTP_HEADER_LEN and size % 4 == 0:
                by_size.setdefault(size, []).append(index)
    for size, members in by_size.items():
        _feed_steady_group(feeds, members, size, taken)
    return taken


def _feed_steady_group(feeds: Sequence[SteadyFeed], members: list[int], size: int, taken: list[bool]) -> None:
    # The feeds `members`, whose first packets are `size` octets long. Those with a packet of
    # another size are left out before the packets are joined into one array, a row each.
    # The join comes first: it brings the packets, arrived over the last second, into the cache.
    joined = b"".join(chain.from_iterable(feeds[i][2] for i in members))
    counts = np.fromiter((len(feeds[i][2]) for i in members), dtype=np.int64, count=len(members))
    packets = chain.from_iterable(feeds[i][2] for i in members)
    lengths = np.fromiter(map(len, packets), dtype=np.int64, count=int(counts.sum()))
    one_size = np.logical_and.reduceat(lengths == size, np.cumsum(counts) - counts)
    if not one_size.all():
        members = [i for i, whole in zip(members, one_size.tolist(), strict=True) if whole]
        counts = counts[one_size]
        if not members:
            return
        joined = b"".join(chain.from_iterable(feeds[i][2] for i in members))
    starts = np.cumsum(counts) - counts
    data = np.frombuffer(joined, dtype=np.uint8).reshape(-1, size)
    arrivals = np.concatenate([feeds[i][3] for i in members]).astype(np.int64, copy=False)
    known = np.logical_and.reduceat(np.abs(arrivals) < _MAX_BULK_ARRIVAL, starts)
    in_order, offsets = _streams_with_losses(data, starts, counts)
    steady = (in_order & known).tolist()
    # The first packet's header of each feed: octets 0-3 (V/P/X/CC, M/PT, sequence), timestamp, SSRC.
    firsts: list[list[int]] = data[starts, :_RTP_HEADER_LEN].view(">u4").tolist()
    first_rows: list[int] = starts.tolist()
    lengths_of: list[int] = counts.tolist()
    # Where each steady feed would go (`_feed_run`'s preconditions); 0 for the others.
    bases = [0] * len(members)
    lost_before = [0] * len(members)
    candidates: list[int] = []
    for k, index in enumerate(members):
        if not steady[k]:
            continue
        recorder, channel = feeds[index][0], feeds[index][1]
        word, timestamp, ssrc = firsts[k]
        start = _run_start(recorder._states[channel], (word >> 16) & 0x7F, word & 0xFFFF, timestamp, ssrc)
        if start is not None and start[0] >= recorder._drained:
            bases[k], lost_before[k] = start
            candidates.append(k)
    if not candidates:
        return
    # `_take_whole_run` for all candidates: no arrival far off, and the drift blocks' smallest
    # delays (rows of other feeds count as never the smallest). A packet's place is its offset in
    # packets from its feed's first, lost ones counted.
    payload_len = size - _RTP_HEADER_LEN
    delays = arrivals - (np.repeat(np.asarray(bases, dtype=np.int64), counts) + payload_len * offsets)
    farthest: list[int] = np.maximum.reduceat(np.abs(delays), starts).tolist()
    candidates = [k for k in candidates if farthest[k] <= MAX_ARRIVAL_SKEW_SAMPLES]
    in_candidate = np.zeros(len(members), dtype=np.bool_)
    in_candidate[candidates] = True
    delays[~np.repeat(in_candidate, counts)] = np.iinfo(np.int64).max
    block_starts: list[list[int]] = []
    boundaries: list[int] = []
    for k in candidates:
        index = members[k]
        run_starts = _drift_block_starts(feeds[index][0]._states[feeds[index][1]], lengths_of[k])
        block_starts.append(run_starts)
        boundaries.extend([first_rows[k] + start for start in run_starts])
    lows: list[int] = np.minimum.reduceat(delays, boundaries).tolist() if boundaries else []
    payloads = data[:, _RTP_HEADER_LEN:]
    # The candidates' gaps: the rows that come after lost packets.
    gap_rows = np.flatnonzero((np.diff(offsets, prepend=0) > 1) & np.repeat(in_candidate, counts))
    gaps_of: dict[int, list[int]] = {}
    owners = np.searchsorted(starts, gap_rows, side="right") - 1
    for row, k in zip(gap_rows.tolist(), owners.tolist(), strict=True):
        gaps_of.setdefault(k, []).append(row - first_rows[k])
    offset = 0
    for k, run_starts in zip(candidates, block_starts, strict=True):
        index = members[k]
        recorder, channel = feeds[index][0], feeds[index][1]
        word, timestamp, _ = firsts[k]
        first = first_rows[k]
        losses = None
        if lost_before[k] or k in gaps_of:
            losses = _losses_of(
                word & 0xFFFF, lost_before[k], gaps_of.get(k, []), offsets[first : first + lengths_of[k]]
            )
        taken[index] = recorder._commit_whole_run(
            recorder._states[channel],
            (word >> 16) & 0x7F,
            timestamp,
            payloads[first : first + lengths_of[k]],
            bases[k],
            lows[offset : offset + len(run_starts)],
            run_starts,
            losses,
        )
        offset += len(run_starts)


def _losses_of(sequence: int, before: int, gaps: list[int], offsets: npt.NDArray[np.int64]) -> _Losses:
    # A run's `_Losses`: `gaps` are the rows after which packets were lost, `offsets` each packet's.
    cuts = [0, *gaps, len(offsets)]
    places: list[int] = offsets[cuts[:-1]].tolist()
    stretches = [
        (first, end, place, bool(before) if first == 0 else True)
        for first, end, place in zip(cuts[:-1], cuts[1:], places, strict=True)
    ]
    return _Losses(sequence=sequence, before=before, last=int(offsets[-1]), stretches=stretches)


def _run_start(
    s: _ChannelState, payload_type: int, sequence: int, timestamp: int, ssrc: int
) -> tuple[int, int] | None:
    # `_run_base` for a run that may come after lost packets (up to `_MAX_BULK_GAP`, the timestamp
    # stepping over them, RFC 3550 §5.1): where it goes, and how many were lost before it.
    if (
        payload_type not in s.format.audio_payload_types
        or ssrc != s.ssrc
        or s.high_end is None
        or s.seq.highest is None
    ):
        return None
    advance = (sequence - s.seq.highest) & 0xFFFF
    if not 1 <= advance <= _MAX_BULK_GAP:
        return None
    step = ts_diff(timestamp, s.ref_ts)
    if step != s.ref_size * advance or step <= 0:
        return None  # a reordered packet, a pause or a new timeline
    base = s.ref_pos + step
    return (base, advance - 1) if abs(base) < _MAX_BULK_ARRIVAL else None  # numpy holds positions below


def _run_base(s: _ChannelState, payload_type: int, sequence: int, timestamp: int, ssrc: int) -> int | None:
    # Where a run of one stream's consecutive packets that starts with this one goes when it
    # continues the channel's timeline in order (one past the newest sequence number, the newest
    # packet's length of timestamp on); None when `feed` must look at it (a new stream, a
    # reordered or lost packet, a pause in sending or a jump).
    start = _run_start(s, payload_type, sequence, timestamp, ssrc)
    return start[0] if start is not None and start[1] == 0 else None


def _was_skipped(seq: ExtendedSequence) -> bool:
    # Whether the late packet just taken was counted as lost when a newer one skipped its number:
    # not if it is numbered before the packet counting started at (RFC 3550 §A.3 counts from there).
    late, first = seq.last_extended, seq.first
    return late is not None and first is not None and late > first


def _advance(seq: ExtendedSequence, newest: int | None) -> int:
    # How many sequence numbers the packet just taken as IN_ORDER moved the highest on.
    highest = seq.highest
    return 0 if highest is None or newest is None else highest - newest


def _drift_block_starts(s: _ChannelState, count: int) -> list[int]:
    # Where a run of `count` packets splits into drift blocks: first the packets that complete the
    # channel's open block, then whole blocks.
    first = DRIFT_BLOCK_PACKETS - s.block_count
    return [0, *range(first, count, DRIFT_BLOCK_PACKETS)] if first < count else [0]


def _parse_rtp(data: bytes) -> tuple[int, int, int, int, bytes] | None:
    # RFC 3550 §5.1: (payload type, sequence, timestamp, SSRC, payload), or None if malformed.
    size = len(data)
    if size < _RTP_HEADER_LEN:
        return None
    b0, b1, sequence, timestamp, ssrc = _RTP_HEADER.unpack_from(data)
    if b0 >> 6 != 2:
        return None
    start = _RTP_HEADER_LEN + 4 * (b0 & 0x0F)  # CSRC list
    if start > size:
        return None
    if b0 & 0x10:  # RFC 3550 §5.3.1: profile word, length in 32-bit words, data
        if start + 4 > size:
            return None
        start += 4 + 4 * int.from_bytes(data[start + 2 : start + 4], "big")
        if start > size:
            return None
    end = size
    if b0 & 0x20:  # the last octet counts the padding, itself included
        padding = data[-1]
        if padding == 0 or padding > size - start:
            return None
        end = size - padding
    return b1 & 0x7F, sequence, timestamp, ssrc, bytes(data[start:end])


def _runs(
    data: npt.NDArray[np.uint8], known: npt.NDArray[np.bool_]
) -> tuple[list[int], npt.NDArray[np.bool_]]:
    """Where the runs of same-size packets (rows of ``data``) end, and which packets are plain.

    A packet continues the run of the one before when both are plain (first octet 0x80, arrival
    known) and it has the same payload type and SSRC, the next sequence number and the timestamp
    one payload length on (RFC 3550 §5.1). The steady state of a call, one run of them all, is
    recognised from the header words in a few operations; otherwise packet by packet.
    """
    count, size = data.shape
    payload_len = size - _RTP_HEADER_LEN
    if size % 4 == 0 and known.all():
        in_order, offsets = _streams_with_losses(data, np.zeros(1, np.int64), np.full(1, count))
        if in_order[0] and offsets[-1] == count - 1:  # and none lost
            return [count], known
    header = np.ascontiguousarray(data[:, :_RTP_HEADER_LEN]).view(_RTP_HEADER_DTYPE)[:, 0]
    payload_types = header["b1"] & 0x7F
    sequences = header["seq"].astype(np.int64)
    timestamps = header["ts"].astype(np.int64)
    ssrcs = header["ssrc"]
    plain = (header["b0"] == _PLAIN_FIRST_OCTET) & known
    follows = np.zeros(count, dtype=np.bool_)  # same stream as the packet before, one packet on
    follows[1:] = (
        plain[1:]
        & (payload_types[1:] == payload_types[:-1])
        & (ssrcs[1:] == ssrcs[:-1])
        & ((sequences[1:] - sequences[:-1]) & 0xFFFF == 1)
        & ((timestamps[1:] - timestamps[:-1]) & 0xFFFFFFFF == payload_len)
    )
    return [*np.flatnonzero(~follows).tolist()[1:], count], plain  # follows[0] is always False


def _streams_with_losses(
    data: npt.NDArray[np.uint8], starts: npt.NDArray[np.int64], counts: npt.NDArray[np.int64]
) -> tuple[npt.NDArray[np.bool_], npt.NDArray[np.int64]]:
    """For each group of ``counts[i] > 0`` rows of ``data`` from ``starts[i]`` (packets of one size, a
    multiple of 4 octets): is it one plain stream in order, lost packets allowed? First octet 0x80
    (RFC 3550 §5.1: version 2, no padding, extension or CSRCs), one payload type and SSRC, and each
    packet 1 to ``_MAX_BULK_GAP`` sequence numbers past the one before, its timestamp as many
    payload lengths on; the marker bit is free. Also returns each packet's offset in packets from
    its group's first, lost ones counted."""
    payload_len = data.shape[1] - _RTP_HEADER_LEN
    words = data.view(">u4")  # octets 0-3: V/P/X/CC, M/PT, sequence; 4-7 timestamp; 8-11 SSRC
    head, stamp, source = words[:, 0], words[:, 1], words[:, 2]
    sequence = (head & 0xFFFF).astype(np.int64)
    steps = np.zeros(len(data), dtype=np.int64)
    steps[1:] = (sequence[1:] - sequence[:-1]) & 0xFFFF
    stamp_steps = np.zeros(len(data), dtype=np.int64)
    stamp_steps[1:] = (stamp[1:].astype(np.int64) - stamp[:-1].astype(np.int64)) & 0xFFFFFFFF
    steps[starts] = 0  # a group's first packet steps from nothing
    first = np.zeros(len(data), dtype=np.bool_)
    first[starts] = True
    rows = first | (
        ((head & 0xFF7F0000) == np.repeat(head[starts] & 0xFF7F0000, counts))  # the marker is free
        & (source == np.repeat(source[starts], counts))
        & (steps >= 1)
        & (steps <= _MAX_BULK_GAP)
        & (stamp_steps == steps * payload_len)
    )
    in_order: npt.NDArray[np.bool_] = np.logical_and.reduceat(rows, starts) & (
        head[starts] >> 24 == _PLAIN_FIRST_OCTET
    )
    total = np.cumsum(steps)
    offsets: npt.NDArray[np.int64] = total - np.repeat(total[starts], counts)
    return in_order, offsets


def _scalar(arrival: int | np.int64 | None) -> int | None:
    # An arrival as a Python int: `feed_batch` also takes a numpy array of them.
    return None if arrival is None else int(arrival)


def _arrival_values(
    arrivals: _Arrivals,
) -> tuple[npt.NDArray[np.bool_], npt.NDArray[np.int64]]:
    # Which arrivals the bulk path may use, and their values (0 where it may not).
    try:
        values = np.asarray(arrivals, dtype=np.int64)
    except (TypeError, OverflowError):
        known = np.fromiter(
            (a is not None and abs(a) < _MAX_BULK_ARRIVAL for a in arrivals),
            dtype=np.bool_,
            count=len(arrivals),
        )
        values = np.fromiter(
            (a if a is not None and abs(a) < _MAX_BULK_ARRIVAL else 0 for a in arrivals),
            dtype=np.int64,
            count=len(arrivals),
        )
        return known, values
    known = np.abs(values) < _MAX_BULK_ARRIVAL
    return known, values


def _unit_index(positions: list[int], payloads: list[bytes]) -> npt.NDArray[np.int64]:
    # The position (from the drain's start) of every byte of the payloads joined in order.
    lengths = np.fromiter((len(p) for p in payloads), dtype=np.int64, count=len(payloads))
    offsets = np.cumsum(lengths) - lengths
    index: npt.NDArray[np.int64] = np.arange(int(lengths.sum()), dtype=np.int64) + np.repeat(
        np.asarray(positions, dtype=np.int64) - offsets, lengths
    )
    return index
