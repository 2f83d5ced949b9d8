"""Prometheus text for ``/api/info/metrics`` (LRR-NOTES §9.10): in-process request counters,
process statistics, and the exposition format.

The original buffers request counters per worker and flushes them into Redis DB 4, so that one
scrape sees every prefork worker. An lrrd process is one reactor, so its counters live in this
process's memory and cost a dict update per request; a scrape reports the process it reaches.
Several lrrd nodes are several scrape targets (Prometheus labels them by instance), which is
how Prometheus expects a fleet to be scraped anyway.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from typing import Iterable, Mapping, Sequence

#: The Prometheus text format version the original announces.
CONTENT_TYPE = b"text/plain; version=0.0.4; charset=utf-8"
#: Distinct (endpoint, method) series kept; later ones are folded into one ``other`` series so a
#: client probing random paths cannot grow memory or the scrape without bound.
MAX_SERIES = 1000
OTHER_ENDPOINT = "other"


@dataclass
class Series:
    """One (endpoint, method)'s running sums."""

    count: int = 0
    duration: float = 0.0
    request_bytes: int = 0
    response_bytes: int = 0


@dataclass
class RequestCounters:
    """Per-endpoint request counters of this process; touched only on the reactor thread."""

    max_series: int = MAX_SERIES
    series: dict[tuple[str, str], Series] = field(default_factory=dict)

    def add(self, endpoint: str, method: str, duration: float, request_bytes: int,
            response_bytes: int) -> None:
        key = (endpoint, method)
        entry = self.series.get(key)
        if entry is None:
            if len(self.series) >= self.max_series:
                key = (OTHER_ENDPOINT, method)
                entry = self.series.get(key)
            if entry is None:
                entry = self.series[key] = Series()
        entry.count += 1
        entry.duration += duration
        entry.request_bytes += request_bytes
        entry.response_bytes += response_bytes


def escape_label(value: str) -> str:
    """A label value as the text format wants it: backslash, quote and newline escaped."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def labels(pairs: Iterable[tuple[str, str]]) -> str:
    return ",".join(f'{name}="{escape_label(value)}"' for name, value in pairs)


def number(value: float | int | bool) -> str:
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, int):
        return str(value)
    if value != value:  # NaN
        return "NaN"
    return repr(float(value))


class Exposition:
    """Lines of the text format, families in the order they are added; each family's
    ``# TYPE``, ``# UNIT`` (OpenMetrics; a comment to the 0.0.4 parser) and ``# HELP`` first,
    as the original writes them."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def family(self, name: str, kind: str, help_text: str,
               samples: Sequence[tuple[str, float | int | bool]], unit: str | None = None,
               always: bool = True) -> None:
        """``samples`` are (label string, value); ``always=False`` skips an empty family."""
        if not samples and not always:
            return
        self.lines.append(f"# TYPE {name} {kind}")
        if unit:
            self.lines.append(f"# UNIT {name} {unit}")
        self.lines.append(f"# HELP {name} {help_text}")
        for label_text, value in samples:
            suffix = "{" + label_text + "}" if label_text else ""
            self.lines.append(f"{name}{suffix} {number(value)}")

    def gauge(self, name: str, help_text: str, value: float | int | bool,
              unit: str | None = None) -> None:
        self.family(name, "gauge", help_text, [("", value)], unit)

    def render(self) -> bytes:
        return ("\n".join(self.lines + ["# EOF"]) + "\n").encode("utf-8")


def request_families(out: Exposition, counters: RequestCounters) -> None:
    """The four request counters and ``lanraragi_active_workers`` (this process: 1)."""
    ordered = sorted(counters.series.items())
    label_of = {key: labels((("endpoint", key[0]), ("method", key[1]))) for key, _ in ordered}
    out.family("lanraragi_api_requests_total", "counter", "Total number of API requests",
               [(label_of[k], s.count) for k, s in ordered])
    out.family("lanraragi_api_duration_seconds_total", "counter",
               "Total time spent processing API requests",
               [(label_of[k], s.duration) for k, s in ordered], unit="seconds")
    out.family("lanraragi_http_request_size_bytes_total", "counter",
               "Total bytes received in HTTP requests",
               [(label_of[k], s.request_bytes) for k, s in ordered], unit="bytes")
    out.family("lanraragi_http_response_size_bytes_total", "counter",
               "Total bytes sent in HTTP responses",
               [(label_of[k], s.response_bytes) for k, s in ordered], unit="bytes")
    out.gauge("lanraragi_active_workers", "Number of active LANraragi workers", 1)


