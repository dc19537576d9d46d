"""Tests for the configuration package: a full file, every error message verbatim, secrets, defaults."""

from __future__ import annotations

import dataclasses
from ipaddress import ip_network
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import example, given
from hypothesis import strategies as st

from config import (
    EMBEDDED_DEFAULT_YAML,
    AnnouncementMode,
    Announcements,
    CallDirection,
    Carrier,
    CarrierCredentials,
    Config,
    ConfigError,
    ConfigProblem,
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
    Secret,
    SipTarget,
    Transport,
    TrunkAccount,
    config_keys,
    default_config,
    load_config,
    parse_config,
    problem_at,
)

FULL_EXAMPLE = """\
# callherald configuration for Example BV
listen:
  pbx:
    host: 10.0.0.1
    port: 5060
    transport: udp
  carrier:
    host: 192.0.2.1
    port: 5080
    transport: TCP
pbx:
  peers:
    - name: office
      host: 10.0.0.5
      port: 5062
      transport: udp
      allowed_networks: [10.0.0.0/24, "2001:db8::/32"]
    - name: backup
      host: pbx2.example.internal
      allowed_networks:
        - 10.0.1.7
  trunk_accounts:
    - username: "1001"
      password: {env: CH_TRUNK_PASSWORD}
      realm: callherald.example
  default_target: "sip:reception@10.0.0.5:5062"
carrier:
  host: sip.carrier.example
  port: 5060
  transport: tcp
  outbound_proxy: "proxy.carrier.example:5070"
  allowed_networks: [198.51.100.0/24]
  credentials:
    username: "+31201234567"
    password:
      file: secrets/carrier-password
    realm: carrier.example
    auth_username: "31201234567"
  registration:
    enabled: true
    interval_s: 1800
    retry_min_s: 10
    retry_max_s: 300
media:
  rtp_port_min: 30000
  rtp_port_max: 30999
  advertised_address: 192.0.2.1
  bind_address: 0.0.0.0
  constant_ssrc: false
limits:
  max_concurrent_calls: 50
  max_new_calls_per_s: 12.5
  overload_lag_ms: 400
  rtp_inactivity_timeout_s: 30.5
  ring_timeout_s: 45
  no_response_timeout_s: 6
  notice_hold_timeout_s: 20
  max_message_bytes: 8192
routing:
  inbound:
    - did: "+31201234567"
      target: "10.0.0.5:5062"
    - did: "0201234568"
      target: "sip:sales@10.0.0.5:5062;transport=udp"
  default_target: "sip:operator@10.0.0.5:5062"
announcements:
  default_language: nl
  prompt_sets:
    - id: welcome
      prompts:
        nl: {file: prompts/welkom.wav, text: "Dit gesprek wordt opgenomen."}
        en-GB:
          file: prompts/welcome.mp3
    - id: training-question
      prompts:
        nl: {file: prompts/training-nl.ogg}
        en-GB: {file: prompts/training-en.ogg}
purposes:
  - id: evidence
    lawful_basis: contract
    retention_days: 730
  - id: quality
    lawful_basis: legitimate_interest
    reference: "LIA-2026-03 v2, 2026-11-01"
    retention_days: 30
  - id: mifid
    lawful_basis: legal_obligation
    reference: "MiFID II Art. 16(7)"
    retention_days: 1826
  - id: training
    lawful_basis: consent
    retention_days: 90
consent_questions:
  - id: training-en
    version: 3
    purpose: training
    prompt_set: training-question
    yes_digit: "1"
    timeout_s: 7.5
  - id: training-default
    version: "2026-11"
    purpose: training
    prompt_set: default
    yes_digit: "#"
policies:
  - name: emergency
    match: {called: ["112"]}
    record: false
  - name: sales-inbound
    match:
      direction: inbound
      called: ["+31 20 123", "020-123"]
      calling: ["+31"]
    notice: welcome
    language: en-GB
    purposes: [evidence, training]
    questions: [training-en]
    mode: early_media
    on_failure: reject
    withdrawal_digit: "*"
    pci_pause_code: "#9"
    pci_pause_tones: false
  - name: everything-else
    notice: default
    purposes: [evidence, quality, mifid, training]
    questions: [training-default]
recording:
  recipients: [keys/reviewer.pub, keys/escrow.b64]
  min_free_mb: 500
  max_write_delay_s: 30
  enabled: true
  held_evidence_dir: spool
  manifest_signing_key: keys/manifest-signing.key
  storage_region: "EU, Amsterdam, own rack"
  worm: true
data_dir: data
logging:
  level: debug
"""

PROMPT_FILES = ("welkom.wav", "welcome.mp3", "training-nl.ogg", "training-en.ogg")

# Real X25519 public keys, in the two forms `callherald keys generate` and storage.keys read.
REVIEWER_PEM = """\
# callherald X25519 recording key, key id eedd883da0a94515
-----BEGIN PUBLIC KEY-----
MCowBQYDK2VuAyEAj0DFrbaPJWJK5bIU6nZ6bslNgp09e14a0bpvPiE4KF8=
-----END PUBLIC KEY-----
"""
ESCROW_BASE64 = "B6N8vBQgk8i3VdwbEOhstCY3StFqqFPtC9/AsrhtHHw=\n"


