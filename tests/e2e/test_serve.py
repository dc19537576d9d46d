"""``callherald serve`` with no configuration: it must start and listen on the embedded default."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

from tests.e2e.harness import CALLHERALD, default_yaml, free_port, free_port_range, serve_that_stops

# Fixed ports or CPU measured: runs alone, after the end-to-end tests that run side by side.
pytestmark = pytest.mark.serial


def _options(port: int) -> bytes:
    return (
        f"OPTIONS sip:ping@127.0.0.1:{port} SIP/2.0\r\n"
        "Via: SIP/2.0/UDP 127.0.0.1:9;branch=z9hG4bKcli1;rport\r\n"
        "From: <sip:test@127.0.0.1>;tag=cli\r\nTo: <sip:ping@127.0.0.1>\r\n"
        "Call-ID: cli-options@127.0.0.1\r\nCSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
    ).encode()


def _port_busy(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return True
    return False


@pytest.mark.e2e
def test_serve_without_config_listens_on_the_embedded_default(tmp_path: Path) -> None:
    if _port_busy(5060) or _port_busy(5070):
        pytest.skip("the embedded default ports 5060/5070 are in use on this machine")
    process = subprocess.Popen(
        [str(CALLHERALD), "serve"],
        cwd=tmp_path,
        env={**os.environ, "CALLHERALD_HOME": str(tmp_path / "home")},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
    )
    try:
        answers = []
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.bind(("127.0.0.1", 0))
            sock.settimeout(0.3)
            for port in (5060, 5070):
                deadline = time.monotonic() + 10
                while time.monotonic() < deadline:
                    sock.sendto(_options(port), ("127.0.0.1", port))
                    try:
                        data, _ = sock.recvfrom(4096)
                    except TimeoutError:
                        continue
                    answers.append(data.split(b"\r\n", 1)[0])
                    break
        assert answers == [b"SIP/2.0 200 OK", b"SIP/2.0 200 OK"]
    finally:
        process.send_signal(signal.SIGTERM)
        output, _ = process.communicate(timeout=10)
    assert process.returncode == 0
    assert b"running the embedded default" in output
    # Full collections must not walk the start-up objects while calls are relayed.
    set_aside = re.search(rb"start-up objects set aside from the garbage collector: (\d+)", output)
    assert set_aside is not None, output.decode(errors="replace")
    assert int(set_aside.group(1)) > 10_000


@pytest.mark.timeout(40)
@pytest.mark.parametrize("obstacle", ["socket-path-too-long", "sip-port-taken"])
def test_serve_that_cannot_start_says_why_without_a_traceback(tmp_path: Path, obstacle: str) -> None:
    env = {**os.environ}
    held: socket.socket | None = None
    if obstacle == "socket-path-too-long":
        home = tmp_path / ("d" * 110)
        env["CALLHERALD_HOME"] = str(home)
        expected = "a Unix socket path holds at most 107 bytes"
    else:
        env["CALLHERALD_HOME"] = str(tmp_path / "data")
        held = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            held.bind(("127.0.0.1", 5060))  # the embedded default's PBX listener
        except OSError:
            held.close()
            pytest.skip("127.0.0.1:5060 is in use by something else")
        expected = (
            "callherald cannot start: the embedded default: listen.pbx.port: cannot listen for the pbx side on "
            "127.0.0.1:5060 (udp): address already in use: another program, or another callherald, listens there"
        )
    try:
        completed = serve_that_stops(None, tmp_path, env)
    finally:
        if held is not None:
            held.close()
    output = completed.stdout + completed.stderr
    assert completed.returncode == 2, output
    assert "callherald cannot start" in output
    assert expected in output
    assert "Traceback" not in output


@pytest.mark.timeout(40)
@pytest.mark.parametrize("transport", ["udp", "tcp"])
def test_serve_names_the_key_of_a_listener_port_in_use(tmp_path: Path, transport: str) -> None:
    # It said only "could not bind to local_addr ('127.0.0.1', 5070)": neither the key nor why.
    kind = socket.SOCK_DGRAM if transport == "udp" else socket.SOCK_STREAM
    with socket.socket(socket.AF_INET, kind) as held:
        held.bind(("127.0.0.1", 0))
        if transport == "tcp":
            held.listen()
        port = held.getsockname()[1]
        rtp_min, rtp_max = free_port_range(100)
        text = default_yaml(
            pbx_port=free_port(),
            carrier_port=port,
            carrier_target_port=free_port(),
            pbx_target_port=free_port(),
            rtp_min=rtp_min,
            rtp_max=rtp_max,
            transport=transport,
        )
        config = tmp_path / "callherald.yaml"
        config.write_text(text, encoding="utf-8")
        completed = serve_that_stops(config, tmp_path)
    output = completed.stdout + completed.stderr
    assert completed.returncode == 2, output
    line = next(n for n, text in enumerate(text.splitlines(), 1) if f"port: {port}" in text)
    assert (
        f"callherald cannot start: {config}:{line}: listen.carrier.port: cannot listen for the carrier side on "
        f"127.0.0.1:{port} ({transport}): address already in use: another program, or another callherald, "
        "listens there"
    ) in output, output
    assert "Traceback" not in output


@pytest.mark.timeout(40)
def test_serve_starts_without_its_held_evidence_dir_and_warns(tmp_path: Path) -> None:
    # The spare disk not mounted: serve exited 2, although data_dir takes held evidence then.
    rtp_min, rtp_max = free_port_range(100)
    config = tmp_path / "callherald.yaml"
    config.write_text(
        default_yaml(
            pbx_port=free_port(),
            carrier_port=free_port(),
            carrier_target_port=free_port(),
            pbx_target_port=free_port(),
            rtp_min=rtp_min,
            rtp_max=rtp_max,
            extra="recording:\n  held_evidence_dir: spare/held\n",
        ),
        encoding="utf-8",
    )
    log = tmp_path / "serve.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [str(CALLHERALD), "serve", "--config", str(config)],
            cwd=tmp_path,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    try:
        deadline = time.monotonic() + 20
        while "control socket at" not in log.read_text(errors="replace") and process.poll() is None:
            assert time.monotonic() < deadline, log.read_text(errors="replace")
            time.sleep(0.1)
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=15)
    output = log.read_text(errors="replace")
    assert process.returncode == 0, output
    assert (
        f"WARNING callherald: recording.held_evidence_dir: {str(tmp_path / 'spare' / 'held')!r} is not a"
        " directory (is its disk mounted?): evidence that a stop on a full disk keeps goes to data_dir"
    ) in output, output
