"""The context codec: what a job or step execution context may hold, and its JSON form.

A context maps string keys to what JSON carries (None, bool, int, float, str, lists,
dicts with string keys; tuples become lists) plus ``datetime``, ``date``, ``Decimal``
and ``UUID``, which come back as the same types. Those, and the floats JSON has no
literal for (NaN, ±infinity: PostgreSQL's ``json`` refuses them), are stored as tagged
objects ``{"$baton": "<type>", "v": "<text>"}``; a user's own dict that uses the key
``"$baton"`` is stored wrapped as ``{"$baton": "dict", "v": {...}}``, so no user value
is ever mistaken for a tag. The top level of a context is never a tag (it is a plain
mapping of keys), so a context may use any string key.

Anything else (a set, an arbitrary object, bytes, a dict that contains itself, nesting
deeper than :data:`MAX_DEPTH`) is refused with :class:`~baton.core.errors.InvalidContext`
naming the key and the type: the repository never stores a context it cannot give
back as it was. Reading never raises: a row that is not an object (written by an old
version) reads as an empty context, and a tag this version does not know stays the
plain dict it is.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
import uuid
from collections.abc import Callable, Mapping
from decimal import Decimal, InvalidOperation
from typing import Any

from baton.core.errors import InvalidContext

TAG = "$baton"
VALUE = "v"
MAX_DEPTH = 64  # as --ctx (cli.options.parse_cli_context)
ALLOWED = (
    "a context holds JSON values (str, int, float, bool, None, lists, dicts with string "
    "keys) and datetime, date, Decimal, UUID"
)

log = logging.getLogger("baton.repository")

_DECODERS: dict[str, Callable[[Any], Any]] = {
    "datetime": lambda v: dt.datetime.fromisoformat(v),
    "date": lambda v: dt.date.fromisoformat(v),
    "decimal": lambda v: Decimal(v),
    "uuid": lambda v: uuid.UUID(v),
    "float": lambda v: float(v) if v in ("nan", "inf", "-inf") else _bad(v),
}


def _bad(value: Any) -> Any:
    raise ValueError(value)


class _Refused(Exception):
    def __init__(self, problem: str, path: str):
        super().__init__(problem)
        self.problem = problem
        self.path = path


# ---------------------------------------------------------------- encoding


def encode_context(context: Mapping[str, Any], what: str = "context") -> dict[str, Any]:
    """The stored (JSON) form of a whole context; InvalidContext names the bad key."""
    if not isinstance(context, Mapping):
        raise InvalidContext(f"{what}: expected a mapping, got {_type(context)}")
    return {_key(k, what): encode_value(k, v, what) for k, v in context.items()}


def encode_value(key: str, value: Any, what: str = "context") -> Any:
    """The stored form of one context entry; InvalidContext names ``key`` and the type."""
    try:
        return _encode(value, key, set(), 0)
    except _Refused as e:
        where = "" if e.path == key else f" (at {e.path})"
        raise InvalidContext(f"{what} key {key!r}: {e.problem}{where}; {ALLOWED}") from None


def check_value(key: Any, value: Any, what: str = "context") -> None:
    """Refuse, at assignment, a key or value that :func:`encode_context` would refuse."""
    encode_value(_key(key, what), value, what)


def _key(key: Any, what: str) -> str:
    if not isinstance(key, str):
        raise InvalidContext(f"{what}: key {key!r} is a {_type(key)}, not a string")
    return key


def _encode(value: Any, path: str, seen: set[int], depth: int) -> Any:
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value) if math.isfinite(value) else _tag("float", repr(float(value)))
    if isinstance(value, str):
        return str(value)
    if isinstance(value, dt.datetime):
        return _tag("datetime", value.isoformat())
    if isinstance(value, dt.date):
        return _tag("date", value.isoformat())
    if isinstance(value, Decimal):
        return _tag("decimal", str(value))
    if isinstance(value, uuid.UUID):
        return _tag("uuid", str(value))
    if isinstance(value, Mapping | list | tuple):
        return _container(value, path, seen, depth)
    raise _Refused(f"cannot store a value of type {_type(value)}", path)


def _container(value: Any, path: str, seen: set[int], depth: int) -> Any:
    if depth >= MAX_DEPTH:
        raise _Refused(f"nested deeper than {MAX_DEPTH} levels", path)
    if id(value) in seen:
        raise _Refused("the value contains itself (a cycle)", path)
    seen.add(id(value))
    try:
        if not isinstance(value, Mapping):
            return [_encode(v, f"{path}[{i}]", seen, depth + 1) for i, v in enumerate(value)]
        out: dict[str, Any] = {}
        for k, v in value.items():
            if not isinstance(k, str):
                raise _Refused(f"dict key {k!r} is a {_type(k)}, not a string", path)
            out[str(k)] = _encode(v, f"{path}.{k}", seen, depth + 1)
        return _tag("dict", out) if TAG in out else out
    finally:
        seen.discard(id(value))


def _tag(kind: str, text: Any) -> dict[str, Any]:
    return {TAG: kind, VALUE: text}


def _type(value: Any) -> str:
    cls = type(value)
    if cls.__module__ == "builtins":
        return cls.__qualname__
    return f"{cls.__module__}.{cls.__qualname__}"


# ---------------------------------------------------------------- decoding


def decode_context(raw: Any) -> dict[str, Any]:
    """A stored context as the values it was given; never raises."""
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        log.warning(
            "a stored context is a %s, not an object (written by an older Baton?): read as empty",
            type(raw).__name__,
        )
        return {}
    try:
        return {str(k): _decode(v) for k, v in raw.items()}
    except RecursionError:
        return dict(raw)


def _decode(value: Any) -> Any:
    if isinstance(value, list):
        return [_decode(v) for v in value]
    if not isinstance(value, dict):
        return value
    if set(value) == {TAG, VALUE} and isinstance(value[TAG], str):
        kind, inner = value[TAG], value[VALUE]
        if kind == "dict" and isinstance(inner, dict):
            return {k: _decode(v) for k, v in inner.items()}
        decoder = _DECODERS.get(kind)
        if decoder is not None and isinstance(inner, str):
            try:
                return decoder(inner)
            except (ValueError, InvalidOperation):
                pass
        return dict(value)  # a tag this version does not know: left as stored
    return {k: _decode(v) for k, v in value.items()}
