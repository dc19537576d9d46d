"""Typed, frozen configuration objects.

Every attribute below is one YAML key of the same name; the attribute docstrings are the
reference for what each key means, its unit and its default. Keys without a default are
required. Objects are built only by `config.loader` (or `config.defaults`), which validates every
value first, so code that receives a `Config` can trust it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from ipaddress import IPv4Network, IPv6Network
from pathlib import Path
from typing import TypeAlias

__all__ = [
    "DEFAULT_MAX_CONCURRENT_CALLS",
    "DEFAULT_MAX_MESSAGE_BYTES",
    "DEFAULT_REGISTRATION_INTERVAL_S",
    "DEFAULT_REGISTRATION_RETRY_MAX_S",
    "DEFAULT_REGISTRATION_RETRY_MIN_S",
    "DEFAULT_RTP_INACTIVITY_TIMEOUT_S",
    "DEFAULT_SIP_PORT",
    "Carrier",
    "CarrierCredentials",
    "Config",
    "HostPort",
    "InboundRoute",
    "Limits",
    "Listen",
    "ListenAddress",
    "LogLevel",
    "Logging",
    "Media",
    "Network",
    "Pbx",
    "PbxPeer",
    "Registration",
    "Routing",
    "Secret",
    "SipTarget",
    "Transport",
    "TrunkAccount",
]

DEFAULT_SIP_PORT = 5060
DEFAULT_MAX_CONCURRENT_CALLS = 500
DEFAULT_RTP_INACTIVITY_TIMEOUT_S = 60.0
DEFAULT_MAX_MESSAGE_BYTES = 65535
DEFAULT_REGISTRATION_INTERVAL_S = 3600
DEFAULT_REGISTRATION_RETRY_MIN_S = 30
DEFAULT_REGISTRATION_RETRY_MAX_S = 600

Network: TypeAlias = IPv4Network | IPv6Network
"""An IPv4 or IPv6 network (``allowed_networks`` entries)."""


class Transport(StrEnum):
    """SIP transport of a listening address or a peer (written in lower case in YAML)."""

    UDP = "udp"
    TCP = "tcp"


class LogLevel(StrEnum):
    """Minimum severity that is logged."""

    DEBUG = "debug"
    INFO = "info"
    WARNING = "warning"
    ERROR = "error"


@dataclass(frozen=True, slots=True, kw_only=True)
class Secret:
    """A password resolved at load time. In YAML it is ``{env: VAR_NAME}`` or ``{file: path}``.

    ``repr()`` never shows the value, so a logged config does not leak it.
    """

    value: str = field(repr=False)
    """The secret text (a file's content without its trailing line break)."""
    source: str
    """Where it came from: ``env:VAR_NAME`` or ``file:/path/to/file``."""


@dataclass(frozen=True, slots=True, kw_only=True)
class HostPort:
    """A ``host:port`` value (``[v6 address]:port`` for IPv6); the port defaults to 5060."""

    host: str
    """IP address or DNS name, without brackets."""
    port: int
    """UDP/TCP port, 1-65535."""


@dataclass(frozen=True, slots=True, kw_only=True)
class SipTarget:
    """Where a call is sent: a ``sip:``/``sips:`` URI, or ``host[:port]`` meaning ``sip:host[:port]``."""

    uri: str
    """The SIP URI, as written or built from host:port (RFC 3261 §19.1)."""
    host: str
    """The URI's host (IP address or DNS name, without brackets)."""
    port: int | None
    """The URI's port; None when absent (the transport's default or a DNS lookup applies, RFC 3263)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ListenAddress:
    """One local SIP address callherald listens on."""

    host: str
    """Local IP address to bind (``0.0.0.0`` or ``::`` for all)."""
    port: int = DEFAULT_SIP_PORT
    """Local port, 1-65535. Default 5060."""
    transport: Transport = Transport.UDP
    """``udp`` or ``tcp``. Default ``udp``."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Listen:
    """The two local SIP addresses. Both sides may use the same address; requests are then told
    apart by their source address, so the PBX and carrier ``allowed_networks`` must not overlap."""

    pbx: ListenAddress
    """Address the PBX sends its calls to and receives inbound calls from."""
    carrier: ListenAddress
    """Address the carrier sends inbound calls to and receives outbound calls from."""


@dataclass(frozen=True, slots=True, kw_only=True)
class PbxPeer:
    """A PBX (or PBX node) that may send calls to callherald."""

    name: str
    """Unique name, used in logs and in the call records."""
    host: str
    """The PBX's IP address or DNS name."""
    port: int = DEFAULT_SIP_PORT
    """The PBX's SIP port, 1-65535. Default 5060."""
    transport: Transport = Transport.UDP
    """``udp`` or ``tcp``. Default ``udp``."""
    allowed_networks: tuple[Network, ...]
    """CIDR networks this PBX's requests may come from. Default: ``host`` alone, when it is an IP
    address; required when ``host`` is a DNS name."""


@dataclass(frozen=True, slots=True, kw_only=True)
class TrunkAccount:
    """An account the PBX uses to REGISTER to callherald (digest authentication, RFC 3261 §22)."""

    username: str
    """Digest user name (a quoted string in YAML)."""
    password: Secret
    """Digest password: ``{env: VAR}`` or ``{file: path}``."""
    realm: str
    """Digest realm callherald challenges with."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Pbx:
    """The business's phone system side."""

    peers: tuple[PbxPeer, ...]
    """The PBXs allowed to send calls (at least one; unique names)."""
    trunk_accounts: tuple[TrunkAccount, ...] = ()
    """Accounts the PBX may REGISTER with (unique user names). Default: none."""
    default_target: SipTarget
    """Where inbound calls go when `Routing` names no target for the dialled number."""


@dataclass(frozen=True, slots=True, kw_only=True)
class CarrierCredentials:
    """Digest credentials callherald answers the carrier's 401/407 challenges with (RFC 3261 §22.2)."""

    username: str
    """Account user name, used in the From/To of a REGISTER (a quoted string in YAML)."""
    password: Secret
    """Digest password: ``{env: VAR}`` or ``{file: path}``."""
    realm: str | None = None
    """Only answer challenges for this realm. Default: answer any realm."""
    auth_username: str | None = None
    """Digest user name when it differs from ``username``. Default: ``username``."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Registration:
    """Registering callherald's carrier-side address with the carrier (RFC 3261 §10)."""

    enabled: bool = True
    """Whether to register. Default true (so giving the section turns registration on)."""
    interval_s: int = DEFAULT_REGISTRATION_INTERVAL_S
    """Requested registration lifetime (Expires), seconds, 60-86400. Default 3600."""
    retry_min_s: int = DEFAULT_REGISTRATION_RETRY_MIN_S
    """First retry delay after a failed REGISTER, seconds, 1-86400. Default 30."""
    retry_max_s: int = DEFAULT_REGISTRATION_RETRY_MAX_S
    """Largest retry delay (the back-off doubles up to it), seconds, ``retry_min_s``-86400. Default 600."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Carrier:
    """The SIP carrier (trunk provider) side."""

    host: str
    """The carrier's SIP server: IP address or DNS name."""
    port: int = DEFAULT_SIP_PORT
    """The carrier's SIP port, 1-65535. Default 5060."""
    transport: Transport = Transport.UDP
    """``udp`` or ``tcp``. Default ``udp``."""
    outbound_proxy: HostPort | None = None
    """Send requests for the carrier via this ``host:port`` instead. Default: none."""
    allowed_networks: tuple[Network, ...]
    """CIDR networks the carrier's requests may come from. Default: ``host`` alone, when it is an
    IP address; required when ``host`` is a DNS name."""
    credentials: CarrierCredentials | None = None
    """Digest credentials. Default: none (the carrier authenticates by source address)."""
    registration: Registration | None = None
    """Registration settings. Default: none (do not register). Needs ``credentials``."""

    @property
    def registers(self) -> bool:
        """True when callherald must keep a registration with the carrier."""
        return self.registration is not None and self.registration.enabled


@dataclass(frozen=True, slots=True, kw_only=True)
class Media:
    """RTP relay settings."""

    rtp_port_min: int
    """First local RTP port, even (RTP uses even ports, RTCP the next odd one, RFC 3550 §11)."""
    rtp_port_max: int
    """Last local port, odd (the RTCP port of the last pair); at least 4 ports in the range."""
    advertised_address: str
    """IP address written into SDP for the relay (the address peers send RTP to)."""
    bind_address: str = "0.0.0.0"
    """Local IP address RTP sockets bind to. Default ``0.0.0.0``."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Limits:
    """Resource limits."""

    max_concurrent_calls: int = DEFAULT_MAX_CONCURRENT_CALLS
    """Calls above this are refused with 503, at least 1. Default 500."""
    rtp_inactivity_timeout_s: float = DEFAULT_RTP_INACTIVITY_TIMEOUT_S
    """A call whose legs both sent no RTP for this long is ended, seconds, 1-86400. Default 60."""
    max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES
    """Larger SIP messages are dropped, bytes, 1024-65535. Default 65535."""


@dataclass(frozen=True, slots=True, kw_only=True)
class InboundRoute:
    """Where calls to one dialled number (DID) go."""

    did: str
    """The dialled number: an optional ``+`` and 1-15 digits, quoted in YAML (``"+31201234567"``)."""
    target: SipTarget
    """The PBX target: a SIP URI or ``host:port``."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Routing:
    """Inbound call routing to the PBX."""

    inbound: tuple[InboundRoute, ...] = ()
    """Per-number targets (unique DIDs). Default: none."""
    default_target: SipTarget | None = None
    """Target for numbers not listed in ``inbound``. Default: ``pbx.default_target``."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Logging:
    """Logging settings."""

    level: LogLevel = LogLevel.INFO
    """``debug``, ``info``, ``warning`` or ``error``. Default ``info``."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Config:
    """The whole configuration."""

    listen: Listen
    """Local SIP addresses."""
    pbx: Pbx
    """The PBX side."""
    carrier: Carrier
    """The carrier side."""
    media: Media
    """RTP relay."""
    limits: Limits = field(default_factory=Limits)
    """Resource limits. Default: all defaults."""
    routing: Routing = field(default_factory=Routing)
    """Inbound routing. Default: every call to ``pbx.default_target``."""
    data_dir: Path
    """Directory for recordings, metadata and keys; a relative path is relative to the config
    file's directory. Default: ``$CALLHERALD_HOME``, else ``./callherald-data`` (both relative to
    the working directory)."""
    logging: Logging = field(default_factory=Logging)
    """Logging. Default: all defaults."""

    def inbound_target(self, did: str) -> SipTarget:
        """The PBX target for an inbound call to ``did``: its route, else ``routing.default_target``,
        else ``pbx.default_target``."""
        for route in self.routing.inbound:
            if route.did == did:
                return route.target
        return self.routing.default_target or self.pbx.default_target
