"""RepeatLimiter: the first of a run of identical lines gets through, repeats are counted."""

from __future__ import annotations

import logging

import pytest

from environments.plumbing.repeats import RepeatLimiter


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def logger(caplog: pytest.LogCaptureFixture) -> logging.Logger:
    caplog.set_level(logging.INFO, logger="repeats-test")
    return logging.getLogger("repeats-test")


def test_repeats_are_held_back_and_counted(logger, caplog):
    clock = Clock()
    limiter = RepeatLimiter(logger, interval=60, clock=clock)
    for _ in range(100):
        limiter.warning("k", "bucket %s is gone", "b1")
        clock.now += 1  # 100 repeats over 100 seconds: one line, then one more after 60 s
    messages = [r.getMessage() for r in caplog.records]
    assert messages == [
        "bucket b1 is gone",
        "bucket b1 is gone (59 more like this since the previous one were not logged)",
    ]
    assert all(r.levelno == logging.WARNING for r in caplog.records)


def test_keys_are_independent_and_forgettable(logger, caplog):
    limiter = RepeatLimiter(logger, interval=60, clock=Clock())
    assert limiter.warning("a", "a failed")
    assert limiter.warning("b", "b failed")
    assert not limiter.warning("a", "a failed")
    limiter.forget("a")
    assert limiter.warning("a", "a failed again")
    assert [r.getMessage() for r in caplog.records] == ["a failed", "b failed", "a failed again"]


def test_memory_is_bounded(logger, caplog):
    limiter = RepeatLimiter(logger, interval=60, max_keys=10, clock=Clock())
    for i in range(1000):
        limiter.warning(i, "key %d", i)
    assert len(limiter._seen) == 10
    assert len(caplog.records) == 1000  # each key was new when it came


def test_tracebacks_come_with_the_line_that_gets_through(logger, caplog):
    limiter = RepeatLimiter(logger, interval=60, clock=Clock())
    for _ in range(3):
        try:
            raise RuntimeError("boom")
        except RuntimeError:
            limiter.error("boom", "step failed", exc_info=True)
    assert len(caplog.records) == 1 and caplog.records[0].exc_info is not None


def test_disabled_levels_cost_nothing(logger, caplog):
    caplog.set_level(logging.ERROR, logger="repeats-test")
    limiter = RepeatLimiter(logger, interval=60, clock=Clock())
    assert not limiter.warning("k", "quiet")
    assert limiter._seen == {}
