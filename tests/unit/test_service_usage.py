"""Usage priced once: the API's answer and the dashboard's table say the same."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from orderhooks.domain.model import Agreement, EventType, UsageRow
from orderhooks.exceptions import ValidationError
from orderhooks.service import usage
from orderhooks.web.dashboard import billing
from orderhooks.web.usage import usage_json

NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
PRICED = Agreement("a", "Ana", NOW, "EUR", {EventType.NEW: 500, EventType.STATUS_UPDATE: 100})
ROWS = [
    UsageRow("a", "2026-11", EventType.NEW, 1001, 4),
    UsageRow("a", "2026-11", EventType.COURIER_UPDATE, 7, 0),  # the agreement has no price
    UsageRow("b", "2026-11", EventType.NEW, 3, 0),  # no agreement at all
]


def test_a_charge_rounds_half_up_and_ignores_replays() -> None:
    [priced] = usage.price_rows(ROWS[:1], {"a": PRICED})
    assert (priced.per_thousand, priced.charge, priced.currency) == (500, 501, "EUR")
    assert usage.charge(3, 500) == 2  # 1.5 rounds up
    assert usage.charge(1, 499) == 0


def test_without_a_price_nothing_is_charged() -> None:
    _, unpriced_type, no_agreement = usage.price_rows(ROWS, {"a": PRICED, "b": None})
    assert (unpriced_type.per_thousand, unpriced_type.charge, unpriced_type.currency) == (
        None,
        0,
        "EUR",
    )
    assert (no_agreement.per_thousand, no_agreement.charge, no_agreement.currency) == (
        None,
        0,
        None,
    )


def test_the_api_and_the_dashboard_agree_on_every_row() -> None:
    agreements = {"a": PRICED, "b": None}
    answers = [usage_json(p) for p in usage.price_rows(ROWS, agreements)]
    lines = billing.price_usage(ROWS, agreements)
    by_key = {(r["account"], r["eventType"]): (r["charge"], r["currency"]) for r in answers}
    assert by_key == {
        (line.account, line.event_type.value): (line.charge, line.currency) for line in lines
    }
    (total,) = billing.account_totals(lines)  # only an agreement gives a currency to sum in
    assert (total.account, total.delivered, total.charge, total.currency) == ("a", 1008, 501, "EUR")


def test_month_range_defaults_to_this_month_and_refuses_reversed_or_long_spans() -> None:
    assert usage.month_range(None, None, NOW) == ["2026-11"]
    assert usage.month_range("2025-12", "2026-02", NOW) == ["2025-12", "2026-01", "2026-02"]
    with pytest.raises(ValidationError) as reversed_range:
        usage.month_range("2026-02", "2026-01", NOW)
    assert [p.field for p in reversed_range.value.problems] == ["to"]
    # `from` after this month with no `to`: the field the client sent is the one named.
    with pytest.raises(ValidationError) as future:
        usage.month_range("2027-01", None, NOW)
    assert [p.field for p in future.value.problems] == ["from"]
    with pytest.raises(ValidationError):
        usage.month_range("2000-01", "2026-01", NOW)
