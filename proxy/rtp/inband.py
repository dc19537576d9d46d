"""In-band DTMF detection (ITU-T Q.23 tone pairs) in PCM or G.711 audio, sans-IO, with numpy.

Theory of operation
-------------------
The audio is cut into overlapping frames, one every ``HOP_MS`` (5 ms: 40 samples at 8 kHz), each
two blocks long. A block is ``block_ms`` (default 25.625 ms: 205 samples at 8 kHz, a DFT bin
width of 39 Hz). Every frame is judged on its own, and runs of frames make key presses.

Goertzel, vectorised. The recursion ``s[n] = x[n] + 2 cos(w) s[n-1] - s[n-2]`` is linear with
impulse response ``h[m] = sin((m + 1) w) / sin(w)``, so its two final states are dot products
of the (windowed) block with reversed copies of ``h``. One matrix holds them for every frequency;
one product of all the frames of a chunk with it runs the recursion for every frame and every
frequency at once, and ``s1² + s2² - 2 cos(w) s1 s2`` is the power. Frequencies are exact, not
rounded to DFT bins. Per frame we evaluate, on the centre block (rectangular):

* probes around each of the 8 DTMF frequencies, at most 0.5 bin apart and spread so that a
  tone off by up to ``ACCEPT_DEVIATION`` (±1.5 %) is within 0.26 bin of one (it loses at most
  1 dB). The power of a DTMF frequency is that of its strongest probe. A single block length
  cannot do this alone: ±1.5 % of 1633 Hz (24.5 Hz) must pass while ±3.5 % of 697 Hz (24.4 Hz)
  must not;
* two guard probes per frequency at ``±GUARD_DEVIATION`` (4 %);
* and, with a Hann window over the whole frame (51 ms), the second harmonic of each frequency.
  The longer tapered window keeps the high-group tone out of the low tone's harmonic (1394 Hz
  is 58 Hz from 1336 Hz): for tones within 1.5 % the leak is at least 31 dB down.

Powers are scaled to the mean square of the sine (dBm0 via ``DBM0_MEAN_SQUARE``).

A frame shows the pair (strongest low-group, strongest high-group frequency) when all hold:

* level: the two tones together reach ``MIN_LEVEL_DBM0`` (-36 dBm0). Where a tone fills only
  part of the block its power drops, so presses of 40 ms are found from about -33 dBm0 up;
* twist (high minus low) within ``-REVERSE_TWIST_DB`` .. ``+FORWARD_TWIST_DB`` (-10 .. +6 dB).
  Q.24 asks for +4 / -8 dB to be accepted; the 2 dB margin covers the loss of a tone that is
  also 1.5 % off;
* tone ratio: the pair holds at least ``TONE_RATIO`` (half) of the centre block's power. This
  rejects noise, most speech, and a single tone. A tone filling a share q of the block gives a
  ratio of about q, so a frame passes when its centre lies in the tone: a run of n frames
  stands for n hops of tone, and a run of n frames without the pair for n hops of pause;
* peak: each tone is ``PEAK_MARGIN_DB`` (6 dB) above the next strongest of its group;
* frequency: each tone is stronger at its probes than at its guards. The boundary lies between
  ±2 % and ±2.5 %, for every frequency: ±1.5 % is accepted, ±3.5 % rejected.

Second harmonic (talk-off): in voiced speech a component near a DTMF frequency comes with its
harmonics; a Q.23 generator keeps them 20 dB down. A frame passes the check when each tone's
second harmonic is ``HARMONIC_MARGIN_DB`` (20 dB) below it. Where a frame straddles the start or
end of a tone the cut spreads the high tone into the low tone's harmonic, so the check is made
per press: at least ``HARMONIC_SHARE`` (a quarter) of its frames must pass it. (Clean 40 ms
tones pass it in at least 3 of their 8 frames; a vowel carrying a pair, in none or nearly all.)
Steady synthetic vowels whose harmonics fall within 1.5 % of a pair, with formants on them and
weak harmonics above, can still pass, as with any Goertzel detector.

Presses. A run of frames showing one pair starts a press; frames without it, or with another
pair, for fewer than ``MIN_PAUSE_MS`` (30 ms: Q.24 wants a 40 ms pause between two presses of a
key recognised, and a 10 ms break bridged; a lost 20 ms packet is bridged too) are a drop-out
inside the press. The press ends when the pause is long enough (or at ``flush()``) and is
reported then, once, with its onset and duration, if it lasted ``MIN_TONE_MS`` (30 ms: Q.24
asks for 40 ms accepted and 20-23 ms rejected). A press held for seconds is reported once, when
released; the report comes about 55 ms after the tone ends. A detector made with ``at_onset``
reports a press instead as soon as it is known to be one: once it has lasted ``MIN_TONE_MS`` and
its frames so far pass the harmonic check (about 60 ms after the tone starts for a clean tone),
with its onset and its duration so far; its end reports nothing more.

Chunking. The detector keeps the samples it still needs, so the same audio fed in any chunk
sizes yields the same presses. Half a frame of silence is assumed before the first sample, and
``flush()`` appends silence.

Timestamps. ``feed`` takes the RTP timestamp of the chunk's first sample; chunks are expected in
timestamp order. A forward gap of up to ``MAX_FILL_MS`` (lost packets) is filled with silence,
samples at timestamps already fed are dropped, and any larger jump ends the stream (as
``flush()``) and starts a new one at the new timestamp.

Masking (PCI DSS: card digits must not be stored). Every frame that showed a pair, even in a
press too short to count or failing the harmonic check, marks its block and ``MASK_GUARD_MS``
each side. ``take_spans()`` hands out these spans as they close and ``settled_until`` says up to
where the audio has been judged, so a recorder can silence the spans before storing; for a whole
buffer, ``dtmf_mask()`` does it in one call. ``dtmf_spans()`` (and ``dtmf_masks()``) take many
buffers at once, every buffer of one rate in one pass, ruling out first, exactly, the frames too
quiet or too far from a pair to show one, and looking for the rest on every third frame first:
they find every run of three or more frames showing a pair (a clean tone of 15 ms gives one), and
may leave a run of one or two alone (a fragment no DTMF receiver takes for a key: Q.24 rejects
tones under 20 ms).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from proxy.rtp.g711 import alaw_decode, ulaw_decode
from proxy.rtp.seqnum import ts_add, ts_diff

__all__ = [
    "ACCEPT_DEVIATION",
    "DBM0_MEAN_SQUARE",
    "DEFAULT_BLOCK_MS",
    "DTMF_HIGH_HZ",
    "DTMF_KEYPAD",
    "DTMF_LOW_HZ",
    "FORWARD_TWIST_DB",
    "GUARD_DEVIATION",
    "HARMONIC_MARGIN_DB",
    "HARMONIC_SHARE",
    "HOP_MS",
    "MASK_GUARD_MS",
    "MAX_FILL_MS",
    "MIN_LEVEL_DBM0",
    "MIN_PAUSE_MS",
    "MIN_TONE_MS",
    "PEAK_MARGIN_DB",
    "REVERSE_TWIST_DB",
    "TONE_RATIO",
    "InbandDigit",
    "InbandDtmfDetector",
    "ToneSpan",
    "dtmf_mask",
    "dtmf_masks",
    "dtmf_spans",
    "feed_many",
    "goertzel_power",
]

# ITU-T Q.23: rows (low group) and columns (high group) of the keypad.
DTMF_LOW_HZ: Final = (697.0, 770.0, 852.0, 941.0)
DTMF_HIGH_HZ: Final = (1209.0, 1336.0, 1477.0, 1633.0)
DTMF_KEYPAD: Final = "123A456B789C*0#D"  # row-major: index = 4 * low + high

# 0 dBm0 as an int16 mean square: a sine 3.17 dB below the µ-law overload point (ITU-T G.711).
DBM0_MEAN_SQUARE: Final = (32_636.0 * 10.0 ** (-3.17 / 20.0)) ** 2 / 2.0

DEFAULT_BLOCK_MS: Final = 25.625  # 205 samples at 8 kHz
HOP_MS: Final = 5.0  # one frame per hop
MIN_LEVEL_DBM0: Final = -36.0  # both tones together
FORWARD_TWIST_DB: Final = 6.0  # high group above low group (Q.24 asks for +4 dB)
REVERSE_TWIST_DB: Final = 10.0  # low group above high group (Q.24 asks for 8 dB)
TONE_RATIO: Final = 0.5  # share of the block's power in the pair
ACCEPT_DEVIATION: Final = 0.015  # frequency offset the probes cover
GUARD_DEVIATION: Final = 0.04  # where the guard probes sit
PEAK_MARGIN_DB: Final = 6.0  # each tone over the next strongest of its group
HARMONIC_MARGIN_DB: Final = 20.0  # each tone over its second harmonic
HARMONIC_SHARE: Final = 0.25  # share of a press's frames that must pass the harmonic check
MIN_TONE_MS: Final = 30.0  # Q.24: 40 ms accepted, 20-23 ms rejected
MIN_PAUSE_MS: Final = 30.0  # Q.24: a 40 ms pause separates presses, a 10 ms break does not
MAX_FILL_MS: Final = 1000.0  # longest timestamp gap filled with silence
MASK_GUARD_MS: Final = 10.0  # masked beyond the block that showed a pair

_PROBE_REACH_BINS: Final = 0.26  # a tone this far from a probe loses 1 dB
_PROBE_SPACING_BINS: Final = 0.5
_NO_PAIR: Final = -1
_SLACK: Final = 0.9  # how much looser the checks that rule frames out are than the detector's
_CHECK_CHUNK: Final = 512  # centre blocks checked at a time: their copy stays in the cache
_SCREEN_STRIDE: Final = 3  # masking checks every third frame first (``_strided_screen``)
_SCREEN_REACH: Final = np.arange(1 - _SCREEN_STRIDE, _SCREEN_STRIDE)  # then these around a pass
_FREQS_HZ: Final = DTMF_LOW_HZ + DTMF_HIGH_HZ


@dataclass(frozen=True, slots=True, kw_only=True)
class InbandDigit:
    """One key press heard in the audio.

    ``rtp_timestamp`` is the estimated onset (RTP timestamp units, wrapped to 32 bits) and
    ``duration`` the estimated length of the tone in samples, short drop-outs included (reported
    at its onset, ``InbandDtmfDetector(at_onset=True)``: its length so far). Both move in 5 ms hops
    and are within two hops of the truth for clean tones.
    """

    digit: str
    rtp_timestamp: int
    duration: int


@dataclass(frozen=True, slots=True, kw_only=True)
class ToneSpan:
    """A stretch of audio that carried DTMF, guard included (RTP timestamp and length in samples)."""

    rtp_timestamp: int
    duration: int


def _goertzel_columns(
    freq_hz: float, window: npt.NDArray[np.float64], offset: int, frame_len: int, sample_rate_hz: int
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    # The recursion's final states over window * x[offset:offset + N], as weights on the frame:
    # s[N-1] = sum x[n] w[n] h[N-1-n] and s[N-2] = sum x[n] w[n] h[N-2-n].
    omega = 2.0 * math.pi * freq_hz / sample_rate_hz
    size = len(window)
    impulse = np.sin((np.arange(size) + 1.0) * omega) / math.sin(omega)
    last = np.zeros(frame_len)
    before_last = np.zeros(frame_len)
    last[offset : offset + size] = window * impulse[::-1]
    before_last[offset : offset + size - 1] = window[:-1] * impulse[: size - 1][::-1]
    return last, before_last


def goertzel_power(
    blocks: npt.NDArray[np.floating[Any]] | npt.NDArray[np.integer[Any]],
    freqs_hz: Sequence[float],
    sample_rate_hz: int = 8000,
) -> npt.NDArray[np.float64]:
    """``|X(f)|²`` of each row of ``blocks`` (shape ``(..., N)``) at each frequency, by Goertzel.

    ``X(f) = sum x[n] exp(-2j pi f n / rate)``; the result has shape ``(..., len(freqs_hz))``.
    Frequencies need not fall on DFT bins; they must lie strictly between 0 and half the rate.
    """
    samples = np.asarray(blocks, dtype=np.float64)
    size = samples.shape[-1]
    if size < 2:
        raise ValueError(f"Goertzel needs blocks of at least 2 samples, got {size}")
    nyquist = sample_rate_hz / 2.0
    if any(not 0.0 < f < nyquist for f in freqs_hz):
        raise ValueError(f"frequencies must lie in (0, {nyquist}) Hz, got {list(freqs_hz)}")
    ones = np.ones(size)
    columns = [_goertzel_columns(f, ones, 0, size, sample_rate_hz) for f in freqs_hz]
    s1 = samples @ np.stack([c[0] for c in columns], axis=1)
    s2 = samples @ np.stack([c[1] for c in columns], axis=1)
    two_cos = 2.0 * np.cos(2.0 * np.pi * np.asarray(freqs_hz, dtype=np.float64) / sample_rate_hz)
    power: npt.NDArray[np.float64] = s1 * s1 + s2 * s2 - two_cos * s1 * s2
    return power


@dataclass(frozen=True, slots=True, eq=False)
class _Kernel:
    """The Goertzel matrix and its companions for one sample rate and block length (read-only)."""

    matrix: npt.NDArray[np.float64]
    probe_bins: int
    groups: npt.NDArray[np.intp]
    two_cos: npt.NDArray[np.float64]
    scale: npt.NDArray[np.float64]
    low_basis: npt.NDArray[np.float32]
    """Cosine then sine of every probe frequency of the low group over the centre block, a row
    each: ``|X(f)|²`` of a block is the sum of the squares of its two products (single precision,
    for ``dtmf_spans``)."""
    high_basis: npt.NDArray[np.float32]
    """The same for the probes of the high group."""


@functools.lru_cache(maxsize=8)
def _kernel(rate: int, frame: int, block: int) -> _Kernel:
    """Built once per (rate, frame, block) and shared by every detector: 280 KiB at 8 kHz."""
    # Columns, per bin: the probes of each DTMF frequency (rectangular block centred in the
    # frame), the two guard probes of each, the second harmonic of each (Hann over the frame).
    lasts: list[npt.NDArray[np.float64]] = []
    befores: list[npt.NDArray[np.float64]] = []
    freqs: list[float] = []
    gains: list[float] = []

    def add(freq_hz: float, window: npt.NDArray[np.float64], offset: int) -> None:
        last, before = _goertzel_columns(freq_hz, window, offset, frame, rate)
        lasts.append(last)
        befores.append(before)
        freqs.append(freq_hz)
        gains.append(float(window.sum()))

    rect = np.ones(block)
    centred = (frame - block) // 2
    groups: list[int] = []
    for f in _FREQS_HZ:
        bins_per_unit = f * block / rate  # DFT bins per unit of relative offset
        spread = max(0.0, ACCEPT_DEVIATION - _PROBE_REACH_BINS / bins_per_unit)
        side = math.ceil(spread * bins_per_unit / _PROBE_SPACING_BINS)
        groups.append(len(freqs))
        for offset in np.linspace(-spread, spread, 2 * side + 1):
            add(f * (1.0 + float(offset)), rect, centred)
    probe_bins = len(freqs)
    for f in _FREQS_HZ:
        add(f * (1.0 - GUARD_DEVIATION), rect, centred)
        add(f * (1.0 + GUARD_DEVIATION), rect, centred)
    hann = np.hanning(frame + 2)[1:-1]  # without its zero end points
    for f in _FREQS_HZ:
        add(2.0 * f, hann, 0)
    matrix = np.ascontiguousarray(np.stack(lasts + befores, axis=1))
    two_cos = 2.0 * np.cos(2.0 * np.pi * np.asarray(freqs) / rate)
    # |X|² of a sine of amplitude A is (A * sum(w) / 2)²; scale it to the mean square A² / 2.
    scale = 2.0 / np.asarray(gains) ** 2
    for array in (matrix, two_cos, scale):
        array.flags.writeable = False
    group_index = np.asarray(groups)
    group_index.flags.writeable = False
    low_probes = groups[len(DTMF_LOW_HZ)]  # the probes of the low group come first
    low_basis = _probe_basis(freqs[:low_probes], block, rate)
    high_basis = _probe_basis(freqs[low_probes:probe_bins], block, rate)
    return _Kernel(
        matrix=matrix,
        probe_bins=probe_bins,
        groups=group_index,
        two_cos=two_cos,
        scale=scale,
        low_basis=low_basis,
        high_basis=high_basis,
    )


def _probe_basis(freqs_hz: Sequence[float], block: int, rate: int) -> npt.NDArray[np.float32]:
    # Cosine then sine of each frequency over a block, a row each (read-only).
    angles = 2.0 * np.pi * np.outer(freqs_hz, np.arange(block)) / rate
    basis = np.ascontiguousarray(np.concatenate((np.cos(angles), np.sin(angles))), dtype=np.float32)
    basis.flags.writeable = False
    return basis


def _strongest_probe(
    basis: npt.NDArray[np.float32], blocks: npt.NDArray[np.float32]
) -> npt.NDArray[np.float32]:
    # Per block (a row of ``blocks``): the largest ``|X(f)|²`` of the probes of ``basis``. The
    # products come a probe to a row, so that every step after them runs along rows.
    products = basis @ blocks.T
    np.square(products, out=products)
    probes = len(basis) // 2
    power = products[:probes]
    power += products[probes:]
    strongest: npt.NDArray[np.float32] = power.max(axis=0)
    return strongest


class InbandDtmfDetector:
    """Finds DTMF key presses in one stream of PCM audio; see the module docstring for the rules.

    ``block_ms`` is the Goertzel block (20 to 40 ms); the frame is two blocks. Shorter blocks
    react faster at tone edges but separate frequencies less well, and the frequency limits
    above are worked out for the default. ``screen`` rules frames out by the cheap checks of
    ``dtmf_spans`` before judging the rest in full; it finds the same presses and spans as
    judging every frame (``screen=False``, the reference), for a fraction of the work on
    silence and speech. ``at_onset`` reports each press as soon as it is known to be one rather
    than when it ends (see the module docstring). One detector serves one RTP stream.
    """

    __slots__ = (
        "_at_onset",
        "_block",
        "_buffer",
        "_cur_digit",
        "_cur_first",
        "_cur_frames",
        "_cur_harmonic",
        "_cur_last",
        "_cur_reported",
        "_fed",
        "_frame",
        "_frames_done",
        "_groups",
        "_high_basis",
        "_hop",
        "_kernel",
        "_low_basis",
        "_max_fill",
        "_min_level",
        "_min_tone",
        "_origin_ts",
        "_pause_frames",
        "_probe_bins",
        "_rate",
        "_reach",
        "_scale",
        "_screen",
        "_span_first",
        "_span_last",
        "_spans",
        "_started",
        "_tail",
        "_trail_frames",
        "_trail_harmonic",
        "_trail_label",
        "_trail_last",
        "_trail_start",
        "_two_cos",
    )

    _started: bool
    _origin_ts: int
    _fed: int
    _frames_done: int

    def __init__(
        self,
        sample_rate_hz: int = 8000,
        *,
        block_ms: float = DEFAULT_BLOCK_MS,
        screen: bool = True,
        at_onset: bool = False,
    ) -> None:
        if sample_rate_hz < 8000:
            raise ValueError(f"sample_rate_hz must be at least 8000, got {sample_rate_hz}")
        if not 20.0 <= block_ms <= 40.0:
            raise ValueError(f"block_ms must be in 20..40, got {block_ms}")
        rate = sample_rate_hz
        self._rate = rate
        self._block = round(block_ms * rate / 1000.0)
        self._frame = 2 * self._block
        self._hop = round(HOP_MS * rate / 1000.0)
        self._tail = np.zeros(self._frame // 2 + self._hop)  # the silence flush() appends
        self._min_tone = round(MIN_TONE_MS * rate / 1000.0)
        self._pause_frames = math.ceil(MIN_PAUSE_MS / HOP_MS)
        self._max_fill = round(MAX_FILL_MS * rate / 1000.0)
        # A frame that shows a pair saw it somewhere in its block; mark that, and the guard.
        self._reach = self._block // 2 + round(MASK_GUARD_MS * rate / 1000.0)
        self._min_level = DBM0_MEAN_SQUARE * 10.0 ** (MIN_LEVEL_DBM0 / 10.0)
        self._screen = screen
        self._at_onset = at_onset
        self._build_kernel()
        self._spans: list[ToneSpan] = []
        self._reset()

    @property
    def sample_rate_hz(self) -> int:
        """The sample rate (and RTP clock rate) of the audio fed."""
        return self._rate

    @property
    def settled_until(self) -> int | None:
        """RTP timestamp before which all audio fed has been judged: every DTMF span that lies
        (partly) before it has been returned by ``take_spans()`` or is waiting there. ``None``
        before the first ``feed``. A recorder may store audio before it once spans are silenced."""
        if not self._started:
            return None
        horizon = self._frames_done * self._hop - self._reach
        if self._span_first >= 0:
            horizon = min(horizon, self._span_first * self._hop - self._reach)
        return ts_add(self._origin_ts, min(max(0, horizon), self._fed))

    def feed(self, pcm: npt.NDArray[np.int16], rtp_timestamp: int) -> list[InbandDigit]:
        """Analyse 1-D ``int16`` samples, the first at ``rtp_timestamp``; return the presses ended."""
        out, pcm = self._before_feed(pcm, rtp_timestamp)
        if len(pcm):
            out += self._analyse(pcm.astype(np.float64), real=True)
        return out

    def _before_feed(
        self, pcm: npt.NDArray[np.int16], rtp_timestamp: int
    ) -> tuple[list[InbandDigit], npt.NDArray[np.int16]]:
        # Checks ``pcm``, then lines it up with what was fed: a gap is filled with silence (and
        # judged), a large jump ends the stream. Returns the presses so ended and the new samples.
        if not isinstance(pcm, np.ndarray) or pcm.dtype != np.int16:
            raise TypeError("feed needs a numpy int16 array")
        if pcm.ndim != 1:
            raise ValueError(f"feed needs 1-D samples, got shape {pcm.shape}")
        out: list[InbandDigit] = []
        rtp_timestamp &= 0xFFFFFFFF
        if self._started:
            jump = ts_diff(rtp_timestamp, ts_add(self._origin_ts, self._fed))
            if abs(jump) > self._max_fill:
                out += self.flush()
            elif jump > 0:
                out += self._analyse(np.zeros(jump), real=True)  # lost packets: silence
            elif jump < 0:
                pcm = pcm[-jump:]  # samples at timestamps already fed
        if not self._started:
            self._started = True
            self._origin_ts = rtp_timestamp
        return out, pcm

    def feed_ulaw(self, payload: bytes, rtp_timestamp: int) -> list[InbandDigit]:
        """``feed`` for a PCMU (G.711 µ-law) payload."""
        return self.feed(ulaw_decode(payload), rtp_timestamp)

    def feed_alaw(self, payload: bytes, rtp_timestamp: int) -> list[InbandDigit]:
        """``feed`` for a PCMA (G.711 A-law) payload."""
        return self.feed(alaw_decode(payload), rtp_timestamp)

    def flush(self) -> list[InbandDigit]:
        """End the stream: judge the buffered audio, report a press still held, close any span.

        The next ``feed`` starts a new stream at its timestamp.
        """
        if not self._started:
            return []
        out = self._analyse(self._tail, real=False)
        out += self._end_press()
        self._end_span()
        self._reset()
        return out

    def _spans_of_buffers(self, buffers: Sequence[npt.NDArray[np.int16]]) -> list[list[ToneSpan]]:
        # For ``dtmf_spans``: the spans of each buffer as ``feed(pcm, 0)`` then ``flush()`` would
        # find them, every buffer at this detector's rate judged in one pass.
        frame, block, hop = self._frame, self._block, self._hop
        lead = (frame - block) // 2  # where a frame's centre block starts
        # Laid end to end, each buffer as the detector sees it (half a frame of silence, the
        # samples, the silence of flush()), every one starting on a hop: then every centre
        # block starts at lead + m * hop, and m numbers the frames of all buffers at once.
        # Single precision holds the samples exactly.
        lengths = [len(pcm) for pcm in buffers]
        counts = [(length + len(self._tail) - frame // 2) // hop + 1 for length in lengths]
        bases = np.cumsum([0] + [-(-(frame // 2 + n + len(self._tail)) // hop) for n in lengths])
        whole_hops, rest = divmod(block, hop)
        grid = int(bases[-1]) + whole_hops + 1
        samples = np.zeros(lead + grid * hop + frame, dtype=np.float32)
        for pcm, base in zip(buffers, bases[:-1].tolist(), strict=True):
            samples[base * hop + frame // 2 : base * hop + frame // 2 + len(pcm)] = pcm
        frames = np.arange(sum(counts)) + np.repeat(bases[:-1] - np.cumsum([0, *counts[:-1]]), counts)
        # Each centre block's energy: whole hops, then the start of the next. Rounding stays
        # under a few parts in a million.
        hop_parts = np.zeros((hop, 2), dtype=np.float32)
        hop_parts[:, 0] = 1.0
        hop_parts[:rest, 1] = 1.0
        sums = np.square(samples[lead : lead + grid * hop]).reshape(grid, hop) @ hop_parts
        hop_energy = np.zeros(grid + 1)
        np.cumsum(sums[:, 0], dtype=np.float64, out=hop_energy[1:])
        energy = hop_energy[frames + whole_hops] - hop_energy[frames] + sums[frames + whole_hops, 1]
        mean_square = energy / block
        # A probe's power is at most twice the block's mean square (Cauchy-Schwarz), a pair's four
        # times: a block quieter than this fails the level check.
        loud = np.flatnonzero(4.0 * mean_square >= _SLACK * self._min_level)
        blocks = np.lib.stride_tricks.as_strided(  # row m: centre block m (rows checked are copied)
            samples[lead:], (grid, block), (hop * samples.itemsize, samples.itemsize), writeable=False
        )

        def may_show_pair(chosen: npt.NDArray[np.intp]) -> npt.NDArray[np.bool_]:
            # A chunk at a time: the copy of its blocks stays in the cache.
            parts = [chosen[at : at + _CHECK_CHUNK] for at in range(0, len(chosen), _CHECK_CHUNK)]
            return np.concatenate(
                [self._may_show_pair(blocks[frames[part]], mean_square[part]) for part in parts]
                or [np.zeros(0, dtype=np.bool_)]
            )

        passed = _strided_screen(frames, loud, may_show_pair)
        spans: list[list[ToneSpan]] = [[] for _ in buffers]
        if not len(passed):
            return spans
        judged = frames[passed]
        windows = np.lib.stride_tricks.sliding_window_view(samples, frame)[judged * hop]
        labels, harmonic_ok = self._classify(windows.astype(np.float64))
        owner = np.searchsorted(bases, judged, side="right") - 1
        cuts = np.flatnonzero(np.diff(owner)) + 1
        for index, label, harmonic, where in zip(
            np.split(owner, cuts),
            np.split(labels, cuts),
            np.split(harmonic_ok, cuts),
            np.split(judged, cuts),
            strict=True,
        ):
            k = int(index[0])
            spans[k] = self._spans_from_labels(lengths[k], counts[k], where - bases[k], label, harmonic)
        return spans

    def _may_show_pair(
        self, blocks: npt.NDArray[np.float32], mean_square: npt.NDArray[np.float64]
    ) -> npt.NDArray[np.bool_]:
        # The level, twist and tone-ratio checks of ``_classify`` on the probes alone, from the
        # centre blocks, with thresholds ``_SLACK`` looser: a frame failing them fails them in
        # ``_classify`` too. The strongest probe of a group is its strongest tone's power. In
        # single precision, the rounding of the probe powers stays under a few parts in ten
        # thousand of the block's mean square, far inside the slack. The low group is looked at
        # first: the forward twist check bounds the high group's power by the low group's, so a
        # low group too weak for the level and tone-ratio checks even with the most the high group
        # may add rules the frame out (about seven in eight frames of speech).
        to_power = self._block**2 / 2.0  # from a mean square A² / 2 to |X|² (A N / 2)²
        need = (_SLACK * to_power) * np.maximum(self._min_level, TONE_RATIO * mean_square)
        forward_twist = _db(FORWARD_TWIST_DB) / _SLACK
        p_low = _strongest_probe(self._low_basis, blocks)
        may: npt.NDArray[np.bool_] = p_low * (1.0 + forward_twist) >= need
        rest = np.flatnonzero(may)
        if len(rest):
            low, need = p_low[rest], need[rest]
            p_high = _strongest_probe(self._high_basis, blocks[rest])
            pair = low + p_high >= need
            pair &= p_high <= low * forward_twist
            pair &= low * _SLACK <= p_high * _db(REVERSE_TWIST_DB)
            may[rest] = pair
        return may

    def _spans_from_labels(
        self,
        samples: int,
        count: int,
        judged: npt.NDArray[np.intp],
        labels: npt.NDArray[np.int64],
        harmonic_ok: npt.NDArray[np.bool_],
    ) -> list[ToneSpan]:
        # The spans of a stream of ``samples`` samples whose ``count`` frames show no pair except
        # the ``judged`` ones, labelled: as feeding and flushing it would find them.
        self._reset()
        self._started = True
        self._fed = samples
        self._frames_done = count
        self._labelled(0, count, judged, labels, harmonic_ok)
        self._cur_digit = _NO_PAIR  # presses are not reported: masking needs the spans only
        self._end_span()
        self._reset()
        return self.take_spans()

    def take_spans(self) -> list[ToneSpan]:
        """The DTMF spans closed since the last call, oldest first.

        A span covers every frame that showed a tone pair (whether or not it made a press),
        widened by half a block and ``MASK_GUARD_MS`` each side. It closes when no pair has been
        seen for twice that widening, or at ``flush()``.
        """
        spans, self._spans = self._spans, []
        return spans

    # -- analysis --------------------------------------------------------------------------

    def _build_kernel(self) -> None:
        kernel = _kernel(self._rate, self._frame, self._block)
        self._kernel = kernel.matrix
        self._probe_bins = kernel.probe_bins
        self._groups = kernel.groups
        self._two_cos = kernel.two_cos
        self._scale = kernel.scale
        self._low_basis = kernel.low_basis
        self._high_basis = kernel.high_basis

    def _reset(self) -> None:
        self._started = False
        self._origin_ts = 0
        self._fed = 0  # samples fed, silence for lost packets included
        self._frames_done = 0
        # Half a frame of silence before the stream, so that frame k is centred on sample k * hop.
        self._buffer = np.zeros(self._frame // 2)
        self._cur_digit = _NO_PAIR
        self._cur_first = self._cur_last = self._cur_frames = self._cur_harmonic = 0
        self._cur_reported = False
        self._trail_label = _NO_PAIR
        self._trail_start = self._trail_frames = self._trail_harmonic = 0
        self._trail_last = -1
        self._span_first = self._span_last = -1

    def _analyse(self, samples: npt.NDArray[np.float64], *, real: bool) -> list[InbandDigit]:
        buffer, count, first = self._take_frames(samples, real=real)
        if not count:
            return []
        if not self._screen:
            labels, harmonic_ok = self._classify(_frames_of(buffer, count, self._frame, self._hop))
            return self._track(labels, harmonic_ok, first)
        judged, labels, harmonic_ok = self._judge_screened(_frames_of(buffer, count, self._frame, self._hop))
        return self._labelled(first, count, judged, labels, harmonic_ok)

    def _judge_screened(
        self, frames: npt.NDArray[np.float64]
    ) -> tuple[npt.NDArray[np.intp], npt.NDArray[np.int64], npt.NDArray[np.bool_]]:
        # One detector's frames, as ``_judge_laid_out`` judges many detectors' (the same checks,
        # on a view of this buffer: cheaper for one than laying it out).
        start = (self._frame - self._block) // 2
        blocks = frames[:, start : start + self._block]
        mean_square = np.einsum("ij,ij->i", blocks, blocks) / self._block
        loud = np.flatnonzero(4.0 * mean_square >= _SLACK * self._min_level)
        if len(loud):
            loud = loud[self._may_show_pair(blocks[loud].astype(np.float32), mean_square[loud])]
        if not len(loud):
            return loud, np.empty(0, dtype=np.int64), np.empty(0, dtype=np.bool_)
        labels, harmonic_ok = self._classify(frames[loud])
        return loud, labels, harmonic_ok

    def _take_frames(
        self, samples: npt.NDArray[np.float64], *, real: bool
    ) -> tuple[npt.NDArray[np.float64], int, int]:
        # The frames ``samples`` complete (one per hop): a buffer holding them from its start,
        # how many, and the index of the first. The rest waits in the buffer for the next samples.
        if real:
            self._fed += len(samples)
        buffer = np.concatenate((self._buffer, samples))
        count = max(0, (len(buffer) - self._frame) // self._hop + 1)
        self._buffer = buffer[count * self._hop :]
        first = self._frames_done
        self._frames_done += count
        return buffer, count, first

    def _labelled(
        self,
        first: int,
        count: int,
        judged: npt.NDArray[np.intp],
        labels: npt.NDArray[np.int64],
        harmonic_ok: npt.NDArray[np.bool_],
    ) -> list[InbandDigit]:
        # Track ``count`` frames from ``first``, showing no pair but the ``judged`` ones.
        if not len(judged):
            out: list[InbandDigit] = []
            self._run(_NO_PAIR, first, first + count - 1, 0, out)
            return out
        every = np.full(count, _NO_PAIR, dtype=np.int64)
        every[judged] = labels
        passed = np.zeros(count, dtype=np.bool_)
        passed[judged] = harmonic_ok
        return self._track(every, passed, first)

    def _classify(
        self, frames: npt.NDArray[np.float64]
    ) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.bool_]]:
        # Per frame: the pair's keypad index or _NO_PAIR, and whether the harmonic check passed.
        bins = len(self._scale)
        states = frames @ self._kernel
        s1, s2 = states[:, :bins], states[:, bins:]
        power = (s1 * s1 + s2 * s2 - self._two_cos * s1 * s2) * self._scale
        tone = np.maximum.reduceat(power[:, : self._probe_bins], self._groups, axis=1)
        guards = power[:, self._probe_bins : self._probe_bins + 16]
        guard = np.maximum(guards[:, 0::2], guards[:, 1::2])
        harmonic = power[:, self._probe_bins + 16 :]
        rows = np.arange(len(frames))
        lo = np.argmax(tone[:, :4], axis=1)
        hi = np.argmax(tone[:, 4:], axis=1) + 4
        p_low, p_high = tone[rows, lo], tone[rows, hi]
        p_pair = p_low + p_high
        start = (self._frame - self._block) // 2
        block = frames[:, start : start + self._block]
        mean_square = np.einsum("ij,ij->i", block, block) / self._block
        ok = p_pair >= self._min_level
        ok &= p_high <= p_low * _db(FORWARD_TWIST_DB)
        ok &= p_low <= p_high * _db(REVERSE_TWIST_DB)
        ok &= p_pair >= TONE_RATIO * mean_square
        ok &= np.sort(tone[:, :4], axis=1)[:, -2] * _db(PEAK_MARGIN_DB) <= p_low
        ok &= np.sort(tone[:, 4:], axis=1)[:, -2] * _db(PEAK_MARGIN_DB) <= p_high
        ok &= (guard[rows, lo] < p_low) & (guard[rows, hi] < p_high)
        harmonic_ok = harmonic[rows, lo] * _db(HARMONIC_MARGIN_DB) <= p_low
        harmonic_ok &= harmonic[rows, hi] * _db(HARMONIC_MARGIN_DB) <= p_high
        return np.where(ok, 4 * lo + hi - 4, _NO_PAIR), harmonic_ok

    # -- press tracking --------------------------------------------------------------------

    def _track(
        self, labels: npt.NDArray[np.int64], harmonic_ok: npt.NDArray[np.bool_], first: int
    ) -> list[InbandDigit]:
        # Runs of equal labels; frame indices count from the start of the stream.
        out: list[InbandDigit] = []
        edges = np.flatnonzero(labels[1:] != labels[:-1]) + 1
        starts = np.concatenate(([0], edges))
        ends = np.concatenate((edges, [len(labels)]))
        passed = np.add.reduceat(harmonic_ok.astype(np.int64), starts)
        for start, end, harmonic in zip(starts.tolist(), ends.tolist(), passed.tolist(), strict=True):
            self._run(int(labels[start]), first + start, first + end - 1, harmonic, out)
        return out

    def _run(self, label: int, first: int, last: int, harmonic: int, out: list[InbandDigit]) -> None:
        count = last - first + 1
        if label == self._trail_label and first == self._trail_last + 1:
            self._trail_frames += count
            self._trail_harmonic += harmonic
        else:
            self._trail_label, self._trail_start = label, first
            self._trail_frames, self._trail_harmonic = count, harmonic
        self._trail_last = last
        self._span_run(label, first, last)
        if self._cur_digit != _NO_PAIR:
            if label == self._cur_digit:
                self._cur_last = last
                self._cur_frames += count
                self._cur_harmonic += harmonic
                self._report_at_onset(out)
                return
            if last - self._cur_last < self._pause_frames:
                return  # no pause yet: a drop-out or another pair that may still end
            out += self._end_press()
        if label != _NO_PAIR:
            # A new press starts with the trailing run, which may have begun in an earlier chunk.
            self._cur_digit, self._cur_first, self._cur_last = label, self._trail_start, last
            self._cur_frames, self._cur_harmonic = self._trail_frames, self._trail_harmonic
            self._cur_reported = False
            self._report_at_onset(out)

    def _report_at_onset(self, out: list[InbandDigit]) -> None:
        # ``at_onset``: the current press, once, as soon as it passes the checks of its end.
        if self._at_onset and not self._cur_reported:
            press = self._current_press()
            if press is not None:
                self._cur_reported = True
                out.append(press)

    def _end_press(self) -> list[InbandDigit]:
        press = None if self._cur_reported else self._current_press()
        self._cur_digit, self._cur_reported = _NO_PAIR, False
        return [] if press is None else [press]

    def _current_press(self) -> InbandDigit | None:
        # The press tracked now, if it is one: long enough, and enough frames passed the
        # harmonic check.
        digit = self._cur_digit
        if digit == _NO_PAIR:
            return None
        # Frame k stands for the hop centred on sample k * hop.
        duration = (self._cur_last - self._cur_first + 1) * self._hop
        if duration < self._min_tone or self._cur_harmonic < HARMONIC_SHARE * self._cur_frames:
            return None
        onset = self._cur_first * self._hop - self._hop // 2
        if onset < 0:
            duration += onset
            onset = 0
        return InbandDigit(
            digit=DTMF_KEYPAD[digit], rtp_timestamp=ts_add(self._origin_ts, onset), duration=duration
        )

    # -- masking ---------------------------------------------------------------------------

    def _span_run(self, label: int, first: int, last: int) -> None:
        if self._span_first >= 0:
            # Tone-free for twice the widening: the next pair (if any) gets a span of its own.
            quiet_until = last if label == _NO_PAIR else first
            if (quiet_until - self._span_last) * self._hop > 2 * self._reach:
                self._end_span()
        if label == _NO_PAIR:
            return
        if self._span_first < 0:
            self._span_first = first
        self._span_last = last

    def _end_span(self) -> None:
        if self._span_first < 0:
            return
        start = max(0, self._span_first * self._hop - self._reach)
        stop = min(self._fed, self._span_last * self._hop + self._reach + 1)
        self._spans.append(ToneSpan(rtp_timestamp=ts_add(self._origin_ts, start), duration=stop - start))
        self._span_first = self._span_last = -1


def _db(decibels: float) -> float:
    return float(10.0 ** (decibels / 10.0))


def _frames_of(samples: npt.NDArray[np.float64], count: int, frame: int, hop: int) -> npt.NDArray[np.float64]:
    # Row k: the frame starting at sample k * hop (a view).
    return np.lib.stride_tricks.as_strided(
        samples, (count, frame), (hop * samples.itemsize, samples.itemsize), writeable=False
    )


def _strided_screen(
    rows: npt.NDArray[np.intp],
    candidates: npt.NDArray[np.intp],
    may_show_pair: Callable[[npt.NDArray[np.intp]], npt.NDArray[np.bool_]],
) -> npt.NDArray[np.intp]:
    # The ``candidates`` (sorted indexes into ``rows``: a frame's row on the grid, consecutive
    # within a buffer) that ``may_show_pair`` passes, checking only some of them: those on every
    # ``_SCREEN_STRIDE``-th row, then the candidates up to ``_SCREEN_STRIDE - 1`` frames from one
    # that passed. A run of at least ``_SCREEN_STRIDE`` consecutive frames that pass holds a
    # frame of the first kind, and each of its frames is that close to one: the run is found
    # whole. Only a shorter run with no passing frame of the first kind nearby is missed.
    on_lattice = rows[candidates] % _SCREEN_STRIDE == 0
    first = candidates[on_lattice]
    passed: npt.NDArray[np.intp] = first[may_show_pair(first)] if len(first) else first
    if not len(passed):
        return passed
    is_candidate = np.zeros(len(rows), dtype=np.bool_)
    is_candidate[candidates[~on_lattice]] = True
    near = np.unique((passed[:, None] + _SCREEN_REACH).ravel())
    near = near[(near >= 0) & (near < len(rows))]
    near = near[is_candidate[near]]
    if len(near):
        passed = np.union1d(passed, near[may_show_pair(near)])
    return passed


def _judge_laid_out(
    judge: InbandDtmfDetector, framed: Sequence[tuple[npt.NDArray[np.float64], int]]
) -> tuple[npt.NDArray[np.intp], npt.NDArray[np.int64], npt.NDArray[np.bool_]]:
    # The frames of several buffers (``count`` frames from the start of each, one per hop), all
    # judged with ``judge``'s kernel; numbered across the buffers in order. Only frames that may
    # show a pair are classified (the checks ``dtmf_spans`` rules frames out by, exact); the rest
    # show none: silence and most speech end here. Returns the frames classified, their labels
    # and harmonic checks. Each buffer is laid on a hop boundary, so that one strided view holds
    # every frame; the centre blocks' energies come from one running sum of squares.
    frame, block, hop = judge._frame, judge._block, judge._hop
    lead = (frame - block) // 2  # where a frame's centre block starts
    counts = [count for _, count in framed]
    bases = np.cumsum([0, *(-(-len(buffer) // hop) for buffer, _ in framed)])
    samples = np.zeros(int(bases[-1]) * hop + frame)
    for (buffer, _), at in zip(framed, (bases[:-1] * hop).tolist(), strict=True):
        samples[at : at + len(buffer)] = buffer
    bounds = np.cumsum([0, *counts])
    rows = np.repeat(bases[:-1] - bounds[:-1], counts) + np.arange(bounds[-1])  # in hops
    squares = np.zeros(len(samples) + 1)
    np.cumsum(np.square(samples), out=squares[1:])
    centres = rows * hop + lead
    mean_square = (squares[centres + block] - squares[centres]) / block
    judged = np.flatnonzero(4.0 * mean_square >= _SLACK * judge._min_level)
    if len(judged):
        blocks = _frames_of(samples[lead:], (len(samples) - lead - block) // hop + 1, block, hop)
        judged = judged[judge._may_show_pair(blocks[rows[judged]].astype(np.float32), mean_square[judged])]
    if not len(judged):
        return judged, np.empty(0, dtype=np.int64), np.empty(0, dtype=np.bool_)
    frames = _frames_of(samples, (len(samples) - frame) // hop + 1, frame, hop)
    labels, harmonic_ok = judge._classify(frames[rows[judged]])
    return judged, labels, harmonic_ok


def feed_many(
    feeds: Sequence[tuple[InbandDtmfDetector, npt.NDArray[np.int16], int]],
) -> list[list[InbandDigit]]:
    """``detector.feed(pcm, rtp_timestamp)`` for each of ``feeds``, with the same results, the
    new frames of every screening detector of one rate and block judged together: a few array
    operations per call, not per detector. A detector appears at most once."""
    out: list[list[InbandDigit]] = [[] for _ in feeds]
    # Per rate and block: (index in feeds, detector, its buffer, frames in it, first frame).
    pending: dict[
        tuple[int, int], list[tuple[int, InbandDtmfDetector, npt.NDArray[np.float64], int, int]]
    ] = {}
    for index, (detector, given, rtp_timestamp) in enumerate(feeds):
        if not detector._screen:
            out[index] = detector.feed(given, rtp_timestamp)
            continue
        out[index], pcm = detector._before_feed(given, rtp_timestamp)
        if not len(pcm):
            continue
        buffer, count, first = detector._take_frames(pcm.astype(np.float64), real=True)
        if count:
            key = (detector._rate, detector._block)
            pending.setdefault(key, []).append((index, detector, buffer, count, first))
    for group in pending.values():
        judged, labels, harmonic_ok = _judge_laid_out(
            group[0][1], [(buffer, count) for _, _, buffer, count, _ in group]
        )
        bounds = np.cumsum([0, *(count for _, _, _, count, _ in group)])
        cuts = np.searchsorted(judged, bounds).tolist()
        for k, (index, detector, _, count, first) in enumerate(group):
            low, high = cuts[k], cuts[k + 1]
            out[index] += detector._labelled(
                first, count, judged[low:high] - bounds[k], labels[low:high], harmonic_ok[low:high]
            )
    return out


def dtmf_mask(pcm: npt.NDArray[np.int16], sample_rate_hz: int = 8000) -> npt.NDArray[np.bool_]:
    """For a whole buffer: ``True`` at every sample inside a DTMF span (see ``take_spans``)."""
    detector = InbandDtmfDetector(sample_rate_hz)
    detector.feed(pcm, 0)
    detector.flush()
    return _mask_of(len(pcm), detector.take_spans())


def dtmf_masks(channels: Sequence[tuple[npt.NDArray[np.int16], int]]) -> list[npt.NDArray[np.bool_]]:
    """``dtmf_mask`` for several buffers ``(pcm, sample_rate_hz)`` (see ``dtmf_spans``)."""
    return [_mask_of(len(pcm), spans) for (pcm, _), spans in zip(channels, dtmf_spans(channels), strict=True)]


def _mask_of(length: int, spans: Sequence[ToneSpan]) -> npt.NDArray[np.bool_]:
    # ``True`` inside the spans of a buffer of ``length`` samples (timestamps are sample indexes).
    mask = np.zeros(length, dtype=np.bool_)
    for span in spans:
        mask[span.rtp_timestamp : span.rtp_timestamp + span.duration] = True
    return mask


def dtmf_spans(channels: Sequence[tuple[npt.NDArray[np.int16], int]]) -> list[list[ToneSpan]]:
    """The DTMF spans of several 1-D buffers ``(pcm, sample_rate_hz)``, each as ``dtmf_mask`` marks
    it (``rtp_timestamp`` is the sample index), for much less than judging every frame.

    Most frames of speech, and all of silence, cannot show a pair, and two cheap checks rule them
    out before the full judgement: a centre block too quiet for the level check (a probe's power
    is at most twice the block's mean square), then the level, twist and tone-ratio checks on the
    probe powers alone, computed from the centre block. Both are ``_SLACK`` looser than the
    detector's own, far beyond any rounding, so no frame that would show a pair is ruled out. The
    second check, the costly one, is made on every third frame, then on the frames up to two away
    from one that passed. A run of three or more frames showing a pair holds a frame of the first
    kind, so it is found whole and masked as ``dtmf_mask`` masks it; a run of one or two frames
    (a tone fragment of about 14 ms or less) next to none is left. All buffers of one rate go
    through each step together, in a few array operations.
    """
    for pcm, _ in channels:
        if not isinstance(pcm, np.ndarray) or pcm.dtype != np.int16 or pcm.ndim != 1:
            raise TypeError("dtmf_spans needs 1-D int16 samples")
    spans: list[list[ToneSpan]] = [[] for _ in channels]
    for rate in sorted({rate for _, rate in channels}):
        members = [k for k, (_, r) in enumerate(channels) if r == rate]
        found = InbandDtmfDetector(rate)._spans_of_buffers([channels[k][0] for k in members])
        for k, member_spans in zip(members, found, strict=True):
            spans[k] = member_spans
    return spans
