"""Answers in the other G.711 law than their offer's (against RFC 3264 §6.1): when callherald
takes them, translated, and how the rest of the call sees them; and the other law offered too, to
a callee that refused one alone."""

from __future__ import annotations

import pytest

from proxy.b2bua.call import (
    call_answer_in_party_law,
    offer_with_other_law,
    party_offer_in_call_law,
    translated_answer,
    without_format,
)
from proxy.b2bua.effects import LawTranslation
from proxy.sip.sdp import SessionDescription
from tests.proxy.b2bua.harness import sdp

CODECS = frozenset({"pcmu", "pcma", "g722", "telephone-event"})


def description(*media: str) -> SessionDescription:
    return SessionDescription.parse(
        sdp("v=0", "o=x 1 1 IN IP4 192.0.2.5", "s=-", "c=IN IP4 192.0.2.5", "t=0 0", *media)
    )


def audio_lines(session: SessionDescription) -> list[str]:
    lines = bytes(session).decode().split("\r\n")
    return [line for line in lines[lines.index(next(x for x in lines if x.startswith("m="))) :] if line]


PCMU_OFFER = ("m=audio 4000 RTP/AVP 0 101", "a=rtpmap:0 PCMU/8000", "a=rtpmap:101 telephone-event/8000")


def test_a_pcma_answer_to_a_pcmu_offer_becomes_the_offers_pcmu_and_is_translated() -> None:
    answer = description(
        "m=audio 5000 RTP/AVP 8 101", "a=rtpmap:8 PCMA/8000", "a=rtpmap:101 telephone-event/8000"
    )
    translated, translation = translated_answer(answer, description(*PCMU_OFFER), CODECS)
    assert translation == LawTranslation(
        party_payload_type=8, party_codec="pcma", call_payload_type=0, call_codec="pcmu"
    )
    assert audio_lines(translated) == [
        "m=audio 5000 RTP/AVP 0 101",
        "a=rtpmap:101 telephone-event/8000",
        "a=rtpmap:0 PCMU/8000",
    ]
    assert audio_lines(answer)[0] == "m=audio 5000 RTP/AVP 8 101"  # the answer itself is left alone


def test_the_offers_dynamic_type_is_taken_with_its_rtpmap() -> None:
    # SIPp's uas answers static PCMU to an offer that put PCMA on 96.
    offer = description("m=audio 4000 RTP/AVP 96", "a=rtpmap:96 PCMA/8000")
    answer = description("m=audio 5000 RTP/AVP 0", "a=rtpmap:0 PCMU/8000", "a=fmtp:0 x=1")
    translated, translation = translated_answer(answer, offer, CODECS)
    assert translation == LawTranslation(
        party_payload_type=0, party_codec="pcmu", call_payload_type=96, call_codec="pcma"
    )
    assert audio_lines(translated) == ["m=audio 5000 RTP/AVP 96", "a=rtpmap:96 PCMA/8000"]


@pytest.mark.parametrize(
    ("offer", "answer", "codecs"),
    [
        # It keeps a voice codec of the offer: nothing to translate.
        (("m=audio 4000 RTP/AVP 0 8",), ("m=audio 5000 RTP/AVP 8",), CODECS),
        (PCMU_OFFER, ("m=audio 5000 RTP/AVP 0 8",), CODECS),
        # Not G.711: G.722 and G.729 are not translated.
        (PCMU_OFFER, ("m=audio 5000 RTP/AVP 9",), CODECS),
        (PCMU_OFFER, ("m=audio 5000 RTP/AVP 18",), CODECS),
        # A law that is not allowed here, on either side.
        (PCMU_OFFER, ("m=audio 5000 RTP/AVP 8",), frozenset({"pcmu", "telephone-event"})),
        # Encrypted payloads (RFC 3711) cannot be translated.
        (("m=audio 4000 RTP/SAVP 0",), ("m=audio 5000 RTP/SAVP 8",), CODECS),
        # A rejected stream, or an offer with no G.711 at all.
        (PCMU_OFFER, ("m=audio 0 RTP/AVP 8",), CODECS),
        (("m=audio 4000 RTP/AVP 9",), ("m=audio 5000 RTP/AVP 0",), CODECS),
        # PCMA at another rate is not G.711.
        (PCMU_OFFER, ("m=audio 5000 RTP/AVP 97", "a=rtpmap:97 PCMA/16000"), CODECS),
    ],
    ids=["within", "both-laws", "g722", "g729", "not-allowed", "srtp", "rejected", "no-g711-offered", "16k"],
)
def test_other_answers_come_back_as_they_are(
    offer: tuple[str, ...], answer: tuple[str, ...], codecs: frozenset[str]
) -> None:
    answered = description(*answer)
    translated, translation = translated_answer(answered, description(*offer), codecs)
    assert translation is None
    assert translated is answered


def test_the_first_active_audio_stream_is_the_one_translated() -> None:
    offer = description("m=video 4002 RTP/AVP 96", "m=audio 4000 RTP/AVP 8")
    answer = description("m=video 0 RTP/AVP 96", "m=audio 5000 RTP/AVP 0")
    translated, translation = translated_answer(answer, offer, CODECS)
    assert translation is not None
    assert (translation.party_codec, translation.call_codec) == ("pcmu", "pcma")
    assert audio_lines(translated)[:2] == ["m=video 0 RTP/AVP 96", "m=audio 5000 RTP/AVP 8"]


# The other law offered too, after a refusal of one law alone (``offer_with_other_law``).


