"""The control socket (``proxy.aio.control``) on a temporary Unix socket with a fake handler, and the
``callherald calls`` commands against it.

Every scenario runs in its own event loop under ``asyncio.timeout``; the socket lives in the test's
temporary directory. The blocking CLI client runs in a thread so that the server keeps serving.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import stat
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import uvloop

from callherald import cli
from config import HOME_ENV
from proxy.aio.control import MAX_CONNECTIONS, MAX_LINE_BYTES, ControlServer, ControlSocketError, PauseOutcome

pytestmark = pytest.mark.e2e

SCENARIO_TIMEOUT_S = 10.0
KNOWN_CALL = "c0ffee01"
UNRECORDED_CALL = "c0ffee02"  # record: false, or its notice failed
ANNOUNCING_CALL = "c0ffee03"  # hears the notice: a recording may follow
PCI_PAUSED_CALL = "c0ffee04"  # paused by the caller's PCI code, not by calls pause
API_PAUSED_CALL = "c0ffee05"  # paused by calls pause already
CALLS: list[dict[str, object]] = [
    {"call": KNOWN_CALL, "direction": "inbound", "recording": True, "paused": ["api"]},
    {"call": UNRECORDED_CALL, "direction": "outbound", "recording": False, "paused": []},
    {"call": ANNOUNCING_CALL, "direction": "inbound", "recording": False, "paused": []},
    {"call": PCI_PAUSED_CALL, "direction": "inbound", "recording": True, "paused": ["hold", "pci"]},
    {"call": API_PAUSED_CALL, "direction": "outbound", "recording": True, "paused": ["api"]},
]
OUTCOMES = {
    KNOWN_CALL: PauseOutcome.APPLIED,
    UNRECORDED_CALL: PauseOutcome.NOT_RECORDED,
    ANNOUNCING_CALL: PauseOutcome.PENDING,
    PCI_PAUSED_CALL: PauseOutcome.NOT_PAUSED,
    API_PAUSED_CALL: PauseOutcome.ALREADY_PAUSED,
}
CALLS_ANSWER = {"ok": True, "calls": CALLS}
APPLIED = {"ok": True, "recording": True}
NO_SUCH_CALL = {"ok": False, "error": "no such call"}
LOOPS = ["asyncio", "uvloop"]


def run(scenario: Callable[[], Coroutine[Any, Any, None]], *, loop: str = "asyncio") -> None:
    """Run ``scenario`` in a new event loop: asyncio's own, or ``uvloop`` (what ``serve`` runs on)."""

    async def bounded() -> None:
        async with asyncio.timeout(SCENARIO_TIMEOUT_S):
            await scenario()

    if loop == "uvloop":
        uvloop.run(bounded())
    else:
        asyncio.run(bounded())


@dataclass
class FakeCalls:
    """A ``ControlHandler``: two calls, the pause requests it was given, an optional failure."""

    requests: list[tuple[str, bool]] = field(default_factory=list)
    fail: bool = False

    def control_calls(self) -> list[dict[str, object]]:
        if self.fail:
            raise RuntimeError("handler bug")
        return CALLS

    def control_pause(self, call_ref: str, pause: bool) -> PauseOutcome:
        self.requests.append((call_ref, pause))
        return OUTCOMES.get(call_ref, PauseOutcome.NO_SUCH_CALL)


