"""A pyVoIP 1.6.8 phone in a child process, driven by JSON lines, for interoperability tests.

pyVoIP runs on threads and some of its calls block forever when a peer does not answer the way it
expects (``VoIPPhone.call`` without a 100 Trying, for example), so it never runs in the test
process. ``running_phone`` starts this file as a child Python process, sends it one JSON command
per line on stdin and reads one JSON object per line from its stdout; at the end it asks the child
to stop and, if it does not exit in time, kills it by its PID.

Child contract (``python -m tests.e2e.pyvoip_phone --server-port ... --sip-port ... --rtp-port ...``,
the repository on ``PYTHONPATH``):

* The digest password comes from the environment variable ``PYVOIP_PHONE_PASSWORD``.
* At start it registers (``VoIPPhone.start``) and, once pyVoIP's SIP receive loop runs (1 s
  later), prints ``{"event": "started", "status": ...}`` with the ``PhoneStatus`` value.
* Incoming calls are answered at once; every answered call (either direction) gets a reader thread
  that collects what ``read_audio`` returns (frames of pure silence, which pyVoIP returns when
  nothing new arrived, are left out), and ``{"event": "answered", ...}`` /
  ``{"event": "ended", ...}`` are printed when the call is answered and when it leaves ANSWERED.
* Commands ``{"id": n, "cmd": ...}`` get ``{"event": "reply", "id": n, "ok": ..., ...}``:
  ``status``; ``call`` (``number``, ``answer_timeout_s``: waits until ANSWERED); ``state``;
  ``send_tone`` (``hz``, ``seconds``: 8-bit unsigned PCM at 8 kHz into ``write_audio``);
  ``save_audio`` (``path``: writes what the current call's ``read_audio`` returned); ``hangup``;
  ``stop`` (un-registers and exits).
* Every SIP datagram the phone sends or receives is appended to the ``--trace`` file as a JSON
  line ``{"t": seconds, "direction": "in" | "out", "text": message}``.
* The child exits by itself after ``--max-lifetime-s`` whatever happens.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import json
import math
import os
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

__all__ = [
    "PASSWORD_ENV",
    "PhoneError",
    "PyvoipPhone",
    "SipTraceEntry",
    "main",
    "run_phone_child",
    "running_phone",
    "serve_phone",
    "spawn_phone",
    "tone_pcm8",
]

PASSWORD_ENV = "PYVOIP_PHONE_PASSWORD"
REPOSITORY = Path(__file__).resolve().parents[2]
SAMPLE_RATE_HZ = 8000
FRAME_BYTES = 160  # 20 ms of 8 kHz 8-bit audio
SILENCE_PCM8 = 0x80  # pyVoIP's 8-bit unsigned PCM is centred on 128
TONE_AMPLITUDE = 64
MAX_CALL_S = 60.0  # a reader thread never outlives this
DEFAULT_MAX_LIFETIME_S = 120.0
STOP_TIMEOUT_S = 8.0
RECEIVE_LOOP_DELAY_S = 1.2  # pyVoIP starts reading SIP 1 s after registering


class PhoneError(RuntimeError):
    """The phone process did not answer in time or reported a failure."""


@dataclass(frozen=True, slots=True, kw_only=True)
class SipTraceEntry:
    """One SIP datagram the phone sent (``out``) or received (``in``)."""

    t: float
    direction: str
    text: str

    @property
    def first_line(self) -> str:
        return self.text.split("\r\n", 1)[0]

    def header(self, name: str) -> str | None:
        """The first value of header ``name`` (case-insensitive), or None."""
        head = self.text.split("\r\n\r\n", 1)[0]
        for line in head.split("\r\n")[1:]:
            key, sep, value = line.partition(":")
            if sep and key.strip().lower() == name.lower():
                return value.strip()
        return None

    @property
    def cseq(self) -> str | None:
        return self.header("CSeq")

    @property
    def is_request(self) -> bool:
        return not self.text.startswith("SIP/2.0 ")

    @property
    def method(self) -> str | None:
        """The request method, or for a response the CSeq method."""
        if self.is_request:
            return self.first_line.split(" ", 1)[0]
        cseq = self.cseq
        return cseq.split()[-1] if cseq else None

    @property
    def status(self) -> int | None:
        if self.is_request:
            return None
        return int(self.first_line.split()[1])


def tone_pcm8(hz: float, seconds: float, amplitude: int = TONE_AMPLITUDE) -> bytes:
    """A sine tone as pyVoIP's audio format: 8-bit unsigned linear PCM at 8 kHz."""
    count = round(seconds * SAMPLE_RATE_HZ)
    step = 2 * math.pi * hz / SAMPLE_RATE_HZ
    return bytes(SILENCE_PCM8 + round(amplitude * math.sin(step * n)) for n in range(count))


