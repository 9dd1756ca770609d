"""``baton purge``: delete old instances from the job repository (see
:mod:`baton.repository.purge`); one summary line, or ``--json``."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

import typer

from baton.cli.options import AsJson, Db
from baton.cli.session import print_json, session
from baton.core.retention import parse_duration
from baton.repository.engine import DEFAULT_URL
from baton.repository.purge import DEFAULT_BATCH, PurgeOptions, purge


def _duration(text: str) -> dt.timedelta:
    try:
        return parse_duration(text)
    except ValueError as e:
        raise typer.BadParameter(str(e)) from None


def summary(report: dict[str, Any]) -> str:
    """The one line ``baton purge`` prints."""
    verb = "would purge" if report["dryRun"] else "purged"
    kept = report["kept"]
    protected = [f"{kept[k]} {k}" for k in ("running", "restartable") if kept[k]]
    tail = f"; kept {', '.join(protected)}" if protected else ""
    return (
        f"{verb} {report['instances']} instance(s) last active before {report['cutoff']}: "
        f"{report['executions']} execution(s), {report['steps']} step execution(s), "
        f"{report['skippedItems']} skipped item(s), {report['partitions']} partition(s) "
        f"in {report['batches']} batch(es){tail}"
    )


def purge_command(
    older_than: Annotated[
        str,
        typer.Option(
            "--older-than",
            help="Purge instances with no activity for this long: 90d, 12h, 30m, 1d12h.",
        ),
    ],
    keep_last: Annotated[
        int, typer.Option("--keep-last", min=0, help="Keep the newest N instances of each job.")
    ] = 0,
    job: Annotated[str | None, typer.Option("--job", "-j", help="Only this job.")] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Count what would be purged; change nothing.")
    ] = False,
    include_restartable: Annotated[
        bool,
        typer.Option(
            "--include-restartable",
            help="Also purge instances whose last execution FAILED or STOPPED.",
        ),
    ] = False,
    batch: Annotated[
        int, typer.Option("--batch", min=1, max=5000, help="Instances per transaction.")
    ] = DEFAULT_BATCH,
    db: Db = DEFAULT_URL,
    as_json: AsJson = False,
) -> None:
    """Delete old job instances (executions, steps, contexts, skips, results, partitions)
    from the repository in short batches; never a running or restartable one."""
    options = PurgeOptions(
        older_than=_duration(older_than),
        keep_last=keep_last,
        job=job,
        dry_run=dry_run,
        include_restartable=include_restartable,
        batch=batch,
    )
    report = purge(session.repository(db, interactive=False), options).to_json()
    if as_json:
        print_json(report)
    else:
        session.out.print(summary(report), highlight=False, markup=False)
