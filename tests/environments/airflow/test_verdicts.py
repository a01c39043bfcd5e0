"""What the control plane hears of an environment's health: recovery at once, failure only
once it lasts, nothing while a set starts, and a steady verdict repeated now and then."""

from __future__ import annotations

from environments.airflow.runtime.supervisor import Health
from environments.airflow.runtime.verdicts import (
    REPORT_EVERY_SECONDS,
    UNAVAILABLE_AFTER_SECONDS,
    HealthVerdicts,
)

DOWN = Health(False, "scheduler-1 exited")
UP = Health(True, "")
STARTING = Health(False, "api-server starting", starting=True)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def make() -> tuple[HealthVerdicts, Clock, list[tuple[str, bool, str]]]:
    heard: list[tuple[str, bool, str]] = []
    clock = Clock()
    return HealthVerdicts(lambda *said: heard.append(said), clock), clock, heard


def test_a_crash_is_reported_only_once_it_lasts_and_recovery_at_once() -> None:
    verdicts, clock, heard = make()
    verdicts.observe("demo", DOWN)
    clock.now += UNAVAILABLE_AFTER_SECONDS - 1
    verdicts.observe("demo", DOWN)
    assert heard == []  # a restart after a crash may still bring it back
    clock.now += 1
    verdicts.observe("demo", DOWN)
    assert heard == [("demo", False, "scheduler-1 exited")]
    clock.now += 0.5
    verdicts.observe("demo", UP)
    assert heard[-1] == ("demo", True, "")


def test_a_short_outage_is_never_reported() -> None:
    verdicts, clock, heard = make()
    verdicts.observe("demo", UP)
    for _ in range(3):
        clock.now += 1
        verdicts.observe("demo", DOWN)
    verdicts.observe("demo", UP)
    clock.now += UNAVAILABLE_AFTER_SECONDS  # the outage's clock restarted with the recovery
    verdicts.observe("demo", DOWN)
    assert heard == [("demo", True, "")]


def test_starting_is_no_verdict_and_resets_the_outage() -> None:
    verdicts, clock, heard = make()
    verdicts.observe("demo", DOWN)
    clock.now += UNAVAILABLE_AFTER_SECONDS - 1
    verdicts.observe("demo", STARTING)
    clock.now += 2
    verdicts.observe("demo", DOWN)
    assert heard == []


def test_a_steady_verdict_is_repeated_now_and_then_not_every_tick() -> None:
    verdicts, clock, heard = make()
    for _ in range(int(REPORT_EVERY_SECONDS) * 4):
        verdicts.observe("demo", UP)
        clock.now += 1
    assert 3 <= len(heard) <= 5
    assert all(said == ("demo", True, "") for said in heard)


def test_environments_are_judged_apart_and_forgotten() -> None:
    verdicts, clock, heard = make()
    verdicts.observe("a", DOWN)
    verdicts.observe("b", UP)
    clock.now += UNAVAILABLE_AFTER_SECONDS
    verdicts.observe("a", DOWN)
    assert heard == [("b", True, ""), ("a", False, "scheduler-1 exited")]
    verdicts.forget("a")
    verdicts.observe("a", DOWN)  # a new outage: its clock starts now
    assert len(heard) == 2


def test_no_listener_hears_nothing() -> None:
    HealthVerdicts(None).observe("demo", DOWN)
