"""Baseline (b), the delivery half: what a Python team would write instead of orderhooks.

One Celery task per (event, subscriber) on Redis; the task signs the body the
Standard Webhooks way (HMAC-SHA256), posts it with `requests`, and retries with
exponential backoff. Run by `celery -A bench.celery_app worker --pool=prefork
--concurrency=2`. The broker is `BENCH_CELERY_BROKER`: a Redis database of the
harness's own, flushed before and after each run.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import time
from typing import Any

import requests
from celery import Celery  # type: ignore[import-untyped]  # celery ships no type information

DEFAULT_BROKER = "redis://127.0.0.1:6379/11"
MAX_RETRIES = 9
BACKOFF_BASE_SECONDS = 5
BACKOFF_CAP_SECONDS = 86_400
POST_TIMEOUT_SECONDS = 15

app = Celery(
    "orderhooks_bench_baseline", broker=os.environ.get("BENCH_CELERY_BROKER", DEFAULT_BROKER)
)
app.conf.update(
    task_ignore_result=True,
    task_serializer="json",
    accept_content=["json"],
    broker_connection_retry_on_startup=True,
    worker_hijack_root_logger=False,
)

# One pooled session per worker process: the generous reading of "what a team writes".
_session = requests.Session()


def sign(secret: str, event_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    """Standard Webhooks headers for `body`, and the hex HMAC header Deliverect receivers check."""
    key = base64.b64decode(secret.removeprefix("whsec_"))
    signed = f"{event_id}.{timestamp}.".encode() + body
    signature = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
    return {
        "webhook-id": event_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": f"v1,{signature}",
        "x-server-authorization-hmac-sha256": hmac.new(key, body, hashlib.sha256).hexdigest(),
    }


@app.task(bind=True, max_retries=MAX_RETRIES)  # type: ignore[untyped-decorator]
def deliver(self: Any, url: str, secret: str, event_id: str, body: str) -> int:
    """Sign and POST one event to one subscriber; retry with backoff when it fails."""
    payload = body.encode()
    headers = {
        "content-type": "application/json",
        **sign(secret, event_id, int(time.time()), payload),
    }
    try:
        answer = _session.post(url, data=payload, headers=headers, timeout=POST_TIMEOUT_SECONDS)
        answer.raise_for_status()
    except requests.RequestException as exc:
        countdown = min(BACKOFF_BASE_SECONDS * 2 ** int(self.request.retries), BACKOFF_CAP_SECONDS)
        raise self.retry(exc=exc, countdown=countdown) from exc
    return int(answer.status_code)
