"""The on-disk snapshot format.

    MAGIC | header length (4 bytes, big-endian) | header (JSON) | payload (pickle)

The header names the state format and the moto version that wrote the payload, since pickled
moto objects only make sense to the same moto; it also carries the payload's SHA-256, so a torn
or damaged file is detected before anything is unpickled, the digests of the S3 bodies the
payload refers to, so blob garbage collection can work from headers alone, and the sequence
number of the last journal record the state includes.
"""

from __future__ import annotations

import hashlib
import json
import struct
import sys
import time
from pathlib import Path
from typing import Any

import moto

from environments.emulator.state.errors import CorruptState, IncompatibleState
from environments.plumbing.files import atomic_output

# Bump whenever the payload's layout or the pickling of any object changes.
FORMAT_VERSION = 1
# The moto release whose objects the pickling in this package was written and tested against.
# pyproject.toml pins moto to exactly this; a test fails if the three ever disagree.
BUILT_FOR_MOTO = "5.2.5"
MAGIC = b"AIRDOCK-AWS-STATE\x00"
_LENGTH = struct.Struct(">I")


def write(
    path: Path, payload: bytes, blobs: set[str], services: list[str], journal_seq: int = 0
) -> None:
    header = {
        "format": FORMAT_VERSION,
        "moto": moto.__version__,
        "python": ".".join(map(str, sys.version_info[:3])),
        "written_at": time.time(),
        "payload_bytes": len(payload),
        "payload_sha256": hashlib.sha256(payload).hexdigest(),
        "services": services,
        "blobs": sorted(blobs),
        # The last journal record this state includes; replay goes on from the next one.
        "journal_seq": journal_seq,
    }
    encoded = json.dumps(header, separators=(",", ":")).encode()
    with atomic_output(path) as out:
        out.write(MAGIC)
        out.write(_LENGTH.pack(len(encoded)))
        out.write(encoded)
        out.write(payload)


def read_header(path: Path) -> dict[str, Any]:
    with open(path, "rb") as source:
        header = _read_header(source, path)
    return header


def read(path: Path) -> tuple[dict[str, Any], bytes]:
    """The header and verified payload of a snapshot that this moto can load."""
    with open(path, "rb") as source:
        header = _read_header(source, path)
        check_compatible(header, path)
        payload = source.read()
    if len(payload) != header.get("payload_bytes"):
        raise CorruptState(f"{path} is truncated ({len(payload)} payload bytes)")
    if hashlib.sha256(payload).hexdigest() != header.get("payload_sha256"):
        raise CorruptState(f"{path} does not match its checksum")
    return header, payload


def check_compatible(header: dict[str, Any], path: Path) -> None:
    written = (header.get("format"), header.get("moto"))
    running = (FORMAT_VERSION, moto.__version__)
    if written != running:
        raise IncompatibleState(
            f"{path} was written by moto {written[1]} in state format {written[0]}, but this "
            f"server runs moto {running[1]} with state format {running[0]}. Saved moto state "
            f"cannot be read by another moto version. Install moto=={written[1]} again to keep "
            f"this state, or move {path.parent.parent} aside to start with an empty embedded AWS."
        )


def _read_header(source: Any, path: Path) -> dict[str, Any]:
    if source.read(len(MAGIC)) != MAGIC:
        raise CorruptState(f"{path} is not an embedded AWS snapshot")
    raw_length = source.read(_LENGTH.size)
    if len(raw_length) != _LENGTH.size:
        raise CorruptState(f"{path} is truncated in its header")
    (length,) = _LENGTH.unpack(raw_length)
    raw = source.read(length)
    try:
        header = json.loads(raw)
    except ValueError as error:
        raise CorruptState(f"{path} has a damaged header") from error
    if not isinstance(header, dict):
        raise CorruptState(f"{path} has a damaged header")
    return header
