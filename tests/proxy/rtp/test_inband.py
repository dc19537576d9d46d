"""In-band DTMF detection: a table of generated signals and what must be heard in each, plus the
streaming rules (chunking, RTP timestamps, flush), G.711 input, masking, and the Goertzel core."""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from proxy.rtp.g711 import alaw_encode, ulaw_encode
from proxy.rtp.inband import (
    DBM0_MEAN_SQUARE,
    DTMF_HIGH_HZ,
    DTMF_KEYPAD,
    DTMF_LOW_HZ,
    FORWARD_TWIST_DB,
    InbandDigit,
    InbandDtmfDetector,
    ToneSpan,
    dtmf_mask,
    feed_many,
    goertzel_power,
)

Signal = npt.NDArray[np.float64]

RATE_HZ = 8000
HOP = 40  # samples per analysis hop at 8 kHz
ORIGIN_TS = 1000
LEAD_MS = 50.0
TAIL_MS = 80.0

# Formants (centre, bandwidth) in Hz of three vowels (Peterson & Barney averages, male speakers).
VOWEL_A = ((730.0, 90.0), (1090.0, 110.0), (2440.0, 170.0))
VOWEL_I = ((270.0, 60.0), (2290.0, 100.0), (3010.0, 120.0))
VOWEL_U = ((300.0, 60.0), (870.0, 80.0), (2240.0, 100.0))


# -- signal generators -------------------------------------------------------------------------


def _n(ms: float, rate_hz: int = RATE_HZ) -> int:
    return round(ms * rate_hz / 1000)


def _amplitude(level_dbm0: float) -> float:
    return math.sqrt(2.0 * DBM0_MEAN_SQUARE * 10.0 ** (level_dbm0 / 10.0))


def _sine(freq_hz: float, ms: float, level_dbm0: float, phase: float = 0.0, rate_hz: int = RATE_HZ) -> Signal:
    t = np.arange(_n(ms, rate_hz)) / rate_hz
    return _amplitude(level_dbm0) * np.sin(2.0 * np.pi * freq_hz * t + phase)


def _pair(
    digit: str,
    ms: float,
    *,
    level_dbm0: float = -10.0,
    twist_db: float = 0.0,
    low_dev: float = 0.0,
    high_dev: float = 0.0,
    phase: float = 0.3,
    rate_hz: int = RATE_HZ,
) -> Signal:
    """The digit's two tones; ``level_dbm0`` is the low tone's, the high tone is ``twist_db`` above."""
    row, col = divmod(DTMF_KEYPAD.index(digit), 4)
    low = _sine(DTMF_LOW_HZ[row] * (1.0 + low_dev), ms, level_dbm0, phase, rate_hz)
    high = _sine(DTMF_HIGH_HZ[col] * (1.0 + high_dev), ms, level_dbm0 + twist_db, 2.3 * phase, rate_hz)
    return low + high


def _silence(ms: float) -> Signal:
    return np.zeros(_n(ms))


def _at_level(x: Signal, level_dbm0: float) -> Signal:
    return x * math.sqrt(DBM0_MEAN_SQUARE * 10.0 ** (level_dbm0 / 10.0) / float(np.mean(x * x)))


def _level_of(x: Signal) -> float:
    return 10.0 * math.log10(float(np.mean(x * x)) / DBM0_MEAN_SQUARE)


def _noise(ms: float, level_dbm0: float, seed: int) -> Signal:
    return _at_level(np.random.default_rng(seed).standard_normal(_n(ms)), level_dbm0)


def _vowel(ms: float, f0_hz: float, formants: tuple[tuple[float, float], ...], level_dbm0: float) -> Signal:
    """A steady voiced vowel: all harmonics of f0 below 3.8 kHz, shaped by two-pole formants."""
    t = np.arange(_n(ms)) / RATE_HZ
    x = np.zeros(len(t))
    for k in range(1, int(3800.0 / f0_hz) + 1):
        f = k * f0_hz
        gain = 1.0
        for centre, bandwidth in formants:
            gain *= centre**2 / math.hypot(centre**2 - f**2, bandwidth * f)
        x += gain * np.sin(2.0 * np.pi * f * t + 0.7 * k * k)
    return _at_level(x, level_dbm0)


def _chirp(ms: float, f1_hz: float, f2_hz: float, level_dbm0: float) -> Signal:
    t = np.arange(_n(ms)) / RATE_HZ
    sweep = (f2_hz - f1_hz) / (ms / 1000.0)
    return _at_level(np.sin(2.0 * np.pi * (f1_hz * t + sweep * t * t / 2.0)), level_dbm0)


