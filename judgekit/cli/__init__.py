"""The ``judgekit`` command line: typer over the Python API, no logic of its own."""

from judgekit.cli import (  # noqa: F401 (registers the commands)
    annotators,
    calibrate,
    canaries,
    cascade,
    certify,
    diff,
    drift,
    judge,
    label_queue,
    rank,
    render,
    rubrics,
    view,
)
from judgekit.cli.app import app, main

__all__ = ["app", "main"]