class Client:
    """One connection to the control socket: send lines, read answers."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def connect(cls, path: Path) -> Client:
        reader, writer = await asyncio.open_unix_connection(str(path))
        return cls(reader, writer)

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def answer(self) -> dict[str, object]:
        line = await self.reader.readline()
        assert line.endswith(b"\n"), line
        parsed = json.loads(line)
        assert isinstance(parsed, dict)
        return parsed

    async def ask(self, request: object) -> dict[str, object]:
        await self.send(json.dumps(request).encode() + b"\n")
        return await self.answer()

    async def closed_by_server(self) -> bool:
        return await self.reader.read() == b""

    def close(self) -> None:
        self.writer.close()


def socket_path(tmp_path: Path) -> Path:
    return tmp_path / "control.sock"


async def serving(path: Path, handler: FakeCalls | None = None, **options: Any) -> ControlServer:
    server = ControlServer(path, handler or FakeCalls(), **options)
    await server.start()
    return server


# Requests and answers -----------------------------------------------------------------------------

REQUESTS = [
    pytest.param(b'{"op": "calls"}', CALLS_ANSWER, id="calls"),
    pytest.param(b'{"op": "pause", "call": "c0ffee01"}', APPLIED, id="pause"),
    pytest.param(b'{"op": "resume", "call": "c0ffee01"}', APPLIED, id="resume"),
    pytest.param(b'{"call": "c0ffee01", "op": "pause"}', APPLIED, id="fields-in-any-order"),
    pytest.param(
        b'{"op": "pause", "call": "c0ffee02"}', {"ok": False, "error": "not recorded"}, id="pause-unrecorded"
    ),
    pytest.param(
        b'{"op": "pause", "call": "c0ffee03"}', {"ok": True, "recording": False}, id="pause-before-recording"
    ),
    pytest.param(
        b'{"op": "resume", "call": "c0ffee04"}',
        {"ok": False, "error": "not paused", "paused": ["hold", "pci"]},
        id="resume-not-paused-by-the-operator",
    ),
    pytest.param(
        b'{"op": "pause", "call": "c0ffee05"}',
        {"ok": False, "error": "already paused", "recording": True},
        id="pause-paused-by-the-operator-already",
    ),
    pytest.param(b'{"op": "pause", "call": "nope"}', NO_SUCH_CALL, id="pause-unknown-call"),
    pytest.param(b'{"op": "resume", "call": "nope"}', NO_SUCH_CALL, id="resume-unknown-call"),
    pytest.param(b'{"op": "calls"}\r', CALLS_ANSWER, id="crlf"),
    pytest.param(b"{not json", "not JSON", id="malformed-json"),
    pytest.param(b"", "not JSON", id="empty-line"),
    pytest.param(b"\xff\xfe\x00{", "not JSON", id="not-utf8"),
    pytest.param(b"[" * 2000 + b"]" * 2000, "not JSON", id="deeply-nested"),
    pytest.param(b'["op", "calls"]', "not a JSON object", id="array"),
    pytest.param(b'"calls"', "not a JSON object", id="string"),
    pytest.param(b"{}", '"op" must be one of', id="no-op"),
    pytest.param(b'{"op": "hangup", "call": "c0ffee01"}', '"op" must be one of', id="unknown-op"),
    pytest.param(b'{"op": 1}', '"op" must be one of', id="op-not-a-string"),
    pytest.param(b'{"op": "pause"}', '"call" must be a call reference', id="pause-without-call"),
    pytest.param(b'{"op": "pause", "call": ""}', '"call" must be a call reference', id="empty-call"),
    pytest.param(b'{"op": "resume", "call": 7}', '"call" must be a call reference', id="call-not-a-string"),
    pytest.param(b'{"op": "calls", "call": "c0ffee01"}', "unknown field for calls: call", id="extra-field"),
    pytest.param(
        b'{"op": "pause", "call": "x", "why": 1}', "unknown field for pause: why", id="extra-field-pause"
    ),
]


@pytest.mark.parametrize(("line", "expected"), REQUESTS)
def test_each_request_gets_one_answer_and_the_connection_stays_usable(
    tmp_path: Path, line: bytes, expected: dict[str, object] | str
) -> None:
    handler = FakeCalls()

    async def scenario() -> None:
        server = await serving(socket_path(tmp_path), handler)
        client = await Client.connect(server.path)
        try:
            await client.send(line + b"\n")
            answer = await client.answer()
            if isinstance(expected, dict):
                assert answer == expected
            else:
                assert answer["ok"] is False
                assert expected in str(answer["error"]), answer
            assert await client.ask({"op": "calls"}) == CALLS_ANSWER
        finally:
            client.close()
            await server.stop()

    run(scenario)


@pytest.mark.parametrize(
    ("op", "call_ref", "pause"),
    [("pause", KNOWN_CALL, True), ("resume", KNOWN_CALL, False), ("pause", "nope", True)],
)
def test_pause_and_resume_reach_the_handler(tmp_path: Path, op: str, call_ref: str, pause: bool) -> None:
    handler = FakeCalls()

    async def scenario() -> None:
        server = await serving(socket_path(tmp_path), handler)
        client = await Client.connect(server.path)
        try:
            await client.ask({"op": op, "call": call_ref})
        finally:
            client.close()
            await server.stop()

    run(scenario)
    assert handler.requests == [(call_ref, pause)]


@pytest.mark.parametrize("loop", LOOPS)
def test_requests_sent_together_are_answered_in_order(tmp_path: Path, loop: str) -> None:
    async def scenario() -> None:
        server = await serving(socket_path(tmp_path))
        client = await Client.connect(server.path)
        try:
            await client.send(
                b'{"op": "calls"}\n{oops\n{"op": "pause", "call": "nope"}\n{"op": "pause", "call": "c0ffee01"}\n'
            )
            answers = [await client.answer() for _ in range(4)]
        finally:
            client.close()
            await server.stop()
        assert answers[0] == CALLS_ANSWER
        assert answers[1]["ok"] is False
        assert answers[2] == NO_SUCH_CALL
        assert answers[3] == APPLIED

    run(scenario, loop=loop)


def test_a_failing_handler_is_an_error_answer_not_a_dead_socket(tmp_path: Path) -> None:
    handler = FakeCalls(fail=True)

    async def scenario() -> None:
        server = await serving(socket_path(tmp_path), handler)
        client = await Client.connect(server.path)
        try:
            answer = await client.ask({"op": "calls"})
            assert answer["ok"] is False
            assert "internal error" in str(answer["error"])
            assert await client.ask({"op": "pause", "call": KNOWN_CALL}) == APPLIED
        finally:
            client.close()
            await server.stop()

    run(scenario)


# Line length -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("line_bytes", "pieces", "refused"),
    [
        pytest.param(MAX_LINE_BYTES, 1, False, id="exactly-the-limit"),
        pytest.param(MAX_LINE_BYTES + 1, 1, True, id="one-byte-over"),
        pytest.param(MAX_LINE_BYTES + 1, 3, True, id="one-byte-over-in-pieces"),
        pytest.param(5 * MAX_LINE_BYTES, 1, True, id="five-times"),
        pytest.param(64 * MAX_LINE_BYTES, 32, True, id="sixty-four-times-in-pieces"),
    ],
)
def test_lines_over_the_limit_are_refused_once_and_the_connection_goes_on(
    tmp_path: Path, line_bytes: int, pieces: int, refused: bool
) -> None:
    request = b'{"op": "calls"}'
    line = request[:-1] + b" " * (line_bytes - len(request)) + b"}"  # valid JSON, padded with blanks
    assert len(line) == line_bytes

    async def scenario() -> None:
        server = await serving(socket_path(tmp_path))
        client = await Client.connect(server.path)
        try:
            step = -(-len(line) // pieces)
            for start in range(0, len(line), step):
                await client.send(line[start : start + step])
                await asyncio.sleep(0.01)
            await client.send(b'\n{"op": "pause", "call": "c0ffee01"}\n')
            first = await client.answer()
            second = await client.answer()
        finally:
            client.close()
            await server.stop()
        if refused:
            assert first == {"ok": False, "error": f"line longer than {MAX_LINE_BYTES} bytes"}
        else:
            assert first == CALLS_ANSWER
        assert second == APPLIED

    run(scenario)


# Connections -----------------------------------------------------------------------------------


@pytest.mark.parametrize("loop", LOOPS)
def test_at_most_max_connections_are_served_and_a_freed_place_is_reused(tmp_path: Path, loop: str) -> None:
    extra = 3

    async def scenario() -> None:
        server = await serving(socket_path(tmp_path))
        clients = [await Client.connect(server.path) for _ in range(MAX_CONNECTIONS)]
        try:
            for client in clients:  # each is being served: it answers
                assert await client.ask({"op": "calls"}) == CALLS_ANSWER
            assert server.connections == MAX_CONNECTIONS
            for _ in range(extra):
                refused = await Client.connect(server.path)
                answer = await refused.answer()
                assert answer == {"ok": False, "error": f"too many connections (at most {MAX_CONNECTIONS})"}
                assert await refused.closed_by_server()
                refused.close()
            clients.pop().close()
            for _ in range(100):
                if server.connections < MAX_CONNECTIONS:
                    break
                await asyncio.sleep(0.01)
            late = await Client.connect(server.path)
            clients.append(late)
            assert await late.ask({"op": "calls"}) == CALLS_ANSWER
            for client in clients:  # the others were not disturbed
                assert await client.ask({"op": "pause", "call": "nope"}) == NO_SUCH_CALL
        finally:
            for client in clients:
                client.close()
            await server.stop()

    run(scenario, loop=loop)


def test_idle_connections_are_closed_and_busy_ones_are_not(tmp_path: Path) -> None:
    idle_s = 0.3

    async def scenario() -> None:
        server = await serving(socket_path(tmp_path), idle_timeout_s=idle_s)
        idle = await Client.connect(server.path)
        busy = await Client.connect(server.path)
        try:
            loop = asyncio.get_running_loop()
            started = loop.time()
            for _ in range(5):  # 5 x 0.1 s: longer than the idle timeout in all, never idle that long
                assert await busy.ask({"op": "calls"}) == CALLS_ANSWER
                await asyncio.sleep(idle_s / 3)
            assert await idle.closed_by_server()
            assert loop.time() - started < idle_s + 1.0
            assert await busy.ask({"op": "calls"}) == CALLS_ANSWER
        finally:
            idle.close()
            busy.close()
            await server.stop()

    run(scenario)


@pytest.mark.parametrize("loop", LOOPS)
def test_stop_closes_connections_and_removes_the_socket(tmp_path: Path, loop: str) -> None:
    path = socket_path(tmp_path)

    async def scenario() -> None:
        server = await serving(path)
        client = await Client.connect(path)
        assert await client.ask({"op": "calls"}) == CALLS_ANSWER
        await server.stop()
        assert await client.closed_by_server()
        client.close()
        assert not path.exists()
        with pytest.raises((FileNotFoundError, ConnectionRefusedError)):
            await Client.connect(path)
        await server.stop()  # twice is harmless

    run(scenario, loop=loop)


# The socket file -----------------------------------------------------------------------------------


@pytest.mark.parametrize("umask", [0o000, 0o022, 0o077])
def test_the_socket_is_mode_0600_whatever_the_umask(tmp_path: Path, umask: int) -> None:
    path = socket_path(tmp_path)

    async def scenario() -> None:
        previous = os.umask(umask)
        try:
            server = await serving(path)
        finally:
            os.umask(previous)
        try:
            mode = os.stat(path).st_mode
            assert stat.S_ISSOCK(mode)
            assert stat.S_IMODE(mode) == 0o600
        finally:
            await server.stop()

    run(scenario)


def _stale_socket(path: Path) -> None:
    """A socket file nobody listens on: bound, then closed without removing it (a crash)."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.bind(str(path))
    assert stat.S_ISSOCK(os.stat(path).st_mode)


