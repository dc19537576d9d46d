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
    "DEFAULT_CONSENT_TIMEOUT_S",
    "DEFAULT_LANGUAGE",
    "DEFAULT_MAX_CONCURRENT_CALLS",
    "DEFAULT_MAX_MESSAGE_BYTES",
    "DEFAULT_MAX_NEW_CALLS_PER_S",
    "DEFAULT_NOTICE_HOLD_TIMEOUT_S",
    "DEFAULT_NO_RESPONSE_TIMEOUT_S",
    "DEFAULT_OVERLOAD_LAG_MS",
    "DEFAULT_RECORDING_MAX_WRITE_DELAY_S",
    "DEFAULT_RECORDING_MIN_FREE_MB",
    "DEFAULT_REGISTRATION_INTERVAL_S",
    "DEFAULT_REGISTRATION_RETRY_MAX_S",
    "DEFAULT_REGISTRATION_RETRY_MIN_S",
    "DEFAULT_RING_TIMEOUT_S",
    "DEFAULT_RTP_INACTIVITY_TIMEOUT_S",
    "DEFAULT_SIP_PORT",
    "EMBEDDED_PROMPT_LANGUAGES",
    "EMBEDDED_PROMPT_SET_ID",
    "EMBEDDED_PROMPT_YES_DIGIT",
    "STORAGE_REGION_MAX_LENGTH",
    "AnnouncementMode",
    "Announcements",
    "CallDirection",
    "Carrier",
    "CarrierCredentials",
    "Config",
    "ConsentQuestion",
    "FailureBehaviour",
    "HostPort",
    "InboundRoute",
    "LawfulBasis",
    "Limits",
    "Listen",
    "ListenAddress",
    "LogLevel",
    "Logging",
    "Media",
    "Network",
    "Pbx",
    "PbxPeer",
    "Policy",
    "PolicyMatch",
    "PromptConfig",
    "PromptSetConfig",
    "Purpose",
    "Recording",
    "Registration",
    "Routing",
    "Secret",
    "SipTarget",
    "Transport",
    "TrunkAccount",
]

DEFAULT_SIP_PORT = 5060
DEFAULT_MAX_CONCURRENT_CALLS = 500
DEFAULT_MAX_NEW_CALLS_PER_S = 0.0
DEFAULT_OVERLOAD_LAG_MS = 250
DEFAULT_RTP_INACTIVITY_TIMEOUT_S = 60.0
DEFAULT_RING_TIMEOUT_S = 180.0
DEFAULT_NO_RESPONSE_TIMEOUT_S = 32.0
DEFAULT_NOTICE_HOLD_TIMEOUT_S = 30.0
DEFAULT_MAX_MESSAGE_BYTES = 65535
DEFAULT_REGISTRATION_INTERVAL_S = 3600
DEFAULT_REGISTRATION_RETRY_MIN_S = 30
DEFAULT_REGISTRATION_RETRY_MAX_S = 600
DEFAULT_LANGUAGE = "nl"
DEFAULT_CONSENT_TIMEOUT_S = 6.0
DEFAULT_RECORDING_MIN_FREE_MB = 200
DEFAULT_RECORDING_MAX_WRITE_DELAY_S = 5
STORAGE_REGION_MAX_LENGTH = 200
"""The longest ``recording.storage_region`` (the evidence store keeps no longer one)."""
EMBEDDED_PROMPT_SET_ID = "default"
"""The prompt-set id that names the announcement embedded in callherald (no files needed)."""
EMBEDDED_PROMPT_LANGUAGES = ("nl", "en")
"""The languages the embedded prompt set is spoken in."""
EMBEDDED_PROMPT_YES_DIGIT = "1"
"""The key the embedded prompt set's consent question asks for ("press 1", "druk dan op 1")."""

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


class LawfulBasis(StrEnum):
    """The GDPR Art. 6(1) ground a purpose rests on, fixed before any recording (Art. 5(1)(b))."""

    CONTRACT = "contract"
    LEGITIMATE_INTEREST = "legitimate_interest"
    LEGAL_OBLIGATION = "legal_obligation"
    CONSENT = "consent"

    @property
    def article(self) -> str:
        """The GDPR provision, for the evidence record and the Art. 30 record (``"6(1)(b)"``)."""
        return _ARTICLES[self]

    @property
    def needs_reference(self) -> bool:
        """True when the purpose must cite its interest assessment or legal ground (Art. 6(1)(c), (f))."""
        return self in (LawfulBasis.LEGITIMATE_INTEREST, LawfulBasis.LEGAL_OBLIGATION)


