"""Job and step contexts hold what JSON carries plus datetime, date, Decimal and UUID,
and give them back with their types; anything else is refused where it is put, naming
the key and the type, failing only that step; the repository never holds a context
it cannot read back, and reads one written by an older version without failing."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import textwrap
import uuid
from decimal import Decimal
from pathlib import Path

import pytest
from baton import BatchStatus, ExitCode, JobRepository
from baton.core.errors import InvalidParameters
from baton.core.parameters import JobParameters
from baton.repository.schema import JobExecutionRow, StepExecutionRow
from conftest import baton
from conftest import baton_in_process as cli
from sqlalchemy import update

pytestmark = pytest.mark.slow

JOB = """\
apiVersion: baton.dev/v1alpha1
kind: BatchJob
metadata: {{name: {name}}}
spec:
  steps:
{steps}
"""

TYPES_CODE = """
import datetime as dt
import uuid
from decimal import Decimal
from pathlib import Path

VALUES = {
    "when": dt.datetime(2026, 11, 29, 3, 4, 5, 123456, tzinfo=dt.timezone.utc),
    "naive": dt.datetime(2020, 1, 1, 12, 0),
    "day": dt.date(2026, 2, 28),
    "amount": Decimal("12.30"),
    "id": uuid.UUID("12345678-1234-5678-1234-567812345678"),
    "ratio": float("inf"),
    "nested": {"$baton": "datetime", "v": "not a tag", "at": [dt.date(2020, 1, 1)]},
}


def put(ctx):
    for key, value in VALUES.items():
        ctx.context[key] = value


def check(ctx):
    flag = Path(__file__).with_name("check-failed-once")
    if not flag.exists():
        flag.write_text("x")
        raise RuntimeError("the first attempt fails, so a restart must read the context")
    for key, value in VALUES.items():
        got = ctx.context[key]
        assert got == value and type(got) is type(value), (key, got, value)
    assert type(ctx.context["nested"]["at"][0]) is dt.date
    return "checked"
"""

DAYS_CODE = """
import datetime as dt
from pathlib import Path

START = dt.date(2024, 1, 1)
COUNT = 40
OUT = Path(__file__).with_name("days.txt")


class DayReader:
    def __init__(self):
        self.day = None

    def open(self, context):
        last = context.get("last.day")
        if last is not None and type(last) is not dt.date:
            raise TypeError(f"the cursor came back as {type(last).__name__}")
        self.day = last

    def read(self):
        nxt = START if self.day is None else self.day + dt.timedelta(days=1)
        if nxt >= START + dt.timedelta(days=COUNT):
            return None
        self.day = nxt
        return nxt

    def update(self, context):
        context["last.day"] = self.day


def process(day):
    flag = Path(__file__).with_name("failed-once")
    if day == START + dt.timedelta(days=23) and not flag.exists():
        flag.write_text("x")
        raise RuntimeError("day 23 fails once")
    return day.isoformat()


class DayWriter:
    def write(self, items):
        with OUT.open("a") as f:
            f.write("".join(i + "\\n" for i in items))
"""

BAD_CODE = """
def a_set(ctx):
    ctx.context["tags"] = {"a", "b"}


def a_cycle(ctx):
    loop = {"name": "loop"}
    loop["self"] = loop
    ctx.context["loop"] = loop


def in_place(ctx):
    ctx.context["d"] = {"ok": 1}
    ctx.context["d"]["obj"] = object()


def a_cursor(ctx):
    ctx.step_context["cursor"] = b"bytes"


def a_cursor_in_place(ctx):
    ctx.step_context["seen"] = []
    ctx.step_context["seen"].append(object())


def flaky(ctx):
    from pathlib import Path

    flag = Path(__file__).with_name("flaky-failed-once")
    if not flag.exists():
        flag.write_text("x")
        raise RuntimeError("fails once")
