"""What a valid configuration asks of the machine it runs on, checked by ``check-config`` and
before ``serve`` starts (not by loading: the reviewer commands read a copy of the file anywhere).

A listener or RTP address that is not one of the machine's own cannot be bound: a listener then
stops ``serve`` with an error that names no key, and RTP sockets fail on every call (503). A
``data_dir`` that is a file cannot hold the data. Each is found here before anything runs.
"""

from __future__ import annotations

import errno
import os
import socket
from ipaddress import ip_address
from pathlib import Path

from config.schema import Config

__all__ = ["machine_problems"]


def machine_problems(config: Config) -> list[tuple[str, str]]:
    """What this machine cannot do of ``config``, each with the key it is about
    (``listen.pbx.host``) and what is wrong."""
    problems: list[tuple[str, str]] = []
    addresses = (
        ("listen.pbx.host", config.listen.pbx.host),
        ("listen.carrier.host", config.listen.carrier.host),
        ("media.bind_address", config.media.bind_address),
    )
    for key, address in addresses:
        problem = _unbindable(address)
        if problem is not None:
            problems.append((key, problem))
    problem = _not_a_directory(config.data_dir)
    if problem is not None:
        problems.append(("data_dir", problem))
    return problems


def _unbindable(address: str) -> str | None:
    """Why a UDP socket cannot bind to ``address`` (any free port), or None when it can. Binding is
    what the listeners and the RTP sockets do; ``0.0.0.0`` and ``::`` (every address) always may."""
    family = socket.AF_INET6 if ip_address(address).version == 6 else socket.AF_INET
    try:
        with socket.socket(family, socket.SOCK_DGRAM) as probe:
            probe.bind((address, 0))
    except OSError as error:
        reason = error.strerror or str(error)
        if error.errno == errno.EADDRNOTAVAIL:
            every = "::" if family == socket.AF_INET6 else "0.0.0.0"
            return (
                f"{address} is not an address of this machine ({reason}): give one of its own "
                f"addresses, or {every} for all of them"
            )
        return f"cannot bind to {address}: {reason}"
    return None


def _not_a_directory(data_dir: Path) -> str | None:
    """Why ``data_dir`` cannot be the data directory because it, or the nearest path above it that
    exists, is not a directory (a missing directory is made at start-up); None when it can be."""
    for path in (data_dir, *data_dir.parents):
        if os.path.isdir(path):
            return None
        if os.path.lexists(path):
            if path == data_dir:
                return f"{data_dir} is not a directory: give a directory (one that does not exist is made)"
            return f"{data_dir} cannot be made: {path} is not a directory"
    return None
