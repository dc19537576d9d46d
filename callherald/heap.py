"""Keeping freed heap memory in the process, so that numpy's large temporaries cost no page faults.

Each flush slot masks, decodes and seals the audio of many recordings in arrays of hundreds of
KiB. glibc's malloc serves blocks above its mmap threshold (128 KiB, raised as such blocks are
freed) from fresh pages, and returns free memory at the top of the heap to the kernel once it
exceeds the trim threshold. Either way the next slot's arrays land on pages the kernel must fault
in and zero again: hundreds of faults a slot, which cost as much as the numpy work itself.
``keep_freed_memory`` raises both thresholds, so the pages stay mapped after the first slots.
The price is that the heap keeps its high-water mark, at most ``TRIM_THRESHOLD_BYTES`` above
what is in use.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
from typing import Final

__all__ = ["MMAP_THRESHOLD_BYTES", "TRIM_THRESHOLD_BYTES", "keep_freed_memory"]

_LOG = logging.getLogger("callherald.heap")

# mallopt() parameters, from glibc's <malloc.h>.
_M_TRIM_THRESHOLD: Final = -1
_M_MMAP_THRESHOLD: Final = -3

MMAP_THRESHOLD_BYTES: Final = 32 * 1024 * 1024
"""Blocks up to this size come from the heap, whose pages are reused, not from mmap."""
TRIM_THRESHOLD_BYTES: Final = 64 * 1024 * 1024
"""Free memory at the top of the heap is returned to the kernel only beyond this."""


def keep_freed_memory() -> bool:
    """Tune glibc's malloc as the module docstring says. Returns whether it could (not on a C
    library without ``mallopt``, where the defaults stay)."""
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError, TypeError):
        _LOG.info("no mallopt() in the C library: the allocator keeps its defaults")
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    # mallopt() returns 1 on success and 0 on error.
    done: bool = mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES) == 1
    done &= mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD_BYTES) == 1
    if not done:
        _LOG.warning("mallopt() refused the heap thresholds: the allocator keeps its defaults")
    return done
