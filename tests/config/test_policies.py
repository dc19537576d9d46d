"""Tests for the announcement and consent-policy sections and for `select_policy`."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from announcements import PromptSet, default_prompt_set
from config import (
    DEFAULT_CONSENT_QUESTIONS,
    DEFAULT_POLICIES,
    DEFAULT_PURPOSES,
    EMBEDDED_PROMPT_LANGUAGES,
    AnnouncementMode,
    Announcements,
    CallDirection,
    Config,
    ConfigError,
    ConsentQuestion,
    FailureBehaviour,
    LawfulBasis,
    Policy,
    PolicyMatch,
    PromptConfig,
    PromptSetConfig,
    Purpose,
    default_config,
    load_config,
    normalise_number,
    parse_config,
    prefix_matches,
    select_policy,
)
from config.policies import match_covers
from tests.config.test_config import MINIMAL

# MINIMAL is 16 lines, so POLICY starts on line 17. Each error case edits one spot.
POLICY = """\
announcements:
  prompt_sets:
    - id: welcome
      prompts:
        nl: {file: welcome.wav}
purposes:
  - {id: evidence, lawful_basis: contract, retention_days: 365}
  - {id: training, lawful_basis: consent, retention_days: 90}
consent_questions:
  - {id: training-consent, version: 1, purpose: training, prompt_set: default, yes_digit: "1"}
policies:
  - name: all
    notice: default
    purposes: [evidence, training]
    questions: [training-consent]
