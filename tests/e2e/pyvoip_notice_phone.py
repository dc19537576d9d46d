"""A pyVoIP 1.6.8 phone as the outside party on the carrier side, recording what it hears with times.

Like ``pyvoip_consent_phone.py`` the phone does not register: a carrier trunk is trusted by its
address. Its server is callherald's carrier listener, so ``call`` sends the INVITE there (an
inbound call: the phone is the caller); and when its SIP port is callherald's carrier target, the
INVITE of an outbound call reaches it and it answers after pyVoIP's one-second ring (the phone is
the callee). pyVoIP sends every response to its server, which is where callherald's carrier
listener sends the INVITE from.

Every answered call gets a reader thread that polls ``read_audio`` (non-blocking) and keeps each
20 ms chunk with the moments it was read (``time.monotonic`` and ``time.time``). A chunk of pure
digital silence (128 in every byte) is left out: it is what pyVoIP returns when nothing new
arrived. pyVoIP's audio is 8-bit unsigned linear PCM at 8 kHz: it decodes µ-law to 16 bits and
keeps the high byte, biased by 128.

pyVoIP opens a call's RTP socket only when it is needed: as the callee when it answers (before
its 200 OK), as the caller when the 200 OK arrives, which is later than RFC 3264 §5.1 asks of an
offerer ("once the offerer has sent the offer, it MUST be prepared to receive media"). Media sent
to it before then is lost, so the child reports each bind as ``{"event": "rtp_bound", "port": n,
"mono": s, "wall": s}``.

The controller is ``pyvoip_phone.PyvoipPhone`` and the protocol is the one described there, with
one more command: ``save_heard`` (``path``) writes the chunks of the current call as JSON lines
``{"mono": s, "wall": s, "pcm8": hex}`` (read back with ``read_heard``). The child is started as
``python -m tests.e2e.pyvoip_notice_phone`` with the repository on ``PYTHONPATH`` and exits by
itself after ``--max-lifetime-s`` whatever happens.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.e2e.pyvoip_consent_phone import _report_answer_trouble, _without_registration
from tests.e2e.pyvoip_phone import (
    DEFAULT_MAX_LIFETIME_S,
    FRAME_BYTES,
    MAX_CALL_S,
    SILENCE_PCM8,
    PyvoipPhone,
    _Agent,
    _Output,
    _Trace,
    _tracing_socket_module,
    _watchdog,
    serve_phone,
)

__all__ = ["HeardChunk", "main", "read_heard", "running_outside_phone"]

REPOSITORY = Path(__file__).resolve().parents[2]
_POLL_S = 0.005  # how long the reader waits when nothing new arrived


@dataclass(frozen=True, slots=True, kw_only=True)
class HeardChunk:
    """What one ``read_audio`` call returned and when: monotonic and wall-clock seconds."""

    mono: float
    wall: float
    pcm8: bytes


def read_heard(path: Path) -> list[HeardChunk]:
    """The chunks a ``save_heard`` command wrote to ``path``, in the order they were read."""
    chunks = []
    for line in path.read_text(encoding="ascii").splitlines():
        if line.strip():
            raw = json.loads(line)
            chunks.append(HeardChunk(mono=raw["mono"], wall=raw["wall"], pcm8=bytes.fromhex(raw["pcm8"])))
    return chunks


# Test side ---------------------------------------------------------------------------------------


@contextlib.contextmanager
def running_outside_phone(
    workdir: Path,
    *,
    server_port: int,
    sip_port: int,
    rtp_port: int,
    username: str = "pyvoip-outside",
    server_host: str = "127.0.0.1",
    start_timeout_s: float = 20.0,
    max_lifetime_s: float = DEFAULT_MAX_LIFETIME_S,
) -> Iterator[PyvoipPhone]:
    """Start an unregistered phone on ``sip_port`` whose server is ``server_host:server_port``;
    yield it once pyVoIP's SIP receive loop runs. It is stopped (killed by its PID if need be) on exit."""
    trace_path = workdir / f"pyvoip-outside-{sip_port}.trace.jsonl"
    log_path = workdir / f"pyvoip-outside-{sip_port}.log"
    command = [
        sys.executable,
        "-m",
        "tests.e2e.pyvoip_notice_phone",
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


class _RecordingAgent(_Agent):
    """``pyvoip_phone``'s agent whose reader keeps every chunk with the moments it was read."""

    def __init__(self, out: _Output, call_state: Any) -> None:
        super().__init__(out, call_state)
        self.chunks: list[HeardChunk] = []
        self._chunks_lock = threading.Lock()

    def _collect(self, call: Any, direction: str) -> None:
        with self._chunks_lock:
            self.call = call
            self.chunks = []
        self.out.emit("answered", direction=direction, call_id=call.call_id)
        deadline = time.monotonic() + MAX_CALL_S
        nothing_new = bytes([SILENCE_PCM8]) * FRAME_BYTES
        while call.state == self._answered and time.monotonic() < deadline:
            try:
                frame = call.read_audio(FRAME_BYTES, False)
            except Exception:
                break
            if frame == nothing_new:
                time.sleep(_POLL_S)
                continue
            chunk = HeardChunk(mono=time.monotonic(), wall=time.time(), pcm8=bytes(frame))
            with self._chunks_lock:
                self.chunks.append(chunk)
        self.out.emit("ended", direction=direction, call_id=call.call_id, state=call.state.value)

    def handle(self, command: dict[str, Any]) -> dict[str, object]:
        if command.get("cmd") == "save_heard":
            with self._chunks_lock:
                chunks = list(self.chunks)
            lines = [
                json.dumps({"mono": chunk.mono, "wall": chunk.wall, "pcm8": chunk.pcm8.hex()})
                for chunk in chunks
            ]
            Path(str(command["path"])).write_text("".join(line + "\n" for line in lines), encoding="ascii")
            return {"chunks": len(chunks)}
        return super().handle(command)


def _report_rtp_binds(rtp_client: Any, out: _Output) -> None:
    """Emit ``rtp_bound`` right after pyVoIP's ``RTPClient.start`` has bound the call's RTP socket."""
    start = rtp_client.start

    def report(self: Any) -> None:
        start(self)
        out.emit("rtp_bound", port=self.inPort, mono=time.monotonic(), wall=time.time())

    rtp_client.start = report


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
    _report_rtp_binds(importlib.import_module("pyVoIP.RTP").RTPClient, out)
    _without_registration(sip_module.SIPClient, voip.PhoneStatus.REGISTERED)
    _report_answer_trouble(voip.VoIPPhone)
    agent = _RecordingAgent(out, voip.CallState)
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