@pytest.mark.parametrize("loop", LOOPS)
def test_a_stale_socket_file_is_replaced(tmp_path: Path, loop: str) -> None:
    path = socket_path(tmp_path)
    _stale_socket(path)

    async def scenario() -> None:
        server = await serving(path)
        try:
            assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
            client = await Client.connect(path)
            assert await client.ask({"op": "calls"}) == CALLS_ANSWER
            client.close()
        finally:
            await server.stop()
        assert not path.exists()

    run(scenario, loop=loop)


def test_a_file_that_is_not_a_socket_is_left_alone(tmp_path: Path) -> None:
    path = socket_path(tmp_path)
    path.write_text("the operator's notes\n")

    async def scenario() -> None:
        server = ControlServer(path, FakeCalls())
        with pytest.raises(ControlSocketError, match="not a socket"):
            await server.start()
        await server.stop()

    run(scenario)
    assert path.read_text() == "the operator's notes\n"


def test_a_live_control_socket_is_not_taken_over(tmp_path: Path) -> None:
    path = socket_path(tmp_path)

    async def scenario() -> None:
        first = await serving(path)
        try:
            second = ControlServer(path, FakeCalls())
            with pytest.raises(ControlSocketError, match="another process answers"):
                await second.start()
            await second.stop()  # must not remove the first one's socket
            client = await Client.connect(path)
            assert await client.ask({"op": "calls"}) == CALLS_ANSWER
            client.close()
        finally:
            await first.stop()

    run(scenario)


