"""G.711 law translation: the payload of an RTP packet from µ-law to A-law or back (ITU-T G.711).

A party that answers PCMU to an offer of PCMA only (or the reverse) breaks RFC 3264 §6.1, yet
sends and expects that law. callherald then relays its audio translated: ``from_party`` puts a
packet of the party's law and payload type in the law and payload type the rest of the call uses,
``to_party`` does the reverse. Each code maps to the code of the other law whose level holds the
first one's decoded level (decoded, then encoded by ``proxy.rtp.g711``): a 256-entry table, so a
packet costs one ``bytes.translate``.

Only the payload is translated: the header, its CSRC list and extension (RFC 3550 §5.1, §5.3.1)
and any padding (the P bit: the last octet counts it) are copied as they are, and the payload type
is changed with the marker bit kept. Packets of other payload types (telephone events, comfort
noise, multiplexed RTCP) and anything that is not an RTP version 2 packet pass unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

import numpy as np

from proxy.rtp.g711 import alaw_decode, alaw_encode, ulaw_decode, ulaw_encode
from proxy.rtp.packet import RTP_HEADER_LEN

__all__ = ["LawTranslator", "translation_table"]

_ALL_CODES: Final = np.arange(256, dtype=np.uint8)
_TABLES: Final = {
    ("pcmu", "pcma"): alaw_encode(ulaw_decode(_ALL_CODES)),
    ("pcma", "pcmu"): ulaw_encode(alaw_decode(_ALL_CODES)),
}


def translation_table(source: str, target: str) -> bytes:
    """The 256-octet ``bytes.translate`` table from codes of ``source`` to codes of ``target``
    (``pcmu`` to ``pcma`` or the reverse)."""
    try:
        return _TABLES[(source, target)]
    except KeyError:
        raise ValueError(f"no G.711 translation from {source!r} to {target!r}") from None


@dataclass(frozen=True, slots=True)
class _Direction:
    source_payload_type: int
    target_payload_type: int
    table: bytes

    def apply(self, packet: bytes) -> bytes:
        if len(packet) < RTP_HEADER_LEN:
            return packet
        first, second = packet[0], packet[1]
        if first & 0xC0 != 0x80 or second & 0x7F != self.source_payload_type:
            return packet
        start = RTP_HEADER_LEN + 4 * (first & 0x0F)  # CSRC list (RFC 3550 §5.1)
        if first & 0x10:  # header extension: 4 octets, then its length in 32-bit words (§5.3.1)
            if len(packet) < start + 4:
                return packet
            start += 4 + 4 * int.from_bytes(packet[start + 2 : start + 4], "big")
        end = len(packet) - (packet[-1] if first & 0x20 else 0)  # padding (§5.1)
        if start > end:
            return packet
        retyped = bytes((first, (second & 0x80) | self.target_payload_type))
        return b"".join((retyped, packet[2:start], packet[start:end].translate(self.table), packet[end:]))


class LawTranslator:
    """Translates one leg's audio between its party's G.711 law and the call's (see the module
    docstring). ``party_payload_type`` and ``party_codec`` are what the party answered;
    ``call_payload_type`` and ``call_codec`` what the offer it answered has."""

    __slots__ = ("_from_party", "_to_party")

    def __init__(
        self, *, party_payload_type: int, party_codec: str, call_payload_type: int, call_codec: str
    ) -> None:
        self._from_party = _Direction(
            party_payload_type, call_payload_type, translation_table(party_codec, call_codec)
        )
        self._to_party = _Direction(
            call_payload_type, party_payload_type, translation_table(call_codec, party_codec)
        )

    def from_party(self, packet: bytes) -> bytes:
        """A packet the party sent, in the call's law and payload type."""
        return self._from_party.apply(packet)

    def to_party(self, packet: bytes) -> bytes:
        """A packet for the party, in its own law and payload type."""
        return self._to_party.apply(packet)
