"""The dashboard's pure parts, without a browser: sessions, charts, series, timeline, money.

Known answers where the result is exact; the browser tests cover the pages themselves.
"""

from __future__ import annotations

import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from orderhooks.domain.model import (
    Agreement,
    DeliveryState,
    DisabledReason,
    Event,
    EventType,
    SigningSecret,
    UsageRow,
    Webhook,
    WebhookState,
)
from orderhooks.store.base import OutcomeBucket, WebhookStats
from orderhooks.web.dashboard import billing, charts, formatting, health, series, timeline
from orderhooks.web.dashboard.context import query_string, safe_next
from orderhooks.web.dashboard.params import parse_form_time
from orderhooks.web.dashboard.session import (
    SECRET_FILE_NAME,
    SESSION_LIFETIME_SECONDS,
    SessionSigner,
    load_session_secret,
)

NOW = datetime(2026, 11, 28, 12, 0, 30, tzinfo=UTC)


# ---------------------------------------------------------------- sessions


def test_session_token_round_trip_names_the_key_id_only() -> None:
    signer = SessionSigner(b"k" * 32)
    token = signer.issue("key_01ABC", NOW)
    session = signer.read(token, NOW)
    assert session is not None
    assert session.key_id == "key_01ABC"
    assert session.expires_at == int(NOW.timestamp()) + SESSION_LIFETIME_SECONDS
    assert token.startswith("v1.key_01ABC.")


def test_forged_expired_and_foreign_tokens_are_refused() -> None:
    signer = SessionSigner(b"k" * 32)
    token = signer.issue("key_01ABC", NOW)
    forged = token.replace("key_01ABC", "key_01XYZ")
    assert signer.read(forged, NOW) is None
    assert signer.read(token + "x", NOW) is None
    assert signer.read("v1.a.b", NOW) is None
    later = NOW + timedelta(seconds=SESSION_LIFETIME_SECONDS)
    assert signer.read(token, later) is None
    assert SessionSigner(b"o" * 32).read(token, NOW) is None


def test_csrf_tokens_are_per_session() -> None:
    signer = SessionSigner(b"k" * 32)
    one = signer.read(signer.issue("key_1", NOW), NOW)
    two = signer.read(signer.issue("key_1", NOW), NOW)
    assert one is not None and two is not None
    assert signer.check_csrf(one, signer.csrf_token(one))
    assert not signer.check_csrf(one, signer.csrf_token(two))
    assert not signer.check_csrf(one, None)
    assert not signer.check_csrf(one, "")


def test_sign_in_token_matches_only_its_nonce() -> None:
    signer = SessionSigner(b"k" * 32)
    nonce = signer.new_signin_nonce()
    assert signer.check_signin(nonce, signer.signin_token(nonce))
    assert not signer.check_signin(signer.new_signin_nonce(), signer.signin_token(nonce))
    assert not signer.check_signin(None, signer.signin_token(nonce))


def test_session_secret_is_created_once_with_mode_0600(tmp_path: Path) -> None:
    first = load_session_secret(tmp_path / "data")
    second = load_session_secret(tmp_path / "data")
    assert first == second
    assert len(first) == 32
    mode = (tmp_path / "data" / SECRET_FILE_NAME).stat().st_mode
    assert stat.S_IMODE(mode) == 0o600


def test_session_secret_falls_back_to_memory_when_the_data_dir_is_unusable(
    tmp_path: Path,
) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where the data dir should be")
    one, two = load_session_secret(blocker), load_session_secret(blocker)
    assert len(one) == 32
    assert one != two


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("/ui/webhooks?state=active", "/ui/webhooks?state=active"),
        ("/ui", "/ui"),
        ("https://evil.example/ui", "/ui"),
        ("//evil.example/ui", "/ui"),
        ("/ui//evil.example", "/ui"),
        ("/uievil", "/ui"),
        ("/v1/keys", "/ui"),
        ("/ui\\evil", "/ui"),
        (None, "/ui"),
    ],
)
def test_after_sign_in_only_dashboard_paths(value: str | None, expected: str) -> None:
    assert safe_next(value) == expected


def test_query_string_drops_empty_values() -> None:
    assert query_string({"state": "", "account": "a b"}, cursor="c1") == "?account=a+b&cursor=c1"
    assert query_string({"state": None}) == ""


def test_form_times_are_utc() -> None:
    assert parse_form_time("2026-11-28T12:05") == datetime(2026, 11, 28, 12, 5, tzinfo=UTC)
    assert parse_form_time("") is None
    with pytest.raises(ValueError):
        parse_form_time("yesterday")


# ---------------------------------------------------------------- charts


@pytest.mark.parametrize(
    ("largest", "integer", "step"),
    [(0, True, 1.0), (3, True, 1.0), (15, True, 5.0), (7.2, False, 2.0), (0.3, False, 0.1)],
)
def test_grid_steps_are_round(largest: float, integer: bool, step: float) -> None:
    assert charts.nice_step(largest, integer) == pytest.approx(step)


