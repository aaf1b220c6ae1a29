"""What a benchmark run leaves behind, without running one (that takes PostgreSQL and
minutes): where its report goes, and how a ceiling the service beat is reported."""

import shlex
import subprocess
from pathlib import Path

from bench import __main__ as bench
from bench.results import Results, Run, print_figures, ratio_to_ceiling, verdict

ROOT = Path(__file__).resolve().parents[2]


def bench_arguments(target: str) -> list[str]:
    """The arguments `make <target>` gives `python -m bench`, as make would run them."""
    dry = subprocess.run(
        ["make", "-n", "-o", ".venv/.installed", target, "SIZE=small"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    ).stdout
    (line,) = [line for line in dry.splitlines() if "python -m bench" in line]
    return shlex.split(line.split("python -m bench", 1)[1])


def test_make_bench_leaves_the_committed_report_alone():
    """`make bench SIZE=small` once overwrote docs/benchmarks.md with small-run figures. A run
    reports to var/bench/ (untracked); only `make bench-report` rewrites docs/, at full size."""
    run = bench.arguments(bench_arguments("bench"))
    assert (run.size, run.out) == ("small", ROOT / "var" / "bench")
    report = bench.arguments(bench_arguments("bench-report"))
    assert (report.size, report.out) == ("full", ROOT / "docs")
    assert "var/" in (ROOT / ".gitignore").read_text().split()


def test_the_report_goes_to_its_folder_and_links_back_to_the_docs(tmp_path):
    results = Results("small")
    results.runs = [
        Run("dispatch", 2_000, 0, 0, 3_000.0, {"bench": 150.0}, []),
        Run("dispatch", 2_000, 0, 2, 1_500.0, {"worker": 300.0}, [80.0, 82.0]),
    ]
    folder = tmp_path / "var" / "bench"

    path = bench.write_report(results, folder, database="PostgreSQL 15 (postgresql)")

    assert path == folder / "benchmarks.md"
    assert (folder / "bench-latency.png").stat().st_size > 0
    (link,) = [part.split(")")[0] for part in path.read_text().split("[performance.md](")[1:]]
    assert (folder / link).resolve() == ROOT / "docs" / "performance.md"


def test_a_ceiling_the_service_beats_is_a_measurement_error_not_a_ratio(capsys, tmp_path):
    """A small run once printed 809 msg/s against a "ceiling" of 695 (ratio 1.16): the bare
    client cannot be slower than the service, so its figure measured something else."""
    beaten = ratio_to_ceiling(
        "dispatch", "ratio", ratio=809 / 695, service=809, ceiling=695, target=0.5
    )
    equal = ratio_to_ceiling(
        "dispatch", "ratio", ratio=934 / 932, service=934, ceiling=932, target=0.8
    )
    short = ratio_to_ceiling("dispatch", "ratio", ratio=0.4, service=400, ceiling=1000, target=0.5)

    assert verdict(beaten).startswith("MEASUREMENT ERROR: the service (809 msg/s) beat its")
    assert beaten.passed is None
    assert (verdict(equal), verdict(short)) == ("PASS", "FALLS SHORT")  # 1.00 as printed
    print_figures([beaten])
    printed = capsys.readouterr().out
    assert "MEASUREMENT ERROR" in printed
    assert "1.16" not in printed

    report = bench.write_report(Results("small", figures=[beaten]), tmp_path, database="x")
    (row,) = [line for line in report.read_text().splitlines() if line.startswith("| dispatch")]
    assert "| MEASUREMENT ERROR: the service (809 msg/s) beat its ceiling (695 msg/s)" in row
    assert "1.16" not in row
