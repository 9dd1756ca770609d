"""The output of local unit processes, one file per run: what ``baton logs ID`` reads.

Where: ``$BATON_LOG_DIR`` (``baton --log-dir``), else ``.baton/logs`` next to a SQLite
file repository, else in the current directory; inside it
``<repository id>/<execution id>/<seq>_<kind>_<step>_<partition>.log``. The
repository's UUID keeps two databases' execution ids apart; ``seq`` orders the runs
of an execution (step names cannot hold ``_``). A restart is a new execution, so its
runs get files of their own, and a unit that runs again (a time budget's next
incarnation) gets a new file: nothing is ever appended to twice.

How: the unit's stdout and stderr go into one pipe; the executor's loop
(:class:`baton.executors.units.Running`) copies every read, as it comes, to the file
(opened ``O_APPEND``, written with ``os.write``: no buffer of ours to lose) and to
the executor's stderr, where the unit's output went before. A step killed with
``kill -9`` loses nothing: the pipe holds what it wrote and the executor reads it to
the end. Units run unbuffered (``PYTHONUNBUFFERED``), so lines
arrive as they are printed.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from baton.core.logsources import LogSource
from baton.core.status import UnitKind

LOG_DIR_ENV = "BATON_LOG_DIR"
DEFAULT_DIR = Path(".baton") / "logs"
NO_PARTITION = "x"


def log_root(database: str | None, configured: str | None = None) -> Path:
    """The log directory: ``configured`` (``--log-dir``/``BATON_LOG_DIR``), else
    ``.baton/logs`` beside a SQLite file ``database`` (the path in its URL), else in
    the current directory."""
    if configured:
        return Path(configured)
    if database and database != ":memory:" and not database.startswith("file:"):
        return Path(database).parent / DEFAULT_DIR
    return DEFAULT_DIR


def execution_dir(root: Path, repository_id: str, execution_id: int) -> Path:
    return root / repository_id / str(execution_id)


def file_name(seq: int, kind: UnitKind, step: str, partition: int | None) -> str:
    part = NO_PARTITION if partition is None else str(partition)
    return f"{seq:05d}_{kind.value}_{step}_{part}.log"


def source_of(path: Path, execution_id: int) -> LogSource | None:
    """The log source a file name describes (None for anything else in the folder)."""
    parts = path.name.removesuffix(".log").split("_")
    if len(parts) != 4 or not path.name.endswith(".log") or not parts[0].isdigit():
        return None
    seq, kind, step, part = parts
    try:
        unit_kind = UnitKind(kind)
    except ValueError:
        return None
    if part != NO_PARTITION and not part.isdigit():
        return None
    partition = None if part == NO_PARTITION else int(part)
    order = (f"{execution_id:020d}", seq)
    return LogSource(unit_kind, step, partition, order, str(path))


def sources(folder: Path, execution_id: int) -> list[LogSource]:
    """The runs whose files are in one execution's folder (none when it has none)."""
    if not folder.is_dir():
        return []
    found = (source_of(p, execution_id) for p in sorted(folder.iterdir()))
    return [s for s in found if s is not None]


def create(folder: Path, kind: UnitKind, step: str, partition: int | None) -> int:
    """A new, empty log file for a run of the unit, as an ``O_APPEND`` descriptor:
    the next sequence number in the folder, never an existing file (``O_EXCL``)."""
    folder.mkdir(parents=True, exist_ok=True)
    seq = len(list(folder.glob("*.log"))) + 1
    while True:
        try:
            flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND
            return os.open(folder / file_name(seq, kind, step, partition), flags, 0o644)
        except FileExistsError:
            seq += 1


def write_all(fd: int, data: bytes) -> None:
    while data:
        data = data[os.write(fd, data) :]


def tail(path: str, done: Callable[[], bool], poll: float = 0.2) -> Iterator[str]:
    """The file's lines as they are written, until ``done()`` and the file has no
    more: ``baton logs -f`` on a local run. A last line without its newline is given
    once the run is done."""
    with open(path, encoding="utf-8", errors="replace", newline="") as f:
        pending = ""
        while True:
            finished = done()  # before reading: what it wrote before it ended is read
            pending += f.read()
            *lines, pending = pending.split("\n")
            yield from lines
            if finished:
                if pending:
                    yield pending
                return
            time.sleep(poll)
