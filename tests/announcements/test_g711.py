"""The announcement G.711 encoder: bit-exact with audioop over every int16 input and every code."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from types import ModuleType

import numpy as np
import numpy.typing as npt
import pytest
from hypothesis import given
from hypothesis import strategies as st

from announcements.g711 import alaw_decode, alaw_encode, ulaw_decode, ulaw_encode

Encode = Callable[[npt.NDArray[np.int16]], bytes]
Decode = Callable[[bytes], npt.NDArray[np.int16]]

EVERY_SAMPLE = np.arange(-32768, 32768, dtype=np.int16)
EVERY_CODE = bytes(range(256))
LAWS = [
    pytest.param(ulaw_encode, ulaw_decode, "lin2ulaw", "ulaw2lin", id="mu-law"),
    pytest.param(alaw_encode, alaw_decode, "lin2alaw", "alaw2lin", id="a-law"),
]


def _audioop() -> ModuleType:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        import audioop  # noqa: PLC0415  (deprecated; the reference implementation for this test only)
    return audioop


@pytest.mark.parametrize(("encode", "decode", "to_law", "from_law"), LAWS)
def test_encoder_is_bit_exact_with_audioop_for_every_int16(
    encode: Encode, decode: Decode, to_law: str, from_law: str
) -> None:
    reference = getattr(_audioop(), to_law)(EVERY_SAMPLE.tobytes(), 2)
    assert encode(EVERY_SAMPLE) == reference


@pytest.mark.parametrize(("encode", "decode", "to_law", "from_law"), LAWS)
def test_decoder_is_bit_exact_with_audioop_for_every_code(
    encode: Encode, decode: Decode, to_law: str, from_law: str
) -> None:
    reference = getattr(_audioop(), from_law)(EVERY_CODE, 2)
    decoded = decode(EVERY_CODE)
    assert decoded.dtype == np.int16
    assert decoded.tobytes() == reference


# Points worked out by hand from the G.711 segment rules (14-bit µ-law input, 13-bit A-law input).
@pytest.mark.parametrize(
    ("sample", "ulaw", "alaw"),
    [
        (0, 0xFF, 0xD5),
        (-1, 0x7E, 0x55),
        (7, 0xFE, 0xD5),
        (16, 0xFD, 0xD4),
        (-16, 0x7D, 0x55),
        (1000, 0xCE, 0xFA),
        (-1000, 0x4E, 0x7A),
        (32767, 0x80, 0xAA),
        (-32768, 0x00, 0x2A),
    ],
)
def test_reference_points(sample: int, ulaw: int, alaw: int) -> None:
    samples = np.array([sample], dtype=np.int16)
    assert ulaw_encode(samples) == bytes([ulaw])
    assert alaw_encode(samples) == bytes([alaw])


@pytest.mark.parametrize(("encode", "decode", "to_law", "from_law"), LAWS)
@given(st.lists(st.integers(-32768, 32767), max_size=400))
def test_requantising_decoded_audio_changes_nothing(
    encode: Encode, decode: Decode, to_law: str, from_law: str, values: list[int]
) -> None:
    once = decode(encode(np.array(values, dtype=np.int16)))
    assert decode(encode(once)).tobytes() == once.tobytes()
    assert len(encode(once)) == len(values)


@pytest.mark.parametrize("encode", [ulaw_encode, alaw_encode])
def test_encoder_refuses_other_sample_types(encode: Encode) -> None:
    with pytest.raises(TypeError, match="int16"):
        encode(np.zeros(4, dtype=np.int32))