_ARTICLES = {
    LawfulBasis.CONSENT: "6(1)(a)",
    LawfulBasis.CONTRACT: "6(1)(b)",
    LawfulBasis.LEGAL_OBLIGATION: "6(1)(c)",
    LawfulBasis.LEGITIMATE_INTEREST: "6(1)(f)",
}


class CallDirection(StrEnum):
    """Which calls a policy applies to: from the carrier (``inbound``), from the PBX (``outbound``)
    or both (``any``). A call itself is always inbound or outbound."""

    INBOUND = "inbound"
    OUTBOUND = "outbound"
    ANY = "any"


class AnnouncementMode(StrEnum):
    """How an inbound caller hears the notice: after callherald answers (``answer``, 200 OK) or as
    early media before any answer (``early_media``, 183 Session Progress, RFC 3261 §13.3.1.1)."""

    ANSWER = "answer"
    EARLY_MEDIA = "early_media"


class FailureBehaviour(StrEnum):
    """What happens to a call whose notice cannot be played. Recording is fail-closed either way:
    ``connect_unrecorded`` connects the call without recording it, ``reject`` refuses it."""

    CONNECT_UNRECORDED = "connect_unrecorded"
    REJECT = "reject"


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
    constant_ssrc: bool = True
    """After a notice or question, renumber the other side's packets into callherald's stream, so
    each party hears one stream (one SSRC, continuous numbering) for the whole call. ``false``
    leaves them unchanged: the party then hears a new SSRC after each prompt (RFC 3550 §8.2),
    which costs no CPU per packet. Default ``true``."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Limits:
    """Resource limits."""

    max_concurrent_calls: int = DEFAULT_MAX_CONCURRENT_CALLS
    """Calls above this are refused with 503, at least 1. Default 500."""
    max_new_calls_per_s: float = DEFAULT_MAX_NEW_CALLS_PER_S
    """New calls accepted per second, each side's together (a token bucket holding one second of
    them, at least one); attempts over it are refused with 503 and Retry-After. 0-10000; 0, the
    default, sets no limit."""
    overload_lag_ms: int = DEFAULT_OVERLOAD_LAG_MS
    """While callherald's event loop keeps running this late (three checks in a row, 0.1 s
    apart), new calls are refused with 503 and Retry-After, so that the calls already up keep
    their notices' timing; it ends once the loop has kept time for about a second. Milliseconds,
    0-10000; 0 turns it off. Default 250."""
    rtp_inactivity_timeout_s: float = DEFAULT_RTP_INACTIVITY_TIMEOUT_S
    """A call whose legs both sent no RTP for this long is ended, seconds, 1-86400. Default 60."""
    max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES
    """Larger SIP messages are dropped, bytes, 1024-65535. Default 65535."""
    ring_timeout_s: float = DEFAULT_RING_TIMEOUT_S
    """An unanswered call is cancelled (480 to the caller) after this long, seconds, 5-3600. Default 180."""
    no_response_timeout_s: float = DEFAULT_NO_RESPONSE_TIMEOUT_S
    """An INVITE callherald sends (to the PBX or the carrier) that gets no response at all, not even
    100 Trying, is given up after this long and the call fails as for 408: the peer is taken as
    unreachable (RFC 3261 §17.1.1.2, Timer B). Seconds, 2-32. Default 32 (64 * T1)."""
    notice_hold_timeout_s: float = DEFAULT_NOTICE_HOLD_TIMEOUT_S
    """An outside party that holds the call (sendonly, inactive or 0.0.0.0, RFC 3264 §8.4) before it
    has heard the notice and the consent questions, from its first SDP on or while they play, is
    waited for this long; still on hold then, it has not heard the notice, and the call goes as its
    policy's ``on_failure`` says for a notice that cannot be played. Seconds, 1-3600. Default 30."""


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
class PromptConfig:
    """One language of a configured prompt set (a ``prompts`` entry, keyed by its language)."""

    language: str
    """The mapping key: a language tag such as ``nl`` or ``en-GB``."""
    file: Path
    """The audio file, any format ffmpeg reads; a relative path is relative to the config file's
    directory. It must exist and be a regular file (whether it decodes is checked on import)."""
    text: str | None = None
    """What the prompt says, for documentation and the Art. 30 record. Default: none."""


