"""The benchmark harness's own arithmetic: the latency join and the workload (the harness
running for real is tests/integration/test_bench_smoke.py)."""

from __future__ import annotations

from bench.receiver import Arrival
from bench.report import delivery_figures
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
