"""The scaling decision: limits, scale-out on load, scale-in only after a spare spell and a
cool-down, no flapping; and the Autoscaler's memory when fewer workers could leave."""

from __future__ import annotations

from environments.airflow.runtime.autoscale import (
    Autoscaler,
    FleetLoad,
    Memory,
    Policy,
    decide,
    workers_needed,
)

POLICY = Policy(spare_for=20.0, cooldown=30.0)


def load(workers: int, queued: int = 0, running: int = 0, low: int = 1, high: int = 4,
         concurrency: int = 3) -> FleetLoad:  # fmt: skip
    return FleetLoad(workers, low, high, concurrency, queued, running)


def test_workers_needed_is_the_load_over_concurrency_within_the_limits() -> None:
    assert workers_needed(load(1, queued=0)) == 1
    assert workers_needed(load(1, queued=3)) == 1
    assert workers_needed(load(1, queued=4)) == 2
    assert workers_needed(load(1, queued=50, running=10)) == 4
    assert workers_needed(load(1, queued=0, low=2)) == 2


def test_load_beyond_capacity_scales_out_at_once_to_what_it_needs() -> None:
    decision = decide(load(1, queued=5, running=3), Memory(), 100.0, POLICY)
    assert decision.target == 3
    assert "5 queued + 3 running tasks exceed 1 x 3 slots" in decision.reason
    assert decision.memory.changed_at == 100.0


def test_scale_out_stops_at_max_workers() -> None:
    decision = decide(load(4, queued=40, running=12), Memory(), 0.0, POLICY)
    assert decision.target == 4
    assert "at MaxWorkers" in decision.reason


def test_a_full_fleet_stays() -> None:
    decision = decide(load(2, queued=2, running=4), Memory(spare_since=5.0), 10.0, POLICY)
    assert decision.target == 2
    assert decision.memory.spare_since is None


def test_changed_limits_apply_at_once_even_during_a_cool_down() -> None:
    recent = Memory(changed_at=99.0)
    assert decide(load(1, low=2), recent, 100.0, POLICY).target == 2
    shrunk = decide(load(4, running=12, high=2), recent, 100.0, POLICY)
    assert shrunk.target == 2
    assert "above MaxWorkers 2" in shrunk.reason


def test_scale_in_waits_for_a_spare_spell_then_goes_to_what_the_load_needs() -> None:
    memory = Memory(changed_at=0.0)
    first = decide(load(4, running=2), memory, 100.0, POLICY)
    assert first.target == 4 and first.memory.spare_since == 100.0
    assert "waiting 20 s" in first.reason
    held = decide(load(4, running=2), first.memory, 119.0, POLICY)
    assert held.target == 4
    done = decide(load(4, running=2), held.memory, 120.0, POLICY)
    assert done.target == 1
    assert "fit in 1 worker for 20 s" in done.reason


def test_no_scale_in_within_the_cool_down_of_the_last_change() -> None:
    memory = Memory(changed_at=100.0, spare_since=95.0)
    held = decide(load(3), memory, 125.0, POLICY)
    assert held.target == 3
    assert "cooling down" in held.reason
    assert decide(load(3), held.memory, 130.0, POLICY).target == 1


def test_a_burst_that_comes_and_goes_does_not_flap_the_fleet() -> None:
    scaler = Autoscaler(POLICY)
    workers, changes, now = 1, [], 0.0
    # Load goes up and down every 10 s: out at once, never in while it keeps coming back.
    for second in range(120):
        now = float(second)
        queued = 6 if (second // 10) % 2 == 0 else 0
        current = load(workers, queued=queued)
        decision = scaler.consider(current, now)
        if decision.changes(current):
            changes.append((second, decision.target))
            workers = decision.target
            scaler.applied(current, workers)
    assert changes == [(0, 2)]


def test_spare_spell_restarts_when_load_returns() -> None:
    memory = Memory(changed_at=0.0)
    spare = decide(load(2), memory, 100.0, POLICY).memory
    busy = decide(load(2, running=6), spare, 110.0, POLICY).memory
    assert busy.spare_since is None
    again = decide(load(2), busy, 125.0, POLICY)
    assert again.target == 2 and again.memory.spare_since == 125.0


def test_when_no_worker_could_leave_the_scale_in_is_retried_without_a_cool_down() -> None:
    scaler = Autoscaler(POLICY)
    scaler.memory = Memory(changed_at=0.0, spare_since=50.0)
    current = load(3, running=1)
    assert scaler.consider(current, 100.0).target == 1
    scaler.applied(current, 3)  # every worker was busy
    assert scaler.last_change is None
    assert "no worker is idle" in scaler.report()["decision"]
    assert scaler.consider(current, 101.0).target == 1


def test_a_partial_scale_in_is_reported_as_what_happened() -> None:
    scaler = Autoscaler(POLICY)
    scaler.memory = Memory(changed_at=0.0, spare_since=50.0)
    current = load(3)
    scaler.consider(current, 100.0)
    scaler.applied(current, 2)
    report = scaler.report()
    assert report["last_change"]["workers_from"] == 3
    assert report["last_change"]["workers_to"] == 2
    assert report["load"]["workers"] == 3
