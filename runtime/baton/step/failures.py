"""How a step's failure is told: one line for listings, the traceback for ``baton show``."""

from __future__ import annotations

import traceback

from baton.core.errors import BatonError, ImportFailed, InvalidDefinition


class SkipLimitExceeded(BatonError):
    """More items failed with skippable errors than ``skipLimit`` allows."""


FATAL_ERRORS = (ImportFailed, InvalidDefinition, SkipLimitExceeded)
"""Failures a retry cannot fix (the pod exits 8: its index is not retried)."""


def error_text(e: BaseException) -> str:
    return f"{type(e).__name__}: {e}"


def describe_failure(e: BaseException) -> str:
    """One line first (what the CLI shows), then the traceback for `baton show`."""
    tb = "".join(traceback.format_exception(e)).rstrip()
    return f"{error_text(e)}\n{tb}"
