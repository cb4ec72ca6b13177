"""A quiet terminal while an engine starts and runs: its logs go to ``<stem>.log``.

vLLM, torch and transformers log through Python logging, print warnings, and (C++/OpenMP) write
straight to file descriptors 1 and 2, so redirecting ``sys.stdout`` is not enough: the descriptors
themselves are pointed at the log file (``os.dup2``) and restored afterwards. The progress bar
writes to a duplicate of the original stderr, so it stays on the terminal. On an error the
descriptors are restored first, so the traceback shows in full, followed by the log's tail.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from judgekit.cli.app import INPUT_ERRORS
from judgekit.schema import Judgment

TAIL_LINES = 20


def log_path(output: Path | str) -> Path:
    """Where a run writing ``output`` keeps engine and library logs: ``<stem>.log``."""
    output = Path(output)
    return output.with_name(f"{output.stem}.log")


@contextmanager
def quiet(log_file: Path, *, verbose: bool = False, fresh: bool = False) -> Iterator[Console]:
    """Send fds 1/2, Python logging and warnings to ``log_file``; yield a terminal console.

    With ``verbose`` nothing is redirected. Say where the log is once, before anything starts.
    ``fresh``: start the log anew (a run that replaces its output), else append to it. On an
    unexpected error (not bad input, not a chosen exit code) the log's last lines are shown.
    """
    if verbose:
        yield Console(stderr=True)
        return
    log_file.parent.mkdir(parents=True, exist_ok=True)
    terminal = Console(stderr=True)
    terminal.print(f"engine logs: {log_file}", highlight=False, soft_wrap=True)
    os.environ.setdefault("VLLM_LOGGING_LEVEL", "INFO")  # all of it, but into the file
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    tty = os.fdopen(os.dup(saved[1]), "w", buffering=1)
    # sys.stderr on fd 2 would now reach the log; a replaced stream (a test runner's) would not
    console = (
        Console(file=tty, force_terminal=terminal.is_terminal)
        if _on_fd(sys.stderr, 2)
        else terminal
    )
    handle = log_file.open("w" if fresh else "a", encoding="utf-8")
    os.dup2(handle.fileno(), 1)
    os.dup2(handle.fileno(), 2)
    logging.captureWarnings(True)
    records = logging.StreamHandler(handle)  # Python logging, whatever else handles it
    logging.getLogger().addHandler(records)
    failed = False
    try:
        yield console
    except Exception as error:
        # typer.Exit is a chosen exit code; bad input is said in one line, with no log to read
        failed = not isinstance(error, (typer.Exit, typer.TyperException, *INPUT_ERRORS))
        raise
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        for fd in saved:
            os.close(fd)
        logging.getLogger().removeHandler(records)
        handle.close()
        tty.close()
        logging.captureWarnings(False)
        if failed:
            tail = log_file.read_text(encoding="utf-8", errors="replace").splitlines()[-TAIL_LINES:]
            sys.stderr.write(f"--- last lines of {log_file} ---\n" + "\n".join(tail) + "\n")


def _on_fd(stream: object, fd: int) -> bool:
    try:
        return stream.fileno() == fd  # type: ignore[attr-defined]
    except (AttributeError, OSError, ValueError):
        return False


def _live(console: Console, *columns: ProgressColumn) -> Progress:
    """A transient rich display on the terminal console that leaves sys.stdout/stderr alone
    (rich would otherwise route them, the engine's logs, to the terminal)."""
    return Progress(
        *columns, console=console, transient=True, redirect_stdout=False, redirect_stderr=False
    )


def starting(console: Console, what: str) -> Progress:
    """A spinner while the engine starts (start/stop it); logs stay in the log file."""
    spinner = _live(console, SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn())
    spinner.add_task(what, total=None)  # a Progress without a task draws nothing
    return spinner


class JudgeProgress:
    """A progress bar over judgments: items done, judgments/s, ETA and prefix-cache hits."""

    def __init__(self, console: Console, n_items: int) -> None:
        self._bar = _live(
            console,
            TextColumn("items"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[rate]} judgments/s · cache hits {task.fields[hits]}"),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
        )
        self._task = self._bar.add_task("judging", total=n_items, rate="-", hits="-")
        self._n_items = n_items
        self._start = time.perf_counter()
        self._prompt = self._cached = 0

    def __enter__(self) -> JudgeProgress:
        self._bar.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._bar.stop()

    def batch(self, judgments: Sequence[Judgment]) -> None:
        """Count a finished batch's prompt tokens and how many came from the prefix cache."""
        self._prompt += sum(j.num_prompt_tokens for j in judgments)
        self._cached += sum(j.num_cached_tokens for j in judgments)

    def update(self, done: int, total: int) -> None:
        """``done`` of ``total`` judgments; items = judgments per item times done."""
        rate = done / max(time.perf_counter() - self._start, 1e-9)
        hits = f"{self._cached / self._prompt:.0%}" if self._prompt else "-"
        items = round(done * self._n_items / total) if total else 0
        self._bar.update(self._task, completed=items, rate=f"{rate:.1f}", hits=hits)
