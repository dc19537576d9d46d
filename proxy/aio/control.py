"""The operator's control socket: list the active calls, pause and resume a call's recording.

An agent about to take a card number asks for the recording to be paused and resumes it after
(PCI DSS 3.3.1: sensitive authentication data is not stored); operators list the calls to find
the reference. ``ControlServer`` listens on a Unix-domain stream socket that only the user
callherald runs as may use (mode 0600) and hands each request to a ``ControlHandler`` (the
running ``ProxyService``), on the event loop.

Protocol: one JSON object per line (UTF-8, ``\\n``-terminated) in, one JSON object per line out,
one answer for every line, in order::

    {"op": "calls"}                -> {"ok": true, "calls": [{"call": REF, "direction": "inbound",
                                                             "recording": true, "paused": ["api"]}]}
    {"op": "pause", "call": REF}   -> {"ok": true, "recording": true}
    {"op": "resume", "call": REF}  -> {"ok": true, "recording": true}

``"recording": true``: the call's recording runs and the pause applies now; ``false``: the notice
and questions are not over, and the recording starts paused (or, after a resume, not) if it
starts. A call that is not recorded and will not be answers ``{"ok": false, "error": "not
recorded"}`` (nothing changes); an unknown one ``{"ok": false, "error": "no such call"}``. A
resume of a call that no pause request paused answers ``{"ok": false, "error": "not paused",
"paused": [...]}`` with the reasons it is paused for all the same, and a pause of a call a pause
request paused already ``{"ok": false, "error": "already paused", "recording": ...}`` (nothing
changes either way).

Anything else is answered ``{"ok": false, "error": "..."}`` and the connection stays usable. A
line longer than ``MAX_LINE_BYTES`` is refused (one error answer; the rest of that line is
dropped). At most ``MAX_CONNECTIONS`` connections are served at once (one more is told so and
closed); a connection that sends nothing for ``IDLE_TIMEOUT_S`` is closed.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import json
import logging
import os
import socket
import stat
from collections.abc import Mapping
from pathlib import Path
from typing import Final, Protocol

__all__ = [
    "IDLE_TIMEOUT_S",
    "MAX_CONNECTIONS",
    "MAX_LINE_BYTES",
    "ControlHandler",
    "ControlServer",
    "ControlSocketError",
    "PauseOutcome",
    "handle_request",
]

MAX_LINE_BYTES: Final = 4096
MAX_CONNECTIONS: Final = 16
IDLE_TIMEOUT_S: Final = 60.0
SOCKET_MODE: Final = 0o600
_READ_CHUNK: Final = 4096
_PROBE_TIMEOUT_S: Final = 1.0
_FIELDS: Final[Mapping[str, frozenset[str]]] = {
    "calls": frozenset({"op"}),
    "pause": frozenset({"op", "call"}),
    "resume": frozenset({"op", "call"}),
}


class PauseOutcome(enum.Enum):
    """What became of an operator's pause or resume request."""

    APPLIED = "applied"
    """The call's recording runs: it is paused (resumed) now."""
    PENDING = "pending"
    """The notice and questions are not over: the recording, if it starts, starts so."""
    NOT_RECORDED = "not recorded"
    """The call is not recorded and will not be (``record: false``, a failed notice, no purpose
    allows it, recording switched off): nothing was changed."""
    NOT_PAUSED = "not paused"
    """A resume of a call the operator did not pause (it may be paused for another reason, such
    as the PCI code or a hold, which a resume does not end): nothing was changed."""
    ALREADY_PAUSED = "already paused"
    """A pause of a call the operator paused already (and did not resume): nothing was changed."""
    NO_SUCH_CALL = "no such call"


class ControlHandler(Protocol):
    """What the control socket asks of the running proxy (called on the event loop)."""

    def control_calls(self) -> list[dict[str, object]]:
        """The active calls: ``call``, ``direction``, ``recording`` (bool) and ``paused`` (reasons;
        none for a call that is not recorded and will not be)."""
        ...

    def control_pause(self, call_ref: str, pause: bool) -> PauseOutcome:
        """Pause (``pause``) or resume the recording of ``call_ref``, and say what became of it."""
        ...


