"""The pure parts of the webhook and ingest operations."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from orderhooks.domain.model import EventType, SigningSecret, Webhook
from orderhooks.exceptions import ValidationError
from orderhooks.service import ingest, webhooks
from orderhooks.service.deliveries import check_range
from orderhooks.store.base import CourierItem, IngestResult, NewOrderItem, StatusItem
from orderhooks.web.request_models import WebhookPatch

NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)


def _webhook(*secrets: SigningSecret) -> Webhook:
    return Webhook("wh_1", "https://r.example/h", ("a",), (EventType.NEW,), secrets, NOW, NOW)


def test_a_rotation_keeps_old_secrets_for_the_grace_period_at_most() -> None:
    earlier = NOW + timedelta(minutes=5)
    webhook = _webhook(
        SigningSecret("whsec_current"),
        SigningSecret("whsec_older", earlier),
        SigningSecret("whsec_expired", NOW - timedelta(seconds=1)),
    )
    secrets = webhooks.rotated_secrets(webhook, "whsec_new", 3600, NOW)
    assert secrets == (
        SigningSecret("whsec_new"),
        SigningSecret("whsec_current", NOW + timedelta(hours=1)),
        SigningSecret("whsec_older", earlier),  # a shorter expiry stays
    )
    assert webhooks.rotated_secrets(webhook, "whsec_new", 0, NOW) == (SigningSecret("whsec_new"),)


def test_audited_field_names_are_the_api_names() -> None:
    for name, field in WebhookPatch.model_fields.items():
        assert webhooks._json_name(name) == field.alias


def test_a_range_may_not_end_before_it_starts() -> None:
    check_range(NOW, None)
    check_range(NOW, NOW)
    with pytest.raises(ValidationError) as raised:
        check_range(NOW, NOW - timedelta(seconds=1))
    assert raised.value.problems[0].field == "until"


def test_the_event_types_an_ingest_created() -> None:
    new = NewOrderItem(document={"_id": "o"}, body_hash="h")
    status = StatusItem(order_id="o", update={})
    courier = CourierItem(order_id="o", update={})
    created = IngestResult(order_id="o", event_ids=("e1", "e2"), created=True, repeat=False)
    updated = IngestResult(order_id="o", event_ids=("e1", "e2"), created=False, repeat=False)
    assert ingest.created_event_types(new, created) == [EventType.NEW, EventType.NEW]
    assert ingest.created_event_types(status, updated) == [EventType.NEW, EventType.STATUS_UPDATE]
    assert ingest.created_event_types(courier, updated)[-1] is EventType.COURIER_UPDATE
    empty = IngestResult(order_id="o", event_ids=(), created=False, repeat=True)
    assert ingest.created_event_types(status, empty) == []


def test_a_batch_names_every_bad_item_and_stores_none() -> None:
    with pytest.raises(ValidationError) as raised:
        ingest.batch_items([{"type": "order.status_update", "data": {}}, "x"])
    assert [(p.index, p.field) for p in raised.value.problems] == [(0, "orderId"), (1, "item")]
    with pytest.raises(ValidationError):
        ingest.batch_items([])
