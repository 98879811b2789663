"""The rules' edges that mutation testing found no test for (``make mutation``, target rules).

The table (conveyor.testing.rules_table) drives the rules through whole
scenarios; these pin what it does not reach: the validators' bounds and types,
the documented defaults, and records a backend may hand the rules that no
scenario produces. Each test names the mutants it kills (see docs/mutation.md).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import attrs
import pytest

from conveyor import InvalidTransition, Status, Task, TaskId, rules
from conveyor.outcome import Release, Retry
from conveyor.rules.authoring import DEFAULT_LEASE_SECONDS

NOW = datetime(2027, 1, 15, 12, 0, tzinfo=UTC)


def _task(status: Status = Status.PENDING, **fields: Any) -> Task[bytes]:
    return Task(TaskId.new(), b"x", status=status, run_at=NOW, **fields)


def _held(attempt: int = 1, **fields: Any) -> Task[bytes]:
    fields.setdefault("lock_by", "w1")
    fields.setdefault("lease_token", "t1")
    fields.setdefault("lease_until", NOW + timedelta(seconds=30))
    return _task(Status.RUNNING, attempt=attempt, **fields)


@attrs.frozen
class _Options:
    wait: float = attrs.field(default=0.0, validator=rules.seconds(0.0, low_open=False))
    count: int = attrs.field(default=1, validator=rules.whole())


def test_a_closed_lower_bound_accepts_the_bound_and_refuses_below() -> None:
    # Kills `number != low` for `number >= low` in seconds(low_open=False).
    assert _Options(wait=0.0).wait == 0.0
    with pytest.raises(ValueError, match=r"wait must be a number of seconds at least 0"):
        _Options(wait=-0.5)


def test_whole_defaults_to_the_int32_range_and_refuses_what_is_not_an_int() -> None:
    # Kills changed bounds (`low=0`, `low=2`, `2**31 << 1`, `2**31 ^ 1`...), `and` for
    # `or` and broken chained comparisons in whole().
    assert _Options(count=1).count == 1
    assert _Options(count=2**31 - 1).count == 2**31 - 1
    for bad in (2**31, 0, 2.0, True, "3"):
        with pytest.raises(
            ValueError, match="count must be a whole number from 1 to 2,147,483,647"
        ):
            _Options(count=bad)  # type: ignore[arg-type]


def test_backend_config_defaults_are_the_documented_ones() -> None:
    # Kills a changed `lease_seconds` default (README tables and docs say 30 s).
    config = rules.BackendConfig()
    assert (config.queue, config.lease_seconds) == ("default", 30.0)
    assert DEFAULT_LEASE_SECONDS == 30.0


def test_a_config_repr_leaves_out_the_codec() -> None:
    # Kills `repr=True` on BackendConfig.codec: a config's repr shows the options a
    # user typed (queue, lease, clock), not the codec object the registry put there.
    text = repr(rules.BackendConfig())
    assert "lease_seconds=30.0" in text and "codec" not in text


def test_replace_changes_the_named_fields_and_refuses_unknown_ones() -> None:
    # Kills `changes.keys() // FIELDS` and `* FIELDS` in replace (the table never calls it).
    task = _held()
    changed = rules.replace(task, priority=3, last_error="e")
    assert (changed.priority, changed.last_error) == (3, "e")
    assert attrs.evolve(changed, priority=0, last_error=None) == task
    with pytest.raises(TypeError, match="colour"):
        rules.replace(task, colour=1)


def test_held_means_a_held_status_and_a_lease_token() -> None:
    # Kills `or` for `and` in is_held.
    assert rules.is_held(_held())
    assert not rules.is_held(_held(lease_token=None)), "RUNNING without a token is not held"
    assert not rules.is_held(_task(Status.PENDING, lease_token="t1", lock_by="w1"))


def test_a_heartbeat_matches_the_worker_by_name_not_identity() -> None:
    # Kills `is not` for `!=` in extend: worker names arrive as new strings.
    task = _held(lock_by="worker-1")
    name = "".join(["worker-", "1"])
    later = NOW + timedelta(seconds=10)
    extended = rules.extend(task, name, now=later, lease_seconds=30)
    assert extended.lease_until == later + timedelta(seconds=30)


@pytest.mark.parametrize("how", ["resume", "reschedule", "release"])
def test_giving_back_an_uncounted_attempt_never_goes_below_zero(how: str) -> None:
    # Kills `max(-1, ...)` for `max(0, ...)`: a backend that claims without counting
    # (attempt 0 while RUNNING) must still get a valid record back.
    task = _held(attempt=0)
    if how == "resume":
        back = rules.resume(task, NOW)
    elif how == "reschedule":
        back = rules.reschedule(task, task, NOW)
    else:
        back = rules.settle(task, task, Release())
    assert back is not None and (back.status, back.attempt) == (Status.PENDING, 0)


def test_a_queue_name_may_be_200_characters_and_no_more() -> None:
    # Kills MAX_QUEUE_NAME = 199 and `len(value) == MAX_QUEUE_NAME`.
    assert rules.check_queue_name("q" * 200) == "q" * 200
    for length in (201, 250):
        with pytest.raises(ValueError, match="at most 200 characters"):
            rules.check_queue_name("q" * length)


def test_a_duration_is_a_real_number_above_an_open_bound_up_to_the_high_one() -> None:
    # Kills `or` for `and` in the number check (True and "5" pass as numbers), the
    # open bound made closed (`not low_open`), and `number >= high`.
    assert rules.BackendConfig(lease_seconds=rules.MAX_SECONDS).lease_seconds == rules.MAX_SECONDS
    assert rules.BackendConfig(lease_seconds=0.001).lease_seconds == 0.001
    for bad in (0, 0.0, True, "5", rules.MAX_SECONDS + 1):
        with pytest.raises(
            ValueError, match="lease_seconds must be a number of seconds more than 0"
        ):
            rules.BackendConfig(lease_seconds=bad)  # type: ignore[arg-type]


def test_backend_config_fields_are_keyword_only_so_subclasses_may_add_required_ones() -> None:
    # Kills `kw_only=False` on BackendConfig.
    with pytest.raises(TypeError):
        rules.BackendConfig("mail")  # type: ignore[call-arg]

    @attrs.frozen(kw_only=True)
    class Needs(rules.BackendConfig):
        path: str

    assert Needs(path="/tmp/x").path == "/tmp/x"


def test_config_of_reads_only_a_backend_config() -> None:
    # Kills `not isinstance(...)` in config_of.
    class Plugin:
        def __init__(self, config: object) -> None:
            self.config = config

    config = rules.BackendConfig()
    assert rules.config_of(Plugin(config)) is config
    assert rules.config_of(Plugin({"queue": "x"})) is None
    assert rules.config_of(object()) is None


def test_update_explains_a_held_state_only_for_an_otherwise_allowed_change() -> None:
    # Kills `held or old.can_become(new)`: DONE -> RUNNING is refused by the table of
    # transitions itself, and says so, not "only a claim enters Running".
    done = _task(Status.DONE, attempt=1)
    with pytest.raises(InvalidTransition) as refused:
        rules.update(done, attrs.evolve(done, status=Status.RUNNING))
    assert "only a claim" not in str(refused.value)
    pending = _task(Status.PENDING)
    with pytest.raises(InvalidTransition, match="only a claim enters"):
        rules.update(pending, attrs.evolve(pending, status=Status.RUNNING))


def test_seconds_takes_its_bounds_by_name_or_place_and_low_open_by_name_only() -> None:
    # Kills `/` for `*` in seconds()'s signature.
    check = rules.seconds(low=1.0, high=2.0)

    @attrs.frozen
    class Span:
        length: float = attrs.field(validator=check)

    assert Span(2.0).length == 2.0
    with pytest.raises(TypeError):
        rules.seconds(0.0, 1.0, False)  # type: ignore[call-arg]


def test_a_retry_on_the_last_of_many_attempts_kills() -> None:
    # Kills `attempt is not max_attempts` for `attempt < max_attempts` in settle: ints
    # above 256 are distinct objects, so identity would let a task run past its limit.
    many = int("1000")  # built at run time: not the same object as any constant
    task = _held(attempt=many, max_attempts=int("1000"))
    settled = rules.settle(task, task, Retry(NOW, "again"))
    assert (settled.status, settled.attempt) == (Status.KILLED, 1000)
    earlier = rules.settle(_held(attempt=999, max_attempts=many), _held(), Retry(NOW, "again"))
    assert earlier.status is Status.FAILED


def test_claim_and_extend_take_their_times_by_name_only() -> None:
    # Kills `/` for `*` in claim's and extend's signatures.
    with pytest.raises(TypeError):
        rules.claim(_task(), "w1", NOW, 30.0)  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        rules.extend(_held(), "w1", NOW, 30.0)  # type: ignore[call-arg]


def test_a_codec_needs_both_encode_and_decode() -> None:
    # Kills `or` for `and` in the codec check.
    class HalfCodec:
        def encode(self, value: object) -> bytes:
            return b""

    with pytest.raises((TypeError, ValueError), match="codec must be"):
        rules.BackendConfig(codec=HalfCodec())


def test_order_key_puts_a_higher_priority_first_among_nonzero_priorities() -> None:
    # Kills `not task.priority` for `-task.priority`: 1 and 5 both became False.
    low, high = _task(priority=1), _task(priority=5)
    assert sorted([low, high], key=rules.order_key) == [high, low]
