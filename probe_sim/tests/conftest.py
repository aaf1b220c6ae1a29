from collections.abc import Iterator

import pytest

from probe_sim.testing import ProbeProcess
from probe_sim.tests.support import TOKEN


@pytest.fixture(scope="session")
def probe_process() -> Iterator[ProbeProcess]:
    with ProbeProcess(token=TOKEN, seed=1) as probe:
        yield probe


@pytest.fixture
def probe(probe_process: ProbeProcess) -> ProbeProcess:
    """The shared simulator, with no records and its start-up faults."""
    probe_process.reset()
    return probe_process
