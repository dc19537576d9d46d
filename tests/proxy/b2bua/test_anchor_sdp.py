"""SDP anchoring: our address, our port, allowed codecs only, our origin; and where a peer receives RTP."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from proxy.b2bua.call import (
    Dialog,
    anchor_sdp,
    media_format,
    media_remote,
    packet_ms,
    rtcp_remote,
    set_media_remote,
)
from proxy.b2bua.effects import MediaLeg, SetMediaRemote
from proxy.b2bua.settings import Address, Side
from proxy.sip.headers import NameAddress
from proxy.sip.sdp import Origin, SessionDescription
from proxy.sip.uri import parse_uri
from tests.proxy.b2bua.harness import CALLER_OFFER, sdp

CODECS = frozenset({"pcmu", "pcma", "g722", "telephone-event"})
PORT = 20002
SESSION_ID = "4242"


def dialog(*, port: int = PORT, version: int = 1) -> Dialog:
    return Dialog(
        side=Side.CARRIER,
        leg=MediaLeg.B,
        call_id="b-1@callherald",
        local_tag="t1",
        remote_tag=None,
        local_party=NameAddress(uri=parse_uri("sip:201@127.0.0.1")),
        remote_party=NameAddress(uri=parse_uri("sip:4930123456@127.0.0.1")),
        local_seq=1,
        remote_seq=None,
        remote_target=parse_uri("sip:4930123456@127.0.0.1:5080"),
        route_set=[],
        peer=("127.0.0.1", 5080),
        local_contact="<sip:callherald@127.0.0.1:5070>",
        media_port=port,
        sdp_session_id=SESSION_ID,
        sdp_version=version,
    )


def anchor(body: bytes, *, media_address: str = "127.0.0.1", on: Dialog | None = None) -> bytes | None:
    anchored = anchor_sdp(
        SessionDescription.parse(body), dialog=on or dialog(), media_address=media_address, codecs=CODECS
    )
    return None if anchored is None else bytes(anchored)


def offer(
    *media: str,
    session: tuple[str, ...] = ("c=IN IP4 192.0.2.5",),
    attributes: tuple[str, ...] = (),
    origin: str = "peer 9 3",
) -> bytes:
    """An SDP from 192.0.2.5: ``session`` lines before t=, session ``attributes`` after it, then ``media``."""
    return sdp("v=0", f"o={origin} IN IP4 192.0.2.5", "s=-", *session, "t=0 0", *attributes, *media)


OUR_ORIGIN = f"o=callherald {SESSION_ID} 1 IN IP4 127.0.0.1"

ANCHOR_CASES = [
    pytest.param(
        offer(
            "m=audio 4000 RTP/AVP 0 3 8 18 101",
            "a=rtpmap:0 PCMU/8000",
            "a=rtpmap:3 GSM/8000",
            "a=rtpmap:8 PCMA/8000",
            "a=rtpmap:18 G729/8000",
            "a=fmtp:18 annexb=no",
            "a=rtpmap:101 telephone-event/8000",
            "a=fmtp:101 0-16",
            "a=ptime:20",
        ),
        sdp(
            "v=0",
            OUR_ORIGIN,
            "s=-",
            "c=IN IP4 127.0.0.1",
            "t=0 0",
            f"m=audio {PORT} RTP/AVP 0 8 101",
            "a=rtpmap:0 PCMU/8000",
            "a=rtpmap:8 PCMA/8000",
            "a=rtpmap:101 telephone-event/8000",
            "a=fmtp:101 0-16",
            "a=ptime:20",
        ),
        id="codecs-filtered-in-order",
    ),
    pytest.param(
        offer("m=audio 4000 RTP/AVP 9 0", "a=rtpmap:9 G722/8000", "a=rtpmap:0 PCMU/8000"),
        sdp(
            "v=0",
            OUR_ORIGIN,
            "s=-",
            "c=IN IP4 127.0.0.1",
            "t=0 0",
            f"m=audio {PORT} RTP/AVP 9 0",
            "a=rtpmap:9 G722/8000",
            "a=rtpmap:0 PCMU/8000",
        ),
        id="g722-first-kept-first",
    ),
    pytest.param(
        offer("m=audio 4000 RTP/AVP 8 0"),
        sdp("v=0", OUR_ORIGIN, "s=-", "c=IN IP4 127.0.0.1", "t=0 0", f"m=audio {PORT} RTP/AVP 8 0"),
        id="static-payload-types-without-rtpmap",
    ),
    pytest.param(
        offer("m=audio 4000 RTP/AVP 0", "c=IN IP4 192.0.2.77", "a=rtcp:4001 IN IP4 192.0.2.77", session=()),
        sdp("v=0", OUR_ORIGIN, "s=-", "t=0 0", f"m=audio {PORT} RTP/AVP 0", "c=IN IP4 127.0.0.1"),
        id="media-level-connection-and-rtcp-attribute",
    ),
    pytest.param(
        offer("m=audio 4000 RTP/AVP 0", "c=IN IP4 192.0.2.77"),
        sdp(
            "v=0",
            OUR_ORIGIN,
            "s=-",
            "c=IN IP4 127.0.0.1",
            "t=0 0",
            f"m=audio {PORT} RTP/AVP 0",
            "c=IN IP4 127.0.0.1",
        ),
        id="session-and-media-connection",
    ),
    pytest.param(
        offer(
            "m=audio 4000 RTP/AVP 0",
            "m=audio 4002 RTP/AVP 8",
            "m=video 5000 RTP/AVP 96",
            "a=rtpmap:96 H264/90000",
        ),
        sdp(
            "v=0",
            OUR_ORIGIN,
            "s=-",
            "c=IN IP4 127.0.0.1",
            "t=0 0",
            f"m=audio {PORT} RTP/AVP 0",
            "m=audio 0 RTP/AVP 8",
            "m=video 0 RTP/AVP 96",
            "a=rtpmap:96 H264/90000",
        ),
        id="second-audio-and-video-refused",
    ),
    pytest.param(
        offer("m=video 0 RTP/AVP 96", "m=audio 4000 RTP/AVP 0"),
        sdp(
            "v=0",
            OUR_ORIGIN,
            "s=-",
            "c=IN IP4 127.0.0.1",
            "t=0 0",
            "m=video 0 RTP/AVP 96",
            f"m=audio {PORT} RTP/AVP 0",
        ),
        id="rejected-stream-stays-rejected",
    ),
    pytest.param(
        offer("m=audio 4000 RTP/AVP 0", "a=sendonly"),
        sdp(
            "v=0", OUR_ORIGIN, "s=-", "c=IN IP4 127.0.0.1", "t=0 0", f"m=audio {PORT} RTP/AVP 0", "a=sendonly"
        ),
        id="sendonly-hold-passes",
    ),
    pytest.param(
        offer("m=audio 4000 RTP/AVP 0", "a=inactive", session=("c=IN IP4 0.0.0.0",)),
        sdp(
            "v=0", OUR_ORIGIN, "s=-", "c=IN IP4 127.0.0.1", "t=0 0", f"m=audio {PORT} RTP/AVP 0", "a=inactive"
        ),
        id="zero-address-inactive-stays-inactive",
    ),
    pytest.param(
        offer("m=audio 4000 RTP/AVP 0", session=("c=IN IP4 0.0.0.0",)),
        sdp(
            "v=0", OUR_ORIGIN, "s=-", "c=IN IP4 127.0.0.1", "t=0 0", f"m=audio {PORT} RTP/AVP 0", "a=sendonly"
        ),
        id="zero-address-hold-becomes-sendonly",
    ),
    pytest.param(
        offer("m=audio 4000 RTP/AVP 0", session=("c=IN IP4 0.0.0.0",), attributes=("a=sendrecv",)),
        sdp(
            "v=0",
            OUR_ORIGIN,
            "s=-",
            "c=IN IP4 127.0.0.1",
            "t=0 0",
            "a=sendrecv",
            f"m=audio {PORT} RTP/AVP 0",
            "a=sendonly",
        ),
        id="zero-address-hold-with-session-sendrecv",
    ),
    pytest.param(
        offer("m=audio 4000 RTP/AVP 0", attributes=("a=recvonly",)),
        sdp(
            "v=0", OUR_ORIGIN, "s=-", "c=IN IP4 127.0.0.1", "t=0 0", "a=recvonly", f"m=audio {PORT} RTP/AVP 0"
        ),
        id="session-level-direction-kept",
    ),
]


@pytest.mark.parametrize(("body", "expected"), ANCHOR_CASES)
def test_anchor_sdp(body: bytes, expected: bytes) -> None:
    assert anchor(body) == expected


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(
            offer("m=audio 4000 RTP/AVP 18 3", "a=rtpmap:18 G729/8000", "a=rtpmap:3 GSM/8000"),
            id="no-allowed-codec",
        ),
        pytest.param(offer("m=video 5000 RTP/AVP 96", "a=rtpmap:96 H264/90000"), id="no-audio"),
        pytest.param(offer("m=audio 0 RTP/AVP 0"), id="audio-rejected"),
        pytest.param(
            offer(
                "m=audio 4000 RTP/AVP 18 101", "a=rtpmap:18 G729/8000", "a=rtpmap:101 telephone-event/8000"
            ),
            id="telephone-event-is-no-voice-codec",
        ),
    ],
)
def test_nothing_to_anchor_gives_none(body: bytes) -> None:
    assert anchor(body) is None


def test_version_grows_with_every_anchoring_and_the_input_is_untouched() -> None:
    leg = dialog(version=1)
    parsed = SessionDescription.parse(offer("m=audio 4000 RTP/AVP 0"))
    before = bytes(parsed)
    versions = []
    for _ in range(3):
        anchored = anchor_sdp(parsed, dialog=leg, media_address="127.0.0.1", codecs=CODECS)
        assert anchored is not None
        versions.append(anchored.origin.sess_version)
    assert versions == [1, 2, 3]
    assert leg.sdp_version == 4
    assert bytes(parsed) == before


def test_nothing_anchored_leaves_the_version_alone() -> None:
    leg = dialog(version=5)
    assert anchor(offer("m=audio 4000 RTP/AVP 18"), on=leg) is None
    assert leg.sdp_version == 5


def test_ipv6_media_address() -> None:
    result = anchor(offer("m=audio 4000 RTP/AVP 0"), media_address="2001:db8::7")
    assert result is not None
    parsed = SessionDescription.parse(result)
    assert parsed.origin == Origin(
        username="callherald", sess_id=SESSION_ID, sess_version=1, addrtype="IP6", address="2001:db8::7"
    )
    assert b"c=IN IP6 2001:db8::7\r\n" in result


def test_ice_candidates_of_the_peer_are_removed() -> None:
    body = offer(
        "m=audio 4000 RTP/AVP 0",
        "a=ice-ufrag:abcd",
        "a=ice-pwd:0123456789012345678901",
        "a=candidate:1 1 UDP 2130706431 192.0.2.5 4000 typ host",
    )
    result = anchor(body)
    assert result is not None
    assert b"192.0.2.5" not in result.split(b"\r\n", 2)[2]  # past the o= line
    assert b"a=candidate" not in result


def test_nothing_of_the_party_behind_the_sdp_reaches_the_other_party() -> None:
    # As a PBX phone (baresip) answers a re-INVITE: its software, its stream's SSRC and a CNAME
    # naming the extension, a label; session information, URI, e-mail address and phone number.
    body = offer(
        "m=audio 4000 RTP/AVP 8 101",
        "i=desk phone of extension 201",
        "a=rtpmap:8 PCMA/8000",
        "a=rtpmap:101 telephone-event/8000",
        "a=fmtp:101 0-15",
        "a=ptime:20",
        "a=label:1",
        "a=ssrc:709712656 cname:sip:0201234567@127.0.0.1",
        "a=ssrc-group:FID 709712656 709712657",
        "a=msid:stream-201 track-201",
        "a=rtcp-fb:* nack",
        "a=sendrecv",
        session=(
            "i=sales desk",
            "u=https://intranet.example/ext/201",
            "e=agent.201@business.example",
            "p=+31 20 123 4567",
            "c=IN IP4 192.0.2.5",
        ),
        attributes=("a=tool:baresip 1.0.0", "a=msid-semantic: WMS stream-201", "a=recvonly"),
    )
    assert anchor(body) == sdp(
        "v=0",
        OUR_ORIGIN,
        "s=-",
        "c=IN IP4 127.0.0.1",
        "t=0 0",
        "a=recvonly",
        f"m=audio {PORT} RTP/AVP 8 101",
        "a=rtpmap:8 PCMA/8000",
        "a=rtpmap:101 telephone-event/8000",
        "a=fmtp:101 0-15",
        "a=ptime:20",
        "a=sendrecv",
    )


def test_what_callherald_does_not_implement_is_left_out() -> None:
    # A WebRTC-style AVPF offer: RTCP feedback, which callherald's prompts answer none of (RFC 4585
    # §4.2); BUNDLE and its mids (RFC 8843), as callherald relays one stream on a port of its own;
    # bandwidth for media callherald cut down to the codecs it keeps. The AVPF profile stays.
    body = offer(
        "m=audio 4000 RTP/AVPF 111 0 101",
        "b=AS:40",
        "b=TIAS:32000",
        "a=mid:0",
        "a=rtpmap:111 opus/48000/2",
        "a=rtcp-fb:111 transport-cc",
        "a=rtpmap:0 PCMU/8000",
        "a=rtcp-fb:* nack",
        "a=rtcp-fb:0 nack pli",
        "a=rtpmap:101 telephone-event/8000",
        "a=rtcp-mux",
        "m=video 4002 RTP/AVPF 96",
        "b=AS:512",
        "a=mid:1",
        "a=rtpmap:96 VP8/90000",
        "a=rtcp-fb:96 ccm fir",
        session=("c=IN IP4 192.0.2.5", "b=CT:600"),
        attributes=("a=group:BUNDLE 0 1",),
    )
    assert anchor(body) == sdp(
        "v=0",
        OUR_ORIGIN,
        "s=-",
        "c=IN IP4 127.0.0.1",
        "t=0 0",
        f"m=audio {PORT} RTP/AVPF 0 101",
        "a=rtpmap:0 PCMU/8000",
        "a=rtpmap:101 telephone-event/8000",
        "a=rtcp-mux",
        "m=video 0 RTP/AVPF 96",
        "a=rtpmap:96 VP8/90000",
    )


@given(
    st.lists(
        st.sampled_from(["PCMU", "PCMA", "G722", "GSM", "G729", "opus", "telephone-event", "iLBC"]),
        min_size=1,
        max_size=8,
        unique=True,
    )
)
def test_kept_codecs_are_the_allowed_ones_in_offer_order(names: list[str]) -> None:
    payload_types = [str(96 + index) for index in range(len(names))]
    body = offer(
        f"m=audio 4000 RTP/AVP {' '.join(payload_types)}",
        *(f"a=rtpmap:{pt} {name}/8000" for pt, name in zip(payload_types, names, strict=True)),
    )
    allowed = [pt for pt, name in zip(payload_types, names, strict=True) if name.lower() in CODECS]
    voice = [name for name in names if name.lower() in CODECS and name != "telephone-event"]
    result = anchor(body)
    if not voice:  # nothing left but DTMF events: no call can be made of that
        assert result is None
        return
    assert result is not None
    (media,) = SessionDescription.parse(result).media
    assert media.port == PORT
    assert list(media.formats) == allowed
    assert sorted(media.rtpmaps) == sorted(allowed)


MEDIA_REMOTE_CASES: list[tuple[bytes, Address | None]] = [
    (offer("m=audio 4000 RTP/AVP 0"), ("192.0.2.5", 4000)),
    (offer("m=audio 4000 RTP/AVP 0", "c=IN IP4 192.0.2.77"), ("192.0.2.77", 4000)),
    (offer("m=audio 4000 RTP/AVP 0", "c=IN IP4 192.0.2.77", session=()), ("192.0.2.77", 4000)),
    (offer("m=audio 4000 RTP/AVP 0", session=("c=IN IP4 0.0.0.0",)), None),
    (offer("m=audio 4000 RTP/AVP 0", "c=IN IP6 ::", session=()), None),
    (offer("m=audio 0 RTP/AVP 0", "m=audio 4002 RTP/AVP 8"), ("192.0.2.5", 4002)),
    (offer("m=video 5000 RTP/AVP 96", "m=audio 4000 RTP/AVP 0"), ("192.0.2.5", 4000)),
    (offer("m=video 5000 RTP/AVP 96"), None),
    (offer("m=audio 4000 RTP/AVP 0", session=()), None),
    (offer("m=audio 4000 RTP/AVP 0", "a=sendonly"), ("192.0.2.5", 4000)),
    (offer("m=audio 4000 RTP/AVP 0", session=("c=IN IP6 2001:db8::5",)), ("2001:db8::5", 4000)),
]


@pytest.mark.parametrize(
    ("body", "expected"),
    MEDIA_REMOTE_CASES,
    ids=[
        "session-connection",
        "media-connection-wins",
        "media-connection-only",
        "zero-address-hold",
        "zero-ipv6-hold",
        "first-audio-rejected",
        "video-first",
        "no-audio",
        "no-connection",
        "sendonly-still-has-an-address",
        "ipv6",
    ],
)
def test_media_remote(body: bytes, expected: Address | None) -> None:
    assert media_remote(SessionDescription.parse(body)) == expected


RTCP_REMOTE_CASES: list[tuple[bytes, Address | None]] = [
    (offer("m=audio 4000 RTP/AVP 0"), None),  # RTP port + 1 (RFC 3550 §11)
    (offer("m=audio 4000 RTP/AVP 0", "a=rtcp:4005"), ("192.0.2.5", 4005)),
    (offer("m=audio 4000 RTP/AVP 0", "c=IN IP4 192.0.2.77", "a=rtcp:4005"), ("192.0.2.77", 4005)),
    (offer("m=audio 4000 RTP/AVP 0", "a=rtcp:4005 IN IP4 192.0.2.9"), ("192.0.2.9", 4005)),
    (offer("m=audio 4000 RTP/AVP 0", "a=rtcp:4005 IN IP6 2001:db8::9"), ("2001:db8::9", 4005)),
    (offer("m=audio 4000 RTP/AVP 0", "a=rtcp:4000"), ("192.0.2.5", 4000)),
    (offer("m=audio 4000 RTP/AVP 0", "a=rtcp:9 IN IP4 0.0.0.0"), None),
    (offer("m=audio 4000 RTP/AVP 0", "a=rtcp:0"), None),
    (offer("m=audio 4000 RTP/AVP 0", "a=rtcp:port"), None),
    (offer("m=audio 4000 RTP/AVP 0", "a=rtcp:4005", session=("c=IN IP4 0.0.0.0",)), None),
    (
        offer("m=audio 0 RTP/AVP 0", "a=rtcp:4005", "m=audio 4002 RTP/AVP 8", "a=rtcp:4009"),
        ("192.0.2.5", 4009),
    ),
    (offer("m=video 5000 RTP/AVP 96", "a=rtcp:5005", "m=audio 4000 RTP/AVP 0"), None),
]


@pytest.mark.parametrize(
    ("body", "expected"),
    RTCP_REMOTE_CASES,
    ids=[
        "none",
        "port",
        "port-at-media-connection",
        "port-and-address",
        "port-and-ipv6-address",
        "the-rtp-port",
        "unspecified-address",
        "port-zero",
        "malformed",
        "zero-address-hold",
        "first-audio-rejected",
        "video-first",
    ],
)
def test_rtcp_remote(body: bytes, expected: Address | None) -> None:
    # RFC 3605 §2.1: the port, and the address when it is not the stream's.
    assert rtcp_remote(SessionDescription.parse(body)) == expected


def test_the_relay_is_told_where_a_party_receives_rtcp_or_that_it_multiplexes_it() -> None:
    with_port = SessionDescription.parse(offer("m=audio 4000 RTP/AVP 0", "a=rtcp:4005 IN IP4 192.0.2.9"))
    assert set_media_remote("c1", MediaLeg.A, with_port) == SetMediaRemote(
        call_ref="c1", leg=MediaLeg.A, remote=("192.0.2.5", 4000), rtcp=("192.0.2.9", 4005)
    )
    # RFC 5761 §5.1.1: RTCP shares the RTP port; an a=rtcp beside it is passed on, for the relay to pass over.
    muxed = SessionDescription.parse(offer("m=audio 4000 RTP/AVP 0", "a=rtcp:4000", "a=rtcp-mux"))
    assert set_media_remote("c1", MediaLeg.B, muxed) == SetMediaRemote(
        call_ref="c1", leg=MediaLeg.B, remote=("192.0.2.5", 4000), rtcp=("192.0.2.5", 4000), rtcp_mux=True
    )
    plain = set_media_remote("c1", MediaLeg.A, SessionDescription.parse(offer("m=audio 4000 RTP/AVP 0")))
    assert (plain.rtcp, plain.rtcp_mux) == (None, False)


def test_the_negotiated_format_lists_every_recordable_codec_on_a_dynamic_type() -> None:
    # RFC 3551 §6 lets a static codec ride a dynamic type; RFC 3264 §8.3.2 keeps a type's codec
    # for the session, so a later codec change uses one of these.
    offer = SessionDescription.parse(
        b"v=0\r\no=- 1 1 IN IP4 192.0.2.5\r\ns=-\r\nc=IN IP4 192.0.2.5\r\nt=0 0\r\n"
        b"m=audio 4000 RTP/AVP 96 97 98 9 99 101\r\n"
        b"a=rtpmap:96 PCMU/8000\r\na=rtpmap:97 PCMA/8000\r\na=rtpmap:98 G722/8000\r\n"
        b"a=rtpmap:99 PCMU/16000\r\na=rtpmap:101 telephone-event/8000\r\n"
    )
    found = media_format(offer)
    assert found is not None
    assert (found.codec, found.payload_type, found.event_payload_type) == ("pcmu", 96, 101)
    assert found.aliases == ((96, 0), (97, 8), (98, 9))  # not 99: no such clock rate (RFC 3551 §4.5)
    static = media_format(SessionDescription.parse(CALLER_OFFER))
    assert static is not None
    assert static.aliases == ()


def test_the_relay_is_told_each_sdp_s_address_and_dynamic_recordable_types() -> None:
    # A re-INVITE may add a type no earlier SDP of the call listed (RFC 3264 §8.3.2) and the
    # parties switch to it: the recording must learn it from that SDP.
    reoffer = SessionDescription.parse(
        b"v=0\r\no=- 1 2 IN IP4 192.0.2.5\r\ns=-\r\nc=IN IP4 192.0.2.5\r\nt=0 0\r\n"
        b"m=audio 4000 RTP/AVP 97 101\r\na=rtpmap:97 PCMA/8000\r\na=rtpmap:101 telephone-event/8000\r\n"
    )
    assert set_media_remote("c1", MediaLeg.B, reoffer) == SetMediaRemote(
        call_ref="c1", leg=MediaLeg.B, remote=("192.0.2.5", 4000), aliases=((97, 8),)
    )
    plain = set_media_remote("c1", MediaLeg.A, SessionDescription.parse(CALLER_OFFER), new_party=True)
    assert plain.new_party
    assert plain.aliases == ()
    assert plain.remote == media_remote(SessionDescription.parse(CALLER_OFFER))
    assert set_media_remote("c1", MediaLeg.A, None) == SetMediaRemote(
        call_ref="c1", leg=MediaLeg.A, remote=None
    )


def _with_ptime(*attributes: str) -> SessionDescription:
    return SessionDescription.parse(
        sdp(
            "v=0",
            "o=- 1 1 IN IP4 192.0.2.5",
            "s=-",
            "c=IN IP4 192.0.2.5",
            "t=0 0",
            "m=audio 4000 RTP/AVP 9 0 101",
            "a=rtpmap:101 telephone-event/8000",
            *attributes,
        )
    )


@pytest.mark.parametrize(
    ("attributes", "expected"),
    [
        pytest.param((), 20, id="none-asked-rfc3551-default"),
        pytest.param(("a=ptime:20",), 20, id="20"),
        pytest.param(("a=ptime:30",), 30, id="30"),
        pytest.param(("a=ptime:10",), 10, id="10"),
        pytest.param(("a=ptime:60",), 60, id="60"),
        pytest.param(("a=ptime:200",), 200, id="200-the-longest-rfc3551-4.2"),
        pytest.param(("a=ptime:240",), 20, id="beyond-200"),
        pytest.param(("a=ptime:25",), 20, id="not-a-10ms-step"),
        pytest.param(("a=ptime:0",), 20, id="zero"),
        pytest.param(("a=ptime:30.5",), 20, id="not-whole"),
        pytest.param(("a=ptime:abc",), 20, id="not-a-number"),
        pytest.param(("a=ptime:40", "a=maxptime:40"), 40, id="up-to-maxptime"),
        pytest.param(("a=ptime:60", "a=maxptime:40"), 20, id="above-maxptime"),
        pytest.param(("a=maxptime:10",), 10, id="maxptime-below-the-default"),
        pytest.param(("a=ptime:30", "a=maxptime:15"), 10, id="maxptime-15-allows-10"),
        pytest.param(("a=maxptime:5",), 20, id="maxptime-below-any-step-ignored"),
    ],
)
def test_the_packet_duration_a_party_asks_for(attributes: tuple[str, ...], expected: int) -> None:
    # RFC 4566 §6: a=ptime is the duration of media the party wants in a packet it receives,
    # a=maxptime the most it can take; prompts are sent in it when they can be (10 ms steps).
    offer = _with_ptime(*attributes)
    assert packet_ms(offer) == expected
    found = media_format(offer)
    assert found is not None
    assert (found.codec, found.packet_ms) == ("g722", expected)


def test_the_packet_duration_is_not_part_of_the_codec_and_defaults_to_20_ms() -> None:
    # A re-INVITE that keeps the codec but asks for other packets still keeps the codec.
    assert media_format(_with_ptime("a=ptime:30")) == media_format(_with_ptime())
    assert packet_ms(None) == 20
    assert packet_ms(SessionDescription.parse(sdp("v=0", "o=- 1 1 IN IP4 192.0.2.5", "s=-", "t=0 0"))) == 20
