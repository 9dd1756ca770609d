"""The state of one ``baton`` command: the consoles it prints to and the repositories
it opened, disposed when the command ends whatever the outcome (see ``app.run_cli``)."""

from __future__ import annotations

import json
import sys
from typing import Any

from rich.console import Console

from baton.repository.facade import JobRepository

PIPE_WIDTH = 100_000  # piped output is never wrapped: as wide as any line can be


def console(stderr: bool = False) -> Console:
    """Rich's width on a terminal; a pipe or a file gets lines that are never wrapped."""
    made = Console(stderr=stderr)
    if made.is_terminal:
        return made
    return Console(stderr=stderr, width=PIPE_WIDTH, soft_wrap=True)


class Session:
    """Consoles made when a command starts (so a test's redirected streams are used) and
    the repositories to dispose when it ends."""

    def __init__(self) -> None:
        self.out = console()
        self.err = console(stderr=True)
        self._opened: list[JobRepository] = []

    def begin(self) -> None:
        self.out, self.err = console(), console(stderr=True)

    def repository(self, db: str, *, interactive: bool = True) -> JobRepository:
        """The repository for this command. ``interactive``: a person waits for the
        answer (shorter SQLite busy wait); an executor waits for a step's write lock."""
        repo = JobRepository(db, interactive=interactive)
        self._opened.append(repo)
        return repo

    def end(self) -> None:
        while self._opened:
            self._opened.pop().dispose()


session = Session()


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")