def full_example_config(config_dir: Path) -> Config:
    """What FULL_EXAMPLE must load as, for a file in ``config_dir``."""
    return Config(
        listen=Listen(
            pbx=ListenAddress(host="10.0.0.1", port=5060, transport=Transport.UDP),
            carrier=ListenAddress(host="192.0.2.1", port=5080, transport=Transport.TCP),
        ),
        pbx=Pbx(
            peers=(
                PbxPeer(
                    name="office",
                    host="10.0.0.5",
                    port=5062,
                    transport=Transport.UDP,
                    allowed_networks=(ip_network("10.0.0.0/24"), ip_network("2001:db8::/32")),
                ),
                PbxPeer(
                    name="backup",
                    host="pbx2.example.internal",
                    port=5060,
                    transport=Transport.UDP,
                    allowed_networks=(ip_network("10.0.1.7/32"),),
                ),
            ),
            trunk_accounts=(
                TrunkAccount(
                    username="1001",
                    password=Secret(value="trunk-secret", source="env:CH_TRUNK_PASSWORD"),
                    realm="callherald.example",
                ),
            ),
            default_target=SipTarget(uri="sip:reception@10.0.0.5:5062", host="10.0.0.5", port=5062),
        ),
        carrier=Carrier(
            host="sip.carrier.example",
            port=5060,
            transport=Transport.TCP,
            outbound_proxy=HostPort(host="proxy.carrier.example", port=5070),
            allowed_networks=(ip_network("198.51.100.0/24"),),
            credentials=CarrierCredentials(
                username="+31201234567",
                password=Secret(
                    value="carrier secret",
                    source=f"file:{config_dir / 'secrets' / 'carrier-password'}",
                ),
                realm="carrier.example",
                auth_username="31201234567",
            ),
            registration=Registration(enabled=True, interval_s=1800, retry_min_s=10, retry_max_s=300),
        ),
        media=Media(
            rtp_port_min=30000,
            rtp_port_max=30999,
            advertised_address="192.0.2.1",
            bind_address="0.0.0.0",
            constant_ssrc=False,
        ),
        limits=Limits(
            max_concurrent_calls=50,
            max_new_calls_per_s=12.5,
            overload_lag_ms=400,
            rtp_inactivity_timeout_s=30.5,
            max_message_bytes=8192,
            ring_timeout_s=45.0,
            no_response_timeout_s=6.0,
            notice_hold_timeout_s=20.0,
        ),
        routing=Routing(
            inbound=(
                InboundRoute(
                    did="+31201234567",
                    target=SipTarget(uri="sip:10.0.0.5:5062", host="10.0.0.5", port=5062),
                ),
                InboundRoute(
                    did="0201234568",
                    target=SipTarget(uri="sip:sales@10.0.0.5:5062;transport=udp", host="10.0.0.5", port=5062),
                ),
            ),
            default_target=SipTarget(uri="sip:operator@10.0.0.5:5062", host="10.0.0.5", port=5062),
        ),
        announcements=Announcements(
            prompt_sets=(
                PromptSetConfig(
                    id="welcome",
                    prompts=(
                        PromptConfig(
                            language="nl",
                            file=config_dir / "prompts" / "welkom.wav",
                            text="Dit gesprek wordt opgenomen.",
                        ),
                        PromptConfig(
                            language="en-GB", file=config_dir / "prompts" / "welcome.mp3", text=None
                        ),
                    ),
                ),
                PromptSetConfig(
                    id="training-question",
                    prompts=(
                        PromptConfig(language="nl", file=config_dir / "prompts" / "training-nl.ogg"),
                        PromptConfig(language="en-GB", file=config_dir / "prompts" / "training-en.ogg"),
                    ),
                ),
            ),
            default_language="nl",
        ),
        purposes=(
            Purpose(id="evidence", lawful_basis=LawfulBasis.CONTRACT, reference=None, retention_days=730),
            Purpose(
                id="quality",
                lawful_basis=LawfulBasis.LEGITIMATE_INTEREST,
                reference="LIA-2026-03 v2, 2026-11-01",
                retention_days=30,
            ),
            Purpose(
                id="mifid",
                lawful_basis=LawfulBasis.LEGAL_OBLIGATION,
                reference="MiFID II Art. 16(7)",
                retention_days=1826,
            ),
            Purpose(id="training", lawful_basis=LawfulBasis.CONSENT, reference=None, retention_days=90),
        ),
        consent_questions=(
            ConsentQuestion(
                id="training-en",
                version="3",
                purpose="training",
                prompt_set="training-question",
                yes_digit="1",
                timeout_s=7.5,
            ),
            ConsentQuestion(
                id="training-default",
                version="2026-11",
                purpose="training",
                prompt_set="default",
                yes_digit="#",
                timeout_s=6.0,
            ),
        ),
        policies=(
            Policy(
                name="emergency",
                match=PolicyMatch(direction=CallDirection.ANY, called=("112",), calling=()),
                record=False,
                notice=None,
                language="nl",
                purposes=(),
                questions=(),
                mode=AnnouncementMode.ANSWER,
                on_failure=FailureBehaviour.CONNECT_UNRECORDED,
                withdrawal_digit=None,
                pci_pause_code=None,
            ),
            Policy(
                name="sales-inbound",
                match=PolicyMatch(
                    direction=CallDirection.INBOUND, called=("+3120123", "020123"), calling=("+31",)
                ),
                record=True,
                notice="welcome",
                language="en-GB",
                purposes=("evidence", "training"),
                questions=("training-en",),
                mode=AnnouncementMode.EARLY_MEDIA,
                on_failure=FailureBehaviour.REJECT,
                withdrawal_digit="*",
                pci_pause_code="#9",
                pci_pause_tones=False,
            ),
            Policy(
                name="everything-else",
                match=PolicyMatch(direction=CallDirection.ANY, called=(), calling=()),
                record=True,
                notice="default",
                language="nl",
                purposes=("evidence", "quality", "mifid", "training"),
                questions=("training-default",),
                mode=AnnouncementMode.ANSWER,
                on_failure=FailureBehaviour.CONNECT_UNRECORDED,
                withdrawal_digit=None,
                pci_pause_code=None,
            ),
        ),
        recording=Recording(
            recipients=(config_dir / "keys" / "reviewer.pub", config_dir / "keys" / "escrow.b64"),
            min_free_mb=500,
            max_write_delay_s=30,
            enabled=True,
            held_evidence_dir=config_dir / "spool",
            manifest_signing_key=config_dir / "keys" / "manifest-signing.key",
            storage_region="EU, Amsterdam, own rack",
            worm=True,
        ),
        data_dir=config_dir / "data",
        logging=Logging(level=LogLevel.DEBUG),
    )


