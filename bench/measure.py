"""What the benchmarks read from the operating system: CPU time by component and peak memory
of processes, from /proc (Linux)."""

import contextlib
import os
from collections import Counter
from pathlib import Path

TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(
    components: dict[str, list[int]], since: dict[str, float] | None = None
) -> dict[str, float]:
    """User + system CPU seconds used so far by each component's processes, or since an
    earlier reading. PostgreSQL is a tree: the postmaster counts with all its backends, the
    ended ones included."""
    used = {
        name: sum(_cpu(pid, tree=name == "postgres") for pid in pids)
        for name, pids in components.items()
    }
    return {name: seconds - (since or {}).get(name, 0.0) for name, seconds in used.items()}


def cpu_us_per_item(
    components: dict[str, list[int]], *, since: dict[str, float], items: int
) -> dict[str, float]:
    """CPU microseconds per item by component, since an earlier `cpu_seconds` reading."""
    used = cpu_seconds(components, since=since)
    return {name: seconds / items * 1e6 for name, seconds in used.items()}


def _cpu(pid: int, *, tree: bool) -> float:
    """A process's CPU seconds; in a tree, with those of its reaped and live children."""
    try:
        fields = _stat(pid)
    except OSError:
        return 0.0
    total = sum(int(f) for f in fields[11 : 15 if tree else 13]) / TICKS  # u, s, cu, cs
    for child in _children(pid) if tree else []:
        with contextlib.suppress(OSError):
            total += sum(int(f) for f in _stat(child)[11:13]) / TICKS
    return total


def _stat(pid: int) -> list[str]:
    # The fields after the command name (which may contain spaces), from `state` on.
    return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()


def children(pid: int) -> list[int]:
    """The live children of a process; the process itself if it has none."""
    return _children(pid) or [pid]


def _children(pid: int) -> list[int]:
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(child) for child in path.read_text().split()] if path.exists() else []


def parent(pid: int) -> int:
    return int(_stat(pid)[1])


def peak_rss_mb(pid: int) -> float:
    """The largest resident set size the process has had (VmHWM), in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmHWM for process {pid}")


# Frames that only say "a thread ran an event loop": not where the time goes.
_PLUMBING = ("threading.py", "concurrent/futures", "asyncio/", "celery/", "click/", "kombu/")


def profile_summary(collapsed: str, *, top: int = 25) -> list[tuple[str, float]]:
    """py-spy's collapsed stacks (`frame;frame;... count` lines) to the functions that hold
    the most samples, inclusive of what they call, as shares of all samples."""
    total = 0
    inclusive: Counter[str] = Counter()
    for line in collapsed.splitlines():
        stack, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue
        total += int(count)
        # "function (path/to/file.py:line)" -> "function (file.py)", once per stack.
        frames = {_function(frame) for frame in stack.split(";")}
        for frame in frames - {""}:
            inclusive[frame] += int(count)
    return (
        [(frame, samples / total) for frame, samples in inclusive.most_common(top)] if total else []
    )


def _function(frame: str) -> str:
    name, _, where = frame.partition(" (")
    path = where.rsplit(":", 1)[0]
    if not where or any(part in path for part in _PLUMBING):
        return ""
    short = (
        "/".join(path.split("/")[-2:]) if "site-packages" in path else path.split("notifier/")[-1]
    )
    return f"{name} ({short})"
