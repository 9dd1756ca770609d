"""What the scale bench reads and how it reduces it: Prometheus text (the API server's
``apiserver_request_total``, the operator's ``baton_reconcile_duration_seconds``), the
operator's process in /proc, and PostgreSQL's own statistics. Reading is thin I/O; the
arithmetic (deltas, histogram quantiles, rates) is pure."""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from prometheus_client.parser import text_string_to_metric_families

RECONCILE_HISTOGRAM = "baton_reconcile_duration_seconds"
_K = TypeVar("_K")


def api_requests(text: str) -> dict[tuple[str, str], float]:
    """``apiserver_request_total`` summed by (verb, resource); non-resource URLs
    (``/metrics``, ``/readyz``) count under their path-less resource ''."""
    out: dict[tuple[str, str], float] = {}
    for family in text_string_to_metric_families(text):
        if family.name != "apiserver_request":
            continue
        for s in family.samples:
            if s.name == "apiserver_request_total":
                key = (s.labels.get("verb", ""), s.labels.get("resource", ""))
                out[key] = out.get(key, 0.0) + s.value
    return out


def histogram_buckets(text: str, name: str) -> dict[float, float]:
    """A histogram's cumulative buckets (upper bound → count), summed over its labels."""
    out: dict[float, float] = {}
    for family in text_string_to_metric_families(text):
        if family.name != name:
            continue
        for s in family.samples:
            if s.name == f"{name}_bucket":
                le = float(s.labels["le"])
                out[le] = out.get(le, 0.0) + s.value
    return out


def delta(after: Mapping[_K, float], before: Mapping[_K, float]) -> dict[_K, float]:
    return {k: v - before.get(k, 0.0) for k, v in after.items()}


def quantile(buckets: Mapping[float, float], q: float) -> float | None:
    """Prometheus ``histogram_quantile`` on cumulative buckets (linear within a bucket);
    None without observations, the highest finite bound when it lands in +Inf."""
    bounds = sorted(buckets)
    if not bounds or buckets[bounds[-1]] <= 0:
        return None
    rank = q * buckets[bounds[-1]]
    lower, below = 0.0, 0.0
    for le in bounds:
        count = buckets[le]
        if count >= rank:
            if math.isinf(le):
                return lower
            if count == below:
                return le
            return lower + (le - lower) * (rank - below) / (count - below)
        lower, below = le, count
    return lower


def per_execution_minute(count: float, running: float, seconds: float) -> float | None:
    """A count over a window as a rate per running execution per minute."""
    if running <= 0 or seconds <= 0:
        return None
    return count / running / (seconds / 60.0)


# ---------------------------------------------------------------- the operator's process


@dataclass(frozen=True)
class ProcessSample:
    rss_bytes: int
    cpu_seconds: float


def operator_pid(pod_name: str) -> int | None:
    """The host PID of the operator pod's ``kopf run`` (its HOSTNAME is the pod name)."""
    want = f"HOSTNAME={pod_name}".encode()
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmd = (proc / "cmdline").read_bytes()
            if b"baton_operator.handlers" not in cmd:
                continue
            if want in (proc / "environ").read_bytes().split(b"\0"):
                return int(proc.name)
        except OSError:
            continue
    return None


def process_sample(pid: int) -> ProcessSample | None:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    rss_kb = next(int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS"))
    fields = stat.rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return ProcessSample(rss_kb * 1024, (int(fields[11]) + int(fields[12])) / ticks)


# ---------------------------------------------------------------- PostgreSQL

PG_STATEMENTS = """
    SELECT r.rolname, coalesce(sum(s.calls), 0)
    FROM pg_stat_statements s JOIN pg_roles r ON r.oid = s.userid
    WHERE s.dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
    GROUP BY r.rolname
"""
PG_DATABASE = """
    SELECT xact_commit + xact_rollback, numbackends
    FROM pg_stat_database WHERE datname = current_database()
"""


def too_many_clients(log: Path, offset: int) -> tuple[int, int]:
    """(count of "too many clients" lines after byte ``offset`` of the server log,
    the log's size now)."""
    try:
        with log.open("rb") as f:
            f.seek(offset)
            data = f.read()
    except OSError:
        return 0, offset
    return data.count(b"too many clients"), offset + len(data)
