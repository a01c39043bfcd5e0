"""Keeping the process tree small: fewer malloc arenas, and shared warm-up before forking.

glibc gives each thread that allocates concurrently an arena of its own, up to 8 per core, and
memory freed in one arena cannot serve another: a threaded server's heap fragments and grows.
Two arenas cost the workers nothing measurable and keep their heaps compact. The limit is set
in the supervisor before it starts any thread or child, so forked children inherit it; an
embedded AWS started by exec (as the tests start one) gets MALLOC_ARENA_MAX from its
environment.

What every child would otherwise load for itself (botocore's MWAA model, for validation, and
its endpoints file, for every AWS client and the embedded AWS) is loaded once in the
supervisor, before the fork, so the children share it.
"""

from __future__ import annotations

import contextlib
import ctypes

from environments import shapes
from environments.plumbing import botocore_data

MALLOC_ARENAS = 2
_M_ARENA_MAX = -8  # from glibc's malloc.h


def limit_malloc_arenas(arenas: int = MALLOC_ARENAS) -> None:
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").mallopt(_M_ARENA_MAX, arenas)


def warm_up_shared() -> None:
    """Read botocore's common data files (every child's AWS clients and the embedded AWS read
    them), and resolve every shape of the MWAA model (botocore builds them lazily, and caches
    them)."""
    botocore_data.warm_up()
    seen: set[str] = set()
    todo = [shapes.input_shape(op) for op in shapes.service_model().operation_names]
    while todo:
        shape = todo.pop()
        if shape.name in seen:
            continue
        seen.add(shape.name)
        todo.extend(getattr(shape, "members", {}).values())
        todo.extend(
            part
            for part in (getattr(shape, attr, None) for attr in ("member", "key", "value"))
            if part is not None
        )
