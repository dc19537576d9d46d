"""Which sources a side takes requests from (``B2buaSettings.is_allowed``)."""

from __future__ import annotations

import dataclasses
import ipaddress

import pytest

from proxy.b2bua.core import B2bua
from proxy.b2bua.settings import Side
from tests.proxy.b2bua.harness import make_settings


@pytest.mark.parametrize(
    ("host", "allowed"),
    [
        ("192.0.2.7", True),
        ("::ffff:192.0.2.7", True),  # heard on a dual-stack listener (RFC 4291 §2.5.5.2)
        ("::ffff:198.51.100.7", False),
        ("198.51.100.7", False),
        ("2001:db8::7", True),
        ("2001:db8:1::7", False),
        ("::192.0.2.7", False),  # IPv4-compatible (deprecated), not mapped
        ("carrier.example", False),
    ],
)
def test_ipv4_peers_heard_as_mapped_addresses_match_their_ipv4_networks(host: str, allowed: bool) -> None:
    settings = make_settings(
        pbx_networks=(ipaddress.ip_network("192.0.2.0/24"), ipaddress.ip_network("2001:db8::/48"))
    )
    assert settings.is_allowed(Side.PBX, host) is allowed


def test_a_mapped_carrier_address_is_told_apart_from_the_pbx_on_a_shared_listener() -> None:
    carrier = dataclasses.replace(
        make_settings().carrier, allowed_networks=(ipaddress.ip_network("203.0.113.0/24"),)
    )
    settings = make_settings(pbx_networks=(ipaddress.ip_network("192.0.2.0/24"),), carrier=carrier)
    core = B2bua(settings)
    assert core.side_of("::ffff:203.0.113.9") is Side.CARRIER
    assert core.accepts_source("::ffff:203.0.113.9", Side.CARRIER)
    assert not core.accepts_source("::ffff:203.0.113.9", Side.PBX)
