"""The parts of docs/benchmarks.md drawn from many runs: where the CPU goes, the profile of
the worker, and the plots (matplotlib, PNG files next to the report)."""

from __future__ import annotations

import statistics
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from bench.results import Run

COMPONENTS = ("worker", "postgres", "simulator", "bench", "redis", "beat")


def describe(run: Run) -> str:
    who = "ceiling (bare client)" if not run.workers else f"service, {run.workers} worker(s)"
    return f"{run.scenario}: {run.n:,} at {run.latency_ms} ms, {who}"


def cpu_table(runs: list[Run]) -> list[str]:
    if not runs:
        return []
    return [
        "## Where the CPU goes",
        "",
        "CPU time of each component per message sent (µs, user + system, from /proc), and how",
        "many of the cores the run kept busy. The ceiling's client is the `bench` process.",
        "",
        f"| run | msg/s | {' | '.join(COMPONENTS)} | total | cores busy | peak RSS per worker |",
        "|---|---|" + "---|" * (len(COMPONENTS) + 3),
        *(
            f"| {describe(r)} | {r.rate:,.0f} | "
            + " | ".join(f"{r.cpu.get(c, 0):,.0f}" for c in COMPONENTS)
            + f" | {sum(r.cpu.values()):,.0f} | {sum(r.cpu.values()) * r.rate / 1e6:.2f}"
            + f" | {', '.join(f'{mb:.0f} MB' for mb in r.peak_rss_mb)} |"
            for r in runs
        ),
        "",
    ]


def profile_table(profile: list[tuple[str, float]], *, raw: str) -> list[str]:
    if not profile:
        return []
    return [
        "## Profile of the worker at 0 ms",
        "",
        "py-spy samples of the worker process while it sends (`python -m bench --profile`),",
        "taken from whichever thread holds the GIL (`--gil`), so they add up to the Python",
        "work of the process: the functions holding the most samples, inclusive of what they",
        f"call. The raw stacks are left in `{raw}`.",
        "",
        "| function | share of samples |",
        "|---|---|",
        *(f"| `{frame}` | {share:.1%} |" for frame, share in profile),
        "",
    ]


def plots(runs: list[Run], folder: Path) -> list[tuple[str, Path]]:
    """Throughput against latency (service beside ceiling) and against size and workers."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    made = []
    dispatch = [r for r in runs if r.scenario == "dispatch"]
    if dispatch:
        fig, ax = plt.subplots(figsize=(6, 4))
        workers = max(r.workers for r in dispatch)
        for label, group in (
            ("ceiling (bare client)", [r for r in dispatch if not r.workers]),
            (f"service, {workers} worker(s)", [r for r in dispatch if r.workers]),
        ):
            rates: dict[int, list[float]] = {}
            for r in group:
                rates.setdefault(r.latency_ms, []).append(r.rate)
            medians = [statistics.median(v) for v in rates.values()]
            ax.plot(list(rates), medians, "o-", label=label)
        ax.set(xlabel="simulator latency (ms)", ylabel="messages/s", ylim=(0, None))
        ax.set_title(f"Dispatch of {dispatch[0].n:,} messages, 100 in flight in all")
        ax.legend()
        made.append(("Throughput against latency", _save(fig, folder / "bench-latency.png")))
    growth = [r for r in runs if r.scenario == "growth"]
    if growth:
        fig, (by_n, by_workers) = plt.subplots(1, 2, figsize=(10, 4))
        one = sorted((r for r in growth if r.workers == 1), key=lambda r: r.n)
        by_n.plot([r.n for r in one], [r.rate for r in one], "o-")
        by_n.set(xscale="log", xlabel="messages", ylabel="messages/s", ylim=(0, None))
        by_n.set_title("One worker, simulator at 0 ms")
        at = max(r.n for r in growth if r.workers > 1) if any(r.workers > 1 for r in growth) else 0
        many = sorted((r for r in growth if r.n == at), key=lambda r: r.workers)
        by_workers.plot([r.workers for r in many], [r.rate for r in many], "o-")
        by_workers.set(xlabel="worker processes", ylabel="messages/s", ylim=(0, None))
        by_workers.set_xticks([r.workers for r in many])
        by_workers.set_title(f"{at:,} messages, simulator at 0 ms")
        made.append(
            ("Throughput against size and workers", _save(fig, folder / "bench-growth.png"))
        )
    return made


def _save(fig: Figure, path: Path) -> Path:
    import matplotlib.pyplot as plt

    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
