"""Safe retries: a request carrying an Idempotency-Key runs once; its retries answer its run."""

import asyncio
import hashlib
import json
import time
from collections.abc import Awaitable, Callable
from datetime import timedelta

import structlog

from order_generation.adapters.mongo import IdempotencyStore
from order_generation.adapters.mongo.idempotency import Claim
from order_generation.domain.errors import Conflict, ServiceError

log = structlog.get_logger(__name__)
# How often a request waiting for the first request with its key looks again.
_POLL_SECONDS = 0.05
# A claim outlives the deadline by this much, time to store the run; past it, its owner is
# taken for dead and a retry runs again.
_STORE_MARGIN = timedelta(seconds=60)


class IdempotencyKeyReused(ServiceError):
    """The key was first used for another request (other target or body)."""

    status = 422
    code = "IDEMPOTENCY_KEY_REUSED"


class IdempotencyKeyInProgress(Conflict):
    """The first request with the key is still running after the wait."""

    code = "IDEMPOTENCY_KEY_IN_PROGRESS"

    @property
    def headers(self) -> dict[str, str]:
        return {"Retry-After": "1"}


def request_fingerprint(kind: str, target: str, body: object) -> str:
    """What a key is bound to: the endpoint kind, its target id and the request body."""
    digest = hashlib.sha256(json.dumps(body, sort_keys=True, default=str).encode()).hexdigest()
    return f"{kind} {target} body:{digest[:16]}"


async def run_once[T](
    keys: IdempotencyStore,
    key: str,
    request: str,
    wait_seconds: float,
    work: Callable[[], Awaitable[T]],
    rebalance_id_of: Callable[[T], str | None],
    replay: Callable[[str | None], Awaitable[T]],
) -> T:
    """`work`'s answer for the first request with `key`; for a retry, `replay` of the first
    one's rebalance id. A request that fails releases its key: its retry runs again."""
    give_up_at = time.monotonic() + wait_seconds
    lease = timedelta(seconds=wait_seconds) + _STORE_MARGIN
    while True:
        held = await keys.claim(key, request, lease)
        if isinstance(held, Claim):
            return await _run_claimed(keys, held, work, rebalance_id_of)
        if held.request != request:
            raise IdempotencyKeyReused(
                f"Idempotency-Key {key!r} was first used for another request ({held.request}); "
                "use a new key for a new request",
                {"idempotency_key": key},
            )
        if held.done:
            return await replay(held.rebalance_id)
        if time.monotonic() >= give_up_at:
            raise IdempotencyKeyInProgress(
                f"the first request with Idempotency-Key {key!r} is still running; "
                "retry shortly for its answer",
                {"idempotency_key": key},
            )
        await asyncio.sleep(_POLL_SECONDS)


async def _run_claimed[T](
    keys: IdempotencyStore,
    claim: Claim,
    work: Callable[[], Awaitable[T]],
    rebalance_id_of: Callable[[T], str | None],
) -> T:
    try:
        answer = await work()
    except BaseException:
        try:
            await asyncio.shield(keys.release(claim))
        except Exception as error:  # the request's own error says more; the lease lapses
            log.warning("idempotency_key_not_released", reason=type(error).__name__)
        raise
    await keys.finish(claim, rebalance_id_of(answer))
    return answer
