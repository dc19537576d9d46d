"""YAML text -> `Config`: the schema's section functions and the public load functions.

Each section is one function from a `Reader` to its frozen dataclass (see `config.reader` for how
reading and error collection work). Adding a section is a dataclass in `config.schema`, a function
here, and one line in `_read_config`; `config_keys` picks the new keys up by itself.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import difflib
import os
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv6Address, ip_address, ip_network
from pathlib import Path

from config.defaults import DEFAULT_CONSENT_QUESTIONS, DEFAULT_POLICIES, DEFAULT_PURPOSES
from config.errors import ConfigError, ConfigProblem
from config.policies import match_covers, normalise_number
from config.reader import (
    Context,
    InvalidValueError,
    Kind,
    Reader,
    discover_keys,
    expected,
    key_line,
    read_document,
)
from config.schema import (
    DEFAULT_CONSENT_TIMEOUT_S,
    DEFAULT_LANGUAGE,
    DEFAULT_MAX_CONCURRENT_CALLS,
    DEFAULT_MAX_MESSAGE_BYTES,
    DEFAULT_MAX_NEW_CALLS_PER_S,
    DEFAULT_NO_RESPONSE_TIMEOUT_S,
    DEFAULT_NOTICE_HOLD_TIMEOUT_S,
    DEFAULT_OVERLOAD_LAG_MS,
    DEFAULT_RECORDING_MAX_WRITE_DELAY_S,
    DEFAULT_RECORDING_MIN_FREE_MB,
    DEFAULT_REGISTRATION_INTERVAL_S,
    DEFAULT_REGISTRATION_RETRY_MAX_S,
    DEFAULT_REGISTRATION_RETRY_MIN_S,
    DEFAULT_RING_TIMEOUT_S,
    DEFAULT_RTP_INACTIVITY_TIMEOUT_S,
    DEFAULT_SIP_PORT,
    EMBEDDED_PROMPT_LANGUAGES,
    EMBEDDED_PROMPT_SET_ID,
    STORAGE_REGION_MAX_LENGTH,
    AnnouncementMode,
    Announcements,
    CallDirection,
    Carrier,
    CarrierCredentials,
    Config,
    ConsentQuestion,
    FailureBehaviour,
    HostPort,
    InboundRoute,
    LawfulBasis,
    Limits,
    Listen,
    ListenAddress,
    Logging,
    LogLevel,
    Media,
    Network,
    Pbx,
    PbxPeer,
    Policy,
    PolicyMatch,
    PromptConfig,
    PromptSetConfig,
    Purpose,
    Recording,
    Registration,
    Routing,
    SipTarget,
    Transport,
    TrunkAccount,
)

__all__ = ["HOME_ENV", "config_keys", "load_config", "parse_config", "problem_at"]

HOME_ENV = "CALLHERALD_HOME"
"""Environment variable naming the default data directory."""
DEFAULT_DATA_DIR = Path("callherald-data")
"""Data directory (relative to the working directory) when neither the file nor the environment names one."""

PORT_MIN = 1
PORT_MAX = 65535
RETENTION_DAYS_MAX = 36525
"""100 years: a longer retention is no retention limit (GDPR Art. 5(1)(e)), and every delete-after
date it gives stays a calendar date."""
_DNS_LABEL = re.compile(r"(?!-)[A-Za-z0-9-]{1,63}(?<!-)")
_PHONE_NUMBER = re.compile(r"\+?[0-9]{1,15}")
_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
# A language tag as in BCP 47, reduced to what prompt selection needs: "nl", "en", "en-GB", "nl-BE".
_LANGUAGE = re.compile(r"[a-z]{2,3}(?:-[A-Za-z0-9]{1,8})*")
_DTMF = re.compile(r"[0-9*#]")
_DTMF_CODE = re.compile(r"[0-9*#]{1,8}")
# The two forms storage.keys.parse_public_key reads: a PEM SubjectPublicKeyInfo block (text around
# it is ignored) or the raw 32-byte X25519 key in base64, padded (44 characters) or not (43).
_PEM_PUBLIC_KEY = re.compile(rb"-----BEGIN PUBLIC KEY-----.+?-----END PUBLIC KEY-----", re.DOTALL)
_BASE64_KEY = re.compile(rb"[A-Za-z0-9+/]{43}=?")
# A private key: callherald's own key file (JSON, its "format" as storage.keys.PRIVATE_KEY_FORMAT)
# or a PEM "PRIVATE KEY" or "ENCRYPTED PRIVATE KEY" block (RFC 7468 §10, §11).
_PRIVATE_KEY = re.compile(rb'"format":\s*"callherald-private-key"|-----BEGIN (?:ENCRYPTED )?PRIVATE KEY-----')
# A PEM public key is a DER SubjectPublicKeyInfo: for X25519 these 12 bytes, then the raw 32-byte
# key (RFC 8410 §4), the same bytes the base64 form holds.
_X25519_SPKI_PREFIX = bytes.fromhex("302a300506032b656e032100")
PUBLIC_KEY_FILE_MAX_BYTES = 64 * 1024
"""A recipient file larger than this is not a public key file (one is a few hundred bytes)."""
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


def _parse_id(text: str) -> str:
    if not _ID.fullmatch(text):
        expected(ID.expected, repr(text))
    return text


def _parse_language(text: str) -> str:
    if not _LANGUAGE.fullmatch(text):
        expected(LANGUAGE.expected, repr(text))
    return text


def _parse_dtmf_digit(text: str) -> str:
    if not _DTMF.fullmatch(text):
        expected(DTMF_DIGIT.expected, repr(text))
    return text


def _parse_dtmf_code(text: str) -> str:
    if not _DTMF_CODE.fullmatch(text):
        expected(DTMF_CODE.expected, repr(text))
    return text


def _parse_prefix(text: str) -> str:
    number = normalise_number(text)
    if not _PHONE_NUMBER.fullmatch(number):
        expected(NUMBER_PREFIX.expected, repr(text))
    return number


HOST = Kind(expected="an IP address or DNS name", parse=_parse_host, placeholder="")
IP_ADDRESS = Kind(expected="an IP address", parse=_parse_ip, placeholder="")


def _parse_local_ip(text: str) -> str:
    address = _parse_ip(text)
    parsed = ip_address(address)
    if parsed.is_multicast or parsed == IPv4Address("255.255.255.255"):
        # A socket bound there hears only what is sent to that group or broadcast: no call.
        expected(
            "one of this machine's addresses, or 0.0.0.0 or :: for all (not multicast or broadcast)",
            repr(text),
        )
    return address


LOCAL_IP_ADDRESS = Kind(expected="an IP address", parse=_parse_local_ip, placeholder="")
"""An address to bind sockets to (a listener, the RTP sockets)."""
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
ID = Kind(
    expected="an id (1-64 letters, digits, '.', '_' or '-', starting with a letter or digit)",
    parse=_parse_id,
    placeholder="",
)
LANGUAGE = Kind(expected="a language tag such as nl or en-GB", parse=_parse_language, placeholder="")
DTMF_DIGIT = Kind(
    expected='one DTMF key, quoted: "0"-"9", "*" or "#"', parse=_parse_dtmf_digit, placeholder=""
)
DTMF_CODE = Kind(
    expected='1-8 DTMF keys of 0-9, * and #, quoted like "*9"', parse=_parse_dtmf_code, placeholder=""
)
NUMBER_PREFIX = Kind(
    expected="a number prefix (an optional '+' and 1-15 digits; spaces and dashes are ignored)",
    parse=_parse_prefix,
    placeholder="",
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
        host=r.parsed("host", LOCAL_IP_ADDRESS),
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


def _read_media(r: Reader, listen: Listen | None) -> Media:
    """``media``; ``listen`` (None when it has a problem of its own) is checked against its range."""
    media = Media(
        rtp_port_min=r.int_("rtp_port_min", lo=PORT_MIN, hi=PORT_MAX),
        rtp_port_max=r.int_("rtp_port_max", lo=PORT_MIN, hi=PORT_MAX),
        advertised_address=r.parsed("advertised_address", IP_ADDRESS),
        bind_address=r.parsed("bind_address", LOCAL_IP_ADDRESS, "0.0.0.0"),
        constant_ssrc=r.bool_("constant_ssrc", True),
    )
    if r.ok("advertised_address"):
        advertised = ip_address(media.advertised_address)
        if advertised.is_unspecified or advertised.is_multicast:
            # RFC 3264 §8.4: c=0.0.0.0 is the old way to put a call on hold; parties send nowhere.
            r.error(
                "advertised_address",
                f"{media.advertised_address} is no address a party can send RTP to (0.0.0.0 in SDP"
                " means hold, RFC 3264 §8.4); give the address this machine is reached at",
            )
        elif r.ok("bind_address"):
            bound = ip_address(media.bind_address)
            dual_stack = bound.version == 6 and bound.is_unspecified  # "::" takes IPv4 too
            if bound.version != advertised.version and not dual_stack:
                r.error(
                    "advertised_address",
                    f"an IPv{advertised.version} address, but the RTP sockets are bound to"
                    f" IPv{bound.version} {media.bind_address} (media.bind_address): no RTP would arrive",
                )
    # RFC 3550 §11: RTP uses an even port and RTCP the next (odd) one, so the range holds whole pairs.
    low, high = media.rtp_port_min, media.rtp_port_max
    if r.ok("rtp_port_min") and low % 2 != 0:
        r.error("rtp_port_min", f"expected an even port (RTP uses even ports, RFC 3550 §11), got {low}")
    if r.ok("rtp_port_max") and high % 2 != 1:
        r.error("rtp_port_max", f"expected an odd port (the RTCP port of the last RTP/RTCP pair), got {high}")
    if r.ok("rtp_port_min", "rtp_port_max") and high - low + 1 < 4:
        r.error("rtp_port_max", f"expected at least rtp_port_min + 3 ({low + 3}) for 4 ports, got {high}")
    if listen is not None and r.ok("rtp_port_min", "rtp_port_max", "bind_address"):
        _check_rtp_range_clear_of_sip(r, low, high, listen, media.bind_address)
    return media


def _check_rtp_range_clear_of_sip(r: Reader, low: int, high: int, listen: Listen, rtp_address: str) -> None:
    """callherald's own SIP listener over UDP holds its port on its address, so the RTP pair with
    that port is never free where the RTP sockets' address meets it: each call that comes to it
    logs it as taken (by "other programs") and moves on. A listener over TCP, or on another address
    of the machine, leaves the port to RTP."""
    for side, address in (("pbx", listen.pbx), ("carrier", listen.carrier)):
        if (
            address.transport is Transport.UDP
            and low <= address.port <= high
            and _addresses_meet(address.host, rtp_address)
        ):
            r.error(
                "rtp_port_min",
                f"the RTP range {low}-{high} includes listen.{side}.port {address.port}, where callherald "
                "takes SIP itself: choose an RTP range clear of the SIP ports",
            )
            return


def _addresses_meet(first: str, second: str) -> bool:
    """Whether UDP sockets bound to the two addresses contend for the same ports: the same address,
    or one of them every address (``::`` may take IPv4 too); True for one that is no address."""
    try:
        one, other = ip_address(first), ip_address(second)
    except ValueError:
        return True
    if one == other:
        return True
    return any(
        address.is_unspecified and address.version in (6, rest.version)
        for address, rest in ((one, other), (other, one))
    )


def _read_limits(r: Reader) -> Limits:
    return Limits(
        max_concurrent_calls=r.int_("max_concurrent_calls", DEFAULT_MAX_CONCURRENT_CALLS, lo=1),
        max_new_calls_per_s=r.number("max_new_calls_per_s", DEFAULT_MAX_NEW_CALLS_PER_S, lo=0, hi=10000),
        overload_lag_ms=r.int_("overload_lag_ms", DEFAULT_OVERLOAD_LAG_MS, lo=0, hi=10000),
        rtp_inactivity_timeout_s=r.number(
            "rtp_inactivity_timeout_s", DEFAULT_RTP_INACTIVITY_TIMEOUT_S, lo=1, hi=86400
        ),
        max_message_bytes=r.int_("max_message_bytes", DEFAULT_MAX_MESSAGE_BYTES, lo=1024, hi=65535),
        ring_timeout_s=r.number("ring_timeout_s", DEFAULT_RING_TIMEOUT_S, lo=5, hi=3600),
        no_response_timeout_s=r.number("no_response_timeout_s", DEFAULT_NO_RESPONSE_TIMEOUT_S, lo=2, hi=32),
        notice_hold_timeout_s=r.number("notice_hold_timeout_s", DEFAULT_NOTICE_HOLD_TIMEOUT_S, lo=1, hi=3600),
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


def _public_key_in(path: Path) -> bytes | None:
    """The key in ``path`` (see `_key_bytes`) when it is a regular file that looks like a public key
    (see `Recording.recipients`); whether it holds a valid X25519 key is checked when callherald
    starts, not here."""
    name = os.fspath(path)
    try:
        if not path.exists():
            raise InvalidValueError(f"public key file {name!r} does not exist")
        if not path.is_file():
            raise InvalidValueError(f"public key file {name!r} is not a file")
        with path.open("rb") as file:
            data = file.read(PUBLIC_KEY_FILE_MAX_BYTES + 1)
    except (OSError, ValueError) as exc:  # ValueError: a NUL in the path
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise InvalidValueError(f"cannot read public key file {name!r}: {reason}") from None
    if len(data) > PUBLIC_KEY_FILE_MAX_BYTES:
        raise InvalidValueError(
            f"public key file {name!r} is larger than {PUBLIC_KEY_FILE_MAX_BYTES // 1024} KiB, "
            "so it is not a public key file"
        )
    if _PEM_PUBLIC_KEY.search(data) is None and _BASE64_KEY.fullmatch(data.strip()) is None:
        if _PRIVATE_KEY.search(data) is not None:
            # The running proxy must never hold a key that decrypts (it wraps for recipients only).
            public = path.with_suffix(".pub") if path.suffix == ".key" else None
            hint = f" ({os.fspath(public)!r}?)" if public is not None and public.is_file() else ""
            raise InvalidValueError(
                f"public key file {name!r} holds a private key: list the matching public key file "
                f"instead{hint}; the private key stays with whoever exports recordings"
            )
        raise InvalidValueError(
            f"public key file {name!r} holds no public key: expected a PEM 'BEGIN PUBLIC KEY' block "
            "or the raw key in base64 (43 or 44 characters)"
        )
    return _key_bytes(data)


def _key_bytes(data: bytes) -> bytes | None:
    """The key a public key file holds, as bytes that are equal for the same key written as PEM
    and as base64; None when its base64 does not decode (start-up then says why)."""
    block = _PEM_PUBLIC_KEY.search(data)
    if block is not None:
        body = (
            block.group(0)
            .removeprefix(b"-----BEGIN PUBLIC KEY-----")
            .removesuffix(b"-----END PUBLIC KEY-----")
        )
        encoded = b"".join(body.split())
    else:
        encoded = data.strip()
    try:
        decoded = base64.b64decode(encoded + b"=" * (-len(encoded) % 4), validate=True)
    except binascii.Error:
        return None
    return decoded.removeprefix(_X25519_SPKI_PREFIX)


def _storage_region(text: str) -> str:
    if len(text) > STORAGE_REGION_MAX_LENGTH:
        raise InvalidValueError(
            f"expected a storage region of at most {STORAGE_REGION_MAX_LENGTH} characters, got {len(text)}"
        )
    if not text.isprintable():
        raise InvalidValueError(f"expected a storage region on one line of printable text, got {text!r}")
    return text


_STORAGE_REGION = Kind(expected="a storage region", parse=_storage_region, placeholder="")


def _read_recording_section(r: Reader) -> Recording:
    keys: dict[Path, bytes | None] = {}  # each readable recipient file -> the key it holds

    def read_key_file(text: str) -> Path:
        path = r.ctx.resolve(text)
        keys[path] = _public_key_in(path)
        return path

    key_file = Kind(expected="a path to a public key file", parse=read_key_file, placeholder=Path())
    recording = Recording(
        recipients=r.scalar_list("recipients", key_file, (), noun="public key file"),
        min_free_mb=r.int_("min_free_mb", DEFAULT_RECORDING_MIN_FREE_MB, lo=0),
        max_write_delay_s=r.int_("max_write_delay_s", DEFAULT_RECORDING_MAX_WRITE_DELAY_S, lo=0, hi=3600),
        enabled=r.bool_("enabled", True),
        held_evidence_dir=r.path_("held_evidence_dir", None),
        manifest_signing_key=r.path_("manifest_signing_key", None),
        storage_region=r.parsed("storage_region", _STORAGE_REGION, None),
        worm=r.bool_("worm", False),
    )
    # Not an error when it is no directory (its disk not mounted): only a stop on a full disk uses it,
    # and data_dir stands in for it then; check-config and serve warn (``held_evidence_dir_problem``).
    # Each recipient is one wrapped copy of a recording's key; a file, or a key, listed twice is a
    # mistake (a copy of a key file under another name as much as the same file).
    first_file: dict[str, int] = {}
    first_key: dict[bytes, int] = {}
    for index, path in enumerate(recording.recipients):
        if path == key_file.placeholder:  # unreadable: reported already (a real key file is never ".")
            continue
        same_file = os.path.realpath(path)
        key = keys.get(path)
        if same_file in first_file:
            r.error(
                "recipients",
                f"duplicate public key file {os.fspath(path)!r} (also in entry {first_file[same_file]})",
                item=index,
            )
        elif key is not None and key in first_key:
            earlier = first_key[key]
            r.error(
                "recipients",
                f"public key file {os.fspath(path)!r} holds the same key as entry {earlier} "
                f"({os.fspath(recording.recipients[earlier])!r}); list each key once",
                item=index,
            )
        first_file.setdefault(same_file, index)
        if key is not None:
            first_key.setdefault(key, index)
    return recording


# -- announcements, purposes, consent questions and policies --------------------------------------

POLICY_SECTIONS = ("purposes", "consent_questions", "policies")
"""Given together or not at all: when all three are absent, the embedded defaults apply."""


@dataclass(slots=True, kw_only=True)
class _Catalog:
    """What the policy sections may refer to, as read so far. Only values read without a problem
    are trusted, so one mistake is reported once, not again at every reference to it."""

    prompt_languages: dict[str, tuple[str, ...]] = field(default_factory=dict)
    """Prompt-set id -> its languages, the embedded set included."""
    default_language: str = DEFAULT_LANGUAGE
    purposes: dict[str, LawfulBasis | None] | None = None
    """Purpose id -> lawful basis (None when unreadable); None while ``purposes`` is missing."""
    questions: dict[str, ConsentQuestion] = field(default_factory=dict)
    """Question id -> the question, with unreadable or invalid references blanked ("")."""
    matches: list[PolicyMatch | None] = field(default_factory=list)
    """Each policy's match, in order (None when unreadable)."""


