"""Generated tones: beep, ringback and PCI pause confirmations: frequency, level, fades, cadence
and looping, per codec."""

from __future__ import annotations

import itertools
import math

import numpy as np
import numpy.typing as npt
import pytest

from announcements.errors import AnnouncementError
from announcements.frames import SAMPLE_RATE_HZ, silence_frame
from announcements.tones import (
    BEEP_FREQUENCY_HZ,
    BEEP_PEAK_DBFS,
    PCI_PAUSED_FREQUENCY_HZ,
    PCI_RESUMED_FREQUENCY_HZ,
    PCI_TONE_PEAK_DBFS,
    RINGBACK_FREQUENCY_HZ,
    RINGBACK_PEAK_DBFS,
    beep_frames,
    iter_beep,
    iter_ringback,
    pci_paused_frames,
    pci_resumed_frames,
    ringback_frames,
    tone_burst,
)
from proxy.rtp.inband import DTMF_HIGH_HZ, DTMF_LOW_HZ, InbandDtmfDetector
from tests.announcements.sound import FULL_SCALE, G722_DELAY_SAMPLES, pcm_of, peak_frequency


def decoded(codec: str, frames: tuple[bytes, ...]) -> npt.NDArray[np.int16]:
    """The frames' audio in time with the sound they were made from (G.722 decoded, less the
    delay of its filters)."""
    pcm = pcm_of(codec, frames)
    return pcm[G722_DELAY_SAMPLES:] if codec == "g722" else pcm


def frame_rms(codec: str, frames: tuple[bytes, ...]) -> npt.NDArray[np.float64]:
    pcm = pcm_of(codec, frames).astype(np.float64).reshape(len(frames), -1)
    rms: npt.NDArray[np.float64] = np.sqrt(np.mean(pcm * pcm, axis=1))
    return rms


CODECS = ["pcmu", "pcma", "g722"]
FRAME_BYTES = {"pcmu": 160, "pcma": 160, "g722": 160}


