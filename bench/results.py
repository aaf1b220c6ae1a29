"""What a benchmark run measures: the figures it prints and the runs the report is drawn from."""

from dataclasses import dataclass, field


@dataclass
class Figure:
    scenario: str
    name: str
    value: float
    unit: str
    target: str
    passed: bool | None  # None: informational


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


def verdict(figure: Figure) -> str:
    return "" if figure.passed is None else ("PASS" if figure.passed else "FALLS SHORT")


def print_figures(figures: list[Figure]) -> None:
    for f in figures:
        print(f"{f.scenario:9} {f.name:55} {f.value:12.2f} {f.unit:6} {f.target:8} {verdict(f)}")
