"""A pyVoIP 1.6.8 phone as the outside party on the carrier side, keying DTMF as in-band audio.

``pyvoip_phone.py`` runs a phone that registers to callherald's PBX listener, so it is always the
inside party. A carrier trunk does not register: it is trusted by its address. This child runs the
same pyVoIP phone without registering and with callherald's carrier listener as its server, so
``call`` sends the INVITE there and the phone is the caller who hears the recording notice and
the consent question. ``send_digit`` writes a DTMF key press into the call's audio the way an
analogue phone behind a gateway leaves it: the ITU-T Q.23 tone pair, then silence. pyVoIP sends
audio only (it never sends RFC 4733 telephone-events), so callherald can only hear it in-band.

The controller is ``pyvoip_phone.PyvoipPhone`` and the protocol is the one described there, with
one more command: ``send_digit`` (``digit``, ``tone_ms``, ``silence_ms``: the pair in 8-bit
unsigned PCM at 8 kHz into ``write_audio``). pyVoIP has no unregistered mode; the stand-in for its
registration marks the phone ``REGISTERED``, which for pyVoIP means ready to call. When pyVoIP
drops or fails on a 200 OK to its INVITE, the child says so in its log (pyVoIP itself is silent
unless its global debug switch is on). The child is started as
``python -m tests.e2e.pyvoip_consent_phone`` with the repository on ``PYTHONPATH``.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import math
import os
import subprocess
import sys
import threading
import traceback
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tests.e2e.pyvoip_phone import (
    DEFAULT_MAX_LIFETIME_S,
    SAMPLE_RATE_HZ,
    SILENCE_PCM8,
    PyvoipPhone,
    _Agent,
    _Output,
    _Trace,
    _tracing_socket_module,
    _watchdog,
    serve_phone,
)

__all__ = [
    "DBM0_PEAK_PCM8",
    "HIGH_GROUP_DBM0",
    "LOW_GROUP_DBM0",
    "dtmf_pcm8",
    "main",
    "running_caller",
]

REPOSITORY = Path(__file__).resolve().parents[2]
# ITU-T Q.23 keypad: rows are the low group, columns the high group.
_KEYPAD = ("123A", "456B", "789C", "*0#D")
_LOW_HZ = (697.0, 770.0, 852.0, 941.0)
_HIGH_HZ = (1209.0, 1336.0, 1477.0, 1633.0)
# Q.23 nominal sending levels: low group -11 dBm0, high group 2 dB above it.
LOW_GROUP_DBM0 = -11.0
HIGH_GROUP_DBM0 = -9.0
# ITU-T G.711: a 0 dBm0 sine peaks 3.17 dB below the µ-law overload point (32636 of 32767 in
# 16 bits); pyVoIP's 8-bit samples are the high bytes of 16-bit ones.
DBM0_PEAK_PCM8 = 32_636.0 * 10.0 ** (-3.17 / 20.0) / 256.0


def dtmf_pcm8(digit: str, tone_ms: float, silence_ms: float) -> bytes:
    """The digit's Q.23 tone pair for ``tone_ms``, then ``silence_ms`` of silence, as pyVoIP's audio
    format (8-bit unsigned linear PCM at 8 kHz, centred on 128)."""
    row = next((index for index, keys in enumerate(_KEYPAD) if digit.upper() in keys), None)
    if row is None or len(digit) != 1:
        raise ValueError(f"not a DTMF digit: {digit!r}")
    column = _KEYPAD[row].index(digit.upper())
    low = DBM0_PEAK_PCM8 * 10.0 ** (LOW_GROUP_DBM0 / 20.0)
    high = DBM0_PEAK_PCM8 * 10.0 ** (HIGH_GROUP_DBM0 / 20.0)
    low_step = 2.0 * math.pi * _LOW_HZ[row] / SAMPLE_RATE_HZ
    high_step = 2.0 * math.pi * _HIGH_HZ[column] / SAMPLE_RATE_HZ
    tone = bytes(
        SILENCE_PCM8 + round(low * math.sin(low_step * n) + high * math.sin(high_step * n))
        for n in range(round(tone_ms * SAMPLE_RATE_HZ / 1000.0))
    )
    return tone + bytes([SILENCE_PCM8]) * round(silence_ms * SAMPLE_RATE_HZ / 1000.0)


# Test side ---------------------------------------------------------------------------------------


@contextlib.contextmanager
def running_caller(
    workdir: Path,
    *,
    server_port: int,
    sip_port: int,
    rtp_port: int,
    username: str = "pyvoip-caller",
    server_host: str = "127.0.0.1",
    start_timeout_s: float = 20.0,
    max_lifetime_s: float = DEFAULT_MAX_LIFETIME_S,
) -> Iterator[PyvoipPhone]:
    """Start an unregistered phone whose calls go to ``server_host:server_port``; yield it once
    pyVoIP's SIP receive loop runs. It is stopped (and killed by its PID if need be) on exit."""
    trace_path = workdir / f"pyvoip-caller-{sip_port}.trace.jsonl"
    log_path = workdir / f"pyvoip-caller-{sip_port}.log"
    command = [
        sys.executable,
        "-m",
        "tests.e2e.pyvoip_consent_phone",
        "--server-host",
        server_host,
        "--server-port",
        str(server_port),
        "--username",
        username,
        "--sip-port",
        str(sip_port),
        "--rtp-port",
        str(rtp_port),
        "--trace",
        str(trace_path),
        "--max-lifetime-s",
        str(max_lifetime_s),
    ]
    python_path = os.pathsep.join(filter(None, [str(REPOSITORY), os.environ.get("PYTHONPATH")]))
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            command,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=log,
            text=True,
            cwd=workdir,
            env={**os.environ, "PYTHONPATH": python_path, "PYTHONWARNINGS": "ignore::DeprecationWarning"},
        )
    phone = PyvoipPhone(process, sip_port=sip_port, trace_path=trace_path, log_path=log_path)
    try:
        phone.wait_event("started", start_timeout_s)
        yield phone
    finally:
        phone.close()


