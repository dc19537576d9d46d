"""One running callherald per data directory: ``serve`` owns it by a lock, taken before anything
under it is read or written, that dies with its process."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from callherald.layout import DataDirInUseError, DataLayout, own_data_dir
from config import HOME_ENV

_HOLD_LOCK = """
import sys, time
from pathlib import Path
from callherald.layout import DataLayout, own_data_dir
with own_data_dir(DataLayout(Path(sys.argv[1]))):
    print("owned", flush=True)
    time.sleep(60)
"""


def test_a_second_owner_is_refused_with_the_directory_and_the_owners_pid(tmp_path: Path) -> None:
    layout = DataLayout(tmp_path / "data")
    layout.make_root()
    with own_data_dir(layout):
        assert layout.lock_file.read_text(encoding="ascii") == f"{os.getpid()}\n"
        with pytest.raises(DataDirInUseError) as refused, own_data_dir(layout):
            pass
    assert str(refused.value) == (
        f"data_dir {layout.root} is in use by another callherald (PID {os.getpid()}):"
        " one data directory serves one running callherald"
    )
    assert layout.lock_file.read_text(encoding="ascii") == f"{os.getpid()}\n"  # the refused one wrote none
    with own_data_dir(layout):  # released at the end of the block
        pass


def test_the_lock_goes_with_its_process_even_after_kill_9(tmp_path: Path) -> None:
    layout = DataLayout(tmp_path / "data")
    layout.make_root()
    owner = subprocess.Popen(
        [sys.executable, "-c", _HOLD_LOCK, str(layout.root)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert owner.stdout is not None
        assert owner.stdout.readline() == "owned\n"
        with pytest.raises(DataDirInUseError, match=rf"\(PID {owner.pid}\)"), own_data_dir(layout):
            pass
    finally:
        owner.send_signal(signal.SIGKILL)
        owner.communicate(timeout=10)
    with own_data_dir(layout):  # no stale lock: the next start owns the directory
        assert layout.lock_file.read_text(encoding="ascii") == f"{os.getpid()}\n"


@pytest.mark.timeout(40)
def test_serve_on_an_owned_data_directory_stops_before_touching_it(tmp_path: Path) -> None:
    # A second `serve` must not recover, migrate, store purposes, make keys or import prompts in
    # the directory a running callherald records into: it stops at once and says who owns it.
    layout = DataLayout(tmp_path / "data")
    layout.make_root()
    with own_data_dir(layout):
        completed = subprocess.run(
            [sys.executable, "-m", "callherald.cli", "serve"],
            capture_output=True,
            text=True,
            stdin=subprocess.DEVNULL,
            cwd=tmp_path,
            env={**os.environ, HOME_ENV: str(layout.root)},
            timeout=30,
            check=False,
        )
    output = completed.stdout + completed.stderr
    assert completed.returncode == 2, output
    assert (
        f"callherald cannot start: data_dir {layout.root} is in use by another callherald (PID {os.getpid()})"
        in output
    )
    assert "Traceback" not in output
    assert sorted(path.name for path in layout.root.iterdir()) == ["serve.lock"]
