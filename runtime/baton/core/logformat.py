"""Log lines as text or as one JSON object per line (``--log-format json``,
``BATON_LOG_FORMAT=json``), for log collectors that index fields rather than grep text.

A JSON line always has the keys ``time``, ``level``, ``logger``, ``message``,
``execution``, ``step``, ``partition`` and ``attempt`` (null outside a unit), plus
``chunk`` while a chunk is being read, processed or written, and ``exception`` when the
record carries one. The unit's fields come from :func:`bind_unit`, which the step
runtime calls once a unit is open; a context variable keeps units run as threads of one
process (the in-process executor) apart. Only the stdlib: every step process loads this.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from collections.abc import Callable, Mapping
from contextvars import ContextVar, Token
from typing import Any

FORMAT_ENV = "BATON_LOG_FORMAT"
FORMATS = ("text", "json")
TEXT_FORMAT = "%(levelname)s %(name)s: %(message)s"
UNIT_KEYS = ("execution", "step", "partition", "attempt")

UnitFields = Callable[[], Mapping[str, Any]]
_unit: ContextVar[UnitFields | None] = ContextVar("baton_log_unit", default=None)


def bind_unit(fields: UnitFields) -> Token[UnitFields | None]:
    """Make ``fields()`` (read at each record, so a chunk number stays current) the
    unit of the records logged from this context; :func:`unbind_unit` undoes it."""
    return _unit.set(fields)


def unbind_unit(token: Token[UnitFields | None]) -> None:
    _unit.reset(token)


class JsonFormatter(logging.Formatter):
    """One JSON object per record, on one line (newlines inside values are escaped)."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "time": dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(
                timespec="milliseconds"
            ),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        fields = _unit_fields(record)
        out.update({k: fields.get(k) for k in UNIT_KEYS})
        if fields.get("chunk") is not None:
            out["chunk"] = fields["chunk"]
        if fields.get("namespace"):
            out["namespace"] = fields["namespace"]
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        return json.dumps(out, default=str, ensure_ascii=False)


def _unit_fields(record: logging.LogRecord) -> Mapping[str, Any]:
    """The bound unit's fields; else, for the operator, the object a Kopf record is
    about (its ``k8s_ref``) when that is a BatchExecution."""
    unit = _unit.get()
    if unit is not None:
        return unit()
    ref = getattr(record, "k8s_ref", None)
    if isinstance(ref, Mapping) and ref.get("kind") == "BatchExecution":
        return {"execution": ref.get("name"), "namespace": ref.get("namespace")}
    return {}


def log_format(value: str | None) -> str:
    """The format named by an option or ``BATON_LOG_FORMAT``: ``text`` when unset."""
    chosen = (value or "text").strip().lower()
    if chosen not in FORMATS:
        raise ValueError(f"unknown log format {value!r}; one of {', '.join(FORMATS)}")
    return chosen


def formatter(fmt: str) -> logging.Formatter:
    return JsonFormatter() if fmt == "json" else logging.Formatter(TEXT_FORMAT)


def configure_logging(
    fmt: str, level: int | None = logging.WARNING, *, every_handler: bool = False
) -> None:
    """The root logger writes ``fmt`` lines to stderr, through a handler of its own
    (made on the first call; a later call switches its format). Logging set up by
    someone else (a test harness) is left alone, unless ``every_handler``: the operator
    re-formats Kopf's handler. ``level`` None keeps the root's level."""
    root = logging.getLogger()
    handlers = [h for h in root.handlers if every_handler or getattr(h, "baton", False)]
    if not handlers:
        if root.handlers:
            return
        ours: logging.Handler = logging.StreamHandler()
        ours.baton = True  # type: ignore[attr-defined]
        root.addHandler(ours)
        handlers = [ours]
    if level is not None:
        root.setLevel(level)
    for handler in handlers:
        handler.setFormatter(formatter(fmt))
