"""Tests for the ``recording`` section: recipients' public key files, free space, on/off."""

from __future__ import annotations

from pathlib import Path

import pytest

from config import Config, ConfigError, ConfigProblem, Recording, load_config, parse_config
from storage.keys import (
    SCRYPT_LOG2_N_MIN,
    generate_private_key,
    parse_public_key,
    save_private_key,
    save_public_key,
)
from tests.config.test_config import ESCROW_BASE64, MINIMAL, REVIEWER_PEM

# MINIMAL is 16 lines, so "recording:" is on line 17 and its first key on line 18.
KEY_FILES = {
    "reviewer.pub": REVIEWER_PEM,
    "escrow.b64": ESCROW_BASE64,
    "unpadded.b64": ESCROW_BASE64.strip().rstrip("="),
    "reviewer.b64": REVIEWER_PEM.splitlines()[2][16:] + "\n",  # the raw key after the 12-byte DER prefix
    "crlf.pub": REVIEWER_PEM.replace("\n", "\r\n"),
    "hello.txt": "hello\n",
    "empty.pub": "",
    "private.pem": "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VuBCIEIA==\n-----END PRIVATE KEY-----\n",
    "encrypted.pem": "-----BEGIN ENCRYPTED PRIVATE KEY-----\nMIGbMFcGCSqGSIb3DQEFDTBK\n-----END ENCRYPTED PRIVATE KEY-----\n",
    "unterminated.pub": "-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VuAyEAj0DFrbaPJWJK5bIU6nZ6bslNgp09e14a0bpvPiE4KF8=\n",
    "short.b64": ESCROW_BASE64[:42] + "\n",
    "long.b64": ESCROW_BASE64.strip().rstrip("=") + "AA\n",
    "two-tokens.b64": ESCROW_BASE64 + ESCROW_BASE64,
}


@pytest.fixture(autouse=True)
def key_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Relative key files resolve against the working directory when no base_dir is given."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "keys").mkdir()
    for name, content in KEY_FILES.items():
        (tmp_path / "keys" / name).write_text(content, encoding="ascii", newline="")
    (tmp_path / "keys" / "a-directory").mkdir()
    (tmp_path / "keys" / "huge.pub").write_bytes(REVIEWER_PEM.encode() + b"#" * 65536)
    (tmp_path / "keys" / "link.pub").symlink_to("reviewer.pub")
    return tmp_path


def parse(text: str) -> Config:
    return parse_config(text, source="callherald.yaml", environ={})


def recipients_section(*paths: str) -> str:
    return MINIMAL + "recording:\n  recipients:\n" + "".join(f"    - {path}\n" for path in paths)


def test_section_absent_means_defaults() -> None:
    assert parse(MINIMAL).recording == Recording(recipients=(), min_free_mb=200, enabled=True)


@pytest.mark.parametrize(
    ("section", "expected"),
    [
        ("recording:\n", Recording()),
        ("recording: {}\n", Recording()),
        ("recording:\n  recipients: []\n", Recording(recipients=())),
        ("recording:\n  recipients:\n  min_free_mb:\n  enabled:\n", Recording()),
        (
            "recording:\n  recipients: [keys/reviewer.pub]\n",
            Recording(recipients=(Path("keys/reviewer.pub"),), min_free_mb=200, enabled=True),
        ),
        (
            "recording:\n  recipients: [keys/reviewer.pub, keys/escrow.b64]\n  min_free_mb: 0\n  enabled: false\n",
            Recording(
                recipients=(Path("keys/reviewer.pub"), Path("keys/escrow.b64")), min_free_mb=0, enabled=False
            ),
        ),
        ("recording:\n  min_free_mb: 1_000\n", Recording(min_free_mb=1000)),
        ("recording:\n  max_write_delay_s: 0\n", Recording(max_write_delay_s=0)),
        ("recording:\n  max_write_delay_s: 3600\n", Recording(max_write_delay_s=3600)),
        ("recording:\n  enabled: False\n", Recording(enabled=False)),
        (
            "recording:\n  held_evidence_dir: keys/a-directory\n",
            Recording(held_evidence_dir=Path("keys/a-directory")),
        ),
        # No directory (its disk not mounted): data_dir stands in for it, and check-config and
        # serve warn; the commands that never keep evidence in it do not care.
        ("recording:\n  held_evidence_dir: spool\n", Recording(held_evidence_dir=Path("spool"))),
        (
            "recording:\n  held_evidence_dir: keys/reviewer.pub\n",
            Recording(held_evidence_dir=Path("keys/reviewer.pub")),
        ),
        # Made on the first start that finds none: it need not exist yet.
        (
            "recording:\n  manifest_signing_key: keys/manifest-signing.key\n",
            Recording(manifest_signing_key=Path("keys/manifest-signing.key")),
        ),
        (
            'recording:\n  storage_region: "EU, Frankfurt (provider X, zone 2)"\n',
            Recording(storage_region="EU, Frankfurt (provider X, zone 2)"),
        ),
        ("recording:\n  storage_region: " + "e" * 200 + "\n", Recording(storage_region="e" * 200)),
        ("recording:\n  worm: true\n", Recording(worm=True)),
    ],
)
def test_valid_section(section: str, expected: Recording) -> None:
    assert parse(MINIMAL + section).recording == expected


