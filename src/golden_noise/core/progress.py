"""Progress that reads well in a terminal and in a log file.

On a terminal: rich's live progress bars. Anywhere else (stderr piped to a file, CI, a
batch job): no bar redraws, which a log would keep as one ever-growing line of carriage
returns, but one plain line every `interval` seconds and one when a task finishes:

    generating: 128/1024 (12%), 0:00:41 elapsed, ~0:04:47 left, 3.1 it/s

`make_progress(...)` returns either kind behind the same small API (`add_task`, `update`,
`advance`, used as a context manager) and `track(...)` wraps an iterable in it.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from typing import IO, Any, TypeVar

T = TypeVar("T")
LOG_INTERVAL = 30.0  # seconds between log lines: a few hundred lines for a long run


def is_terminal(stream: IO[str] | None = None) -> bool:
    """Whether `stream` (default stderr, where progress goes) is an interactive terminal."""
    stream = sys.stderr if stream is None else stream
    return bool(getattr(stream, "isatty", lambda: False)())


def _clock(seconds: float) -> str:
    return str(timedelta(seconds=round(seconds)))


@dataclass
class _Task:
    description: str
    total: float | None
    fields: dict[str, Any]
    completed: float = 0.0
    started: float = field(default_factory=time.monotonic)
    reported: float = field(default_factory=time.monotonic)
    done: bool = False


class LogProgress:
    """Periodic one-line progress reports for logs, with rich.progress.Progress's core API.

    `columns(task_fields) -> str` adds the caller's own fields (e.g. "kept 45%") to a line.
    """

    def __init__(
        self,
        *,
        interval: float = LOG_INTERVAL,
        stream: IO[str] | None = None,
        extra: Any = None,
        disable: bool = False,
        clock: Any = time.monotonic,
    ) -> None:
        self.interval = interval
        self.stream = stream
        self.extra = extra
        self.disable = disable
        self.clock = clock
        self.tasks: list[_Task] = []

    def __enter__(self) -> LogProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        if exc[0] is None:
            for task in self.tasks:
                if not task.done:
                    self._report(task)

    def add_task(self, description: str, total: float | None = None, **fields: Any) -> int:
        now = self.clock()
        self.tasks.append(_Task(description, total, dict(fields), started=now, reported=now))
        return len(self.tasks) - 1

    def update(
        self,
        task_id: int,
        *,
        advance: float = 0.0,
        completed: float | None = None,
        total: float | None = None,
        **fields: Any,
    ) -> None:
        task = self.tasks[task_id]
        task.completed = completed if completed is not None else task.completed + advance
        task.total = total if total is not None else task.total
        task.fields.update(fields)
        finished = task.total is not None and task.completed >= task.total
        if task.done:
            return
        if finished or self.clock() - task.reported >= self.interval:
            self._report(task)
            task.done = finished

    def advance(self, task_id: int, advance: float = 1.0) -> None:
        self.update(task_id, advance=advance)

    def line(self, task: _Task) -> str:
        """One report: done/total (share), elapsed, estimated time left, rate, extras."""
        elapsed = max(self.clock() - task.started, 1e-9)
        parts = [f"{task.completed:g}" + (f"/{task.total:g}" if task.total else "")]
        if task.total:
            parts[0] += f" ({task.completed / task.total:.0%})"
        parts.append(f"{_clock(elapsed)} elapsed")
        rate = task.completed / elapsed
        if task.total and 0 < task.completed < task.total:
            parts.append(f"~{_clock((task.total - task.completed) / rate)} left")
        parts.append(f"{rate:.3g} it/s")
        if self.extra is not None:
            parts.append(self.extra(task.fields))
        return f"{task.description}: " + ", ".join(p for p in parts if p)

    def _report(self, task: _Task) -> None:
        task.reported = self.clock()
        if not self.disable:
            print(self.line(task), file=self.stream or sys.stderr, flush=True)


def make_progress(*columns: Any, disable: bool = False, extra: Any = None) -> Any:
    """rich's Progress with `columns` on a terminal; LogProgress (lines via `extra`) elsewhere."""
    if is_terminal():
        from rich.progress import Progress

        return Progress(*columns, disable=disable)
    return LogProgress(disable=disable, extra=extra)


def track(
    sequence: Iterable[T],
    description: str = "working",
    total: float | None = None,
    disable: bool = False,
) -> Iterator[T]:
    """Iterate over `sequence` with a bar on a terminal, periodic lines in a log."""
    if is_terminal():
        from rich.progress import track as rich_track

        yield from rich_track(sequence, description, total=total, disable=disable)
        return
    if total is None and hasattr(sequence, "__len__"):
        total = len(sequence)  # type: ignore[arg-type]
    with LogProgress(disable=disable) as progress:
        task = progress.add_task(description, total=total)
        for item in sequence:
            yield item
            progress.advance(task)


def quiet_libraries() -> None:
    """Keep third-party lines out of the console (what `golden-noise --verbose` shows): the
    warnings of accelerate (e.g. "Deleting 1 checkpoints to make room for new checkpoint."
    every epoch), timm and the hub (its "Retrying in 8s" lines), diffusers' and
    transformers' notices and loading bars, the hub's download bars. Environment switches
    the user set win; child processes inherit them."""
    import logging
    import os

    for name, value in QUIET_ENVIRONMENT.items():
        os.environ.setdefault(name, value)
    for name in ("accelerate", "timm", "huggingface_hub"):  # the hub's "Retrying in 8s" too
        logging.getLogger(name).setLevel(logging.ERROR)
    from diffusers.utils import logging as diffusers_logging
    from transformers.utils import logging as transformers_logging

    for library in (diffusers_logging, transformers_logging):
        library.set_verbosity_error()
        library.disable_progress_bar()


QUIET_ENVIRONMENT = {
    "ACCELERATE_LOG_LEVEL": "error",
    "DIFFUSERS_VERBOSITY": "error",
    "TRANSFORMERS_VERBOSITY": "error",
    "HF_HUB_DISABLE_PROGRESS_BARS": "1",
}
