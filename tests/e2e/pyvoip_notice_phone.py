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

import contextlib
import importlib
import json
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.e2e.pyvoip_phone import (
    DEFAULT_MAX_LIFETIME_S,
    FRAME_BYTES,
    MAX_CALL_S,
    SILENCE_PCM8,
    PyvoipPhone,
    _Agent,
    _Output,
    run_phone_child,
    spawn_phone,
)

__all__ = ["HeardChunk", "main", "read_heard", "running_outside_phone"]

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
    with spawn_phone(
        workdir,
        module=__name__,
        label="outside",
        server_host=server_host,
        server_port=server_port,
        username=username,
        sip_port=sip_port,
        rtp_port=rtp_port,
        start_timeout_s=start_timeout_s,
        max_lifetime_s=max_lifetime_s,
    ) as phone:
        yield phone


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


def _report_rtp_binds(out: _Output) -> None:
    """Emit ``rtp_bound`` right after pyVoIP's ``RTPClient.start`` has bound the call's RTP socket."""
    rtp_client: Any = importlib.import_module("pyVoIP.RTP").RTPClient
    start = rtp_client.start

    def report(self: Any) -> None:
        start(self)
        out.emit("rtp_bound", port=self.inPort, mono=time.monotonic(), wall=time.time())

    rtp_client.start = report


def main(argv: list[str] | None = None) -> int:
    run_phone_child(argv, _RecordingAgent, registers=False, prepare=_report_rtp_binds)


if __name__ == "__main__":
    sys.exit(main())