def _framed(*parts: Signal) -> Signal:
    """The parts in a row, after 50 ms and before 80 ms of silence."""
    return np.concatenate([_silence(LEAD_MS), *parts, _silence(TAIL_MS)])


def _with(x: Signal, other: Signal) -> Signal:
    return x + other[: len(x)]


def _pcm(x: Signal) -> npt.NDArray[np.int16]:
    return np.clip(np.round(x), -32768, 32767).astype(np.int16)


def _detect(
    x: Signal, chunk: int | None = None, rate_hz: int = RATE_HZ, block_ms: float | None = None
) -> list[InbandDigit]:
    detector = (
        InbandDtmfDetector(rate_hz) if block_ms is None else InbandDtmfDetector(rate_hz, block_ms=block_ms)
    )
    pcm = _pcm(x)
    step = chunk or max(1, len(pcm))
    out: list[InbandDigit] = []
    for start in range(0, len(pcm), step):
        out += detector.feed(pcm[start : start + step], ORIGIN_TS + start)
    return out + detector.flush()


def _digits(x: Signal) -> str:
    return "".join(press.digit for press in _detect(x))


# -- the table ---------------------------------------------------------------------------------


def _each_digit(ms: float, expect_heard: bool) -> list[object]:
    return [
        pytest.param(_framed(_pair(d, ms)), d if expect_heard else "", id=f"{d}-{ms:g}ms")
        for d in DTMF_KEYPAD
    ]


