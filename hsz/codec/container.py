"""The ``.hsz`` container (format 1.0): signature, header, section table, CRC-checked sections.

Layout (all integers little-endian; SPEC.md §3 is the normative description)::

    0   8  signature 89 48 53 5A 0D 0A 1A 0A   ("\\x89HSZ\\r\\n\\x1a\\n")
    8   2  major version (u16)                 10  2  minor version (u16)
    12  4  header flags (u32, reserved, 0)     16  8  file length in bytes (u64)
    24  4  section count n (u32)
    28  28·n section table, per entry:
            type (4 ASCII bytes), flags (u32; bit 0 = critical),
            offset (u64), length (u64), CRC-32 of the payload (u32)
    28+28n  4  CRC-32 of bytes [0, 28+28n)
    then the section payloads, back to back in table order, ending exactly at the file end.

Because payloads are contiguous and every one has a CRC, every byte of a valid file is
covered by a checksum.  The reader checks sizes against the real file size *before* it
allocates or slices anything, so a short or hostile file cannot make it read or allocate
more than the file holds.
"""

from __future__ import annotations

import os
import struct
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from hsz.codec.binio import DAMAGED
from hsz.errors import FormatError

SIGNATURE = b"\x89HSZ\r\n\x1a\n"
FORMAT_MAJOR = 1
FORMAT_MINOR = 8

HEADER = struct.Struct("<8sHHIQI")  # 28 bytes
ENTRY = struct.Struct("<4sIQQI")  # 28 bytes
CRC = struct.Struct("<I")

FLAG_CRITICAL = 0x1
MAX_SECTIONS = 1024

#: Sections format 1.x defines (all critical when present).  See SPEC.md §4.
KNOWN_SECTIONS = frozenset({"META", "BNDS", "TDIR", "TDAT", "RAWA", "LATS", "TILE"})
#: Known sections that may appear more than once (format 1.3: one ``TILE`` per tile).
REPEATABLE = frozenset({"TILE"})


@dataclass(frozen=True)
class Section:
    """One table entry; ``data`` is filled only for sections that were read."""

    type: str
    flags: int
    offset: int
    length: int
    crc: int
    data: bytes | None = field(default=None, repr=False)

    @property
    def critical(self) -> bool:
        return bool(self.flags & FLAG_CRITICAL)


@dataclass(frozen=True)
class Container:
    """A parsed file: version, every section in table order, and the ones skipped."""

    version: tuple[int, int]
    file_length: int
    sections: list[Section]
    skipped: list[str]

    @property
    def header_bytes(self) -> int:
        return HEADER.size + ENTRY.size * len(self.sections) + CRC.size

    def get(self, kind: str) -> Section | None:
        for s in self.sections:
            if s.type == kind:
                return s
        return None

    def every(self, kind: str) -> list[Section]:
        return [s for s in self.sections if s.type == kind]

    def require(self, kind: str) -> Section:
        s = self.get(kind)
        if s is None:
            raise FormatError(f"required section {kind!r} is missing; {DAMAGED}")
        return s


def crc32(data: bytes | memoryview) -> int:
    return zlib.crc32(data) & 0xFFFFFFFF


# ---------------------------------------------------------------------------- writing


def write_container(sections: list[tuple[str, int, bytes]], *, minor: int = 0,
                    major: int = FORMAT_MAJOR) -> bytes:
    """Serialize ``(type, flags, payload)`` triples; ``major`` is overridable for tests."""
    n = len(sections)
    if n > MAX_SECTIONS:
        raise ValueError(f"too many sections ({n})")
    table_end = HEADER.size + ENTRY.size * n + CRC.size
    total = table_end + sum(len(p) for _, _, p in sections)
    head = bytearray(HEADER.pack(SIGNATURE, major, minor, 0, total, n))
    offset = table_end
    for kind, flags, payload in sections:
        tag = kind.encode("ascii")
        if len(tag) != 4 or not all(0x20 <= b <= 0x7E for b in tag):
            raise ValueError(f"section type {kind!r} must be 4 printable ASCII characters")
        head += ENTRY.pack(tag, flags, offset, len(payload), crc32(payload))
        offset += len(payload)
    head += CRC.pack(crc32(head))
    return bytes(head) + b"".join(p for _, _, p in sections)


# ---------------------------------------------------------------------------- reading


def _diagnose_signature(start: bytes) -> str:
    """Explain a bad signature, recognising the classic transfer damages."""
    if start[1:4] == b"HSZ":
        if start[0] == 0x09:
            return "its first byte lost its high bit (sent over a 7-bit channel)"
        if start.startswith(b"\x89HSZ\n\x1a\n"):
            return "its CR LF became LF (copied in text mode); copy it again in binary mode"
        if start.startswith(b"\x89HSZ\r\r\n") or start.startswith(b"\x89HSZ\r\n\x1a\r\n"):
            return "its LF became CR LF (copied in text mode); copy it again in binary mode"
        return "its signature is damaged"
    return "it does not start with the .hsz signature"


