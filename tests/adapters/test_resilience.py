"""The shared pieces on their own: breaker transitions, the single-flight TTL cache, fan-out."""

import asyncio
from collections.abc import Mapping

import pytest

from order_generation.adapters.resilience import CircuitBreaker, TtlCache, fetch_each, to_decimal


class Loader:
    """A fake load function that records what it was asked for."""

    def __init__(self, values: Mapping[str, int], delay: float = 0.01) -> None:
        self.values = dict(values)
        self.delay = delay
        self.asked: list[list[str]] = []
        self.error: Exception | None = None

    async def __call__(self, keys: list[str]) -> dict[str, int]:
        self.asked.append(keys)
        await asyncio.sleep(self.delay)
        if self.error:
            raise self.error
        return self.values


def test_breaker_opens_at_the_threshold_and_half_opens_after_the_cool_down():
    breaker = CircuitBreaker(threshold=2, reset_seconds=0.05)
    breaker.record_failure()
    assert (breaker.state, breaker.allow()) == ("closed", True)
    breaker.record_failure()
    assert (breaker.state, breaker.allow()) == ("open", False)
    assert 0 < breaker.retry_in() <= 0.05


async def test_half_open_admits_one_trial_until_it_ends():
    breaker = CircuitBreaker(threshold=1, reset_seconds=0.01)
    breaker.record_failure()
    await asyncio.sleep(0.02)

    assert [breaker.allow(), breaker.allow()] == [True, False]
    assert breaker.state == "half-open"
    breaker.release()  # the trial was cancelled: the next caller becomes the trial
    assert breaker.allow()
    breaker.record_failure()
    assert (breaker.state, breaker.allow()) == ("open", False)


async def test_cache_loads_only_missing_keys_and_counts_hits_and_misses():
    cache: TtlCache[str, int] = TtlCache(ttl=60)
    load = Loader({"a": 1, "b": 2, "c": 3})

    assert await cache.get_many(["a", "b"], load) == {"a": 1, "b": 2}
    assert await cache.get_many(["a", "c", "x"], load) == {"a": 1, "c": 3}
    assert load.asked == [["a", "b"], ["x"]]  # the first load returned c too, and cached it
    assert (cache.hits, cache.misses) == (2, 3)


async def test_keys_the_loader_does_not_return_are_absent_and_asked_again():
    cache: TtlCache[str, int] = TtlCache(ttl=60)
    load = Loader({})

    assert await cache.get_many(["x"], load) == {}
    assert await cache.get_many(["x"], load) == {}
    assert load.asked == [["x"], ["x"]]


async def test_expired_values_are_loaded_again():
    cache: TtlCache[str, int] = TtlCache(ttl=0.02)
    load = Loader({"a": 1})
    await cache.get_many(["a"], load)
    await asyncio.sleep(0.03)

    await cache.get_many(["a"], load)

    assert load.asked == [["a"], ["a"]]


async def test_concurrent_misses_share_one_load():
    cache: TtlCache[str, int] = TtlCache(ttl=60)
    load = Loader({"a": 1, "b": 2})

    answers = await asyncio.gather(
        *(cache.get_many(["a"], load) for _ in range(20)), cache.get_many(["a", "b"], load)
    )

    assert answers == [{"a": 1}] * 20 + [{"a": 1, "b": 2}]
    assert load.asked == [["a"], ["b"]]


async def test_a_failed_load_fails_every_waiter_and_caches_nothing():
    cache: TtlCache[str, int] = TtlCache(ttl=60)
    load = Loader({"a": 1})
    load.error = RuntimeError("down")

    results = await asyncio.gather(
        *(cache.get_many(["a"], load) for _ in range(3)), return_exceptions=True
    )
    load.error = None

    assert [str(r) for r in results] == ["down"] * 3
    assert await cache.get_many(["a"], load) == {"a": 1}
    assert len(load.asked) == 2


async def test_a_cancelled_caller_does_not_cancel_the_load_others_wait_for():
    cache: TtlCache[str, int] = TtlCache(ttl=60)
    load = Loader({"a": 1}, delay=0.05)
    first = asyncio.create_task(cache.get_many(["a"], load))
    await asyncio.sleep(0)
    second = asyncio.create_task(cache.get_many(["a"], load))
    await asyncio.sleep(0.01)

    first.cancel()

    assert await second == {"a": 1}
    assert load.asked == [["a"]]


async def test_fetch_each_merges_answers_and_cancels_the_rest_on_the_first_error():
    finished: list[str] = []

    async def fetch(key: str) -> dict[str, str]:
        if key == "bad":
            raise LookupError(key)
        await asyncio.sleep(0.05)
        finished.append(key)
        return {key: key.upper()}

    assert await fetch_each(["a", "b"], fetch) == {"a": "A", "b": "B"}
    with pytest.raises(LookupError):
        await fetch_each(["c", "bad"], fetch)
    await asyncio.sleep(0.06)
    assert finished == ["a", "b"]


@pytest.mark.parametrize("value", [None, True, "abc", "NaN", "Infinity", [1]])
def test_to_decimal_refuses_what_is_not_a_finite_number(value):
    with pytest.raises((TypeError, ValueError, ArithmeticError)):
        to_decimal(value)