def write_full_example(tmp_path: Path) -> Path:
    (tmp_path / "secrets").mkdir()
    (tmp_path / "secrets" / "carrier-password").write_text("carrier secret\n", encoding="utf-8")
    (tmp_path / "prompts").mkdir()
    for name in PROMPT_FILES:
        (tmp_path / "prompts" / name).write_bytes(b"audio")
    (tmp_path / "spool").mkdir()
    (tmp_path / "keys").mkdir()
    (tmp_path / "keys" / "reviewer.pub").write_text(REVIEWER_PEM, encoding="ascii")
    (tmp_path / "keys" / "escrow.b64").write_text(ESCROW_BASE64, encoding="ascii")
    path = tmp_path / "callherald.yaml"
    path.write_text(FULL_EXAMPLE, encoding="utf-8")
    return path


def test_full_example_loads(tmp_path: Path) -> None:
    path = write_full_example(tmp_path)
    config = load_config(path, environ={"CH_TRUNK_PASSWORD": "trunk-secret"})
    assert config == full_example_config(tmp_path)
    assert config.carrier.registers is True


def test_load_config_reads_os_environ(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write_full_example(tmp_path)
    monkeypatch.setenv("CH_TRUNK_PASSWORD", "trunk-secret")
    assert load_config(str(path)) == full_example_config(tmp_path)


def _key_paths(node: Any, prefix: str = "") -> set[str]:
    """Dotted key paths used in a safe-loaded document; a secret's env/file form is not a key, and
    the languages of a prompt set's ``prompts`` are one key, ``<language>``."""
    paths: set[str] = set()
    if isinstance(node, list):
        for item in node:
            paths |= _key_paths(item, prefix)
    elif isinstance(node, dict) and not prefix.endswith(".password"):
        for key, value in node.items():
            name = "<language>" if prefix == "announcements.prompt_sets.prompts" else key
            path = f"{prefix}.{name}" if prefix else str(name)
            paths |= {path} | _key_paths(value, path)
    return paths


def test_full_example_uses_every_key_and_config_keys_lists_them() -> None:
    assert _key_paths(yaml.safe_load(FULL_EXAMPLE)) == set(config_keys())


def test_config_keys_in_schema_order() -> None:
    keys = config_keys()
    assert len(keys) == len(set(keys))
    assert keys[:5] == ["listen", "listen.pbx", "listen.pbx.host", "listen.pbx.port", "listen.pbx.transport"]
    assert keys[-3:] == ["data_dir", "logging", "logging.level"]
    assert "pbx.peers.allowed_networks" in keys
    assert "carrier.credentials.password" in keys
    assert "carrier.registration.retry_max_s" in keys
    assert "routing.inbound.did" in keys
    assert "announcements.prompt_sets.prompts.<language>.file" in keys
    assert keys.index("routing.default_target") < keys.index("announcements") < keys.index("data_dir")
    assert keys.index("purposes") < keys.index("consent_questions") < keys.index("policies")
    assert keys.index("policies.pci_pause_code") < keys.index("recording") < keys.index("data_dir")
    assert keys[keys.index("recording") :][:5] == [
        "recording",
        "recording.recipients",
        "recording.min_free_mb",
        "recording.max_write_delay_s",
        "recording.enabled",
    ]
    assert "policies.match.calling" in keys


# A small valid file; each error case edits one spot. Line numbers are fixed by this layout.
MINIMAL = """\
listen:
  pbx: {host: 127.0.0.1, port: 5060}
  carrier: {host: 127.0.0.1, port: 5070}
pbx:
  peers:
    - name: main
      host: 10.0.0.5
      allowed_networks: [10.0.0.0/24]
  default_target: "10.0.0.5:5060"
carrier:
  host: 192.0.2.10
  port: 5060
media:
  rtp_port_min: 20000
  rtp_port_max: 20999
  advertised_address: 192.0.2.1
"""

ROUTE = '\nrouting:\n  inbound:\n    - did: {did}\n      target: "10.0.0.5"\n'
CREDENTIALS = "  credentials:\n    username: {username}\n    password: {password}\n"


def edit(old: str, new: str) -> str:
    assert MINIMAL.count(old) == 1, old
    return MINIMAL.replace(old, new)


def parse(text: str, environ: dict[str, str] | None = None) -> Config:
    return parse_config(text, source="callherald.yaml", environ={} if environ is None else environ)


def test_minimal_is_valid() -> None:
    config = parse(MINIMAL)
    assert config.carrier.allowed_networks == (ip_network("192.0.2.10/32"),)
    assert config.carrier.credentials is None
    assert config.carrier.registration is None
    assert config.limits == Limits(
        max_concurrent_calls=500,
        rtp_inactivity_timeout_s=60.0,
        max_message_bytes=65535,
        ring_timeout_s=180.0,
        no_response_timeout_s=32.0,  # 64 * T1, RFC 3261 §17.1.1.2
        notice_hold_timeout_s=30.0,
    )
    assert config.limits.max_new_calls_per_s == 0  # no rate limit unless asked for
    assert config.limits.overload_lag_ms == 250  # overload shedding on
    assert config.routing == Routing(inbound=(), default_target=None)
    assert config.logging == Logging(level=LogLevel.INFO)
    assert config.media.bind_address == "0.0.0.0"
    assert config.media.constant_ssrc  # one stream per party unless asked otherwise (RFC 3550 §8.2)
    assert config.data_dir == Path("callherald-data")


ERROR_CASES = [
    pytest.param(
        edit("  port: 5060\nmedia", "  port: 5060\n  transport: tcp\nmedia"),
        "callherald.yaml:10: carrier: carrier.transport is tcp but listen.carrier.transport is udp: "
        "callherald reaches the carrier from its carrier-side listener",
        id="carrier-transport-differs-from-its-listener",
    ),
    pytest.param(
        edit("      host: 10.0.0.5\n", "      host: 10.0.0.5\n      transport: tcp\n"),
        "callherald.yaml:4: pbx: peer 'main' uses tcp but listen.pbx.transport is udp: "
        "callherald reaches the PBX from its PBX-side listener",
        id="pbx-peer-transport-differs-from-its-listener",
    ),
    pytest.param(
        edit("  port: 5060\nmedia", "  prot: 5060\nmedia"),
        "callherald.yaml:12: carrier.prot: unknown key; did you mean 'port'?",
        id="unknown-key-with-suggestion",
    ),
    pytest.param(
        MINIMAL + "colour: blue\n",
        "callherald.yaml:17: colour: unknown key; allowed keys: listen, pbx, carrier, media, limits, "
        "routing, announcements, purposes, consent_questions, policies, recording, data_dir, logging",
        id="unknown-key-without-suggestion",
    ),
    pytest.param(
        MINIMAL + ROUTE.format(did="+31201234567"),
        "callherald.yaml:20: routing.inbound[0].did: expected a phone number (an optional '+' and 1-15 "
        'digits), got +31201234567 unquoted, which YAML reads as the integer 31201234567; quote it: "+31201234567"',
        id="unquoted-number",
    ),
    pytest.param(
        MINIMAL + ROUTE.format(did="0301234567"),
        "callherald.yaml:20: routing.inbound[0].did: expected a phone number (an optional '+' and 1-15 "
        'digits), got 0301234567 unquoted, which YAML reads as the octal number 50674039; quote it: "0301234567"',
        id="octal-looking-number",
    ),
    pytest.param(
        MINIMAL + ROUTE.format(did='"+31 20 123"'),
        "callherald.yaml:20: routing.inbound[0].did: expected a phone number (an optional '+' and 1-15 "
        "digits), got '+31 20 123'",
        id="malformed-did",
    ),
    pytest.param(
        MINIMAL
        + '\nrouting:\n  inbound:\n    - {did: "100", target: "10.0.0.5"}\n    - {did: "100", target: "10.0.0.6"}\n',
        "callherald.yaml:21: routing.inbound[1]: duplicate did '100' (also in entry 0)",
        id="duplicate-did",
    ),
    pytest.param(
        MINIMAL + "  constant_ssrc: sometimes\n",
        "callherald.yaml:17: media.constant_ssrc: expected true or false, got 'sometimes'",
        id="constant-ssrc-not-a-boolean",
    ),
    pytest.param(
        edit("  port: 5060\nmedia", "  port: yes\nmedia"),
        "callherald.yaml:12: carrier.port: expected an integer 1-65535, got yes (a boolean)",
        id="bool-where-int-expected",
    ),
    pytest.param(
        edit("  port: 5060\nmedia", "  port: abc\nmedia"),
        "callherald.yaml:12: carrier.port: expected an integer 1-65535, got 'abc'",
        id="string-where-int-expected",
    ),
    pytest.param(
        edit("  port: 5060\nmedia", "  port: 70000\nmedia"),
        "callherald.yaml:12: carrier.port: expected an integer 1-65535, got 70000",
        id="port-out-of-range",
    ),
    pytest.param(
        edit("  port: 5060\nmedia", "  port: 05060\nmedia"),
        "callherald.yaml:12: carrier.port: expected an integer 1-65535, got 05060, which YAML reads as "
        "the octal number 2608; write plain decimal digits",
        id="octal-port",
    ),
    pytest.param(
        edit("[10.0.0.0/24]", "[10.0.0.0/24, 10.0.0.0/33]"),
        "callherald.yaml:8: pbx.peers[0].allowed_networks[1]: expected a network in CIDR form like "
        "192.0.2.0/24, got '10.0.0.0/33'",
        id="bad-cidr",
    ),
    pytest.param(
        edit("[10.0.0.0/24]", "[10.0.0.1/24]"),
        "callherald.yaml:8: pbx.peers[0].allowed_networks[0]: expected a network in CIDR form like "
        "192.0.2.0/24, got '10.0.0.1/24', which has host bits set; did you mean 10.0.0.0/24?",
        id="cidr-host-bits-set",
    ),
    pytest.param(
        edit("[10.0.0.0/24]", "10.0.0.0/24"),
        "callherald.yaml:8: pbx.peers[0].allowed_networks: expected a list of networks in CIDR form like "
        "[192.0.2.0/24], got '10.0.0.0/24'",
        id="cidr-not-a-list",
    ),
    pytest.param(
        edit("rtp_port_min: 20000", "rtp_port_min: 20001"),
        "callherald.yaml:14: media.rtp_port_min: expected an even port (RTP uses even ports, "
        "RFC 3550 §11), got 20001",
        id="odd-rtp-port-min",
    ),
    pytest.param(
        edit("rtp_port_max: 20999", "rtp_port_max: 21000"),
        "callherald.yaml:15: media.rtp_port_max: expected an odd port (the RTCP port of the last "
        "RTP/RTCP pair), got 21000",
        id="even-rtp-port-max",
    ),
    pytest.param(
        edit("rtp_port_max: 20999", "rtp_port_max: 20001"),
        "callherald.yaml:15: media.rtp_port_max: expected at least rtp_port_min + 3 (20003) for 4 ports, "
        "got 20001",
        id="rtp-range-too-small",
    ),
    pytest.param(
        edit("advertised_address: 192.0.2.1", "advertised_address: example.com"),
        "callherald.yaml:16: media.advertised_address: expected an IP address, got 'example.com'",
        id="advertised-address-not-ip",
    ),
    pytest.param(
        MINIMAL.replace("media:", CREDENTIALS.format(username='"alice"', password="hunter2") + "media:"),
        "callherald.yaml:15: carrier.credentials.password: secrets are not written inline; give "
        "{env: VARIABLE_NAME} or {file: path/to/file}",
        id="inline-secret",
    ),
    pytest.param(
        MINIMAL.replace(
            "media:", CREDENTIALS.format(username='"alice"', password="{env: CH_UNSET}") + "media:"
        ),
        "callherald.yaml:15: carrier.credentials.password: environment variable CH_UNSET is not set",
        id="missing-env-var",
    ),
    pytest.param(
        MINIMAL.replace(
            "media:", CREDENTIALS.format(username='"alice"', password="{env: A, file: b}") + "media:"
        ),
        "callherald.yaml:15: carrier.credentials.password: expected {env: VARIABLE_NAME} or "
        "{file: path/to/file} (one key), got a mapping with keys 'env', 'file'",
        id="secret-with-two-forms",
    ),
    pytest.param(
        MINIMAL.replace("media:", CREDENTIALS.format(username="1001", password="{env: CH_SET}") + "media:"),
        "callherald.yaml:14: carrier.credentials.username: expected a string, got 1001 unquoted, which YAML "
        'reads as the integer 1001; quote it: "1001"',
        id="unquoted-username",
    ),
    pytest.param(
        MINIMAL.replace("media:", CREDENTIALS.format(username="22:30", password="{env: CH_SET}") + "media:"),
        "callherald.yaml:14: carrier.credentials.username: expected a string, got 22:30 unquoted, which YAML "
        'reads as the base-60 number 1350; quote it: "22:30"',
        id="sexagesimal-username",
    ),
    pytest.param(
        edit("    - name: main\n", "    - name: no\n"),
        "callherald.yaml:6: pbx.peers[0].name: expected a string, got no unquoted, which YAML reads as the "
        'boolean false; quote it: "no"',
        id="boolean-name",
    ),
    pytest.param(
        edit("  host: 192.0.2.10\n", ""),
        "callherald.yaml:10: carrier: missing required key 'host'",
        id="missing-required-key",
    ),
    pytest.param(
        edit("  host: 192.0.2.10\n", "  host: sip.carrier.example\n"),
        "callherald.yaml:10: carrier: missing required key 'allowed_networks' (host 'sip.carrier.example' "
        "is a DNS name, so its source networks must be listed)",
        id="dns-host-needs-networks",
    ),
    pytest.param(
        edit("  port: 5060\nmedia", "  port: 5060\n  port: 5061\nmedia"),
        "callherald.yaml:13: carrier.port: duplicate key (first given on line 12)",
        id="duplicate-key",
    ),
    pytest.param(
        MINIMAL + "limits: [500, 60]\n",
        "callherald.yaml:17: limits: expected a mapping, got a list",
        id="list-instead-of-mapping",
    ),
    pytest.param(
        edit('"10.0.0.5:5060"', '"sip:"'),
        "callherald.yaml:9: pbx.default_target: expected a SIP URI or host:port, got 'sip:'",
        id="bad-target",
    ),
    pytest.param(
        edit('"10.0.0.5:5060"', '"10.0.0.5:0"'),
        "callherald.yaml:9: pbx.default_target: expected a SIP URI or host:port with a port 1-65535, "
        "got '10.0.0.5:0'",
        id="target-port-zero",
    ),
    pytest.param(
        edit("  port: 5060\nmedia", "  port: 5060\n  transport: tls\nmedia"),
        "callherald.yaml:13: carrier.transport: expected one of udp, tcp, got 'tls'",
        id="unknown-transport",
    ),
    pytest.param(
        edit("  port: 5060\nmedia", "  port: 5060\n  registration: {interval_s: 30}\nmedia"),
        "callherald.yaml:13: carrier.registration.interval_s: expected an integer 60-86400, got 30",
        id="registration-interval-too-short",
    ),
    pytest.param(
        edit("  port: 5060\nmedia", "  port: 5060\n  registration: {enabled: true}\nmedia"),
        "callherald.yaml:13: carrier.registration: registration needs carrier.credentials (username "
        "and password)",
        id="registration-without-credentials",
    ),
    pytest.param(
        MINIMAL.replace(
            "media:",
            CREDENTIALS.format(username='"a"', password="{env: CH_SET}")
            + "  registration: {retry_min_s: 100, retry_max_s: 50}\n"
            + "media:",
        ),
        "callherald.yaml:16: carrier.registration.retry_max_s: expected at least retry_min_s (100), got 50",
        id="retry-max-below-min",
    ),
    pytest.param(
        edit("  peers:\n", "  peers: []\n").replace(
            "    - name: main\n      host: 10.0.0.5\n      allowed_networks: [10.0.0.0/24]\n", ""
        ),
        "callherald.yaml:5: pbx.peers: expected a list of at least 1 peer, got an empty list",
        id="no-peers",
    ),
    pytest.param(
        MINIMAL + "limits:\n  rtp_inactivity_timeout_s: .inf\n",
        "callherald.yaml:18: limits.rtp_inactivity_timeout_s: expected a number 1-86400, got .inf, which "
        "YAML reads as the number inf; write plain decimal digits",
        id="infinite-timeout",
    ),
    pytest.param(
        MINIMAL + "limits:\n  no_response_timeout_s: 64\n",
        "callherald.yaml:18: limits.no_response_timeout_s: expected a number 2-32, got 64",
        id="no-response-timeout-beyond-timer-b",
    ),
    pytest.param(
        MINIMAL + "limits:\n  notice_hold_timeout_s: 0\n",
        "callherald.yaml:18: limits.notice_hold_timeout_s: expected a number 1-3600, got 0",
        id="notice-hold-timeout-zero",
    ),
    pytest.param(
        MINIMAL + "limits:\n  max_new_calls_per_s: -1\n",
        "callherald.yaml:18: limits.max_new_calls_per_s: expected a number 0-10000, got -1",
        id="negative-call-rate",
    ),
    pytest.param(
        MINIMAL + "limits:\n  overload_lag_ms: 0.5\n",
        "callherald.yaml:18: limits.overload_lag_ms: expected an integer 0-10000, got 0.5",
        id="fractional-overload-lag",
    ),
    pytest.param(
        MINIMAL + "logging: {level: verbose}\n",
        "callherald.yaml:17: logging.level: expected one of debug, info, warning, error, got 'verbose'",
        id="unknown-log-level",
    ),
    pytest.param(
        edit("{host: 127.0.0.1, port: 5070}", "{host: 127.0.0.1, port: 5060}").replace(
            "[10.0.0.0/24]", "[192.0.2.0/24]"
        ),
        "callherald.yaml:1: listen: listen.pbx and listen.carrier are the same address, so requests are "
        "told apart by source, but peer 'main' network 192.0.2.0/24 overlaps carrier network 192.0.2.10/32",
        id="shared-listen-address-overlapping-networks",
    ),
    *(
        pytest.param(
            edit("{host: 127.0.0.1, port: 5070}", f"{{host: '{carrier}', port: 5060}}"),
            f"callherald.yaml:1: listen: listen.pbx (127.0.0.1) and listen.carrier ({carrier}) both use udp port "
            f"5060, and {carrier} is every address of this machine, so the other cannot listen there too: give "
            "both sides the same host (one listener, requests told apart by source) or different ports",
            id=f"listeners-on-one-port-one-of-them-on-{carrier}",
        )
        for carrier in ("0.0.0.0", "::")
    ),
    *(
        pytest.param(
            edit("{host: 127.0.0.1, port: 5070}", f"{{host: '{host}', port: 5070}}"),
            "callherald.yaml:3: listen.carrier.host: expected one of this machine's addresses, or 0.0.0.0 or "
            f":: for all (not multicast or broadcast), got '{host}'",
            id=f"listen-host-{host}",
        )
        for host in ("224.0.0.1", "255.255.255.255", "ff02::1")
    ),
    pytest.param(
        MINIMAL.replace(
            "  advertised_address: 192.0.2.1\n",
            "  advertised_address: 192.0.2.1\n  bind_address: 239.1.2.3\n",
        ),
        "callherald.yaml:17: media.bind_address: expected one of this machine's addresses, or 0.0.0.0 or "
        ":: for all (not multicast or broadcast), got '239.1.2.3'",
        id="media-bind-address-multicast",
    ),
    pytest.param(
        "listen: [1\n",
        "callherald.yaml:2: invalid YAML: expected ',' or ']', but got '<stream end>' (while parsing a flow "
        "sequence that begins on line 1)",
        id="invalid-yaml",
    ),
    pytest.param(
        MINIMAL + "limits:\n  max_concurrent_calls: [30\n  rtp_inactivity_timeout_s: 120\n",
        "callherald.yaml:19: invalid YAML: expected ',' or ']', but got ':' (while parsing a flow sequence "
        "that begins on line 18)",
        id="unclosed-bracket-names-its-line",
    ),
    pytest.param(
        edit('"10.0.0.5:5060"', '"10.0.0.5:5060\\q"'),
        "callherald.yaml:9: invalid YAML: found unknown escape character 'q'",
        id="construct-on-the-same-line",
    ),
    pytest.param(
        edit("host: 192.0.2.10", "host: 192.0.2.10\x07"),
        "callherald.yaml:11: invalid YAML: character #x0007 in column 19: special characters are not allowed",
        id="control-character",
    ),
    pytest.param(
        MINIMAL + "---\nlisten: {}\n",
        "callherald.yaml:17: invalid YAML: expected a single document in the stream, but found another document",
        id="two-documents",
    ),
    pytest.param(
        "# nothing here\n",
        "callherald.yaml:1: expected a mapping of sections, got an empty document",
        id="empty-document",
    ),
]


@pytest.mark.parametrize(("text", "message"), ERROR_CASES)
def test_error_message(text: str, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse(text, environ={"CH_SET": "x"})
    assert str(caught.value) == message
    assert len(caught.value.problems) == 1
    assert isinstance(caught.value, ValueError)


def test_all_problems_collected_at_once() -> None:
    text = (
        edit("  port: 5060\nmedia", "  prot: 5060\nmedia")
        .replace("rtp_port_min: 20000", "rtp_port_min: 20001")
        .replace("  peers:\n", "  peers:\n    - name: second\n      host: 10.0.0.6\n      port: 0\n")
        + "limits: []\n"
    )
    with pytest.raises(ConfigError) as caught:
        parse(text)
    assert caught.value.problems == [
        ConfigProblem(
            file="callherald.yaml",
            line=8,
            key="pbx.peers[0].port",
            message="expected an integer 1-65535, got 0",
        ),
        ConfigProblem(
            file="callherald.yaml", line=15, key="carrier.prot", message="unknown key; did you mean 'port'?"
        ),
        ConfigProblem(
            file="callherald.yaml",
            line=17,
            key="media.rtp_port_min",
            message="expected an even port (RTP uses even ports, RFC 3550 §11), got 20001",
        ),
        ConfigProblem(
            file="callherald.yaml", line=20, key="limits", message="expected a mapping, got a list"
        ),
    ]
    assert str(caught.value).splitlines() == [
        "callherald.yaml:8: pbx.peers[0].port: expected an integer 1-65535, got 0",
        "callherald.yaml:15: carrier.prot: unknown key; did you mean 'port'?",
        "callherald.yaml:17: media.rtp_port_min: expected an even port (RTP uses even ports, RFC 3550 §11), got 20001",
        "callherald.yaml:20: limits: expected a mapping, got a list",
    ]


def test_missing_top_level_sections() -> None:
    with pytest.raises(ConfigError) as caught:
        parse("logging: {level: info}\n")
    assert str(caught.value).splitlines() == [
        f"callherald.yaml:1: missing required key '{key}'" for key in ("listen", "pbx", "carrier", "media")
    ]


def test_problem_without_line_or_key() -> None:
    problem = ConfigProblem(file="x.yaml", line=None, key="", message="cannot read: Permission denied")
    assert str(problem) == "x.yaml: cannot read: Permission denied"


@pytest.mark.parametrize(
    ("data", "where"),
    [
        pytest.param(b"# Caf\xe9\n", "1: cannot read: byte 0xe9 in column 6", id="first-line"),
        pytest.param(
            b"# \xc3\xa9\xc3\xa9n\r\n# twee\r\n# Caf\xe9 \n",
            "3: cannot read: byte 0xe9 in column 6",
            id="after-utf-8-and-crlf",
        ),
        pytest.param(
            b"#" * 20_000 + b'\n  text: "\xe9t\xe9"\n',
            "2: cannot read: byte 0xe9 in column 10",
            id="beyond-the-first-read-buffer",
        ),
    ],
)
def test_load_config_names_line_and_column_of_a_byte_that_is_not_utf8(
    tmp_path: Path, data: bytes, where: str
) -> None:
    path = tmp_path / "latin1.yaml"
    path.write_bytes(data)
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert str(caught.value) == (
        f"{path}:{where} is not UTF-8 (invalid continuation byte); save the file as UTF-8"
    )


@pytest.mark.parametrize(
    ("key", "line"),
    [
        pytest.param("pbx.peers[0].allowed_networks", 8, id="key-in-a-list-item"),
        pytest.param("pbx.peers[0]", 6, id="list-item"),
        pytest.param("listen.carrier.port", 3, id="key-in-a-flow-mapping"),
        pytest.param("media.rtp_port_min", 14, id="key"),
        pytest.param("media.constant_ssrc", 13, id="absent-key-at-its-section"),
        pytest.param("pbx.peers[3].host", 5, id="absent-item-at-its-list"),
        pytest.param("recording.recipients", None, id="absent-section"),
    ],
)
def test_problem_at_places_a_later_problem_at_its_key(tmp_path: Path, key: str, line: int | None) -> None:
    path = tmp_path / "callherald.yaml"
    path.write_text(MINIMAL, encoding="utf-8")
    assert problem_at(path, key, "found later") == ConfigProblem(
        file=str(path), line=line, key=key, message="found later"
    )


def test_problem_at_a_file_that_is_gone_or_not_yaml(tmp_path: Path) -> None:
    path = tmp_path / "callherald.yaml"
    assert problem_at(path, "media", "x").line is None
    path.write_text("media: [\n", encoding="utf-8")
    assert problem_at(path, "media", "x").line is None


def test_load_config_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "absent.yaml"
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert str(caught.value) == f"{path}: cannot read: No such file or directory"


# -- secrets -----------------------------------------------------------------------------------------

SECRET_FILE = MINIMAL.replace(
    "media:", CREDENTIALS.format(username='"alice"', password="{file: pw.txt}") + "media:"
)


@pytest.mark.parametrize(
    ("content", "value"),
    [
        ("s3cret\n", "s3cret"),
        ("s3cret\r\n", "s3cret"),
        ("s3cret", "s3cret"),
        (" spaced pass \n\n", " spaced pass "),
    ],
)
def test_secret_from_file_relative_to_config_dir(tmp_path: Path, content: str, value: str) -> None:
    (tmp_path / "pw.txt").write_text(content, encoding="utf-8")
    (tmp_path / "callherald.yaml").write_text(SECRET_FILE, encoding="utf-8")
    credentials = load_config(tmp_path / "callherald.yaml", environ={}).carrier.credentials
    assert credentials is not None
    assert credentials.password == Secret(value=value, source=f"file:{tmp_path / 'pw.txt'}")


def test_secret_from_absolute_file(tmp_path: Path) -> None:
    secret = tmp_path / "elsewhere" / "pw"
    secret.parent.mkdir()
    secret.write_text("abs\n", encoding="utf-8")
    text = SECRET_FILE.replace("{file: pw.txt}", f"{{file: {secret}}}")
    credentials = parse(text).carrier.credentials
    assert credentials is not None
    assert credentials.password == Secret(value="abs", source=f"file:{secret}")


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "cannot read secret file '{path}': No such file or directory"),
        ("\n", "secret file '{path}' is empty"),
    ],
)
def test_secret_file_problems(tmp_path: Path, content: str | None, message: str) -> None:
    path = tmp_path / "pw.txt"
    if content is not None:
        path.write_text(content, encoding="utf-8")
    (tmp_path / "callherald.yaml").write_text(SECRET_FILE, encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_config(tmp_path / "callherald.yaml", environ={})
    assert caught.value.problems == [
        ConfigProblem(
            file=str(tmp_path / "callherald.yaml"),
            line=15,
            key="carrier.credentials.password",
            message=message.format(path=path),
        )
    ]


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        ({}, "environment variable CH_PW is not set"),
        ({"CH_PW": ""}, "environment variable CH_PW is empty"),
    ],
)
def test_secret_env_problems(environ: dict[str, str], message: str) -> None:
    text = SECRET_FILE.replace("{file: pw.txt}", "{env: CH_PW}")
    with pytest.raises(ConfigError) as caught:
        parse(text, environ=environ)
    assert [problem.message for problem in caught.value.problems] == [message]