def _table() -> list[object]:
    rows = _each_digit(60, True) + _each_digit(40, True) + _each_digit(20, False)
    rows += [pytest.param(_framed(_pair(d, 23)), "", id=f"{d}-23ms") for d in "159#"]

    def case(x: Signal, expected: str, name: str) -> None:
        rows.append(pytest.param(x, expected, id=name))

    # Frequency deviation (Q.24: ±1.5 % accepted, ±3.5 % rejected), both tones or one.
    for d in DTMF_KEYPAD:
        case(_framed(_pair(d, 60, low_dev=0.015, high_dev=0.015)), d, f"{d}-freq+1.5%")
        case(_framed(_pair(d, 60, low_dev=-0.015, high_dev=-0.015)), d, f"{d}-freq-1.5%")
        case(_framed(_pair(d, 60, low_dev=0.04, high_dev=0.04)), "", f"{d}-freq+4%")
    for d in "1D":
        case(_framed(_pair(d, 60, low_dev=-0.015, high_dev=0.015)), d, f"{d}-freq-1.5%/+1.5%")
        case(_framed(_pair(d, 60, low_dev=-0.04, high_dev=-0.04)), "", f"{d}-freq-4%")
        case(_framed(_pair(d, 60, low_dev=0.035, high_dev=0.035)), "", f"{d}-freq+3.5%")
        case(_framed(_pair(d, 60, low_dev=-0.035, high_dev=-0.035)), "", f"{d}-freq-3.5%")
        case(_framed(_pair(d, 60, low_dev=0.035)), "", f"{d}-low-only+3.5%")
        case(_framed(_pair(d, 60, high_dev=-0.035)), "", f"{d}-high-only-3.5%")
    # Twist: high group minus low group (Q.24: +4 dB forward and -8 dB reverse accepted).
    for d in "1590#D":
        case(_framed(_pair(d, 60, twist_db=4.0)), d, f"{d}-twist+4dB")
        case(_framed(_pair(d, 60, twist_db=-8.0)), d, f"{d}-twist-8dB")
        case(_framed(_pair(d, 60, twist_db=8.0)), "", f"{d}-twist+8dB")
        case(_framed(_pair(d, 60, twist_db=-12.0)), "", f"{d}-twist-12dB")
    case(_framed(_pair("3", 40, twist_db=4.0, low_dev=-0.015)), "3", "3-40ms-twist+4dB-low-1.5%")
    # Level: the pair's total power.
    case(_framed(_pair("7", 60, level_dbm0=-33.0)), "7", "7-total-30dBm0")
    case(_framed(_pair("7", 40, level_dbm0=-33.0)), "7", "7-40ms-total-30dBm0")
    case(_framed(_pair("7", 60, level_dbm0=-41.0)), "", "7-total-38dBm0")
    case(_framed(_pair("8", 60, level_dbm0=3.0)), "8", "8-total+6dBm0")
    # White noise at 20 dB SNR (relative to the pair's power).
    for i, d in enumerate(DTMF_KEYPAD):
        tone = _framed(_pair(d, 60))
        case(_with(tone, _noise(300, _level_of(_pair(d, 60)) - 20.0, seed=i)), d, f"{d}-noise-20dB-snr")
    case(_with(_framed(_pair("4", 40)), _noise(300, -7.0 - 20.0, seed=99)), "4", "4-40ms-noise-20dB-snr")
    # Speech-like interference 10 dB below the pair.
    for d in DTMF_KEYPAD:
        speech = _vowel(300, 120.0, VOWEL_A, _level_of(_pair(d, 60)) - 10.0)
        case(_with(_framed(_pair(d, 60)), speech), d, f"{d}-vowel-a-10dB")
    case(_with(_framed(_pair("2", 60)), _chirp(300, 300, 3400, -17.0)), "2", "2-chirp-10dB")
    # Nothing to hear.
    case(_silence(1000), "", "silence")
    for seed, level in ((1, -10.0), (2, -30.0), (3, 0.0)):
        case(_noise(1000, level, seed), "", f"noise{level:g}dBm0")
    for f0 in (100.0, 120.0, 200.0):
        for name, formants in (("a", VOWEL_A), ("i", VOWEL_I), ("u", VOWEL_U)):
            case(_vowel(1000, f0, formants, -10.0), "", f"vowel-{name}-f0-{f0:g}Hz")
    case(_chirp(1000, 300, 3400, -10.0), "", "chirp-up")
    case(_chirp(1000, 3400, 300, -10.0), "", "chirp-down")
    case(_sine(1000.0, 1000, -10.0), "", "1000Hz")
    case(_framed(_sine(697.0, 200, -10.0)), "", "697Hz-alone")
    case(_framed(_sine(1633.0, 200, -10.0)), "", "1633Hz-alone")
    case(_framed(_pair("5", 200) + _sine(697.0, 200, -10.0)), "", "two-low-tones")
    # Second harmonic: speech-like at -10 dB rejects the pair; a Q.23 generator's -26 dB does not.
    for d, dbs in (("1", (-10.0, -26.0)), ("9", (-10.0, -26.0))):
        row, col = divmod(DTMF_KEYPAD.index(d), 4)
        for harmonic_db in dbs:
            harmonics = _sine(2 * DTMF_LOW_HZ[row], 200, -10.0 + harmonic_db) + _sine(
                2 * DTMF_HIGH_HZ[col], 200, -10.0 + harmonic_db
            )
            expected = d if harmonic_db < -20.0 else ""
            case(_framed(_pair(d, 200) + harmonics), expected, f"{d}-harmonics{harmonic_db:g}dB")
    # Repeats and pauses (Q.24: a 40 ms pause separates presses; a 10 ms break is a glitch).
    case(_framed(_pair("5", 60), _silence(50), _pair("5", 60)), "55", "5-pause50ms-5")
    case(_framed(_pair("5", 60), _silence(40), _pair("5", 60)), "55", "5-pause40ms-5")
    case(_framed(_pair("5", 60), _silence(10), _pair("5", 60)), "5", "5-break10ms-5")
    case(_framed(_pair("#", 100), _silence(20), _pair("#", 100)), "#", "#-break20ms-#")
    case(_framed(_pair("1", 60), _pair("2", 60)), "12", "1-then-2-no-pause")
    case(_framed(_pair("5", 2000)), "5", "5-long-press-2s")
    case(
        _framed(_pair("9", 60), _silence(60), _pair("6", 20), _silence(60), _pair("3", 60)),
        "93",
        "short-between",
    )
    return rows


@pytest.mark.parametrize(("signal", "expected"), _table())
def test_signal_table(signal: Signal, expected: str) -> None:
    assert _digits(signal) == expected


