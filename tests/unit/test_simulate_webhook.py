"""The body of the demo webhook `orderhooks simulate --webhook-url` makes (pure)."""

from __future__ import annotations

from orderhooks.simulate.webhook import DemoWebhook, webhook_body

ORDER_TYPES = ["order.new", "order.status_update", "order.courier_update"]
OPERATIONAL_TYPES = ["webhook.failing", "webhook.recovered", "webhook.disabled", "delivery.failed"]


def test_a_plain_demo_webhook_takes_the_order_types_and_the_server_defaults() -> None:
    body = webhook_body(DemoWebhook("http://127.0.0.1:9000/"), ["acct-b", "acct-a", "acct-b"])
    assert body == {
        "url": "http://127.0.0.1:9000/",
        "accounts": ["acct-b", "acct-a"],
        "eventTypes": ORDER_TYPES,
        "description": "orderhooks simulate",
    }


def test_every_option_reaches_the_body() -> None:
    demo = DemoWebhook(
        "https://bi.example.com/hook",
        personal_data="exclude",
        fields=("items[].plu", "payment.amount"),
        batch_max_events=50,
        batch_max_wait_ms=250,
        op_events=True,
    )
    body = webhook_body(demo, ["acct-a"])
    assert body["personalData"] == "exclude"
    assert body["fields"] == ["items[].plu", "payment.amount"]
    assert body["batch"] == {"maxEvents": 50, "maxWaitMs": 250}
    assert body["eventTypes"] == ORDER_TYPES + OPERATIONAL_TYPES
    assert "secret" not in body  # set by a rotation afterwards, never in the create body