@pytest.mark.parametrize("secret", ["{env: CH_PW}", "{file: missing.txt}"])
def test_secrets_are_not_read_for_commands_that_need_none(secret: str, tmp_path: Path) -> None:
    # `callherald recordings list` needs the data directory, not the carrier's password.
    text = SECRET_FILE.replace("{file: pw.txt}", secret)
    config = parse_config(text, source="callherald.yaml", base_dir=tmp_path, environ={}, read_secrets=False)
    credentials = config.carrier.credentials
    assert credentials is not None
    assert credentials.password.value == ""
    with pytest.raises(ConfigError) as caught:  # the form is still checked
        parse_config(
            SECRET_FILE.replace("{file: pw.txt}", "hunter2"),
            source="callherald.yaml",
            environ={},
            read_secrets=False,
        )
    assert "secrets are not written inline" in str(caught.value)


def test_secret_from_env_and_repr_hides_it() -> None:
    text = SECRET_FILE.replace("{file: pw.txt}", "{env: CH_PW}")
    credentials = parse(text, environ={"CH_PW": "top secret"}).carrier.credentials
    assert credentials is not None
    assert credentials.password == Secret(value="top secret", source="env:CH_PW")
    assert "top secret" not in repr(credentials)
    assert repr(credentials.password) == "Secret(source='env:CH_PW')"


