"""BatchSchedules in the real cluster, through kubectl and the ``baton`` CLI as a user
drives them: every minute exactly one execution per window across an operator pod
deletion during a window, each window's failed first attempt restarted (same instance,
from its checkpoint) rather than launched anew, ``suspend`` stopping new windows, and a
backfill of 5 past windows with ``--max-running 2`` that never has more than 2 running
and skips the window already COMPLETED.

What happened is checked in the repository (``baton executions --json``) and in the
example's own table ``window_rows`` (each window's rows exactly once)."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections import Counter
from typing import Any

import pytest
from conftest import Database, Kubectl, Postgres

from .support import SYSTEM, apply_job, operator_logs

pytestmark = pytest.mark.e2e

EXAMPLES = "/opt/baton/examples"
ITEMS = 20
TERMINAL = {"Completed", "Failed", "Stopped", "Abandoned", "Rejected", "Compensated"}


def schedule(kubectl: Kubectl, ns: str, name: str, **spec: Any) -> None:
    kubectl.apply(
        {
            "apiVersion": "baton.dev/v1alpha1",
            "kind": "BatchSchedule",
            "metadata": {"name": name},
            "spec": {
                "schedule": "* * * * *",
                "job": "window-report",
                "windowParameter": "window",
                "workingDir": f"{EXAMPLES}/windows",
                "successfulExecutionsHistoryLimit": 10,  # keep them all to count them
                "failedExecutionsHistoryLimit": 10,
                **spec,
            },
        },
        ns,
    )


def executions(kubectl: Kubectl, ns: str, name: str) -> list[dict[str, Any]]:
    found = kubectl.json("-n", ns, "get", "bx", "-l", f"baton.dev/schedule={name}")
    return list(found["items"])


def phases(items: list[dict[str, Any]]) -> dict[str, str | None]:
    return {i["metadata"]["name"]: (i.get("status") or {}).get("phase") for i in items}


def repository(db: Database) -> list[dict[str, Any]]:
    """The repository's executions of the example job (``baton executions --json``)."""
    proc = subprocess.run(
        [sys.executable, "-m", "baton", "executions", "--job", "window-report", "--json",
         "--db", db.url],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    return list(json.loads(proc.stdout))


def window_of(e: dict[str, Any]) -> str:
    return str(e["parameters"]["window"])


def windows(items: list[dict[str, Any]]) -> set[str]:
    """The windows of a schedule's BatchExecutions (their window parameter)."""
    return {str(i["spec"]["parameters"]["window"]) for i in items}


def rows_per_window(postgres: Postgres, db: Database) -> dict[str, tuple[int, int]]:
    out = postgres.sql(
        'SELECT "window", count(*), count(DISTINCT n) FROM window_rows GROUP BY 1', db.name
    )
    found = {}
    for line in out.splitlines():
        window, total, distinct = line.split("|")
        found[window] = (int(total), int(distinct))
    return found


def cli(kubectl: Kubectl, ns: str, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "baton", *args, "-n", ns, "--kubeconfig", kubectl.kubeconfig],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


def test_every_minute_exactly_once_across_an_operator_restart_failed_windows_restarted(
    kubectl: Kubectl, ns: str, operator: Database, postgres: Postgres
) -> None:
    apply_job(kubectl, ns, "windows")
    params = {"items": ITEMS, "delayMs": 300, "failFirstAttemptAt": 7}
    schedule(kubectl, ns, "minutely", parameters=params, startingDeadlineSeconds=150)

    def running() -> list[str]:
        return [n for n, p in phases(executions(kubectl, ns, "minutely")).items() if p == "Running"]

    first = kubectl.wait_until("a window running", running, timeout=150)[0]
    kubectl(
        "-n", SYSTEM, "delete", "pod", "-l", "app.kubernetes.io/component=operator",
        "--wait=false",
    )  # fmt: skip

    def two_done() -> bool:
        done = [p for p in phases(executions(kubectl, ns, "minutely")).values() if p == "Completed"]
        return len(done) >= 2

    try:
        kubectl.wait_until("two windows completed", two_done, timeout=300, interval=2)
    except AssertionError:
        print(json.dumps(phases(executions(kubectl, ns, "minutely")), indent=1))
        print(operator_logs(kubectl))
        raise
    kubectl("-n", ns, "patch", "bs", "minutely", "--type", "merge", "-p",
            '{"spec": {"suspend": true}}')  # fmt: skip
    kubectl.wait_until(  # the running ones end (a failed one is not restarted now)
        "the windows ended",
        lambda: all(p in TERMINAL for p in phases(executions(kubectl, ns, "minutely")).values()),
        timeout=180,
        interval=2,
    )
    made = set(phases(executions(kubectl, ns, "minutely")))
    time.sleep(65)  # a window passes while suspended
    assert set(phases(executions(kubectl, ns, "minutely"))) == made, "suspend launched a window"
    st = kubectl.get("bs", "minutely", ns)["status"]
    assert "nextWindow" not in st and st["lastSuccessfulWindow"]
    assert first in made

    # the repository: per window one instance; its first attempt FAILED at item 7, the
    # restart (same instance) COMPLETED; no window launched twice
    mine = windows(executions(kubectl, ns, "minutely"))
    by_window: dict[str, list[dict[str, Any]]] = {}
    for e in sorted(repository(operator), key=lambda e: e["id"]):
        if window_of(e) in mine:  # (the database is the whole session's)
            by_window.setdefault(window_of(e), []).append(e)
    assert len(by_window) == len(made) >= 2
    for window, runs in by_window.items():
        if runs[-1]["status"] != "COMPLETED":
            continue  # the last window, caught by suspend while failing: restartable
        assert [r["status"] for r in runs] == ["FAILED", "COMPLETED"], (window, runs)
        assert len({r["instanceId"] for r in runs}) == 1
    # every completed window's rows exactly once (rows of the failed attempt's last,
    # uncommitted chunk rolled back with it)
    rows = rows_per_window(postgres, operator)
    for window, runs in by_window.items():
        if runs[-1]["status"] == "COMPLETED":
            assert rows[window] == (ITEMS, ITEMS), (window, rows)


def test_backfill_of_5_windows_max_running_2_skips_the_completed_one(
    kubectl: Kubectl, ns: str, operator: Database
) -> None:
    apply_job(kubectl, ns, "windows")
    schedule(kubectl, ns, "nightly", schedule="0 2 * * *", suspend=True,
             parameters={"items": 10, "delayMs": 300})  # fmt: skip
    done = cli(kubectl, ns, "backfill", "nightly", "--from", "2026-01-03T02:00",
               "--to", "2026-01-03T02:00", "--wait")  # fmt: skip
    out, err = done.communicate(timeout=300)
    assert done.returncode == 0, (out, err)
    assert "1/1 completed" in out

    backfill = cli(kubectl, ns, "backfill", "nightly", "--from", "2026-01-01",
                   "--to", "2026-01-05T23:00", "--max-running", "2", "--wait")  # fmt: skip
    peak = 0
    while backfill.poll() is None:
        seen = phases(executions(kubectl, ns, "nightly"))
        peak = max(peak, sum(1 for p in seen.values() if p not in TERMINAL))
        time.sleep(0.5)
    out, err = backfill.communicate()
    assert backfill.returncode == 0, (out, err, operator_logs(kubectl))
    assert "5/5 completed" in out
    assert peak <= 2, peak
    st = kubectl.get("bs", "nightly", ns)["status"]["backfill"]
    assert (st["total"], st["completed"], st["done"]) == (5, 5, True)
    # one execution per window: the 3rd (COMPLETED before the backfill) not run again
    mine = windows(executions(kubectl, ns, "nightly"))
    per_window = Counter(window_of(e) for e in repository(operator) if window_of(e) in mine)
    assert sorted(per_window.values()) == [1] * 5, per_window
    assert set(phases(executions(kubectl, ns, "nightly"))) == {
        f"nightly-2026010{d}0200" for d in range(1, 6)
    }
