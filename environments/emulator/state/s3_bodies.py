"""S3 object bodies kept in the blob store instead of inside every snapshot.

moto holds each object's body in a temporary-file buffer on its FakeKey. A snapshot saves the
key's metadata and only the SHA-256 of its body; the body goes to the blob store the first time
a snapshot meets it. The digest is computed once, when moto sets the body (the upload request
has the bytes in hand anyway), so snapshots never re-read or re-hash unchanged bodies.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from contextvars import ContextVar
from typing import Any

from environments.emulator.state.blobs import BlobStore, digest_of
from environments.emulator.state.errors import CorruptState

DIGEST_ATTRIBUTE = "_persisted_body_digest"

_body_source: ContextVar[BlobStore | None] = ContextVar("body_source", default=None)


def track_body_digests() -> None:
    """Make every FakeKey remember the digest of its body whenever the body is set."""
    from moto.s3.models import FakeKey

    original: property = FakeKey.value
    if getattr(original.fset, DIGEST_ATTRIBUTE, False):
        return

    def set_value(key: Any, new_value: bytes | str) -> None:
        original.fset(key, new_value)  # type: ignore[misc]
        data = new_value.encode("utf-8") if isinstance(new_value, str) else bytes(new_value)
        setattr(key, DIGEST_ATTRIBUTE, digest_of(data))

    setattr(set_value, DIGEST_ATTRIBUTE, True)
    FakeKey.value = property(original.fget, set_value, original.fdel, original.__doc__)


class BodyCollector:
    """Gathers, during one snapshot, the digests it refers to and the bodies still to write."""

    def __init__(self, blobs: BlobStore) -> None:
        self._blobs = blobs
        self.referenced: set[str] = set()
        self.pending: dict[str, bytes] = {}

    def reference(self, key: Any) -> str:
        digest = key.__dict__.get(DIGEST_ATTRIBUTE)
        body: bytes | None = None
        if digest is None:
            # A key whose body was set before digests were tracked, or was disposed of.
            body = _body_of(key)
            digest = digest_of(body)
        if digest not in self._blobs and digest not in self.pending:
            self.pending[digest] = body if body is not None else _body_of(key)
        self.referenced.add(digest)
        return digest


def reduce_key(key: Any, collector: BodyCollector) -> tuple[Any, ...]:
    """The pickle reduction of a FakeKey: its metadata plus the digest of its body."""
    state = {
        name: value
        for name, value in key.__dict__.items()
        if name not in ("_value_buffer", "lock", DIGEST_ATTRIBUTE)
    }
    state[DIGEST_ATTRIBUTE] = collector.reference(key)
    # State is applied after the object exists, so references back to the key still work.
    return (_new_key, (type(key),), state, None, None, _restore_key)


@contextlib.contextmanager
def reading_bodies_from(blobs: BlobStore) -> Iterator[None]:
    token = _body_source.set(blobs)
    try:
        yield
    finally:
        _body_source.reset(token)


def _new_key(cls: type) -> Any:
    return cls.__new__(cls)


def _restore_key(key: Any, state: dict[str, Any]) -> None:
    blobs = _body_source.get()
    if blobs is None:
        raise CorruptState("an S3 object was restored without its blob store")
    digest = state.pop(DIGEST_ATTRIBUTE)
    # moto's own __setstate__ builds the buffer and the lock from a plain body.
    key.__setstate__({**state, "value": blobs.read(digest)})
    if key.__dict__.get(DIGEST_ATTRIBUTE) != digest:
        raise CorruptState(f"S3 object body {digest} does not match its digest")


def _body_of(key: Any) -> bytes:
    try:
        return key.value
    except ValueError:
        # moto closes the buffer of a key it has disposed of; it has no body any more.
        return b""