@pytest.mark.parametrize("codec", CODECS)
def test_beep_is_150_ms_of_1400_hz_in_8_frames(codec: str) -> None:
    frames = beep_frames(codec)
    assert len(frames) == 8
    assert {len(frame) for frame in frames} == {FRAME_BYTES[codec]}
    rate = SAMPLE_RATE_HZ[codec]
    pcm = decoded(codec, frames)
    tone = pcm[: rate * 150 // 1000]
    assert peak_frequency(tone, rate) == 1400.0
    if codec == "g722":  # adaptive: its octets follow the encoder's state, so judge the audio
        after = pcm[rate * 150 // 1000 :].astype(np.float64)
        assert float(np.sqrt(np.mean(after * after))) < 0.002 * FULL_SCALE
    else:
        half = FRAME_BYTES[codec] // 2  # the last frame: 10 ms of tone, then 10 ms of silence
        assert frames[-1][half:] == silence_frame(codec)[half:]
        assert frames[-1][:half] != silence_frame(codec)[:half]
    peak_db = 20 * math.log10(float(np.max(np.abs(tone.astype(np.float64)))) / FULL_SCALE)
    assert abs(peak_db - BEEP_PEAK_DBFS) < 0.3


@pytest.mark.parametrize("codec", CODECS)
def test_beep_fades_in_and_out_over_5_ms(codec: str) -> None:
    rate = SAMPLE_RATE_HZ[codec]
    pcm = np.abs(decoded(codec, beep_frames(codec)).astype(np.float64))
    amplitude = FULL_SCALE * 10 ** (BEEP_PEAK_DBFS / 20)
    fade = rate * 5 // 1000
    end = rate * 150 // 1000
    envelope = 0.5 * (1 - np.cos(math.pi * np.arange(fade) / fade))
    # Every sample of a ramp stays under the raised-cosine envelope (plus G.711 quantisation and
    # G.722's coding error).
    slack = 0.04 * amplitude + 2
    assert np.all(pcm[:fade] <= amplitude * envelope + slack)
    assert np.all(pcm[end - fade : end] <= amplitude * envelope[::-1] + slack)
    assert pcm[0] <= 8
    assert np.max(pcm[fade : end - fade]) > 0.95 * amplitude


def test_wideband_beep_decodes_to_the_formula() -> None:
    # Payload type 9 carries G.722 (RFC 3551 §4.5.2): decoded, the beep is the 16 kHz formula
    # within G.722's coding error (over 40 dB below it).
    t = np.arange(2400) / 16000
    envelope = np.ones(2400)
    ramp = 0.5 * (1 - np.cos(math.pi * np.arange(80) / 80))
    envelope[:80], envelope[-80:] = ramp, ramp[::-1]
    expected = np.rint(FULL_SCALE * 10 ** (-12 / 20) * envelope * np.sin(2 * math.pi * 1400 * t))
    error = decoded("g722", beep_frames("g722"))[:2400].astype(np.float64) - expected
    snr_db = 10 * math.log10(float(np.mean(expected * expected)) / float(np.mean(error * error)))
    assert snr_db > 40.0


@pytest.mark.parametrize("codec", CODECS)
def test_ringback_is_the_dutch_cadence_of_425_hz(codec: str) -> None:
    frames = ringback_frames(codec)
    assert len(frames) == 250
    assert {len(frame) for frame in frames} == {FRAME_BYTES[codec]}
    silent = silence_frame(codec)
    if codec == "g722":  # adaptive: judge the audio, as the octets follow the encoder's state
        assert [bool(rms > 0.01 * FULL_SCALE) for rms in frame_rms(codec, frames)] == [True] * 50 + [
            False
        ] * 200
    else:
        assert [frame != silent for frame in frames] == [True] * 50 + [False] * 200
    rate = SAMPLE_RATE_HZ[codec]
    on = pcm_of(codec, frames[:50])
    assert on.shape[0] == rate
    assert peak_frequency(on, rate) == 425.0
    peak_db = 20 * math.log10(float(np.max(np.abs(on.astype(np.float64)))) / FULL_SCALE)
    assert abs(peak_db - RINGBACK_PEAK_DBFS) < 0.3


@pytest.mark.parametrize("codec", CODECS)
def test_ringback_repeats_without_end(codec: str) -> None:
    period = ringback_frames(codec)
    frames = list(itertools.islice(iter_ringback(codec), 600))
    assert frames == list(period) * 2 + list(period[:100])


@pytest.mark.parametrize("codec", CODECS)
def test_beep_plays_once(codec: str) -> None:
    assert list(iter_beep(codec)) == list(beep_frames(codec))


def sine_peak_dbfs(tone: npt.NDArray[np.int16], rate: int) -> float:
    """The peak of the sine whose RMS the tone has between its fades (5 ms each end): a level
    G.722's coding, which overshoots a sample here and there, keeps."""
    steady = tone[rate * 5 // 1000 : -rate * 5 // 1000].astype(np.float64)
    return 20 * math.log10(math.sqrt(2 * float(np.mean(steady * steady))) / FULL_SCALE)


def sounding(codec: str, frames: tuple[bytes, ...]) -> list[bool]:
    """Which frames carry tone (G.722 judged by its audio, as its octets follow the encoder)."""
    if codec == "g722":
        return [bool(rms > 0.01 * FULL_SCALE) for rms in frame_rms(codec, frames)]
    silent = silence_frame(codec)
    return [frame != silent for frame in frames]


@pytest.mark.parametrize("codec", CODECS)
def test_pci_paused_is_two_short_beeps_of_2000_hz(codec: str) -> None:
    frames = pci_paused_frames(codec)
    assert len(frames) == 16  # 0.32 s
    assert {len(frame) for frame in frames} == {FRAME_BYTES[codec]}
    assert sounding(codec, frames) == [True] * 6 + [False] * 4 + [True] * 6  # 120 ms, 80 ms, 120 ms
    rate = SAMPLE_RATE_HZ[codec]
    pcm = decoded(codec, frames)
    beep = rate * 120 // 1000
    for start in (0, rate * 200 // 1000):
        tone = pcm[start : start + beep]  # G.722's delay leaves the last one a little short
        assert abs(peak_frequency(tone, rate) - 2000.0) <= rate / len(tone)  # within one FFT bin
        assert abs(sine_peak_dbfs(tone, rate) - PCI_TONE_PEAK_DBFS) < 0.3


@pytest.mark.parametrize("codec", CODECS)
def test_pci_resumed_is_one_low_beep_of_600_hz(codec: str) -> None:
    frames = pci_resumed_frames(codec)
    assert len(frames) == 12  # 0.24 s
    assert {len(frame) for frame in frames} == {FRAME_BYTES[codec]}
    assert sounding(codec, frames) == [True] * 12
    rate = SAMPLE_RATE_HZ[codec]
    tone = decoded(codec, frames)[: rate * 240 // 1000]  # G.722's delay leaves it a little short
    assert abs(peak_frequency(tone, rate) - 600.0) <= rate / len(tone)  # within one FFT bin
    assert abs(sine_peak_dbfs(tone, rate) - PCI_TONE_PEAK_DBFS) < 0.3


@pytest.mark.parametrize("frequency_hz", [PCI_PAUSED_FREQUENCY_HZ, PCI_RESUMED_FREQUENCY_HZ])
def test_pci_tones_are_clear_of_dtmf_and_of_the_other_tones(frequency_hz: float) -> None:
    # A DTMF receiver accepts a tone up to 1.5 % off and must reject one 3.5 % off (ITU-T Q.24);
    # keep at least twice that away, and away from the agent's beep and ringback, which mean
    # something else.
    for other_hz in (*DTMF_LOW_HZ, *DTMF_HIGH_HZ, BEEP_FREQUENCY_HZ, RINGBACK_FREQUENCY_HZ):
        assert abs(frequency_hz - other_hz) / other_hz > 0.07, other_hz


@pytest.mark.parametrize("make", [pci_paused_frames, pci_resumed_frames])
def test_pci_tones_are_not_heard_as_keys(make: object) -> None:
    # The outside party's phone may echo them back into the audio its keys are listened for in.
    detector = InbandDtmfDetector(at_onset=True)
    heard = []
    for index, frame in enumerate(make("pcmu")):  # type: ignore[operator]
        heard += detector.feed_ulaw(frame, index * 160)
    heard += detector.flush()
    assert heard == []
    assert detector.take_spans() == []  # nor masked in a recording as a key tone


@pytest.mark.parametrize("make", [beep_frames, ringback_frames, pci_paused_frames, pci_resumed_frames])
def test_unknown_codec(make: object) -> None:
    with pytest.raises(AnnouncementError, match=r"^unknown codec 'g729'"):
        make("g729")  # type: ignore[operator]


@pytest.mark.parametrize(
    ("on_ms", "fade_ms", "total_ms", "rate_hz", "length", "nonzero_until"),
    [(150, 5, 160, 8000, 1280, 1200), (1000, 5, 5000, 16000, 80000, 16000), (20, 0, 20, 8000, 160, 160)],
)
def test_tone_burst_shape(
    on_ms: int, fade_ms: int, total_ms: int, rate_hz: int, length: int, nonzero_until: int
) -> None:
    burst = tone_burst(
        frequency_hz=1000.0, on_ms=on_ms, fade_ms=fade_ms, peak_dbfs=-6.0, total_ms=total_ms, rate_hz=rate_hz
    )
    assert burst.dtype == np.int16
    assert burst.shape == (length,)
    assert not np.any(burst[nonzero_until:])
    assert np.any(burst[nonzero_until - rate_hz // 1000 : nonzero_until])
