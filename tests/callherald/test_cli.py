"""The command line: version, help, check-config, and serve on the embedded default."""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
import wave
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from announcements.defaults import default_consent_prompt_set
from callherald import __version__, cli
from callherald.app import ephemeral_ports
from callherald.cli import PASSPHRASE_ENV, main
from callherald.layout import DataLayout
from config import EMBEDDED_DEFAULT_YAML, EMBEDDED_PROMPT_YES_DIGIT, HOME_ENV
from storage.crypto import WrongPassphraseError, key_id
from storage.keys import load_private_key, load_public_key
from storage.records import EvidenceStore
from storage.signing import ensure_signing_key
from tests.config.test_config import REVIEWER_PEM


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["--version"])
    assert info.value.code == 0
    assert capsys.readouterr().out.strip() == f"callherald {__version__}"


@pytest.mark.parametrize(
    "argv", [["audit", "verify"], ["recordings", "list", "--json"]], ids=["audit", "list"]
)
def test_a_reader_that_goes_away_ends_the_command_quietly(tmp_path: Path, argv: list[str]) -> None:
    # `callherald recordings show ID | head -1`: the pipe closes before callherald writes.
    data = DataLayout(tmp_path / "data")
    data.root.mkdir()
    EvidenceStore(data.evidence_db).close()
    command = subprocess.Popen(
        [sys.executable, "-m", "callherald.cli", *argv],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, HOME_ENV: str(data.root)},
    )
    assert command.stdout is not None
    command.stdout.close()
    _, err = command.communicate(timeout=30)
    assert command.returncode == cli.SIGPIPE_EXIT
    assert err == b""


def test_help_lists_the_commands(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    assert "serve" in out
    assert "check-config" in out


def test_calls_pause_does_not_wait_for_the_database_the_announcements_or_the_proxy_to_load(
    tmp_path: Path,
) -> None:
    # An agent pauses the recording before a card number is given: its command loads only what it
    # uses. (Modules are checked, not seconds: a timed test would fail on a slow machine.)
    heavy = ("sqlite_utils", "numpy", "announcements", "proxy.aio.service", "callherald.recordings")
    probe = (
        "import sys\n"
        "from callherald.cli import main\n"
        f"code = main(['calls', 'pause', 'some-call', '--config', {str(tmp_path / 'missing.yaml')!r}])\n"
        f"print(code, sorted(name for name in {heavy!r} if name in sys.modules))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.stdout.split(" ", 1) == ["2", "[]\n"], done
    assert "missing.yaml" in done.stderr


def test_check_config_accepts_a_valid_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "ok.yaml"
    path.write_text(EMBEDDED_DEFAULT_YAML, encoding="utf-8")
    assert main(["check-config", str(path)]) == 0
    assert capsys.readouterr().out.strip() == f"{path}: OK"


def test_check_config_names_file_line_and_key(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(EMBEDDED_DEFAULT_YAML.replace("port: 5080", "port: eighty"), encoding="utf-8")
    line = next(n for n, text in enumerate(path.read_text().splitlines(), 1) if "eighty" in text)
    assert main(["check-config", str(path)]) == 2
    assert f"{path}:{line}: carrier.port: expected an integer" in capsys.readouterr().err


def _refusal(command: str, path: Path, capsys: pytest.CaptureFixture[str]) -> str:
    """What ``check-config`` or ``serve`` on ``path`` prints as it refuses, before it runs (exit 2,
    nothing on standard output)."""
    argv = ["check-config", str(path)] if command == "check-config" else ["serve", "--config", str(path)]
    assert main(argv) == 2
    out, err = capsys.readouterr()
    assert out == ""
    return err


MEDIA_BIND = "  bind_address: 127.0.0.1\n"
PBX_HOST = "  pbx:                  # the PBX sends its calls here\n    host: 127.0.0.1\n"


@pytest.mark.parametrize(
    ("old", "new", "key"),
    [
        pytest.param(MEDIA_BIND, "  bind_address: 192.0.2.7\n", "media.bind_address", id="rtp"),
        pytest.param(PBX_HOST, PBX_HOST.replace("127.0.0.1", "192.0.2.7"), "listen.pbx.host", id="listener"),
    ],
)
@pytest.mark.parametrize("command", ["check-config", "serve"])
def test_an_address_of_another_machine_is_named_by_file_line_and_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], old: str, new: str, key: str, command: str
) -> None:
    # 192.0.2.7 (TEST-NET-1) is no machine's: check-config said OK, and serve started to refuse
    # every call with 503 (RTP), or stopped with "could not bind to local_addr" (listener).
    assert EMBEDDED_DEFAULT_YAML.count(old) == 1
    path = _with_reviewer(tmp_path, EMBEDDED_DEFAULT_YAML.replace(old, new) + "data_dir: data\n")
    err = _refusal(command, path, capsys)
    assert err == (
        f"{path}:{_line_of(path, '192.0.2.7')}: {key}: 192.0.2.7 is not an address of this machine (Cannot "
        "assign requested address): give one of its own addresses, or 0.0.0.0 for all of them\n"
    )
    assert not (tmp_path / "data").exists()  # serve stopped before it touched the data


@pytest.mark.parametrize("command", ["check-config", "serve"])
def test_a_data_dir_that_is_a_file_is_named_by_file_line_and_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], command: str
) -> None:
    # serve said "[Errno 17] File exists", and check-config OK.
    (tmp_path / "data").write_text("a file\n", encoding="utf-8")
    path = _with_reviewer(tmp_path, EMBEDDED_DEFAULT_YAML + "data_dir: data\n")
    err = _refusal(command, path, capsys)
    assert err == (
        f"{path}:{_line_of(path, 'data_dir: data')}: data_dir: {tmp_path / 'data'} is not a directory: give a "
        "directory (one that does not exist is made)\n"
    )