# Test side ---------------------------------------------------------------------------------------


class PyvoipPhone:
    """The controller of one phone child process (see the module docstring for the protocol)."""

    def __init__(
        self, process: subprocess.Popen[str], *, sip_port: int, trace_path: Path, log_path: Path
    ) -> None:
        self.process = process
        self.sip_port = sip_port
        self.trace_path = trace_path
        self.log_path = log_path
        self._events: list[dict[str, Any]] = []
        self._changed = threading.Condition()
        self._next_id = 0
        self._reader = threading.Thread(target=self._read_stdout, name="pyvoip-phone-reader", daemon=True)
        self._reader.start()

    def _read_stdout(self) -> None:
        stdout = self.process.stdout
        assert stdout is not None
        for line in stdout:
            try:
                event = json.loads(line)
            except json.JSONDecodeError:
                event = {"event": "garbage", "text": line}
            with self._changed:
                self._events.append(event)
                self._changed.notify_all()
        with self._changed:
            self._events.append({"event": "exited"})
            self._changed.notify_all()

    @property
    def events(self) -> list[dict[str, Any]]:
        with self._changed:
            return list(self._events)

    def wait_for(self, predicate: Callable[[dict[str, Any]], bool], timeout_s: float) -> dict[str, Any]:
        """The first event (old or new) for which ``predicate`` holds; PhoneError after ``timeout_s``."""
        deadline = time.monotonic() + timeout_s
        with self._changed:
            while True:
                for event in self._events:
                    if predicate(event):
                        return event
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise PhoneError(f"no matching phone event within {timeout_s} s; {self.diagnostics()}")
                self._changed.wait(remaining)

    def wait_event(self, name: str, timeout_s: float) -> dict[str, Any]:
        return self.wait_for(lambda event: event.get("event") == name, timeout_s)

    def command(self, cmd: str, timeout_s: float = 10.0, **fields: object) -> dict[str, Any]:
        """Send one command and return its reply; PhoneError when it fails or does not come."""
        self._next_id += 1
        request_id = self._next_id
        stdin = self.process.stdin
        assert stdin is not None
        try:
            stdin.write(json.dumps({"id": request_id, "cmd": cmd, **fields}) + "\n")
            stdin.flush()
        except OSError as error:
            raise PhoneError(f"phone process gone ({error}); {self.diagnostics()}") from error
        reply = self.wait_for(
            lambda event: event.get("event") == "reply" and event.get("id") == request_id, timeout_s
        )
        if not reply.get("ok"):
            raise PhoneError(f"{cmd} failed: {reply.get('error')}; {self.diagnostics()}")
        return reply

    def trace(self) -> list[SipTraceEntry]:
        """Every SIP datagram so far, in order."""
        if not self.trace_path.exists():
            return []
        entries = []
        for line in self.trace_path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                raw = json.loads(line)
                entries.append(SipTraceEntry(t=raw["t"], direction=raw["direction"], text=raw["text"]))
        return entries

    def wait_for_sip(
        self, predicate: Callable[[SipTraceEntry], bool], count: int = 1, timeout_s: float = 5.0
    ) -> list[SipTraceEntry]:
        """The traced datagrams matching ``predicate`` once there are ``count`` (or after ``timeout_s``)."""
        deadline = time.monotonic() + timeout_s
        while True:
            found = [entry for entry in self.trace() if predicate(entry)]
            if len(found) >= count or time.monotonic() >= deadline:
                return found
            time.sleep(0.02)

    def diagnostics(self) -> str:
        log = self.log_path.read_text(errors="replace")[-3000:] if self.log_path.exists() else ""
        flow = "\n".join(f"{e.direction:>3} {e.first_line}" for e in self.trace())
        return f"events={self.events!r}\nSIP flow:\n{flow}\nphone log tail:\n{log}"

    def close(self) -> None:
        """Ask the child to un-register and exit; kill it by PID if it does not."""
        if self.process.poll() is None:
            with contextlib.suppress(PhoneError):
                self.command("stop", timeout_s=STOP_TIMEOUT_S)
        try:
            self.process.wait(timeout=2)
        except subprocess.TimeoutExpired:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=5)
        for stream in (self.process.stdin, self.process.stdout):
            if stream is not None:
                with contextlib.suppress(OSError):
                    stream.close()
        self._reader.join(timeout=2)