@pytest.mark.parametrize(
    "name", ["reviewer.pub", "escrow.b64", "unpadded.b64", "reviewer.b64", "crlf.pub", "link.pub"]
)
def test_key_file_forms_accepted(name: str, key_files: Path) -> None:
    """Each form the loader accepts here is a key storage.keys really reads."""
    assert parse(recipients_section(f"keys/{name}")).recording.recipients == (Path("keys") / name,)
    parse_public_key((key_files / "keys" / name).read_bytes())


def test_a_private_key_file_as_recipient_is_refused_naming_its_public_key(key_files: Path) -> None:
    # The proxy only wraps keys; a key that decrypts must not be in its configuration.
    private_key = generate_private_key()
    save_private_key(
        key_files / "keys" / "agent.key", private_key, "a long passphrase", scrypt_log2_n=SCRYPT_LOG2_N_MIN
    )
    save_public_key(key_files / "keys" / "agent.pub", private_key.public_key())
    with pytest.raises(ConfigError) as raised:
        parse(recipients_section("keys/agent.key"))
    assert str(raised.value).endswith(
        "recording.recipients[0]: public key file 'keys/agent.key' holds a private key: list the matching "
        "public key file instead ('keys/agent.pub'?); the private key stays with whoever exports recordings"
    )


def test_absolute_path_is_kept(key_files: Path) -> None:
    absolute = key_files / "keys" / "reviewer.pub"
    assert parse(recipients_section(str(absolute))).recording.recipients == (absolute,)