@pytest.mark.parametrize("command", ["check-config", "serve"])
@pytest.mark.parametrize("given", [False, True], ids=["default-path", "configured"])
def test_a_manifest_signing_key_that_is_no_key_is_named_by_file_line_and_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], command: str, given: bool
) -> None:
    # check-config said OK, and serve stopped once it had opened the evidence database.
    key = tmp_path / ("signing.key" if given else "data/keys/manifest-signing.key")
    key.parent.mkdir(parents=True, exist_ok=True)
    key.write_text(
        "-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEA\n-----END PUBLIC KEY-----\n", encoding="ascii"
    )
    key.chmod(0o600)
    text = EMBEDDED_DEFAULT_YAML + "data_dir: data\n"
    if given:
        text = text.replace("  enabled: true\n", "  enabled: true\n  manifest_signing_key: signing.key\n")
    path = _with_reviewer(tmp_path, text)
    err = _refusal(command, path, capsys)
    where = f"{path}:{_line_of(path, 'manifest_signing_key' if given else 'recording:')}"
    assert err.startswith(
        f"{where}: recording.manifest_signing_key: {key}: not an unencrypted PEM private key: "
    )
    assert not (tmp_path / "data" / "evidence.db").exists()  # serve stopped before it opened it


def test_check_config_warns_of_a_manifest_signing_key_others_may_read(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    key = tmp_path / "data" / "keys" / "manifest-signing.key"
    ensure_signing_key(key)
    path = _with_reviewer(tmp_path, EMBEDDED_DEFAULT_YAML + "data_dir: data\n")
    assert main(["check-config", str(path)]) == 0
    assert capsys.readouterr() == (f"{path}: OK\n", "")
    key.chmod(0o640)
    assert main(["check-config", str(path)]) == 0
    out, err = capsys.readouterr()
    assert out == f"{path}: OK\n"
    assert err == (
        f"{path}:{_line_of(path, 'recording:')}: warning: manifest signing key {str(key)!r} may be read by"
        " others than its owner (mode 0640): whoever reads it can sign the manifests of forged evidence;"
        " chmod 600\n"
    )


def _write_tone_wav(path: Path, seconds: float = 1.0) -> None:
    rate = 16_000
    samples = (8000 * np.sin(2 * np.pi * 440 * np.arange(int(rate * seconds)) / rate)).astype("<i2")
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(samples.tobytes())


def _config_with_prompts(tmp_path: Path, file_name: str) -> Path:
    path = tmp_path / "callherald.yaml"
    section = "announcements:\n  default_language: nl\n"
    assert section in EMBEDDED_DEFAULT_YAML
    prompts = (
        f"{section}  prompt_sets:\n    - id: welcome\n      prompts:\n"
        f'        nl: {{file: {file_name}, text: "Dit gesprek wordt opgenomen."}}\n'
    )
    path.write_text(EMBEDDED_DEFAULT_YAML.replace(section, prompts) + "data_dir: data\n", encoding="utf-8")
    return path


def test_check_config_imports_the_configured_announcements(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _write_tone_wav(tmp_path / "welkom.wav")
    path = _config_with_prompts(tmp_path, "welkom.wav")
    assert main(["check-config", str(path)]) == 0
    assert capsys.readouterr().out.strip() == f"{path}: OK"
    assert list((tmp_path / "data" / "announcements-cache").rglob("pcmu.bin"))


def test_serve_ignores_a_hang_up_from_its_first_step(tmp_path: Path) -> None:
    # The event loop logs each SIGHUP once it runs; before, while serve reads its configuration,
    # imports prompts and recovers, the default action would end it with nothing logged.
    path = tmp_path / "broken.yaml"
    path.write_text("listen: [\n", encoding="utf-8")
    previous = signal.getsignal(signal.SIGHUP)
    signal.signal(signal.SIGHUP, signal.SIG_DFL)
    try:
        assert main(["serve", "--config", str(path)]) == 2  # stops at the configuration
        assert signal.getsignal(signal.SIGHUP) == signal.SIG_IGN
    finally:
        signal.signal(signal.SIGHUP, previous)


def test_check_config_makes_the_data_directory_0700_as_serve_does(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Run first, as the README suggests, it made data_dir with the umask's mode (0755) for its
    # announcement cache, and serve keeps the mode of one that exists: others could list it.
    _write_tone_wav(tmp_path / "welkom.wav")
    path = _config_with_prompts(tmp_path, "welkom.wav")
    previous = os.umask(0o022)
    try:
        assert main(["check-config", str(path)]) == 0
    finally:
        os.umask(previous)
    capsys.readouterr()
    assert stat.S_IMODE((tmp_path / "data").stat().st_mode) == 0o700


def test_check_config_names_a_corrupt_announcement(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "broken.wav").write_text("this is not audio", encoding="utf-8")
    path = _config_with_prompts(tmp_path, "broken.wav")
    assert main(["check-config", str(path)]) == 2
    problems = [line for line in capsys.readouterr().err.splitlines() if ": warning: " not in line]
    assert len(problems) == 1
    assert problems[0].startswith(
        f"{path}:{_line_of(path, 'nl: {file: broken.wav')}: announcements.prompt_sets[0].prompts.nl.file: "
        f"announcement 'welcome' (nl): {tmp_path / 'broken.wav'}: is not a readable audio file (ffmpeg: "
    )


def _line_of(path: Path, text: str) -> int:
    return next(n for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1) if text in line)


def _with_recording(section: str) -> str:
    """The embedded default with its ``recording`` section replaced by ``section`` (and data_dir set)."""
    before, rest = EMBEDDED_DEFAULT_YAML.split("recording:\n", 1)
    return before + section + "logging:" + rest.split("logging:", 1)[1] + "data_dir: data\n"


@pytest.mark.parametrize(
    ("section", "warned_at"),
    [
        pytest.param("recording:\n  recipients: []\n", "recipients: []", id="recipients-empty"),
        pytest.param("recording:\n  recipients:\n", "recipients:", id="recipients-null"),
        pytest.param("recording:\n  min_free_mb: 50\n", "recording:", id="recipients-absent"),
        pytest.param("", None, id="section-absent"),
    ],
)
def test_check_config_warns_that_recordings_would_use_the_development_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], section: str, warned_at: str | None
) -> None:
    path = tmp_path / "callherald.yaml"
    path.write_text(_with_recording(section), encoding="utf-8")
    assert main(["check-config", str(path)]) == 0
    out, err = capsys.readouterr()
    assert out == f"{path}: OK\n"
    where = str(path) if warned_at is None else f"{path}:{_line_of(path, warned_at)}"
    assert err == (
        f"{where}: warning: no recording.recipients: recordings will be encrypted for the development key "
        f"in {tmp_path / 'data' / 'keys'}, whose passphrase lies next to it: anyone who can read that "
        "directory can play them; list the public keys of those who may (callherald keys generate)\n"
    )


