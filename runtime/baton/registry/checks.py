"""Checking a job's components before launch: every reference resolves and can play its
role, so a typo is one clear error (exit 5) instead of a failed execution."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from baton.spec.model import BatchJob, StepBody
from baton.spec.refs import add_import_paths, check_component, resolve_exception


def check_components(job: BatchJob, source_dir: Path | None) -> None:
    """Import every ``module:attr`` of every step (group members, callbacks and
    compensations included), check each can play its role, and resolve every exception
    name: before anything is recorded, so a typo is one clear error (exit 5) instead of
    a failed execution."""
    add_import_paths([source_dir, Path.cwd()])
    for step in job.spec.all_steps():
        for ref, role, args in _components(step):
            check_component(ref, role, args)
        if step.chunk is not None:
            for name in (*step.chunk.skip, *step.chunk.retry):
                resolve_exception(name)


def check_builtin_components(job: BatchJob) -> None:
    """What the operator can check without the steps' image: Baton's own components
    (``baton.…``) of steps that run the operator's default image, which carries the
    same Baton — so ``writerArgs: {use_copy: false}`` is refused at launch in a cluster
    too. Users' components live only in their image (``baton validate --image``)."""
    for step in job.spec.all_steps():
        if step.image is None:
            for ref, role, args in _components(step):
                if ref.startswith("baton."):
                    check_component(ref, role, args)


def _components(step: StepBody) -> Iterator[tuple[str, str, dict[str, Any] | None]]:
    """Each component of ``step``: its reference, role and manifest args."""
    if step.tasklet:
        yield step.tasklet, "tasklet", step.tasklet_args
    if step.compensate:
        yield step.compensate, "tasklet", None
    if step.chunk is not None:
        c = step.chunk
        yield c.reader, "reader", c.reader_args
        if c.processor:
            yield c.processor, "processor", c.processor_args
        yield c.writer, "writer", c.writer_args