"""
BASE = MINIMAL + POLICY
EXTRA_PURPOSE = "  - {id: %s}\nconsent_questions:\n"
SECOND_QUESTION = (
    '  - {id: training-2, version: 1, purpose: training, prompt_set: default, yes_digit: "2"}\npolicies:\n'
)


def pedit(old: str, new: str, text: str = BASE) -> str:
    assert text.count(old) == 1, old
    return text.replace(old, new)


def before_all(policy: str, text: str = BASE) -> str:
    """``text`` with ``policy`` (a flow mapping) inserted as entry 0, before the catch-all (line 28 of BASE)."""
    return pedit("policies:\n", f"policies:\n  - {policy}\n", text)


# BASE with its one policy replaced by a catch-all that does not record; a key added to it is on line 30.
NOT_RECORDED = BASE.split("policies:\n")[0] + "policies:\n  - name: all\n    record: false\n"
NOT_RECORDED_MESSAGE = (
    "not allowed when record is false (calls this policy matches are neither announced nor recorded)"
)
EMERGENCY = '{name: emergency, match: {called: ["112", "911"]}, record: false}'


@pytest.fixture
def prompt_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Relative prompt files resolve against the working directory when no base_dir is given."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "welcome.wav").write_bytes(b"audio")
    (tmp_path / "a-directory").mkdir()
    return tmp_path


def parse(text: str) -> Config:
    return parse_config(text, source="callherald.yaml", environ={})


@pytest.mark.usefixtures("prompt_files")
def test_the_longest_retention_is_accepted_and_gives_a_date() -> None:
    config = parse(pedit("retention_days: 90", "retention_days: 36525"))
    (training,) = (purpose for purpose in config.purposes if purpose.id == "training")
    assert training.retention_days == 36525


@pytest.mark.usefixtures("prompt_files")
def test_base_is_valid() -> None:
    config = parse(BASE)
    assert config.announcements == Announcements(
        prompt_sets=(
            PromptSetConfig(id="welcome", prompts=(PromptConfig(language="nl", file=Path("welcome.wav")),)),
        ),
        default_language="nl",
    )
    assert config.consent_questions == (
        ConsentQuestion(
            id="training-consent",
            version="1",
            purpose="training",
            prompt_set="default",
            yes_digit="1",
            timeout_s=6.0,
        ),
    )
    assert config.policies == (
        Policy(
            name="all",
            match=PolicyMatch(direction=CallDirection.ANY, called=(), calling=()),
            record=True,
            notice="default",
            language="nl",
            purposes=("evidence", "training"),
            questions=("training-consent",),
            mode=AnnouncementMode.ANSWER,
            on_failure=FailureBehaviour.CONNECT_UNRECORDED,
            withdrawal_digit=None,
            pci_pause_code=None,
        ),
    )


POLICY_ERROR_CASES = [
    # -- unknown ids -------------------------------------------------------------------------------
    pytest.param(
        pedit("[evidence, training]", "[evidence, training, evidnce]"),
        "callherald.yaml:30: policies[0].purposes[2]: unknown purpose 'evidnce'; did you mean 'evidence'?",
        id="policy-unknown-purpose",
    ),
    pytest.param(
        pedit("[training-consent]", "[training-consent, extra]"),
        "callherald.yaml:31: policies[0].questions[1]: unknown consent question 'extra'; defined: "
        "training-consent",
        id="policy-unknown-question",
    ),
    pytest.param(
        pedit("notice: default", "notice: welcom"),
        "callherald.yaml:29: policies[0].notice: unknown prompt set 'welcom'; did you mean 'welcome'?",
        id="policy-unknown-notice",
    ),
    pytest.param(
        pedit("prompt_set: default", "prompt_set: greeting"),
        "callherald.yaml:26: consent_questions[0].prompt_set: unknown prompt set 'greeting'; defined: "
        "default, welcome",
        id="question-unknown-prompt-set",
    ),
    pytest.param(
        pedit("purpose: training,", "purpose: trainin,"),
        "callherald.yaml:26: consent_questions[0].purpose: unknown purpose 'trainin'; did you mean 'training'?",
        id="question-unknown-purpose",
    ),
    # -- consent ----------------------------------------------------------------------------------
    pytest.param(
        pedit("    questions: [training-consent]\n", ""),
        "callherald.yaml:30: policies[0].purposes[1]: purpose 'training' has lawful basis consent but no "
        "consent question in this policy",
        id="consent-purpose-without-question",
    ),
    pytest.param(
        pedit("purpose: training,", "purpose: evidence,"),
        "callherald.yaml:26: consent_questions[0].purpose: purpose 'evidence' has lawful basis contract, "
        "not consent; a consent question asks only about a consent-based purpose",
        id="question-purpose-not-consent",
    ),
    pytest.param(
        pedit("[evidence, training]", "[evidence]"),
        "callherald.yaml:31: policies[0].questions[0]: consent question 'training-consent' asks about "
        "purpose 'training', which this policy does not list",
        id="question-purpose-not-in-policy",
    ),
    pytest.param(
        pedit("[training-consent]", "[training-consent, training-2]", pedit("policies:\n", SECOND_QUESTION)),
        "callherald.yaml:32: policies[0].questions[1]: consent question 'training-2' asks about purpose "
        "'training' like consent question 'training-consent'; ask once per purpose",
        id="two-questions-one-purpose",
    ),
    pytest.param(
        pedit("[training-consent]", "[training-consent, training-consent]"),
        "callherald.yaml:31: policies[0].questions[1]: consent question 'training-consent' is listed twice",
        id="question-listed-twice",
    ),
    pytest.param(
        pedit("[evidence, training]", "[evidence, training, evidence]"),
        "callherald.yaml:30: policies[0].purposes[2]: purpose 'evidence' is listed twice",
        id="purpose-listed-twice",
    ),
    pytest.param(
        pedit(
            "    questions: [training-consent]\n",
            '    questions: [training-consent]\n    withdrawal_digit: "1"\n',
        ),
        "callherald.yaml:32: policies[0].withdrawal_digit: withdrawal digit '1' is also the yes digit of "
        "consent question 'training-consent'",
        id="withdrawal-digit-is-yes-digit",
    ),
    pytest.param(
        pedit(
            "    questions: [training-consent]\n",
            '    questions: [training-consent]\n    withdrawal_digit: "*"\n    pci_pause_code: "*9"\n',
        ),
        "callherald.yaml:33: policies[0].pci_pause_code: the code '*9' contains the withdrawal digit '*'; "
        "choose keys without it",
        id="pci-code-holds-the-withdrawal-digit",
    ),
    pytest.param(
        pedit("lawful_basis: consent,", "lawful_basis: consnet,"),
        "callherald.yaml:24: purposes[1].lawful_basis: expected one of contract, legitimate_interest, "
        "legal_obligation, consent, got 'consnet'",
        id="bad-lawful-basis-reported-once",
    ),
    # -- purposes ---------------------------------------------------------------------------------
    pytest.param(
        pedit(
            "consent_questions:\n",
            EXTRA_PURPOSE % "quality, lawful_basis: legitimate_interest, retention_days: 30",
        ),
        "callherald.yaml:25: purposes[2]: missing required key 'reference' (lawful basis legitimate_interest "
        "needs a reference to its interest assessment)",
        id="legitimate-interest-without-reference",
    ),
    pytest.param(
        pedit(
            "consent_questions:\n",
            EXTRA_PURPOSE % "mifid, lawful_basis: legal_obligation, retention_days: 1826",
        ),
        "callherald.yaml:25: purposes[2]: missing required key 'reference' (lawful basis legal_obligation "
        "needs a reference to its legal ground)",
        id="legal-obligation-without-reference",
    ),
    pytest.param(
        pedit("retention_days: 90", "retention_days: 0"),
        "callherald.yaml:24: purposes[1].retention_days: expected an integer 1-36525, got 0",
        id="retention-zero",
    ),
    pytest.param(
        # No date lies 3000000 days after a call: refused here, never as each call is recorded.
        pedit("retention_days: 90", "retention_days: 3000000"),
        "callherald.yaml:24: purposes[1].retention_days: expected an integer 1-36525, got 3000000",
        id="retention-beyond-any-date",
    ),
    pytest.param(
        pedit("consent_questions:\n", EXTRA_PURPOSE % "evidence, lawful_basis: consent, retention_days: 1"),
        "callherald.yaml:25: purposes[2]: duplicate id 'evidence' (also in entry 0)",
        id="duplicate-purpose",
    ),
    pytest.param(
        pedit("retention_days: 365}", "retention_days: 365, basis: contract}"),
        "callherald.yaml:23: purposes[0].basis: unknown key; allowed keys: id, lawful_basis, reference, "
        "retention_days",
        id="purpose-unknown-key",
    ),
    # -- consent questions ------------------------------------------------------------------------
    pytest.param(
        pedit("policies:\n", SECOND_QUESTION.replace("training-2", "training-consent")),
        "callherald.yaml:27: consent_questions[1]: duplicate id 'training-consent' (also in entry 0)",
        id="duplicate-question",
    ),
    pytest.param(
        pedit('yes_digit: "1"', "yes_digit: 1"),
        'callherald.yaml:26: consent_questions[0].yes_digit: expected one DTMF key, quoted: "0"-"9", '
        '"*" or "#", got 1 unquoted, which YAML reads as the integer 1; quote it: "1"',
        id="unquoted-yes-digit",
    ),
    pytest.param(
        pedit('yes_digit: "1"', 'yes_digit: "A"'),
        'callherald.yaml:26: consent_questions[0].yes_digit: expected one DTMF key, quoted: "0"-"9", '
        '"*" or "#", got \'A\'',
        id="yes-digit-not-a-key",
    ),
    pytest.param(
        pedit('yes_digit: "1"}', 'yes_digit: "1", timeout_s: 31}'),
        "callherald.yaml:26: consent_questions[0].timeout_s: expected a number 1-30, got 31",
        id="timeout-too-long",
    ),
    pytest.param(
        pedit("version: 1,", "version: 1.5,"),
        "callherald.yaml:26: consent_questions[0].version: expected an integer or a quoted string, got 1.5 "
        'unquoted, which YAML reads as the number 1.5; quote it: "1.5"',
        id="version-float",
    ),
    pytest.param(
        pedit("version: 1,", "version: 010,"),
        "callherald.yaml:26: consent_questions[0].version: expected an integer or a quoted string, got 010 "
        'unquoted, which YAML reads as the octal number 8; quote it: "010"',
        id="version-octal",
    ),
    # -- announcements ----------------------------------------------------------------------------
    pytest.param(
        pedit("- id: welcome", "- id: default"),
        "callherald.yaml:19: announcements.prompt_sets[0].id: the id 'default' is reserved for the embedded "
        "announcement",
        id="reserved-prompt-set-id",
    ),
    pytest.param(
        pedit("purposes:\n", "    - {id: welcome, prompts: {en: {file: welcome.wav}}}\npurposes:\n"),
        "callherald.yaml:22: announcements.prompt_sets[1]: duplicate id 'welcome' (also in entry 0)",
        id="duplicate-prompt-set",
    ),
    pytest.param(
        pedit("{file: welcome.wav}", "{file: missing.wav}"),
        "callherald.yaml:21: announcements.prompt_sets[0].prompts.nl.file: prompt file 'missing.wav' does "
        "not exist",
        id="missing-prompt-file",
    ),
    pytest.param(
        pedit("{file: welcome.wav}", "{file: a-directory}"),
        "callherald.yaml:21: announcements.prompt_sets[0].prompts.nl.file: prompt file 'a-directory' is not a file",
        id="prompt-file-is-a-directory",
    ),
    pytest.param(
        pedit("        nl: {file: welcome.wav}", "        NL: {file: welcome.wav}"),
        "callherald.yaml:21: announcements.prompt_sets[0].prompts.NL: expected a language tag such as nl or "
        "en-GB, got 'NL'",
        id="bad-language-tag",
    ),
    pytest.param(
        pedit(
            "        nl: {file: welcome.wav}",
            "        nl: {file: welcome.wav}\n        no: {file: welcome.wav}",
        ),
        "callherald.yaml:22: announcements.prompt_sets[0].prompts.no: expected a language tag such as nl or "
        'en-GB, got no unquoted, which YAML reads as the boolean false; quote it: "no"',
        id="norwegian-needs-quotes",
    ),
    pytest.param(
        pedit(
            "        nl: {file: welcome.wav}",
            "        nl: {file: welcome.wav}\n        nl: {file: welcome.wav}",
        ),
        "callherald.yaml:22: announcements.prompt_sets[0].prompts.nl: duplicate key (first given on line 21)",
        id="language-twice",
    ),
    pytest.param(
        pedit("        nl: {file: welcome.wav}", "        nl: {text: hallo}"),
        "callherald.yaml:21: announcements.prompt_sets[0].prompts.nl: missing required key 'file'",
        id="prompt-without-file",
    ),
    pytest.param(
        pedit("      prompts:\n        nl: {file: welcome.wav}", "      prompts: {}"),
        "callherald.yaml:20: announcements.prompt_sets[0].prompts: expected a mapping of at least 1 language, "
        "got an empty mapping",
        id="prompt-set-without-languages",
    ),
    pytest.param(
        pedit("announcements:\n", "announcements:\n  default_language: NL\n"),
        "callherald.yaml:18: announcements.default_language: expected a language tag such as nl or en-GB, got 'NL'",
        id="bad-default-language",
    ),
    # -- languages --------------------------------------------------------------------------------
    pytest.param(
        pedit("notice: default", "notice: welcome\n    language: en"),
        "callherald.yaml:30: policies[0].language: prompt set 'welcome' has no 'en' prompt (it has nl)",
        id="notice-lacks-language",
    ),
    pytest.param(
        pedit("announcements:\n", "announcements:\n  default_language: en\n").replace(
            "notice: default", "notice: welcome"
        ),
        "callherald.yaml:30: policies[0].notice: prompt set 'welcome' has no 'en' prompt (it has nl)",
        id="notice-lacks-default-language",
    ),
    pytest.param(
        pedit("notice: default", "notice: default\n    language: en").replace(
            "prompt_set: default", "prompt_set: welcome"
        ),
        "callherald.yaml:32: policies[0].questions[0]: consent question 'training-consent': prompt set "
        "'welcome' has no 'en' prompt (it has nl)",
        id="question-lacks-language",
    ),
    pytest.param(
        pedit("notice: default", "notice: default\n    language: de"),
        "callherald.yaml:30: policies[0].language: prompt set 'default' has no 'de' prompt (it has nl, en)",
        id="embedded-notice-lacks-language",
    ),
    pytest.param(
        MINIMAL + "announcements:\n  default_language: de\n",
        "callherald.yaml:18: announcements.default_language: the embedded default policy speaks the default "
        "language, but prompt set 'default' has no 'de' prompt (it has nl, en)",
        id="embedded-policy-lacks-default-language",
    ),
    # -- policies ---------------------------------------------------------------------------------
    pytest.param(
        before_all('{name: all, match: {called: ["+31"]}, notice: default, purposes: [evidence]}'),
        "callherald.yaml:29: policies[1]: duplicate policy name 'all' (also in entry 0)",
        id="duplicate-policy-name",
    ),
    pytest.param(
        pedit("  - name: all\n", "  - name: all\n    match: {direction: inbound}\n"),
        "callherald.yaml:27: policies: no policy matches every outbound call; end the list with a catch-all "
        "policy (no called or calling prefixes, direction any)",
        id="no-outbound-catch-all",
    ),
    pytest.param(
        pedit("  - name: all\n", '  - name: all\n    match: {calling: ["+31"]}\n'),
        "callherald.yaml:27: policies: no policy matches every call; end the list with a catch-all policy "
        "(no called or calling prefixes, direction any)",
        id="no-catch-all",
    ),
    pytest.param(
        BASE + '  - {name: late, match: {called: ["+31"]}, notice: default, purposes: [evidence]}\n',
        "callherald.yaml:32: policies[1]: policy 'late' never applies: policy 'all' (entry 0) comes first and "
        "matches every call it matches",
        id="policy-after-catch-all",
    ),
    pytest.param(
        pedit(
            "policies:\n",
            "policies:\n"
            '  - {name: nl, match: {called: ["+31"]}, notice: default, purposes: [evidence]}\n'
            '  - {name: nl-20, match: {called: ["31-20"]}, notice: default, purposes: [evidence]}\n',
        ),
        "callherald.yaml:29: policies[1]: policy 'nl-20' never applies: policy 'nl' (entry 0) comes first and "
        "matches every call it matches",
        id="narrower-prefix-after-wider",
    ),
    pytest.param(
        before_all(
            "{name: out, match: {direction: outbound}, notice: default, purposes: [evidence], mode: early_media}"
        ),
        "callherald.yaml:28: policies[0].mode: early_media applies to inbound calls, but this policy matches "
        "outbound calls only",
        id="early-media-outbound",
    ),
    pytest.param(
        before_all("{name: x, match: {called: [+31]}, notice: default, purposes: [evidence]}"),
        "callherald.yaml:28: policies[0].match.called[0]: expected a number prefix (an optional '+' and 1-15 "
        "digits; spaces and dashes are ignored), got +31 unquoted, which YAML reads as the integer 31; quote "
        'it: "+31"',
        id="unquoted-prefix",
    ),
    pytest.param(
        before_all('{name: x, match: {calling: ["+31 6", "+31x"]}, notice: default, purposes: [evidence]}'),
        "callherald.yaml:28: policies[0].match.calling[1]: expected a number prefix (an optional '+' and 1-15 "
        "digits; spaces and dashes are ignored), got '+31x'",
        id="bad-prefix",
    ),
    pytest.param(
        before_all("{name: x, match: {called: []}, notice: default, purposes: [evidence]}"),
        "callherald.yaml:28: policies[0].match.called: expected a list of at least 1 number prefix, got an "
        "empty list",
        id="empty-prefix-list",
    ),
    pytest.param(
        pedit("  - name: all\n", "  - name: all\n    match: {direction: both}\n"),
        "callherald.yaml:29: policies[0].match.direction: expected one of inbound, outbound, any, got 'both'",
        id="bad-direction",
    ),
    pytest.param(
        pedit("  - name: all\n", "  - name: all\n    mode: early-media\n"),
        "callherald.yaml:29: policies[0].mode: expected one of answer, early_media, got 'early-media'",
        id="bad-mode",
    ),
    pytest.param(
        pedit("  - name: all\n", "  - name: all\n    on_failure: drop\n"),
        "callherald.yaml:29: policies[0].on_failure: expected one of connect_unrecorded, reject, got 'drop'",
        id="bad-on-failure",
    ),
    pytest.param(
        pedit("  - name: all\n", '  - name: all\n    pci_pause_code: "*9x"\n'),
        "callherald.yaml:29: policies[0].pci_pause_code: expected 1-8 DTMF keys of 0-9, * and #, quoted like "
        "\"*9\", got '*9x'",
        id="bad-pci-code",
    ),
    pytest.param(
        pedit("  - name: all\n", '  - name: all\n    pci_pause_code: "#9"\n    pci_pause_tones: quiet\n'),
        "callherald.yaml:30: policies[0].pci_pause_tones: expected true or false, got 'quiet'",
        id="bad-pci-pause-tones",
    ),
    # Tones for a code the policy does not have: whoever wrote them expects callers to be able to
    # pause the recording, and none can.
    pytest.param(
        pedit("  - name: all\n", "  - name: all\n    pci_pause_tones: false\n"),
        "callherald.yaml:29: policies[0].pci_pause_tones: the tones confirm the PCI pause code, and this "
        "policy has no pci_pause_code",
        id="pci-pause-tones-without-a-code",
    ),
    pytest.param(
        pedit("[evidence, training]", "[]").replace("    questions: [training-consent]\n", ""),
        "callherald.yaml:30: policies[0].purposes: expected a list of at least 1 purpose id, got an empty list",
        id="policy-without-purposes",
    ),
    # An unquoted '#' starts a YAML comment, so the key is left empty: never read as "no code".
    pytest.param(
        pedit("  - name: all\n", "  - name: all\n    pci_pause_code: #7\n"),
        "callherald.yaml:29: policies[0].pci_pause_code: expected 1-8 DTMF keys of 0-9, * and #, quoted like "
        '"*9", got an empty value: YAML reads #7 as a comment; quote it: "#7"',
        id="unquoted-pci-code-is-a-comment",
    ),
    pytest.param(
        pedit("  - name: all\n", "  - name: all\n    withdrawal_digit: #\n"),
        'callherald.yaml:29: policies[0].withdrawal_digit: expected one DTMF key, quoted: "0"-"9", "*" or '
        '"#", got an empty value: YAML reads # as a comment; quote it: "#"',
        id="unquoted-withdrawal-hash-is-a-comment",
    ),
    pytest.param(
        pedit("  - name: all\n", "  - name: all\n    pci_pause_code: # card payments\n"),
        "callherald.yaml:29: policies[0].pci_pause_code: expected 1-8 DTMF keys of 0-9, * and #, quoted like "
        '"*9", got an empty value: YAML reads # card payments as a comment',
        id="pci-code-empty-before-a-comment",
    ),
    pytest.param(
        pedit("  - name: all\n", "  - name: all\n    withdrawal_digit:\n"),
        'callherald.yaml:29: policies[0].withdrawal_digit: expected one DTMF key, quoted: "0"-"9", "*" or '
        '"#", got an empty value',
        id="withdrawal-digit-empty",
    ),
    pytest.param(
        pedit(
            '  - {id: training-consent, version: 1, purpose: training, prompt_set: default, yes_digit: "1"}\n',
            "  - id: training-consent\n    version: 1\n    purpose: training\n    prompt_set: default\n"
            "    yes_digit: #\n",
        ),
        'callherald.yaml:30: consent_questions[0].yes_digit: expected one DTMF key, quoted: "0"-"9", "*" or '
        '"#", got an empty value: YAML reads # as a comment; quote it: "#"',
        id="unquoted-yes-hash-is-a-comment",
    ),
    pytest.param(
        pedit("  - name: all\n", "  - name: all\n    match:\n      called:\n"),
        "callherald.yaml:30: policies[0].match.called: expected a number prefix (an optional '+' and 1-15 "
        "digits; spaces and dashes are ignored), got an empty value",
        id="empty-called-is-not-any-number",
    ),
    pytest.param(
        before_all('{name: x, match: {calling: "06", called: 112}, notice: default, purposes: [evidence]}'),
        "callherald.yaml:28: policies[0].match.called: expected a number prefix (an optional '+' and 1-15 "
        "digits; spaces and dashes are ignored), got 112 unquoted, which YAML reads as the integer 112; "
        'quote it: "112"',
        id="unquoted-single-prefix",
    ),
    pytest.param(
        before_all("{name: x, match: {called: {prefix: '112'}}, record: false}"),
        "callherald.yaml:28: policies[0].match.called: expected a number prefix (an optional '+' and 1-15 "
        "digits; spaces and dashes are ignored) or a list of number prefixes, got a mapping",
        id="prefixes-a-mapping",
    ),
    pytest.param(
        pedit("  - name: all\n", "  - name: all\n    lang: nl\n"),
        "callherald.yaml:29: policies[0].lang: unknown key; did you mean 'language'?",
        id="policy-unknown-key",
    ),
    pytest.param(
        BASE.split("policies:\n")[0] + "policies: []\n",
        "callherald.yaml:27: policies: expected a list of at least 1 policy, got an empty list",
        id="no-policies",
    ),
    # -- record -----------------------------------------------------------------------------------
    pytest.param(
        pedit("  - name: all\n", '  - name: all\n    record: "no"\n'),
        "callherald.yaml:29: policies[0].record: expected true or false, got 'no'",
        id="record-not-a-bool",
    ),
    pytest.param(
        pedit("  - name: all\n", "  - name: all\n    record: 0\n"),
        "callherald.yaml:29: policies[0].record: expected true or false, got 0",
        id="record-a-number",
    ),
    pytest.param(
        pedit("    notice: default\n", "    record: true\n"),
        "callherald.yaml:28: policies[0]: missing required key 'notice'",
        id="recording-policy-without-notice",
    ),
    pytest.param(
        pedit("    notice: default\n", ""),
        "callherald.yaml:28: policies[0]: missing required key 'notice'",
        id="default-policy-without-notice",
    ),
    pytest.param(
        pedit("    purposes: [evidence, training]\n", "    record: true\n"),
        "callherald.yaml:28: policies[0]: missing required key 'purposes'",
        id="recording-policy-without-purposes",
    ),
    pytest.param(
        pedit("[evidence, training]", "[]").replace(
            "    questions: [training-consent]\n", "    record: true\n"
        ),
        "callherald.yaml:30: policies[0].purposes: expected a list of at least 1 purpose id, got an empty list",
        id="recording-policy-with-empty-purposes",
    ),
    pytest.param(
        BASE + f"  - {EMERGENCY}\n",
        "callherald.yaml:32: policies[1]: policy 'emergency' never applies: policy 'all' (entry 0) comes "
        "first and matches every call it matches",
        id="not-recording-policy-after-catch-all",
    ),
    pytest.param(
        NOT_RECORDED + '  - {name: late, match: {called: ["+31"]}, notice: default, purposes: [evidence]}\n',
        "callherald.yaml:30: policies[1]: policy 'late' never applies: policy 'all' (entry 0) comes first "
        "and matches every call it matches",
        id="policy-after-not-recording-catch-all",
    ),
    pytest.param(
        BASE.split("policies:\n")[0] + f"policies:\n  - {EMERGENCY}\n",
        "callherald.yaml:27: policies: no policy matches every call; end the list with a catch-all policy "
        "(no called or calling prefixes, direction any)",
        id="not-recording-policy-is-no-catch-all",
    ),
    pytest.param(
        before_all("{name: out, match: {direction: outbound}, record: false, mode: early_media}"),
        "callherald.yaml:28: policies[0].mode: early_media applies to inbound calls, but this policy matches "
        "outbound calls only",
        id="not-recording-early-media-outbound",
    ),
    pytest.param(
        NOT_RECORDED + "    lang: nl\n",
        "callherald.yaml:30: policies[0].lang: unknown key; did you mean 'language'?",
        id="not-recording-unknown-key",
    ),
    # -- sections given together ------------------------------------------------------------------
    pytest.param(
        BASE.split("consent_questions:\n")[0],
        "callherald.yaml:1: missing required key 'policies' (it says which calls are recorded for the purposes)",
        id="purposes-without-policies",
    ),
    pytest.param(
        MINIMAL + "consent_questions:\n" + BASE.split("consent_questions:\n", maxsplit=1)[1],
        "callherald.yaml:1: missing required key 'purposes' (policies and consent questions name their "
        "purposes from it)",
        id="policies-without-purposes",
    ),
]


@pytest.mark.usefixtures("prompt_files")
@pytest.mark.parametrize(("text", "message"), POLICY_ERROR_CASES)
def test_policy_error_message(text: str, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse(text)
    assert str(caught.value) == message
    assert len(caught.value.problems) == 1


@pytest.mark.usefixtures("prompt_files")
def test_one_mistake_is_reported_once() -> None:
    """An unknown question id is reported where it is defined wrongly, not again where it is used."""
    text = pedit("purpose: training,", "purpose: trainin,").replace(
        "retention_days: 365", "retention_days: -1"
    )
    with pytest.raises(ConfigError) as caught:
        parse(text)
    assert str(caught.value).splitlines() == [
        "callherald.yaml:23: purposes[0].retention_days: expected an integer 1-36525, got -1",
        "callherald.yaml:26: consent_questions[0].purpose: unknown purpose 'trainin'; did you mean 'training'?",
    ]


# -- record: false -------------------------------------------------------------------------------------

NOT_RECORDING_POLICY = Policy(
    name="all",
    match=PolicyMatch(direction=CallDirection.ANY, called=(), calling=()),
    record=False,
    notice=None,
    language="nl",
    purposes=(),
    questions=(),
    mode=AnnouncementMode.ANSWER,
    on_failure=FailureBehaviour.CONNECT_UNRECORDED,
    withdrawal_digit=None,
    pci_pause_code=None,
)


@pytest.mark.usefixtures("prompt_files")
@pytest.mark.parametrize(
    "line",
    [
        pytest.param("notice: default", id="notice"),
        pytest.param("notice: welcom", id="notice-unknown-prompt-set"),
        pytest.param("language: en", id="language"),
        pytest.param("language: NL", id="language-invalid"),
        pytest.param("purposes: [evidence]", id="purposes"),
        pytest.param("purposes: []", id="purposes-empty"),
        pytest.param("questions: [training-consent]", id="questions"),
        pytest.param('withdrawal_digit: "*"', id="withdrawal-digit"),
        pytest.param("withdrawal_digit: 1", id="withdrawal-digit-unquoted"),
        pytest.param('pci_pause_code: "*9"', id="pci-pause-code"),
        pytest.param("pci_pause_tones: false", id="pci-pause-tones"),
    ],
)
def test_not_recording_policy_forbids_recording_keys(line: str) -> None:
    """Each key is reported once, at its own line, whatever its value (the value is not read)."""
    key = line.split(":", 1)[0]
    with pytest.raises(ConfigError) as caught:
        parse(NOT_RECORDED + f"    {line}\n")
    assert str(caught.value) == f"callherald.yaml:30: policies[0].{key}: {NOT_RECORDED_MESSAGE}"
    assert len(caught.value.problems) == 1


@pytest.mark.usefixtures("prompt_files")
def test_not_recording_policy_reports_every_recording_key() -> None:
    lines = [
        "notice: default",
        "language: nl",
        "purposes: [evidence]",
        "questions: [training-consent]",
        'withdrawal_digit: "*"',
        'pci_pause_code: "*9"',
        "pci_pause_tones: true",
    ]
    with pytest.raises(ConfigError) as caught:
        parse(NOT_RECORDED + "".join(f"    {line}\n" for line in lines))
    assert str(caught.value).splitlines() == [
        f"callherald.yaml:{30 + index}: policies[0].{line.split(':')[0]}: {NOT_RECORDED_MESSAGE}"
        for index, line in enumerate(lines)
    ]


@pytest.mark.usefixtures("prompt_files")
@pytest.mark.parametrize(
    ("text", "policies"),
    [
        pytest.param(NOT_RECORDED, (NOT_RECORDING_POLICY,), id="catch-all"),
        pytest.param(
            NOT_RECORDED.replace("record: false", "record: no"),
            (NOT_RECORDING_POLICY,),
            id="yaml-no-is-false",
        ),
        pytest.param(
            NOT_RECORDED + "    notice:\n    purposes:\n",
            (NOT_RECORDING_POLICY,),
            id="explicit-nulls-are-absent",
        ),
        pytest.param(
            NOT_RECORDED + "    mode: early_media\n    on_failure: reject\n",
            (
                dataclasses.replace(
                    NOT_RECORDING_POLICY,
                    mode=AnnouncementMode.EARLY_MEDIA,
                    on_failure=FailureBehaviour.REJECT,
                ),
            ),
            id="mode-and-on-failure-allowed",
        ),
        pytest.param(
            pedit("announcements:\n", "announcements:\n  default_language: en\n", NOT_RECORDED),
            (dataclasses.replace(NOT_RECORDING_POLICY, language="en"),),
            id="language-is-the-default-language",
        ),
        pytest.param(
            before_all(
                '{name: sales, match: {called: ["+3120"]}, notice: default, purposes: [evidence]}',
                NOT_RECORDED,
            ),
            (
                Policy(
                    name="sales",
                    match=PolicyMatch(called=("+3120",)),
                    notice="default",
                    language="nl",
                    purposes=("evidence",),
                ),
                NOT_RECORDING_POLICY,
            ),
            id="recording-policy-before-not-recording-catch-all",
        ),
        pytest.param(
            before_all('{name: emergency, match: {called: "112", calling: "+31 6"}, record: false}'),
            (
                dataclasses.replace(
                    NOT_RECORDING_POLICY,
                    name="emergency",
                    match=PolicyMatch(called=("112",), calling=("+316",)),
                ),
                Policy(
                    name="all",
                    notice="default",
                    language="nl",
                    purposes=("evidence", "training"),
                    questions=("training-consent",),
                ),
            ),
            id="one-prefix-without-a-list",
        ),
        pytest.param(
            before_all(EMERGENCY),
            (
                dataclasses.replace(
                    NOT_RECORDING_POLICY, name="emergency", match=PolicyMatch(called=("112", "911"))
                ),
                Policy(
                    name="all",
                    notice="default",
                    language="nl",
                    purposes=("evidence", "training"),
                    questions=("training-consent",),
                ),
            ),
            id="not-recording-policy-before-catch-all",
        ),
    ],
)
def test_not_recording_policy_is_valid(text: str, policies: tuple[Policy, ...]) -> None:
    assert parse(text).policies == policies


@pytest.mark.usefixtures("prompt_files")
@pytest.mark.parametrize(
    ("direction", "calling", "called", "policy", "record"),
    [
        pytest.param(CallDirection.INBOUND, "+31612345678", "112", "emergency", False, id="inbound-112"),
        pytest.param(CallDirection.OUTBOUND, "+31201234567", "112", "emergency", False, id="outbound-112"),
        pytest.param(CallDirection.OUTBOUND, "+31201234567", "911", "emergency", False, id="outbound-911"),
        pytest.param(CallDirection.OUTBOUND, "+31201234567", "+31201234567", "all", True, id="other-number"),
    ],
)
def test_not_recording_policy_is_selected(
    direction: CallDirection, calling: str, called: str, policy: str, record: bool
) -> None:
    config = parse(before_all(EMERGENCY))
    selected = select_policy(config, direction=direction, calling=calling, called=called)
    assert (selected.name, selected.record) == (policy, record)
    if not record:
        assert (config.policy_purposes(selected), config.policy_questions(selected)) == ((), ())


# -- the embedded default ------------------------------------------------------------------------------

EMBEDDED_PURPOSES = (
    Purpose(
        id="evidence",
        lawful_basis=LawfulBasis.CONTRACT,
        reference="GDPR Art. 6(1)(b): proof of what was agreed in the call",
        retention_days=365,
    ),
    Purpose(
        id="training",
        lawful_basis=LawfulBasis.CONSENT,
        reference="GDPR Art. 6(1)(a): the caller pressed the yes key",
        retention_days=90,
    ),
)
EMBEDDED_QUESTION = ConsentQuestion(
    id="training-consent", version="1", purpose="training", prompt_set="default", yes_digit="1", timeout_s=6.0
)
EMBEDDED_POLICY = Policy(
    name="default",
    match=PolicyMatch(direction=CallDirection.ANY, called=(), calling=()),
    record=True,
    notice="default",
    language="nl",
    purposes=("evidence", "training"),
    questions=("training-consent",),
    mode=AnnouncementMode.ANSWER,
    on_failure=FailureBehaviour.CONNECT_UNRECORDED,
    withdrawal_digit=None,
    pci_pause_code=None,
)


def test_embedded_default_policy_parts(tmp_path: Path) -> None:
    config = default_config(tmp_path)
    assert config.announcements == Announcements(prompt_sets=(), default_language="nl")
    assert config.purposes == DEFAULT_PURPOSES == EMBEDDED_PURPOSES
    assert config.consent_questions == DEFAULT_CONSENT_QUESTIONS == (EMBEDDED_QUESTION,)
    assert config.policies == DEFAULT_POLICIES == (EMBEDDED_POLICY,)
    assert config.prompt_set("default") is None
    assert config.policy_purposes(EMBEDDED_POLICY) == EMBEDDED_PURPOSES
    assert config.policy_questions(EMBEDDED_POLICY) == (EMBEDDED_QUESTION,)
    assert [purpose.lawful_basis.article for purpose in config.purposes] == ["6(1)(b)", "6(1)(a)"]


@pytest.mark.usefixtures("prompt_files")
def test_file_without_policy_sections_gets_the_embedded_ones() -> None:
    config = parse(MINIMAL)
    assert (config.purposes, config.consent_questions, config.policies) == (
        EMBEDDED_PURPOSES,
        (EMBEDDED_QUESTION,),
        (EMBEDDED_POLICY,),
    )


@pytest.mark.usefixtures("prompt_files")
def test_embedded_policy_speaks_the_default_language() -> None:
    config = parse(MINIMAL + "announcements:\n  default_language: en\n")
    assert config.policies == (dataclasses.replace(EMBEDDED_POLICY, language="en"),)


@pytest.mark.usefixtures("prompt_files")
def test_consent_questions_may_be_absent_when_no_purpose_needs_consent() -> None:
    text = (
        BASE.split("consent_questions:\n")[0].replace(
            "  - {id: training, lawful_basis: consent, retention_days: 90}\n", ""
        )
        + "policies:\n  - {name: all, notice: default, purposes: [evidence]}\n"
    )
    config = parse(text)
    assert config.consent_questions == ()
    assert config.policies[0].questions == ()


def test_embedded_languages_match_the_announcements_package() -> None:
    assert default_prompt_set().languages == EMBEDDED_PROMPT_LANGUAGES


def test_prompt_set_to_mapping_imports_into_announcements(tmp_path: Path) -> None:
    (tmp_path / "conf").mkdir()
    (tmp_path / "conf" / "nl.wav").write_bytes(b"x")
    (tmp_path / "conf" / "en.wav").write_bytes(b"x")
    text = BASE.replace(
        "        nl: {file: welcome.wav}",
        '        nl: {file: nl.wav, text: "Hallo"}\n        en: {file: en.wav}',
    )
    path = tmp_path / "conf" / "callherald.yaml"
    path.write_text(text, encoding="utf-8")
    config = load_config(path, environ={})
    prompt_set = config.prompt_set("welcome")
    assert prompt_set is not None
    assert prompt_set.languages == ("nl", "en")
    assert prompt_set.to_mapping() == {
        "id": "welcome",
        "prompts": {
            "nl": {"file": str(tmp_path / "conf" / "nl.wav"), "text": "Hallo"},
            "en": {"file": str(tmp_path / "conf" / "en.wav")},
        },
    }
    imported = PromptSet.from_mapping(prompt_set.to_mapping(), base_dir=Path("/elsewhere"))
    assert [(p.language, p.source, p.text) for p in imported.prompts] == [
        ("nl", tmp_path / "conf" / "nl.wav", "Hallo"),
        ("en", tmp_path / "conf" / "en.wav", None),
    ]


@pytest.mark.parametrize(
    ("lookup", "key"),
    [
        (lambda config: config.prompt_set("nope"), "nope"),
        (lambda config: config.purpose("nope"), "nope"),
        (lambda config: config.consent_question("nope"), "nope"),
    ],
)
def test_lookups_raise_key_error(lookup: object, key: str, tmp_path: Path) -> None:
    assert callable(lookup)
    with pytest.raises(KeyError) as caught:
        lookup(default_config(tmp_path))
    assert caught.value.args == (key,)


@pytest.mark.usefixtures("prompt_files")
@pytest.mark.parametrize(
    ("written", "version"),
    [("1", "1"), ("0", "0"), ("1_000", "1000"), ('"2026-11"', "2026-11"), ('"v2"', "v2"), ('"01"', "01")],
)
def test_question_version_is_text(written: str, version: str) -> None:
    config = parse(pedit("version: 1,", f"version: {written},"))
    assert config.consent_questions[0].version == version


@pytest.mark.parametrize(
    ("basis", "article", "needs_reference"),
    [
        (LawfulBasis.CONSENT, "6(1)(a)", False),
        (LawfulBasis.CONTRACT, "6(1)(b)", False),
        (LawfulBasis.LEGAL_OBLIGATION, "6(1)(c)", True),
        (LawfulBasis.LEGITIMATE_INTEREST, "6(1)(f)", True),
    ],
)
def test_lawful_basis_facts(basis: LawfulBasis, article: str, needs_reference: bool) -> None:
    assert (basis.article, basis.needs_reference) == (article, needs_reference)


# -- select_policy -----------------------------------------------------------------------------------------

SELECTION = (
    MINIMAL
    + POLICY.split("policies:\n", maxsplit=1)[0]
    + """\