# -- exact reports -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("signal", "expected"),
    [
        pytest.param(
            _framed(_pair("5", 60)),
            [InbandDigit(digit="5", rtp_timestamp=ORIGIN_TS + 380, duration=520)],
            id="60ms",
        ),
        pytest.param(
            _framed(_pair("0", 40)),
            [InbandDigit(digit="0", rtp_timestamp=ORIGIN_TS + 380, duration=320)],
            id="40ms",
        ),
        pytest.param(
            _framed(_pair("5", 2000)),
            [InbandDigit(digit="5", rtp_timestamp=ORIGIN_TS + 380, duration=16040)],
            id="2s",
        ),
        pytest.param(
            _framed(_pair("*", 60), _silence(50), _pair("*", 60)),
            [
                InbandDigit(digit="*", rtp_timestamp=ORIGIN_TS + 380, duration=520),
                InbandDigit(digit="*", rtp_timestamp=ORIGIN_TS + 1260, duration=520),
            ],
            id="two-presses",
        ),
        pytest.param(
            _framed(_pair("A", 60), _silence(10), _pair("A", 60)),
            [InbandDigit(digit="A", rtp_timestamp=ORIGIN_TS + 380, duration=1080)],
            id="glitch-bridged",
        ),
        pytest.param(
            _pair("B", 60),
            [InbandDigit(digit="B", rtp_timestamp=ORIGIN_TS, duration=460)],
            id="from-first-sample",
        ),
    ],
)
def test_press_onset_and_duration(signal: Signal, expected: list[InbandDigit]) -> None:
    assert _detect(signal) == expected


@given(
    digits=st.lists(st.sampled_from(DTMF_KEYPAD), min_size=1, max_size=6),
    data=st.data(),
)
@settings(max_examples=40, deadline=None)
def test_random_digit_strings_are_recovered(digits: list[str], data: st.DataObject) -> None:
    parts = [_silence(data.draw(st.floats(45, 150), label="lead"))]
    truth: list[tuple[int, int]] = []
    position = len(parts[0])
    for digit in digits:
        ms = data.draw(st.floats(45, 300), label="tone_ms")
        tone = _pair(
            digit,
            ms,
            level_dbm0=data.draw(st.floats(-24, -4), label="level"),
            twist_db=data.draw(st.floats(-6, 3), label="twist"),
            phase=data.draw(st.floats(0, 2 * math.pi), label="phase"),
        )
        truth.append((position, len(tone)))
        gap = _silence(data.draw(st.floats(45, 150), label="gap_ms"))
        parts += [tone, gap]
        position += len(tone) + len(gap)
    chunk = data.draw(st.sampled_from([None, 20, 160, 333]), label="chunk")
    presses = _detect(np.concatenate(parts), chunk)
    assert "".join(p.digit for p in presses) == "".join(digits)
    for press, (onset, length) in zip(presses, truth, strict=True):
        assert abs(press.rtp_timestamp - ORIGIN_TS - onset) <= 2 * HOP
        assert abs(press.duration - length) <= 2 * HOP


# -- streaming ---------------------------------------------------------------------------------

STREAM = _framed(
    _pair("1", 60),
    _silence(50),
    _pair("1", 60),
    _silence(10),
    _pair("1", 40),
    _silence(45),
    _pair("#", 20),
    _silence(45),
    _pair("D", 300),
    _pair("7", 45),
)
# True tones: 1 at 400 (480 samples); 1 at 1280 (480, a 10 ms break, 320); # at 2520 (160: too
# short); D at 3040 (2400) and straight on 7 at 5440 (360).
STREAM_PRESSES = [
    InbandDigit(digit="1", rtp_timestamp=ORIGIN_TS + 420, duration=440),
    InbandDigit(digit="1", rtp_timestamp=ORIGIN_TS + 1300, duration=880),
    InbandDigit(digit="D", rtp_timestamp=ORIGIN_TS + 3060, duration=2320),
    InbandDigit(digit="7", rtp_timestamp=ORIGIN_TS + 5460, duration=360),
]


@pytest.mark.parametrize("chunk", [None, 1, 37, 160, 8000])
def test_chunk_size_does_not_matter(chunk: int | None) -> None:
    assert _detect(STREAM, chunk) == STREAM_PRESSES


def test_presses_are_reported_once_when_they_end() -> None:
    detector = InbandDtmfDetector()
    pcm = _pcm(_framed(_pair("3", 1000), _silence(200)))
    reported_at: list[int] = []
    for start in range(0, len(pcm), 160):
        if detector.feed(pcm[start : start + 160], start):
            reported_at.append(start + 160)
    assert detector.flush() == []
    # The tone ends at 8400; the press ends after a 6-hop pause, judged half a frame later, and
    # is reported with the packet that completes that frame.
    assert reported_at == [8960]


