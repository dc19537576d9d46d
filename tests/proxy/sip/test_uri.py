"""SIP URI equivalence (RFC 3261 §19.1.4), on the standard's own examples and a few more."""

from __future__ import annotations

import pytest

from proxy.sip.uri import SipUri, parse_uri, same_sip_uri


def sip(text: str) -> SipUri:
    uri = parse_uri(text)
    assert isinstance(uri, SipUri)
    return uri


EQUIVALENT = [
    # §19.1.4's own examples
    ("sip:%61lice@atlanta.com;transport=TCP", "sip:alice@AtLanTa.CoM;Transport=tcp"),
    ("sip:carol@chicago.com", "sip:carol@chicago.com;newparam=5"),
    ("sip:carol@chicago.com", "sip:carol@chicago.com;security=on"),
    ("sip:carol@chicago.com;newparam=5", "sip:carol@chicago.com;security=on"),
    (
        "sip:biloxi.com;transport=tcp;method=REGISTER?to=sip:bob%40biloxi.com",
        "sip:biloxi.com;method=REGISTER;transport=tcp?to=sip:bob%40biloxi.com",
    ),
    (
        "sip:alice@atlanta.com?subject=project%20x&priority=urgent",
        "sip:alice@atlanta.com?priority=urgent&subject=project%20x",
    ),
    # an asserted identity as carriers write it
    ("sip:+31612345678@carrier.example;user=phone", "sip:+31612345678@CARRIER.example;USER=phone"),
]

DIFFERENT = [
    # §19.1.4's own examples
    ("SIP:ALICE@AtLanTa.CoM;Transport=udp", "sip:alice@AtLanTa.CoM;Transport=UDP"),  # user case
    ("sip:bob@biloxi.com", "sip:bob@biloxi.com:5060"),  # a default port written out
    ("sip:bob@biloxi.com", "sip:bob@biloxi.com;transport=udp;user=phone"),  # user= in one only
    ("sip:bob@biloxi.com", "sip:bob@biloxi.com;maddr=239.255.255.1"),
    ("sip:carol@chicago.com", "sip:carol@chicago.com?Subject=next%20meeting"),
    ("sip:bob@phone21.boxesbybob.com", "sip:bob@192.0.2.4"),
    # more
    ("sip:alice@atlanta.com", "sips:alice@atlanta.com"),
    ("sip:alice@atlanta.com;transport=tcp", "sip:alice@atlanta.com;transport=udp"),
    ("sip:+31612345678@carrier.example;user=phone", "sip:+31612345679@carrier.example;user=phone"),
    ("sip:alice:secret@atlanta.com", "sip:alice:Secret@atlanta.com"),
]


@pytest.mark.parametrize(("a", "b"), EQUIVALENT)
def test_equivalent_sip_uris_are_the_same(a: str, b: str) -> None:
    assert same_sip_uri(sip(a), sip(b))
    assert same_sip_uri(sip(b), sip(a))


@pytest.mark.parametrize(("a", "b"), DIFFERENT)
def test_different_sip_uris_are_not_the_same(a: str, b: str) -> None:
    assert not same_sip_uri(sip(a), sip(b))
    assert not same_sip_uri(sip(b), sip(a))
