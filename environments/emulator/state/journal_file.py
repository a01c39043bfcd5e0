"""The on-disk format of the journal: segment files of framed, checksummed records.

    <state-dir>/journal/<first seq, 20 digits>.wal

    record = payload length (4 bytes, big-endian) | CRC-32 of the payload (4 bytes) | payload
    payload = meta length (4 bytes) | meta (JSON) | request body (absent when it went to a blob)

A record is only ever appended, then made durable (fdatasync) before its response leaves. A
crash can therefore tear at most the records at the very end of the newest segment; reading
stops cleanly at the first frame that is short or fails its checksum.
"""

from __future__ import annotations

import json
import logging
import re
import struct
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

SUFFIX = ".wal"
_NAME = re.compile(r"^(\d{20})\.wal$")
_FRAME = struct.Struct(">II")
_META = struct.Struct(">I")
# No record is anywhere near this: a larger length is damage, not data.
_MAX_PAYLOAD = 1 << 30


@dataclass
class Record:
    seq: int
    meta: dict[str, Any]
    body: bytes


@dataclass
class Scan:
    """What reading a journal directory found: the good records, in order, and any damage."""

    records: list[Record] = field(default_factory=list)
    damage: list[str] = field(default_factory=list)


def segment_name(first_seq: int) -> str:
    return f"{first_seq:020d}{SUFFIX}"


def segments(directory: Path) -> list[tuple[int, Path]]:
    """The segment files, oldest first."""
    if not directory.is_dir():
        return []
    found = []
    for path in directory.iterdir():
        match = _NAME.match(path.name)
        if match:
            found.append((int(match.group(1)), path))
    return sorted(found)


def encode(meta: dict[str, Any], body: bytes) -> bytes:
    encoded = json.dumps(meta, separators=(",", ":")).encode()
    payload = b"".join((_META.pack(len(encoded)), encoded, body))
    return _FRAME.pack(len(payload), zlib.crc32(payload)) + payload


def scan(directory: Path, after: int = 0) -> Scan:
    """The good records after sequence number `after` (what a snapshot already holds), in
    order. A torn or damaged frame ends the scan there: nothing after it can have been
    acknowledged before it, as each fdatasync covers a prefix of the journal."""
    result = Scan()
    found = segments(directory)
    for index, (_, path) in enumerate(found):
        if index + 1 < len(found) and found[index + 1][0] <= after + 1:
            continue  # every record in it is in the snapshot already
        for record in _read_segment(path, result):
            if record.seq <= after:
                continue
            expected = result.records[-1].seq + 1 if result.records else after + 1
            if record.seq != expected:
                result.damage.append(f"{path.name}: record {record.seq} where {expected} belongs")
                return result
            result.records.append(record)
        if result.damage:
            return result
    return result


def _read_segment(path: Path, result: Scan) -> Iterator[Record]:
    data = path.read_bytes()
    offset = 0
    while offset < len(data):
        problem = None
        if len(data) - offset < _FRAME.size:
            problem = "a torn frame header"
        else:
            length, checksum = _FRAME.unpack_from(data, offset)
            start, end = offset + _FRAME.size, offset + _FRAME.size + length
            if length > _MAX_PAYLOAD or end > len(data):
                problem = "a torn record"
            elif zlib.crc32(data[start:end]) != checksum:
                problem = "a record that fails its checksum"
        if problem is None:
            try:
                record = _decode(data[start:end])
            except (ValueError, KeyError, TypeError, struct.error):
                problem = "a record that does not decode"
        if problem is not None:
            result.damage.append(f"{path.name} at byte {offset}: {problem}")
            return
        yield record
        offset = end


def _decode(payload: bytes) -> Record:
    (meta_length,) = _META.unpack_from(payload, 0)
    meta = json.loads(payload[_META.size : _META.size + meta_length])
    if not isinstance(meta, dict) or not isinstance(meta["seq"], int):
        raise ValueError("record meta is not an object with a seq")
    return Record(meta["seq"], meta, payload[_META.size + meta_length :])
