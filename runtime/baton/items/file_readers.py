"""Flat-file readers: CSV and JSON lines, restartable in O(1) by byte offset.

After every chunk a reader keeps in the step context the byte offset of its next
record (``<name>.read.offset``), the records consumed (``<name>.read.count``, a
malformed one too) and the physical line reached (``<name>.read.line``, for messages).
On restart it reads the header, then ``seek``s to the offset: the rows already read
cost nothing. A checkpoint without an offset (written by an older Baton) restarts by
skipping that many records, as it always did. A file that is now shorter than the
offset, or whose offset no longer follows a line end, fails the step with a one-line
message instead of reading from the middle of a record.

Files are read in binary one physical line at a time and decoded per line (so the
encoding must be ASCII-based: ``b"\\n"`` ends a line in it). Offsets count raw bytes,
exact across encodings, CRLF line ends, a UTF-8 byte-order mark (skipped) and a last
line without a newline. A quoted CSV field may span lines: the csv parser pulls lines
until its record is complete, so the offset after a record is where the next begins.

A malformed record raises a ``ValueError`` for that record only: the next ``read()``
goes on with the next record, so ``skip: [ValueError]`` skips exactly the bad ones.
An I/O error is not a record error: the reader stays broken and raises it again, so
the input can never end early and look complete.

The progress total is an estimate (:class:`~baton.items.protocols.EstimatesTotal`):
the records read so far plus the bytes left at the bytes per record so far; exact at
the end. Nothing counts the file up front.
"""

from __future__ import annotations

import codecs
import csv
import json
import operator
import os
from collections.abc import Iterator, MutableMapping
from pathlib import Path
from typing import IO, Any

from baton.core.errors import BatonError


class MalformedRecord(ValueError, csv.Error):
    """A record that cannot be parsed; skippable as ``ValueError`` (or ``csv.Error``)."""


def _line_codec(encoding: str) -> tuple[str, bool]:
    """The codec to decode each line with, and whether a UTF-8 BOM may open the file
    (``utf-8-sig`` decodes as ``utf-8`` once the BOM is skipped: per line it would eat
    a U+FEFF that opens any line)."""
    name = codecs.lookup(encoding).name
    if name in ("utf-8", "utf-8-sig"):
        return "utf-8", True
    return encoding, False


class _Lines:
    """An iterator of a reader's decoded lines that survives raising for one line (a
    generator would be finished by its first exception, ending the input early). It
    moves the reader's byte offset and line number with every line it hands out."""

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
        r._offset += len(raw)
        r._lines_read += 1
        try:
            return raw.decode(r._codec)
        except UnicodeDecodeError as e:
            raise MalformedRecord(f"{r.path}:{r._lineno}: not {r.encoding}: {e.reason}") from None