@dataclass(frozen=True, slots=True, kw_only=True)
class PromptSetConfig:
    """An announcement or consent question in one or more languages (``announcements.prompt_sets``)."""

    id: str
    """Unique id, 1-64 letters, digits, ``.``, ``_`` or ``-``; ``default`` is reserved for the
    embedded announcement."""
    prompts: tuple[PromptConfig, ...]
    """One file per language (at least one), written as a mapping ``language: {file, text}``."""

    @property
    def languages(self) -> tuple[str, ...]:
        """The languages, in the order given."""
        return tuple(prompt.language for prompt in self.prompts)

    def to_mapping(self) -> dict[str, object]:
        """The set as plain data in the shape the announcements package imports
        (``{"id": ..., "prompts": {language: {"file": ..., "text": ...}}}``), with resolved paths."""
        prompts: dict[str, object] = {}
        for prompt in self.prompts:
            entry: dict[str, object] = {"file": str(prompt.file)}
            if prompt.text is not None:
                entry["text"] = prompt.text
            prompts[prompt.language] = entry
        return {"id": self.id, "prompts": prompts}


@dataclass(frozen=True, slots=True, kw_only=True)
class Announcements:
    """The configured announcements."""

    prompt_sets: tuple[PromptSetConfig, ...] = ()
    """Prompt sets from audio files (unique ids). Default: none; the embedded set ``default``
    is always available."""
    default_language: str = DEFAULT_LANGUAGE
    """Language of a policy that names none, a tag such as ``nl``. Default ``nl``."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Purpose:
    """Why calls are recorded: one purpose with its lawful basis and retention (GDPR Art. 5(1)(b),
    6(1), 5(1)(e)). Each recording carries the purposes of the policy it was made under."""

    id: str
    """Unique id (``evidence``, ``training``, ``quality``), 1-64 letters, digits, ``.``, ``_`` or ``-``."""
    lawful_basis: LawfulBasis
    """``contract``, ``legitimate_interest``, ``legal_obligation`` or ``consent``."""
    reference: str | None = None
    """The interest assessment (document id, version, date) or the legal ground. Required for
    ``legitimate_interest`` and ``legal_obligation``; optional otherwise. Default: none."""
    retention_days: int
    """Days a recording is kept for this purpose, 1-36525 (100 years); no default (no unlimited
    retention)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ConsentQuestion:
    """A key-press question asking for consent to one consent-based purpose (GDPR Art. 7; only the
    yes digit is consent, any other key or no key within the timeout is a refusal)."""

    id: str
    """Unique id, 1-64 letters, digits, ``.``, ``_`` or ``-``."""
    version: str
    """Version of the question's wording, stored with each answer; an integer or a quoted
    string in YAML, kept as text (``1`` -> ``"1"``)."""
    purpose: str
    """The id of the purpose asked about; its lawful basis must be ``consent``."""
    prompt_set: str
    """The id of the prompt set that asks the question (``default``: the embedded one)."""
    yes_digit: str
    """The one DTMF key that means yes: a quoted ``"0"``-``"9"``, ``"*"`` or ``"#"``."""
    timeout_s: float = DEFAULT_CONSENT_TIMEOUT_S
    """Seconds to wait for the key after the prompt ends, 1-30. Default 6."""


@dataclass(frozen=True, slots=True, kw_only=True)
class PolicyMatch:
    """Which calls a policy applies to. A call matches when its direction matches and, for each of
    ``called`` and ``calling`` that is given, its number starts with one of the prefixes. Numbers
    and prefixes are compared without spaces, dashes or a leading ``+`` (see `config.policies`)."""

    direction: CallDirection = CallDirection.ANY
    """``inbound``, ``outbound`` or ``any``. Default ``any``."""
    called: tuple[str, ...] = ()
    """Prefixes of the dialled number, quoted: one (``"+3120"``) or a list (``["+3120", "+3130"]``).
    Default (the key left out; written empty it is an error): any number."""
    calling: tuple[str, ...] = ()
    """Prefixes of the caller's number, quoted, one or a list. Default (the key left out): any number."""

    @property
    def is_catch_all(self) -> bool:
        """True when every call in ``direction`` matches (no number prefixes)."""
        return not self.called and not self.calling


