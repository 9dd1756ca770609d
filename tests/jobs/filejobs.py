"""Components for the file-item reliability tests (tests/reliability). Pauses, gates and
failures are driven by environment variables, so a restart can run clean."""

from __future__ import annotations

import contextlib
import os
import time
from pathlib import Path
from typing import Any

from baton.items import CsvReader, JsonLinesReader, JsonLinesWriter


class Transient(Exception):
    pass


def stamp(item: dict[str, Any]) -> dict[str, Any]:
    """The item with the writing process's pid; pauses once at BATON_TEST_PAUSE_AT
    (after touching BATON_TEST_PAUSE_MARK) so that a test can SIGSTOP it there."""
    n = item["n"]
    if os.environ.get("BATON_TEST_PAUSE_AT") == str(n):
        Path(os.environ["BATON_TEST_PAUSE_MARK"]).touch()
        time.sleep(1.5)
    delay = float(os.environ.get("BATON_TEST_SLEEP", "0"))
    if delay:
        time.sleep(delay)
    return {"n": n, "pid": os.getpid()}


def as_set(item: dict[str, Any]) -> dict[str, Any]:
    """Every 100th item carries a set (which JSON cannot carry)."""
    n = item["n"]
    return {"n": n, "tags": {n, n + 1}} if n % 100 == 0 else {"n": n}


_failed: set[int] = set()


class FailOnceJsonLinesWriter(JsonLinesWriter):
    """Stages the chunk, then raises Transient once for the chunk holding FAIL_AT."""

    fail_at = 0

    def write(self, items: list[Any]) -> None:
        super().write(items)
        hit = [i["n"] for i in items if i["n"] == self.fail_at]
        if hit and hit[0] not in _failed:
            _failed.add(hit[0])
            raise Transient(f"transient failure writing {hit[0]}")


class PickyJsonLinesWriter(JsonLinesWriter):
    """Stages the chunk, then refuses it when it holds an item in ``bad``."""

    bad: frozenset[int] = frozenset()

    def write(self, items: list[Any]) -> None:
        super().write(items)
        for i in items:
            if i["n"] in self.bad:
                raise ValueError(f"cannot write {i['n']}")


class GatedWriter:
    """A slow plain writer: on the first chunk it touches BATON_TEST_GATE_MARK and waits
    (up to 60 s) for BATON_TEST_GATE_OPEN to exist, then notes it in BATON_TEST_GATE_DONE."""

    def __init__(self) -> None:
        self.items: list[Any] = []

    def write(self, items: list[Any]) -> None:
        mark = os.environ.get("BATON_TEST_GATE_MARK")
        if mark and not self.items:
            Path(mark).touch()
            gate = Path(os.environ["BATON_TEST_GATE_OPEN"])
            deadline = time.monotonic() + 60
            while not gate.exists() and time.monotonic() < deadline:
                time.sleep(0.05)
            Path(os.environ["BATON_TEST_GATE_DONE"]).touch()
        self.items.extend(items)


class CloseFailsReader:
    """Reads 1..30 with no cursor (no open/update); its close() raises (releasing a
    lease on the input failing, say)."""

    def __init__(self) -> None:
        self.n = 0

    def read(self) -> Any:
        self.n += 1
        return {"n": self.n} if self.n <= 30 else None

    def close(self) -> None:
        raise OSError("close failed: the input's lease could not be released")


class LosesItsFileReader(JsonLinesReader):
    """Its file descriptor goes away after 300 records: an I/O error mid-file."""

    def read(self) -> Any:
        if self._count == 300 and self._file is not None:
            os.close(self._file.fileno())
        return super().read()

    def close(self) -> None:
        with contextlib.suppress(OSError):  # its descriptor is gone already
            super().close()


class _LogsLinesRead:
    """At close, appends "<records at open> <physical lines read>" to
    BATON_TEST_LINES_LOG: what a restart had to read to reach its cursor."""

    _restart_at: int
    lines_read: int

    def close(self) -> None:
        log = os.environ.get("BATON_TEST_LINES_LOG")
        if log:
            with open(log, "a") as f:
                f.write(f"{self._restart_at} {self.lines_read}\n")
        super().close()  # type: ignore[misc]


class LinesCsvReader(_LogsLinesRead, CsvReader):
    pass


class LinesJsonLinesReader(_LogsLinesRead, JsonLinesReader):
    pass


def numbered(item: dict[str, Any]) -> dict[str, Any] | None:
    """testjobs.process on a record whose ``n`` may be text (a CSV row)."""
    from testjobs import process

    return process({**item, "n": int(item["n"])})
