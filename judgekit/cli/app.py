"""The typer app, the exit codes every command shares, and what its commands have in common.

Exit codes: 0 done (every gate passed); 1 a gate failed (or drift alarm, canary fooled, a worse
candidate); 2 bad input or options (file, row and field named), nothing judged; 3 not calibrated
(``--require-calibrated``); 4 an internal error (a bug or an engine crash: the traceback and the
log's last lines are shown); 5 inconclusive (``certify-change`` could not decide: more items).
Commands raise judgekit's own errors; ``JudgekitTyper`` maps them to these codes in one place,
so a command never turns a crash into a failed gate.
"""

from __future__ import annotations

import functools
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import ValidationError
from rich.console import Console

from judgekit.audit.canaries import CanaryError
from judgekit.backends import LabelTokenError
from judgekit.backends.base import CapabilityError
from judgekit.backends.preflight import PreflightError
from judgekit.backends.replay import ReplayError
from judgekit.cards import CardError, NotCalibratedError
from judgekit.ci.gates import GateFailure
from judgekit.config import ConfigError
from judgekit.data.records import InputError
from judgekit.data.set_manifest import DatasetError
from judgekit.rubrics import RubricError

EXIT_GATE, EXIT_INPUT, EXIT_NOT_CALIBRATED, EXIT_INTERNAL, EXIT_INCONCLUSIVE = 1, 2, 3, 4, 5
#: Errors that mean the user's input or options are wrong: exit 2, no traceback.
INPUT_ERRORS: tuple[type[Exception], ...] = (
    InputError,
    RubricError,
    CanaryError,
    DatasetError,
    CardError,
    ConfigError,
    ReplayError,
    LabelTokenError,
    PreflightError,
    CapabilityError,
    ValidationError,
)
err = Console(stderr=True)


def _exits(command: Callable[..., Any]) -> Callable[..., Any]:
    """Run a command, mapping judgekit's errors to the shared exit codes."""

    @functools.wraps(command)
    def run(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except (typer.Exit, typer.Abort, typer.TyperException):
            raise
        except NotCalibratedError as error:
            typer.echo(f"error: {error}", err=True)
            raise typer.Exit(EXIT_NOT_CALIBRATED) from error
        except GateFailure as error:
            typer.echo(str(error))
            raise typer.Exit(EXIT_GATE) from error
        except INPUT_ERRORS as error:
            typer.echo(f"error: {error}", err=True)
            raise typer.Exit(EXIT_INPUT) from error
        except Exception as error:
            traceback.print_exc()
            typer.echo(
                f"judgekit: internal error ({type(error).__name__}); this is not a failed gate "
                f"(exit {EXIT_INTERNAL})",
                err=True,
            )
            raise typer.Exit(EXIT_INTERNAL) from error

    return run


class JudgekitTyper(typer.Typer):
    """A Typer whose commands share judgekit's exit codes (see the module docstring)."""

    def command(self, *args: Any, **kwargs: Any) -> Callable[[Callable[..., Any]], Any]:
        register = super().command(*args, **kwargs)

        def decorator(command: Callable[..., Any]) -> Callable[..., Any]:
            register(_exits(command))
            return command

        return decorator


app = JudgekitTyper(no_args_is_help=True, help="LLM-as-a-judge with versioned rubrics.")
rubrics_app = JudgekitTyper(no_args_is_help=True, help="List, show, validate and create rubrics.")
app.add_typer(rubrics_app, name="rubrics")

RubricsDir = Annotated[
    list[Path] | None, typer.Option("--rubrics-dir", help="Extra rubric folder(s), searched first.")
]
Columns = Annotated[
    list[str] | None, typer.Option("--column", help="Map FIELD=COLUMN, e.g. question=prompt.")
]


def pairs_option(pairs: list[str] | None, option: str = "--column") -> dict[str, str]:
    """``KEY=VALUE`` options as a dict (BadParameter, exit 2, on a malformed one)."""
    out = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep:
            raise typer.BadParameter(f"expected KEY=VALUE, got {pair!r}", param_hint=option)
        out[key] = value
    return out


def main() -> None:
    app()