def header_version(data: bytes) -> tuple[int, int]:
    """(major, minor) from the fixed header of a file this process just wrote (unchecked:
    readers go through :func:`read_container`)."""
    _, major, minor, *_ = HEADER.unpack(data[:HEADER.size])
    return major, minor


def _parse_header(head: bytes, actual_size: int) -> tuple[int, int, int, int]:
    """Validate the fixed header; returns (major, minor, file_length, section_count)."""
    if actual_size < HEADER.size + CRC.size:
        prefix = head[:8]
        if prefix and SIGNATURE.startswith(prefix):
            raise FormatError(f"file is only {actual_size} bytes: truncated inside the header; "
                              f"{DAMAGED}")
        raise FormatError(f"not an .hsz file: only {actual_size} bytes long")
    if head[:8] != SIGNATURE:
        raise FormatError(f"not an .hsz file: {_diagnose_signature(head[:8])}")
    _, major, minor, _flags, length, count = HEADER.unpack(head[: HEADER.size])
    if major > FORMAT_MAJOR:
        hint = "" if major < 1000 else " (or the header is damaged)"
        raise FormatError(f"written by a newer hsz (format {major}.{minor}){hint}; upgrade hsz")
    if major < FORMAT_MAJOR:
        raise FormatError(f"format {major}.{minor} is not supported by this hsz "
                          f"(reads {FORMAT_MAJOR}.x)")
    if length != actual_size:
        if actual_size < length:
            raise FormatError(f"file is truncated: header declares {length} bytes but only "
                              f"{actual_size} are present; {DAMAGED}")
        raise FormatError(f"file has {actual_size - length} unexpected bytes after its "
                          f"declared end at offset {length}; {DAMAGED}")
    if count > MAX_SECTIONS or HEADER.size + ENTRY.size * count + CRC.size > length:
        raise FormatError(f"header at offset 24 declares {count} sections, more than a "
                          f"{length}-byte file can hold; {DAMAGED}")
    return major, minor, length, count


def _parse_table(table: bytes, count: int, length: int) -> list[Section]:
    """Validate the section table (already size-checked) and return its entries."""
    table_end = HEADER.size + ENTRY.size * count + CRC.size
    (stored,) = CRC.unpack(table[-CRC.size:])
    if crc32(table[:-CRC.size]) != stored:
        raise FormatError(f"header/section table CRC mismatch (bytes 0..{table_end}); {DAMAGED}")
    sections: list[Section] = []
    expected = table_end
    seen: set[str] = set()
    for i in range(count):
        at = HEADER.size + ENTRY.size * i
        tag, flags, off, ln, crc = ENTRY.unpack(table[at : at + ENTRY.size])
        if not all(0x20 <= b <= 0x7E for b in tag):
            raise FormatError(f"section {i} (table offset {at}) has a non-ASCII type "
                              f"{tag!r}; {DAMAGED}")
        kind = tag.decode("ascii")
        if off + ln > length or off < table_end:
            raise FormatError(f"section {kind!r} (#{i}) spans {off}..{off + ln}, outside the "
                              f"payload area {table_end}..{length}; {DAMAGED}")
        if off != expected:
            what = "overlaps the previous one" if off < expected else "leaves a gap before it"
            raise FormatError(f"section {kind!r} (#{i}) at offset {off} {what} (expected "
                              f"offset {expected}); {DAMAGED}")
        if kind in KNOWN_SECTIONS and kind not in REPEATABLE and kind in seen:
            raise FormatError(f"section {kind!r} appears twice (#{i} at offset {off}); {DAMAGED}")
        seen.add(kind)
        expected = off + ln
        sections.append(Section(kind, flags, off, ln, crc))
    if expected != length:
        raise FormatError(f"sections end at offset {expected} but the file is {length} bytes; "
                          f"{DAMAGED}")
    return sections


def _check_known(sections: list[Section], version: tuple[int, int]) -> list[str]:
    skipped = []
    for s in sections:
        if s.type in KNOWN_SECTIONS:
            continue
        if s.critical:
            raise FormatError(
                f"section {s.type!r} at offset {s.offset} is marked critical but this hsz "
                f"(reads format {FORMAT_MAJOR}.{FORMAT_MINOR}) does not understand it; file is "
                f"format {version[0]}.{version[1]}; upgrade hsz")
        skipped.append(s.type)
    return skipped


def _with_payload(s: Section, payload: bytes) -> Section:
    if crc32(payload) != s.crc:
        raise FormatError(f"section {s.type!r} (offset {s.offset}, {s.length} bytes) fails its "
                          f"CRC-32 check; {DAMAGED}")
    return Section(s.type, s.flags, s.offset, s.length, s.crc, payload)