"""


def write_job(folder: Path, name: str, steps: str, module: str, code: str) -> str:
    (folder / f"{module}.py").write_text(textwrap.dedent(code))
    path = folder / f"{name}.yaml"
    path.write_text(JOB.format(name=name, steps=textwrap.indent(textwrap.dedent(steps), "    ")))
    return str(path)


def ok(r: subprocess.CompletedProcess[str], code: int = 0) -> str:
    assert r.returncode == code and "Traceback" not in r.stderr, (r.returncode, r.stderr)
    return r.stdout


def shown(db: str, execution_id: int) -> dict[str, object]:
    data = json.loads(ok(cli("show", str(execution_id), "--json", db=db)))
    assert isinstance(data, dict)
    return data


# ---------------------------------------------------------------- round trips


def test_typed_values_round_trip_through_a_restart(db_url: str, tmp_path: Path) -> None:
    """`ctx.context["when"] = datetime.now()` crashed the run and broke every listing.
    Now datetime (aware and naive), date, Decimal, UUID, infinity and a user dict that
    uses the tag key are stored, and a later step of a restart reads them back with
    their types."""
    job = write_job(
        tmp_path,
        "ctxtypes",
        "- {name: put, tasklet: 'ctxtypes_code:put'}\n"
        "- {name: check, tasklet: 'ctxtypes_code:check'}\n",
        "ctxtypes_code",
        TYPES_CODE,
    )
    first = baton("run", job, "--no-progress", db=db_url)
    assert first.returncode == ExitCode.FAILED, first.stdout + first.stderr
    assert "the first attempt fails" in first.stdout
    again = baton("restart", "1", "--no-progress", db=db_url)
    assert again.returncode == ExitCode.COMPLETED, again.stdout + again.stderr
    summary = shown(db_url, 2)
    assert summary["status"] == "COMPLETED"
    context = summary["context"]
    assert isinstance(context, dict)
    assert context["when"] == "2026-11-29T03:04:05.123456+00:00"
    assert context["amount"] == "12.30" and context["ratio"] == "inf"
    assert context["nested"]["$baton"] == "datetime"  # the user's own dict, unchanged
    ok(cli("executions", db=db_url))


def test_a_reader_checkpoints_a_date_and_resumes_from_it(sqlite_url: str, tmp_path: Path) -> None:
    """A date in a reader's step context failed the step with "its process ended with
    exit code 1 without recording an outcome". It is a cursor like any other: the
    failed run is restarted from the date checkpointed, every day written once."""
    job = write_job(
        tmp_path,
        "days",
        """\
        - name: load
          chunk:
            reader: 'days_code:DayReader'
            processor: 'days_code:process'
            writer: 'days_code:DayWriter'
            size: 5
        """,
        "days_code",
        DAYS_CODE,
    )
    first = baton("run", job, "--no-progress", db=sqlite_url)
    assert first.returncode == ExitCode.FAILED, first.stdout + first.stderr
    assert "day 23 fails once" in first.stdout
    repo = JobRepository(sqlite_url)
    try:
        (step,) = repo.step_executions(1)
        assert step.context["last.day"] == dt.date(2024, 1, 20)  # the last committed chunk
    finally:
        repo.dispose()
    again = baton("restart", "1", "--no-progress", db=sqlite_url)
    assert again.returncode == ExitCode.COMPLETED, again.stdout + again.stderr
    days = (tmp_path / "days.txt").read_text().split()
    expected = [(dt.date(2024, 1, 1) + dt.timedelta(days=i)).isoformat() for i in range(40)]
    assert days == expected


# ---------------------------------------------------------------- refusals


def test_a_set_in_the_job_context_fails_that_step_with_its_key(db_url: str, tmp_path: Path) -> None:
    """The step fails with a message naming the key and the type (not a traceback, not
    "exit code 1 without recording an outcome"); the execution is FAILED, and every
    command that broke on the stored repr works."""
    job = write_job(
        tmp_path, "badset", "- {name: put, tasklet: 'bad_code:a_set'}\n", "bad_code", BAD_CODE
    )
    run = baton("run", job, "--no-progress", db=db_url)
    assert run.returncode == ExitCode.FAILED, run.stdout + run.stderr
    assert "Traceback" not in run.stderr
    assert "job context key 'tags': cannot store a value of type set" in run.stdout
    summary = shown(db_url, 1)
    assert summary["status"] == "FAILED" and summary["context"] == {}
    steps = summary["steps"]
    assert isinstance(steps, list)
    first_line = steps[0]["exitDescription"].splitlines()[0]
    assert first_line.startswith("InvalidContext: job context key 'tags'"), first_line
    ok(cli("executions", db=db_url))
    ok(cli("executions", "--running", db=db_url))
    ok(cli("show", "1", db=db_url))
    recover = cli("recover", "1", db=db_url)
    assert recover.returncode == ExitCode.WRONG_STATE and "is FAILED" in recover.stderr
    ok(cli("abandon", "1", db=db_url))
    assert shown(db_url, 1)["status"] == "ABANDONED"


def test_unstorable_values_fail_their_step_with_a_clear_error(
    sqlite_url: str, tmp_path: Path
) -> None:
    """A dict that contains itself, an object put into a stored dict or list in place
    (seen when the step ends), a bytes cursor: each fails its own step (side by side in
    a parallel group), naming the key and the type."""
    job = write_job(
        tmp_path,
        "bad",
        """\
        - name: group
          parallel:
            - {name: cycle, tasklet: 'bad_code:a_cycle'}
            - {name: inplace, tasklet: 'bad_code:in_place'}
            - {name: cursor, tasklet: 'bad_code:a_cursor'}
            - {name: seen, tasklet: 'bad_code:a_cursor_in_place'}
        """,
        "bad_code",
        BAD_CODE,
    )
    from baton.core.codec import ALLOWED

    run = baton("run", job, "--no-progress", db=sqlite_url)
    assert run.returncode == ExitCode.FAILED, run.stdout + run.stderr
    summary = shown(sqlite_url, 1)
    assert summary["status"] == "FAILED"
    steps = summary["steps"]
    assert isinstance(steps, list)
    failures = {s["name"]: s["exitDescription"].splitlines()[0] for s in steps}
    assert failures == {
        "cycle": "InvalidContext: job context key 'loop': the value contains itself (a cycle) "
        f"(at loop.self); {ALLOWED}",
        "inplace": "InvalidContext: job context key 'd': cannot store a value of type object "
        f"(at d.obj); {ALLOWED}",
        "cursor": "InvalidContext: step context key 'cursor': cannot store a value of type "
        f"bytes; {ALLOWED}",
        "seen": "InvalidContext: step context key 'seen': cannot store a value of type "
        f"object (at seen[0]); {ALLOWED}",
    }


def test_the_repository_refuses_what_it_could_not_read_back(db_url: str) -> None:
    """The API below the step runtime: a seed context, a checkpoint, a job-context merge
    with an unstorable value are refused, naming the key; nothing is written."""
    from baton.core.errors import InvalidContext

    repo = JobRepository(db_url)
    try:
        with pytest.raises(InvalidParameters, match=r"initial job context key 'x': .* set"):
            repo.launch(
                "j",
                {"metadata": {"name": "j"}},
                JobParameters(),
                prevent_restart=False,
                source_dir=None,
                owner=None,
                context={"x": {1}},
            )
        assert repo.executions() == []
        e = repo.launch(
            "j",
            {"metadata": {"name": "j"}},
            JobParameters(),
            prevent_restart=False,
            source_dir=None,
            owner=None,
            context={"when": dt.date(2020, 1, 2)},
        )
        assert repo.get_execution(e.id).context == {"when": dt.date(2020, 1, 2)}
        step = repo.open_step(e, "s", None, worker=None)
        from baton.core.counts import Counts

        with (
            pytest.raises(InvalidContext, match=r"step context key 'c': .*complex"),
            repo.write() as c,
        ):
            repo.checkpoint(c, step, Counts(), {"c": 1j})
        assert repo.step_executions(e.id)[0].context == {}
    finally:
        repo.dispose()


def test_the_codec_cannot_be_confused_by_user_data() -> None:
    """Tags cannot collide with user dicts; what is not a tag is never decoded."""
    from baton.core.codec import decode_context, encode_context
    from baton.core.errors import InvalidContext

    tricky = {
        "$baton": {"$baton": "uuid", "v": "not-a-uuid"},
        "list": [{"$baton": "date", "v": "2020-01-01"}, {"$baton": "dict", "v": 1}],
        "tagged": dt.date(2020, 1, 1),
        "big": 10**40,
        "nan": float("nan"),
    }
    stored = json.loads(json.dumps(encode_context(tricky), allow_nan=False))
    back = decode_context(stored)
    assert back["$baton"] == tricky["$baton"] and back["list"] == tricky["list"]
    assert back["tagged"] == dt.date(2020, 1, 1) and back["big"] == 10**40
    assert back["nan"] != back["nan"]
    # rows that do not hold an object, and tags from elsewhere, read without failing
    assert decode_context("{'a': 1}") == {} and decode_context(None) == {}
    assert decode_context({"k": {"$baton": "future", "v": "x"}}) == {
        "k": {"$baton": "future", "v": "x"}
    }
    assert decode_context({"k": {"$baton": "datetime", "v": "garbage"}})["k"]["v"] == "garbage"
    with pytest.raises(InvalidContext, match="key 1 is a int, not a string"):
        encode_context({1: "x"})  # type: ignore[dict-item]
    with pytest.raises(InvalidContext, match="dict key 2 is a int"):
        encode_context({"k": {2: "x"}})
    deep: list[object] = []
    inner = deep
    for _ in range(200):
        inner.append([])
        inner = inner[0]  # type: ignore[assignment]
    with pytest.raises(InvalidContext, match="nested deeper than 64 levels"):
        encode_context({"deep": deep})
    assert encode_context({"u": uuid.UUID(int=1), "d": Decimal("NaN")})["d"] == {
        "$baton": "decimal",
        "v": "NaN",
    }


def test_an_old_row_holding_a_json_string_does_not_break_anything(
    db_url: str, tmp_path: Path
) -> None:
    """An older Baton stored repr(context) as a JSON string: every listing, show and the
    restart of that execution raised ValueError. Such a context reads as empty."""
    job = write_job(
        tmp_path, "oldrow", "- {name: once, tasklet: 'bad_code:flaky'}\n", "bad_code", BAD_CODE
    )
    from baton.registry.jobs import JobRegistry

    definition = JobRegistry().load(job).only(None).job
    repo = JobRepository(db_url)
    try:
        e = repo.launch(
            definition.name,
            definition.dump(),
            JobParameters(),
            prevent_restart=False,
            source_dir=str(tmp_path),
            owner=None,
        )
        repo.open_step(e, "once", None, worker=None)
        repo.end_orphaned(e, BatchStatus.FAILED, "failed", "fail")
        with repo.engine.begin() as c:
            c.execute(update(JobExecutionRow).values(context="{'when': datetime(2026, 1, 1)}"))
            c.execute(update(StepExecutionRow).values(context="{'cursor': 3}"))
        assert repo.get_execution(1).context == {}
        assert repo.step_executions(1)[0].context == {}
    finally:
        repo.dispose()
    for args in (("executions",), ("executions", "--running"), ("show", "1"), ("jobs",)):
        ok(cli(*args, db=db_url))
    (tmp_path / "flaky-failed-once").write_text("x")
    again = baton("restart", "1", "--no-progress", db=db_url)
    assert again.returncode == ExitCode.COMPLETED, again.stdout + again.stderr
    assert shown(db_url, 2)["status"] == BatchStatus.COMPLETED.value
