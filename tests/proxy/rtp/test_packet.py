"""RTP/RTCP wire format: parse and serialise share one case table; malformed input raises RtpError."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given
from hypothesis import strategies as st

from proxy.rtp.errors import RtpError
from proxy.rtp.packet import (
    RtcpHeader,
    RtpExtension,
    RtpPacket,
    build_rtcp_bye,
    is_rtcp,
    parse_rtcp,
    peek_header,
    rewrite_header,
)

HEADER = "0001 00000002 00000003"  # sequence 1, timestamp 2, SSRC 3


def h(text: str) -> bytes:
    return bytes.fromhex(text)


# (wire bytes, packet) — used for parse, serialise, peek and rewrite.
VALID = [
    pytest.param(
        h("8000" + HEADER + "616263"),
        RtpPacket(payload_type=0, sequence=1, timestamp=2, ssrc=3, payload=b"abc"),
        id="minimal",
    ),
    pytest.param(
        h("80e0" + HEADER),
        RtpPacket(payload_type=96, sequence=1, timestamp=2, ssrc=3, marker=True),
        id="marker-dynamic-pt-empty-payload",
    ),
    pytest.param(
        h("8208ffff ffffffff 89abcdef 00000011 00000022 ff"),
        RtpPacket(
            payload_type=8,
            sequence=0xFFFF,
            timestamp=0xFFFFFFFF,
            ssrc=0x89ABCDEF,
            csrc=(0x11, 0x22),
            payload=b"\xff",
        ),
        id="two-csrcs-max-values",
    ),
    pytest.param(
        h("9000" + HEADER + "bede0001 10ff0000 7878"),
        RtpPacket(
            payload_type=0,
            sequence=1,
            timestamp=2,
            ssrc=3,
            extension=RtpExtension(profile=0xBEDE, data=h("10ff0000")),
            payload=b"xx",
        ),
        id="one-byte-header-extension",
    ),
    pytest.param(
        h("9000" + HEADER + "10000000"),
        RtpPacket(payload_type=0, sequence=1, timestamp=2, ssrc=3, extension=RtpExtension(profile=0x1000)),
        id="empty-extension",
    ),
    pytest.param(
        h("a000" + HEADER + "6162 000003"),
        RtpPacket(payload_type=0, sequence=1, timestamp=2, ssrc=3, payload=b"ab", padding=h("000003")),
        id="padding",
    ),
    pytest.param(
        h("a000" + HEADER + "aa02"),
        RtpPacket(payload_type=0, sequence=1, timestamp=2, ssrc=3, padding=h("aa02")),
        id="padding-is-the-whole-payload-kept-verbatim",
    ),
    pytest.param(
        h("b1e5" + HEADER + "00000044 abcd0001 01020304 7a 0101"),
        RtpPacket(
            payload_type=101,
            sequence=1,
            timestamp=2,
            ssrc=3,
            marker=True,
            csrc=(0x44,),
            extension=RtpExtension(profile=0xABCD, data=h("01020304")),
            payload=h("7a01"),
            padding=h("01"),
        ),
        id="csrc-extension-padding-together",
    ),
]


@pytest.mark.parametrize(("data", "packet"), VALID)
def test_parse(data: bytes, packet: RtpPacket) -> None:
    assert RtpPacket.parse(data) == packet


@pytest.mark.parametrize(("data", "packet"), VALID)
def test_serialise(data: bytes, packet: RtpPacket) -> None:
    assert bytes(packet) == data


@pytest.mark.parametrize(("data", "packet"), VALID)
def test_peek_header(data: bytes, packet: RtpPacket) -> None:
    assert peek_header(data) == (
        packet.payload_type,
        packet.sequence,
        packet.timestamp,
        packet.ssrc,
        packet.marker,
    )


@pytest.mark.parametrize(("data", "packet"), VALID)
@pytest.mark.parametrize("marker", [None, True, False])
def test_rewrite_header(data: bytes, packet: RtpPacket, marker: bool | None) -> None:
    out = rewrite_header(data, sequence=0xFFFF, timestamp=0x80000000, ssrc=0xCAFEBABE, marker=marker)
    expected = dataclasses.replace(
        packet,
        sequence=0xFFFF,
        timestamp=0x80000000,
        ssrc=0xCAFEBABE,
        marker=packet.marker if marker is None else marker,
    )
    assert out == bytes(expected)
    assert type(out) is bytes


def test_repr_is_compact() -> None:
    packet = RtpPacket.parse(h("b1e5" + HEADER + "00000044 abcd0001 01020304 7a 0101"))
    assert repr(packet) == (
        "RtpPacket(pt=101, seq=1, ts=2, ssrc=0x00000003, m=1, csrc=1, ext=0xabcd/4, padding=1, payload=2B)"
    )


MALFORMED = [
    pytest.param(b"", "RTP packet shorter than its 12-byte header: 0 bytes", id="empty"),
    pytest.param(
        h("8000 0001 00000002 000000"), "RTP packet shorter than its 12-byte header: 11 bytes", id="short"
    ),
    pytest.param(h("4000" + HEADER), "RTP version must be 2, got 1", id="version-1"),
    pytest.param(h("0000" + HEADER), "RTP version must be 2, got 0", id="version-0"),
    pytest.param(h("c000" + HEADER), "RTP version must be 2, got 3", id="version-3"),
    pytest.param(
        h("8200" + HEADER + "00000011"),
        "RTP packet has truncated CSRC list (2 CSRCs, 16 bytes)",
        id="csrc-count-beyond-data",
    ),
    pytest.param(
        h("9000" + HEADER + "bede00"), "RTP packet has truncated extension header", id="extension-header-cut"
    ),
    pytest.param(
        h("9000" + HEADER + "bede0002 00000000"),
        "RTP extension length (2 words) runs past the packet",
        id="extension-length-beyond-data",
    ),
    pytest.param(h("a000" + HEADER + "616200"), "RTP padding count is zero", id="padding-count-zero"),
    pytest.param(
        h("a000" + HEADER + "6105"),
        "RTP padding (5 bytes) larger than payload (2 bytes)",
        id="padding-too-large",
    ),
    pytest.param(
        h("a100" + HEADER + "00000005"),
        "RTP padding (5 bytes) larger than payload (0 bytes)",
        id="padding-would-eat-the-csrc",
    ),
    pytest.param(
        h("b000" + HEADER + "bede0001 00000009"),
        "RTP padding (9 bytes) larger than payload (0 bytes)",
        id="padding-would-eat-the-extension",
    ),
]


@pytest.mark.parametrize(("data", "message"), MALFORMED)
def test_parse_rejects_malformed(data: bytes, message: str) -> None:
    with pytest.raises(RtpError) as excinfo:
        RtpPacket.parse(data)
    assert str(excinfo.value) == message


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "RTP packet shorter than its 12-byte header: 0 bytes"),
        (h("8000 0001 00000002 000000"), "RTP packet shorter than its 12-byte header: 11 bytes"),
        (h("4000" + HEADER), "RTP version must be 2, got 1"),
    ],
)
def test_peek_and_rewrite_reject_short_or_wrong_version(data: bytes, message: str) -> None:
    with pytest.raises(RtpError) as excinfo:
        peek_header(data)
    assert str(excinfo.value) == message
    if len(data) < 12:
        with pytest.raises(RtpError) as excinfo:
            rewrite_header(data, sequence=0, timestamp=0, ssrc=0)
        assert str(excinfo.value) == message


@pytest.mark.parametrize(
    "kwargs",
    [
        {"payload_type": 128},
        {"payload_type": -1},
        {"sequence": 65536},
        {"timestamp": 2**32},
        {"ssrc": -1},
        {"csrc": tuple(range(16))},
        {"csrc": (2**32,)},
        {"padding": b"\x00"},
        {"padding": b"\x00\x01"},
    ],
)
def test_packet_validates_fields(kwargs: dict[str, object]) -> None:
    fields: dict[str, object] = {"payload_type": 0, "sequence": 0, "timestamp": 0, "ssrc": 0}
    fields.update(kwargs)
    with pytest.raises(RtpError):
        RtpPacket(**fields)  # type: ignore[arg-type]


@pytest.mark.parametrize("kwargs", [{"profile": 0x10000}, {"profile": 1, "data": b"abc"}])
def test_extension_validates_fields(kwargs: dict[str, object]) -> None:
    with pytest.raises(RtpError):
        RtpExtension(**kwargs)  # type: ignore[arg-type]


@st.composite
def _padding(draw: st.DrawFn) -> bytes:
    size = draw(st.integers(0, 255))
    if not size:
        return b""
    return draw(st.binary(min_size=size - 1, max_size=size - 1)) + bytes((size,))


PACKETS = st.builds(
    RtpPacket,
    payload_type=st.integers(0, 127),
    sequence=st.integers(0, 0xFFFF),
    timestamp=st.integers(0, 0xFFFFFFFF),
    ssrc=st.integers(0, 0xFFFFFFFF),
    marker=st.booleans(),
    csrc=st.lists(st.integers(0, 0xFFFFFFFF), max_size=15).map(tuple),
    extension=st.none()
    | st.builds(
        RtpExtension,
        profile=st.integers(0, 0xFFFF),
        data=st.integers(0, 16).flatmap(lambda n: st.binary(min_size=4 * n, max_size=4 * n)),
    ),
    payload=st.binary(max_size=300),
    padding=_padding(),
)


@given(PACKETS)
def test_round_trip(packet: RtpPacket) -> None:
    data = bytes(packet)
    assert RtpPacket.parse(data) == packet
    assert peek_header(data) == (
        packet.payload_type,
        packet.sequence,
        packet.timestamp,
        packet.ssrc,
        packet.marker,
    )


@given(PACKETS, st.integers(0, 0xFFFF), st.integers(0, 0xFFFFFFFF), st.integers(0, 0xFFFFFFFF), st.booleans())
def test_rewrite_equals_reserialise(packet: RtpPacket, seq: int, ts: int, ssrc: int, marker: bool) -> None:
    out = rewrite_header(bytes(packet), sequence=seq, timestamp=ts, ssrc=ssrc, marker=marker)
    assert out == bytes(dataclasses.replace(packet, sequence=seq, timestamp=ts, ssrc=ssrc, marker=marker))


@given(st.binary(max_size=80))
def test_parse_arbitrary_bytes_round_trips_or_raises_rtp_error(data: bytes) -> None:
    try:
        packet = RtpPacket.parse(data)
    except RtpError:
        return
    assert bytes(packet) == data


@pytest.mark.parametrize(
    ("data", "rtcp"),
    [
        pytest.param(h("80c8"), True, id="sr-200"),
        pytest.param(h("81c9"), True, id="rr-201"),
        pytest.param(h("81cb"), True, id="bye-203"),
        pytest.param(h("80c0"), True, id="192-lowest"),
        pytest.param(h("80df"), True, id="223-highest"),
        pytest.param(h("80e0"), False, id="rtp-pt96-marker"),
        pytest.param(h("8060"), False, id="rtp-pt96"),
        pytest.param(h("8000"), False, id="rtp-pcmu"),
        pytest.param(h("8080"), False, id="rtp-pcmu-marker"),
        pytest.param(h("80bf"), False, id="rtp-pt63-marker"),
        pytest.param(h("8048"), True, id="pt72-forbidden-on-mux-counts-as-rtcp"),
        pytest.param(h("80"), False, id="one-byte"),
        pytest.param(b"", False, id="empty"),
    ],
)
def test_is_rtcp(data: bytes, rtcp: bool) -> None:
    assert is_rtcp(data) is rtcp


RR_EMPTY = "80c90001 11223344"
RR_ONE_BLOCK = "81c90007 11223344" + "55667788" + "00" * 20
SR_ONE_BLOCK = "81c8000c 11223344" + "00" * 20 + "55667788" + "00" * 20
SDES_CNAME = "81ca0003 11223344 0102 6162 00000000"
BYE_ONE = "81cb0001 11223344"
BYE_NONE = "80cb0000"
APP = "80cc0002 11223344 74657374"
XR = "80cf0001 99aabbcc"

RTCP_VALID = [
    pytest.param(RR_EMPTY, [RtcpHeader(packet_type=201, length=8, ssrc=0x11223344)], id="empty-rr"),
    pytest.param(RR_ONE_BLOCK, [RtcpHeader(packet_type=201, length=32, ssrc=0x11223344)], id="rr-one-block"),
    pytest.param(SR_ONE_BLOCK, [RtcpHeader(packet_type=200, length=52, ssrc=0x11223344)], id="sr-one-block"),
    pytest.param(
        SR_ONE_BLOCK + SDES_CNAME + BYE_ONE,
        [
            RtcpHeader(packet_type=200, length=52, ssrc=0x11223344),
            RtcpHeader(packet_type=202, length=16, ssrc=0x11223344),
            RtcpHeader(packet_type=203, length=8, ssrc=0x11223344),
        ],
        id="sr-sdes-bye",
    ),
    pytest.param(
        RR_EMPTY + BYE_NONE + APP + XR,
        [
            RtcpHeader(packet_type=201, length=8, ssrc=0x11223344),
            RtcpHeader(packet_type=203, length=4, ssrc=None),
            RtcpHeader(packet_type=204, length=12, ssrc=0x11223344),
            RtcpHeader(packet_type=207, length=8, ssrc=0x99AABBCC),
        ],
        id="bye-without-sources-app-and-other-type",
    ),
    pytest.param(
        RR_EMPTY + "a1cb0002 11223344 00000004",
        [
            RtcpHeader(packet_type=201, length=8, ssrc=0x11223344),
            RtcpHeader(packet_type=203, length=12, ssrc=0x11223344),
        ],
        id="padding-on-the-last-packet",
    ),
]


@pytest.mark.parametrize(("data", "headers"), RTCP_VALID)
def test_parse_rtcp(data: str, headers: list[RtcpHeader]) -> None:
    assert parse_rtcp(h(data)) == headers


RTCP_MALFORMED = [
    pytest.param("80c900", "RTCP packet shorter than its 4-byte header: 3 bytes", id="short"),
    pytest.param("40c90001 11223344", "RTCP version must be 2, got 1", id="version"),
    pytest.param(RR_EMPTY + "40cb0000", "RTCP version must be 2, got 1", id="version-of-second"),
    pytest.param("80640001 11223344", "not an RTCP packet type: 100", id="type-out-of-range"),
    pytest.param(BYE_ONE, "RTCP compound packet must start with SR or RR, got 203", id="starts-with-bye"),
    pytest.param(
        "80c90002 11223344", "RTCP packet length (12 bytes) runs past the datagram", id="length-past-end"
    ),
    pytest.param(RR_EMPTY + "81cb", "RTCP compound packet has 2 trailing bytes", id="trailing-bytes"),
    pytest.param(
        "a0c90001 11223301" + BYE_ONE, "RTCP padding on a packet that is not the last", id="padding-not-last"
    ),
    pytest.param("a0c90001 11223300", "RTCP padding count 0 invalid for a 4-byte body", id="padding-zero"),
    pytest.param(
        "a0c90001 11223305", "RTCP padding count 5 invalid for a 4-byte body", id="padding-too-large"
    ),
    pytest.param("81c80006" + "00" * 24, "RTCP packet type 200 too short: 24 < 48 bytes", id="sr-short"),
    pytest.param("81c90001 11223344", "RTCP packet type 201 too short: 4 < 28 bytes", id="rr-short"),
    pytest.param("80c90000", "RTCP packet type 201 too short: 0 < 4 bytes", id="rr-without-ssrc"),
    pytest.param(
        RR_EMPTY + "82ca0001 11223344", "RTCP packet type 202 too short: 4 < 16 bytes", id="sdes-short"
    ),
    pytest.param(
        RR_EMPTY + "82cb0001 11223344", "RTCP packet type 203 too short: 4 < 8 bytes", id="bye-short"
    ),
    pytest.param(
        RR_EMPTY + "80cc0001 11223344", "RTCP packet type 204 too short: 4 < 8 bytes", id="app-short"
    ),
]


@pytest.mark.parametrize(("data", "message"), RTCP_MALFORMED)
def test_parse_rtcp_rejects_malformed(data: str, message: str) -> None:
    with pytest.raises(RtpError) as excinfo:
        parse_rtcp(h(data))
    assert str(excinfo.value) == message


@pytest.mark.parametrize(
    ("kwargs", "wire"),
    [
        pytest.param({}, RR_EMPTY + BYE_ONE, id="plain"),
        pytest.param({"reason": "bye"}, RR_EMPTY + "81cb0002 11223344 03627965", id="reason-fills-a-word"),
        pytest.param(
            {"reason": "hangup"}, RR_EMPTY + "81cb0003 11223344 0668616e 67757000", id="reason-padded"
        ),
        pytest.param({"cname": "ab"}, RR_EMPTY + SDES_CNAME + BYE_ONE, id="cname"),
        pytest.param(
            {"cname": "a"}, RR_EMPTY + "81ca0002 11223344 0101 6100" + BYE_ONE, id="cname-fills-a-word"
        ),
    ],
)
def test_build_rtcp_bye(kwargs: dict[str, str], wire: str) -> None:
    data = build_rtcp_bye(0x11223344, **kwargs)
    assert data == h(wire)
    assert [header.packet_type for header in parse_rtcp(data)] == [
        201,
        *([202] if "cname" in kwargs else []),
        203,
    ]


@pytest.mark.parametrize(
    ("ssrc", "kwargs", "message"),
    [
        (2**32, {}, "RTCP SSRC out of range: 4294967296"),
        (1, {"reason": "x" * 256}, "RTCP BYE reason longer than 255 bytes: 256"),
        (1, {"cname": ""}, "RTCP CNAME must be 1..255 bytes, got 0"),
        (1, {"cname": "é" * 128}, "RTCP CNAME must be 1..255 bytes, got 256"),
    ],
)
def test_build_rtcp_bye_rejects(ssrc: int, kwargs: dict[str, str], message: str) -> None:
    with pytest.raises(RtpError) as excinfo:
        build_rtcp_bye(ssrc, **kwargs)
    assert str(excinfo.value) == message