def test_values_read_like_people_write_them() -> None:
    assert charts.format_value(1234, "") == "1,234"
    assert charts.format_value(85, "ms") == "85 ms"
    assert charts.format_value(1500, "ms") == "1.5 s"


def _series(values: list[float | None], name: str = "ok") -> charts.Series:
    return charts.Series(name, f"series-{name}", "#000", values)


def test_bar_chart_is_an_accessible_escaped_svg() -> None:
    markup = charts.stacked_bar_chart(
        charts.ChartSpec(
            chart_id="c1",
            title="Outcomes <b>",
            description="two bars",
            labels=["12:00", "<script>"],
            series=[_series([3, 0]), _series([1, 2], "fail")],
        )
    )
    text = str(markup)
    assert 'role="img"' in text
    assert 'aria-labelledby="c1-title c1-desc"' in text
    assert '<title id="c1-title">Outcomes &lt;b&gt;</title>' in text
    assert "<script>" not in text
    assert text.count("<rect ") == 3  # 3 + 1 stacked in the first bar, 2 in the second
    assert "&lt;script&gt;: ok 0, fail 2" in text


def test_line_chart_breaks_at_gaps_and_says_when_empty() -> None:
    markup = str(
        charts.line_chart(
            charts.ChartSpec(
                chart_id="c2",
                title="Latency",
                description="",
                labels=["a", "b", "c", "d", "e"],
                series=[_series([1, 2, None, 3, 4])],
                unit="ms",
            )
        )
    )
    assert markup.count("<polyline") == 2
    assert markup.count("<circle") == 4
    empty = str(
        charts.line_chart(charts.ChartSpec("c3", "t", "", labels=["a"], series=[_series([None])]))
    )
    assert "Nothing in this period" in empty


# ---------------------------------------------------------------- series


def test_percentiles_are_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert series.percentile(values, 0.50) == 50
    assert series.percentile(values, 0.95) == 95
    assert series.percentile(values, 0.99) == 99
    assert series.percentile([7.0], 0.99) == 7
    assert series.percentile([], 0.5) is None


def test_buckets_fill_their_gaps_and_sum_up() -> None:
    start = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
    buckets = [
        OutcomeBucket(start, 1, 1, 10.0, 30.0, 30.0),
        OutcomeBucket(start + timedelta(minutes=1), 1, 0, 20.0, 20.0, 20.0),
    ]
    filled = series.fill_gaps(buckets, start, start + timedelta(minutes=5), 60)
    assert [b.succeeded + b.failed for b in filled] == [2, 1, 0, 0, 0]
    summary = series.summarize(filled)
    assert (summary.succeeded, summary.failed, summary.success_rate) == (2, 1, 2 / 3)


def test_window_ends_with_the_bucket_holding_now() -> None:
    since, until = series.window(series.chart_range("1h"), NOW)
    assert until == datetime(2026, 11, 28, 12, 1, tzinfo=UTC)
    assert until - since == timedelta(hours=1)
    assert series.chart_range("nonsense").name == "1h"


# ---------------------------------------------------------------- order timeline


def _courier_event(sequence: int, status: int, received: str) -> Event:
    return Event(
        id=f"evt_{sequence}",
        type=EventType.COURIER_UPDATE,
        order_id="o1",
        account="a",
        location="l",
        channel_link="c",
        channel=1,
        sequence=sequence,
        created_at=NOW,
        data={"status": status, "received": received, "courier": {"firstName": "Jo"},
              "trackingURL": "javascript:alert(1)"},
        status=status,
    )  # fmt: skip


def test_timeline_milestones_and_spans() -> None:
    history = [
        {"status": 10, "timeStamp": "2026-11-28T11:00:00Z"},
        {"status": 20, "timeStamp": "2026-11-28T11:02:00Z"},
        {"status": 60, "timeStamp": "2026-11-28T11:14:30Z"},
        {"status": 120, "timeStamp": "not a time"},
        {"status": 90, "timeStamp": "2026-11-28T11:50:00Z"},
    ]
    steps = timeline.status_timeline(history)
    assert [s.label for s in steps][:3] == ["New (10)", "Accepted (20)", "Prepared (60)"]
    assert steps[2].since_previous == timedelta(minutes=12, seconds=30)
    assert steps[3].problem and steps[3].at is None
    assert steps[4].since_previous == timedelta(minutes=35, seconds=30)
    courier = timeline.courier_progress(
        [
            _courier_event(5, 87, "2026-11-28T11:30:00Z"),
            _courier_event(4, 83, "2026-11-28T11:20:00Z"),
        ]
    )
    assert [c.status for c in courier] == [83, 87]
    assert courier[1].since_previous == timedelta(minutes=10)
    assert courier[0].tracking_url is None  # only https links are shown
    spans = timeline.milestone_spans(timeline.milestones(steps, courier))
    assert [(s.start, s.end, s.duration.total_seconds()) for s in spans] == [
        ("received", "accepted", 120),
        ("accepted", "prepared", 750),
        ("prepared", "picked up", 930),
        ("picked up", "delivered", 1200),
    ]


