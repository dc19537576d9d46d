"""Calls between two baresip phones through ``callherald serve``, read back with the CLI.

baresip is a SIP user agent in wide use, with its own SIP stack, SDP, RTP timing and RFC 4733
events. One phone stands for the PBX side's agent, the other for the outside party; each sends a
sine (outside party 1000 Hz, agent 440 Hz). What callherald kept is read as a reviewer would:
``callherald recordings list``, ``show`` and ``export`` against the test's configuration.
"""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import time
import wave
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest

from tests.e2e.announce_support import evidence_records, policy_yaml, write_prompt_wavs
from tests.e2e.baresip_phone import BaresipPhone, baresip_available, baresip_phone
from tests.e2e.harness import CALLHERALD, CallheraldProcess, pick_ports, running_callherald

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(not baresip_available(), reason="baresip (baresip-core) is not installed"),
]

OUTSIDE_HZ = 1000
AGENT_HZ = 440
CALLED = "0612345678"
LINE = "0201234567"


def _cli(proxy: CallheraldProcess, *args: str) -> str:
    done = subprocess.run(
        [str(CALLHERALD), *args, "--config", str(proxy.config_path)],
        cwd=proxy.config_path.parent,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def _wait_for_evidence(proxy: CallheraldProcess, event: str, timeout_s: float = 20.0) -> None:
    assert proxy.wait_for_log(f'"event": "{event}"', timeout_s), f"no {event}:\n{proxy.log_text()}"


def _wait_for_question(proxy: CallheraldProcess, timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not any(
        record["event"] == "announcement_started" and "test-question" in json.dumps(record)
        for record in evidence_records(proxy.log_text())
    ):
        assert time.monotonic() < deadline, f"the consent question never started:\n{proxy.log_text()}"
        time.sleep(0.05)


def _read_audio(path: Path) -> tuple[int, npt.NDArray[np.int16]]:
    """Sample rate and (frames, 2) samples of an exported recording (FLAC through ffmpeg)."""
    if path.suffix != ".wav":
        wav = path.with_suffix(".wav")
        subprocess.run(["ffmpeg", "-loglevel", "error", "-i", str(path), str(wav)], check=True, timeout=60)
        path = wav
    with wave.open(str(path), "rb") as audio:
        assert audio.getnchannels() == 2
        assert audio.getsampwidth() == 2
        samples = np.frombuffer(audio.readframes(audio.getnframes()), dtype="<i2").reshape(-1, 2)
        return audio.getframerate(), samples


def _dominant_hz(channel: npt.NDArray[np.int16], rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(channel.astype(np.float64)))
    return float(np.fft.rfftfreq(len(channel), 1 / rate)[int(spectrum.argmax())])


def _at(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text)


def _only_recording(proxy: CallheraldProcess) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The one recording's row and its call's timeline, as ``recordings list`` / ``show --json``."""
    listed = json.loads(_cli(proxy, "recordings", "list", "--json"))
    assert len(listed) == 1, listed
    shown = json.loads(_cli(proxy, "recordings", "show", str(listed[0]["recording_id"]), "--json"))
    return shown["recording"], shown["timeline"]


def _hang_up_and_export(
    phone: BaresipPhone, proxy: CallheraldProcess, exported: Path
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Hang up from ``phone``, then read the call's one recording back with the CLI and export it
    to ``exported`` (the format by its extension): the recording's row and the call's timeline."""
    phone.command("hangup")
    _wait_for_evidence(proxy, "call_ended")
    _wait_for_evidence(proxy, "recording_stopped")
    recording, timeline = _only_recording(proxy)
    _cli(proxy, "recordings", "export", recording["recording_id"], "--out", str(exported))
    return recording, timeline


def test_an_outbound_call_between_baresip_phones_is_recorded_and_paused_on_hold(tmp_path: Path) -> None:
    write_prompt_wavs(tmp_path)
    ports = pick_ports()
    with (
        baresip_phone(tmp_path / "outside", user=CALLED, tone_hz=OUTSIDE_HZ, sip_port=ports.carrier_target),
        running_callherald(tmp_path, ports=ports, policies=policy_yaml(timeout_s=1)) as proxy,
        baresip_phone(tmp_path / "agent", user="agent", tone_hz=AGENT_HZ) as agent,
    ):
        agent.command("dial", f"sip:{CALLED}@127.0.0.1:{proxy.pbx_port}")
        _wait_for_evidence(proxy, "recording_started")
        time.sleep(3)
        agent.command("hold")  # a re-INVITE with a=sendonly (RFC 3264 §8.4)
        time.sleep(3)
        agent.command("resume")
        time.sleep(3)
        exported = tmp_path / "call.wav"
        recording, timeline = _hang_up_and_export(agent, proxy, exported)

    assert recording["state"] == "complete"
    kinds = [event["kind"] for event in timeline]
    assert kinds.index("announcement_end") < kinds.index("consent") < kinds.index("recording_start")
    assert kinds.index("recording_start") <= kinds.index("first_frame") < kinds.index("pause_start")
    pause = {event["kind"]: event for event in timeline if event["kind"] in ("pause_start", "pause_end")}
    assert pause["pause_start"]["detail"] == {"reason": "hold"} == pause["pause_end"]["detail"]

    rate, samples = _read_audio(exported)
    assert rate == 8000
    first_frame = _at(recording["first_frame_at"])
    span_s = (_at(recording["finished_at"]) - first_frame).total_seconds()
    assert abs(len(samples) / rate - span_s) <= 0.1
    held_from = (_at(pause["pause_start"]["at"]) - first_frame).total_seconds()
    held_to = (_at(pause["pause_end"]["at"]) - first_frame).total_seconds()
    assert held_to - held_from > 2

    def part(start_s: float, end_s: float) -> npt.NDArray[np.int16]:
        return samples[int(start_s * rate) : int(end_s * rate)]

    for talking in (part(0.5, held_from - 0.3), part(held_to + 0.5, len(samples) / rate - 0.3)):
        assert _dominant_hz(talking[:, 0], rate) == pytest.approx(OUTSIDE_HZ, abs=5)
        assert _dominant_hz(talking[:, 1], rate) == pytest.approx(AGENT_HZ, abs=5)
    assert not part(held_from + 0.3, held_to - 0.3).any(), "audio stored while the call was on hold"


def test_an_inbound_g722_caller_on_baresip_consents_by_rfc4733_and_is_recorded_wideband(
    tmp_path: Path,
) -> None:
    write_prompt_wavs(tmp_path)
    ports = pick_ports()
    with (
        baresip_phone(
            tmp_path / "agent", user=LINE, tone_hz=AGENT_HZ, codec="G722/16000/1", sip_port=ports.pbx_target
        ),
        running_callherald(tmp_path, ports=ports, policies=policy_yaml(timeout_s=6)) as proxy,
        baresip_phone(
            tmp_path / "outside", user="caller", tone_hz=OUTSIDE_HZ, codec="G722/16000/1"
        ) as caller,
    ):
        caller.command("dial", f"sip:{LINE}@127.0.0.1:{proxy.carrier_port}")
        _wait_for_question(proxy)
        caller.command("sndcode", "1")  # RFC 4733, negotiated with G.722
        _wait_for_evidence(proxy, "recording_started")
        time.sleep(4)
        exported = tmp_path / "call.flac"
        recording, timeline = _hang_up_and_export(caller, proxy, exported)

    assert recording["state"] == "complete"
    assert recording["direction"] == "inbound"
    digits = [event["detail"] for event in timeline if event["kind"] == "dtmf"]
    assert {"digit": "1", "mechanism": "rfc4733", "counted": True} in digits
    consents = [event["detail"] for event in timeline if event["kind"] == "consent"]
    assert [(c["purpose_id"], c["decision"]) for c in consents] == [("training", "granted")]
    # The key is still held as recording starts, and baresip sends its events instead of audio,
    # in the audio's sequence: no packet was lost on loopback, and none is reported lost.
    assert recording["media_quality"]["outside_party"]["lost_ms"] == 0, recording["media_quality"]
    assert recording["media_quality"]["pbx_side"]["lost_ms"] == 0, recording["media_quality"]

    rate, samples = _read_audio(exported)
    assert rate == 16000
    talking = samples[rate // 2 : -rate // 4]
    assert len(talking) > 2 * rate
    assert _dominant_hz(talking[:, 0], rate) == pytest.approx(OUTSIDE_HZ, abs=5)
    assert _dominant_hz(talking[:, 1], rate) == pytest.approx(AGENT_HZ, abs=5)


def _heard(phone_dir: Path) -> tuple[int, npt.NDArray[np.int16]]:
    """What a phone heard on its call, decoded (its sndfile dump), as rate and mono samples."""
    (dump,) = phone_dir.glob("dump-*-dec.wav")
    with wave.open(str(dump), "rb") as audio:
        samples = np.frombuffer(audio.readframes(audio.getnframes()), dtype="<i2")
        return audio.getframerate(), samples[:: audio.getnchannels()]


def test_an_srtp_call_between_baresip_phones_connects_end_to_end_encrypted_and_unrecorded(
    tmp_path: Path,
) -> None:
    # Both phones speak SRTP only (RTP/SAVP, SDES). callherald cannot play its notice into that,
    # so the recording policy's on_failure (connect_unrecorded) applies: the phones' own SRTP
    # goes through the relay untouched, and each hears the other.
    write_prompt_wavs(tmp_path)
    ports = pick_ports()
    with (
        baresip_phone(
            tmp_path / "outside",
            user=CALLED,
            tone_hz=OUTSIDE_HZ,
            sip_port=ports.carrier_target,
            mediaenc="srtp-mand",
            dump_audio=True,
        ),
        running_callherald(tmp_path, ports=ports, policies=policy_yaml(timeout_s=1)) as proxy,
        baresip_phone(
            tmp_path / "agent", user="agent", tone_hz=AGENT_HZ, mediaenc="srtp-mand", dump_audio=True
        ) as agent,
    ):
        agent.command("dial", f"sip:{CALLED}@127.0.0.1:{proxy.pbx_port}")
        _wait_for_evidence(proxy, "notice_failed")
        deadline = time.monotonic() + 10
        while "SRTP is Enabled" not in agent.log_text():
            assert time.monotonic() < deadline, agent.log_text()
            time.sleep(0.05)
        time.sleep(3)
        agent.command("hangup")
        _wait_for_evidence(proxy, "call_ended")
        records = evidence_records(proxy.log_text())
        assert json.loads(_cli(proxy, "recordings", "list", "--json")) == []

    (failed,) = [record for record in records if record["event"] == "notice_failed"]
    assert failed["reason"] == "the audio is sent as RTP/SAVP: callherald plays the notice in plain RTP only"
    assert "recording_started" not in {record["event"] for record in records}
    for phone_dir, other_hz in ((tmp_path / "agent", OUTSIDE_HZ), (tmp_path / "outside", AGENT_HZ)):
        rate, heard = _heard(phone_dir)
        assert len(heard) >= 2 * rate, (phone_dir.name, len(heard))
        talking = heard[len(heard) // 2 :]  # the call's second half: well after the answer
        assert np.sqrt(np.mean(talking.astype(np.float64) ** 2)) > 1000, phone_dir.name
        assert _dominant_hz(talking, rate) == pytest.approx(other_hz, abs=5), phone_dir.name
