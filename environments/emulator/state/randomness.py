"""Randomness that a replay of the journal can reproduce.

moto draws every id (role ids, subnet ids, message ids, version ids...) from one shared
generator, and a few values (upload ids, session tokens, KMS key material) from os.urandom.
Replaying a journaled request must give the same ids the original response carried, so:

- each thread draws from a generator of its own, and a mutating request runs with that
  generator seeded by a value the journal records beside the request;
- the os.urandom of the moto modules that use it draws from the same generator;
- a region backend created on first use (EC2 makes a default VPC with random ids then) is
  seeded from its service, account and region, whichever request happens to create it, so
  read-only calls that create backends need no journaling.
"""

from __future__ import annotations

import hashlib
import importlib
import os
import random
import secrets
import threading
import types
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

# moto modules that call os.urandom for values that persist (ids, tokens, key material).
_URANDOM_USERS = (
    "moto.s3.models",
    "moto.sts.utils",
    "moto.iam.models",
    "moto.kms.models",
    "moto.kms.utils",
    "moto.kms.responses",
)
_PATCHED = "_airdock_replayable"
_local = threading.local()


def new_seed() -> int:
    return secrets.randbits(64)


def stable_seed(*parts: str) -> int:
    digest = hashlib.sha256("\x00".join(parts).encode()).digest()
    return int.from_bytes(digest[:8], "big")


@contextmanager
def seeded(seed: int) -> Iterator[None]:
    """Run the block with this thread drawing moto's randomness from a generator seeded by
    `seed`; the thread's previous generator comes back afterwards."""
    previous = getattr(_local, "generator", None)
    _local.generator = random.Random(seed)
    try:
        yield
    finally:
        _local.generator = previous


def _generator() -> random.Random:
    generator = getattr(_local, "generator", None)
    if generator is None:
        generator = _local.generator = random.Random(new_seed())
    return generator


class _OsWithReplayableUrandom(types.ModuleType):
    """The os module as seen by a moto module, with urandom drawn from the thread's generator."""

    def __getattr__(self, name: str) -> Any:
        return getattr(os, name)

    @staticmethod
    def urandom(size: int) -> bytes:
        return _generator().randbytes(size)


def install() -> None:
    """Route moto's randomness through per-thread generators; safe to call twice."""
    from moto.core.base_backend import AccountSpecificBackend
    from moto.moto_api._internal import mock_random

    if getattr(mock_random, _PATCHED, False):
        return
    # Random's own methods (choice, randint, uuid4 in moto's subclass...) all draw through
    # these two, looked up on the instance.
    mock_random.getrandbits = lambda bits: _generator().getrandbits(bits)
    mock_random.random = lambda: _generator().random()
    setattr(mock_random, _PATCHED, True)

    replayable_os = _OsWithReplayableUrandom("os")
    for name in _URANDOM_USERS:
        module = importlib.import_module(name)
        if getattr(module, "os", None) is os:
            module.os = replayable_os

    create_region = AccountSpecificBackend.__getitem__

    def getitem(account: Any, region_name: str) -> Any:
        if dict.__contains__(account, region_name):
            return dict.__getitem__(account, region_name)
        seed = stable_seed(account.service_name, account.account_id, region_name)
        with seeded(seed):
            return create_region(account, region_name)

    AccountSpecificBackend.__getitem__ = getitem  # type: ignore[method-assign]