@pytest.mark.parametrize(("signal", "expected"), _table())
def test_at_onset_the_signal_table_gives_the_same_digits(signal: Signal, expected: str) -> None:
    # Reporting a press once it is known to be one changes when, not what: talk-off included.
    detector = InbandDtmfDetector(at_onset=True)
    pcm = _pcm(signal)
    presses: list[InbandDigit] = []
    for start in range(0, len(pcm), 160):
        presses += detector.feed(pcm[start : start + 160], start)
    presses += detector.flush()
    assert "".join(press.digit for press in presses) == expected


def test_at_onset_a_held_press_is_reported_once_while_held_with_its_onset() -> None:
    detector = InbandDtmfDetector(at_onset=True)
    pcm = _pcm(_framed(_pair("3", 1000), _silence(200)))
    reported: list[tuple[int, InbandDigit]] = []
    for start in range(0, len(pcm), 160):
        reported += [(start + 160, press) for press in detector.feed(pcm[start : start + 160], start)]
    assert detector.flush() == []
    # The tone starts at 400 and lasts to 8400: reported with the packet that completes the
    # frames of its first 30 ms and more (not at 8960, after its end), with the onset the
    # whole-press detector gives it.
    assert [(at, press.digit, press.rtp_timestamp) for at, press in reported] == [(960, "3", 380)]
    assert reported[0][1].duration < 8000


def test_at_onset_the_stream_presses_keep_their_onsets() -> None:
    detector = InbandDtmfDetector(at_onset=True)
    pcm = _pcm(STREAM)
    presses: list[InbandDigit] = []
    for start in range(0, len(pcm), 160):
        presses += detector.feed(pcm[start : start + 160], ORIGIN_TS + start)
    presses += detector.flush()
    assert [(p.digit, p.rtp_timestamp) for p in presses] == [
        (p.digit, p.rtp_timestamp) for p in STREAM_PRESSES
    ]


def test_flush_reports_a_press_still_held() -> None:
    detector = InbandDtmfDetector()
    assert detector.feed(_pcm(_pair("6", 300)), 7) == []
    assert detector.flush() == [InbandDigit(digit="6", rtp_timestamp=7, duration=2420)]
    assert detector.flush() == []


@pytest.mark.parametrize("law", ["ulaw", "alaw"])
def test_g711_round_trip(law: str) -> None:
    pcm = _pcm(_framed(_pair("4", 60), _silence(60), _pair("#", 80), _silence(60), _pair("0", 45)))
    detector = InbandDtmfDetector()
    presses: list[InbandDigit] = []
    for start in range(0, len(pcm) - 159, 160):
        chunk = pcm[start : start + 160]
        if law == "ulaw":
            presses += detector.feed_ulaw(ulaw_encode(chunk), 50_000 + start)
        else:
            presses += detector.feed_alaw(alaw_encode(chunk), 50_000 + start)
    presses += detector.flush()
    assert "".join(p.digit for p in presses) == "4#0"


def test_rtp_timestamps_wrap() -> None:
    detector = InbandDtmfDetector()
    origin = 2**32 - 100
    presses = detector.feed(_pcm(_framed(_pair("9", 60))), origin) + detector.flush()
    assert presses == [InbandDigit(digit="9", rtp_timestamp=280, duration=520)]


def _packets(x: Signal, ts: int = 0) -> list[tuple[npt.NDArray[np.int16], int]]:
    pcm = _pcm(x)
    return [(pcm[i : i + 160], ts + i) for i in range(0, len(pcm), 160)]


def _feed_packets(packets: list[tuple[npt.NDArray[np.int16], int]]) -> list[InbandDigit]:
    detector = InbandDtmfDetector()
    out: list[InbandDigit] = []
    for pcm, ts in packets:
        out += detector.feed(pcm, ts)
    return out + detector.flush()


def test_a_lost_packet_inside_a_press_is_bridged() -> None:
    packets = _packets(_framed(_pair("8", 200)))
    del packets[8]  # 20 ms in the middle of the tone
    assert _feed_packets(packets) == [InbandDigit(digit="8", rtp_timestamp=380, duration=1640)]


def test_duplicated_and_overlapping_packets_are_ignored() -> None:
    packets = _packets(_framed(_pair("8", 60), _silence(50), _pair("2", 60)))
    expected = _feed_packets(packets)
    assert [p.digit for p in expected] == ["8", "2"]
    half_old = (np.concatenate([packets[6][0][80:], packets[7][0]]), packets[7][1] - 80)
    assert _feed_packets([*packets[:7], packets[6], half_old, *packets[8:]]) == expected


