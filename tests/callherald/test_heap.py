"""The heap tuning of ``callherald serve``: freed numpy temporaries come back without page faults."""

from __future__ import annotations

import subprocess
import sys

import pytest

_SLOTS = r"""
import resource, sys
import numpy as np
if sys.argv[1] == "tuned":
    from callherald.heap import keep_freed_memory
    assert keep_freed_memory()
def slot():  # a flush slot's temporaries: a few arrays of hundreds of KiB, freed at its end
    samples = np.zeros(200_000)
    samples += 1.0
    return float(np.square(samples).astype(np.float32)[-1])
for _ in range(5):
    slot()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(100):
    slot()
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def _page_faults(mode: str) -> int:
    done = subprocess.run(
        [sys.executable, "-c", _SLOTS, mode], capture_output=True, text=True, check=True, timeout=60
    )
    return int(done.stdout)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt()")
def test_freed_temporaries_are_reused_without_page_faults() -> None:
    # The default allocator maps and faults in the pages of every large array anew (400 KiB
    # each slot here: hundreds of faults); tuned, the heap keeps them.
    assert _page_faults("default") > 10_000
    assert _page_faults("tuned") < 100