@contextlib.contextmanager
def running_phone(
    workdir: Path,
    *,
    server_port: int,
    username: str,
    password: str,
    sip_port: int,
    rtp_port: int,
    server_host: str = "127.0.0.1",
    start_timeout_s: float = 20.0,
    max_lifetime_s: float = DEFAULT_MAX_LIFETIME_S,
) -> Iterator[PyvoipPhone]:
    """Start a phone registering to ``server_host:server_port``; yield it once ``start`` returned."""
    with spawn_phone(
        workdir,
        module=__name__,
        label=username,
        server_host=server_host,
        server_port=server_port,
        username=username,
        password=password,
        sip_port=sip_port,
        rtp_port=rtp_port,
        start_timeout_s=start_timeout_s,
        max_lifetime_s=max_lifetime_s,
    ) as phone:
        yield phone


@contextlib.contextmanager
def spawn_phone(
    workdir: Path,
    *,
    module: str,
    label: str,
    server_host: str,
    server_port: int,
    username: str,
    sip_port: int,
    rtp_port: int,
    start_timeout_s: float,
    max_lifetime_s: float,
    password: str = "",
) -> Iterator[PyvoipPhone]:
    """Run ``python -m module`` (a phone child: this module or one built on `run_phone_child`) with
    the repository on ``PYTHONPATH``; yield its controller once it said ``started``. Its SIP trace
    and log are ``pyvoip-{label}-{sip_port}.trace.jsonl`` and ``.log`` in ``workdir``. It is stopped
    (and killed by its PID if need be) on exit."""
    trace_path = workdir / f"pyvoip-{label}-{sip_port}.trace.jsonl"
    log_path = workdir / f"pyvoip-{label}-{sip_port}.log"
    command = [
        sys.executable,
        "-m",
        module,
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
    environment = {
        **os.environ,
        "PYTHONPATH": python_path,
        PASSWORD_ENV: password,
        "PYTHONWARNINGS": "ignore::DeprecationWarning",
    }
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            command,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=log,
            text=True,
            cwd=workdir,
            env=environment,
        )
    phone = PyvoipPhone(process, sip_port=sip_port, trace_path=trace_path, log_path=log_path)
    try:
        phone.wait_event("started", start_timeout_s)
        yield phone
    finally:
        phone.close()


# Child side --------------------------------------------------------------------------------------


class _Output:
    """JSON lines to the controller, from any thread."""

    def __init__(self, stream: Any) -> None:
        self._stream = stream
        self._lock = threading.Lock()

    def emit(self, event: str, **fields: object) -> None:
        with self._lock:
            self._stream.write(json.dumps({"event": event, **fields}) + "\n")
            self._stream.flush()


