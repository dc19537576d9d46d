"""SDP parsing, serialising and the edits a media-anchoring B2BUA makes (RFC 8866, 3264, 3605)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import pytest
from hypothesis import given
from hypothesis import strategies as st

from proxy.sip.errors import SipError
from proxy.sip.sdp import (
    STATIC_PAYLOAD_TYPES,
    Connection,
    MediaDescription,
    Origin,
    Rtcp,
    RtpMap,
    SessionDescription,
)


def sdp(*lines: str) -> bytes:
    """CRLF-terminated SDP text; latin-1 so tests can carry bytes that are not UTF-8."""
    return "".join(f"{line}\r\n" for line in lines).encode("latin-1")


ASTERISK_OFFER = (
    "v=0",
    "o=- 1234567890 1234567890 IN IP4 192.168.1.10",
    "s=Asterisk",
    "c=IN IP4 192.168.1.10",
    "t=0 0",
    "m=audio 10000 RTP/AVP 0 8 9 3 101",
    "a=rtpmap:0 PCMU/8000",
    "a=rtpmap:8 PCMA/8000",
    "a=rtpmap:9 G722/8000",
    "a=rtpmap:3 GSM/8000",
    "a=rtpmap:101 telephone-event/8000",
    "a=fmtp:101 0-16",
    "a=ptime:20",
    "a=maxptime:150",
    "a=sendrecv",
)

FREESWITCH_ANSWER = (
    "v=0",
    "o=FreeSWITCH 1700000000 1700000001 IN IP4 203.0.113.5",
    "s=FreeSWITCH",
    "c=IN IP4 203.0.113.5",
    "t=0 0",
    "m=audio 24680 RTP/AVP 8 101",
    "a=rtpmap:8 PCMA/8000",
    "a=rtpmap:101 telephone-event/8000",
    "a=fmtp:101 0-16",
    "a=ptime:20",
    "a=rtcp:24681 IN IP4 203.0.113.5",
)

WEBRTC_OFFER = (
    "v=0",
    "o=- 4611731400430051336 2 IN IP4 127.0.0.1",
    "s=-",
    "t=0 0",
    "a=group:BUNDLE 0 1",
    "a=extmap-allow-mixed",
    "a=msid-semantic: WMS stream1",
    "m=audio 9 UDP/TLS/RTP/SAVPF 111 63 9 0 8 13 110 126",
    "c=IN IP4 0.0.0.0",
    "a=rtcp:9 IN IP4 0.0.0.0",
    "a=ice-ufrag:EsAw",
    "a=ice-pwd:P2uYro0UCOQ4zxjKXaWCBui1",
    "a=ice-options:trickle",
    "a=fingerprint:sha-256 D2:FA:0E:C3:22:59:5E:14:95:69:92:3D:13:B4:84:24:2C:C2:A2:C0:3E:FD:34:8E:5E:EA:6F:AF",
    "a=setup:actpass",
    "a=mid:0",
    "a=extmap:1 urn:ietf:params:rtp-hdrext:ssrc-audio-level",
    "a=sendrecv",
    "a=msid:stream1 track1",
    "a=rtcp-mux",
    "a=rtpmap:111 opus/48000/2",
    "a=rtcp-fb:111 transport-cc",
    "a=fmtp:111 minptime=10;useinbandfec=1",
    "a=rtpmap:63 red/48000/2",
    "a=fmtp:63 111/111",
    "a=rtpmap:9 G722/8000",
    "a=rtpmap:0 PCMU/8000",
    "a=rtpmap:8 PCMA/8000",
    "a=rtpmap:13 CN/8000",
    "a=rtpmap:110 telephone-event/48000",
    "a=rtpmap:126 telephone-event/8000",
    "a=ssrc:3735928559 cname:4TOk42mSjXCkVIa6",
    "m=video 9 UDP/TLS/RTP/SAVPF 96 97",
    "c=IN IP4 0.0.0.0",
    "a=rtcp:9 IN IP4 0.0.0.0",
    "a=ice-ufrag:EsAw",
    "a=ice-pwd:P2uYro0UCOQ4zxjKXaWCBui1",
    "a=mid:1",
    "a=recvonly",
    "a=rtcp-mux",
    "a=rtcp-rsize",
    "a=rtpmap:96 VP8/90000",
    "a=rtcp-fb:96 goog-remb",
    "a=rtcp-fb:96 nack",
    "a=rtcp-fb:96 nack pli",
    "a=rtpmap:97 rtx/90000",
    "a=fmtp:97 apt=96",
)

IPV6_OFFER = (
    "v=0",
    "o=carrier 42 42 IN IP6 2001:db8::1",
    "s=-",
    "c=IN IP6 2001:db8::1",
    "t=0 0",
    "m=audio 30000 RTP/AVP 0 101",
    "a=rtpmap:101 telephone-event/8000",
    "a=fmtp:101 0-15",
    "a=ptime:30",
)

LEGACY_HOLD = (
    "v=0",
    "o=- 1 2 IN IP4 10.0.0.1",
    "s=-",
    "c=IN IP4 0.0.0.0",
    "t=0 0",
    "m=audio 4000 RTP/AVP 0",
    "a=rtpmap:0 PCMU/8000",
)

MULTI_STREAM = (
    "v=0",
    "o=alice 2890844526 2890844526 IN IP4 host.atlanta.example.com",
    "s=",
    "c=IN IP4 192.0.2.10",
    "t=0 0",
    "m=audio 49170/2 RTP/AVP 0 97",
    "c=IN IP4 192.0.2.11",
    "b=AS:64",
    "a=rtpmap:97 iLBC/8000",
    "a=inactive",
    "m=video 51372 RTP/AVP 31 32",
    "a=rtpmap:31 H261/90000",
    "a=rtpmap:32 MPV/90000",
    "m=application 0 UDP/BFCP *",
)

SESSION_SENDONLY = (
    "v=0",
    "o=pbx 100 101 IN IP4 10.1.1.1",
    "s=call",
    "c=IN IP4 10.1.1.1",
    "b=AS:84",
    "t=0 0",
    "a=sendonly",
    "m=audio 16384 RTP/SAVP 18 101",
    "a=rtpmap:18 G729/8000",
    "a=fmtp:18 annexb=no",
    "a=rtpmap:101 telephone-event/8000",
    "a=fmtp:101 0-16",
    "a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz|2^20|1:32",
)

# Every line type RFC 8866 defines, a letter it does not, odd spacing and a byte that is not UTF-8.
ODDITIES = (
    "v=0",
    "o=user 0123 0042 IN IP4 192.0.2.1",
    "s=Caf\xe9",
    "i=A session with every line type",
    "u=http://www.example.com/seminars/sdp.pdf",
    "e=j.doe@example.com (Jane Doe)",
    "p=+1 617 555-6011",
    "c=IN IP4 224.2.17.12/127",
    "b=CT:128",
    "t=2873397496 2873404696",
    "r=604800 3600 0 90000",
    "z=2882844526 -1h 2898848070 0",
    "k=prompt",
    "a=recvonly",
    "x=a type letter nobody knows",
    "m=audio  49170 RTP/AVP  0 ",
    "i=main audio",
    "a=ptime:20 ",
    "a=",
)

SAMPLES = {
    "asterisk": ASTERISK_OFFER,
    "freeswitch": FREESWITCH_ANSWER,
    "webrtc": WEBRTC_OFFER,
    "ipv6": IPV6_OFFER,
    "legacy-hold": LEGACY_HOLD,
    "multi-stream": MULTI_STREAM,
    "session-sendonly": SESSION_SENDONLY,
    "oddities": ODDITIES,
}


@pytest.mark.parametrize("lines", SAMPLES.values(), ids=SAMPLES.keys())
def test_round_trip_is_identity(lines: tuple[str, ...]) -> None:
    data = sdp(*lines)
    assert bytes(SessionDescription.parse(data)) == data


@pytest.mark.parametrize("lines", SAMPLES.values(), ids=SAMPLES.keys())
def test_lf_line_ends_come_back_as_crlf(lines: tuple[str, ...]) -> None:
    data = sdp(*lines)
    assert bytes(SessionDescription.parse(data.replace(b"\r\n", b"\n"))) == data


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\ns=-", sdp("v=0", "o=- 1 1 IN IP4 1.2.3.4", "s=-")),
        (b"v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\n\r\n\r\n", sdp("v=0", "o=- 1 1 IN IP4 1.2.3.4")),
        (b"v=0\no=- 1 1 IN IP4 1.2.3.4\r\ns=-\n", sdp("v=0", "o=- 1 1 IN IP4 1.2.3.4", "s=-")),
    ],
    ids=["no-final-eol", "trailing-blank-lines", "mixed-eol"],
)
def test_line_ends_are_normalised(data: bytes, expected: bytes) -> None:
    assert bytes(SessionDescription.parse(data)) == expected


def _codec_text(media: MediaDescription, pt: str) -> str | None:
    codec = media.codec(pt)
    if codec is None:
        return None
    channels = "" if codec.channels is None else f"/{codec.channels}"
    return f"{codec.encoding}/{codec.clock_rate}{channels}"


def describe(sd: SessionDescription) -> dict[str, object]:
    """Everything the typed accessors read, in one comparable value."""
    media = []
    for m in sd.media:
        connection = sd.effective_connection(m)
        media.append(
            {
                "m": (m.media, m.port, m.port_count, m.proto, m.formats),
                "codecs": tuple(_codec_text(m, pt) for pt in m.formats),
                "address": None if connection is None else (connection.addrtype, connection.address),
                "direction": (m.direction, sd.effective_direction(m)),
                "hold": sd.hold_kind(m),
                "ptime": m.ptime,
                "telephone_event": m.telephone_event_pt(),
                "rtcp": m.rtcp,
            }
        )
    return {
        "origin": sd.origin,
        "connection": sd.connection,
        "direction": sd.direction,
        "is_hold": sd.is_hold(),
        "media": media,
    }


IP4 = "IP4"
DESCRIPTIONS = {
    "asterisk": {
        "origin": Origin(username="-", sess_id="1234567890", sess_version=1234567890, address="192.168.1.10"),
        "connection": Connection(addrtype=IP4, address="192.168.1.10"),
        "direction": None,
        "is_hold": False,
        "media": [
            {
                "m": ("audio", 10000, None, "RTP/AVP", ("0", "8", "9", "3", "101")),
                "codecs": ("PCMU/8000", "PCMA/8000", "G722/8000", "GSM/8000", "telephone-event/8000"),
                "address": (IP4, "192.168.1.10"),
                "direction": ("sendrecv", "sendrecv"),
                "hold": None,
                "ptime": 20,
                "telephone_event": "101",
                "rtcp": None,
            }
        ],
    },
    "freeswitch": {
        "origin": Origin(
            username="FreeSWITCH", sess_id="1700000000", sess_version=1700000001, address="203.0.113.5"
        ),
        "connection": Connection(addrtype=IP4, address="203.0.113.5"),
        "direction": None,
        "is_hold": False,
        "media": [
            {
                "m": ("audio", 24680, None, "RTP/AVP", ("8", "101")),
                "codecs": ("PCMA/8000", "telephone-event/8000"),
                "address": (IP4, "203.0.113.5"),
                "direction": (None, "sendrecv"),
                "hold": None,
                "ptime": 20,
                "telephone_event": "101",
                "rtcp": Rtcp(port=24681, connection=Connection(addrtype=IP4, address="203.0.113.5")),
            }
        ],
    },
    "webrtc": {
        "origin": Origin(username="-", sess_id="4611731400430051336", sess_version=2, address="127.0.0.1"),
        "connection": None,
        "direction": None,
        "is_hold": False,
        "media": [
            {
                "m": (
                    "audio",
                    9,
                    None,
                    "UDP/TLS/RTP/SAVPF",
                    ("111", "63", "9", "0", "8", "13", "110", "126"),
                ),
                "codecs": (
                    "opus/48000/2",
                    "red/48000/2",
                    "G722/8000",
                    "PCMU/8000",
                    "PCMA/8000",
                    "CN/8000",
                    "telephone-event/48000",
                    "telephone-event/8000",
                ),
                "address": (IP4, "0.0.0.0"),
                "direction": ("sendrecv", "sendrecv"),
                "hold": None,  # ICE: 0.0.0.0 is a placeholder, not hold
                "ptime": None,
                "telephone_event": "126",
                "rtcp": Rtcp(port=9, connection=Connection(addrtype=IP4, address="0.0.0.0")),
            },
            {
                "m": ("video", 9, None, "UDP/TLS/RTP/SAVPF", ("96", "97")),
                "codecs": ("VP8/90000", "rtx/90000"),
                "address": (IP4, "0.0.0.0"),
                "direction": ("recvonly", "recvonly"),
                "hold": None,
                "ptime": None,
                "telephone_event": None,
                "rtcp": Rtcp(port=9, connection=Connection(addrtype=IP4, address="0.0.0.0")),
            },
        ],
    },
    "ipv6": {
        "origin": Origin(
            username="carrier", sess_id="42", sess_version=42, addrtype="IP6", address="2001:db8::1"
        ),
        "connection": Connection(addrtype="IP6", address="2001:db8::1"),
        "direction": None,
        "is_hold": False,
        "media": [
            {
                "m": ("audio", 30000, None, "RTP/AVP", ("0", "101")),
                "codecs": ("PCMU/8000/1", "telephone-event/8000"),
                "address": ("IP6", "2001:db8::1"),
                "direction": (None, "sendrecv"),
                "hold": None,
                "ptime": 30,
                "telephone_event": "101",
                "rtcp": None,
            }
        ],
    },
    "legacy-hold": {
        "origin": Origin(username="-", sess_id="1", sess_version=2, address="10.0.0.1"),
        "connection": Connection(addrtype=IP4, address="0.0.0.0"),
        "direction": None,
        "is_hold": True,
        "media": [
            {
                "m": ("audio", 4000, None, "RTP/AVP", ("0",)),
                "codecs": ("PCMU/8000",),
                "address": (IP4, "0.0.0.0"),
                "direction": (None, "sendrecv"),
                "hold": "zero-address",
                "ptime": None,
                "telephone_event": None,
                "rtcp": None,
            }
        ],
    },
    "multi-stream": {
        "origin": Origin(
            username="alice",
            sess_id="2890844526",
            sess_version=2890844526,
            address="host.atlanta.example.com",
        ),
        "connection": Connection(addrtype=IP4, address="192.0.2.10"),
        "direction": None,
        "is_hold": False,
        "media": [
            {
                "m": ("audio", 49170, 2, "RTP/AVP", ("0", "97")),
                "codecs": ("PCMU/8000/1", "iLBC/8000"),
                "address": (IP4, "192.0.2.11"),
                "direction": ("inactive", "inactive"),
                "hold": "inactive",
                "ptime": None,
                "telephone_event": None,
                "rtcp": None,
            },
            {
                "m": ("video", 51372, None, "RTP/AVP", ("31", "32")),
                "codecs": ("H261/90000", "MPV/90000"),
                "address": (IP4, "192.0.2.10"),
                "direction": (None, "sendrecv"),
                "hold": None,
                "ptime": None,
                "telephone_event": None,
                "rtcp": None,
            },
            {
                "m": ("application", 0, None, "UDP/BFCP", ("*",)),
                "codecs": (None,),
                "address": (IP4, "192.0.2.10"),
                "direction": (None, "sendrecv"),
                "hold": None,
                "ptime": None,
                "telephone_event": None,
                "rtcp": None,
            },
        ],
    },
    "session-sendonly": {
        "origin": Origin(username="pbx", sess_id="100", sess_version=101, address="10.1.1.1"),
        "connection": Connection(addrtype=IP4, address="10.1.1.1"),
        "direction": "sendonly",
        "is_hold": True,
        "media": [
            {
                "m": ("audio", 16384, None, "RTP/SAVP", ("18", "101")),
                "codecs": ("G729/8000", "telephone-event/8000"),
                "address": (IP4, "10.1.1.1"),
                "direction": (None, "sendonly"),
                "hold": "sendonly",
                "ptime": None,
                "telephone_event": "101",
                "rtcp": None,
            }
        ],
    },
    "oddities": {
        "origin": Origin(username="user", sess_id="0123", sess_version=42, address="192.0.2.1"),
        "connection": Connection(addrtype=IP4, address="224.2.17.12/127"),
        "direction": "recvonly",
        "is_hold": False,
        "media": [
            {
                "m": ("audio", 49170, None, "RTP/AVP", ("0",)),
                "codecs": ("PCMU/8000/1",),
                "address": (IP4, "224.2.17.12/127"),
                "direction": (None, "recvonly"),
                "hold": None,
                "ptime": 20,
                "telephone_event": None,
                "rtcp": None,
            }
        ],
    },
}


@pytest.mark.parametrize("name", DESCRIPTIONS)
def test_accessors_read_real_world_sdp(name: str) -> None:
    assert describe(SessionDescription.parse(sdp(*SAMPLES[name]))) == DESCRIPTIONS[name]


@pytest.mark.parametrize(
    ("lines", "media_index", "pt", "expected"),
    [
        (WEBRTC_OFFER, 0, "111", "minptime=10;useinbandfec=1"),
        (WEBRTC_OFFER, 0, "63", "111/111"),
        (WEBRTC_OFFER, 0, "0", None),
        (WEBRTC_OFFER, 1, "97", "apt=96"),
        (SESSION_SENDONLY, 0, "18", "annexb=no"),
        (ASTERISK_OFFER, 0, "101", "0-16"),
    ],
)
def test_fmtp(lines: tuple[str, ...], media_index: int, pt: str, expected: str | None) -> None:
    assert SessionDescription.parse(sdp(*lines)).media[media_index].fmtp(pt) == expected


@pytest.mark.parametrize(
    ("lines", "clock_rate", "expected"),
    [
        (WEBRTC_OFFER, 8000, "126"),
        (WEBRTC_OFFER, 48000, "110"),
        (WEBRTC_OFFER, 16000, None),
        (LEGACY_HOLD, 8000, None),
    ],
)
def test_telephone_event_pt(lines: tuple[str, ...], clock_rate: int, expected: str | None) -> None:
    assert SessionDescription.parse(sdp(*lines)).media[0].telephone_event_pt(clock_rate) == expected


def test_rtpmaps_keep_line_order_and_skip_malformed() -> None:
    media = SessionDescription.parse(
        sdp(
            "v=0",
            "o=- 1 1 IN IP4 10.0.0.1",
            "m=audio 4000 RTP/AVP 96 97 98",
            "a=rtpmap:98 opus/48000/2",
            "a=rtpmap:97 AMR-WB",
            "a=rtpmap:96 speex/16000",
            "a=rtpmap:96 speex/32000",
        )
    ).media[0]
    assert media.rtpmaps == {
        "98": RtpMap(payload_type="98", encoding="opus", clock_rate=48000, channels=2),
        "96": RtpMap(payload_type="96", encoding="speex", clock_rate=16000),
    }


def _set_origin(sd: SessionDescription) -> None:
    sd.origin = dataclasses.replace(sd.origin, address="203.0.113.1", sess_version=sd.origin.sess_version + 1)


def _set_audio_port(port: int) -> Callable[[SessionDescription], None]:
    def edit(sd: SessionDescription) -> None:
        sd.media[0].port = port

    return edit


def _keep(allowed: set[str], index: int = 0) -> Callable[[SessionDescription], None]:
    def edit(sd: SessionDescription) -> None:
        sd.media[index].keep_codecs(allowed)

    return edit


def _media_direction(sd: SessionDescription) -> None:
    sd.media[0].direction = "sendonly"


def _session_direction_off(sd: SessionDescription) -> None:
    sd.direction = None


def _session_direction_inactive(sd: SessionDescription) -> None:
    sd.direction = "inactive"


def _rtcp_anchor(sd: SessionDescription) -> None:
    sd.media[0].rtcp = Rtcp(port=40001, connection=Connection(addrtype="IP4", address="198.51.100.1"))


def _rtcp_port_only(sd: SessionDescription) -> None:
    sd.media[0].rtcp = Rtcp(port=10001)


def _rtcp_remove(sd: SessionDescription) -> None:
    sd.media[0].rtcp = None


def _anchor(address: str) -> Callable[[SessionDescription], None]:
    def edit(sd: SessionDescription) -> None:
        sd.set_connection_address(address)

    return edit


def _proto_and_count(sd: SessionDescription) -> None:
    sd.media[0].proto = "RTP/AVP"
    sd.media[0].port_count = None


def _attributes(sd: SessionDescription) -> None:
    sd.media[0].remove_attributes("maxptime")
    sd.media[0].add_attribute("label", "1")
    sd.add_attribute("tool", "callherald")


EDITS = [
    pytest.param(
        ASTERISK_OFFER,
        _set_origin,
        [("o=- 1234567890 1234567890 IN IP4 192.168.1.10", "o=- 1234567890 1234567891 IN IP4 203.0.113.1")],
        id="origin-address-and-version",
    ),
    pytest.param(
        ASTERISK_OFFER,
        _anchor("198.51.100.1"),
        [("c=IN IP4 192.168.1.10", "c=IN IP4 198.51.100.1")],
        id="anchor-ip4",
    ),
    pytest.param(
        ASTERISK_OFFER,
        _anchor("2001:db8::10"),
        [("c=IN IP4 192.168.1.10", "c=IN IP6 2001:db8::10")],
        id="anchor-ip6",
    ),
    pytest.param(
        IPV6_OFFER,
        _anchor("198.51.100.1"),
        [("c=IN IP6 2001:db8::1", "c=IN IP4 198.51.100.1")],
        id="anchor-ip6-to-ip4",
    ),
    pytest.param(
        MULTI_STREAM,
        _anchor("198.51.100.1"),
        [("c=IN IP4 192.0.2.10", "c=IN IP4 198.51.100.1"), ("c=IN IP4 192.0.2.11", "c=IN IP4 198.51.100.1")],
        id="anchor-session-and-media-level",
    ),
    pytest.param(
        WEBRTC_OFFER,
        _anchor("198.51.100.1"),
        [("c=IN IP4 0.0.0.0", "c=IN IP4 198.51.100.1"), ("c=IN IP4 0.0.0.0", "c=IN IP4 198.51.100.1")],
        id="anchor-media-level-only",
    ),
    pytest.param(ASTERISK_OFFER, _set_audio_port(40000), [("m=audio 10000 ", "m=audio 40000 ")], id="port"),
    pytest.param(
        MULTI_STREAM,
        _set_audio_port(0),
        [("m=audio 49170/2 RTP/AVP 0 97", "m=audio 0/2 RTP/AVP 0 97")],
        id="reject-keeps-count",
    ),
    pytest.param(
        MULTI_STREAM,
        _proto_and_count,
        [("m=audio 49170/2 RTP/AVP 0 97", "m=audio 49170 RTP/AVP 0 97")],
        id="port-count-removed",
    ),
    pytest.param(
        ASTERISK_OFFER,
        _keep({"pcma", "telephone-event"}),
        [
            ("m=audio 10000 RTP/AVP 0 8 9 3 101", "m=audio 10000 RTP/AVP 8 101"),
            ("a=rtpmap:0 PCMU/8000", None),
            ("a=rtpmap:9 G722/8000", None),
            ("a=rtpmap:3 GSM/8000", None),
        ],
        id="keep-codecs",
    ),
    pytest.param(
        ASTERISK_OFFER,
        _keep({"g722", "pcmu"}),
        [
            ("m=audio 10000 RTP/AVP 0 8 9 3 101", "m=audio 10000 RTP/AVP 0 9"),
            ("a=rtpmap:8 PCMA/8000", None),
            ("a=rtpmap:3 GSM/8000", None),
            ("a=rtpmap:101 telephone-event/8000", None),
            ("a=fmtp:101 0-16", None),
        ],
        id="keep-codecs-keeps-offer-order",
    ),
    pytest.param(
        WEBRTC_OFFER,
        _keep({"pcmu", "pcma", "telephone-event"}),
        [
            (
                "m=audio 9 UDP/TLS/RTP/SAVPF 111 63 9 0 8 13 110 126",
                "m=audio 9 UDP/TLS/RTP/SAVPF 0 8 126",
            ),
            ("a=rtpmap:111 opus/48000/2", None),
            ("a=rtcp-fb:111 transport-cc", None),
            ("a=fmtp:111 minptime=10;useinbandfec=1", None),
            ("a=rtpmap:63 red/48000/2", None),
            ("a=fmtp:63 111/111", None),
            ("a=rtpmap:9 G722/8000", None),
            ("a=rtpmap:13 CN/8000", None),
            ("a=rtpmap:110 telephone-event/48000", None),  # Opus's events, at Opus's rate
        ],
        id="keep-codecs-webrtc",
    ),
    pytest.param(
        WEBRTC_OFFER,
        _keep({"vp8"}, index=1),
        [
            ("m=video 9 UDP/TLS/RTP/SAVPF 96 97", "m=video 9 UDP/TLS/RTP/SAVPF 96"),
            ("a=rtpmap:97 rtx/90000", None),
            ("a=fmtp:97 apt=96", None),
        ],
        id="keep-codecs-keeps-rtcp-fb-of-kept",
    ),
    pytest.param(
        IPV6_OFFER,
        _keep({"pcmu"}),
        [
            ("m=audio 30000 RTP/AVP 0 101", "m=audio 30000 RTP/AVP 0"),
            ("a=rtpmap:101 telephone-event/8000", None),
            ("a=fmtp:101 0-15", None),
        ],
        id="keep-codecs-static-without-rtpmap",
    ),
    pytest.param(
        SESSION_SENDONLY,
        _keep({"pcmu", "pcma"}),
        [
            ("m=audio 16384 RTP/SAVP 18 101", "m=audio 0 RTP/SAVP 18"),
            ("a=rtpmap:101 telephone-event/8000", None),
            ("a=fmtp:101 0-16", None),
        ],
        id="keep-codecs-none-left-rejects",
    ),
    pytest.param(
        ASTERISK_OFFER, _keep({"pcmu", "pcma", "g722", "gsm", "telephone-event"}), [], id="keep-all"
    ),
    pytest.param(ASTERISK_OFFER, _media_direction, [("a=sendrecv", "a=sendonly")], id="direction-replace"),
    pytest.param(
        FREESWITCH_ANSWER,
        _media_direction,
        [("a=rtcp:24681 IN IP4 203.0.113.5", "a=rtcp:24681 IN IP4 203.0.113.5\na=sendonly")],
        id="direction-add",
    ),
    pytest.param(
        SESSION_SENDONLY, _session_direction_off, [("a=sendonly", None)], id="session-direction-remove"
    ),
    pytest.param(
        SESSION_SENDONLY,
        _session_direction_inactive,
        [("a=sendonly", "a=inactive")],
        id="session-direction-replace",
    ),
    pytest.param(
        ASTERISK_OFFER,
        _session_direction_inactive,
        [("t=0 0", "t=0 0\na=inactive")],
        id="session-direction-add",
    ),
    pytest.param(
        FREESWITCH_ANSWER,
        _rtcp_anchor,
        [("a=rtcp:24681 IN IP4 203.0.113.5", "a=rtcp:40001 IN IP4 198.51.100.1")],
        id="rtcp-replace",
    ),
    pytest.param(
        ASTERISK_OFFER,
        _rtcp_port_only,
        [("a=sendrecv", "a=sendrecv\na=rtcp:10001")],
        id="rtcp-add",
    ),
    pytest.param(
        FREESWITCH_ANSWER, _rtcp_remove, [("a=rtcp:24681 IN IP4 203.0.113.5", None)], id="rtcp-remove"
    ),
    pytest.param(
        WEBRTC_OFFER,
        _rtcp_remove,
        [("a=rtcp:9 IN IP4 0.0.0.0", None)],
        id="rtcp-remove-leaves-rtcp-mux",
    ),
    pytest.param(
        ASTERISK_OFFER,
        _attributes,
        [
            ("a=maxptime:150\n", ""),
            ("a=sendrecv", "a=sendrecv\na=label:1"),
            ("t=0 0", "t=0 0\na=tool:callherald"),
        ],
        id="generic-attributes",
    ),
]


@pytest.mark.parametrize(("lines", "edit", "changes"), EDITS)
def test_edit_changes_exactly_these_lines(
    lines: tuple[str, ...],
    edit: Callable[[SessionDescription], None],
    changes: list[tuple[str, str | None]],
) -> None:
    """Each edit is stated as text substitutions on the input; nothing else may change."""
    expected = "\n".join(lines) + "\n"
    for old, new in changes:
        # Each pair edits the first occurrence left; a repeated pair edits the next one.
        assert old in expected, old
        expected = expected.replace(old + "\n", "", 1) if new is None else expected.replace(old, new, 1)
    sd = SessionDescription.parse(sdp(*lines))
    edit(sd)
    assert bytes(sd) == expected.replace("\n", "\r\n").encode()


def test_anchoring_an_asterisk_offer_gives_this_text() -> None:
    sd = SessionDescription.parse(sdp(*ASTERISK_OFFER))
    sd.origin = dataclasses.replace(sd.origin, username="callherald", address="198.51.100.1", sess_version=7)
    sd.set_connection_address("198.51.100.1")
    audio = sd.media[0]
    audio.port = 40000
    assert audio.keep_codecs({"pcmu", "pcma", "telephone-event"}) is True
    audio.rtcp = Rtcp(port=40001)
    assert bytes(sd) == sdp(
        "v=0",
        "o=callherald 1234567890 7 IN IP4 198.51.100.1",
        "s=Asterisk",
        "c=IN IP4 198.51.100.1",
        "t=0 0",
        "m=audio 40000 RTP/AVP 0 8 101",
        "a=rtpmap:0 PCMU/8000",
        "a=rtpmap:8 PCMA/8000",
        "a=rtpmap:101 telephone-event/8000",
        "a=fmtp:101 0-16",
        "a=ptime:20",
        "a=maxptime:150",
        "a=sendrecv",
        "a=rtcp:40001",
    )


def test_anchor_adds_session_connection_when_a_stream_has_none() -> None:
    sd = SessionDescription.parse(
        sdp(
            "v=0",
            "o=- 1 1 IN IP4 10.0.0.1",
            "s=-",
            "t=0 0",
            "m=audio 4000 RTP/AVP 0",
            "c=IN IP4 10.0.0.1",
            "m=audio 4002 RTP/AVP 0",
            "i=second",
            "b=AS:64",
        )
    )
    sd.set_connection_address("2001:db8::5")
    assert bytes(sd) == sdp(
        "v=0",
        "o=- 1 1 IN IP4 10.0.0.1",
        "s=-",
        "c=IN IP6 2001:db8::5",
        "t=0 0",
        "m=audio 4000 RTP/AVP 0",
        "c=IN IP6 2001:db8::5",
        "m=audio 4002 RTP/AVP 0",
        "i=second",
        "b=AS:64",
    )


def test_media_connection_is_inserted_in_rfc_8866_order() -> None:
    sd = SessionDescription.parse(
        sdp("v=0", "o=- 1 1 IN IP4 10.0.0.1", "m=audio 4000 RTP/AVP 0", "a=rtcp-mux", "i=late", "b=AS:64")
    )
    sd.media[0].connection = Connection.for_address("10.9.9.9")
    assert sd.media[0].lines == ["a=rtcp-mux", "i=late", "c=IN IP4 10.9.9.9", "b=AS:64"]
    sd.media[0].connection = None
    assert sd.media[0].lines == ["a=rtcp-mux", "i=late", "b=AS:64"]


def test_conflicting_directions_collapse_into_the_first() -> None:
    sd = SessionDescription.parse(
        sdp(
            "v=0",
            "o=- 1 1 IN IP4 10.0.0.1",
            "m=audio 4000 RTP/AVP 0",
            "a=recvonly",
            "a=ptime:20",
            "a=sendrecv",
        )
    )
    assert sd.media[0].direction == "recvonly"
    sd.media[0].direction = "inactive"
    assert sd.media[0].lines == ["a=inactive", "a=ptime:20"]


def test_origin_is_added_after_v_when_missing() -> None:
    sd = SessionDescription(lines=["v=0", "s=-", "t=0 0"])
    with pytest.raises(SipError, match="no o= line"):
        _ = sd.origin
    sd.origin = Origin(username="-", sess_id="5", sess_version=1, address="10.0.0.1")
    assert sd.lines == ["v=0", "o=- 5 1 IN IP4 10.0.0.1", "s=-", "t=0 0"]


def test_built_media_description_serialises() -> None:
    media = MediaDescription(
        media="audio",
        port=5004,
        proto="RTP/AVP",
        formats=["0", "101"],
        lines=["a=rtpmap:101 telephone-event/8000"],
    )
    sd = SessionDescription(lines=["v=0", "o=- 1 1 IN IP4 10.0.0.1", "s=-", "c=IN IP4 10.0.0.1", "t=0 0"])
    sd.media.append(media)
    assert bytes(sd) == sdp(
        "v=0",
        "o=- 1 1 IN IP4 10.0.0.1",
        "s=-",
        "c=IN IP4 10.0.0.1",
        "t=0 0",
        "m=audio 5004 RTP/AVP 0 101",
        "a=rtpmap:101 telephone-event/8000",
    )
    assert media.telephone_event_pt() == "101"


def test_copy_is_independent() -> None:
    original = SessionDescription.parse(sdp(*MULTI_STREAM))
    copy = original.copy()
    copy.set_connection_address("198.51.100.1")
    copy.media[0].keep_codecs({"pcmu"})
    copy.media[1].port = 0
    copy.direction = "inactive"
    copy.media.pop()
    assert bytes(original) == sdp(*MULTI_STREAM)
    assert bytes(copy.copy()) == bytes(copy)


def test_keep_codecs_reports_whether_anything_was_allowed() -> None:
    sd = SessionDescription.parse(sdp(*MULTI_STREAM))
    assert sd.media[1].keep_codecs({"h261"}) is True
    assert sd.media[1].keep_codecs({"pcmu"}) is False
    assert sd.media[1].m_line == "m=video 0 RTP/AVP 31"
    assert sd.media[1].rejected is True


def test_keep_codecs_on_media_without_formats_rejects_it() -> None:
    sd = SessionDescription.parse(sdp("v=0", "o=- 1 1 IN IP4 10.0.0.1", "m=audio 4000 RTP/AVP"))
    assert sd.media[0].keep_codecs({"pcmu"}) is False
    assert sd.media[0].m_line == "m=audio 0 RTP/AVP"


def audio(*lines: str) -> MediaDescription:
    return SessionDescription.parse(sdp("v=0", "o=- 1 1 IN IP4 10.0.0.1", *lines)).media[0]


OFFERED = audio(
    "m=audio 4000 RTP/AVP 0 8 96 101",
    "a=rtpmap:0 PCMU/8000",
    "a=rtpmap:8 PCMA/8000",
    "a=rtpmap:96 PCMA/8000",
    "a=rtpmap:101 telephone-event/8000",
    "a=fmtp:101 0-16",
)


@pytest.mark.parametrize(
    ("answer", "outside"),
    [
        pytest.param(("m=audio 5000 RTP/AVP 8 101", "a=rtpmap:101 telephone-event/8000"), (), id="offered"),
        pytest.param(("m=audio 5000 RTP/AVP 0 101",), (), id="unmapped-dynamic-taken-as-offered"),
        pytest.param(
            ("m=audio 5000 RTP/AVP 0 96", "a=rtpmap:96 pcma/8000/1"), (), id="same-codec-spelt-otherwise"
        ),
        pytest.param(
            ("m=audio 5000 RTP/AVP 0 9 102", "a=rtpmap:9 G722/8000", "a=rtpmap:102 telephone-event/8000"),
            ("9", "102"),
            id="not-offered",
        ),
        pytest.param(
            ("m=audio 5000 RTP/AVP 0 101", "a=rtpmap:101 PCMA/8000"), ("101",), id="dynamic-remapped"
        ),
        pytest.param(("m=audio 5000 RTP/AVP 96", "a=rtpmap:96 PCMU/8000"), ("96",), id="other-codec-on-96"),
        pytest.param(("m=audio 5000 RTP/AVP 8", "a=rtpmap:8 PCMA/16000"), ("8",), id="other-clock-rate"),
        pytest.param(("m=audio 5000 RTP/AVP 0", "a=rtpmap:0 PCMA/8000"), ("0",), id="static-remapped"),
    ],
)
def test_formats_outside_the_offer(answer: tuple[str, ...], outside: tuple[str, ...]) -> None:
    # RFC 3264 §6.1 and §8.3.2: an answer's formats are the offer's, each with the offer's codec.
    assert audio(*answer).formats_outside(OFFERED) == outside


def test_drop_formats_takes_their_lines_along() -> None:
    media = audio(
        "m=audio 5000 RTP/AVP 0 101 102",
        "a=rtpmap:0 PCMU/8000",
        "a=rtpmap:101 PCMA/8000",
        "a=rtpmap:102 telephone-event/8000",
        "a=fmtp:102 0-15",
        "a=ptime:20",
    )
    assert media.drop_formats({"101", "102"}) is True
    assert [media.m_line, *media.lines] == ["m=audio 5000 RTP/AVP 0", "a=rtpmap:0 PCMU/8000", "a=ptime:20"]


def test_drop_formats_of_every_format_rejects_the_stream() -> None:
    media = audio("m=audio 5000 RTP/AVP 9 102", "a=rtpmap:9 G722/8000", "a=rtpmap:102 telephone-event/8000")
    assert media.drop_formats({"9", "102"}) is False
    assert [media.m_line, *media.lines] == ["m=audio 0 RTP/AVP 9", "a=rtpmap:9 G722/8000"]
    assert media.rejected is True


@pytest.mark.parametrize(
    ("lines", "expected"),
    [
        (("c=IN IP4 0.0.0.0", "m=audio 4000 RTP/AVP 0", "a=sendonly"), "sendonly"),
        (("c=IN IP4 0.0.0.0", "m=audio 4000 RTP/AVP 0", "a=recvonly"), "zero-address"),
        (("c=IN IP4 10.0.0.1", "m=audio 4000 RTP/AVP 0", "a=recvonly"), None),
        (("c=IN IP6 ::", "m=audio 4000 RTP/AVP 0"), "zero-address"),
        (("c=IN IP4 10.0.0.1", "m=audio 4000 RTP/AVP 0", "c=IN IP4 0.0.0.0"), "zero-address"),
        (("c=IN IP4 0.0.0.0", "m=audio 4000 RTP/AVP 0", "c=IN IP4 10.0.0.1"), None),
        (("c=IN IP4 0.0.0.0", "m=audio 0 RTP/AVP 0", "a=inactive"), None),
        (("c=IN IP4 0.0.0.0", "a=ice-ufrag:x", "m=audio 9 RTP/AVP 0"), None),
        (("c=IN IP4 10.0.0.1", "a=inactive", "m=audio 4000 RTP/AVP 0"), "inactive"),
        (("c=IN IP4 10.0.0.1", "a=inactive", "m=audio 4000 RTP/AVP 0", "a=sendrecv"), None),
    ],
    ids=[
        "sendonly",
        "zero-address-recvonly",
        "recvonly-is-not-hold",
        "zero-ip6",
        "zero-at-media-level",
        "media-level-overrides-zero",
        "rejected-stream",
        "ice-placeholder",
        "session-inactive",
        "media-overrides-session",
    ],
)
def test_hold_kind(lines: tuple[str, ...], expected: str | None) -> None:
    sd = SessionDescription.parse(sdp("v=0", "o=- 1 1 IN IP4 10.0.0.1", *lines))
    assert sd.hold_kind(sd.media[0]) == expected
    assert sd.is_hold(sd.media[0]) is (expected is not None)


def test_is_hold_needs_every_active_stream_held() -> None:
    sd = SessionDescription.parse(sdp(*MULTI_STREAM))
    assert sd.is_hold() is False
    sd.media[1].direction = "sendonly"
    assert sd.is_hold() is True
    sd.media[0].port = 0
    sd.media[1].port = 0
    assert sd.is_hold() is False


def test_attribute_helpers() -> None:
    sd = SessionDescription.parse(sdp(*WEBRTC_OFFER))
    audio = sd.media[0]
    assert sd.attribute_values("msid-semantic") == [" WMS stream1"]
    assert sd.attribute_values("extmap-allow-mixed") == [""]
    assert audio.attribute_values("rtcp-fb") == ["111 transport-cc"]
    assert audio.has_attribute("rtcp-mux") is True
    assert audio.has_attribute("rtcp") is True
    assert audio.has_attribute("rtcp-rsize") is False
    assert audio.remove_attributes("rtcp-mux") == 1
    assert audio.remove_attributes("rtcp-mux") == 0
    assert audio.has_attribute("rtcp") is True


def test_lines_that_do_not_parse_read_as_absent() -> None:
    sd = SessionDescription.parse(
        sdp(
            "v=0",
            "o=- 1 1 IN IP4 10.0.0.1",
            "m=audio 4000 RTP/AVP 0",
            "a=rtcp:port",
            "a=rtcp:5001 IN IP9 x",
            "a=ptime:20.5",
            "a=rtcp:70000",
        )
    )
    media = sd.media[0]
    assert (media.rtcp, media.ptime) == (None, None)
    media.rtcp = Rtcp(port=4001)
    assert media.lines == ["a=rtcp:4001", "a=ptime:20.5"]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("0 PCMU/8000", RtpMap(payload_type="0", encoding="PCMU", clock_rate=8000)),
        ("111 opus/48000/2", RtpMap(payload_type="111", encoding="opus", clock_rate=48000, channels=2)),
        ("96  H264/90000 ", RtpMap(payload_type="96", encoding="H264", clock_rate=90000)),
        ("101 telephone-event", None),
        ("101 telephone-event/8k", None),
        ("101 x/8000/two", None),
        ("101 /8000", None),
        ("101", None),
        ("", None),
    ],
)
def test_rtpmap_parse(value: str, expected: RtpMap | None) -> None:
    assert RtpMap.parse(value) == expected


@pytest.mark.parametrize(
    ("value", "expected", "text"),
    [
        ("53020", Rtcp(port=53020), "53020"),
        (
            "53020 IN IP4 126.16.64.4",
            Rtcp(port=53020, connection=Connection(addrtype="IP4", address="126.16.64.4")),
            "53020 IN IP4 126.16.64.4",
        ),
        (
            "53020 IN IP6 2001:db8::1",
            Rtcp(port=53020, connection=Connection(addrtype="IP6", address="2001:db8::1")),
            "53020 IN IP6 2001:db8::1",
        ),
        ("53020 IN IP4", None, ""),
        ("", None, ""),
    ],
)
def test_rtcp_parse_and_str(value: str, expected: Rtcp | None, text: str) -> None:
    assert Rtcp.parse(value) == expected
    if expected is not None:
        assert str(expected) == text


@pytest.mark.parametrize(
    ("address", "expected"),
    [
        ("192.0.2.1", Connection(addrtype="IP4", address="192.0.2.1")),
        ("2001:db8::1", Connection(addrtype="IP6", address="2001:db8::1")),
        ("::", Connection(addrtype="IP6", address="::")),
    ],
)
def test_connection_for_address(address: str, expected: Connection) -> None:
    assert Connection.for_address(address) == expected


@pytest.mark.parametrize("address", ["example.com", "1.2.3", "", "2001:db8::1/64", "fe80::1%eth0"])
def test_connection_for_address_wants_an_ip_literal(address: str) -> None:
    with pytest.raises(ValueError, match="is not an IP address literal"):
        Connection.for_address(address)


def test_value_types_are_frozen_and_keyword_only() -> None:
    origin = Origin(username="-", sess_id="1", sess_version=1, address="10.0.0.1")
    with pytest.raises(dataclasses.FrozenInstanceError):
        origin.sess_version = 2  # type: ignore[misc]
    assert str(origin) == "- 1 1 IN IP4 10.0.0.1"
    assert STATIC_PAYLOAD_TYPES["18"] == RtpMap(
        payload_type="18", encoding="G729", clock_rate=8000, channels=1
    )
    with pytest.raises(TypeError):
        RtpMap("0", "PCMU", 8000)  # type: ignore[call-arg]


def test_setters_reject_out_of_range_values() -> None:
    media = SessionDescription.parse(sdp(*ASTERISK_OFFER)).media[0]
    with pytest.raises(ValueError, match="port out of range"):
        media.port = 65536
    with pytest.raises(ValueError, match="port count"):
        media.port_count = 0


VALID_HEAD = ("v=0", "o=- 1 1 IN IP4 10.0.0.1", "s=-", "c=IN IP4 10.0.0.1", "t=0 0")


@pytest.mark.parametrize(
    ("data", "reason", "status"),
    [
        (b"", "empty", 400),
        (b"\r\n\r\n", "empty", 400),
        (sdp(*VALID_HEAD[1:]), "does not start with a v= line", 400),
        (sdp("s=-", *VALID_HEAD), "does not start with a v= line", 400),
        (sdp(*VALID_HEAD, "hello"), "not <letter>=<value>", 400),
        (sdp(*VALID_HEAD, "a sendrecv"), "not <letter>=<value>", 400),
        (sdp(*VALID_HEAD, "A=sendrecv"), "not <letter>=<value>", 400),
        (sdp(*VALID_HEAD, "1=x"), "not <letter>=<value>", 400),
        (sdp(*VALID_HEAD, "a"), "not <letter>=<value>", 400),
        (sdp(*VALID_HEAD, " a=sendrecv"), "not <letter>=<value>", 400),
        (sdp("v=0", "", *VALID_HEAD[1:]), "not <letter>=<value>", 400),
        (sdp(*VALID_HEAD, "m=audio abc RTP/AVP 0"), "m= port is not a number", 400),
        (sdp(*VALID_HEAD, "m=audio -1 RTP/AVP 0"), "m= port is not a number", 400),
        (sdp(*VALID_HEAD, "m=audio 65536 RTP/AVP 0"), "m= port is not a number", 400),
        (sdp(*VALID_HEAD) + "m=audio \u00b2000 RTP/AVP 0\r\n".encode(), "m= port is not a number", 400),
        (sdp(*VALID_HEAD, "m=audio 4000/0 RTP/AVP 0"), "port count", 400),
        (sdp(*VALID_HEAD, "m=audio 4000/x RTP/AVP 0"), "port count", 400),
        (sdp(*VALID_HEAD, "m=audio 4000"), "lacks media, port or proto", 400),
        (sdp(*VALID_HEAD, "m="), "lacks media, port or proto", 400),
        (sdp(*VALID_HEAD[:3], "c=IN IP4", "t=0 0"), "c= line does not have three fields", 400),
        (sdp(*VALID_HEAD[:3], "c=IN IP4 1.2.3.4 5", "t=0 0"), "c= line does not have three fields", 400),
        (sdp(*VALID_HEAD, "m=audio 4000 RTP/AVP 0", "c="), "c= line does not have three fields", 400),
        (sdp(*VALID_HEAD[:3], "c=IN IP5 1.2.3.4", "t=0 0"), "not IN IP4 or IN IP6", 488),
        (sdp(*VALID_HEAD[:3], "c=ATM NSAP 47.0091", "t=0 0"), "not IN IP4 or IN IP6", 488),
        (sdp("v=0", "o=- 1 IN IP4 10.0.0.1", "s=-"), "o= line does not have six fields", 400),
        (sdp("v=0", "o=- 1 v2 IN IP4 10.0.0.1", "s=-"), "o= sess-version is not a number", 400),
        (sdp("v=0", "s=-", "t=0 0"), "0 o= lines", 400),
        (sdp(*VALID_HEAD, "o=- 2 2 IN IP4 10.0.0.1"), "2 o= lines", 400),
    ],
)
def test_invalid_sdp_raises(data: bytes, reason: str, status: int) -> None:
    with pytest.raises(SipError, match=reason) as caught:
        SessionDescription.parse(data)
    assert caught.value.status_hint == status


# Lines the model keeps as text: every letter except the four it checks, any attribute name,
# and values of arbitrary bytes (not all UTF-8) without CR or LF.
_values = st.binary(max_size=30).filter(lambda b: b"\r" not in b and b"\n" not in b)
_attribute_names = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-_", min_size=1, max_size=12).filter(
    lambda name: name not in {"rtpmap", "fmtp", "rtcp-fb", "rtcp"}
)
_attribute_lines = st.builds(
    lambda name, value: b"a=" + name.encode() + (b"" if value is None else b":" + value),
    _attribute_names,
    st.none() | _values,
)
_other_lines = st.builds(
    lambda letter, value: letter.encode() + b"=" + value,
    st.sampled_from("bdefghijklnpqrstuwxyz"),
    _values,
)
_unknown_lines = st.lists(_attribute_lines | _other_lines, max_size=8)


def _build(session_extra: list[bytes], audio_extra: list[bytes], video_extra: list[bytes]) -> bytes:
    lines = [b"v=0", b"o=- 7 7 IN IP4 192.0.2.7", b"s=-", *session_extra, b"c=IN IP4 192.0.2.7", b"t=0 0"]
    lines += [b"m=audio 5004 RTP/AVP 0 8 101", b"a=rtpmap:8 PCMA/8000", *audio_extra]
    lines += [b"a=rtpmap:101 telephone-event/8000", b"a=fmtp:101 0-16", b"a=sendrecv"]
    lines += [b"m=video 5006 RTP/AVP 96", *video_extra, b"a=rtpmap:96 H264/90000"]
    return b"".join(line + b"\r\n" for line in lines)


@given(_unknown_lines, _unknown_lines, _unknown_lines)
def test_unknown_lines_survive_round_trip(
    session_extra: list[bytes], audio_extra: list[bytes], video_extra: list[bytes]
) -> None:
    data = _build(session_extra, audio_extra, video_extra)
    sd = SessionDescription.parse(data)
    assert bytes(sd) == data
    assert bytes(SessionDescription.parse(data.replace(b"\r\n", b"\n"))) == data
    assert [m.formats for m in sd.media] == [("0", "8", "101"), ("96",)]


@given(
    _unknown_lines,
    _unknown_lines,
    st.ip_addresses().map(str),
    st.integers(0, 65535),
    st.integers(0, 2**64),
)
def test_unknown_lines_survive_anchoring_edits(
    session_extra: list[bytes],
    audio_extra: list[bytes],
    address: str,
    port: int,
    version: int,
) -> None:
    connection = Connection.for_address(address)
    sd = SessionDescription.parse(_build(session_extra, audio_extra, []))
    sd.origin = dataclasses.replace(
        sd.origin, sess_version=version, addrtype=connection.addrtype, address=address
    )
    sd.set_connection_address(address)
    sd.media[0].port = port
    assert sd.media[0].keep_codecs({"pcmu"}) is True
    sd.media[0].rtcp = Rtcp(port=port)
    data = bytes(sd)
    again = SessionDescription.parse(data)
    assert again.origin.sess_version == version
    assert again.effective_connection(again.media[0]) == connection
    assert (again.media[0].port, again.media[0].formats, again.media[0].rtcp) == (
        port,
        ("0",),
        Rtcp(port=port),
    )
    c_line = f"c=IN {connection.addrtype} {address}".encode()
    assert data == b"".join(
        line + b"\r\n"
        for line in [
            b"v=0",
            f"o=- 7 {version} IN {connection.addrtype} {address}".encode(),
            b"s=-",
            *session_extra,
            c_line,
            b"t=0 0",
            f"m=audio {port} RTP/AVP 0".encode(),
            *audio_extra,
            b"a=sendrecv",
            f"a=rtcp:{port}".encode(),
            b"m=video 5006 RTP/AVP 96",
            b"a=rtpmap:96 H264/90000",
        ]
    )


def test_keeping_codecs_drops_telephone_events_at_a_rate_no_kept_codec_has() -> None:
    # linphone's offer: Opus and speex go, and with them the events at their clock rates.
    sd = SessionDescription.parse(
        sdp(
            "v=0",
            "o=- 1 1 IN IP4 127.0.0.1",
            "s=Talk",
            "c=IN IP4 127.0.0.1",
            "t=0 0",
            "m=audio 7078 RTP/AVP 96 97 0 8 99 100 101",
            "a=rtpmap:96 opus/48000/2",
            "a=fmtp:96 useinbandfec=1",
            "a=rtpmap:97 speex/16000",
            "a=rtpmap:99 telephone-event/48000",
            "a=rtpmap:100 telephone-event/16000",
            "a=rtpmap:101 telephone-event/8000",
            "a=fmtp:101 0-15",
        )
    )
    audio = sd.media[0]
    assert audio.keep_codecs({"pcmu", "pcma", "g722", "telephone-event"}) is True
    assert audio.formats == ("0", "8", "101")
    assert [line for line in audio.lines if line.startswith("a=")] == [
        "a=rtpmap:101 telephone-event/8000",
        "a=fmtp:101 0-15",
    ]


@pytest.mark.parametrize(
    ("formats", "rtpmaps", "kept"),
    [
        # G.722's RTP clock is 8000 Hz (RFC 3551 §4.5.2): its events are at 8000 too.
        ("9 101 102", ("101 telephone-event/8000", "102 telephone-event/16000"), ("9", "101")),
        # Events alone (no codec allowed): left for the caller to judge, as before.
        ("96 101", ("96 opus/48000/2", "101 telephone-event/48000"), ("101",)),
        # No event at the codec's rate: none kept.
        ("0 100", ("100 telephone-event/16000",), ("0",)),
    ],
)
def test_telephone_events_kept_follow_the_kept_codecs_clock_rates(
    formats: str, rtpmaps: tuple[str, ...], kept: tuple[str, ...]
) -> None:
    lines = [f"a=rtpmap:{rtpmap}" for rtpmap in rtpmaps]
    sd = SessionDescription.parse(
        sdp(
            "v=0",
            "o=- 1 1 IN IP4 127.0.0.1",
            "s=-",
            "c=IN IP4 127.0.0.1",
            "t=0 0",
            f"m=audio 7078 RTP/AVP {formats}",
            *lines,
        )
    )
    sd.media[0].keep_codecs({"pcmu", "pcma", "g722", "telephone-event"})
    assert sd.media[0].formats == kept
