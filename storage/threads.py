"""Naming the operating-system thread that runs the caller, so ``top -H``, ``ps -L`` and
``/proc/PID/task/TID/comm`` tell callherald's threads apart (Python's thread names stay inside the
interpreter). The benchmarks read these names to split callherald's CPU by thread."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Final

__all__ = ["OS_THREAD_NAME_MAX", "name_os_thread", "os_thread_name"]

OS_THREAD_NAME_MAX: Final = 15
"""Linux keeps 15 bytes of a thread's name (``TASK_COMM_LEN`` less the terminating NUL)."""


def _comm_path() -> Path:
    return Path(f"/proc/self/task/{threading.get_native_id()}/comm")


def name_os_thread(name: str) -> None:
    """Give the calling thread ``name`` (ASCII, others become ``?``; cut to 15 bytes) in the operating system.

    Best effort: where there is no ``/proc`` (not Linux) the thread keeps the process's name.
    """
    encoded = name.encode("ascii", errors="replace")[:OS_THREAD_NAME_MAX]
    try:
        _comm_path().write_bytes(encoded)
    except OSError:
        return


def os_thread_name() -> str | None:
    """The calling thread's name in the operating system, or None where it cannot be read."""
    try:
        return _comm_path().read_text("ascii").rstrip("\n")
    except OSError:
        return None