# The callherald calls commands ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CliCase:
    argv: tuple[str, ...]
    exit_code: int
    stdout: tuple[str, ...] = ()
    stderr: tuple[str, ...] = ()
    running: bool = True


CLI_CASES = [
    pytest.param(
        CliCase(
            ("calls", "list"),
            0,
            stdout=("call", "c0ffee01  inbound    yes        api", "c0ffee02  outbound   no"),
        ),
        id="list",
    ),
    pytest.param(CliCase(("calls", "pause", KNOWN_CALL), 0, stdout=("recording paused",)), id="pause"),
    pytest.param(CliCase(("calls", "resume", KNOWN_CALL), 0, stdout=("recording resumed",)), id="resume"),
    pytest.param(
        CliCase(
            ("calls", "pause", UNRECORDED_CALL),
            1,
            stderr=(f"call {UNRECORDED_CALL} is not being recorded, and will not be: nothing to pause",),
        ),
        id="pause-unrecorded",
    ),
    pytest.param(
        CliCase(
            ("calls", "pause", ANNOUNCING_CALL),
            0,
            stdout=(
                f"call {ANNOUNCING_CALL}: the recording has not started yet; it will start paused "
                f"(silence until: callherald calls resume {ANNOUNCING_CALL})",
            ),
        ),
        id="pause-before-recording",
    ),
    pytest.param(
        CliCase(
            ("calls", "resume", ANNOUNCING_CALL),
            0,
            stdout=(f"call {ANNOUNCING_CALL}: the recording has not started yet; it will start unpaused",),
        ),
        id="resume-before-recording",
    ),
    pytest.param(
        CliCase(
            ("calls", "resume", PCI_PAUSED_CALL),
            1,
            stderr=(
                f"call {PCI_PAUSED_CALL}: not paused by callherald calls pause: nothing to resume; still paused "
                "by a hold and the PCI code, which calls resume does not end",
            ),
        ),
        id="resume-not-paused-by-the-operator",
    ),
    pytest.param(
        CliCase(
            ("calls", "pause", API_PAUSED_CALL),
            1,
            stderr=(
                f"call {API_PAUSED_CALL}: already paused by callherald calls pause: nothing changed; the "
                f"recording is paused (silence until: callherald calls resume {API_PAUSED_CALL})",
            ),
        ),
        id="pause-paused-already",
    ),
    pytest.param(CliCase(("calls", "pause", "nope"), 1, stderr=("no such call: nope",)), id="pause-unknown"),
    pytest.param(
        CliCase(("calls", "resume", "nope"), 1, stderr=("no such call: nope",)), id="resume-unknown"
    ),
    pytest.param(
        CliCase(("calls", "list"), 1, stderr=("callherald is not running", "control.sock"), running=False),
        id="list-not-running",
    ),
    pytest.param(
        CliCase(("calls", "pause", KNOWN_CALL), 1, stderr=("callherald is not running",), running=False),
        id="pause-not-running",
    ),
]


