"""What a manifest, a parameter or a context value may hold: text the database can
store (no NUL, valid UTF-8), JSON that reads back the same (bounded nesting, finite
numbers), and typed parameter values that fit their columns."""

from __future__ import annotations

import math
from typing import Any

from baton.core.parameters import ParamType, parse_value

MAX_DEPTH = 64  # nesting of manifests and --ctx values: far beyond real use, far below recursion
INT_MIN, INT_MAX = -(2**63), 2**63 - 1  # int parameters must fit a BIGINT column


def typed_value(kind: ParamType, raw: Any) -> Any:
    """:func:`parse_value` plus what the repository and the steps can hold: an int
    within 64 bits (BIGINT), a finite float, text without NUL or lone surrogates."""
    if kind is not ParamType.STRING and isinstance(raw, str) and len(raw) > 100:
        raise ValueError(f"expected a {kind.value}, got {len(raw)} characters: {short_repr(raw)}")
    try:
        value = parse_value(kind, raw)
    except OverflowError:
        raise ValueError(f"expected a {kind.value}, got {short_repr(raw)}") from None
    if kind is ParamType.INT and not INT_MIN <= value <= INT_MAX:
        raise ValueError(
            f"expected an integer from {INT_MIN} to {INT_MAX} (64 bits), got {short_repr(raw)}"
        )
    if kind is ParamType.FLOAT and not math.isfinite(value):
        raise ValueError(f"expected a finite number, got {short_repr(raw)}")
    if kind is ParamType.STRING:
        problem = text_problem(value)
        if problem:
            raise ValueError(f"{problem}: {short_repr(raw)}")
    return value


def short_repr(raw: Any, limit: int = 60) -> str:
    """``repr`` cut to ``limit`` characters: an error shows bad input, never all of it."""
    text = repr(raw)
    return text if len(text) <= limit else f"{text[: limit - 5]}...{text[-4:]}"


def text_problem(text: str) -> str | None:
    """Why ``text`` cannot be stored (PostgreSQL refuses NUL; UTF-8 has no lone
    surrogates, which is what undecodable bytes of argv or a file become), or None."""
    if "\x00" in text:
        return "contains a NUL character"
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return "contains bytes that are not UTF-8"
    return None


def plain_problem(value: Any, where: str = "", depth: int = 0) -> str | None:
    """Why a manifest or context value cannot be stored as JSON and read back the same
    (nesting beyond :data:`MAX_DEPTH`, bad text, a non-finite number), prefixed with
    where it is (``spec.steps[0].name: ...``), or None."""
    at = f"{where}: " if where else ""
    if depth > MAX_DEPTH:
        return f"nested deeper than {MAX_DEPTH} levels"
    if isinstance(value, str):
        problem = text_problem(value)
        return f"{at}{problem}" if problem else None
    if isinstance(value, float) and not math.isfinite(value):
        return f"{at}{value!r} is not a finite number"
    if isinstance(value, dict):
        items = [(f"{where}.{k}" if where else str(k), k, v) for k, v in value.items()]
    elif isinstance(value, list | tuple | set | frozenset):
        items = [(f"{where}[{i}]", None, v) for i, v in enumerate(value)]
    else:
        return None
    for path, key, v in items:
        bad_key = text_problem(key) if isinstance(key, str) else None
        shown = path.encode("utf-8", "backslashreplace").decode()[:120]
        problem = f"{shown}: {bad_key}" if bad_key else plain_problem(v, shown, depth + 1)
        if problem:
            return problem
    return None