@pytest.mark.parametrize(
    ("media", "added", "expected"),
    [
        (PCMU_OFFER, "8", ["m=audio 4000 RTP/AVP 0 8 101", *PCMU_OFFER[1:], "a=rtpmap:8 PCMA/8000"]),
        (
            ("m=audio 4000 RTP/AVP 9 8", "a=rtpmap:9 G722/8000"),
            "0",
            ["m=audio 4000 RTP/AVP 9 8 0", "a=rtpmap:9 G722/8000", "a=rtpmap:0 PCMU/8000"],
        ),
        (
            ("m=audio 4000 RTP/AVP 96", "a=rtpmap:96 PCMU/8000"),
            "8",
            ["m=audio 4000 RTP/AVP 96 8", "a=rtpmap:96 PCMU/8000", "a=rtpmap:8 PCMA/8000"],
        ),
    ],
    ids=["pcmu-adds-pcma-after-it", "pcma-after-g722-adds-pcmu", "dynamic-pcmu-adds-static-pcma"],
)
def test_an_offer_of_one_law_gets_the_other_right_after_it(
    media: tuple[str, ...], added: str, expected: list[str]
) -> None:
    offer = description(*media)
    extended, added_type = offer_with_other_law(offer, CODECS)
    assert added_type == added
    assert audio_lines(extended) == expected
    assert audio_lines(offer) == list(media)  # the offer itself is left alone
    assert audio_lines(without_format(extended, added)) == list(media)


@pytest.mark.parametrize(
    ("media", "codecs"),
    [
        (("m=audio 4000 RTP/AVP 0 8",), CODECS),  # both laws already
        (("m=audio 4000 RTP/AVP 9", "a=rtpmap:9 G722/8000"), CODECS),  # no G.711 law
        (PCMU_OFFER, frozenset({"pcmu", "telephone-event"})),  # the other law not allowed here
        (("m=audio 4000 RTP/SAVP 0",), CODECS),  # SRTP: encrypted payloads are not translated
        (("m=audio 4000 RTP/AVP 0 8", "a=rtpmap:8 G729/8000"), CODECS),  # 8 names another codec
    ],
    ids=["both-laws", "no-g711", "not-allowed", "srtp", "static-type-taken"],
)
def test_an_offer_the_other_law_cannot_help_is_left_as_it_is(
    media: tuple[str, ...], codecs: frozenset[str]
) -> None:
    offer = description(*media)
    extended, added = offer_with_other_law(offer, codecs)
    assert (extended, added) == (offer, None)


def test_a_format_is_not_taken_out_when_no_voice_codec_would_be_left() -> None:
    # The answer of a party that took only the added law keeps it (it is then translated).
    answer = description(
        "m=audio 5000 RTP/AVP 8 101", "a=rtpmap:8 PCMA/8000", "a=rtpmap:101 telephone-event/8000"
    )
    assert without_format(answer, "8") is answer
    assert without_format(answer, "0") is answer


PCMA_PARTY = LawTranslation(party_payload_type=8, party_codec="pcma", call_payload_type=0, call_codec="pcmu")


def test_a_translated_party_s_offer_of_its_law_alone_goes_out_in_the_call_s_law_and_back() -> None:
    offer = description(
        "m=audio 5000 RTP/AVP 8 101",
        "a=rtpmap:8 PCMA/8000",
        "a=rtpmap:101 telephone-event/8000",
        "a=sendonly",
    )
    relayed = party_offer_in_call_law(offer, PCMA_PARTY)
    assert audio_lines(relayed) == [
        "m=audio 5000 RTP/AVP 0 101",
        "a=rtpmap:101 telephone-event/8000",
        "a=sendonly",
        "a=rtpmap:0 PCMU/8000",
    ]
    answer = description("m=audio 4000 RTP/AVP 0 101", "a=rtpmap:101 telephone-event/8000", "a=recvonly")
    assert audio_lines(call_answer_in_party_law(answer, PCMA_PARTY)) == [
        "m=audio 4000 RTP/AVP 8 101",
        "a=rtpmap:101 telephone-event/8000",
        "a=recvonly",
    ]


def test_a_call_law_on_a_dynamic_type_goes_out_with_its_rtpmap() -> None:
    # The caller put PCMA on 96; the translated callee talks static PCMU, written without rtpmap.
    translation = LawTranslation(
        party_payload_type=0, party_codec="pcmu", call_payload_type=96, call_codec="pcma"
    )
    relayed = party_offer_in_call_law(description("m=audio 5000 RTP/AVP 0"), translation)
    assert audio_lines(relayed) == ["m=audio 5000 RTP/AVP 96", "a=rtpmap:96 PCMA/8000"]


@pytest.mark.parametrize(
    "media",
    [
        # The call's law is offered already: the other party may take it as it is.
        ("m=audio 5000 RTP/AVP 8 0", "a=rtpmap:8 PCMA/8000", "a=rtpmap:0 PCMU/8000"),
        ("m=audio 5000 RTP/AVP 9", "a=rtpmap:9 G722/8000"),  # the party's law is not offered
        ("m=audio 5000 RTP/SAVP 8", "a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:" + "A" * 40),  # encrypted
        ("m=audio 5000 RTP/AVP 8", "a=rtpmap:8 G726-32/8000"),  # the type names another codec
    ],
    ids=["call-law-offered", "g722", "srtp", "type-renamed"],
)
def test_other_offers_of_a_translated_party_go_out_as_they_are(media: tuple[str, ...]) -> None:
    offer = description(*media)
    assert party_offer_in_call_law(offer, PCMA_PARTY) is offer
