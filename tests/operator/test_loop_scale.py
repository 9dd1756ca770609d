"""The operator at scale, against the in-memory API server with its watch events and a
real repository: reconciles read the watch-fed cache (no GET of their execution, no LIST
of its Jobs), the work queue absorbs what the events and ticks add, and a tick reads the
repository once for all running executions."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import yaml
from baton.repository import JobRepository
from baton_operator.config import OperatorConfig
from baton_operator.dispatch import Dispatcher
from baton_operator.k8s.resources import TERMINAL_PHASES
from baton_operator.loop import Controller
from fake import FakeCluster, cached
from sqlalchemy import event

ROOT = Path(__file__).resolve().parents[2]
NUMBERS = ROOT / "examples" / "numbers"
TERMINAL = frozenset(p.value for p in TERMINAL_PHASES)


@pytest.fixture(autouse=True)
def _importable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(NUMBERS))


class Operator:
    """The operator's parts as the handlers wire them, driven on the test's thread."""

    def __init__(self, repo: JobRepository) -> None:
        self.fake = FakeCluster()
        self.fake.apply_job(yaml.safe_load((NUMBERS / "job.yaml").read_text()))
        self.queued: list[tuple[str, str]] = []
        cache = cached(self.fake, self._enqueue)
        self.controller = Controller(repo, cache, OperatorConfig(image="baton:test"))
        self.dispatch = Dispatcher(self.controller, terminal=TERMINAL, cache=cache)

    def _enqueue(self, namespace: str, name: str) -> None:
        self.queued.append((namespace, name))
        self.dispatch.enqueue(namespace, name)

    def settle(self, repo: JobRepository) -> None:
        """Work the queue and run the Jobs until nothing more happens."""
        for _ in range(40):
            self.dispatch.drain()
            if not self.fake.run_jobs(repo):
                self.dispatch.ticker.tick()
                if not self.dispatch.drain():
                    return

    def phase(self, name: str) -> str | None:
        return self.fake.status(name).get("phase")


@contextmanager
def database_calls(repo: JobRepository) -> Iterator[Counter[str]]:
    """Statements (SQLite's explicit BEGIN aside) and transactions on the repository's
    engine."""
    seen: Counter[str] = Counter()

    def statement(*args: Any) -> None:
        if args[2] != "BEGIN":
            seen["statements"] += 1

    def begin(*args: Any) -> None:
        seen["transactions"] += 1

    event.listen(repo.engine, "before_cursor_execute", statement)
    event.listen(repo.engine, "begin", begin)
    try:
        yield seen
    finally:
        event.remove(repo.engine, "before_cursor_execute", statement)
        event.remove(repo.engine, "begin", begin)


def test_executions_complete_from_events_and_ticks_without_reads(repo: JobRepository) -> None:
    op = Operator(repo)
    op.fake.apply_execution("a", {"job": "count-numbers", "parameters": {"count": 30}})
    op.fake.apply_execution("b", {"job": "count-numbers", "parameters": {"count": 40}})
    assert op.queued == [("default", "a"), ("default", "b")]  # the apply events
    op.settle(repo)
    assert (op.phase("a"), op.phase("b")) == ("Completed", "Completed")
    assert op.fake.status("b")["writeCount"] == 40
    assert op.fake.reads == Counter()  # every read from the watch-fed cache
    assert op.dispatch.ticker.running() == []
    # a stop and a restart arrive as spec events, like kubectl patch
    op.fake.apply_execution("s", {"job": "count-numbers", "parameters": {"count": 20}})
    op.dispatch.drain()
    op.fake.patch_spec("s", {"stop": True})
    op.dispatch.drain()
    assert op.phase("s") == "Stopped"  # no step had started: stopped at once
    op.fake.delete_job("s-1-prepare")  # its pod would refuse to run; the TTL takes it
    op.dispatch.drain()
    op.fake.patch_spec("s", {"stop": False, "restart": 1})
    op.settle(repo)
    assert op.phase("s") == "Completed" and op.fake.status("s")["attempt"] == 2
    assert op.fake.reads == Counter()


def test_our_own_status_writes_queue_nothing(repo: JobRepository) -> None:
    op = Operator(repo)
    op.fake.apply_execution("a", {"job": "count-numbers", "parameters": {"count": 5}})
    op.dispatch.drain()
    writes = op.fake.writes["patch status"]
    assert writes >= 1 and op.phase("a") == "Running"
    assert len(op.dispatch.queue) == 0  # their watch events were held versions already


def running(repo: JobRepository, n: int) -> Operator:
    """n executions whose first step's Job runs (never finishing here)."""
    op = Operator(repo)
    for i in range(n):
        op.fake.apply_execution(f"e{i}", {"job": "count-numbers", "parameters": {"count": i + 1}})
    op.dispatch.drain()
    assert all(op.phase(f"e{i}") == "Running" for i in range(n))
    assert len(op.dispatch.ticker.running()) == n
    return op


@pytest.mark.parametrize("n", [3, 30])
def test_a_tick_reads_the_repository_once_for_all_running_executions(
    repo: JobRepository, n: int
) -> None:
    op = running(repo, n)
    op.fake.reads.clear()
    for _ in range(3):
        with database_calls(repo) as calls:
            assert op.dispatch.ticker.tick() == n
            assert op.dispatch.drain() == n  # every running execution reconciled
        # one transaction of a fixed number of statements, whatever n
        assert calls == Counter({"transactions": 1, "statements": 5})
    assert op.fake.reads == Counter()  # no GET of an execution, no LIST of Jobs


def test_a_job_change_after_the_tick_makes_the_reconcile_read_afresh(
    repo: JobRepository,
) -> None:
    op = running(repo, 3)
    op.dispatch.ticker.tick()  # the states are read; the reconciles not run yet
    op.fake.run_job(repo, op.fake.jobs["e0-1-prepare"])  # a Job ends after the read
    op.fake.patch_spec("e1", {"stop": True})  # and a spec changes
    ids = {n: op.fake.status(n)["jobExecutionId"] for n in ("e0", "e1", "e2")}
    take = op.controller.prefetch.take
    assert take(("default", "e0"), ids["e0"]) is None  # stale: read afresh
    assert take(("default", "e1"), ids["e1"]) is None
    assert take(("default", "e2"), ids["e2"]) is not None  # nothing moved: used
    op.dispatch.drain()
    assert op.phase("e1") == "Stopped"
    op.fake.delete_job("e1-1-prepare")  # its pod would refuse to run; the TTL takes it
    op.settle(repo)
    assert op.phase("e0") == "Completed"
    assert not [e for e in op.fake.events if e[1] == "StepLost"]


def test_a_failing_database_backs_off_per_execution(
    repo: JobRepository, monkeypatch: pytest.MonkeyPatch
) -> None:
    op = running(repo, 3)

    def down(*args: Any, **kw: Any) -> Any:
        raise ConnectionError("database down")

    monkeypatch.setattr(repo, "execution_states", down)
    monkeypatch.setattr(op.controller, "repository_state", down)
    op.dispatch.ticker.tick()
    assert op.dispatch.drain() == 3
    for key in op.dispatch.ticker.running():
        assert op.dispatch.queue.failures(key) == 1 and op.dispatch.queue.backing_off(key)
    op.dispatch.ticker.tick()  # the next tick leaves them to their backoff
    assert op.dispatch.drain() == 0


def test_an_execution_deleted_while_the_watch_was_away_is_found_by_the_resync(
    repo: JobRepository,
) -> None:
    op = running(repo, 2)
    gone = op.fake.executions.pop(("default", "e0"))  # no DELETED event reached us
    assert op.dispatch.resync() == 0  # not due yet
    assert op.dispatch.resync(force=True) == 1
    assert op.dispatch.ticker.running() == [("default", "e1")]
    row = repo.get_execution(gone["status"]["jobExecutionId"])
    assert row.status.value == "FAILED" and "deleted" in (row.exit_description or "")
    assert op.fake.reads == Counter()  # one LIST of the namespace, no GET