# Child side --------------------------------------------------------------------------------------


class _CallerAgent(_Agent):
    """``pyvoip_phone``'s agent with one more command: key a digit in-band."""

    def handle(self, command: dict[str, Any]) -> dict[str, object]:
        if command.get("cmd") == "send_digit":
            audio = dtmf_pcm8(str(command["digit"]), float(command["tone_ms"]), float(command["silence_ms"]))
            self._require_call().write_audio(audio)
            return {"bytes": len(audio)}
        return super().handle(command)


def _without_registration(sip_client: Any, ready: Any) -> None:
    """Make pyVoIP's ``SIPClient.register`` send nothing: a carrier trunk does not register."""

    def register(self: Any) -> bool:
        self.phone._status = ready
        return True

    sip_client.register = register


def _report_answer_trouble(phone_class: Any) -> None:
    """Write to the phone's log when pyVoIP drops or fails on a 200 OK to its INVITE (it only says
    so with its global debug switch, which also makes its receive loop die on the first error)."""
    on_ok = phone_class._callback_RESP_OK

    def report(self: Any, request: Any) -> None:
        call_id = request.headers["Call-ID"]
        if call_id not in self.calls:
            print(f"200 OK for a call pyVoIP does not know (yet): {call_id}", file=sys.stderr, flush=True)
        try:
            on_ok(self, request)
        except Exception:
            traceback.print_exc(file=sys.stderr)
            sys.stderr.flush()
            raise

    phone_class._callback_RESP_OK = report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0] if __doc__ else None)
    parser.add_argument("--server-host", default="127.0.0.1")
    parser.add_argument("--server-port", type=int, required=True)
    parser.add_argument("--username", required=True)
    parser.add_argument("--my-ip", default="127.0.0.1")
    parser.add_argument("--sip-port", type=int, required=True)
    parser.add_argument("--rtp-port", type=int, required=True)
    parser.add_argument("--trace", type=Path, required=True)
    parser.add_argument("--max-lifetime-s", type=float, default=DEFAULT_MAX_LIFETIME_S)
    args = parser.parse_args(argv)
    threading.Thread(target=_watchdog, args=(args.max_lifetime_s,), daemon=True).start()

    # pyVoIP prints to stdout; the controller's channel is a private copy of the original stdout.
    out = _Output(os.fdopen(os.dup(sys.stdout.fileno()), "w", buffering=1))
    sys.stdout = sys.stderr

    # pyVoIP.VoIP comes first: pyVoIP.SIP alone fails with a circular import.
    voip = importlib.import_module("pyVoIP.VoIP")
    sip_module: Any = importlib.import_module("pyVoIP.SIP")
    sip_module.socket = _tracing_socket_module(_Trace(args.trace))
    _without_registration(sip_module.SIPClient, voip.PhoneStatus.REGISTERED)
    _report_answer_trouble(voip.VoIPPhone)
    agent = _CallerAgent(out, voip.CallState)
    phone = voip.VoIPPhone(
        args.server_host,
        args.server_port,
        args.username,
        "",
        myIP=args.my_ip,
        callCallback=agent.on_incoming,
        sipPort=args.sip_port,
        rtpPortLow=args.rtp_port,
        rtpPortHigh=args.rtp_port,
    )
    agent.phone = phone
    serve_phone(phone, agent, out)


if __name__ == "__main__":
    sys.exit(main())