def test_relative_paths_resolve_against_the_config_file_directory(
    key_files: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (key_files / "etc").mkdir()
    (key_files / "etc" / "reviewer.pub").write_text(REVIEWER_PEM, encoding="ascii")
    config_file = key_files / "etc" / "callherald.yaml"
    config_file.write_text(recipients_section("reviewer.pub", "../keys/escrow.b64"), encoding="utf-8")
    monkeypatch.chdir(key_files / "keys")  # a working-directory lookup would find other files
    assert load_config(config_file, environ={}).recording.recipients == (
        key_files / "etc" / "reviewer.pub",
        key_files / "etc" / ".." / "keys" / "escrow.b64",
    )


NO_KEY = (
    "holds no public key: expected a PEM 'BEGIN PUBLIC KEY' block or the raw key in base64 "
    "(43 or 44 characters)"
)

RECORDING_ERROR_CASES = [
    pytest.param(
        recipients_section("keys/absent.pub"),
        "callherald.yaml:19: recording.recipients[0]: public key file 'keys/absent.pub' does not exist",
        id="missing-file",
    ),
    pytest.param(
        recipients_section("keys/reviewer.pub", "keys/a-directory"),
        "callherald.yaml:20: recording.recipients[1]: public key file 'keys/a-directory' is not a file",
        id="directory",
    ),
    *(
        pytest.param(
            recipients_section(f"keys/{name}"),
            f"callherald.yaml:19: recording.recipients[0]: public key file 'keys/{name}' {NO_KEY}",
            id=f"not-a-key-file-{name}",
        )
        for name in (
            "hello.txt",
            "empty.pub",
            "unterminated.pub",
            "short.b64",
            "long.b64",
            "two-tokens.b64",
        )
    ),
    *(
        pytest.param(
            recipients_section(f"keys/{name}"),
            f"callherald.yaml:19: recording.recipients[0]: public key file 'keys/{name}' holds a private "
            "key: list the matching public key file instead; the private key stays with whoever exports "
            "recordings",
            id=f"private-key-{name}",
        )
        for name in ("private.pem", "encrypted.pem")
    ),
    pytest.param(
        recipients_section("keys/huge.pub"),
        "callherald.yaml:19: recording.recipients[0]: public key file 'keys/huge.pub' is larger than 64 KiB, "
        "so it is not a public key file",
        id="too-large",
    ),
    pytest.param(
        recipients_section("keys/reviewer.pub", "keys/escrow.b64", "keys/reviewer.pub"),
        "callherald.yaml:21: recording.recipients[2]: duplicate public key file 'keys/reviewer.pub' "
        "(also in entry 0)",
        id="duplicate",
    ),
    pytest.param(
        recipients_section("keys/reviewer.pub", "./keys/../keys/reviewer.pub"),
        "callherald.yaml:20: recording.recipients[1]: duplicate public key file 'keys/../keys/reviewer.pub' "
        "(also in entry 0)",
        id="duplicate-spelt-differently",
    ),
    pytest.param(
        recipients_section("keys/reviewer.pub", "keys/link.pub"),
        "callherald.yaml:20: recording.recipients[1]: duplicate public key file 'keys/link.pub' "
        "(also in entry 0)",
        id="duplicate-through-a-symlink",
    ),
    pytest.param(
        recipients_section("keys/reviewer.pub", "keys/escrow.b64", "keys/crlf.pub"),
        "callherald.yaml:21: recording.recipients[2]: public key file 'keys/crlf.pub' holds the same key as "
        "entry 0 ('keys/reviewer.pub'); list each key once",
        id="same-key-in-a-copy",
    ),
    pytest.param(
        recipients_section("keys/reviewer.b64", "keys/reviewer.pub"),
        "callherald.yaml:20: recording.recipients[1]: public key file 'keys/reviewer.pub' holds the same key "
        "as entry 0 ('keys/reviewer.b64'); list each key once",
        id="same-key-as-base64-and-pem",
    ),
    pytest.param(
        recipients_section("keys/escrow.b64", "keys/unpadded.b64"),
        "callherald.yaml:20: recording.recipients[1]: public key file 'keys/unpadded.b64' holds the same key "
        "as entry 0 ('keys/escrow.b64'); list each key once",
        id="same-key-padded-and-unpadded",
    ),
    pytest.param(
        MINIMAL + "recording:\n  min_free_mb: -1\n",
        "callherald.yaml:18: recording.min_free_mb: expected an integer >= 0, got -1",
        id="negative-min-free-mb",
    ),
    pytest.param(
        MINIMAL + "recording:\n  max_write_delay_s: 3601\n",
        "callherald.yaml:18: recording.max_write_delay_s: expected an integer 0-3600, got 3601",
        id="max-write-delay-too-long",
    ),
    pytest.param(
        MINIMAL + "recording:\n  max_write_delay_s: 2.5\n",
        "callherald.yaml:18: recording.max_write_delay_s: expected an integer 0-3600, got 2.5",
        id="fractional-max-write-delay",
    ),
    pytest.param(
        MINIMAL + "recording:\n  min_free_mb: 1.5\n",
        "callherald.yaml:18: recording.min_free_mb: expected an integer >= 0, got 1.5",
        id="fractional-min-free-mb",
    ),
    pytest.param(
        MINIMAL + 'recording:\n  min_free_mb: "200"\n',
        "callherald.yaml:18: recording.min_free_mb: expected an integer >= 0, got '200'",
        id="quoted-min-free-mb",
    ),
    pytest.param(
        MINIMAL + "recording:\n  min_free_mb: 0x10\n",
        "callherald.yaml:18: recording.min_free_mb: expected an integer >= 0, got 0x10, which YAML reads "
        "as the hexadecimal number 16; write plain decimal digits",
        id="hexadecimal-min-free-mb",
    ),
    pytest.param(
        MINIMAL + 'recording:\n  enabled: "false"\n',
        "callherald.yaml:18: recording.enabled: expected true or false, got 'false'",
        id="quoted-enabled",
    ),
    pytest.param(
        MINIMAL + "recording:\n  enabled: 0\n",
        "callherald.yaml:18: recording.enabled: expected true or false, got 0",
        id="integer-enabled",
    ),
    pytest.param(
        MINIMAL + "recording:\n  recipients: keys/reviewer.pub\n",
        "callherald.yaml:18: recording.recipients: expected a list of public key files, got 'keys/reviewer.pub'",
        id="recipients-not-a-list",
    ),
    pytest.param(
        MINIMAL + "recording:\n  recipients: [{file: keys/reviewer.pub}]\n",
        "callherald.yaml:18: recording.recipients[0]: expected a path to a public key file, got a mapping",
        id="recipient-not-a-path",
    ),
    pytest.param(
        MINIMAL + "recording:\n  recipients: [2026]\n",
        "callherald.yaml:18: recording.recipients[0]: expected a path to a public key file, got 2026 unquoted, "
        'which YAML reads as the integer 2026; quote it: "2026"',
        id="recipient-number",
    ),
    pytest.param(
        MINIMAL + "recording:\n  storage_region: " + "e" * 201 + "\n",
        "callherald.yaml:18: recording.storage_region: expected a storage region of at most 200"
        " characters, got 201",
        id="storage-region-too-long",
    ),
    pytest.param(
        MINIMAL + 'recording:\n  storage_region: "EU\\nAmsterdam"\n',
        "callherald.yaml:18: recording.storage_region: expected a storage region on one line of"
        " printable text, got 'EU\\nAmsterdam'",
        id="storage-region-two-lines",
    ),
    pytest.param(
        MINIMAL + "recording:\n  worm: sometimes\n",
        "callherald.yaml:18: recording.worm: expected true or false, got 'sometimes'",
        id="worm-not-a-boolean",
    ),
    pytest.param(
        MINIMAL + "recording: [keys/reviewer.pub]\n",
        "callherald.yaml:17: recording: expected a mapping, got a list",
        id="section-not-a-mapping",
    ),
    pytest.param(
        MINIMAL + "recording:\n  recipient: [keys/reviewer.pub]\n",
        "callherald.yaml:18: recording.recipient: unknown key; did you mean 'recipients'?",
        id="unknown-key-recipient",
    ),
    pytest.param(
        MINIMAL + "recording:\n  min_free: 100\n",
        "callherald.yaml:18: recording.min_free: unknown key; did you mean 'min_free_mb'?",
        id="unknown-key-min-free",
    ),
    pytest.param(
        MINIMAL + "recording:\n  enable: false\n",
        "callherald.yaml:18: recording.enable: unknown key; did you mean 'enabled'?",
        id="unknown-key-enable",
    ),
    pytest.param(
        MINIMAL + "recording:\n  codec: opus\n",
        "callherald.yaml:18: recording.codec: unknown key; allowed keys: recipients, min_free_mb,"
        " max_write_delay_s, enabled,"
        " held_evidence_dir, manifest_signing_key, storage_region, worm",
        id="unknown-key-without-suggestion",
    ),
    pytest.param(
        MINIMAL + "recordings:\n  enabled: false\n",
        "callherald.yaml:17: recordings: unknown key; did you mean 'recording'?",
        id="unknown-section",
    ),
]


@pytest.mark.parametrize(("text", "message"), RECORDING_ERROR_CASES)
def test_recording_error_message(text: str, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse(text)
    assert str(caught.value) == message
    assert len(caught.value.problems) == 1


def test_unreadable_recipients_are_not_also_duplicates() -> None:
    text = recipients_section("keys/absent.pub", "keys/absent.pub", "keys/hello.txt", "keys/hello.txt")
    with pytest.raises(ConfigError) as caught:
        parse(text)
    assert [(problem.line, problem.key) for problem in caught.value.problems] == [
        (19, "recording.recipients[0]"),
        (20, "recording.recipients[1]"),
        (21, "recording.recipients[2]"),
        (22, "recording.recipients[3]"),
    ]
    assert all("duplicate" not in problem.message for problem in caught.value.problems)


def test_all_recording_problems_collected_at_once() -> None:
    text = (
        MINIMAL
        + "recording:\n  recipients:\n    - keys/absent.pub\n    - keys/escrow.b64\n    - keys/escrow.b64\n"
        + "  min_free_mb: -5\n  enabled: yes please\n"
    )
    with pytest.raises(ConfigError) as caught:
        parse(text)
    assert caught.value.problems == [
        ConfigProblem(
            file="callherald.yaml",
            line=19,
            key="recording.recipients[0]",
            message="public key file 'keys/absent.pub' does not exist",
        ),
        ConfigProblem(
            file="callherald.yaml",
            line=21,
            key="recording.recipients[2]",
            message="duplicate public key file 'keys/escrow.b64' (also in entry 1)",
        ),
        ConfigProblem(
            file="callherald.yaml",
            line=22,
            key="recording.min_free_mb",
            message="expected an integer >= 0, got -5",
        ),
        ConfigProblem(
            file="callherald.yaml",
            line=23,
            key="recording.enabled",
            message="expected true or false, got 'yes please'",
        ),
    ]
