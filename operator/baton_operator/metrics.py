"""Prometheus metrics of the operator, served on /metrics (prometheus-client)."""

from __future__ import annotations

import threading
from collections.abc import Sequence

from baton.core.entities import StepExecution
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    ProcessCollector,
    start_http_server,
)

from baton_operator.k8s.resources import Phase

REGISTRY = CollectorRegistry()
ProcessCollector(registry=REGISTRY)  # process_resident_memory_bytes, cpu, fds

EXECUTIONS = Gauge(
    "baton_executions",
    "BatchExecutions by job and phase.",
    ["namespace", "job", "phase"],
    registry=REGISTRY,
)
RUNNING = Gauge(
    "baton_running_executions",
    "BatchExecutions in phase Starting, Running or Stopping.",
    registry=REGISTRY,
)
STEP_DURATION = Histogram(
    "baton_step_duration_seconds",
    "Duration of finished step executions (each partition separately).",
    ["job", "step", "status"],
    buckets=(0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600, 1800, 3600, 7200),
    registry=REGISTRY,
)
CHUNK_DURATION = Histogram(
    "baton_chunk_duration_seconds",
    "Mean chunk duration of finished chunk steps (step duration / commits).",
    ["job", "step"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
    registry=REGISTRY,
)
ITEMS = Counter(
    "baton_items_total",
    "Items read, written, filtered and skipped by chunk steps, as the repository counts them.",
    ["job", "step", "kind"],
    registry=REGISTRY,
)
RECONCILE_DURATION = Histogram(
    "baton_reconcile_duration_seconds",
    "Duration of one reconciliation of a BatchExecution.",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
    registry=REGISTRY,
)
RECONCILE_ERRORS = Counter(
    "baton_reconcile_errors_total",
    "Reconciliations that raised, by exception type.",
    ["error"],
    registry=REGISTRY,
)
API_WRITES = Counter(
    "baton_kube_writes_total",
    "Writes the operator made to the Kubernetes API, by verb and resource.",
    ["verb", "resource"],
    registry=REGISTRY,
)
API_REQUESTS = Counter(
    "baton_kube_requests_total",
    "Requests the operator sent to the Kubernetes API (reads and writes; not Kopf's "
    "watches), by verb and resource, as apiserver_request_total names them.",
    ["verb", "resource"],
    registry=REGISTRY,
)
API_THROTTLED = Counter(
    "baton_kube_throttled_seconds_total",
    "Seconds requests waited for the client-side rate limit (operator.apiQPS/apiBurst).",
    registry=REGISTRY,
)
QUEUE_DEPTH = Gauge(
    "baton_workqueue_depth",
    "BatchExecutions waiting in the work queue for a worker (not counting those in backoff).",
    registry=REGISTRY,
)
QUEUE_WAIT = Histogram(
    "baton_workqueue_wait_seconds",
    "Time a BatchExecution waited in the work queue before a worker took it.",
    buckets=(0.001, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
    registry=REGISTRY,
)
QUEUE_RETRIES = Counter(
    "baton_workqueue_retries_total",
    "Reconciles that failed and were put back with a per-execution exponential backoff.",
    registry=REGISTRY,
)
TRANSITIONS = Counter(
    "baton_transitions_total",
    "Phase transitions of BatchExecutions, by job and new phase.",
    ["job", "phase"],
    registry=REGISTRY,
)

_lock = threading.Lock()
_phases: dict[tuple[str, str], tuple[str, str]] = {}  # (ns, name) → (job, phase)
_seen_counts: dict[int, tuple[int, int, int, int]] = {}  # step execution id → counts
_finished_steps: set[int] = set()

RUNNING_PHASES = frozenset({"Starting", "Running", "Stopping", "Compensating"})
_jobs_seen: set[str] = set()


def observe_phase(namespace: str, name: str, job: str, phase: str | None) -> None:
    """Record an execution's phase (None: the execution was deleted). A transition is
    counted when the phase differs from the last one recorded for the execution; an
    execution seen for the first time (e.g. after an operator restart) counts none."""
    with _lock:
        old = _phases.get((namespace, name))
        if phase is None:
            _phases.pop((namespace, name), None)
        else:
            if job not in _jobs_seen:
                # every series exists from 0, so rate()/increase() see the first change
                _jobs_seen.add(job)
                for each in Phase:
                    TRANSITIONS.labels(job, each.value)
            _phases[(namespace, name)] = (job, phase)
            if old is not None and old[1] != phase:
                TRANSITIONS.labels(job, phase).inc()
        counts: dict[tuple[str, str, str], int] = {}
        for (ns, _), (j, p) in _phases.items():
            counts[(ns, j, p)] = counts.get((ns, j, p), 0) + 1
        EXECUTIONS.clear()
        for (ns, j, p), n in counts.items():
            EXECUTIONS.labels(ns, j, p).set(n)
        RUNNING.set(sum(1 for _, p in _phases.values() if p in RUNNING_PHASES))


def observe_steps(job: str, steps: Sequence[StepExecution]) -> None:
    """Count new items and finished steps since the last look (each step execution is
    counted by its delta, so repeated reconciles never double count)."""
    with _lock:
        for s in steps:
            now = (s.read_count, s.write_count, s.filter_count, s.skip_count)
            before = _seen_counts.get(s.id, (0, 0, 0, 0))
            for kind, a, b in zip(
                ("read", "written", "filtered", "skipped"), now, before, strict=True
            ):
                if a > b:
                    ITEMS.labels(job, s.step_name, kind).inc(a - b)
            _seen_counts[s.id] = now
            if s.status.terminal and s.end_time is not None and s.id not in _finished_steps:
                _finished_steps.add(s.id)
                seconds = max((s.end_time - s.start_time).total_seconds(), 0.0)
                STEP_DURATION.labels(job, s.step_name, s.status.value).observe(seconds)
                if s.commit_count:
                    CHUNK_DURATION.labels(job, s.step_name).observe(seconds / s.commit_count)


def serve(port: int) -> None:
    start_http_server(port, registry=REGISTRY)