class _FileReader:
    """Reads raw records one at a time; parsing a record may fail without ending the
    input. Subclasses give ``_next_raw`` (None at the end) and ``_parse``.

    ``lines_read`` counts the physical lines read since ``open`` (the header's, and
    those of records skipped by count, included): what reaching the cursor cost."""

    name = "file"

    def __init__(
        self, path: str | os.PathLike[str], *, name: str | None = None, encoding: str = "utf-8"
    ):
        self.path = Path(path)
        self.encoding = encoding
        if "\n".encode(encoding) != b"\n":
            raise BatonError(f"{type(self).__name__}: encoding {encoding!r} is not ASCII-based")
        self._codec, self._bom = _line_codec(encoding)
        if name:
            self.name = name
        self._file: IO[bytes] | None = None
        self._lineno = self._offset = self._size = self._opened_at = 0
        self._count = self._restart_at = 0
        self._done = False
        self._broken: BaseException | None = None
        self._lines_read = 0

    @property
    def lines_read(self) -> int:
        return self._lines_read

    def _tell(self) -> tuple[int, int]:
        """(byte offset, physical line) after the last line read."""
        return self._offset, self._lineno

    def _told(self, offset: int, line: int) -> None:
        """The file was positioned at ``offset``, which starts line ``line + 1``."""
        self._offset, self._lineno = offset, line

    @property
    def key(self) -> str:
        return f"{self.name}.read.count"

    @property
    def offset_key(self) -> str:
        return f"{self.name}.read.offset"

    @property
    def line_key(self) -> str:
        return f"{self.name}.read.line"

    def _lines(self) -> Iterator[str]:
        """Decoded physical lines; an undecodable line is that line's record error."""
        return _Lines(self)

    def _begin(self) -> None:
        """Set up the record source once the file is open (a CSV reads its header)."""

    def _next_raw(self) -> Any:
        raise NotImplementedError

    def _parse(self, raw: Any) -> Any:
        return raw

    def open(self, context: MutableMapping[str, Any]) -> None:
        try:
            self._file = self.path.open("rb")
            self._size = os.fstat(self._file.fileno()).st_size
        except OSError as e:
            raise BatonError(f"cannot open {self.path}: {e.strerror}") from None
        self._lineno = self._offset = self._lines_read = 0
        self._done = False
        self._broken = None
        if self._bom and self._file.read(len(codecs.BOM_UTF8)) == codecs.BOM_UTF8:
            self._offset = len(codecs.BOM_UTF8)
        else:
            self._file.seek(0)
        self._begin()
        self._restart_at = self._count = int(context.get(self.key, 0))
        offset = context.get(self.offset_key)
        if offset is None:
            self._skip(self._count)  # a checkpoint from before offsets: by count
        elif int(offset) != self._tell()[0]:
            self._seek(int(offset), int(context.get(self.line_key, 0)))
        self._opened_at = self._tell()[0]

    def _skip(self, count: int) -> None:
        skipped = 0
        while skipped < count:
            try:
                if self._next_raw() is None:
                    break
            except MalformedRecord:
                pass  # it was counted (and skipped) before the restart
            skipped += 1

    def _seek(self, offset: int, line: int) -> None:
        """Go to the checkpointed offset: refused when the file cannot hold it any more
        (shorter, or the byte before it no longer ends a line)."""
        assert self._file is not None
        start = self._tell()[0]
        if start <= offset < self._size:
            self._file.seek(offset - 1)
            fits = self._file.read(1) == b"\n"
        else:
            fits = start <= offset == self._size  # all read; maybe no last newline
        if not fits:
            raise BatonError(
                f"{self.path} changed since the checkpoint: it is {self._size} bytes and the "
                f"restart offset {offset} (after {self._count} records) is not a record "
                "boundary in it; restore the file or start a new job instance"
            )
        self._file.seek(offset)
        self._told(offset, line)

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
            self._done = True
            return None
        self._count += 1
        return self._parse(raw)

    def update(self, context: MutableMapping[str, Any]) -> None:
        context[self.key] = self._count
        context[self.offset_key], context[self.line_key] = self._tell()

    def close(self) -> None:
        if self._file:
            self._file.close()
            self._file = None

    def estimate_total(self) -> int | None:
        """Records this reader reads from ``open`` on: exact at the end; before, those
        read so far plus the bytes left at their bytes per record; None before any."""
        read = self._count - self._restart_at
        if self._done:
            return read
        offset = self._tell()[0]
        spent = offset - self._opened_at
        if read == 0 or spent <= 0:
            return None
        return read + round(max(self._size - offset, 0) * read / spent)


class CsvReader(_FileReader):
    """Rows of a CSV file as dicts keyed by the header (or lists with ``header=False``).

    A malformed row (a field over ``csv.field_size_limit()``, bad quoting with
    ``strict=True``, undecodable bytes) raises :class:`MalformedRecord` for that row.

    The csv parser pulls the file's lines through C alone (the binary file's own
    iterator, decoded by ``map``): the byte offset is the file's ``tell()`` and the line
    number the parser's ``line_num``, so no Python code runs per line."""

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
        self._rows: Any = csv.reader(())
        self._fields: list[str] | None = None
        # line number = _line_base + lines the parser took since _line_mark (+ bad ones)
        self._line_base = self._line_mark = self._bad_lines = 0

    @property
    def lines_read(self) -> int:
        return int(self._rows.line_num) + self._bad_lines

    def _tell(self) -> tuple[int, int]:
        assert self._file is not None
        return self._file.tell(), self._line_base + self.lines_read - self._line_mark

    def _told(self, offset: int, line: int) -> None:
        self._line_base, self._line_mark = line, self.lines_read

    def _begin(self) -> None:
        assert self._file is not None
        lines = map(operator.methodcaller("decode", self._codec), self._file)
        self._rows = csv.reader(lines, delimiter=self.delimiter, strict=self.strict)
        self._line_base = self._line_mark = self._bad_lines = 0
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
                row: list[str] = next(self._rows)
            except StopIteration:
                return None
            except UnicodeDecodeError as e:  # that line was read: count it
                self._bad_lines += 1
                line = self._tell()[1]
                raise MalformedRecord(
                    f"{self.path}:{line}: not {self.encoding}: {e.reason}"
                ) from None
            except csv.Error as e:
                line = self._tell()[1]
                raise MalformedRecord(f"{self.path}:{line}: malformed CSV: {e}") from e
            if row or not self.header:
                return row

    def _next_raw(self) -> Any:
        return self._row()

    def _parse(self, raw: Any) -> Any:
        if self._fields is None:
            return raw
        if len(raw) == len(self._fields):
            return dict(zip(self._fields, raw, strict=True))
        # csv.DictReader's shape: extra values under None, missing ones None
        item: dict[Any, Any] = dict(zip(self._fields, raw, strict=False))
        if len(raw) > len(self._fields):
            item[None] = raw[len(self._fields) :]
        for k in self._fields[len(raw) :]:
            item[k] = None
        return item


class JsonLinesReader(_FileReader):
    """One JSON value per non-empty line."""

    name = "jsonl"

    def _begin(self) -> None:
        self._source = self._lines()

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
