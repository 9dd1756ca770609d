"""Flat-file readers and writers: CSV and JSON lines, restartable by record count.

Readers keep ``<name>.read.count`` in the step context and skip that many records on
restart. Writers keep ``<name>.written.offset`` and truncate the file back to it on
restart, so a crashed chunk's partial output is discarded: the file ends up with every
record exactly once.
"""

from __future__ import annotations

import csv
import io
import json
import os
from collections.abc import Iterator, MutableMapping, Sequence
from pathlib import Path
from typing import IO, Any

from baton.errors import BatonError


def _count_lines(path: Path) -> int:
    n = 0
    last = b"\n"
    with path.open("rb") as f:
        while block := f.read(1 << 20):
            n += block.count(b"\n")
            last = block[-1:]
    return n + (0 if last == b"\n" else 1)


class _FileReader:
    name = "file"

    def __init__(
        self, path: str | os.PathLike[str], *, name: str | None = None, encoding: str = "utf-8"
    ):
        self.path = Path(path)
        self.encoding = encoding
        if name:
            self.name = name
        self._file: IO[str] | None = None
        self._records: Iterator[Any] = iter(())
        self._count = 0
        self._restart_at = 0

    @property
    def key(self) -> str:
        return f"{self.name}.read.count"

    def _open_records(self, f: IO[str]) -> Iterator[Any]:
        raise NotImplementedError

    def open(self, context: MutableMapping[str, Any]) -> None:
        try:
            self._file = self.path.open(encoding=self.encoding, newline="")
        except OSError as e:
            raise BatonError(f"cannot open {self.path}: {e.strerror}") from None
        self._records = self._open_records(self._file)
        self._restart_at = self._count = int(context.get(self.key, 0))
        for _ in range(self._count):
            if next(self._records, None) is None:
                break

    def read(self) -> Any:
        record = next(self._records, None)
        if record is not None:
            self._count += 1
        return record

    def update(self, context: MutableMapping[str, Any]) -> None:
        context[self.key] = self._count

    def close(self) -> None:
        if self._file:
            self._file.close()
            self._file = None

    def total(self) -> int | None:
        return max(self._count_records() - self._restart_at, 0)

    def _count_records(self) -> int:
        """Records in the file (for the progress total), without parsing them."""
        return _count_lines(self.path)


class CsvReader(_FileReader):
    """Rows of a CSV file as dicts keyed by the header (or lists with ``header=False``)."""

    name = "csv"

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        header: bool = True,
        delimiter: str = ",",
        name: str | None = None,
        encoding: str = "utf-8",
    ):
        super().__init__(path, name=name, encoding=encoding)
        self.header = header
        self.delimiter = delimiter

    def _open_records(self, f: IO[str]) -> Iterator[Any]:
        if self.header:
            return iter(csv.DictReader(f, delimiter=self.delimiter))
        return iter(csv.reader(f, delimiter=self.delimiter))

    def _count_records(self) -> int:
        # csv's own parser: a quoted field may span lines; DictReader skips blank rows
        with self.path.open(encoding=self.encoding, newline="") as f:
            rows = csv.reader(f, delimiter=self.delimiter)
            if not self.header:
                return sum(1 for _ in rows)
            return max(sum(1 for row in rows if row) - 1, 0)


class JsonLinesReader(_FileReader):
    """One JSON value per non-empty line."""

    name = "jsonl"

    def _count_records(self) -> int:
        with self.path.open("rb") as f:
            return sum(1 for line in f if line.strip())

    def _open_records(self, f: IO[str]) -> Iterator[Any]:
        for lineno, line in enumerate(f, 1):
            if line.strip():
                try:
                    yield json.loads(line)
                except json.JSONDecodeError as e:
                    raise ValueError(f"{self.path}:{lineno}: invalid JSON: {e.msg}") from None


class _FileWriter:
    name = "file"

    def __init__(
        self, path: str | os.PathLike[str], *, name: str | None = None, encoding: str = "utf-8"
    ):
        self.path = Path(path)
        self.encoding = encoding
        if name:
            self.name = name
        self._file: IO[bytes] | None = None

    @property
    def key(self) -> str:
        return f"{self.name}.written.offset"

    def open(self, context: MutableMapping[str, Any]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        offset = int(context.get(self.key, 0))
        size = self.path.stat().st_size if self.path.exists() else 0
        if size < offset:
            # Truncating "back" would pad the file with NUL bytes: refuse instead.
            raise BatonError(
                f"cannot resume writing {self.path}: it has {size} bytes, fewer than the "
                f"{offset} written at the last checkpoint (was it replaced or truncated?)"
            )
        f = self.path.open("r+b" if self.path.exists() else "w+b")
        f.truncate(offset)  # drop whatever a crashed chunk wrote after the checkpoint
        f.seek(offset)
        self._file = f
        if offset == 0:
            self._start()

    def _start(self) -> None:
        pass

    def _encode(self, items: Sequence[Any]) -> str:
        raise NotImplementedError

    def write(self, items: list[Any]) -> None:
        if self._file is None:
            raise BatonError(f"{type(self).__name__} written before open()")
        self._file.write(self._encode(items).encode(self.encoding))

    def update(self, context: MutableMapping[str, Any]) -> None:
        assert self._file is not None
        self._file.flush()
        os.fsync(self._file.fileno())
        context[self.key] = self._file.tell()

    def close(self) -> None:
        if self._file:
            self._file.close()
            self._file = None


class JsonLinesWriter(_FileWriter):
    name = "jsonl"

    def _encode(self, items: Sequence[Any]) -> str:
        return "".join(json.dumps(i, default=str) + "\n" for i in items)


class CsvWriter(_FileWriter):
    """Writes dict items as CSV rows; ``fields`` fixes the column order."""

    name = "csv"

    def __init__(
        self,
        path: str | os.PathLike[str],
        fields: Sequence[str],
        *,
        header: bool = True,
        name: str | None = None,
        encoding: str = "utf-8",
    ):
        super().__init__(path, name=name, encoding=encoding)
        self.fields = list(fields)
        self.header = header

    def _start(self) -> None:
        if self.header and self._file is not None:
            self._file.write(
                self._encode([dict(zip(self.fields, self.fields, strict=True))]).encode(
                    self.encoding
                )
            )

    def _encode(self, items: Sequence[Any]) -> str:
        buf = io.StringIO()
        w = csv.DictWriter(buf, fieldnames=self.fields, extrasaction="ignore")
        w.writerows(items)
        return buf.getvalue()
