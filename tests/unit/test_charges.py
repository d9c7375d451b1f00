"""Charges of the usage API: delivered units × price per thousand / 1000, rounded half up
to the minor unit; and the months a usage query covers."""

from __future__ import annotations

import pytest

from orderhooks.service.usage import charge, months_between


@pytest.mark.parametrize(
    ("units", "per_thousand", "expected"),
    [
        (0, 500, 0),
        (1, 500, 1),  # 0.5 rounds up
        (1, 499, 0),  # 0.499 rounds down
        (3, 500, 2),  # 1.5 rounds up
        (1001, 500, 501),  # 500.5 rounds up
        (1234, 100, 123),  # 123.4 rounds down
        (1000, 0, 0),
        (7, 700, 5),  # 4.9
        (10**12, 999, 999 * 10**9),  # large counts stay exact integers
    ],
)
def test_charge_rounds_half_up_to_the_minor_unit(
    units: int, per_thousand: int, expected: int
) -> None:
    assert charge(units, per_thousand) == expected


def test_months_between_includes_both_ends_and_crosses_years() -> None:
    assert months_between("2026-11", "2026-11") == ["2026-11"]
    assert months_between("2025-11", "2026-02") == ["2025-11", "2025-12", "2026-01", "2026-02"]
    assert months_between("2026-03", "2026-02") == []
    assert len(months_between("2017-01", "2026-12")) == 120