class _Trace:
    def __init__(self, path: Path) -> None:
        self._path = path
        self._lock = threading.Lock()
        self._start = time.monotonic()

    def record(self, direction: str, data: bytes) -> None:
        line = json.dumps(
            {
                "t": round(time.monotonic() - self._start, 6),
                "direction": direction,
                "text": data.decode("utf-8", errors="replace"),
            }
        )
        with self._lock, self._path.open("a", encoding="utf-8") as out:
            out.write(line + "\n")


def _tracing_socket_module(trace: _Trace) -> Any:
    """A stand-in for the ``socket`` module as pyVoIP's SIP client uses it, logging every datagram."""

    class TracingSocket(socket.socket):
        def recv(self, bufsize: int, flags: int = 0) -> bytes:
            data = super().recv(bufsize, flags)
            trace.record("in", data)
            return data

        def sendto(self, data: Any, *args: Any) -> int:
            trace.record("out", bytes(data))
            return int(super().sendto(data, *args))

    class SocketModule:
        AF_INET = socket.AF_INET
        SOCK_DGRAM = socket.SOCK_DGRAM
        socket = TracingSocket

    return SocketModule


class _Agent:
    """The phone and its calls, in the child."""

    def __init__(self, out: _Output, call_state: Any) -> None:
        self.out = out
        self.phone: Any = None
        self.call: Any = None
        self.audio = bytearray()
        self._answered = call_state.ANSWERED
        self._lock = threading.Lock()

    def on_incoming(self, call: Any) -> None:
        """pyVoIP's callback (its own thread): answer, then read audio until the call ends.

        pyVoIP forgets a received call once this callback returns, so it stays until the end.
        """
        try:
            call.answer()
        except Exception as error:
            self.out.emit("error", text=f"answer failed: {error!r}")
            return
        self._collect(call, "inbound")

    def start_collecting(self, call: Any) -> None:
        threading.Thread(target=self._collect, args=(call, "outbound"), daemon=True).start()

    def _collect(self, call: Any, direction: str) -> None:
        with self._lock:
            self.call = call
            self.audio = bytearray()
        self.out.emit("answered", direction=direction, call_id=call.call_id)
        deadline = time.monotonic() + MAX_CALL_S
        silence = bytes([SILENCE_PCM8]) * FRAME_BYTES
        while call.state == self._answered and time.monotonic() < deadline:
            try:
                frame = call.read_audio(FRAME_BYTES, False)
            except Exception:
                break
            if frame == silence:
                time.sleep(0.01)  # nothing new (pyVoIP pads a short read with silence)
                continue
            with self._lock:
                self.audio.extend(frame)
        self.out.emit("ended", direction=direction, call_id=call.call_id, state=call.state.value)

    def handle(self, command: dict[str, Any]) -> dict[str, object]:
        name = command.get("cmd")
        if name == "status":
            return {"status": self.phone.get_status().value}
        if name == "call":
            return self._place_call(str(command["number"]), float(command.get("answer_timeout_s", 10.0)))
        if name == "state":
            return {"state": None if self.call is None else self.call.state.value}
        if name == "send_tone":
            self._require_call().write_audio(tone_pcm8(float(command["hz"]), float(command["seconds"])))
            return {}
        if name == "save_audio":
            with self._lock:
                data = bytes(self.audio)
            Path(str(command["path"])).write_bytes(data)
            return {"bytes": len(data)}
        if name == "hangup":
            self._require_call().hangup()
            return {"state": self.call.state.value}
        raise ValueError(f"unknown command {name!r}")

    def _require_call(self) -> Any:
        if self.call is None:
            raise RuntimeError("no call")
        return self.call

    def _place_call(self, number: str, timeout_s: float) -> dict[str, object]:
        placed: queue.Queue[Any] = queue.Queue()

        def dial() -> None:
            try:
                placed.put(self.phone.call(number))
            except Exception as error:
                placed.put(error)

        threading.Thread(target=dial, name="dial", daemon=True).start()
        deadline = time.monotonic() + timeout_s
        try:
            call = placed.get(timeout=timeout_s)
        except queue.Empty:
            raise TimeoutError(f"VoIPPhone.call did not return within {timeout_s} s") from None
        if isinstance(call, Exception):
            raise call
        with self._lock:
            self.call = call
        while call.state != self._answered and time.monotonic() < deadline:
            if call.state.value == "ENDED":
                break
            time.sleep(0.02)
        if call.state == self._answered:
            self.start_collecting(call)
        return {"state": call.state.value, "call_id": call.call_id}