def test_a_timestamp_jump_ends_the_stream() -> None:
    first = _packets(_pair("1", 200), ts=0)
    second = _packets(_framed(_pair("2", 60)), ts=900_000)
    detector = InbandDtmfDetector()
    out: list[InbandDigit] = []
    for pcm, ts in first:
        out += detector.feed(pcm, ts)
    assert out == []  # the tone is still on
    pcm, ts = second[0]
    assert detector.feed(pcm, ts) == [InbandDigit(digit="1", rtp_timestamp=20, duration=1600)]
    out = []
    for pcm, ts in second[1:]:
        out += detector.feed(pcm, ts)
    assert out + detector.flush() == [InbandDigit(digit="2", rtp_timestamp=900_380, duration=480)]


def test_sixteen_khz() -> None:
    rate = 16000
    x = np.concatenate(
        [
            np.zeros(800),
            _pair("1", 60, rate_hz=rate),
            np.zeros(800),
            _pair("5", 20, rate_hz=rate),
            np.zeros(800),
            _pair("9", 40, rate_hz=rate),
            np.zeros(1600),
        ]
    )
    presses = _detect(x, 320, rate_hz=rate)
    assert "".join(p.digit for p in presses) == "19"
    assert InbandDtmfDetector(rate).sample_rate_hz == rate


@pytest.mark.parametrize("block_ms", [20.0, 40.0])
def test_other_block_lengths(block_ms: float) -> None:
    x = _framed(_pair("5", 60), _silence(60), _pair("#", 20), _silence(60), _pair("9", 45))
    assert "".join(p.digit for p in _detect(x, block_ms=block_ms)) == "59"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"sample_rate_hz": 4000}, "sample_rate_hz must be at least 8000, got 4000"),
        ({"block_ms": 10.0}, "block_ms must be in 20..40, got 10.0"),
        ({"block_ms": 50.0}, "block_ms must be in 20..40, got 50.0"),
    ],
)
def test_constructor_validates(kwargs: dict[str, float], message: str) -> None:
    with pytest.raises(ValueError, match=f"^{message}$"):
        InbandDtmfDetector(**kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("pcm", "error"),
    [
        (np.zeros(160, dtype=np.float64), TypeError),
        (np.zeros(160, dtype=np.int32), TypeError),
        (b"\x00" * 160, TypeError),
        (np.zeros((2, 80), dtype=np.int16), ValueError),
    ],
)
def test_feed_validates(pcm: object, error: type[Exception]) -> None:
    with pytest.raises(error):
        InbandDtmfDetector().feed(pcm, 0)  # type: ignore[arg-type]


# -- masking -----------------------------------------------------------------------------------

MASKED = _framed(
    _pair("5", 60), _silence(200), _pair("#", 15), _silence(200), _vowel(300, 120.0, VOWEL_A, -10.0)
)


def _runs(mask: npt.NDArray[np.bool_]) -> list[tuple[int, int]]:
    edges = np.flatnonzero(np.diff(np.concatenate([[0], mask.astype(np.int8), [0]])))
    return [(int(a), int(b)) for a, b in zip(edges[::2], edges[1::2], strict=True)]


def test_dtmf_mask_covers_every_tone_even_too_short_to_count() -> None:
    mask = dtmf_mask(_pcm(MASKED))
    # Tones at 400..880 and 2480..2600 (15 ms: not a press, still masked); the vowel is not.
    assert _runs(mask) == [(218, 1063), (2338, 2743)]
    assert _digits(MASKED) == "5"


def test_take_spans_matches_the_mask_and_settled_until_is_safe() -> None:
    detector = InbandDtmfDetector()
    assert InbandDtmfDetector().settled_until is None
    spans: list[ToneSpan] = []
    settled: list[int] = []
    for pcm, ts in _packets(MASKED, ts=10_000):
        detector.feed(pcm, ts)
        for span in detector.take_spans():
            # Nothing settled before may turn out to need masking later.
            assert all(span.rtp_timestamp >= s for s in settled)
            spans.append(span)
        settled_until = detector.settled_until
        assert settled_until is not None
        settled.append(settled_until)
    detector.flush()
    spans += detector.take_spans()
    assert spans == [
        ToneSpan(rtp_timestamp=10_218, duration=845),
        ToneSpan(rtp_timestamp=12_338, duration=405),
    ]
    assert settled == sorted(settled)
    # Judged up to the centre of the last complete frame (176 hops) less the mask's reach.
    assert settled[-1] == 10_000 + 176 * HOP - 182


