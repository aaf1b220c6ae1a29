"""A bare async client of the external API: no database, no Celery, the fewest steps a
request can take. The ceiling the service is measured against, in the benchmarks and in the
tests of admission control."""

import asyncio
import time
from collections import Counter

import aiohttp


def send_all(
    url: str, token: str, *, count: int, in_flight: int, first_id: int = 1
) -> tuple[float, Counter[int]]:
    """Send `count` messages with at most `in_flight` requests at once, each until it is
    delivered (a refusal is retried at once); returns the deliveries per second and the
    answers by HTTP status."""

    async def run() -> tuple[float, Counter[int]]:
        limit = asyncio.Semaphore(in_flight)
        answers: Counter[int] = Counter()
        connector = aiohttp.TCPConnector(limit=in_flight)
        headers = {"Authorization": f"Bearer {token}"}
        async with aiohttp.ClientSession(connector=connector, headers=headers) as session:

            async def one(i: int) -> None:
                async with limit:
                    while True:
                        async with session.post(
                            f"{url}/send/{i}", json={"id": i, "phone": 79160000000, "text": "x"}
                        ) as response:
                            await response.read()
                            answers[response.status] += 1
                            if response.status == 200:
                                return

            started = time.perf_counter()
            await asyncio.gather(*(one(i) for i in range(first_id, first_id + count)))
            return count / (time.perf_counter() - started), answers

    return asyncio.run(run())
