"""Flat-file readers: CSV and JSON lines, restartable by record count.

Readers keep ``<name>.read.count`` in the step context (every record consumed, a
malformed one too) and skip that many records on restart, without parsing them. A
malformed record raises a ``ValueError`` for that record only: the next ``read()``
goes on with the next record, so ``skip: [ValueError]`` skips exactly the bad ones.
An I/O error is not a record error: the reader stays broken and raises it again, so
the input can never end early and look complete.
"""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Iterator, MutableMapping
from pathlib import Path
from typing import IO, Any

from baton.core.errors import BatonError


class MalformedRecord(ValueError, csv.Error):
    """A record that cannot be parsed; skippable as ``ValueError`` (or ``csv.Error``)."""


def _count_lines(path: Path) -> int:
    n = 0
    last = b"\n"
    with path.open("rb") as f:
        while block := f.read(1 << 20):
            n += block.count(b"\n")
            last = block[-1:]
    return n + (0 if last == b"\n" else 1)


class _Lines:
    """An iterator of a reader's decoded lines that survives raising for one line (a
    generator would be finished by its first exception, ending the input early)."""

    def __init__(self, reader: _FileReader):
        self.reader = reader

    def __iter__(self) -> _Lines:
        return self

    def __next__(self) -> str:
        r = self.reader
        assert r._file is not None
        raw = r._file.readline()
        if not raw:
            raise StopIteration
        r._lineno += 1
        try:
            return raw.decode(r.encoding)
        except UnicodeDecodeError as e:
            raise MalformedRecord(f"{r.path}:{r._lineno}: not {r.encoding}: {e.reason}") from None


class _FileReader:
    """Reads raw records one at a time; parsing a record may fail without ending the
    input. Subclasses give ``_next_raw`` (None at the end) and ``_parse``."""

    name = "file"

    def __init__(
        self, path: str | os.PathLike[str], *, name: str | None = None, encoding: str = "utf-8"
    ):
        self.path = Path(path)
        self.encoding = encoding
        if "\n".encode(encoding) != b"\n":
            raise BatonError(f"{type(self).__name__}: encoding {encoding!r} is not ASCII-based")
        if name:
            self.name = name
        self._file: IO[bytes] | None = None
        self._lineno = 0
        self._count = 0
        self._restart_at = 0
        self._broken: BaseException | None = None

    @property
    def key(self) -> str:
        return f"{self.name}.read.count"

    def _lines(self) -> Iterator[str]:
        """Decoded physical lines; an undecodable line is that line's record error."""
        return _Lines(self)

    def _begin(self) -> None:
        """Set up the record source once the file is open."""

    def _next_raw(self) -> Any:
        raise NotImplementedError

    def _parse(self, raw: Any) -> Any:
        return raw

    def open(self, context: MutableMapping[str, Any]) -> None:
        try:
            self._file = self.path.open("rb")
        except OSError as e:
            raise BatonError(f"cannot open {self.path}: {e.strerror}") from None
        self._lineno = 0
        self._broken = None
        self._begin()
        self._restart_at = self._count = int(context.get(self.key, 0))
        skipped = 0
        while skipped < self._count:
            try:
                if self._next_raw() is None:
                    break
            except MalformedRecord:
                pass  # it was counted (and skipped) before the restart
            skipped += 1

    def read(self) -> Any:
        if self._broken is not None:
            raise self._broken
        if self._file is None:
            raise BatonError(f"{type(self).__name__} read before open()")
        try:
            raw = self._next_raw()
        except MalformedRecord:
            self._count += 1
            raise
        except OSError as e:
            self._broken = BatonError(f"cannot read {self.path}: {e.strerror or e}")
            raise self._broken from e
        if raw is None:
            return None
        self._count += 1
        return self._parse(raw)

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
    """Rows of a CSV file as dicts keyed by the header (or lists with ``header=False``).

    A malformed row (a field over ``csv.field_size_limit()``, bad quoting with
    ``strict=True``, undecodable bytes) raises :class:`MalformedRecord` for that row."""

    name = "csv"

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        header: bool = True,
        delimiter: str = ",",
        strict: bool = False,
        name: str | None = None,
        encoding: str = "utf-8",
    ):
        super().__init__(path, name=name, encoding=encoding)
        self.header = header
        self.delimiter = delimiter
        self.strict = strict
        self._rows: Iterator[list[str]] = iter(())
        self._fields: list[str] | None = None

    def _begin(self) -> None:
        self._rows = csv.reader(self._lines(), delimiter=self.delimiter, strict=self.strict)
        self._fields = None
        if self.header:
            try:
                self._fields = self._row()
            except MalformedRecord as e:
                raise BatonError(f"{self.path}: unreadable header: {e}") from None

    def _row(self) -> list[str] | None:
        """The next row (None at the end); blank rows are no records when keyed."""
        while True:
            try:
                row = next(self._rows)
            except StopIteration:
                return None
            except csv.Error as e:
                if isinstance(e, MalformedRecord):
                    raise
                raise MalformedRecord(f"{self.path}:{self._lineno}: malformed CSV: {e}") from e
            if row or not self.header:
                return row

    def _next_raw(self) -> Any:
        return self._row()

    def _parse(self, raw: Any) -> Any:
        if self._fields is None:
            return raw
        # csv.DictReader's shape: extra values under None, missing ones None
        item: dict[Any, Any] = dict(zip(self._fields, raw, strict=False))
        if len(raw) > len(self._fields):
            item[None] = raw[len(self._fields) :]
        for k in self._fields[len(raw) :]:
            item[k] = None
        return item

    def _count_records(self) -> int:
        # csv's own parser: a quoted field may span lines; keyed rows skip blank ones
        with self.path.open(encoding=self.encoding, errors="replace", newline="") as f:
            rows = csv.reader(f, delimiter=self.delimiter)
            n = 0
            while True:
                try:
                    row = next(rows)
                except StopIteration:
                    break
                except csv.Error:
                    n += 1
                    continue
                n += 1 if (row or not self.header) else 0
            return max(n - 1, 0) if self.header else n


class JsonLinesReader(_FileReader):
    """One JSON value per non-empty line."""

    name = "jsonl"

    def _begin(self) -> None:
        self._source = self._lines()

    def _count_records(self) -> int:
        with self.path.open("rb") as f:
            return sum(1 for line in f if line.strip())

    def _next_raw(self) -> Any:
        while True:
            try:
                line = next(self._source)
            except StopIteration:
                return None
            if line.strip():
                return (self._lineno, line)

    def _parse(self, raw: Any) -> Any:
        lineno, line = raw
        try:
            return json.loads(line)
        except json.JSONDecodeError as e:
            raise MalformedRecord(f"{self.path}:{lineno}: invalid JSON: {e.msg}") from None
