"""The command line: flags, their environment variables, start-up faults and shutdown."""

import subprocess
import sys
from pathlib import Path

import pytest

from probe_sim.__main__ import parse_config
from probe_sim.server import Config, Faults, Simulator
from probe_sim.testing import ProbeProcess
from probe_sim.tests.support import post

pytestmark = pytest.mark.timeout(20)


def test_defaults() -> None:
    config, outage_seconds, _ = parse_config([], {})

    assert config == Config(host="127.0.0.1", port=8001, control_port=None, token=None)
    assert config.faults == Faults()
    assert outage_seconds == 0
    assert Simulator(config).control_port == 8002


def test_environment_configures_and_flags_win() -> None:
    environ = {
        "PROBE_SIM_PORT": "9001",
        "PROBE_SIM_TOKEN": "t0k3n",
        "PROBE_SIM_ERROR_RATE": "0.9",
        "PROBE_SIM_HANG": "yes",
        "PROBE_SIM_REJECT_IDS": "5, 6",
        "PROBE_SIM_SEED": "7",
    }

    config, _, _ = parse_config(["--error-rate", "0.2", "--unauthorized"], environ)

    assert (config.port, config.token, config.seed) == (9001, "t0k3n", 7)
    assert config.faults.error_rate == 0.2
    assert config.faults.hang is True
    assert config.faults.unauthorized is True
    assert config.faults.reject_ids == {5, 6}


@pytest.mark.parametrize(
    ("argv", "environ"),
    [
        (["--error-rate", "2"], {}),
        (["--latency-ms", "-1"], {}),
        ([], {"PROBE_SIM_PORT": "eighty"}),
        ([], {"PROBE_SIM_HANG": "maybe"}),
        ([], {"PROBE_SIM_REJECT_IDS": "1,x"}),
    ],
)
def test_bad_values_stop_the_start(argv: list[str], environ: dict[str, str]) -> None:
    with pytest.raises(SystemExit):
        parse_config(argv, environ)


def test_startup_faults_hold_across_reset_and_any_token_passes_without_one() -> None:
    with ProbeProcess(token=None, reject_ids=[3], retry_after_seconds=7, hang_seconds=9.5) as probe:
        faults = probe.faults()
        assert (faults["reject_ids"], faults["retry_after_seconds"]) == ([3], 7)
        assert faults["hang_seconds"] == 9.5

        assert post(probe, 1, authorization="Bearer anything").status == 200
        assert post(probe, 3, authorization="Bearer anything").status == 400
        assert post(probe, 2, authorization="Bearer ").status == 401

        probe.set_faults(reject_ids=[])
        probe.reset()
        assert probe.faults() == faults
        assert probe.stop() == 0  # SIGTERM is a clean exit


def test_startup_line_names_the_urls_and_no_secret_is_ever_printed() -> None:
    secret = "s3cr3t-token-value"
    process = subprocess.Popen(
        [sys.executable, "-m", "probe_sim", "--port", "0", "--token", secret],
        cwd=Path(__file__).resolve().parents[2],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        first_line = process.stdout.readline()
    finally:
        process.terminate()
        rest, errors = process.communicate(timeout=10)

    assert first_line.startswith("probe_sim: API http://127.0.0.1:")
    assert "/v1 control http://127.0.0.1:" in first_line
    assert secret not in first_line + rest + errors
    assert process.returncode == 0
