"""Job definitions by name: from YAML manifests or ``@baton.job``-decorated Python.

A decorated definition is equivalent to a manifest: it builds the same ``BatchJob``.

    @baton.job(parameters=[baton.param("date", "date")])
    def import_orders():
        return [
            baton.tasklet("validate", validate),
            baton.chunk("load", reader=OrdersReader, writer=OrdersWriter, size=500),
        ]
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from pydantic import ValidationError

from baton.core.errors import BatonError, ImportFailed, InvalidDefinition, UnknownJob
from baton.core.parameters import ParamType
from baton.loading import (
    add_import_paths,
    check_component,
    import_module,
    ref_of,
    resolve_exception,
)
from baton.spec.model import (
    BatchJob,
    ChunkSpec,
    JobSpec,
    ObjectMeta,
    ParameterSpec,
    StepSpec,
    first_error,
    load_manifests,
)

F = TypeVar("F", bound=Callable[..., Any])
JOB_ATTR = "__baton_job__"


@dataclass(frozen=True)
class RegisteredJob:
    job: BatchJob
    source_dir: Path | None

    @property
    def name(self) -> str:
        return self.job.name


class JobRegistry:
    """Known job definitions, each with the folder its code is imported from."""

    def __init__(self) -> None:
        self._jobs: dict[str, RegisteredJob] = {}

    def register(self, job: BatchJob, source_dir: Path | None = None) -> RegisteredJob:
        entry = RegisteredJob(job, source_dir.resolve() if source_dir else None)
        self._jobs[job.name] = entry
        return entry

    def names(self) -> list[str]:
        return sorted(self._jobs)

    def get(self, name: str) -> RegisteredJob:
        try:
            return self._jobs[name]
        except KeyError:
            known = ", ".join(self.names()) or "none"
            raise UnknownJob(f"unknown job '{name}'; known jobs: {known}") from None

    def only(self, name: str | None = None) -> RegisteredJob:
        """The job named ``name``, or the single job when there is just one."""
        if name:
            return self.get(name)
        if len(self._jobs) == 1:
            return next(iter(self._jobs.values()))
        if not self._jobs:
            raise UnknownJob("no jobs defined: load a manifest, a .py file or a module first")
        raise UnknownJob(f"several jobs defined ({', '.join(self.names())}); choose one with --job")

    def load(self, target: str) -> JobRegistry:
        """Load a YAML manifest, a ``.py`` file or an importable module name."""
        path = Path(target)
        if path.suffix in (".yaml", ".yml") or (path.exists() and path.suffix != ".py"):
            if not path.exists():
                raise InvalidDefinition(f"no such manifest: {target}")
            for job in load_manifests(path):
                self.register(job, path.parent)
            return self
        if path.suffix == ".py":
            if not path.exists():
                raise InvalidDefinition(f"no such file: {target}")
            add_import_paths([path.parent, Path.cwd()])
            module = _import_file(path)
            source: Path | None = path.parent
        else:
            add_import_paths([Path.cwd()])
            module = import_module(target, what=repr(target))
            source = Path(module.__file__ or ".").parent if module.__file__ else None
        found = self.discover(vars(module).values(), source)
        if not found:
            raise InvalidDefinition(f"{target}: no @baton.job definitions found")
        return self

    def discover(self, objects: Iterable[Any], source_dir: Path | None) -> list[RegisteredJob]:
        return [
            self.register(o.__baton_job__(), source_dir)
            for o in objects
            if callable(getattr(o, JOB_ATTR, None))
        ]


def _import_file(path: Path) -> Any:
    name = path.stem
    if name in sys.modules and getattr(sys.modules[name], "__file__", None) == str(path.resolve()):
        return sys.modules[name]
    try:
        return import_module(name, what=str(path))
    except ImportFailed:
        if _findable(name):
            raise  # found by name, and it failed while importing: that is the error
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ImportFailed(f"cannot import {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except SystemExit as e:
        del sys.modules[name]
        raise ImportFailed(
            f"cannot import {path}: it called sys.exit({e.code!r}) while being imported"
        ) from None
    except Exception as e:
        del sys.modules[name]
        raise ImportFailed(f"cannot import {path}: {type(e).__name__}: {e}") from None
    return module


def _findable(name: str) -> bool:
    try:
        return name.isidentifier() and importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


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


# ---------------------------------------------------------------- the decorator API


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
