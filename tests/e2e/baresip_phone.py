"""baresip (Debian ``baresip-core``) as a third-party SIP phone in end-to-end tests.

Each phone runs in its own process with its own configuration directory: one account on
127.0.0.1 that answers every call itself, a sine tone as its microphone (``ausine``, which
baresip resamples from 48 kHz to the codec's rate), no sound device, and the ``ctrl_tcp``
module, through which the test dials, sends key presses (RFC 4733 where negotiated), puts the
call on hold and hangs up. Commands and replies are JSON in netstrings. The process is stopped by
its PID.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from tests.e2e.harness import LOOPBACK, free_port, free_port_range

__all__ = ["BaresipPhone", "baresip_available", "baresip_phone"]

BARESIP = shutil.which("baresip")
_MODULES = "/usr/lib/baresip/modules"
_NEEDED_MODULES = ("g711", "g722", "ausine", "aubridge", "account", "menu", "ctrl_tcp", "srtp", "sndfile")
_START_TIMEOUT_S = 10.0
_REPLY_TIMEOUT_S = 5.0


def baresip_available() -> bool:
    """baresip and the modules these tests load are installed."""
    return BARESIP is not None and all(Path(_MODULES, f"{name}.so").exists() for name in _NEEDED_MODULES)


@dataclass
class BaresipPhone:
    """A running baresip: its SIP port, control port, process and log."""

    sip_port: int
    control_port: int
    process: subprocess.Popen[bytes]
    log_path: Path

    def log_text(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def command(self, name: str, params: str = "") -> dict[str, object]:
        """Run a ``ctrl_tcp`` command and return its reply (events that come first are skipped)."""
        request = json.dumps({"command": name, "params": params, "token": name}).encode()
        with socket.create_connection((LOOPBACK, self.control_port), timeout=_REPLY_TIMEOUT_S) as conn:
            conn.sendall(b"%d:%s," % (len(request), request))
            buffer = b""
            deadline = time.monotonic() + _REPLY_TIMEOUT_S
            while time.monotonic() < deadline:
                chunk = conn.recv(65536)
                if not chunk:
                    break
                buffer += chunk
                while b":" in buffer:
                    length, _, rest = buffer.partition(b":")
                    if len(rest) < int(length) + 1:
                        break
                    message = json.loads(rest[: int(length)])
                    buffer = rest[int(length) + 1 :]
                    if message.get("response"):
                        return dict(message)
        raise AssertionError(f"baresip gave no reply to {name!r}:\n{self.log_text()}")


def _config(
    directory: Path, *, sip_port: int, control_port: int, tone_hz: int, rtp: tuple[int, int], dump: bool
) -> str:
    # srtp: SDES-keyed SRTP when the account asks for it (mediaenc); sndfile (``dump``): every
    # call's audio as heard, decoded, to dump-*-dec.wav in the phone's directory.
    dump_lines = f"module sndfile.so\nsnd_path {directory}\n" if dump else ""
    return f"""\
poll_method epoll
sip_listen {LOOPBACK}:{sip_port}
rtp_ports {rtp[0]}-{rtp[1]}
module_path {_MODULES}
module g711.so
module g722.so
module ausine.so
module aubridge.so
module srtp.so
{dump_lines}module_app account.so
module_app menu.so
module_app ctrl_tcp.so
ctrl_tcp_listen {LOOPBACK}:{control_port}
audio_source ausine,{tone_hz}
ausrc_srate 48000
ausrc_channels 2
audio_player aubridge,{directory.name}
audio_alert aubridge,{directory.name}
"""


@contextlib.contextmanager
def baresip_phone(
    directory: Path,
    *,
    user: str,
    tone_hz: int,
    codec: str = "PCMU/8000/1",
    sip_port: int | None = None,
    mediaenc: str | None = None,
    dump_audio: bool = False,
) -> Iterator[BaresipPhone]:
    """A baresip phone for ``sip:USER@127.0.0.1:PORT`` that answers every call and offers only
    ``codec``; it sends a ``tone_hz`` sine; ``mediaenc`` ``srtp-mand`` makes it speak SRTP only
    (RTP/SAVP, SDES keys); with ``dump_audio`` it writes what it hears to ``dump-*-dec.wav``.
    Stopped (SIGTERM, then SIGKILL) when the block ends."""
    assert BARESIP is not None
    directory.mkdir(parents=True)
    sip_port = sip_port or free_port()
    control_port = free_port()
    (directory / "config").write_text(
        _config(
            directory,
            sip_port=sip_port,
            control_port=control_port,
            tone_hz=tone_hz,
            rtp=free_port_range(20),
            dump=dump_audio,
        ),
        encoding="utf-8",
    )
    (directory / "accounts").write_text(
        f"<sip:{user}@{LOOPBACK}:{sip_port}>;regint=0;answermode=auto;audio_codecs={codec}"
        + (f";mediaenc={mediaenc}" if mediaenc else "")
        + "\n",
        encoding="utf-8",
    )
    (directory / "contacts").write_text("", encoding="utf-8")
    log_path = directory / "baresip.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [BARESIP, "-f", str(directory)], stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
        )
    phone = BaresipPhone(sip_port=sip_port, control_port=control_port, process=process, log_path=log_path)
    try:
        deadline = time.monotonic() + _START_TIMEOUT_S
        while "baresip is ready" not in phone.log_text():
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"baresip did not start:\n{phone.log_text()}")
            time.sleep(0.05)
        yield phone
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=5)
