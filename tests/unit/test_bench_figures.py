"""The benchmark harness's own arithmetic: the latency join and the workload (the harness
running for real is tests/integration/test_bench_smoke.py)."""

from __future__ import annotations

from bench.receiver import Arrival
from bench.report import delivery_figures, evaluate_targets
from bench.scenarios import FALLBACK_STEADY_RATE, SCENARIOS, paced_by_raw
from bench.workload import Workload


def test_latency_join_counts_each_delivery_once() -> None:
    acks = {"evt_a": 100.000, "evt_b": 100.500}
    arrivals = [
        Arrival(100.010, "evt_a", "/wh/0", 200),
        Arrival(100.020, "evt_a", "/wh/1", 200),  # fan-out: another webhook
        Arrival(100.030, "evt_a", "/wh/0", 200),  # a duplicate (at least once)
        Arrival(100.600, "evt_b", "/wh/0", 200),
        Arrival(100.700, "evt_c", "/wh/0", 503),
    ]
    figures = delivery_figures(acks, arrivals)
    assert figures.deliveries == 3
    assert figures.duplicates == 1
    assert figures.non_2xx == 1
    assert figures.latency_samples == 3
    assert round(figures.latency_ms_p50 or 0) == 20
    assert round(figures.latency_ms_p99 or 0) == 100


def test_workload_ids_are_unique_and_updates_follow_the_flow() -> None:
    workload = Workload("t", status_ratio=0.5)
    first = workload.batch(50)
    assert len({item["data"]["_id"] for item in first.items}) == 50
    workload.acknowledged(first.new_ids, first.updates)
    statuses: dict[str, list[int]] = {}
    for _ in range(20):
        batch = workload.batch(50)
        for item in batch.items:
            if item["type"] == "order.status_update":
                statuses.setdefault(item["orderId"], []).append(item["data"]["status"])
        workload.acknowledged(batch.new_ids, batch.updates)
    assert statuses
    assert all(seq == sorted(seq) and len(set(seq)) == len(seq) for seq in statuses.values())


def test_steady10_is_paced_at_a_tenth_of_the_same_runs_raw_ceiling() -> None:
    steady = SCENARIOS["steady10"]
    assert paced_by_raw(steady, {"deliveries_per_s": 10_000.0}).rate == 1000.0
    assert paced_by_raw(steady, None).rate == FALLBACK_STEADY_RATE
    assert paced_by_raw(SCENARIOS["steady500"], {"deliveries_per_s": 10_000.0}).rate == 500.0


def test_the_latency_target_reads_steady10_when_it_ran() -> None:
    results = {
        "steady500": {"latency_ms_p99": 10.0, "of_raw_ceiling": 0.05},
        "steady10": {"latency_ms_p99": 80.0, "of_raw_ceiling": 0.1},
    }
    [latency] = [t for t in evaluate_targets(results, 60.0) if "p99" in t["target"]]
    assert latency["measured"] == "80.0 ms" and latency["met"] is False