def _unknown(what: str, value: str, known: Iterable[str]) -> str:
    names = list(known)
    close = difflib.get_close_matches(value, names, n=1)
    if close:
        return f"unknown {what} {value!r}; did you mean {close[0]!r}?"
    if names:
        return f"unknown {what} {value!r}; defined: " + ", ".join(names)
    return f"unknown {what} {value!r}; none are defined"


def _missing_language(prompt_set: str, language: str, languages: tuple[str, ...]) -> str:
    return f"prompt set {prompt_set!r} has no {language!r} prompt (it has {', '.join(languages)})"


def _check_unique_ids(r: Reader, key: str, values: list[str], what: str) -> None:
    """Duplicate ids, when every list item was read (so positions match the file); blanks skipped."""
    if r.count(key) != len(values):
        return
    first: dict[str, int] = {}
    for index, value in enumerate(values):
        if value and value in first:
            r.error(key, f"duplicate {what} {value!r} (also in entry {first[value]})", item=index)
        first.setdefault(value, index)


def _read_prompt(language: str, r: Reader) -> PromptConfig:
    prompt = PromptConfig(language=language, file=r.path_("file"), text=r.str_("text", None))
    if r.ok("file"):
        path = os.fspath(prompt.file)
        try:
            if not prompt.file.exists():
                r.error("file", f"prompt file {path!r} does not exist")
            elif not prompt.file.is_file():
                r.error("file", f"prompt file {path!r} is not a file")
        except OSError as exc:
            r.error("file", f"cannot check prompt file {path!r}: {exc.strerror or exc}")
    return prompt


