"""Progress reporting: a Rich bar on a terminal, plain lines in CI and in logs."""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator


def interactive() -> bool:
    return sys.stderr.isatty() and not os.environ.get("CI")


class _Plain:
    """One line when the task ends: logs stay readable and diffable."""

    def __init__(self, description: str) -> None:
        self.description = description
        self.fields: dict[str, str] = {}

    def advance(self, n: int = 1, **fields: float) -> None:
        self.fields.update({k: f"{v:.4f}" for k, v in fields.items()})

    def finish(self, **fields: float) -> None:
        self.advance(0, **fields)
        info = " ".join(f"{k}={v}" for k, v in self.fields.items())
        print(f"{self.description} {info}".rstrip(), file=sys.stderr, flush=True)


class _Bar(_Plain):
    def __init__(self, progress, task) -> None:  # noqa: ANN001 - rich types
        super().__init__("")
        self.progress, self.task = progress, task

    def advance(self, n: int = 1, **fields: float) -> None:
        super().advance(n, **fields)
        info = " ".join(f"{k}={v}" for k, v in self.fields.items())
        self.progress.update(self.task, advance=n, info=info)

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