@pytest.mark.parametrize("case", CLI_CASES)
def test_the_calls_commands(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], case: CliCase
) -> None:
    monkeypatch.setenv(HOME_ENV, str(tmp_path))  # the embedded default keeps its data there
    exit_codes: list[int] = []

    async def scenario() -> None:
        server = await serving(socket_path(tmp_path)) if case.running else None
        try:
            exit_codes.append(await asyncio.to_thread(cli.main, list(case.argv)))
        finally:
            if server is not None:
                await server.stop()

    run(scenario)
    out, err = capsys.readouterr()
    assert exit_codes == [case.exit_code], (out, err)
    for text in case.stdout:
        assert text in out, out
    for text in case.stderr:
        assert text in err, err


def test_calls_list_json_is_the_servers_list(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv(HOME_ENV, str(tmp_path))

    async def scenario() -> None:
        server = await serving(socket_path(tmp_path))
        try:
            assert await asyncio.to_thread(cli.main, ["calls", "list", "--json"]) == 0
        finally:
            await server.stop()

    run(scenario)
    assert json.loads(capsys.readouterr().out) == CALLS


def test_a_bad_config_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "broken.yaml"
    config.write_text("listen: [\n")
    assert cli.main(["calls", "list", "--config", str(config)]) == 2
    assert capsys.readouterr().err


def test_a_socket_left_by_a_killed_callherald_is_told_apart_from_none(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # After a kill -9 the socket file stays until the next start; nothing listens on it.
    monkeypatch.setenv(HOME_ENV, str(tmp_path))
    path = socket_path(tmp_path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as left:
        left.bind(str(path))
    assert path.is_socket()
    assert cli.main(["calls", "list"]) == 1
    _, err = capsys.readouterr()
    assert f"callherald is not running (nothing answers on {path}, left by an earlier run)" in err
