"""A running ``callherald serve`` keeps its calls and their evidence, with a recording live: a
second ``serve`` on its data directory changes none of it, and SIGHUP (a closed terminal, a log
rotation) ends none of it."""

from __future__ import annotations

import os
import signal
import sqlite3
import time
from pathlib import Path

import pytest

from storage.records import AUDIT_ACTION_PURPOSE_CHANGED, EvidenceStore, RecordingState
from tests.e2e.announce_support import policy_yaml, write_prompt_wavs
from tests.e2e.harness import (
    CallheraldProcess,
    free_port,
    running_callherald,
    serve_that_stops,
    sipp_available,
)
from tests.e2e.test_recording_calls import inbound_tone_call, manifests_verified
from tests.e2e.test_sipp_calls import assert_ok

pytestmark = pytest.mark.e2e
requires_sipp = pytest.mark.skipif(not sipp_available(), reason="SIPp (sip-tester) is not installed")

EVIDENCE_RETENTION = "{id: evidence, lawful_basis: contract, retention_days: 30}"


def _stored(data_dir: Path) -> tuple[list[tuple[object, ...]], ...]:
    """The rows a start-up could change: recordings, purpose definitions, the audit log."""
    with sqlite3.connect(f"file:{data_dir / 'evidence.sqlite'}?mode=ro", uri=True) as db:
        return (
            db.execute(
                "SELECT id, state, audio_sha256, size_bytes, duration_ms, finished_at FROM recordings"
            ).fetchall(),
            db.execute("SELECT id, version, retention_days FROM purposes ORDER BY id, version").fetchall(),
            db.execute("SELECT seq, action, subject, hash FROM audit_log ORDER BY seq").fetchall(),
        )


def _settled(data_dir: Path, timeout_s: float = 10.0) -> tuple[list[tuple[object, ...]], ...]:
    """``_stored`` once the running recording's row is written and nothing changes for a moment:
    the evidence thread writes after the log line that says the recording started."""
    deadline = time.monotonic() + timeout_s
    rows = _stored(data_dir)
    while time.monotonic() < deadline:
        time.sleep(0.3)
        again = _stored(data_dir)
        if again == rows and rows[0]:
            return rows
        rows = again
    raise AssertionError(f"the evidence did not settle within {timeout_s:g} s: {rows}")


def _edited_config(proxy: CallheraldProcess, path: Path) -> Path:
    """The running one's configuration on other SIP ports, with the evidence purpose kept longer."""
    text = proxy.config_path.read_text(encoding="utf-8")
    for port in (proxy.pbx_port, proxy.carrier_port):
        text = text.replace(f"port: {port}, ", f"port: {free_port()}, ")
    assert EVIDENCE_RETENTION in text
    path.write_text(
        text.replace(EVIDENCE_RETENTION, EVIDENCE_RETENTION.replace("30", "365")), encoding="utf-8"
    )
    return path


@requires_sipp
@pytest.mark.timeout(90)
def test_a_second_serve_on_the_data_directory_leaves_the_live_recording_alone(tmp_path: Path) -> None:
    # An admin starts callherald by hand while systemd runs it already (the same configuration),
    # or with an edited copy: it must stop before recovery closes the live recording as crashed,
    # and before the edited purpose is stored as a change that never took effect.
    write_prompt_wavs(tmp_path)
    with (
        running_callherald(tmp_path, policies=policy_yaml()) as proxy,
        inbound_tone_call(tmp_path, proxy, caller_pause_ms=12000) as caller,
    ):
        assert proxy.wait_for_log('"event": "recording_started"', timeout_s=15), proxy.log_text()[-3000:]
        before = _settled(proxy.data_dir)
        for config in (proxy.config_path, _edited_config(proxy, tmp_path / "edited.yaml")):
            second = serve_that_stops(config, tmp_path)
            output = second.stdout + second.stderr
            assert second.returncode == 2, output
            assert (
                f"callherald cannot start: data_dir {proxy.data_dir} is in use by another callherald"
                f" (PID {proxy.process.pid})"
            ) in output
            assert "after a crash" not in output
            assert "changed" not in output
            assert _stored(proxy.data_dir) == before
        assert proxy.process.poll() is None
        assert_ok(proxy, caller.finish(timeout_s=30))
    log = proxy.log_text()
    assert "not written" not in log, log[-3000:]
    with EvidenceStore(proxy.data_dir / "evidence.sqlite") as store:
        (record,) = store.recordings_list()
    assert record.state is RecordingState.COMPLETE
    assert record.audio_sha256 is not None
    assert record.duration_ms is not None
    assert record.duration_ms > 5000
    _, purposes, audit = _stored(proxy.data_dir)
    assert purposes == before[1]  # no version 2 of a purpose
    assert AUDIT_ACTION_PURPOSE_CHANGED not in {action for _, action, _, _ in audit}
    assert manifests_verified(proxy) == {"ok": True, "checked": 1, "without_manifest": 0, "mismatches": []}


@requires_sipp
@pytest.mark.timeout(60)
def test_sighup_is_logged_and_ignored_while_a_recorded_call_goes_on(tmp_path: Path) -> None:
    # Its default action would end the process like a kill -9: the parties get no BYE, their
    # recording stays open until the next start. callherald reads its configuration only at
    # start, so there is nothing to reload: the call goes on and ends as it would have.
    write_prompt_wavs(tmp_path)
    with (
        running_callherald(tmp_path, policies=policy_yaml()) as proxy,
        inbound_tone_call(tmp_path, proxy, caller_pause_ms=8000) as caller,
    ):
        assert proxy.wait_for_log('"event": "recording_started"', timeout_s=15), proxy.log_text()[-3000:]
        for _ in range(2):
            os.kill(proxy.process.pid, signal.SIGHUP)
            time.sleep(0.5)
        assert proxy.process.poll() is None, proxy.log_text()[-3000:]
        assert proxy.log_text().count("SIGHUP ignored") == 2
        assert_ok(proxy, caller.finish(timeout_s=30))
    assert proxy.process.returncode == 0  # stopped by SIGTERM, as ever
    with EvidenceStore(proxy.data_dir / "evidence.sqlite") as store:
        (record,) = store.recordings_list()
    assert record.state is RecordingState.COMPLETE
    assert record.audio_sha256 is not None