# -- defaults ----------------------------------------------------------------------------------------


def test_embedded_default_yaml_parses_to_default_config(tmp_path: Path) -> None:
    parsed = parse_config(EMBEDDED_DEFAULT_YAML, environ={"CALLHERALD_HOME": str(tmp_path)})
    assert parsed == default_config(tmp_path)


def test_default_config_is_loopback(tmp_path: Path) -> None:
    config = default_config(tmp_path)
    assert (config.listen.pbx.host, config.listen.pbx.port) == ("127.0.0.1", 5060)
    assert (config.listen.carrier.host, config.listen.carrier.port) == ("127.0.0.1", 5070)
    assert (config.carrier.host, config.carrier.port) == ("127.0.0.1", 5080)
    assert config.inbound_target("+31201234567") == SipTarget(
        uri="sip:127.0.0.1:5090", host="127.0.0.1", port=5090
    )
    assert config.pbx.peers[0].allowed_networks == (ip_network("127.0.0.0/8"),)
    assert config.carrier.allowed_networks == (ip_network("127.0.0.0/8"),)
    assert (config.media.rtp_port_min, config.media.rtp_port_max) == (20000, 20999)
    assert config.carrier.credentials is None
    assert config.carrier.registers is False
    assert config.data_dir == tmp_path


