"""Keeps forked Airflow processes sharing memory with their parent; runs inside the
environment's own Python.

Copied as `sitecustomize.py` into <home>/.airdock, which is on PYTHONPATH, so Python's `site`
imports it when any Airflow process of the environment starts. Several of them fork after
importing Airflow: the Celery worker its pool, the triggerer its trigger runner, the DAG
processor its parsers. A page stays shared only while neither side writes to it, and a garbage
collection writes to the header of every object it walks: left alone, the collectors of parent
and child soon copy nearly every page, and an idle pool process of a worker held over 100 MB
of its own.

So before its first fork a process collects its garbage and freezes what is left (Python's
`gc.freeze`): by then that is mostly what importing Airflow made, and neither side's collector
walks those objects again. They are still freed when their last reference goes; only a
reference cycle among them is never reclaimed. Later forks freeze nothing more, so a process
that forks all the time (the DAG processor) never pins what it held at each of them.

Python imports one `sitecustomize` only, so a `sitecustomize` further down the path (one that
requirements.txt installed) is run from here. This file imports nothing of Airdock's.
"""

import gc
import importlib.machinery
import importlib.util
import os
import sys

_frozen = []


def _freeze_once() -> None:
    if not _frozen:
        gc.collect()
        gc.freeze()
        _frozen.append(True)


os.register_at_fork(before=_freeze_once)


def forked_anew() -> None:
    """Called in a process the zygote (zygote_child) forked: what it imports for its own
    command is frozen again before its own first fork."""
    _frozen.clear()


def _run_the_next_sitecustomize() -> None:
    here = os.path.dirname(os.path.abspath(__file__))
    rest = [entry for entry in sys.path if os.path.abspath(entry or os.curdir) != here]
    spec = importlib.machinery.PathFinder.find_spec("sitecustomize", rest)
    if spec is None or spec.loader is None:
        return
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)


_run_the_next_sitecustomize()
