"""Shared pieces of the announcement end-to-end tests: short test prompts, the policy YAML that
plays them, the evidence lines callherald logs, and where prompt frames sit in a received stream.
"""

from __future__ import annotations

import json
import wave
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from announcements import PreparedPrompt, beep_frames, load_prompt
from proxy.rtp.errors import RtpError
from proxy.rtp.packet import RtpPacket
from tests.e2e.harness import CallheraldProcess, running_callherald
from tests.e2e.media_peer import Datagram, Impairment, MediaPeer
from tests.e2e.test_sipp_calls import Direction, SippRun, assert_ok, place_call

__all__ = [
    "NOTICE_S",
    "QUESTION_S",
    "ToneCall",
    "agent_beep",
    "call_with_tones",
    "evidence_records",
    "find_run",
    "payloads_of",
    "policy_yaml",
    "prepared",
    "write_prompt_wavs",
]

NOTICE_S = 0.8
QUESTION_S = 0.4
_RATE_HZ = 16_000


def _write_wav(path: Path, samples: np.ndarray) -> None:
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(_RATE_HZ)
        out.writeframes(samples.astype("<i2").tobytes())


def _chirp(seconds: float, low_hz: float, high_hz: float) -> np.ndarray:
    """A sweep, so no two 20 ms frames of the prompt are alike."""
    t = np.arange(int(seconds * _RATE_HZ)) / _RATE_HZ
    phase = 2 * np.pi * (low_hz * t + (high_hz - low_hz) * t * t / (2 * seconds))
    return 12_000 * np.sin(phase)


def write_prompt_wavs(directory: Path) -> tuple[Path, Path]:
    """A notice (a rising sweep) and a question (a falling one) as 16 kHz WAV files."""
    notice, question = directory / "notice.wav", directory / "question.wav"
    _write_wav(notice, _chirp(NOTICE_S, 300.0, 1200.0))
    _write_wav(question, _chirp(QUESTION_S, 1500.0, 600.0))
    return notice, question


def policy_yaml(
    *,
    mode: str = "answer",
    on_failure: str = "connect_unrecorded",
    timeout_s: float = 1,
    notice_file: str = "notice.wav",
    direction: str = "any",
) -> str:
    """Recording sections for a test: evidence (contract) and training (consent, yes = 1)."""
    return f"""\
announcements:
  default_language: en
  prompt_sets:
    - id: test-notice
      prompts:
        en: {{file: {notice_file}, text: "This call is recorded."}}
    - id: test-question
      prompts:
        en: {{file: question.wav, text: "Press 1 for training."}}
purposes:
  - {{id: evidence, lawful_basis: contract, retention_days: 30}}
  - {{id: training, lawful_basis: consent, retention_days: 30}}
consent_questions:
  - {{id: training-consent, version: 1, purpose: training, prompt_set: test-question,
      yes_digit: "1", timeout_s: {timeout_s}}}
policies:
  - name: test
    match: {{direction: {direction}}}
    notice: test-notice
    language: en
    purposes: [evidence, training]
    questions: [training-consent]
    mode: {mode}
    on_failure: {on_failure}
    withdrawal_digit: "*"
"""


def prepared(source: Path, prompt_id: str, cache_dir: Path) -> PreparedPrompt:
    """The frames callherald plays for ``source`` (imported the same way)."""
    return load_prompt(source, cache_dir=cache_dir, prompt_id=prompt_id, language="en")


def agent_beep() -> tuple[bytes, ...]:
    return beep_frames("pcmu")


def payloads_of(received: Sequence[Datagram]) -> list[bytes]:
    """The RTP payloads of the datagrams, in arrival order (non-RTP left out)."""
    payloads = []
    for datagram in received:
        try:
            payloads.append(RtpPacket.parse(datagram.data).payload)
        except RtpError:  # a stray non-RTP datagram is not audio
            continue
    return payloads