NOTHING_RECORDED = """\
purposes: [{id: evidence, lawful_basis: contract, retention_days: 1}]
policies: [{name: none, record: false}]
"""


@pytest.mark.parametrize(
    ("section", "policies"),
    [
        pytest.param("recording:\n  recipients: [reviewer.pub]\n", "", id="recipients-given"),
        pytest.param("recording:\n  enabled: false\n", "", id="recording-off"),
        pytest.param("", NOTHING_RECORDED, id="no-policy-records"),
    ],
)
def test_check_config_does_not_warn_when_nothing_uses_the_development_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], section: str, policies: str
) -> None:
    (tmp_path / "reviewer.pub").write_text(REVIEWER_PEM, encoding="ascii")
    text = _with_recording(section)
    if policies:
        text = text.split("purposes:\n", 1)[0] + policies + "logging:" + text.split("logging:", 1)[1]
    path = tmp_path / "callherald.yaml"
    path.write_text(text, encoding="utf-8")
    assert main(["check-config", str(path)]) == 0
    assert capsys.readouterr() == (f"{path}: OK\n", "")


def test_check_config_warns_of_a_held_evidence_dir_that_is_no_directory(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Its disk not mounted: only a stop on a full disk uses it, and data_dir stands in for it then.
    (tmp_path / "reviewer.pub").write_text(REVIEWER_PEM, encoding="ascii")
    path = tmp_path / "callherald.yaml"
    path.write_text(
        _with_recording("recording:\n  recipients: [reviewer.pub]\n  held_evidence_dir: spare/held\n"),
        encoding="utf-8",
    )
    assert main(["check-config", str(path)]) == 0
    out, err = capsys.readouterr()
    assert out == f"{path}: OK\n"
    assert err == (
        f"{path}:{_line_of(path, 'held_evidence_dir')}: warning: {str(tmp_path / 'spare' / 'held')!r} is not"
        " a directory (is its disk mounted?): evidence that a stop on a full disk keeps goes to data_dir"
        f" ({tmp_path / 'data'}) instead, and the files kept in it earlier wait there for a start that"
        " sees it\n"
    )


@pytest.mark.parametrize("where", ["file", "directory"])
def test_check_config_warns_of_a_recipient_key_anyone_may_change(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], where: str
) -> None:
    # Whoever swaps in a key of their own can read every recording made after.
    keys = tmp_path / "keys"
    keys.mkdir()
    public = keys / "reviewer.pub"
    public.write_text(REVIEWER_PEM, encoding="ascii")
    if where == "file":
        public.chmod(0o666)
        problem = "is writable by anyone (mode 0666): whoever changes it can read the recordings made after; chmod 644"
    else:
        keys.chmod(0o777)
        problem = "is in a directory anyone may write to (mode 0777): whoever replaces it can read the recordings made after"
    path = tmp_path / "callherald.yaml"
    path.write_text(_with_recording("recording:\n  recipients: [keys/reviewer.pub]\n"), encoding="utf-8")
    assert main(["check-config", str(path)]) == 0
    out, err = capsys.readouterr()
    assert out == f"{path}: OK\n"
    assert (
        err == f"{path}:{_line_of(path, 'recipients')}: warning: public key file {str(public)!r} {problem}\n"
    )
    public.chmod(0o644)
    keys.chmod(0o1777)  # sticky, as /tmp: others cannot replace a file they do not own
    assert main(["check-config", str(path)]) == 0
    assert capsys.readouterr() == (f"{path}: OK\n", "")


