"""The typer application every `fv` sub-command registers on (fv.cli.main imports the command modules)."""

from __future__ import annotations

import typer

app = typer.Typer(help="fv: emotion-driven facial video generation (neutral -> emotion -> neutral).",
                  no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False)
