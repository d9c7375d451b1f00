"""The orderhooks benchmark harness (issue 6): `python -m bench` or `make bench`.

Each run starts a fast receiver (nginx, or an aiohttp fallback) in its own process,
orderhooks as a subprocess, and a load generator in a third process; it joins the
load generator's acknowledgement times with the receiver's arrival times to get
ingest→received latency, and measures the same workload against two baselines: the
raw ceiling (bodies posted straight to the receiver) and a Celery + Redis service.

Modules: `workload` (the bodies), `receiver` (nginx, or the aiohttp fallback),
`loadgen` (the load generator process), `service` (orderhooks under test), `procs`
(starting, sampling and stopping processes), `celery_app` and `celery_web` (the
Celery baseline), `scenarios` (what each scenario is and how it is measured),
`drivers` (running each kind), `report` (figures, table, targets, JSON), `stackprof`
(the sampling profiler of `--profile`), `runner` (the command line).
"""