def _read_prompt_set(r: Reader) -> PromptSetConfig:
    prompt_set = PromptSetConfig(
        id=r.parsed("id", ID),
        prompts=r.named_mappings(
            "prompts", _read_prompt, name=LANGUAGE, name_placeholder="<language>", noun="language"
        ),
    )
    if r.ok("id") and prompt_set.id == EMBEDDED_PROMPT_SET_ID:
        r.error("id", f"the id {EMBEDDED_PROMPT_SET_ID!r} is reserved for the embedded announcement")
    return prompt_set


def _announcements_reader(catalog: _Catalog, *, embedded_policy: bool) -> Callable[[Reader], Announcements]:
    """Reads ``announcements`` and enters its prompt sets into ``catalog``. With ``embedded_policy``
    (no policy sections given) the default language must be one the embedded prompt set speaks."""

    def read(r: Reader) -> Announcements:
        announcements = Announcements(
            prompt_sets=r.list_("prompt_sets", _read_prompt_set, (), noun="prompt set"),
            default_language=r.parsed("default_language", LANGUAGE, DEFAULT_LANGUAGE),
        )
        _check_unique_ids(r, "prompt_sets", [item.id for item in announcements.prompt_sets], "id")
        language = announcements.default_language
        if embedded_policy and r.ok("default_language") and language not in EMBEDDED_PROMPT_LANGUAGES:
            r.error(
                "default_language",
                "the embedded default policy speaks the default language, but "
                + _missing_language(EMBEDDED_PROMPT_SET_ID, language, EMBEDDED_PROMPT_LANGUAGES),
            )
        if r.ok("default_language"):
            catalog.default_language = language
        for prompt_set in announcements.prompt_sets:
            if prompt_set.id and prompt_set.prompts:
                catalog.prompt_languages.setdefault(prompt_set.id, prompt_set.languages)
        return announcements

    return read