def test_mask_of_silence_is_empty() -> None:
    assert not dtmf_mask(np.zeros(8000, dtype=np.int16)).any()
    assert dtmf_mask(np.zeros(0, dtype=np.int16)).shape == (0,)


# -- the Goertzel core -------------------------------------------------------------------------


def _goertzel_reference(block: Signal, freq_hz: float, rate_hz: int) -> float:
    coeff = 2.0 * math.cos(2.0 * math.pi * freq_hz / rate_hz)
    s1 = s2 = 0.0
    for sample in block.tolist():
        s1, s2 = sample + coeff * s1 - s2, s1
    return s1 * s1 + s2 * s2 - coeff * s1 * s2


@given(
    seed=st.integers(0, 2**32 - 1),
    size=st.integers(2, 400),
    freqs=st.lists(st.floats(20.0, 3980.0), min_size=1, max_size=6),
)
@settings(max_examples=50, deadline=None)
def test_goertzel_matches_the_recursion(seed: int, size: int, freqs: list[float]) -> None:
    blocks = np.random.default_rng(seed).uniform(-32768, 32767, (3, size))
    power = goertzel_power(blocks, freqs)
    assert power.shape == (3, len(freqs))
    for row in range(3):
        for col, f in enumerate(freqs):
            expected = _goertzel_reference(blocks[row], f, RATE_HZ)
            assert power[row, col] == pytest.approx(expected, rel=1e-7, abs=1e-3 * size * 32768.0)


def test_goertzel_equals_the_dft_on_bins() -> None:
    block = np.random.default_rng(5).standard_normal(205)
    spectrum = np.abs(np.fft.rfft(block)) ** 2
    bins = [18, 20, 22, 24, 31, 34, 38, 42]  # the nearest bins to the DTMF frequencies
    power = goertzel_power(block, [k * RATE_HZ / 205 for k in bins])
    np.testing.assert_allclose(power, spectrum[bins], rtol=1e-9)


def test_goertzel_of_a_dtmf_tone() -> None:
    # A sine of amplitude A at the exact frequency: |X|² = (N A / 2)², minus a tiny image term.
    block = _sine(697.0, 25.625, 0.0)
    power = goertzel_power(block, [697.0, 770.0])
    full = (205 * _amplitude(0.0) / 2.0) ** 2
    assert power[0] == pytest.approx(full, rel=0.01)
    assert power[1] < full * 10.0 ** (-20.0 / 10.0)


@pytest.mark.parametrize(
    ("blocks", "freqs", "message"),
    [
        (np.zeros(1), [697.0], "Goertzel needs blocks of at least 2 samples, got 1"),
        (np.zeros(205), [0.0], r"frequencies must lie in \(0, 4000.0\) Hz, got \[0.0\]"),
        (np.zeros(205), [4000.0], r"frequencies must lie in \(0, 4000.0\) Hz, got \[4000.0\]"),
    ],
)
def test_goertzel_validates(blocks: Signal, freqs: list[float], message: str) -> None:
    with pytest.raises(ValueError, match=f"^{message}$"):
        goertzel_power(blocks, freqs)


# -- screening: frames ruled out by the cheap checks ------------------------------------------------


def _presses_and_spans(
    pcm: npt.NDArray[np.int16], chunk: int, *, screen: bool
) -> tuple[list[InbandDigit], list[ToneSpan]]:
    detector = InbandDtmfDetector(RATE_HZ, screen=screen)
    presses: list[InbandDigit] = []
    for start in range(0, len(pcm), chunk):
        presses += detector.feed(pcm[start : start + chunk], ORIGIN_TS + start)
    presses += detector.flush()
    return presses, detector.take_spans()


@pytest.mark.parametrize("digit", DTMF_KEYPAD)
@pytest.mark.parametrize(
    ("twist_db", "passes"), [(0.0, True), (5.8, True), (7.2, False), (-9.0, True), (-11.5, False)]
)
def test_the_screen_looks_at_the_high_group_only_where_the_low_group_may_make_a_pair(
    digit: str, twist_db: float, passes: bool
) -> None:
    # The screen's checks are the detector's, 10 % looser (0.46 dB of twist): the high group up to
    # about 6.46 dB over the low group passes them. The low group is looked at first, and the most
    # the high group may add to it is that far over it: a weak low group never rules out a pair the
    # checks on both groups pass.
    detector = InbandDtmfDetector(RATE_HZ)
    block = detector._block
    pair = _pair(digit, 30.0, level_dbm0=-30.0, twist_db=twist_db)
    blocks = np.stack([pair[at : at + block] for at in range(0, 40, 8)]).astype(np.float32)
    mean_square = np.mean(np.square(blocks, dtype=np.float64), axis=1)
    assert FORWARD_TWIST_DB == 6.0
    assert detector._may_show_pair(blocks, mean_square).tolist() == [passes] * len(blocks)


