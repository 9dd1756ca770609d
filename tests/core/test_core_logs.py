"""The log line format (one JSON object per line, with the unit's fields) and the
pure choice of what ``baton logs`` prints: attempts, selection, prefixes."""

from __future__ import annotations

import json
import logging
import sys
import threading

from baton.core.logformat import (
    JsonFormatter,
    bind_unit,
    configure_logging,
    formatter,
    log_format,
    unbind_unit,
)
from baton.core.logsources import LogSource, numbered, prefixed, select
from baton.core.status import UnitKind
from hypothesis import given
from hypothesis import strategies as st

KEYS = {"time", "level", "logger", "message", "execution", "step", "partition", "attempt"}


def record(message: str, *args: object, **extra: object) -> logging.LogRecord:
    made = logging.LogRecord("user.code", logging.WARNING, __file__, 1, message, args, None)
    made.__dict__.update(extra)
    return made


@given(st.text())
def test_every_record_is_one_line_that_parses_with_every_key(message: str) -> None:
    line = JsonFormatter().format(record(message))
    assert "\n" not in line
    parsed = json.loads(line)
    assert set(parsed) >= KEYS and "chunk" not in parsed
    assert parsed["message"] == message and parsed["level"] == "WARNING"
    assert parsed["execution"] is None  # outside a unit


def test_a_bound_unit_names_itself_and_its_chunk_while_inside_one() -> None:
    fields: dict[str, object] = {"execution": 7, "step": "load", "partition": 3, "attempt": 2}
    token = bind_unit(lambda: fields)
    try:
        before = json.loads(JsonFormatter().format(record("opening %s", "files")))
        fields["chunk"] = 4
        inside = json.loads(JsonFormatter().format(record("item %d", 9)))
    finally:
        unbind_unit(token)
    assert {k: before[k] for k in ("execution", "step", "partition", "attempt")} == {
        "execution": 7, "step": "load", "partition": 3, "attempt": 2,
    }  # fmt: skip
    assert before["message"] == "opening files" and "chunk" not in before
    assert (inside["chunk"], inside["message"]) == (4, "item 9")
    assert json.loads(JsonFormatter().format(record("after")))["execution"] is None


def test_units_in_threads_of_one_process_keep_their_own_fields() -> None:
    seen: dict[str, object] = {}

    def unit(name: str) -> None:
        token = bind_unit(lambda: {"step": name})
        seen[name] = json.loads(JsonFormatter().format(record("x")))["step"]
        unbind_unit(token)

    threads = [threading.Thread(target=unit, args=(n,)) for n in ("a", "b")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert seen == {"a": "a", "b": "b"}


def test_an_exception_and_a_kopf_object_reference_are_kept() -> None:
    try:
        raise ValueError("bad\nthing")
    except ValueError:
        failing = record("failed")
        failing.exc_info = sys.exc_info()
    parsed = json.loads(JsonFormatter().format(failing))
    assert "ValueError: bad" in parsed["exception"]
    ref = {"kind": "BatchExecution", "name": "bx", "namespace": "team-a"}
    about = json.loads(JsonFormatter().format(record("reconciled", k8s_ref=ref)))
    assert (about["execution"], about["namespace"]) == ("bx", "team-a")


def test_the_format_is_text_or_json_and_switches_only_baton_s_handler() -> None:
    assert (log_format(None), log_format(" JSON "), log_format("")) == ("text", "json", "text")
    for bad in ("yaml", "xml"):
        try:
            log_format(bad)
        except ValueError as e:
            assert "one of text, json" in str(e)
        else:
            raise AssertionError(bad)
    assert isinstance(formatter("json"), JsonFormatter)
    assert not isinstance(formatter("text"), JsonFormatter)
    root = logging.getLogger()
    saved, saved_level = root.handlers[:], root.level
    try:
        foreign = logging.NullHandler()
        root.handlers[:] = [foreign]
        configure_logging("json")  # someone else's logging: left alone
        assert root.handlers == [foreign] and foreign.formatter is None
        configure_logging("json", level=None, every_handler=True)  # the operator over Kopf's
        assert isinstance(foreign.formatter, JsonFormatter)
        root.handlers[:] = []
        configure_logging("text")
        configure_logging("json")  # a second call switches its own handler
        (ours,) = root.handlers
        assert isinstance(ours.formatter, JsonFormatter) and root.level == logging.WARNING
    finally:
        root.handlers[:], root.level = saved, saved_level


def source(
    step: str, partition: int | None, order: str, kind: UnitKind = UnitKind.STEP
) -> LogSource:
    return LogSource(kind, step, partition, (order,), f"{step}-{partition}-{order}")


def test_attempts_count_each_units_runs_oldest_first_and_selection_combines() -> None:
    found = [
        source("load", 1, "3"),
        source("load", 0, "1"),
        source("load", 1, "2"),
        source("load", 1, "5", UnitKind.COMPENSATION),
        source("check", None, "4"),
    ]
    ordered = numbered(found)
    assert [(s.prefix, s.attempt) for s in ordered] == [
        ("load[0]", 1),
        ("load[1]", 1),
        ("load[1]", 2),
        ("check", 1),
        ("load[1]/compensation", 1),
    ]
    assert [s.ref for s in select(ordered, partition=1, attempt=2)] == ["load-1-3"]
    assert [s.ref for s in select(ordered, step="check")] == ["check-None-4"]
    assert select(ordered, step="load", partition=0, attempt=2) == []
    assert len(select(ordered)) == 5
    assert prefixed(ordered[0], "hello\r\n") == "load[0] hello"