_MAX_SOCKET_PATH = 107  # sun_path is 108 bytes on Linux, with its terminating NUL


class ControlSocketError(Exception):
    """The control socket cannot be made: its path is taken (by a file that is no socket, or by a
    live listener), too long for a Unix socket, or not writable."""


def _error(text: str) -> dict[str, object]:
    return {"ok": False, "error": text}


def handle_request(handler: ControlHandler, line: bytes) -> dict[str, object]:
    """The answer to one request line (without its newline). Raises only what ``handler`` raises."""
    try:
        request = json.loads(line)
    except (ValueError, RecursionError):  # UnicodeDecodeError is a ValueError
        return _error("not JSON: send one JSON object per line")
    if not isinstance(request, dict):
        return _error("not a JSON object: send one JSON object per line")
    op = request.get("op")
    if not isinstance(op, str) or op not in _FIELDS:
        return _error('"op" must be one of "calls", "pause", "resume"')
    unknown = sorted(str(name) for name in request if name not in _FIELDS[op])
    if unknown:
        return _error(f"unknown field for {op}: {', '.join(unknown)}")
    if op == "calls":
        return {"ok": True, "calls": handler.control_calls()}
    call_ref = request.get("call")
    if not isinstance(call_ref, str) or not call_ref:
        return _error('"call" must be a call reference (a non-empty string)')
    outcome = handler.control_pause(call_ref, op == "pause")
    if outcome in (PauseOutcome.NOT_RECORDED, PauseOutcome.NO_SUCH_CALL):
        return _error(outcome.value)
    if outcome is PauseOutcome.NOT_PAUSED:
        call = next((call for call in handler.control_calls() if call.get("call") == call_ref), {})
        return {**_error(outcome.value), "paused": call.get("paused", [])}
    if outcome is PauseOutcome.ALREADY_PAUSED:
        call = next((call for call in handler.control_calls() if call.get("call") == call_ref), {})
        return {**_error(outcome.value), "recording": call.get("recording", False)}
    return {"ok": True, "recording": outcome is PauseOutcome.APPLIED}


def _line(answer: Mapping[str, object]) -> bytes:
    return json.dumps(answer, separators=(",", ":"), sort_keys=True).encode() + b"\n"


