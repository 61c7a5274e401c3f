"""Logs on stderr and progress for long steps: live on a terminal, silent in cron.

`setup_logging` is called once per command by `costaudit.cli.main` from its ``--quiet`` and
``--verbose`` options. Every module logs through ``logging.getLogger(__name__)`` (a child of the
``costaudit`` logger). On a terminal, records go through rich so they print above a live progress
display; otherwise each is one plain line with a UTC time stamp, which reads well in cron mail
and journald.

Levels: ``--quiet`` warnings and errors only, and no progress; default: info; ``--verbose``: debug.
Results (tables, summaries) go to stdout, never through logging.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.logging import RichHandler
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
)

from costaudit.textout import SafeConsole

LOGGER = "costaudit"
_OURS = "_costaudit_handler"

log = logging.getLogger(__name__)


class _StderrHandler(logging.StreamHandler):
    """A stream handler bound to whatever sys.stderr is when a record is written (click's test
    runner swaps it per invocation)."""

    def __init__(self) -> None:
        super().__init__()

    @property  # type: ignore[override]
    def stream(self):  # noqa: D401 -- property
        return sys.stderr

    @stream.setter
    def stream(self, value) -> None:  # StreamHandler.__init__ assigns it; always follow sys.stderr
        pass


class _Formatter(logging.Formatter):
    converter = time.gmtime

    def __init__(self) -> None:
        super().__init__("%(asctime)sZ costaudit %(levelname)s %(message)s", datefmt="%Y-%m-%dT%H:%M:%S")


def stderr_console() -> Console:
    """A rich console on the current stderr (resolved when it writes)."""
    return SafeConsole(stderr=True, highlight=False)


def stderr_is_terminal() -> bool:
    return stderr_console().is_terminal


def setup_logging(*, quiet: bool = False, verbose: bool = False) -> None:
    """Route the ``costaudit`` loggers to stderr at the level the options ask for (idempotent)."""
    logger = logging.getLogger(LOGGER)
    for handler in list(logger.handlers):
        if getattr(handler, _OURS, False):
            logger.removeHandler(handler)
    handler: logging.Handler
    if stderr_is_terminal():
        handler = RichHandler(console=stderr_console(), show_path=False, markup=False, rich_tracebacks=False,
                              log_time_format="%H:%M:%S")
    else:
        handler = _StderrHandler()
        handler.setFormatter(_Formatter())
    setattr(handler, _OURS, True)
    logger.addHandler(handler)
    logger.setLevel(logging.WARNING if quiet else logging.DEBUG if verbose else logging.INFO)


class Steps:
    """Named steps of a long command: a spinner and elapsed time on a terminal, an info log line
    as each step ends everywhere (so cron logs show where the time went)."""

    def __init__(self, *, enabled: bool) -> None:
        self.enabled = enabled
        self._progress: Progress | None = None

    def __enter__(self) -> Steps:
        if self.enabled:
            self._progress = Progress(
                SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                TimeElapsedColumn(), console=stderr_console(), transient=True,
            )
            self._progress.start()
        return self

    def __exit__(self, *exc) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None

    @contextmanager
    def step(self, description: str, total: int | None = None) -> Iterator[_Advance]:
        """One step; `total` parts make a bar (advance it per part), else a spinner."""
        clock = time.perf_counter()
        task = self._progress.add_task(description, total=total) if self._progress is not None else None
        try:
            yield _Advance(self._progress, task)
        finally:
            if self._progress is not None and task is not None:
                self._progress.remove_task(task)
        log.info("%s: done in %.1f s", description, time.perf_counter() - clock)


class _Advance:
    def __init__(self, progress: Progress | None, task) -> None:
        self._progress, self._task = progress, task

    def __call__(self, label: str | None = None, done: int = 1) -> None:
        """Show `label` as the current part and count `done` more parts as finished."""
        if self._progress is not None:
            self._progress.update(self._task, advance=done, **({"description": label} if label else {}))
