"""How a unit's work ended, before it is recorded."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from baton.core.counts import Counts
from baton.core.status import BatchStatus

CONTINUE = "CONTINUE"
"""The exit code of a unit that stopped to continue in a new incarnation (exit 9)."""


@dataclass
class Outcome:
    status: BatchStatus
    counts: Counts | None = None
    description: str = ""
    exit_code: str | None = None
    result: Any = None
