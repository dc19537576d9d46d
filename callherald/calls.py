"""The ``callherald calls`` commands: list the active calls, pause and resume a call's recording.

They talk to the running ``callherald serve`` through its control socket (``control.sock`` in the
data directory, mode 0600; protocol in ``proxy.aio.control``): one request line, one answer line.
A paused recording writes silence until it is resumed, and the pause (reason ``api``) goes into
the evidence record (PCI DSS 3.3.1: an agent taking a card number pauses the recording first).
A pause asked for during the notice makes the recording start paused; a call that is not recorded
(and will not be) is refused, so that nobody believes a recording was paused that never ran.
A request that changes nothing (a pause of a call ``calls pause`` paused already, a resume of one
it did not pause) says so and exits 1, as a refusal does.

Exit codes: 0 done; 1 callherald refuses or cannot be reached (not running, no such call, the
socket not usable by this user, no answer), or nothing changed; 2 the invocation is wrong (the
configuration).
"""

from __future__ import annotations

import json
import socket
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Final

from callherald.command import CommandError, ExitCode
from callherald.layout import DataLayout

__all__ = ["ANSWER_TIMEOUT_S", "calls_table", "control_request", "list_calls", "pause_call"]

ANSWER_TIMEOUT_S: Final = 5.0
_MAX_ANSWER_BYTES: Final = 4 * 1024 * 1024
_HEADER: Final = ("call", "direction", "recording", "paused")


def _refused(message: str) -> CommandError:
    return CommandError(message, exit_code=ExitCode.REFUSED)


def control_request(
    path: Path, request: Mapping[str, object], *, timeout_s: float = ANSWER_TIMEOUT_S
) -> dict[str, object]:
    """Send one request to the control socket at ``path`` and return its answer.

    Raises ``CommandError`` (exit 1) when callherald cannot be reached or answers nonsense.
    """
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout_s)
        try:
            sock.connect(str(path))
        except FileNotFoundError as error:
            raise _refused(f"callherald is not running (no control socket at {path})") from error
        except ConnectionRefusedError as error:
            # A socket file left by a process that was killed; the next start removes it.
            raise _refused(
                f"callherald is not running (nothing answers on {path}, left by an earlier run)"
            ) from error
        except PermissionError as error:
            raise _refused(f"not allowed to use {path}: run this as the user callherald runs as") from error
        except OSError as error:
            raise _refused(f"cannot reach callherald at {path}: {error}") from error
        try:
            sock.sendall(json.dumps(request).encode() + b"\n")
            answer = _read_line(sock)
        except TimeoutError as error:
            raise _refused(f"callherald did not answer within {timeout_s:g} s") from error
        except OSError as error:
            raise _refused(f"the control connection failed: {error}") from error
    try:
        parsed = json.loads(answer)
    except ValueError as error:
        raise _refused("callherald's answer is not JSON") from error
    if not isinstance(parsed, dict) or not isinstance(parsed.get("ok"), bool):
        raise _refused("callherald's answer is not a control answer")
    return parsed


def _read_line(sock: socket.socket) -> bytes:
    received = bytearray()
    while b"\n" not in received:
        chunk = sock.recv(65536)
        if not chunk:
            raise _refused("callherald closed the control connection without an answer")
        received += chunk
        if len(received) > _MAX_ANSWER_BYTES:
            raise _refused("callherald's answer is too long")
    return bytes(received.split(b"\n", 1)[0])


def _checked(answer: Mapping[str, object]) -> Mapping[str, object]:
    if answer["ok"] is not True:
        raise _refused(str(answer.get("error", "refused")))
    return answer


def calls_table(calls: Sequence[Mapping[str, object]]) -> str:
    """One line per call under a header line: reference, direction, recording (yes/no), pause reasons."""
    rows = [
        (
            str(call.get("call", "")),
            str(call.get("direction", "")),
            "yes" if call.get("recording") else "no",
            ", ".join(str(reason) for reason in _list(call.get("paused"))) or "-",
        )
        for call in calls
    ]
    widths = [max(len(row[index]) for row in [_HEADER, *rows]) for index in range(len(_HEADER))]
    lines = [
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True))
        for row in [_HEADER, *rows]
    ]
    return "\n".join(line.rstrip() for line in lines)


def _list(value: object) -> list[object]:
    return list(value) if isinstance(value, list) else []


def _report(error: CommandError) -> int:
    print(f"callherald calls: {error}", file=sys.stderr)
    return int(error.exit_code)


def list_calls(layout: DataLayout, *, as_json: bool = False) -> int:
    """Print the active calls of the running callherald (a table, or a JSON array)."""
    try:
        answer = _checked(control_request(layout.control_socket, {"op": "calls"}))
    except CommandError as error:
        return _report(error)
    calls = [call for call in _list(answer.get("calls")) if isinstance(call, dict)]
    if as_json:
        print(json.dumps(calls, indent=2, ensure_ascii=False))
    elif calls:
        print(calls_table(calls))
    else:
        print("no calls")
    return ExitCode.OK


_PAUSED_BY: Final = {"pci": "the PCI code", "hold": "a hold"}


def _not_paused(call_ref: str, reasons: list[object]) -> str:
    """Why a resume changed nothing: ``calls pause`` did not pause the call; ``reasons`` still do."""
    message = f"call {call_ref}: not paused by callherald calls pause: nothing to resume"
    still = [_PAUSED_BY.get(str(reason), str(reason)) for reason in reasons]
    if still:
        message += f"; still paused by {' and '.join(still)}, which calls resume does not end"
    return message


def _already_paused(call_ref: str, recording: bool) -> str:
    """Why a pause changed nothing: ``calls pause`` paused the call already."""
    state = "the recording is paused" if recording else "the recording will start paused"
    return (
        f"call {call_ref}: already paused by callherald calls pause: nothing changed; {state} "
        f"(silence until: callherald calls resume {call_ref})"
    )


def pause_call(layout: DataLayout, call_ref: str, *, pause: bool) -> int:
    """Pause (``pause``) or resume the recording of call ``call_ref``. An unknown call, a call that
    is not recorded and will not be, a resume of a call no pause request paused (it may be paused
    for another reason still), and a pause of a call one paused already, exit 1; during the notice
    the recording will start so."""
    verb = "pause" if pause else "resume"
    try:
        answer = control_request(layout.control_socket, {"op": verb, "call": call_ref})
        if answer.get("error") == "not paused":  # nothing changed: say why, and what still pauses it
            raise _refused(_not_paused(call_ref, _list(answer.get("paused"))))
        if answer.get("error") == "already paused":  # nothing changed: it is paused as asked
            raise _refused(_already_paused(call_ref, answer.get("recording") is True))
        _checked(answer)
    except CommandError as error:
        if str(error) == "no such call":
            error = _refused(f"no such call: {call_ref} (see callherald calls list)")
        elif str(error) == "not recorded":
            error = _refused(f"call {call_ref} is not being recorded, and will not be: nothing to {verb}")
        return _report(error)
    if answer.get("recording") is False:  # the notice and questions are not over yet
        state = f"paused (silence until: callherald calls resume {call_ref})" if pause else "unpaused"
        print(f"call {call_ref}: the recording has not started yet; it will start {state}")
    elif pause:
        print(f"call {call_ref}: recording paused (silence until: callherald calls resume {call_ref})")
    else:
        print(f"call {call_ref}: recording resumed (unless it is paused for another reason too)")
    return ExitCode.OK