@dataclass(frozen=True, slots=True, kw_only=True)
class Policy:
    """What happens on a call: the notice, the purposes it is recorded for and the consent questions,
    or, with ``record`` false, nothing at all (no notice, no question, no recording).

    Policies are tried in order and the first that matches a call applies; the list must cover every
    call (end it with a catch-all policy without ``match`` prefixes).

    The loader guarantees: with ``record`` true, ``notice`` is set and ``purposes`` has at least one
    item; with ``record`` false, ``notice`` is None, ``purposes``, ``questions`` are empty,
    ``withdrawal_digit`` and ``pci_pause_code`` are None and ``language`` is
    ``announcements.default_language``."""

    name: str
    """Unique name, for logs and the evidence record."""
    match: PolicyMatch = field(default_factory=PolicyMatch)
    """The calls it applies to. Default: every call."""
    record: bool = True
    """False: calls it matches are neither announced nor recorded (e.g. emergency numbers); then
    notice, language, purposes, questions, withdrawal_digit, pci_pause_code and pci_pause_tones
    must be absent.
    Default true."""
    notice: str | None = None
    """The id of the prompt set played as the recording notice (``default``: the embedded one).
    Required when ``record`` is true; None when it is false."""
    language: str
    """Language of the notice and questions, a tag such as ``nl``. Default:
    ``announcements.default_language`` (always so when ``record`` is false, where it is unused)."""
    purposes: tuple[str, ...] = ()
    """Ids of the purposes calls are recorded for (at least one, each once) when ``record`` is true;
    empty when it is false. Every consent-based purpose needs a question in ``questions``."""
    questions: tuple[str, ...] = ()
    """Ids of the consent questions asked after the notice, in order; one per consent-based purpose
    of this policy. Default: none."""
    mode: AnnouncementMode = AnnouncementMode.ANSWER
    """``answer`` or ``early_media`` (inbound calls). Default ``answer``."""
    on_failure: FailureBehaviour = FailureBehaviour.CONNECT_UNRECORDED
    """``connect_unrecorded`` or ``reject`` when the notice cannot be played. Default
    ``connect_unrecorded``."""
    withdrawal_digit: str | None = None
    """A quoted DTMF key (``"*"``) the outside party presses to withdraw consent during the call;
    it must differ from every question's yes digit. Default: none (the key left out; written
    empty, as an unquoted ``#`` leaves it, it is an error)."""
    pci_pause_code: str | None = None
    """A quoted DTMF code (``"*9"``, 1-8 keys of 0-9, ``*``, ``#``) that pauses recording for a card
    payment (PCI DSS 3.3.1). Default: none (the key left out; written empty, as an unquoted ``#7``
    leaves it, it is an error)."""
    pci_pause_tones: bool = True
    """Whether the outside party hears its PCI pause code confirmed: two short high beeps when it
    paused the recording, one low beep when it resumed it. Given only with ``pci_pause_code``.
    Default true."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Recording:
    """How recordings are made and who may decrypt them. Whether a call is recorded, and for which
    purposes, is up to its `Policy`; this section can only switch recording off altogether."""

    recipients: tuple[Path, ...] = ()
    """Public key files of those who may decrypt recordings (a reviewer, an escrow key), each file
    and each key once (a copy of a key file under another name is the same key); a relative path
    is relative to the config file's directory. The loader checks only that each
    is a regular file holding a PEM ``BEGIN PUBLIC KEY`` block or one 43/44-character base64
    token; the key itself is parsed when callherald starts. Default: none, meaning a development
    key pair is generated under ``data_dir/keys`` and used, with a loud warning."""
    min_free_mb: int = DEFAULT_RECORDING_MIN_FREE_MB
    """No new recording is started while the data directory's file system has less free space
    than this, MiB, at least 0 (calls still connect, unrecorded). Default 200."""
    max_write_delay_s: int = DEFAULT_RECORDING_MAX_WRITE_DELAY_S
    """No new recording is started while the audio handed to the file thread has waited longer
    than this, s (a slow or stalled disk; the audio waits in memory), until it is back within half
    of it; calls still connect, unrecorded. 0 to 3600; 0 never waits. Default 5."""
    enabled: bool = True
    """False: nothing is recorded at all; notice and consent questions still happen as the
    policies say. Default true."""
    held_evidence_dir: Path | None = None
    """An existing directory, best on another disk than ``data_dir``, where a stop keeps the
    evidence that waits for disk space (the database could not take it), for the next start to
    write into the database; a relative path is relative to the config file's directory. Default:
    none, meaning ``data_dir``, which is also where it falls back to."""
    manifest_signing_key: Path | None = None
    """The Ed25519 private key file (PEM PKCS #8, unencrypted, mode 0600) callherald signs each
    recording's manifest in the audit log with (``storage.signing``); made there, with its public
    key beside it (``.pub``), on the first start that finds none. A relative path is relative to
    the config file's directory. Default: none, meaning ``data_dir/keys/manifest-signing.key``."""
    storage_region: str | None = None
    """Where ``data_dir``'s recordings are kept, in the words the record of processing uses
    (``"EU, Amsterdam, own rack"``): one line of printable text, at most
    ``STORAGE_REGION_MAX_LENGTH`` characters. Stored with each recording as it starts (GDPR Art.
    30(1)(e), 44: whether they leave the EU). Default: none, stored as not stated."""
    worm: bool = False
    """True when ``data_dir/recordings`` is on write-once (WORM) storage, as MiFID lines need
    (Del. Reg. 2017/565 Art. 72(1)(b)): callherald makes nothing write-once itself, it states
    what the operator provides. Stored with each recording as it starts; erasing a recording so
    kept destroys its keys and leaves its file. Default false."""


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
    announcements: Announcements = field(default_factory=Announcements)
    """Prompt sets and the default language. Default: only the embedded prompt set, in ``nl``."""
    purposes: tuple[Purpose, ...]
    """The purposes calls may be recorded for (unique ids). Required with ``policies``; when
    ``purposes``, ``consent_questions`` and ``policies`` are all absent, the embedded default
    purposes, question and policy apply (see `config.defaults`)."""
    consent_questions: tuple[ConsentQuestion, ...] = ()
    """Consent questions (unique ids), each for a consent-based purpose. Default: none (or the
    embedded default question, see ``purposes``)."""
    policies: tuple[Policy, ...]
    """Policies in order, first match wins; every call must match one. Required with ``purposes``."""
    recording: Recording = field(default_factory=Recording)
    """Recording keys and storage. Default: all defaults (recording on, the development key pair)."""
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

    def prompt_set(self, prompt_set_id: str) -> PromptSetConfig | None:
        """The configured prompt set ``prompt_set_id``; None for the embedded ``default``.

        Raises:
            KeyError: when no such set is configured.
        """
        if prompt_set_id == EMBEDDED_PROMPT_SET_ID:
            return None
        for prompt_set in self.announcements.prompt_sets:
            if prompt_set.id == prompt_set_id:
                return prompt_set
        raise KeyError(prompt_set_id)

    def purpose(self, purpose_id: str) -> Purpose:
        """The purpose ``purpose_id``; raises `KeyError` when there is none."""
        for purpose in self.purposes:
            if purpose.id == purpose_id:
                return purpose
        raise KeyError(purpose_id)

    def consent_question(self, question_id: str) -> ConsentQuestion:
        """The consent question ``question_id``; raises `KeyError` when there is none."""
        for question in self.consent_questions:
            if question.id == question_id:
                return question
        raise KeyError(question_id)

    def policy_purposes(self, policy: Policy) -> tuple[Purpose, ...]:
        """The purposes ``policy`` names, in its order (none when it does not record)."""
        return tuple(self.purpose(purpose_id) for purpose_id in policy.purposes)

    def policy_questions(self, policy: Policy) -> tuple[ConsentQuestion, ...]:
        """The consent questions ``policy`` asks, in its order (none when it does not record)."""
        return tuple(self.consent_question(question_id) for question_id in policy.questions)