def _purpose_reader(catalog: _Catalog) -> Callable[[Reader], Purpose]:
    def read(r: Reader) -> Purpose:
        purpose = Purpose(
            id=r.parsed("id", ID),
            lawful_basis=r.choice("lawful_basis", LawfulBasis),
            reference=r.str_("reference", None),
            retention_days=r.int_("retention_days", lo=1, hi=RETENTION_DAYS_MAX),
        )
        basis = purpose.lawful_basis
        # GDPR Art. 6(1)(c) and (f): the legal ground or the balancing test must be documented.
        if r.ok("lawful_basis", "reference") and basis.needs_reference and purpose.reference is None:
            document = "interest assessment" if basis is LawfulBasis.LEGITIMATE_INTEREST else "legal ground"
            r.missing("reference", f" (lawful basis {basis} needs a reference to its {document})")
        if r.ok("id") and catalog.purposes is not None:
            catalog.purposes.setdefault(purpose.id, basis if r.ok("lawful_basis") else None)
        return purpose

    return read


def _question_reader(catalog: _Catalog) -> Callable[[Reader], ConsentQuestion]:
    def read(r: Reader) -> ConsentQuestion:
        question = ConsentQuestion(
            id=r.parsed("id", ID),
            version=r.label("version"),
            purpose=r.parsed("purpose", ID),
            prompt_set=r.parsed("prompt_set", ID),
            yes_digit=r.parsed("yes_digit", DTMF_DIGIT),
            timeout_s=r.number("timeout_s", DEFAULT_CONSENT_TIMEOUT_S, lo=1, hi=30),
        )
        purpose = question.purpose if r.ok("purpose") else ""
        if purpose and catalog.purposes is not None:
            basis = catalog.purposes.get(purpose)
            if purpose not in catalog.purposes:
                r.error("purpose", _unknown("purpose", purpose, catalog.purposes))
                purpose = ""
            elif basis is not None and basis is not LawfulBasis.CONSENT:
                # EDPB 05/2020 §6: a purpose's basis is fixed; consent is asked only for consent purposes.
                r.error(
                    "purpose",
                    f"purpose {purpose!r} has lawful basis {basis}, not consent; "
                    "a consent question asks only about a consent-based purpose",
                )
                purpose = ""
            elif basis is None:
                purpose = ""
        prompt_set = question.prompt_set if r.ok("prompt_set") else ""
        if prompt_set and prompt_set not in catalog.prompt_languages:
            r.error("prompt_set", _unknown("prompt set", prompt_set, catalog.prompt_languages))
            prompt_set = ""
        if r.ok("id"):
            trusted = dataclasses.replace(
                question,
                purpose=purpose,
                prompt_set=prompt_set,
                yes_digit=question.yes_digit if r.ok("yes_digit") else "",
            )
            catalog.questions.setdefault(question.id, trusted)
        return question

    return read


