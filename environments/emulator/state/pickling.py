"""The pickler for moto's backends: plain pickle plus what plain pickle cannot save.

- locks, conditions and events are rebuilt fresh: nobody holds them across a restart;
- backend registries and account dicts are saved by reference, so restored objects point at
  the live module-level registries rather than at private copies;
- S3 object bodies go to the blob store (see s3_bodies);
- cryptography keys and certificates (KMS, ACM) are saved as DER.

Anything else that does not pickle makes its service fail to save, which the caller reports.
"""

from __future__ import annotations

import io
import pickle
import threading
from collections import OrderedDict, defaultdict
from collections.abc import Callable
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes, PublicKeyTypes
from moto.core.base_backend import AccountSpecificBackend, BackendDict

from environments.emulator.state import backends, s3_bodies
from environments.emulator.state.blobs import BlobStore

PROTOCOL = 5

Reducer = Callable[[Any, "StatePickler"], Any]

# A lock's type cannot be called to make a new one; these factories can.
_LOCK_FACTORIES: dict[type, Callable[[], Any]] = {
    type(threading.Lock()): threading.Lock,
    type(threading.RLock()): threading.RLock,
}


class StatePickler(pickle.Pickler):
    def __init__(self, file: io.BytesIO, bodies: s3_bodies.BodyCollector) -> None:
        super().__init__(file, protocol=PROTOCOL)
        self.bodies = bodies

    def reducer_override(self, obj: Any) -> Any:
        kind = type(obj)
        reducer = _reducers.get(kind, _UNKNOWN)
        if reducer is _UNKNOWN:
            reducer = _reducers[kind] = _reducer_for(kind)
        if reducer is None:
            return NotImplemented
        return reducer(obj, self)


def dump_state(state: object, bodies: s3_bodies.BodyCollector) -> bytes:
    buffer = io.BytesIO()
    StatePickler(buffer, bodies).dump(state)
    return buffer.getvalue()


def load_state(data: bytes, blobs: BlobStore) -> Any:
    s3_bodies.track_body_digests()
    with s3_bodies.reading_bodies_from(blobs):
        return pickle.loads(data)


_UNKNOWN: Any = object()
_reducers: dict[type, Reducer | None] = {}


def _reducer_for(kind: type) -> Reducer | None:
    """Decide once per type how to save its instances; None means plain pickle will do."""
    factory = _LOCK_FACTORIES.get(kind)
    if factory is not None:
        return lambda _lock, _: (factory, ())
    if issubclass(kind, threading.Condition):
        return lambda _condition, _: (threading.Condition, ())
    if issubclass(kind, threading.Event):
        return lambda event, _: (_new_event, (event.is_set(),))
    if issubclass(kind, BackendDict):
        return lambda registry, _: (backends.live_registry, backends.registry_location(registry))
    if issubclass(kind, AccountSpecificBackend):
        return _reduce_account
    if kind.__module__ == "moto.s3.models" and kind.__name__ == "FakeKey":
        return lambda key, pickler: s3_bodies.reduce_key(key, pickler.bodies)
    if kind.__module__.startswith("cryptography."):
        return _crypto_reducer(kind)
    if issubclass(kind, dict):
        return _mapping_reducer(kind)
    return None


def _mapping_reducer(kind: type) -> Reducer | None:
    """Dict subclasses, saved by their raw items.

    Plain pickle saves a dict subclass through its `items()` and restores it through its
    `__setitem__`, and moto overrides both: S3's versioned key store lists only the newest
    version of each key and appends on every set, so versions would be lost or nested.
    """
    if issubclass(kind, OrderedDict) or any(
        getattr(kind, name) is not getattr(dict, name)
        for name in ("__reduce_ex__", "__reduce__", "__getstate__")
    ):
        # Ordered dicts keep their own order bookkeeping; other classes pickle themselves.
        return None
    return _reduce_mapping


def _reduce_mapping(mapping: dict[Any, Any], _: StatePickler) -> Any:
    factory = mapping.default_factory if isinstance(mapping, defaultdict) else None
    attributes = getattr(mapping, "__dict__", None) or None
    # Items go in the state, applied once the object exists, so they may refer back to it.
    state = (attributes, list(dict.items(mapping)))
    return (_new_mapping, (type(mapping), factory), state, None, None, _fill_mapping)


def _new_mapping(kind: type, factory: Callable[[], Any] | None) -> Any:
    mapping = kind.__new__(kind)
    if factory is not None:
        mapping.default_factory = factory
    return mapping


def _fill_mapping(mapping: dict[Any, Any], state: tuple[dict[str, Any] | None, list]) -> None:
    attributes, items = state
    if attributes:
        mapping.__dict__.update(attributes)
    for key, value in items:
        dict.__setitem__(mapping, key, value)


def _reduce_account(account: AccountSpecificBackend[Any], _: StatePickler) -> Any:
    for registry in backends.registries_in_use():
        if registry.get(account.account_id) is account:
            module, attribute = backends.registry_location(registry)
            return (backends.live_account, (module, attribute, account.account_id))
    raise pickle.PicklingError(f"the {account.service_name} account dict has no registry")


def _crypto_reducer(kind: type) -> Reducer | None:
    """Keys and certificates, as DER; cryptography's own loaders cannot be pickled by name."""
    if issubclass(kind, PrivateKeyTypes):  # type: ignore[arg-type]
        return lambda key, _: (
            _private_key,
            (
                key.private_bytes(
                    serialization.Encoding.DER,
                    serialization.PrivateFormat.PKCS8,
                    serialization.NoEncryption(),
                ),
            ),
        )
    if issubclass(kind, PublicKeyTypes):  # type: ignore[arg-type]
        return lambda key, _: (
            _public_key,
            (
                key.public_bytes(
                    serialization.Encoding.DER,
                    serialization.PublicFormat.SubjectPublicKeyInfo,
                ),
            ),
        )
    if issubclass(kind, x509.Certificate):
        return lambda cert, _: (_certificate, (cert.public_bytes(serialization.Encoding.DER),))
    return None


def _private_key(der: bytes) -> Any:
    return serialization.load_der_private_key(der, password=None)


def _public_key(der: bytes) -> Any:
    return serialization.load_der_public_key(der)


def _certificate(der: bytes) -> Any:
    return x509.load_der_x509_certificate(der)


def _new_event(is_set: bool) -> threading.Event:
    event = threading.Event()
    if is_set:
        event.set()
    return event
