"""One running callherald per data directory: ``serve`` owns it by a lock, taken before anything
under it is read or written, that dies with its process."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from callherald.layout import DataDirInUseError, DataDirLockFileError, DataLayout, own_data_dir
from config import HOME_ENV
from tests.small_disk import fill_up, tiny_file_system

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


def test_removing_serve_lock_does_not_free_the_directory(tmp_path: Path) -> None:
    # An administrator (or a tmp cleaner) removes serve.lock as a stale pidfile while serve runs:
    # a second start must still be refused, not lock a new file and recover the live calls.
    layout = DataLayout(tmp_path / "data")
    layout.make_root()
    with own_data_dir(layout):
        layout.lock_file.unlink()
        with pytest.raises(DataDirInUseError, match=r"\(PID unknown\)"), own_data_dir(layout):
            pass
        assert not layout.lock_file.exists()  # the refused start made none


def test_a_symbolic_link_as_serve_lock_is_not_followed(tmp_path: Path) -> None:
    layout = DataLayout(tmp_path / "data")
    layout.make_root()
    victim = tmp_path / "victim.txt"
    victim.write_text("precious content", encoding="ascii")
    layout.lock_file.symlink_to(victim)
    with pytest.raises(DataDirLockFileError) as refused, own_data_dir(layout):
        pass
    assert str(refused.value) == (
        f"{layout.lock_file} is a symbolic link: callherald writes its PID there and does not follow"
        " links; remove the link and start again"
    )
    assert victim.read_text(encoding="ascii") == "precious content"
    layout.lock_file.unlink()
    with own_data_dir(layout):  # the refused start left no lock behind
        assert layout.lock_file.read_text(encoding="ascii") == f"{os.getpid()}\n"


def test_a_dangling_symbolic_link_or_a_directory_as_serve_lock_is_named(tmp_path: Path) -> None:
    layout = DataLayout(tmp_path / "data")
    layout.make_root()
    layout.lock_file.symlink_to(tmp_path / "missing")
    with pytest.raises(DataDirLockFileError, match="is a symbolic link"), own_data_dir(layout):
        pass
    assert not (tmp_path / "missing").exists()
    layout.lock_file.unlink()
    layout.lock_file.mkdir()
    with (
        pytest.raises(DataDirLockFileError, match="is a directory: callherald writes its PID"),
        own_data_dir(layout),
    ):
        pass


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


def test_on_a_full_disk_the_directory_is_owned_without_the_pid_written(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # A first start on a full disk: the lock is on the directory, so it still keeps a second owner
    # out; only the PID that names the owner is missing.
    with tiny_file_system(tmp_path / "data", 4096) as root:
        layout = DataLayout(root)
        filler = fill_up(root)
        with own_data_dir(layout):
            assert f"{layout.lock_file}: this process's PID is not written: the disk holding it is full" in (
                caplog.text
            )
            with pytest.raises(DataDirInUseError, match=r"\(PID unknown\)"), own_data_dir(layout):
                pass
        filler.unlink()
        with own_data_dir(layout):
            assert layout.lock_file.read_text(encoding="ascii") == f"{os.getpid()}\n"
