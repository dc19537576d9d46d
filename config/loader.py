"""YAML text -> `Config`: the schema's section functions and the public load functions.

Each section is one function from a `Reader` to its frozen dataclass (see `config.reader` for how
reading and error collection work). Adding a section is a dataclass in `config.schema`, a function
here, and one line in `_read_config`; `config_keys` picks the new keys up by itself.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from ipaddress import ip_address, ip_network
from pathlib import Path

from config.errors import ConfigError, ConfigProblem
from config.reader import Context, Kind, Reader, discover_keys, expected, read_document
from config.schema import (
    DEFAULT_MAX_CONCURRENT_CALLS,
    DEFAULT_MAX_MESSAGE_BYTES,
    DEFAULT_REGISTRATION_INTERVAL_S,
    DEFAULT_REGISTRATION_RETRY_MAX_S,
    DEFAULT_REGISTRATION_RETRY_MIN_S,
    DEFAULT_RTP_INACTIVITY_TIMEOUT_S,
    DEFAULT_SIP_PORT,
    Carrier,
    CarrierCredentials,
    Config,
    HostPort,
    InboundRoute,
    Limits,
    Listen,
    ListenAddress,
    Logging,
    LogLevel,
    Media,
    Network,
    Pbx,
    PbxPeer,
    Registration,
    Routing,
    SipTarget,
    Transport,
    TrunkAccount,
)

__all__ = ["HOME_ENV", "config_keys", "load_config", "parse_config"]

HOME_ENV = "CALLHERALD_HOME"
"""Environment variable naming the default data directory."""
DEFAULT_DATA_DIR = Path("callherald-data")
"""Data directory (relative to the working directory) when neither the file nor the environment names one."""

PORT_MIN = 1
PORT_MAX = 65535
_DNS_LABEL = re.compile(r"(?!-)[A-Za-z0-9-]{1,63}(?<!-)")
_PHONE_NUMBER = re.compile(r"\+?[0-9]{1,15}")
_URI = re.compile(r"(?P<scheme>sips?):(?:(?P<user>[^@\s;?]+)@)?(?P<hostport>[^;?\s]+)(?P<rest>[;?]\S*)?")


# -- value kinds ----------------------------------------------------------------------------------


def _is_ip(text: str) -> bool:
    try:
        ip_address(text)
    except ValueError:
        return False
    return True


def _is_host(text: str) -> bool:
    """An IP address or a DNS name (RFC 1123 §2.1 labels, optional trailing dot)."""
    if _is_ip(text):
        return True
    name = text.removesuffix(".")
    return 0 < len(name) <= 253 and all(_DNS_LABEL.fullmatch(label) for label in name.split("."))


def _parse_host(text: str) -> str:
    if not _is_host(text):
        expected("an IP address or DNS name", repr(text))
    return text


def _parse_ip(text: str) -> str:
    try:
        return str(ip_address(text))
    except ValueError:
        expected("an IP address", repr(text))


def _split_host_port(text: str) -> tuple[str, str | None] | None:
    """``host``, ``host:port``, ``[v6]`` or ``[v6]:port`` (RFC 3261 §25.1 hostport); None if malformed."""
    if text.startswith("["):
        host, sep, rest = text[1:].partition("]")
        if not sep or ":" not in host or not _is_ip(host) or (rest and not rest.startswith(":")):
            return None
        return host, (rest[1:] if rest else None)
    host, sep, port = text.partition(":")
    if ":" in port or not _is_host(host):
        return None
    return host, (port if sep else None)


def _host_port(text: str, hostport: str, what: str) -> tuple[str, int | None]:
    """Split ``hostport`` (part of ``text``) into host and port; problems name the whole ``text``."""
    parts = _split_host_port(hostport)
    if parts is None:
        expected(what, repr(text))
    host, port = parts
    if port is None:
        return host, None
    if not (port.isascii() and port.isdigit()):
        expected(what, repr(text))
    if not PORT_MIN <= int(port) <= PORT_MAX:
        expected(f"{what} with a port 1-65535", repr(text))
    return host, int(port)


def _parse_host_port(text: str) -> HostPort:
    host, port = _host_port(text, text, HOST_PORT.expected)
    return HostPort(host=host, port=DEFAULT_SIP_PORT if port is None else port)


def _parse_sip_target(text: str) -> SipTarget:
    what = SIP_TARGET.expected
    match = _URI.fullmatch(text)
    if match is not None:
        host, port = _host_port(text, match["hostport"], what)
        return SipTarget(uri=text, host=host, port=port)
    if text.lower().startswith(("sip:", "sips:")) or "@" in text:
        expected(what, repr(text))
    host, port = _host_port(text, text, what)
    return SipTarget(uri=f"sip:{text}", host=host, port=port)


def _parse_phone_number(text: str) -> str:
    if not _PHONE_NUMBER.fullmatch(text):
        expected(PHONE_NUMBER.expected, repr(text))
    return text


HOST = Kind(expected="an IP address or DNS name", parse=_parse_host, placeholder="")
IP_ADDRESS = Kind(expected="an IP address", parse=_parse_ip, placeholder="")
HOST_PORT = Kind(
    expected="host:port", parse=_parse_host_port, placeholder=HostPort(host="", port=DEFAULT_SIP_PORT)
)
SIP_TARGET = Kind(
    expected="a SIP URI or host:port",
    parse=_parse_sip_target,
    placeholder=SipTarget(uri="", host="", port=None),
)
PHONE_NUMBER = Kind(
    expected="a phone number (an optional '+' and 1-15 digits)", parse=_parse_phone_number, placeholder=""
)


def _sip_port(r: Reader) -> int:
    return r.int_("port", DEFAULT_SIP_PORT, lo=PORT_MIN, hi=PORT_MAX)


def _allowed_networks(r: Reader, host: str) -> tuple[Network, ...]:
    """``allowed_networks``, defaulting to ``host`` itself when it is an IP address."""
    networks = r.cidr_list("allowed_networks", None)
    if networks is not None:
        return networks
    if r.ok("host") and _is_ip(host):
        return (ip_network(host),)
    if r.ok("host"):
        r.missing(
            "allowed_networks", f" (host {host!r} is a DNS name, so its source networks must be listed)"
        )
    return ()


# -- sections -------------------------------------------------------------------------------------


def _read_listen_address(r: Reader) -> ListenAddress:
    return ListenAddress(
        host=r.parsed("host", IP_ADDRESS),
        port=_sip_port(r),
        transport=r.choice("transport", Transport, Transport.UDP),
    )


def _read_listen(r: Reader) -> Listen:
    return Listen(
        pbx=r.mapping("pbx", _read_listen_address), carrier=r.mapping("carrier", _read_listen_address)
    )


def _read_peer(r: Reader) -> PbxPeer:
    name = r.str_("name")
    host = r.parsed("host", HOST)
    return PbxPeer(
        name=name,
        host=host,
        port=_sip_port(r),
        transport=r.choice("transport", Transport, Transport.UDP),
        allowed_networks=_allowed_networks(r, host),
    )


def _read_trunk_account(r: Reader) -> TrunkAccount:
    return TrunkAccount(username=r.str_("username"), password=r.secret("password"), realm=r.str_("realm"))


def _read_pbx(r: Reader) -> Pbx:
    peers = r.list_("peers", _read_peer, min_items=1, noun="peer")
    accounts = r.list_("trunk_accounts", _read_trunk_account, (), noun="account")
    if r.ok("peers"):
        _check_unique(r, "peers", [peer.name for peer in peers], "peer name")
    if r.ok("trunk_accounts"):
        _check_unique(r, "trunk_accounts", [account.username for account in accounts], "username")
    return Pbx(peers=peers, trunk_accounts=accounts, default_target=r.parsed("default_target", SIP_TARGET))


def _read_credentials(r: Reader) -> CarrierCredentials:
    return CarrierCredentials(
        username=r.str_("username"),
        password=r.secret("password"),
        realm=r.str_("realm", None),
        auth_username=r.str_("auth_username", None),
    )


def _read_registration(r: Reader) -> Registration:
    registration = Registration(
        enabled=r.bool_("enabled", True),
        interval_s=r.int_("interval_s", DEFAULT_REGISTRATION_INTERVAL_S, lo=60, hi=86400),
        retry_min_s=r.int_("retry_min_s", DEFAULT_REGISTRATION_RETRY_MIN_S, lo=1, hi=86400),
        retry_max_s=r.int_("retry_max_s", DEFAULT_REGISTRATION_RETRY_MAX_S, lo=1, hi=86400),
    )
    if r.ok("retry_min_s", "retry_max_s") and registration.retry_max_s < registration.retry_min_s:
        r.error(
            "retry_max_s",
            f"expected at least retry_min_s ({registration.retry_min_s}), got {registration.retry_max_s}",
        )
    return registration


def _read_carrier(r: Reader) -> Carrier:
    host = r.parsed("host", HOST)
    carrier = Carrier(
        host=host,
        port=_sip_port(r),
        transport=r.choice("transport", Transport, Transport.UDP),
        outbound_proxy=r.parsed("outbound_proxy", HOST_PORT, None),
        allowed_networks=_allowed_networks(r, host),
        credentials=r.optional_mapping("credentials", _read_credentials),
        registration=r.optional_mapping("registration", _read_registration),
    )
    if carrier.registers and carrier.credentials is None and r.ok("credentials", "registration"):
        r.error("registration", "registration needs carrier.credentials (username and password)")
    return carrier


def _read_media(r: Reader) -> Media:
    media = Media(
        rtp_port_min=r.int_("rtp_port_min", lo=PORT_MIN, hi=PORT_MAX),
        rtp_port_max=r.int_("rtp_port_max", lo=PORT_MIN, hi=PORT_MAX),
        advertised_address=r.parsed("advertised_address", IP_ADDRESS),
        bind_address=r.parsed("bind_address", IP_ADDRESS, "0.0.0.0"),
    )
    # RFC 3550 §11: RTP uses an even port and RTCP the next (odd) one, so the range holds whole pairs.
    low, high = media.rtp_port_min, media.rtp_port_max
    if r.ok("rtp_port_min") and low % 2 != 0:
        r.error("rtp_port_min", f"expected an even port (RTP uses even ports, RFC 3550 §11), got {low}")
    if r.ok("rtp_port_max") and high % 2 != 1:
        r.error("rtp_port_max", f"expected an odd port (the RTCP port of the last RTP/RTCP pair), got {high}")
    if r.ok("rtp_port_min", "rtp_port_max") and high - low + 1 < 4:
        r.error("rtp_port_max", f"expected at least rtp_port_min + 3 ({low + 3}) for 4 ports, got {high}")
    return media


def _read_limits(r: Reader) -> Limits:
    return Limits(
        max_concurrent_calls=r.int_("max_concurrent_calls", DEFAULT_MAX_CONCURRENT_CALLS, lo=1),
        rtp_inactivity_timeout_s=r.number(
            "rtp_inactivity_timeout_s", DEFAULT_RTP_INACTIVITY_TIMEOUT_S, lo=1, hi=86400
        ),
        max_message_bytes=r.int_("max_message_bytes", DEFAULT_MAX_MESSAGE_BYTES, lo=1024, hi=65535),
    )


def _read_inbound_route(r: Reader) -> InboundRoute:
    return InboundRoute(did=r.parsed("did", PHONE_NUMBER), target=r.parsed("target", SIP_TARGET))


def _read_routing(r: Reader) -> Routing:
    inbound = r.list_("inbound", _read_inbound_route, (), noun="route")
    if r.ok("inbound"):
        _check_unique(r, "inbound", [route.did for route in inbound], "did")
    return Routing(inbound=inbound, default_target=r.parsed("default_target", SIP_TARGET, None))


def _read_logging(r: Reader) -> Logging:
    return Logging(level=r.choice("level", LogLevel, LogLevel.INFO))


def _check_unique(r: Reader, key: str, values: list[str], what: str) -> None:
    first: dict[str, int] = {}
    for index, value in enumerate(values):
        if value in first:
            r.error(key, f"duplicate {what} {value!r} (also in entry {first[value]})", item=index)
        first.setdefault(value, index)


def _check_shared_listen_address(r: Reader, config: Config) -> None:
    """One listening address for both sides works only when the source address tells them apart."""
    if not r.ok("listen", "pbx", "carrier") or config.listen.pbx != config.listen.carrier:
        return
    for peer in config.pbx.peers:
        for pbx_net in peer.allowed_networks:
            for carrier_net in config.carrier.allowed_networks:
                if pbx_net.overlaps(carrier_net):
                    r.error(
                        "listen",
                        f"listen.pbx and listen.carrier are the same address, so requests are told apart "
                        f"by source, but peer {peer.name!r} network {pbx_net} overlaps carrier network "
                        f"{carrier_net}",
                    )
                    return


def _read_config(r: Reader) -> Config:
    listen = r.mapping("listen", _read_listen)
    pbx = r.mapping("pbx", _read_pbx)
    carrier = r.mapping("carrier", _read_carrier)
    media = r.mapping("media", _read_media)
    limits = r.mapping("limits", _read_limits, required=False)
    routing = r.mapping("routing", _read_routing, required=False)
    data_dir = r.path_("data_dir", None)
    logging = r.mapping("logging", _read_logging, required=False)
    config = Config(
        listen=listen,
        pbx=pbx,
        carrier=carrier,
        media=media,
        limits=limits,
        routing=routing,
        data_dir=_default_data_dir(r.ctx.environ) if data_dir is None else data_dir,
        logging=logging,
    )
    _check_shared_listen_address(r, config)
    return config


def _default_data_dir(environ: Mapping[str, str]) -> Path:
    home = environ.get(HOME_ENV, "")
    return Path(home) if home else DEFAULT_DATA_DIR


# -- public API -----------------------------------------------------------------------------------


def parse_config(
    text: str,
    *,
    source: str = "<string>",
    base_dir: Path | None = None,
    environ: Mapping[str, str] | None = None,
) -> Config:
    """Validate YAML ``text`` into a `Config`.

    Args:
        text: the YAML document.
        source: the name problems are reported under (normally the file's path).
        base_dir: directory relative ``{file: ...}`` secrets and ``data_dir`` are resolved against;
            None leaves them relative to the working directory.
        environ: environment for ``{env: ...}`` secrets and ``$CALLHERALD_HOME``; default `os.environ`.

    Raises:
        ConfigError: listing every problem found, each with file, line and key path.
    """
    ctx = Context(source=source, base_dir=base_dir, environ=os.environ if environ is None else environ)
    return read_document(text, ctx, _read_config)


def load_config(path: str | os.PathLike[str], *, environ: Mapping[str, str] | None = None) -> Config:
    """Read and validate the YAML file at ``path`` (see `parse_config`); relative paths inside it
    are relative to the file's directory.

    Raises:
        ConfigError: when the file cannot be read or is not a valid configuration.
    """
    source = os.fspath(path)
    try:
        text = Path(source).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise ConfigError(
            [ConfigProblem(file=source, line=None, key="", message=f"cannot read: {reason}")]
        ) from None
    return parse_config(text, source=source, base_dir=Path(os.path.abspath(source)).parent, environ=environ)


def config_keys() -> list[str]:
    """Every dotted key path the schema accepts, in schema order, sections included.

    Keys of list items appear under the list's key (``pbx.peers.host``); a secret is one key
    (its ``env``/``file`` form is not listed).
    """
    return discover_keys(_read_config)
