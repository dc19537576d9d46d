"""G.711 tables: bit-exact with audioop over every input, plus literal reference points."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from types import ModuleType

import numpy as np
import numpy.typing as npt
import pytest

from proxy.rtp.g711 import (
    ALAW_SILENCE,
    ALAW_SILENCE_BYTE,
    ULAW_SILENCE,
    ULAW_SILENCE_BYTE,
    alaw_decode,
    alaw_encode,
    ulaw_decode,
    ulaw_encode,
)

Encoder = Callable[[npt.NDArray[np.int16]], bytes]
Decoder = Callable[[bytes | npt.NDArray[np.uint8]], npt.NDArray[np.int16]]

ALL_SAMPLES = np.arange(-32768, 32768, dtype=np.int16)
ALL_CODES = bytes(range(256))


def _audioop() -> ModuleType:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        import audioop  # noqa: PLC0415  (deprecated; only the reference for this test)
    return audioop


@pytest.mark.parametrize(("encode", "reference"), [(ulaw_encode, "lin2ulaw"), (alaw_encode, "lin2alaw")])
def test_encode_matches_audioop_for_all_65536_samples(encode: Encoder, reference: str) -> None:
    expected = getattr(_audioop(), reference)(ALL_SAMPLES.tobytes(), 2)
    assert encode(ALL_SAMPLES) == expected


@pytest.mark.parametrize(("decode", "reference"), [(ulaw_decode, "ulaw2lin"), (alaw_decode, "alaw2lin")])
def test_decode_matches_audioop_for_all_256_codes(decode: Decoder, reference: str) -> None:
    expected = getattr(_audioop(), reference)(ALL_CODES, 2)
    decoded = decode(ALL_CODES)
    assert decoded.dtype == np.int16
    assert decoded.tobytes() == expected


# Reference points of the G.711 scales (independent of audioop).
@pytest.mark.parametrize(
    ("sample", "ulaw", "alaw"),
    [
        (0, 0xFF, 0xD5),
        (3, 0xFF, 0xD5),
        (4, 0xFE, 0xD5),
        (-1, 0x7E, 0x55),
        (100, 0xF2, 0xD3),
        (-100, 0x72, 0x53),
        (32124, 0x80, 0xAA),
        (32767, 0x80, 0xAA),
        (-32768, 0x00, 0x2A),
    ],
)
def test_encode_reference_points(sample: int, ulaw: int, alaw: int) -> None:
    pcm = np.array([sample], dtype=np.int16)
    assert ulaw_encode(pcm) == bytes((ulaw,))
    assert alaw_encode(pcm) == bytes((alaw,))


@pytest.mark.parametrize(
    ("code", "ulaw", "alaw"),
    [
        (0x00, -32124, -5504),
        (0x80, 32124, 5504),
        (0x7F, 0, -848),
        (0xFF, 0, 848),
        (0xD5, 716, 8),
        (0x55, -716, -8),
        (0xAA, 5372, 32256),
        (0x2A, -5372, -32256),
    ],
)
def test_decode_reference_points(code: int, ulaw: int, alaw: int) -> None:
    assert ulaw_decode(bytes((code,))).tolist() == [ulaw]
    assert alaw_decode(bytes((code,))).tolist() == [alaw]


def test_silence_codes() -> None:
    zeros = np.zeros(160, dtype=np.int16)
    assert ULAW_SILENCE == 0xFF
    assert ALAW_SILENCE == 0xD5
    assert ulaw_encode(zeros) == ULAW_SILENCE_BYTE * 160 == b"\xff" * 160
    assert alaw_encode(zeros) == ALAW_SILENCE_BYTE * 160 == b"\xd5" * 160
    assert ulaw_decode(ULAW_SILENCE_BYTE).tolist() == [0]
    assert alaw_decode(ALAW_SILENCE_BYTE).tolist() == [8]


def test_decode_accepts_uint8_arrays_and_returns_a_fresh_array() -> None:
    codes = np.frombuffer(ALL_CODES, dtype=np.uint8)
    decoded = ulaw_decode(codes)
    assert decoded.tobytes() == ulaw_decode(ALL_CODES).tobytes()
    decoded[0] = 1
    assert ulaw_decode(b"\x00").tolist() == [-32124]


def test_encode_follows_array_order_of_a_strided_view() -> None:
    frames = ALL_SAMPLES.reshape(256, 256)[::2, ::3]
    assert ulaw_encode(frames) == ulaw_encode(np.ascontiguousarray(frames))


@pytest.mark.parametrize("encode", [ulaw_encode, alaw_encode])
def test_encode_rejects_other_dtypes(encode: Encoder) -> None:
    with pytest.raises(TypeError, match="int16"):
        encode(np.zeros(4, dtype=np.int32))


@pytest.mark.parametrize("decode", [ulaw_decode, alaw_decode])
def test_decode_rejects_other_dtypes(decode: Decoder) -> None:
    with pytest.raises(TypeError, match="uint8"):
        decode(np.zeros(4, dtype=np.int16))
