"""The file behind a finished Qianfan export: a deterministic zip of an exact size, generated on demand.

The bytes are a pure function of (seed, size), so a test can compare a downloaded file with
:meth:`ExportFile.read` (small files) or :meth:`ExportFile.sha256` (any size), and a resumed download that
splices at the wrong offset shows up: every 64 KiB chunk of the member starts with its own number. Nothing is
ever held whole in memory; :meth:`ExportFile.iter_range` yields 64 KiB pieces.

Layout (one *stored*, uncompressed member, no ZIP64, so at most 4 GiB)::

    local file header | member data | central directory entry | end of central directory

``zipfile`` opens it and verifies the member's CRC-32, which is computed once per file (lazily, cached).
"""

from __future__ import annotations

import hashlib
import struct
import threading
import zlib
from collections.abc import Iterator

__all__ = ["CHUNK", "MAX_SIZE", "MEMBER_NAME", "MIB", "ExportFile", "export_file_size"]

MIB = 1024 * 1024
CHUNK = 64 * 1024
MEMBER_NAME = "export/samples.jsonl"
_NAME = MEMBER_NAME.encode("ascii")
_LOCAL = 30 + len(_NAME)
_CENTRAL = 46 + len(_NAME)
_END = 22
#: The smallest file (an empty member) and the largest this layout can describe.
MIN_SIZE = _LOCAL + _CENTRAL + _END
MAX_SIZE = 0xFFFFFFFF - 1
_DOS_TIME, _DOS_DATE = 12 << 11, ((2024 - 1980) << 9) | (6 << 5) | 1  # 2024-06-01 12:00, fixed for determinism


def export_file_size(seed: str, size_mb: float, size_bytes: int | None = None) -> int:
    """The exact byte size of an export whose ``sizeMB`` is ``size_mb``.

    ``size_bytes`` wins when given. Otherwise the size is ``size_mb`` MiB moved by a deterministic offset of at
    most 5,000 bytes (under 0.005 MiB), so ``round(size / MIB, 2) == size_mb`` still holds for a two-decimal
    ``size_mb`` but the size is not an exact multiple: clients must allow for the rounding, as with the real API.
    """
    if size_bytes is not None:
        return max(MIN_SIZE, int(size_bytes))
    jitter = int.from_bytes(hashlib.sha256(f"size:{seed}".encode()).digest()[:4], "big") % 10_001 - 5_000
    return max(MIN_SIZE, round(size_mb * MIB) + jitter)


class ExportFile:
    """A zip of exactly ``size`` bytes whose content depends only on ``seed``.

    >>> f = ExportFile("task-1", 100_000)
    >>> len(f.read()), f.read(10, 20) == f.read()[10:20]
    (100000, True)
    """

    def __init__(self, seed: str, size: int) -> None:
        if not MIN_SIZE <= size <= MAX_SIZE:
            raise ValueError(f"an export file must be {MIN_SIZE}..{MAX_SIZE} bytes, got {size}")
        self.seed = seed
        self.size = size
        self.data_size = size - MIN_SIZE
        digest = hashlib.sha256(f"content:{seed}".encode()).hexdigest()
        self._tag = digest[:18]
        # One printable 64 KiB block of lines; each chunk differs by its numbered first line.
        line = (digest * 2)[:63] + "\n"
        self._block = (line * (CHUNK // len(line) + 1)).encode("ascii")[:CHUNK]
        self._crc: int | None = None
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"ExportFile(seed={self.seed!r}, size={self.size})"

    @property
    def etag(self) -> str:
        """A strong validator for ``ETag``/``If-Range`` (quoted), stable for (seed, size)."""
        return '"' + hashlib.sha256(f"etag:{self.seed}:{self.size}".encode()).hexdigest()[:32] + '"'

    # -- content ----------------------------------------------------------------------------------------

    def _chunk(self, number: int) -> bytes:
        prefix = f"#{number:012d}:{self._tag}\n".encode("ascii")  # 32 bytes
        end = min(CHUNK, self.data_size - number * CHUNK)
        return (prefix + self._block[len(prefix):])[:end]

    def _data(self, start: int, end: int) -> Iterator[bytes]:
        number = start // CHUNK
        while start < end:
            chunk = self._chunk(number)
            offset = start - number * CHUNK
            piece = chunk[offset: offset + (end - start)]
            yield piece
            start += len(piece)
            number += 1

    def crc32(self) -> int:
        """CRC-32 of the member (computed on first use, about a second per GiB, then cached)."""
        with self._lock:
            if self._crc is None:
                crc = 0
                for piece in self._data(0, self.data_size):
                    crc = zlib.crc32(piece, crc)
                self._crc = crc
            return self._crc

    def _head(self) -> bytes:
        return struct.pack("<IHHHHHIIIHH", 0x04034B50, 10, 0, 0, _DOS_TIME, _DOS_DATE, self.crc32(),
                           self.data_size, self.data_size, len(_NAME), 0) + _NAME

    def _tail(self) -> bytes:
        central = struct.pack("<IHHHHHHIIIHHHHHII", 0x02014B50, 20, 10, 0, 0, _DOS_TIME, _DOS_DATE, self.crc32(),
                              self.data_size, self.data_size, len(_NAME), 0, 0, 0, 0, 0o644 << 16, 0) + _NAME
        directory_at = _LOCAL + self.data_size
        end = struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, 1, 1, len(central), directory_at, 0)
        return central + end

    def iter_range(self, start: int = 0, end: int | None = None) -> Iterator[bytes]:
        """Bytes ``[start, end)`` of the file in pieces of at most 64 KiB (``end`` None = to the end)."""
        end = self.size if end is None else min(end, self.size)
        if not 0 <= start <= end:
            raise ValueError(f"bad range {start}..{end} for a {self.size}-byte file")
        tail_at = _LOCAL + self.data_size
        if start < _LOCAL:
            yield self._head()[start:min(end, _LOCAL)]
        if start < tail_at and end > _LOCAL:
            yield from self._data(max(start, _LOCAL) - _LOCAL, min(end, tail_at) - _LOCAL)
        if end > tail_at:
            yield self._tail()[max(start, tail_at) - tail_at: end - tail_at]

    def read(self, start: int = 0, end: int | None = None) -> bytes:
        """Bytes ``[start, end)`` as one ``bytes`` (for small files and tests)."""
        return b"".join(self.iter_range(start, end))

    def sha256(self) -> str:
        """Hex SHA-256 of the whole file, streamed."""
        digest = hashlib.sha256()
        for piece in self.iter_range():
            digest.update(piece)
        return digest.hexdigest()
