"""What a benchmark run measures: the figures it prints and the runs the report is drawn from."""

from dataclasses import dataclass, field


@dataclass
class Figure:
    scenario: str
    name: str
    value: float
    unit: str
    target: str
    passed: bool | None  # None: informational, or not measured (`error`)
    error: str = ""  # set: the value measures nothing, and this says why


@dataclass
class Run:
    """One dispatch of a mailing to `n` clients, and what it cost."""

    scenario: str
    n: int
    latency_ms: int
    workers: int
    rate: float  # messages sent per second, from the mailing's start to its last `sent`
    cpu: dict[str, float]  # CPU microseconds per message, by component
    peak_rss_mb: list[float]  # per worker process, over its whole life (fan-out included)


@dataclass
class Results:
    size: str
    figures: list[Figure] = field(default_factory=list)
    runs: list[Run] = field(default_factory=list)
    profile: list[tuple[str, float]] = field(default_factory=list)  # (frame, share of samples)

    def add(self, *figures: Figure) -> None:
        self.figures += figures
        print_figures(list(figures))


def ratio_to_ceiling(
    scenario: str, name: str, *, ratio: float, service: float, ceiling: float, target: float | None
) -> Figure:
    """The service's rate over its ceiling's: a bare client doing less of the work on the
    same machine, so the service can at best equal it. One that beats it, by more than the
    two decimals a ratio is shown with, means the ceiling did not measure the limit (it was
    slowed by something else on the machine): a measurement error, not a ratio above 1."""
    goal = f">= {target}" if target else ""
    if round(ratio, 2) > 1:
        return Figure(
            scenario,
            name,
            ratio,
            "x",
            goal,
            None,
            error=f"the service ({service:,.0f} msg/s) beat its ceiling ({ceiling:,.0f} msg/s),"
            " so the ceiling did not measure the limit: run again on a quieter machine",
        )
    return Figure(scenario, name, ratio, "x", goal, ratio >= target if target else None)


def verdict(figure: Figure) -> str:
    if figure.error:
        return f"MEASUREMENT ERROR: {figure.error}"
    return "" if figure.passed is None else ("PASS" if figure.passed else "FALLS SHORT")


def shown(figure: Figure) -> str:
    """The value as printed: none for a measurement error."""
    return "-" if figure.error else f"{figure.value:,.2f}"


def print_figures(figures: list[Figure]) -> None:
    for f in figures:
        print(f"{f.scenario:9} {f.name:55} {shown(f):>12} {f.unit:6} {f.target:8} {verdict(f)}")
