"""``LoggingRecordSink``: the facts of each call as JSON lines in the log (``callherald.evidence``)."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
import time
from typing import Any

import pytest

from callherald.announcing import LoggingRecordSink
from proxy.aio.service import AgentInformed, AgentInformStarted
from proxy.b2bua.effects import CallEnded, CallStarted, MediaLeg, StartRecording, Tone


def logged(caplog: pytest.LogCaptureFixture) -> list[dict[str, Any]]:
    return [json.loads(r.getMessage()) for r in caplog.records if r.name == "callherald.evidence"]


def test_call_events_say_when_and_a_call_not_recorded_says_why(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="callherald.evidence")

    async def play() -> None:
        sink = LoggingRecordSink()
        start = asyncio.get_running_loop().time()
        sink.call_started(
            CallStarted(call_ref="c1", direction="inbound", caller="sip:1@x", callee="sip:2@y", at=start)
        )
        recording = StartRecording(
            call_ref="c1", outside_leg=MediaLeg.A, purposes=("evidence",), policy="default"
        )
        sink.not_recorded(recording, "disk nearly full (2 MB free, 5 MB needed)", start + 6)
        sink.call_ended(CallEnded(call_ref="c1", reason="bye-from-a", at=start + 9))

    before = dt.datetime.now(dt.UTC)
    asyncio.run(play())
    started, not_recorded, ended = logged(caplog)
    times = [dt.datetime.fromisoformat(record.pop("at")) for record in (started, not_recorded, ended)]
    assert before - dt.timedelta(seconds=1) <= times[0] <= dt.datetime.now(dt.UTC)
    assert [(t - times[0]).total_seconds() for t in times] == [0.0, 6.0, 9.0]
    assert started == {"call": "c1", "event": "call_started", "direction": "inbound"}
    assert not_recorded == {
        "call": "c1",
        "event": "not_recorded",
        "purposes": ["evidence"],
        "policy": "default",
        "reason": "disk nearly full (2 MB free, 5 MB needed)",
    }
    assert ended == {"call": "c1", "event": "call_ended", "reason": "bye-from-a"}


def test_call_times_follow_a_wall_clock_set_while_running(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    caplog.set_level(logging.INFO, logger="callherald.evidence")

    async def play() -> None:
        sink = LoggingRecordSink()
        now = asyncio.get_running_loop().time()
        sink.call_ended(CallEnded(call_ref="c1", reason="bye-from-a", at=now))
        real_time = time.time
        monkeypatch.setattr(time, "time", lambda: real_time() + 7200)  # NTP sets the clock on
        sink.call_ended(CallEnded(call_ref="c2", reason="bye-from-a", at=now))

    asyncio.run(play())
    first, second = (dt.datetime.fromisoformat(record["at"]) for record in logged(caplog))
    assert abs((second - first).total_seconds() - 7200) < 0.5


def test_what_told_the_agent_is_logged_with_when_it_played(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="callherald.evidence")
    notice = {"prompt_id": "notice", "language": "nl", "version": "4", "audio_sha256": "5e" * 32}

    async def play() -> float:
        sink = LoggingRecordSink()
        start = asyncio.get_running_loop().time()
        sink.agent_informed(
            AgentInformed(
                call_ref="c1",
                leg=MediaLeg.A,
                prompt=notice,
                started_at=start + 1,
                ended_at=start + 6,
                at=start + 6,
                complete=True,
            )
        )
        sink.agent_informed(
            AgentInformed(
                call_ref="c1",
                leg=MediaLeg.A,
                tone=Tone.BEEP,
                started_at=start + 8,
                ended_at=start + 8.3,
                at=start + 8.3,
                complete=False,
                failure="the playout failed: no address",
            )
        )
        return start

    asyncio.run(play())
    copy, beep = logged(caplog)
    for record in (copy, beep):
        started, ended = (
            dt.datetime.fromisoformat(str(record.pop(name))) for name in ("started_at", "ended_at")
        )
        assert dt.datetime.fromisoformat(record.pop("at")) == ended
        assert (ended - started).total_seconds() == pytest.approx(5 if record is copy else 0.3, abs=0.002)
    assert copy == {
        "call": "c1",
        "leg": "a",
        "event": "agent_informed",
        "prompt": notice,
        "complete": True,
        "failure": None,
    }
    assert beep == {
        "call": "c1",
        "leg": "a",
        "event": "agent_informed",
        "tone": "beep",
        "complete": False,
        "failure": "the playout failed: no address",
    }


def test_what_tells_the_agent_is_logged_as_it_starts(caplog: pytest.LogCaptureFixture) -> None:
    # Logged as it starts sounding: a crash before it is over leaves that the agent was being told.
    caplog.set_level(logging.INFO, logger="callherald.evidence")
    notice = {"prompt_id": "notice", "language": "nl", "version": "4", "audio_sha256": "5e" * 32}

    async def play() -> None:
        sink = LoggingRecordSink()
        start = asyncio.get_running_loop().time()
        sink.agent_inform_started(
            AgentInformStarted(call_ref="c1", leg=MediaLeg.A, prompt=notice, started_at=start)
        )
        sink.agent_inform_started(
            AgentInformStarted(call_ref="c1", leg=MediaLeg.A, tone=Tone.BEEP, started_at=start)
        )

    asyncio.run(play())
    copy, beep = logged(caplog)
    assert dt.datetime.fromisoformat(copy.pop("at")) == dt.datetime.fromisoformat(beep.pop("at"))
    assert copy == {"call": "c1", "leg": "a", "event": "agent_inform_started", "prompt": notice}
    assert beep == {"call": "c1", "leg": "a", "event": "agent_inform_started", "tone": "beep"}
