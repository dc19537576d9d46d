"""What the B2BUA core needs to know about its surroundings, as plain frozen values.

The composition root builds these from the YAML configuration; the core never reads files.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from enum import StrEnum

__all__ = [
    "Address",
    "B2buaSettings",
    "CarrierSettings",
    "Network",
    "RegistrationSettings",
    "Side",
    "TrunkAccount",
]

Address = tuple[str, int]
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class Side(StrEnum):
    """The two faces of callherald: towards the PBX and towards the carrier."""

    PBX = "pbx"
    CARRIER = "carrier"

    @property
    def other(self) -> Side:
        return Side.CARRIER if self is Side.PBX else Side.PBX


@dataclass(frozen=True, slots=True, kw_only=True)
class TrunkAccount:
    """Credentials a PBX uses to REGISTER to callherald as if it were the carrier."""

    username: str
    password: str
    realm: str


@dataclass(frozen=True, slots=True, kw_only=True)
class RegistrationSettings:
    """Registration of callherald with the carrier (RFC 3261 §10)."""

    interval_s: int = 3600
    retry_min_s: int = 30
    retry_max_s: int = 600


@dataclass(frozen=True, slots=True, kw_only=True)
class CarrierSettings:
    """The carrier trunk: where requests go and how callherald authenticates."""

    host: str
    port: int = 5060
    next_hop: Address
    allowed_networks: tuple[Network, ...]
    username: str | None = None
    auth_username: str | None = None
    password: str | None = None
    realm: str | None = None
    registration: RegistrationSettings | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class B2buaSettings:
    """Everything the call logic decides with: addresses, peers, routing and limits."""

    local_address: dict[Side, Address]
    transport: dict[Side, str]
    media_address: str
    rtp_port_min: int
    rtp_port_max: int
    pbx_networks: tuple[Network, ...]
    pbx_default_target: Address
    trunk_accounts: tuple[TrunkAccount, ...]
    carrier: CarrierSettings
    inbound_routes: dict[str, Address]
    fallback_inbound_target: Address | None = None
    max_concurrent_calls: int = 500
    # New calls accepted per second (0: no limit) and the event-loop lag that sheds new calls
    # while it lasts (0: never); ``proxy.b2bua.admission``.
    max_new_calls_per_s: float = 0.0
    overload_lag_s: float = 0.0
    rtp_inactivity_timeout_s: float = 60.0
    ring_timeout_s: float = 180.0
    # How long an outside party may hold the call before it heard the notice and questions; then
    # the notice counts as not played (the policy's ``on_failure``).
    notice_hold_timeout_s: float = 30.0
    user_agent: str = "callherald"
    codecs: frozenset[str] = frozenset({"pcmu", "pcma", "g722", "telephone-event"})
    registrar_realm: str = "callherald"
    registrar_max_expires_s: int = 3600
    registrar_min_expires_s: int = 60

    def is_allowed(self, side: Side, host: str) -> bool:
        """True when ``host`` may send requests on ``side`` (configured peer networks)."""
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            return False
        networks = self.pbx_networks if side is Side.PBX else self.carrier.allowed_networks
        # A dual-stack (``::``) listener hears IPv4 peers as IPv4-mapped addresses (RFC 4291
        # §2.5.5.2): ``::ffff:192.0.2.7`` is the peer 192.0.2.7 of an IPv4 network.
        mapped = address.ipv4_mapped if isinstance(address, ipaddress.IPv6Address) else None
        return any(address in network or (mapped is not None and mapped in network) for network in networks)
