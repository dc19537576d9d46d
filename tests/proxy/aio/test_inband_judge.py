"""The event loop's ``InbandJudge``: every call's gathered in-band audio judged together, on a
timer that runs while any listener is registered; no sockets."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import numpy as np
import pytest

from proxy.aio import announce
from proxy.aio.announce import JUDGE_INTERVAL_S, InbandJudge
from proxy.rtp.digits import DigitListener, HeardDigit
from tests.proxy.rtp.test_digits import audio, keyed, listener, stream


def _packets(digit: str) -> list[bytes]:
    return stream(audio(np.concatenate([keyed(digit, 90, 80, 300)]), "pcmu"))


def _keys(heard: list[HeardDigit]) -> list[tuple[str, str]]:
    return [(digit.digit, digit.mechanism) for digit in heard]


def _gathered(digit: str) -> DigitListener:
    target = listener()
    for packet in _packets(digit):
        assert target.feed(packet, judge=False) == []
    assert target.audio_waiting
    return target


def test_a_round_reports_each_listener_s_presses_to_its_own_callback() -> None:
    async def scenario() -> None:
        judge = InbandJudge(asyncio.get_running_loop())
        heard: dict[str, list[HeardDigit]] = {"first": [], "second": []}
        first, second = _gathered("4"), _gathered("#")
        judge.add(first, heard["first"].append)
        judge.add(second, heard["second"].append)
        judge._on_round()
        assert {name: _keys(digits) for name, digits in heard.items()} == {
            "first": [("4", "inband")],
            "second": [("#", "inband")],
        }
        # Each key went down 90 ms into 460 ms of audio (23 packets): 0.37 s before its end, as
        # far as 5 ms hops tell.
        assert [digit.since_onset_s for digit in heard["first"] + heard["second"]] == [
            pytest.approx(0.37, abs=0.010)
        ] * 2
        assert not first.audio_waiting
        assert not second.audio_waiting
        judge.close()

    asyncio.run(scenario())


async def _until(condition: Callable[[], bool], limit_s: float = 10.0) -> None:
    # Real rounds on the real loop: waits for them, however slow the machine, up to a bound.
    loop = asyncio.get_running_loop()
    deadline = loop.time() + limit_s
    while not condition():
        assert loop.time() < deadline, "the judge's rounds did not come"
        await asyncio.sleep(JUDGE_INTERVAL_S / 4)


def test_the_timer_runs_while_a_listener_is_registered_and_stops_after() -> None:
    async def scenario() -> None:
        judge = InbandJudge(asyncio.get_running_loop())
        heard: list[HeardDigit] = []
        target = _gathered("7")
        judge.add(target, heard.append)
        await _until(lambda: judge.rounds >= 2)
        assert _keys(heard) == [("7", "inband")]
        judge.discard(target)
        rounds = judge.rounds
        await _until(lambda: judge.rounds > rounds)  # the round already due
        assert judge._handle is None  # nobody listens: no timer
        rounds = judge.rounds
        await asyncio.sleep(JUDGE_INTERVAL_S * 2)
        assert judge.rounds == rounds
        judge.add(_gathered("1"), heard.append)  # and it starts again
        await _until(lambda: len(heard) == 2)
        assert _keys(heard)[-1] == ("1", "inband")
        judge.close()

    asyncio.run(scenario())


def test_a_discarded_listener_is_not_judged() -> None:
    async def scenario() -> None:
        judge = InbandJudge(asyncio.get_running_loop())
        heard: list[HeardDigit] = []
        target = _gathered("9")
        judge.add(target, heard.append)
        judge.discard(target)
        judge._on_round()
        assert heard == []
        judge.close()

    asyncio.run(scenario())


def test_a_failing_round_is_logged_and_the_next_one_judges_again(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(_: object) -> list[list[HeardDigit]]:
        raise RuntimeError("boom")

    async def scenario() -> None:
        judge = InbandJudge(asyncio.get_running_loop())
        heard: list[HeardDigit] = []
        with monkeypatch.context() as patched:
            patched.setattr(announce, "judge_together", broken)
            judge.add(_gathered("2"), heard.append)
            judge._on_round()
        assert heard == []
        judge.add(_gathered("3"), heard.append)
        judge._on_round()
        assert ("3", "inband") in _keys(heard)
        judge.close()

    asyncio.run(scenario())
    assert "judging the in-band audio failed" in caplog.text


def test_a_press_that_ends_another_listening_in_the_same_round_is_no_error() -> None:
    # The first call's key press ends the second call (or its listening) before the second
    # listener's presses are handed out: they are dropped, as its call no longer wants them.
    async def scenario() -> None:
        judge = InbandJudge(asyncio.get_running_loop())
        first, second = _gathered("6"), _gathered("8")
        heard: list[HeardDigit] = []

        def on_first(digit: HeardDigit) -> None:
            heard.append(digit)
            judge.discard(second)

        judge.add(first, on_first)
        judge.add(second, heard.append)
        judge._on_round()
        assert _keys(heard) == [("6", "inband")]
        judge.close()

    asyncio.run(scenario())
