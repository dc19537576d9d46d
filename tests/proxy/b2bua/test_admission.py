"""Call admission: the call-attempt rate limit and overload shedding, on virtual time."""

from __future__ import annotations

import pytest

from proxy.b2bua.admission import (
    OVERLOAD_CLEAR_PROBES,
    OVERLOAD_ENTER_PROBES,
    CallAdmission,
    OverloadChange,
)


def overloaded(admission: CallAdmission) -> bool:
    return admission.overloaded  # read afresh: the state changes between the asserts


def admitted(admission: CallAdmission, times: list[float]) -> list[bool]:
    return [admission.refusal(now) is None for now in times]


def test_no_limits_admit_everything_and_watch_nothing() -> None:
    admission = CallAdmission(max_new_calls_per_s=0, overload_lag_s=0)
    assert admitted(admission, [0.0] * 1000) == [True] * 1000
    assert not admission.watches_lag
    assert admission.lag_observed(30.0) is None
    assert admission.refusal(0.0) is None


def test_rate_limit_allows_a_second_of_calls_at_once_then_refills_at_the_rate() -> None:
    admission = CallAdmission(max_new_calls_per_s=4, overload_lag_s=0)
    assert admitted(admission, [10.0] * 5) == [True, True, True, True, False]
    assert admission.refusal(10.0) == "limits.max_new_calls_per_s (4) reached"
    # A token comes back every 0.25 s; a refused attempt takes none.
    assert admitted(admission, [10.2, 10.25, 10.26, 10.5]) == [False, True, False, True]
    # Idle for long: back to one second's worth, no more.
    assert admitted(admission, [100.0] * 5) == [True, True, True, True, False]


def test_rate_limit_under_one_call_a_second_holds_one() -> None:
    admission = CallAdmission(max_new_calls_per_s=0.5, overload_lag_s=0)
    assert admitted(admission, [0.0, 0.0, 1.9, 2.0, 3.0, 4.0]) == [True, False, False, True, False, True]
    assert admission.refusal(4.0) == "limits.max_new_calls_per_s (0.5) reached"


def test_a_clock_going_back_adds_no_tokens() -> None:
    admission = CallAdmission(max_new_calls_per_s=1, overload_lag_s=0)
    assert admitted(admission, [5.0, 4.0, 4.5, 5.9, 6.0]) == [True, False, False, False, True]


def test_overload_starts_after_enough_late_probes_in_a_row_and_sheds_new_calls() -> None:
    admission = CallAdmission(max_new_calls_per_s=0, overload_lag_s=0.25)
    assert admission.watches_lag
    changes = [admission.lag_observed(0.3) for _ in range(OVERLOAD_ENTER_PROBES)]
    assert changes == [None] * (OVERLOAD_ENTER_PROBES - 1) + [OverloadChange(overloaded=True, lag_s=0.3)]
    assert overloaded(admission)
    assert admission.refusal(0.0) == (
        "overloaded: callherald's event loop runs over limits.overload_lag_ms (250) late"
    )
    assert admission.lag_observed(0.9) is None  # already overloaded: no second change


def test_one_stall_alone_sheds_nothing() -> None:
    admission = CallAdmission(max_new_calls_per_s=0, overload_lag_s=0.25)
    for lag in [2.0, 0.0, 0.01, 2.0, 2.0, 0.001, 5.0]:
        assert admission.lag_observed(lag) is None
    assert not overloaded(admission)
    assert admission.refusal(0.0) is None


def test_lags_between_half_and_the_threshold_neither_build_nor_end_an_overload() -> None:
    admission = CallAdmission(max_new_calls_per_s=0, overload_lag_s=0.2)
    for lag in [0.2, 0.2, 0.15, 0.2, 0.2, 0.15]:
        assert admission.lag_observed(lag) is None
    assert not overloaded(admission)
    for _ in range(OVERLOAD_ENTER_PROBES):
        admission.lag_observed(0.2)
    assert overloaded(admission)
    for _ in range(OVERLOAD_CLEAR_PROBES - 1):
        assert admission.lag_observed(0.01) is None
    assert admission.lag_observed(0.15) is None  # not timely enough: the count starts again
    for _ in range(OVERLOAD_CLEAR_PROBES - 1):
        assert admission.lag_observed(0.0) is None
    assert overloaded(admission)


def test_overload_ends_after_enough_timely_probes_and_calls_are_admitted_again() -> None:
    admission = CallAdmission(max_new_calls_per_s=0, overload_lag_s=0.1)
    for _ in range(OVERLOAD_ENTER_PROBES):
        admission.lag_observed(0.5)
    changes = [admission.lag_observed(0.02) for _ in range(OVERLOAD_CLEAR_PROBES)]
    assert changes == [None] * (OVERLOAD_CLEAR_PROBES - 1) + [OverloadChange(overloaded=False, lag_s=0.02)]
    assert not overloaded(admission)
    assert admission.refusal(0.0) is None


def test_shed_attempts_take_no_rate_tokens() -> None:
    admission = CallAdmission(max_new_calls_per_s=1, overload_lag_s=0.1)
    for _ in range(OVERLOAD_ENTER_PROBES):
        admission.lag_observed(1.0)
    assert admission.refusal(0.0) is not None
    for _ in range(OVERLOAD_CLEAR_PROBES):
        admission.lag_observed(0.0)
    assert admitted(admission, [0.0, 0.0]) == [True, False]


@pytest.mark.parametrize(("rate", "lag"), [(-1.0, 0.0), (0.0, -0.1)])
def test_negative_limits_are_refused(rate: float, lag: float) -> None:
    with pytest.raises(ValueError, match="0 \\(off\\) or positive"):
        CallAdmission(max_new_calls_per_s=rate, overload_lag_s=lag)