def _read_match(r: Reader) -> PolicyMatch:
    def prefixes(key: str) -> tuple[str, ...]:
        # One quoted prefix or a list of them. Written empty it would match every number, which
        # nobody means by giving the key: leaving it out says that.
        return r.scalar_list(
            key,
            NUMBER_PREFIX,
            (),
            min_items=1,
            noun="number prefix",
            plural="number prefixes",
            one_or_list=True,
            null_is_absent=False,
        )

    return PolicyMatch(
        direction=r.choice("direction", CallDirection, CallDirection.ANY),
        called=prefixes("called"),
        calling=prefixes("calling"),
    )


RECORDING_ONLY_KEYS = (
    "notice",
    "language",
    "purposes",
    "questions",
    "withdrawal_digit",
    "pci_pause_code",
    "pci_pause_tones",
)
"""Policy keys that only a recording policy may give (with ``record: false`` there is nothing to
announce, ask or record)."""
_NOT_RECORDED = (
    "not allowed when record is false (calls this policy matches are neither announced nor recorded)"
)
"""The problem reported for each of `RECORDING_ONLY_KEYS` given in a ``record: false`` policy."""


def _policy_reader(catalog: _Catalog) -> Callable[[Reader], Policy]:
    def read(r: Reader) -> Policy:
        name = r.str_("name")
        match = r.mapping("match", _read_match, required=False)
        # An unreadable ``record`` is reported once; the rest is read as a recording policy.
        record = r.bool_("record", True) or not r.ok("record")
        policy = (
            _read_recording(r, name, match, catalog)
            if record
            else _read_not_recording(r, name, match, catalog)
        )
        catalog.matches.append(policy.match if r.ok("match") else None)
        if not r.silent:
            given_language = record and r.has("language")
            _check_policy(r, policy, catalog, language_key="language" if given_language else "notice")
        return policy

    return read


