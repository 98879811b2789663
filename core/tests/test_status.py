"""The task state machine: every allowed and every refused transition."""

from __future__ import annotations

import itertools

import pytest

from conveyor import InvalidTransition, Status

P, Q, R, D, F, K = (
    Status.PENDING,
    Status.QUEUED,
    Status.RUNNING,
    Status.DONE,
    Status.FAILED,
    Status.KILLED,
)

# Written out by hand, independently of conveyor.status.TRANSITIONS, so a change
# to the table is a change to this test too.
ALLOWED = {
    (P, Q), (P, R), (P, K),
    (Q, R), (Q, P), (Q, K),
    (R, D), (R, F), (R, K), (R, P),
    (F, Q), (F, R), (F, P), (F, K),
    (K, P),
}  # fmt: skip


@pytest.mark.parametrize(("old", "new"), sorted(ALLOWED))
def test_allowed_transition(old: Status, new: Status) -> None:
    assert old.can_become(new)
    assert old.check(new) is new


@pytest.mark.parametrize(
    ("old", "new"),
    [pair for pair in itertools.product(Status, Status) if pair not in ALLOWED],
)
def test_refused_transition(old: Status, new: Status) -> None:
    assert not old.can_become(new)
    with pytest.raises(InvalidTransition) as info:
        old.check(new)
    message = str(info.value)
    assert old.value in message and new.value in message


def test_done_is_final_and_says_so() -> None:
    with pytest.raises(InvalidTransition, match="may become: nothing"):
        D.check(P)
    assert D.is_final and K.is_final and not F.is_final


def test_parse_accepts_any_case_and_lists_choices() -> None:
    assert Status.parse("done") is D
    assert Status.parse(" Killed ") is K
    with pytest.raises(ValueError, match="Pending, Queued, Running, Done, Failed, Killed"):
        Status.parse("finished")