def find_run(payloads: Sequence[bytes], frames: Sequence[bytes]) -> int:
    """Where ``frames`` appear back to back in ``payloads``; -1 when they do not."""
    width = len(frames)
    target = list(frames)
    for start in range(len(payloads) - width + 1):
        if payloads[start] == target[0] and list(payloads[start : start + width]) == target:
            return start
    return -1


def evidence_records(log_text: str) -> list[dict[str, object]]:
    """The JSON records callherald wrote to its evidence log, in order."""
    records = []
    for line in log_text.splitlines():
        marker = "callherald.evidence: "
        if marker in line:
            records.append(json.loads(line.split(marker, 1)[1]))
    return records


@dataclass(frozen=True, slots=True)
class ToneCall:
    """A finished call through ``callherald serve`` between two RTP peers playing tones."""

    proxy: CallheraldProcess
    caller: MediaPeer
    callee: MediaPeer
    uac: SippRun
    uas: SippRun
    log: str


def call_with_tones(
    tmp_path: Path,
    direction: Direction,
    *,
    caller_payloads: list[bytes],
    callee_payloads: list[bytes],
    policies: str,
    pause_ms: int,
    caller: str = "uac_call.xml",
    callee: str = "uas_call.xml",
    payload_type: int = 0,
    media_section_extra: str = "",
    scenario_keys: dict[str, object] | None = None,
    rtcp_every: int | None = None,
    caller_silent_for_s: float = 0.0,
    callee_payload_type: int | None = None,
    callee_scenario_keys: dict[str, object] | None = None,
    caller_impairment: Impairment | None = None,
    callee_impairment: Impairment | None = None,
) -> ToneCall:
    """One SIPp call (``caller`` to ``callee`` scenario, both given ``scenario_keys`` too, the
    callee ``callee_scenario_keys`` over them) through callherald with ``policies`` (and
    ``media_section_extra`` lines in its ``media`` section); each side's RTP peer plays its
    payloads (on ``payload_type``; the callee's on ``callee_payload_type`` when given) and records
    what reaches it (and sends RTCP every ``rtcp_every`` packets, if given; the caller's starts
    ``caller_silent_for_s`` after the answer; each side's packets impaired on their way as its
    ``Impairment`` says). Fails the test when SIPp does."""
    caller_sdp, callee_sdp = tmp_path / "caller.sdp", tmp_path / "callee.sdp"
    with (
        running_callherald(tmp_path, policies=policies, media_section_extra=media_section_extra) as proxy,
        MediaPeer(
            "caller",
            ssrc=0x11110001,
            payloads=caller_payloads,
            payload_type=payload_type,
            rtcp_every=rtcp_every,
            silent_for_s=caller_silent_for_s,
            impairment=caller_impairment or Impairment(),
        ) as caller_peer,
        MediaPeer(
            "callee",
            ssrc=0x22220002,
            payloads=callee_payloads,
            payload_type=payload_type if callee_payload_type is None else callee_payload_type,
            rtcp_every=rtcp_every,
            impairment=callee_impairment or Impairment(),
        ) as callee_peer,
    ):
        caller_peer.start(caller_sdp)
        callee_peer.start(callee_sdp)
        uac, uas = place_call(
            proxy,
            direction,
            tmp_path,
            caller=caller,
            callee=callee,
            pause_ms=pause_ms,
            caller_keys={"rtp_port": caller_peer.port, "portfile": caller_sdp, **(scenario_keys or {})},
            callee_keys={
                "rtp_port": callee_peer.port,
                "portfile": callee_sdp,
                **(scenario_keys or {}),
                **(callee_scenario_keys or {}),
            },
        )
        caller_peer.stop()
        callee_peer.stop()
        assert_ok(proxy, uac, uas)
        log = proxy.log_text()
    return ToneCall(proxy=proxy, caller=caller_peer, callee=callee_peer, uac=uac, uas=uas, log=log)