def _read_recording(r: Reader, name: str, match: PolicyMatch, catalog: _Catalog) -> Policy:
    notice = r.parsed("notice", ID)
    language = r.parsed("language", LANGUAGE, None)
    return Policy(
        name=name,
        match=match,
        record=True,
        notice=notice,
        language=catalog.default_language if language is None else language,
        purposes=r.scalar_list("purposes", ID, min_items=1, noun="purpose id"),
        questions=r.scalar_list("questions", ID, (), noun="question id"),
        mode=r.choice("mode", AnnouncementMode, AnnouncementMode.ANSWER),
        on_failure=r.choice("on_failure", FailureBehaviour, FailureBehaviour.CONNECT_UNRECORDED),
        # Written empty, these would silently be off: an unquoted "#9" is an empty value and a comment.
        withdrawal_digit=r.parsed("withdrawal_digit", DTMF_DIGIT, None, null_is_absent=False),
        pci_pause_code=r.parsed("pci_pause_code", DTMF_CODE, None, null_is_absent=False),
        pci_pause_tones=r.bool_("pci_pause_tones", True),
    )


def _read_not_recording(r: Reader, name: str, match: PolicyMatch, catalog: _Catalog) -> Policy:
    """A ``record: false`` policy: calls it matches hear no notice and are not recorded, so every
    key about announcing, asking or recording is an error (its value is not read)."""
    for key in RECORDING_ONLY_KEYS:
        r.forbidden(key, _NOT_RECORDED)
    return Policy(
        name=name,
        match=match,
        record=False,
        language=catalog.default_language,
        mode=r.choice("mode", AnnouncementMode, AnnouncementMode.ANSWER),
        on_failure=r.choice("on_failure", FailureBehaviour, FailureBehaviour.CONNECT_UNRECORDED),
    )


def _check_policy(r: Reader, policy: Policy, catalog: _Catalog, *, language_key: str) -> None:
    """The checks across one policy and the sections it refers to (``language_key`` is where a
    missing language is reported: ``language`` when given, else ``notice``)."""
    purposes_read = r.ok("purposes")
    questions_read = r.ok("questions")
    language = policy.language if r.ok("language") else ""

    if policy.notice is not None and r.ok("notice"):
        languages = catalog.prompt_languages.get(policy.notice)
        if languages is None:
            r.error("notice", _unknown("prompt set", policy.notice, catalog.prompt_languages))
        elif language and language not in languages:
            r.error(language_key, _missing_language(policy.notice, language, languages))
            language = ""  # reported once; the questions are not checked for it again
    code, withdrawal = policy.pci_pause_code, policy.withdrawal_digit
    if r.ok("pci_pause_code", "withdrawal_digit") and code and withdrawal and withdrawal in code:
        # The caller keying the code would withdraw consent on the way (the digit acts at once).
        r.error(
            "pci_pause_code",
            f"the code {code!r} contains the withdrawal digit {withdrawal!r}; choose keys without it",
        )
    if r.has("pci_pause_tones") and r.ok("pci_pause_tones", "pci_pause_code") and code is None:
        # On or off, they confirm nothing: whoever gave them expects callers to pause, and none can.
        r.error(
            "pci_pause_tones", "the tones confirm the PCI pause code, and this policy has no pci_pause_code"
        )
    outbound_only = policy.match.direction is CallDirection.OUTBOUND
    if r.ok("mode", "match") and policy.mode is AnnouncementMode.EARLY_MEDIA and outbound_only:
        r.error("mode", "early_media applies to inbound calls, but this policy matches outbound calls only")

    listed: dict[str, int] = {}
    for index, purpose_id in enumerate(policy.purposes):
        if not purpose_id:
            continue
        if purpose_id in listed:
            r.error("purposes", f"purpose {purpose_id!r} is listed twice", item=index)
        elif catalog.purposes is not None and purpose_id not in catalog.purposes:
            r.error("purposes", _unknown("purpose", purpose_id, catalog.purposes), item=index)
        listed.setdefault(purpose_id, index)

    asked: dict[str, str] = {}
    questions_complete = questions_read
    for index, question_id in enumerate(policy.questions):
        if not question_id:
            continue
        question = catalog.questions.get(question_id)
        if question_id in policy.questions[:index]:
            r.error("questions", f"consent question {question_id!r} is listed twice", item=index)
        elif question is None:
            r.error("questions", _unknown("consent question", question_id, catalog.questions), item=index)
            questions_complete = False
        else:
            questions_complete &= bool(question.purpose)
            _check_question_in_policy(
                r,
                policy,
                question,
                index,
                language=language,
                catalog=catalog,
                asked=asked,
                check_listed=purposes_read,
            )

    # R4, EDPB 05/2020 §3.2: every consent-based purpose needs its own key-press question.
    if catalog.purposes is not None and questions_complete:
        for purpose_id, index in listed.items():
            if catalog.purposes.get(purpose_id) is LawfulBasis.CONSENT and purpose_id not in asked:
                r.error(
                    "purposes",
                    f"purpose {purpose_id!r} has lawful basis consent but no consent question in this policy",
                    item=index,
                )


