"""Flat-file writers: CSV and JSON lines, fenced and restartable by byte offset.

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
from collections.abc import MutableMapping, Sequence
from decimal import Decimal
from pathlib import Path
from typing import IO, Any

from baton.core.errors import BatonError


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
