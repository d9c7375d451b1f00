"""Erasure through the real server and a real receiver (docs/api.md, `POST
/v1/orders/{orderId}/erase`): once an order is erased, whatever is sent later (the
retries of a delivery that was failing, replays) carries no personal data; the stored
order and events lose it too, and the audit trail records who erased what."""

from __future__ import annotations

from orderhooks.domain.apikeys import generate_api_key
from orderhooks.testing.receiver import Receiver
from tests.e2e.shaping_support import erase_while_failing, personal_order
from tests.support.api import Api, expect


async def test_erasure_reaches_pending_retries_and_replays(
    api: Api, account: str, rx: Receiver
) -> None:
    await erase_while_failing(api, account, rx)


async def test_only_an_admin_may_erase(api: Api, account: str) -> None:
    order = personal_order(account)
    await api.new_order(order)
    path = f"/v1/orders/{order['_id']}/erase"
    for role, accounts in (("partner", [account]), ("ingest", [])):
        key = await api.make_key(role, accounts)
        refused = expect(await api.call("POST", path, key), 403)
        assert refused["error"]["code"]
    expect(await api.call("POST", path, generate_api_key()), 401)
    stored = expect(await api.call("GET", f"/v1/orders/{order['_id']}"), 200)
    assert stored["document"]["customer"] == order["customer"], "a refused erasure erased"


async def test_an_erasure_with_an_invalid_body_erases_nothing(api: Api, account: str) -> None:
    """Erase takes no body, like enable, disable and retry: an empty request needs no
    content type, and a body that is not valid JSON (400) or not JSON (415) is refused
    before anything is erased (docs/api.md, errors); an unknown order stays 404."""
    order = personal_order(account)
    await api.new_order(order)
    path = f"/v1/orders/{order['_id']}/erase"
    refused = [
        (b"{not json", "application/json", 400),
        (b"customer=all", "text/plain", 415),
    ]
    for body, content_type, status in refused:
        response = await api.call(
            "POST", path, content=body, headers={"content-type": content_type}
        )
        assert response.status_code == status, response.text
        stored = expect(await api.call("GET", f"/v1/orders/{order['_id']}"), 200)
        assert stored["document"]["customer"] == order["customer"], "a refused erasure erased"
    unknown = f"/v1/orders/{order['_id']}x/erase"
    missing = await api.call("POST", unknown, content=b"{", headers={"content-type": "text/x"})
    assert missing.status_code == 404, missing.text
    erased = expect(await api.call("POST", path), 200)
    assert erased["orderId"] == order["_id"] and erased["events"] == 1
    stored = expect(await api.call("GET", f"/v1/orders/{order['_id']}"), 200)
    assert "customer" not in stored["document"]