@pytest.mark.parametrize(
    ("data_dir_line", "environ", "base_dir", "expected"),
    [
        ("", {}, None, Path("callherald-data")),
        ("", {"CALLHERALD_HOME": "/srv/ch"}, None, Path("/srv/ch")),
        ("", {"CALLHERALD_HOME": ""}, Path("/etc/ch"), Path("callherald-data")),
        (
            "data_dir: recordings\n",
            {"CALLHERALD_HOME": "/srv/ch"},
            Path("/etc/ch"),
            Path("/etc/ch/recordings"),
        ),
        ("data_dir: recordings\n", {}, None, Path("recordings")),
        ("data_dir: /var/lib/ch\n", {}, Path("/etc/ch"), Path("/var/lib/ch")),
    ],
)
def test_data_dir(data_dir_line: str, environ: dict[str, str], base_dir: Path | None, expected: Path) -> None:
    config = parse_config(MINIMAL + data_dir_line, environ=environ, base_dir=base_dir)
    assert config.data_dir == expected


def test_inbound_target_falls_back() -> None:
    text = MINIMAL + '\nrouting:\n  inbound:\n    - {did: "+3120", target: "sip:a@10.0.0.7"}\n'
    config = parse(text)
    assert config.inbound_target("+3120") == SipTarget(uri="sip:a@10.0.0.7", host="10.0.0.7", port=None)
    assert config.inbound_target("+3199") == SipTarget(uri="sip:10.0.0.5:5060", host="10.0.0.5", port=5060)
    with_default = parse(text + '  default_target: "10.0.0.8"\n')
    assert with_default.inbound_target("+3199") == SipTarget(uri="sip:10.0.0.8", host="10.0.0.8", port=None)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("10.0.0.5", SipTarget(uri="sip:10.0.0.5", host="10.0.0.5", port=None)),
        ("pbx.local:5070", SipTarget(uri="sip:pbx.local:5070", host="pbx.local", port=5070)),
        ("[2001:db8::1]:5060", SipTarget(uri="sip:[2001:db8::1]:5060", host="2001:db8::1", port=5060)),
        ("sips:pbx.local", SipTarget(uri="sips:pbx.local", host="pbx.local", port=None)),
        ("sip:100@[::1];transport=tcp", SipTarget(uri="sip:100@[::1];transport=tcp", host="::1", port=None)),
    ],
)
def test_sip_target_forms(text: str, expected: SipTarget) -> None:
    assert parse(edit('"10.0.0.5:5060"', f'"{text}"')).pbx.default_target == expected


