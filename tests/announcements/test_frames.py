"""The shared 20 ms frame format: codecs, sizes, padding, silence and looping."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from announcements.errors import AnnouncementError
from announcements.frames import (
    CODECS,
    FRAME_BYTES,
    SAMPLE_RATE_HZ,
    check_codec,
    encode_frames,
    frame_count,
    g722_encode,
    loop_frames,
    silence_frame,
)
from announcements.g711 import alaw_encode, ulaw_encode
from tests.announcements.sound import pcm_of


def test_codec_table() -> None:
    assert CODECS == ("pcmu", "pcma", "g722")
    assert dict(FRAME_BYTES) == {"pcmu": 160, "pcma": 160, "g722": 160}
    assert dict(SAMPLE_RATE_HZ) == {"pcmu": 8000, "pcma": 8000, "g722": 16000}


@pytest.mark.parametrize("codec", ["pcmu", "pcma", "g722"])
def test_check_codec_accepts_known_names(codec: str) -> None:
    assert check_codec(codec) == codec


@pytest.mark.parametrize("codec", ["PCMU", "g729", "", "opus"])
def test_check_codec_rejects_others(codec: str) -> None:
    with pytest.raises(AnnouncementError) as caught:
        check_codec(codec)
    assert str(caught.value) == f"unknown codec {codec!r} (known: pcmu, pcma, g722)"


@pytest.mark.parametrize(
    ("samples", "rate_hz", "frames"),
    [
        (0, 8000, 0),
        (1, 8000, 1),
        (160, 8000, 1),
        (161, 8000, 2),
        (320, 16000, 1),
        (321, 16000, 2),
        (24000, 8000, 150),
    ],
)
def test_frame_count(samples: int, rate_hz: int, frames: int) -> None:
    assert frame_count(samples, rate_hz) == frames


@pytest.mark.parametrize(("codec", "frame"), [("pcmu", b"\xff" * 160), ("pcma", b"\xd5" * 160)])
def test_silence_frame(codec: str, frame: bytes) -> None:
    assert silence_frame(codec) == frame


def test_the_g722_silence_frame_is_silence_encoded() -> None:
    # ITU-T G.722 has no all-zero code: silence is what the encoder makes of zeros, and decodes
    # to within a few steps of zero.
    frame = silence_frame("g722")
    assert len(frame) == 160
    assert frame == g722_encode(np.zeros(320, dtype=np.int16))
    assert int(np.abs(pcm_of("g722", (frame,))).max()) <= 4


def test_encode_frames_pads_the_last_frame_with_silence() -> None:
    narrow = np.full(170, 1000, dtype=np.int16)  # one frame and 10 samples
    wide = np.full(340, -1000, dtype=np.int16)
    frames = encode_frames(narrow, wide)
    assert frames["pcmu"] == (ulaw_encode(narrow[:160]), ulaw_encode(narrow[:10]) + b"\xff" * 150)
    assert frames["pcma"] == (alaw_encode(narrow[:160]), alaw_encode(narrow[:10]) + b"\xd5" * 150)
    padded = np.concatenate([wide[:340], np.zeros(300, dtype=np.int16)])
    assert b"".join(frames["g722"]) == g722_encode(padded)
    assert [len(frame) for frame in frames["g722"]] == [160, 160]


def test_encode_frames_cuts_the_wideband_rendition_to_the_narrowband_frame_count() -> None:
    frames = encode_frames(np.ones(160, dtype=np.int16), np.ones(323, dtype=np.int16))
    assert [len(frames[codec]) for codec in CODECS] == [1, 1, 1]
    assert frames["g722"][0] == g722_encode(np.ones(320, dtype=np.int16))


@given(st.integers(0, 2000), st.integers(-3, 3))
def test_every_codec_gets_the_same_number_of_whole_frames(narrow_samples: int, slack: int) -> None:
    narrow = np.arange(narrow_samples, dtype=np.int16)
    wide = np.arange(max(0, 2 * narrow_samples + slack), dtype=np.int16)
    frames = encode_frames(narrow, wide)
    expected = -(-narrow_samples // 160)
    for codec in CODECS:
        assert len(frames[codec]) == expected
        assert {len(frame) for frame in frames[codec]} <= {FRAME_BYTES[codec]}
    assert b"".join(frames["pcmu"])[:narrow_samples] == ulaw_encode(narrow)


def test_loop_frames_once_and_forever() -> None:
    frames = (b"a", b"b", b"c")
    assert list(loop_frames(frames, loop=False)) == [b"a", b"b", b"c"]
    assert list(itertools.islice(loop_frames(frames, loop=True), 7)) == [b"a", b"b", b"c"] * 2 + [b"a"]
    assert list(loop_frames((), loop=True)) == []


def test_g722_frames_are_the_sound_encoded_in_one_go() -> None:
    # RFC 3551 §4.5.2: payload type 9 carries G.722 at 64 kbit/s, 160 octets per 20 ms. A 1 kHz
    # tone comes back from the frames, decoded in order, as a 1 kHz tone at its level.
    wide = np.rint(8000 * np.sin(2 * np.pi * 1000 * np.arange(3200) / 16000)).astype(np.int16)
    frames = encode_frames(np.zeros(1600, dtype=np.int16), wide)["g722"]
    assert [len(frame) for frame in frames] == [160] * 10
    decoded = pcm_of("g722", frames).astype(np.float64)
    assert decoded.shape == (3200,)
    spectrum = np.abs(np.fft.rfft(decoded[1600:]))
    assert int(spectrum.argmax()) * 16000 / 1600 == 1000.0
    rms = float(np.sqrt(np.mean(decoded[1600:] ** 2)))
    assert abs(rms - 8000 / np.sqrt(2)) < 0.05 * 8000