policies:
  - name: amsterdam-sales
    match: {direction: inbound, called: ["+31 20 123"]}
    notice: default
    purposes: [evidence]
  - name: mobile-callers
    match: {direction: inbound, calling: ["+316", "06"]}
    notice: default
    purposes: [evidence]
  - name: outbound-uk
    match: {direction: outbound, called: ["+44"], calling: ["+3120"]}
    notice: default
    purposes: [evidence]
  - name: everything-else
    notice: default
    purposes: [evidence, training]
    questions: [training-consent]
"""
)

IN, OUT = CallDirection.INBOUND, CallDirection.OUTBOUND


@pytest.mark.usefixtures("prompt_files")
@pytest.mark.parametrize(
    ("direction", "calling", "called", "policy"),
    [
        pytest.param(IN, "+31612345678", "+31201234567", "amsterdam-sales", id="first-match-wins"),
        pytest.param(IN, "+31612345678", "+31301234567", "mobile-callers", id="calling-prefix"),
        pytest.param(IN, "0612345678", "0301234567", "mobile-callers", id="national-calling-prefix"),
        pytest.param(IN, "+32470123456", "31201234567", "amsterdam-sales", id="number-without-plus"),
        pytest.param(IN, "+32470123456", "+31 20-123 4567", "amsterdam-sales", id="spaces-and-dashes"),
        pytest.param(IN, "316 1234 5678", "+31301234567", "mobile-callers", id="calling-without-plus"),
        pytest.param(IN, "+32470123456", "020 1234567", "everything-else", id="no-dial-plan"),
        pytest.param(IN, "anonymous", "+31301234567", "everything-else", id="anonymous-caller"),
        pytest.param(IN, "", "", "everything-else", id="no-numbers"),
        pytest.param(IN, "+31201112222", "+442071234567", "everything-else", id="inbound-to-uk-number"),
        pytest.param(OUT, "+31201112222", "+442071234567", "outbound-uk", id="outbound-both-prefixes"),
        pytest.param(OUT, "+31301112222", "+442071234567", "everything-else", id="outbound-calling-mismatch"),
        pytest.param(OUT, "+31201112222", "00442071234567", "everything-else", id="international-00-form"),
        pytest.param(
            OUT, "+31612345678", "+31201234567", "everything-else", id="inbound-only-policies-skipped"
        ),
    ],
)
def test_select_policy(direction: CallDirection, calling: str, called: str, policy: str) -> None:
    config = parse(SELECTION)
    assert select_policy(config, direction=direction, calling=calling, called=called).name == policy


def test_select_policy_embedded_default(tmp_path: Path) -> None:
    config = default_config(tmp_path)
    for direction in (IN, OUT):
        assert select_policy(config, direction=direction, calling="+3161", called="+3120") == EMBEDDED_POLICY


def test_select_policy_needs_a_direction(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="a call is inbound or outbound, not 'any'"):
        select_policy(default_config(tmp_path), direction=CallDirection.ANY, calling="1", called="2")


def test_select_policy_without_match_raises(tmp_path: Path) -> None:
    inbound_only = dataclasses.replace(EMBEDDED_POLICY, match=PolicyMatch(direction=IN))
    config = dataclasses.replace(default_config(tmp_path), policies=(inbound_only,))
    with pytest.raises(LookupError) as caught:
        select_policy(config, direction=OUT, calling="+3120", called="+44")
    assert str(caught.value) == "no policy matches the outbound call from '+3120' to '+44'"


@pytest.mark.parametrize(
    ("earlier", "later", "covers"),
    [
        (PolicyMatch(), PolicyMatch(direction=IN, called=("+31",)), True),
        (PolicyMatch(direction=IN), PolicyMatch(direction=CallDirection.ANY), False),
        (PolicyMatch(direction=IN), PolicyMatch(direction=OUT), False),
        (PolicyMatch(called=("+31",)), PolicyMatch(called=("3120", "+316")), True),
        (PolicyMatch(called=("+31",)), PolicyMatch(called=("+3120", "+32")), False),
        (PolicyMatch(called=("+31",)), PolicyMatch(), False),
        (PolicyMatch(called=("+3120",)), PolicyMatch(called=("+31",)), False),
        (PolicyMatch(calling=("06",)), PolicyMatch(calling=("061",), called=("+31",)), True),
    ],
)
def test_match_covers(earlier: PolicyMatch, later: PolicyMatch, covers: bool) -> None:
    assert match_covers(earlier, later) is covers


# -- properties ------------------------------------------------------------------------------------------

_separators = st.text(alphabet=" -", max_size=2)


@given(
    st.from_regex(r"[0-9]{1,15}", fullmatch=True),
    st.integers(min_value=1, max_value=15),
    st.booleans(),
    st.booleans(),
    st.lists(_separators, min_size=16, max_size=16),
)
def test_prefix_of_a_number_always_matches(
    digits: str, length: int, plus_prefix: bool, plus_number: bool, separators: list[str]
) -> None:
    """However a number is written (spaces, dashes, with or without '+'), its own prefix matches it."""
    prefix = ("+" if plus_prefix else "") + digits[:length]
    written = ("+" if plus_number else "") + "".join(
        separator + digit for separator, digit in zip(separators, digits, strict=False)
    )
    assert normalise_number(written).removeprefix("+") == digits
    assert prefix_matches(prefix, written)


@given(st.from_regex(r"\+?[0-9]{1,15}", fullmatch=True), st.from_regex(r"\+?[0-9]{1,15}", fullmatch=True))
def test_prefix_matches_is_startswith_on_digits(prefix: str, number: str) -> None:
    assert prefix_matches(prefix, number) == number.lstrip("+").startswith(prefix.lstrip("+"))


NO_FILES = MINIMAL + "purposes:\n" + POLICY.split("purposes:\n", 1)[1]


@given(st.from_regex(r"\+?[0-9][0-9 -]{0,20}", fullmatch=True))
def test_quoted_prefix_is_stored_normalised(prefix: str) -> None:
    policy = f'{{name: x, match: {{called: ["{prefix}"]}}, notice: default, purposes: [evidence]}}'
    text = before_all(policy, NO_FILES)
    normalised = prefix.replace(" ", "").replace("-", "")
    if len(normalised.lstrip("+")) <= 15:
        assert parse(text).policies[0].match.called == (normalised,)
    else:
        with pytest.raises(ConfigError):
            parse(text)
