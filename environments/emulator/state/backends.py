"""Finding moto's backend registries, and putting restored backends back into them.

moto keeps each service's state in a module-level BackendDict (account -> region -> backend).
Its code reaches those dicts through module globals, so a restore must fill the very same dict
objects rather than replace them. A registry is named by the module attribute that holds it.
"""

from __future__ import annotations

import importlib
import sys
from dataclasses import dataclass, field
from typing import Any

from moto.core.base_backend import AccountSpecificBackend, BackendDict

# Attributes every registry sets up for itself; anything else a registry carries is state
# (S3's registry, for one, maps every bucket name to its owning account).
_OWN_DICT_ATTRIBUTES = frozenset(
    {"backend", "service_name", "_use_boto3_regions", "_additional_regions", "_id"}
)
_OWN_ACCOUNT_ATTRIBUTES = frozenset({"_id", "service_name", "account_id", "backend", "regions"})

_locations: dict[int, tuple[str, str]] = {}


@dataclass
class ServiceState:
    """One registry's worth of state, in a form that pickles."""

    service_name: str
    module: str
    attribute: str
    extras: dict[str, Any]
    accounts: dict[str, tuple[dict[str, Any], dict[str, Any]]] = field(default_factory=dict)


def registry_location(registry: BackendDict[Any]) -> tuple[str, str]:
    """The (module, attribute) that holds a registry, so it can be found again after a restart."""
    cached = _locations.get(id(registry))
    if cached is not None:
        return cached
    home = registry.backend.__module__
    candidates = [home, *sorted(name for name in sys.modules if name.startswith("moto."))]
    for module_name in candidates:
        module = sys.modules.get(module_name)
        if module is None:
            continue
        for attribute, value in vars(module).items():
            if value is registry:
                _locations[id(registry)] = (module_name, attribute)
                return module_name, attribute
    raise LookupError(f"no module holds the {registry.service_name} backends")


def live_registry(module: str, attribute: str) -> BackendDict[Any]:
    return getattr(importlib.import_module(module), attribute)


def live_account(module: str, attribute: str, account_id: str) -> AccountSpecificBackend[Any]:
    return live_registry(module, attribute)[account_id]


def registries_in_use() -> list[BackendDict[Any]]:
    return list(BackendDict._instances)


def capture(registry: BackendDict[Any]) -> ServiceState:
    module, attribute = registry_location(registry)
    extras = _extras(registry, _OWN_DICT_ATTRIBUTES)
    state = ServiceState(registry.service_name, module, attribute, extras)
    for account_id, account in registry.items():
        regions = dict(account.items())
        state.accounts[account_id] = (_extras(account, _OWN_ACCOUNT_ATTRIBUTES), regions)
    return state


def install(states: list[ServiceState]) -> None:
    """Put restored backends into the live registries, replacing whatever they held."""
    for state in states:
        registry = live_registry(state.module, state.attribute)
        for stale in set(registry) - set(state.accounts):
            del registry[stale]
        for name, value in state.extras.items():
            setattr(registry, name, value)
        for account_id, (extras, regions) in state.accounts.items():
            # Reuse an account dict the unpickler may already have handed out by reference.
            account = registry[account_id]
            for name, value in extras.items():
                setattr(account, name, value)
            dict.clear(account)
            for region, backend in regions.items():
                dict.__setitem__(account, region, backend)


def forget_all() -> None:
    """Forget every backend, e.g. before trying an older snapshot after a failed restore."""
    for registry in registries_in_use():
        registry.clear()
    BackendDict._instances.clear()


def _extras(obj: object, own: frozenset[str]) -> dict[str, Any]:
    return {name: value for name, value in vars(obj).items() if name not in own}