def _watchdog(seconds: float) -> None:
    time.sleep(seconds)
    os._exit(3)


def serve_phone(phone: Any, agent: Any, out: _Output) -> NoReturn:
    """Start ``phone``, carry out the controller's commands on stdin through ``agent.handle`` until
    ``stop`` (or end of input), stop the phone within a bound and leave the process.

    pyVoIP's threads are not joined: stopping (or un-registering from a silent server) can
    block, so the process exits once the bounded stop has had its time.
    """
    try:
        phone.start()
    except Exception as error:
        out.emit("started", status=phone.get_status().value, error=repr(error))
    else:
        time.sleep(RECEIVE_LOOP_DELAY_S)  # until pyVoIP's SIP receive loop runs
        out.emit("started", status=phone.get_status().value)

    command: dict[str, Any] = {}
    for line in sys.stdin:
        if not line.strip():
            continue
        command = json.loads(line)
        if command.get("cmd") == "stop":
            break
        try:
            result = agent.handle(command)
        except Exception as error:
            out.emit("reply", id=command.get("id"), ok=False, error=repr(error))
        else:
            out.emit("reply", id=command.get("id"), ok=True, **result)
    else:
        command = {}

    stopper = threading.Thread(target=phone.stop, daemon=True)
    stopper.start()
    stopper.join(timeout=STOP_TIMEOUT_S - 2)
    out.emit("reply", id=command.get("id"), ok=True, status=phone.get_status().value)
    sys.stderr.flush()
    os._exit(0)


def run_phone_child(
    argv: list[str] | None,
    make_agent: Callable[[_Output, Any], _Agent],
    *,
    registers: bool = True,
    prepare: Callable[[_Output], None] | None = None,
) -> NoReturn:
    """The child's life: parse the arguments `spawn_phone` passes, trace pyVoIP's SIP socket, make
    the phone with the agent ``make_agent(out, CallState)`` returns and serve it (`serve_phone`).

    ``registers`` false: the phone does not register (a carrier trunk is trusted by its address)
    and says so in its log when it drops or fails on a 200 OK to its INVITE. ``prepare`` runs
    after pyVoIP is imported and before the phone is made, for a child's own patches.
    """
    parser = argparse.ArgumentParser(description="A pyVoIP phone child; see tests.e2e.pyvoip_phone.")
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

    # Imported here so that the test process never loads pyVoIP (nor starts its threads).
    # pyVoIP.VoIP comes first: pyVoIP.SIP alone fails with a circular import.
    voip = importlib.import_module("pyVoIP.VoIP")
    sip_module: Any = importlib.import_module("pyVoIP.SIP")
    sip_module.socket = _tracing_socket_module(_Trace(args.trace))
    if not registers:
        _without_registration(sip_module.SIPClient, voip.PhoneStatus.REGISTERED)
        _report_answer_trouble(voip.VoIPPhone)
    if prepare is not None:
        prepare(out)
    agent = make_agent(out, voip.CallState)
    phone = voip.VoIPPhone(
        args.server_host,
        args.server_port,
        args.username,
        os.environ.get(PASSWORD_ENV, ""),
        myIP=args.my_ip,
        callCallback=agent.on_incoming,
        sipPort=args.sip_port,
        rtpPortLow=args.rtp_port,
        rtpPortHigh=args.rtp_port,
    )
    agent.phone = phone
    serve_phone(phone, agent, out)


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
    run_phone_child(argv, _Agent)


if __name__ == "__main__":
    sys.exit(main())
