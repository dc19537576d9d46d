"""Choosing the policy for a call: first match wins.

Policies are tried in the order the file lists them and the first whose `PolicyMatch` accepts the
call applies. Order, not prefix length, decides, because a policy matches on three things at
once (direction, called and calling number) and "longest prefix" has no single meaning across
them; the administrator states the priority by the order, and the loader refuses a policy that an
earlier one makes unreachable and a list that leaves some call without a policy.

Numbers are compared as the digits of an E.164 number: spaces and dashes are dropped and a leading
``+`` is ignored, so the prefix ``"+31 20"`` matches ``+31201234567``, ``31201234567`` and
``+31-20-1234567``. No dial plan is applied: a national ``0201234567`` does not match ``"+3120"``
(write a ``"020"`` prefix for it), nor does an international ``0031...`` form. A number that is not
digits at all (``anonymous``, an empty user part) matches only policies without prefixes for it.
"""

from __future__ import annotations

from config.schema import CallDirection, Config, Policy, PolicyMatch

__all__ = ["match_covers", "matches", "normalise_number", "prefix_matches", "select_policy"]

_DROPPED = str.maketrans("", "", " -")


def normalise_number(number: str) -> str:
    """``number`` without spaces and dashes (``"+31 20-123"`` -> ``"+3120123"``)."""
    return number.translate(_DROPPED)


def _digits(number: str) -> str:
    return normalise_number(number).removeprefix("+")


def prefix_matches(prefix: str, number: str) -> bool:
    """True when ``number`` starts with ``prefix``, both normalised and without a leading ``+``."""
    digits = _digits(number)
    return digits.isascii() and digits.isdigit() and digits.startswith(_digits(prefix))


def _any_prefix(prefixes: tuple[str, ...], number: str) -> bool:
    return not prefixes or any(prefix_matches(prefix, number) for prefix in prefixes)


def matches(match: PolicyMatch, *, direction: CallDirection, calling: str, called: str) -> bool:
    """True when a call in ``direction`` (inbound or outbound) from ``calling`` to ``called`` matches."""
    if match.direction not in (CallDirection.ANY, direction):
        return False
    return _any_prefix(match.called, called) and _any_prefix(match.calling, calling)


def _prefixes_cover(earlier: tuple[str, ...], later: tuple[str, ...]) -> bool:
    if not earlier:
        return True
    return bool(later) and all(any(prefix_matches(a, b) for a in earlier) for b in later)


def match_covers(earlier: PolicyMatch, later: PolicyMatch) -> bool:
    """True when every call ``later`` matches is also matched by ``earlier`` (so, listed after it,
    ``later`` can never apply)."""
    if earlier.direction not in (CallDirection.ANY, later.direction):
        return False
    return _prefixes_cover(earlier.called, later.called) and _prefixes_cover(earlier.calling, later.calling)


def select_policy(config: Config, *, direction: CallDirection, calling: str, called: str) -> Policy:
    """The first policy of ``config`` that matches the call.

    Args:
        direction: `CallDirection.INBOUND` (from the carrier) or `CallDirection.OUTBOUND` (from the PBX).
        calling: the caller's number (the From/P-Asserted-Identity user part), as received.
        called: the dialled number (the Request-URI/To user part), as received.

    Raises:
        ValueError: when ``direction`` is `CallDirection.ANY` (a call has one direction).
        LookupError: when no policy matches; a config from `config.load_config` or
            `config.default_config` always ends in a catch-all, so this only happens for a
            `Config` built by hand.
    """
    if direction is CallDirection.ANY:
        raise ValueError("a call is inbound or outbound, not 'any'")
    for policy in config.policies:
        if matches(policy.match, direction=direction, calling=calling, called=called):
            return policy
    raise LookupError(f"no policy matches the {direction} call from {calling!r} to {called!r}")