@given(
    digit=st.sampled_from(DTMF_KEYPAD),
    tone_ms=st.floats(5, 120),
    at_ms=st.floats(0, 400),
    level=st.floats(-40, -4),
    twist_db=st.floats(-12, 8),
    deviation=st.floats(-0.03, 0.03),
    background_dbm0=st.one_of(st.none(), st.floats(-45, -10)),
    seed=st.integers(0, 2**16),
    chunk=st.sampled_from([160, 37, 480, 8000]),
)
@settings(max_examples=150, deadline=None)
def test_screening_finds_what_judging_every_frame_finds(
    digit: str,
    tone_ms: float,
    at_ms: float,
    level: float,
    twist_db: float,
    deviation: float,
    background_dbm0: float | None,
    seed: int,
    chunk: int,
) -> None:
    # Keys near and past every limit, over silence or noise, fed in packets or in any chunks: the
    # screened detector (the default) reports the same presses and spans as the reference.
    tone = _pair(digit, tone_ms, level_dbm0=level, twist_db=twist_db, low_dev=deviation, high_dev=deviation)
    signal = np.concatenate([_silence(at_ms), tone, _silence(500 - at_ms)])
    if background_dbm0 is not None:
        signal = _with(signal, _noise(len(signal) * 1000 / RATE_HZ + 1, background_dbm0, seed))
    pcm = _pcm(signal)
    assert _presses_and_spans(pcm, chunk, screen=True) == _presses_and_spans(pcm, chunk, screen=False)


@given(
    streams=st.lists(
        st.tuples(
            st.sampled_from(DTMF_KEYPAD),
            st.floats(5, 120),  # tone ms
            st.floats(0, 300),  # where
            st.one_of(st.none(), st.floats(-45, -10)),  # background noise, dBm0
            st.sampled_from([160, 37, 480, 1000]),  # chunk
            st.integers(0, 2**16),  # seed
        ),
        min_size=1,
        max_size=5,
    ),
    gaps=st.sets(st.integers(0, 30), max_size=3),
)
@settings(max_examples=80, deadline=None)
def test_feeding_many_detectors_together_finds_what_feeding_each_finds(
    streams: list[tuple[str, float, float, float | None, int, int]], gaps: set[int]
) -> None:
    # Several streams, each in its own chunks, some chunks lost (a gap filled with silence):
    # feed_many, round by round, reports per detector exactly what that detector's feed does.
    chunked: list[list[tuple[npt.NDArray[np.int16], int]]] = []
    for digit, tone_ms, at_ms, noise_dbm0, chunk, seed in streams:
        signal = np.concatenate([_silence(at_ms), _pair(digit, tone_ms), _silence(400 - at_ms)])
        if noise_dbm0 is not None:
            signal = _with(signal, _noise(len(signal) * 1000 / RATE_HZ + 1, noise_dbm0, seed))
        pcm = _pcm(signal)
        pieces = [(pcm[k : k + chunk], ORIGIN_TS + k) for k in range(0, len(pcm), chunk)]
        chunked.append([piece for number, piece in enumerate(pieces) if number not in gaps])
    alone = [InbandDtmfDetector() for _ in streams]
    together = [InbandDtmfDetector() for _ in streams]
    expected: list[list[InbandDigit]] = [[] for _ in streams]
    found: list[list[InbandDigit]] = [[] for _ in streams]
    for round_ in range(max(len(pieces) for pieces in chunked)):
        feeds = []
        for k, pieces in enumerate(chunked):
            if round_ < len(pieces):
                pcm, timestamp = pieces[round_]
                expected[k] += alone[k].feed(pcm, timestamp)
                feeds.append((k, (together[k], pcm, timestamp)))
        for (k, _), presses in zip(feeds, feed_many([feed for _, feed in feeds]), strict=True):
            found[k] += presses
    for k in range(len(streams)):
        expected[k] += alone[k].flush()
        found[k] += together[k].flush()
        assert (found[k], together[k].take_spans()) == (expected[k], alone[k].take_spans())
