"""botocore's data files, read once per process and shared by every session in it.

botocore gives each Session a Loader of its own, and each Loader parses and caches every file
it reads. The endpoints file alone is about 7 MB of Python objects, and a service model up to
14 MB (EC2). AwsClients makes a session for each execution role, and moto makes throwaway
sessions to list regions, so the same files were parsed again and again, and the copies that
were kept added up (scripts/bench_memory.py shows the tree).

- `new_session()` makes botocore Sessions that all read through one caching Loader per
  process, `shared_loader()`, so a service model is parsed once however many sessions ask.
- `PlainJSONFileLoader` builds plain dicts rather than OrderedDicts (a third less memory; dicts
  keep their order too, and nothing in botocore or moto tests a model's type). It also keeps
  one parsed copy per process of botocore's files that are not service models (endpoints,
  partitions, SDK defaults), whichever Loader reads them: they are the same for every loader,
  moto's included, and nothing writes to them. Service models are never shared between
  loaders, because a loader merges its extras (botocore's sdk-extras, moto's moto-extras) into
  the model it has read.
- `warm_up()`, called by the supervisor before it forks, reads those common files once for the
  whole process tree: the children share the pages instead of each parsing its own copy.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable
from typing import Any

import botocore
import botocore.session
from botocore.loaders import JSONFileLoader, Loader

BOTOCORE_DATA = os.path.join(os.path.dirname(os.path.abspath(botocore.__file__)), "data")
# botocore's own data files that are not service models, as Loader.load_data names them.
COMMON_FILES = ("endpoints", "partitions", "sdk-default-configuration", "_retry")

_common: dict[str, Any] = {}
_common_lock = threading.Lock()
_COMMON_PATHS = frozenset(os.path.join(BOTOCORE_DATA, name) for name in COMMON_FILES)


class PlainJSONFileLoader(JSONFileLoader):
    """botocore's file reader, building plain dicts; the common files are read once."""

    def load_file(self, file_path: str) -> Any:
        if file_path not in _COMMON_PATHS:
            return super().load_file(file_path)
        with _common_lock:
            if file_path not in _common:
                _common[file_path] = super().load_file(file_path)
            return _common[file_path]

    def _load_file(self, full_path: str, open_method: Callable[..., Any]) -> Any:
        if not os.path.isfile(full_path):
            return None
        with open_method(full_path, "rb") as stream:
            return json.loads(stream.read().decode("utf-8"))


def plain_loader(loader: Loader) -> Loader:
    """`loader`, reading its files with PlainJSONFileLoader."""
    loader.file_loader = PlainJSONFileLoader()
    return loader


_shared: Loader | None = None
_shared_lock = threading.Lock()


def shared_loader() -> Loader:
    """This process's Loader for the sessions `new_session` makes (botocore's Loader caches
    what it reads, per instance)."""
    global _shared
    with _shared_lock:
        if _shared is None:
            _shared = plain_loader(Loader())
        return _shared


def new_session() -> botocore.session.Session:
    """A botocore Session, its own in everything but the data it reads."""
    session = botocore.session.Session()
    session.register_component("data_loader", shared_loader())
    return session


def warm_up() -> None:
    """Read the common files now, before this process forks."""
    loader = shared_loader()
    for name in COMMON_FILES:
        loader.load_data(name)


def common_files_read() -> list[str]:
    """The common files this process holds, by name (for tests)."""
    with _common_lock:
        return sorted(os.path.basename(path) for path in _common)