class ControlServer:
    """The control socket at ``path`` (see the module docstring). ``start`` binds; ``stop`` removes it."""

    def __init__(
        self,
        path: Path,
        handler: ControlHandler,
        *,
        max_connections: int = MAX_CONNECTIONS,
        idle_timeout_s: float = IDLE_TIMEOUT_S,
        max_line_bytes: int = MAX_LINE_BYTES,
        logger: logging.Logger | None = None,
    ) -> None:
        self.path = path
        self._handler = handler
        self._max_connections = max_connections
        self._idle_timeout_s = idle_timeout_s
        self._max_line_bytes = max_line_bytes
        self._log = logger or logging.getLogger("callherald.control")
        self._server: asyncio.AbstractServer | None = None
        self._inode: int | None = None
        self._connections: set[asyncio.Task[None]] = set()
        self._closing = False

    @property
    def connections(self) -> int:
        """How many connections are being served now."""
        return len(self._connections)

    async def start(self) -> None:
        """Bind the socket (mode 0600) and serve. A stale socket file is replaced; a file that is no
        socket, or a socket something still answers on, raises ``ControlSocketError``."""
        if self._server is not None:
            raise RuntimeError("the control server runs already")
        await self._remove_stale()
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        bound = False
        try:
            # On Linux the file takes the mode of the unbound socket: never readable by others, even
            # for a moment. The chmod after bind covers systems where it does not.
            with contextlib.suppress(OSError):
                os.fchmod(sock.fileno(), SOCKET_MODE)
            try:
                sock.bind(str(self.path))
            except OSError as error:
                hint = (
                    f" (a Unix socket path holds at most {_MAX_SOCKET_PATH} bytes: choose a shorter data_dir)"
                    if len(os.fsencode(self.path)) > _MAX_SOCKET_PATH
                    else ""
                )
                raise ControlSocketError(
                    f"cannot listen on {self.path}: {error.strerror or error}{hint}"
                ) from error
            bound = True
            os.chmod(self.path, SOCKET_MODE)
            self._inode = os.stat(self.path).st_ino
            sock.setblocking(False)
            self._closing = False
            self._server = await asyncio.start_unix_server(self._serve, sock=sock)
        except BaseException:
            sock.close()
            if bound:
                self.path.unlink(missing_ok=True)
            self._inode = None
            raise

    async def stop(self) -> None:
        """Close every connection, stop listening and remove the socket file (if it is still ours)."""
        self._closing = True
        server, self._server = self._server, None
        if server is not None:
            server.close()
        connections = list(self._connections)
        for task in connections:
            task.cancel()
        await asyncio.gather(*connections, return_exceptions=True)
        if server is not None:
            await server.wait_closed()
        if self._inode is not None:
            with contextlib.suppress(FileNotFoundError):
                if os.stat(self.path).st_ino == self._inode:
                    self.path.unlink()
            self._inode = None

    async def _remove_stale(self) -> None:
        try:
            mode = os.lstat(self.path).st_mode
        except FileNotFoundError:
            return
        if not stat.S_ISSOCK(mode):
            raise ControlSocketError(f"{self.path} exists and is not a socket; not replacing it")
        try:
            async with asyncio.timeout(_PROBE_TIMEOUT_S):
                _, writer = await asyncio.open_unix_connection(str(self.path))
        except ConnectionRefusedError:  # nothing listens: left behind by a process that is gone
            self.path.unlink(missing_ok=True)
            self._log.info("removed the stale control socket %s", self.path)
            return
        except FileNotFoundError:
            return
        except (OSError, TimeoutError) as error:
            raise ControlSocketError(f"{self.path}: cannot tell whether it is in use: {error}") from error
        writer.close()
        raise ControlSocketError(f"{self.path}: another process answers there (is callherald running?)")

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is None or self._closing:
            writer.close()
            return
        if len(self._connections) >= self._max_connections:
            await self._refuse(writer, f"too many connections (at most {self._max_connections})")
            return
        self._connections.add(task)
        try:
            await self._converse(reader, writer)
        except TimeoutError:
            self._log.debug("control connection idle for %.0f s: closed", self._idle_timeout_s)
        except ConnectionError:
            pass  # the client went away
        finally:
            self._connections.discard(task)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def _refuse(self, writer: asyncio.StreamWriter, reason: str) -> None:
        try:
            writer.write(_line(_error(reason)))
            async with asyncio.timeout(_PROBE_TIMEOUT_S):
                await writer.drain()
        except (ConnectionError, TimeoutError):
            pass
        finally:
            writer.close()

    async def _converse(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        buffer = bytearray()
        discarding = False  # inside a line that was refused as too long
        while True:
            async with asyncio.timeout(self._idle_timeout_s):
                chunk = await reader.read(_READ_CHUNK)
            if not chunk:
                return
            buffer += chunk
            answers: list[bytes] = []
            while True:
                end = buffer.find(b"\n")
                if end < 0:
                    if len(buffer) > self._max_line_bytes:
                        if not discarding:
                            answers.append(_line(self._too_long()))
                            discarding = True
                        buffer.clear()
                    break
                line = bytes(buffer[:end]).removesuffix(b"\r")
                del buffer[: end + 1]
                if discarding:
                    discarding = False
                elif len(line) > self._max_line_bytes:
                    answers.append(_line(self._too_long()))
                else:
                    answers.append(_line(self._answer(line)))
            if answers:
                writer.write(b"".join(answers))
                async with asyncio.timeout(self._idle_timeout_s):
                    await writer.drain()

    def _too_long(self) -> dict[str, object]:
        return _error(f"line longer than {self._max_line_bytes} bytes")

    def _answer(self, line: bytes) -> dict[str, object]:
        try:
            return handle_request(self._handler, line)
        except Exception:  # a bug behind one request must not take the socket down
            self._log.exception("control request failed")
            return _error("internal error (see callherald's log)")