def _check_question_in_policy(
    r: Reader,
    policy: Policy,
    question: ConsentQuestion,
    index: int,
    *,
    language: str,
    catalog: _Catalog,
    asked: dict[str, str],
    check_listed: bool,
) -> None:
    if question.purpose in asked:
        r.error(
            "questions",
            f"consent question {question.id!r} asks about purpose {question.purpose!r} like consent "
            f"question {asked[question.purpose]!r}; ask once per purpose",
            item=index,
        )
    elif question.purpose:
        asked[question.purpose] = question.id
        if check_listed and question.purpose not in policy.purposes:
            r.error(
                "questions",
                f"consent question {question.id!r} asks about purpose {question.purpose!r}, "
                "which this policy does not list",
                item=index,
            )
    languages = catalog.prompt_languages.get(question.prompt_set)
    if language and languages is not None and language not in languages:
        message = f"consent question {question.id!r}: " + _missing_language(
            question.prompt_set, language, languages
        )
        r.error("questions", message, item=index)
    digit = policy.withdrawal_digit
    if r.ok("withdrawal_digit") and digit is not None and digit == question.yes_digit:
        r.error(
            "withdrawal_digit",
            f"withdrawal digit {digit!r} is also the yes digit of consent question {question.id!r}",
        )


def _check_policy_order(r: Reader, policies: tuple[Policy, ...], matches: list[PolicyMatch | None]) -> None:
    """Unique names, no policy hidden behind an earlier one, and every call matched by some policy."""
    if not policies or r.count("policies") != len(policies) or len(matches) != len(policies):
        return
    _check_unique_ids(r, "policies", [policy.name for policy in policies], "policy name")
    for later_index, later in enumerate(matches):
        for earlier_index, earlier in enumerate(matches[:later_index]):
            if earlier is not None and later is not None and match_covers(earlier, later):
                r.error(
                    "policies",
                    f"policy {policies[later_index].name!r} never applies: policy "
                    f"{policies[earlier_index].name!r} (entry {earlier_index}) comes first and matches "
                    "every call it matches",
                    item=later_index,
                )
                break
    if any(match is None for match in matches):
        return
    uncovered = [
        direction
        for direction in (CallDirection.INBOUND, CallDirection.OUTBOUND)
        if not any(
            policy.match.is_catch_all and policy.match.direction in (CallDirection.ANY, direction)
            for policy in policies
        )
    ]
    if uncovered:
        calls = "call" if len(uncovered) == 2 else f"{uncovered[0]} call"
        r.error(
            "policies",
            f"no policy matches every {calls}; end the list with a catch-all policy "
            "(no called or calling prefixes, direction any)",
        )


def _read_policy_sections(
    r: Reader, catalog: _Catalog
) -> tuple[tuple[Purpose, ...], tuple[ConsentQuestion, ...], tuple[Policy, ...]]:
    """``purposes``, ``consent_questions`` and ``policies``, or the embedded defaults when all three
    are absent. Once one is given, ``purposes`` and ``policies`` are required."""
    given = any(r.has(key) for key in POLICY_SECTIONS)
    if r.count("purposes") is not None:
        catalog.purposes = {}
    purposes = r.list_("purposes", _purpose_reader(catalog), None, min_items=1, noun="purpose")
    questions = r.list_("consent_questions", _question_reader(catalog), None, noun="consent question")
    policies = r.list_("policies", _policy_reader(catalog), None, min_items=1, noun="policy")
    if r.silent:
        return (), (), ()
    if not given:
        language = catalog.default_language or DEFAULT_LANGUAGE
        embedded = tuple(dataclasses.replace(policy, language=language) for policy in DEFAULT_POLICIES)
        return DEFAULT_PURPOSES, DEFAULT_CONSENT_QUESTIONS, embedded
    if purposes is None:
        r.missing("purposes", " (policies and consent questions name their purposes from it)")
    else:
        _check_unique_ids(r, "purposes", [purpose.id for purpose in purposes], "id")
    if questions is not None:
        _check_unique_ids(r, "consent_questions", [question.id for question in questions], "id")
    if policies is None:
        r.missing("policies", " (it says which calls are recorded for the purposes)")
    else:
        _check_policy_order(r, policies, catalog.matches)
    return purposes or (), questions or (), policies or ()


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


def _check_listeners_apart(r: Reader, config: Config) -> None:
    """Two listeners on one port and transport where one listens on every address (``0.0.0.0``, or
    ``::``, which on Linux takes the IPv4 port too) cannot both bind: that one holds the port on the
    other's address as well."""
    if not r.ok("listen", "pbx", "carrier"):
        return
    pbx, carrier = config.listen.pbx, config.listen.carrier
    if pbx == carrier or (pbx.port, pbx.transport) != (carrier.port, carrier.transport):
        return
    first, second = ip_address(pbx.host), ip_address(carrier.host)

    def holds(every: IPv4Address | IPv6Address, other: IPv4Address | IPv6Address) -> bool:
        return every.is_unspecified and (every.version == 6 or other.version == 4)

    if holds(first, second) or holds(second, first):
        r.error(
            "listen",
            f"listen.pbx ({pbx.host}) and listen.carrier ({carrier.host}) both use {pbx.transport} port "
            f"{pbx.port}, and {first if first.is_unspecified else second} is every address of this machine, "
            "so the other cannot listen there too: give both sides the same host (one listener, requests "
            "told apart by source) or different ports",
        )


