"""Job definitions by name, from YAML manifests, ``.py`` files or importable modules
(``@baton.job``-decorated functions are found there)."""

from __future__ import annotations

import importlib
import importlib.util
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from baton.core.errors import ImportFailed, InvalidDefinition, UnknownJob
from baton.registry.decorators import JOB_ATTR
from baton.spec.manifests import load_manifests
from baton.spec.model import BatchJob
from baton.spec.refs import add_import_paths, import_module


@dataclass(frozen=True)
class RegisteredJob:
    """A job definition and the folder its ``module:attr`` references import from."""

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
            self.register(getattr(o, JOB_ATTR)(), source_dir)
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
