"""The PCI pause code counts only when keyed as a sequence of its own, on the digits' own times:
card details keyed during the payment, and keys long apart, do not toggle the pause."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from proxy.b2bua.announcer import AnnouncerStage, CallAnnouncer
from proxy.b2bua.consent import DigitMechanism, Purpose
from proxy.b2bua.effects import MediaFormat, MediaLeg, PauseRecording, ResumeRecording, StartRecording
from proxy.b2bua.pci_code import PCI_CODE_GAP_S, PCI_CODE_INTER_DIGIT_S, PciCode
from proxy.b2bua.policy import CallPolicy

PCMU = MediaFormat(codec="pcmu", payload_type=0, event_payload_type=101)
POLICY = CallPolicy(
    name="payments",
    record=True,
    notice_prompt_id="notice",
    language="en",
    purposes=(Purpose(purpose_id="evidence", lawful_basis="contract", needs_consent=False),),
    withdrawal_digit="*",
    pci_pause_code="#9",
)
KEY_S = 0.16  # one key every 160 ms: a caller keying a number


def keyed(start: float, keys: str, *, every: float = KEY_S) -> list[tuple[float, str]]:
    return [(start + index * every, key) for index, key in enumerate(keys)]


def completions(code: str, keys: Sequence[tuple[float, str]]) -> list[float]:
    """When ``keys`` (time, key) complete ``code``."""
    watch = PciCode(code)
    return [at for at, key in keys if watch.keyed(key, at)]


@pytest.mark.parametrize(
    ("code", "keys", "expected"),
    [
        pytest.param("#9", [(10.0, "#"), (10.3, "9")], [10.3], id="the-code-alone"),
        pytest.param("#9", [(0.0, "#"), (0.4, "9")], [0.4], id="as-the-first-keys-heard"),
        pytest.param(
            "#9", [(10.0, "#"), (10.0 + PCI_CODE_INTER_DIGIT_S, "9")], [13.0], id="slow-but-within-the-time"
        ),
        pytest.param(
            "#9", [(10.0, "#"), (10.01 + PCI_CODE_INTER_DIGIT_S, "9")], [], id="too-slow-between-its-keys"
        ),
        pytest.param("#9", [(10.0, "#"), (200.0, "9")], [], id="a-hash-minutes-ago-and-a-nine-now"),
        pytest.param("#9", keyed(10.0, "41111#987"), [], id="inside-a-card-number-and-cvv"),
        pytest.param("#9", [(10.0, "5"), (10.0 + PCI_CODE_GAP_S - 0.01, "#"), (11.8, "9")], [], id="no-gap"),
        pytest.param(
            "#9", [(10.0, "5"), (10.0 + PCI_CODE_GAP_S, "#"), (11.8, "9")], [11.8], id="after-a-gap"
        ),
        pytest.param("#9", [(10.0, "#"), (10.2, "#"), (10.4, "9")], [], id="a-wrong-key-breaks-it"),
        pytest.param("#9", [(10.0, "#"), (12.0, "#"), (12.2, "9")], [12.2], id="begun-again-after-a-gap"),
        pytest.param("#9", keyed(10.0, "#9#9"), [10.16], id="keyed-twice-at-once-counts-once"),
        pytest.param("12", keyed(10.0, "12") + keyed(13.0, "4111121212"), [10.16], id="digits-only"),
    ],
)
def test_the_code_counts_only_as_a_sequence_of_its_own(
    code: str, keys: list[tuple[float, str]], expected: list[float]
) -> None:
    assert completions(code, keys) == expected


def bridged(policy: CallPolicy = POLICY) -> CallAnnouncer:
    """An announcer whose call is recorded and bridged at 10 s (the notice played from 0 s)."""
    announcer = CallAnnouncer(
        call_ref="c1", policy=policy, outside_leg=MediaLeg.A, agent_hears_notice=False, hold_limit_s=30.0
    )
    announcer.start(PCMU, 0.0)
    announcer.prompt_finished(MediaLeg.A, 4.0)
    assert announcer.stage is AnnouncerStage.DECIDED
    assert any(isinstance(effect, StartRecording) for effect in announcer.bridge(10.0))
    return announcer


def pauses(announcer: CallAnnouncer, keys: Sequence[tuple[float, str]]) -> list[tuple[float, str]]:
    """What the keys did to the recording: (time, ``paused`` or ``resumed``)."""
    done: list[tuple[float, str]] = []
    for at, key in keys:
        for effect in announcer.digit(key, DigitMechanism.RFC4733, at):
            if isinstance(effect, PauseRecording | ResumeRecording):
                assert effect.reason == "pci"
                done.append((at, "paused" if isinstance(effect, PauseRecording) else "resumed"))
    return done


def test_a_card_number_ended_by_hash_and_a_cvv_keyed_during_the_payment_do_not_resume_it() -> None:
    # An IVR asks for the card number "followed by the hash key", then the CVV 987: "#9" is in the
    # keys, 160 ms apart. Only the code keyed on its own, before and after, pauses and resumes.
    announcer = bridged()
    keys = [(14.0, "#"), (14.3, "9"), *keyed(15.0, "4111111111111111#987"), (22.0, "#"), (22.3, "9")]
    assert pauses(announcer, keys) == [(14.3, "paused"), (22.3, "resumed")]
    assert announcer.paused_reasons == ()


def test_a_hash_long_before_does_not_make_a_later_nine_the_code() -> None:
    announcer = bridged()
    assert pauses(announcer, [(20.0, "#"), (140.0, "9")]) == []
    assert announcer.paused_reasons == ()