@pytest.mark.parametrize(
    "text", ["2001:db8::1", "sip:a@b@c", "pbx_1.local", "http://x", "host:port", "[10.0.0.1]"]
)
def test_sip_target_rejected(text: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse(edit('"10.0.0.5:5060"', f'"{text}"'))
    assert (
        str(caught.value)
        == f"callherald.yaml:9: pbx.default_target: expected a SIP URI or host:port, got {text!r}"
    )


# -- frozen objects ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "field"),
    [
        ((), "data_dir"),
        (("listen", "pbx"), "port"),
        (("carrier",), "host"),
        (("carrier", "credentials"), "password"),
        (("carrier", "credentials", "password"), "value"),
        (("media",), "rtp_port_min"),
        (("limits",), "max_concurrent_calls"),
        (("pbx", "default_target"), "uri"),
        (("announcements",), "default_language"),
        (("announcements", "prompt_sets", 0), "id"),
        (("announcements", "prompt_sets", 0, "prompts", 0), "file"),
        (("purposes", 1), "reference"),
        (("consent_questions", 0), "yes_digit"),
        (("policies", 0), "notice"),
        (("policies", 0, "match"), "called"),
        (("recording",), "recipients"),
    ],
)
def test_objects_are_frozen(tmp_path: Path, path: tuple[str | int, ...], field: str) -> None:
    obj: Any = load_config(write_full_example(tmp_path), environ={"CH_TRUNK_PASSWORD": "x"})
    for name in path:
        obj = obj[name] if isinstance(name, int) else getattr(obj, name)
    with pytest.raises(dataclasses.FrozenInstanceError):
        setattr(obj, field, None)
    assert not hasattr(obj, "__dict__")