# ---- process statistics -----------------------------------------------------------------------

_PROCESS_COUNTERS = (
    ("cpu_user_seconds_total", "Total user CPU time spent by process in seconds", "seconds"),
    ("cpu_system_seconds_total", "Total system CPU time spent by process in seconds", "seconds"),
    ("cpu_seconds_total", "Total user and system CPU time spent by process in seconds", "seconds"),
    ("read_bytes_total", "Total bytes read from storage by process", "bytes"),
    ("write_bytes_total", "Total bytes written to storage by process", "bytes"),
)
_PROCESS_GAUGES = (
    ("virtual_memory_bytes", "Virtual memory size of process in bytes", "bytes"),
    ("resident_memory_bytes", "Resident memory size of process in bytes", "bytes"),
    ("open_fds", "Number of open file handles in process", None),
    ("max_fds", "Maximum number of file handles allowed for process", None),
    ("start_time_seconds", "Unix epoch time when process started", "seconds"),
)


def _read(path: str) -> str | None:
    try:
        with open(path, encoding="ascii", errors="replace") as handle:
            return handle.read()
    except OSError:
        return None


def process_stats() -> dict[str, float | int]:
    """This process's CPU, memory, descriptors, start time and I/O (blocking: procfs reads,
    so it runs in the io pool). Whatever the platform cannot tell is left out."""
    stats: dict[str, float | int] = {}
    times = os.times()
    stats["cpu_user_seconds_total"] = times.user
    stats["cpu_system_seconds_total"] = times.system
    stats["cpu_seconds_total"] = times.user + times.system
    try:
        import resource

        stats["max_fds"] = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    except (ImportError, OSError, ValueError):
        pass
    if not sys.platform.startswith("linux"):
        return stats
    page = os.sysconf("SC_PAGE_SIZE")
    statm = _read("/proc/self/statm")
    if statm:
        fields = statm.split()
        stats["virtual_memory_bytes"] = int(fields[0]) * page
        stats["resident_memory_bytes"] = int(fields[1]) * page
    try:
        stats["open_fds"] = len(os.listdir("/proc/self/fd"))
    except OSError:
        pass
    stat = _read("/proc/self/stat")
    boot = _read("/proc/stat")
    if stat and boot:
        # The command name may hold spaces and parentheses: fields start after the last ')'.
        after = stat[stat.rfind(")") + 2:].split()
        btime = next((int(line.split()[1]) for line in boot.splitlines()
                      if line.startswith("btime ")), None)
        if btime is not None and len(after) > 19:
            stats["start_time_seconds"] = btime + int(after[19]) / os.sysconf("SC_CLK_TCK")
    io = _read("/proc/self/io")
    if io:
        values = dict(line.split(": ", 1) for line in io.splitlines() if ": " in line)
        for source, target in (("read_bytes", "read_bytes_total"),
                               ("write_bytes", "write_bytes_total")):
            if source in values:
                stats[target] = int(values[source])
    return stats


def process_families(out: Exposition, stats: Mapping[str, float | int], pid: int,
                     process_type: str = "http") -> None:
    """``lanraragi_process_*{worker_pid,process_type}``: counters, then gauges."""
    label_text = labels((("worker_pid", str(pid)), ("process_type", process_type)))
    for group, kind in ((_PROCESS_COUNTERS, "counter"), (_PROCESS_GAUGES, "gauge")):
        for name, help_text, unit in group:
            if name in stats:
                out.family(f"lanraragi_process_{name}", kind, help_text,
                           [(label_text, stats[name])], unit)
