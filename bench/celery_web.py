"""Baseline (b), the ingest half: a small Flask app enqueueing one Celery task per subscriber.

It answers the same paths as orderhooks (`/v1/orders`, `/v1/orders/{id}/status`,
`/v1/events`) with the same `{"eventIds": [...]}` shape, so one load generator drives
both. Subscribers come from `BENCH_CELERY_SUBSCRIBERS` (JSON: `[{"url", "secret"}]`).
`python -m bench.celery_web PORT` serves it with Werkzeug's threaded server.
"""

from __future__ import annotations

import os
import sys
import uuid
from datetime import UTC, datetime
from typing import Any

import orjson
from flask import Flask, Response, request

from bench.celery_app import deliver

app = Flask(__name__)
SUBSCRIBERS: list[dict[str, str]] = orjson.loads(os.environ.get("BENCH_CELERY_SUBSCRIBERS", "[]"))


def _enqueue(event_type: str, order_id: str, data: dict[str, Any]) -> str:
    event_id = f"evt_{uuid.uuid4().hex}"
    envelope = {
        "id": event_id,
        "type": event_type,
        "timestamp": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
        "orderId": order_id,
        "test": False,
        "data": data,
    }
    body = orjson.dumps(envelope).decode()
    for subscriber in SUBSCRIBERS:
        deliver.delay(subscriber["url"], subscriber["secret"], event_id, body)
    return event_id


def _accepted(payload: dict[str, Any]) -> Response:
    return Response(orjson.dumps(payload), status=202, mimetype="application/json")


@app.post("/v1/orders")
def post_order() -> Response:
    """Enqueue an `order.new` for every subscriber."""
    order = orjson.loads(request.get_data())
    return _accepted(
        {"orderId": order["_id"], "eventIds": [_enqueue("order.new", order["_id"], order)]}
    )


@app.post("/v1/orders/<order_id>/status")
def post_status(order_id: str) -> Response:
    """Enqueue an `order.status_update` for every subscriber."""
    update = orjson.loads(request.get_data())
    return _accepted({"eventIds": [_enqueue("order.status_update", order_id, update)]})


@app.post("/v1/events")
def post_events() -> Response:
    """Enqueue every item of a batch."""
    items = orjson.loads(request.get_data())
    event_ids = [
        _enqueue(item["type"], item.get("orderId") or item["data"]["_id"], item["data"])
        for item in items
    ]
    return _accepted({"eventIds": event_ids})


@app.get("/healthz")
def healthz() -> Response:
    """Alive."""
    return Response(b'{"status":"ok"}', mimetype="application/json")


def main() -> None:
    """Serve on 127.0.0.1:PORT."""
    app.run(host="127.0.0.1", port=int(sys.argv[1]), threaded=True)


if __name__ == "__main__":
    main()
