"""The decorator API: ``@baton.job`` and the step builders it returns.

A decorated definition is equivalent to a manifest: it builds the same ``BatchJob``.

    @baton.job(parameters=[baton.param("date", "date")])
    def import_orders():
        return [
            baton.tasklet("validate", validate),
            baton.chunk("load", reader=OrdersReader, writer=OrdersWriter, size=500),
        ]
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from pydantic import ValidationError

from baton.core.errors import BatonError, InvalidDefinition
from baton.core.parameters import ParamType
from baton.spec.manifests import first_error
from baton.spec.model import BatchJob, ChunkSpec, JobSpec, ObjectMeta, ParameterSpec, StepSpec
from baton.spec.refs import ref_of

F = TypeVar("F", bound=Callable[..., Any])
JOB_ATTR = "__baton_job__"
"""The attribute ``@baton.job`` sets: a function that builds the BatchJob."""


def param(
    name: str,
    type: str | ParamType = ParamType.STRING,
    *,
    identifying: bool = True,
    default: Any = None,
) -> ParameterSpec:
    return ParameterSpec(name=name, type=ParamType(type), identifying=identifying, default=default)


def tasklet(name: str, fn: Any, *, allow_start_if_complete: bool = False, **args: Any) -> StepSpec:
    return StepSpec(
        name=name,
        tasklet=ref_of(fn),
        tasklet_args=args,
        allow_start_if_complete=allow_start_if_complete,
    )


def _exc_name(e: Any) -> str:
    if isinstance(e, str):
        return e
    if isinstance(e, type) and e.__module__ == "builtins":
        return e.__name__
    return ref_of(e)


def chunk(
    name: str,
    *,
    reader: Any,
    writer: Any,
    processor: Any = None,
    size: int = 100,
    skip_limit: int = 0,
    skip: Sequence[Any] = (),
    retry_limit: int = 0,
    retry: Sequence[Any] = (),
    reader_args: dict[str, Any] | None = None,
    writer_args: dict[str, Any] | None = None,
    processor_args: dict[str, Any] | None = None,
    allow_start_if_complete: bool = False,
) -> StepSpec:
    return StepSpec(
        name=name,
        allow_start_if_complete=allow_start_if_complete,
        chunk=ChunkSpec(
            reader=ref_of(reader),
            writer=ref_of(writer),
            processor=ref_of(processor) if processor is not None else None,
            size=size,
            skip_limit=skip_limit,
            skip=[_exc_name(e) for e in skip],
            retry_limit=retry_limit,
            retry=[_exc_name(e) for e in retry],
            reader_args=reader_args or {},
            writer_args=writer_args or {},
            processor_args=processor_args or {},
        ),
    )


def job(
    name: str | None = None,
    *,
    parameters: Sequence[ParameterSpec] = (),
    incrementer: str | None = None,
    prevent_restart: bool = False,
) -> Callable[[F], F]:
    """Mark a function returning a list of steps as a job definition."""

    def decorate(fn: F) -> F:
        job_name = name or fn.__name__.replace("_", "-")

        def build() -> BatchJob:
            try:
                steps = list(fn())
            except BatonError:
                raise
            except Exception as e:
                raise InvalidDefinition(
                    f"job '{job_name}': its definition raised {type(e).__name__}: {e}"
                ) from None
            try:
                return BatchJob(
                    metadata=ObjectMeta(name=job_name),
                    spec=JobSpec(
                        parameters=list(parameters),
                        incrementer=incrementer,  # type: ignore[arg-type]
                        prevent_restart=prevent_restart,
                        steps=list(steps),
                    ),
                )
            except ValidationError as e:
                raise InvalidDefinition(f"job '{job_name}': {first_error(e)}") from None

        setattr(fn, JOB_ATTR, build)
        return fn

    return decorate
