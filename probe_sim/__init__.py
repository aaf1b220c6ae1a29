"""A simulator of the external Probe sending API, with faults to order and a delivery witness.

Stands alone: only the standard library and aiohttp. Run it with ``python -m probe_sim``,
from tests with ``probe_sim.testing.ProbeProcess``, or in-process with ``Simulator``.
See ``probe_sim/README.md``.
"""

from probe_sim.server import Config, Faults, Simulator

__all__ = ["Config", "Faults", "Simulator"]
