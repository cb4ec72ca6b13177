"""The quiet CLI: what engines write to fds 1/2, logging and warnings lands in the log file."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

from judgekit.cli.quiet import log_path, quiet


def test_fd_level_output_goes_to_the_log(tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    log = log_path(tmp_path / "run.jsonl")
    assert log == tmp_path / "run.log"
    with quiet(log):
        os.write(1, b"C++ says hi on fd 1\n")
        os.write(2, b"OpenMP warns on fd 2\n")
        subprocess.run([sys.executable, "-c", "print('child process')"], check=True)
        # a logger of our own: vLLM's, once configured under pytest's capture, writes to that
        logging.getLogger("judgekit.test.engine").warning("engine warning")
        warnings.warn("library warning", UserWarning, stacklevel=1)
    os.write(1, b"after\n")
    out, err = capfd.readouterr()
    assert out == "after\n" and err == f"engine logs: {log}\n"
    text = log.read_text()
    for line in (
        "C++ says hi",
        "OpenMP warns",
        "child process",
        "engine warning",
        "library warning",
    ):
        assert line in text


def test_error_restores_the_terminal_and_shows_the_log_tail(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    log = tmp_path / "run.log"
    with pytest.raises(RuntimeError, match="engine died"), quiet(log):
        os.write(2, b"CUDA out of memory (the reason)\n")
        raise RuntimeError("engine died")
    _, err = capfd.readouterr()
    assert f"--- last lines of {log} ---" in err and "CUDA out of memory (the reason)" in err


def test_verbose_redirects_nothing(tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    with quiet(tmp_path / "run.log", verbose=True):
        os.write(1, b"shown\n")
    assert capfd.readouterr().out == "shown\n" and not (tmp_path / "run.log").exists()