def read_container(buf: bytes | bytearray | memoryview) -> Container:
    """Parse and fully verify an in-memory file (every section's CRC)."""
    data = bytes(buf)
    major, minor, length, count = _parse_header(data[: HEADER.size], len(data))
    table_end = HEADER.size + ENTRY.size * count + CRC.size
    entries = _parse_table(data[:table_end], count, length)
    skipped = _check_known(entries, (major, minor))
    sections = [_with_payload(s, data[s.offset : s.offset + s.length]) for s in entries]
    return Container((major, minor), length, sections, skipped)


def _with_open(path: str | os.PathLike[str], read: Any) -> Any:
    """``read(fh)`` on the opened file; an OS error becomes a one-line FormatError."""
    try:
        with open(Path(path), "rb") as fh:
            return read(fh)
    except OSError as exc:
        raise FormatError(f"cannot read {path}: {exc.strerror or exc}") from None


def _read_table(fh: BinaryIO) -> tuple[int, int, int, list[Section]]:
    """Header and section table of an open file (CRC-checked): major, minor, length,
    sections without payloads."""
    size = os.fstat(fh.fileno()).st_size
    fh.seek(0)
    head = fh.read(HEADER.size)
    major, minor, length, count = _parse_header(head, size)
    table_end = HEADER.size + ENTRY.size * count + CRC.size
    entries = _parse_table(head + fh.read(table_end - HEADER.size), count, length)
    return major, minor, length, entries


def read_container_header(source: str | os.PathLike[str] | BinaryIO,
                          want: tuple[str, ...] = ("META",)) -> Container:
    """Read only the header, the table and the sections named in ``want`` (CRC-checked).

    For ``hsz info``: a large file's coded tensors are never read.
    """
    if isinstance(source, str | os.PathLike):
        return _with_open(source, lambda fh: read_container_header(fh, want))
    fh = source
    major, minor, length, entries = _read_table(fh)
    skipped = _check_known(entries, (major, minor))
    sections = []
    for s in entries:
        if s.type in want:
            fh.seek(s.offset)
            payload = fh.read(s.length)
            if len(payload) != s.length:
                raise FormatError(f"file shrank while reading section {s.type!r}")
            s = _with_payload(s, payload)
        sections.append(s)
    return Container((major, minor), length, sections, skipped)


#: Bytes read at a time while checksumming: memory stays flat however large the file.
_CRC_CHUNK = 1 << 20


def _payload_crc(fh: BinaryIO, s: Section) -> int | None:
    """CRC-32 of one section's payload read in chunks; None if the file ended early."""
    fh.seek(s.offset)
    crc, left = 0, s.length
    while left:
        chunk = fh.read(min(left, _CRC_CHUNK))
        if not chunk:
            return None
        crc = zlib.crc32(chunk, crc)
        left -= len(chunk)
    return crc & 0xFFFFFFFF


def check_integrity(source: str | os.PathLike[str] | BinaryIO) -> dict[str, Any]:
    """Verify the CRC-32 of every section, as a report rather than an exception.

    ``hsz info`` reads only the small sections it shows, so damage in ``TDAT`` (nearly all
    of a file) would otherwise go unseen until ``decode`` refuses the file; users check an
    archive with the command that inspects it (``gzip -t``, ``flac -t``).  Checksumming
    streams the payloads without keeping or decoding them, and every section is checked
    (not only up to the first failure) so the report says how much is affected.

    Returns ``{"intact": bool, "checked": [types], "damaged": [{"section", "offset",
    "length", "reason"}]}``, JSON-ready.  Damage to the header or section table raises
    :class:`FormatError`: without a sound table there are no sections to check.
    """
    if isinstance(source, str | os.PathLike):
        return _with_open(source, check_integrity)
    fh = source
    _, _, _, entries = _read_table(fh)
    damaged: list[dict[str, Any]] = []
    for s in entries:
        crc = _payload_crc(fh, s)
        if crc == s.crc:
            continue
        reason = ("the file ended inside it" if crc is None else
                  f"its CRC-32 is {crc:08x}, the section table records {s.crc:08x}")
        damaged.append({"section": s.type, "offset": s.offset, "length": s.length,
                        "reason": reason})
    return {"intact": not damaged, "checked": [s.type for s in entries], "damaged": damaged}


def damage_summary(report: dict[str, Any]) -> str:
    """One line naming each section a :func:`check_integrity` report found damaged."""
    return "; ".join(
        f"section {d['section']!r} (offset {d['offset']}, {d['length']} bytes) fails its "
        "CRC-32 check"
        for d in report.get("damaged", [])
    )
