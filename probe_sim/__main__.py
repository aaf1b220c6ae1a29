"""``python -m probe_sim``: run the simulator until SIGTERM or SIGINT.

Every flag can also come from an environment variable ``PROBE_SIM_<FLAG>`` (``--control-port``
from ``PROBE_SIM_CONTROL_PORT``); a flag given on the command line wins.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import logging
import os
import signal
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from probe_sim.server import Config, Faults, Simulator

log = logging.getLogger("probe_sim")


def _bool(value: str) -> bool:
    lowered = value.strip().lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off", ""}:
        return False
    raise argparse.ArgumentTypeError(f"not a boolean: {value!r}")


def _id_list(value: str) -> list[int]:
    try:
        return [int(part) for part in value.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a comma-separated list of ids: {value!r}") from None


def parse_config(
    argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None
) -> tuple[Config, float, str]:
    """The simulator's config, a start-up outage in seconds and the log level."""
    env = os.environ if environ is None else environ
    parser = argparse.ArgumentParser(prog="python -m probe_sim", description=__doc__)

    def add(flag: str, kind: Callable[[str], Any], default: str | None, help: str) -> None:
        name = "PROBE_SIM_" + flag.upper().replace("-", "_")
        extra: dict[str, Any] = {"nargs": "?", "const": True} if kind is _bool else {}
        # argparse converts a string default with ``type`` too, so env values are checked.
        parser.add_argument(
            f"--{flag}",
            type=kind,
            default=env.get(name, default),
            help=f"{help} (${name})",
            **extra,
        )

    add("host", str, "127.0.0.1", "interface to listen on")
    add("port", int, "8001", "API port; 0 picks a free one")
    add("control-port", int, None, "control port; default: API port + 1")
    add("token", str, None, "expected bearer token; default: accept any non-empty one")
    add("seed", int, None, "seed of the fault RNG; default: random")
    add("latency-ms", float, "0", "fixed delay before every answer")
    add("jitter-ms", float, "0", "extra random delay, uniform in 0..jitter")
    add("error-rate", float, "0", "fraction answered 500/502/503")
    add("garbage-rate", float, "0", "fraction of good requests answered 200 with a bad body")
    add("drop-rate", float, "0", "fraction whose connection is aborted without an answer")
    add("rate429", float, "0", "fraction answered 429 with Retry-After")
    add("retry-after-seconds", int, "1", "Retry-After value of the 429s")
    add("hang", _bool, "false", "sleep hang-seconds before every answer")
    add("hang-seconds", float, "30", "how long a hung answer takes")
    add("unauthorized", _bool, "false", "answer 401 to everything (expired credentials)")
    add("reject-ids", _id_list, "", "comma-separated message ids always answered 400")
    add("capacity", int, "0", "requests served at once, 429 beyond; 0: no limit")
    add("rate-cap", float, "0", "requests accepted per second, 429 with Retry-After beyond")
    add("outage-seconds", float, "0", "refuse API connections for this long after start-up")
    add("log-level", str, "INFO", "logging level")
    args = parser.parse_args(argv)

    fault_names = {f.name for f in dataclasses.fields(Faults)}
    try:
        faults = Faults().updated({k: v for k, v in vars(args).items() if k in fault_names})
    except ValueError as exc:
        parser.error(str(exc))
    config = Config(
        host=args.host,
        port=args.port,
        control_port=args.control_port,
        token=args.token or None,
        seed=args.seed,
        faults=faults,
    )
    return config, args.outage_seconds, args.log_level


async def serve(config: Config, outage_seconds: float = 0.0) -> None:
    # Handlers first: whoever saw the start-up line may send SIGTERM at once.
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    simulator = Simulator(config)
    await simulator.start()
    if outage_seconds > 0:
        await simulator.outage(outage_seconds)
    # The one line on stdout: testing.ProbeProcess reads the ports chosen for port 0 from it.
    print(f"probe_sim: API {simulator.api_url} control {simulator.control_url}", flush=True)
    await stop.wait()
    log.info("stopping")
    await simulator.stop()


def main(argv: Sequence[str] | None = None) -> None:
    config, outage_seconds, log_level = parse_config(argv)
    logging.basicConfig(
        level=log_level.upper(), stream=sys.stderr, format="%(asctime)s %(name)s %(message)s"
    )
    asyncio.run(serve(config, outage_seconds))


if __name__ == "__main__":
    main()