def test_unknown_statuses_are_shown_by_number() -> None:
    assert timeline.status_label(20) == "Accepted (20)"
    assert timeline.status_label(555) == "Status 555"
    assert timeline.courier_label(90) == "Delivered (90)"
    assert timeline.status_label(None) == "—"


# ---------------------------------------------------------------- formatting and usage


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(4.25, "4.2 s"), (45, "45 s"), (60, "1 min"), (725, "12 min 5 s"), (7200, "2 h"),
     (90_061, "1 d 1 h"), (-30, "-30 s")],
)  # fmt: skip
def test_durations(seconds: float, text: str) -> None:
    assert formatting.duration(seconds) == text


def test_money_in_minor_units() -> None:
    assert formatting.money(123456, "EUR") == "1,234.56 EUR"
    assert formatting.money(-5, "EUR") == "-0.05 EUR"
    assert formatting.money(1500, "JPY") == "1,500 JPY"
    assert formatting.money(1500, "KWD") == "1.500 KWD"
    assert formatting.money(None, "EUR") == "—"
    assert formatting.percent(0.995) == "99.5 %"
    assert formatting.percent(1.0) == "100 %"


def test_a_rate_short_of_all_or_above_none_is_never_rounded_to_it() -> None:
    """One failure in 3,000 deliveries is not a 100 % success rate (the API says
    0.99967), nor is one success in 3,000 a 0 % one; it was rounded to both."""
    assert formatting.percent(2999 / 3000) == "> 99.9 %"
    assert formatting.percent(1 / 3000) == "< 0.1 %"
    assert formatting.percent(0.9994) == "99.9 %"
    assert formatting.percent(0.0) == "0 %"
    assert formatting.percent(None) == "—"


def test_usage_is_priced_by_agreement_and_totalled() -> None:
    agreement = Agreement(
        "a", "Ana", NOW, "EUR", {EventType.NEW: 500, EventType.STATUS_UPDATE: 100}
    )
    rows = [
        UsageRow("a", "2026-11", EventType.STATUS_UPDATE, 1234, 10),
        UsageRow("a", "2026-11", EventType.NEW, 1001, 0),
        UsageRow("b", "2026-11", EventType.NEW, 7, 0),
    ]
    lines = billing.price_usage(rows, {"a": agreement, "b": None})
    assert [(line.event_type, line.charge) for line in lines] == [
        (EventType.NEW, 501),  # 1001 × 500 / 1000 = 500.5, rounded half up
        (EventType.STATUS_UPDATE, 123),  # replays are not charged
        (EventType.NEW, 0),  # without an agreement nothing is charged, as the API says
    ]
    (total,) = billing.account_totals(lines)
    assert (total.account, total.delivered, total.replayed, total.charge) == ("a", 2235, 10, 624)
    assert billing.recent_months(datetime(2026, 2, 1, tzinfo=UTC), 3) == [
        "2026-02",
        "2026-01",
        "2025-12",
    ]
    assert billing.is_month("2026-12") and not billing.is_month("2026-13")


# ---------------------------------------------------------------- health


def _webhook(state: WebhookState = WebhookState.ACTIVE, reason: DisabledReason | None = None,
             webhook_id: str = "wh_1") -> Webhook:  # fmt: skip
    return Webhook(
        id=webhook_id,
        url="https://example.com/hook",
        accounts=("a",),
        event_types=(EventType.NEW,),
        secrets=(SigningSecret("whsec_x"),),
        created_at=NOW,
        updated_at=NOW,
        state=state,
        disabled_reason=reason,
    )


def _stats(ok: datetime | None, bad: datetime | None, failed: int = 0) -> WebhookStats:
    counts = {DeliveryState.FAILED: failed}
    return WebhookStats(counts, None, None, None, None, ok, bad)


def test_health_puts_trouble_first() -> None:
    earlier, later = NOW - timedelta(minutes=5), NOW
    assert health.webhook_health(_webhook(), _stats(later, earlier)) == health.HEALTHY
    assert health.webhook_health(_webhook(), _stats(earlier, later)) == health.RETRYING
    assert health.webhook_health(_webhook(), _stats(earlier, later, 2)) == health.FAILING
    assert health.webhook_health(_webhook(), _stats(None, None)) == health.IDLE
    gone = _webhook(WebhookState.DISABLED, DisabledReason.GONE, "wh_9")
    assert health.webhook_health(gone, None) == health.GONE
    manual = _webhook(WebhookState.DISABLED, DisabledReason.MANUAL, "wh_2")
    rows = [(_webhook(), health.HEALTHY), (manual, health.DISABLED), (gone, health.GONE)]
    assert [w.id for w, _ in health.trouble_first(rows)] == ["wh_9", "wh_2", "wh_1"]
