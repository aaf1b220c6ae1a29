"""The simulator run in-process, under concurrent load (a sanity check, not a benchmark)."""

import asyncio
import time
from typing import Any

import aiohttp
import pytest

from probe_sim import Config, Faults, Simulator

pytestmark = pytest.mark.timeout(30)

REQUESTS, CONNECTIONS = 2000, 50


async def _load(simulator: Simulator) -> tuple[list[int], float]:
    statuses: list[int] = []
    ids = iter(range(REQUESTS))
    headers = {"Authorization": "Bearer t"}
    connector = aiohttp.TCPConnector(limit=CONNECTIONS)
    async with aiohttp.ClientSession(connector=connector, headers=headers) as session:

        async def worker() -> None:
            for i in ids:
                body: dict[str, Any] = {"id": i, "phone": 79000000000 + i, "text": "load"}
                async with session.post(f"{simulator.api_url}/send/{i}", json=body) as response:
                    await response.read()
                    statuses.append(response.status)

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(CONNECTIONS)))
        return statuses, time.perf_counter() - started


def test_every_concurrent_request_is_witnessed() -> None:
    async def main() -> tuple[list[int], float, dict[str, Any], list[dict[str, Any]]]:
        config = Config(port=0, token="t", seed=3, faults=Faults(error_rate=0.1))
        simulator = Simulator(config)
        await simulator.start()
        try:
            statuses, elapsed = await _load(simulator)
            return statuses, elapsed, simulator.record.report(), simulator.record.deliveries()
        finally:
            await simulator.stop()

    statuses, elapsed, report, deliveries = asyncio.run(main())

    ok = statuses.count(200)
    assert report["requests"] == len(statuses) == REQUESTS
    assert sum(report["by_answer"].values()) == REQUESTS
    assert report["delivered"] == report["deliveries"] == ok
    assert 0 < REQUESTS - ok < REQUESTS
    assert {d["phone"] - d["id"] for d in deliveries} == {79000000000}
    print(f"in-process: {REQUESTS / elapsed:.0f} requests/s (client included; informational)")
