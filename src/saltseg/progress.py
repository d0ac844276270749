"""Progress reporting: a Rich bar on a terminal, plain lines in CI and in logs."""

from __future__ import annotations

import contextlib
import os
import sys
import time
from collections.abc import Iterator


def interactive() -> bool:
    return sys.stderr.isatty() and not os.environ.get("CI")


def plain_line(description: str, fields: dict[str, float], seconds: float) -> str:
    """The log line of a finished task: "fold 0 bce epoch 1/8: loss 0.6931, val_iou 0.4120, 3.2 s"."""
    return f"{description}: {_info(fields)}{', ' if fields else ''}{seconds:.1f} s"


def _info(fields: dict[str, float]) -> str:
    # Counts stay counts; metrics get four decimals, enough to tell epochs apart.
    return ", ".join(f"{k} {v}" if isinstance(v, int) else f"{k} {v:.4f}" for k, v in fields.items())


class _Plain:
    """One line when the task ends: logs stay readable and diffable."""

    def __init__(self, description: str) -> None:
        self.description = description
        self.fields: dict[str, float] = {}
        self.started = time.monotonic()

    def advance(self, n: int = 1, **fields: float) -> None:
        self.fields.update(fields)

    def finish(self, **fields: float) -> None:
        self.advance(0, **fields)
        line = plain_line(self.description, self.fields, time.monotonic() - self.started)
        print(line, file=sys.stderr, flush=True)


class _Bar(_Plain):
    def __init__(self, progress, task) -> None:  # noqa: ANN001 - rich types
        super().__init__("")
        self.progress, self.task = progress, task

    def advance(self, n: int = 1, **fields: float) -> None:
        super().advance(n, **fields)
        self.progress.update(self.task, advance=n, info=_info(self.fields))

    def finish(self, **fields: float) -> None:
        self.advance(0, **fields)


class _Silent(_Plain):
    def finish(self, **fields: float) -> None:
        pass


@contextlib.contextmanager
def task(description: str, total: int, show: bool = True) -> Iterator[_Plain]:
    """Report progress of `total` steps; `advance(n, loss=...)` updates, `finish(...)` sums up.

    `show=False` reports nothing: one line per epoch from rank 0, not one per process.
    """
    if not show:
        yield _Silent(description)
        return
    if not interactive():
        yield _Plain(description)
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        TextColumn("{task.fields[info]}"),
    )
    with Progress(*columns, transient=False) as progress:
        yield _Bar(progress, progress.add_task(description, total=total, info=""))
