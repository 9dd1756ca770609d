"""Checking a job's components before launch: every reference resolves and can play its
role, so a typo is one clear error (exit 5) instead of a failed execution."""

from __future__ import annotations

from pathlib import Path

from baton.spec.model import BatchJob
from baton.spec.refs import add_import_paths, check_component, resolve_exception


def check_components(job: BatchJob, source_dir: Path | None) -> None:
    """Import every ``module:attr`` of every step (group members, callbacks and
    compensations included), check each can play its role, and resolve every exception
    name: before anything is recorded, so a typo is one clear error (exit 5) instead of
    a failed execution."""
    add_import_paths([source_dir, Path.cwd()])
    for step in job.spec.all_steps():
        if step.tasklet:
            check_component(step.tasklet, "tasklet", step.tasklet_args)
        if step.compensate:
            check_component(step.compensate, "tasklet")
        if step.chunk is not None:
            c = step.chunk
            check_component(c.reader, "reader", c.reader_args)
            if c.processor:
                check_component(c.processor, "processor", c.processor_args)
            check_component(c.writer, "writer", c.writer_args)
            for name in (*step.chunk.skip, *step.chunk.retry):
                resolve_exception(name)
