"""Ids: prefix, Crockford base32, creation-time order, monotonic within a millisecond."""

from __future__ import annotations

import re
import threading
import time
from datetime import UTC, datetime, timedelta

import pytest

from orderhooks.domain.ids import IdGenerator, id_time, is_id, new_id

ID_RE = re.compile(r"evt_[0-9A-HJKMNP-TV-Z]{26}")


def test_shape_is_prefix_underscore_and_26_crockford_chars() -> None:
    made = new_id("evt")
    assert ID_RE.fullmatch(made), made
    assert new_id("dlv").startswith("dlv_")


def test_first_ten_chars_encode_the_creation_millisecond() -> None:
    before = datetime.now(UTC) - timedelta(milliseconds=1)
    made = new_id("evt")
    after = datetime.now(UTC) + timedelta(milliseconds=1)
    assert before <= id_time(made) <= after


def test_ids_made_in_a_burst_sort_in_creation_order_and_are_unique() -> None:
    made = [new_id("evt") for _ in range(5000)]
    assert made == sorted(made)
    assert len(set(made)) == len(made)


class FakeClock:
    """A nanosecond clock that returns the values it is given, repeating the last one."""

    def __init__(self, *millis: int) -> None:
        self._values = [m * 1_000_000 for m in millis]

    def __call__(self) -> int:
        return self._values.pop(0) if len(self._values) > 1 else self._values[0]


def test_same_millisecond_increments_the_random_part() -> None:
    make = IdGenerator(clock_ns=FakeClock(1_795_867_200_000))
    first, second, third = make("evt"), make("evt"), make("evt")
    assert first[:14] == second[:14] == third[:14]  # prefix and timestamp part
    assert first < second < third


def test_a_clock_stepping_back_does_not_break_the_order() -> None:
    make = IdGenerator(clock_ns=FakeClock(2_000_000_000_000, 1_999_999_999_000))
    first, second = make("evt"), make("evt")
    assert first < second


def test_random_part_overflow_moves_to_the_next_millisecond() -> None:
    millis = 1_795_867_200_000
    make = IdGenerator(clock_ns=FakeClock(millis), random_bits=lambda bits: (1 << bits) - 1)
    make("evt")  # random part is all ones: the next one overflows
    assert id_time(make("evt")) == datetime.fromtimestamp((millis + 1) / 1000, tz=UTC)


def test_known_encoding_of_a_fixed_moment() -> None:
    # 2026-11-28T12:00:00Z = 1795867200000 ms; random part zero, then incremented.
    make = IdGenerator(clock_ns=FakeClock(1_795_867_200_000), random_bits=lambda bits: 0)
    assert make("evt") == "evt_01M8H0DJG0" + "0" * 16
    assert make("evt") == "evt_01M8H0DJG0" + "0" * 15 + "1"


def test_ids_from_many_threads_stay_unique() -> None:
    made: list[str] = []
    lock = threading.Lock()

    def work() -> None:
        local = [new_id("dlv") for _ in range(500)]
        with lock:
            made.extend(local)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(set(made)) == 2000


def test_id_time_refuses_foreign_ids() -> None:
    with pytest.raises(ValueError):
        id_time("evt_short")
    with pytest.raises(ValueError):
        id_time("evt_" + "U" * 26)  # U is not in the Crockford alphabet


def test_later_ids_sort_after_earlier_ones_across_milliseconds() -> None:
    first = new_id("evt")
    time.sleep(0.002)
    assert new_id("evt") > first


def test_is_id_takes_only_ids_of_the_prefix() -> None:
    made = new_id("wh")
    assert is_id(made, "wh")
    assert not is_id(made, "evt")
    assert not is_id(made.lower(), "wh")
    assert not is_id(made + "0", "wh")
    assert not is_id("wh_" + "U" * 26, "wh")  # U is not in the Crockford alphabet
    assert not is_id("zzz", "wh")
    assert not is_id("", "wh")
