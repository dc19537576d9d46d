"""G.711 law translation of RTP payloads: levels kept, headers, padding and other types left alone."""

from __future__ import annotations

import struct

import numpy as np
import pytest

from proxy.rtp.g711 import ALAW_SILENCE, ULAW_SILENCE, alaw_decode, alaw_encode, ulaw_decode, ulaw_encode
from proxy.rtp.transcode import LawTranslator, translation_table

HEADER = struct.Struct("!BBHII")


def tone(frequency_hz: float, samples: int = 160, level: float = 8000.0) -> np.ndarray:
    t = np.arange(samples) / 8000.0
    return (level * np.sin(2 * np.pi * frequency_hz * t)).astype(np.int16)


def packet(payload: bytes, *, payload_type: int, marker: bool = False, first: int = 0x80) -> bytes:
    return HEADER.pack(first, (0x80 if marker else 0) | payload_type, 4711, 160_000, 0xCAFE) + payload


def translator() -> LawTranslator:
    # The party answered PCMU on 0 to an offer of PCMA on 8.
    return LawTranslator(party_payload_type=0, party_codec="pcmu", call_payload_type=8, call_codec="pcma")


@pytest.mark.parametrize(("source", "target"), [("pcmu", "pcma"), ("pcma", "pcmu")])
def test_every_code_keeps_its_level_within_the_coarser_step(source: str, target: str) -> None:
    decode = {"pcmu": ulaw_decode, "pcma": alaw_decode}
    codes = bytes(range(256))
    before = decode[source](codes).astype(np.int32)
    after = decode[target](codes.translate(translation_table(source, target))).astype(np.int32)
    # The largest G.711 step is 1024 (A-law's top segment) or 1008 (µ-law's): half of it apart.
    assert np.max(np.abs(after - before)) <= 1024
    assert np.all(np.sign(after) * np.sign(before) >= 0)  # no sign flips
    levels = np.abs(before) >= 256
    assert np.all(np.abs(after[levels] - before[levels]) <= np.abs(before[levels]) * 0.07)


def test_silence_stays_at_the_lowest_level_both_ways() -> None:
    # A-law has no zero: its silence code decodes to 8, which µ-law keeps (-72 dBFS).
    assert bytes([ULAW_SILENCE]).translate(translation_table("pcmu", "pcma")) == bytes([ALAW_SILENCE])
    assert abs(int(ulaw_decode(bytes([ALAW_SILENCE]).translate(translation_table("pcma", "pcmu")))[0])) <= 8


def test_a_tone_keeps_its_waveform_through_translation() -> None:
    pcm = tone(1000.0)
    translated = translator().from_party(packet(ulaw_encode(pcm), payload_type=0))
    heard = alaw_decode(translated[12:]).astype(np.float64)
    error = heard - pcm
    snr_db = 10 * np.log10(np.mean(pcm.astype(np.float64) ** 2) / np.mean(error**2))
    assert snr_db > 30.0  # G.711 itself gives about 38 dB on such a tone


def test_from_party_retypes_and_translates_keeping_header_and_marker() -> None:
    payload = ulaw_encode(tone(440.0))
    original = packet(payload, payload_type=0, marker=True)
    translated = translator().from_party(original)
    assert translated[0] == 0x80
    assert translated[1] == 0x80 | 8  # marker kept
    assert translated[2:12] == original[2:12]
    assert translated[12:] == payload.translate(translation_table("pcmu", "pcma"))


def test_to_party_is_the_reverse_direction() -> None:
    payload = alaw_encode(tone(440.0))
    translated = translator().to_party(packet(payload, payload_type=8))
    assert translated[1] == 0
    assert translated[12:] == payload.translate(translation_table("pcma", "pcmu"))


def test_csrcs_extension_and_padding_are_not_translated() -> None:
    csrcs = struct.pack("!II", 1, 2)
    extension = struct.pack("!HH", 0xBEDE, 1) + b"\x10\xaa\x00\x00"
    padding = b"\x00\x00\x03"
    payload = ulaw_encode(tone(700.0, samples=80))
    first = 0x80 | 0x20 | 0x10 | 2  # padding, extension, two CSRCs
    original = packet(csrcs + extension + payload + padding, payload_type=0, first=first)
    translated = translator().from_party(original)
    assert translated[1] == 8
    assert translated[:12][2:] == original[:12][2:]
    assert translated[12:28] == original[12:28]  # CSRCs and extension as they were
    assert translated[28:-3] == payload.translate(translation_table("pcmu", "pcma"))
    assert translated[-3:] == padding


@pytest.mark.parametrize(
    "untouched",
    [
        packet(b"\x01\x0a\x00\xa0", payload_type=101),  # a telephone event (RFC 4733)
        packet(b"\x40", payload_type=13),  # comfort noise
        packet(b"\xff" * 160, payload_type=8),  # already the call's law, from the party's side
        HEADER.pack(0x80, 200, 6, 0, 0xCAFE) + b"\x00" * 20,  # multiplexed RTCP sender report
        HEADER.pack(0x40, 0, 1, 2, 3) + b"\xff" * 160,  # not version 2
        b"\x80\x00\x01",  # shorter than a header
        packet(b"", payload_type=0, first=0x80 | 0x10),  # an extension flag with no extension
        packet(b"\x00\x00\x00\x20", payload_type=0, first=0x80 | 0x20),  # padding longer than it
    ],
    ids=[
        "event",
        "comfort-noise",
        "other-type",
        "rtcp",
        "version-1",
        "short",
        "cut-extension",
        "bad-padding",
    ],
)
def test_anything_else_passes_unchanged(untouched: bytes) -> None:
    assert translator().from_party(untouched) == untouched


def test_an_unknown_law_is_refused() -> None:
    with pytest.raises(ValueError, match=r"no G\.711 translation"):
        translation_table("pcmu", "g722")
