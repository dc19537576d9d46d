"""Valid settings that are seldom meant: warned about by ``check-config`` and at start-up, never
refused (the file is correct YAML and every value is allowed on its own)."""

from __future__ import annotations

from config.schema import EMBEDDED_PROMPT_SET_ID, EMBEDDED_PROMPT_YES_DIGIT, Config

__all__ = ["risky_keys"]


def risky_keys(config: Config) -> list[tuple[str, str]]:
    """Keys whose value lets the call go otherwise than the caller means, each with the key path
    it is about (``policies[0].pci_pause_code``) and what is wrong with it.

    * A PCI pause code of digits only: a card number or security code keyed during the payment
      may contain it, and a caller who stops between the groups of a card number and goes on with
      it pauses or resumes the recording mid-payment (PCI DSS 3.3.1).
    * A consent question asked with the embedded prompt set for another key than the one its
      question names: every caller who presses the key they were told is stored as refusing
      (GDPR Art. 7(2): the request for consent must be clear).
    """
    warnings: list[tuple[str, str]] = []
    for index, question in enumerate(config.consent_questions):
        if question.prompt_set == EMBEDDED_PROMPT_SET_ID and question.yes_digit != EMBEDDED_PROMPT_YES_DIGIT:
            warnings.append(
                (
                    f"consent_questions[{index}].yes_digit",
                    f"consent question {question.id!r} is asked with the embedded prompt set, which says "
                    f'"press {EMBEDDED_PROMPT_YES_DIGIT}", but its yes_digit is {question.yes_digit!r}: '
                    f"callers who press {EMBEDDED_PROMPT_YES_DIGIT} as told are stored as refusing; give "
                    f'yes_digit "{EMBEDDED_PROMPT_YES_DIGIT}", or a prompt set that asks for '
                    f"{question.yes_digit!r}",
                )
            )
    for index, policy in enumerate(config.policies):
        code = policy.pci_pause_code
        if code and code.isdigit():
            warnings.append(
                (
                    f"policies[{index}].pci_pause_code",
                    f"policy {policy.name!r}: the PCI pause code {code!r} is digits only, which a card "
                    "number or security code may contain: a caller who stops between the groups of a "
                    f"card number and goes on with {code!r} pauses or resumes the recording; use a code "
                    'with * or #, such as "#9"',
                )
            )
    return warnings
