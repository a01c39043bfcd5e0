"""Two things moto holds in memory that the embedded AWS has no use for, left out.

Both were the largest parts of the embedded AWS's footprint after a user's first hour (a VPC
made, environments created), measured with scripts/bench_memory.py.

- **EC2's instance-type offerings.** When `moto.ec2` is first imported, moto reads the
  offerings of every region for every location type (about a hundred gzipped JSON files)
  into one module-level dict: about 45 MB of Python objects for the life of the process. The
  environments' network checks (subnets, security groups) never look at them.
  `defer_instance_type_offerings()` lets moto build that dict with every region present but
  empty, then replaces each location type's regions with a mapping that reads a region's file
  the first time it is asked for. moto reads the dict only by location type and then by
  region (`[...]` and `.get`), so its answers are unchanged.
- **More copies of each service model.** moto parses requests with the service model that
  its own loader reads (botocore's model with moto's extras merged in), and separately lists a
  service's regions through boto3 Sessions, whose loaders read and cache the same model again
  only to look up its endpoint prefix: for EC2, about 14 MB each time, and importing
  `moto.ec2` makes three such Sessions. `share_service_models()` gives every Session in the
  process moto's loader, caching, so one copy serves them all, with plain dicts
  (environments.plumbing.botocore_data); the endpoints file is the copy the supervisor read
  before it forked.

tests/environments/emulator/test_moto_memory.py compares the answers with moto's own.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import importlib.util
import sys
import threading
from collections.abc import Callable, Iterator, Mapping
from types import ModuleType
from typing import Any

from environments.plumbing import botocore_data

MODULE = "moto.ec2.models.instance_types"
_PREFIX = "ec2/resources/instance_type_offerings/"

Loader = Callable[[str], Any]


class RegionOfferings(Mapping[str, list]):
    """One location type's offerings by region; a region's file is read on first use.

    A Mapping (moto only indexes it and calls `.get`), so every way of reading it goes through
    `__getitem__`: there is no second, partly filled dict to read by mistake."""

    def __init__(self, location_type: str, files: dict[str, str], load: Loader) -> None:
        self._location_type = location_type
        self._files = files
        self._load = load
        self._read: dict[str, list] = {}
        self._lock = threading.Lock()

    def __getitem__(self, region: str) -> list:
        path = self._files[region]  # KeyError for a region moto has no file for
        with self._lock:
            if region not in self._read:
                rows = self._load(path)
                for row in rows:
                    row["LocationType"] = self._location_type
                self._read[region] = rows
            return self._read[region]

    def __iter__(self) -> Iterator[str]:
        return iter(self._files)

    def __len__(self) -> int:
        return len(self._files)

    def loaded(self) -> list[str]:
        return list(self._read)


def _location_and_region(resource: str) -> tuple[str, str]:
    """`ec2/resources/instance_type_offerings/region/eu-west-1.json.gz` -> (region, eu-west-1)."""
    location_type, _, file_name = resource[len(_PREFIX) :].partition("/")
    return location_type, file_name.split(".")[0]


class _DeferringLoader(importlib.abc.Loader):
    """moto's own loader for the module, run with the offerings files noted instead of read."""

    def __init__(self, inner: importlib.abc.Loader) -> None:
        self._inner = inner

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType | None:
        return self._inner.create_module(spec)

    def exec_module(self, module: ModuleType) -> None:
        from moto.utilities import utils

        real_load = utils.load_resource
        noted: list[str] = []

        def note_offerings(resource: str) -> Any:
            if resource.startswith(_PREFIX):
                noted.append(resource)
                return []
            return real_load(resource)

        # The module binds `load_resource` from moto.utilities.utils as it starts executing,
        # under the import lock; the swap lasts only for its execution.
        utils.load_resource = note_offerings
        try:
            self._inner.exec_module(module)
        finally:
            utils.load_resource = real_load
        module.load_resource = real_load
        files: dict[str, dict[str, str]] = {}
        for resource in noted:
            location_type, region = _location_and_region(resource)
            files.setdefault(location_type, {})[region] = resource
        offerings = module.INSTANCE_TYPE_OFFERINGS
        for location_type, by_region in files.items():
            offerings[location_type] = RegionOfferings(location_type, by_region, real_load)

    def __getattr__(self, name: str) -> Any:
        # get_source, get_filename and the like, for tracebacks and inspect.
        return getattr(self._inner, name)


class _Hook(importlib.abc.MetaPathFinder):
    def find_spec(self, name: str, path: Any, target: Any = None) -> Any:
        if name != MODULE:
            return None
        sys.meta_path.remove(self)  # once only, and no recursion through the lookup below
        spec = importlib.util.find_spec(name)
        if spec is not None and spec.loader is not None:
            spec.loader = _DeferringLoader(spec.loader)
        return spec


def share_service_models() -> None:
    """Make moto's service models and every botocore Session in this process read through one
    caching loader: moto's (its extras merged), with plain dicts."""
    import botocore.session
    from moto.core import loaders
    from moto.core import utils as core_utils
    from moto.core.base_backend import AccountSpecificBackend

    loader = botocore_data.plain_loader(loaders.create_loader())
    # The Session moto lists regions with (created once, and kept: get_session is cached).
    AccountSpecificBackend.get_session()._session.register_component("data_loader", loader)
    core_utils.create_loader = lambda: loader
    # moto also makes throwaway Sessions (three when moto.ec2 is imported, to list EC2's
    # regions), each of which would parse the endpoints and EC2's model again.
    botocore.session.create_loader = lambda search_path=None: (
        loader if search_path is None else loaders.create_loader()
    )


def defer_instance_type_offerings() -> None:
    """Install the hook; call it before anything imports `moto.ec2`."""
    if MODULE in sys.modules:
        raise RuntimeError(f"{MODULE} is already imported: its offerings are loaded")
    if not any(isinstance(finder, _Hook) for finder in sys.meta_path):
        sys.meta_path.insert(0, _Hook())
