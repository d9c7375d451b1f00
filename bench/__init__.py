"""The orderhooks benchmark harness (issue 6): `python -m bench` or `make bench`.

Each run starts a fast receiver (nginx, or an aiohttp fallback) in its own process,
orderhooks as a subprocess, and a load generator in a third process; it joins the
load generator's acknowledgement times with the receiver's arrival times to get
ingest→received latency, and measures the same workload against two baselines: the
raw ceiling (bodies posted straight to the receiver) and a Celery + Redis service.

Modules: `workload` (the bodies), `receiver` (nginx or aiohttp), `loadgen` (the
load generator process), `procs` (starting and sampling processes), `celery_app`
(the Celery baseline), `scenarios` (what each scenario does), `report` (figures,
table, JSON), `runner` (the command line).
"""
