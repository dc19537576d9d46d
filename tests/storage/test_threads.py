"""The storage threads carry their names into the operating system."""

from __future__ import annotations

import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from storage.records import EvidenceStore
from storage.threads import OS_THREAD_NAME_MAX, name_os_thread, os_thread_name

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="thread names come from /proc")


def _named_in(name: str) -> str | None:
    seen: list[str | None] = []

    def run() -> None:
        name_os_thread(name)
        seen.append(os_thread_name())

    thread = threading.Thread(target=run)
    thread.start()
    thread.join()
    return seen[0]


def test_a_thread_is_named_in_the_operating_system() -> None:
    assert _named_in("ch-test") == "ch-test"


def test_a_long_name_is_cut_to_what_linux_keeps() -> None:
    assert _named_in("a-name-longer-than-fifteen") == "a-name-longer-than-fifteen"[:OS_THREAD_NAME_MAX]


def test_naming_one_thread_leaves_the_others_alone() -> None:
    before = os_thread_name()
    _named_in("ch-other")
    assert os_thread_name() == before


def _task_names() -> set[str]:
    return {path.read_text("ascii").rstrip("\n") for path in Path("/proc/self/task").glob("*/comm")}


def test_the_evidence_store_threads_are_named(tmp_path: Path) -> None:
    with EvidenceStore(tmp_path / "evidence.db"):
        assert {"evidence-writer", "evidence-reader"} <= _task_names()
    # A joined thread may still be leaving the kernel's task list for a moment.
    deadline = time.monotonic() + 5
    while {"evidence-writer", "evidence-reader"} & _task_names() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not {"evidence-writer", "evidence-reader"} & _task_names()


def test_an_executor_initializer_can_name_its_worker() -> None:
    with ThreadPoolExecutor(max_workers=1, initializer=name_os_thread, initargs=("ch-worker",)) as pool:
        assert pool.submit(os_thread_name).result() == "ch-worker"


def test_a_name_outside_ascii_never_fails_the_thread() -> None:
    # A pool whose initializer raised would refuse every job (BrokenThreadPool).
    assert _named_in("rec-wr\u00eftér") == "rec-wr?t?r"
