"""The notice-and-consent state table, on virtual time."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from proxy.b2bua.consent import (
    KEY_REPORT_GRACE_S,
    AnnouncementEnded,
    AnnouncementStarted,
    ConsentDecided,
    ConsentFinished,
    ConsentQuestion,
    ConsentSession,
    ConsentState,
    ConsentWithdrawn,
    Decision,
    DigitMechanism,
    DigitReceived,
    NoticeFailed,
    PlayPrompt,
    Purpose,
    StopPrompt,
)

EVIDENCE = Purpose(purpose_id="evidence", lawful_basis="contract", needs_consent=False)
TRAINING = Purpose(purpose_id="training", lawful_basis="consent", needs_consent=True)
QUALITY = Purpose(purpose_id="quality", lawful_basis="consent", needs_consent=True)
TRAINING_QUESTION = ConsentQuestion(
    question_id="training-consent",
    version="1",
    purpose_id="training",
    prompt_id="ask-training",
    yes_digit="1",
    timeout_s=6.0,
)
QUALITY_QUESTION = ConsentQuestion(
    question_id="quality-consent",
    version="2",
    purpose_id="quality",
    prompt_id="ask-quality",
    yes_digit="#",
    timeout_s=4.0,
)
RFC4733 = DigitMechanism.RFC4733


def session(
    *questions: ConsentQuestion, purposes: tuple[Purpose, ...] = (EVIDENCE, TRAINING)
) -> ConsentSession:
    return ConsentSession(notice_prompt_id="notice", language="nl", purposes=purposes, questions=questions)


def test_default_flow_yes_records_for_evidence_and_training() -> None:
    s = session(TRAINING_QUESTION)
    assert s.start(0.0) == [
        PlayPrompt(prompt_id="notice", language="nl"),
        AnnouncementStarted(prompt_id="notice", language="nl", at=0.0),
    ]
    assert s.prompt_finished(8.0) == [
        AnnouncementEnded(prompt_id="notice", at=8.0, complete=True),
        PlayPrompt(prompt_id="ask-training", language="nl"),
        AnnouncementStarted(prompt_id="ask-training", language="nl", at=8.0),
    ]
    assert s.prompt_finished(11.0) == [AnnouncementEnded(prompt_id="ask-training", at=11.0, complete=True)]
    assert s.next_deadline() == 17.0 + KEY_REPORT_GRACE_S
    assert s.digit("1", RFC4733, 12.5) == [
        DigitReceived(digit="1", mechanism=RFC4733, at=12.5, counted=True),
        ConsentDecided(
            question_id="training-consent",
            question_version="1",
            purpose_id="training",
            decision=Decision.GRANTED,
            mechanism=RFC4733,
            at=12.5,
        ),
        ConsentFinished(purposes=("evidence", "training"), at=12.5),
    ]
    assert s.state is ConsentState.DONE
    assert s.next_deadline() is None


@pytest.mark.parametrize(
    ("answer", "decision", "purposes"),
    [
        ("1", Decision.GRANTED, ("evidence", "training")),
        ("2", Decision.REFUSED, ("evidence",)),
        ("*", Decision.REFUSED, ("evidence",)),
        (None, Decision.NO_ANSWER, ("evidence",)),
    ],
)
def test_answers_decide_the_consent_purpose(
    answer: str | None, decision: Decision, purposes: tuple[str, ...]
) -> None:
    s = session(TRAINING_QUESTION)
    s.start(0.0)
    s.prompt_finished(8.0)
    s.prompt_finished(11.0)
    closed = 17.0 + KEY_REPORT_GRACE_S  # the window, and the grace for a key reported late
    if answer is None:
        assert s.handle_timers(closed - 0.01) == []
        out = s.handle_timers(closed)
    else:
        out = s.digit(answer, DigitMechanism.INBAND, 13.0)
    decided = [event for event in out if isinstance(event, ConsentDecided)]
    assert [event.decision for event in decided] == [decision]
    assert out[-1] == ConsentFinished(purposes=purposes, at=closed if answer is None else 13.0)
    assert s.recorded_purposes == purposes


def test_digits_during_the_notice_are_logged_but_do_not_count() -> None:
    s = session(TRAINING_QUESTION)
    s.start(0.0)
    assert s.digit("1", RFC4733, 2.0) == [DigitReceived(digit="1", mechanism=RFC4733, at=2.0, counted=False)]
    assert s.state is ConsentState.NOTICE
    assert s.decisions == []


def test_a_key_that_went_down_during_the_notice_does_not_answer_the_question_it_is_held_into() -> None:
    s = session(TRAINING_QUESTION)
    s.start(0.0)
    s.prompt_finished(8.0)  # the question starts
    # Reported 0.1 s into the question (in-band), the key went down 0.2 s before it started.
    assert s.digit("1", DigitMechanism.INBAND, 8.1, pressed_at=7.8) == [
        DigitReceived(digit="1", mechanism=DigitMechanism.INBAND, at=7.8, counted=False)
    ]
    assert s.state is ConsentState.ASKING  # the question plays on, undecided
    assert s.decisions == []


@pytest.mark.parametrize(
    ("pressed_at", "decision"),
    [(16.95, Decision.GRANTED), (17.0, Decision.GRANTED), (17.05, Decision.NO_ANSWER)],
    ids=["in-the-window", "as-it-closes", "after-it"],
)
def test_a_key_is_judged_by_when_it_went_down_not_when_it_was_reported(
    pressed_at: float, decision: Decision
) -> None:
    s = session(TRAINING_QUESTION)
    s.start(0.0)
    s.prompt_finished(8.0)
    s.prompt_finished(11.0)  # the window: 11.0 to 17.0
    assert s.handle_timers(17.0) == []  # the window closed; a key that went down in it may come
    out = s.digit("1", DigitMechanism.INBAND, 17.0 + KEY_REPORT_GRACE_S - 0.01, pressed_at=pressed_at)
    counted = decision is Decision.GRANTED
    assert out[0] == DigitReceived(digit="1", mechanism=DigitMechanism.INBAND, at=pressed_at, counted=counted)
    if not counted:
        assert s.state is ConsentState.WAITING
        out = s.handle_timers(17.0 + KEY_REPORT_GRACE_S)
    assert [event.decision for event in out if isinstance(event, ConsentDecided)] == [decision]
    assert s.state is ConsentState.DONE


def test_an_answer_during_the_question_stops_its_prompt() -> None:
    s = session(TRAINING_QUESTION)
    s.start(0.0)
    s.prompt_finished(8.0)
    out = s.digit("1", DigitMechanism.SIP_INFO, 9.0)
    assert out[:3] == [
        DigitReceived(digit="1", mechanism=DigitMechanism.SIP_INFO, at=9.0, counted=True),
        StopPrompt(),
        AnnouncementEnded(prompt_id="ask-training", at=9.0, complete=False),
    ]
    assert s.recorded_purposes == ("evidence", "training")
    assert s.prompt_finished(9.5) == []  # the stopped prompt's late completion changes nothing


def test_two_questions_are_asked_in_order_each_with_its_own_digit_and_window() -> None:
    s = session(TRAINING_QUESTION, QUALITY_QUESTION, purposes=(EVIDENCE, TRAINING, QUALITY))
    s.start(0.0)
    s.prompt_finished(8.0)
    s.prompt_finished(11.0)
    out = s.digit("2", RFC4733, 12.0)
    assert out[-2:] == [
        PlayPrompt(prompt_id="ask-quality", language="nl"),
        AnnouncementStarted(prompt_id="ask-quality", language="nl", at=12.0),
    ]
    s.prompt_finished(14.0)
    assert s.next_deadline() == 18.0 + KEY_REPORT_GRACE_S
    out = s.digit("#", RFC4733, 15.0)
    assert out[-1] == ConsentFinished(purposes=("evidence", "quality"), at=15.0)
    assert [(d.question_id, d.decision) for d in s.decisions] == [
        ("training-consent", Decision.REFUSED),
        ("quality-consent", Decision.GRANTED),
    ]


def test_the_withdrawal_digit_during_a_later_question_withdraws_the_consent_given_before() -> None:
    # "Yes" to training, then the withdrawal key while the quality question plays: as easy to
    # withdraw as to give (GDPR Art. 7(3)). The key refuses the question asked and withdraws the
    # training consent too; the purposes recorded are those left.
    s = ConsentSession(
        notice_prompt_id="notice",
        language="nl",
        purposes=(EVIDENCE, TRAINING, QUALITY),
        questions=(TRAINING_QUESTION, QUALITY_QUESTION),
        withdrawal_digit="*",
    )
    s.start(0.0)
    s.prompt_finished(8.0)
    s.digit("1", RFC4733, 9.0)  # training: yes; the quality question starts
    out = s.digit("*", RFC4733, 10.0)
    assert out == [
        DigitReceived(digit="*", mechanism=RFC4733, at=10.0, counted=True),
        ConsentWithdrawn(purposes=("training",), mechanism=RFC4733, at=10.0),
        StopPrompt(),
        AnnouncementEnded(prompt_id="ask-quality", at=10.0, complete=False),
        ConsentDecided(
            question_id="quality-consent",
            question_version="2",
            purpose_id="quality",
            decision=Decision.REFUSED,
            mechanism=RFC4733,
            at=10.0,
        ),
        ConsentFinished(purposes=("evidence",), at=10.0),
    ]


def test_the_withdrawal_digit_before_any_yes_only_answers_the_question() -> None:
    s = ConsentSession(
        notice_prompt_id="notice",
        language="nl",
        purposes=(EVIDENCE, TRAINING),
        questions=(TRAINING_QUESTION,),
        withdrawal_digit="*",
    )
    s.start(0.0)
    s.prompt_finished(8.0)
    out = s.digit("*", RFC4733, 9.0)
    assert [type(o) for o in out if isinstance(o, (ConsentWithdrawn, ConsentDecided))] == [ConsentDecided]
    assert out[-1] == ConsentFinished(purposes=("evidence",), at=9.0)


def test_no_questions_means_finished_after_the_notice() -> None:
    s = session(purposes=(EVIDENCE,))
    s.start(0.0)
    assert s.prompt_finished(5.0)[-1] == ConsentFinished(purposes=("evidence",), at=5.0)


@pytest.mark.parametrize("when", ["notice", "question"])
def test_a_prompt_that_cannot_play_records_nothing(when: str) -> None:
    s = session(TRAINING_QUESTION)
    s.start(0.0)
    if when == "question":
        s.prompt_finished(8.0)
    prompt = "notice" if when == "notice" else "ask-training"
    assert s.prompt_failed("file missing", 8.5) == [
        NoticeFailed(prompt_id=prompt, language="nl", reason="file missing", at=8.5)
    ]
    assert s.state is ConsentState.FAILED
    assert s.recorded_purposes == ()
    assert s.digit("1", RFC4733, 9.0)[-1] == DigitReceived(
        digit="1", mechanism=RFC4733, at=9.0, counted=False
    )


@pytest.mark.parametrize(
    ("when", "cut_short"),
    [("notice", "notice"), ("question", "ask-training"), ("answer window", None), ("decided", None)],
)
def test_a_party_leaving_cuts_short_the_prompt_it_was_hearing(when: str, cut_short: str | None) -> None:
    s = session(TRAINING_QUESTION)
    s.start(0.0)
    if when != "notice":
        s.prompt_finished(8.0)  # the question starts
    if when in ("answer window", "decided"):
        s.prompt_finished(10.0)  # the question was heard whole; the window is open
    if when == "decided":
        s.digit("1", RFC4733, 11.0)
    expected = [] if cut_short is None else [AnnouncementEnded(prompt_id=cut_short, at=12.5, complete=False)]
    assert s.interrupt(12.5) == expected
    assert s.state is (ConsentState.DONE if when == "decided" else ConsentState.INTERRUPTED)
    assert s.next_deadline() is None
    # Nothing more happens to a party that is gone.
    assert s.interrupt(13.0) == []
    assert s.prompt_finished(13.0) == []
    assert s.prompt_failed("late", 13.0) == []
    assert s.handle_timers(30.0) == []
    assert s.digit("1", RFC4733, 13.5) == [
        DigitReceived(digit="1", mechanism=RFC4733, at=13.5, counted=False)
    ]


def test_a_consent_purpose_without_a_question_is_refused_at_construction() -> None:
    with pytest.raises(ValueError, match="training"):
        session()


@given(st.lists(st.sampled_from(["1", "2", "#", None]), min_size=2, max_size=2))
def test_consent_purposes_are_recorded_only_after_an_active_yes(answers: list[str | None]) -> None:
    s = session(TRAINING_QUESTION, QUALITY_QUESTION, purposes=(EVIDENCE, TRAINING, QUALITY))
    now = 0.0
    s.start(now)
    s.prompt_finished(now := now + 8)
    for question, answer in zip((TRAINING_QUESTION, QUALITY_QUESTION), answers, strict=True):
        assert s.current_question == question
        s.prompt_finished(now := now + 2)
        if answer is None:
            s.handle_timers(now := now + question.timeout_s + KEY_REPORT_GRACE_S)
        else:
            s.digit(answer, RFC4733, now := now + 1)
    expected = (
        ("evidence",)
        + (("training",) if answers[0] == "1" else ())
        + (("quality",) if answers[1] == "#" else ())
    )
    assert s.state is ConsentState.DONE
    assert s.recorded_purposes == expected