def _check_transports(r: Reader, config: Config) -> None:
    """callherald talks to each side from that side's listener, so their transports must agree."""
    if not r.ok("listen", "carrier") or not r.ok("carrier"):
        return
    if config.carrier.transport != config.listen.carrier.transport:
        r.error(
            "carrier",
            f"carrier.transport is {config.carrier.transport} but listen.carrier.transport is "
            f"{config.listen.carrier.transport}: "
            "callherald reaches the carrier from its carrier-side listener",
        )
    if not r.ok("listen", "pbx") or not r.ok("pbx"):
        return
    for peer in config.pbx.peers:
        if peer.transport != config.listen.pbx.transport:
            r.error(
                "pbx",
                f"peer {peer.name!r} uses {peer.transport} but listen.pbx.transport is "
                f"{config.listen.pbx.transport}: callherald reaches the PBX from its PBX-side listener",
            )
            return


def _read_config(r: Reader) -> Config:
    listen = r.mapping("listen", _read_listen)
    pbx = r.mapping("pbx", _read_pbx)
    carrier = r.mapping("carrier", _read_carrier)
    media = r.mapping("media", lambda m: _read_media(m, listen if r.ok("listen") else None))
    limits = r.mapping("limits", _read_limits, required=False)
    routing = r.mapping("routing", _read_routing, required=False)
    catalog = _Catalog(prompt_languages={EMBEDDED_PROMPT_SET_ID: EMBEDDED_PROMPT_LANGUAGES})
    embedded_policy = not any(r.has(key) for key in POLICY_SECTIONS)
    announcements = r.mapping(
        "announcements", _announcements_reader(catalog, embedded_policy=embedded_policy), required=False
    )
    purposes, consent_questions, policies = _read_policy_sections(r, catalog)
    recording = r.mapping("recording", _read_recording_section, required=False)
    data_dir = r.path_("data_dir", None)
    logging = r.mapping("logging", _read_logging, required=False)
    config = Config(
        listen=listen,
        pbx=pbx,
        carrier=carrier,
        media=media,
        limits=limits,
        routing=routing,
        announcements=announcements,
        purposes=purposes,
        consent_questions=consent_questions,
        policies=policies,
        recording=recording,
        data_dir=_default_data_dir(r.ctx.environ) if data_dir is None else data_dir,
        logging=logging,
    )
    _check_shared_listen_address(r, config)
    _check_listeners_apart(r, config)
    _check_transports(r, config)
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
    read_secrets: bool = True,
) -> Config:
    """Validate YAML ``text`` into a `Config`.

    Args:
        text: the YAML document.
        source: the name problems are reported under (normally the file's path).
        base_dir: directory relative paths in the file (``{file: ...}`` secrets, prompt files,
            ``recording.recipients``, ``data_dir``) are resolved against; None leaves them relative
            to the working directory.
        environ: environment for ``{env: ...}`` secrets and ``$CALLHERALD_HOME``; default `os.environ`.
        read_secrets: False leaves every secret empty, its form checked but its variable or file
            not read: for the commands that never use one (recordings, calls).

    Raises:
        ConfigError: listing every problem found, each with file, line and key path.
    """
    ctx = Context(
        source=source,
        base_dir=base_dir,
        environ=os.environ if environ is None else environ,
        read_secrets=read_secrets,
    )
    return read_document(text, ctx, _read_config)


def load_config(
    path: str | os.PathLike[str], *, environ: Mapping[str, str] | None = None, read_secrets: bool = True
) -> Config:
    """Read and validate the YAML file at ``path`` (see `parse_config`); relative paths inside it
    are relative to the file's directory.

    Raises:
        ConfigError: when the file cannot be read or is not a valid configuration.
    """
    source = os.fspath(path)
    try:
        text = Path(source).read_text(encoding="utf-8")
    except UnicodeDecodeError:  # its offset alone does not say the line: read the bytes for that
        raise ConfigError([_not_utf8(source)]) from None
    except OSError as exc:
        raise ConfigError(
            [ConfigProblem(file=source, line=None, key="", message=f"cannot read: {exc.strerror or exc}")]
        ) from None
    return parse_config(
        text,
        source=source,
        base_dir=Path(os.path.abspath(source)).parent,
        environ=environ,
        read_secrets=read_secrets,
    )


def _not_utf8(source: str) -> ConfigProblem:
    """Where the file at ``source`` stops being UTF-8: the line, and the column in characters."""
    try:
        data = Path(source).read_bytes()
        data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line_start = data.rfind(b"\n", 0, exc.start) + 1
        column = len(data[line_start : exc.start].decode("utf-8", errors="replace")) + 1
        message = (
            f"cannot read: byte 0x{data[exc.start]:02x} in column {column} is not UTF-8 ({exc.reason}); "
            "save the file as UTF-8"
        )
        return ConfigProblem(file=source, line=data.count(b"\n", 0, exc.start) + 1, key="", message=message)
    except OSError as exc:
        return ConfigProblem(file=source, line=None, key="", message=f"cannot read: {exc.strerror or exc}")
    return ConfigProblem(file=source, line=None, key="", message="cannot read: the file is not UTF-8")


def problem_at(path: str | os.PathLike[str], key: str, message: str) -> ConfigProblem:
    """A problem found after loading (an announcement that does not decode, a warning) about
    ``key`` of the file at ``path``, placed at the line that key is written on (the nearest
    enclosing key's when it is not written)."""
    source = os.fspath(path)
    try:
        line = key_line(Path(source).read_text(encoding="utf-8"), key)
    except (OSError, UnicodeDecodeError):
        line = None
    return ConfigProblem(file=source, line=line, key=key, message=message)


def config_keys() -> list[str]:
    """Every dotted key path the schema accepts, in schema order, sections included.

    Keys of list items appear under the list's key (``pbx.peers.host``); a secret is one key
    (its ``env``/``file`` form is not listed).
    """
    return discover_keys(_read_config)