@pytest.mark.parametrize(
    "argv",
    [["recordings", "list"], ["audit", "verify"], ["calls", "list"]],
    ids=["recordings-list", "audit-verify", "calls-list"],
)
def test_commands_that_keep_no_evidence_ignore_a_missing_held_evidence_dir(
    tmp_path: Path, argv: list[str]
) -> None:
    # They exited 2 on it, `calls pause` (a card payment) among them.
    (tmp_path / "reviewer.pub").write_text(REVIEWER_PEM, encoding="ascii")
    path = tmp_path / "callherald.yaml"
    path.write_text(
        _with_recording("recording:\n  recipients: [reviewer.pub]\n  held_evidence_dir: spare/held\n"),
        encoding="utf-8",
    )
    data = DataLayout(tmp_path / "data")
    data.root.mkdir()
    EvidenceStore(data.evidence_db).close()
    command = subprocess.run(
        [sys.executable, "-m", "callherald.cli", *argv, "--config", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert "held_evidence_dir" not in command.stderr
    if argv[0] == "calls":  # it got as far as asking serve, which does not run here
        assert "callherald is not running" in command.stderr
    else:
        assert command.returncode == 0, command.stderr


def test_check_config_warns_about_rtp_ports_among_the_ephemeral_ones(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ephemeral = ephemeral_ports()
    if ephemeral is None or len(ephemeral) < 8:
        pytest.skip("the kernel does not say which ports are ephemeral")
    low = ephemeral.start + ephemeral.start % 2  # an even port inside the range
    high = low + 3
    path = tmp_path / "callherald.yaml"
    text = EMBEDDED_DEFAULT_YAML.replace("rtp_port_min: 20000", f"rtp_port_min: {low}")
    text = text.replace("rtp_port_max: 20999", f"rtp_port_max: {high}")
    path.write_text(text.replace("recipients: []", "recipients: [reviewer.pub]"), encoding="utf-8")
    (tmp_path / "reviewer.pub").write_text(REVIEWER_PEM, encoding="ascii")
    assert main(["check-config", str(path)]) == 0
    out, err = capsys.readouterr()
    assert out == f"{path}: OK\n"
    assert err.startswith(
        f"{path}:{_line_of(path, 'rtp_port_min')}: warning: media.rtp_port_min..rtp_port_max ({low}-{high}) "
        f"overlaps the ports the kernel hands out to other programs ({ephemeral.start}-{ephemeral.stop - 1}, "
        "net.ipv4.ip_local_port_range)"
    )
    assert len(err.splitlines()) == 1


def _with_reviewer(tmp_path: Path, text: str) -> Path:
    """``text`` (the embedded default, edited) written with a reviewer key, so that no warning of
    the development key comes with it."""
    (tmp_path / "reviewer.pub").write_text(REVIEWER_PEM, encoding="ascii")
    path = tmp_path / "callherald.yaml"
    path.write_text(text.replace("recipients: []", "recipients: [reviewer.pub]"), encoding="utf-8")
    return path


RECORDING_POLICY_END = "    on_failure: connect_unrecorded\n"


@pytest.mark.parametrize(("code", "warned"), [("12", True), ("#9", False), ("*0", False)])
def test_check_config_warns_of_a_pci_code_a_card_number_may_contain(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], code: str, warned: bool
) -> None:
    # A code of digits only is valid, but a caller who stops between the groups of a card number
    # and goes on with those digits toggles the pause mid-payment.
    assert RECORDING_POLICY_END in EMBEDDED_DEFAULT_YAML
    policy = f'{RECORDING_POLICY_END}    pci_pause_code: "{code}"\n'
    path = _with_reviewer(tmp_path, EMBEDDED_DEFAULT_YAML.replace(RECORDING_POLICY_END, policy))
    assert main(["check-config", str(path)]) == 0
    out, err = capsys.readouterr()
    assert out == f"{path}: OK\n"
    expected = (
        f"{path}:{_line_of(path, 'pci_pause_code')}: warning: policy 'default': the PCI pause code '12' is "
        "digits only, which a card number or security code may contain: a caller who stops between the "
        "groups of a card number and goes on with '12' pauses or resumes the recording; use a code with "
        '* or #, such as "#9"\n'
    )
    assert err == (expected if warned else "")


@pytest.mark.parametrize(("yes_digit", "warned"), [("2", True), ("1", False)])
def test_check_config_warns_of_a_yes_key_the_embedded_question_does_not_ask_for(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], yes_digit: str, warned: bool
) -> None:
    # The embedded question says "press 1": with another yes key, everyone who presses 1 as told
    # would be stored as refusing.
    text = EMBEDDED_DEFAULT_YAML.replace('yes_digit: "1"', f'yes_digit: "{yes_digit}"')
    path = _with_reviewer(tmp_path, text)
    assert main(["check-config", str(path)]) == 0
    out, err = capsys.readouterr()
    assert out == f"{path}: OK\n"
    expected = (
        f"{path}:{_line_of(path, 'yes_digit')}: warning: consent question 'training-consent' is asked with "
        "the embedded prompt set, which says \"press 1\", but its yes_digit is '2': callers who press 1 as "
        "told are stored as refusing; give yes_digit \"1\", or a prompt set that asks for '2'\n"
    )
    assert err == (expected if warned else "")


def test_the_embedded_question_asks_for_the_key_the_config_checks_against() -> None:
    texts = [prompt.text or "" for prompt in default_consent_prompt_set().prompts]
    assert texts
    assert all(text.endswith(f" {EMBEDDED_PROMPT_YES_DIGIT}.") for text in texts), texts


def test_keys_generate_writes_a_protected_pair(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(PASSPHRASE_ENV, "correct horse battery staple")
    assert main(["keys", "generate", "--out", str(tmp_path / "keys"), "--name", "dpo"]) == 0
    out = capsys.readouterr().out
    private_key = load_private_key(tmp_path / "keys" / "dpo.key", "correct horse battery staple")
    public_key = load_public_key(tmp_path / "keys" / "dpo.pub")
    assert public_key.public_bytes_raw() == private_key.public_key().public_bytes_raw()
    assert f"key id {key_id(public_key)}" in out
    with pytest.raises(WrongPassphraseError):
        load_private_key(tmp_path / "keys" / "dpo.key", "wrong passphrase!!")
    # never overwrites a key
    assert main(["keys", "generate", "--out", str(tmp_path / "keys"), "--name", "dpo"]) == 2
    assert "exists already" in capsys.readouterr().err


def test_keys_generate_writes_the_pair_only_its_owner_may_change_whatever_the_umask(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Whoever can replace the public key a proxy is given can read every recording made after.
    monkeypatch.setenv(PASSPHRASE_ENV, "correct horse battery staple")
    previous = os.umask(0)
    try:
        assert main(["keys", "generate", "--out", str(tmp_path / "keys"), "--name", "dpo"]) == 0
    finally:
        os.umask(previous)
    modes = {path.name: stat.S_IMODE(path.stat().st_mode) for path in (tmp_path / "keys").iterdir()}
    assert modes == {"dpo.key": 0o600, "dpo.pub": 0o644}
    assert stat.S_IMODE((tmp_path / "keys").stat().st_mode) == 0o700


@pytest.mark.parametrize("passphrase", ["short", " " * 12, "  eleven chr  "])
def test_keys_generate_refuses_a_short_passphrase(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, passphrase: str
) -> None:
    monkeypatch.setenv(PASSPHRASE_ENV, passphrase)
    assert main(["keys", "generate", "--out", str(tmp_path)]) == 2
    assert "at least 12 characters" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("name", ["a/b", "../evil", "", ".hidden", "/etc/x", "a b"])
def test_keys_generate_takes_only_a_plain_file_name(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    monkeypatch.setenv(PASSPHRASE_ENV, "correct horse battery staple")
    keys = tmp_path / "keys"
    with pytest.raises(SystemExit) as info:
        main(["keys", "generate", "--out", str(keys), "--name", name])
    assert info.value.code == 2
    assert "--name: expected a plain file name" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []  # nothing written, inside --out or beside it


def _unwritable(tmp_path: Path) -> tuple[Path, str]:
    keys = tmp_path / "keys"
    keys.mkdir(mode=0o500)
    return keys, f"cannot write {keys / 'dpo.key'}: Permission denied"


def _a_file(tmp_path: Path) -> tuple[Path, str]:
    keys = tmp_path / "keys.pub"
    keys.write_text("not a directory\n")
    return keys, f"{keys} is not a directory"


def _under_a_file(tmp_path: Path) -> tuple[Path, str]:
    (tmp_path / "notes").write_text("not a directory\n")
    keys = tmp_path / "notes" / "keys"
    return keys, f"cannot write {keys}: Not a directory"


@pytest.mark.parametrize("where", [_unwritable, _a_file, _under_a_file])
def test_keys_generate_reports_os_errors_in_one_line(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    where: Callable[[Path], tuple[Path, str]],
) -> None:
    if where is _unwritable and os.geteuid() == 0:
        pytest.skip("root writes into a read-only directory")
    monkeypatch.setenv(PASSPHRASE_ENV, "correct horse battery staple")
    keys, message = where(tmp_path)
    assert main(["keys", "generate", "--out", str(keys), "--name", "dpo"]) == 2
    out, err = capsys.readouterr()
    assert (out, err) == ("", message + "\n")


def test_keys_generate_leaves_no_half_pair_behind(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # The public key cannot be written after the private one was: the private one goes again,
    # so that the next attempt is not refused with "exists already".
    monkeypatch.setenv(PASSPHRASE_ENV, "correct horse battery staple")
    keys = tmp_path / "keys"
    keys.mkdir()

    def refuse(path: Path, public_key: object) -> None:
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(cli, "save_public_key", refuse)
    assert main(["keys", "generate", "--out", str(keys), "--name", "dpo"]) == 2
    assert capsys.readouterr().err == f"cannot write {keys / 'dpo.pub'}: Permission denied\n"
    assert list(keys.iterdir()) == []