# -- properties --------------------------------------------------------------------------------------


@given(st.from_regex(r"\+?[0-9]{1,15}", fullmatch=True))
def test_quoted_did_round_trips(did: str) -> None:
    config = parse(MINIMAL + ROUTE.format(did=f'"{did}"'))
    assert config.routing.inbound[0].did == did


@given(st.from_regex(r"\+?[0-9]{1,15}", fullmatch=True))
def test_unquoted_did_is_never_corrupted(did: str) -> None:
    """Unquoted, a number is either kept verbatim (YAML reads it as a string) or refused."""
    text = MINIMAL + ROUTE.format(did=did)
    if yaml.safe_load(text)["routing"]["inbound"][0]["did"] == did:
        assert parse(text).routing.inbound[0].did == did
    else:
        with pytest.raises(ConfigError) as caught:
            parse(text)
        assert [problem.key for problem in caught.value.problems] == ["routing.inbound[0].did"]
        assert caught.value.problems[0].message.endswith(f'quote it: "{did}"')


@given(st.integers(min_value=-100_000, max_value=100_000))
@example(0)
@example(1)
@example(65535)
@example(65536)
def test_port_range(port: int) -> None:
    text = edit("  port: 5060\nmedia", f"  port: {port}\nmedia")
    if 1 <= port <= 65535:
        assert parse(text).carrier.port == port
    else:
        with pytest.raises(ConfigError) as caught:
            parse(text)
        assert (
            str(caught.value) == f"callherald.yaml:12: carrier.port: expected an integer 1-65535, got {port}"
        )
