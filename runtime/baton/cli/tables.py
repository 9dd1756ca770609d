"""The human form of each listing: a Rich table built from the JSON views of
:mod:`baton.cli.render` (the same keys ``--json`` prints)."""

from __future__ import annotations

import json
from typing import Any

from rich.table import Table

STATUS_STYLE = {
    "COMPLETED": "green",
    "FAILED": "red",
    "STOPPED": "yellow",
    "STOPPING": "yellow",
    "STARTED": "cyan",
    "STARTING": "cyan",
    "ABANDONED": "magenta",
    "UNKNOWN": "red",
}
COUNTS = ("readCount", "writeCount", "filterCount", "skipCount", "commitCount", "rollbackCount")


def styled(status: str) -> str:
    """A status in its colour (Rich markup)."""
    return f"[{STATUS_STYLE.get(status, 'white')}]{status}[/]"


def params_text(params: dict[str, Any]) -> str:
    return " ".join(f"{k}={v}" for k, v in params.items())


def unit_name(step: str, partition: int | None) -> str:
    """``step`` or ``step[partition]``."""
    return step if partition is None else f"{step}[{partition}]"


def _mib(kb: int | None) -> str:
    return f"{kb / 1024:.0f}" if kb else ""


def jobs_table(rows: list[dict[str, Any]]) -> Table:
    t = Table("Job", "Instances", "Executions", "Last execution", "Last status")
    for r in rows:
        t.add_row(
            r["job"],
            str(r["instances"]),
            str(r["executions"]),
            str(r["lastExecutionId"] or ""),
            styled(r["lastStatus"] or ""),
        )
    return t


def instances_table(rows: list[dict[str, Any]]) -> Table:
    t = Table("Instance", "Parameters", "Last execution", "Last status", "Created")
    for r in rows:
        t.add_row(
            str(r["id"]),
            params_text(r["parameters"]),
            str(r["lastExecutionId"] or ""),
            styled(r["lastStatus"] or ""),
            r["createTime"][:19],
        )
    return t


def executions_table(rows: list[dict[str, Any]]) -> Table:
    t = Table("ID", "Job", "Instance", "Attempt", "Status", "Parameters", "Started", "Exit")
    for r in rows:
        t.add_row(
            str(r["id"]),
            r["job"],
            str(r["instanceId"]),
            str(r["attempt"]),
            styled(r["status"]) + (" (process gone)" if r["processGone"] else ""),
            params_text(r["parameters"]),
            (r["startTime"] or "")[:19],
            r["exitDescription"][:60],
        )
    return t


def steps_table(steps: list[dict[str, Any]]) -> Table:
    """The steps of ``baton show``: counts, peak memory, exit."""
    t = Table(
        "Step",
        "Status",
        "Read",
        "Written",
        "Filtered",
        "Skipped",
        "Commits",
        "Rollbacks",
        "Peak MiB",
        "Exit",
    )
    for s in steps:
        t.add_row(
            unit_name(s["name"], s["partition"]),
            styled(s["status"]),
            *(str(s[k]) for k in COUNTS),
            _mib(s["peakMemoryKb"]),
            (s["exitDescription"] or "").split("\n", 1)[0][:60],
        )
    return t


def skips_table(rows: list[dict[str, Any]]) -> Table:
    t = Table("Step", "Phase", "Item", "Error")
    for r in rows:
        t.add_row(r["step"], r["phase"], json.dumps(r["item"], default=str)[:80], r["error"])
    return t


def results_table(rows: list[dict[str, Any]]) -> Table:
    t = Table("Step", "Status", "Result")
    for r in rows:
        t.add_row(
            unit_name(r["step"], r["partition"]),
            styled(r["status"]),
            json.dumps(r["result"], default=str)[:100],
        )
    return t


def history_table(rows: list[dict[str, Any]]) -> Table:
    t = Table(
        "Exec", "Step", "Kind", "Status", "Worker", "Started", "Seconds", "Peak MiB", "Incarnations"
    )
    for r in rows:
        t.add_row(
            str(r["execution"]),
            unit_name(r["step"], r["partition"]),
            r["kind"],
            styled(r["status"]),
            r["worker"] or "",
            r["startTime"][:19],
            str(r["durationSeconds"] or ""),
            _mib(r["peakMemoryKb"]),
            str(r["incarnations"]),
        )
    return t
