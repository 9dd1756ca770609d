"""The work queue (FIFO, one entry per key, per-key exponential backoff), its workers,
and the client-side rate limit of the Kubernetes API calls."""

from __future__ import annotations

import threading

import pytest
from baton_operator.k8s.throttle import TokenBucket, request_kind
from baton_operator.workqueue import Workers, WorkQueue, backoff_delay
from hypothesis import given, settings
from hypothesis import strategies as st


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def drain(q: WorkQueue[str]) -> list[str]:
    out = []
    while (key := q.get(timeout=0)) is not None:
        out.append(key)
        q.done(key)
    return out


def test_a_burst_of_a_thousand_adds_is_worked_once_each_in_order() -> None:
    q: WorkQueue[str] = WorkQueue()
    keys = [f"e{i:04d}" for i in range(1000)]
    for k in keys:
        q.add(k)
    for k in keys[::3]:  # adding again while queued changes nothing
        q.add(k)
    seen: list[str] = []
    workers = Workers(q, seen.append, count=1)
    while (key := q.get(timeout=0)) is not None:
        workers.run(key)
    assert seen == keys


def test_many_workers_take_each_key_once_and_never_one_key_twice_at_once() -> None:
    q: WorkQueue[int] = WorkQueue()
    busy: set[int] = set()
    seen: list[int] = []
    lock = threading.Lock()

    def work(key: int) -> None:
        with lock:
            assert key not in busy
            busy.add(key)
            seen.append(key)
        with lock:
            busy.discard(key)

    workers = Workers(q, work, count=4)
    for i in range(1000):
        q.add(i)
    workers.start()
    try:
        for _ in range(500):
            if len(seen) == 1000:
                break
            threading.Event().wait(0.01)
    finally:
        workers.stop()
    assert sorted(seen) == list(range(1000))


def test_a_key_added_while_in_work_is_worked_again_after() -> None:
    q: WorkQueue[str] = WorkQueue()
    q.add("a")
    key = q.get(timeout=0)
    q.add("a")  # a new event while the worker is on it
    assert q.get(timeout=0) is None  # not twice at once
    assert key is not None
    q.done(key)
    assert drain(q) == ["a"]


def test_failures_back_off_exponentially_per_key_and_reset_on_success() -> None:
    clock = Clock()
    q: WorkQueue[str] = WorkQueue(base=1, cap=8, clock=clock)
    fail = {"bad"}

    def work(key: str) -> None:
        if key in fail:
            raise RuntimeError("database down")

    workers = Workers(q, work)
    delays = []
    q.add("bad")
    q.add("good")
    for _ in range(5):
        worked = []
        while (key := q.get(timeout=0)) is not None:  # what is due now
            worked.append(key)
            workers.run(key)
        assert worked.count("bad") == 1  # once per backoff period, not more
        assert q.backing_off("bad") and not q.backing_off("good")
        delays.append(q.failures("bad"))
        clock.now += backoff_delay(q.failures("bad"), 1, 8)
    assert delays == [1, 2, 3, 4, 5]
    fail.clear()
    key = q.get(timeout=0)
    assert key == "bad"
    workers.run(key)
    assert q.failures("bad") == 0 and not q.backing_off("bad")


def test_an_event_during_backoff_is_worked_at_once_and_the_retry_dropped() -> None:
    clock = Clock()
    q: WorkQueue[str] = WorkQueue(base=10, cap=100, clock=clock)
    q.add("a")
    key = q.get(timeout=0)
    assert key == "a"
    q.retry(key)
    q.done(key)
    q.add("a")  # e.g. the user patched spec.stop
    key = q.get(timeout=0)
    assert key == "a"
    q.forget(key)
    q.done(key)
    clock.now += 100
    assert q.get(timeout=0) is None  # the delayed retry was superseded


@given(st.integers(0, 80), st.floats(0.01, 10), st.floats(10, 1000))
def test_backoff_grows_and_stays_under_its_cap(n: int, base: float, cap: float) -> None:
    d = backoff_delay(n, base, cap)
    assert 0 <= d <= cap
    assert backoff_delay(n + 1, base, cap) >= d
    if n >= 1 and base * 2 ** (n - 1) <= cap:
        assert d == pytest.approx(base * 2 ** (n - 1))


@settings(max_examples=50)
@given(st.floats(0.5, 200), st.integers(1, 50), st.integers(1, 300))
def test_the_bucket_allows_burst_then_qps(qps: float, burst: int, n: int) -> None:
    """n requests at once take (n - burst) / qps seconds, never less."""
    clock = Clock()
    bucket = TokenBucket(qps, burst, clock=clock, sleep=clock.sleep)
    for _ in range(n):
        bucket.acquire()
    assert clock.now == pytest.approx(max(0, n - burst) / qps, abs=1e-6)


def test_an_unlimited_bucket_never_waits() -> None:
    clock = Clock()
    bucket = TokenBucket(0, 1, clock=clock, sleep=clock.sleep)
    assert all(bucket.acquire() == 0 for _ in range(1000)) and clock.now == 0


@pytest.mark.parametrize(
    ("method", "url", "kind"),
    [
        ("GET", "https://k/apis/batch/v1/namespaces/a/jobs?labelSelector=x", ("list", "jobs")),
        ("GET", "https://k/apis/batch/v1/namespaces/a/jobs/j1", ("get", "jobs")),
        ("POST", "https://k/apis/batch/v1/namespaces/a/jobs", ("create", "jobs")),
        ("DELETE", "https://k/apis/batch/v1/namespaces/a/jobs/j1", ("delete", "jobs")),
        (
            "PATCH",
            "https://k/apis/baton.dev/v1alpha1/namespaces/a/batchexecutions/x/status",
            ("patch", "batchexecutions/status"),
        ),
        ("GET", "https://k/api/v1/namespaces/a/pods?watch=true", ("watch", "pods")),
        ("GET", "https://k/api/v1/namespaces", ("list", "namespaces")),
        ("GET", "https://k/api/v1/namespaces/a", ("get", "namespaces")),
        ("POST", "https://k/api/v1/namespaces/a/events", ("create", "events")),
        ("GET", "https://k/apis/kopf.dev/v1/clusterkopfpeerings/p", ("get", "clusterkopfpeerings")),
        ("GET", "https://k/version", ("get", "version")),
    ],
)
def test_requests_are_named_like_the_api_servers_metrics(
    method: str, url: str, kind: tuple[str, str]
) -> None:
    assert request_kind(method, url) == kind


def test_a_paused_replicas_workers_leave_the_queue_alone() -> None:
    """Kopf peering: only the active replica works; keys wait for it."""
    q: WorkQueue[str] = WorkQueue()
    active = threading.Event()
    worked = threading.Event()
    workers = Workers(q, lambda key: worked.set(), count=2, active=active.is_set)
    q.add("a")
    workers.start()
    try:
        assert not worked.wait(0.3) and len(q) == 1
        active.set()
        assert worked.wait(5)
    finally:
        workers.stop()
