import asyncio

import pytest

from order_generation.adapters.security import SecurityClient
from order_generation.domain.errors import NotFound
from tests.adapters.conftest import SECURITY_IDS, TICKERS, UNKNOWN, fast_settings

ONE = f"/api/v1/security/{SECURITY_IDS[0]}"


async def test_a_few_ids_are_fetched_one_by_one(security, globeco):
    wanted = SECURITY_IDS[:3]

    assert await security.tickers(wanted) == {i: TICKERS[i] for i in wanted}
    assert (await globeco.calls())["security"] == {f"GET /api/v1/security/{i}": 1 for i in wanted}


async def test_many_ids_take_one_list_call(security, globeco):
    assert await security.tickers(SECURITY_IDS[:100]) == {i: TICKERS[i] for i in SECURITY_IDS[:100]}
    assert (await globeco.calls())["security"] == {"GET /api/v1/securities": 1}


async def test_a_second_lookup_within_the_ttl_makes_no_call(security, globeco):
    await security.tickers(SECURITY_IDS[:100])
    hits = security.cache.hits

    assert await security.tickers(SECURITY_IDS[:120]) == {i: TICKERS[i] for i in SECURITY_IDS}
    assert await globeco.call_count("security") == 1  # the list filled the whole cache
    assert security.cache.hits == hits + 120


async def test_an_expired_entry_is_fetched_again(globeco):
    async with SecurityClient(fast_settings(globeco, ticker_cache_seconds=0)) as client:
        await client.tickers([SECURITY_IDS[0]])
        await client.tickers([SECURITY_IDS[0]])

    assert await globeco.call_count("security", ONE) == 2


async def test_concurrent_misses_for_one_id_make_one_call(security, globeco):
    answers = await asyncio.gather(*(security.tickers([SECURITY_IDS[0]]) for _ in range(20)))

    assert answers == [{SECURITY_IDS[0]: TICKERS[SECURITY_IDS[0]]}] * 20
    assert await globeco.call_count("security") == 1
    assert (security.cache.hits, security.cache.misses) == (0, 20)


async def test_an_unknown_id_is_not_found_without_retrying(security, globeco):
    with pytest.raises(NotFound, match=UNKNOWN) as caught:
        await security.tickers([SECURITY_IDS[0], UNKNOWN])

    assert caught.value.details == {"service": "security", "security_ids": [UNKNOWN]}
    assert await globeco.call_count("security", f"/api/v1/security/{UNKNOWN}") == 1


async def test_an_unknown_id_in_a_batch_is_not_found(security):
    with pytest.raises(NotFound, match=f"does not know security {UNKNOWN}"):
        await security.tickers([*SECURITY_IDS[:10], UNKNOWN])
