"""Typed job parameters and the JobInstance key they make (Spring Batch's JobParameters)."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any


class ParamType(StrEnum):
    STRING = "string"
    INT = "int"
    FLOAT = "float"
    BOOL = "bool"
    DATE = "date"
    DATETIME = "datetime"


REDACTED = "<redacted>"
"""What the repository stores for a parameter read from a Secret (never its value)."""

_TRUE = {"true", "yes", "1", "on"}
_FALSE = {"false", "no", "0", "off"}


def parse_value(kind: ParamType, raw: Any) -> Any:
    """Turn a raw value (string from the CLI, or YAML scalar) into the typed value.

    Raises ValueError with a message that names the expected form.
    """
    if kind is ParamType.STRING:
        if isinstance(raw, (dict, list)):
            raise ValueError("expected a string")
        return str(raw)
    if kind is ParamType.INT:
        if isinstance(raw, bool):
            raise ValueError("expected an integer")
        if isinstance(raw, int):
            return raw
        if isinstance(raw, float) and raw.is_integer():
            return int(raw)
        try:
            return int(str(raw).strip())
        except ValueError:
            raise ValueError(f"expected an integer, got {raw!r}") from None
    if kind is ParamType.FLOAT:
        if isinstance(raw, bool):
            raise ValueError("expected a number")
        try:
            return float(raw)
        except (TypeError, ValueError):
            raise ValueError(f"expected a number, got {raw!r}") from None
    if kind is ParamType.BOOL:
        if isinstance(raw, bool):
            return raw
        text = str(raw).strip().lower()
        if text in _TRUE:
            return True
        if text in _FALSE:
            return False
        raise ValueError(f"expected true or false, got {raw!r}")
    if kind is ParamType.DATE:
        if isinstance(raw, dt.datetime):
            raise ValueError(f"expected a date (YYYY-MM-DD), got {raw!r}")
        if isinstance(raw, dt.date):
            return raw
        try:
            return dt.date.fromisoformat(str(raw).strip())
        except ValueError:
            raise ValueError(f"expected a date (YYYY-MM-DD), got {raw!r}") from None
    if kind is ParamType.DATETIME:
        if isinstance(raw, dt.datetime):
            return raw
        try:
            return dt.datetime.fromisoformat(str(raw).strip())
        except ValueError:
            raise ValueError(f"expected an ISO datetime, got {raw!r}") from None
    raise ValueError(f"unknown parameter type {kind!r}")  # pragma: no cover


def to_text(kind: ParamType, value: Any) -> str:
    """Canonical text of a typed value: stored in the repository and hashed into the key."""
    if kind is ParamType.BOOL:
        return "true" if value else "false"
    if kind in (ParamType.DATE, ParamType.DATETIME):
        return str(value.isoformat())
    if kind is ParamType.FLOAT:
        return repr(float(value))
    return str(value)


def to_json(kind: ParamType, value: Any) -> Any:
    """The JSON form of a typed value (dates as ISO strings)."""
    if kind in (ParamType.DATE, ParamType.DATETIME):
        return value.isoformat()
    return value


@dataclass(frozen=True)
class JobParameter:
    name: str
    type: ParamType
    value: Any
    identifying: bool = True

    @property
    def text(self) -> str:
        return to_text(self.type, self.value)


@dataclass(frozen=True)
class JobParameters:
    """An immutable, ordered set of typed parameters."""

    items: tuple[JobParameter, ...] = ()

    def __getitem__(self, name: str) -> JobParameter:
        for p in self.items:
            if p.name == name:
                return p
        raise KeyError(name)

    def __contains__(self, name: object) -> bool:
        return any(p.name == name for p in self.items)

    def values(self) -> dict[str, Any]:
        """name → typed value: what steps see as ``ctx.params``."""
        return {p.name: p.value for p in self.items}

    def as_json(self) -> dict[str, Any]:
        return {p.name: to_json(p.type, p.value) for p in self.items}

    def identifying(self) -> list[JobParameter]:
        return sorted((p for p in self.items if p.identifying), key=lambda p: p.name)

    def key(self) -> str:
        """sha256 of the canonical identifying parameters: the JobInstance identity."""
        canonical = json.dumps(
            [[p.name, p.type.value, p.text] for p in self.identifying()],
            separators=(",", ":"),
        )
        return hashlib.sha256(canonical.encode()).hexdigest()

    def with_param(self, param: JobParameter) -> JobParameters:
        return JobParameters((*(p for p in self.items if p.name != param.name), param))


def secret_env_name(name: str) -> str:
    """The step container's environment variable that carries the Secret-sourced
    parameter ``name`` (the operator sets it by ``secretKeyRef``)."""
    return "BATON_SECRET_PARAM_" + re.sub(r"[^A-Za-z0-9_]", "_", name).upper()


def unseal(params: JobParameters, environ: Mapping[str, str]) -> dict[str, Any]:
    """``ctx.params`` of a step process: a redacted (Secret-sourced) parameter takes its
    value from the environment the pod got from the Secret; everything else as stored."""
    values = params.values()
    for p in params.items:
        if p.value == REDACTED and not p.identifying and p.type is ParamType.STRING:
            values[p.name] = environ.get(secret_env_name(p.name), REDACTED)
    return values
