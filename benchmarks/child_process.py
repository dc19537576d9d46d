"""A benchmark's helper process (a receiver, a traffic generator), started and stopped by its PID.

The child prints one JSON line when it is ready (what the benchmark needs of it, such as its
ports), works until its stdin closes or its own time is up, then prints its report as its last
JSON line.
"""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Final, cast

PROJECT_ROOT: Final = Path(__file__).resolve().parent.parent
STOP_WAIT_S: Final = 5.0


def start_child(
    module_args: Sequence[str], what: str, timeout_s: float
) -> tuple[subprocess.Popen[bytes], dict[str, Any]]:
    """Run ``python -m MODULE ARGS...`` from the project's root; return it and its ready line.
    RuntimeError naming ``what`` when it prints none within ``timeout_s`` (it is stopped then)."""
    command = [sys.executable, "-m", *module_args]
    process = subprocess.Popen(command, cwd=PROJECT_ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    assert process.stdout is not None
    ready, _, _ = select.select([process.stdout], [], [], timeout_s)
    line = process.stdout.readline() if ready else b""
    if not line:
        stop_child(process)
        raise RuntimeError(f"the {what} did not start")
    return process, cast(dict[str, Any], json.loads(line))


def stop_child(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM, then SIGKILL if it is still there after ``STOP_WAIT_S``; nothing if it has ended."""
    if process.poll() is None:
        os.kill(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=STOP_WAIT_S)
        except subprocess.TimeoutExpired:
            os.kill(process.pid, signal.SIGKILL)
            process.wait(timeout=STOP_WAIT_S)


def finish_child(process: subprocess.Popen[bytes], what: str, timeout_s: float) -> dict[str, Any]:
    """Close its stdin, wait up to ``timeout_s`` for it to end, and return its report; it is
    stopped in any case. RuntimeError naming ``what`` when it failed or reported nothing."""
    try:
        out, _ = process.communicate(timeout=timeout_s)  # closes its stdin first
    finally:
        stop_child(process)
    lines = out.decode().splitlines()
    if process.returncode != 0 or not lines:
        raise RuntimeError(f"the {what} failed (exit status {process.returncode})")
    return cast(dict[str, Any], json.loads(lines[-1]))
