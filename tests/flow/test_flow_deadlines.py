"""The pure side of deadlines and retry backoff: when an execution is overdue, how the
flow's end reads after a deadline, a unit's time left, and the backoff delays."""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import replace

import pytest
from baton.core.entities import JobExecution, StepExecution
from baton.core.status import DEADLINE_EXCEEDED, BatchStatus
from baton.flow.actions import Finish
from baton.flow.deadlines import deadline_reason, finish_of, overdue
from baton.spec.model import ChunkSpec, RetryBackoff, StepBody
from baton.step.deadline import grace_seconds, overrun, time_left
from baton.step.outcome import Outcome
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

T0 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


def execution(status: BatchStatus = BatchStatus.STARTED, **kw: object) -> JobExecution:
    base = JobExecution(
        id=1,
        instance_id=1,
        job_name="j",
        version=1,
        attempt=1,
        status=status,
        exit_code="UNKNOWN",
        exit_description="",
        created_at=T0,
        start_time=T0,
        end_time=None,
        last_updated=T0,
        owner=None,
        source_dir=None,
        job_spec={},
        context={},
    )
    return replace(base, **kw)  # type: ignore[arg-type]


def step(status: BatchStatus, exit_code: str) -> StepExecution:
    return StepExecution(
        id=1, execution_id=1, step_name="load", partition=None, version=1, status=status,
        read_count=0, write_count=0, filter_count=0, read_skip_count=0, process_skip_count=0,
        write_skip_count=0, commit_count=0, rollback_count=0, total_count=None, start_time=T0,
        end_time=None, last_updated=T0, exit_code=exit_code, exit_description="", context={},
        result=None, worker=None, peak_memory_kb=None, incarnations=1,
    )  # fmt: skip


def test_overdue_only_when_started_and_past_the_deadline() -> None:
    assert not overdue(execution(), None, T0 + dt.timedelta(days=1))
    assert not overdue(execution(), 60, T0 + dt.timedelta(seconds=59))
    assert overdue(execution(), 60, T0 + dt.timedelta(seconds=60))
    # queued (not started yet), already stopping, or compensating: not this stop
    assert not overdue(execution(start_time=None), 60, T0 + dt.timedelta(hours=1))
    for status in (BatchStatus.STARTING, BatchStatus.STOPPING, BatchStatus.COMPENSATING):
        assert not overdue(execution(status), 60, T0 + dt.timedelta(hours=1))


def test_a_deadline_stop_ends_failed_with_deadline_exceeded() -> None:
    stopping = execution(
        BatchStatus.STOPPING, exit_code=DEADLINE_EXCEEDED, exit_description=deadline_reason(30)
    )
    for outcome in (BatchStatus.STOPPED, BatchStatus.FAILED):
        end = finish_of(Finish(outcome, "stopped in step 'load'"), stopping, [])
        assert end == Finish(
            BatchStatus.FAILED,
            "DeadlineExceeded: the execution ran past its deadline of 30s; stopped in step 'load'",
            DEADLINE_EXCEEDED,
        )
    # work that still completed is COMPLETED; a user's stop stays STOPPED
    done = Finish(BatchStatus.COMPLETED)
    assert finish_of(done, stopping, []) == done
    stopped = Finish(BatchStatus.STOPPED, "stopped in step 'load'")
    assert finish_of(stopped, execution(BatchStatus.STOPPING), []) == stopped


def test_a_step_timeout_marks_the_failure() -> None:
    failed = Finish(BatchStatus.FAILED, "step 'load' failed: DeadlineExceeded: ...")
    timed_out = [step(BatchStatus.FAILED, DEADLINE_EXCEEDED)]
    assert finish_of(failed, execution(), timed_out).exit_code == DEADLINE_EXCEEDED
    assert finish_of(failed, execution(), [step(BatchStatus.FAILED, "FAILED")]) == failed
    compensated = Finish(BatchStatus.COMPENSATED, "...")
    assert finish_of(compensated, execution(), timed_out) == compensated


def test_time_left_counts_from_the_units_first_open() -> None:
    assert time_left(10, None, T0) == 10
    assert time_left(10, T0, T0 + dt.timedelta(seconds=4)) == 6
    assert time_left(10, T0, T0 + dt.timedelta(seconds=15)) == -5  # a retried pod: none left
    assert time_left(10, T0 + dt.timedelta(seconds=1), T0) == 10  # clock skew: never more


def test_grace_from_the_environment() -> None:
    assert grace_seconds({}) == 30
    assert grace_seconds({"BATON_TERMINATION_GRACE_SECONDS": "45"}) == 45
    assert grace_seconds({"BATON_TERMINATION_GRACE_SECONDS": "x"}) == 30


def test_overrun_keeps_a_completed_chunk_loop_only() -> None:
    chunk_done = Outcome(BatchStatus.COMPLETED, counts=object())  # type: ignore[arg-type]
    assert overrun(chunk_done, "late") is chunk_done
    tasklet_done = Outcome(BatchStatus.COMPLETED, result="r")
    stopped = Outcome(BatchStatus.STOPPED, description="stopped on signal", exit_code="CONTINUE")
    for ended in (tasklet_done, stopped):
        late = overrun(ended, "DeadlineExceeded: late")
        assert (late.status, late.exit_code, late.description, late.result) == (
            BatchStatus.FAILED,
            DEADLINE_EXCEEDED,
            "DeadlineExceeded: late",
            None,
        )


# (seconds down to a microsecond: below, subnormal floats cannot grow by a factor)
backoffs = st.builds(
    RetryBackoff,
    initial_seconds=st.just(0.0) | st.floats(1e-6, 1e6),
    factor=st.floats(1, 100),
    max_seconds=st.just(0.0) | st.floats(1e-6, 1e7),
)


def capped_exponential(b: RetryBackoff, attempt: int) -> float:
    """min(initial * factor**(attempt-1), max), in logarithms (never overflows)."""
    if b.initial_seconds == 0 or b.max_seconds == 0:
        return 0.0
    log_wait = math.log(b.initial_seconds) + (attempt - 1) * math.log(b.factor)
    return b.max_seconds if log_wait >= math.log(b.max_seconds) else math.exp(log_wait)


@given(backoffs, st.integers(1, 10_000))
def test_backoff_delay_is_the_capped_exponential(b: RetryBackoff, attempt: int) -> None:
    delay = b.delay(attempt)
    assert 0 <= delay <= b.max_seconds
    assert math.isclose(delay, capped_exponential(b, attempt), rel_tol=1e-9, abs_tol=1e-12)
    assert b.delay(attempt + 1) >= delay  # never shrinks
    assert b.delay(1) == min(b.initial_seconds, b.max_seconds)


def test_backoff_fields_and_defaults() -> None:
    spec = ChunkSpec.model_validate(
        {"reader": "m:r", "writer": "m:w", "retryBackoff": {"initialSeconds": 0.5}}
    )
    assert spec.retry_backoff == RetryBackoff(initial_seconds=0.5, factor=2, max_seconds=60)
    assert [spec.retry_backoff.delay(n) for n in range(1, 9)] == [
        0.5, 1, 2, 4, 8, 16, 32, 60,
    ]  # fmt: skip
    with pytest.raises(ValidationError):
        RetryBackoff(factor=0.5)  # shrinking delays are refused
    with pytest.raises(ValidationError):
        StepBody.model_validate({"name": "s", "tasklet": "m:t", "timeoutSeconds": 0})
