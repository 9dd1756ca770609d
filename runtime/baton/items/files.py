"""Flat-file readers and writers: CSV and JSON lines, restartable by record count.

Readers keep ``<name>.read.count`` in the step context (every record consumed, a
malformed one too) and skip that many records on restart, without parsing them. A
malformed record raises a ``ValueError`` for that record only: the next ``read()``
goes on with the next record, so ``skip: [ValueError]`` skips exactly the bad ones.
An I/O error is not a record error: the reader stays broken and raises it again, so
the input can never end early and look complete.

Writers are fenced (:class:`baton.items.protocols.StagedWriter`): ``write()`` only
encodes a chunk into memory; the chunk loop appends it to the file inside the
checkpoint transaction, after the checkpoint passed its fence check, and truncates the
file back to the last committed offset if that transaction does not commit. They keep
``<name>.written.offset`` and truncate the file back to it on restart, so the file ends
up with every record exactly once.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import os
import uuid
from collections.abc import Iterator, MutableMapping, Sequence
from decimal import Decimal
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


class _FileWriter:
    """A fenced, restartable file writer (see the module docstring)."""

    name = "file"

    def __init__(
        self, path: str | os.PathLike[str], *, name: str | None = None, encoding: str = "utf-8"
    ):
        self.path = Path(path)
        self.encoding = encoding
        if name:
            self.name = name
        self._file: IO[bytes] | None = None
        self._committed = 0  # the file's size at the last committed checkpoint
        self._staged = bytearray()
        self._flushed = False  # bytes past _committed were appended since then

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
        self._staged.clear()
        self._flushed = False
        if offset == 0:  # a fresh file: its preamble (a CSV header) goes in now
            f.write(self._preamble())
            f.flush()
        self._committed = f.tell()

    def _preamble(self) -> bytes:
        """Bytes the file starts with (a CSV header)."""
        return b""

    def _encode(self, items: Sequence[Any]) -> str:
        raise NotImplementedError

    def write(self, items: list[Any]) -> None:
        """Stage the chunk's bytes; nothing reaches the file before ``flush_staged``."""
        if self._file is None:
            raise BatonError(f"{type(self).__name__} written before open()")
        self._staged += self._encode(items).encode(self.encoding)

    def update(self, context: MutableMapping[str, Any]) -> None:
        """The offset the file will have once the staged chunk is committed."""
        context[self.key] = self._committed + len(self._staged)

    def flush_staged(self) -> None:
        if self._file is None or not self._staged:
            return
        self._flushed = True
        self._file.seek(self._committed)
        self._file.truncate(self._committed)
        self._file.write(self._staged)
        self._file.flush()
        os.fsync(self._file.fileno())

    def commit_staged(self) -> None:
        self._committed += len(self._staged)
        self._staged.clear()
        self._flushed = False

    def rollback(self) -> None:
        """Forget the staged chunk; cut what was appended since the last commit."""
        self._staged.clear()
        if self._flushed and self._file is not None:
            self._file.truncate(self._committed)
            self._file.seek(self._committed)
            os.fsync(self._file.fileno())
        self._flushed = False

    def close(self) -> None:
        if self._file:
            self._file.close()
            self._file = None


def _json_default(value: Any) -> Any:
    """The few non-JSON types with one obvious text form; anything else is refused."""
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, Decimal | uuid.UUID):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not JSON")


class JsonLinesWriter(_FileWriter):
    """One JSON value per line. Values JSON cannot carry (a set, bytes, an object, NaN)
    are refused with a ``TypeError``/``ValueError`` naming the type — skippable if the
    step lists it — rather than written as their ``str()``; datetimes, dates, times,
    Decimals and UUIDs are written as text."""

    name = "jsonl"

    def _encode(self, items: Sequence[Any]) -> str:
        lines = []
        for i, item in enumerate(items):
            try:
                lines.append(json.dumps(item, default=_json_default, allow_nan=False) + "\n")
            except TypeError as e:
                raise TypeError(f"{type(self).__name__}: item {i} of the chunk: {e}") from None
            except ValueError as e:
                raise ValueError(f"{type(self).__name__}: item {i} of the chunk: {e}") from None
        return "".join(lines)


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

    def _preamble(self) -> bytes:
        if not self.header:
            return b""
        return self._encode([dict(zip(self.fields, self.fields, strict=True))]).encode(
            self.encoding
        )

    def _encode(self, items: Sequence[Any]) -> str:
        buf = io.StringIO()
        w = csv.DictWriter(buf, fieldnames=self.fields, extrasaction="ignore")
        w.writerows(items)
        return buf.getvalue()
