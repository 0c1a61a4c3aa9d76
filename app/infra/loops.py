"""Background loops of a service process: one way to repeat a step, wait between rounds and stop."""

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any


async def stopped(stop: asyncio.Event, seconds: float) -> bool:
    """Wait up to `seconds` for `stop`; True when it is set."""
    try:
        await asyncio.wait_for(stop.wait(), timeout=seconds)
    except TimeoutError:
        return False
    return True


async def repeat(
    step: Callable[[], Awaitable[Any]],
    *,
    stop: asyncio.Event,
    every: float | Callable[[], float],
    log: logging.Logger,
    failure: str,
    first_wait: float = 0.0,
    again: Callable[[Any], bool] = lambda _result: False,
) -> None:
    """Run `step` until `stop` is set, `every` seconds apart (at once again while `again(result)` holds); a round
    that fails is logged and retried after the wait, never ends the loop."""
    if first_wait and await stopped(stop, first_wait):
        return
    while not stop.is_set():
        result = None
        try:
            result = await step()
        except Exception:
            log.warning(failure, exc_info=True)
        if again(result):
            continue
        if await stopped(stop, every() if callable(every) else every):
            return
