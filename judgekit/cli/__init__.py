"""The ``judgekit`` command line: typer over the Python API, no logic of its own."""

from judgekit.cli import calibrate, cascade, diff, judge, rubrics  # noqa: F401 (registers the commands)
from judgekit.cli.app import app, main

__all__ = ["app", "main"]
