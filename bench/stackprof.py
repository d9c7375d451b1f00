"""A sampling profiler from the standard library, for `python -m bench --profile`.

`python -m bench.stackprof OUT MODULE [ARGS...]` runs MODULE as `__main__` while a
thread samples the stacks of every other thread (`sys._current_frames`) every few
milliseconds. cProfile would see only the main thread, and orderhooks does real
work on others (the SQLite writer). The report, rewritten every few seconds and at
exit, lists per thread the busy share and the functions where samples land (self)
and pass through (inclusive); OUT with `.folded` is the collapsed stacks, for a
flame graph. Samples whose innermost frame is a known wait (the event loop's
`select`, a `Condition.wait`) are counted as idle.
"""

from __future__ import annotations

import atexit
import os
import runpy
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from types import FrameType

SAMPLE_INTERVAL_SECONDS = 0.005
REPORT_EVERY_SECONDS = 2.0
MAX_STACK_DEPTH = 80
TOP_FUNCTIONS = 40
IDLE_LEAVES = frozenset(
    {
        ("selectors.py", "select"),
        ("threading.py", "wait"),
        ("queue.py", "get"),
        ("thread.py", "_worker"),  # a ThreadPoolExecutor thread waiting for work
        # On uvloop the loop itself is C code: an idle loop's innermost Python frame is
        # the one that called run_until_complete.
        ("runners.py", "run"),
        ("__init__.py", "run"),
    }
)

Frame = tuple[str, str]  # (short file name, function)


def _short(path: str) -> str:
    marker = "site-packages/"
    if marker in path:
        return path.split(marker, 1)[1]
    if "/src/" in path:
        return path.split("/src/", 1)[1]
    return path.rsplit("/", 1)[-1]


def _stack(frame: FrameType | None) -> tuple[Frame, ...]:
    frames: list[Frame] = []
    while frame is not None and len(frames) < MAX_STACK_DEPTH:
        code = frame.f_code
        frames.append((_short(code.co_filename), f"{code.co_name}:{code.co_firstlineno}"))
        frame = frame.f_back
    frames.reverse()
    return tuple(frames)


def _is_idle(stack: tuple[Frame, ...]) -> bool:
    if not stack:
        return True
    file, function = stack[-1]
    return (file.rsplit("/", 1)[-1], function.split(":", 1)[0]) in IDLE_LEAVES


class StackSampler:
    """Counts the stacks of every thread but its own."""

    def __init__(self, out: Path) -> None:
        self.out = out
        self.stacks: Counter[tuple[str, tuple[Frame, ...]]] = Counter()
        self.samples = 0
        self.thread_cpu: dict[str, float] = {}
        self.started = time.time()
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name="stackprof", daemon=True)

    def start(self) -> None:
        """Start sampling."""
        self._thread.start()

    def _run(self) -> None:
        last_report = time.monotonic()
        while not self._stop.wait(SAMPLE_INTERVAL_SECONDS):
            self.sample()
            if time.monotonic() - last_report > REPORT_EVERY_SECONDS:
                self.write()
                last_report = time.monotonic()

    def sample(self) -> None:
        """Record the current stack of every other thread."""
        names = {t.ident: t.name for t in threading.enumerate()}
        own = threading.get_ident()
        with self._lock:
            self.samples += 1
            for ident, frame in sys._current_frames().items():
                if ident != own:
                    self.stacks[(names.get(ident, str(ident)), _stack(frame))] += 1

    def write(self) -> None:
        """Rewrite the report and the collapsed stacks."""
        with self._lock:
            stacks = list(self.stacks.items())
            samples = self.samples
        # Threads that ended (a store closed at shutdown) keep their last reading.
        self.thread_cpu.update(thread_cpu_seconds())
        report = render_report(stacks, samples, time.time() - self.started)
        self.out.write_text(report + render_thread_cpu(self.thread_cpu))
        folded = (
            f"{thread};" + ";".join(f"{f}:{fn}" for f, fn in stack) + f" {count}\n"
            for (thread, stack), count in stacks
            if not _is_idle(stack)
        )
        self.out.with_suffix(".folded").write_text("".join(folded))

    def stop(self) -> None:
        """Stop sampling and write the final report."""
        self._stop.set()
        self.write()


def render_report(
    stacks: list[tuple[tuple[str, tuple[Frame, ...]], int]], samples: int, seconds: float
) -> str:
    """The text report: busy share per thread, then top functions by self and inclusive."""
    busy_by_thread: Counter[str] = Counter()
    total_by_thread: Counter[str] = Counter()
    self_counts: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    busy_total = 0
    for (thread, stack), count in stacks:
        total_by_thread[thread] += count
        if _is_idle(stack):
            continue
        busy_by_thread[thread] += count
        busy_total += count
        self_counts[":".join(stack[-1])] += count
        for name in {":".join(frame) for frame in stack}:
            inclusive[name] += count
    lines = [
        f"{samples} samples over {seconds:.1f} s, every {SAMPLE_INTERVAL_SECONDS * 1000:.0f} ms"
    ]
    lines.append("\nthreads (busy samples / all samples):")
    for thread, total in total_by_thread.most_common():
        lines.append(f"  {thread:<40} {busy_by_thread[thread]:>8} / {total}")
    for title, counts in (("self", self_counts), ("inclusive", inclusive)):
        lines.append(f"\ntop functions by {title} busy samples (% of all busy samples):")
        for name, count in counts.most_common(TOP_FUNCTIONS):
            share = 100.0 * count / max(busy_total, 1)
            lines.append(f"  {share:6.2f}%  {count:>8}  {name}")
    return "\n".join(lines) + "\n"


def thread_cpu_seconds() -> dict[str, float]:
    """CPU seconds (user + system) of each live thread of this process, from /proc."""
    ticks = os.sysconf("SC_CLK_TCK")
    out: dict[str, float] = {}
    for thread in threading.enumerate():
        stat = Path(f"/proc/self/task/{thread.native_id}/stat")
        try:
            # Fields after the parenthesised name: utime and stime are the 12th and 13th.
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        out[thread.name] = (int(fields[11]) + int(fields[12])) / ticks
    return out


def render_thread_cpu(seconds_by_thread: dict[str, float]) -> str:
    """Exact CPU seconds per thread: where samples can not tell waiting from working."""
    lines = ["\nCPU seconds per thread (from /proc; a thread's samples include its waits):"]
    for name, seconds in sorted(seconds_by_thread.items(), key=lambda kv: -kv[1]):
        lines.append(f"  {name:<40} {seconds:10.2f}")
    return "\n".join(lines) + "\n"


def main() -> None:
    """Run the named module under the sampler."""
    if len(sys.argv) < 3:
        raise SystemExit("usage: python -m bench.stackprof OUT MODULE [ARGS...]")
    out, module = Path(sys.argv[1]), sys.argv[2]
    sys.argv = [module, *sys.argv[3:]]
    sampler = StackSampler(out)
    atexit.register(sampler.stop)
    sampler.start()
    runpy.run_module(module, run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main()
