from __future__ import annotations

import datetime as dt

import pytest
from baton.core.parameters import JobParameter, JobParameters, ParamType, parse_value
from baton.core.restart import LaunchVerdict, launch_verdict
from baton.core.status import BatchStatus


@pytest.mark.parametrize(
    ("kind", "raw", "value"),
    [
        (ParamType.INT, "42", 42),
        (ParamType.INT, 7, 7),
        (ParamType.FLOAT, "1.5", 1.5),
        (ParamType.BOOL, "yes", True),
        (ParamType.BOOL, "false", False),
        (ParamType.DATE, "2026-01-02", dt.date(2026, 1, 2)),
        (ParamType.DATETIME, "2026-01-02T03:04:05", dt.datetime(2026, 1, 2, 3, 4, 5)),
        (ParamType.STRING, 12, "12"),
    ],
)
def test_parse_value(kind: ParamType, raw: object, value: object) -> None:
    assert parse_value(kind, raw) == value


@pytest.mark.parametrize(
    ("kind", "raw", "needle"),
    [
        (ParamType.INT, "4.2x", "expected an integer"),
        (ParamType.INT, True, "expected an integer"),
        (ParamType.BOOL, "maybe", "expected true or false"),
        (ParamType.DATE, "02/01/2026", "YYYY-MM-DD"),
        (ParamType.FLOAT, "abc", "expected a number"),
    ],
)
def test_parse_value_errors_say_what_was_expected(
    kind: ParamType, raw: object, needle: str
) -> None:
    with pytest.raises(ValueError, match=needle):
        parse_value(kind, raw)


def test_instance_key_ignores_order_and_non_identifying() -> None:
    a = JobParameters(
        (
            JobParameter("date", ParamType.DATE, dt.date(2026, 1, 1)),
            JobParameter("region", ParamType.STRING, "eu"),
            JobParameter("chunk", ParamType.INT, 100, identifying=False),
        )
    )
    b = JobParameters(
        (
            JobParameter("chunk", ParamType.INT, 999, identifying=False),
            JobParameter("region", ParamType.STRING, "eu"),
            JobParameter("date", ParamType.DATE, dt.date(2026, 1, 1)),
        )
    )
    assert a.key() == b.key()
    assert len(a.key()) == 64
    c = a.with_param(JobParameter("region", ParamType.STRING, "us"))
    assert c.key() != a.key()


def test_key_distinguishes_types() -> None:
    as_int = JobParameters((JobParameter("n", ParamType.INT, 1),))
    as_str = JobParameters((JobParameter("n", ParamType.STRING, "1"),))
    assert as_int.key() != as_str.key()


@pytest.mark.parametrize(
    ("last", "prevent", "verdict"),
    [
        (None, False, LaunchVerdict.NEW_INSTANCE),
        (BatchStatus.COMPLETED, False, LaunchVerdict.ALREADY_COMPLETE),
        (BatchStatus.STARTING, False, LaunchVerdict.ALREADY_RUNNING),
        (BatchStatus.STARTED, False, LaunchVerdict.ALREADY_RUNNING),
        (BatchStatus.STOPPING, False, LaunchVerdict.ALREADY_RUNNING),
        (BatchStatus.FAILED, False, LaunchVerdict.RESTART),
        (BatchStatus.STOPPED, False, LaunchVerdict.RESTART),
        (BatchStatus.FAILED, True, LaunchVerdict.PREVENT_RESTART),
        (BatchStatus.STOPPED, True, LaunchVerdict.PREVENT_RESTART),
        (BatchStatus.ABANDONED, False, LaunchVerdict.ABANDONED),
        (BatchStatus.COMPENSATED, False, LaunchVerdict.COMPENSATED),
        (BatchStatus.UNKNOWN, False, LaunchVerdict.UNKNOWN_STATE),
    ],
)
def test_restart_table(last: BatchStatus | None, prevent: bool, verdict: LaunchVerdict) -> None:
    assert launch_verdict(last, prevent_restart=prevent) is verdict
